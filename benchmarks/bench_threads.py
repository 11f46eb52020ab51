"""All cores: the numba kernels on 1 vs N threads (``torch.set_num_threads``), with bit-identical results.

Cases, forward + backward (gradients of the input and of every parameter):

* wave: ``WaveMedium2D.wavetorch_vowels`` (160 x 100 grid, 1000 steps, Kerr), batch 8, float32,
  cross-entropy on the probe intensities (as ``bench_wave.py``);
* clipper: ``DiodeClipper``, batch 8 x 44,100 samples, float64, loss ``sum(y^2)``.

Wall time (``time.perf_counter``; the point is parallel speed), 1-thread and N-thread runs
interleaved (order alternating each round) in one process, ``--rounds`` rounds (8 times as many
for the ~30 ms clipper runs) after a warm-up (compilation) at each thread count; min and median
per thread count, speed-up = 1-thread time / N-thread time. "cores" is process CPU time / wall
time (how many cores the run really got).
Every run's outputs and gradients are compared with ``torch.equal`` to the first 1-thread run.
The load average (``/proc/loadavg``) is printed before and after: other processes share the CPU.
So is ``OMP_WAIT_POLICY``: torch's OpenMP workers spin for milliseconds after each parallel torch
op (libgomp's default), on the core a kernel thread then needs; ``OMP_WAIT_POLICY=passive`` makes
them sleep instead.

    PHYSNN_DATA=... NUMBA_CACHE_DIR=.numba_cache python benchmarks/bench_threads.py --rounds 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

Run = Callable[[], list[torch.Tensor]]


def wave_case(batch: int, steps: int) -> Run:
    """Vowel-setup medium; returns the scores and the gradients of the input and the density."""
    from physnn.devices.wave import WaveMedium2D

    medium = WaveMedium2D.wavetorch_vowels(steps)
    ny, nx = medium.shape
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(batch, steps, generator=gen)
    x0 = x0 / x0.norm(dim=1, keepdim=True)
    labels = torch.arange(batch) % 3

    def run() -> list[torch.Tensor]:
        x = x0.clone().requires_grad_()
        rho = torch.full((ny, nx), 0.5, requires_grad=True)
        scores = medium(x, {"rho": rho})
        torch.nn.functional.cross_entropy(scores, labels).backward()
        return [scores.detach(), x.grad, rho.grad]

    return run


def clipper_case(batch: int, samples: int) -> Run:
    """DiodeClipper on sines; returns the output and the gradients of the input and every knob."""
    from physnn.devices.audio import DiodeClipper

    device = DiodeClipper(num_samples=samples)
    t = torch.arange(samples, dtype=torch.float64) / 44100.0
    freqs = torch.linspace(80.0, 1000.0, batch, dtype=torch.float64)[:, None]
    x0 = 0.5 * torch.sin(2 * torch.pi * freqs * t)
    controls = {c.name: c.default_tensor(torch.float64) for c in device.controls}

    def run() -> list[torch.Tensor]:
        x = x0.clone().requires_grad_()
        knobs = {k: v.clone().requires_grad_() for k, v in controls.items()}
        y = device(x, knobs)
        y.square().sum().backward()
        return [y.detach(), x.grad] + [knobs[k].grad for k in sorted(knobs)]

    return run


def _loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def measure(run: Run, threads: tuple[int, int], rounds: int) -> tuple[dict[int, list[tuple[float, float]]], bool]:
    """(wall s, cores) per run for each thread count, interleaved; and whether all results were bit-identical."""
    for k in threads:  # warm-up: compilation, allocator
        torch.set_num_threads(k)
        run()
    times: dict[int, list[tuple[float, float]]] = {k: [] for k in threads}
    reference: list[torch.Tensor] | None = None
    identical = True
    for r in range(rounds):
        for k in threads if r % 2 == 0 else threads[::-1]:
            torch.set_num_threads(k)
            c0, t0 = time.process_time(), time.perf_counter()
            out = run()
            t1, c1 = time.perf_counter(), time.process_time()
            times[k].append((t1 - t0, (c1 - c0) / (t1 - t0)))
            if reference is None:
                reference = out
            identical &= all(torch.equal(a, b) for a, b in zip(reference, out, strict=True))
    return times, identical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="the N of 1 vs N threads")
    parser.add_argument("--cases", default="wave,clipper")
    args = parser.parse_args()
    # (label, case, rounds per --rounds): the clipper runs take ~30 ms, so it gets more of them
    cases = {"wave": ("wave medium, vowel setup, batch 8, 1000 steps, float32", lambda: wave_case(8, 1000), 1),
             "clipper": ("DiodeClipper exact, batch 8 x 44,100, float64", lambda: clipper_case(8, 44100), 8)}
    threads = (1, args.threads)
    print(f"load average before: {_loadavg()}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; "
          f"forward+backward, wall time, "
          f"{args.rounds} (wave) / {8 * args.rounds} (clipper) interleaved rounds")
    print(f"{'case':<58}{'threads':>8}{'min s':>9}{'median s':>10}{'cores':>7}{'speed-up min/med':>18}"
          f"{'bit-identical':>15}")
    for name in args.cases.split(","):
        label, make, factor = cases[name]
        times, identical = measure(make(), threads, args.rounds * factor)
        walls = {k: [w for w, _ in v] for k, v in times.items()}
        for k in threads:
            cores = statistics.median(c for _, c in times[k])
            med = statistics.median(walls[1]) / statistics.median(walls[k])
            speed = f"{min(walls[1]) / min(walls[k]):.2f} / {med:.2f}"
            print(f"{label:<58}{k:>8}{min(walls[k]):>9.3f}{statistics.median(walls[k]):>10.3f}{cores:>7.2f}"
                  f"{speed:>18}{str(identical):>15}")
    print(f"load average after: {_loadavg()}")


if __name__ == "__main__":
    main()
