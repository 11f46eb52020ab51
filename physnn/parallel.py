"""DevicePool: one black-box device evaluated by many workers at once.

A :class:`DevicePool` is itself a :class:`physnn.Device` with the shapes and
controls of the device it runs, so it drops into a
:class:`~physnn.PhysicalLayer` or a training method unchanged. Each forward
call cuts the batch into chunks, runs chunk ``k`` on worker ``k % workers``,
and concatenates the outputs in order; results equal serial evaluation.

Workers, by ``backend``:

* ``"thread"`` (default): threads in this process, one device each. Right for
  instruments (the time is spent waiting on I/O) and torch simulations (torch
  releases the GIL).
* ``"process"``: local processes (spawned), one device each; a worker that
  dies is restarted and its chunk redone.
* ``"ray"`` (``pip install 'physnn[ray]'``): one Ray actor per worker, on a
  local instance (``ray.init()`` is called if needed) or a cluster. Pin a
  worker to the host wired to its instrument with a Ray custom resource
  (``resources=[{"scope_lab2": 1}, ...]``). Ray restarts a dead actor and
  retries its chunk (``max_restarts``).

Devices are built inside the workers from ``factory``: a zero-argument callable
(``functools.partial(VisaDevice, "TCPIP::...")``), one callable per worker (one
instrument each), or a :class:`~physnn.Device` instance, copied into every worker.
"""

from __future__ import annotations

import copy
import functools
import math
import multiprocessing as mp
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from multiprocessing.connection import wait
from typing import Any

import torch

from .device import Device
from .errors import ConfigurationError, DeviceConnectionError, DeviceTimeoutError

Factory = Callable[[], Device]
Job = tuple[torch.Tensor, dict[str, torch.Tensor]]
BACKENDS = ("thread", "process", "ray")


class DevicePool(Device):
    """Evaluate a black-box device on ``workers`` workers; itself a (black-box) :class:`~physnn.Device`.

    Args:
        factory: a :class:`~physnn.Device` (copied per worker), a zero-argument
            callable building one, or a sequence of such callables, one per worker.
        workers: number of workers (default: ``len(factory)`` for a sequence, else 2).
        backend: ``"thread"``, ``"process"`` or ``"ray"``.
        chunk_size: samples per device call (default: the batch split evenly over the workers).
        max_restarts: times a dead process or actor is restarted (its chunk redone) before the call fails.
        timeout_s: longest wait for one forward call, seconds (``None``: no limit).
        cpus_per_worker: Ray CPUs reserved per actor (fractions allowed).
        resources: Ray custom resources per worker (a list, one dict each), e.g. ``[{"scope_a": 1}]``.
        seed: worker ``i`` is seeded with ``seed + i`` (stochastic devices repeat under a seed).

    Shapes, controls, bounds, dtypes and ``stochastic`` are the workers'
    device's (all workers must agree). ``differentiable`` is False: use the
    ``twin``, ``zeroth_order`` or ``none`` routes.
    """

    differentiable = False

    def __init__(self, factory: Device | Factory | Sequence[Factory], *, workers: int | None = None,
                 backend: str = "thread", chunk_size: int | None = None, max_restarts: int = 3,
                 timeout_s: float | None = None, cpus_per_worker: float = 0.5,
                 resources: Sequence[Mapping[str, float]] | None = None, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        if backend not in BACKENDS:
            raise ConfigurationError(f"DevicePool backend must be one of {list(BACKENDS)}, got {backend!r}")
        factories = _factories(factory, workers)
        if chunk_size is not None and chunk_size < 1:
            raise ConfigurationError(f"DevicePool chunk_size must be >= 1 or None, got {chunk_size}")
        if resources is not None and len(resources) != len(factories):
            raise ConfigurationError(f"DevicePool got {len(resources)} resource sets for {len(factories)} workers")
        self.backend, self.chunk_size, self.timeout_s = backend, chunk_size, timeout_s
        self.workers = len(factories)
        if backend == "thread":
            self._pool: _Workers = _ThreadWorkers(factories)
        elif backend == "process":
            self._pool = _ProcessWorkers(factories, max_restarts)
        else:
            self._pool = _RayWorkers(factories, max_restarts, cpus_per_worker, resources)
        try:
            signatures = self._pool.signatures(timeout_s)
        except BaseException:
            self._pool.abort()
            raise
        if any(s != signatures[0] for s in signatures[1:]):
            self._pool.close()
            raise ConfigurationError(f"DevicePool workers built different devices: {signatures}")
        sig = signatures[0]
        self.name = f"pool({sig['name']}x{self.workers})"
        self.in_shape, self.out_shape, self.controls = sig["in_shape"], sig["out_shape"], sig["controls"]
        self.input_bounds, self.dtypes = sig["input_bounds"], sig["dtypes"]
        self.batched_controls, self.stochastic = sig["batched_controls"], sig["stochastic"]
        self.reseed(seed)

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        size = self.chunk_size or math.ceil(x.shape[0] / self.workers)
        cpu = x.detach().cpu()
        # (value on the CPU, per-sample?) once for the whole batch; each chunk slices it
        prepared = {name: (value.detach().cpu(), value.dim() > len(self.control(name).shape))
                    for name, value in controls.items()}
        jobs: list[Job] = []
        for start in range(0, x.shape[0], size):
            per = {name: value[start:start + size] if per_sample else value
                   for name, (value, per_sample) in prepared.items()}
            jobs.append((cpu[start:start + size], per))
        outputs = self._pool.run(jobs, self.timeout_s)
        return torch.cat(outputs).to(device=x.device, dtype=x.dtype)

    def reseed(self, seed: int | None = None) -> None:
        super().reseed(seed)
        pool = self.__dict__.get("_pool")  # absent while Device.__init__ seeds the pool itself
        if pool is not None:
            pool.reseed(self.seed)

    def sample_inputs(self, n: int, generator: torch.Generator | None = None,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return self._pool.sample_inputs(n, generator, dtype)

    def close(self) -> None:
        """Close every worker's device and stop the workers."""
        self._pool.close()


# ------------------------------------------------------------------ workers
class _Workers:
    """What the pool needs from a backend: signatures, run jobs in order, reseed, close."""

    def signatures(self, timeout_s: float | None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def run(self, jobs: list[Job], timeout_s: float | None) -> list[torch.Tensor]:
        raise NotImplementedError

    def reseed(self, seed: int | None) -> None:
        raise NotImplementedError

    def sample_inputs(self, n: int, generator: torch.Generator | None, dtype: torch.dtype) -> torch.Tensor:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Stop the workers after a failed start (some may never have come up)."""
        self.close()


class _ThreadWorkers(_Workers):
    def __init__(self, factories: list[Factory]) -> None:
        self.devices: list[Device] = []
        try:
            for f in factories:
                self.devices.append(f())
        except BaseException:
            for d in self.devices:  # the instruments opened before one failed
                d.close()
            raise
        self.executor = ThreadPoolExecutor(len(self.devices), thread_name_prefix="physnn-pool")
        self.closed = False

    def signatures(self, timeout_s: float | None) -> list[dict[str, Any]]:
        return [_signature(d) for d in self.devices]

    def run(self, jobs: list[Job], timeout_s: float | None) -> list[torch.Tensor]:
        def serve(w: int) -> list[torch.Tensor]:
            return [_call(self.devices[w], *job) for job in jobs[w::len(self.devices)]]

        futures = [self.executor.submit(serve, w) for w in range(min(len(jobs), len(self.devices)))]
        _, pending = wait_futures(futures, timeout=timeout_s)  # every worker is idle again before we go on
        if pending:
            raise _timeout(timeout_s)
        done = [f.result() for f in futures]
        return [done[k % len(self.devices)][k // len(self.devices)] for k in range(len(jobs))]

    def reseed(self, seed: int | None) -> None:
        for i, d in enumerate(self.devices):
            d.reseed(None if seed is None else seed + i)

    def sample_inputs(self, n: int, generator: torch.Generator | None, dtype: torch.dtype) -> torch.Tensor:
        return self.devices[0].sample_inputs(n, generator=generator, dtype=dtype)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.executor.shutdown(wait=True)
        for d in self.devices:
            d.close()


class _ProcessWorkers(_Workers):
    """Spawned processes, one device each, talking over pipes; a dead one is restarted and its job redone."""

    def __init__(self, factories: list[Factory], max_restarts: int) -> None:
        self.factories, self.max_restarts, self.restarts = factories, int(max_restarts), 0
        self.context = mp.get_context("spawn")
        self.procs: list[Any] = [None] * len(factories)
        self.conns: list[Any] = [None] * len(factories)
        self.seed: int | None = None
        self.closed = False
        for w in range(len(factories)):
            self._start(w)

    def _start(self, w: int) -> None:
        parent, child = self.context.Pipe()
        seed = None if self.seed is None else self.seed + w
        proc = self.context.Process(target=_process_main, args=(self.factories[w], child, seed), daemon=True,
                                    name=f"physnn-pool-{w}")
        proc.start()
        child.close()
        self.procs[w], self.conns[w] = proc, parent

    def _ask(self, w: int, message: tuple, timeout_s: float | None) -> Any:
        return self._exchange({w: [message]}, timeout_s)[w][0]

    def _exchange(self, queues: dict[int, list[tuple]], timeout_s: float | None) -> dict[int, list[Any]]:
        """Send each worker its messages one at a time; collect replies in order, restarting dead workers.

        A device error stops further sends but every busy worker is drained first, so no stale
        reply is left in a pipe; on timeout the busy workers are replaced for the same reason.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        replies: dict[int, list[Any]] = {w: [] for w in queues}
        busy: dict[Any, int] = {}
        failure: BaseException | None = None
        for w in queues:
            if queues[w]:
                self._send(w, queues[w][0], busy)
        while busy:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = wait(list(busy), timeout=left)
            if not ready:
                for w in busy.values():
                    self.procs[w].terminate()
                    self.procs[w].join(5)
                    self._start(w)
                raise _timeout(timeout_s)
            for conn in ready:
                w = busy.pop(conn)
                try:
                    status, value = conn.recv()
                except (EOFError, OSError):
                    self._restart(w)
                    self._send(w, queues[w][len(replies[w])], busy)
                    continue
                if status == "error":
                    failure = failure or value
                    continue
                replies[w].append(value)
                if failure is None and len(replies[w]) < len(queues[w]):
                    self._send(w, queues[w][len(replies[w])], busy)
        if failure is not None:
            raise failure
        return replies

    def _send(self, w: int, message: tuple, busy: dict[Any, int]) -> None:
        try:
            self.conns[w].send(message)
        except (BrokenPipeError, OSError):
            self._restart(w)
            self.conns[w].send(message)
        busy[self.conns[w]] = w

    def _restart(self, w: int) -> None:
        code = self.procs[w].exitcode if self.procs[w] is not None else None
        if self.restarts >= self.max_restarts:
            raise DeviceConnectionError(f"DevicePool worker {w} died (exit code {code}) and the pool already "
                                        f"restarted workers {self.restarts} time(s) (max_restarts={self.max_restarts})")
        self.restarts += 1
        self.procs[w].join(1)
        self._start(w)

    def signatures(self, timeout_s: float | None) -> list[dict[str, Any]]:
        replies = self._exchange({w: [("signature",)] for w in range(len(self.procs))}, timeout_s)
        return [replies[w][0] for w in range(len(self.procs))]

    def run(self, jobs: list[Job], timeout_s: float | None) -> list[torch.Tensor]:
        n = len(self.procs)
        replies = self._exchange({w: [("call", *job) for job in jobs[w::n]] for w in range(min(n, len(jobs)))},
                                 timeout_s)
        return [replies[k % n][k // n] for k in range(len(jobs))]

    def reseed(self, seed: int | None) -> None:
        self.seed = seed
        self._exchange({w: [("reseed", None if seed is None else seed + w)] for w in range(len(self.procs))}, None)

    def sample_inputs(self, n: int, generator: torch.Generator | None, dtype: torch.dtype) -> torch.Tensor:
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        return self._ask(0, ("sample_inputs", n, seed, dtype), None)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for conn, proc in zip(self.conns, self.procs):
            try:
                conn.send(("close",))
            except (BrokenPipeError, OSError):
                pass
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
            conn.close()


def _process_main(factory: Factory, conn: Any, seed: int | None) -> None:
    """A process worker: build the device, then answer messages until ``close``."""
    device = factory()
    if seed is not None:
        device.reseed(seed)
    while True:
        message = conn.recv()
        if message[0] == "close":
            device.close()
            conn.send(("ok", None))
            return
        try:
            conn.send(("ok", _handle(device, message)))
        except Exception as exc:  # noqa: BLE001 - the device's error travels back to the caller
            conn.send(("error", exc))


def _handle(device: Device, message: tuple) -> Any:
    kind, *args = message
    if kind == "signature":
        return _signature(device)
    if kind == "call":
        return _call(device, *args)
    if kind == "reseed":
        return device.reseed(args[0])
    n, seed, dtype = args
    return device.sample_inputs(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


class _RayWorkers(_Workers):
    """One Ray actor per worker; Ray restarts a dead actor and retries its chunk."""

    def __init__(self, factories: list[Factory], max_restarts: int, cpus: float,
                 resources: Sequence[Mapping[str, float]] | None) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ConfigurationError("DevicePool(backend='ray') needs Ray: pip install 'physnn[ray]'") from exc
        self.ray = ray
        if not ray.is_initialized():
            ray.init()
        actor = ray.remote(_RayActor)
        self.closed = False
        self.actors = [actor.options(num_cpus=cpus, resources=dict(resources[w]) if resources else None,
                                     max_restarts=max_restarts, max_task_retries=max_restarts).remote(f)
                       for w, f in enumerate(factories)]

    def _get(self, refs: list[Any], timeout_s: float | None) -> list[Any]:
        ray = self.ray
        try:
            return ray.get(refs, timeout=timeout_s)
        except ray.exceptions.GetTimeoutError as exc:
            raise _timeout(timeout_s, "(a worker may wait for CPUs or custom resources no node offers)") from exc
        except ray.exceptions.RayActorError as exc:
            raise DeviceConnectionError(f"DevicePool: a Ray worker died and could not be restarted: {exc}") from exc

    def signatures(self, timeout_s: float | None) -> list[dict[str, Any]]:
        return self._get([a.handle.remote(("signature",)) for a in self.actors], timeout_s)

    def run(self, jobs: list[Job], timeout_s: float | None) -> list[torch.Tensor]:
        n = len(self.actors)
        refs = [self.actors[k % n].handle.remote(("call", *job)) for k, job in enumerate(jobs)]
        return self._get(refs, timeout_s)

    def reseed(self, seed: int | None) -> None:
        self._get([a.handle.remote(("reseed", None if seed is None else seed + w))
                   for w, a in enumerate(self.actors)], None)

    def sample_inputs(self, n: int, generator: torch.Generator | None, dtype: torch.dtype) -> torch.Tensor:
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        return self._get([self.actors[0].handle.remote(("sample_inputs", n, seed, dtype))], None)[0]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._get([a.close.remote() for a in self.actors], 30)
        self.abort()

    def abort(self) -> None:
        self.closed = True
        for a in self.actors:
            self.ray.kill(a)


class _RayActor:
    """The body of a Ray worker: one device, built on the worker's host."""

    def __init__(self, factory: Factory) -> None:
        self.device = factory()

    def handle(self, message: tuple) -> Any:
        return _handle(self.device, message)

    def close(self) -> None:
        self.device.close()


# ------------------------------------------------------------------ helpers
def _factories(factory: Device | Factory | Sequence[Factory], workers: int | None) -> list[Factory]:
    if workers is not None and workers < 1:
        raise ConfigurationError(f"DevicePool needs workers >= 1, got {workers}")
    if isinstance(factory, Device):
        return [functools.partial(copy.deepcopy, factory)] * (workers or 2)
    if callable(factory):
        return [factory] * (workers or 2)
    factories = list(factory)
    if workers is not None and workers != len(factories):
        raise ConfigurationError(f"DevicePool got {len(factories)} factories but workers={workers}")
    if not factories or not all(callable(f) for f in factories):
        raise ConfigurationError("DevicePool needs a Device, a callable returning one, or a list of such callables")
    return factories


def _signature(device: Device) -> dict[str, Any]:
    return {"name": device.name, "in_shape": tuple(device.in_shape), "out_shape": tuple(device.out_shape),
            "controls": tuple(device.controls), "input_bounds": device.input_bounds, "dtypes": tuple(device.dtypes),
            "batched_controls": device.batched_controls, "stochastic": device.stochastic}


def _call(device: Device, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return device(x, controls).cpu()


def _timeout(timeout_s: float | None, hint: str = "") -> DeviceTimeoutError:
    return DeviceTimeoutError(f"DevicePool: workers did not finish within timeout_s={timeout_s} s {hint}".rstrip())
