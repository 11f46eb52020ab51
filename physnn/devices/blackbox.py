"""BlackBox: a simulated device presented as hardware (no gradients, optional imperfections).

Use it to rehearse hardware training on a laptop: the wrapped simulation runs,
but autograd cannot see through it, and the output carries what real
measurements carry: a gain and offset error (settable at any time, to model
drift) and additive Gaussian noise from the device's seeded generator.
"""

from __future__ import annotations

import torch

from ..device import Device
from ..errors import ConfigurationError


class BlackBox(Device):
    """``y = gain * inner(x, c) + offset + noise_std * N(0, 1)``, forward only.

    Args:
        inner: the simulated device.
        noise_std: standard deviation of additive output noise (output units).
        gain, offset: output gain and offset error; change them mid-run to model drift.
        seed: seed of the noise generator.
    """

    differentiable = False

    def __init__(self, inner: Device, *, noise_std: float = 0.0, gain: float = 1.0, offset: float = 0.0,
                 seed: int | None = None) -> None:
        super().__init__(seed=seed)
        if noise_std < 0:
            raise ConfigurationError(f"BlackBox noise_std must be >= 0, got {noise_std}")
        self.inner = inner
        self.name = f"blackbox({inner.name})"
        self._mirror(inner)
        self.noise_std, self.gain, self.offset = float(noise_std), float(gain), float(offset)

    @property
    def stochastic(self) -> bool:
        return self.noise_std > 0

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            y = self.gain * self.inner(x, controls) + self.offset
            if self.noise_std > 0:
                noise = torch.randn(y.shape, generator=self.generator, dtype=y.dtype)
                y = y + self.noise_std * noise.to(y.device)
        return y
