"""Model-free forward-forward training: physical local learning (PhyLL).

Momeni, Rahmani, Mallejac, del Hougne & Fleury, "Backpropagation-free training
of deep physical neural networks", Science 2023 (arXiv 2304.11042), after
Hinton's forward-forward algorithm (2022). Each block of a
:func:`~physnn.training.physical_network` is a physical transform (any device,
outputs detached: no model of the physics is used) followed by a trainable
digital linear map. Every block learns alone, from a local contrastive loss:

* a *positive* sample is the input with its correct label overlaid (the first
  ``C`` entries zeroed, entry ``y`` set to the sample's ``max |x|``), a
  *negative* one carries a random wrong label; the first ``C`` entries must be
  room for the label (zeros), or the overlay overwrites content (see
  ``overwrite_inputs``);
* goodness ``g`` of a block's output ``o`` (B, width) is ``cos(|o|, p)`` with a
  fixed random unit vector ``p`` per block (PhyLL), or Hinton's mean of squares
  ``mean(o**2)`` compared with a ``threshold``;
* loss ``mean softplus(-theta (g_pos - g_neg))`` (cosine), or
  ``mean softplus(theta (threshold - g_pos)) + mean softplus(theta (g_neg - threshold))``
  (sum of squares);
* the device is driven once per block per batch for positives and once for
  negatives; ``inner_steps`` optimizer steps reuse those measurements;
* block outputs are L2-normalized before they drive the next block;
* a prediction is the label whose overlay gives the largest goodness summed
  over blocks (all ``C`` candidates go through each device in one call).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigurationError, InputError
from .losses import CLASSIFICATION, Loss
from .methods import Method
from .models import PhysicalBlock, physical_layers

#: Goodness functions (see the module docstring).
GOODNESS = ("cosine", "sum-of-squares")


class ForwardForward(Method):
    """Model-free forward-forward training of a network of :class:`~physnn.training.PhysicalBlock` s.

    Args:
        model: ``nn.Sequential`` of physical blocks (:func:`~physnn.training.physical_network`);
            every physical layer is set to route ``"none"`` (outputs detached),
            so only the blocks' linear maps learn. Inputs are ``(B, d)`` with
            ``d >= n_classes`` (the first ``n_classes`` entries carry the label).
        n_classes: number of classes ``C``.
        goodness: ``"cosine"`` (PhyLL) or ``"sum-of-squares"`` (Hinton).
        theta: sharpness of the softplus loss (PhyLL uses 4).
        threshold: goodness threshold of ``"sum-of-squares"`` (mean squared activation).
        inner_steps: optimizer steps per block per batch on the same measurements.
        lr, weight_decay: Adam settings of each block's linear map.
        normalize: L2-normalize block outputs before the next block.
        seed: seeds the goodness directions and the negative labels.
        overwrite_inputs: what to do when the first ``C`` entries of an input hold content
            (non-zero values) that the label overlay would destroy. ``False``: refuse with
            :class:`~physnn.errors.InputError` (default); ``True``: overwrite them, a deliberate
            choice (PhyLL on data whose first entries carry little). To keep all content, prepend
            ``C`` zero columns (``torch.nn.functional.pad(x, (C, 0))``) and build the first device for them.
    """

    name = "forward-forward"
    scores_are_logits = False

    def __init__(self, model: nn.Sequential, *, n_classes: int, goodness: str = "cosine", theta: float = 4.0,
                 threshold: float = 2.0, inner_steps: int = 10, lr: float = 5e-4, weight_decay: float = 0.0,
                 normalize: bool = True, seed: int = 0, overwrite_inputs: bool = False) -> None:
        super().__init__()
        blocks = list(model) if isinstance(model, nn.Sequential) else []
        if not blocks or not all(isinstance(b, PhysicalBlock) for b in blocks):
            raise ConfigurationError("ForwardForward needs an nn.Sequential of PhysicalBlocks "
                                     "(physnn.training.physical_network), got " + type(model).__name__)
        if goodness not in GOODNESS:
            raise ConfigurationError(f"goodness must be one of {list(GOODNESS)}, got {goodness!r}")
        if n_classes < 2 or inner_steps < 1 or not theta > 0:
            raise ConfigurationError(f"ForwardForward needs n_classes >= 2, inner_steps >= 1 and theta > 0, got "
                                     f"{n_classes}, {inner_steps}, {theta}")
        self.model, self.n_classes = model, int(n_classes)
        self.goodness_kind, self.theta, self.threshold = goodness, float(theta), float(threshold)
        self.inner_steps, self.normalize = int(inner_steps), bool(normalize)
        self.overwrite_inputs = bool(overwrite_inputs)
        for layer in physical_layers(model):
            layer.route = "none"
        self.generator = torch.Generator().manual_seed(seed)
        directions = torch.Generator().manual_seed(seed + 7919)
        self.directions = [_unit(torch.randn(b.linear.out_features, generator=directions)) for b in blocks]
        self.optimizers = {f"block{k}": torch.optim.Adam(b.linear.parameters(), lr=lr, weight_decay=weight_decay)
                           for k, b in enumerate(blocks)}

    def set_loss(self, loss: Loss) -> None:
        """Refuse any ``fit(loss=...)``: forward-forward is a classifier with its own local losses."""
        if loss.task != CLASSIFICATION:
            raise ConfigurationError(f"ForwardForward is a classifier: it predicts the label whose overlay gives "
                                     f"the largest goodness, so it has no output to fit to float targets (loss "
                                     f"{loss.name!r}); train a regression with Backprop, PhysicsAware or ZerothOrder")
        if loss.name != "cross_entropy":
            raise ConfigurationError(f"ForwardForward trains every block with its local contrastive loss "
                                     f"(goodness {self.goodness_kind!r}); fit(loss={loss.name!r}) would be ignored, "
                                     "so leave loss unset")
        super().set_loss(loss)

    # ------------------------------------------------------------------ labels
    def overlay(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``x`` (B, d) with entries ``0..C-1`` zeroed and entry ``labels[i]`` set to ``max |x[i]|``."""
        if x.dim() != 2 or x.shape[1] < self.n_classes:
            raise ConfigurationError(f"ForwardForward overlays {self.n_classes} labels on the first entries of "
                                     f"flat inputs (B, d >= {self.n_classes}); got shape {tuple(x.shape)} "
                                     "(prepend zeros to make room, as PhyLL does)")
        self._check_room(x)
        out = x.clone()
        out[:, :self.n_classes] = 0
        out[torch.arange(len(x)), labels] = x.abs().amax(dim=1)
        return out

    def _check_room(self, x: torch.Tensor) -> None:
        """Refuse inputs whose first ``C`` entries hold content, unless ``overwrite_inputs``."""
        if self.overwrite_inputs:
            return
        held = (x[:, :self.n_classes] != 0).any(dim=1)
        if not bool(held.any()):
            return
        c = self.n_classes
        message = (f"ForwardForward overlays the label on entries 0..{c - 1} of each input, but {int(held.sum())} of "
                   f"{len(x)} samples hold content there (max |x| = {float(x[:, :c].abs().max()):.4g}), which the "
                   f"overlay overwrites. Prepend {c} zero columns (torch.nn.functional.pad(x, ({c}, 0))) and build "
                   f"the first device for them, or pass overwrite_inputs=True to overwrite on purpose.")
        raise InputError(message)

    def wrong_labels(self, y: torch.Tensor) -> torch.Tensor:
        """A uniformly random wrong label per sample, from the method's generator."""
        shift = torch.randint(1, self.n_classes, y.shape, generator=self.generator)
        return (y + shift.to(y.device)) % self.n_classes

    # --------------------------------------------------------------- goodness
    def goodness(self, out: torch.Tensor, block: int) -> torch.Tensor:
        """Goodness (B,) of block ``block``'s outputs ``out`` (B, width)."""
        if self.goodness_kind == "cosine":
            return F.cosine_similarity(out.abs(), self.directions[block].to(out).expand_as(out), dim=1, eps=1e-6)
        return out.pow(2).mean(dim=1)

    def local_loss(self, g_pos: torch.Tensor, g_neg: torch.Tensor) -> torch.Tensor:
        """The contrastive loss of one block from positive and negative goodness (B,)."""
        if self.goodness_kind == "cosine":
            return F.softplus(-self.theta * (g_pos - g_neg)).mean()
        return (F.softplus(self.theta * (self.threshold - g_pos)).mean()
                + F.softplus(self.theta * (g_neg - self.threshold)).mean())

    def _next(self, out: torch.Tensor) -> torch.Tensor:
        return out / (out.norm(dim=1, keepdim=True) + 1e-6) if self.normalize else out

    # ---------------------------------------------------------------- training
    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        h_pos, h_neg = self.overlay(x, y), self.overlay(x, self.wrong_labels(y))
        losses = []
        for k, block in enumerate(self.model):
            with torch.no_grad():
                z_pos, z_neg = block.measure(h_pos), block.measure(h_neg)  # one device call each
            optimizer = self.optimizers[f"block{k}"]
            for _ in range(self.inner_steps):
                optimizer.zero_grad()
                loss = self.local_loss(self.goodness(block.linear(z_pos), k), self.goodness(block.linear(z_neg), k))
                loss.backward()
                self._step(optimizer)
            losses.append(float(loss.detach()))
            with torch.no_grad():
                h_pos, h_neg = self._next(block.linear(z_pos)), self._next(block.linear(z_neg))
        return {"loss": sum(losses) / len(losses), **{f"loss_block{k}": v for k, v in enumerate(losses)}}

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Goodness summed over blocks for every candidate label, ``(B, C)``; one device call per block."""
        b = len(x)
        labels = torch.arange(self.n_classes, device=x.device).repeat_interleave(b)
        h = self.overlay(x.repeat(self.n_classes, 1), labels)
        total = torch.zeros(self.n_classes * b, dtype=x.dtype, device=x.device)
        with torch.no_grad():
            for k, block in enumerate(self.model):
                out = block(h)
                total += self.goodness(out, k).to(x.dtype)
                h = self._next(out)
        return total.view(self.n_classes, b).T

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "directions": [d.clone() for d in self.directions]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.directions = [d.clone() for d in state["directions"]]

    def generators(self) -> dict[str, torch.Generator]:
        return {**super().generators(), "labels": self.generator}


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()

