"""Saturable absorption on the numba backend: speed and memory against the Kerr-only numba path, and
1 vs 2 threads at batch 1 and batch 8.

Setup: wavetorch's vowel setup as ``bench_wave.py`` (grid 160 x 100, Kerr c_nl = -30, batch 8,
1000 steps, float32, cross-entropy on the normalized probe intensities); saturable absorption
b0 = 0.5/s, u_th = 0.02 (as ``bench_wave.py``'s ``torch-sat``).

Part 1 (``--part speed``): contenders ``numba`` (Kerr only, reversible adjoint), ``numba-sat``
(checkpointed adjoint, this benchmark's subject) and, with ``--solvers``, ``torch-sat`` (the torch
backend's checkpointed adjoint). Each runs in fresh subprocesses, round by round in turn
(``--rounds``), ``--repeat`` timed passes each after a warm-up on a tiny grid, on 1 thread; CPU
time (``time.process_time``); min and median of forward+backward over all passes, the ratio of
medians to ``numba``, and peak memory = VmHWM minus VmRSS just before the first full-size pass.

Part 2 (``--part threads``): one process, forward+backward wall time on 1 and 2 threads
(``torch.set_num_threads``) interleaved, order alternating each round, for Kerr and saturable media
at batch 1 and batch 8; every run's outputs and gradients compared with ``torch.equal`` to the first
1-thread run. "cores" = process CPU time / wall time (how many cores the run really got); the load
average is printed (other processes share the CPU).

    PHYSNN_DATA=... NUMBA_CACHE_DIR=.numba_cache python benchmarks/bench_wave_saturable.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_wave  # noqa: E402

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAT = dict(sat_b0=0.5, sat_uth=0.02)
CASES = {"numba": dict(backend="numba"), "numba-sat": dict(backend="numba", **SAT),
         "torch-sat": dict(backend="torch", **SAT)}


def _drive(batch: int, steps: int):
    import torch

    x = torch.randn(batch, steps, generator=torch.Generator().manual_seed(0))
    return x / x.norm(dim=1, keepdim=True)  # unit energy, as the vowel recordings


def worker(solver: str, batch: int, steps: int, repeat: int) -> dict:
    """Time and measure one solver on 1 thread in this (fresh) process (``bench_wave.worker``'s
    passes, with this benchmark's cases)."""
    bench_wave.CASES.update(CASES)
    return bench_wave.worker(solver, batch, steps, repeat, 1)


def _spawn(solver: str, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", solver, "--batch", str(args.batch), "--steps",
           str(args.steps), "--repeat", str(args.repeat)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")])),
               NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def speed(args) -> None:
    runs: dict[str, list[dict]] = {s: [] for s in args.solvers}
    for _ in range(args.rounds):  # interleaved, so a busy spell of the machine hits every contender alike
        for solver in args.solvers:
            runs[solver].append(_spawn(solver, args))
    print(f"wave, vowel setup: grid 160 x 100, batch {args.batch}, {args.steps} steps, float32, 1 thread, "
          f"{args.rounds} rounds x {args.repeat} passes, CPU time (s)")
    print(f"{'solver':11s} {'fwd min':>8s} {'fwd+bwd min':>11s} {'median':>8s} {'x numba':>8s} {'peak MB':>8s}")
    median = {s: statistics.median(t for r in rs for t in r["forward_backward_s"]) for s, rs in runs.items()}
    for s, rs in runs.items():
        fwd = min(t for r in rs for t in r["forward_s"])
        both = min(t for r in rs for t in r["forward_backward_s"])
        ratio = f"{median[s] / median['numba']:8.2f}" if "numba" in median else ""
        print(f"{s:11s} {fwd:8.3f} {both:11.3f} {median[s]:8.3f} {ratio} {max(r['peak_mb'] for r in rs):8.1f}")


def _run_case(batch: int, steps: int, overrides: dict):
    """Forward+backward on the vowel medium; returns the scores and the gradients of the drive and density."""
    import torch

    from physnn.devices.wave import WaveMedium2D

    medium = WaveMedium2D.wavetorch_vowels(steps, backend="numba", **overrides)
    x0, labels = _drive(batch, steps), torch.arange(batch) % 3

    def run():
        x = x0.clone().requires_grad_()
        rho = torch.full(medium.shape, 0.5, requires_grad=True)
        scores = medium(x, {"rho": rho})
        torch.nn.functional.cross_entropy(scores, labels).backward()
        return [scores.detach(), x.grad, rho.grad]

    return run


def _loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def threads(args) -> None:
    import torch

    print(f"load average before: {_loadavg()}; forward+backward wall time (s), 1 vs 2 threads interleaved, "
          f"{args.rounds} rounds, {args.steps} steps, float32")
    print(f"{'case':22s} {'threads':>7s} {'min':>8s} {'median':>8s} {'cores':>6s} {'speed-up min/med':>17s} "
          f"{'bit-identical':>14s}")
    for name, overrides in (("kerr", {}), ("saturable", SAT)):
        for batch in (1, 8):
            run = _run_case(batch, args.steps, overrides)
            for k in (1, 2):  # warm-up
                torch.set_num_threads(k)
                run()
            walls: dict[int, list[float]] = {1: [], 2: []}
            cores: dict[int, list[float]] = {1: [], 2: []}
            reference, identical = None, True
            for r in range(args.rounds):
                for k in (1, 2) if r % 2 == 0 else (2, 1):
                    torch.set_num_threads(k)
                    c0, t0 = time.process_time(), time.perf_counter()
                    out = run()
                    t1, c1 = time.perf_counter(), time.process_time()
                    walls[k].append(t1 - t0)
                    cores[k].append((c1 - c0) / (t1 - t0))
                    reference = out if reference is None else reference
                    identical &= all(torch.equal(a, b) for a, b in zip(reference, out, strict=True))
            for k in (1, 2):
                up = (f"{min(walls[1]) / min(walls[k]):.2f} / "
                      f"{statistics.median(walls[1]) / statistics.median(walls[k]):.2f}")
                print(f"{name + f', batch {batch}':22s} {k:7d} {min(walls[k]):8.3f} {statistics.median(walls[k]):8.3f} "
                      f"{statistics.median(cores[k]):6.2f} {up:>17s} {str(identical):>14s}")
    print(f"load average after: {_loadavg()}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("speed", "threads", "both"), default="both")
    p.add_argument("--solvers", nargs="+", choices=tuple(CASES), default=["numba", "numba-sat"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=2, help="timed passes per subprocess")
    p.add_argument("--rounds", type=int, default=3, help="fresh subprocesses per solver (speed), rounds (threads)")
    p.add_argument("--worker", choices=tuple(CASES), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch, args.steps, args.repeat)))
        return
    if args.part in ("speed", "both"):
        speed(args)
    if args.part in ("threads", "both"):
        threads(args)


if __name__ == "__main__":
    main()
