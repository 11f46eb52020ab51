"""Speed and memory of physnn's WaveMedium2D against wavetorch 0.2.1, on wavetorch's vowel setup.

Grid 160 x 100 (h = 1.4284 m, dt = 1 s, c0 = 1, c1 = 0.5 m/s, 20-cell damping layer up to 3/s,
order 4), point source at (x=40, y=50), 3 intensity probes at x = 120, Kerr-like c_nl = -30,
density 0.5 in the design region (columns 45..114), blur radius 1, projection beta = 100;
batch 8, 1000 steps, float32; loss = cross-entropy on the normalized probe intensities.

Each solver runs in fresh subprocesses (``--rounds``, alternating between the solvers), timed
the same way (best forward and forward + backward passes of ``--repeat``, after a warm-up on a
tiny grid; the same thread count for torch, OpenMP and numba) and with peak memory measured
the same way: the peak resident set size (``getrusage`` maxrss) minus the resident size just
before the first full-size pass, i.e. what the simulation and its backward pass add.

    python benchmarks/bench_wave.py --wavetorch-python /work/wtvenv/bin/python

wavetorch runs with its interpreter (``--wavetorch-python``), else in-process if importable,
else the table shows physnn alone. wavetorch 0.2.1 needs small shims (done here, nothing is
installed): its sdist lacks ``wavetorch.data``, and it imports scikit-image's removed
``draw.circle``, scikit-learn, pandas and seaborn, which the solver itself never uses.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

H = 1.4283556979968262
NY, NX = 100, 160


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------- physnn
def _physnn_case(batch: int, steps: int):
    import torch

    from physnn.devices.wave import WaveMedium2D

    medium = WaveMedium2D.wavetorch_vowels(steps)
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


# ----------------------------------------------------------------------------- worker
def worker(solver: str, batch: int, steps: int, repeat: int, threads: int) -> dict:
    """Time and measure one solver in this (fresh) process; returns a dict of figures."""
    import torch

    torch.set_num_threads(threads)
    make = _physnn_case if solver == "physnn" else _wavetorch_case
    gen = torch.Generator().manual_seed(0)
    make(1, 4)(torch.randn(1, 4, generator=gen) * 0.03, True)  # warm-up: kernels, allocator
    run = make(batch, steps)
    x = torch.randn(batch, steps, generator=gen)
    x = x / x.norm(dim=1, keepdim=True)  # unit energy, as the vowel recordings
    before = _rss_mb()
    forward, both = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run(x, False)
        t1 = time.perf_counter()
        run(x, True)
        t2 = time.perf_counter()
        forward.append(t1 - t0)
        both.append(t2 - t1)
    cells = batch * steps * NY * NX
    return {"solver": solver, "forward_s": min(forward), "forward_backward_s": min(both),
            "peak_mb": _peak_mb() - before, "peak_rss_mb": _peak_mb(),
            "cell_updates_per_s_forward": cells / min(forward),
            "cell_updates_per_s_forward_backward": cells / min(both)}


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
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=2, help="timed passes per subprocess")
    p.add_argument("--rounds", type=int, default=2, help="fresh subprocesses per solver, alternating")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--worker", choices=("physnn", "wavetorch"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch, args.steps, args.repeat, args.threads)))
        return
    wt_python = args.wavetorch_python
    if wt_python is None:
        import importlib.util

        wt_python = sys.executable if importlib.util.find_spec("wavetorch") else None
    # alternate the solvers round by round, so a busy spell of the machine hits both alike
    runs: dict[str, list[dict]] = {"physnn": [], "wavetorch": []}
    for _ in range(args.rounds):
        for solver, python in (("physnn", sys.executable), ("wavetorch", wt_python)):
            result = _spawn(python, solver, args) if python else None
            if result:
                runs[solver].append(result)
    rows = [min(runs[s], key=lambda r: r["forward_backward_s"]) if runs[s] else None
            for s in ("physnn", "wavetorch")]
    print(f"wave solvers, wavetorch vowel setup: grid {NX} x {NY}, batch {args.batch}, {args.steps} steps, "
          f"float32, {args.threads} threads, best of {args.rounds} rounds x {args.repeat} repeats")
    print(f"{'solver':10s} {'forward s':>10s} {'fwd+bwd s':>10s} {'peak MB':>9s} {'Mcell/s fwd':>12s} "
          f"{'Mcell/s f+b':>12s}")
    for r in filter(None, rows):
        print(f"{r['solver']:10s} {r['forward_s']:10.3f} {r['forward_backward_s']:10.3f} {r['peak_mb']:9.1f} "
              f"{r['cell_updates_per_s_forward'] / 1e6:12.0f} {r['cell_updates_per_s_forward_backward'] / 1e6:12.0f}")
    ours, theirs = rows
    if ours and theirs:
        print(f"physnn vs wavetorch: forward {theirs['forward_s'] / ours['forward_s']:.1f}x faster, "
              f"forward+backward {theirs['forward_backward_s'] / ours['forward_backward_s']:.1f}x faster, "
              f"peak memory {ours['peak_mb'] / theirs['peak_mb']:.4f} of wavetorch's "
              f"({theirs['peak_mb'] / max(ours['peak_mb'], 1e-3):.0f}x less)")
    elif ours:
        print("wavetorch not available (pass --wavetorch-python): physnn's figures only")


if __name__ == "__main__":
    main()
