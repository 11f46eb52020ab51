"""The one interface every physical system in physnn sits behind.

A :class:`Device` maps a batch of drive signals ``x`` (batch first) and a set of
control settings to a batch of measured outputs. Subclasses implement
``_forward``; the public :meth:`Device.forward` validates everything first (in
this one place, so every device gets the same checks), counts the call, runs
the physics, and checks what came back.

A device is an ``nn.Module`` so that simulations follow ``.to(device)`` and
twins may carry calibration parameters, but its *controls* are not parameters:
they are passed in on every call (a :class:`~physnn.PhysicalLayer` owns the
trainable ones).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import ControlError, DeviceOutputError, GradientRouteError, InputError, NotRebuildableError

#: Gradient routes a :class:`~physnn.PhysicalLayer` offers, and which device capability each needs.
ROUTES_FOR_BLACK_BOX = ("twin", "zeroth_order", "none")
ALL_ROUTES = ("autograd",) + ROUTES_FOR_BLACK_BOX


@dataclass(frozen=True)
class Control:
    """A physical knob of a device.

    Attributes:
        name: identifier used in the ``controls`` mapping.
        shape: shape of one setting (``()`` for a scalar knob).
        low, high: physical bounds, inclusive; ``-inf``/``inf`` where unbounded.
            A setting outside them is an error, never clipped.
        unit: SI unit or ``""`` for dimensionless.
        default: setting used when a call omits this control (scalar, broadcast
            to ``shape`` at creation of the default only).
        doc: one line saying what the knob does.
    """

    name: str
    shape: tuple[int, ...] = ()
    low: float = -math.inf
    high: float = math.inf
    unit: str = ""
    default: float | Sequence[float] = 0.0
    doc: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if not self.low <= self.high:
            raise ControlError(f"Control {self.name!r}: low={self.low} must not exceed high={self.high}")
        d = torch.as_tensor(self.default, dtype=torch.float64)
        if d.numel() != 1 and tuple(d.shape) != self.shape:
            raise ControlError(f"Control {self.name!r}: default of shape {tuple(d.shape)} "
                               f"does not fit shape {self.shape}")
        if bool(((d < self.low) | (d > self.high)).any()):
            raise ControlError(f"Control {self.name!r}: default {self.default} outside [{self.low}, {self.high}]")

    @property
    def bounded(self) -> bool:
        """True when both bounds are finite."""
        return math.isfinite(self.low) and math.isfinite(self.high)

    def default_tensor(self, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
        """The default setting as a tensor of exactly ``shape``."""
        return torch.as_tensor(self.default, dtype=dtype, device=device).expand(self.shape).clone()

    def describe(self) -> str:
        """One line: name, shape, bounds and unit."""
        shape = "" if self.shape == () else f"{list(self.shape)} "
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.name} {shape}in [{self.low:g}, {self.high:g}]{unit} (default {self.default})"


def all_finite(t: torch.Tensor) -> bool:
    """True when no element of ``t`` is NaN or infinite.

    A finite sum proves it in one reduction (any NaN or Inf makes the sum
    non-finite); only when the sum is not finite (a bad value, or an overflow
    of large finite values) are the elements checked one by one.
    """
    t = t.detach()
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


@dataclass
class CallCounter:
    """How often a device was driven: the real cost on hardware."""

    calls: int = 0
    samples: int = 0

    def add(self, batch: int) -> None:
        self.calls += 1
        self.samples += batch

    def as_dict(self) -> dict[str, int]:
        return {"calls": self.calls, "samples": self.samples}


class Device(nn.Module):
    """A nonlinear physical system: ``y = device(x, controls)``.

    Subclasses set ``in_shape``, ``out_shape``, ``controls`` and
    ``differentiable`` (class or instance attributes) and implement
    :meth:`_forward`. Optional capabilities:

    * ``input_bounds = (low, high)``: the physical range of the drive; values
      outside it are rejected (a measured device cannot extrapolate, an
      instrument has a maximum voltage).
    * ``batched_controls = True``: ``_forward`` accepts controls with a leading
      batch dimension (one setting per sample), which lets training sweep many
      settings in one call.
    * :meth:`sample_inputs`: drives typical of the device, used by twin fitting
      and by :func:`physnn.testing.check_device`.

    ``seed`` seeds the device's own random generator (``self.generator``), used
    by stochastic devices (noise); ``reseed`` restarts it.

    A device is data: the arguments of the call that built it are kept (tensors
    and arrays copied), and :meth:`config` returns them as the keywords that
    rebuild it. A class whose instances cannot be rebuilt from arguments (a live
    instrument session, a wrapped Python function) says why in ``not_rebuildable``.
    """

    #: Registry name (``physnn.devices.create(name)``); set by each device class.
    name: str = "device"
    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()
    controls: tuple[Control, ...] = ()
    differentiable: bool = False
    batched_controls: bool = False
    #: True when outputs carry random noise (drawn from ``self.generator``).
    stochastic: bool = False
    input_bounds: tuple[float, float] | None = None
    #: dtypes ``x`` may have; outputs have the same dtype as ``x``.
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float64)
    #: Why instances cannot be rebuilt from their constructor arguments; "" when they can.
    not_rebuildable: str = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> Device:
        self = super().__new__(cls)
        # the outermost constructor call's arguments, before __init__ may change them (see config())
        self.__dict__["_recipe"] = (cls, _frozen(args), _frozen(kwargs))
        return self

    def __init__(self, seed: int | None = None) -> None:
        super().__init__()
        self.seed = seed
        self.generator = torch.Generator()
        self.reseed(seed)
        self.counter = CallCounter()

    # ------------------------------------------------------------------ contract
    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        """Run the physics. ``x`` is validated, batch first; every control is present,
        validated, of the same dtype and torch device as ``x``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, controls: Mapping[str, Any] | None = None) -> torch.Tensor:
        """Drive the device with a batch ``x`` of shape ``(B, *in_shape)``.

        Args:
            x: drive signals, a floating-point tensor, batch first.
            controls: settings by name (tensors or numbers of exactly the
                control's shape, or ``(B, *shape)`` where ``batched_controls``);
                omitted controls take their default.

        Returns:
            Outputs of shape ``(B, *out_shape)``, same dtype and torch device as ``x``.
        """
        x = self.check_input(x)
        values = self.check_controls(controls, x)
        self._refuse_black_box_gradients(x, values)
        self.counter.add(x.shape[0])
        y = self._forward(x, values)
        return self._check_output(y, x)

    # --------------------------------------------------------------- validation
    def check_input(self, x: Any) -> torch.Tensor:
        """Validate a drive batch and return it; raise :class:`InputError` otherwise."""
        who = f"{self._label()}: input x"
        if not isinstance(x, torch.Tensor):
            raise InputError(f"{who} must be a torch.Tensor of shape (batch, *{self.in_shape}), got {type(x).__name__}"
                             " (convert with torch.as_tensor(x, dtype=torch.float32))")
        if x.dtype not in self.dtypes:
            raise InputError(f"{who} must have dtype in {[str(d) for d in self.dtypes]}, got {x.dtype}")
        expected = "(batch, " + ", ".join(str(s) for s in self.in_shape) + ")"
        if tuple(x.shape) == tuple(self.in_shape):
            raise InputError(f"{who} must be batch first with shape {expected}, got {tuple(x.shape)}: "
                             "one sample has no batch dimension, use x.unsqueeze(0)")
        if x.dim() != len(self.in_shape) + 1 or tuple(x.shape[1:]) != tuple(self.in_shape):
            raise InputError(f"{who} must have shape {expected}, got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise InputError(f"{who} is an empty batch (shape {tuple(x.shape)})")
        if not all_finite(x):
            bad = (~torch.isfinite(x)).nonzero()[0].tolist()
            raise InputError(f"{who} must be finite, got {x.detach()[tuple(bad)].item()} at index {tuple(bad)}")
        if self.input_bounds is not None:
            lo, hi = self.input_bounds
            xmin, xmax = float(x.detach().min()), float(x.detach().max())
            if xmin < lo or xmax > hi:
                raise InputError(f"{who} must lie in the physical range [{lo:g}, {hi:g}], "
                                 f"got values in [{xmin:g}, {xmax:g}]")
        return x

    def check_controls(self, controls: Mapping[str, Any] | None, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Validate control settings, fill in defaults, and return tensors on ``x``'s dtype and device."""
        controls = dict(controls or {})
        known = {c.name: c for c in self.controls}
        unknown = sorted(set(controls) - set(known))
        if unknown:
            raise ControlError(f"{self._label()}: unknown control(s) {unknown}; "
                               f"this device has {sorted(known) or 'no controls'}")
        values: dict[str, torch.Tensor] = {}
        for name, spec in known.items():
            if name not in controls:
                values[name] = spec.default_tensor(x.dtype, x.device)
                continue
            values[name] = self._check_control(spec, controls[name], x)
        return values

    def _check_control(self, spec: Control, value: Any, x: torch.Tensor) -> torch.Tensor:
        who = f"{self._label()}: control {spec.name!r}"
        if isinstance(value, torch.Tensor):
            t = value
            if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
                raise ControlError(f"{who} must be a real number, got dtype {t.dtype}")
            t = t.to(dtype=x.dtype, device=x.device)
        else:
            try:
                t = torch.as_tensor(value, dtype=x.dtype, device=x.device)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise ControlError(f"{who} must be a number or tensor of shape {spec.shape}, got {value!r}") from exc
        shape = tuple(t.shape)
        batched_shape = (x.shape[0],) + spec.shape
        if shape != spec.shape:
            if self.batched_controls and shape == batched_shape:
                pass
            elif shape == batched_shape:
                raise ControlError(f"{who}: this device takes one setting per call, shape {spec.shape}; "
                                   f"got per-sample settings {shape}")
            else:
                allowed = f"{spec.shape}" + (f" or per-sample {batched_shape}" if self.batched_controls else "")
                raise ControlError(f"{who} must have shape {allowed}, got {shape} (no broadcasting)")
        if not bool(torch.isfinite(t).all()):
            raise ControlError(f"{who} must be finite, got {t.detach().cpu().tolist()}")
        lo, hi = float(t.detach().min()), float(t.detach().max())
        if lo < spec.low or hi > spec.high:
            unit = f" {spec.unit}" if spec.unit else ""
            got = f"{lo:g}" if t.numel() == 1 else f"values in [{lo:g}, {hi:g}]"
            raise ControlError(f"{who} must lie within its physical bounds [{spec.low:g}, {spec.high:g}]{unit}, "
                               f"got {got}{unit}")
        return t

    def _refuse_black_box_gradients(self, x: torch.Tensor, values: dict[str, torch.Tensor]) -> None:
        if self.differentiable or not torch.is_grad_enabled():
            return
        wants = [n for n, v in values.items() if v.requires_grad] + (["x"] if x.requires_grad else [])
        if wants:
            raise GradientRouteError(
                f"{self._label()} is a black box (differentiable=False): autograd cannot run through it, "
                f"but {wants} require grad. Use PhysicalLayer(device, route=...) with one of "
                f"{list(ROUTES_FOR_BLACK_BOX)}: 'twin' (backward through a differentiable twin), "
                "'zeroth_order' (SPSA from extra forward calls) or 'none' (detached outputs, forward-forward). "
                "Train with the matching physnn.training method: PhysicsAware(model) (route 'twin', fit the twin "
                "with fit_twin), ZerothOrder(model) (SPSA, route 'zeroth_order') or ForwardForward(model, "
                "n_classes=...) (route 'none').")

    def _check_output(self, y: Any, x: torch.Tensor) -> torch.Tensor:
        expected = (x.shape[0],) + tuple(self.out_shape)
        if not isinstance(y, torch.Tensor) or tuple(y.shape) != expected:
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise DeviceOutputError(f"{self._label()} returned output of shape {got}, expected {expected}")
        if not all_finite(y):
            raise DeviceOutputError(f"{self._label()} returned NaN/Inf for finite inputs and in-bounds controls; "
                                    "the measurement or simulation failed")
        return y

    # ------------------------------------------------------------------ helpers
    def sample_inputs(self, n: int, generator: torch.Generator | None = None,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``n`` drives typical of this device, shape ``(n, *in_shape)``.

        The default draws uniformly from ``input_bounds`` when declared, else a
        standard normal; devices with a narrower useful range override it.
        """
        g = generator if generator is not None else self.generator
        if self.input_bounds is not None:
            lo, hi = self.input_bounds
            lo, hi = max(lo, -1.0), min(hi, 1.0)
            return lo + (hi - lo) * torch.rand((n,) + tuple(self.in_shape), generator=g, dtype=dtype)
        return torch.randn((n,) + tuple(self.in_shape), generator=g, dtype=dtype)

    def control_defaults(self, dtype: torch.dtype = torch.float32,
                         device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Every control at its default, as tensors."""
        return {c.name: c.default_tensor(dtype, device) for c in self.controls}

    def control(self, name: str) -> Control:
        """The :class:`Control` called ``name``."""
        for c in self.controls:
            if c.name == name:
                return c
        raise ControlError(f"{self._label()}: unknown control {name!r}; this device has "
                           f"{[c.name for c in self.controls] or 'no controls'}")

    def reseed(self, seed: int | None = None) -> None:
        """Restart the device's random generator (from ``seed``, or the device's own ``seed``)."""
        if seed is not None:
            self.seed = seed
        if self.seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(self.seed))

    @property
    def calls(self) -> int:
        """Forward calls made so far."""
        return self.counter.calls

    @property
    def samples(self) -> int:
        """Samples sent to the device so far."""
        return self.counter.samples

    def reset_counters(self) -> None:
        self.counter = type(self.counter)()

    def describe(self) -> dict[str, Any]:
        """A plain summary: name, shapes, differentiability and controls."""
        return {
            "name": self.name,
            "class": type(self).__name__,
            "in_shape": tuple(self.in_shape),
            "out_shape": tuple(self.out_shape),
            "differentiable": self.differentiable,
            "controls": [c.describe() for c in self.controls],
        }

    def config(self) -> dict[str, Any]:
        """Every constructor keyword (defaults filled in) that rebuilds this device:
        ``type(device)(**device.config())``, or ``physnn.devices.create(name, **device.config())``
        for a registered device (``physnn.devices.registry_name(device)``).

        Values are those passed (tensors and arrays as copied at construction; devices,
        for wrappers, as the objects). Raises :class:`~physnn.errors.NotRebuildableError`
        naming the device and the reason when it cannot be rebuilt from arguments.
        """
        if self.not_rebuildable:
            raise NotRebuildableError(f"{self._label()} cannot be rebuilt from its configuration: "
                                      f"{self.not_rebuildable}; pass the instance to physnn.load(devices=...)")
        target, args, kwargs = self.__dict__["_recipe"]
        if isinstance(target, str):  # built by a registered factory function, whose keywords were recorded
            return dict(kwargs)
        return keywords_of(target, args, kwargs)

    def built_by(self, factory_name: str, config: Mapping[str, Any]) -> None:
        """Record that the registered factory function ``factory_name`` built this device from ``config``
        (``physnn.devices.create`` calls it; :meth:`config` then returns ``config``)."""
        self.__dict__["_recipe"] = (factory_name, (), _frozen(dict(config)))

    @property
    def config_factory(self) -> type | str:
        """What :meth:`config` rebuilds this device with: its class, or a registered factory's name."""
        return self.__dict__["_recipe"][0]

    def exclusive_resources(self) -> tuple[str, ...]:
        """Resources this device holds exclusively (instrument addresses); none for a simulation.

        A :class:`~physnn.parallel.DevicePool` refuses to fan one of them out to
        several workers. Wrappers (``BlackBox``, ``Retrying``, ``Recorded``...)
        keep the device they wrap in ``.inner`` and report its resources.
        """
        inner = getattr(self, "inner", None)
        return inner.exclusive_resources() if isinstance(inner, Device) else ()

    def close(self) -> None:
        """Release held resources (instruments, sound cards, workers). Simulations hold none."""

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _label(self) -> str:
        return f"{type(self).__name__}({self.name!r})" if self.name != "device" else type(self).__name__

    def _mirror(self, other: Device) -> None:
        """Take ``other``'s interface (shapes, controls, input bounds, batched controls, dtypes): for wrappers."""
        self.in_shape, self.out_shape = tuple(other.in_shape), tuple(other.out_shape)
        self.controls, self.input_bounds = other.controls, other.input_bounds
        self.batched_controls, self.dtypes = other.batched_controls, other.dtypes

    def extra_repr(self) -> str:
        return (f"in_shape={tuple(self.in_shape)}, out_shape={tuple(self.out_shape)}, "
                f"differentiable={self.differentiable}, controls={[c.name for c in self.controls]}")


def keywords_of(factory: Any, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keywords that make ``factory(**keywords)`` the call ``factory(*args, **kwargs)``, defaults filled in.

    Raises :class:`NotRebuildableError` when ``factory`` takes arguments no keyword can give.
    """
    params = inspect.signature(factory).parameters
    awkward = [k for k, p in params.items() if p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY)]
    if awkward:
        raise NotRebuildableError(f"{getattr(factory, '__qualname__', factory)} takes {awkward} positionally "
                                  "only, so no keyword configuration can rebuild what it built")
    bound = inspect.signature(factory).bind(*args, **kwargs)
    bound.apply_defaults()
    keywords: dict[str, Any] = {}
    for key, value in bound.arguments.items():
        if params[key].kind is params[key].VAR_KEYWORD:
            keywords.update(value)
        else:
            keywords[key] = value
    return keywords


def _frozen(value: Any) -> Any:
    """``value`` with every tensor and array inside lists, tuples and dicts copied (detached)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_frozen(v) for v in value)
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    return value
