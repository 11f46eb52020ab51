"""OpAmpOverdrive: the clipping stage of a Tube-Screamer-type overdrive (soft clipping).

Circuit: a non-inverting op-amp stage. The input sits on the + input; from the
- input a series R1-C1 branch goes to ground, and the feedback network between
output and - input is Rf (a fixed resistor plus the drive pot) in parallel
with Cf and a pair of antiparallel diodes. With an ideal op-amp the - input
follows Vin, so the branch current ``i`` (a high-pass of Vin, corner
``1 / (2 pi R1 C1)``) flows through the feedback network, whose voltage Vd obeys::

    Cf dVd/dt = i - Vd / Rf - Is (exp(Vd / (n Vt)) - exp(-Vd / (n Vt)))
    Vout = Vin + Vd, limited softly by the supply rails: rail * tanh(Vout / rail)

Unlike the diode clipper (a shunt clipper: the diodes cap the output near
their forward voltage), the diodes here limit only the *added* gain, so the
clean input passes through and the distortion is soft. The R1-C1 branch is
discretized by the bilinear transform, Vd by the trapezoidal rule, solved
exactly per sample (see :mod:`physnn.devices.audio.clipper`; ``mode="fast"``
has the same small error).
"""

from __future__ import annotations

import torch

from ...device import Control
from ...errors import ConfigurationError
from ._base import AudioDevice
from ._ops import biquad, diode_node
from .clipper import MODES


class OpAmpOverdrive(AudioDevice):
    """Op-amp diode-feedback overdrive stage: x (B, T) volts -> output (B, T) volts.

    Args:
        r1, c1: ohm, F, the gain-setting branch to ground (4.7 kOhm, 47 nF: 720 Hz corner).
        rf: ohm, fixed feedback resistor (51 kOhm); drive_pot: ohm, the drive pot in series (500 kOhm).
        cf: F, feedback capacitor (51 pF).
        saturation_current: A, ideality, thermal_voltage: V, the feedback diodes (1N914-like).
        rail: V, output swing limit of the op-amp (4.5 V on a 9 V supply).
        mode, sample_rate, num_samples, backend, seed: see :class:`~physnn.devices.audio.DiodeClipper`.

    Controls: ``drive`` (pot position 0..1), ``level`` (output gain, V/V).
    """

    name = "overdrive"

    def __init__(self, *, r1: float = 4.7e3, c1: float = 47e-9, rf: float = 51e3, drive_pot: float = 500e3,
                 cf: float = 51e-12, saturation_current: float = 2.52e-9, ideality: float = 1.752,
                 thermal_voltage: float = 0.02585, rail: float = 4.5, mode: str = "exact",
                 sample_rate: float = 44100.0, num_samples: int = 44100, backend: str = "auto",
                 seed: int | None = None) -> None:
        super().__init__(sample_rate=sample_rate, num_samples=num_samples, backend=backend, seed=seed)
        values = dict(r1=r1, c1=c1, rf=rf, cf=cf, saturation_current=saturation_current, ideality=ideality,
                      thermal_voltage=thermal_voltage, rail=rail)
        bad = {k: v for k, v in values.items() if not v > 0}
        if bad or drive_pot < 0 or mode not in MODES:
            raise ConfigurationError(f"OpAmpOverdrive needs positive components {bad or ''}, drive_pot >= 0 "
                                     f"(got {drive_pot}) and mode in {list(MODES)} (got {mode!r})")
        self.r1, self.c1, self.rf, self.cf = float(r1), float(c1), float(rf), float(cf)
        self.drive_pot = float(drive_pot)
        self.saturation_current, self.ideality = float(saturation_current), float(ideality)
        self.thermal_voltage, self.rail, self.mode = float(thermal_voltage), float(rail), mode
        self.controls = (
            Control("drive", (), 0.0, 1.0, "", 0.5, "drive pot position: Rf = rf + drive * drive_pot"),
            Control("level", (), 0.0, 4.0, "V/V", 1.0, "output level"),
        )

    def branch_coefficients(self) -> tuple[float, float, float]:
        """``(b0, b1, a1)`` of the bilinear R1-C1 branch: current (A) from Vin (V)."""
        big_k = 2.0 * self.r1 * self.c1 * self.sample_rate
        b0 = 2.0 * self.c1 * self.sample_rate / (1.0 + big_k)
        return b0, -b0, (1.0 - big_k) / (1.0 + big_k)

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        b = x.shape[0]
        drive, level = self.per_row(controls["drive"], b), self.per_row(controls["level"], b)
        b0, b1, a1 = self.branch_coefficients()
        coef = x.new_tensor([b0, b1, 0.0, a1, 0.0]).expand(b, 5)
        current = biquad(x, coef)
        conductance = 1.0 / (self.rf + drive * self.drive_pot)
        vt = x.new_full((b,), self.ideality * self.thermal_voltage)
        k = 1.0 / (2.0 * self.sample_rate * self.cf)
        vd = diode_node(current, x.new_ones(b), conductance, x.new_full((b,), self.saturation_current), vt, vt, k,
                        self.mode == "exact")
        return level[:, None] * self.rail * torch.tanh((x + vd) / self.rail)
