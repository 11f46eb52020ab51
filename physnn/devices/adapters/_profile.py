"""Instrument profiles: the SCPI dialect of an AWG + digitizer as a TOML file, not code.

A profile is a TOML file (or a dict of the same form) with the sections of
:data:`DEFAULTS`; every key is optional and a misspelt one is an error. Shipped
profiles live in ``physnn/devices/adapters/profiles/`` and are named by their
file stem (``"physnn-emulator"``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import string
import struct
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
        "sharing": "exclusive",   # "exclusive": one controlling session at a time (locked);
                                  # "independent-channels": each session has its own state (no lock)
    },
    "lock": {
        "visa": True,             # take the VISA exclusive lock where the backend has one
        "name": "",               # command declaring the owner ("{owner}" = host:pid:session), "" to skip
        "request": "",            # query asking for the lock, e.g. Keysight's "SYST:LOCK:REQ?" ("" = none)
        "granted": "1",           # its reply when the lock was granted
        "release": "",            # command releasing it, e.g. "SYST:LOCK:REL"
        "owner": "",              # query naming the current holder, e.g. "SYST:LOCK:OWN?"
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
        "verify": "resend",       # every call: "resend" the controls, or "readback" and compare (the query)
        "query": "",              # read-back query template, e.g. "CTRL:{name}?" (comma-separated reply)
        "tolerance": 1e-9,        # largest |read - sent| accepted by "readback", in the control's unit
        "knob": [],               # declared controls: {name, shape, low, high, unit, default, doc, set}
    },
}
KNOB_KEYS = {"name", "shape", "low", "high", "unit", "default", "doc", "set"}
#: Allowed values of the choice keys.
CHOICES = {("instrument", "sharing"): ("exclusive", "independent-channels"),
           ("controls", "verify"): ("resend", "readback"),
           ("awg", "format"): ("binary", "ascii"), ("digitizer", "format"): ("binary", "ascii")}
#: The fields each command template may use.
FIELDS = {("digitizer", "points"): {"points"}, ("controls", "set"): {"name", "value"},
          ("controls", "query"): {"name"}, ("lock", "name"): {"owner"}}


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
    _check_knobs(source, merged["controls"]["knob"])
    for (section, key), allowed in CHOICES.items():
        if merged[section][key] not in allowed:
            raise ConfigurationError(f"{source}: {section}.{key} must be one of {list(allowed)}, "
                                     f"got {merged[section][key]!r}")
    for (section, key), fields in FIELDS.items():
        _check_template(source, f"{section}.{key}", merged[section][key], fields)
    for section in ("awg", "digitizer"):
        _check_datatype(source, section, merged[section]["datatype"])
    if merged["controls"]["verify"] == "readback" and not merged["controls"]["query"]:
        raise ConfigurationError(f"{source}: controls.verify = 'readback' needs controls.query, "
                                 "e.g. 'CTRL:{name}?'")
    return merged


def profile_sha256(profile: Mapping[str, Any]) -> str:
    """SHA-256 of a resolved profile (canonical JSON): identifies the dialect a measurement was taken with."""
    return hashlib.sha256(json.dumps(profile, sort_keys=True).encode()).hexdigest()


def _check_knobs(source: str, knobs: list[Any]) -> None:
    for i, knob in enumerate(knobs):
        if not isinstance(knob, Mapping) or "name" not in knob or set(knob) - KNOB_KEYS:
            raise ConfigurationError(f"{source}: controls.knob[{i}] needs a name and takes only "
                                     f"{sorted(KNOB_KEYS)}; got {knob!r}")
        if not isinstance(knob["name"], str) or not isinstance(knob.get("set", ""), str):
            raise ConfigurationError(f"{source}: controls.knob[{i}] name and set must be strings, got {knob!r}")
        _check_template(source, f"controls.knob[{i}].set", knob.get("set", ""), FIELDS[("controls", "set")])


def _check_template(source: str, key: str, template: str, fields: set[str]) -> None:
    """A command template may use only ``fields``; a typo like ``{nam}`` fails here, not at the first call."""
    try:
        used = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
    except ValueError as exc:
        raise ConfigurationError(f"{source}: {key} = {template!r} is not a valid template: {exc}") from None
    unknown = {f.split(".")[0].split("[")[0] for f in used} - fields
    if unknown or "" in used:
        raise ConfigurationError(f"{source}: {key} = {template!r} uses {sorted(unknown or {'{}'})}; "
                                 f"it may use only {sorted('{' + f + '}' for f in fields)}")


def _check_datatype(source: str, section: str, datatype: str) -> None:
    try:
        ok = len(datatype) == 1 and struct.calcsize(datatype) > 0 and datatype in "bBhHiIlLqQefd"
    except struct.error:
        ok = False
    if not ok:
        raise ConfigurationError(f"{source}: {section}.datatype must be one numeric struct code "
                                 f"(b B h H i I l L q Q e f d), got {datatype!r}")


def _check_type(source: str, section: str, key: str, value: Any) -> None:
    default = DEFAULTS[section][key]
    if key in ("y_increment", "y_offset"):
        ok = isinstance(value, (str, int, float)) and not isinstance(value, bool)
    elif isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, list):
        ok = isinstance(value, list) and (key == "knob" or all(isinstance(v, str) for v in value))
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
