"""Knob presets: an audio device (an :class:`EffectChain` or one effect) and its settings as JSON.

``physnn process IN.wav OUT.wav --preset chain.json`` rebuilds the device at the
file's sample rate and length and applies the knobs. A preset reads::

    {"physnn_preset": 1,
     "device": {"factory": "physnn.devices.audio.chain:EffectChain",
                "config": {"stages": [{"__device__": {"factory": "diode-clipper", "config": {...}}}, ...]}},
     "controls": {"diode-clipper:drive": {"value": 3.2, "unit": "V/V"}, ...}}

Devices are named by registry name (or physnn class) and their constructor
settings (:meth:`physnn.Device.config`); knob values are checked against the
controls' bounds when read back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..._codec import decode, encode
from ..._saving import device_factory, rebuild
from ...device import Device
from ...errors import ConfigurationError, DataFormatError

PRESET_FORMAT = 1
#: constructor settings that follow the audio being processed, replaced when a preset is read
_FOLLOW_FILE = ("sample_rate", "num_samples")


def save_preset(device: Device, path: str | os.PathLike[str], controls: Mapping[str, Any] | None = None) -> Path:
    """Write ``device`` and its knob ``controls`` (default: every default; e.g. a trained
    ``layer.control_values()``) as a JSON preset; returns ``path``."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ConfigurationError(f"save_preset: the folder {path.parent} of {path} does not exist")
    probe = torch.zeros((1,) + tuple(device.in_shape), dtype=torch.float64)
    values = device.check_controls({k: torch.as_tensor(v).detach() for k, v in (controls or {}).items()}, probe)
    preset = {"physnn_preset": PRESET_FORMAT, "device": _describe(device),
              "controls": {c.name: {"value": values[c.name].cpu().tolist(), "unit": c.unit} for c in device.controls}}
    path.write_text(json.dumps(preset, indent=1) + "\n", encoding="utf-8")
    return path


def load_preset(path: str | os.PathLike[str], *, sample_rate: float | None = None,
                num_samples: int | None = None) -> tuple[Device, dict[str, Any]]:
    """The device of the preset at ``path`` (rebuilt with ``sample_rate`` Hz and ``num_samples``
    where given) and its knob settings by control name, checked against their bounds."""
    path = Path(path)
    try:
        preset = json.loads(path.read_text(encoding="utf-8"))
        version, description, knobs = preset["physnn_preset"], preset["device"], preset["controls"]
        values = {name: knob["value"] for name, knob in knobs.items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataFormatError(f"preset {path} cannot be read as a physnn preset: {exc!r}") from exc
    if not isinstance(version, int) or version > PRESET_FORMAT:
        raise DataFormatError(f"preset {path} has format {version!r}; this physnn reads up to {PRESET_FORMAT}")
    follow = {k: v for k, v in (("sample_rate", sample_rate), ("num_samples", num_samples)) if v is not None}
    device = _build(description, follow)
    probe = torch.zeros((1,) + tuple(device.in_shape), dtype=torch.float64)
    device.check_controls(values, probe)  # unknown knobs, wrong shapes and out-of-bounds values are named here
    return device, values


def _describe(device: Device) -> dict[str, Any]:
    tensors: dict[str, torch.Tensor] = {}
    config = {k: encode(v, k, tensors, _describe) for k, v in device.config().items()}
    if tensors:
        raise ConfigurationError(f"{device._label()}: settings {sorted(tensors)} are arrays, which a JSON preset "
                                 "does not hold; save the model with physnn.save instead")
    return {"factory": device_factory(device), "config": config}


def _build(description: dict[str, Any], follow: dict[str, Any]) -> Device:
    config = {k: decode(v, {}, lambda d: _build(d, follow)) for k, v in description["config"].items()}
    config.update({k: v for k, v in follow.items() if k in config and k in _FOLLOW_FILE})
    return rebuild(description["factory"], config)
