"""MeasuredDevice (a real system known from measured pairs) and the PhyLL acoustic cavity."""

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from physnn.devices import create
from physnn.devices.measured import METHODS, MeasuredDevice, holdout_scores, phyll_cavity
from physnn.errors import ConfigurationError, DataNotFoundError, GradientRouteError, InputError
from physnn.testing import check_device

DATA = Path(os.environ.get("PHYSNN_DATA") or Path(__file__).resolve().parents[2] / "shared" / "datasets")
HAVE_CAVITY = (DATA / "phyll" / "acoustic_x_data.csv").is_file() and (DATA / "phyll" / "acoustic_y_data.csv").is_file()
needs_cavity = pytest.mark.skipif(not HAVE_CAVITY, reason=f"PhyLL cavity CSVs not found under {DATA}/phyll "
                                                          "(set PHYSNN_DATA to a copy of shared/datasets)")
#: Every method with settings that suit the 2-D toy data below.
SETTINGS = {"idw": {}, "rbf": {"neighbors": 16}, "ridge-rff": {}, "linear": {}}


def smooth(x: np.ndarray) -> np.ndarray:
    """A smooth 2 -> 2 test response: (sin x0 + sin x1, cos(2 x0) x1)."""
    return np.stack([np.sin(x).sum(1), np.cos(2 * x[:, 0]) * x[:, 1]], axis=1)


@pytest.fixture(scope="module")
def pairs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).uniform(0, math.pi, (400, 2))
    return x, smooth(x)


@pytest.fixture(scope="module")
def cavity() -> MeasuredDevice:
    if not HAVE_CAVITY:
        pytest.skip(f"PhyLL cavity CSVs not found under {DATA}/phyll")
    return phyll_cavity(DATA)


def test_idw_reproduces_every_measured_pair_exactly(pairs):
    x, y = pairs
    d = MeasuredDevice(x, y, method="idw")
    with torch.no_grad():
        assert torch.equal(d(torch.from_numpy(x)), torch.from_numpy(y))


def test_idw_averages_repeated_drives_at_an_exact_match():
    x = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 0.0]])
    y = np.array([[1.0], [3.0], [5.0], [7.0]])
    d = MeasuredDevice(x, y, method="idw", neighbors=3, holdout=0)
    assert d(torch.zeros(1, 2, dtype=torch.float64)).item() == 2.0


# Measured NRMSE on 200 interior points: idw 0.10, rbf 0.006, ridge-rff 0.004; bounds leave ~2x margin.
@pytest.mark.parametrize("method, bound", [("idw", 0.2), ("rbf", 0.015), ("ridge-rff", 0.01)])
def test_interpolates_a_smooth_function(pairs, method, bound):
    x, y = pairs
    d = MeasuredDevice(x, y, method=method, **SETTINGS[method])
    xt = np.random.default_rng(1).uniform(0.2, math.pi - 0.2, (200, 2))
    with torch.no_grad():
        yp = d(torch.from_numpy(xt)).numpy()
    assert holdout_scores(yp, smooth(xt), method=method, n_train=len(x))["nrmse"] < bound


def test_linear_method_is_ridge_least_squares():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (200, 3))
    y = x @ rng.normal(size=(3, 2)) + 0.5 + rng.normal(0, 0.01, (200, 2))
    d = MeasuredDevice(x, y, method="linear", holdout=0)
    a = np.c_[x, np.ones(len(x))]
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    xt = torch.from_numpy(x[:10])
    # GCV picks a small ridge for 1 % noise: within a tenth of the noise of least squares.
    np.testing.assert_allclose(d(xt).numpy(), a[:10] @ coef, atol=1e-3)


@pytest.mark.parametrize("method", METHODS)
def test_honours_the_device_contract(pairs, method):
    x, y = pairs
    report = check_device(MeasuredDevice(x, y, method=method, **SETTINGS[method]), batch=5)
    assert {"shapes", "batch_independence", "determinism", "bad_inputs"} <= set(report.passed)


def test_rejects_extrapolation(pairs):
    x, y = pairs
    d = MeasuredDevice(x, y)
    assert d.input_bounds == (x.min(), x.max())
    with pytest.raises(InputError, match="physical range"):
        d(torch.full((1, 2), x.max() + 1e-6, dtype=torch.float64))
    with pytest.raises(InputError, match="physical range"):
        d(torch.full((1, 2), x.min() - 1e-6, dtype=torch.float64))
    wider = MeasuredDevice(x, y, input_bounds=(0.0, 4.0))
    assert wider(torch.full((1, 2), 3.5)).shape == (1, 2)


def test_refuses_gradients_as_a_black_box(pairs):
    x, y = pairs
    d = MeasuredDevice(x, y)
    with pytest.raises(GradientRouteError, match="black box"):
        d(torch.ones(2, 2).requires_grad_())
    with torch.no_grad():
        assert d(torch.ones(2, 2).requires_grad_()).grad_fn is None


@pytest.mark.parametrize("method", METHODS)
def test_float32_and_float64_agree(pairs, method):
    x, y = pairs
    d = MeasuredDevice(x, y, method=method, **SETTINGS[method])
    x64 = d.sample_inputs(8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y64, y32 = d(x64), d(x64.float())
    assert (y64.dtype, y32.dtype) == (torch.float64, torch.float32)
    torch.testing.assert_close(y32.double(), y64, atol=1e-5, rtol=1e-5)


def test_batch_independent_and_deterministic(pairs):
    x, y = pairs
    xt = torch.from_numpy(np.random.default_rng(2).uniform(0.1, 3.0, (64, 2)))
    a, b = MeasuredDevice(x, y, seed=3), MeasuredDevice(x, y, seed=3)
    ya = a(xt)
    assert torch.equal(ya, b(xt))
    assert a.holdout_report == b.holdout_report
    torch.testing.assert_close(torch.cat([a(xt[i:i + 1]) for i in range(64)]), ya, rtol=1e-12, atol=1e-12)
    assert MeasuredDevice(x, y, seed=4).holdout_report != a.holdout_report


@pytest.mark.parametrize("kwargs, match", [
    ({"x_measured": np.zeros(5)}, "must be 2-D"),
    ({"y_measured": np.zeros((7, 1))}, "400 rows but y_measured has 7"),
    ({"x_measured": np.full((400, 2), np.nan)}, "must be finite"),
    ({"x_measured": np.ones((400, 2))}, "constant drive"),
    ({"y_measured": "volts"}, "must be a real 2-D array"),
    ({"method": "kriging"}, "method must be one of"),
    ({"method": "idw", "neighbors": 0}, "neighbors must be an integer >= 1"),
    ({"method": "rbf", "neighbors": 2}, "neighbors >= d_in \\+ 1 = 3"),
    ({"method": "idw", "neighbors": 390}, "needs at least 390 fitting pairs, but only 360"),
    ({"holdout": 1.0}, "holdout is a fraction"),
    ({"lengthscale": -1.0}, "lengthscale must be > 0"),
    ({"input_bounds": (0.5, 4.0)}, "must be finite and contain the measured range"),
])
def test_configuration_errors(pairs, kwargs, match):
    x, y = pairs
    args = {"x_measured": x, "y_measured": y, **kwargs}
    with pytest.raises(ConfigurationError, match=match):
        MeasuredDevice(args.pop("x_measured"), args.pop("y_measured"), **args)


def test_wrong_input_width_is_an_input_error(pairs):
    x, y = pairs
    with pytest.raises(InputError, match=r"must have shape \(batch, 2\), got \(3, 5\)"):
        MeasuredDevice(x, y)(torch.ones(3, 5))


def test_holdout_report_is_sane(pairs):
    x, y = pairs
    d = MeasuredDevice(x, y, method="idw", holdout=0.25)
    r = d.holdout_report
    assert set(r) == {"method", "n_train", "n_test", "nrmse", "nrmse_per_output", "r2", "relative_l2"}
    assert (r["method"], r["n_train"], r["n_test"]) == ("idw", 300, 100)
    per_output = np.array(r["nrmse_per_output"])
    assert 0 < r["nrmse"] < 1 and r["nrmse"] == pytest.approx(per_output.mean())
    assert r["r2"] == pytest.approx(np.mean(1 - per_output ** 2))
    assert 0 < r["relative_l2"] < 1
    assert d.describe()["holdout"] == r and d.describe()["n_measured"] == 400
    assert MeasuredDevice(x, y, holdout=0).describe()["holdout"] is None


def test_holdout_scores_of_the_mean_is_one():
    y = np.random.default_rng(0).normal(size=(50, 3))
    r = holdout_scores(np.broadcast_to(y.mean(0), y.shape), y, method="mean", n_train=0)
    assert r["nrmse"] == pytest.approx(1.0) and r["r2"] == pytest.approx(0.0, abs=1e-12)


def test_noise_floor_from_repeated_drives():
    rng = np.random.default_rng(0)
    x = np.repeat(rng.uniform(0, 1, (300, 3)), 2, axis=0)
    y = np.c_[x.sum(1), x[:, 0]] + rng.normal(0, [0.1, 0.01], (600, 2))
    floor = MeasuredDevice(x, y).noise_floor
    np.testing.assert_allclose(floor, [0.1, 0.01], rtol=0.15)
    assert MeasuredDevice(x[::2], y[::2]).noise_floor is None


def test_sample_inputs_are_measured_drives(pairs):
    x, y = pairs
    d = MeasuredDevice(x, y)
    s = d.sample_inputs(50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert s.shape == (50, 2) and s.dtype == torch.float64
    assert all((np.abs(x - row).sum(1) == 0).any() for row in s.numpy())
    again = d.sample_inputs(50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(s, again)
    mixed = d.sample_inputs(50, generator=torch.Generator().manual_seed(0), mix=True)
    assert mixed.dtype == torch.float32 and d(mixed).shape == (50, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_answers_on_the_input_device(pairs):
    x, y = pairs
    d = MeasuredDevice(x, y)
    xt = torch.from_numpy(x[:4])
    torch.testing.assert_close(d(xt.cuda()).cpu(), d(xt))


# ------------------------------------------------------------------ the cavity
@needs_cavity
def test_cavity_shapes_and_name(cavity):
    assert (cavity.name, cavity.in_shape, cavity.out_shape) == ("phyll-cavity", (20,), (20,))
    assert cavity.input_bounds == (0.0, 1.0)
    y = cavity(cavity.sample_inputs(256, generator=torch.Generator().manual_seed(0)))
    assert y.shape == (256, 20) and y.dtype == torch.float32


@needs_cavity
def test_cavity_held_out_error_beats_linear(cavity):
    # Measured (seed 0, 1000 held-out pairs): ridge-rff NRMSE 0.362 (R^2 0.80), linear least squares
    # 0.410, predicting the mean 1. The guard sits between: a fit no better than linear fails.
    r = cavity.holdout_report
    assert (r["method"], r["n_train"], r["n_test"]) == ("ridge-rff", 9000, 1000)
    assert r["nrmse"] < 0.38 and r["r2"] > 0.78


@needs_cavity
def test_cavity_through_the_registry():
    d = create("phyll-cavity", data_dir=DATA, method="idw", holdout=0)
    assert d.method == "idw" and d.holdout_report is None


def test_cavity_missing_data_dir(tmp_path):
    with pytest.raises(DataNotFoundError, match="acoustic_x_data.csv"):
        phyll_cavity(tmp_path)
