"""One error vocabulary: every error physnn raises on purpose is a ``physnn.errors.PhysnnError``.

(a) walks every registered device's constructor through ``physnn.devices.create`` with bad
settings (wrong type, negative, zero, NaN, unknown option, unknown keyword) and asserts that
whatever is raised is a PhysnnError; (b) greps the source for builtin raises and error classes
defined outside ``physnn/errors.py``.
"""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path
from typing import Any

import pytest

import physnn.devices as devices
from physnn import errors
from physnn.errors import PhysnnError

SOURCE = Path(__file__).resolve().parents[1] / "physnn"

# Small settings each device is built with, so that a bad value the constructor accepts costs little
# (the bad value under test replaces the base one).
AUDIO = {"num_samples": 64}
BASE: dict[str, dict[str, Any]] = {
    "wave-2d": {"shape": (16, 24), "n_steps": 4, "absorber_width": 2},
    "quantum-circuit": {"n_qubits": 2, "layers": 1},
    "phyll-cavity": {"method": "linear", "holdout": 0.0},
    "plate": {"n_modes": 2, **AUDIO},
    **{name: AUDIO for name in ("compressor", "diode-clipper", "highpass", "lowpass", "overdrive", "peaking-eq",
                                "pedalboard")},
}
WRONG_TYPE = "not-a-number"
NUMERIC_BAD = (-1, 0, math.nan, WRONG_TYPE)
STR_BAD = ("no-such-option", 3)
UNKNOWN_KEYWORD = "no_such_setting"


def _bad_values(param: inspect.Parameter) -> tuple[Any, ...]:
    """Bad values for one constructor parameter, chosen from its default and annotation."""
    default, note = param.default, str(param.annotation)
    if isinstance(default, bool):
        return (WRONG_TYPE,)
    if isinstance(default, (int, float)) or (default is None and re.search(r"\b(int|float)\b", note)):
        return NUMERIC_BAD
    if isinstance(default, str) or (default is None and "str" in note):
        return STR_BAD
    if isinstance(default, tuple):
        return ((-1.0,) * len(default), WRONG_TYPE, 3.0)
    return (WRONG_TYPE,)


def _cases() -> list[Any]:
    cases = []
    for name in devices.available():
        params = [p for p in inspect.signature(devices.factory_of(name)).parameters.values()
                  if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        for arg in [p.name for p in params] + [UNKNOWN_KEYWORD]:
            cases.append(pytest.param(name, arg, id=f"{name}-{arg}"))
    return cases


@pytest.mark.parametrize(("name", "arg"), _cases())
def test_bad_constructor_argument_raises_physnn_error(name: str, arg: str) -> None:
    """Each bad value of ``arg`` is either accepted or refused with a PhysnnError, never a builtin error."""
    params = inspect.signature(devices.factory_of(name)).parameters
    values = _bad_values(params[arg]) if arg in params else (1,)
    escaped = []
    for value in values:
        config = {**BASE.get(name, {}), arg: value}
        try:
            devices.create(name, **config)
        except PhysnnError:
            pass
        except Exception as exc:  # noqa: BLE001 - any non-physnn error is the finding
            escaped.append(f"{name}({arg}={value!r}) raised {type(exc).__name__}: {exc}")
    assert not escaped, "\n".join(escaped)


def test_walk_covers_every_registered_device() -> None:
    walked = {case.values[0] for case in _cases()}
    assert walked == set(devices.available()) and len(walked) >= 13


def test_unknown_keyword_and_wrong_type_name_device_setting_and_value() -> None:
    with pytest.raises(errors.ConfigurationError, match=r"reference.*no_such_setting.*saturation"):
        devices.create("reference", no_such_setting=1)
    with pytest.raises(errors.ConfigurationError, match=r"'wave-2d': setting n_steps= expects int, got 'x' \(str\)"):
        devices.create("wave-2d", n_steps="x")
    with pytest.raises(errors.ConfigurationError, match=r"seed= expects int \| None, got nan"):
        devices.create("lowpass", seed=math.nan)
    with pytest.raises(errors.ConfigurationError, match=r"drive_point= expects tuple\[float, float\], got 3"):
        devices.create("plate", drive_point=3)
    assert devices.create("lowpass", num_samples=64, sample_rate=8000).sample_rate == 8000.0  # ints are floats


# (b) the static check ------------------------------------------------------------------------------------

BUILTIN_RAISE = re.compile(r"raise (ValueError|TypeError|KeyError)\b")
ERROR_CLASS = re.compile(r"^class \w*Error\(", re.MULTILINE)
SOURCES = sorted(p for p in SOURCE.rglob("*.py") if p.name != "errors.py")


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(SOURCE)) for p in SOURCES])
def test_no_builtin_raise_or_error_class_outside_errors_module(path: Path) -> None:
    text = path.read_text()
    found = [f"line {text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
             for pattern in (BUILTIN_RAISE, ERROR_CLASS) for m in pattern.finditer(text)]
    assert not found, f"physnn/{path.relative_to(SOURCE)} raises builtin errors or defines an error class " \
                      f"outside physnn/errors.py: {found}"


def test_every_error_class_is_a_physnn_error_and_a_builtin() -> None:
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, BaseException)]
    assert len(classes) > 10
    generic = (Exception, BaseException, object)
    for cls in classes:
        assert issubclass(cls, PhysnnError), cls
        if cls is not PhysnnError:
            assert any(b.__module__ == "builtins" and b not in generic for b in cls.__mro__), \
                f"{cls.__name__} derives from no specific builtin (ValueError, RuntimeError...)"
