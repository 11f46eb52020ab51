"""MZIMesh: exact unitarity, the Clements decomposition, the MZI's analytic transfer, loss and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from physnn.devices.optics import MZIMesh
from physnn.devices.optics._clements import decompose, mzi_matrix
from physnn.errors import ConfigurationError, ControlError
from physnn.testing import check_device

TWO_PI = 2 * math.pi


def haar(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n)))
    return q * (np.diag(r) / np.abs(np.diag(r)))


def random_controls(mesh: MZIMesh, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {c.name: TWO_PI * torch.rand(c.shape, generator=g, dtype=torch.float64) for c in mesh.controls}


@pytest.mark.parametrize("n", [2, 3, 4, 7, 8])
def test_lossless_mesh_is_unitary_at_any_setting(n):
    mesh = MZIMesh(n)
    u = mesh.unitary(random_controls(mesh, n))
    assert u.dtype == torch.complex128
    assert float((u @ u.conj().T - torch.eye(n, dtype=u.dtype)).abs().max()) < 1e-12


def test_clements_decomposition_realizes_haar_unitaries_n2_to_16():
    for n in range(2, 17):
        target = haar(n, seed=n)
        realized = MZIMesh.from_unitary(target).unitary().numpy()
        assert np.abs(realized - target).max() < 1e-10, n
        assert sum(1 for _ in decompose(target)[0]) == n * (n - 1) // 2


@pytest.mark.parametrize("theta,cross", [(0.0, 1.0), (math.pi, 0.0), (math.pi / 2, 0.5), (1.0, math.cos(0.5) ** 2)])
def test_single_mzi_splits_power_as_cos_squared_of_half_theta(theta, cross):
    """One MZI (N = 2): light entering the top port leaves the bottom one with power cos^2(theta / 2)."""
    mesh = MZIMesh(2, output="intensity")
    controls = {"theta": torch.tensor([theta]), "phi": torch.tensor([0.3]), "output_phase": torch.zeros(2)}
    y = mesh(torch.tensor([[1.0, 0.0]], dtype=torch.float64), controls)
    assert torch.allclose(y, torch.tensor([[1 - cross, cross]], dtype=torch.float64), atol=1e-14)


def test_mzi_matrix_is_couplers_around_phase_shifters():
    b = np.array([[1, 1j], [1j, 1]]) / math.sqrt(2)
    for theta, phi in [(0.3, 1.1), (2.0, 5.0), (math.pi, math.pi)]:
        explicit = b @ np.diag([np.exp(1j * theta), 1]) @ b @ np.diag([np.exp(1j * phi), 1])
        assert np.abs(mzi_matrix(theta, phi) - explicit).max() < 1e-15
    assert np.abs(mzi_matrix(math.pi, math.pi) - np.eye(2)).max() < 1e-15  # the idle setting


def test_outputs_are_the_unitary_applied_to_the_inputs():
    field = MZIMesh(5, output="field", input="amplitude_phase", unitary=haar(5, 0))
    x = field.sample_inputs(6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    e_in = x[:, :5] * torch.exp(1j * math.pi * x[:, 5:])
    expected = e_in @ torch.from_numpy(haar(5, 0)).T
    y = field(x)
    assert torch.allclose(torch.complex(y[:, :5], y[:, 5:]), expected, atol=1e-13)
    intensity = MZIMesh(5, input="amplitude_phase", unitary=haar(5, 0))(x)
    assert torch.allclose(intensity, expected.abs() ** 2, atol=1e-13)


def test_loss_scales_power_per_mzi_and_keeps_the_mesh_otherwise_unitary():
    lossy = MZIMesh(2, loss_db=1.5)  # one MZI on every path
    u = lossy.unitary()
    assert float((u @ u.conj().T - 10 ** (-0.15) * torch.eye(2, dtype=u.dtype)).abs().max()) < 1e-14
    x = torch.rand(4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(lossy(x).sum(1), 10 ** (-0.15) * x.square().sum(1), atol=1e-14)


def test_crosstalk_adds_a_fraction_of_the_neighbours_phase():
    """N = 5: column 0 holds MZIs 0 and 1 (neighbours); with crosstalk k, MZI 0 sees theta_0 + k theta_1."""
    k = 0.1
    plain, coupled = MZIMesh(5), MZIMesh(5, crosstalk=k)
    controls = random_controls(plain, 3)
    shifted = dict(controls)
    for name in ("theta", "phi"):
        p = controls[name]
        neighbours = torch.zeros_like(p)
        for column in ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9)):  # two MZIs in each of the 5 columns
            a, b = column
            neighbours[a], neighbours[b] = p[b], p[a]
        shifted[name] = p + k * neighbours
    u = coupled.unitary(controls)
    assert torch.allclose(u, plain._propagate(torch.eye(5, dtype=u.dtype), shifted).T, atol=1e-13)
    assert float((u @ u.conj().T - torch.eye(5, dtype=u.dtype)).abs().max()) < 1e-12


def test_phase_errors_perturb_the_mesh_but_keep_it_unitary():
    nominal, faulty = MZIMesh(6), MZIMesh(6, phase_error=0.05)
    u, v = nominal.unitary(), faulty.unitary()
    assert float((v @ v.conj().T - torch.eye(6, dtype=v.dtype)).abs().max()) < 1e-12
    assert 0.01 < float((u - v).abs().max()) < 0.5


def test_detector_noise_has_the_stated_relative_std():
    mesh = MZIMesh(4, detector_noise=0.02, seed=0)
    x = torch.full((4000, 4), 0.5, dtype=torch.float64)
    y = mesh(x)
    clean = MZIMesh(4)(x[:1])
    assert abs(float((y - clean).std()) / float(clean.abs().mean()) - 0.02) < 0.002


@pytest.mark.parametrize("settings", [{}, {"output": "field"},
                                      {"input": "amplitude_phase", "loss_db": 0.3, "crosstalk": 0.05,
                                       "phase_error": 0.1}])
def test_mesh_passes_the_device_contract(settings):
    check_device(MZIMesh(3, **settings))


def test_noisy_mesh_passes_the_stochastic_contract():
    check_device(MZIMesh(3, detector_noise=0.01, seed=0),
                 checks=("shapes", "counter", "batch_independence", "determinism", "bad_inputs"))


def test_bad_configurations_and_controls_say_what_was_expected():
    with pytest.raises(ConfigurationError, match="unitary matrix"):
        MZIMesh.from_unitary(np.ones((3, 3)))
    with pytest.raises(ConfigurationError, match=r"got \(2, 3\)"):
        MZIMesh.from_unitary(np.eye(3)[:2])
    with pytest.raises(ConfigurationError, match=r"shape \(4, 4\)"):
        MZIMesh(4, unitary=np.eye(3))
    with pytest.raises(ConfigurationError, match="n_modes >= 2"):
        MZIMesh(1)
    with pytest.raises(ConfigurationError, match="output one of"):
        MZIMesh(3, output="power")
    with pytest.raises(ConfigurationError, match="crosstalk"):
        MZIMesh(3, crosstalk=0.7)
    with pytest.raises(ControlError, match="theta"):
        MZIMesh(3).unitary({"theta": torch.full((3,), 7.0)})
