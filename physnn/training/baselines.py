"""Honest baselines for a physical network: what it must beat, on the same split and seeds.

* :func:`logistic_regression` (classification) and :func:`ridge` (regression) on
  the raw inputs: the strongest *simple* digital model; deterministic convex fits.
* :func:`matched_mlp`: a one-hidden-layer ReLU MLP with the same number of
  trainable parameters as the physical model (the hidden width solved for).
* :func:`random_map_ablation`: the physical model with every device replaced by
  a :class:`RandomMap`, a fixed random *linear* map of the same shapes scaled to
  the device's output statistics, keeping every digital part. A linear map is
  the null hypothesis "the physics contributes nothing but a projection":
  whatever the physical model gains over it is what the device's nonlinear
  dynamics add. (The drive and the digital layers stay, so the ablation is
  nonlinear wherever the digital model is.)
* :func:`digital_baselines` trains the first two on one split (the MLP through
  :func:`~physnn.training.fit`, the one training loop), :func:`summarize` and
  :func:`results_table` turn runs into ``mean ± std (n seeds)`` rows.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..device import Device
from ..errors import ConfigurationError
from ..layer import PhysicalLayer
from .creep import count_parameters
from .loop import fit
from .methods import Backprop, Method
from .models import digital_network, physical_layers

# ------------------------------------------------------------------ linear models on the raw inputs


def _flat64(name: str, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or len(x) == 0:
        raise ConfigurationError(f"baselines: {name} must be a non-empty tensor (N, ...), got "
                                 f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}")
    x = x.detach().reshape(len(x), -1).to(torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise ConfigurationError(f"baselines: {name} holds NaN or Inf")
    return x


def _standardize(x_train: torch.Tensor, x_test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """z-score both sets with the training set's per-feature mean and std (constant features -> 0)."""
    mean, std = x_train.mean(0), x_train.std(0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (x_train - mean) / std, (x_test - mean) / std


def logistic_regression(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                        *, c: float = 1.0, max_iter: int = 500) -> dict[str, float]:
    """Multinomial logistic regression on the raw (flattened, z-scored) inputs; no randomness.

    Minimizes ``sum_i CE_i + ||W||^2 / (2 c)`` (the bias unpenalized) by L-BFGS in
    float64: scikit-learn's ``LogisticRegression(C=c)`` objective, so the same
    solution. Features are z-scored with the training set's statistics.

    Args:
        x_train, x_test: inputs ``(N, ...)``; y_train, y_test: int64 labels ``(N,)``.
        c: inverse L2 strength (scikit-learn's ``C``).
        max_iter: L-BFGS iterations.

    Returns:
        ``{"train_accuracy", "test_accuracy", "parameters"}`` (fractions; weight and bias count).
    """
    xtr, xte = _standardize(_flat64("x_train", x_train), _flat64("x_test", x_test))
    for name, x, y in (("train", xtr, y_train), ("test", xte, y_test)):
        if y.dtype != torch.long or y.shape != (len(x),):
            raise ConfigurationError(f"logistic_regression: y_{name} must be int64 labels of shape ({len(x)},), "
                                     f"got {y.dtype} {tuple(y.shape)}")
    if not c > 0:
        raise ConfigurationError(f"logistic_regression: c must be > 0, got {c}")
    ytr, yte = y_train.cpu(), y_test.cpu()
    xtr, xte = xtr.cpu(), xte.cpu()
    n_classes = int(max(ytr.max(), yte.max())) + 1
    weight = torch.zeros(xtr.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter, tolerance_grad=1e-10,
                            tolerance_change=1e-14, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        # the objective divided by N (same minimizer, better scaled for L-BFGS)
        loss = F.cross_entropy(xtr @ weight + bias, ytr) + (weight ** 2).sum() / (2 * c * len(ytr))
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        acc = {f"{name}_accuracy": float(((x @ weight + bias).argmax(1) == y).double().mean())
               for name, x, y in (("train", xtr, ytr), ("test", xte, yte))}
    return acc | {"parameters": weight.numel() + bias.numel()}


def ridge(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
          *, alpha: float = 1.0) -> dict[str, float]:
    """Ridge regression on the raw (flattened, z-scored) inputs, in closed form (float64).

    Minimizes ``||y - X w - b||^2 + alpha ||w||^2`` (intercept unpenalized):
    scikit-learn's ``Ridge(alpha)`` on the z-scored inputs.

    Args:
        x_train, x_test: inputs ``(N, ...)``; y_train, y_test: float targets ``(N,)`` or ``(N, k)``.
        alpha: L2 strength (>= 0).

    Returns:
        ``{"train_mse", "test_mse", "test_r2", "parameters"}``; R^2 = 1 - MSE / variance of ``y_test``.
    """
    xtr, xte = _standardize(_flat64("x_train", x_train), _flat64("x_test", x_test))
    ytr, yte = _flat64("y_train", y_train), _flat64("y_test", y_test)
    if len(ytr) != len(xtr) or len(yte) != len(xte) or ytr.shape[1] != yte.shape[1]:
        raise ConfigurationError(f"ridge: targets must match the inputs, (N,) or (N, k); got x_train "
                                 f"{tuple(x_train.shape)}, y_train {tuple(y_train.shape)}, x_test "
                                 f"{tuple(x_test.shape)}, y_test {tuple(y_test.shape)}")
    if not alpha >= 0:
        raise ConfigurationError(f"ridge: alpha must be >= 0, got {alpha}")
    xtr, xte, ytr, yte = (t.cpu() for t in (xtr, xte, ytr, yte))
    y_mean = ytr.mean(0)
    gram = xtr.T @ xtr + alpha * torch.eye(xtr.shape[1], dtype=torch.float64)
    w = torch.linalg.lstsq(gram, xtr.T @ (ytr - y_mean)).solution
    mse = {name: float(((x @ w + y_mean - y) ** 2).mean()) for name, x, y in (("train", xtr, ytr), ("test", xte, yte))}
    variance = float(((yte - yte.mean(0)) ** 2).mean())
    r2 = 1 - mse["test"] / variance if variance > 0 else float("nan")
    return {"train_mse": mse["train"], "test_mse": mse["test"], "test_r2": r2, "parameters": w.numel() + len(y_mean)}


# ------------------------------------------------------------------ a parameter-matched MLP


def trained_parameters(method: Method) -> int:
    """Parameter elements ``method``'s optimizers update (e.g. forward-forward trains only the linear maps,
    not the devices' controls): the budget a matched MLP gets."""
    unique = {id(p): p for opt in method.optimizers.values() for group in opt.param_groups for p in group["params"]}
    return sum(p.numel() for p in unique.values())


def matched_mlp(n_params: int, in_dim: int, out_dim: int, *, seed: int = 0, tolerance: float = 0.05) -> nn.Sequential:
    """``Linear(in_dim, h) -> ReLU -> Linear(h, out_dim)`` with ``h`` chosen so it has ~``n_params`` parameters.

    ``h (in_dim + 1) + out_dim (h + 1)`` parameters; ``h`` is the nearest integer
    >= 1. Raises :class:`ConfigurationError` when no width comes within
    ``tolerance`` (relative) of ``n_params`` (e.g. fewer parameters than one hidden unit costs).
    """
    if min(n_params, in_dim, out_dim) < 1:
        raise ConfigurationError(f"matched_mlp needs n_params, in_dim, out_dim >= 1; got {n_params}, {in_dim}, "
                                 f"{out_dim}")
    per_unit = in_dim + 1 + out_dim
    width = max(1, round((n_params - out_dim) / per_unit))
    got = width * per_unit + out_dim
    if abs(got - n_params) > tolerance * n_params:
        raise ConfigurationError(f"matched_mlp: no hidden width gives {n_params} parameters within "
                                 f"{100 * tolerance:g} % for {in_dim} inputs and {out_dim} outputs (each unit costs "
                                 f"{per_unit}; width {width} gives {got}); raise tolerance or compare another model")
    return digital_network(in_dim, [width, out_dim], seed=seed)


def digital_baselines(train: tuple[torch.Tensor, torch.Tensor], test: tuple[torch.Tensor, torch.Tensor], *,
                      n_params: int, seed: int, epochs: int, lr: float = 1e-2, batch_size: int | None = None,
                      weight_decay: float = 0.0, progress: bool = False) -> list[dict[str, Any]]:
    """Logistic regression and the parameter-matched MLP on one split; two result rows.

    The MLP (``in_dim`` = flattened input size, ``out_dim`` = number of classes)
    is trained by :class:`~physnn.training.Backprop` in :func:`~physnn.training.fit`
    with ``seed``, ``epochs``, ``lr``, ``batch_size``; its test accuracy is the
    final epoch's. Rows: ``{"model", "seed", "test_accuracy", "train_accuracy", "parameters"}``.
    """
    (x_tr, y_tr), (x_te, y_te) = train, test
    lr_row = logistic_regression(x_tr, y_tr, x_te, y_te)
    n_classes = int(max(y_tr.max(), y_te.max())) + 1
    flat = (lambda x: x.reshape(len(x), -1))
    mlp = matched_mlp(n_params, flat(x_tr).shape[1], n_classes, seed=seed).to(device=x_tr.device, dtype=x_tr.dtype)
    run = fit(Backprop(mlp, lr=lr, weight_decay=weight_decay), (flat(x_tr), y_tr), val=(flat(x_te), y_te),
              epochs=epochs, batch_size=batch_size, seed=seed, progress=progress, plot=False)
    return [{"model": "logistic regression (raw inputs)", "seed": seed, **lr_row},
            {"model": "matched MLP", "seed": seed, "test_accuracy": run.final("val_accuracy"),
             "train_accuracy": run.final("train_accuracy"), "parameters": count_parameters(mlp)}]


# ------------------------------------------------------------------ the random-map ablation


class RandomMap(Device):
    """A fixed random affine map ``y = x W + b`` of given shapes: the ablation of a physical device.

    ``W`` (prod(in_shape), prod(out_shape)) has i.i.d. normal entries, drawn from
    ``seed``; :meth:`like` rescales it so each output has the mean and std the
    replaced device gives on the same drives. Differentiable, no controls, no noise.
    """

    name = "random-map"
    differentiable = True

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], *,
                 input_bounds: tuple[float, float] | None = None, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.in_shape, self.out_shape = tuple(int(n) for n in in_shape), tuple(int(n) for n in out_shape)
        self.input_bounds = input_bounds
        n_in, n_out = math.prod(self.in_shape), math.prod(self.out_shape)
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("weight", torch.randn(n_in, n_out, generator=g, dtype=torch.float64) / math.sqrt(n_in))
        self.register_buffer("bias", torch.zeros(n_out, dtype=torch.float64))

    @classmethod
    def like(cls, device: Device, *, drives: torch.Tensor | None = None,
             controls: Mapping[str, Any] | None = None, n: int = 256, seed: int = 0) -> RandomMap:
        """A random map with ``device``'s shapes and input bounds, each output matched to the device's
        mean and std over ``drives`` (default ``device.sample_inputs(n)``), measured at ``controls``."""
        out = cls(device.in_shape, device.out_shape, input_bounds=device.input_bounds, seed=seed)
        if drives is None:
            drives = device.sample_inputs(n, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            target = device(drives, controls).reshape(len(drives), -1).to(torch.float64).cpu()
            raw = drives.reshape(len(drives), -1).to(torch.float64).cpu() @ out.weight
        scale = target.std(0) / raw.std(0).clamp_min(torch.finfo(torch.float64).tiny)
        out.weight.mul_(scale)
        out.bias.copy_(target.mean(0) - raw.mean(0) * scale)
        return out

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        y = x.reshape(len(x), -1).to(self.weight.dtype) @ self.weight + self.bias
        return y.reshape((len(x),) + self.out_shape).to(x.dtype)


def random_map_ablation(model: nn.Module, *, seed: int = 0, drives: Mapping[int, torch.Tensor] | None = None,
                        n: int = 256) -> nn.Module:
    """A copy of ``model`` whose every :class:`~physnn.PhysicalLayer` drives a :class:`RandomMap` instead.

    Digital parts (encoder, readout, anything around the layers) are copied with
    their current weights; the devices and twins are not copied (the original
    model is untouched). Each new layer keeps its route, SPSA settings, encoder
    and readout, has the random map as its twin too (so route ``"twin"`` still
    works) and loses the device's controls (nothing physical left to tune).
    Each map is matched to its device's output statistics at the layer's
    current controls (:meth:`RandomMap.like`) on ``drives[k]`` (the drives of
    the ``k``-th layer, default ``n`` samples of the device's typical drives);
    map ``k`` is drawn from ``seed + k``.
    """
    layers = list(physical_layers(model))
    if not layers:
        raise ConfigurationError(f"random_map_ablation: {type(model).__name__} holds no PhysicalLayer to replace")
    # the devices are not copied: hardware handles and measurement tables stay with the original
    memo: dict[int, Any] = {id(d): None for layer in layers for d in (layer.device, layer.twin) if d is not None}
    copied = copy.deepcopy(model, memo)
    replacements = {}
    for k, (old, new) in enumerate(zip(layers, physical_layers(copied))):
        controls = {name: v.detach() for name, v in old.control_values().items()}
        rmap = RandomMap.like(old.device, drives=None if drives is None else drives.get(k), controls=controls, n=n,
                              seed=seed + k)
        rmap = rmap.to(next((t.device for t in old.parameters()), torch.device("cpu")))
        replacements[id(new)] = PhysicalLayer(rmap, old.route, twin=rmap, encoder=new.encoder, readout=new.readout,
                                              perturbations=old.perturbations, epsilon=old.epsilon,
                                              seed=seed + k)
    if id(copied) in replacements:
        return replacements[id(copied)]
    for parent in copied.modules():
        for name, child in list(parent.named_children()):
            if id(child) in replacements:
                setattr(parent, name, replacements[id(child)])
    return copied


# ------------------------------------------------------------------ tables


def summarize(runs: Iterable[Mapping[str, Any]], *, key: str = "test_accuracy", by: str = "model",
              percent: bool = True, unit: str = "seed") -> list[dict[str, Any]]:
    """Group ``runs`` by ``by`` (first-appearance order) into ``mean ± std (n seeds)`` rows of ``key``.

    ``unit`` names what the runs repeat over (``"seed"``, ``"fold"``).
    std is the sample standard deviation (ddof = 1; 0 for one seed). Rows:
    ``{by, "mean", "std", "n", "parameters", "text"}``; with ``percent`` the
    values are multiplied by 100 and the text ends in ``%``. Runs without
    ``key`` (e.g. a refused method) are skipped.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for run in runs:
        if key in run:
            groups.setdefault(str(run[by]), []).append(run)
    rows = []
    for name, group in groups.items():
        values = np.array([float(r[key]) for r in group]) * (100 if percent else 1)
        mean, std = float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
        suffix, prec = (" %", 1) if percent else ("", 4)
        count = f"{len(values)} {unit}{'s' * (len(values) > 1)}"
        rows.append({by: name, "mean": mean, "std": std, "n": len(values), "parameters": group[0].get("parameters"),
                     "text": f"{mean:.{prec}f} ± {std:.{prec}f}{suffix} ({count})"})
    return rows


def results_table(rows: Sequence[Mapping[str, Any]], *, by: str = "model", header: str = "test accuracy") -> str:
    """A markdown table of :func:`summarize` rows: ``| model | header | trainable parameters |``."""
    lines = [f"| {by} | {header} (mean ± std) | trainable parameters |", "|---|---|---|"]
    for row in rows:
        params = "-" if row.get("parameters") is None else f"{int(row['parameters']):,}"
        lines.append(f"| {row[by]} | {row['text']} | {params} |")
    return "\n".join(lines) + "\n"
