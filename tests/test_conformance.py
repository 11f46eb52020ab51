"""``physnn check NAME`` passes, in the small check settings, on every registered device."""

import os
import re
from pathlib import Path

import pytest

from physnn.cli import main
from physnn.devices import available
from physnn.devices._catalog import CATALOG
from physnn.devices._registry import check_settings

DATA = Path(os.environ.get("PHYSNN_DATA") or Path(__file__).resolve().parents[2] / "shared" / "datasets")


def builtin_names() -> list[str]:
    return sorted(CATALOG)


def needs_data(name: str) -> None:
    if CATALOG[name].needs_data and not (DATA / CATALOG[name].needs_data).is_file():
        pytest.skip(f"{name} needs {DATA / CATALOG[name].needs_data} (set PHYSNN_DATA to shared/datasets)")


def test_every_registered_device_has_small_check_settings(monkeypatch):
    import physnn.devices._registry as registry
    monkeypatch.setattr(registry, "_REGISTERED", {})  # ignore devices other tests register at run time
    assert sorted(available()) == builtin_names()
    for name in builtin_names():  # a 44,100-sample default would make gradcheck run for hours
        assert check_settings(name), f"{name} declares no small check settings"


@pytest.mark.parametrize("name", builtin_names())
def test_physnn_check_passes(name, monkeypatch, capsys):
    needs_data(name)
    monkeypatch.setenv("PHYSNN_DATA", str(DATA))
    assert main(["check", name]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\): \d passed, \d skipped, 0 failed", out) and "FAIL" not in out
    skipped = dict(re.findall(r"  skip (\w+): (.*)", out))
    assert not {"shapes", "counter", "bad_inputs"} & set(skipped)
    assert ("gradcheck" in skipped) == (not CATALOG[name].differentiable)  # float64 gradcheck where differentiable
    # routes: passed, or (too many controls for SPSA to converge in a test) twin == autograd still checked
    assert "routes" not in skipped or skipped["routes"].startswith("twin checked")
