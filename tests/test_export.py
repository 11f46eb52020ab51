"""Design export round trips: a wave medium's density and mask, a quantum circuit as OpenQASM 2 (read back by
Qiskit, an independent parser and simulator), and an audio chain's knobs as a preset `physnn process` reads."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from physnn import errors


def test_wave_design_files_hold_the_projected_density_and_its_mask(tmp_path):
    from PIL import Image

    from physnn.devices.wave import WaveMedium2D

    medium = WaveMedium2D(shape=(12, 16), n_steps=8, h=0.002, dt=1e-6, c0=343.0, c1=171.5, absorber_width=2,
                          blur_radius=0, projection_beta=8.0, projection_eta=0.4)
    rho = torch.rand(12, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    files = medium.export_design(tmp_path / "lens", rho, threshold=0.45)

    region = medium.design_region.numpy()
    b, e = 8.0, 0.4  # the projection, written out here independently of WaveMedium2D.density
    expected = (math.tanh(b * e) + np.tanh(b * (rho.numpy() * region - e))) / (math.tanh(b * e) + math.tanh(b * (1 - e)))
    density = np.load(files["density_npy"])
    np.testing.assert_allclose(density, expected, rtol=0, atol=1e-14)
    mask = np.loadtxt(files["mask_csv"], delimiter=",", dtype=np.int64)
    assert np.array_equal(mask, (expected >= 0.45).astype(np.int64)) and 0 < mask.sum() < region.sum()
    assert np.array_equal(np.asarray(Image.open(files["mask_png"])), 255 * mask.astype(np.uint8))
    grey = np.asarray(Image.open(files["density_png"])).astype(np.float64) / 255
    assert grey.shape == (12, 16) and np.abs(grey - expected).max() <= 0.5 / 255 + 1e-12
    sidecar = json.loads(files["json"].read_text())
    assert sidecar["cell_size_m"] == 0.002 and sidecar["c0_m_per_s"] == 343.0 and sidecar["c1_m_per_s"] == 171.5
    assert sidecar["shape"] == [12, 16] and sidecar["projection_beta"] == 8.0 and sidecar["threshold"] == 0.45
    assert sidecar["material_cells"] == int(mask.sum())
    with pytest.raises(errors.ControlError, match=r"control 'rho' must lie within its physical bounds \[0, 1\]"):
        medium.export_design(tmp_path / "bad", rho + 1)


@pytest.mark.parametrize("encoding,n_features", [("angle", 3), ("amplitude", 6)])
def test_qasm_export_reproduces_the_statevector_and_expectations_in_qiskit(tmp_path, encoding, n_features):
    pytest.importorskip("pennylane")
    pytest.importorskip("qiskit")
    from qiskit import QuantumCircuit as QiskitCircuit
    from qiskit.quantum_info import Statevector

    from physnn.devices.quantum import QuantumCircuit
    from physnn.devices.quantum.qasm import export_qasm

    circuit = QuantumCircuit(3, layers=2, encoding=encoding, in_features=n_features, seed=1)
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, n_features, generator=g, dtype=torch.float64)
    weights = {"weights": 2 * math.pi * torch.rand(circuit.control("weights").shape, generator=g,
                                                   dtype=torch.float64)}
    path = export_qasm(circuit, tmp_path / "circuit.qasm", x, weights)
    assert path.read_text().startswith("OPENQASM 2.0;")

    program = QiskitCircuit.from_qasm_str(path.read_text())
    program.remove_final_measurements()
    n = circuit.n_qubits  # Qiskit orders qubits little-endian, PennyLane big-endian
    theirs = Statevector(program).data.reshape([2] * n).transpose(list(range(n))[::-1]).reshape(-1)
    ours = circuit.state(x, weights)[0].numpy()
    phase = np.vdot(theirs, ours) / abs(np.vdot(theirs, ours))
    np.testing.assert_allclose(theirs * phase, ours, rtol=0, atol=1e-10)
    probs = np.abs(theirs) ** 2
    bits = (np.arange(2 ** n)[:, None] >> np.arange(n)[::-1]) & 1  # bit of wire w in basis state k
    z = (probs[:, None] * (1 - 2 * bits)).sum(0)
    np.testing.assert_allclose(z, circuit(x, weights)[0].numpy(), rtol=0, atol=1e-10)


def test_qasm_export_refuses_a_batch_and_noise():
    pytest.importorskip("pennylane")
    from physnn.devices.quantum import QuantumCircuit
    from physnn.devices.quantum.qasm import to_qasm

    with pytest.raises(errors.InputError, match=r"one sample.*batch of 2"):
        to_qasm(QuantumCircuit(2, layers=1, seed=0), torch.zeros(2, 2))
    noisy = QuantumCircuit(2, layers=1, seed=0, backend="default.mixed", noise={"depolarizing": 0.01})
    with pytest.raises(errors.ConfigurationError, match=r"noise channels \['depolarizing'\].*OpenQASM 2"):
        to_qasm(noisy, torch.zeros(1, 2))


def test_audio_chain_preset_round_trips_through_physnn_process(tmp_path):
    sf = pytest.importorskip("soundfile")
    from physnn.cli import main
    from physnn.devices.audio import DiodeClipper, EffectChain, PeakingEQ
    from physnn.devices.audio.preset import load_preset
    from physnn.devices.audio.wavio import process_file

    n, rate = 256, 22050
    chain = EffectChain([DiodeClipper(num_samples=n, sample_rate=rate, mode="fast"),
                         PeakingEQ(num_samples=n, sample_rate=rate)])
    knobs = {"diode-clipper:drive": torch.tensor(7.5), "peaking-eq:gain": torch.tensor(-4.0),
             "peaking-eq:frequency": torch.tensor(1800.0)}
    chain.export_preset(tmp_path / "chain.json", knobs)

    again, values = load_preset(tmp_path / "chain.json", sample_rate=rate, num_samples=n)
    assert values["diode-clipper:drive"] == 7.5 and again.stage("diode-clipper").mode == "fast"
    x = 0.4 * torch.randn(2, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(again(x, values), chain(x, knobs))

    t = np.arange(n) / rate
    sf.write(tmp_path / "in.wav", 0.5 * np.sin(2 * np.pi * 440 * t), rate, subtype="FLOAT")
    assert main(["process", str(tmp_path / "in.wav"), str(tmp_path / "cli.wav"), "--preset",
                 str(tmp_path / "chain.json")]) == 0
    process_file(str(tmp_path / "in.wav"), str(tmp_path / "api.wav"), chain, controls=knobs)
    cli, api = sf.read(tmp_path / "cli.wav")[0], sf.read(tmp_path / "api.wav")[0]
    assert np.abs(cli).max() > 0.05 and np.array_equal(cli, api)
    with pytest.raises(SystemExit) as neither:  # argparse: one of --device, --preset is required
        main(["process", str(tmp_path / "in.wav"), str(tmp_path / "none.wav")])
    assert neither.value.code == 2

    bad = json.loads((tmp_path / "chain.json").read_text())
    bad["controls"]["diode-clipper:drive"]["value"] = 80.0
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(errors.ControlError, match=r"diode-clipper:drive.*\[0, 50\] V/V, got 80"):
        load_preset(tmp_path / "bad.json")
