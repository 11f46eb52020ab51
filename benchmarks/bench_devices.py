"""One table: forward + backward per call of each simulation on every path a user grows into.

Rows:

* wave, vowel setup: ``WaveMedium2D.wavetorch_vowels`` (160 x 100, Kerr c_nl = -30), batch 8,
  1000 steps, float32, cross-entropy on the 3 probe intensities (as ``bench_wave.py``);
* wave, 4x grid: the same medium on 320 x 200 cells, ``--big-steps`` steps (default 1000; 250
  gives the vowel row's cell-steps, a quicker run);
* audio chain: ``EffectChain([DiodeClipper, LowpassFilter, Compressor])``, batch 8 x 1 s at
  44.1 kHz, float64, gradients of the input and every knob;
* quantum: ``QuantumCircuit(10)`` (angle encoding, 2 strongly entangling layers, <Z> on every
  wire), batch 32, float32, gradients of the inputs and the weights.

Columns:

* CPU 1 thread: the default backend (numba for the wave medium, the compiled kernels for
  audio), ``torch.set_num_threads(1)``, CPU time (``time.process_time``);
* CPU all threads: the same with ``torch.set_num_threads(os.cpu_count())`` (the kernels follow
  it), wall time;
* torch backend, CPU: wave ``backend="torch"`` (the path CUDA tensors take), 1 thread, CPU
  time; audio and quantum have no separate torch backend, so this cell says "same as 1 thread";
* CUDA: models and inputs on ``cuda``, wall time after ``torch.cuda.synchronize()``; filled only
  when ``torch.cuda.is_available()``, else "—" (never estimated).

Each cell: min / median milliseconds over ``--repeats`` calls after one warm-up call, the
contenders of a row interleaved call by call, and the median's speed-up over the 1-thread
median of the same run (wall vs CPU time: on a busy machine the wall columns look worse).

    python benchmarks/bench_devices.py [--repeats 5] [--big-steps 1000]   # ~1 min on 2 busy cores
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from physnn.devices.audio import Compressor, DiodeClipper, EffectChain, LowpassFilter
from physnn.devices.quantum import QuantumCircuit
from physnn.devices.wave import WaveMedium2D

SAMPLE_RATE = 44100
COLUMNS = ("CPU 1 thread", "CPU all threads", "torch backend, CPU", "CUDA")
#: (torch device, torch threads (None: all CPUs), wave backend, clock) of each column
SETTINGS = {"CPU 1 thread": ("cpu", 1, "auto", "cpu"), "CPU all threads": ("cpu", None, "auto", "wall"),
            "torch backend, CPU": ("cpu", 1, "torch", "cpu"), "CUDA": ("cuda", 1, "auto", "cuda")}

Case = Callable[[str, str], Callable[[], object]]


def wave_case(shape: tuple[int, int], steps: int, batch: int = 8) -> Case:
    """Forward + backward of the Kerr vowel medium on ``shape`` (Ny, Nx) cells, ``batch`` drives of ``steps``."""
    def build(device: str, backend: str) -> Callable[[], object]:
        medium = WaveMedium2D.wavetorch_vowels(steps, shape=shape, backend=backend).to(device)
        rho = torch.full(shape, 0.5, device=device, requires_grad=True)
        x = torch.randn(batch, steps, generator=torch.Generator().manual_seed(0))
        x = (x / x.norm(dim=1, keepdim=True)).to(device)  # unit energy, as the vowel recordings and bench_wave.py
        labels = torch.arange(batch, device=device) % 3

        def run() -> object:
            rho.grad = None
            torch.nn.functional.cross_entropy(medium(x, {"rho": rho}), labels).backward()
            return rho.grad

        return run

    return build


def audio_case(batch: int = 8, seconds: float = 1.0) -> Case:
    """Forward + backward (input and every knob) of clipper -> lowpass -> compressor on ``batch`` tones (volts)."""
    def build(device: str, backend: str) -> Callable[[], object]:
        n = int(SAMPLE_RATE * seconds)
        chain = EffectChain([DiodeClipper(num_samples=n), LowpassFilter(num_samples=n), Compressor(num_samples=n)])
        chain = chain.to(device)
        controls = {c.name: c.default_tensor(torch.float64).to(device) for c in chain.controls}
        t = np.arange(n) / SAMPLE_RATE
        freqs = np.random.default_rng(0).uniform(80, 1000, batch)
        x = torch.as_tensor(np.stack([0.5 * np.sin(2 * np.pi * f * t) for f in freqs]), device=device)
        cotangent = x.neg() + 1.0  # a fixed dL/dy: no loss's own cost is timed

        def run() -> object:
            xs = x.detach().requires_grad_()
            knobs = {k: v.clone().requires_grad_() for k, v in controls.items()}
            chain(xs, knobs).backward(cotangent)
            return xs.grad

        return run

    return build


def quantum_case(n_qubits: int = 10, batch: int = 32) -> Case:
    """Forward + backward (inputs and weights) of the ``n_qubits`` circuit on a batch of angles."""
    def build(device: str, backend: str) -> Callable[[], object]:
        circuit = QuantumCircuit(n_qubits).to(device)
        weights = circuit.controls[0].default_tensor(torch.float32).to(device)
        x = torch.rand(batch, n_qubits, generator=torch.Generator().manual_seed(0)).mul(torch.pi).to(device)

        def run() -> object:
            xs, w = x.detach().requires_grad_(), weights.clone().requires_grad_()
            circuit(xs, {"weights": w}).sum().backward()
            return w.grad

        return run

    return build


def timed(run: Callable[[], object], clock: str, threads: int | None) -> float:
    """Seconds of one call of ``run`` on ``threads`` torch threads (None: all CPUs) by ``clock``."""
    torch.set_num_threads(threads or os.cpu_count() or 1)
    if clock == "cpu":
        start = time.process_time()
        run()
        return time.process_time() - start
    start = time.perf_counter()
    run()
    if clock == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure_row(case: Case, columns: list[str], repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each column's contender, interleaved call by call after one warm-up call each."""
    runs = {}
    for col in columns:
        device, threads, backend, clock = SETTINGS[col]
        runs[col] = case(device, backend)
        timed(runs[col], clock, threads)
    times: dict[str, list[float]] = {col: [] for col in columns}
    for _ in range(repeats):
        for col in columns:
            _, threads, _, clock = SETTINGS[col]
            times[col].append(timed(runs[col], clock, threads))
    return times


def cell(times: list[float] | None, base: float, note: str) -> str:
    """``min / median`` ms and the speed-up ``base / median`` (seconds), or ``note`` when not measured."""
    if times is None:
        return note
    med = statistics.median(times)
    return f"{1e3 * min(times):.0f} / {1e3 * med:.0f} ({base / med:.2f}x)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per cell, after one warm-up call")
    parser.add_argument("--big-steps", type=int, default=1000, help="time steps of the 4x grid row")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    rows = [("wave, vowel setup 160x100, batch 8, 1000 steps", wave_case((100, 160), 1000), True),
            (f"wave, 4x grid 320x200, batch 8, {args.big_steps} steps", wave_case((200, 320), args.big_steps), True),
            ("audio chain clipper+lowpass+compressor, 8 x 1 s", audio_case(), False),
            ("quantum circuit, 10 qubits, batch 32", quantum_case(), False)]
    print(f"## Forward + backward per call, ms: min / median of {args.repeats} interleaved calls "
          f"(speed-up of the median over the 1-thread median)\n")
    print(f"{os.cpu_count()} CPUs; torch {torch.__version__}; "
          + (f"GPU: {torch.cuda.get_device_name()}" if cuda else "no GPU was available: the CUDA column is empty"))
    print("\n| case | " + " | ".join(c if c != "CPU all threads" else f"CPU all {os.cpu_count()} threads"
                                       for c in COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for label, case, has_torch_backend in rows:
        columns = ["CPU 1 thread", "CPU all threads"] + ["torch backend, CPU"] * has_torch_backend + ["CUDA"] * cuda
        times = measure_row(case, columns, args.repeats)
        base = statistics.median(times["CPU 1 thread"])
        notes = {"torch backend, CPU": "same as 1 thread (no separate torch backend)", "CUDA": "—"}
        print(f"| {label} | " + " | ".join(cell(times.get(c), base, notes.get(c, "")) for c in COLUMNS) + " |",
              flush=True)
    print(f"\nThe 4x grid runs {args.big_steps} steps: {4 * args.big_steps / 1000:g}x the vowel row's cell-steps.")


if __name__ == "__main__":
    main()
