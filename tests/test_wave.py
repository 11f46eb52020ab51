"""WaveMedium2D: the device contract, exact gradients, backends, configuration errors, plots."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from wave_helpers import outputs_and_grads, passes_gradcheck, rel_error, wave_data

from physnn import PhysicalLayer
from physnn.devices.wave import WaveMedium2D, line, point, region
from physnn.errors import ConfigurationError, StabilityError
from physnn.testing import check_device

SMALL = dict(shape=(16, 20), n_steps=24, dt=0.5, absorber_width=3, absorber_strength=1.0, projection_beta=2.0)






def test_conforms_to_device_contract():
    medium = WaveMedium2D(shape=(10, 12), n_steps=12, dt=0.5, absorber_width=2, absorber_strength=1.0,
                          projection_beta=2.0, c_nl=-0.2)
    report = check_device(medium)
    assert "gradcheck" in report.passed and not report.failed
    assert report.skipped["routes"].startswith("twin checked")


@pytest.mark.parametrize("c_nl", [0.0, -0.3])
def test_reversible_gradients_equal_plain_autograd(c_nl):
    kw = dict(SMALL, c_nl=c_nl, n_steps=60)
    fast = WaveMedium2D(**kw, backend="numba")
    plain = WaveMedium2D(**kw, backend="torch", checkpoint_every=0)
    x, rho = wave_data(fast)
    for got, want in zip(outputs_and_grads(fast, x, rho)[2:], outputs_and_grads(plain, x, rho)[2:]):
        assert rel_error(got, want) < 1e-9


def test_gradcheck_reversible_solver_nonlinear():
    medium = WaveMedium2D(shape=(12, 14), n_steps=16, dt=0.5, absorber_width=2, blur_radius=0,
                          projection_beta=0.0, c_nl=-0.5, output="raw", backend="numba")
    assert passes_gradcheck(medium)


def test_saturable_absorption_uses_checkpointing_with_exact_gradients():
    kw = dict(SMALL, sat_b0=0.5, sat_uth=0.3, c_nl=-0.2)
    checkpointed = WaveMedium2D(**kw, checkpoint_every=5)
    plain = WaveMedium2D(**kw, checkpoint_every=0)
    x, rho = wave_data(checkpointed)
    for got, want in zip(outputs_and_grads(checkpointed, x, rho)[2:], outputs_and_grads(plain, x, rho)[2:]):
        assert rel_error(got, want) < 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backends_agree(dtype):
    kw = dict(SMALL, c_nl=-0.3, output="raw")
    x, rho = wave_data(WaveMedium2D(**kw), batch=3)
    fast = WaveMedium2D(**kw, backend="numba").simulate(x.to(dtype), {"rho": rho})
    ref = WaveMedium2D(**kw, backend="torch").simulate(x.to(dtype), {"rho": rho})
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert fast.signals.dtype == dtype
    assert rel_error(fast.signals, ref.signals) < tol and rel_error(fast.intensity, ref.intensity) < tol


def test_float32_training_gradient_close_to_float64():
    medium = WaveMedium2D(**dict(SMALL, c_nl=-0.3, n_steps=80))
    x, rho = wave_data(medium)
    g64 = outputs_and_grads(medium, x, rho)[3]
    g32 = outputs_and_grads(medium, x.float(), rho.float())[3]
    assert rel_error(g32.double(), g64) < 1e-4


def test_outputs_signals_and_several_sources():
    medium = WaveMedium2D(shape=(20, 24), n_steps=30, dt=0.5, absorber_width=3,
                          sources=[point(8, 5), line((12, 5), (15, 5))],
                          probes=[point(6, 18), region((10, 13), (17, 19))], output="raw")
    assert medium.in_shape == (2, 30) and medium.out_shape == (2,)
    x, rho = wave_data(medium)
    sol = medium.simulate(x, {"rho": rho})
    assert sol.signals.shape == (2, 2, 30)
    y = medium(x, {"rho": rho})
    torch.testing.assert_close(y, sol.intensity)
    normalized = WaveMedium2D(shape=(20, 24), n_steps=30, dt=0.5, absorber_width=3,
                              sources=[point(8, 5), line((12, 5), (15, 5))],
                              probes=[point(6, 18), region((10, 13), (17, 19))])(x, {"rho": rho})
    torch.testing.assert_close(normalized, y / y.sum(1, keepdim=True))
    # point probe intensity is the time integral of its signal squared
    torch.testing.assert_close(sol.intensity[:, 0], medium.dt * (sol.signals[:, 0] ** 2).sum(-1))


def test_trains_through_physical_layer():
    medium = WaveMedium2D(**dict(SMALL, output="normalized", c_nl=-0.2))
    layer = PhysicalLayer(medium, route="autograd").double()
    x, _ = wave_data(medium, batch=4)
    target = torch.tensor([0, 1, 2, 0])
    opt = torch.optim.Adam(layer.parameters(), lr=0.2)
    losses = []
    for _ in range(8):
        loss = torch.nn.functional.cross_entropy(layer(x) * 20, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_cfl_violation_raises_before_running():
    with pytest.raises(StabilityError, match="CFL"):
        WaveMedium2D(shape=(40, 40), h=1.0, dt=0.8, c0=1.0, c1=0.5)
    with pytest.raises(StabilityError, match="dt <="):
        WaveMedium2D(shape=(40, 40), h=1.0, dt=0.5, c0=1.0, c1=1.5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(design_region=np.ones((5, 5), bool)), "design_region must have the grid's shape"),
    (dict(design_region=np.ones((16, 20), bool)), "absorbing layer"),
    (dict(design_region=np.zeros((16, 20), bool)), "empty"),
    (dict(probes=[point(5, 25)]), "outside the grid"),
    (dict(probes=[point(1, 10)]), "inside the absorbing layer"),
    (dict(sources=[point(-1, 5)]), "outside the grid"),
    (dict(shape=(6, 6)), "too small"),
    (dict(output="logits"), "output must be one of"),
])
def test_bad_configuration_is_refused(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        WaveMedium2D(**dict(SMALL, **kwargs))


def test_numba_backend_refuses_non_cpu_inputs():
    medium = WaveMedium2D(**SMALL, backend="numba")
    x = torch.zeros((1, 24), device="meta")
    with pytest.raises(ConfigurationError, match="CPU only"):
        medium._run(x, {"rho": torch.zeros(16, 20, device="meta")}, None)


def test_wavetorch_vowel_setup():
    medium = WaveMedium2D.wavetorch_vowels(n_steps=10)
    assert medium.shape == (100, 160) and medium.out_shape == (3,)
    assert [p.cells[0] for p in medium.probes] == [(30, 120), (50, 120), (70, 120)]
    assert medium.sources[0].cells[0] == (50, 40)
    assert medium.design_region[:, 45:115].sum() == 58 * 70


@pytest.mark.slow
def test_vowel_example_runs(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "vowels_wave.py"
    subprocess.run([sys.executable, str(script), "--synthetic", "--folds", "2", "--epochs", "1",
                    "--max-per-class", "4", "--out", str(tmp_path)], check=True)
    summary = json.loads((tmp_path / "results.json").read_text())
    assert len(summary["folds"]) == 2 and (tmp_path / "density.png").exists()


def test_plots_are_written(tmp_path):
    from physnn.devices.wave import plots

    medium = WaveMedium2D(**SMALL)
    x, rho = wave_data(medium, batch=1)
    sol = medium.simulate(x, {"rho": rho}, snapshot_every=8)
    assert sol.snapshots.shape == (1, 3, 16, 20)
    paths = [plots.plot_density(medium, rho, tmp_path / "d.png"),
             plots.plot_snapshots(medium, sol.snapshots[0], tmp_path / "s.png", steps=[8, 16, 24], rho=rho),
             plots.plot_probe_intensities(sol.signals[0], medium.dt, tmp_path / "p.png"),
             plots.plot_confusion(np.array([[3, 1], [0, 4]]), ["a", "b"], tmp_path / "c.png")]
    assert all((tmp_path / p).stat().st_size > 1000 for p in paths)
