"""Recording every call to a device, and replaying a record as a device.

* :class:`Recorded` wraps any device and appends each call (drive, controls
  sent, outputs or error, UTC times, device identity) to a SQLite record
  (schema: :mod:`physnn.data.record`), committed before the call returns.
* :func:`recording` records every hardware call a model makes inside a block.
* :class:`ReplayDevice` answers drives from a record, offline.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.record import RecordWriter, load_record, to_json
from ..device import Control, Device
from ..errors import PhysnnError, RecordError, ReplayMissError
from ..layer import PhysicalLayer
from .wrapper import Wrapper


class Recorded(Wrapper):
    """``device`` with every call appended to a measurement record.

    Each call that reaches ``device`` is stored whole (drive, validated
    controls, outputs, start and end times in UTC seconds) in one committed
    transaction before its output is returned, so a killed process leaves every
    returned call on disk. A call that raises is stored with its error type and
    message, then the error is re-raised. The device's identity (``name``,
    class, ``describe()`` with an instrument's ``*IDN?`` reply, ``config()``
    where it has one) is stored at its first call and again whenever
    ``describe()`` changes (another instrument answered).

    Args:
        device: the device to record; shapes, controls, bounds, differentiability
            and noise are its own (outputs are recorded detached, gradients pass).
        record: a file path, or a :class:`~physnn.data.record.RecordWriter`
            shared by several devices (several layers of one model).
        label: the device's name in the record (default ``device.name``); filter by it
            in :func:`~physnn.data.load_record`.
        synchronous: SQLite durability when ``record`` is a path: ``"NORMAL"``
            survives a killed process, ``"FULL"`` a power cut too.
    """

    def __init__(self, device: Device, record: str | os.PathLike | RecordWriter, *, label: str | None = None,
                 synchronous: str = "NORMAL") -> None:
        super().__init__(device, f"recorded({device.name})")
        self._owns_writer = not isinstance(record, RecordWriter)
        self.writer = RecordWriter(record, synchronous=synchronous) if self._owns_writer else record
        self.label = label or device.name
        self._interface = to_json(interface_of(device))
        self._identity: dict[str, Any] | None = None
        self.device_id: int | None = None

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        start = time.time()
        try:
            y = self._drive(x, controls)
        except BaseException as exc:
            self.writer.add_call(self._device_id(), start, time.time(), x, controls, None, exc)
            raise
        self.writer.add_call(self._device_id(), start, time.time(), x, controls, y, None)
        return y

    def _drive(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        """``inner(x, controls)``; its input and control checks are skipped where they are exactly the ones this
        wrapper just ran (same interface now, base-class validation, no hooks): half the validation cost per call."""
        inner = self.inner
        if _interface(inner) != _interface(self) or not _validates_as_base(inner):
            return inner(x, controls)
        inner.counter.add(x.shape[0])
        return inner._check_output(inner._forward(x, controls), x)

    def _check_output(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Already checked inside the recorded call (by the inner device), so that a bad output is recorded."""
        return y

    def _device_id(self) -> int:
        """The record's id of the inner device's current identity, stored when first seen or changed."""
        describe = self.inner.describe()
        if describe != self._identity or self.device_id is None:
            self.device_id = self.writer.add_device(self.label, self.inner.name, type(self.inner).__name__,
                                                    to_json(describe), _config(self.inner), self._interface,
                                                    describe.get("idn"))
            self._identity = describe
        return self.device_id

    def describe(self) -> dict[str, Any]:
        """The inner device's description plus where it is recorded."""
        return {**self.inner.describe(), "recorded_to": str(self.writer.path), "record_label": self.label}

    def close(self) -> None:
        """Close the inner device, and the record file when this wrapper opened it."""
        self.inner.close()
        if self._owns_writer:
            self.writer.close()


_VALIDATION = ("forward", "__call__", "check_input", "check_controls", "_check_control", "_refuse_black_box_gradients")


def _interface(device: Device) -> tuple:
    """What validation depends on: shapes, controls, input bounds, per-sample controls, dtypes, differentiability."""
    return (tuple(device.in_shape), tuple(device.out_shape), tuple(device.controls), device.input_bounds,
            device.batched_controls, tuple(device.dtypes), device.differentiable)


def _validates_as_base(device: Device) -> bool:
    """True when ``device`` validates exactly as :class:`Device` does and has no hooks to run."""
    return (_class_validates_as_base(type(device))
            and not (device._forward_hooks or device._forward_pre_hooks or nn.modules.module._global_forward_hooks
                     or nn.modules.module._global_forward_pre_hooks))


@functools.cache
def _class_validates_as_base(cls: type) -> bool:
    return all(getattr(cls, m) is getattr(Device, m) for m in _VALIDATION)


def interface_of(device: Device) -> dict[str, Any]:
    """What a replay needs to present ``device``'s interface (the ``devices.interface`` JSON)."""
    return {"in_shape": list(device.in_shape), "out_shape": list(device.out_shape),
            "controls": [{"name": c.name, "shape": list(c.shape), "low": c.low, "high": c.high, "unit": c.unit,
                          "default": c.default, "doc": c.doc} for c in device.controls],
            "input_bounds": device.input_bounds, "batched_controls": device.batched_controls,
            "differentiable": device.differentiable, "stochastic": device.stochastic,
            "dtypes": [str(d).removeprefix("torch.") for d in device.dtypes]}


def _config(device: Device) -> str | None:
    """JSON of ``device.config()`` where the device has one; ``{"unavailable": reason}`` where it refused."""
    config = getattr(device, "config", None)
    if not callable(config):
        return None
    try:
        return to_json(config())
    except (NotImplementedError, PhysnnError) as exc:
        return to_json({"unavailable": f"{type(exc).__name__}: {exc}"})


@contextlib.contextmanager
def recording(module: nn.Module, record: str | os.PathLike | RecordWriter, *,
              synchronous: str = "NORMAL") -> Iterator[RecordWriter]:
    """Record every device call of ``module``'s physical layers to ``record`` inside the block.

    Each :class:`~physnn.PhysicalLayer`'s ``.device`` is replaced by a
    :class:`Recorded` sharing one record (labelled by the layer's module path,
    e.g. ``"layers.0"``; a device shared by layers is recorded once) and
    restored on exit, also on an exception. Twins are not hardware and are not
    recorded. Enter it outside any block that swaps devices for twins.

    Args:
        module: the model whose physical layers' devices are recorded.
        record: a file path (opened here, closed on exit), or an open
            :class:`~physnn.data.record.RecordWriter` (left open: a caller recording
            several blocks into one file, as :func:`~physnn.training.fit` does per epoch).
        synchronous: SQLite durability when ``record`` is a path (see :class:`Recorded`).

    Yields:
        The shared :class:`~physnn.data.record.RecordWriter` (its ``path``).
    """
    layers = [(name, m) for name, m in module.named_modules() if isinstance(m, PhysicalLayer)]
    owns_writer = not isinstance(record, RecordWriter)
    writer = RecordWriter(record, synchronous=synchronous) if owns_writer else record
    saved = [(layer, layer.device) for _, layer in layers]
    wrapped: dict[int, Recorded] = {}
    try:
        for name, layer in layers:
            device = layer.device
            if id(device) not in wrapped:
                wrapped[id(device)] = Recorded(device, writer, label=name or device.name)
            layer.device = wrapped[id(device)]
        yield writer
    finally:
        for layer, device in saved:
            layer.device = device
        if owns_writer:
            writer.close()


class ReplayDevice(Device):
    """A recorded device answering from its record, offline.

    A drive is answered only when the record holds a returned call with exactly
    that sample and the same control settings (compared bit for bit after
    widening to float64; ``-0.0`` equals ``0.0``), whatever the batch it came
    in; anything else raises :class:`~physnn.errors.ReplayMissError` naming the
    file and the sample. Repeats: a sample measured ``k`` times answers its
    1st, 2nd ... ``k``-th measurement in record order on successive requests,
    then starts over, so replaying a recorded run call by call reproduces it
    exactly; :meth:`reseed` restarts from the first. Calls that raised are not
    replayed. ``stochastic`` is true when a repeated sample was measured
    differently.

    Args:
        path: the record file.
        device: which recorded device (label or identity id) when the file holds several.
    """

    differentiable = False

    def __init__(self, path: str | os.PathLike, device: str | int | None = None) -> None:
        record = load_record(path, device=device)
        super().__init__()
        self.path, self.label = record.path, record.label
        self.name = f"replay({self.label})"
        spec = record.interface
        self.in_shape, self.out_shape = tuple(spec["in_shape"]), tuple(spec["out_shape"])
        self.controls = tuple(_control(c) for c in spec["controls"])
        self.input_bounds = None if spec["input_bounds"] is None else tuple(spec["input_bounds"])
        self.batched_controls = bool(spec["batched_controls"])
        self.dtypes = tuple(getattr(torch, d) for d in spec["dtypes"])
        if not len(record.outputs):
            raise RecordError(f"measurement record {self.path}: device {self.label!r} has no returned call to replay")
        self._inputs = record.inputs
        self._index = _Index(self._rows(record.inputs, record.controls), record.outputs.numpy(), self.path)
        self.stochastic = self._index.varies

    def _rows(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> np.ndarray:
        """Each sample's drive and settings as float64 bits, ``(B, D)`` uint64."""
        b = x.shape[0]
        parts = [x.detach().reshape(b, -1)]
        for c in self.controls:
            v = controls[c.name].detach()
            parts.append((v.expand((b,) + c.shape) if tuple(v.shape) == c.shape else v).reshape(b, -1))
        u = torch.cat([p.to(device="cpu", dtype=torch.float64) for p in parts], dim=1) + 0.0  # -0.0 -> 0.0
        return u.numpy().view(np.uint64)

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        rows = self._rows(x, controls)
        found, idx = self._index.take(rows)
        if not found.all():
            i = int(np.flatnonzero(~found)[0])
            settings = {k: _brief(v if v.dim() == len(self.control(k).shape) else v[i]) for k, v in controls.items()}
            raise ReplayMissError(f"{self._label()}: record {self.path} never measured sample {i} of this batch "
                                  f"(x={_brief(x[i])}, controls={settings}); "
                                  f"{int((~found).sum())} of {len(found)} samples unseen")
        return torch.from_numpy(self._index.outputs[idx]).to(device=x.device, dtype=x.dtype)

    def reseed(self, seed: int | None = None) -> None:
        """Restart the generator and every sample's repeat cursor (the next request answers the 1st measurement)."""
        super().reseed(seed)
        index = getattr(self, "_index", None)
        if index is not None:
            index.cursor[:] = 0

    def sample_inputs(self, n: int, generator: torch.Generator | None = None,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``n`` recorded drives drawn with replacement (answerable with the settings they were recorded with)."""
        g = generator if generator is not None else self.generator
        rows = torch.randint(len(self._inputs), (n,), generator=g)
        return self._inputs[rows].to(dtype)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "record": str(self.path), "label": self.label,
                "distinct_samples": len(self._index.keys), "measurements": len(self._index.outputs)}


def _brief(t: torch.Tensor, n: int = 8) -> str:
    """The values of ``t``, the first ``n`` of them when it holds more."""
    flat = t.detach().flatten().tolist()
    return str(flat) if len(flat) <= n else f"{str(flat[:n])[:-1]}, ...] ({len(flat)} values)"


def _control(spec: dict[str, Any]) -> Control:
    inf = float("inf")
    return Control(spec["name"], tuple(spec["shape"]), -inf if spec["low"] is None else spec["low"],
                   inf if spec["high"] is None else spec["high"], spec["unit"], spec["default"], spec["doc"])


@functools.cache
def _weights(d: int) -> np.ndarray:
    """Fixed odd 64-bit weights of the ``d`` words of a row."""
    return np.random.default_rng(d).integers(1, 2**63, size=d, dtype=np.uint64) | np.uint64(1)


def _hash(rows: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of uint64 words ``(B, D) -> (B,)``: splitmix64 of each word, weighted sum."""
    v = rows ^ (rows >> np.uint64(30))
    v = v * np.uint64(0xBF58476D1CE4E5B9)
    v ^= v >> np.uint64(27)
    v = v * np.uint64(0x94D049BB133111EB)
    v ^= v >> np.uint64(31)
    return (v * _weights(rows.shape[1])).sum(axis=1, dtype=np.uint64)


class _Index:
    """Recorded samples by exact content: ``take(rows)`` finds each row's next measurement, vectorized."""

    def __init__(self, rows: np.ndarray, outputs: np.ndarray, path: os.PathLike) -> None:
        h = _hash(rows)
        order = np.argsort(h, kind="stable")  # stable: a sample's measurements stay in record order
        self.keys, first, self.counts = np.unique(h[order], return_index=True, return_counts=True)
        self.start = first
        self.representative = rows[order[first]]
        group = np.repeat(np.arange(len(self.keys)), self.counts)
        if not (rows[order] == self.representative[group]).all():
            raise RecordError(f"measurement record {path}: two distinct recorded samples share a 64-bit hash; "
                              "cannot replay this record")
        self.outputs = outputs[order]
        flat = self.outputs.reshape(len(self.outputs), -1)
        self.varies = bool((flat != flat[first][group]).any())
        self.cursor = np.zeros(len(self.keys), dtype=np.int64)

    def take(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(found (B,), index into outputs (B,))``; advances the cursors only when every row is found."""
        h = _hash(rows)
        k = np.minimum(np.searchsorted(self.keys, h), len(self.keys) - 1)
        found = (self.keys[k] == h) & (self.representative[k] == rows).all(axis=1)
        if not found.all():
            return found, k
        order = np.argsort(k, kind="stable")
        sorted_k = k[order]
        head = np.r_[True, sorted_k[1:] != sorted_k[:-1]]
        positions = np.arange(len(k))
        rank = np.empty_like(positions)
        rank[order] = positions - np.maximum.accumulate(np.where(head, positions, 0))
        idx = self.start[k] + (self.cursor[k] + rank) % self.counts[k]
        np.add.at(self.cursor, k, 1)
        return found, idx
