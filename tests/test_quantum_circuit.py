"""QuantumCircuit: analytic physics, agreement with PennyLane, gradient methods, shots, noise, cost counting."""

import math

import numpy as np
import pennylane as qml
import pytest
import torch

from physnn.devices.quantum import QuantumCircuit
from physnn.devices.quantum._compile import _Permute
from physnn.errors import ConfigurationError, GradientRouteError, InputError
from physnn.testing import check_device

ANALYTIC = ["compiled", "backprop", "parameter-shift"]


def _run(device, x, w):
    return device(x, {"weights": w})


@pytest.mark.parametrize("method", ANALYTIC)
def test_one_qubit_rotation_gives_cosine(method):
    # RX(x) then RX(w): <Z> = cos(x + w); d<Z>/dx = -sin(x + w)
    dev = QuantumCircuit(1, ansatz="basic_entangler", layers=1, diff_method=method)
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None].requires_grad_()
    w = torch.tensor([[0.4]], dtype=torch.float64, requires_grad=True)
    y = _run(dev, x, w)
    torch.testing.assert_close(y[:, 0], torch.cos(x[:, 0] + 0.4), atol=1e-12, rtol=0)
    y.sum().backward()
    torch.testing.assert_close(x.grad[:, 0], -torch.sin(x[:, 0].detach() + 0.4), atol=1e-12, rtol=0)
    torch.testing.assert_close(w.grad, -torch.sin(x.detach() + 0.4).sum().reshape(1, 1), atol=1e-12, rtol=0)


@pytest.mark.parametrize("method", ANALYTIC)
def test_entangled_pair_expectations(method):
    # RY(x0) (x) RY(x1), then CNOT (the basic entangler with zero angles): <Z0> = cos x0, <Z1> = cos x0 cos x1
    dev = QuantumCircuit(2, ansatz="basic_entangler", layers=1, rotation="Y", diff_method=method)
    x = torch.tensor([[0.3, 1.1], [2.0, -0.7], [math.pi, 0.2]], dtype=torch.float64)
    y = _run(dev, x, torch.zeros(1, 2, dtype=torch.float64))
    expected = torch.stack([torch.cos(x[:, 0]), torch.cos(x[:, 0]) * torch.cos(x[:, 1])], 1)
    torch.testing.assert_close(y, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("method", ["compiled", "backprop"])
def test_amplitude_encoding_then_cnots_permutes_probabilities(method):
    # zero Rot angles leave CNOT(0,1), CNOT(1,0): amplitudes [a00, a01, a10, a11] -> [a00, a10, a11, a01]
    dev = QuantumCircuit(2, encoding="amplitude", layers=1, measurement="probs", in_features=3, diff_method=method)
    x = torch.tensor([[1.0, 2.0, 2.0], [0.0, 3.0, -4.0]], dtype=torch.float64)
    y = _run(dev, x, torch.zeros(1, 2, 3, dtype=torch.float64))
    a = torch.nn.functional.pad(x, (0, 1)) / x.norm(dim=1, keepdim=True)
    torch.testing.assert_close(y, a[:, [0, 2, 3, 1]] ** 2, atol=1e-12, rtol=0)
    torch.testing.assert_close(y.sum(1), torch.ones(2, dtype=torch.float64), atol=1e-12, rtol=0)


def test_amplitude_encoding_rejects_a_zero_sample():
    dev = QuantumCircuit(2, encoding="amplitude")
    with pytest.raises(InputError, match="nonzero"):
        dev(torch.zeros(2, 4))


@pytest.mark.parametrize("method", ANALYTIC)
def test_data_as_observable(method):
    # exp(i t IX)|00> = cos t |00> + i sin t |01>: <H> = cos^2 t H00 + sin^2 t H11 for real symmetric H
    dev = QuantumCircuit(2, encoding="observable", ansatz="special_unitary", layers=1, diff_method=method)
    t = 0.3
    w = torch.zeros(1, 15, dtype=torch.float64)
    w[0, 0] = t  # "IX"
    d = torch.randn(4, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = _run(dev, d, w)
    h = d.reshape(4, 4, 4)
    expected = math.cos(t) ** 2 * h[:, 0, 0] + math.sin(t) ** 2 * h[:, 1, 1]
    torch.testing.assert_close(y[:, 0], expected, atol=1e-12, rtol=0)


def _pennylane_reference(n, x, w, measurement="expval"):
    dev = qml.device("default.qubit", wires=n)

    @qml.qnode(dev, interface="torch", diff_method="backprop")
    def circuit(x, w):
        qml.AngleEmbedding(x, wires=range(n))
        qml.StronglyEntanglingLayers(w, wires=range(n))
        if measurement == "probs":
            return qml.probs(wires=range(n))
        return [qml.expval(qml.Z(i)) for i in range(n)]

    out = circuit(x, w)
    return out if measurement == "probs" else torch.stack(out, -1)


@pytest.mark.parametrize("measurement", ["expval_z", "probs"])
def test_compiled_matches_pennylane_templates_in_float64(measurement):
    n, g = 3, torch.Generator().manual_seed(3)
    x = torch.rand(6, n, generator=g, dtype=torch.float64) * 3
    w = torch.rand(3, n, 3, generator=g, dtype=torch.float64) * 6
    weight = torch.linspace(-1, 1, 6 * (n if measurement == "expval_z" else 2 ** n), dtype=torch.float64)
    results = []
    for f in (lambda a, b: _run(QuantumCircuit(n, layers=3, measurement=measurement), a, b),
              lambda a, b: _pennylane_reference(n, a, b, "probs" if measurement == "probs" else "expval")):
        xx, ww = x.clone().requires_grad_(), w.clone().requires_grad_()
        y = f(xx, ww)
        (y.flatten() * weight).sum().backward()
        results.append((y.detach(), xx.grad, ww.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_compiled_float32_agrees_with_pennylane_to_1e5():
    n, g = 4, torch.Generator().manual_seed(4)
    x = torch.rand(32, n, generator=g) * 3
    w = torch.rand(2, n, 3, generator=g) * 6
    xx, ww = x.clone().requires_grad_(), w.clone().requires_grad_()
    y = _run(QuantumCircuit(n), xx, ww)
    assert y.dtype == torch.float32
    y.mean().backward()
    x64, w64 = x.double().requires_grad_(), w.double().requires_grad_()
    ref = _pennylane_reference(n, x64, w64)
    ref.mean().backward()
    for a, b in ((y, ref), (xx.grad, x64.grad), (ww.grad, w64.grad)):
        assert float((a.detach().double() - b.detach()).abs().max()) < 1e-5


def test_backprop_and_parameter_shift_gradients_agree():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(4, 3, generator=g, dtype=torch.float64) * 3
    w = torch.rand(2, 3, 3, generator=g, dtype=torch.float64) * 6
    grads = []
    for method in ("backprop", "parameter-shift"):
        xx, ww = x.clone().requires_grad_(), w.clone().requires_grad_()
        y = _run(QuantumCircuit(3, diff_method=method), xx, ww)
        (y * torch.arange(12, dtype=torch.float64).reshape(4, 3)).sum().backward()
        grads.append((xx.grad, ww.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_parameter_shift_counts_circuits_and_shots():
    dev = QuantumCircuit(2, layers=1, shots=100, seed=0)
    x = torch.rand(5, 2, dtype=torch.float64, requires_grad=True)
    w = torch.rand(1, 2, 3, dtype=torch.float64, requires_grad=True)
    y = _run(dev, x, w)
    assert dev.counter.as_dict() == {"calls": 1, "samples": 5, "circuits": 5, "shots": 500}
    y.sum().backward()
    # 6 Rot angles x 2 shifts + 2 input features x 2 shifts, each a broadcast tape of 5 circuits
    assert dev.counter.circuits == 5 + (12 + 4) * 5 and dev.counter.shots == 100 * dev.counter.circuits
    assert x.grad.shape == x.shape and w.grad.shape == w.shape


def test_shot_noise_statistics():
    # <Z> = cos(x + w) estimated from N shots has variance (1 - <Z>^2) / N, independently per sample
    shots, batch = 400, 400
    dev = QuantumCircuit(1, ansatz="basic_entangler", layers=1, shots=shots, seed=11)
    x = torch.linspace(-2.5, 2.5, batch, dtype=torch.float64)[:, None]
    w = torch.full((1, 1), 0.2, dtype=torch.float64)
    exact = torch.cos(x[:, 0] + 0.2)
    z = (_run(dev, x, w)[:, 0] - exact) / torch.sqrt((1 - exact ** 2) / shots)
    assert abs(float(z.mean())) < 4 / math.sqrt(batch)
    assert 0.85 < float(z.std()) < 1.15
    dev.reseed(11)
    first = _run(dev, x, w)
    dev.reseed(11)
    torch.testing.assert_close(_run(dev, x, w), first, atol=0, rtol=0)


def test_parameter_shift_with_shots_is_unbiased():
    dev = QuantumCircuit(1, ansatz="basic_entangler", layers=1, shots=20_000, seed=2)
    x = torch.full((8, 1), 0.5, dtype=torch.float64)
    w = torch.full((1, 1), 0.3, dtype=torch.float64, requires_grad=True)
    _run(dev, x, w).sum().backward()
    exact = -8 * math.sin(0.8)
    # 8 samples x 2 shifts, each an estimate with std <= 1/sqrt(shots), halved
    assert abs(float(w.grad) - exact) < 5 * 8 * math.sqrt(2) / 2 / math.sqrt(20_000)


@pytest.mark.parametrize("p", [0.0, 0.1, 0.3])
def test_depolarizing_noise_shrinks_bloch_vector_and_purity(p):
    dev = QuantumCircuit(1, ansatz="basic_entangler", layers=1, backend="default.mixed", noise={"depolarizing": p})
    assert dev.diff_method == "backprop"
    x = torch.tensor([[0.0], [0.7], [2.0]], dtype=torch.float64)
    w = torch.zeros(1, 1, dtype=torch.float64)
    shrink = 1 - 4 * p / 3
    torch.testing.assert_close(_run(dev, x, w)[:, 0], shrink * torch.cos(x[:, 0]), atol=1e-12, rtol=0)
    rho = dev.state(x, {"weights": w})
    purity = torch.einsum("bij,bji->b", rho, rho).real
    torch.testing.assert_close(purity, torch.full((3,), (1 + shrink ** 2) / 2, dtype=torch.float64), atol=1e-12,
                               rtol=0)
    torch.testing.assert_close(torch.einsum("bii->b", rho).real, torch.ones(3, dtype=torch.float64))


def test_amplitude_damping_drives_towards_ground_state():
    dev = QuantumCircuit(1, ansatz="basic_entangler", layers=1, backend="default.mixed",
                         noise={"amplitude_damping": 0.25})
    # |1> decays to |0> with probability gamma: <Z> = -1 + 2 gamma
    y = _run(dev, torch.tensor([[math.pi]], dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64))
    assert float(y) == pytest.approx(-0.5, abs=1e-12)


def test_states_are_normalized():
    g = torch.Generator().manual_seed(6)
    for dev in (QuantumCircuit(3), QuantumCircuit(2, ansatz="special_unitary"),
                QuantumCircuit(3, encoding="amplitude", ansatz="basic_entangler", diff_method="backprop")):
        x = torch.rand(5, dev.in_features, generator=g, dtype=torch.float64) + 0.1
        psi = dev.state(x)
        torch.testing.assert_close(psi.abs().square().sum(1), torch.ones(5, dtype=torch.float64))


def test_permutation_backward_gradcheck():
    perm = torch.tensor([2, 0, 3, 1])
    psi = torch.randn(3, 4, dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: _Permute.apply(p, perm, torch.argsort(perm)), (psi,))


def test_compiled_device_passes_check_device():
    report = check_device(QuantumCircuit(2, layers=1))
    assert not report.failed and "gradcheck" in report.passed


def test_parameter_shift_device_passes_check_device():
    report = check_device(QuantumCircuit(1, ansatz="basic_entangler", layers=1, diff_method="parameter-shift"),
                          spsa_perturbations=64)
    assert not report.failed and "gradcheck" in report.passed


def test_device_with_shots_passes_the_contract_checks_that_apply():
    dev = QuantumCircuit(1, ansatz="basic_entangler", layers=1, shots=50, seed=0)
    assert dev.stochastic
    report = check_device(dev, checks=("shapes", "counter", "batch_independence", "determinism", "bad_inputs"))
    assert not report.failed


@pytest.mark.parametrize("config, match", [
    ({"encoding": "pixels"}, "encoding"),
    ({"encoding": "observable", "measurement": "expval_z"}, "observable"),
    ({"diff_method": "compiled", "shots": 10}, "compiled"),
    ({"diff_method": "backprop", "shots": 10}, "shots"),
    ({"noise": {"depolarizing": 2.0}}, "noise"),
    ({"in_features": 3}, "in_features"),
])
def test_bad_configurations_are_refused(config, match):
    with pytest.raises(ConfigurationError, match=match):
        QuantumCircuit(2, **config)


def test_default_weights_are_fixed_and_generic():
    a, b = QuantumCircuit(2).control("weights"), QuantumCircuit(2).control("weights")
    assert a.default == b.default and np.ptp(np.asarray(a.default)) > 1.0


def test_observable_encoding_gradients_agree_across_methods():
    g = torch.Generator().manual_seed(8)
    d = torch.randn(3, 16, generator=g, dtype=torch.float64)
    w = torch.randn(1, 15, generator=g, dtype=torch.float64)
    grads = []
    for method in ("compiled", "parameter-shift"):
        dev = QuantumCircuit(2, encoding="observable", ansatz="special_unitary", layers=1, diff_method=method)
        dd, ww = d.clone().requires_grad_(), w.clone().requires_grad_()
        (_run(dev, dd, ww)[:, 0] * torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)).sum().backward()
        grads.append((dd.grad, ww.grad))
        # the state does not depend on the data: one set of Pauli measurements serves the whole batch
        assert method == "compiled" or dev.counter.circuits == 1 + 2 * 15
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_parameter_shift_names_what_it_cannot_differentiate():
    dev = QuantumCircuit(2, encoding="amplitude", layers=1, diff_method="parameter-shift")
    x = torch.rand(2, 4, dtype=torch.float64, requires_grad=True)
    with pytest.raises(GradientRouteError, match="angle encoding"):
        dev(x).sum().backward()
