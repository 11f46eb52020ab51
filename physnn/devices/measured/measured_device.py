"""MeasuredDevice: a real system answered from its measured (x, y) pairs.

The device never extrapolates (``input_bounds`` = measured range) and never
differentiates (a black box: train through it with a twin or SPSA). It answers
a new drive with one of four regressors fitted to the pairs:

* ``"idw"``: k-nearest-neighbour inverse-distance weighting; reproduces every
  measured pair exactly, assumes nothing, but degrades fast with dimension.
* ``"rbf"``: local thin-plate-spline RBF (``scipy.interpolate.RBFInterpolator``,
  ``neighbors`` nearest pairs, linear tail, ``smoothing``).
* ``"ridge-rff"``: ridge regression on the affine inputs plus ``features``
  random Fourier features (a Gaussian kernel of ``lengthscale``), the ridge
  strength chosen per output by generalized cross-validation; closed form.
* ``"linear"``: the same ridge on the affine inputs only (the baseline).

Measured on the PhyLL acoustic cavity (10,000 pairs, 20 -> 20; 1,000 held out,
seed 0). NRMSE = held-out RMSE / std, per output, averaged (predicting the
mean scores 1); R^2 averaged likewise; build = construction (holdout fit,
scoring, refit on all pairs); query = one batch of 256; one CPU thread:

=============================  =====  =====  =========  =========
method                         NRMSE  R^2    build [s]  query [s]
=============================  =====  =====  =========  =========
predict the mean               1.000  0.000  -          -
linear (least squares)         0.410  0.776  0.2        0.001
idw, neighbors=8               0.588  0.627  0.4        0.06
idw, neighbors=16              0.578  0.641  0.4        0.06
rbf, neighbors=64              0.457  0.688  0.6        0.11
rbf, neighbors=200             0.407  0.748  1.5        0.33
rbf, neighbors=200, s=10       0.398  0.764  1.4        0.33
ridge-rff, features=500        0.366  0.799  0.7        0.003
ridge-rff, features=1000 (*)   0.362  0.801  1.8        0.006
ridge-rff, features=2000       0.356  0.803  10         0.03
=============================  =====  =====  =========  =========

(*) the default. Nearest neighbours are far apart in 20 dimensions (median
distance 0.9 in the unit cube), so idw loses even to a linear fit. Eight of the
20 outputs are ~1000x weaker than the rest and mostly noise: NRMSE 0.45-0.84
(mean 0.66) for both ridge-rff and linear. On the twelve strong outputs
ridge-rff has NRMSE 0.14-0.21 (mean 0.16) where linear has 0.14-0.33 (mean 0.24).
"""

from __future__ import annotations

import os
from typing import Any, Protocol

import numpy as np
import torch
from scipy.interpolate import RBFInterpolator
from scipy.spatial import cKDTree
from scipy.spatial.distance import pdist

from ...data.record import load_record
from ...device import Device
from ...errors import ConfigurationError, RecordError

METHODS = ("idw", "rbf", "ridge-rff", "linear")

#: Ridge strengths tried by generalized cross-validation, relative to the mean Gram eigenvalue.
_RIDGE_GRID = np.logspace(-12, 2, 57)
#: Rows used to estimate the median pairwise distance (the default lengthscale).
_MEDIAN_ROWS = 1000


class MeasuredDevice(Device):
    """A black box ``y = f(x)`` known only from measured pairs, shape ``(B, d_in) -> (B, d_out)``.

    Args:
        x_measured: measured drives, shape ``(n, d_in)``, in the system's input units.
        y_measured: measured responses, shape ``(n, d_out)``, in its output units.
        method: regressor, one of :data:`METHODS` (see the module docstring).
        neighbors: nearest pairs used per query by ``"idw"`` and ``"rbf"``
            (``"rbf"`` needs at least ``d_in + 1``).
        power: inverse-distance exponent of ``"idw"``.
        smoothing: smoothing of ``"rbf"`` (0 interpolates exactly; raise it for noisy data).
        features: random Fourier features of ``"ridge-rff"``.
        lengthscale: Gaussian-kernel lengthscale of ``"ridge-rff"`` in (standardized)
            input units; ``None`` takes twice the median pairwise distance of the inputs.
        holdout: fraction of pairs held out (seeded) to measure the error; the
            model is then refitted on all pairs. ``0`` (or a fraction that
            rounds to no pair) skips the measurement.
        seed: seeds the holdout split, the random features and ``self.generator``.
        name: device name.
        standardize: z-score each input column before fitting, so distances and
            kernels weigh every input alike (outputs need no scaling: every
            regressor is linear in ``y``, so measured pairs come back bit-exact).
        input_bounds: accepted drive range ``(low, high)``; default the measured
            global min and max. It must contain the measured range.
        duplicate_tol: inputs within this Euclidean distance (input units) count
            as repeated measurements of one drive, used for :attr:`noise_floor`.

    Attributes:
        holdout_report: held-out error (``method``, ``n_train``, ``n_test``,
            ``nrmse``, ``nrmse_per_output``, ``r2``, ``relative_l2``) or ``None``.
        noise_floor: per-output noise std estimated from repeated drives,
            shape ``(d_out,)``, or ``None`` when no drive was repeated.
    """

    differentiable = False

    def __init__(self, x_measured: Any, y_measured: Any, *, method: str = "ridge-rff", neighbors: int = 8,
                 power: float = 2.0, smoothing: float = 0.0, features: int = 1000,
                 lengthscale: float | None = None, holdout: float = 0.1, seed: int = 0, name: str = "measured",
                 standardize: bool = True, input_bounds: tuple[float, float] | None = None,
                 duplicate_tol: float = 0.0) -> None:
        super().__init__(seed=seed)
        self.name = name
        x, y = _check_pairs(x_measured, y_measured, name)
        n_test = int(round(holdout * len(x))) if 0 < holdout < 1 else 0
        _check_settings(name, method, len(x) - n_test, x.shape[1], neighbors=neighbors, power=power,
                        smoothing=smoothing, features=features, lengthscale=lengthscale, holdout=holdout,
                        duplicate_tol=duplicate_tol)
        self.method = method
        self.x_measured, self.y_measured = x, y
        self.in_shape, self.out_shape = (x.shape[1],), (y.shape[1],)
        self.input_bounds = _bounds(x, input_bounds, name)
        settings = dict(method=method, neighbors=neighbors, power=power, smoothing=smoothing,
                        features=features, lengthscale=lengthscale, standardize=standardize, seed=seed)
        self.holdout_report: dict[str, Any] | None = None
        if n_test:
            order = np.random.default_rng([seed, 0]).permutation(len(x))
            test, train = order[:n_test], order[n_test:]
            model = _Model(x[train], y[train], **settings)
            self.holdout_report = holdout_scores(model(x[test]), y[test], method=method, n_train=len(train))
        self._model = _Model(x, y, **settings)
        self.noise_floor = _noise_floor(x, y, duplicate_tol)

    @classmethod
    def from_record(cls, path: str | os.PathLike, *, device: str | int | None = None,
                    **options: Any) -> MeasuredDevice:
        """The device measured in a record of :class:`~physnn.devices.Recorded` (every returned call's pairs).

        Args:
            path: the record file.
            device: which recorded device (label or identity id) when the file holds several.
            options: as for the constructor; ``name`` defaults to the recorded label.

        Raises:
            RecordError: the record is missing or corrupt, or its calls varied a control
                (a measured device has no controls: record at one fixed setting).
        """
        record = load_record(path, device=device)
        for name, values in record.controls.items():
            if len(values) and not bool((values == values[:1]).all()):
                raise RecordError(f"MeasuredDevice.from_record: record {record.path} varies control {name!r} "
                                  "across its calls; a measured device has no controls, so record it at one fixed "
                                  "setting (or select one device with device=)")
        return cls(record.inputs, record.outputs, **{"name": record.label, **options})

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        y = self._model(x.detach().to(device="cpu", dtype=torch.float64).numpy())
        return torch.from_numpy(y).to(device=x.device, dtype=x.dtype)

    def sample_inputs(self, n: int, generator: torch.Generator | None = None,
                      dtype: torch.dtype = torch.float32, *, mix: bool = False) -> torch.Tensor:
        """``n`` measured drives drawn with replacement, shape ``(n, d_in)``.

        With ``mix=True`` each drive is a random convex combination of two
        measured drives (still inside the measured range).
        """
        g = generator if generator is not None else self.generator
        x = self._draw_rows(n, g)
        if mix:
            t = torch.rand((n, 1), generator=g, dtype=torch.float64)
            x = t * x + (1 - t) * self._draw_rows(n, g)
        return x.to(dtype)

    def _draw_rows(self, n: int, generator: torch.Generator) -> torch.Tensor:
        rows = torch.randint(len(self.x_measured), (n,), generator=generator)
        return torch.from_numpy(self.x_measured[rows.numpy()])

    def describe(self) -> dict[str, Any]:
        """The base summary plus method, data size, input bounds, held-out error and noise floor."""
        noise = None if self.noise_floor is None else self.noise_floor.tolist()
        return {**super().describe(), "method": self.method, "n_measured": len(self.x_measured),
                "input_bounds": self.input_bounds, "holdout": self.holdout_report, "noise_floor": noise}


def holdout_scores(y_pred: np.ndarray, y_true: np.ndarray, *, method: str, n_train: int) -> dict[str, Any]:
    """Error of predictions ``y_pred`` against held-out ``y_true``, both ``(n_test, d_out)``.

    ``nrmse`` is RMSE / std of ``y_true`` per output, averaged over outputs
    (predicting the held-out mean scores 1); ``r2`` = 1 - SSE / SST averaged;
    ``relative_l2`` = ||y_pred - y_true|| / ||y_true|| over all entries.
    Outputs constant over the held-out pairs are left out of both averages.
    """
    err = y_pred - y_true
    sse = (err ** 2).sum(0)
    sst = ((y_true - y_true.mean(0)) ** 2).sum(0)
    varied = sst > 0
    nrmse = np.full(y_true.shape[1], np.nan)
    nrmse[varied] = np.sqrt(sse[varied] / sst[varied])
    r2 = 1 - sse[varied] / sst[varied]
    return {
        "method": method,
        "n_train": int(n_train),
        "n_test": len(y_true),
        "nrmse": float(np.mean(nrmse[varied])) if varied.any() else float("nan"),
        "nrmse_per_output": nrmse.tolist(),
        "r2": float(np.mean(r2)) if varied.any() else float("nan"),
        "relative_l2": float(np.linalg.norm(err) / max(np.linalg.norm(y_true), np.finfo(float).tiny)),
    }


# ------------------------------------------------------------------ validation
def _check_pairs(x_measured: Any, y_measured: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    arrays = []
    for label, a in (("x_measured", x_measured), ("y_measured", y_measured)):
        if isinstance(a, torch.Tensor):
            a = a.detach().cpu().numpy()
        try:
            a = np.array(a, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"MeasuredDevice({name!r}): {label} must be a real 2-D array, "
                                     f"got {type(a).__name__}") from exc
        if a.ndim != 2 or 0 in a.shape:
            raise ConfigurationError(f"MeasuredDevice({name!r}): {label} must be 2-D (pairs, channels) "
                                     f"with both sizes > 0, got shape {a.shape}")
        if not np.isfinite(a).all():
            row = int(np.argwhere(~np.isfinite(a))[0, 0])
            raise ConfigurationError(f"MeasuredDevice({name!r}): {label} must be finite; row {row} is {a[row]}")
        a.setflags(write=False)
        arrays.append(a)
    x, y = arrays
    if len(x) != len(y):
        raise ConfigurationError(f"MeasuredDevice({name!r}): x_measured has {len(x)} rows but y_measured has "
                                 f"{len(y)}; row i of each must be one measured pair")
    if x.min() == x.max():
        raise ConfigurationError(f"MeasuredDevice({name!r}): every measured input equals {x.min():g}; "
                                 "a constant drive tells nothing about the response")
    return x, y


def _check_settings(name: str, method: str, n_train: int, d_in: int, *, neighbors: int, power: float,
                    smoothing: float, features: int, lengthscale: float | None, holdout: float,
                    duplicate_tol: float) -> None:
    who = f"MeasuredDevice({name!r})"
    if method not in METHODS:
        raise ConfigurationError(f"{who}: method must be one of {list(METHODS)}, got {method!r}")
    if not 0 <= holdout < 1:
        raise ConfigurationError(f"{who}: holdout is a fraction in [0, 1), got {holdout}")
    integer = (int, np.integer)
    checks = [
        (isinstance(neighbors, integer) and neighbors >= 1, f"neighbors must be an integer >= 1, got {neighbors!r}"),
        (power > 0, f"power must be > 0, got {power}"),
        (smoothing >= 0, f"smoothing must be >= 0, got {smoothing}"),
        (isinstance(features, integer) and features >= 1, f"features must be an integer >= 1, got {features!r}"),
        (lengthscale is None or lengthscale > 0, f"lengthscale must be > 0 or None, got {lengthscale}"),
        (duplicate_tol >= 0, f"duplicate_tol must be >= 0, got {duplicate_tol}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigurationError(f"{who}: {message}")
    if method == "rbf" and neighbors < d_in + 1:
        raise ConfigurationError(f"{who}: method 'rbf' with a linear tail needs neighbors >= d_in + 1 = "
                                 f"{d_in + 1}, got {neighbors}")
    needed = neighbors if method in ("idw", "rbf") else 2
    if n_train < needed:
        raise ConfigurationError(f"{who}: method {method!r} needs at least {needed} fitting pairs, but only "
                                 f"{n_train} remain after holding out {holdout:.0%}; measure more pairs or "
                                 "lower neighbors/holdout")


def _bounds(x: np.ndarray, bounds: tuple[float, float] | None, name: str) -> tuple[float, float]:
    measured = (float(x.min()), float(x.max()))
    if bounds is None:
        return measured
    lo, hi = (float(b) for b in bounds)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= measured[0] and measured[1] <= hi):
        raise ConfigurationError(f"MeasuredDevice({name!r}): input_bounds {bounds} must be finite and contain "
                                 f"the measured range [{measured[0]:g}, {measured[1]:g}]")
    return lo, hi


def _noise_floor(x: np.ndarray, y: np.ndarray, tol: float) -> np.ndarray | None:
    """Per-output noise std from pairs of drives within ``tol``: sqrt(mean of (y_i - y_j)^2 / 2)."""
    pairs = cKDTree(x).query_pairs(r=tol, output_type="ndarray")
    if len(pairs) == 0:
        return None
    diff = y[pairs[:, 0]] - y[pairs[:, 1]]
    return np.sqrt(0.5 * (diff ** 2).mean(0))


# ------------------------------------------------------------------- regressors
class _Predictor(Protocol):
    def __call__(self, x: np.ndarray) -> np.ndarray: ...


class _Model:
    """A fitted regressor in the caller's units: ``(B, d_in) -> (B, d_out)``, float64."""

    def __init__(self, x: np.ndarray, y: np.ndarray, *, method: str, neighbors: int, power: float,
                 smoothing: float, features: int, lengthscale: float | None, standardize: bool,
                 seed: int) -> None:
        self.x_mean, self.x_std = _moments(x, standardize)
        xs = (x - self.x_mean) / self.x_std
        self.predictor: _Predictor
        if method == "idw":
            self.predictor = _InverseDistance(xs, y, neighbors=neighbors, power=power)
        elif method == "rbf":
            self.predictor = RBFInterpolator(xs, y, neighbors=neighbors, smoothing=smoothing,
                                             kernel="thin_plate_spline", degree=1)
        elif method == "ridge-rff":
            scale = lengthscale if lengthscale is not None else 2 * _median_distance(xs, seed)
            rng = np.random.default_rng([seed, 1])
            self.predictor = _Ridge(xs, y, _FourierFeatures(xs.shape[1], features, scale, rng))
        else:
            self.predictor = _Ridge(xs, y, _affine)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.predictor((x - self.x_mean) / self.x_std)


def _moments(a: np.ndarray, standardize: bool) -> tuple[np.ndarray, np.ndarray]:
    if not standardize:
        return np.zeros(a.shape[1]), np.ones(a.shape[1])
    std = a.std(0)
    return a.mean(0), np.where(std > 0, std, 1.0)


def _median_distance(x: np.ndarray, seed: int) -> float:
    """Median Euclidean distance between rows of ``x`` (a seeded subsample of them), else 1."""
    rows = np.random.default_rng([seed, 2]).permutation(len(x))[:_MEDIAN_ROWS]
    distance = float(np.median(pdist(x[rows])))
    return distance if distance > 0 else 1.0


class _InverseDistance:
    """Weights ``1 / d**power`` over the ``neighbors`` nearest pairs; an exact match returns its measurement."""

    def __init__(self, x: np.ndarray, y: np.ndarray, *, neighbors: int, power: float) -> None:
        self.tree, self.y, self.k, self.power = cKDTree(x), y, neighbors, power

    def __call__(self, x: np.ndarray) -> np.ndarray:
        d, i = self.tree.query(x, k=list(range(1, self.k + 1)))
        exact = d == 0
        with np.errstate(divide="ignore"):
            w = np.where(exact.any(1, keepdims=True), exact.astype(float), d ** -self.power)
        w /= w.sum(1, keepdims=True)
        return np.einsum("bk,bko->bo", w, self.y[i])


def _affine(x: np.ndarray) -> np.ndarray:
    """Features of ``"linear"``: the inputs themselves (``_Ridge`` fits the intercept)."""
    return x


class _FourierFeatures:
    """``[x, sqrt(2/D) cos(x W / lengthscale + b)]``: a Gaussian kernel of ``lengthscale`` plus a linear part."""

    def __init__(self, d_in: int, n_features: int, lengthscale: float, rng: np.random.Generator) -> None:
        self.w = rng.standard_normal((d_in, n_features)) / lengthscale
        self.b = rng.uniform(0, 2 * np.pi, n_features)
        self.gain = np.sqrt(2 / n_features)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([x, self.gain * np.cos(x @ self.w + self.b)], axis=1)


class _Ridge:
    """Ridge regression on ``features(x)`` with an unpenalized intercept.

    The ridge strength of each output minimizes its generalized cross-validation
    score over :data:`_RIDGE_GRID`; one eigendecomposition of the smaller Gram
    matrix serves every strength and output.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, features: _Predictor) -> None:
        self.features = features
        f = features(x)
        self.f_mean, self.y_mean = f.mean(0), y.mean(0)
        f, y = f - self.f_mean, y - self.y_mean
        n, p = f.shape
        primal = n >= p
        s2, v = np.linalg.eigh(f.T @ f if primal else f @ f.T)
        keep = s2 > s2.max() * 1e-12
        s2, v = s2[keep], v[:, keep]
        # uty: projections of y on the left singular vectors of f.
        uty = (v.T @ (f.T @ y)) / np.sqrt(s2)[:, None] if primal else v.T @ y
        lam = _RIDGE_GRID[:, None] * s2.mean()
        shrink = lam / (s2[None, :] + lam)                              # (grid, rank)
        rss = (y ** 2).sum(0) - (uty ** 2).sum(0) + (shrink ** 2) @ (uty ** 2)  # (grid, d_out)
        dof = (1 - shrink).sum(1)
        free = 1 - (dof + 1) / n                                         # +1: the intercept
        gcv = np.where(free[:, None] > 1e-9, rss / np.maximum(free, 1e-9)[:, None] ** 2, np.inf)
        best = lam[gcv.argmin(0), 0]                                     # (d_out,)
        gain = np.sqrt(s2)[:, None] / (s2[:, None] + best[None, :]) * uty  # (rank, d_out)
        self.coef = v @ gain if primal else f.T @ (v @ (gain / np.sqrt(s2)[:, None]))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (self.features(x) - self.f_mean) @ self.coef + self.y_mean
