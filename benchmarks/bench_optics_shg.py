"""SHGCrystal: time per batch of shaped pulses, and accuracy against an independent adaptive solver.

Contenders on the same batch (default: 64 pulses, the default crystal: 16 input and 16 control
blocks, n_freq = 512, 64 split steps, 1 mm, 50 fs/mm walk-off, coupling 0.5/mm):

* ``split-step``: :meth:`SHGCrystal.propagate` (torch, complex128 here so the comparison is fair),
  forward and forward+backward (a scalar of the SH spectrum differentiated w.r.t. the phases);
* ``rk45``: :meth:`SHGCrystal.reference`, SciPy's adaptive RK45 on the unsplit equations in the
  interaction picture (rtol 1e-9), forward only: the independent reference.

Rounds interleave the contenders; CPU time (``time.process_time``) on 1 thread; min and median.
The table also gives the split-step solution's relative L2 error against the reference.

    python benchmarks/bench_optics_shg.py [--batch 64] [--steps 64] [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from physnn.devices.optics import SHGCrystal


def timed(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = SHGCrystal(steps=args.steps)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, device.in_features, generator=g, dtype=torch.float64) * 2 - 1
    phase = torch.rand(device.n_controls, generator=g, dtype=torch.float64) * 6

    def forward() -> None:
        device.propagate(device.input_spectrum(x, phase).to(torch.complex128))

    def forward_backward() -> None:
        p = phase.clone().requires_grad_()
        _, a2 = device.propagate(device.input_spectrum(x, p).to(torch.complex128))
        a2.abs().square().sum().backward()

    def reference() -> None:
        device.reference(device.input_spectrum(x, phase).to(torch.complex128))

    contenders = {"split-step forward": forward, "split-step fwd+bwd": forward_backward, "rk45 forward": reference}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    forward()  # warm-up
    for _ in range(args.rounds):
        for name, fn in contenders.items():
            times[name].append(timed(fn))
    a1 = device.input_spectrum(x, phase).to(torch.complex128)
    _, split = device.propagate(a1)
    _, ref = device.reference(a1)
    error = float((split - ref).abs().norm() / ref.abs().norm())
    base = statistics.median(times["rk45 forward"])
    print(f"SHGCrystal, batch {args.batch}, n_freq {device.omega.numel()}, {args.steps} steps, 1 thread, "
          f"{args.rounds} rounds; split-step vs RK45: relative L2 error of the SH field {error:.2e}")
    print(f"{'contender':<22}{'min s':>9}{'median s':>10}{'pulses/s':>10}{'rk45 / this':>12}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<22}{min(values):>9.3f}{median:>10.3f}{args.batch / median:>10.0f}{base / median:>12.1f}")


if __name__ == "__main__":
    main()
