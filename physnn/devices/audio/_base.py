"""AudioDevice: what every audio model shares (sample rate, signal length, backend, test drives)."""

from __future__ import annotations

import copy
import math

import torch

from ...device import Device
from ...errors import ConfigurationError
from ._ops import BACKENDS


class AudioDevice(Device):
    """A mono audio model: x (B, T) volts at ``sample_rate`` -> y (B, T) volts.

    Args:
        sample_rate: Hz; must lie in ``supported_rates`` (else :class:`ConfigurationError`).
        num_samples: T, samples per signal (one call processes the whole signal from rest).
        backend: ``"auto"``, the only one: compiled kernels on the host for tensors of any device
            (CUDA tensors are copied to the host and back once per recursion).
        seed: seed of the device's generator (used by :meth:`sample_inputs`).
    """

    differentiable = True
    batched_controls = True
    #: Inclusive range of sample rates the model is accurate at, Hz.
    supported_rates: tuple[float, float] = (8000.0, 384000.0)

    def __init__(self, *, sample_rate: float = 44100.0, num_samples: int = 44100, backend: str = "auto",
                 seed: int | None = None) -> None:
        super().__init__(seed=seed)
        lo, hi = self.supported_rates
        if not lo <= float(sample_rate) <= hi:
            raise ConfigurationError(f"{type(self).__name__} supports sample rates from {lo:g} to {hi:g} Hz, "
                                     f"got {sample_rate:g} Hz; resample the audio first")
        if int(num_samples) < 1:
            raise ConfigurationError(f"{type(self).__name__} needs num_samples >= 1, got {num_samples}")
        if backend not in BACKENDS:
            raise ConfigurationError(f"{type(self).__name__}: backend must be one of {list(BACKENDS)}, got {backend!r}")
        self.sample_rate = float(sample_rate)
        self.backend = backend
        self._set_length(int(num_samples))

    @property
    def num_samples(self) -> int:
        """T, samples per signal."""
        return self.in_shape[0]

    def _set_length(self, num_samples: int) -> None:
        self.in_shape = self.out_shape = (int(num_samples),)

    def resized(self, num_samples: int) -> AudioDevice:
        """The same model (shared parameters and call counter) for signals of ``num_samples`` samples."""
        if int(num_samples) < 1:
            raise ConfigurationError(f"{type(self).__name__} needs num_samples >= 1, got {num_samples}")
        other = copy.copy(self)
        other._set_length(int(num_samples))
        return other

    @staticmethod
    def per_row(value: torch.Tensor, batch: int) -> torch.Tensor:
        """A scalar or per-sample control as a ``(batch,)`` tensor."""
        return value.expand(batch) if value.dim() == 0 else value

    def sample_inputs(self, n: int, generator: torch.Generator | None = None,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Sine tones, 100 Hz to 2 kHz, 0.05 to 1 V peak, random phase: (n, T) volts."""
        g = generator if generator is not None else self.generator
        freq = 100.0 * 20.0 ** torch.rand(n, 1, generator=g, dtype=torch.float64)
        amp = 0.05 + 0.95 * torch.rand(n, 1, generator=g, dtype=torch.float64)
        phase = 2 * math.pi * torch.rand(n, 1, generator=g, dtype=torch.float64)
        t = torch.arange(self.num_samples, dtype=torch.float64) / self.sample_rate
        return (amp * torch.sin(2 * math.pi * freq * t + phase)).to(dtype)

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate:g}, num_samples={self.num_samples}, backend={self.backend!r}"
