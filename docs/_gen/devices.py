"""The device reference, generated from the catalog at every docs build so it cannot drift.

One page per device family (each subpackage of :mod:`physnn.devices`, found at
build time, plus ``core`` for the devices defined in ``physnn.devices`` itself):
for every entry of ``physnn/devices/_catalog.py`` its registry name, its
constructor signature, shapes and controls (name, shape, bounds, unit, default
and what the knob does, read from the device built at default settings and
checked against the catalog), then the family's API from the docstrings.

As a Sphinx extension (``docs/conf.py``) the pages are written into
``docs/api/devices/`` (git-ignored) when the builder starts; ``render()`` returns
them as text for tests.
"""

from __future__ import annotations

import importlib
import inspect
import math
import pkgutil
from pathlib import Path
from typing import Any

import physnn.devices
from physnn.device import Control
from physnn.devices._catalog import CATALOG, DeviceInfo, describe_control
from physnn.errors import ConfigurationError

#: the folder (relative to the docs source) the pages are written to
OUT = Path("api") / "devices"

#: page titles of the families; a family without one (a new subpackage) is titled by its name
TITLES = {
    "core": "Oscillators, black boxes and the reference device",
    "wave": "Wave media",
    "audio": "Audio effects",
    "quantum": "Quantum circuits",
    "measured": "Measured devices",
    "adapters": "Hardware adapters",
    "optics": "Optics",
}


def controls_of(name: str, entry: DeviceInfo) -> tuple[Control, ...]:
    """The controls of the device built at default settings, which must read as its catalog entry says.

    An entry without controls is not built (the measured cavity would need its data file);
    tests/test_cli.py checks every device against its entry.
    """
    if not entry.controls:
        return ()
    device = _target(entry)()
    try:
        controls = tuple(device.controls)
    finally:
        device.close()
    described = tuple(describe_control(c) for c in controls)
    if described != tuple(entry.controls):
        raise ConfigurationError(f"catalog entry {name!r} lists the controls {list(entry.controls)}, but "
                                 f"{entry.target} at default settings has {list(described)}")
    return controls


def families() -> dict[str, str]:
    """Family name -> module: ``core`` for ``physnn.devices`` and one per subpackage present at build time."""
    subpackages = sorted(m.name for m in pkgutil.iter_modules(physnn.devices.__path__) if m.ispkg)
    return {"core": "physnn.devices", **{name: f"physnn.devices.{name}" for name in subpackages}}


def family_of(entry: DeviceInfo) -> str:
    """The family of a catalog entry: the subpackage its target lives in, else ``core``."""
    parts = entry.target.split(":")[0].split(".")
    sub = parts[2] if len(parts) > 2 and parts[:2] == ["physnn", "devices"] else ""
    return sub if sub in families() else "core"


def _target(entry: DeviceInfo) -> Any:
    module, _, attr = entry.target.partition(":")
    return getattr(importlib.import_module(module), attr)


class _Text(str):
    """An annotation kept as written (``from __future__ import annotations``), shown without quotes."""

    def __repr__(self) -> str:
        return str(self)


def signature(entry: DeviceInfo) -> str:
    """The constructor (or factory) call with every argument, its annotation and default, one per line."""
    params = list(inspect.signature(_target(entry)).parameters.values())
    lines: list[str] = []
    for i, p in enumerate(params):
        if p.kind is p.KEYWORD_ONLY and (i == 0 or params[i - 1].kind not in (p.KEYWORD_ONLY, p.VAR_POSITIONAL)):
            lines.append("*")
        if isinstance(p.annotation, str):
            p = p.replace(annotation=_Text(p.annotation))
        lines.append(str(p))
        if p.kind is p.POSITIONAL_ONLY and (i + 1 == len(params) or params[i + 1].kind is not p.POSITIONAL_ONLY):
            lines.append("/")
    name = entry.target.replace(":", ".")
    return f"{name}(\n" + "".join(f"    {line},\n" for line in lines) + ")" if lines else f"{name}()"


def _bound(x: float) -> str:
    return ("-inf" if x < 0 else "inf") if math.isinf(x) else f"{x:g}"


def _default(control: Control) -> str:
    # as `physnn devices` prints it: "1.0", or "24 values in [0.0547, 5.63]" for a many-valued default
    return describe_control(control).rsplit("(default", 1)[1].lstrip(":").strip().removesuffix(")")


def _table(rows: list[list[str]], header: list[str] | None = None) -> str:
    lines = [".. list-table::", "   :header-rows: 1" if header else "   :stub-columns: 1", ""]
    for row in ([header] if header else []) + rows:
        lines += [f"   * - {row[0]}", *(f"     - {cell}" for cell in row[1:])]
    return "\n".join(lines) + "\n"


def _heading(text: str, char: str) -> str:
    return f"{text}\n{char * len(text)}\n"


def device_section(name: str, entry: DeviceInfo) -> str:
    """The reference of one catalog entry (reStructuredText)."""
    obj = _target(entry)
    documented = entry.target.replace(":", ".")
    needs = [f"``pip install physnn[{entry.extra}]``" if entry.extra else "the base install"]
    if entry.needs_data:
        needs.append(f"the data file ``$PHYSNN_DATA/{entry.needs_data}``")
    facts = [["built by", f"``physnn.devices.create({name!r})``, a :class:`{documented}`"
              if inspect.isclass(obj) else f"``physnn.devices.create({name!r})``, a ``{entry.cls}`` "
              f"from :func:`{documented}`"],
             ["input / output shape", f"``{entry.in_shape}`` / ``{entry.out_shape}`` per sample"],
             ["differentiable", "yes" if entry.differentiable else "no (a black box: twin, zeroth-order or readout)"],
             ["needs", ", ".join(needs)],
             ["checked by ``physnn check`` at", f"``{dict(entry.check_settings)}``"]]
    rows = [[f"``{c.name}``", f"``{list(c.shape)}``" if c.shape else "scalar", _bound(c.low), _bound(c.high),
             c.unit or "dimensionless", _default(c), c.doc] for c in controls_of(name, entry)]
    parts = [f".. _device-{name}:\n", _heading(f"``{name}``", "~"),
             _table(facts),
             "Constructor:\n", ".. code-block:: python\n", *(f"   {line}" for line in signature(entry).splitlines()),
             ""]
    if rows:
        parts += ["Controls at default settings (bounds inclusive; a setting outside them is an error):\n",
                  _table(rows, ["control", "shape", "low", "high", "unit", "default", "what it does"])]
    else:
        parts.append("No controls: the device is fixed (only what comes before and after it trains).\n")
    return "\n".join(parts) + "\n"


def family_page(family: str, module: str) -> str:
    """The page of one family: its catalog entries, then its API from the docstrings."""
    title = TITLES.get(family, family.capitalize())
    entries = {name: e for name, e in CATALOG.items() if family_of(e) == family}
    parts = [".. This page is generated by docs/_gen/devices.py from physnn/devices/_catalog.py: do not edit.\n",
             _heading(f"{title}: ``{module}``", "=")]
    if entries:
        parts += [_heading("Devices", "-"),
                  f"Built-in devices of this family, at their default settings "
                  f"({len(entries)}; ``physnn devices`` lists them too).\n",
                  *(device_section(name, e) for name, e in entries.items())]
    else:
        parts.append("No catalog entries: these devices are built around an instrument, a function or another "
                     "device, whose controls they take on (see the constructors below).\n")
    parts += [_heading("API", "-"), f".. physnn-api:: {module}\n   :heading: ~\n"]
    return "\n".join(parts)


def render() -> dict[str, str]:
    """Every page of the device reference: file name -> reStructuredText."""
    fams = families()
    pages = {f"{family}.rst": family_page(family, module) for family, module in fams.items()}
    toc = "\n".join(f"   {family}" for family in fams)
    pages["index.rst"] = (".. Generated by docs/_gen/devices.py: do not edit.\n\n" + _heading("Devices", "=") +
                          "\nEvery built-in device by family: registry name, constructor signature, shapes and "
                          "controls with bounds and units, generated from ``physnn/devices/_catalog.py`` "
                          "(which tests/test_cli.py checks against the devices themselves).\n\n"
                          f".. toctree::\n   :maxdepth: 2\n\n{toc}\n")
    return pages


def write(folder: Path) -> None:
    """Write the pages into ``folder``, rewriting only those that changed and removing stale ones."""
    folder.mkdir(parents=True, exist_ok=True)
    pages = render()
    for stale in set(p.name for p in folder.glob("*.rst")) - set(pages):
        (folder / stale).unlink()
    for name, text in pages.items():
        path = folder / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def setup(app: Any) -> dict[str, Any]:
    """Sphinx entry point: generate the pages when the builder starts, before sources are read."""
    app.connect("builder-inited", lambda app: write(Path(app.srcdir) / OUT))
    return {"parallel_read_safe": True, "version": "1"}
