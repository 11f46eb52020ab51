"""Quantum hardware through a PennyLane plugin: qiskit.aer (shot-based simulator) stands in for a QPU.

The circuit runs through pennylane-qiskit exactly as it would on an IBM backend
(transpiled, sampled with shots); gradients come from parameter shift, and the
device counter reports what a QPU bills: circuit executions and shots.
"""

import pytest
import torch

pytest.importorskip("pennylane_qiskit", reason="needs pennylane-qiskit (pip install 'physnn[dev]')")

from physnn import PhysicalLayer  # noqa: E402
from physnn.devices.quantum import QuantumCircuit  # noqa: E402

SHOTS = 4000


def _pair(**kw):
    weights = 0.7 * torch.randn(1, 2, 3, generator=torch.Generator().manual_seed(0))
    exact = QuantumCircuit(2, layers=1, **kw)
    qpu = QuantumCircuit(2, layers=1, backend="qiskit.aer", shots=SHOTS, seed=1, **kw)
    return exact, qpu, {"weights": weights}


def test_plugin_runs_with_parameter_shift_and_counts_circuits_and_shots():
    exact, qpu, controls = _pair()
    assert qpu.diff_method == "parameter-shift"
    x = torch.tensor([[0.3, 2.0], [1.5, -0.7]])
    grads = []
    for device in (exact, qpu):
        layer = PhysicalLayer(device, "autograd", controls=controls)
        y = layer(x)
        (y * torch.tensor([[1.0, -1.0], [0.5, 2.0]])).sum().backward()
        grads.append((y.detach(), layer.raw_controls["weights"].grad))
    params = controls["weights"].numel()
    # B circuits forward, then B * 2 shifted circuits per weight (parameter shift)
    assert qpu.counter.circuits == 2 + 2 * 2 * params and qpu.counter.shots == SHOTS * qpu.counter.circuits
    sigma = 1 / SHOTS ** 0.5  # standard deviation of one <Z> estimate is at most 1/sqrt(shots)
    assert (grads[1][0] - grads[0][0]).abs().max() < 5 * sigma
    # each weight gradient sums 2 samples x 2 outputs of (E+ - E-)/2 with weights up to 2
    assert (grads[1][1] - grads[0][1]).abs().max() < 5 * sigma * 2 * 2 ** 0.5


@pytest.mark.slow
def test_training_on_the_plugin_lowers_the_loss():
    exact, qpu, controls = _pair()
    x = torch.tensor([[0.2, 0.1], [0.4, 2.9], [2.8, 0.3], [3.0, 2.7]])
    teacher = {"weights": 0.7 * torch.randn(1, 2, 3, generator=torch.Generator().manual_seed(5))}
    target = exact(x, teacher)  # reachable: the same circuit at other weights
    layer = PhysicalLayer(qpu, "autograd", controls=controls)
    opt = torch.optim.Adam(layer.parameters(), lr=0.3)
    losses = []
    for _ in range(12):
        opt.zero_grad()
        loss = (layer(x) - target).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses
    assert qpu.counter.circuits == 12 * 4 * (1 + 2 * controls["weights"].numel())
