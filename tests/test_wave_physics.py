"""Physics of WaveMedium2D against theory: wave speed, energy conservation, superposition,
and the reflection of the absorbing layer."""

from __future__ import annotations

import numpy as np
import torch

from physnn.devices.wave import WaveMedium2D, point


def ricker(steps: int, f0: float, dt: float) -> torch.Tensor:
    """Ricker wavelet of peak frequency ``f0`` (Hz), centred at 1.5/f0, shape (1, steps)."""
    t = np.arange(steps) * dt - 1.5 / f0
    a = (np.pi * f0 * t) ** 2
    return torch.tensor((1 - 2 * a) * np.exp(-a))[None]


def _mask(shape, row, col):
    m = np.zeros(shape, dtype=bool)
    m[row:row + 2, col:col + 2] = True
    return m


def _delay(a: np.ndarray, b: np.ndarray, dt: float) -> float:
    """Delay of ``b`` after ``a`` by cross-correlation, with parabolic sub-sample refinement."""
    n = 2 * len(a)
    xc = np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)
    k = int(np.argmax(xc[: len(a)]))
    y0, y1, y2 = xc[k - 1], xc[k], xc[k + 1]
    return (k + 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)) * dt


def test_pulse_travels_at_the_wave_speed():
    c, h, dt = 0.8, 1.0, 0.5
    shape = (120, 240)
    medium = WaveMedium2D(shape=shape, n_steps=480, h=h, dt=dt, c0=c, c1=c, sources=[point(60, 40)],
                          probes=[point(60, 80), point(60, 170)], design_region=_mask(shape, 36, 100),
                          rho_init=0.0, output="raw")
    sig = medium.simulate(ricker(480, 0.04, dt)).signals[0].numpy()
    speed = 90 * h / _delay(sig[0], sig[1], dt)
    assert abs(speed / c - 1) < 0.01, speed


def test_closed_lossless_box_conserves_discrete_energy():
    """Leapfrog conserves E = sum (u+ - u)^2 / c^2 - (dt/h)^2 sum u+ Lap5(u) once the source is off."""
    shape, h, dt = (24, 30), 1.0, 0.5
    medium = WaveMedium2D(shape=shape, n_steps=1100, h=h, dt=dt, absorber_width=0, projection_beta=0.0,
                          sources=[point(12, 4)], probes=[point(12, 26)], output="raw", backend="torch")
    rho = torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = torch.zeros(1, 1100, dtype=torch.float64)
    x[0, :60] = ricker(60, 0.1, dt)[0]
    u = medium.simulate(x, {"rho": rho}, snapshot_every=1).snapshots[0]
    c2 = medium.speed(rho) ** 2
    p = torch.nn.functional.pad(u[:-1], (1, 1, 1, 1))
    lap = p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:] - 4 * u[:-1]
    energy = ((u[1:] - u[:-1]) ** 2 / c2).sum((1, 2)) - (dt / h) ** 2 * (u[1:] * lap).sum((1, 2))
    after = energy[80:]
    assert len(after) >= 1000
    assert float((after - after[0]).abs().max() / after[0]) < 1e-6


def test_linear_medium_superposes_and_nonlinear_does_not():
    kw = dict(shape=(20, 26), n_steps=120, dt=0.5, absorber_width=4, projection_beta=0.0, output="raw")
    g = torch.Generator().manual_seed(0)
    x1, x2 = (torch.randn(1, 120, dtype=torch.float64, generator=g) * 0.3 for _ in range(2))
    for c_nl, linear in ((0.0, True), (-2.0, False)):
        medium = WaveMedium2D(**kw, c_nl=c_nl)
        s = [medium.simulate(x).signals for x in (x1, x2, x1 + x2)]
        error = float((s[2] - s[0] - s[1]).abs().max() / s[2].abs().max())
        assert (error < 1e-12) if linear else (error > 1e-3), (c_nl, error)


def absorber_reflection(**absorber) -> float:
    """Peak reflected / peak incident amplitude of a normally incident pulse (~14-cell wavelength).

    A source 40 cells from the left of the interior and a probe 30 cells to its right, 20
    cells before the absorber; the reference is the same run on a grid 150 cells larger on
    every side, whose walls are too far to answer within the window. The window ends before
    any oblique or left-wall echo can reach the probe.
    """
    h, dt, c = 1.0, 0.5, 1.0
    f0 = c / (14 * h)
    steps = int((1.5 / f0 + 100 * h / c) / dt)
    x = ricker(steps, f0, dt)
    width = absorber.get("absorber_width", 30)
    signals = []
    for ext in (0, 150):
        shape = (200 + 2 * width + 2 * ext, 90 + 2 * width + 2 * ext)
        row, col = shape[0] // 2, width + 40 + ext
        medium = WaveMedium2D(shape=shape, n_steps=steps, h=h, dt=dt, c0=c, c1=c, sources=[point(row, col)],
                              probes=[point(row, col + 30)], design_region=_mask(shape, row - 4, col + 5),
                              rho_init=0.0, output="raw", **absorber)
        signals.append(medium.simulate(x).signals[0, 0].numpy())
    near, free = signals
    return float(np.abs(near - free).max() / np.abs(free).max())


def test_absorbing_layer_reflects_under_one_percent():
    reflection = absorber_reflection()
    print(f"absorber reflection (defaults: 30 cells, b <= 0.35/s, cubic): {100 * reflection:.2f} %")
    assert reflection < 0.01
