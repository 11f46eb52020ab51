"""The silent surprises a careful user hit (issue #12, point 5), each now a clear error or an explicit choice."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

from physnn import PhysicalLayer
from physnn.devices import BlackBox, ReferenceDevice, create
from physnn.devices.wave import WaveMedium2D
from physnn.errors import ConfigurationError, GradientRouteError, InputError, StabilityError
from physnn.training import ForwardForward, physical_network

# ------------------------------------------------------------------------ dtype


def test_float64_batch_into_float32_encoder_names_layer_and_both_dtypes():
    layer = PhysicalLayer(ReferenceDevice(4), encoder=nn.Linear(3, 4), readout=nn.Linear(4, 2))
    assert layer(torch.rand(2, 3)).dtype == torch.float32
    with pytest.raises(InputError, match=r"PhysicalLayer\(ReferenceDevice\('reference'\)\): input x has dtype "
                                         r"torch.float64 but the encoder \(Linear\) expects torch.float32"):
        layer(torch.rand(2, 3, dtype=torch.float64))
    assert layer.double()(torch.rand(2, 3, dtype=torch.float64)).dtype == torch.float64  # the documented fix


def test_float64_device_output_into_float32_readout_is_refused():
    layer = PhysicalLayer(ReferenceDevice(4), readout=nn.Linear(4, 2))
    with pytest.raises(InputError, match=r"device output .* has dtype torch.float64 but the readout \(Linear\) "
                                         r"expects torch.float32"):
        layer(torch.rand(2, 4, dtype=torch.float64))


# ---------------------------------------------------------------- black box


def test_backprop_on_a_black_box_names_the_training_methods_to_use():
    box = BlackBox(ReferenceDevice(3))
    x = torch.rand(2, 3, requires_grad=True)
    with pytest.raises(GradientRouteError) as info:
        box(x)
    for method in ("PhysicsAware", "ZerothOrder", "ForwardForward", "'twin'", "'zeroth_order'", "'none'"):
        assert method in str(info.value)


# ------------------------------------------------------------- forward-forward

C = 3


def _ff(**options) -> ForwardForward:
    device = ReferenceDevice(6)
    return ForwardForward(physical_network([device], [6], drive="tanh"), n_classes=C, **options)


def _with_content() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(4, 6, generator=g) + 0.1, torch.tensor([0, 1, 2, 0])  # entries 0..2 hold content


def test_forward_forward_refuses_to_overwrite_content_by_default():
    x, y = _with_content()
    for ff in (_ff(), _ff(overwrite_inputs=False)):
        with pytest.raises(InputError, match=r"entries 0..2 .* 4 of 4 samples hold content .*pad\(x, \(3, 0\)\)"):
            ff.overlay(x, y)


def test_forward_forward_overwrites_only_when_told_to():
    x, y = _with_content()
    out = _ff(overwrite_inputs=True).overlay(x, y)
    expected = x.clone()
    expected[:, :C] = 0
    expected[torch.arange(4), y] = x.abs().amax(dim=1)
    torch.testing.assert_close(out, expected)


def test_forward_forward_accepts_room_made_for_the_label():
    x, y = _with_content()
    padded = torch.nn.functional.pad(x[:, C:], (C, 0))  # the documented fix: zeros in front
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = _ff(overwrite_inputs=False).overlay(padded, y)
    assert torch.equal(out[:, C:], padded[:, C:])


# ------------------------------------------------------------------------ Kerr

WAVE = dict(shape=(30, 40), n_steps=80, absorber_width=6, projection_beta=0.0, blur_radius=0, c0=1.0, c1=0.5)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_kerr_blow_up_is_a_stability_error_naming_c_nl_drive_and_zero_crossing(backend):
    medium = WaveMedium2D(**WAVE, c_nl=-1.0, backend=backend)
    x = torch.randn(3, 80, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(medium(0.1 * x)).all()
    x[1] *= 300
    pattern = r"c_nl = -1 m/s per field\^2 .* sample\(s\) \[1\].* the speed crosses zero .* drive peaks at \|x\| = "
    with pytest.raises(StabilityError, match=pattern):
        medium(x)
    with pytest.raises(StabilityError, match=pattern):
        medium.simulate(x)  # no NaN handed back silently


def test_kerr_field_limit_is_where_the_speed_reaches_zero_or_the_cfl_limit():
    medium = WaveMedium2D(**WAVE, c_nl=-2.0, rho_init=0.4)
    rho = medium.density(torch.full(medium.shape, 0.4, dtype=torch.float64))
    cl, q = medium.c0 + (medium.c1 - medium.c0) * rho, medium.c_nl * rho
    u, c = medium.kerr_field_limit(cl, q)
    assert c == pytest.approx(1.0 - 0.5 * 0.4) and u == pytest.approx(math.sqrt(0.8 / (2.0 * 0.4)))
    assert c + (-2.0 * 0.4) * u ** 2 == pytest.approx(0.0, abs=1e-12)  # c_lin + c_nl rho~ u^2 = 0
    hardening = WaveMedium2D(**WAVE, c_nl=2.0)
    u, c = hardening.kerr_field_limit(cl, 2.0 * rho)
    cfl = hardening.h / (hardening.dt * math.sqrt(2))
    assert c + 2.0 * 0.4 * u ** 2 == pytest.approx(cfl)


# -------------------------------------------------------------------- quantum


def test_qiskit_aer_without_shots_reports_the_shots_it_samples():
    pytest.importorskip("pennylane_qiskit", reason="needs pennylane-qiskit")
    circuit = create("quantum-circuit", n_qubits=2, layers=1, backend="qiskit.aer", seed=0)
    assert circuit.shots == 1024 and circuit.stochastic and circuit.describe()["shots"] == 1024
    x = torch.tensor([[0.3, 2.0], [1.5, -0.7]], dtype=torch.float64)
    y = circuit(x)
    assert circuit.counter.circuits == 2 and circuit.counter.shots == 2 * 1024
    exact = create("quantum-circuit", n_qubits=2, layers=1)
    assert exact.shots is None and not exact.stochastic
    assert (y - exact(x)).abs().max() < 5 / math.sqrt(1024)  # a 1024-shot estimate of the exact values
    with pytest.raises(ConfigurationError, match="adjoint needs exact expectations, but qiskit.aer samples 1024"):
        create("quantum-circuit", n_qubits=2, layers=1, backend="qiskit.aer", diff_method="adjoint")


def test_qiskit_aer_shot_sampling_follows_the_seed():
    pytest.importorskip("pennylane_qiskit", reason="needs pennylane-qiskit")
    x = torch.tensor([[0.3, 2.0], [1.5, -0.7]], dtype=torch.float64)
    runs = [create("quantum-circuit", n_qubits=2, layers=1, backend="qiskit.aer", shots=200, seed=s)(x)
            for s in (3, 3, 4)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_unknown_quantum_backend_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="backend='no-such-backend'"):
        create("quantum-circuit", n_qubits=2, backend="no-such-backend")


# --------------------------------------------------------------- twin drives
def test_a_twin_fitted_on_the_network_drives_is_accurate_where_the_network_drives():
    from physnn.devices import BlackBox, ReferenceDevice
    from physnn.training import Drive, NeuralTwin, fit_twin, network_drives, physical_network

    hardware = BlackBox(ReferenceDevice(6), seed=0)
    net = physical_network([hardware], [3], drive="unit-norm", seed=0)
    x = torch.randn(800, 6, generator=torch.Generator().manual_seed(1))
    (drives,) = network_drives(net, x)
    assert torch.equal(drives, Drive("unit-norm")(x)) and hardware.samples == 800
    target = hardware(drives)

    def error_where_the_network_drives(inputs) -> float:
        twin = NeuralTwin(6, 6, controls=hardware.controls, seed=0)
        fit_twin(hardware, twin, inputs=inputs, n_samples=800, epochs=200, seed=0)
        with torch.no_grad():
            return float((twin(drives) - target).norm() / target.norm())

    on_drives, on_uniform = error_where_the_network_drives(drives), error_where_the_network_drives("sample_inputs")
    assert on_drives < 0.6 * on_uniform, (on_drives, on_uniform)  # measured: 0.15 vs 0.40
