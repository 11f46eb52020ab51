"""Throughput of DevicePool with a slow device: 1, 2 and 4 workers, threads, processes and Ray.

Run: ``python benchmarks/bench_pool.py [--batch 16] [--latency 0.05] [--repeats 3] [--backends thread,process,ray]``.
The device measures one sample at a time and each measurement takes
``--latency`` seconds (like an instrument that plays and records one drive per
trigger), so serial evaluation of a batch of B costs ``B * latency``. Prints
the median seconds per batch, samples per second, and the speed-up over one
worker of the same backend. Worker start-up (process spawn, Ray actors) is not
timed. Ray runs on a local instance with 2 CPUs (actors reserve 0.25 CPU each);
it is skipped when Ray is not installed.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import statistics
import time

import numpy as np
import torch

from physnn.devices.adapters import CallableDevice
from physnn.parallel import DevicePool


def measure_one(x: np.ndarray, *, latency: float) -> np.ndarray:
    """One measurement: ``latency`` seconds for a (4,) drive."""
    time.sleep(latency)
    return np.tanh(x)


def slow_device(latency: float) -> CallableDevice:
    return CallableDevice(functools.partial(measure_one, latency=latency), (4,), (4,), backend="numpy",
                          per_sample=True, name="slow")


def seconds_per_batch(pool: DevicePool, x: torch.Tensor, repeats: int) -> float:
    pool(x)  # warm-up: workers built, first call paid
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        y = pool(x)
        times.append(time.perf_counter() - start)
    assert torch.allclose(y, torch.tanh(x)), "pooled results differ from serial evaluation"
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per measured sample")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="thread,process,ray")
    args = parser.parse_args()
    x = torch.rand(args.batch, 4) * 2 - 1
    factory = functools.partial(slow_device, args.latency)
    backends = args.backends.split(",")
    if "ray" in backends:
        try:
            import ray
        except ImportError:
            print("ray: not installed (pip install 'physnn[ray]'), skipped")
            backends.remove("ray")
        else:
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                     _node_ip_address="127.0.0.1")
    print(f"DevicePool, batch {args.batch}, {args.latency * 1000:g} ms per sample "
          f"(serial: {args.batch * args.latency:.2f} s per batch), median of {args.repeats}")
    print(f"{'backend':8} {'workers':>7} {'s/batch':>8} {'samples/s':>10} {'speed-up':>8}")
    for backend in backends:
        base = None
        for workers in (1, 2, 4):
            options = {"cpus_per_worker": 0.25} if backend == "ray" else {}
            with DevicePool(factory, workers=workers, backend=backend, **options) as pool:
                t = seconds_per_batch(pool, x, args.repeats)
            base = base or t
            print(f"{backend:8} {workers:7d} {t:8.3f} {args.batch / t:10.1f} {base / t:7.2f}x")
    if "ray" in backends:
        ray.shutdown()


if __name__ == "__main__":
    main()
