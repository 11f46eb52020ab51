"""All cores for the compiled kernels: independent rows in blocks on ``torch.get_num_threads()`` threads.

A kernel whose rows (axis 0 of its batch arrays) are independent is called once per block of
rows, each block on its own thread; the kernels are compiled with ``nogil=True``, so the blocks
run in parallel. Each row is computed by the same compiled code whatever the blocks, so results
are bit-identical for every thread count.

The blocks run on torch's own OpenMP team where torch uses libgomp (Linux wheels): after each
parallel torch op, its idle OpenMP workers spin for milliseconds (libgomp's default wait policy)
on the cores our blocks need, so a separate pool ran three busy threads on two cores after every
loss or gradient op (the diode clipper got 1.1-1.4x from 2 threads). Handing the blocks to that
team (``GOMP_parallel`` with a callback per block) puts them on the spinning workers instead.
Elsewhere they run on a pool of plain Python threads, which sleep when idle. On an
oversubscribed CPU a region of the team is slow to start (a no-op region: median 15-24 ms at
load 17 on 2 cores, the pool 22-31 us), so small calls stay on the calling thread
(``over_rows(min_size=)``) and callers that meet many times per call use :func:`run_on_pool`.

Not numba's ``parallel=True``: its OpenMP layer loads a second OpenMP runtime next to torch's
(two pools whose idle threads spin, each taking cores from the other), and launching it reset
``torch.get_num_threads()`` to the CPU count.
"""

from __future__ import annotations

import ctypes
import functools
import inspect
import itertools
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


#: Run the blocks on torch's OpenMP team where there is one (else always on the thread pool; the benchmark compares).
USE_TORCH_OPENMP = True
_BODY = ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # void (*)(void *), the body of a GOMP_parallel region


class _OpenMPTeam:
    """torch's libgomp: runs each job on its own OpenMP thread of one parallel region."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._parallel = lib.GOMP_parallel
        self._parallel.argtypes = [_BODY, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        self._parallel.restype = None
        self.pid = os.getpid()  # a forked child does not use it: libgomp's pool does not survive fork

    def run(self, jobs: list[Callable[[], None]]) -> None:
        """Run every job once, in parallel; re-raise the first error after all have finished."""
        order = itertools.count()  # which job a thread takes: atomic under the GIL, no call that releases it
        done = [False] * len(jobs)
        errors: list[BaseException] = []

        def body(_: int | None) -> None:
            i = next(order)
            if i < len(jobs):
                done[i] = True
                try:
                    jobs[i]()
                except BaseException as err:  # noqa: BLE001 - an error cannot cross the C frame: re-raised below
                    errors.append(err)

        self._parallel(_BODY(body), None, len(jobs), 0)  # ctypes releases the GIL while the region runs
        for i, job in enumerate(jobs):  # the runtime may give fewer threads (OMP_DYNAMIC, thread limits)
            if not done[i]:
                job()
        if errors:
            raise errors[0]


@functools.cache
def _torch_openmp() -> _OpenMPTeam | None:
    """torch's OpenMP runtime when it is a libgomp shipped with torch and loaded in this process, else None."""
    if not os.path.exists("/proc/self/maps") or "OpenMP" not in torch.__config__.parallel_info():
        return None
    home = os.path.dirname(torch.__file__)
    with open("/proc/self/maps") as maps:
        paths = {line.split()[-1] for line in maps if "libgomp" in line}
    ours = sorted(p for p in paths if p.startswith(home))
    return _OpenMPTeam(ctypes.CDLL(ours[0])) if ours else None


def _run_all(jobs: list[Callable[[], None]]) -> None:
    """Run the jobs in parallel, each on its own thread (torch's OpenMP team, else the pool)."""
    team = _torch_openmp() if USE_TORCH_OPENMP else None
    if team is not None and team.pid == os.getpid():
        team.run(jobs)
        return
    run_on_pool(jobs)


def run_on_pool(jobs: list[Callable[[], None]]) -> None:
    """Run the jobs in parallel on the pool of plain Python threads, the first on the calling thread.
    For callers that meet many times per call (the wave kernels' row blocks): on an oversubscribed
    CPU a region of torch's OpenMP team took ~30 ms (its workers spin, then sleep), a pool call ~0.5 ms."""
    futures = [_pool().submit(job) for job in jobs[1:]]
    try:
        jobs[0]()
    finally:  # never return while a block still writes
        for f in futures:
            f.result()


def row_blocks(rows: int, parts: int, align: int = 1) -> list[tuple[int, int]]:
    """At most ``parts`` contiguous ``(start, stop)`` blocks covering ``range(rows)``, as even as
    possible, with inner boundaries on multiples of ``align``; no empty block."""
    units = -(-rows // align)
    parts = max(1, min(parts, units))
    edges = [min(rows, align * (units * i // parts)) for i in range(parts + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def over_rows(*batched: str, align: int = 1, min_size: int = 0) -> Callable[[Any], Callable[..., None]]:
    """Decorate a kernel (writing its outputs in place) whose rows are independent.

    ``batched`` names the arguments whose axis 0 is the row (inputs and outputs alike); the
    others are passed whole to every block. ``align``: rows a block starts on a multiple of
    (a kernel that pairs rows keeps its pairs). ``min_size``: a call whose largest batched
    array has fewer elements runs on the calling thread (waking others would cost more).
    """

    def wrap(kernel: Any) -> Callable[..., None]:
        names = list(inspect.signature(getattr(kernel, "py_func", kernel)).parameters)
        where = frozenset(names.index(n) for n in batched)
        first = min(where)

        @functools.wraps(getattr(kernel, "py_func", kernel))
        def call(*args: Any) -> None:
            small = min_size > 0 and max(args[i].size for i in where) < min_size
            blocks = row_blocks(len(args[first]), 1 if small else num_threads(), align)
            if len(blocks) == 1:
                kernel(*args)
                return

            def block(start: int, stop: int) -> Callable[[], None]:
                return lambda: kernel(*(a[start:stop] if i in where else a for i, a in enumerate(args)))

            _run_all([block(*b) for b in blocks])

        return call

    return wrap
