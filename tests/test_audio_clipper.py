"""DiodeClipper: contract, physics against scipy's Radau solver, fast mode, torch path, batched knobs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from physnn.devices.audio import DiodeClipper, _ops
from physnn.errors import MissingDependencyError
from physnn.testing import check_device

FS = 44100.0
R, C, IS, N, VT = 2200.0, 10e-9, 2.52e-9, 1.752, 0.02585


def sweep(duration: float, f0: float, f1: float, amplitude: float = 1.0):
    """Exponential sine sweep as a function of continuous time (s) -> volts."""
    rate = np.log(f1 / f0) / duration
    return lambda t: amplitude * np.sin(2 * np.pi * f0 * (np.exp(rate * t) - 1) / rate)


def radau_reference(vin, t: np.ndarray) -> np.ndarray:
    """C dV/dt = (Vin - V)/R - 2 Is sinh(V/(n Vt)) by Radau at tight tolerances, sampled at t."""
    vt = N * VT
    rhs = lambda tt, v: [((vin(tt) - v[0]) / R - 2 * IS * np.sinh(v[0] / vt)) / C]
    jac = lambda tt, v: [[(-1 / R - 2 * IS / vt * np.cosh(v[0] / vt)) / C]]
    sol = solve_ivp(rhs, (0.0, t[-1]), [0.0], method="Radau", t_eval=t, rtol=1e-9, atol=1e-11, jac=jac)
    assert sol.success, sol.message
    return sol.y[0]


def esr(y: np.ndarray, ref: np.ndarray) -> float:
    """Error-to-signal ratio sum((y - ref)^2) / sum(ref^2)."""
    return float(np.sum((y - ref) ** 2) / np.sum(ref ** 2))


def run(device: DiodeClipper, x: np.ndarray) -> np.ndarray:
    return device(torch.as_tensor(x, dtype=torch.float64)[None]).numpy()[0]


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_contract(mode):
    check_device(DiodeClipper(num_samples=24, mode=mode))


def test_matches_radau_on_a_sine_sweep():
    t = np.arange(int(0.02 * FS)) / FS
    vin = sweep(0.02, 50.0, 2000.0)
    ref = radau_reference(vin, t)
    assert np.abs(ref).max() < 0.8  # the diodes clip the 1 V sweep
    for mode in ("exact", "fast"):
        assert esr(run(DiodeClipper(num_samples=t.size, mode=mode), vin(t)), ref) < 1e-4


@pytest.mark.slow
def test_matches_radau_on_a_sweep_to_5khz():
    t = np.arange(int(0.1 * FS)) / FS
    vin = sweep(0.1, 20.0, 5000.0)
    assert esr(run(DiodeClipper(num_samples=t.size), vin(t)), radau_reference(vin, t)) < 1e-4


def test_fast_mode_error_is_tiny():
    t = np.arange(2000) / FS
    x = sweep(t[-1], 50.0, 5000.0, amplitude=2.0)(t)
    exact, fast = run(DiodeClipper(num_samples=t.size), x), run(DiodeClipper(num_samples=t.size, mode="fast"), x)
    assert esr(fast, exact) < 1e-9


def test_small_signal_is_the_rc_lowpass():
    """Far below the diode knee the clipper is the RC low-pass, |H| = 1 / sqrt(1 + (f / fc)^2)."""
    fc = 1 / (2 * np.pi * R * C)
    t = np.arange(4410) / FS
    for f in (500.0, 2000.0):
        y = run(DiodeClipper(num_samples=t.size), 1e-3 * np.sin(2 * np.pi * f * t))[2205:]
        basis = np.stack([np.sin(2 * np.pi * f * t[2205:]), np.cos(2 * np.pi * f * t[2205:])], axis=1)
        amplitude = np.linalg.norm(np.linalg.lstsq(basis, y, rcond=None)[0])
        assert amplitude / 1e-3 == pytest.approx(1 / np.sqrt(1 + (f / fc) ** 2), rel=2e-3)


def test_diode_knobs_act_physically():
    t = np.arange(2000) / FS
    x = 3.0 * np.sin(2 * np.pi * 200 * t)
    device = DiodeClipper(num_samples=t.size)
    peak = lambda **c: float(device(torch.as_tensor(x)[None], c).abs().max())
    assert peak() < 0.8  # 1N914-like silicon diodes clip near 0.6-0.7 V
    assert peak(ideality=2.5) > peak()  # a larger ideality factor raises the knee
    assert peak(saturation_current=500.0) < peak()  # leakier (germanium-like) diodes clip lower
    y = device(torch.as_tensor(x)[None], {"asymmetry": 1.0})[0]
    assert float(-y.min()) > 1.7 * float(y.max())  # two diodes in series on the negative side


def test_without_numba_running_is_a_clear_error(monkeypatch):
    device = DiodeClipper(num_samples=40)
    x = device.sample_inputs(2, torch.Generator().manual_seed(4), torch.float64)
    monkeypatch.setattr(_ops, "_IMPORT_ERROR", ImportError("No module named 'numba'"))  # as if not installed
    with pytest.raises(MissingDependencyError, match=r"need numba.*No module named 'numba'.*physnn\[audio\]"):
        device(x)


def test_per_sample_knobs_equal_separate_calls():
    device = DiodeClipper(num_samples=50)
    x = device.sample_inputs(3, torch.Generator().manual_seed(2), torch.float64)
    drive = torch.tensor([0.5, 2.0, 8.0], dtype=torch.float64)
    together = device(x, {"drive": drive})
    for i in range(3):
        torch.testing.assert_close(together[i], device(x[i:i + 1], {"drive": drive[i]})[0])
