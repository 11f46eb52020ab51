"""The angular-spectrum propagator against analytic optics, and the DiffractiveNetwork device contract.

Lengths are in wavelengths (lambda = 1) in the propagator tests; the physics is scale-free.
"""

from __future__ import annotations

import math

import pytest
import torch

from physnn.devices.optics import DiffractiveNetwork
from physnn.devices.optics._propagation import band_limit, propagate, transfer_function
from physnn.errors import ConfigurationError, InputError
from physnn.testing import check_device


@pytest.fixture(autouse=True)
def one_thread():
    """Small FFTs: threads only contend on the shared cores; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def grid(n: int, pitch: float) -> tuple[torch.Tensor, torch.Tensor]:
    x = (torch.arange(n, dtype=torch.float64) - n / 2) * pitch
    return torch.meshgrid(x, x, indexing="xy")


def rms_width(intensity: torch.Tensor, x: torch.Tensor) -> float:
    """The 1/e^2 intensity radius of a Gaussian from the second moment: w = 2 sqrt(<x^2>)."""
    return 2 * math.sqrt(float((intensity * x ** 2).sum() / intensity.sum()))


def gaussian(x: torch.Tensor, y: torch.Tensor, w0: float) -> torch.Tensor:
    return torch.exp(-(x ** 2 + y ** 2) / w0 ** 2).to(torch.complex128)


@pytest.mark.parametrize("z_over_zr", [0.5, 1.0, 2.0])
def test_gaussian_beam_width_follows_w0_sqrt_1_plus_z_over_zr_squared(z_over_zr):
    x, y = grid(128, 1.0)
    w0 = 6.0
    zr = math.pi * w0 ** 2  # lambda = 1
    out = propagate(gaussian(x, y, w0), 1.0, 1.0, z_over_zr * zr)
    expected = w0 * math.sqrt(1 + z_over_zr ** 2)
    assert rms_width(out.abs() ** 2, x) == pytest.approx(expected, rel=0.01)


def test_propagator_conserves_energy_of_a_band_limited_field():
    x, y = grid(128, 1.0)
    field = gaussian(x, y, 6.0) * torch.polar(torch.ones_like(x), 0.3 * x)  # tilted: not just the DC term
    out = propagate(field, 1.0, 1.0, 100.0)
    before, after = float((field.abs() ** 2).sum()), float((out.abs() ** 2).sum())
    assert abs(after / before - 1) < 1e-6
    assert not torch.allclose(out, field, atol=1e-3)  # it did propagate


def test_thin_lens_focuses_at_the_gaussian_beam_focus_with_the_diffraction_limited_spot():
    """A Gaussian beam (w = 100 lambda) through a lens -k r^2 / 2f (f = 2000 lambda, NA 0.05).

    Paraxial theory: the waist lies at z' = f / (1 + (f/zR)^2) (0.4 % before f) with radius
    w f / (zR sqrt(1 + (f/zR)^2)) = 6.35 lambda; the exact (non-paraxial) propagator shifts the focus
    by O(NA^2) f ~ 5 lambda, inside one z sample (8 lambda = 1/16 of the focal Rayleigh range).
    """
    x, y = grid(256, 2.0)
    w, f = 100.0, 2000.0
    zr = math.pi * w ** 2
    field = gaussian(x, y, w) * torch.polar(torch.ones_like(x), -math.pi * (x ** 2 + y ** 2) / f)
    dz = 8.0
    zs = [f + dz * k for k in range(-3, 4)]
    on_axis = torch.tensor([float(propagate(field, 2.0, 1.0, z)[128, 128].abs() ** 2) for z in zs])
    k = int(on_axis.argmax())
    assert 0 < k < len(zs) - 1, f"on-axis intensity {on_axis.tolist()} has no interior maximum"
    a, b, c = on_axis[k - 1:k + 2].tolist()
    z_peak = zs[k] + dz * (a - c) / (2 * (a - 2 * b + c))
    z_focus = f / (1 + (f / zr) ** 2)
    assert abs(z_peak - z_focus) < dz
    spot = propagate(field, 2.0, 1.0, z_focus).abs() ** 2
    assert rms_width(spot, x) == pytest.approx(w * (f / zr) / math.sqrt(1 + (f / zr) ** 2), rel=0.01)


def test_transfer_function_is_band_limited_and_drops_evanescent_waves():
    h = transfer_function((64, 64), 0.4, 1.0, 50.0, dtype=torch.complex128)
    fx = torch.fft.fftfreq(128, d=0.4, dtype=torch.float64)
    passed = h.abs()[0] > 0
    limit = band_limit(64, 0.4, 1.0, 50.0)
    assert bool((fx[passed].abs() <= limit).all()) and bool(passed[fx.abs() < 0.9 * limit].all())
    assert float(h.abs().max()) == pytest.approx(1.0)
    short = transfer_function((64, 64), 0.4, 1.0, 0.0, dtype=torch.complex128)  # no band limit at z = 0
    assert bool((short.abs()[0][fx.abs() >= 1.0] == 0).all()) and bool((short.abs()[0][fx.abs() < 1.0] == 1).all())


def test_propagator_rejects_real_fields_and_bad_geometry():
    with pytest.raises(InputError, match="complex"):
        propagate(torch.ones(4, 4), 1.0, 1.0, 1.0)
    with pytest.raises(ConfigurationError, match="wavelength"):
        transfer_function((4, 4), 1.0, -1.0, 1.0)


def small(**kw) -> DiffractiveNetwork:
    settings = dict(n=8, layers=2, input_size=3, detector_size=1, spacing=2e-3)
    return DiffractiveNetwork(**{**settings, **kw})


@pytest.mark.parametrize("kw", [{}, {"amplitude": True, "encoding": "phase"},
                                {"phase_error": 0.1, "spacing_error": 0.05}])
def test_diffractive_network_passes_check_device(kw):
    report = check_device(small(**kw))
    assert not report.failed


def test_lin_geometry_defaults_and_detector_layout():
    d = DiffractiveNetwork()
    assert d.in_shape == (784,) and d.out_shape == (10,)
    assert d.controls[0].shape == (5, 200, 200) and d.controls[0].unit == "rad"
    assert d.gaps == (0.03,) * 6 and d.wavelength == 0.75e-3 and d.pitch == 0.4e-3
    masks = d.regions
    assert masks.shape == (10, 200, 200) and bool((masks.sum((1, 2)) == 400).all())
    assert float(masks.sum(0).max()) == 1.0  # no overlap
    rows = sorted({r for r, _, _ in d.detectors})
    assert [sum(det[0] == row for det in d.detectors) for row in rows] == [3, 4, 3]


def test_phase_only_network_conserves_power_until_the_detectors():
    """Phase masks are lossless: the detector-plane power equals the input power while the light stays on the grid.

    With a pitch of 2 lambda every sampled wave propagates and bends by at most 14 degrees, so over
    4 mm the light from the central eighth never reaches the window's edge."""
    d = DiffractiveNetwork(64, 3, pitch=1.5e-3, input_size=4, input_fill=0.125, spacing=1e-3, detector_size=2)
    x = torch.rand(2, 16, dtype=torch.float64)
    phase = 2 * math.pi * torch.rand(3, 64, 64, dtype=torch.float64)
    field_in, field_out = d.input_field(x), d.output_field(x, {"phase": phase})
    power_in, power_out = (f.abs().square().sum((1, 2)) for f in (field_in, field_out))
    torch.testing.assert_close(power_out, power_in, rtol=1e-6, atol=0)


def test_outputs_are_region_powers_of_the_detector_field():
    d = small(layers=1)
    x = torch.rand(3, 9, dtype=torch.float64)
    controls = {"phase": torch.full((1, 8, 8), 1.0, dtype=torch.float64)}
    intensity = d.output_field(x, controls).abs().square()
    expected = torch.stack([intensity[:, r:r + s, c:c + s].sum((1, 2)) for r, c, s in d.detectors], 1)
    torch.testing.assert_close(d(x, controls), expected)


def test_bad_settings_are_refused_with_the_setting_named():
    with pytest.raises(ConfigurationError, match="encoding"):
        small(encoding="intensity")
    with pytest.raises(ConfigurationError, match="detector 0"):
        small(detectors=[(7, 7, 2)])
    with pytest.raises(ConfigurationError, match="need n >= 14"):
        DiffractiveNetwork(10, detector_size=2)
    with pytest.raises(ConfigurationError, match="input_fill"):
        small(input_fill=0.0)
    with pytest.raises(ConfigurationError, match="spacing"):
        small(spacing=0.0)
