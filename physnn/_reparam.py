"""Smooth maps between unconstrained parameters and bounded physical control values.

A trainable control lives as an unconstrained ``raw`` tensor; its physical value
is ``low + (high - low) * sigmoid(raw)`` when both bounds are finite,
``low + softplus(raw)`` or ``high - softplus(raw)`` when one is, and ``raw``
itself when unbounded. The value can come close to a bound but never cross it,
so an optimizer step can never produce an out-of-bounds setting.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .device import Control

#: How close (as a fraction of the range) an initial value may sit to a bound.
_EDGE = 1e-6


def to_value(control: Control, raw: torch.Tensor) -> torch.Tensor:
    """Physical value of ``control`` for the unconstrained ``raw``."""
    lo, hi = control.low, control.high
    if math.isfinite(lo) and math.isfinite(hi):
        return lo + (hi - lo) * torch.sigmoid(raw)
    if math.isfinite(lo):
        return lo + F.softplus(raw)
    if math.isfinite(hi):
        return hi - F.softplus(raw)
    return raw


def to_raw(control: Control, value: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_value`; values on a bound are moved just inside it."""
    lo, hi = control.low, control.high
    value = value.detach().to(torch.float64)
    if math.isfinite(lo) and math.isfinite(hi):
        if hi == lo:
            return torch.zeros_like(value)
        u = ((value - lo) / (hi - lo)).clamp(_EDGE, 1 - _EDGE)
        return torch.log(u) - torch.log1p(-u)
    if math.isfinite(lo) or math.isfinite(hi):
        gap = (value - lo) if math.isfinite(lo) else (hi - value)
        gap = gap.clamp_min(_EDGE)
        return gap + torch.log(-torch.expm1(-gap))  # inverse softplus, stable for large gaps
    return value
