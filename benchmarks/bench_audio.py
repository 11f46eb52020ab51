"""Speed of the audio models: real-time factors on 16 x 1 s mono at 44.1 kHz, one thread.

Run: ``python benchmarks/bench_audio.py [--repeats 5]``. Prints one row per
model (forward only, and forward + backward through every knob and the input)
and, measured in the same run, pedalboard's Distortion + LowpassFilter +
Compressor (forward only, no gradients) as the reference a user knows, with
the ratio of each model's speed to it. Real-time factor = seconds of audio
processed per second of wall time (16 s of audio per call).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from physnn.devices.audio import Compressor, DiodeClipper, DrivenPlate, LowpassFilter, OpAmpOverdrive, PeakingEQ

BATCH, SAMPLE_RATE, SECONDS = 16, 44100, 1.0


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls, after one warm-up call (compilation)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def model_runs(device, x: torch.Tensor) -> tuple[Callable[[], object], Callable[[], object]]:
    """Forward-only and forward + backward (input and every knob) closures."""
    controls = {c.name: c.default_tensor(torch.float64) for c in device.controls}

    def forward() -> object:
        with torch.no_grad():
            return device(x, controls)

    def forward_backward() -> object:
        xs = x.clone().requires_grad_()
        knobs = {k: v.clone().requires_grad_() for k, v in controls.items()}
        device(xs, knobs).square().sum().backward()
        return xs.grad

    return forward, forward_backward


def pedalboard_run(audio: np.ndarray) -> Callable[[], object] | None:
    try:
        import pedalboard
    except ImportError:
        return None
    board = pedalboard.Pedalboard([pedalboard.Distortion(drive_db=25),
                                   pedalboard.LowpassFilter(cutoff_frequency_hz=5000),
                                   pedalboard.Compressor(threshold_db=-12, ratio=4)])
    return lambda: board.process(audio, SAMPLE_RATE, reset=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    n = int(SAMPLE_RATE * SECONDS)
    t = np.arange(n) / SAMPLE_RATE
    rng = np.random.default_rng(0)
    audio = np.stack([0.5 * np.sin(2 * np.pi * f * t) for f in rng.uniform(80, 1000, BATCH)])
    x = torch.as_tensor(audio)
    audio_seconds = BATCH * SECONDS
    rows: list[tuple[str, float]] = []
    reference = pedalboard_run(audio.astype(np.float32))
    ref_rtf = audio_seconds / best_time(reference, args.repeats) if reference else None
    if ref_rtf:
        rows.append(("pedalboard Distortion+Lowpass+Compressor (fwd, no grad)", ref_rtf))
    models = [("DiodeClipper exact", DiodeClipper(num_samples=n)),
              ("DiodeClipper fast", DiodeClipper(num_samples=n, mode="fast")),
              ("OpAmpOverdrive exact", OpAmpOverdrive(num_samples=n)),
              ("Compressor", Compressor(num_samples=n)),
              ("LowpassFilter", LowpassFilter(num_samples=n)),
              ("PeakingEQ", PeakingEQ(num_samples=n)),
              ("DrivenPlate 8 modes", DrivenPlate(num_samples=n))]
    for label, device in models:
        fwd, fwd_bwd = model_runs(device, x)
        rows.append((f"{label} (fwd)", audio_seconds / best_time(fwd, args.repeats)))
        rows.append((f"{label} (fwd+bwd)", audio_seconds / best_time(fwd_bwd, args.repeats)))
    print(f"{BATCH} x {SECONDS:g} s mono at {SAMPLE_RATE} Hz, float64, torch threads = 1, median of {args.repeats}")
    print(f"{'model':<58}{'x real time':>12}{'vs pedalboard':>15}")
    for label, rtf in rows:
        ratio = f"{rtf / ref_rtf:.3f}" if ref_rtf else "n/a"
        print(f"{label:<58}{rtf:>12.0f}{ratio:>15}")
    if not ref_rtf:
        print("pedalboard not installed (pip install 'physnn[audio]'): no reference row")


if __name__ == "__main__":
    main()
