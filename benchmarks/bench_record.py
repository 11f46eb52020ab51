"""Cost of recording: a ~1 ms device call, bare vs wrapped in :class:`physnn.devices.Recorded`.

The device is a :class:`~physnn.devices.adapters.CallableDevice` doing real
work (a small MLP-like chain of matmuls on a batch of 32 drives of 64 values by default,
one control of ``width`` values), single-threaded. Contenders are interleaved, each
round times ``--calls`` calls of each with ``time.process_time`` (CPU time of
this process, kernel time of the SQLite writes included) and with wall time;
the record is a fresh SQLite file in WAL mode, ``synchronous=NORMAL``, one
committed transaction per call. A third contender times the SQLite write of a
call alone (same tensors), a fourth a bare call followed by ``time.sleep(0)``:
on a busy shared host, giving up the CPU (as the write's system calls may)
lets other processes evict the device's working set from the caches, which
slows the next call; that contender measures this effect apart from
recording. Prints min and median per call, the overhead
``recorded / bare - 1`` and the write's cost as a fraction of a bare call.
``--kind sleep`` makes the 1 ms an instrument's wait (compare wall time).

    .venv/bin/python benchmarks/bench_record.py [--rounds 15] [--calls 100] [--batch 32] [--width 64] [--kind sleep]
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

HIDDEN = 192


def make_device(depth: int, width: int) -> CallableDevice:
    """A deterministic device ``(B, width) -> (B, width)`` whose call does ``depth`` (B, HIDDEN) x (HIDDEN, HIDDEN)
    matmuls."""
    g = torch.Generator().manual_seed(0)
    w_in = torch.randn(width, HIDDEN, generator=g) / width ** 0.5
    ws = [torch.randn(HIDDEN, HIDDEN, generator=g) / HIDDEN ** 0.5 for _ in range(depth)]
    w_out = torch.randn(HIDDEN, width, generator=g) / HIDDEN ** 0.5

    def physics(x: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        h = torch.tanh((x + phase) @ w_in)
        for w in ws:
            h = torch.tanh(h @ w)
        return h @ w_out

    return CallableDevice(physics, (width,), (width,), controls=(Control("phase", (width,), -1.0, 1.0, "rad"),),
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
        device = make_device(depth, x.shape[1])
        cost = min(per_call(device, x, phase, 50)[0] for _ in range(3))
        if cost >= target or depth >= 256:
            return device
        depth = max(depth + 1, int(depth * target / max(cost, 1e-6)))


def sleeper(width: int, seconds: float = 1e-3) -> CallableDevice:
    """A device whose call waits ``seconds`` (an instrument's acquisition) and returns ``x * phase``."""
    def acquire(x: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        time.sleep(seconds)
        return x * phase

    return CallableDevice(acquire, (width,), (width,), controls=(Control("phase", (width,), -1.0, 1.0, "rad"),),
                          input_bounds=(-1.0, 1.0), name="sleep-1ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32, help="drives per call")
    parser.add_argument("--width", type=int, default=64, help="values per drive and per output")
    parser.add_argument("--kind", choices=("compute", "sleep"), default="compute",
                        help="the 1 ms is CPU work (compare CPU time) or waiting on an instrument (compare wall time)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    x = 2 * torch.rand(args.batch, args.width, generator=g) - 1
    phase = 0.5 * torch.rand(args.width, generator=g)
    bare = calibrate(x, phase) if args.kind == "compute" else sleeper(args.width)
    with tempfile.TemporaryDirectory() as tmp:
        recorded = Recorded(bare, Path(tmp) / "bench.sqlite")
        per_call(recorded, x, phase, 10)  # warm up: creates the file, stores the identity
        y, device_id = bare(x, {"phase": phase}), recorded.device_id

        def write_only(x: torch.Tensor, controls: dict[str, torch.Tensor]) -> None:
            recorded.writer.add_call(device_id, 0.0, 0.0, x, controls, y)

        def bare_then_yield(x: torch.Tensor, controls: dict[str, torch.Tensor]) -> None:
            bare(x, controls)
            time.sleep(0)  # gives up the CPU, as a system call may: on a busy host others run, caches go cold

        contenders = [("bare", bare), ("recorded", recorded), ("SQLite write alone", write_only),
                      ("bare + sleep(0)", bare_then_yield)]
        times: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in contenders}
        for k in range(args.rounds):
            for name, device in contenders[::1 if k % 2 else -1]:
                times[name].append(per_call(device, x, phase, args.calls))
        recorded.writer.close()
    print(f"device: {bare.name}, batch {args.batch} x {args.width} float32 in and out ({8 * x.numel()} bytes per "
          f"call), {args.rounds} rounds x {args.calls} calls, interleaved")
    for clock, k in (("cpu (process_time)", 0), ("wall (perf_counter)", 1)):
        b = [t[k] for t in times["bare"]]
        print(f"{clock}: bare min {min(b) * 1e3:.3f} ms, median {statistics.median(b) * 1e3:.3f} ms")
        for name in ("recorded", "SQLite write alone", "bare + sleep(0)"):
            r = [t[k] for t in times[name]]
            alone = name == "SQLite write alone"  # a cost of its own, not bare + extra
            extra = (min(r) / min(b) - (not alone), statistics.median(r) / statistics.median(b) - (not alone))
            print(f"  {name}: min {min(r) * 1e3:.3f} ms, median {statistics.median(r) * 1e3:.3f} ms; "
                  f"{'cost' if alone else 'overhead'} vs bare: min {extra[0]:+.1%}, median {extra[1]:+.1%}")


if __name__ == "__main__":
    main()
