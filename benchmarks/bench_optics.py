"""Speed and memory of the optical devices against plain torch references, in the same run.

Scattering (ScatteringMedium, phase SLM, ideal camera, batch 64, float32; forward+backward of
``sum(y)`` with respect to the drive and the exposure):

* ``structured-64k``: the issue's size, 65,536 SLM pixels -> 4,096 camera pixels, FFT-structured
  transmission matrix (a dense complex64 one would be 2 GiB);
* ``structured-8k`` and ``dense-8k``: 8,192 -> 4,096 with the structured and the dense Gaussian
  matrix (256 MiB);
* ``torch-matmul-8k``: the reference, a plain torch complex matmul ``|exp(i pi x) @ T^T|^2`` with the
  same dense 8,192 x 4,096 matrix, no device around it.

Each case runs in fresh subprocesses, round by round in turn (``--rounds``), ``--repeat`` timed passes
each after one warm-up pass, on ``--threads`` threads (default 1: ``time.process_time`` is then the
single-thread cost). The table gives min and median CPU time per pass, the ratio of the median to
the reference's, and the peak memory: VmHWM minus VmRSS just before the first pass (what the pass
adds; the matrix itself is built before).

    python benchmarks/bench_optics.py [--rounds 3 --repeat 3 --threads 1]
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

BATCH = 64


def _scattering(n_slm: int, n_camera: int, transmission: str) -> Callable[[], None]:
    import torch

    from physnn.devices.optics import ScatteringMedium

    device = ScatteringMedium(n_slm, n_camera, transmission=transmission, noise="none", bits=None)
    x = torch.rand(BATCH, n_slm, generator=torch.Generator().manual_seed(0), requires_grad=True)
    exposure = torch.tensor(0.1, requires_grad=True)  # ms: 2 % of full well per unit intensity, no clipping

    def run() -> None:
        device(x, {"exposure": exposure}).sum().backward()
    return run


def _torch_matmul(n_slm: int, n_camera: int) -> Callable[[], None]:
    import torch

    g = torch.Generator().manual_seed(0)
    tm = torch.complex(*torch.randn(2, n_camera, n_slm, generator=g)) * math.sqrt(0.5 / n_slm)
    x = torch.rand(BATCH, n_slm, generator=g, requires_grad=True)

    def run() -> None:
        field = torch.polar(torch.ones_like(x), math.pi * x) @ tm.T
        (0.02 * torch.view_as_real(field).square().sum(-1)).sum().backward()
    return run


CASES: dict[str, Callable[[], Callable[[], None]]] = {
    "structured-64k": lambda: _scattering(65536, 4096, "structured"),
    "structured-8k": lambda: _scattering(8192, 4096, "structured"),
    "dense-8k": lambda: _scattering(8192, 4096, "gaussian"),
    "torch-matmul-8k": lambda: _torch_matmul(8192, 4096),
}
REFERENCE = "torch-matmul-8k"


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _child(case: str, repeat: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    run = CASES[case]()
    before = _status_kib("VmRSS")
    run()  # warm-up (and the peak of the first pass)
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        run()
        times.append(time.process_time() - t0)
    print(json.dumps({"times": times, "peak_mib": (_status_kib("VmHWM") - before) / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.repeat, args.threads)
        return
    times: dict[str, list[float]] = {c: [] for c in args.cases}
    peaks: dict[str, float] = {c: 0.0 for c in args.cases}
    for _ in range(args.rounds):
        for case in args.cases:
            out = subprocess.run([sys.executable, __file__, "--child", case, "--repeat", str(args.repeat),
                                  "--threads", str(args.threads)], capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            times[case] += result["times"]
            peaks[case] = max(peaks[case], result["peak_mib"])
    reference = statistics.median(times[REFERENCE]) if REFERENCE in times else math.nan
    print(f"batch {BATCH}, {args.threads} thread(s), {args.rounds} rounds x {args.repeat} passes; "
          "CPU time per forward+backward")
    print(f"{'case':<18}{'min s':>9}{'median s':>10}{'/ ' + REFERENCE:>22}{'peak MiB':>10}")
    for case in args.cases:
        median = statistics.median(times[case])
        print(f"{case:<18}{min(times[case]):>9.3f}{median:>10.3f}{median / reference:>22.2f}{peaks[case]:>10.0f}")


if __name__ == "__main__":
    main()
