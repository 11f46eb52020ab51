"""The one training loop every method runs in: :func:`fit`.

Per epoch: shuffle (seeded), one :meth:`Method.train_step` per batch, evaluate
on the training and validation sets, append a row to the history, update early
stopping, write an atomic checkpoint and the history files. The loss is any
callable ``(output, y) -> scalar`` or a built-in (:mod:`.losses`); it decides
the task and so the metrics: accuracy for int64 labels, MSE/RMSE/MAE/R² for
float targets of any shape ``(N, ...)``. Every row carries
the run's cumulative cost: device calls and samples spent on training and on
evaluation, twin evaluations, optimizer steps, parameter elements updated and
wall time.

Resume is exact: a checkpoint holds the method's state (model, optimizers,
counters), the loop's state (history, early stopping, accounting) and every
random generator (torch's global one, Python's, NumPy's, the shuffle
generator, the method's and its devices'), so a run killed at any point and
resumed from its last checkpoint ends with the same parameters and history as
one that never stopped (wall times aside). Checkpoints are written to a
temporary file, flushed and renamed over the old one, which is kept as
``checkpoint.prev.pt``; each carries the SHA-256 of its content, so a truncated,
empty or altered file raises :class:`~physnn.errors.CheckpointError` instead of
loading (:mod:`._checkpoint`), and is read with ``torch.load(weights_only=True)``
(tensors and plain containers only).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .._atomic import atomic_write
from ..data.record import RecordWriter
from ..device import Device
from ..errors import CheckpointError, ConfigurationError
from ._checkpoint import load_checkpoint, previous_of, save_checkpoint
from .losses import CLASSIFICATION, Loss, LossFn, resolve_loss
from .methods import Method

log = logging.getLogger("physnn.training")
CHECKPOINT = "checkpoint.pt"
FORMAT = 1
#: History keys whose smaller values are better (early stopping, ``best_epoch``); others are maximized.
MINIMIZED = ("loss", "mse", "rmse", "mae")
#: Cumulative cost columns of every history row.
COST_KEYS = ("train_device_calls", "train_device_samples", "eval_device_calls", "eval_device_samples",
             "twin_calls", "twin_samples", "optimizer_steps", "parameter_updates", "time_s")


class Callback:
    """Hooks into :func:`fit`; override what you need (e.g. drift a device half-way, stop a run)."""

    def on_epoch_start(self, epoch: int, method: Method) -> None:
        """Before epoch ``epoch`` (0-based) trains."""

    def on_batch_end(self, epoch: int, batch: int, method: Method) -> None:
        """After training step ``batch`` (0-based) of ``epoch``."""

    def on_epoch_end(self, epoch: int, row: dict[str, Any], method: Method) -> None:
        """After epoch ``epoch`` was evaluated and checkpointed; ``row`` is its history row."""


@dataclass
class RunResult:
    """What :func:`fit` returns.

    ``history``: one row per epoch (``epoch`` 1-based, metrics, cumulative
    costs :data:`COST_KEYS`); ``accounting``: the final costs; ``best_epoch`` /
    ``best``: the epoch with the best ``monitor`` value and that value;
    ``stopped_early``: early stopping ended the run; ``out_dir``: where files went.
    """

    history: list[dict[str, Any]]
    accounting: dict[str, float]
    best_epoch: int | None = None
    best: float | None = None
    stopped_early: bool = False
    out_dir: Path | None = None
    files: list[Path] = field(default_factory=list)

    def final(self, key: str) -> Any:
        """``key`` of the last history row."""
        return self.history[-1][key]


def fit(method: Method, train: tuple[torch.Tensor, torch.Tensor], *,
        val: tuple[torch.Tensor, torch.Tensor] | None = None, epochs: int = 100, batch_size: int | None = None,
        seed: int = 0, out_dir: str | os.PathLike[str] | None = None, resume: bool = False,
        patience: int | None = None, monitor: str | None = None, restore_best: bool = False,
        eval_train: bool = True, eval_batch_size: int | None = None, progress: bool = True,
        callbacks: Sequence[Callback] = (), plot: bool = True,
        record: str | os.PathLike[str] | None = None, loss: str | LossFn | Loss | None = None,
        log_every: int | None = None) -> RunResult:
    """Train ``method`` on ``train = (x, y)`` for ``epochs`` epochs.

    Args:
        method: a :class:`~physnn.training.Backprop`, :class:`~physnn.training.PhysicsAware`,
            :class:`~physnn.training.ZerothOrder` or :class:`~physnn.training.ForwardForward`.
        train: inputs ``(N, ...)`` and targets: int64 labels ``(N,)`` (classification) or floats
            ``(N, ...)`` shaped like the model's outputs (regression).
        val: an optional evaluation set of the same form.
        epochs: total epochs (a resumed run continues up to this number).
        batch_size: samples per step; ``None`` trains full batch.
        seed: seeds torch's global generator and the shuffling.
        out_dir: where to write ``checkpoint.pt`` (every epoch, atomically, with a digest; the one
            before it is kept as ``checkpoint.prev.pt``),
            ``history.csv``, ``history.json`` and ``curves.png``; ``None`` writes nothing.
        resume: continue from ``out_dir/checkpoint.pt`` when it exists; a corrupt one raises
            :class:`~physnn.errors.CheckpointError` naming the file and the way back.
        patience: stop when ``monitor`` has not improved for this many epochs.
        monitor: history key watched by early stopping and ``best_epoch``; default
            ``"val_accuracy"`` / ``"train_accuracy"`` (classification) or ``"val_loss"`` /
            ``"train_loss"`` (regression), ``val_`` with a validation set
            (keys ending in ``loss``, ``mse``, ``rmse``, ``mae`` are minimized, others maximized).
        restore_best: load the best epoch's state into ``method`` at the end.
        eval_train: evaluate on the whole training set every epoch (costs device calls).
        eval_batch_size: chunk size of evaluation (``None``: whole sets at once).
        progress: show a tqdm progress bar (only on a terminal: logs get no carriage returns).
        callbacks: :class:`Callback` hooks.
        plot: write ``curves.png`` at the end (needs ``out_dir``).
        record: a measurement record (SQLite, :mod:`physnn.data.record`) that gets every call of every
            physical layer's device, in training and evaluation (not the twins'); a resumed run appends.
            Read it with :func:`physnn.data.load_record`, replay it with :class:`physnn.devices.ReplayDevice`.
        loss: what the supervised methods minimize: ``"cross_entropy"``, ``"mse"``, ``"l1"``, ``"huber"``
            or any callable ``(output, y) -> scalar tensor``; ``None``: ``"cross_entropy"`` for int64
            labels, ``"mse"`` for float targets. Regression runs report ``loss``, ``mse``, ``rmse``,
            ``mae`` and ``r2``, never an accuracy. :class:`~physnn.training.ForwardForward` (a
            classifier with its own local losses) refuses any loss and float targets.
        log_every: also print one line to stderr every this many training steps (epoch, step, running
            loss, seconds so far and an estimate of the epoch's remaining seconds): progress for long
            epochs in logs, where the tqdm bar stays off.

    Returns:
        A :class:`RunResult`.
    """
    if epochs < 1 or any(v is not None and v < 1 for v in (batch_size, patience, log_every)):
        raise ConfigurationError(f"fit needs epochs >= 1 and batch_size, patience, log_every >= 1 or None; got "
                                 f"epochs={epochs}, batch_size={batch_size}, patience={patience}, "
                                 f"log_every={log_every}")
    if resume and out_dir is None:
        raise ConfigurationError("fit(resume=True) needs out_dir=, the folder holding checkpoint.pt")
    x, y = train
    _check_data("train", x, y)
    objective = resolve_loss(loss, y)
    objective.check_targets("train", y)
    if val is not None:
        _check_data("val", *val)
        objective.check_targets("val", val[1])
        if val[1].shape[1:] != y.shape[1:]:
            raise ConfigurationError(f"fit: val targets have shape {tuple(val[1].shape)}, train targets "
                                     f"{tuple(y.shape)}; they must agree after the first (sample) axis")
    method.set_loss(objective)
    classify = objective.task == CLASSIFICATION
    monitor = monitor or ("val_" if val is not None else "train_") + ("accuracy" if classify else "loss")
    if monitor.startswith("train_") and not eval_train:
        raise ConfigurationError(f"monitor {monitor!r} needs eval_train=True; pass val= or another monitor")
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    loop = _LoopState.fresh(method, seed)
    if resume and out is not None:
        loop = _resumed(out / CHECKPOINT, method, objective) or loop
    meters = _Meters(method)
    bar = tqdm(total=epochs, initial=min(loop.epoch, epochs), disable=None if progress else True, desc=method.name,
               unit="epoch", leave=False)
    writer = None if record is None else RecordWriter(record)  # one file for the run, appended epoch by epoch
    log = _StepLog(method.name, epochs, log_every)
    try:
        while loop.epoch < epochs and not loop.stopped:
            with _recording(method, writer):
                row = _run_epoch(method, loop, meters, x, y, val, batch_size, eval_train, eval_batch_size,
                                 callbacks, log)
            loop.update_best(row, monitor, patience, method, restore_best)
            if out is not None:
                loop.save(out / CHECKPOINT, method)
                write_history(loop.history, out)
            for cb in callbacks:
                cb.on_epoch_end(loop.epoch - 1, row, method)
            bar.update(1)
            shown = ("train_accuracy", "val_accuracy") if classify else ("train_rmse", "val_rmse")
            bar.set_postfix({k: f"{row[k]:.4g}" for k in ("loss", *shown) if k in row})
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    if restore_best and loop.best_state is not None:
        method.load_state_dict(loop.best_state)
    result = RunResult(history=loop.history, accounting=dict(loop.totals), best_epoch=loop.best_epoch,
                       best=loop.best_value, stopped_early=loop.stopped, out_dir=out)
    if out is not None:
        result.files = [out / CHECKPOINT, out / "history.csv", out / "history.json"]
        if plot:
            from .plots import plot_history

            result.files.append(plot_history(loop.history, out / "curves.png", title=method.name))
    return result


# ------------------------------------------------------------------ one epoch
def _run_epoch(method: Method, loop: _LoopState, meters: _Meters, x: torch.Tensor, y: torch.Tensor,
               val: tuple[torch.Tensor, torch.Tensor] | None, batch_size: int | None, eval_train: bool,
               eval_batch_size: int | None, callbacks: Sequence[Callback], log: _StepLog) -> dict[str, Any]:
    epoch = loop.epoch
    start = time.perf_counter()
    for cb in callbacks:
        cb.on_epoch_start(epoch, method)
    n = len(y)
    size = n if batch_size is None else min(int(batch_size), n)
    order = torch.randperm(n, generator=loop.shuffle) if size < n else torch.arange(n)
    sums: dict[str, float] = {}
    steps = -(-n // size)
    with meters.phase(loop.totals, "train"):
        for b, first in enumerate(range(0, n, size)):
            rows = order[first:first + size]
            for k, v in method.train_step(x[rows], y[rows]).items():
                sums[k] = sums.get(k, 0.0) + v * len(rows)
            for cb in callbacks:
                cb.on_batch_end(epoch, b, method)
            log.step(epoch, b, steps, sums.get("loss", math.nan) / min(first + size, n), start)
    row: dict[str, Any] = {"epoch": epoch + 1, **{k: v / n for k, v in sums.items()}}
    with meters.phase(loop.totals, "eval"):
        if eval_train:
            row.update({f"train_{k}": v for k, v in method.evaluate(x, y, batch_size=eval_batch_size).items()})
        if val is not None:
            row.update({f"val_{k}": v for k, v in method.evaluate(*val, batch_size=eval_batch_size).items()})
    loop.totals["optimizer_steps"] = method.steps
    loop.totals["parameter_updates"] = method.updates
    loop.totals["time_s"] += time.perf_counter() - start
    row.update(loop.totals)
    loop.history.append(row)
    loop.epoch += 1
    return row


@dataclass
class _StepLog:
    """``fit(log_every=)``: one stderr line every ``every`` training steps (off when ``every`` is None)."""

    name: str
    epochs: int
    every: int | None

    def step(self, epoch: int, batch: int, steps: int, running_loss: float, start: float) -> None:
        """After step ``batch`` (0-based) of ``steps`` in ``epoch`` (0-based), begun at ``start`` (perf_counter)."""
        if self.every is None or (batch + 1) % self.every:
            return
        elapsed = time.perf_counter() - start
        left = elapsed / (batch + 1) * (steps - batch - 1)
        print(f"{self.name}: epoch {epoch + 1}/{self.epochs}, step {batch + 1}/{steps}, running loss "
              f"{running_loss:.4g}, {elapsed:.0f} s, about {left:.0f} s left in the epoch", file=sys.stderr,
              flush=True)


class _Meters:
    """Counts device and twin calls per phase, as deltas of the devices' own counters."""

    def __init__(self, method: Method) -> None:
        self.devices, self.twins = method.devices(), method.twins()

    @staticmethod
    def _sum(devices: list[Device]) -> tuple[int, int]:
        return sum(d.calls for d in devices), sum(d.samples for d in devices)

    def phase(self, totals: dict[str, float], name: str) -> _Phase:
        return _Phase(self, totals, name)


class _Phase:
    def __init__(self, meters: _Meters, totals: dict[str, float], name: str) -> None:
        self.meters, self.totals, self.name = meters, totals, name

    def __enter__(self) -> None:
        self.device0, self.twin0 = self.meters._sum(self.meters.devices), self.meters._sum(self.meters.twins)

    def __exit__(self, *exc: object) -> None:
        device, twin = self.meters._sum(self.meters.devices), self.meters._sum(self.meters.twins)
        self.totals[f"{self.name}_device_calls"] += device[0] - self.device0[0]
        self.totals[f"{self.name}_device_samples"] += device[1] - self.device0[1]
        self.totals["twin_calls"] += twin[0] - self.twin0[0]
        self.totals["twin_samples"] += twin[1] - self.twin0[1]


# ------------------------------------------------------------------ loop state
@dataclass
class _LoopState:
    epoch: int
    history: list[dict[str, Any]]
    totals: dict[str, float]
    shuffle: torch.Generator
    best_value: float | None = None
    best_epoch: int | None = None
    best_state: dict[str, Any] | None = None
    bad_epochs: int = 0
    stopped: bool = False

    @classmethod
    def fresh(cls, method: Method, seed: int) -> _LoopState:
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2 ** 32)
        return cls(epoch=0, history=[], totals={k: 0 for k in COST_KEYS} | {"time_s": 0.0},
                   shuffle=torch.Generator().manual_seed(seed))

    def update_best(self, row: dict[str, Any], monitor: str, patience: int | None, method: Method,
                    keep_state: bool) -> None:
        if monitor not in row:
            raise ConfigurationError(f"monitor {monitor!r} is not in the history; it has {sorted(row)}")
        value = float(row[monitor])
        sign = -1.0 if monitor.endswith(MINIMIZED) else 1.0
        if self.best_value is None or sign * value > sign * self.best_value:
            self.best_value, self.best_epoch, self.bad_epochs = value, int(row["epoch"]), 0
            if keep_state:
                self.best_state = copy.deepcopy(method.state_dict())
        else:
            self.bad_epochs += 1
        self.stopped = patience is not None and self.bad_epochs >= patience

    # ------------------------------------------------------------- checkpoints
    def save(self, path: Path, method: Method) -> None:
        state = {
            "format": FORMAT, "method_name": method.name, "loss": method.loss.name, "epoch": self.epoch,
            "method": method.state_dict(),
            "history": self.history, "totals": self.totals, "rng": _capture_rng(method, self.shuffle),
            "early": {"best_value": self.best_value, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                      "best_state": self.best_state, "stopped": self.stopped},
        }
        save_checkpoint(path, state)

    @classmethod
    def load(cls, path: Path, method: Method, loss: Loss) -> _LoopState:
        state = load_checkpoint(path)
        if state.get("format") != FORMAT or state.get("method_name") != method.name:
            raise CheckpointError(f"{path} is a checkpoint of {state.get('method_name')!r} (format "
                                  f"{state.get('format')}), not of {method.name!r} (format {FORMAT}); "
                                  "resume with the same method, or choose another out_dir")
        saved_loss = state.get("loss", "cross_entropy")  # checkpoints written before fit(loss=) trained on it
        if saved_loss != loss.name:
            raise CheckpointError(f"{path} was trained with loss {saved_loss!r}, not {loss.name!r}; resume with "
                                  "the same loss, or choose another out_dir")
        method.load_state_dict(state["method"])
        shuffle = torch.Generator()
        _restore_rng(state["rng"], method, shuffle)
        early = state["early"]
        return cls(epoch=int(state["epoch"]), history=state["history"], totals=state["totals"], shuffle=shuffle,
                   best_value=early["best_value"], best_epoch=early["best_epoch"], best_state=early["best_state"],
                   bad_epochs=int(early["bad_epochs"]), stopped=bool(early["stopped"]))


def _recording(method: Method, writer: RecordWriter | None) -> contextlib.AbstractContextManager:
    """Record the devices' calls during an epoch; the checkpoint, written outside, keeps the bare devices."""
    if writer is None:
        return contextlib.nullcontext()
    from ..devices.recorded import recording

    return recording(method.model, writer)


def _resumed(path: Path, method: Method, loss: Loss) -> _LoopState | None:
    """The loop state of ``path`` (or, when a crash fell between its two renames, of the previous checkpoint)."""
    if not path.exists() and previous_of(path).exists():
        log.warning("%s is missing but %s exists (a crash between two renames); resuming from it",
                    path, previous_of(path))
        path = previous_of(path)
    return _LoopState.load(path, method, loss) if path.exists() else None


def _capture_rng(method: Method, shuffle: torch.Generator) -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "shuffle": shuffle.get_state(),
            "python": [version, list(internal), gauss],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
            "generators": {k: g.get_state() for k, g in method.generators().items()}}


def _restore_rng(rng: dict[str, Any], method: Method, shuffle: torch.Generator) -> None:
    torch.set_rng_state(rng["torch"])
    shuffle.set_state(rng["shuffle"])
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    generators = method.generators()
    missing = sorted(set(generators) - set(rng["generators"]))
    if missing:
        raise ConfigurationError(f"the checkpoint has no state for generator(s) {missing}; was it written by a "
                                 "differently built model?")
    for k, g in generators.items():
        g.set_state(rng["generators"][k])


def write_history(history: list[dict[str, Any]], out: Path) -> None:
    """``history.csv`` (one row per epoch, columns in order of first appearance) and ``history.json``."""
    columns = list(dict.fromkeys(k for row in history for k in row))

    def write_csv(f: Any) -> None:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)

    atomic_write(out / "history.csv", write_csv, binary=False)
    atomic_write(out / "history.json", lambda f: json.dump({"history": history}, f, indent=1), binary=False)


def _check_data(name: str, x: Any, y: Any) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise ConfigurationError(f"fit: {name} must be a pair of tensors (x, y), got "
                                 f"({type(x).__name__}, {type(y).__name__})")
    if y.dim() < 1 or len(x) != len(y) or len(y) == 0:
        raise ConfigurationError(f"fit: {name} needs x of shape (N, ...) and targets y of shape (N,) (int64 labels) "
                                 f"or (N, ...) (floats), N > 0; got x {tuple(x.shape)}, y {tuple(y.shape)} {y.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ConfigurationError(f"fit: {name} inputs hold NaN or Inf")
    if math.prod(x.shape) == 0:
        raise ConfigurationError(f"fit: {name} inputs are empty, shape {tuple(x.shape)}")
