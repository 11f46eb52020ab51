"""The code in the README and docs runs as written."""

import dataclasses
import importlib
import importlib.util
import inspect
import re
import sys
from pathlib import Path

import pytest

from physnn.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("path", [p for p in DOCS if _python_blocks(p)], ids=lambda p: p.name)
def test_python_blocks_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in _python_blocks(path):
        exec(compile(block, str(path), "exec"), namespace)  # noqa: S102 - our own documentation


def _generator():
    """docs/_gen/devices.py, the device-reference generator (a script of the docs build, not a package module)."""
    name = "physnn_docs_devices"
    if name not in sys.modules:  # its dataclass needs its module registered while it is executed
        spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / "_gen" / "devices.py")
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def _section(page: str, device: str) -> str:
    """The part of a family page about one catalog entry."""
    assert f".. _device-{device}:" in page, f"no section for {device!r}"
    return re.split(r"\.\. _device-|\nAPI\n", page.split(f".. _device-{device}:")[1])[0]


def _row(page: str, control: str) -> list[str]:
    """The cells of a control's row in a generated list-table: name, shape, low, high, unit, default, doc."""
    m = re.search(rf"   \* - ``{control}``\n((?:     - .*\n){{6}})", page)
    assert m is not None, f"no row for control {control!r}"
    return [control, *(line.removeprefix("     - ") for line in m[1].splitlines())]


def test_device_reference_covers_every_catalog_entry_with_signature_bounds_and_units():
    from physnn.devices._catalog import CATALOG

    gen = _generator()
    pages = gen.render()
    assert set(pages) == {"index.rst", *(f"{family}.rst" for family in gen.families())}
    for family in gen.families():
        assert f"   {family}\n" in pages["index.rst"]
    for name, entry in CATALOG.items():
        page = _section(pages[f"{gen.family_of(entry)}.rst"], name)
        assert f"physnn.devices.create({name!r})" in page
        factory = getattr(importlib.import_module(entry.target.split(":")[0]), entry.target.split(":")[1])
        for p in inspect.signature(factory).parameters.values():
            stars = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
            line = re.search(rf"\n       {re.escape(stars + p.name)}\b(.*),\n", page)
            assert line is not None, f"{name}: constructor argument {p.name!r} missing"
            if p.annotation is not p.empty:
                assert line[1].startswith(f": {p.annotation}"), f"{name}: {p.name}{line[1]}"
            if p.default is not p.empty:
                assert line[1].endswith(f" = {p.default!r}"), f"{name}: {p.name}{line[1]}"
        for text in entry.controls:  # e.g. "coupling [3] in [0, 40] 1/s^2 (default 4.0)"
            head, default = text.split(" (default")
            low, high = head[head.index(" in [") + 5:head.index("]", head.index(" in ["))].split(", ")
            unit = head[head.index("]", head.index(" in [")) + 1:].strip() or "dimensionless"
            cells = _row(page, text.split(" ")[0])
            assert cells[2:6] == [low, high, unit, default.strip(":) ")], f"{name}: {text!r} rendered as {cells}"
            assert cells[6], f"{name}: control {cells[0]!r} has no description"


def test_a_new_catalog_entry_appears_without_editing_the_docs(monkeypatch):
    from physnn.devices._catalog import CATALOG

    gen = _generator()
    monkeypatch.setitem(CATALOG, "reference-copy", CATALOG["reference"])
    page = _section(gen.render()["core.rst"], "reference-copy")
    assert "physnn.devices.create('reference-copy')" in page and "``(4,)`` / ``(4,)``" in page
    assert _row(page, "gain")[1:] == ["``[4]``", "0", "5", "V/V", "1.0", "small-signal gain of each amplifier"]


def test_a_catalog_entry_that_disagrees_with_its_device_is_an_error_naming_it(monkeypatch):
    from physnn.devices._catalog import CATALOG

    gen = _generator()
    wrong = dataclasses.replace(CATALOG["reference"], controls=("gain [9] in [0, 5] V/V (default 1.0)",))
    with pytest.raises(ConfigurationError, match=r"catalog entry 'reference-9'.*gain \[9\].*gain \[4\]"):
        gen.controls_of("reference-9", wrong)
