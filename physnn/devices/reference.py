"""ReferenceDevice: the smallest complete device, kept as the contract's worked example.

It models an array of ``n`` saturable amplifiers, ``y_i = a_sat * tanh((gain_i * x_i + bias_i) / a_sat)``:
linear for small drives, saturating at ``a_sat`` volts. Read it when writing a
new device: declare shapes and controls, implement ``_forward`` in torch, and
let the base class do the validation.
"""

from __future__ import annotations

import torch

from ..device import Control, Device
from ..errors import ConfigurationError


class ReferenceDevice(Device):
    """``n`` saturable amplifiers (differentiable). x: (B, n) volts -> y: (B, n) volts."""

    name = "reference"
    differentiable = True
    batched_controls = True

    def __init__(self, n: int = 4, *, saturation: float = 1.0, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        if n < 1 or saturation <= 0:
            raise ConfigurationError(f"ReferenceDevice needs n >= 1 and saturation > 0, "
                                     f"got n={n}, saturation={saturation}")
        self.n, self.saturation = int(n), float(saturation)
        self.in_shape = self.out_shape = (self.n,)
        self.controls = (
            Control("gain", (self.n,), 0.0, 5.0, "V/V", 1.0, "small-signal gain of each amplifier"),
            Control("bias", (self.n,), -1.0, 1.0, "V", 0.0, "input offset of each amplifier"),
        )

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        a = self.saturation
        return a * torch.tanh((controls["gain"] * x + controls["bias"]) / a)
