"""Training losses for :func:`physnn.training.fit`: built-ins by name, or any callable.

A loss is a callable ``(output, y) -> scalar tensor`` (mean over the batch).
:func:`resolve_loss` turns ``fit``'s ``loss=`` argument into a :class:`Loss`
that knows its task, which decides the metrics ``fit`` reports:

* classification (int64 labels ``y`` of shape ``(N,)``): ``accuracy`` (argmax
  of outputs ``(B, C)``) and ``loss``;
* regression (floating targets ``y`` of shape ``(N, ...)``, outputs of the same
  shape): ``loss``, ``mse``, ``rmse``, ``mae`` and ``r2`` (never an accuracy).

Built-ins: ``"cross_entropy"`` (classification), ``"mse"``, ``"l1"`` and
``"huber"`` (regression, Huber with ``delta=1``). A custom callable takes its
task from the targets' dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigurationError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
CLASSIFICATION, REGRESSION = "classification", "regression"
#: Built-in losses: name -> (function, task).
BUILTIN: dict[str, tuple[LossFn, str]] = {
    "cross_entropy": (F.cross_entropy, CLASSIFICATION),
    "mse": (F.mse_loss, REGRESSION),
    "l1": (F.l1_loss, REGRESSION),
    "huber": (F.huber_loss, REGRESSION),
}


@dataclass(frozen=True)
class Loss:
    """A loss with its name and task; calling it checks outputs against targets first.

    Attributes:
        fn: ``(output, y) -> scalar tensor``.
        name: the built-in's name or the callable's ``__name__`` (kept in checkpoints).
        task: ``"classification"`` or ``"regression"``.
    """

    fn: LossFn
    name: str
    task: str

    def __call__(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.check_output(output, y)
        value = self.fn(output, y)
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise ConfigurationError(f"loss {self.name!r} must return a scalar tensor, got "
                                     f"{type(value).__name__} {tuple(getattr(value, 'shape', ()))}")
        return value.reshape(())

    def check_output(self, output: torch.Tensor, y: torch.Tensor) -> None:
        """Refuse outputs that do not fit the targets (shape, or too few classes for the labels)."""
        if self.task == REGRESSION:
            if output.shape != y.shape:
                raise ConfigurationError(f"loss {self.name!r}: the model's outputs have shape {tuple(output.shape)} "
                                         f"but the targets y have shape {tuple(y.shape)}; regression needs the same "
                                         "shape (B, ...) for both")
            return
        if y.dtype != torch.long or y.dim() != 1:
            raise ConfigurationError(f"loss {self.name!r} is a classification loss and needs int64 labels (B,), got "
                                     f"{y.dtype} {tuple(y.shape)} (fit(loss='mse', ...) trains on float targets)")
        if output.dim() != 2 or output.shape[0] != y.shape[0]:
            raise ConfigurationError(f"loss {self.name!r}: classification needs outputs (B, C) for labels (B,), "
                                     f"got outputs {tuple(output.shape)} for labels {tuple(y.shape)}")
        if len(y) and int(y.max()) >= output.shape[1]:
            raise ConfigurationError(f"loss {self.name!r}: label {int(y.max())} needs at least {int(y.max()) + 1} "
                                     f"output classes, the model gives {output.shape[1]}")

    def check_targets(self, name: str, y: torch.Tensor) -> None:
        """Refuse targets ``y`` of ``fit``'s ``name`` set (``"train"``, ``"val"``) that this loss cannot use."""
        if self.task == CLASSIFICATION:
            if y.dtype != torch.long or y.dim() != 1:
                raise ConfigurationError(f"fit: loss {self.name!r} is a classification loss and needs int64 labels "
                                         f"y of shape (N,); {name} y is {y.dtype} of shape {tuple(y.shape)} (for "
                                         "float targets pass loss='mse', 'l1', 'huber' or a callable)")
            if bool((y < 0).any()):
                raise ConfigurationError(f"fit: {name} labels must be >= 0, got {int(y.min())}")
            return
        if not y.is_floating_point():
            raise ConfigurationError(f"fit: loss {self.name!r} is a regression loss and needs floating targets y; "
                                     f"{name} y is {y.dtype} (convert with y.float(), or use loss='cross_entropy' "
                                     "for class labels)")
        if not bool(torch.isfinite(y).all()):
            raise ConfigurationError(f"fit: {name} targets y hold NaN or Inf")


def resolve_loss(loss: str | LossFn | Loss | None, y: torch.Tensor) -> Loss:
    """The :class:`Loss` for ``fit(loss=...)`` and training targets ``y``.

    ``None`` picks ``"cross_entropy"`` for int64 labels and ``"mse"`` for floating targets;
    a string names a built-in (:data:`BUILTIN`); a callable's task follows ``y``'s dtype.
    """
    if isinstance(loss, Loss):
        return loss
    if loss is None:
        loss = "mse" if y.is_floating_point() else "cross_entropy"
    if isinstance(loss, str):
        if loss not in BUILTIN:
            raise ConfigurationError(f"fit: unknown loss {loss!r}; built-ins are {sorted(BUILTIN)}, or pass a "
                                     "callable (output, y) -> scalar tensor")
        fn, task = BUILTIN[loss]
        return Loss(fn, loss, task)
    if not callable(loss):
        raise ConfigurationError(f"fit: loss must be a name in {sorted(BUILTIN)} or a callable (output, y) -> "
                                 f"scalar tensor, got {type(loss).__name__}")
    task = REGRESSION if y.is_floating_point() else CLASSIFICATION
    return Loss(loss, getattr(loss, "__name__", type(loss).__name__), task)


class RegressionSums:
    """Running sums over evaluation chunks that give ``mse``, ``rmse``, ``mae`` and ``r2`` of a whole set.

    ``r2`` is ``1 - SSE / SST`` with ``SST`` the squared deviations of every target element from its
    output's mean over the set (scikit-learn's ``variance_weighted``); it is left out when ``SST`` is 0
    (one sample, or constant targets).
    """

    def __init__(self) -> None:
        self.n, self.elements, self.sse, self.sae = 0, 0, 0.0, 0.0
        self.sum_y: torch.Tensor | None = None
        self.sum_y2: torch.Tensor | None = None

    def add(self, output: torch.Tensor, y: torch.Tensor) -> None:
        """One chunk: outputs and targets of the same shape ``(B, ...)``."""
        err = (output.detach().double() - y.double())
        yd = y.double()
        self.n += len(y)
        self.elements += y.numel()
        self.sse += float(err.pow(2).sum())
        self.sae += float(err.abs().sum())
        s, s2 = yd.sum(0), yd.pow(2).sum(0)
        self.sum_y = s if self.sum_y is None else self.sum_y + s
        self.sum_y2 = s2 if self.sum_y2 is None else self.sum_y2 + s2

    def metrics(self) -> dict[str, float]:
        mse = self.sse / self.elements
        out = {"mse": mse, "rmse": mse ** 0.5, "mae": self.sae / self.elements}
        sst = float((self.sum_y2 - self.sum_y.pow(2) / self.n).sum()) if self.sum_y is not None else 0.0
        if sst > 1e-12 * max(float(self.sum_y2.sum()), 1e-300):
            out["r2"] = 1.0 - self.sse / sst
        return out


#: The default of every method before ``fit`` sets another.
CROSS_ENTROPY = Loss(F.cross_entropy, "cross_entropy", CLASSIFICATION)
