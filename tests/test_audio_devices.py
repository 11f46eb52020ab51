"""Overdrive, compressor, biquads, plate and chain: contract, physics against references, torch path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import signal

from physnn.devices.audio import (
    BiquadFilter,
    Compressor,
    DiodeClipper,
    DrivenPlate,
    EffectChain,
    HighpassFilter,
    LowpassFilter,
    OpAmpOverdrive,
    PeakingEQ,
)
from physnn.errors import ConfigurationError, StabilityError
from physnn.testing import check_device

F64 = torch.float64


def run(device, x: np.ndarray, **controls) -> np.ndarray:
    return device(torch.as_tensor(np.atleast_2d(x), dtype=F64), controls).numpy()[0]


def tone_amplitude(y: np.ndarray, f: float, fs: float) -> complex:
    """Complex amplitude of the tone at f (least squares), y = Re(A exp(i 2 pi f t))."""
    t = np.arange(y.size) / fs
    basis = np.stack([np.cos(2 * np.pi * f * t), -np.sin(2 * np.pi * f * t)], axis=1)
    c = np.linalg.lstsq(basis, y, rcond=None)[0]
    return complex(c[0], c[1])


@pytest.mark.parametrize("make", [
    lambda: OpAmpOverdrive(num_samples=24),
    lambda: OpAmpOverdrive(num_samples=24, mode="fast"),
    lambda: Compressor(num_samples=24),
    lambda: LowpassFilter(num_samples=24),
    lambda: HighpassFilter(num_samples=24),
    lambda: PeakingEQ(num_samples=24),
    lambda: DrivenPlate(num_samples=24, n_modes=3, sample_rate=8000.0, fundamental=60.0),
    lambda: EffectChain([DiodeClipper(num_samples=24), PeakingEQ(num_samples=24)]),
], ids=["overdrive", "overdrive-fast", "compressor", "lowpass", "highpass", "peaking", "plate", "chain"])
def test_contract(make):
    check_device(make())


# ------------------------------------------------------------------ overdrive
def test_overdrive_small_signal_gain_is_the_linear_circuit():
    """|Vout/Vin| = |1 + Zf / Z1|, Zf = Rf || Cf || diode small-signal conductance, Z1 = R1 + 1/(j w C1)."""
    fs, drive = 44100.0, 0.5
    device = OpAmpOverdrive(num_samples=8820)
    t = np.arange(8820) / fs
    rf = device.rf + drive * device.drive_pot
    g_diode = 2 * device.saturation_current / (device.ideality * device.thermal_voltage)
    for f in (300.0, 1000.0, 3000.0):
        w = 2 * np.pi * f
        zf = 1 / (1 / rf + g_diode + 1j * w * device.cf)
        z1 = device.r1 + 1 / (1j * w * device.c1)
        y = run(device, 1e-5 * np.sin(2 * np.pi * f * t), drive=drive)
        measured = abs(tone_amplitude(y[4410:], f, fs)) / 1e-5
        assert measured == pytest.approx(abs(1 + zf / z1), rel=5e-3)


def test_overdrive_diodes_limit_the_added_voltage():
    device = OpAmpOverdrive(num_samples=4410, rail=1e3)
    x = np.sin(2 * np.pi * 500 * np.arange(4410) / 44100.0)
    added = run(device, x, drive=1.0) - x
    assert 0.4 < np.abs(added).max() < 0.8  # one silicon diode drop, whatever the 100x small-signal gain


# ----------------------------------------------------------------- compressor
def reference_static_gain(level, threshold, ratio, knee):
    """Giannoulis, Massberg & Reiss (2012), eq. (4), as gain in dB."""
    over = level - threshold
    if 2 * over < -knee or (knee == 0 and over <= 0):
        out = level
    elif knee > 0 and 2 * abs(over) <= knee:
        out = level + (1 / ratio - 1) * (over + knee / 2) ** 2 / (2 * knee)
    else:
        out = threshold + over / ratio
    return out - level


@pytest.mark.parametrize("knobs", [dict(threshold=-20.0, ratio=4.0, knee=6.0),
                                   dict(threshold=-6.0, ratio=2.0, knee=0.0),
                                   dict(threshold=-30.0, ratio=5.0, knee=12.0)])
def test_compressor_static_curve_matches_formula(knobs):
    fs, n = 8000.0, 4000  # 0.5 s: 12 release time constants of 40 ms
    device = Compressor(sample_rate=fs, num_samples=n)
    levels = np.linspace(-45.0, 6.0, 35)
    x = torch.as_tensor(10 ** (levels / 20), dtype=F64)[:, None].expand(-1, n).contiguous()  # DC at each level
    controls = {k: torch.tensor(v, dtype=F64) for k, v in dict(knobs, attack=10.0, release=40.0, makeup=3.0).items()}
    gain = 20 * np.log10(device(x, controls)[:, -1].numpy() / x[:, -1].numpy())
    expected = [reference_static_gain(lv, **knobs) + 3.0 for lv in levels]
    np.testing.assert_allclose(gain, expected, atol=1e-6)


def test_compressor_attack_and_release_time_constants():
    fs = 44100.0
    attack_ms, release_ms = 5.0, 30.0
    n_on, n_off = 4410, 8820
    level = np.r_[np.full(n_on, 1.0), np.full(n_off, 1e-3)]  # 0 dBV for 0.1 s, then -60 dBV
    device = Compressor(sample_rate=fs, num_samples=level.size)
    knobs = {k: torch.tensor(v, dtype=F64) for k, v in
             dict(threshold=-20.0, ratio=4.0, knee=0.0, attack=attack_ms, release=release_ms).items()}
    gain = device.gain_db(torch.as_tensor(level, dtype=F64)[None], knobs)[0].numpy()
    target = -20.0 * (1 - 1 / 4)  # -15 dB of gain reduction at 0 dBV
    t_attack = np.argmax(gain <= target * (1 - math.exp(-1))) / fs
    t_release = np.argmax(gain[n_on:] >= gain[n_on - 1] * math.exp(-1)) / fs
    assert t_attack * 1e3 == pytest.approx(attack_ms, abs=1e3 / fs)
    assert t_release * 1e3 == pytest.approx(release_ms, abs=1e3 / fs)


# --------------------------------------------------------------------- biquads
def impulse_response(device, n: int, **controls) -> np.ndarray:
    x = np.zeros(n)
    x[0] = 1.0
    return run(device, x, **controls)


@pytest.mark.parametrize("kind", ["lowpass", "highpass"])
@pytest.mark.parametrize("cutoff", [100.0, 1000.0, 8000.0])
def test_butterworth_biquads_match_scipy(kind, cutoff):
    fs, n = 44100.0, 16384
    device = BiquadFilter(kind, sample_rate=fs, num_samples=n)
    b, a = signal.butter(2, cutoff, btype="low" if kind == "lowpass" else "high", fs=fs)
    freqs, h = signal.freqz(b, a, worN=np.fft.rfftfreq(n, 1 / fs), fs=fs)
    measured = np.fft.rfft(impulse_response(device, n, frequency=cutoff, q=1 / math.sqrt(2)))
    np.testing.assert_allclose(np.abs(measured), np.abs(h), atol=1e-6)
    assert abs(np.interp(cutoff, freqs, np.abs(measured))) == pytest.approx(1 / math.sqrt(2), rel=1e-4)


@pytest.mark.parametrize("gain_db", [-12.0, 9.0])
def test_peaking_eq_response(gain_db):
    fs, n, f0, q = 48000.0, 16384, 1500.0, 2.0
    device = PeakingEQ(sample_rate=fs, num_samples=n)
    w0 = 2 * np.pi * f0 / fs
    amp, alpha = 10 ** (gain_db / 40), np.sin(w0) / (2 * q)
    b = [1 + alpha * amp, -2 * np.cos(w0), 1 - alpha * amp]
    a = [1 + alpha / amp, -2 * np.cos(w0), 1 - alpha / amp]
    _, h = signal.freqz(b, a, worN=np.fft.rfftfreq(n, 1 / fs), fs=fs)
    measured = np.fft.rfft(impulse_response(device, n, frequency=f0, q=q, gain=gain_db))
    np.testing.assert_allclose(np.abs(measured), np.abs(h), atol=1e-6)
    _, h0 = signal.freqz(b, a, worN=[0.0, f0, fs / 2], fs=fs)
    np.testing.assert_allclose(20 * np.log10(np.abs(h0)), [0.0, gain_db, 0.0], atol=1e-9)


# ----------------------------------------------------------------------- plate
def spectral_peak(y: np.ndarray, fs: float, near: float) -> float:
    """Frequency of the largest spectral peak within 5 % of ``near`` (parabolic interpolation), Hz."""
    spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
    freqs = np.fft.rfftfreq(y.size, 1 / fs)
    window = np.flatnonzero(np.abs(freqs - near) < 0.05 * near)
    k = window[np.argmax(spec[window])]
    left, centre, right = np.log(spec[k - 1:k + 2])
    return float(freqs[k] + 0.5 * (left - right) / (left - 2 * centre + right) * (freqs[1] - freqs[0]))


@pytest.mark.parametrize("scale", [1.0, 1.3])
def test_plate_mode_frequencies(scale):
    fs, n, modes = 8000.0, 16000, [173.0, 412.0, 655.0]
    device = DrivenPlate(mode_frequencies=modes, q_factor=200.0, sample_rate=fs, num_samples=n)
    y = impulse_response(device, n, frequency_scale=scale)
    for f in modes:
        assert spectral_peak(y, fs, f * scale) == pytest.approx(f * scale, rel=1e-3)


def free_oscillation(y: np.ndarray, fs: float, periods: int = 5) -> tuple[float, float]:
    """Frequency (Hz, from upward zero crossings) and mean peak amplitude over ``periods`` periods."""
    up = np.flatnonzero((y[:-1] < 0) & (y[1:] >= 0))[: periods + 1]
    crossings = up - y[up] / (y[up + 1] - y[up])
    amplitude = np.mean([np.abs(y[a:b]).max() for a, b in zip(up[:-1], up[1:])])
    return float(fs / np.mean(np.diff(crossings))), float(amplitude)


def test_plate_cubic_stiffness_raises_the_frequency_with_amplitude():
    """Duffing oscillator: w_eff = w (1 + 3/8 kappa A^2) to first order in kappa A^2."""
    fs, n, f0 = 16000.0, 1600, 400.0
    device = DrivenPlate(mode_frequencies=[f0], q_factor=20.0, sample_rate=fs, num_samples=n)
    x = np.zeros(n)
    x[:10] = 1.0  # a short push, then free vibration
    linear, _ = free_oscillation(run(device, x, drive=10.0)[40:], fs)
    assert linear == pytest.approx(f0, rel=1e-3)
    for kappa in (0.25, 0.5):
        f, amplitude = free_oscillation(run(device, x, drive=10.0, cubic=kappa)[40:], fs)
        assert (f / f0 - 1) == pytest.approx(3 / 8 * kappa * amplitude ** 2, rel=0.25)


def test_plate_refuses_modes_near_nyquist():
    with pytest.raises(StabilityError, match="fs/8"):
        DrivenPlate(mode_frequencies=[900.0], sample_rate=8000.0)


# ------------------------------------------------------------------------ chain
def test_chain_is_its_stages_in_series():
    n = 300
    clip, eq = DiodeClipper(num_samples=n), PeakingEQ(num_samples=n)
    chain = EffectChain([clip, eq])
    assert [c.name for c in chain.controls][:2] == ["diode-clipper:drive", "diode-clipper:resistance"]
    x = clip.sample_inputs(2, torch.Generator().manual_seed(0), F64)
    y = chain(x, {"diode-clipper:drive": 4.0, "peaking-eq:gain": -6.0})
    torch.testing.assert_close(y, eq(clip(x, {"drive": 4.0}), {"gain": -6.0}))
    assert chain.resized(100)(x[:, :100]).shape == (2, 100)


def test_chain_refuses_mismatched_stages():
    with pytest.raises(ConfigurationError, match="sample rate"):
        EffectChain([DiodeClipper(num_samples=10), LowpassFilter(num_samples=10, sample_rate=48000.0)])


def test_unsupported_sample_rate_is_a_clear_error():
    with pytest.raises(ConfigurationError, match="supports sample rates"):
        DiodeClipper(sample_rate=4000.0)


# --------------------------------------------------------------------- backend
def test_the_removed_torch_backend_is_a_clear_error():
    """The per-sample torch loop is gone (every device runs the compiled kernels): asking for it says so."""
    with pytest.raises(ConfigurationError, match=r"backend must be one of \['auto'\], got 'torch'"):
        Compressor(num_samples=16, backend="torch")
