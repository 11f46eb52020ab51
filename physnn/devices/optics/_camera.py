"""A camera: intensity -> photoelectrons (shot noise) -> full well -> read noise -> gain -> ADC.

Units: intensity in units of the mean SLM pixel intensity; ``photon_rate`` in photoelectrons
per ms per unit intensity; exposure in ms; gain in dB over the unity gain that maps the full
well onto the ADC's full scale; the output is the digital number divided by full scale
(``DN / (2^bits - 1)``, in [0, 1]).

Noise models: ``"none"``; ``"gaussian"``, the differentiable approximation of shot plus read
noise, ``N + sqrt(N + r^2) z`` (reparameterized, so gradients flow through it); ``"poisson"``,
exact Poisson shot noise plus Gaussian read noise (not differentiable).

Quantization rounds to the nearest DN in the forward pass and passes the gradient straight
through (identity) in the backward pass; saturation (full well, ADC full scale) clamps with its
true gradient, zero where clipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import ConfigurationError

NOISE_MODELS = ("none", "gaussian", "poisson")


@dataclass(frozen=True)
class Camera:
    """Sensor settings (see module docstring for units)."""

    bits: int | None = 8
    full_well: float = 10000.0
    photon_rate: float = 2000.0
    read_noise: float = 2.0
    noise: str = "gaussian"

    def __post_init__(self) -> None:
        if self.bits not in (8, 12, None):
            raise ConfigurationError(f"camera bits must be 8, 12 or None (no quantization), got {self.bits!r}")
        if self.noise not in NOISE_MODELS:
            raise ConfigurationError(f"camera noise must be one of {list(NOISE_MODELS)}, got {self.noise!r}")
        for name in ("full_well", "photon_rate"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"camera {name} must be > 0, got {getattr(self, name)}")
        if not self.read_noise >= 0:
            raise ConfigurationError(f"camera read_noise must be >= 0 electrons rms, got {self.read_noise}")

    @property
    def levels(self) -> float:
        """Full-scale digital number (``2^bits - 1``; 1 without quantization)."""
        return float(2**self.bits - 1) if self.bits is not None else 1.0

    def measure(self, intensity: torch.Tensor, exposure: torch.Tensor, gain_db: torch.Tensor,
                generator: torch.Generator) -> torch.Tensor:
        """Camera readings in [0, 1] (fraction of full scale) of ``intensity`` (B, n), real."""
        electrons = intensity * (self.photon_rate * exposure)
        if self.noise != "none":
            shape, dtype = electrons.shape, electrons.dtype
            z = torch.randn(shape, generator=generator, dtype=dtype).to(electrons.device)
            if self.noise == "gaussian":
                electrons = electrons + (electrons.clamp_min(0) + self.read_noise**2).clamp_min(1e-12).sqrt() * z
            else:
                shot = torch.poisson(electrons.detach().cpu().clamp_min(0), generator=generator).to(electrons.device)
                electrons = shot + self.read_noise * z
        electrons = electrons.clamp(0, self.full_well)
        counts = electrons * (self.levels / self.full_well * 10 ** (gain_db / 20))
        counts = counts.clamp(0, self.levels)
        if self.bits is not None:
            counts = counts + (counts.round() - counts).detach()  # straight-through rounding
        return counts / self.levels
