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

#: ``evaluate(x, raws, per_setting=False) -> y``: runs the device with controls mapped from raw
#: parameters; with ``per_setting=True`` each raw has a leading dimension M of settings, every
#: setting is applied to the whole batch in one device call, and y has shape (M, B, *out).
Evaluate = Callable[..., torch.Tensor]


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
        wants = ctx.needs_input_grad[3:]
        with torch.no_grad():
            grad_x = _input_gradient(evaluate, opt, x, raws, grad_y) if ctx.needs_input_grad[2] else None
            grad_raws = _control_gradients(evaluate, opt, x, raws, grad_y) if any(wants) else [None] * len(raws)
        return (None, None, grad_x, *[g if w else None for g, w in zip(grad_raws, wants)])


def _input_gradient(evaluate: Evaluate, opt: dict, x: torch.Tensor, raws: Sequence[torch.Tensor],
                    grad_y: torch.Tensor) -> torch.Tensor:
    """SPSA estimate of dL/dx, each sample with its own perturbations; all ``2 K B`` perturbed
    drives go to the device in one call. Perturbed drives are clamped to ``input_bounds``."""
    k, eps, gen = opt["perturbations"], opt["epsilon"], opt["generator"]
    deltas = torch.stack([_rademacher(x, gen) for _ in range(k)])  # (K, B, *in)
    x_plus, x_minus = x + eps * deltas, x - eps * deltas
    if opt["input_bounds"] is not None:
        low, high = opt["input_bounds"]
        x_plus, x_minus = x_plus.clamp(low, high), x_minus.clamp(low, high)
    y = evaluate(torch.cat([x_plus, x_minus]).flatten(0, 1), raws)
    y = y.view((2 * k,) + tuple(x.shape[:1]) + tuple(y.shape[1:]))
    slopes = (grad_y.unsqueeze(0) * (y[:k] - y[k:])).flatten(2).sum(2) / (2 * eps)  # (K, B)
    steps = (x_plus - x_minus) / (2 * eps)  # delta where no bound was hit
    return (slopes.view(slopes.shape + (1,) * (x.dim() - 1)) * steps).mean(0)


def _control_gradients(evaluate: Evaluate, opt: dict, x: torch.Tensor, raws: Sequence[torch.Tensor],
                       grad_y: torch.Tensor) -> list[torch.Tensor]:
    """SPSA estimate of dL/d(raw controls). With ``opt["batched"]`` all ``2 K`` perturbed settings
    go to the device in one call (one setting per sample), else in ``2 K`` calls."""
    k, eps, gen = opt["perturbations"], opt["epsilon"], opt["generator"]
    deltas = [torch.stack([_rademacher(r, gen) for _ in range(k)]) for r in raws]  # (K, *shape) each
    if opt["batched"]:
        settings = [torch.cat([r + eps * d, r - eps * d]) for r, d in zip(raws, deltas)]  # (2K, *shape)
        y = evaluate(x, settings, per_setting=True)  # (2K, B, *out)
        y_plus, y_minus = y[:k], y[k:]
    else:
        y_plus = torch.stack([evaluate(x, [r + eps * d[i] for r, d in zip(raws, deltas)]) for i in range(k)])
        y_minus = torch.stack([evaluate(x, [r - eps * d[i] for r, d in zip(raws, deltas)]) for i in range(k)])
    slopes = (grad_y.unsqueeze(0) * (y_plus - y_minus)).flatten(1).sum(1) / (2 * eps)  # (K,)
    return [(slopes.view((k,) + (1,) * (d.dim() - 1)) * d).mean(0) for d in deltas]


def _rademacher(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    signs = torch.randint(0, 2, like.shape, generator=generator, dtype=torch.int8)
    return (2 * signs - 1).to(dtype=like.dtype, device=like.device)
