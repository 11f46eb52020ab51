"""Biquad filters (RBJ Audio EQ Cookbook): low-pass, high-pass and peaking EQ with knobs.

Coefficients come from the knobs in torch (differentiable); the FIR part runs as
torch ops, the all-pole recursion in a compiled kernel with its exact adjoint. The low- and high-pass at
``q = 1/sqrt(2)`` equal scipy's second-order Butterworth (bilinear transform
with prewarping), which the tests use as the reference.
"""

from __future__ import annotations

import math

import torch

from ...device import Control
from ...errors import ConfigurationError
from ._base import AudioDevice
from ._ops import biquad, rbj

KINDS = ("lowpass", "highpass", "peaking")


def rbj_coefficients(kind: str, frequency: torch.Tensor, q: torch.Tensor, gain_db: torch.Tensor,
                     sample_rate: float) -> torch.Tensor:
    """Normalized ``(b0, b1, b2, a1, a2)`` of shape ``(*frequency.shape, 5)``; frequency in Hz, gain in dB
    (frequency, q, gain_db of one shape)."""
    return rbj(KINDS.index(kind), frequency, q, gain_db, sample_rate)


class BiquadFilter(AudioDevice):
    """A second-order filter: x (B, T) volts -> y (B, T) volts.

    Args:
        kind: ``"lowpass"``, ``"highpass"`` or ``"peaking"``.
        sample_rate, num_samples, backend, seed: see :class:`AudioDevice`.

    Controls: frequency (Hz, 10 Hz to 0.45 fs), q, and for ``"peaking"`` gain (dB).
    """

    name = "biquad"

    def __init__(self, kind: str = "lowpass", *, sample_rate: float = 44100.0, num_samples: int = 44100,
                 backend: str = "auto", seed: int | None = None) -> None:
        super().__init__(sample_rate=sample_rate, num_samples=num_samples, backend=backend, seed=seed)
        if kind not in KINDS:
            raise ConfigurationError(f"BiquadFilter kind must be one of {list(KINDS)}, got {kind!r}")
        self.kind = kind
        self.name = {"lowpass": "lowpass", "highpass": "highpass", "peaking": "peaking-eq"}[kind]
        default_f = 1000.0 if kind == "peaking" else min(5000.0, 0.2 * self.sample_rate)
        controls = [
            Control("frequency", (), 10.0, 0.45 * self.sample_rate, "Hz", default_f,
                    "corner (low/high-pass) or centre (peaking) frequency"),
            Control("q", (), 0.1, 10.0, "", 1 / math.sqrt(2), "quality factor (bandwidth)"),
        ]
        if kind == "peaking":
            controls.append(Control("gain", (), -24.0, 24.0, "dB", 6.0, "boost (> 0) or cut (< 0) at the centre"))
        self.controls = tuple(controls)

    def coefficients(self, controls: dict[str, torch.Tensor], batch: int) -> torch.Tensor:
        """Normalized biquad coefficients (batch, 5) for these control settings."""
        f, q = self.per_row(controls["frequency"], batch), self.per_row(controls["q"], batch)
        gain = self.per_row(controls["gain"], batch) if "gain" in controls else torch.zeros_like(f)
        return rbj_coefficients(self.kind, f, q, gain, self.sample_rate)

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        return biquad(x, self.coefficients(controls, x.shape[0]))


class LowpassFilter(BiquadFilter):
    """:class:`BiquadFilter` of kind ``"lowpass"``."""

    def __init__(self, *, sample_rate: float = 44100.0, num_samples: int = 44100, backend: str = "auto",
                 seed: int | None = None) -> None:
        super().__init__("lowpass", sample_rate=sample_rate, num_samples=num_samples, backend=backend, seed=seed)


class HighpassFilter(BiquadFilter):
    """:class:`BiquadFilter` of kind ``"highpass"``."""

    def __init__(self, *, sample_rate: float = 44100.0, num_samples: int = 44100, backend: str = "auto",
                 seed: int | None = None) -> None:
        super().__init__("highpass", sample_rate=sample_rate, num_samples=num_samples, backend=backend, seed=seed)


class PeakingEQ(BiquadFilter):
    """:class:`BiquadFilter` of kind ``"peaking"``."""

    def __init__(self, *, sample_rate: float = 44100.0, num_samples: int = 44100, backend: str = "auto",
                 seed: int | None = None) -> None:
        super().__init__("peaking", sample_rate=sample_rate, num_samples=num_samples, backend=backend, seed=seed)
