"""Speed and memory of WaveMedium2D's backends (and wavetorch 0.2.1) on wavetorch's vowel setup.

Grid 160 x 100 (h = 1.4284 m, dt = 1 s, c0 = 1, c1 = 0.5 m/s, 20-cell damping layer up to 3/s,
order 4), point source at (x=40, y=50), 3 intensity probes at x = 120, Kerr-like c_nl = -30,
density 0.5 in the design region (columns 45..114), blur radius 1, projection beta = 100;
batch 8, 1000 steps, float32; loss = cross-entropy on the normalized probe intensities.

Contenders: ``numba`` (fused CPU kernels, reversible adjoint), ``torch-adjoint`` (the torch
backend's hand-written reversible adjoint), ``torch-sat`` (the torch backend with saturable
absorption, b0 = 0.5/s, u_th = 0.02: checkpointed adjoint), ``autograd`` (a plain autograd
leapfrog in torch ops, :func:`_autograd_case`, the same physics) and ``wavetorch``.

Each contender runs in fresh subprocesses, round by round in turn (``--rounds``), ``--repeat``
timed passes each after a warm-up on a tiny grid, on ``--threads`` threads (default 1: the CPU
time ``time.process_time`` is then the single-thread cost). The table gives min and median of
the forward+backward CPU time over all passes, the speed-up (the plain autograd leapfrog's median
over this median, and its min over this min), and the peak memory: the process's VmHWM
(/proc/self/status) minus its VmRSS just before the first full-size pass, i.e. what the
simulation and its backward pass add, beside its ratio to the autograd leapfrog's.

    python benchmarks/bench_wave.py [--wavetorch-python /work/wtvenv/bin/python]

wavetorch runs with its interpreter (``--wavetorch-python``), else in-process if importable,
else it is left out. wavetorch 0.2.1 needs small shims (done here, nothing is installed): its
sdist lacks ``wavetorch.data``, and it imports scikit-image's removed ``draw.circle``,
scikit-learn, pandas and seaborn, which the solver itself never uses.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

H = 1.4283556979968262
NY, NX = 100, 160


# ----------------------------------------------------------------------------- physnn
def _physnn_case(batch: int, steps: int, **overrides):
    import torch

    from physnn.devices.wave import WaveMedium2D

    medium = WaveMedium2D.wavetorch_vowels(steps, **overrides)
    rho = torch.full((NY, NX), 0.5, requires_grad=True)

    def run(x, backward: bool):
        if not backward:
            with torch.no_grad():
                return medium(x, {"rho": rho})
        scores = medium(x, {"rho": rho})
        torch.nn.functional.cross_entropy(scores, torch.arange(len(x)) % 3).backward()
        return scores

    return run


# -------------------------------------------------------------------------- wavetorch
def _shim_wavetorch() -> None:
    """Stand-ins for imports wavetorch 0.2.1 makes but its solver never calls."""
    import types

    import numpy as np

    def circle(r, c, radius):  # scikit-image < 0.19 draw.circle: pixels strictly inside
        ii, jj = np.mgrid[: 2 * r + 1, : 2 * c + 1]
        inside = (ii - r) ** 2 + (jj - c) ** 2 < radius ** 2
        return ii[inside], jj[inside]

    stubs = {name: types.ModuleType(name) for name in
             ("skimage", "skimage.draw", "sklearn", "sklearn.metrics", "pandas", "seaborn", "wavetorch.data")}
    stubs["skimage.draw"].circle = circle
    stubs["skimage.draw"].line = None
    stubs["skimage"].draw = stubs["skimage.draw"]
    stubs["sklearn.metrics"].confusion_matrix = None
    for name, module in stubs.items():
        sys.modules.setdefault(name, module)


def _wavetorch_case(batch: int, steps: int):
    _shim_wavetorch()
    import torch
    import wavetorch
    from wavetorch.utils import normalize_power

    design = torch.zeros(NX, NY, dtype=torch.uint8)
    design[45:115] = 1
    geom = wavetorch.WaveGeometryFreeForm((NX, NY), H, c0=1.0, c1=0.5, eta=0.5, beta=100.0, abs_sig=3.0,
                                          abs_N=20, abs_p=4.0, rho="half", blur_radius=1, blur_N=1,
                                          design_region=design)
    cell = wavetorch.WaveCell(1.0, geom, satdamp_b0=0.0, satdamp_uth=0.0, c_nl=-30.0)
    model = wavetorch.WaveRNN(cell, [wavetorch.WaveSource(40, 50)],
                              [wavetorch.WaveIntensityProbe(120, y) for y in (30, 50, 70)])

    def run(x, backward: bool):
        if not backward:
            with torch.no_grad():
                return normalize_power(model(x).sum(dim=1))
        scores = normalize_power(model(x).sum(dim=1))
        torch.nn.functional.cross_entropy(scores, torch.arange(len(x)) % 3).backward()
        return scores

    return run


# --------------------------------------------------------------------- plain autograd
def _autograd_case(batch: int, steps: int):
    """The baseline: the vowel medium's leapfrog written directly in torch ops, autograd through every step."""
    import torch
    import torch.nn.functional as F

    from physnn.devices.wave import WaveMedium2D

    medium = WaveMedium2D.wavetorch_vowels(steps)
    lay, dt = medium.layout, medium.dt
    ny, nx = lay.shape
    beta = torch.as_tensor(lay.damping * dt, dtype=torch.float32)
    a1, a2 = 1 / (1 + beta), (1 - beta) / (1 + beta)
    r2 = (dt / medium.h) ** 2
    src = torch.as_tensor(lay.src_cells[:, 0] * nx + lay.src_cells[:, 1])
    prb = torch.as_tensor(lay.prb_cells[:, 0] * nx + lay.prb_cells[:, 1])
    rho = torch.full((ny, nx), 0.5, requires_grad=True)

    def leapfrog(x):
        rt = medium.density(rho)
        cl, q = medium.c0 + (medium.c1 - medium.c0) * rt, medium.c_nl * rt
        u = x.new_zeros((len(x), ny, nx))
        old, probes = u, []
        for n in range(x.shape[1]):
            p = F.pad(u, (1, 1, 1, 1))
            lap = (p[:, :-2, 1:-1] + p[:, 2:, 1:-1]) + (p[:, 1:-1, :-2] + p[:, 1:-1, 2:]) - 4 * u
            c = cl + q * (u * u)
            new = a1 * ((u + u) + r2 * (c * c) * lap) - a2 * old
            new = new.flatten(1).index_add(1, src, dt * dt * x[:, n:n + 1]).view_as(u)
            probes.append(new.flatten(1)[:, prb])
            u, old = new, u
        v = torch.stack(probes, -1)  # (B, P, T)
        intensity = dt * (v * v).sum(-1)
        return intensity / intensity.sum(-1, keepdim=True)

    def run(x, backward: bool):
        if not backward:
            with torch.no_grad():
                return leapfrog(x)
        scores = leapfrog(x)
        torch.nn.functional.cross_entropy(scores, torch.arange(len(x)) % 3).backward()
        return scores

    return run


# ----------------------------------------------------------------------------- worker
CASES = {"numba": dict(backend="numba"), "torch-adjoint": dict(backend="torch"),
         "torch-sat": dict(backend="torch", sat_b0=0.5, sat_uth=0.02)}
SOLVERS = (*CASES, "autograd", "wavetorch")


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _make(solver: str, batch: int, steps: int):
    if solver == "wavetorch":
        return _wavetorch_case(batch, steps)
    if solver == "autograd":
        return _autograd_case(batch, steps)
    return _physnn_case(batch, steps, **CASES[solver])


def worker(solver: str, batch: int, steps: int, repeat: int, threads: int) -> dict:
    """Time and measure one solver in this (fresh) process; returns a dict of figures."""
    import torch

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    _make(solver, 1, 4)(torch.randn(1, 4, generator=gen) * 0.03, True)  # warm-up: kernels, allocator
    run = _make(solver, batch, steps)
    x = torch.randn(batch, steps, generator=gen)
    x = x / x.norm(dim=1, keepdim=True)  # unit energy, as the vowel recordings
    before = _status_mb("VmRSS")
    forward, both = [], []
    for _ in range(repeat):
        t0 = time.process_time()
        run(x, False)
        t1 = time.process_time()
        run(x, True)
        t2 = time.process_time()
        forward.append(t1 - t0)
        both.append(t2 - t1)
    return {"solver": solver, "forward_s": forward, "forward_backward_s": both,
            "peak_mb": _status_mb("VmHWM") - before, "hwm_mb": _status_mb("VmHWM")}


def _spawn(python: str, solver: str, args) -> dict | None:
    cmd = [python, os.path.abspath(__file__), "--worker", solver, "--batch", str(args.batch), "--steps",
           str(args.steps), "--repeat", str(args.repeat), "--threads", str(args.threads)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")])),
               NUMBA_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        print(f"{solver} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wavetorch-python", help="interpreter that has wavetorch 0.2.1 installed")
    p.add_argument("--solvers", nargs="+", choices=SOLVERS, default=list(SOLVERS))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=2, help="timed passes per subprocess")
    p.add_argument("--rounds", type=int, default=3, help="fresh subprocesses per solver, interleaved")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--worker", choices=SOLVERS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch, args.steps, args.repeat, args.threads)))
        return
    wt_python = args.wavetorch_python
    if wt_python is None:
        import importlib.util

        wt_python = sys.executable if importlib.util.find_spec("wavetorch") else None
    pythons = {s: (wt_python if s == "wavetorch" else sys.executable) for s in args.solvers}
    runs: dict[str, list[dict]] = {s: [] for s in args.solvers}
    for _ in range(args.rounds):  # interleaved, so a busy spell of the machine hits every contender alike
        for solver in args.solvers:
            result = _spawn(pythons[solver], solver, args) if pythons[solver] else None
            if result:
                runs[solver].append(result)
    print(f"wave solvers, wavetorch vowel setup: grid {NX} x {NY}, batch {args.batch}, {args.steps} steps, "
          f"float32, {args.threads} thread(s), {args.rounds} rounds x {args.repeat} passes, CPU time")
    print(f"{'solver':14s} {'fwd min':>8s} {'fwd+bwd min':>11s} {'median':>8s} {'speed-up':>8s} {'(min)':>6s} "
          f"{'peak MB':>8s} {'x autograd':>10s} {'VmHWM MB':>9s}")
    stats = {}
    for s, rs in runs.items():
        if rs:
            both = sorted(t for r in rs for t in r["forward_backward_s"])
            stats[s] = dict(fwd=min(t for r in rs for t in r["forward_s"]), min=both[0],
                            median=statistics.median(both), peak=max(r["peak_mb"] for r in rs),
                            hwm=max(r["hwm_mb"] for r in rs))
    base = stats.get("autograd")
    for s, st in stats.items():
        speed = f"{base['median'] / st['median']:8.2f} {base['min'] / st['min']:6.2f}" if base else f"{'':15s}"
        mem = f"{st['peak'] / base['peak']:10.4f}" if base else f"{'':10s}"
        print(f"{s:14s} {st['fwd']:8.3f} {st['min']:11.3f} {st['median']:8.3f} {speed} {st['peak']:8.1f} {mem} "
              f"{st['hwm']:9.1f}")
    if "numba" in stats and "torch-sat" in stats:
        print(f"torch-sat / numba (Kerr only) forward+backward, median: "
              f"{stats['torch-sat']['median'] / stats['numba']['median']:.2f}")


if __name__ == "__main__":
    main()
