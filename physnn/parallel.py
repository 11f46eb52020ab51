"""DevicePool: one black-box device evaluated by many workers at once.

A :class:`DevicePool` is itself a :class:`physnn.Device` with the shapes and
controls of the device it runs, so it drops into a
:class:`~physnn.PhysicalLayer` or a training method unchanged. Each forward
call cuts the batch into chunks, runs chunk ``k`` on worker ``k % workers``,
and concatenates the outputs in order; results equal serial evaluation.

Workers, by ``backend``:

* ``"thread"`` (default): daemon threads in this process, one device each.
  Right for instruments (the time is spent waiting on I/O) and torch
  simulations (torch releases the GIL).
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

A pool never hangs: a worker still busy when ``timeout_s`` runs out is stopped
(its process or actor killed; a thread, which cannot be killed, is abandoned:
it closes its device when the hung call returns and never keeps the interpreter
from exiting) and is rebuilt from its factory at the next call; if the rebuild
fails the call raises :class:`~physnn.errors.DeviceUnavailableError`. Start-up
has its own limit, ``start_timeout_s``; a worker whose factory raises reports
that exception at once (with the worker's traceback), without retries.

A pool refuses to fan one exclusive resource (:meth:`Device.exclusive_resources`,
e.g. an instrument address) out to several workers: with one factory given for
all workers, worker 0 is built first and the pool refuses before opening
further sessions.
"""

from __future__ import annotations

import copy
import functools
import math
import multiprocessing as mp
import pickle
import queue
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from multiprocessing.connection import wait
from typing import Any

import torch

from .device import Device
from .errors import (
    ConfigurationError,
    DeviceBusyError,
    DeviceConnectionError,
    DeviceTimeoutError,
    DeviceUnavailableError,
)

Factory = Callable[[], Device]
Job = tuple[torch.Tensor, dict[str, torch.Tensor]]
Signature = dict[str, Any]
Outcome = Any  # a worker's reply, or the exception it raised
BACKENDS = ("thread", "process", "ray")
CLOSE_TIMEOUT_S = 5.0  # longest wait for the workers to close their devices before they are abandoned or killed
ONE_PER_INSTRUMENT = ("One instrument session serves one worker: give one factory per instrument (a list of "
                      "factories), or use an instrument profile that declares independent channels.")


class DevicePool(Device):
    """Evaluate a black-box device on ``workers`` workers; itself a (black-box) :class:`~physnn.Device`.

    Args:
        factory: a :class:`~physnn.Device` (copied per worker), a zero-argument
            callable building one, or a sequence of such callables, one per worker.
        workers: number of workers (default: ``len(factory)`` for a sequence, else 2).
        backend: ``"thread"``, ``"process"`` or ``"ray"``.
        chunk_size: samples per device call (default: the batch split evenly over the workers).
        max_restarts: times a process or actor that dies mid-call is restarted (its chunk redone) before the
            call fails. A factory that raises at start-up is reported at once, never retried.
        timeout_s: longest wait for one forward call, seconds (``None``: no limit). Workers still busy then are
            stopped and rebuilt at the next call.
        start_timeout_s: longest wait for the workers to build their devices, seconds (``None``: no limit).
        cpus_per_worker: Ray CPUs reserved per actor (fractions allowed).
        resources: Ray custom resources per worker (a list, one dict each), e.g. ``[{"scope_a": 1}]``.
        seed: worker ``i`` is seeded with ``seed + i`` (stochastic devices repeat under a seed).

    Shapes, controls, bounds, dtypes and ``stochastic`` are the workers'
    device's (all workers must agree). ``differentiable`` is False: use the
    ``twin``, ``zeroth_order`` or ``none`` routes.

    Raises:
        ConfigurationError: the workers built different devices, or would share an exclusive resource (two
            workers report the same :meth:`~physnn.Device.exclusive_resources`, or a worker's instrument was
            busy while other workers of the pool were up).
    """

    differentiable = False

    def __init__(self, factory: Device | Factory | Sequence[Factory], *, workers: int | None = None,
                 backend: str = "thread", chunk_size: int | None = None, max_restarts: int = 3,
                 timeout_s: float | None = None, start_timeout_s: float | None = 60.0, cpus_per_worker: float = 0.5,
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
            self._pool: _Workers = _ThreadWorkers(factories, start_timeout_s)
        elif backend == "process":
            self._pool = _ProcessWorkers(factories, start_timeout_s, max_restarts)
        else:
            self._pool = _RayWorkers(factories, start_timeout_s, max_restarts, cpus_per_worker, resources)
        try:
            sig = _start(self._pool)
        except BaseException:
            self._pool.abort()
            raise
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
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        return self._pool.exchange({0: [("sample_inputs", n, seed, dtype)]}, None)[0][0]

    def exclusive_resources(self) -> tuple[str, ...]:
        """The workers' exclusive resources (a pool of pools cannot share them either)."""
        return self._pool.resources

    def close(self) -> None:
        """Close every worker's device and stop the workers (at most ``CLOSE_TIMEOUT_S`` s; then killed/abandoned)."""
        self._pool.close()


# ------------------------------------------------------------------ start-up checks
def _start(pool: _Workers) -> Signature:
    """Build every worker's device; refuse different devices and shared exclusive resources. Returns the signature.

    With one factory replicated over workers placed alike, worker 0 is built alone first: if its device holds
    an exclusive resource the pool refuses before the other workers open sessions on it.
    """
    factories, n = pool.factories, len(pool.factories)
    replicas = [w for w in range(n) if factories[w] is factories[0] and pool.placement(w) == pool.placement(0)]
    signatures = _started(pool, [0] if len(replicas) > 1 else list(range(n)))
    _refuse_shared({w: signatures[0]["exclusive_resources"] for w in replicas})
    signatures.update(_started(pool, [w for w in range(n) if w not in signatures]))
    _refuse_shared({w: s["exclusive_resources"] for w, s in signatures.items()})
    plain = [{k: v for k, v in signatures[w].items() if k != "exclusive_resources"} for w in range(n)]
    if any(s != plain[0] for s in plain[1:]):
        raise ConfigurationError(f"DevicePool workers built different devices: {plain}")
    pool.resources = tuple(r for w in range(n) for r in signatures[w]["exclusive_resources"])
    return plain[0]


def _started(pool: _Workers, ws: list[int]) -> dict[int, Signature]:
    """Start workers ``ws``; raise the first one's start-up error (a busy instrument as a ConfigurationError)."""
    outcomes = pool.start(ws) if ws else {}
    for w in ws:
        error = outcomes[w]
        if isinstance(error, DeviceBusyError) and len(pool.factories) > 1:
            others = [v for v in range(len(pool.factories)) if v != w]
            raise ConfigurationError(f"DevicePool worker {w} found its instrument held by another session while "
                                     f"workers {others} of the pool were starting or running ({error}). "
                                     f"{ONE_PER_INSTRUMENT}") from error
        if isinstance(error, BaseException):
            raise error
    return outcomes


def _refuse_shared(held: dict[int, tuple[str, ...]]) -> None:
    """Raise ConfigurationError when one exclusive resource appears on several workers."""
    holders: dict[str, list[int]] = {}
    for w, resources in sorted(held.items()):
        for resource in resources:
            holders.setdefault(resource, []).append(w)
    for resource, ws in holders.items():
        if len(ws) > 1:
            raise ConfigurationError(f"DevicePool would fan the exclusive resource {resource!r} out to workers "
                                     f"{ws}. {ONE_PER_INSTRUMENT}")


# ------------------------------------------------------------------ workers
class _Workers:
    """What the pool needs from a backend: start workers, exchange messages in order, close.

    A worker stopped after a timeout leaves its slot empty (``missing``) and is rebuilt before the next exchange.
    """

    def __init__(self, factories: list[Factory], start_timeout_s: float | None) -> None:
        self.factories, self.start_timeout_s = factories, start_timeout_s
        self.seed: int | None = None
        self.resources: tuple[str, ...] = ()
        self.closed = False

    def start(self, ws: list[int]) -> dict[int, Outcome]:
        """Build the devices of workers ``ws``: each one's signature, or the exception its start-up raised."""
        raise NotImplementedError

    def missing(self) -> list[int]:
        """Workers stopped after a timeout (or a failed rebuild), to be rebuilt."""
        raise NotImplementedError

    def placement(self, w: int) -> Any:
        """Where worker ``w`` runs: workers placed alike on one factory open the same instrument."""
        return None

    def _exchange(self, queues: dict[int, list[tuple]], timeout_s: float | None) -> dict[int, list[Any]]:
        """Send each worker its messages, in order; return the replies; stop workers still busy at the timeout."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Stop the workers after a failed start (some may never have come up)."""
        self.close()

    def exchange(self, queues: dict[int, list[tuple]], timeout_s: float | None) -> dict[int, list[Any]]:
        """Rebuild stopped workers, then :meth:`_exchange`."""
        if self.closed:
            raise DeviceUnavailableError("DevicePool is closed: build a new pool")
        ws = self.missing()
        for w, outcome in (self.start(ws) if ws else {}).items():
            if isinstance(outcome, BaseException):
                raise DeviceUnavailableError(
                    f"DevicePool worker {w} was stopped (a call timed out, or it died) and could not be rebuilt from "
                    f"its factory: {type(outcome).__name__}: {outcome}") from outcome
        return self._exchange(queues, timeout_s)

    def run(self, jobs: list[Job], timeout_s: float | None) -> list[torch.Tensor]:
        n = len(self.factories)
        replies = self.exchange({w: [("call", *job) for job in jobs[w::n]] for w in range(min(n, len(jobs)))},
                                timeout_s)
        return [replies[k % n][k // n] for k in range(len(jobs))]

    def reseed(self, seed: int | None) -> None:
        self.seed = seed
        self.exchange({w: [("reseed", self.worker_seed(w))] for w in range(len(self.factories))}, None)

    def worker_seed(self, w: int) -> int | None:
        return None if self.seed is None else self.seed + w


class _Host:
    """A worker's device and the messages it answers (in a thread, a process or a Ray actor)."""

    def __init__(self, factory: Factory, seed: int | None) -> None:
        self.device = factory()
        if seed is not None:
            self.device.reseed(seed)

    def handle(self, message: tuple) -> Any:
        kind, *args = message
        if kind == "signature":
            return _signature(self.device)
        if kind == "call":
            return _call(self.device, *args)
        if kind == "reseed":
            return self.device.reseed(args[0])
        if kind == "close":
            return self.device.close()
        n, seed, dtype = args
        return self.device.sample_inputs(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


class _Thread:
    """One daemon thread holding one device, running submitted functions in order.

    Abandoned (its call timed out), it drops what is queued and closes its device once the hung call returns.
    """

    def __init__(self, name: str) -> None:
        self.host: _Host | None = None
        self.abandoned = False
        self.inbox: queue.SimpleQueue[tuple[Callable[[], Any], Future] | None] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def submit(self, fn: Callable[[], Any]) -> Future:
        future: Future = Future()
        self.inbox.put((fn, future))
        return future

    def build(self, factory: Factory, seed: int | None) -> Signature:
        self.host = _Host(factory, seed)
        return self.host.handle(("signature",))

    def answer(self, messages: list[tuple]) -> list[Any]:
        return [self.host.handle(m) for m in messages]

    def close(self) -> None:
        if self.host is not None:
            self.host.handle(("close",))

    def stop(self, abandon: bool = False) -> None:
        """End the thread after what is queued; abandoned, after the running call (and close the device)."""
        self.abandoned = self.abandoned or abandon
        self.inbox.put(None)

    def _serve(self) -> None:
        while (item := self.inbox.get()) is not None and not self.abandoned:
            fn, future = item
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - the caller gets it from the future
                future.set_exception(exc)
        if self.abandoned:
            self.close()


class _ThreadWorkers(_Workers):
    """Daemon threads, one device each; a thread whose call timed out is abandoned and replaced."""

    def __init__(self, factories: list[Factory], start_timeout_s: float | None) -> None:
        super().__init__(factories, start_timeout_s)
        self.threads: list[_Thread | None] = [None] * len(factories)

    def start(self, ws: list[int]) -> dict[int, Outcome]:
        futures = {}
        for w in ws:
            thread = self.threads[w] = _Thread(f"physnn-pool-{w}")
            futures[w] = thread.submit(functools.partial(thread.build, self.factories[w], self.worker_seed(w)))
        wait_futures(futures.values(), timeout=self.start_timeout_s)
        outcomes: dict[int, Outcome] = {}
        for w, future in futures.items():
            if future.done() and future.exception() is None:
                outcomes[w] = future.result()
                continue
            outcomes[w] = future.exception() if future.done() else _start_timeout(w, self.start_timeout_s)
            self.threads[w].stop(abandon=True)
            self.threads[w] = None
        return outcomes

    def missing(self) -> list[int]:
        return [w for w, t in enumerate(self.threads) if t is None]

    def _exchange(self, queues: dict[int, list[tuple]], timeout_s: float | None) -> dict[int, list[Any]]:
        futures = {w: self.threads[w].submit(functools.partial(self.threads[w].answer, messages))
                   for w, messages in queues.items()}
        wait_futures(futures.values(), timeout=timeout_s)  # every worker is idle (or abandoned) before we go on
        late = [w for w, f in futures.items() if not f.done()]
        for w in late:
            self.threads[w].stop(abandon=True)
            self.threads[w] = None
        if late:
            raise _timeout(timeout_s)
        return {w: f.result() for w, f in futures.items()}

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        live = [t for t in self.threads if t is not None]
        futures = [t.submit(t.close) for t in live]
        for t in live:
            t.stop()
        wait_futures(futures, timeout=CLOSE_TIMEOUT_S)  # a device that takes longer stays with its daemon thread
        for f in futures:
            if f.done():
                f.result()


class _ProcessWorkers(_Workers):
    """Spawned processes, one device each, talking over pipes; a dead one is restarted and its job redone.

    Every process is spawned at once (interpreter and imports in parallel); each builds its device on ``build``.
    """

    def __init__(self, factories: list[Factory], start_timeout_s: float | None, max_restarts: int) -> None:
        super().__init__(factories, start_timeout_s)
        self.max_restarts, self.restarts = int(max_restarts), 0
        self.context = mp.get_context("spawn")
        self.procs: list[Any] = [None] * len(factories)
        self.conns: list[Any] = [None] * len(factories)
        for w in range(len(factories)):
            self._spawn(w)

    def _spawn(self, w: int) -> None:
        parent, child = self.context.Pipe()
        proc = self.context.Process(target=_process_main, args=(self.factories[w], child), daemon=True,
                                    name=f"physnn-pool-{w}")
        proc.start()
        child.close()
        self.procs[w], self.conns[w] = proc, parent

    def _release(self, w: int) -> Any:
        """Empty worker ``w``'s slot and close its pipe; returns its process."""
        proc = self.procs[w]
        self.conns[w].close()
        self.procs[w] = self.conns[w] = None
        return proc

    def _kill(self, w: int, grace_s: float) -> int | None:
        """Stop worker ``w`` (after ``grace_s`` s to exit by itself), empty its slot; returns its exit code."""
        proc = self._release(w)
        proc.join(grace_s)
        if proc.is_alive():
            proc.kill()
            proc.join()
        return proc.exitcode

    def start(self, ws: list[int]) -> dict[int, Outcome]:
        busy = {}
        for w in ws:
            if self.procs[w] is None:
                self._spawn(w)
            try:
                self.conns[w].send(("build", self.worker_seed(w)))
            except (BrokenPipeError, OSError):
                pass  # it died while starting: its pipe reads EOF below
            busy[self.conns[w]] = w
        deadline = _deadline(self.start_timeout_s)
        outcomes: dict[int, Outcome] = {}
        while busy and (ready := wait(list(busy), timeout=_left(deadline))):
            for conn in ready:
                w = busy.pop(conn)
                outcomes[w] = self._reply(w)
        for w in busy.values():
            outcomes[w] = _start_timeout(w, self.start_timeout_s)
        for w in ws:
            if isinstance(outcomes[w], BaseException) and self.procs[w] is not None:
                self._kill(w, 0)
        return outcomes

    def _reply(self, w: int) -> Outcome:
        """Worker ``w``'s reply: a value, the exception it raised, or DeviceConnectionError if it died."""
        try:
            status, value = self.conns[w].recv()
        except (EOFError, OSError):
            return _died(w, self._kill(w, 1))
        return _unpack(value, w) if status == "error" else value

    def missing(self) -> list[int]:
        return [w for w, p in enumerate(self.procs) if p is None]

    def _exchange(self, queues: dict[int, list[tuple]], timeout_s: float | None) -> dict[int, list[Any]]:
        """Send each worker its messages one at a time; collect replies in order, restarting dead workers.

        A device error stops further sends but every busy worker is drained first, so no stale
        reply is left in a pipe; on timeout the busy workers are killed for the same reason.
        """
        deadline = _deadline(timeout_s)
        replies: dict[int, list[Any]] = {w: [] for w in queues}
        busy: dict[Any, int] = {}
        failure: BaseException | None = None
        try:
            for w in queues:
                if queues[w]:
                    self._send(w, queues[w][0], busy)
            while busy:
                ready = wait(list(busy), timeout=_left(deadline))
                if not ready:
                    raise _timeout(timeout_s)
                for conn in ready:
                    w = busy.pop(conn)
                    reply = self._reply(w)
                    if self.procs[w] is None:  # died mid-call: restart it and redo the call
                        self._restart(w, reply)
                        self._send(w, queues[w][len(replies[w])], busy)
                    elif isinstance(reply, BaseException):
                        failure = failure or reply
                    else:
                        replies[w].append(reply)
                        if failure is None and len(replies[w]) < len(queues[w]):
                            self._send(w, queues[w][len(replies[w])], busy)
        except BaseException:
            for w in busy.values():  # still busy (timed out, or another worker failed for good): no stale replies
                self._kill(w, 0)
            raise
        if failure is not None:
            raise failure
        return replies

    def _send(self, w: int, message: tuple, busy: dict[Any, int]) -> None:
        try:
            self.conns[w].send(message)
        except (BrokenPipeError, OSError):
            self._restart(w, _died(w, self._kill(w, 1)))
            self.conns[w].send(message)
        busy[self.conns[w]] = w

    def _restart(self, w: int, death: BaseException) -> None:
        """Start a fresh worker ``w`` after ``death``, within ``max_restarts``; raise its start-up error if any."""
        if self.restarts >= self.max_restarts:
            raise DeviceConnectionError(f"{death} and the pool already restarted workers {self.restarts} time(s) "
                                        f"(max_restarts={self.max_restarts})") from death
        self.restarts += 1
        outcome = self.start([w])[w]
        if isinstance(outcome, BaseException):
            raise outcome

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        live = [w for w, p in enumerate(self.procs) if p is not None]
        for w in live:
            try:
                self.conns[w].send(("close",))
            except (BrokenPipeError, OSError):
                pass
        pending = {self.conns[w]: w for w in live}
        deadline = _deadline(CLOSE_TIMEOUT_S)
        while pending and (ready := wait(list(pending), timeout=_left(deadline))):
            for conn in ready:
                self._release(pending.pop(conn))  # device closed (or worker gone): let it finish exiting alone
        for w in pending.values():
            self._kill(w, 0)


def _process_main(factory: Factory, conn: Any) -> None:
    """A process worker: on ``("build", seed)`` build the device, then answer messages until ``close``."""
    host: _Host | None = None
    while True:
        message = conn.recv()
        if message[0] == "close" and host is None:
            return
        try:
            if message[0] == "build":
                host = _Host(factory, message[1])
                message = ("signature",)
            reply = ("ok", host.handle(message))
        except Exception as exc:  # noqa: BLE001 - the device's error travels back to the caller
            reply = ("error", _pack(exc))
        conn.send(reply)
        if message[0] == "close":
            return


class _WorkerTraceback(Exception):
    """The traceback text of an exception raised in a worker process (set as that exception's cause)."""


def _pack(exc: BaseException) -> tuple[bytes | None, str, str, str]:
    """An exception as (pickle or None, type name, message, traceback text), sendable even if it does not pickle."""
    try:
        payload: bytes | None = pickle.dumps(exc)
    except Exception:  # noqa: BLE001 - the text fields still carry it
        payload = None
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return payload, f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc), trace


def _unpack(packed: tuple[bytes | None, str, str, str], w: int) -> BaseException:
    """The exception worker ``w`` raised (its own type if it unpickles here), caused by its traceback text."""
    payload, kind, text, trace = packed
    try:
        exc = pickle.loads(payload)
    except Exception:  # noqa: BLE001 - e.g. a class defined in the worker's __main__
        exc = DeviceConnectionError(f"DevicePool worker {w} raised {kind}: {text}")
    exc.__cause__ = _WorkerTraceback(f"in DevicePool worker {w}:\n{trace}")
    return exc


class _RayWorkers(_Workers):
    """One Ray actor per worker; Ray restarts a dead actor and retries its chunk; a timed-out actor is killed."""

    def __init__(self, factories: list[Factory], start_timeout_s: float | None, max_restarts: int, cpus: float,
                 resources: Sequence[Mapping[str, float]] | None) -> None:
        super().__init__(factories, start_timeout_s)
        try:
            import ray
        except ImportError as exc:
            raise ConfigurationError("DevicePool(backend='ray') needs Ray: pip install 'physnn[ray]'") from exc
        self.ray = ray
        if not ray.is_initialized():
            ray.init()
        self.actor = ray.remote(_RayHost)
        self.options = [{"num_cpus": cpus, "resources": dict(resources[w]) if resources else None,
                         "max_restarts": max_restarts, "max_task_retries": max_restarts} for w in range(len(factories))]
        self.actors: list[Any] = [None] * len(factories)

    def start(self, ws: list[int]) -> dict[int, Outcome]:
        for w in ws:
            self.actors[w] = self.actor.options(**self.options[w]).remote(self.factories[w], self.worker_seed(w))
        refs = {w: self.actors[w].handle.remote(("signature",)) for w in ws}
        ready, _ = self.ray.wait(list(refs.values()), num_returns=len(refs), timeout=self.start_timeout_s)
        outcomes: dict[int, Outcome] = {}
        for w, ref in refs.items():
            if ref not in ready:
                outcomes[w] = _start_timeout(w, self.start_timeout_s,
                                             "(a worker may wait for CPUs or custom resources no node offers)")
            else:
                try:
                    outcomes[w] = self._get([ref])[0]
                except DeviceConnectionError as exc:
                    outcomes[w] = exc
            if isinstance(outcomes[w], BaseException):
                self._kill(w)
        return outcomes

    def placement(self, w: int) -> Any:
        return tuple(sorted(self.options[w]["resources"].items())) if self.options[w]["resources"] else None

    def _get(self, refs: list[Any]) -> list[Any]:
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayActorError as exc:
            raise DeviceConnectionError(f"DevicePool: a Ray worker died and could not be restarted: {exc}") from exc

    def _kill(self, w: int) -> None:
        self.ray.kill(self.actors[w])  # no restart
        self.actors[w] = None

    def missing(self) -> list[int]:
        return [w for w, a in enumerate(self.actors) if a is None]

    def _exchange(self, queues: dict[int, list[tuple]], timeout_s: float | None) -> dict[int, list[Any]]:
        refs = {w: [self.actors[w].handle.remote(m) for m in messages] for w, messages in queues.items()}
        every = [r for rs in refs.values() for r in rs]
        _, pending = self.ray.wait(every, num_returns=len(every), timeout=timeout_s)
        late = [w for w, rs in refs.items() if not set(rs).isdisjoint(pending)]
        for w in late:
            self._kill(w)
        if late:
            raise _timeout(timeout_s)
        return {w: self._get(rs) for w, rs in refs.items()}

    def close(self) -> None:
        if self.closed:
            return
        live = [a for a in self.actors if a is not None]
        refs = [a.handle.remote(("close",)) for a in live]
        if refs:
            self.ray.wait(refs, num_returns=len(refs), timeout=CLOSE_TIMEOUT_S)
        self.abort()

    def abort(self) -> None:
        self.closed = True
        for w, a in enumerate(self.actors):
            if a is not None:
                self._kill(w)


class _RayHost(_Host):
    """A Ray worker's host: its exclusive resources are per node (one address on two lab PCs is two instruments)."""

    def handle(self, message: tuple) -> Any:
        reply = super().handle(message)
        if message[0] == "signature":
            import ray

            node = ray.util.get_node_ip_address()
            reply["exclusive_resources"] = tuple(f"{r} on {node}" for r in reply["exclusive_resources"])
        return reply


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


def _signature(device: Device) -> Signature:
    return {"name": device.name, "in_shape": tuple(device.in_shape), "out_shape": tuple(device.out_shape),
            "controls": tuple(device.controls), "input_bounds": device.input_bounds, "dtypes": tuple(device.dtypes),
            "batched_controls": device.batched_controls, "stochastic": device.stochastic,
            "exclusive_resources": tuple(device.exclusive_resources())}


def _call(device: Device, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return device(x, controls).cpu()


def _deadline(timeout_s: float | None) -> float | None:
    return None if timeout_s is None else time.monotonic() + timeout_s


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _timeout(timeout_s: float | None) -> DeviceTimeoutError:
    return DeviceTimeoutError(f"DevicePool: workers did not finish within timeout_s={timeout_s} s; the busy workers "
                              "were stopped and are rebuilt from their factories at the next call")


def _died(w: int, code: int | None) -> DeviceConnectionError:
    return DeviceConnectionError(f"DevicePool worker {w} died (exit code {code}; its stderr may say why)")


def _start_timeout(w: int, start_timeout_s: float | None, hint: str = "") -> DeviceTimeoutError:
    return DeviceTimeoutError(f"DevicePool worker {w} did not build its device within "
                              f"start_timeout_s={start_timeout_s} s {hint}".rstrip())
