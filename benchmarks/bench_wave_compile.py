"""Does ``torch.compile`` pay for the wave torch backend's step? Compile time and time per step.

On the vowel setup (grid 160 x 100, batch 8, Kerr, float32, ``--threads`` threads, default 1) it
times, interleaved and ``--repeat`` times over ``--steps`` steps each, and reports min and median
CPU time per step (``time.process_time``):

* ``eager in-place``: :class:`Leapfrog` (what the torch backend runs: in place, no allocation);
* ``eager functional``: :func:`_functional_step`, the same update written for the compiler
  (out of place, on zero-bordered fields, no slice assignment);
* ``compiled``: ``torch.compile(_functional_step)`` (inductor; on CPU it needs a C compiler).
  (``Stepper.step``, whose Laplacian adds into slices, compiles into deeply masked loops that
  run about 10x slower than eager: not a fair contender.)

The first call of the compiled step (tracing, code generation, C++ compilation) is timed apart, in
wall-clock seconds. The compiled and in-place fields are compared after the timed steps.

    python benchmarks/bench_wave_compile.py [--steps 300] [--repeat 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def _functional_step(up: torch.Tensor, oldp: torch.Tensor, k: torch.Tensor, two_a1: torch.Tensor,
                     a2: torch.Tensor, q: torch.Tensor, cl: torch.Tensor, r2: float, src: torch.Tensor,
                     drive: torch.Tensor) -> torch.Tensor:
    """u^{n+1} zero-bordered (B, Ny + 2, Nx + 2) from zero-bordered u^n, u^{n-1}, with
    ``K = k + r2 q u^2 (2 cl + q u^2)`` (= r2 a1 c^2; ``q`` vanishes where a1 != 1) and ``A = 2 a1 - 4 K``."""
    u = up[:, 1:-1, 1:-1]
    nsum = (up[:, :-2, 1:-1] + up[:, 2:, 1:-1]) + (up[:, 1:-1, :-2] + up[:, 1:-1, 2:])
    t = q * (u * u)
    kk = k + r2 * t * (2 * cl + t)
    new = (two_a1 - 4 * kk) * u + kk * nsum - a2 * oldp[:, 1:-1, 1:-1]
    new = new.flatten(1).index_add(1, src, drive).view_as(u)
    return F.pad(new, (1, 1, 1, 1))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    from physnn.devices.wave import WaveMedium2D
    from physnn.devices.wave._torch_adjoint import Leapfrog, Stepper

    torch.set_num_threads(args.threads)
    medium = WaveMedium2D.wavetorch_vowels(args.steps, backend="torch")
    rho = torch.full(medium.shape, 0.5)
    rt = medium.density(rho)
    cl, q = medium.c0 + (medium.c1 - medium.c0) * rt, medium.c_nl * rt
    x = torch.randn(8, 1, args.steps, generator=torch.Generator().manual_seed(0)) * 0.03
    st = Stepper(x, cl, q, None, medium.layout, medium.dt, medium.h, 1.0)
    compiled = torch.compile(_functional_step, dynamic=False)
    nx = medium.shape[1]
    cells = medium.layout.src_cells
    src = torch.as_tensor(cells[:, 0] * nx + cells[:, 1])
    coefs = (st.k, st.two_a1, st.a2, q, cl, st.r2, src)

    def run_functional(step):
        u, old = F.pad(st.zeros(), (1, 1, 1, 1)), F.pad(st.zeros(), (1, 1, 1, 1))
        for n in range(args.steps):
            u, old = step(u, old, *coefs, st.drive_steps[n]), u
        return u[:, 1:-1, 1:-1]

    def run_in_place():
        lf = Leapfrog(st)
        for n in range(args.steps):
            lf.step(n)
        return lf.cur.v.inner

    with torch.no_grad():
        t0 = time.perf_counter()
        zero = F.pad(st.zeros(), (1, 1, 1, 1))
        compiled(zero, zero, *coefs, st.drive_steps[0])
        compile_s = time.perf_counter() - t0
        contenders = {"eager in-place": run_in_place, "eager functional": lambda: run_functional(_functional_step),
                      "compiled": lambda: run_functional(compiled)}
        times: dict[str, list[float]] = {k: [] for k in contenders}
        last = {}
        for _ in range(args.repeat):  # interleaved
            for name, run in contenders.items():
                t0 = time.process_time()
                last[name] = run()
                times[name].append((time.process_time() - t0) / args.steps * 1e6)
    ref = last["eager in-place"]
    print(f"wave step, vowel setup (batch 8, Kerr, float32), {args.threads} thread(s), {args.steps} steps x "
          f"{args.repeat}, CPU time per step; torch.compile first call {compile_s:.1f} s wall")
    print(f"{'step':18s} {'min us':>8s} {'median us':>10s} {'x in-place':>10s} {'max rel diff':>13s}")
    base = statistics.median(times["eager in-place"])
    for name, ts in times.items():
        diff = float((last[name] - ref).abs().max() / ref.abs().max())
        print(f"{name:18s} {min(ts):8.1f} {statistics.median(ts):10.1f} {statistics.median(ts) / base:10.2f} "
              f"{diff:13.2e}")
    per_step_gain = base - statistics.median(times["compiled"])
    if per_step_gain > 0:
        print(f"compilation pays back after {compile_s * 1e6 / per_step_gain:.0f} steps")
    else:
        print("compiled step is not faster than the eager in-place step: compilation never pays back")


if __name__ == "__main__":
    main()
