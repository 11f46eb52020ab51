"""physnn.save / physnn.load: bit-identical round trips on every device family, deployment onto other
instances with interface checks, fit checkpoints, and refusal of corrupt, newer or mismatched files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import physnn
from physnn import errors
from physnn.devices import BlackBox, CoupledPendula, create, registry_name
from physnn.devices.adapters import CallableDevice
from physnn.training import Backprop, fit
from physnn.training.models import physical_network
from physnn.training.twin import CalibratedTwin, NeuralTwin


def _random_controls(layer: physnn.PhysicalLayer, seed: int = 0) -> None:
    """Move every trainable control away from its default, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.raw_controls.values():
            p.add_(torch.randn(p.shape, generator=g))


def _roundtrip(saved: torch.nn.Module, x: torch.Tensor, tmp_path, **load) -> torch.nn.Module:
    """Save, load, and assert the loaded model answers ``x`` bit for bit as the saved one."""
    path = physnn.save(saved, tmp_path / "model.physnn")
    loaded = physnn.load(path, **load)
    with torch.no_grad():
        assert torch.equal(saved(x), loaded(x))
    return loaded


def _pendula_model(noise_std: float = 0.01) -> tuple[torch.nn.Module, BlackBox]:
    hardware = BlackBox(CoupledPendula(4, omega=6.5, steps=30), noise_std=noise_std, seed=3)
    model = physical_network([hardware], [3], route="twin", twins=[CoupledPendula(4, steps=30)], seed=1)
    _random_controls(model[0].physical)
    return model, hardware


def test_config_rebuilds_every_registered_simulation():
    for name in ("reference", "coupled-pendula", "wave-2d", "diode-clipper", "compressor", "peaking-eq", "plate"):
        device = create(name, **{"seed": 5, **_small(name)})
        assert registry_name(device) == name
        again = create(name, **device.config())
        assert again.config().keys() == device.config().keys()
        x = device.sample_inputs(2, torch.Generator().manual_seed(0), dtype=torch.float64)
        assert torch.equal(device(x), again(x)), name


def _small(name: str) -> dict:
    from physnn.devices._registry import check_settings

    return check_settings(name)


def test_builder_model_with_noisy_hardware_and_twin_roundtrips_bit_identically(tmp_path):
    model, _ = _pendula_model()
    x = torch.rand(6, 4, generator=torch.Generator().manual_seed(0))
    loaded = _roundtrip(model, x, tmp_path)  # the noise generator's state is restored too
    layer = loaded[0].physical
    assert layer.route == "twin" and isinstance(layer.twin, CoupledPendula) and isinstance(layer.device, BlackBox)
    assert layer.device.noise_std == 0.01 and torch.equal(layer.device.inner.omega, torch.full((4,), 6.5,
                                                                                              dtype=torch.float64))


def test_manifest_is_readable_json_with_version(tmp_path):
    model, _ = _pendula_model()
    path = physnn.save(model, tmp_path / "m.physnn")
    header, manifest = path.read_bytes().split(b"\n")[:2]
    assert header.startswith(b"physnn-model 1 sha256=")
    info = json.loads(manifest)
    assert info["format"] == 1 and info["builder"]["target"] == "physnn.training.models:physical_network"
    kinds = {d["label"]: d.get("factory") for d in info["devices"].values()}
    assert "coupled-pendula" in kinds.values() and "physnn.devices.blackbox:BlackBox" in kinds.values()


def test_twin_trained_model_deploys_onto_a_callable_hardware_adapter(tmp_path):
    model, hardware = _pendula_model(noise_std=0.0)
    physnn.save(model, tmp_path / "m.physnn")
    sim = hardware.inner
    adapter = CallableDevice(lambda x, coupling, offset: sim(x, {"coupling": coupling, "offset": offset}),
                             (4,), (4,), controls=sim.controls, name="bench")
    deployed = physnn.load(tmp_path / "m.physnn", devices={"0.physical": adapter})
    x = torch.rand(5, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(deployed(x), model(x))
    assert deployed[0].physical.device is adapter and adapter.calls == 1
    assert deployed[0].physical.route == "twin"  # the twin came back from the file
    by_index = physnn.load(tmp_path / "m.physnn", devices={0: adapter})
    assert by_index[0].physical.device is adapter


def test_a_model_trained_by_backprop_runs_on_a_black_box_with_route_none(tmp_path):
    sim = CoupledPendula(4, steps=30)
    model = physical_network([sim], [3], route="autograd")
    physnn.save(model, tmp_path / "m.physnn")
    hardware = BlackBox(CoupledPendula(4, steps=30))
    with pytest.raises(errors.GradientRouteError, match=r"route 'autograd' needs a differentiable device.*BlackBox"):
        physnn.load(tmp_path / "m.physnn", devices={0: hardware})
    deployed = physnn.load(tmp_path / "m.physnn", devices={0: hardware}, route="none")
    x = torch.rand(3, 4)
    assert torch.equal(deployed(x), model(x)) and deployed[0].physical.route == "none"


def test_deploy_names_every_interface_mismatch(tmp_path):
    model, _ = _pendula_model()
    physnn.save(model, tmp_path / "m.physnn")
    other = CoupledPendula(4, max_coupling=10.0)
    with pytest.raises(errors.ConfigurationError, match=r"layer '0.physical'.*control 'coupling' high 40.0 saved, "
                                                        r"10.0 given"):
        physnn.load(tmp_path / "m.physnn", devices={"0.physical": other})
    with pytest.raises(errors.ConfigurationError, match=r"in_shape \[4\] saved, \[5\] given"):
        physnn.load(tmp_path / "m.physnn", devices={"0": CoupledPendula(5)})
    with pytest.raises(errors.ConfigurationError, match=r"no physical layer 'readout'.*\['0.physical'\]"):
        physnn.load(tmp_path / "m.physnn", devices={"readout": other})


def test_a_function_device_is_saved_as_its_interface_and_load_asks_for_an_instance(tmp_path):
    fn = CallableDevice(lambda x: torch.tanh(x), (3,), (3,), name="bench")
    with pytest.raises(errors.NotRebuildableError, match=r"CallableDevice\('bench'\).*Python function"):
        fn.config()
    model = physical_network([fn], [2], route="none")
    physnn.save(model, tmp_path / "m.physnn")
    with pytest.raises(errors.NotRebuildableError, match=r"layer\(s\) \['0.physical'\].*bench.*devices="):
        physnn.load(tmp_path / "m.physnn")
    again = CallableDevice(lambda x: torch.tanh(x), (3,), (3,), name="bench")
    loaded = physnn.load(tmp_path / "m.physnn", devices={"0.physical": again})
    x = torch.rand(4, 3)
    assert torch.equal(loaded(x), model(x))


def test_template_models_roundtrip_on_wave_audio_and_oscillators(tmp_path):
    from physnn.devices.audio import DiodeClipper, EffectChain, PeakingEQ
    from physnn.devices.wave import WaveMedium2D, geometry

    def wave():
        return WaveMedium2D(shape=(12, 14), n_steps=16, absorber_width=2, projection_beta=2.0, c_nl=-0.2,
                            probes=[geometry.point(4, 10), geometry.point(7, 10)], seed=2)

    cases = [
        (wave, lambda: None, torch.randn(2, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)),
        (lambda: EffectChain([DiodeClipper(num_samples=24), PeakingEQ(num_samples=24)]), lambda: None,
         0.3 * torch.randn(2, 24, generator=torch.Generator().manual_seed(0))),
        (lambda: CoupledPendula(3, omega=[5.0, 6.0, 7.0], steps=20), lambda: torch.nn.Linear(3, 2), torch.rand(4, 3)),
    ]
    for make, readout, x in cases:
        torch.manual_seed(0)
        model = physnn.PhysicalLayer(make(), readout=readout()).to(x.dtype)
        _random_controls(model)
        torch.manual_seed(1)  # the template's own weights differ: they must come from the file
        template = physnn.PhysicalLayer(make(), readout=readout()).to(x.dtype)
        loaded = _roundtrip(model, x, tmp_path, model=template)
        assert loaded is template and loaded.device is not model.device


def test_measured_device_and_float64_model_roundtrip(tmp_path):
    from physnn.devices.measured import MeasuredDevice

    g = torch.Generator().manual_seed(0)
    xs = torch.rand(200, 3, generator=g, dtype=torch.float64)
    measured = MeasuredDevice(xs.numpy(), np.sin(3 * xs.numpy()), features=50, input_bounds=(0.0, 1.0))
    model = physical_network([measured], [2], route="none", seed=3).double()
    loaded = _roundtrip(model, torch.rand(5, 3, generator=g, dtype=torch.float64), tmp_path)
    assert loaded[0].linear.weight.dtype == torch.float64


def test_fitted_twins_keep_their_calibration(tmp_path):
    nominal = CoupledPendula(4, steps=30)
    calibrated = CalibratedTwin(nominal, calibrate=("omega",))
    neural = NeuralTwin.like(nominal, hidden=8)
    with torch.no_grad():
        calibrated.nominal.omega.mul_(1.1)
        calibrated.gain.mul_(0.9)
        next(neural.parameters()).add_(0.5)
    x = torch.rand(3, 4, generator=torch.Generator().manual_seed(2))
    for twin in (calibrated, neural):
        model = physical_network([BlackBox(nominal)], [2], route="twin", twins=[twin])
        loaded = physnn.load(physnn.save(model, tmp_path / "m.physnn"))
        again = loaded[0].physical.twin
        assert type(again) is type(twin)
        assert torch.equal(again(x), twin(x))


def test_quantum_layer_roundtrips(tmp_path):
    pytest.importorskip("pennylane")
    from physnn.devices.quantum import QuantumCircuit

    model = physnn.PhysicalLayer(QuantumCircuit(2, layers=1, seed=4), readout=torch.nn.Linear(2, 1))
    _random_controls(model)
    template = physnn.PhysicalLayer(QuantumCircuit(2, layers=1, seed=9), readout=torch.nn.Linear(2, 1))
    _roundtrip(model, torch.rand(3, 2), tmp_path, model=template)


def test_fit_checkpoint_loads_into_the_model_fit_trained(tmp_path):
    model, _ = _pendula_model(noise_std=0.0)
    x = torch.rand(16, 4, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(0))
    fit(Backprop(model, in_silico=True, lr=0.05), (x, y), epochs=1, out_dir=tmp_path, progress=False, plot=False)
    template, _ = _pendula_model(noise_std=0.0)
    loaded = physnn.load(tmp_path / "checkpoint.pt", model=template)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(errors.ConfigurationError, match="fit\\(\\) checkpoint.*model="):
        physnn.load(tmp_path / "checkpoint.pt")
    bench = CallableDevice(lambda v, coupling, offset: model[0].physical.device(v, {"coupling": coupling,
                                                                                  "offset": offset}),
                           (4,), (4,), controls=model[0].physical.device.controls)
    again, _ = _pendula_model(noise_std=0.0)
    deployed = physnn.load(tmp_path / "checkpoint.pt", model=again, devices={0: bench}, route="none")
    with torch.no_grad():
        assert torch.equal(deployed(x), model(x)) and deployed[0].physical.device is bench


def test_corrupt_newer_and_mismatched_files_are_refused(tmp_path):
    model, _ = _pendula_model()
    path = physnn.save(model, tmp_path / "m.physnn")
    data = path.read_bytes()
    bad = tmp_path / "bad.physnn"
    bad.write_bytes(data[:-10])
    with pytest.raises(errors.ModelFileError, match=r"bad.physnn is corrupt"):
        physnn.load(bad)
    bad.write_bytes(data.replace(b"physnn-model 1 ", b"physnn-model 7 ", 1))
    with pytest.raises(errors.ModelFileError, match=r"format 7, newer than this physnn reads \(1\)"):
        physnn.load(bad)
    bad.write_bytes(b"")
    with pytest.raises(errors.ModelFileError, match="is empty"):
        physnn.load(bad)
    wrong = physical_network([CoupledPendula(4, steps=30)], [5], route="none")
    with pytest.raises(errors.ModelFileError, match=r"does not fit Sequential.*0.linear.weight \(5, 8\) "
                                                    r"torch.float32 vs saved \(3, 8\)"):
        physnn.load(path, model=wrong)
    plain = torch.nn.Sequential(physnn.PhysicalLayer(CoupledPendula(3)))
    physnn.save(plain, tmp_path / "plain.physnn")
    with pytest.raises(errors.ModelFileError, match=r"Sequential was not made by a physnn model builder.*model="):
        physnn.load(tmp_path / "plain.physnn")


@pytest.mark.slow  # fitting the cavity's 10,000 pairs twice (build and rebuild) takes ~12 s on this machine
def test_measured_cavity_is_saved_by_its_data_source_not_its_arrays(tmp_path):
    data = Path(os.environ.get("PHYSNN_DATA", ""))
    if not (data / "phyll" / "acoustic_x_data.csv").is_file():
        pytest.skip(f"PhyLL cavity CSVs not found under {data}/phyll (set PHYSNN_DATA)")
    cavity = create("phyll-cavity", features=200)
    assert cavity.config() == {"data_dir": None, "method": "ridge-rff", "input_bounds": (0.0, 1.0), "features": 200}
    model = physical_network([cavity], [3], route="none")
    path = physnn.save(model, tmp_path / "cavity.physnn")
    assert path.stat().st_size < 100_000  # the factory's settings, not 2 x 10,000 x 20 measured values
    _roundtrip(model, torch.rand(4, 20, generator=torch.Generator().manual_seed(0)), tmp_path)


def test_a_file_cannot_make_load_call_anything_but_physnn_devices_and_data(tmp_path):
    from physnn._codec import decode

    def manifest_with(path, replace: bytes, by: bytes):
        """The saved file with ``replace`` swapped for ``by`` in its manifest and a matching digest."""
        import hashlib

        header, body = path.read_bytes().split(b"\n", 1)
        body = body.replace(replace, by, 1)
        out = tmp_path / "evil.physnn"
        out.write_bytes(f"physnn-model 1 sha256={hashlib.sha256(body).hexdigest()}\n".encode() + body)
        return out

    model, _ = _pendula_model()
    path = physnn.save(model, tmp_path / "m.physnn")
    evil = manifest_with(path, b'"physnn.training.models:physical_network"', b'"os:system"')
    with pytest.raises(errors.ModelFileError, match=r"'os:system'; only physnn's own"):
        physnn.load(evil)
    evil = manifest_with(path, b'"physnn.training.models:physical_network"', b'"physnn.training.models:Drive"')
    with pytest.raises(errors.ModelFileError, match=r"not a physnn model builder"):
        physnn.load(evil)
    with pytest.raises(errors.ModelFileError, match=r"physnn._atomic:atomic_write, which is not a data class"):
        decode({"__dataclass__": "physnn._atomic:atomic_write", "fields": {}}, {}, lambda key: None)
    with pytest.raises(errors.ModelFileError, match=r"dtype 'load'"):
        decode({"__dtype__": "load"}, {}, lambda key: None)
