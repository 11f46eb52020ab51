"""Shared by the wave tests: random drives and densities, and outputs with gradients of a random loss."""

from __future__ import annotations

import torch

from physnn.devices.wave import WaveMedium2D


def wave_data(medium: WaveMedium2D, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Drives ``(batch, *in_shape)`` and a density in [0.1, 0.9], float64."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((batch,) + tuple(medium.in_shape), dtype=torch.float64, generator=g)
    rho = torch.rand(medium.shape, dtype=torch.float64, generator=g) * 0.8 + 0.1
    return x, rho


def outputs_and_grads(medium: WaveMedium2D, x: torch.Tensor, rho: torch.Tensor):
    """Intensities, signals, and the gradients of a random mix of both with respect to x and rho."""
    x, rho = x.clone().requires_grad_(), rho.clone().requires_grad_()
    sol = medium.simulate(x, {"rho": rho})
    g = torch.Generator().manual_seed(1)
    wi = torch.randn(sol.intensity.shape, dtype=torch.float64, generator=g).to(x.dtype)
    ws = torch.randn(sol.signals.shape, dtype=torch.float64, generator=g).to(x.dtype)
    ((sol.intensity * wi).sum() + (sol.signals * ws).sum()).backward()
    return sol.intensity.detach(), sol.signals.detach(), x.grad, rho.grad


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference relative to the largest magnitude of ``b``."""
    return float((a - b).abs().max() / b.abs().max())


def passes_gradcheck(medium: WaveMedium2D) -> bool:
    """float64 ``gradcheck`` of intensities and signals with respect to one drive and the density."""
    x, rho = wave_data(medium, batch=1)
    x, rho = x.requires_grad_(), rho.requires_grad_()

    def f(x_: torch.Tensor, rho_: torch.Tensor):
        sol = medium.simulate(x_, {"rho": rho_})
        return sol.intensity, sol.signals

    return torch.autograd.gradcheck(f, (x, rho), eps=1e-6, atol=1e-7, rtol=1e-5)
