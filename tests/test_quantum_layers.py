"""Pauli algebra and the quantum layers of "Let the Quantum Creep In": exact identities, unitarity, gradients."""

import pennylane as qml
import pytest
import torch
from torch import nn

from physnn.devices.quantum import (
    DataReUploadingLinear,
    FlippedQuanv2d,
    hermitian_exp_i,
    pauli_coefficients,
    pauli_combination,
    pauli_matrix,
    pauli_strings,
    reupload,
    special_unitary,
)
from physnn.errors import ConfigurationError

G = torch.Generator().manual_seed(0)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_fast_pauli_combination_matches_dense_sum_and_inverts(n):
    theta = torch.randn(4 ** n - 1, generator=G, dtype=torch.float64)
    dense = sum(t * pauli_matrix(s) for t, s in zip(theta, pauli_strings(n)))
    torch.testing.assert_close(pauli_combination(theta, n), dense, atol=1e-13, rtol=0)
    c0, c = pauli_coefficients(dense + 0.7 * torch.eye(2 ** n), n)
    torch.testing.assert_close(c, theta, atol=1e-13, rtol=0)
    assert float(c0) == pytest.approx(0.7)


def test_pauli_order_and_special_unitary_match_pennylane():
    theta = torch.randn(15, generator=G, dtype=torch.float64)
    ours = special_unitary(theta, 2)
    theirs = torch.as_tensor(qml.SpecialUnitary.compute_matrix(theta.numpy(), 2))
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=0)
    assert pauli_strings(1) == ["X", "Y", "Z"] and pauli_strings(2)[:4] == ["IX", "IY", "IZ", "XI"]


def test_trainable_blocks_are_unitary():
    for n in (1, 2, 3):
        u = special_unitary(3 * torch.randn(4, 4 ** n - 1, generator=G, dtype=torch.float64), n)
        eye = torch.eye(2 ** n, dtype=u.dtype).expand_as(u)
        torch.testing.assert_close(u @ u.mH, eye, atol=1e-12, rtol=0)
        # exp(i H) with traceless H has determinant 1: a special unitary
        torch.testing.assert_close(torch.linalg.det(u), torch.ones(4, dtype=u.dtype), atol=1e-10, rtol=0)


def test_hermitian_exp_i_matches_matrix_exp_and_gradchecks():
    d = torch.randn(3, 6, 6, generator=G, dtype=torch.float64)
    expected = torch.linalg.matrix_exp(0.7j * (d + d.mT).to(torch.complex128) / 2)
    torch.testing.assert_close(hermitian_exp_i(d, 0.7), expected, atol=1e-12, rtol=0)
    assert torch.autograd.gradcheck(lambda m: hermitian_exp_i(m, 0.7), (d.clone().requires_grad_(),))
    c = torch.randn(2, 4, 4, generator=G, dtype=torch.complex128)
    torch.testing.assert_close(hermitian_exp_i(c), torch.linalg.matrix_exp(0.5j * (c + c.mH)), atol=1e-12, rtol=0)
    assert torch.autograd.gradcheck(hermitian_exp_i, (c.requires_grad_(),))
    degenerate = torch.zeros(2, 4, 4, dtype=torch.float64)
    degenerate[:, 0, 1] = 1.0  # eigenvalues -1/2, 0, 0, 1/2: repeated
    assert torch.autograd.gradcheck(lambda m: hermitian_exp_i(m, 1.3), (degenerate.requires_grad_(),))


def test_reupload_matches_dense_products_and_gradchecks():
    d = torch.randn(2, 4, 4, generator=G, dtype=torch.float64)
    blocks = torch.randn(3, 4, 4, generator=G, dtype=torch.complex128)
    psi = torch.full((2, 4), 0.5, dtype=torch.complex128)
    data = torch.linalg.matrix_exp(0.25j * (d + d.mT).to(torch.complex128) / 2)
    for r in range(3):
        psi = torch.einsum("ij,bj->bi", blocks[r], torch.einsum("bij,bj->bi", data, psi))
    torch.testing.assert_close(reupload(d, blocks, 0.25), psi, atol=1e-12, rtol=0)
    assert torch.autograd.gradcheck(lambda a, b: reupload(a, b, 0.25),
                                    (d.requires_grad_(), blocks.requires_grad_()))


def test_flipped_quanv_equals_its_linear_conv_identity():
    torch.manual_seed(1)
    layer = FlippedQuanv2d(3, 2, kernel_size=3, stride=1, padding=1).double()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    psi = layer.states()
    patches = layer.patches(x).reshape(2, 3, 25, 4, 4)
    s = (patches + patches.mT) / 2
    per_channel = torch.einsum("oia,nilac,oic->noil", psi.conj(), s.to(psi.dtype), psi).real
    expected = per_channel.mean(2) + layer.bias[None, :, None]
    torch.testing.assert_close(layer(x).flatten(2), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(psi.abs().square().sum(-1), torch.ones(2, 3, dtype=torch.float64))


@pytest.mark.parametrize("backend, method", [("default.qubit", "backprop"), ("default.qubit", "parameter-shift"),
                                             ("default.mixed", "backprop")])
def test_flipped_quanv_circuit_form_agrees_on_a_few_patches(backend, method):
    torch.manual_seed(2)
    layer = FlippedQuanv2d(2, 2).double()
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    patches = layer.patches(x)  # (1, 2, 4, 16)
    kernel = layer.kernel() * layer.in_channels  # per channel pair, without the 1/C_in mean
    for o, i in ((0, 0), (1, 1)):
        device, controls = layer.circuit(o, i, backend=backend, diff_method=method)
        circuit = device(patches[0, i], controls)[:, 0]
        classical = (patches[0, i].reshape(-1, 4, 4)[:, :3, :3] * kernel[o, i]).sum((1, 2))
        torch.testing.assert_close(circuit, classical, atol=1e-10, rtol=0)


def test_reuploading_eigh_equals_dense_outputs_and_gradients():
    torch.manual_seed(3)
    fast = DataReUploadingLinear(13, 3, 2, repetitions=4).double()
    dense = DataReUploadingLinear(13, 3, 2, repetitions=4, method="dense").double()
    dense.load_state_dict(fast.state_dict())
    x = torch.randn(5, 13, dtype=torch.float64)
    grads = []
    for layer in (fast, dense):
        xx = x.clone().requires_grad_()
        y = layer(xx)
        (y * torch.arange(15, dtype=torch.float64).reshape(5, 3)).sum().backward()
        grads.append((y.detach(), xx.grad, layer.weight.grad, layer.bias.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_reuploading_gradcheck_and_normalization():
    torch.manual_seed(4)
    layer = DataReUploadingLinear(6, 4, 2, repetitions=2).double()
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))
    # all 2**q probabilities: they sum to one, so the outputs sum to 1 + sum(bias)
    torch.testing.assert_close(layer(x).sum(1), torch.full((3,), 1 + float(layer.bias.detach().sum()), dtype=torch.float64))
    u = layer.unitaries(torch.float64)
    torch.testing.assert_close(u @ u.mH, torch.eye(4, dtype=u.dtype).expand_as(u), atol=1e-12, rtol=0)


def test_reuploading_matches_a_pennylane_circuit():
    torch.manual_seed(5)
    layer = DataReUploadingLinear(16, 3, 2, repetitions=3).double()
    x = torch.randn(2, 16, dtype=torch.float64)
    dev = qml.device("default.qubit", wires=2)

    @qml.qnode(dev, interface="torch")
    def circuit(h, w):
        qml.Hadamard(0)
        qml.Hadamard(1)
        for r in range(3):
            qml.QubitUnitary(torch.linalg.matrix_exp(1j * h / 3), wires=[0, 1])
            qml.SpecialUnitary(w[r], wires=[0, 1])
        return qml.probs(wires=[0, 1])

    d = layer.data_matrix(x)
    for b in range(2):
        h = ((d[b] + d[b].T) / 2).to(torch.complex128)
        expected = circuit(h, layer.weight.detach())[:3] + layer.bias.detach()
        torch.testing.assert_close(layer(x[b:b + 1])[0].detach(), expected, atol=1e-10, rtol=0)


def test_layers_replace_their_classical_counterparts():
    conv, linear = nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Linear(40, 10)
    q_conv, q_linear = FlippedQuanv2d.from_conv(conv), DataReUploadingLinear.from_linear(linear, repetitions=2)
    x = torch.randn(2, 3, 9, 9)
    assert q_conv(x).shape == conv(x).shape
    assert q_linear.n_qubits == 4 and q_linear(torch.randn(2, 40)).shape == (2, 10)
    with pytest.raises(ConfigurationError, match="square"):
        FlippedQuanv2d.from_conv(nn.Conv2d(1, 1, (3, 2)))
    with pytest.raises(ConfigurationError, match="outputs"):
        DataReUploadingLinear(16, 5, 2)


def _authors_reuploading(x, params, bias, n_qubits, out_features):
    """The authors' PyTorch DataReUploadingLinear, per sample, with complex ``params`` (R, 4**q - 1)."""
    dim = 2 ** n_qubits
    paulis = torch.stack([pauli_matrix(s) for s in pauli_strings(n_qubits)])
    outs = []
    for row in torch.nn.functional.pad(x, (0, dim * dim - x.shape[1])).to(torch.complex128):
        data = row.reshape(dim, dim)
        state = torch.full((dim,), dim ** -0.5, dtype=torch.complex128)
        for theta in params:
            state = torch.linalg.matrix_exp(1j * (data + data.T) / 2 / len(params)) @ state
            state = torch.linalg.matrix_exp(1j * torch.einsum("i,ijk->jk", theta, paulis)) @ state
        outs.append((state.conj() * state).real[:out_features])
    return torch.stack(outs) + bias


def test_complex_weights_follow_the_authors_model_through_adam_steps():
    # The authors store the parameters as complex tensors (imaginary parts zero at
    # first); Adam on one complex tensor must equal Adam on our (weight, weight_imag).
    torch.manual_seed(6)
    x, labels = torch.randn(4, 13, dtype=torch.float64), torch.tensor([0, 2, 1, 2])
    layer = DataReUploadingLinear(13, 3, 2, repetitions=3, complex_weights=True).double()
    params = nn.Parameter(layer.weight.detach().to(torch.complex128).clone())
    bias = nn.Parameter(layer.bias.detach().clone())
    ours, theirs = torch.optim.Adam(layer.parameters(), lr=0.05), torch.optim.Adam([params, bias], lr=0.05)
    for _ in range(4):
        for opt, out in ((ours, layer(x)), (theirs, _authors_reuploading(x, params, bias, 2, 3))):
            opt.zero_grad()
            nn.functional.cross_entropy(out, labels).backward()
            opt.step()
    torch.testing.assert_close(torch.complex(layer.weight, layer.weight_imag).detach(), params.detach(),
                               atol=1e-9, rtol=0)
    torch.testing.assert_close(layer(x), _authors_reuploading(x, params, bias, 2, 3), atol=1e-10, rtol=0)
    # trained imaginary parts: the blocks are no longer unitary, the "probabilities" no longer sum to one
    full = DataReUploadingLinear(13, 4, 2, repetitions=3, complex_weights=True).double()
    full.load_state_dict(layer.state_dict() | {"bias": torch.zeros(4, dtype=torch.float64)})
    with torch.no_grad():
        u = layer.unitaries(torch.float64)
        assert float((u @ u.mH - torch.eye(4)).abs().max()) > 1e-3
        assert float((full(x).sum(1) - 1).abs().max()) > 1e-3


def test_complex_weights_eigh_equals_dense_and_gradcheck():
    torch.manual_seed(7)
    fast = DataReUploadingLinear(10, 3, 2, repetitions=2, complex_weights=True).double()
    with torch.no_grad():
        fast.weight_imag.normal_(0, 0.3)
    dense = DataReUploadingLinear(10, 3, 2, repetitions=2, method="dense", complex_weights=True).double()
    dense.load_state_dict(fast.state_dict())
    x = torch.randn(3, 10, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(fast(x), dense(x), atol=1e-10, rtol=0)
    assert torch.autograd.gradcheck(lambda v, w, wi: torch.func.functional_call(
        fast, {"weight": w, "weight_imag": wi, "bias": fast.bias}, (v,)),
        (x, fast.weight.detach().clone().requires_grad_(), fast.weight_imag.detach().clone().requires_grad_()))


def test_complex_weights_flipped_quanv_is_not_a_circuit():
    torch.manual_seed(8)
    layer = FlippedQuanv2d(2, 3, complex_weights=True).double()
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    real = FlippedQuanv2d(2, 3).double()
    real.load_state_dict({k: v for k, v in layer.state_dict().items() if k != "weight_imag"})
    torch.testing.assert_close(layer(x), real(x), atol=1e-12, rtol=0)  # imaginary parts start at zero
    with torch.no_grad():
        layer.weight_imag.normal_(0, 0.5)
        assert float((layer.states().abs().square().sum(-1) - 1).abs().max()) > 1e-2
    with pytest.raises(ConfigurationError, match="non-normalized"):
        layer.circuit(0, 0)
