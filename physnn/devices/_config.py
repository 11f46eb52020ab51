"""Check a device's keyword settings against its factory's signature before building it.

:func:`check_config` refuses, with a :class:`~physnn.errors.ConfigurationError` naming the device,
the setting, the type expected and the value that came, an unknown keyword and a value whose type
contradicts a simple annotation (``int``, ``float``, ``bool``, ``str``, ``None``, ``os.PathLike``,
``tuple[float, float]``, ``Sequence[float]``, ``Mapping[...]``, a class of the factory's module,
``Sequence[ThatClass]`` and unions of them). Annotations it does not understand are left to the
constructor. Ranges (``n >= 1``...) stay the constructor's job.
"""

from __future__ import annotations

import inspect
import math
import numbers
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigurationError


def check_config(name: str, factory: Callable[..., Any], config: dict[str, Any]) -> None:
    """Raise ConfigurationError if ``config`` holds a keyword ``factory`` lacks or a value of the wrong type."""
    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    named = {k: p for k, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    unknown = sorted(set(config) - set(named))
    if unknown and not takes_any:
        raise ConfigurationError(f"device {name!r} has no setting {', '.join(map(repr, unknown))}; "
                                 f"its settings are {sorted(named)}")
    missing = [k for k, p in named.items() if p.default is p.empty and k not in config]
    if missing:
        raise ConfigurationError(f"device {name!r} needs the setting(s) {missing}")
    scope = _scope(factory)
    for key, value in config.items():
        if key in named and not _matches(value, _annotation(named[key]), scope):
            raise ConfigurationError(f"device {name!r}: setting {key}= expects {_annotation(named[key])}, "
                                     f"got {value!r} ({type(value).__name__})")


def _annotation(param: inspect.Parameter) -> str:
    note = param.annotation
    return note if isinstance(note, str) else getattr(note, "__name__", repr(note))


def _scope(factory: Callable[..., Any]) -> dict[str, Any]:
    """The names the factory's annotations refer to (its module's globals)."""
    code = factory.__init__ if isinstance(factory, type) else factory
    return getattr(code, "__globals__", {})


def _split_union(note: str) -> list[str]:
    """Top-level ``|`` parts of an annotation string (brackets respected)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(note):
        depth += ch == "["
        depth -= ch == "]"
        if ch == "|" and depth == 0:
            parts.append(note[start:i].strip())
            start = i + 1
    return parts + [note[start:].strip()]


def _matches(value: Any, note: str, scope: dict[str, Any]) -> bool:
    """Whether ``value`` fits ``note``; True when some part of the annotation is not understood."""
    verdicts = [_fits(value, part, scope) for part in _split_union(note)]
    return any(v is not False for v in verdicts)


def _fits(value: Any, part: str, scope: dict[str, Any]) -> bool | None:
    """True/False when ``part`` is understood, None when it is not."""
    if part == "None":
        return value is None
    if part == "bool":
        return isinstance(value, (bool, np.bool_))
    if part == "int":
        return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
    if part == "float":
        return _finite_real(value)
    if part == "str":
        return isinstance(value, str)
    if re.fullmatch(r"(os\.)?PathLike(\[str\])?", part):
        return isinstance(value, os.PathLike)
    tuple_of = re.fullmatch(r"tuple\[(.*)\]", part)
    if tuple_of and "..." not in tuple_of.group(1):
        items = [item.strip() for item in tuple_of.group(1).split(",")]
        if not set(items) <= {"int", "float"}:
            return None
        return (isinstance(value, (tuple, list)) and len(value) == len(items)
                and all(_fits(v, item, scope) for v, item in zip(value, items)))
    if part in ("Sequence[float]", "Sequence[int]"):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            return False
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            return False
        return array.ndim == 1 and bool(np.isfinite(array).all())
    if re.fullmatch(r"Mapping\[.*\]", part):
        return isinstance(value, Mapping)
    sequence_of = re.fullmatch(r"Sequence\[(\w+)\]", part)
    if sequence_of and isinstance(scope.get(sequence_of.group(1)), type):
        return (isinstance(value, Sequence) and not isinstance(value, (str, bytes))
                and all(isinstance(v, scope[sequence_of.group(1)]) for v in value))
    if part != "Any" and isinstance(scope.get(part), type):
        return isinstance(value, scope[part])
    return None


def _finite_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)
