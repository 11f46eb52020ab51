"""SHGCrystal against the analytic limits of second-harmonic generation, its gradients and the device contract."""

from __future__ import annotations

import math

import pytest
import torch

from physnn.devices.optics import SHGCrystal
from physnn.errors import ConfigurationError, ControlError
from physnn.testing import check_device

C128 = torch.complex128


def shaped_pulse(device: SHGCrystal, seed: int = 0) -> torch.Tensor:
    """A randomly phase-shaped FH spectrum (1, n_freq), complex128."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, device.in_features, generator=g, dtype=torch.float64) * 2 - 1
    phase = torch.rand(device.n_controls, generator=g, dtype=torch.float64) * 2 * math.pi
    return device.input_spectrum(x, phase).to(C128)


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().norm() / b.abs().norm())


@pytest.mark.parametrize("dk", [0.0, 2.0])
def test_weak_conversion_matches_the_undepleted_pump_spectrum(dk):
    """A2(W, L) = -i k L F[A1^2] exp(i (dk - gvm W) L / 2) sinc((gvm W + dk) L / 2), complex, to 1 %."""
    length, gvm, kappa = 2.0, 60.0, 1e-4
    device = SHGCrystal(8, 8, pulse_fs=40.0, length_mm=length, coupling=kappa, gvm_fs_per_mm=gvm, dk_per_mm=dk,
                        steps=200, n_freq=512)
    a1 = shaped_pulse(device)
    _, a2 = device.propagate(a1)
    w = device.omega
    source = torch.fft.fft(torch.fft.ifft(a1, norm="ortho") ** 2, norm="ortho")
    u = (gvm * w + dk) * length / 2
    analytic = -1j * kappa * length * source * torch.polar(torch.ones_like(w), (dk - gvm * w) * length / 2) \
        * torch.sinc(u / math.pi)
    assert relative_error(a2, analytic) < 1e-2
    # the walk-off's sinc filter matters here: without it the spectrum is off by far more than 1 %
    assert relative_error(a2, -1j * kappa * length * source) > 0.1


@pytest.mark.parametrize("drive", [0.3, 1.0, 2.0])
def test_conversion_without_walk_off_follows_the_depleted_pump_tanh_squared(drive):
    """gvm = dk = 0: each instant converts tanh^2(kappa |A1(t)| L) of its power (any pulse shape)."""
    device = SHGCrystal(8, 8, coupling=drive, length_mm=1.0, gvm_fs_per_mm=0.0, steps=100, n_freq=512)
    a1 = shaped_pulse(device, seed=1)
    _, a2 = device.propagate(a1)
    power = torch.fft.ifft(a1, norm="ortho").abs() ** 2
    expected = float((power * torch.tanh(drive * power.sqrt()) ** 2).sum() / power.sum())
    measured = float((a2.abs() ** 2).sum() / (a1.abs() ** 2).sum())
    assert measured == pytest.approx(expected, rel=1e-2)
    # a flat (CW) drive is the textbook curve itself
    flat = torch.full_like(a1, 0)
    flat[0, 0] = math.sqrt(device.omega.numel())  # |A1(t)| = 1 everywhere
    _, a2_flat = device.propagate(flat)
    assert float((a2_flat.abs() ** 2).sum() / (flat.abs() ** 2).sum()) == pytest.approx(math.tanh(drive) ** 2,
                                                                                        rel=1e-6)


@pytest.mark.parametrize("dk", [0.0, 3.0])
def test_fh_plus_sh_energy_is_conserved_with_walk_off_and_dispersion(dk):
    device = SHGCrystal(8, 8, coupling=1.5, gvm_fs_per_mm=80.0, gvd_fs2_per_mm=(50.0, 120.0), dk_per_mm=dk,
                        steps=64, n_freq=512)
    a1 = shaped_pulse(device, seed=2)
    f1, f2 = device.propagate(a1)
    before = float((a1.abs() ** 2).sum())
    after = float((f1.abs() ** 2).sum() + (f2.abs() ** 2).sum())
    assert abs(after - before) / before < 1e-6
    assert float((f2.abs() ** 2).sum()) / before > 0.05  # a strongly converting case, not a trivial one


def test_outputs_are_sh_energy_fractions_binned_over_the_sh_band():
    device = SHGCrystal(4, 4, out_features=8, coupling=0.8, n_freq=384, gvm_fs_per_mm=20.0, steps=16)
    x = torch.rand(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    phase = torch.full((4,), 1.0, dtype=torch.float64)
    y = device(x, {"phase": phase})
    spectrum = device.input_spectrum(x, phase).to(C128)
    _, a2 = device.propagate(spectrum)
    total_sh = (a2.abs() ** 2).sum(1) / (spectrum.abs() ** 2).sum(1)
    assert torch.all(y >= 0)
    # the SH band holds nearly all of the generated light, in units of the transform-limited pulse's SH yield
    in_band = y.sum(1) * device.tl_efficiency
    assert torch.all(in_band <= total_sh) and torch.all(in_band > 0.9 * total_sh)
    # a transform-limited pulse converts best: shaping phases spread it in time
    flat = device(torch.zeros(1, 4, dtype=torch.float64), {"phase": torch.zeros(4, dtype=torch.float64)})
    assert float(flat.sum()) > float(y.sum(1).max())
    assert float(flat.sum()) == pytest.approx(1.0, abs=0.02)


def test_gradients_pass_gradcheck_for_drives_and_phases():
    device = SHGCrystal(3, 2, out_features=3, steps=3, n_freq=60, gvm_fs_per_mm=30.0, dk_per_mm=0.5,
                        gvd_fs2_per_mm=(20.0, 40.0))
    x = (torch.rand(2, 3, dtype=torch.float64) * 2 - 1).requires_grad_()
    phase = (torch.rand(2, dtype=torch.float64) * 6).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, p: device(a, {"phase": p}), (x, phase))


def test_device_contract():
    check_device(SHGCrystal(2, 1, out_features=2, steps=2, n_freq=36))


def test_noisy_crystal_is_a_seeded_stochastic_device():
    device = SHGCrystal(2, 1, out_features=2, steps=2, n_freq=36, noise=0.05, seed=0)
    check_device(device, checks=("shapes", "counter", "batch_independence", "determinism", "bad_inputs"))
    x = torch.zeros(200, 2, dtype=torch.float64)
    clean = SHGCrystal(2, 1, out_features=2, steps=2, n_freq=36)(x)
    relative = (device(x) - clean) / clean.mean()
    assert float(relative.std()) == pytest.approx(0.05, rel=0.15)


def test_phase_errors_change_the_output_like_a_miscalibrated_shaper():
    x = torch.rand(4, 3, dtype=torch.float64) * 2 - 1
    nominal = SHGCrystal(3, 2, out_features=4, steps=6, n_freq=64)(x)
    off = SHGCrystal(3, 2, out_features=4, steps=6, n_freq=64, phase_error=0.3)(x)
    assert 1e-3 < float((off - nominal).abs().max() / nominal.abs().max()) < 0.5


def test_bad_settings_say_what_was_expected():
    with pytest.raises(ConfigurationError, match="n_freq >= 60"):
        SHGCrystal(3, 2, n_freq=32)
    with pytest.raises(ConfigurationError, match="wrap around"):
        SHGCrystal(3, 2, n_freq=64, gvm_fs_per_mm=500.0, length_mm=5.0)
    with pytest.raises(ConfigurationError, match="in_features must be a positive integer"):
        SHGCrystal(0, 2)
    with pytest.raises(ConfigurationError, match="pulse_fs"):
        SHGCrystal(3, 2, pulse_fs=-1.0)
    device = SHGCrystal(3, 2, n_freq=64, steps=4)
    with pytest.raises(ControlError):
        device(torch.zeros(1, 3), {"phase": torch.full((2,), 7.0)})


def test_strong_conversion_with_walk_off_and_dispersion_matches_an_adaptive_solver():
    """Where no closed form exists (depletion, walk-off, GVD, mismatch): the split-step solution against
    SciPy's RK45 on the unsplit equations (interaction picture), to 1e-4."""
    pytest.importorskip("scipy")
    device = SHGCrystal(4, 4, coupling=1.5, gvm_fs_per_mm=80.0, gvd_fs2_per_mm=(300.0, 600.0), dk_per_mm=1.0,
                        steps=200, n_freq=96)
    a1 = shaped_pulse(device, seed=3)
    f1, f2 = device.propagate(a1)
    r1, r2 = device.reference(a1)
    assert relative_error(f2, r2) < 1e-4 and relative_error(f1, r1) < 1e-4
    assert float((r2.abs() ** 2).sum() / (a1.abs() ** 2).sum()) > 0.1
