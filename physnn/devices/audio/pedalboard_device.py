"""Pedalboard effects and VST3/AU plugins as black-box devices (no gradients).

A real plugin cannot be differentiated, but it can be trained around: wrap it
here and use ``PhysicalLayer(device, route="twin" | "zeroth_order" | "none")``.
pedalboard is an optional dependency (``pip install 'physnn[audio]'``), imported
only when one of these is built.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ...device import Control
from ...errors import ConfigurationError, ControlError, DataNotFoundError
from ._base import AudioDevice

_NOT_KNOBS = {"process", "reset", "is_effect", "is_instrument", "parameters"}
_UNITS = {"_db": "dB", "_hz": "Hz", "_ms": "ms", "_seconds": "s"}


def import_pedalboard() -> Any:
    """The pedalboard module, or an ImportError saying how to install it."""
    try:
        import pedalboard
    except ImportError as exc:
        raise ImportError("physnn's pedalboard devices need the optional dependency pedalboard: "
                          "pip install 'physnn[audio]' (or pip install pedalboard==0.9.26)") from exc
    return pedalboard


class PedalboardEffect(AudioDevice):
    """A pedalboard plugin (built-in effect, ``Pedalboard`` chain or loaded VST3/AU) as a black box.

    x (B, T) volts -> y (B, T) volts; the batch is processed as B independent
    channels from a reset state (float32 inside pedalboard).

    Args:
        plugin: a pedalboard plugin object.
        knobs: ``{attribute: (low, high, unit)}`` to expose as controls; for a
            ``Pedalboard`` chain write ``"<index>:<attribute>"``. By default a
            loaded plugin exposes its ``parameters`` (with their ranges) and a
            built-in effect its numeric attributes, unbounded: a value pedalboard
            refuses raises :class:`ControlError`, so give ranges before training.
        sample_rate, num_samples, seed: see :class:`AudioDevice`.
    """

    name = "pedalboard"
    differentiable = False
    batched_controls = False

    def __init__(self, plugin: Any, *, knobs: Mapping[str, tuple[float, float, str]] | None = None,
                 sample_rate: float = 44100.0, num_samples: int = 44100, seed: int | None = None) -> None:
        super().__init__(sample_rate=sample_rate, num_samples=num_samples, seed=seed)
        if not callable(getattr(plugin, "process", None)):
            raise ConfigurationError(f"PedalboardEffect needs a pedalboard plugin, got {type(plugin).__name__}")
        self.plugin = plugin
        self.name = f"pedalboard({type(plugin).__name__})"
        knobs = dict(knobs) if knobs is not None else self._discover(plugin)
        controls = []
        for path, (low, high, unit) in knobs.items():
            value = float(getattr(*self._target(path)))
            controls.append(Control(path, (), float(low), float(high), unit, value, f"plugin parameter {path}"))
        self.controls = tuple(controls)

    @staticmethod
    def _discover(plugin: Any) -> dict[str, tuple[float, float, str]]:
        params = getattr(plugin, "parameters", None)
        if isinstance(params, Mapping):
            return {name: (p.min_value, p.max_value, p.units or "") for name, p in params.items()
                    if isinstance(getattr(plugin, name, None), float)}
        found = {}
        for name in dir(plugin):
            value = getattr(plugin, name, None) if not name.startswith("_") and name not in _NOT_KNOBS else None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                unit = next((u for suffix, u in _UNITS.items() if name.endswith(suffix)), "")
                found[name] = (-math.inf, math.inf, unit)
        return found

    def _target(self, path: str) -> tuple[Any, str]:
        head, _, attr = path.rpartition(":")
        owner = self.plugin[int(head)] if head else self.plugin
        if not hasattr(owner, attr):
            raise ConfigurationError(f"{type(owner).__name__} has no parameter {attr!r}")
        return owner, attr

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        for path, value in controls.items():
            try:
                setattr(*self._target(path), float(value))
            except ValueError as exc:  # pedalboard's own range checks
                raise ControlError(f"{self._label()}: {path} = {float(value):g} refused by the plugin ({exc}); "
                                   "give its valid range with knobs={name: (low, high, unit)}") from exc
        audio = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        out = self.plugin.process(audio, self.sample_rate, reset=True)
        return torch.from_numpy(np.asarray(out)).to(dtype=x.dtype, device=x.device)


def load_plugin(path: str, *, knobs: Mapping[str, tuple[float, float, str]] | None = None,
                sample_rate: float = 44100.0, num_samples: int = 44100,
                seed: int | None = None) -> PedalboardEffect:
    """Load a VST3 or Audio Unit plugin file with ``pedalboard.load_plugin`` and wrap it as a black box."""
    pedalboard = import_pedalboard()
    if not os.path.exists(path):
        raise DataNotFoundError(f"plugin file {path!r} does not exist (VST3: a .vst3 bundle; AU: a .component)")
    try:
        plugin = pedalboard.load_plugin(path)
    except ImportError as exc:
        raise ConfigurationError(f"pedalboard could not load plugin {path!r}: {exc}") from exc
    return PedalboardEffect(plugin, knobs=knobs, sample_rate=sample_rate, num_samples=num_samples, seed=seed)


def pedalboard_effect(effect: str = "Distortion", *, sample_rate: float = 44100.0, num_samples: int = 44100,
                      seed: int | None = None, **parameters: float) -> PedalboardEffect:
    """A built-in pedalboard effect by class name (``"Distortion"``, ``"Compressor"``...) with initial parameters."""
    pedalboard = import_pedalboard()
    cls = getattr(pedalboard, effect, None)
    if not isinstance(cls, type) or not hasattr(cls, "process"):
        raise ConfigurationError(f"pedalboard has no effect {effect!r}")
    try:
        plugin = cls(**parameters)
    except TypeError as exc:
        raise ConfigurationError(f"pedalboard.{effect} refused the parameters {parameters}: {exc}") from exc
    return PedalboardEffect(plugin, sample_rate=sample_rate, num_samples=num_samples, seed=seed)
