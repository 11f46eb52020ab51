"""The gradient routes of :class:`physnn.PhysicalLayer`, as ``torch.autograd.Function``s.

* :class:`TwinRoute`: forward on the device, backward through a differentiable
  twin evaluated at the same inputs and controls (physics-aware training,
  Wright et al., Nature 2022).
* :class:`SPSARoute`: forward on the device, backward estimated by
  simultaneous-perturbation finite differences from extra forward calls
  (Spall 1992). Controls are perturbed in the layer's unconstrained parameter
  space, so every perturbed setting stays inside its physical bounds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .device import Device

#: ``evaluate(x, raws) -> y``: runs the device with controls mapped from raw parameters.
Evaluate = Callable[[torch.Tensor, Sequence[torch.Tensor]], torch.Tensor]


class TwinRoute(torch.autograd.Function):
    """``y = device(x, c)``; ``dL/dx, dL/dc`` from the twin's vector-Jacobian product at ``(x, c)``."""

    @staticmethod
    def forward(ctx, device: Device, twin: Device, names: tuple[str, ...], x: torch.Tensor,
                *values: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            y = device(x, dict(zip(names, values)))
        ctx.twin, ctx.names = twin, names
        ctx.save_for_backward(x, *values)
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        x, *values = ctx.saved_tensors
        wants = ctx.needs_input_grad[3:]
        with torch.enable_grad():
            leaves = [t.detach().requires_grad_(w) for t, w in zip([x, *values], wants)]
            y_twin = ctx.twin(leaves[0], dict(zip(ctx.names, leaves[1:])))
            asked = [t for t in leaves if t.requires_grad]
            grads = iter(torch.autograd.grad(y_twin, asked, grad_y, allow_unused=True)) if asked else iter(())
        out = [next(grads) if t.requires_grad else None for t in leaves]
        out = [torch.zeros_like(t) if w and g is None else g for t, w, g in zip(leaves, wants, out)]
        return (None, None, None, *out)


class SPSARoute(torch.autograd.Function):
    """``y = evaluate(x, raws)``; gradients from ``perturbations`` two-sided random perturbations.

    For the raw control parameters ``r`` the estimate is
    ``mean_k [ <dL/dy, y(r + eps d_k) - y(r - eps d_k)> / (2 eps) ] d_k`` with Rademacher
    ``d_k``; for the input each sample gets its own directional derivative.
    Perturbed inputs are clamped to ``input_bounds`` where the device declares them.
    """

    @staticmethod
    def forward(ctx, evaluate: Evaluate, options: dict, x: torch.Tensor, *raws: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            y = evaluate(x, raws)
        ctx.evaluate, ctx.options = evaluate, options
        ctx.save_for_backward(x, *raws)
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        x, *raws = ctx.saved_tensors
        evaluate, opt = ctx.evaluate, ctx.options
        k, eps, gen = opt["perturbations"], opt["epsilon"], opt["generator"]
        grad_x = None
        grad_raws: list[torch.Tensor | None] = [None] * len(raws)
        with torch.no_grad():
            if any(ctx.needs_input_grad[3:]):
                grad_raws = [torch.zeros_like(r) for r in raws]
                for _ in range(k):
                    deltas = [_rademacher(r, gen) for r in raws]
                    y_plus = evaluate(x, [r + eps * d for r, d in zip(raws, deltas)])
                    y_minus = evaluate(x, [r - eps * d for r, d in zip(raws, deltas)])
                    slope = (grad_y * (y_plus - y_minus)).sum() / (2 * eps)
                    for g, d in zip(grad_raws, deltas):
                        g.add_(slope * d / k)
                grad_raws = [g if w else None for g, w in zip(grad_raws, ctx.needs_input_grad[3:])]
            if ctx.needs_input_grad[2]:
                grad_x = torch.zeros_like(x)
                low, high = opt["input_bounds"] or (None, None)
                for _ in range(k):
                    delta = _rademacher(x, gen)
                    x_plus, x_minus = x + eps * delta, x - eps * delta
                    if low is not None:
                        x_plus, x_minus = x_plus.clamp(low, high), x_minus.clamp(low, high)
                    step = x_plus - x_minus  # 2 eps delta where no bound was hit
                    dy = evaluate(x_plus, raws) - evaluate(x_minus, raws)
                    slope = (grad_y * dy).flatten(1).sum(1) / (2 * eps)
                    grad_x.add_(slope.view((-1,) + (1,) * (x.dim() - 1)) * step / (2 * eps) / k)
        return (None, None, grad_x, *grad_raws)


def _rademacher(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    signs = torch.randint(0, 2, like.shape, generator=generator, dtype=torch.int8)
    return (2 * signs - 1).to(dtype=like.dtype, device=like.device)
