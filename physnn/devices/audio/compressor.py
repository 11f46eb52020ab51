"""Compressor: a feed-forward dynamic range compressor (Giannoulis, Massberg & Reiss, JAES 2012).

Per sample: the level in dB re 1 V, ``L = 10 log10(x^2 + 1e-12)``; the static
gain ``g = curve(L) - L`` of a soft-knee curve (threshold T, ratio R, knee W)::

    curve(L) = L                                   for L - T < -W/2
             = L + (1/R - 1) (L - T + W/2)^2 / (2W)  for |L - T| <= W/2
             = T + (L - T) / R                      for L - T > W/2

then a branching one-pole smoother in the log domain (attack pole while the
gain reduction grows, release pole while it recovers; pole radius
``exp(-1 / (tau fs))``, so ``tau`` is the 1/e time constant), and
``y = x * 10^((g_smooth + makeup) / 20)``. The whole chain runs fused in one
compiled pass per sample (:mod:`._dynamics`), backward in one reverse pass. Knob ranges follow the SignalTrain
compressor (threshold -30..0 dB, ratio 1..5, attack and release 1..40 ms).
"""

from __future__ import annotations

import torch

from ...device import Control
from ._base import AudioDevice
from ._ops import compressor, smoother

#: Level floor inside the log, V^2 (-120 dB re 1 V), keeps the level smooth at x = 0.
LEVEL_FLOOR = 1e-12


def static_gain_db(level_db: torch.Tensor, threshold: torch.Tensor, ratio: torch.Tensor,
                   knee: torch.Tensor) -> torch.Tensor:
    """Gain in dB (<= 0) of the soft-knee curve at ``level_db``; knobs broadcast against it."""
    over = level_db - threshold
    slope = 1.0 / ratio - 1.0
    width = knee.clamp(min=1e-9)
    in_knee = slope * (over + width / 2).clamp(min=0.0) ** 2 / (2 * width)
    return torch.where(over > width / 2, slope * over, torch.where(over < -width / 2, torch.zeros_like(over), in_knee))


class Compressor(AudioDevice):
    """Feed-forward compressor: x (B, T) volts -> y (B, T) volts.

    Controls: threshold (dB re 1 V), ratio, knee (dB), attack and release (ms,
    1/e time constants of the gain), makeup (dB). Scalar or one per sample.
    """

    name = "compressor"

    def __init__(self, *, sample_rate: float = 44100.0, num_samples: int = 44100, backend: str = "auto",
                 seed: int | None = None) -> None:
        super().__init__(sample_rate=sample_rate, num_samples=num_samples, backend=backend, seed=seed)
        self.controls = (
            Control("threshold", (), -30.0, 0.0, "dB", -12.0, "level above which gain is reduced (dB re 1 V)"),
            Control("ratio", (), 1.0, 5.0, "", 4.0, "input dB change per output dB change above threshold"),
            Control("knee", (), 0.0, 12.0, "dB", 6.0, "width of the soft knee"),
            Control("attack", (), 1.0, 40.0, "ms", 5.0, "time constant of growing gain reduction"),
            Control("release", (), 1.0, 40.0, "ms", 20.0, "time constant of recovering gain"),
            Control("makeup", (), -12.0, 24.0, "dB", 0.0, "output gain"),
        )

    def poles(self, c: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Attack and release pole radii ``exp(-1 / (tau fs))`` from the per-row times in ms."""
        return (torch.exp(-1000.0 / (c["attack"] * self.sample_rate)),
                torch.exp(-1000.0 / (c["release"] * self.sample_rate)))

    def gain_db(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        """Smoothed gain (B, T) in dB that the compressor applies to ``x`` (before makeup), stage by stage."""
        c = {k: self.per_row(v, x.shape[0]) for k, v in controls.items()}
        level = 10.0 * torch.log10(x * x + LEVEL_FLOOR)
        target = static_gain_db(level, c["threshold"][:, None], c["ratio"][:, None], c["knee"][:, None])
        return smoother(target, *self.poles(c))

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        c = {k: self.per_row(v, x.shape[0]) for k, v in controls.items()}
        return compressor(x, LEVEL_FLOOR, c["threshold"], 1.0 / c["ratio"] - 1.0, c["knee"].clamp(min=1e-9),
                          *self.poles(c), c["makeup"])
