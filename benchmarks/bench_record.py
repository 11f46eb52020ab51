"""Cost of recording: a ~1 ms device call, bare vs wrapped in :class:`physnn.devices.Recorded`.

The device is a :class:`~physnn.devices.adapters.CallableDevice` doing real
work (a small MLP-like chain of matmuls on a batch of 32 drives of 64 values,
one 64-element control), single-threaded. Contenders are interleaved, each
round times ``--calls`` calls of each with ``time.process_time`` (CPU time of
this process, kernel time of the SQLite writes included) and with wall time;
the record is a fresh SQLite file in WAL mode, ``synchronous=NORMAL``, one
committed transaction per call. Prints min and median per call and the
overhead ratio ``recorded / bare - 1``.

    .venv/bin/python benchmarks/bench_record.py [--rounds 15] [--calls 100]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from physnn.device import Control
from physnn.devices import Recorded
from physnn.devices.adapters import CallableDevice

D, HIDDEN, BATCH = 64, 192, 32


def make_device(depth: int) -> CallableDevice:
    """A deterministic device whose call does ``depth`` (B, HIDDEN) x (HIDDEN, HIDDEN) matmuls."""
    g = torch.Generator().manual_seed(0)
    w_in = torch.randn(D, HIDDEN, generator=g) / D ** 0.5
    ws = [torch.randn(HIDDEN, HIDDEN, generator=g) / HIDDEN ** 0.5 for _ in range(depth)]
    w_out = torch.randn(HIDDEN, D, generator=g) / HIDDEN ** 0.5

    def physics(x: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        h = torch.tanh((x + phase) @ w_in)
        for w in ws:
            h = torch.tanh(h @ w)
        return h @ w_out

    return CallableDevice(physics, (D,), (D,), controls=(Control("phase", (D,), -1.0, 1.0, "rad"),),
                          input_bounds=(-1.0, 1.0), name="matmul-chain")


def per_call(device: torch.nn.Module, x: torch.Tensor, phase: torch.Tensor, calls: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per call over ``calls`` calls."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        device(x, {"phase": phase})
    return (time.process_time() - cpu) / calls, (time.perf_counter() - wall) / calls


def calibrate(x: torch.Tensor, phase: torch.Tensor, target: float = 1e-3) -> CallableDevice:
    """The device whose bare call takes about ``target`` CPU seconds."""
    depth = 1
    while True:
        device = make_device(depth)
        cost = min(per_call(device, x, phase, 50)[0] for _ in range(3))
        if cost >= target or depth >= 256:
            return device
        depth = max(depth + 1, int(depth * target / max(cost, 1e-6)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    x = 2 * torch.rand(BATCH, D, generator=g) - 1
    phase = 0.5 * torch.rand(D, generator=g)
    bare = calibrate(x, phase)
    with tempfile.TemporaryDirectory() as tmp:
        recorded = Recorded(bare, Path(tmp) / "bench.sqlite")
        per_call(recorded, x, phase, 10)  # warm up: creates the file, stores the identity
        times: dict[str, list[tuple[float, float]]] = {"bare": [], "recorded": []}
        for _ in range(args.rounds):
            for name, device in (("bare", bare), ("recorded", recorded)):
                times[name].append(per_call(device, x, phase, args.calls))
        recorded.writer.close()
    print(f"device: {bare.name}, batch {BATCH} x {D} float32, {args.rounds} rounds x {args.calls} calls, interleaved")
    for clock, k in (("cpu (process_time)", 0), ("wall (perf_counter)", 1)):
        b = [t[k] for t in times["bare"]]
        r = [t[k] for t in times["recorded"]]
        print(f"{clock}: bare min {min(b) * 1e3:.3f} ms median {statistics.median(b) * 1e3:.3f} ms | "
              f"recorded min {min(r) * 1e3:.3f} ms median {statistics.median(r) * 1e3:.3f} ms | overhead "
              f"min {min(r) / min(b) - 1:+.1%} median {statistics.median(r) / statistics.median(b) - 1:+.1%}")


if __name__ == "__main__":
    main()
