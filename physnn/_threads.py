"""All cores for the compiled kernels: independent rows in blocks on ``torch.get_num_threads()`` threads.

A kernel whose rows (axis 0 of its batch arrays) are independent is called once per block of
rows, each block on its own thread; the kernels are compiled with ``nogil=True``, so the blocks
run in parallel. Each row is computed by the same compiled code whatever the blocks, so results
are bit-identical for every thread count.

Plain Python threads, not numba's ``parallel=True``: numba's OpenMP layer loads a second
OpenMP runtime next to torch's (two pools whose idle threads spin for milliseconds, each taking
cores from the other), and launching it reset ``torch.get_num_threads()`` to the CPU count.
These threads sleep when idle and leave torch's settings alone.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

_POOL: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool): a forked child makes its own


def _cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def num_threads() -> int:
    """Threads the kernels use: ``torch.get_num_threads()``, at most the number of CPUs."""
    return max(1, min(torch.get_num_threads(), _cpus()))


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():
        _POOL = (os.getpid(), ThreadPoolExecutor(_cpus(), thread_name_prefix="physnn-kernel"))
    return _POOL[1]


def row_blocks(rows: int, parts: int, align: int = 1) -> list[tuple[int, int]]:
    """At most ``parts`` contiguous ``(start, stop)`` blocks covering ``range(rows)``, as even as
    possible, with inner boundaries on multiples of ``align``; no empty block."""
    units = -(-rows // align)
    parts = max(1, min(parts, units))
    edges = [min(rows, align * (units * i // parts)) for i in range(parts + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def over_rows(*batched: str, align: int = 1) -> Callable[[Any], Callable[..., None]]:
    """Decorate a kernel (writing its outputs in place) whose rows are independent.

    ``batched`` names the arguments whose axis 0 is the row (inputs and outputs alike); the
    others are passed whole to every block. ``align``: rows a block starts on a multiple of
    (a kernel that pairs rows keeps its pairs).
    """

    def wrap(kernel: Any) -> Callable[..., None]:
        names = list(inspect.signature(getattr(kernel, "py_func", kernel)).parameters)
        where = frozenset(names.index(n) for n in batched)
        first = min(where)

        @functools.wraps(getattr(kernel, "py_func", kernel))
        def call(*args: Any) -> None:
            blocks = row_blocks(len(args[first]), num_threads(), align)
            if len(blocks) == 1:
                kernel(*args)
                return

            def block(start: int, stop: int) -> None:
                kernel(*(a[start:stop] if i in where else a for i, a in enumerate(args)))

            futures = [_pool().submit(block, *b) for b in blocks[1:]]
            try:
                block(*blocks[0])
            finally:  # never return while a block still writes
                for f in futures:
                    f.result()

        return call

    return wrap
