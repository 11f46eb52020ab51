"""Speed of the audio models, one thread, every figure a ratio to a baseline measured in the same run.

Run: ``python benchmarks/bench_audio.py [--repeats 7]``. Four tables:

1. Linear filters at filter speed: LowpassFilter, PeakingEQ and DrivenPlate (8
   linear modes), forward and forward + backward (input and every knob), on
   8 x 1 s at 44.1 kHz (backward of a fixed cotangent dL/dy, so that no loss
   function's own cost is timed), against ``scipy.signal.lfilter`` forward alone (the
   same filters, float64). Ratio < 1 means faster than scipy.
2. Compressor stability: the CPU time of 20 identical forward + backward calls
   on 16 x 1 s, and its coefficient of variation (std / mean).
3. Real-time factors on 16 x 1 s next to pedalboard's Distortion + Lowpass +
   Compressor (forward only, no gradients), the reference a user knows.
4. The path CUDA tensors take (one copy to the host and one back per
   recursion), forced on CPU tensors: forward + backward against the plain CPU
   path on 8 x 1 s. No GPU here, so the copies are host-to-host: this measures
   the routing's overhead, not a GPU's transfers.

Contenders are interleaved within each repeat; times are ``time.process_time``
(CPU seconds), reported as min and median over the repeats. Table 1 also counts
page faults per forward + backward call: whether glibc trims freed heap memory,
so that the next call's outputs are faulted in again, depends on the heap's
history (up to about 1,350 faults, 3 ms, per biquad call on 8 x 1 s when it
does; ``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=268435456`` in
the environment keeps that memory mapped).
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from scipy import signal

from physnn.devices.audio import Compressor, DiodeClipper, DrivenPlate, LowpassFilter, OpAmpOverdrive, PeakingEQ, _ops
from physnn.devices.audio.biquad import rbj_coefficients

SAMPLE_RATE = 44100
F64 = torch.float64


def measure(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """CPU seconds of each contender per repeat, contenders interleaved, after one warm-up call each."""
    for fn in contenders.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            start = time.process_time()
            fn()
            times[name].append(time.process_time() - start)
    return times


def faults_per_call(fn: Callable[[], object], calls: int = 5) -> float:
    """Minor page faults per call of ``fn`` (fresh memory the kernel touches; glibc trims and re-maps freed heap)."""
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / calls


def tones(batch: int, seconds: float = 1.0) -> torch.Tensor:
    """``batch`` sines, 80 Hz to 1 kHz, 0.5 V peak: (batch, T) float64."""
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    rng = np.random.default_rng(0)
    return torch.as_tensor(np.stack([0.5 * np.sin(2 * np.pi * f * t) for f in rng.uniform(80, 1000, batch)]))


def model_runs(device, x: torch.Tensor) -> tuple[Callable[[], object], Callable[[], object]]:
    """Forward-only and forward + backward (input and every knob) closures."""
    controls = {c.name: c.default_tensor(F64) for c in device.controls}
    cotangent = torch.ones_like(x).neg_().add_(x)  # a fixed dL/dy, so that no loss's own cost is timed

    def forward() -> object:
        with torch.no_grad():
            return device(x, controls)

    def forward_backward() -> object:
        xs = x.detach().requires_grad_()
        knobs = {k: v.clone().requires_grad_() for k, v in controls.items()}
        device(xs, knobs).backward(cotangent)
        return xs.grad

    return forward, forward_backward


def op_runs(device, x: torch.Tensor) -> dict[str, Callable[[], object]]:
    """The biquad recursion op alone (``_ops.biquad`` on the device's coefficients), forward and forward + backward
    (input and coefficients): the filter without the :class:`~physnn.Device` contract's input and output checks."""
    controls = {c.name: c.default_tensor(F64) for c in device.controls}
    cotangent = torch.ones_like(x).neg_().add_(x)

    def forward() -> object:
        with torch.no_grad():
            return _ops.biquad(x, device.coefficients(controls, x.shape[0]))

    def forward_backward() -> object:
        xs = x.detach().requires_grad_()
        knobs = {k: v.clone().requires_grad_() for k, v in controls.items()}
        _ops.biquad(xs, device.coefficients(knobs, x.shape[0])).backward(cotangent)
        return xs.grad

    return {"fwd": forward, "fwd+bwd": forward_backward}


def biquad_ba(device) -> tuple[np.ndarray, np.ndarray]:
    """The device's default biquad as scipy's ``(b, a)``."""
    c = {k.name: k.default_tensor(F64) for k in device.controls}
    coef = rbj_coefficients(device.kind, c["frequency"], c["q"], c.get("gain", torch.tensor(0.0, dtype=F64)),
                            device.sample_rate).numpy()
    return coef[:3], np.r_[1.0, coef[3:]]


def plate_reference(plate: DrivenPlate, audio: np.ndarray) -> Callable[[], object]:
    """scipy lfilter of the plate's linear modes, summed with the pickup couplings (default knobs)."""
    controls = {c.name: c.default_tensor(F64) for c in plate.controls}
    a1, a2, g, _ = (t[0].numpy() for t in plate.mode_coefficients(controls, 1, torch.zeros(1, dtype=F64)))
    w = plate.output_coupling.numpy()
    modes = [([g[m]], [1.0, -a1[m], a2[m]], w[m]) for m in range(a1.size)]
    return lambda: sum(wm * signal.lfilter(b, a, audio, axis=1) for b, a, wm in modes)


def filter_table(repeats: int) -> None:
    x = tones(8)
    audio = x.numpy()
    rows = {}
    for label, device in [("LowpassFilter", LowpassFilter(num_samples=x.shape[1])),
                          ("PeakingEQ", PeakingEQ(num_samples=x.shape[1])),
                          ("DrivenPlate 8 linear modes", DrivenPlate(num_samples=x.shape[1]))]:
        fwd, fwd_bwd = model_runs(device, x)
        if isinstance(device, DrivenPlate):
            ref = plate_reference(device, audio)
        else:
            b, a = biquad_ba(device)
            ref = (lambda b=b, a=a: signal.lfilter(b, a, audio, axis=1))
        rows[label] = measure({"scipy": ref, "fwd": fwd, "fwd+bwd": fwd_bwd}, repeats), faults_per_call(fwd_bwd)
        if not isinstance(device, DrivenPlate):
            ops = op_runs(device, x)
            rows[f"  {label} op, no Device checks"] = (measure({"scipy": ref, **ops}, repeats),
                                                       faults_per_call(ops["fwd+bwd"]))
    print(f"\n1. Linear filters, 8 x 1 s at {SAMPLE_RATE} Hz, float64, 1 thread; CPU ms (min / median of {repeats}) "
          "and ratio of medians to scipy.signal.lfilter forward; page faults per fwd+bwd call")
    print(f"{'filter':<36}{'scipy fwd':>16}{'physnn fwd':>16}{'ratio':>8}{'physnn fwd+bwd':>18}{'ratio':>8}"
          f"{'faults':>8}")
    for label, (t, faults) in rows.items():
        med = {k: statistics.median(v) for k, v in t.items()}
        cell = {k: f"{1e3 * min(v):.2f} / {1e3 * med[k]:.2f}" for k, v in t.items()}
        print(f"{label:<36}{cell['scipy']:>16}{cell['fwd']:>16}{med['fwd'] / med['scipy']:>8.2f}"
              f"{cell['fwd+bwd']:>18}{med['fwd+bwd'] / med['scipy']:>8.2f}{faults:>8.0f}")


def compressor_table(calls: int = 20) -> None:
    x = tones(16)
    _, fwd_bwd = model_runs(Compressor(num_samples=x.shape[1]), x)
    times = np.array(measure({"c": fwd_bwd}, calls)["c"]) * 1e3
    print(f"\n2. Compressor forward + backward, 16 x 1 s, {calls} identical calls, CPU ms: min {times.min():.1f}, "
          f"median {np.median(times):.1f}, max {times.max():.1f}; coefficient of variation "
          f"{100 * times.std() / times.mean():.1f} %")


def pedalboard_run(audio: np.ndarray) -> Callable[[], object] | None:
    try:
        import pedalboard
    except ImportError:
        return None
    board = pedalboard.Pedalboard([pedalboard.Distortion(drive_db=25),
                                   pedalboard.LowpassFilter(cutoff_frequency_hz=5000),
                                   pedalboard.Compressor(threshold_db=-12, ratio=4)])
    return lambda: board.process(audio, SAMPLE_RATE, reset=True)


def realtime_table(repeats: int) -> None:
    x = tones(16)
    n = x.shape[1]
    contenders = {}
    reference = pedalboard_run(x.numpy().astype(np.float32))
    if reference:
        contenders["pedalboard Distortion+Lowpass+Compressor (fwd, no grad)"] = reference
    for label, device in [("DiodeClipper exact", DiodeClipper(num_samples=n)),
                          ("DiodeClipper fast", DiodeClipper(num_samples=n, mode="fast")),
                          ("OpAmpOverdrive exact", OpAmpOverdrive(num_samples=n)),
                          ("Compressor", Compressor(num_samples=n)),
                          ("LowpassFilter", LowpassFilter(num_samples=n)),
                          ("PeakingEQ", PeakingEQ(num_samples=n)),
                          ("DrivenPlate 8 modes", DrivenPlate(num_samples=n))]:
        fwd, fwd_bwd = model_runs(device, x)
        contenders[f"{label} (fwd)"], contenders[f"{label} (fwd+bwd)"] = fwd, fwd_bwd
    times = {k: statistics.median(v) for k, v in measure(contenders, repeats).items()}
    ref_rtf = 16.0 / next(iter(times.values())) if reference else math.nan
    print(f"\n3. Real-time factors, 16 x 1 s mono at {SAMPLE_RATE} Hz, float64, 1 thread, median CPU time of {repeats}")
    print(f"{'model':<58}{'x real time':>12}{'vs pedalboard':>15}")
    for label, seconds in times.items():
        print(f"{label:<58}{16.0 / seconds:>12.0f}{16.0 / seconds / ref_rtf:>15.3f}")
    if not reference:
        print("pedalboard not installed (pip install 'physnn[audio]'): no reference row")


def device_path_table(repeats: int) -> None:
    x = tones(8)
    print(f"\n4. Forward + backward on the path CUDA tensors take (forced on CPU tensors) vs the CPU path, 8 x 1 s, "
          f"CPU ms median of {repeats}")
    print(f"{'model':<24}{'CPU path':>10}{'device path':>13}{'ratio':>8}")
    for label, device in [("LowpassFilter", LowpassFilter(num_samples=x.shape[1])),
                          ("Compressor", Compressor(num_samples=x.shape[1])),
                          ("DiodeClipper exact", DiodeClipper(num_samples=x.shape[1]))]:
        _, fwd_bwd = model_runs(device, x)

        def forced(fn: Callable[[], object] = fwd_bwd) -> object:
            _ops.FORCE_DEVICE_PATH = True
            try:
                return fn()
            finally:
                _ops.FORCE_DEVICE_PATH = False

        t = {k: 1e3 * statistics.median(v) for k, v in measure({"cpu": fwd_bwd, "dev": forced}, repeats).items()}
        print(f"{label:<24}{t['cpu']:>10.2f}{t['dev']:>13.2f}{t['dev'] / t['cpu']:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    filter_table(args.repeats)
    compressor_table()
    realtime_table(args.repeats)
    device_path_table(args.repeats)


if __name__ == "__main__":
    main()
