"""PhysicalLayer: a physical device as a PyTorch layer, with an explicit gradient route."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from . import _reparam
from ._routes import SPSARoute, TwinRoute
from .device import ALL_ROUTES, ROUTES_FOR_BLACK_BOX, Device
from .errors import ConfigurationError, GradientRouteError, InputError


class PhysicalLayer(nn.Module):
    """``readout(device(encoder(x), controls))`` with trainable, bounded controls.

    Args:
        device: the physical system (simulation or hardware adapter).
        route: how gradients reach the controls and the encoder:
            ``"autograd"`` (through the device; needs ``device.differentiable``),
            ``"twin"`` (forward on the device, backward through ``twin``),
            ``"zeroth_order"`` (SPSA from ``2 * perturbations`` extra device calls
            per backward, per quantity that needs a gradient), or ``"none"``
            (outputs detached; only what comes after the device learns).
        twin: a differentiable device with the same shapes and controls (route ``"twin"``).
        trainable: names of the controls to train; default all. The others stay
            fixed at ``controls`` or their default.
        controls: initial (or fixed) settings by name, within bounds.
        encoder, readout: optional digital modules before and after the device.
        perturbations, epsilon: SPSA settings; ``epsilon`` is the step in the
            unconstrained parameter space (controls) and in input units (x).
        seed: seed of the SPSA perturbations.

    Trainable controls are ``nn.Parameter``s in ``self.raw_controls``, mapped
    into their bounds by a smooth reparameterization (:mod:`physnn._reparam`);
    :meth:`control_values` gives the physical settings. The device and twin are
    held but not registered as submodules, so ``parameters()`` and
    ``state_dict()`` hold only what training owns; ``.to()`` still moves them.
    """

    def __init__(self, device: Device, route: str = "autograd", *, twin: Device | None = None,
                 trainable: Iterable[str] | None = None, controls: Mapping[str, Any] | None = None,
                 encoder: nn.Module | None = None, readout: nn.Module | None = None,
                 perturbations: int = 8, epsilon: float = 1e-2, seed: int | None = 0) -> None:
        super().__init__()
        if not isinstance(device, Device):
            raise ConfigurationError(f"PhysicalLayer needs a physnn.Device, got {type(device).__name__}; "
                                     "wrap a function with physnn.devices.adapters.CallableDevice")
        # Devices are held, not registered as submodules: the layer's parameters and
        # state_dict are what training owns (controls, encoder, readout), never the
        # physical system's own configuration or a twin's calibration.
        self.device = device
        self.twin = twin
        self.encoder = encoder
        self.readout = readout
        if perturbations < 1 or epsilon <= 0:
            raise ConfigurationError(f"SPSA needs perturbations >= 1 and epsilon > 0, got {perturbations}, {epsilon}")
        self.perturbations = int(perturbations)
        self.epsilon = float(epsilon)
        self.generator = torch.Generator()
        if seed is not None:
            self.generator.manual_seed(int(seed))

        names = [c.name for c in device.controls]
        trainable = list(names if trainable is None else trainable)
        unknown = sorted(set(trainable) - set(names)) + sorted(set(controls or {}) - set(names))
        if unknown:
            raise ConfigurationError(f"{device._label()} has no control(s) {unknown}; it has {names}")
        probe = torch.zeros((1,) + tuple(device.in_shape), dtype=torch.float64)
        initial = device.check_controls(controls, probe)  # validates bounds and shapes once, here
        self.raw_controls = nn.ParameterDict()
        for name in names:
            spec = device.control(name)
            if name in trainable:
                self.raw_controls[name] = nn.Parameter(_reparam.to_raw(spec, initial[name]).float())
            else:
                self.register_buffer(f"fixed_{name}", initial[name].float())
        self._trainable = tuple(n for n in names if n in trainable)
        self.route = route

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("device", "twin"):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def _apply(self, fn, recurse: bool = True):  # .to(), .double(), .cuda() reach the devices too
        super()._apply(fn, recurse)
        for device in {id(d): d for d in (self.device, self.twin) if d is not None}.values():
            device._apply(fn, recurse)
        return self

    # ------------------------------------------------------------------ routes
    @property
    def route(self) -> str:
        """The gradient route; may be changed between training phases."""
        return self._route

    @route.setter
    def route(self, route: str) -> None:
        if route not in ALL_ROUTES:
            raise ConfigurationError(f"unknown route {route!r}; choose one of {list(ALL_ROUTES)}")
        label = self.device._label()
        if route == "autograd" and not self.device.differentiable:
            raise GradientRouteError(f"route 'autograd' needs a differentiable device, but {label} is a black box; "
                                     f"routes that work: {list(ROUTES_FOR_BLACK_BOX)}")
        if route == "twin":
            self._check_twin(self.twin)
        self._route = route

    def _check_twin(self, twin: Device | None) -> None:
        label = self.device._label()
        if twin is None:
            raise ConfigurationError(f"route 'twin' needs twin=<a differentiable Device> for {label}")
        if not twin.differentiable:
            raise GradientRouteError(f"the twin {twin._label()} of {label} must be differentiable")
        check_twin_matches(self.device, twin)

    # ----------------------------------------------------------------- forward
    def control_values(self) -> dict[str, torch.Tensor]:
        """Current physical settings of every control (trainable ones differentiable)."""
        values = {}
        for c in self.device.controls:
            if c.name in self.raw_controls:
                values[c.name] = _reparam.to_value(c, self.raw_controls[c.name])
            else:
                values[c.name] = getattr(self, f"fixed_{c.name}")
        return values

    def _values_for(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: v.to(dtype=x.dtype, device=x.device) for k, v in self.control_values().items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, *encoder in) -> (B, *readout out); x must have the dtype of the encoder's parameters.

        Raises:
            InputError: x is not a tensor, or its dtype (or the device output's) differs from the
                floating dtype of the encoder's (readout's) parameters; nothing is cast silently.
        """
        self._check_dtype("encoder", self.encoder, x, "input x")
        h = self.encoder(x) if self.encoder is not None else x
        y = self.physical_forward(h)
        self._check_dtype("readout", self.readout, y, "device output (it keeps the drive's dtype)")
        return self.readout(y) if self.readout is not None else y

    def _check_dtype(self, part: str, module: nn.Module | None, t: Any, what: str) -> None:
        """Raise InputError unless ``t`` has the floating dtype of ``module``'s first floating parameter/buffer."""
        if module is None:
            return
        if not isinstance(t, torch.Tensor):
            raise InputError(f"PhysicalLayer({self.device._label()}): {what} must be a torch.Tensor, "
                             f"got {type(t).__name__}")
        tensors = itertools.chain(module.parameters(), module.buffers())
        want = next((p.dtype for p in tensors if p.is_floating_point()), None)
        if want is not None and t.dtype != want:
            raise InputError(f"PhysicalLayer({self.device._label()}): {what} has dtype {t.dtype} but the {part} "
                             f"({type(module).__name__}) expects {want}; convert the batch with .to({want}) or "
                             f"the layer with .to({t.dtype})")

    def physical_forward(self, h: torch.Tensor) -> torch.Tensor:
        """The device step alone, through the current route."""
        if self.route == "autograd":
            return self.device(h, self._values_for(h))
        if self.route == "none":
            with torch.no_grad():
                return self.device(h.detach(), {k: v.detach() for k, v in self._values_for(h).items()})
        if self.route == "twin":
            values = self._values_for(h)
            return TwinRoute.apply(self.device, self.twin, tuple(values), h, *values.values())
        return self._spsa(h)

    def _spsa(self, h: torch.Tensor) -> torch.Tensor:
        names = self._trainable
        fixed = {k: v for k, v in self._values_for(h).items() if k not in names}

        def evaluate(x: torch.Tensor, raws, per_setting: bool = False) -> torch.Tensor:
            values = dict(fixed)
            for name, raw in zip(names, raws):
                values[name] = _reparam.to_value(self.device.control(name), raw).to(x.dtype)
            if not per_setting:
                return self.device(x, values)
            settings, batch = raws[0].shape[0], x.shape[0]
            for name in names:
                values[name] = values[name].repeat_interleave(batch, dim=0)  # (M * B, *shape)
            y = self.device(x.repeat((settings,) + (1,) * (x.dim() - 1)), values)
            return y.view((settings, batch) + tuple(y.shape[1:]))

        options = {"perturbations": self.perturbations, "epsilon": self.epsilon,
                   "generator": self.generator, "input_bounds": self.device.input_bounds,
                   "batched": self.device.batched_controls and bool(names)}
        raws = [self.raw_controls[n].to(dtype=h.dtype) for n in names]
        return SPSARoute.apply(evaluate, options, h, *raws)

    @property
    def device_calls(self) -> dict[str, int]:
        """Calls and samples sent to the device so far (the twin's are not counted here)."""
        return self.device.counter.as_dict()

    def extra_repr(self) -> str:
        return f"route={self.route!r}, trainable={list(self._trainable)}"


def _signature(device: Device) -> tuple:
    """(in_shape, out_shape, [(control name, shape)]): what a twin must share with its device."""
    return tuple(device.in_shape), tuple(device.out_shape), [(c.name, c.shape) for c in device.controls]


def check_twin_matches(device: Device, twin: Device) -> None:
    """Raise ``ConfigurationError`` unless ``twin`` has the inputs, outputs and controls of ``device``."""
    mine, its = _signature(device), _signature(twin)
    if mine != its:
        raise ConfigurationError(f"twin {twin._label()} (in, out, controls) = {its} does not match "
                                 f"{device._label()} {mine}")
