"""Differentiable digital twins of devices, fitted from the devices' own measurements.

Physics-aware training needs a differentiable model of each device for its
backward pass. Two kinds:

* :class:`CalibratedTwin`: a physics model (a differentiable simulation of the
  nominal design) with free calibration parameters: an output gain and offset
  per channel, optionally a linear cross-talk (mixing) matrix, and any of the
  simulation's own float buffers made trainable (e.g. the pendula's ``omega``).
* :class:`NeuralTwin`: a neural surrogate (an MLP on the drive and the
  controls), for systems with no trustworthy physics model, such as a cavity
  known only from measurements.

:func:`fit_twin` drives the device (at drives you pass, or its own
``sample_inputs``) over its control ranges, or reads a measurement record,
averages repeated measurements, standardizes the outputs, fits the twin's free
parameters by Adam on the standardized mean squared error, and reports the
error on held-out measurements.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..data.record import Record, load_record
from ..device import Control, Device
from ..errors import ConfigurationError, GradientRouteError, RecordError
from ..layer import check_twin_matches
from .models import physical_layers


class NeuralTwin(Device):
    """An MLP surrogate ``y = MLP(x, controls)``: flat ``(B, in_features) -> (B, out_features)``, differentiable.

    Inputs (the drive concatenated with every control, flattened) are
    standardized and outputs de-standardized with statistics that
    :func:`fit_twin` sets, so the twin answers in the device's units.

    Args:
        in_features, out_features: drive and output sizes.
        hidden: units per hidden layer.
        depth: number of hidden layers (SiLU activations).
        controls: the device's controls (so the twin accepts the same settings).
        input_bounds: the device's drive range.
        seed: seeds the initial weights.

    Build one shaped like a device with :meth:`like`.
    """

    name = "neural-twin"
    differentiable = True
    batched_controls = True

    def __init__(self, in_features: int, out_features: int, hidden: int = 64, *, depth: int = 2,
                 controls: Sequence[Control] = (), input_bounds: tuple[float, float] | None = None,
                 seed: int = 0) -> None:
        super().__init__(seed=seed)
        if min(in_features, out_features, hidden, depth) < 1:
            raise ConfigurationError(f"NeuralTwin needs in_features, out_features, hidden, depth >= 1, got "
                                     f"{in_features}, {out_features}, {hidden}, {depth}")
        self.in_shape, self.out_shape = (int(in_features),), (int(out_features),)
        self.controls, self.input_bounds = tuple(controls), input_bounds
        n_in = int(in_features) + sum(math.prod(c.shape) for c in self.controls)
        sizes = [n_in] + [int(hidden)] * int(depth) + [int(out_features)]
        init = torch.Generator().manual_seed(seed)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(sizes[:-1], sizes[1:]):
            bound = 1 / math.sqrt(a)
            self.weights.append(nn.Parameter((2 * torch.rand(b, a, generator=init) - 1) * bound))
            self.biases.append(nn.Parameter((2 * torch.rand(b, generator=init) - 1) * bound))
        self.register_buffer("u_mean", torch.zeros(n_in))
        self.register_buffer("u_std", torch.ones(n_in))
        self.register_buffer("y_mean", torch.zeros(int(out_features)))
        self.register_buffer("y_std", torch.ones(int(out_features)))

    @classmethod
    def like(cls, device: Device, hidden: int = 64, *, depth: int = 2, seed: int = 0) -> NeuralTwin:
        """A twin with ``device``'s (flat) shapes, controls and input range."""
        if len(device.in_shape) != 1 or len(device.out_shape) != 1:
            raise ConfigurationError(f"NeuralTwin models flat devices; {device._label()} has in_shape "
                                     f"{device.in_shape}, out_shape {device.out_shape}")
        return cls(device.in_shape[0], device.out_shape[0], hidden, depth=depth, controls=device.controls,
                   input_bounds=device.input_bounds, seed=seed)

    def set_scaling(self, u_mean: torch.Tensor, u_std: torch.Tensor, y_mean: torch.Tensor,
                    y_std: torch.Tensor) -> None:
        """Standardization of the network input (drive + controls) and output, in device units."""
        for name, value in (("u_mean", u_mean), ("u_std", u_std), ("y_mean", y_mean), ("y_std", y_std)):
            getattr(self, name).copy_(value.detach().to(getattr(self, name)))

    def features(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        """The network input ``(B, in_features + control elements)``: the drive, then each control flattened."""
        b = x.shape[0]
        parts = [x.reshape(b, -1)]
        for c in self.controls:
            v = controls[c.name]
            v = v.expand((b,) + c.shape) if tuple(v.shape) == c.shape else v
            parts.append(v.reshape(b, -1))
        return torch.cat(parts, dim=1)

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        u = (self.features(x, controls) - self.u_mean.to(x)) / self.u_std.to(x)
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            u = F.linear(u, w.to(x.dtype), b.to(x.dtype))
            if k < len(self.weights) - 1:
                u = F.silu(u)
        return u * self.y_std.to(x) + self.y_mean.to(x)


class CalibratedTwin(Device):
    """``y = gain * nominal(x, c) + offset (+ y @ mixing)``: a physics model with free calibration parameters.

    Args:
        nominal: a differentiable simulation of the device's design (copied, not modified).
        gain, offset: fit a per-output gain (init 1) and offset (init 0, output units).
        mixing: fit a linear cross-talk matrix ``(n_out, n_out)`` (init 0; flat outputs only).
        calibrate: names of float buffers of ``nominal`` to fit as parameters (e.g.
            ``("omega",)`` for :class:`~physnn.devices.CoupledPendula`).
    """

    name = "calibrated-twin"
    differentiable = True

    def __init__(self, nominal: Device, *, gain: bool = True, offset: bool = True, mixing: bool = False,
                 calibrate: Sequence[str] = ()) -> None:
        super().__init__(seed=nominal.seed)
        if not nominal.differentiable:
            raise GradientRouteError(f"CalibratedTwin needs a differentiable nominal model; {nominal._label()} "
                                     "is a black box (use NeuralTwin for a system without a physics model)")
        self.nominal = copy.deepcopy(nominal)
        self.name = f"calibrated({nominal.name})"
        self._mirror(nominal)
        for name in calibrate:
            value = self.nominal._buffers.get(name)
            if value is None or not value.is_floating_point():
                raise ConfigurationError(f"CalibratedTwin: {nominal._label()} has no float buffer {name!r} to "
                                         f"calibrate; its buffers: {sorted(self.nominal._buffers)}")
            del self.nominal._buffers[name]
            self.nominal.register_parameter(name, nn.Parameter(value.clone()))
        self.gain = nn.Parameter(torch.ones(self.out_shape)) if gain else None
        self.offset = nn.Parameter(torch.zeros(self.out_shape)) if offset else None
        if mixing and len(self.out_shape) != 1:
            raise ConfigurationError(f"CalibratedTwin: mixing needs flat outputs, {nominal._label()} gives "
                                     f"{self.out_shape}")
        self.mixing = nn.Parameter(torch.zeros(self.out_shape * 2)) if mixing else None

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        y = self.nominal(x, controls).to(x.dtype)
        if self.gain is not None:
            y = y * self.gain.to(x.dtype)
        if self.offset is not None:
            y = y + self.offset.to(x.dtype)
        if self.mixing is not None:
            y = y + y @ self.mixing.to(x.dtype)
        return y


@dataclass
class TwinReport:
    """How well a twin fits its device.

    ``nrmse``: held-out RMSE / std per output, averaged (predicting the mean
    scores 1); ``nrmse_before``: the same before fitting; ``r2``: held-out
    coefficient of determination, averaged over outputs; ``device_calls`` /
    ``device_samples``: what the measurements cost on the device.
    """

    n_train: int
    n_test: int
    nrmse: float
    nrmse_before: float
    r2: float
    train_nrmse: float
    device_calls: int
    device_samples: int
    epochs: int
    nrmse_per_output: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def network_drives(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The drives ``model`` sends to each of its physical layers' devices on inputs ``x``, in layer order.

    Runs ``model(x)`` once without gradients (its devices are driven) and keeps
    what reached each :class:`~physnn.PhysicalLayer`'s device, shape
    ``(N, *in_shape)``: pass ``inputs=network_drives(model, x)[k]`` to
    :func:`fit_twin` so that layer ``k``'s twin is fitted where the network
    will use it (a twin fitted on uniform drives can be far off there).
    """
    layers = list(physical_layers(model))
    if not layers:
        raise ConfigurationError(f"network_drives: {type(model).__name__} has no PhysicalLayer")
    drives: list[list[torch.Tensor]] = [[] for _ in layers]
    hooks = [layer.device.register_forward_pre_hook(lambda _m, args, k=k: drives[k].append(args[0].detach()))
             for k, layer in enumerate(layers)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return [torch.cat(d) for d in drives]


def fit_twin(device: Device, twin: Device, *, n_samples: int = 2000,
             inputs: torch.Tensor | Literal["sample_inputs"] = "sample_inputs",
             record: str | os.PathLike | Record | None = None, settings: int = 16, repeats: int = 1,
             holdout: float = 0.2, epochs: int = 200, batch_size: int = 256, lr: float = 3e-3,
             seed: int = 0) -> TwinReport:
    """Fit ``twin``'s free parameters to measurements of ``device``; return the held-out error.

    A twin is only accurate where it was fitted. Choose the drives explicitly:

    * ``inputs=<tensor>``: the drives the network will send
      (:func:`network_drives` of the model on the training data); the right
      choice for a twin used in training.
    * ``inputs="sample_inputs"`` (the default): ``n_samples`` drives from
      ``device.sample_inputs``, typically uniform over the device's input range
      (at most [-1, 1]), which may lie far from what a network sends.
    * ``record=<path or Record>``: no device call at all; fit to the pairs a
      :class:`~physnn.devices.Recorded` run stored (one device: pass a
      :class:`~physnn.data.record.Record` from ``load_record(path, device=...)``
      when the file holds several).

    Args:
        device: the system to model (black box or simulation); it is driven here
            unless ``record`` is given (then only its shapes and controls are used).
        twin: a differentiable device with the same shapes and controls and
            trainable parameters (:class:`NeuralTwin`, :class:`CalibratedTwin`).
        n_samples: drives to measure with ``inputs="sample_inputs"``.
        inputs: the drives to measure, ``(n, *in_shape)``, or ``"sample_inputs"``.
        record: recorded measurements to fit instead of measuring; repeated
            (drive, setting) pairs are averaged, like ``repeats``.
        settings: distinct control settings for a device without per-sample
            controls (each drives ``n / settings`` samples); a device with
            ``batched_controls`` gets a fresh setting per sample. Settings are
            uniform within each control's bounds (default +- 1 where unbounded).
        repeats: measurements per drive, averaged (for noisy devices).
        holdout: fraction of drives held out to report the error.
        epochs, batch_size, lr: Adam on the per-output standardized squared error.
        seed: seeds the drives, settings, split and batches.

    Returns:
        A :class:`TwinReport`. The twin is left in its fitted state.
    """
    _check_pair(device, twin)
    if not 0 < holdout < 1 or repeats < 1 or settings < 1 or epochs < 0 or batch_size < 1:
        raise ConfigurationError(f"fit_twin needs 0 < holdout < 1, repeats, settings, batch_size >= 1 and "
                                 f"epochs >= 0; got {holdout}, {repeats}, {settings}, {batch_size}, {epochs}")
    params = [p for p in twin.parameters() if p.requires_grad]
    if not params:
        raise ConfigurationError(f"fit_twin: {twin._label()} has no free parameters to fit")
    g = torch.Generator().manual_seed(seed)
    if record is not None:
        if isinstance(inputs, torch.Tensor):
            raise ConfigurationError("fit_twin: pass either record= (recorded pairs) or inputs= (drives to "
                                     "measure), not both")
        x, controls, y, ids = _recorded_pairs(device, record if isinstance(record, Record) else load_record(record))
        cost = (0, 0)
    else:
        x, controls, y, ids, cost = _measured_pairs(device, inputs, n_samples, settings, repeats, g)
    n = len(x)
    order = torch.randperm(n, generator=g)
    n_test = max(1, int(round(holdout * n)))
    test, train = order[:n_test], order[n_test:]
    y_mean, y_std = y[train].mean(0), y[train].std(0).clamp_min(1e-8)
    if isinstance(twin, NeuralTwin):
        u = twin.features(x, controls)[train]
        twin.set_scaling(u.mean(0), u.std(0).clamp_min(1e-8), y_mean, y_std)

    def apply(rows: torch.Tensor) -> torch.Tensor:
        return _apply(twin, x[rows], {k: v[rows] for k, v in controls.items()}, ids[rows])

    def predict(rows: torch.Tensor) -> torch.Tensor:
        return torch.cat([apply(rows[i:i + 4096]) for i in range(0, len(rows), 4096)])

    with torch.no_grad():
        before = _nrmse(predict(test), y[test])
    optimizer = torch.optim.Adam(params, lr=lr)
    for _ in range(epochs):
        perm = train[torch.randperm(len(train), generator=g)]
        for start in range(0, len(perm), batch_size):
            rows = perm[start:start + batch_size]
            optimizer.zero_grad()
            loss = (((apply(rows) - y[rows]) / y_std) ** 2).mean()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        per_output = _nrmse(predict(test), y[test], per_output=True)
        fitted_train = _nrmse(predict(train), y[train])
    r2 = float((1 - per_output ** 2).mean())
    return TwinReport(n_train=len(train), n_test=n_test, nrmse=float(per_output.mean()), nrmse_before=before,
                      r2=r2, train_nrmse=fitted_train, device_calls=cost[0], device_samples=cost[1],
                      epochs=epochs, nrmse_per_output=per_output.tolist())


def _measured_pairs(device: Device, inputs: torch.Tensor | str, n_samples: int, settings: int, repeats: int,
                    g: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, torch.Tensor,
                                                 tuple[int, int]]:
    """Drive ``device`` (drives and settings drawn from ``g``): ``(x, per-sample controls, mean outputs, setting
    group ids, (calls, samples) spent)``."""
    if isinstance(inputs, torch.Tensor):
        x = inputs.detach().to(torch.float32)
    elif inputs == "sample_inputs":
        x = device.sample_inputs(n_samples, generator=g)
    else:
        raise ConfigurationError(f"fit_twin: inputs must be a tensor of drives (n, *{tuple(device.in_shape)}) or "
                                 f"'sample_inputs', got {inputs!r}")
    n = len(x)
    group = 1024 if device.batched_controls else max(1, math.ceil(n / settings))
    controls = _sample_controls(device, n, group, g)
    calls, samples = device.calls, device.samples
    y = _measure(device, x, controls, group, repeats)
    return x, controls, y, torch.arange(n) // group, (device.calls - calls, device.samples - samples)


def _recorded_pairs(device: Device, record: Record) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor,
                                                             torch.Tensor]:
    """The record's pairs, float32, repeated (drive, setting) pairs averaged, in order of first appearance:
    ``(x, per-sample controls, y, ids)``; rows with equal ``ids`` share one control setting."""
    names = [c.name for c in device.controls]
    if len(record.inputs) == 0:
        raise RecordError(f"fit_twin: measurement record {record.path} holds no returned call to fit")
    shapes = (tuple(record.inputs.shape[1:]), tuple(record.outputs.shape[1:]), sorted(record.controls))
    if shapes != (tuple(device.in_shape), tuple(device.out_shape), sorted(names)):
        raise RecordError(f"fit_twin: measurement record {record.path} holds (in_shape, out_shape, controls) = "
                          f"{shapes}, but {device._label()} has {(device.in_shape, device.out_shape, sorted(names))}")
    x = record.inputs.to(torch.float32)
    controls = {k: record.controls[k].to(torch.float32) for k in names}
    settings = [controls[k].reshape(len(x), -1) for k in names]
    pair, first = _first_seen(torch.cat([x.reshape(len(x), -1)] + settings, dim=1))
    counts = torch.bincount(pair).to(torch.float32).reshape((-1,) + (1,) * (record.outputs.dim() - 1))
    y = torch.zeros((len(first),) + tuple(record.outputs.shape[1:])).index_add_(0, pair, record.outputs.float())
    x, controls = x[first], {k: v[first] for k, v in controls.items()}
    ids = _first_seen(torch.cat(settings, dim=1)[first])[0] if names else torch.zeros(len(first), dtype=torch.long)
    return x, controls, y / counts, ids


def _first_seen(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Label equal rows ``0, 1, ...`` in order of first appearance: ``(label per row, first row of each label)``."""
    _, inverse = torch.unique(rows, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), len(rows)).scatter_reduce(0, inverse, torch.arange(len(rows)),
                                                                             "amin")
    order = torch.argsort(first)
    relabel = torch.empty_like(order)
    relabel[order] = torch.arange(len(order))
    return relabel[inverse], first[order]


def _check_pair(device: Device, twin: Device) -> None:
    if not twin.differentiable:
        raise GradientRouteError(f"fit_twin: the twin {twin._label()} must be differentiable")
    check_twin_matches(device, twin)


def _sample_controls(device: Device, n: int, group: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-sample settings ``(n, *shape)``, constant within consecutive groups of ``group`` samples
    unless the device takes per-sample controls."""
    out = {}
    n_groups = n if device.batched_controls else math.ceil(n / group)
    for c in device.controls:
        lo = c.low if math.isfinite(c.low) else c.default_tensor().min().item() - 1.0
        hi = c.high if math.isfinite(c.high) else c.default_tensor().max().item() + 1.0
        values = lo + (hi - lo) * torch.rand((n_groups,) + c.shape, generator=g)
        out[c.name] = values if device.batched_controls else values.repeat_interleave(group, dim=0)[:n]
    return out


def _call(device: Device, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
    """Drive ``device`` with per-sample ``controls``; a device without per-sample controls gets the first row
    (the rows are equal within a group by construction)."""
    if not device.batched_controls:
        controls = {k: v[0] for k, v in controls.items()}
    return device(x, controls)


def _apply(twin: Device, x: torch.Tensor, controls: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    """``twin`` on rows whose settings are given per sample; rows with equal ``ids`` share one setting."""
    if twin.batched_controls or not controls:
        return twin(x, controls)
    y = None
    for gid in ids.unique():
        rows = (ids == gid).nonzero().flatten()
        part = twin(x[rows], {k: v[rows[0]] for k, v in controls.items()})
        y = torch.zeros((len(x),) + part.shape[1:], dtype=part.dtype) if y is None else y
        y = y.index_copy(0, rows, part)
    return y


def _measure(device: Device, x: torch.Tensor, controls: dict[str, torch.Tensor], group: int,
             repeats: int) -> torch.Tensor:
    """Mean of ``repeats`` measurements of every drive, float32 ``(n, *out_shape)``."""
    outs = []
    with torch.no_grad():
        for start in range(0, len(x), group):
            xs = x[start:start + group]
            cs = {k: v[start:start + group] for k, v in controls.items()}
            outs.append(sum(_call(device, xs, cs) for _ in range(repeats)) / repeats)
    return torch.cat(outs).to(torch.float32)


def _nrmse(pred: torch.Tensor, true: torch.Tensor, *, per_output: bool = False) -> Any:
    err = (pred - true).flatten(1)
    std = true.flatten(1).std(0).clamp_min(1e-12)
    nrmse = err.pow(2).mean(0).sqrt() / std
    return nrmse if per_output else float(nrmse.mean())
