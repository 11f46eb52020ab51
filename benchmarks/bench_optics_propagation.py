"""Angular-spectrum propagation throughput: physnn's propagator against a plain torch FFT reference, same run.

Contenders, each propagating a batch of complex64 fields over one 30 mm gap (lambda 0.75 mm,
0.4 mm pitch, Lin et al.'s geometry), forward only and forward + backward of ``sum |E|^2``:

* ``physnn``: :func:`physnn.devices.optics._propagation.propagate` (band-limited transfer function,
  cached);
* ``reference``: the textbook method written out below: zero-pad to 2n, FFT, multiply by
  ``exp(i 2 pi z sqrt(1/lambda^2 - fx^2 - fy^2))`` computed in the call (no band limit, no cache),
  inverse FFT, crop.

Sizes: n = 200 (Lin's planes) at batch 16 and n = 64 at batch 64. Contenders alternate pass by pass
(``--repeat`` passes each after a warm-up) on ``--threads`` threads; the table gives min and median
process time per pass and physnn / reference of the medians. Where torchoptics is importable, its
``Field.propagate_to_z(..., propagation_method="ASM")`` in float32 joins as a third contender (not a
dependency: ``pip install --target DIR --no-deps torchoptics`` and ``PYTHONPATH=DIR`` suffice).

    python benchmarks/bench_optics_propagation.py [--repeat 7 --threads 1]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from physnn.devices.optics._propagation import propagate

WAVELENGTH, PITCH, DISTANCE = 0.75e-3, 0.4e-3, 30e-3


def reference(field: torch.Tensor, pitch: float, wavelength: float, distance: float) -> torch.Tensor:
    """Plain angular spectrum: pad to 2n, FFT, transfer function built here, inverse FFT, crop."""
    ny, nx = field.shape[-2:]
    fy = torch.fft.fftfreq(2 * ny, d=pitch)[:, None]
    fx = torch.fft.fftfreq(2 * nx, d=pitch)[None, :]
    arg = (1 / wavelength ** 2 - fx ** 2 - fy ** 2).clamp(min=0)
    h = torch.polar((arg > 0).float(), 2 * math.pi * distance * arg.sqrt())
    padded = F.pad(field, (nx // 2, nx - nx // 2, ny // 2, ny - ny // 2))
    out = torch.fft.ifft2(torch.fft.fft2(padded) * h)
    return out[..., ny // 2:ny // 2 + ny, nx // 2:nx // 2 + nx]


def torchoptics_propagate() -> Callable[..., torch.Tensor] | None:
    """torchoptics' angular-spectrum propagation as ``fn(field, pitch, wavelength, distance)``, if installed."""
    try:
        import torchoptics
    except ImportError:
        return None
    torchoptics.set_default_dtype(torch.float32)

    def run(field: torch.Tensor, pitch: float, wavelength: float, distance: float) -> torch.Tensor:
        start = torchoptics.Field(field, wavelength=wavelength, z=0, spacing=pitch)
        return start.propagate_to_z(distance, propagation_method="ASM").data
    return run


def task(fn: Callable[..., torch.Tensor], field: torch.Tensor, backward: bool) -> Callable[[], None]:
    def run() -> None:
        f = field.clone().requires_grad_(backward)
        y = fn(f, PITCH, WAVELENGTH, DISTANCE).abs().square().sum()
        if backward:
            y.backward()
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    contenders = {"physnn": propagate, "reference": reference}
    if (other := torchoptics_propagate()) is not None:
        contenders["torchoptics"] = other
    names = list(contenders)
    print("| n | batch | pass | " + " | ".join(f"{k} min / median (ms)" for k in names) + " | "
          + " | ".join(f"physnn / {k}" for k in names[1:]) + " |")
    print("|---" * (3 + 2 * len(names) - 1) + "|")
    for n, batch in ((200, 16), (64, 64)):
        field = torch.polar(torch.rand(batch, n, n, generator=g), 2 * math.pi * torch.rand(batch, n, n, generator=g))
        diff = float((propagate(field, PITCH, WAVELENGTH, DISTANCE)
                      - reference(field, PITCH, WAVELENGTH, DISTANCE)).abs().max())
        for backward in (False, True):
            tasks = {name: task(fn, field, backward) for name, fn in contenders.items()}
            times: dict[str, list[float]] = {k: [] for k in tasks}
            for t in tasks.values():
                t()  # warm-up (and the transfer-function cache)
            for _ in range(args.repeat):
                for name, t in tasks.items():
                    start = time.process_time()
                    t()
                    times[name].append(1e3 * (time.process_time() - start))
            cells = [f"{min(v):.1f} / {statistics.median(v):.1f}" for v in times.values()]
            ratios = [f"{statistics.median(times['physnn']) / statistics.median(times[k]):.2f}" for k in names[1:]]
            kind = "fwd+bwd" if backward else "fwd"
            print(f"| {n} | {batch} | {kind} | " + " | ".join(cells + ratios) + " |", flush=True)
        print(f"<!-- n={n}: max |physnn - reference| = {diff:.2e} (by design: the band limit drops"
              " frequencies whose transfer-function phase is undersampled; the reference keeps them) -->")


if __name__ == "__main__":
    main()
