"""Training methods that share one loop (:func:`physnn.training.fit`).

A method owns a model and its optimizer and knows one training step. The loop
asks it for :meth:`Method.train_step` on each batch, :meth:`Method.evaluate` on
whole sets, and for its state (exact resume) and the devices it drives
(accounting). The supervised methods differ only in the gradient route of
their physical layers:

=====================  ================  ===============================================
method                 route             gradients across a device come from
=====================  ================  ===============================================
:class:`Backprop`      ``autograd``      autograd through the device (a simulation), or
                                         with ``in_silico=True`` through each layer's
                                         twin while evaluation runs on the device
:class:`PhysicsAware`  ``twin``          a differentiable twin at the measured inputs
:class:`ZerothOrder`   ``zeroth_order``  SPSA from extra device calls
=====================  ================  ===============================================

:class:`~physnn.training.ForwardForward` (no gradients across devices at all)
follows the same interface. The supervised methods minimize the method's
:attr:`Method.loss` (cross-entropy unless ``fit(loss=...)`` sets another, see
:mod:`physnn.training.losses`), for classification or regression alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from ..device import Device
from ..errors import ConfigurationError, GradientRouteError
from .losses import CLASSIFICATION, CROSS_ENTROPY, Loss, RegressionSums
from .models import physical_layers


class Method:
    """What :func:`physnn.training.fit` needs from a training method.

    Subclasses set ``self.model`` (an ``nn.Module``) and ``self.optimizers``
    (name -> ``torch.optim.Optimizer``) and implement :meth:`train_step` and
    :meth:`scores`. ``self.steps`` / ``self.updates`` count optimizer steps and
    the parameter elements they changed (the digital cost of training).
    """

    name = "method"
    #: True when :meth:`scores` are the outputs the loss applies to (logits, regression outputs), so
    #: evaluation reports the loss; False for methods whose scores are something else (goodness).
    scores_are_logits = True
    #: What :meth:`train_step` minimizes and :meth:`evaluate` reports; :func:`~physnn.training.fit` sets it.
    loss: Loss = CROSS_ENTROPY
    model: nn.Module
    optimizers: dict[str, torch.optim.Optimizer]

    def __init__(self) -> None:
        self.steps = 0
        self.updates = 0

    # --------------------------------------------------------------- interface
    def set_loss(self, loss: Loss) -> None:
        """Train and evaluate with ``loss`` (called by :func:`~physnn.training.fit`)."""
        self.loss = loss

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """One step on a batch ``x`` (B, ...) with targets ``y`` (labels (B,) or floats (B, ...));
        returns metrics (e.g. ``loss``)."""
        raise NotImplementedError

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """The model's outputs on the device, no gradients: class scores ``(B, C)`` (argmax = prediction)
        or regression outputs ``(B, ...)``."""
        raise NotImplementedError

    def evaluate(self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int | None = None) -> dict[str, float]:
        """Metrics of a whole set, evaluated in chunks of ``batch_size`` samples (all at once when ``None``).

        Classification: ``accuracy`` (fraction correct) and, where the scores are logits, ``loss``.
        Regression: ``loss``, ``mse``, ``rmse``, ``mae`` and ``r2`` (:class:`~physnn.training.losses.RegressionSums`).
        ``loss`` is the chunk losses weighted by chunk size (exact for losses that are batch means).
        """
        size = len(y) if batch_size is None else int(batch_size)
        classify = self.loss.task == CLASSIFICATION
        correct, loss, sums = 0, 0.0, RegressionSums()
        with torch.no_grad():
            for start in range(0, len(y), size):
                s, t = self.scores(x[start:start + size]), y[start:start + size]
                if self.scores_are_logits:
                    loss += float(self.loss(s, t)) * len(t)
                if classify:
                    correct += int((s.argmax(1) == t).sum())
                else:
                    sums.add(s, t)
        metrics = {"accuracy": correct / len(y)} if classify else sums.metrics()
        if self.scores_are_logits:
            metrics["loss"] = loss / len(y)
        return metrics

    def devices(self) -> list[Device]:
        """The physical devices this method drives (their calls are the cost on hardware)."""
        return _unique(layer.device for layer in physical_layers(self.model))

    def twins(self) -> list[Device]:
        """The digital twins it evaluates (counted separately: they cost compute, not hardware)."""
        return _unique(layer.twin for layer in physical_layers(self.model) if layer.twin is not None)

    def generators(self) -> dict[str, torch.Generator]:
        """Every random generator training draws from, by a stable name (captured for exact resume)."""
        gens = {f"layer{k}": layer.generator for k, layer in enumerate(physical_layers(self.model))}
        for k, device in enumerate(self.devices() + self.twins()):
            gens[f"device{k}"] = device.generator
        return gens

    def state_dict(self) -> dict[str, Any]:
        """Model, optimizers and step counts (not the generators: the loop captures those)."""
        return {"model": self.model.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "steps": self.steps, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.steps, self.updates = int(state["steps"]), int(state["updates"])

    # ----------------------------------------------------------------- helpers
    def _step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()``, counting the step and the parameter elements it changes."""
        self.steps += 1
        self.updates += sum(p.numel() for group in optimizer.param_groups for p in group["params"]
                            if p.grad is not None)
        optimizer.step()


class _Supervised(Method):
    """:attr:`Method.loss` of the model's outputs, one Adam step per batch, physical layers on ``route``."""

    route = "autograd"

    def __init__(self, model: nn.Module, *, lr: float = 1e-2, weight_decay: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self._set_routes(model)
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ConfigurationError(f"{type(self).__name__}: the model has no trainable parameters")
        self.optimizers = {"adam": torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)}

    def _set_routes(self, model: nn.Module) -> None:
        for layer in physical_layers(model):
            layer.route = self.route

    def _training_context(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        optimizer = self.optimizers["adam"]
        optimizer.zero_grad()
        self.model.train()
        with self._training_context():
            loss = self.loss(self.model(x), y)
            loss.backward()
        self._step(optimizer)
        return {"loss": float(loss.detach())}

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        with torch.no_grad():
            return self.model(x)


class Backprop(_Supervised):
    """End-to-end backpropagation (route ``autograd``), the in-silico baseline.

    Args:
        model: a network with :class:`~physnn.PhysicalLayer` s (e.g. from
            :func:`~physnn.training.physical_network`) or a purely digital one.
        lr, weight_decay: Adam settings.
        in_silico: train through each physical layer's *twin* with autograd (the
            device is never driven during training), evaluate on the devices:
            the classic "train the model, deploy on hardware" workflow.

    Raises:
        GradientRouteError: a physical layer's device is a black box and
            ``in_silico`` is False (use :class:`PhysicsAware`, :class:`ZerothOrder`,
            :class:`~physnn.training.ForwardForward`, or ``in_silico=True`` with a twin).
    """

    name = "backprop"

    def __init__(self, model: nn.Module, *, lr: float = 1e-2, weight_decay: float = 0.0,
                 in_silico: bool = False) -> None:
        self.in_silico = bool(in_silico)
        super().__init__(model, lr=lr, weight_decay=weight_decay)
        if self.in_silico:
            self.name = "backprop-in-silico"

    def _set_routes(self, model: nn.Module) -> None:
        for layer in physical_layers(model):
            if not self.in_silico:
                layer.route = "autograd"
            elif layer.twin is None or not layer.twin.differentiable:
                raise GradientRouteError(f"Backprop(in_silico=True) needs a differentiable twin on every physical "
                                         f"layer; {layer.device._label()} has "
                                         f"{'none' if layer.twin is None else layer.twin._label()}")
            else:
                layer.route = "none"  # evaluation drives the device; training swaps in the twin

    def _training_context(self) -> contextlib.AbstractContextManager:
        return _on_twins(self.model) if self.in_silico else contextlib.nullcontext()


class PhysicsAware(_Supervised):
    """Physics-aware training (Wright et al., Nature 2022): route ``twin`` on every physical layer.

    The forward pass drives the devices; the backward pass runs through each
    layer's differentiable twin at the measured inputs and controls (fit one
    with :func:`~physnn.training.fit_twin`). ``model``, ``lr``, ``weight_decay``
    as in :class:`Backprop`.
    """

    name = "physics-aware"
    route = "twin"


class ZerothOrder(_Supervised):
    """Gradients across devices by SPSA (route ``zeroth_order``); digital layers get exact gradients.

    Each backward through a physical layer costs ``2 * perturbations`` extra
    device calls per quantity that needs a gradient (its controls, its input).

    Args:
        model, lr, weight_decay: as in :class:`Backprop`.
        perturbations, epsilon: SPSA settings given to every physical layer
            (``None`` keeps each layer's own).
    """

    name = "zeroth-order"
    route = "zeroth_order"

    def __init__(self, model: nn.Module, *, lr: float = 1e-2, weight_decay: float = 0.0,
                 perturbations: int | None = None, epsilon: float | None = None) -> None:
        if perturbations is not None and perturbations < 1:
            raise ConfigurationError(f"ZerothOrder needs perturbations >= 1, got {perturbations}")
        if epsilon is not None and not epsilon > 0:
            raise ConfigurationError(f"ZerothOrder needs epsilon > 0, got {epsilon}")
        for layer in physical_layers(model):
            if perturbations is not None:
                layer.perturbations = int(perturbations)
            if epsilon is not None:
                layer.epsilon = float(epsilon)
        super().__init__(model, lr=lr, weight_decay=weight_decay)


@contextlib.contextmanager
def _on_twins(model: nn.Module) -> Iterator[None]:
    """Run every physical layer on its twin with route ``autograd`` inside the block."""
    saved = [(layer, layer.device, layer.route) for layer in physical_layers(model)]
    try:
        for layer, _, _ in saved:
            layer.device = layer.twin
            layer.route = "autograd"
        yield
    finally:
        for layer, device, route in saved:
            layer.device = device
            layer.route = route


def _unique(devices: Iterable[Device | None]) -> list[Device]:
    seen: dict[int, Device] = {}
    for d in devices:
        if d is not None:
            seen.setdefault(id(d), d)
    return list(seen.values())

