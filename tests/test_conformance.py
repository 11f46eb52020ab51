"""Every registered device passes physnn.testing.check_device (in a small configuration)."""

import os
from pathlib import Path

import pytest

from physnn.devices import available, create
from physnn.testing import check_device

DATA = Path(os.environ.get("PHYSNN_DATA", Path(__file__).resolve().parents[2] / "shared" / "datasets"))

#: registered name -> (small configuration, check_device options). A new device must add a row here.
SMALL = {
    "reference": ({"n": 3}, {}),
    "coupled-pendula": ({"n": 3, "steps": 30}, {}),
    "phyll-cavity": ({"data_dir": str(DATA), "features": 200}, {}),
    "wave-2d": ({"shape": (10, 12), "n_steps": 12, "absorber_width": 2, "absorber_strength": 1.0,
                 "projection_beta": 2.0, "c_nl": -0.2}, {}),
    "quantum-circuit": ({"n_qubits": 2, "layers": 1}, {}),
    "diode-clipper": ({"num_samples": 32}, {}),
    "overdrive": ({"num_samples": 32}, {}),
    "compressor": ({"num_samples": 32}, {}),
    "lowpass": ({"num_samples": 32}, {}),
    "highpass": ({"num_samples": 32}, {}),
    "peaking-eq": ({"num_samples": 32}, {}),
    "plate": ({"num_samples": 32}, {}),
    "pedalboard": ({"effect": "Distortion", "num_samples": 64}, {}),
}
NEEDS_DATA = {"phyll-cavity": DATA / "phyll" / "acoustic_x_data.csv"}


def test_every_registered_device_has_a_conformance_row(monkeypatch):
    import physnn.devices._registry as registry
    monkeypatch.setattr(registry, "_REGISTERED", {})  # ignore devices other tests register at run time
    assert sorted(set(available()) - set(SMALL)) == []


@pytest.mark.parametrize("name", sorted(SMALL))
def test_registered_device_conforms(name):
    if name in NEEDS_DATA and not NEEDS_DATA[name].exists():
        pytest.skip(f"{name} needs {NEEDS_DATA[name]} (set PHYSNN_DATA to shared/datasets)")
    config, options = SMALL[name]
    with create(name, **config) as device:
        report = check_device(device, **options)
    assert not report.failed and {"shapes", "bad_inputs"} <= set(report.passed)
    # routes: passed, or (too many controls for SPSA to converge in a test) twin == autograd still checked
    assert "routes" in report.passed or report.skipped["routes"].startswith("twin checked")
