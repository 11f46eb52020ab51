"""Wrapper: the base of devices that add one concern (retries, a record...) around another device."""

from __future__ import annotations

import torch

from ..device import Device


class Wrapper(Device):
    """A device around ``inner``: shapes, controls, bounds, differentiability, noise, seeding,
    typical drives and closing are the wrapped device's; subclasses add their concern in ``_forward``.

    Args:
        inner: the wrapped device (kept as ``.inner``).
        name: this wrapper's name, e.g. ``f"retrying({inner.name})"``.
    """

    def __init__(self, inner: Device, name: str) -> None:
        super().__init__(seed=inner.seed)
        self.inner = inner
        self.name = name
        self._mirror(inner)
        self.differentiable = inner.differentiable

    @property
    def stochastic(self) -> bool:
        return self.inner.stochastic

    def reseed(self, seed: int | None = None) -> None:
        super().reseed(seed)
        inner = getattr(self, "inner", None)  # absent while Device.__init__ seeds the wrapper
        if inner is not None:
            inner.reseed(seed)

    def sample_inputs(self, n: int, generator: torch.Generator | None = None,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return self.inner.sample_inputs(n, generator=generator, dtype=dtype)

    def close(self) -> None:
        self.inner.close()
