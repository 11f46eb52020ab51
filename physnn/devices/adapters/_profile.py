"""Instrument profiles: the SCPI dialect of an AWG + digitizer as a TOML file, not code.

A profile is a TOML file (or a dict of the same form) with the sections of
:data:`DEFAULTS`; every key is optional and a misspelt one is an error. Shipped
profiles live in ``physnn/devices/adapters/profiles/`` and are named by their
file stem (``"physnn-emulator"``).
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...errors import ConfigurationError

PROFILES = Path(__file__).with_name("profiles")

#: Every profile key with its default. Commands are SCPI strings; ``{points}``,
#: ``{name}`` and ``{value}`` are filled in by :class:`~physnn.devices.adapters.VisaDevice`.
DEFAULTS: dict[str, dict[str, Any]] = {
    "instrument": {
        "name": "",               # shown in messages until *IDN? answers
        "identify": "*IDN?",      # identity query ("" to skip)
        "expect_idn": "",         # substring the identity must contain
        "describe": "",           # query answering JSON in_shape/out_shape/input_bounds/delay/max_points/controls
        "reset": [],              # commands sent after every (re)connection
        "error_query": "SYST:ERR?",
        "no_error": "0",          # an error-queue reply starting with this means "empty"
    },
    "connection": {"read_termination": "\n", "write_termination": "\n", "timeout_ms": 5000,
                   "chunk_size": 1 << 20, "nodelay": True},
    "awg": {
        "setup": [],              # sent after connecting
        "upload": "SOUR:DATA ",   # prefix of the drive upload (volts)
        "format": "binary",       # "binary" (IEEE 488.2 block) or "ascii" (comma-separated)
        "datatype": "f",          # struct code of a binary upload
        "big_endian": False,
        "max_volts": 1.0,         # |drive| limit, volts (the device's input_bounds)
        "max_points": 1 << 20,    # AWG memory, samples
        "trigger": ["*TRG"],      # starts playback (and, through the trigger cable, the recording)
    },
    "digitizer": {
        "setup": [],
        "points": "ACQ:POIN {points}",  # record length per segment ("" if fixed)
        "arm": ["INIT"],
        "wait": "*OPC?",          # query returning once the acquisition is complete ("" to skip)
        "wait_reply": "1",
        "fetch": "FETC:DATA?",
        "format": "binary",
        "datatype": "h",
        "big_endian": False,
        "max_points": 1 << 20,
        "y_increment": 1.0,       # volts per code: a number or a query
        "y_offset": 0.0,          # volts at code 0: a number or a query
        "full_scale": 0,          # |code| at which the input clipped (0: no clip check)
        "delay": 0,               # samples from trigger to the response
    },
    "controls": {
        "set": "",                # command template of every control, e.g. "CTRL:{name} {value}"
        "knob": [],               # declared controls: {name, shape, low, high, unit, default, doc, set}
    },
}
KNOB_KEYS = {"name", "shape", "low", "high", "unit", "default", "doc", "set"}


def load_profile(profile: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """A complete profile from a shipped name, a TOML path or a dict; unknown keys raise ConfigurationError."""
    if isinstance(profile, Mapping):
        source, data = "profile dict", dict(profile)
    else:
        path = Path(profile)
        if path.suffix != ".toml" and path.parent == Path("."):
            path = PROFILES / f"{profile}.toml"
        if not path.exists():
            shipped = sorted(p.stem for p in PROFILES.glob("*.toml"))
            raise ConfigurationError(f"instrument profile {str(profile)!r} not found (looked for {path}); "
                                     f"pass a .toml path or a shipped name: {shipped}")
        source, data = str(path), _read_toml(path)
    merged = copy.deepcopy(DEFAULTS)
    for section, values in data.items():
        if section not in DEFAULTS or not isinstance(values, Mapping):
            raise ConfigurationError(f"{source}: unknown section [{section}]; sections are {sorted(DEFAULTS)}")
        for key, value in values.items():
            if key not in DEFAULTS[section]:
                raise ConfigurationError(f"{source}: unknown key {section}.{key}; "
                                         f"[{section}] takes {sorted(DEFAULTS[section])}")
            _check_type(source, section, key, value)
            merged[section][key] = value
    for knob in merged["controls"]["knob"]:
        extra = set(knob) - KNOB_KEYS
        if extra or "name" not in knob:
            raise ConfigurationError(f"{source}: a [[controls.knob]] needs a name and takes only "
                                     f"{sorted(KNOB_KEYS)}; got {sorted(knob)}")
    for section in ("awg", "digitizer"):
        if merged[section]["format"] not in ("binary", "ascii"):
            raise ConfigurationError(f"{source}: {section}.format must be 'binary' or 'ascii', "
                                     f"got {merged[section]['format']!r}")
    return merged


def _check_type(source: str, section: str, key: str, value: Any) -> None:
    default = DEFAULTS[section][key]
    if key in ("y_increment", "y_offset"):
        ok = isinstance(value, (str, int, float)) and not isinstance(value, bool)
    elif isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigurationError(f"{source}: {section}.{key} must be a {type(default).__name__} "
                                 f"like {default!r}, got {value!r}")


def _read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"instrument profile {path} is not valid TOML: {exc}") from exc
