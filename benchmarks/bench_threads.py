"""All cores: the numba kernels on 1 vs N threads (``torch.set_num_threads``), with bit-identical results.

Cases, forward + backward (gradients of the input and of every parameter):

* wave: ``WaveMedium2D.wavetorch_vowels`` (160 x 100 grid, 1000 steps, Kerr), batch 8, float32,
  cross-entropy on the probe intensities (as ``bench_wave.py``);
* clipper: ``DiodeClipper``, batch 8 x 44,100 samples, float64, loss ``sum(y^2)``.

Three contenders per case: 1 thread; N threads with the row blocks on torch's OpenMP team
(the default, :mod:`physnn._threads`); N threads with the blocks on the plain thread pool
(``_threads.USE_TORCH_OPENMP = False``), which competes with torch's OpenMP workers while they
spin after each parallel torch op (libgomp's default wait policy; ``OMP_WAIT_POLICY=passive``
makes them sleep instead).

Wall time (``time.perf_counter``; the point is parallel speed), contenders interleaved (order
rotating each round) in one process, ``--rounds`` rounds (8 times as many for the ~30 ms clipper
runs) after a warm-up (compilation) of each; min and median per contender, speed-up = 1-thread
time / its time. "cores" is process CPU time / wall time (how many cores the run really got).
Every run's outputs and gradients are compared with ``torch.equal`` to the first 1-thread run.
The load average (``/proc/loadavg``) is printed before and after: other processes share the CPU,
and a speed-up above 1 needs a second core free.

    PHYSNN_DATA=... NUMBA_CACHE_DIR=.numba_cache python benchmarks/bench_threads.py --rounds 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

from physnn import _threads

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


#: (label, threads or None for --threads, blocks on torch's OpenMP team)
CONTENDERS = (("1 thread", 1, True), ("N, OpenMP team", None, True), ("N, thread pool", None, False))


def measure(run: Run, contenders: list[tuple[str, int, bool]], rounds: int
            ) -> tuple[dict[str, list[tuple[float, float]]], bool]:
    """(wall s, cores) per run for each contender, interleaved; and whether all results were bit-identical."""

    def once(threads: int, team: bool) -> tuple[list[torch.Tensor], float, float]:
        torch.set_num_threads(threads)
        _threads.USE_TORCH_OPENMP = team
        c0, t0 = time.process_time(), time.perf_counter()
        out = run()
        t1, c1 = time.perf_counter(), time.process_time()
        return out, t1 - t0, (c1 - c0) / (t1 - t0)

    for _, threads, team in contenders:  # warm-up: compilation, allocator
        once(threads, team)
    times: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in contenders}
    reference: list[torch.Tensor] | None = None
    identical = True
    try:
        for r in range(rounds):
            for label, threads, team in contenders[r % len(contenders):] + contenders[:r % len(contenders)]:
                out, wall, cores = once(threads, team)
                times[label].append((wall, cores))
                if reference is None:
                    reference = out
                identical &= all(torch.equal(a, b) for a, b in zip(reference, out, strict=True))
    finally:
        _threads.USE_TORCH_OPENMP = True
    return times, identical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="the N of 1 vs N threads")
    parser.add_argument("--cases", default="wave,clipper")
    args = parser.parse_args()
    # (label, case, rounds per --rounds): the clipper runs take ~30 ms, so it gets more of them
    cases = {"wave": ("wave, vowel setup, batch 8, 1000 steps, f32", lambda: wave_case(8, 1000), 1),
             "clipper": ("DiodeClipper exact, batch 8 x 44,100, f64", lambda: clipper_case(8, 44100), 8)}
    contenders = [(label, k or args.threads, team) for label, k, team in CONTENDERS]
    print(f"load average before: {_loadavg()}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}; "
          f"torch OpenMP team found: {_threads._torch_openmp() is not None}; forward+backward, wall time, "
          f"{args.rounds} (wave) / {8 * args.rounds} (clipper) interleaved rounds; N = {args.threads}")
    print(f"{'case':<50}{'contender':>17}{'min s':>9}{'median s':>10}{'cores':>7}{'speed-up min/med':>18}"
          f"{'bit-identical':>15}")
    for name in args.cases.split(","):
        label, make, factor = cases[name]
        times, identical = measure(make(), contenders, args.rounds * factor)
        walls = {k: [w for w, _ in v] for k, v in times.items()}
        one = walls[contenders[0][0]]
        for who, _, _ in contenders:
            cores = statistics.median(c for _, c in times[who])
            speed = f"{min(one) / min(walls[who]):.2f} / {statistics.median(one) / statistics.median(walls[who]):.2f}"
            print(f"{label:<50}{who:>17}{min(walls[who]):>9.3f}{statistics.median(walls[who]):>10.3f}{cores:>7.2f}"
                  f"{speed:>18}{str(identical):>15}")
    print(f"load average after: {_loadavg()}")


if __name__ == "__main__":
    main()
