"""ScatteringMedium: transmission-matrix statistics against random-matrix theory, the camera model, files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from physnn.devices.optics import ScatteringMedium
from physnn.devices.optics._transmission import DenseTransmission, StructuredTransmission
from physnn.errors import ConfigurationError, DataFormatError, DataNotFoundError
from physnn.testing import check_device

IDEAL = {"noise": "none", "bits": None}


pytestmark = pytest.mark.usefixtures("one_thread")


def matrix(medium) -> torch.Tensor:
    """The explicit (n_camera, n_slm) matrix of a transmission, complex128."""
    return medium(torch.eye(medium.n_slm, dtype=torch.complex128)).T


def marchenko_pastur_moments(c: float) -> list[float]:
    """First four moments of the Marchenko-Pastur law of ratio c <= 1 (variance-1 entries, normalized by n)."""
    return [1.0, 1 + c, 1 + 3 * c + c**2, 1 + 6 * c + 6 * c**2 + c**3]


@pytest.mark.parametrize("kind", ["gaussian", "structured"])
@pytest.mark.parametrize("n_slm,n_camera", [(1024, 256), (256, 1024)])
def test_singular_values_follow_marchenko_pastur(kind, n_slm, n_camera):
    """Eigenvalues of T T^H (or T^H T), scaled to unit mean, have the Marchenko-Pastur moments within 3 %."""
    g = torch.Generator().manual_seed(7)
    medium = (DenseTransmission.gaussian(n_slm, n_camera, g) if kind == "gaussian"
              else StructuredTransmission(n_slm, n_camera, g))
    s2 = torch.linalg.svdvals(matrix(medium)).square() * n_slm / max(n_slm, n_camera)
    c = min(n_slm, n_camera) / max(n_slm, n_camera)
    for k, expected in enumerate(marchenko_pastur_moments(c), start=1):
        assert float((s2**k).mean()) == pytest.approx(expected, rel=0.03), (kind, k)


@pytest.mark.parametrize("kind", ["gaussian", "structured"])
def test_speckle_is_rayleigh_with_unit_contrast_and_unit_mean(kind):
    """Phase-only SLM patterns give fully developed speckle: exponential intensity, mean 1, contrast 1."""
    device = ScatteringMedium(512, 256, transmission=kind, **IDEAL)
    x = torch.rand(64, 512, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    intensity = device.intensity(2 * x)  # phases 2 pi x: uniform over the circle
    assert float(intensity.mean()) == pytest.approx(1.0, rel=0.03)
    assert float(intensity.std() / intensity.mean()) == pytest.approx(1.0, rel=0.03)
    for level in (0.5, 1.0, 2.0, 3.0):  # P(I > t <I>) = exp(-t)
        # rel 0.1: each camera pixel's row of T has its own norm (chi-square, 1024 dof), which widens the tail
        assert float((intensity > level).double().mean()) == pytest.approx(math.exp(-level), rel=0.1)


def test_structured_transmission_is_a_fixed_linear_map():
    medium = StructuredTransmission(300, 50, torch.Generator().manual_seed(0))
    e = torch.randn(5, 300, dtype=torch.complex128, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(medium(e), e @ matrix(medium).T, atol=1e-12)


def test_camera_reads_exposure_times_photon_rate_over_full_well():
    """Linear regime, no noise, no quantization: y = I * rate * exposure / full_well * 10^(gain/20)."""
    device = ScatteringMedium(64, 32, **IDEAL, photon_rate=1000.0, full_well=20000.0)
    x = torch.rand(3, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    intensity = device.intensity(x)
    expected = intensity * 1000.0 * 2.0 / 20000.0 * 2.0
    y = device(x, {"exposure": 2.0, "gain": 20 * math.log10(2.0)})
    assert torch.allclose(y, expected.clamp(max=1.0), atol=1e-12)
    saturated = device(x, {"exposure": 100.0})
    assert float(saturated.max()) == 1.0 and bool((saturated[intensity * 5 >= 1] == 1).all())


@pytest.mark.parametrize("bits", [8, 12])
def test_quantization_rounds_to_dn_and_passes_the_gradient_straight_through(bits):
    levels = 2**bits - 1
    quantized = ScatteringMedium(64, 32, noise="none", bits=bits)
    ideal = ScatteringMedium(64, 32, **IDEAL)
    x = torch.rand(4, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    y = quantized(x)
    assert torch.equal(y * levels, (y * levels).round())
    assert float((y - ideal(x)).abs().max()) <= 0.5 / levels + 1e-12
    grads = []
    for device in (quantized, ideal):
        xi = x.clone().requires_grad_()
        device(xi).sum().backward()
        grads.append(xi.grad)
    assert torch.allclose(grads[0], grads[1], rtol=1e-12, atol=1e-15)


def test_binary_dmd_is_thresholded_amplitude_with_a_straight_through_gradient():
    binary = ScatteringMedium(64, 16, encoding="binary", **IDEAL)
    amplitude = ScatteringMedium(64, 16, encoding="amplitude", **IDEAL)
    x = torch.rand(3, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(4)).requires_grad_()
    assert torch.allclose(binary(x), amplitude((x > 0.5).double()), atol=1e-14)
    binary(x).sum().backward()
    assert x.grad is not None and bool(x.grad.abs().sum() > 0)


@pytest.mark.parametrize("noise", ["gaussian", "poisson"])
def test_shot_and_read_noise_have_poisson_variance(noise):
    """Constant intensity: the variance of the photoelectron count is its mean plus read_noise^2."""
    device = ScatteringMedium(16, 64, encoding="amplitude", noise=noise, bits=None, read_noise=5.0,
                              photon_rate=500.0, full_well=1e6, seed=0)
    x = torch.full((400, 16), 0.5, dtype=torch.float64)
    electrons = device(x) * device.camera.full_well
    mean_electrons = device.intensity(x[:1])[0] * 500.0
    bright = mean_electrons > 50  # 10 read-noise sigmas: the clip at 0 electrons never acts
    assert int(bright.sum()) > 20
    standard_error = ((mean_electrons[bright] + 25.0) / x.shape[0]).sqrt()
    assert bool(((electrons.mean(0)[bright] - mean_electrons[bright]).abs() < 4 * standard_error).all())
    variance = electrons.var(0)[bright] / (mean_electrons[bright] + 25.0)
    assert float(variance.mean()) == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("kind", ["gaussian", "structured"])
def test_perturbation_decorrelates_the_medium_as_stated(kind):
    """Field sqrt(1 - s^2) T x + s T' x: speckle intensities correlate as 1 - s^2 with the nominal medium's."""
    x = torch.rand(32, 256, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    nominal = ScatteringMedium(256, 128, transmission=kind, **IDEAL).intensity(2 * x).flatten()
    for s in (0.0, 0.3, 0.6, 0.9):
        perturbed = ScatteringMedium(256, 128, transmission=kind, perturbation=s, **IDEAL).intensity(2 * x).flatten()
        correlation = float(torch.corrcoef(torch.stack([nominal, perturbed]))[0, 1])
        assert correlation == pytest.approx(1 - s**2, abs=0.05), (kind, s)


@pytest.mark.parametrize("settings", [{}, {"transmission": "structured"}, {"encoding": "amplitude"}])
def test_ideal_medium_passes_the_device_contract(settings):
    check_device(ScatteringMedium(12, 5, **IDEAL, **settings))


@pytest.mark.parametrize("settings", [{"noise": "gaussian", "bits": 12}, {"noise": "poisson"}])
def test_noisy_camera_passes_the_stochastic_contract(settings):
    device = ScatteringMedium(12, 5, seed=0, **settings)
    assert device.differentiable == (settings["noise"] != "poisson")
    check_device(device, checks=("shapes", "counter", "determinism", "bad_inputs"))


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".mat"])
def test_a_measured_matrix_loads_from_file(tmp_path, suffix):
    tm = (np.random.default_rng(0).normal(size=(6, 10)) + 1j * np.random.default_rng(1).normal(size=(6, 10))) / 4
    path = tmp_path / f"tm{suffix}"
    if suffix == ".npy":
        np.save(path, tm)
    elif suffix == ".npz":
        np.savez(path, tm=tm, wavelength=np.array(633e-9))
    else:
        pytest.importorskip("scipy").io.savemat(path, {"TM": tm})
    device = ScatteringMedium(transmission=path, **IDEAL)
    assert (device.in_shape, device.out_shape) == ((10,), (6,))
    assert ScatteringMedium(10, 6, transmission=path).in_shape == (10,)
    with pytest.raises(ConfigurationError, match=r"n_slm=784 does not match .* \(6, 10\)"):
        ScatteringMedium(784, transmission=path)
    x = torch.rand(2, 10, dtype=torch.float64)
    expected = (torch.exp(1j * math.pi * x) @ torch.from_numpy(tm.astype(np.complex64)).to(torch.complex128).T)
    assert torch.allclose(device.intensity(x), expected.abs() ** 2, atol=1e-12)


def test_bad_matrix_files_name_the_file_and_the_problem(tmp_path):
    cases = {"flat.npy": (np.ones(5, dtype=complex), "must be 2D"),
             "ints.npy": (np.ones((3, 4), dtype=np.int64), "complex \\(or real\\) floats"),
             "nan.npy": (np.array([[1.0, np.nan]], dtype=complex), r"finite, got .* at index \(0, 1\)")}
    for name, (array, message) in cases.items():
        np.save(tmp_path / name, array)
        with pytest.raises(DataFormatError, match=message):
            ScatteringMedium(transmission=tmp_path / name)
    np.savez(tmp_path / "two.npz", a=np.eye(2), b=np.eye(2))
    with pytest.raises(DataFormatError, match="one named 'tm'"):
        ScatteringMedium(transmission=tmp_path / "two.npz")
    (tmp_path / "tm.txt").write_text("1 2")
    with pytest.raises(DataFormatError, match=r"\.npy, \.npz or \.mat"):
        ScatteringMedium(transmission=tmp_path / "tm.txt")
    with pytest.raises(DataNotFoundError, match="missing.npy"):
        ScatteringMedium(transmission=tmp_path / "missing.npy")


def test_bad_settings_say_what_was_expected():
    with pytest.raises(ConfigurationError, match="2.0 GiB.*structured"):
        ScatteringMedium(65536, 4096)  # refused before any allocation
    with pytest.raises(ConfigurationError, match="encoding"):
        ScatteringMedium(8, 4, encoding="polarization")
    with pytest.raises(ConfigurationError, match="bits must be 8, 12 or None"):
        ScatteringMedium(8, 4, bits=10)
    with pytest.raises(ConfigurationError, match="noise must be one of"):
        ScatteringMedium(8, 4, noise="thermal")
    with pytest.raises(ConfigurationError, match="transmission must be one of"):
        ScatteringMedium(8, 4, transmission="uniform")
