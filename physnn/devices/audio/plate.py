"""DrivenPlate: a driven mechanical plate as a sum of damped modes, optionally with cubic stiffness.

The mechanical layer of Wright et al. (Nature 601, 549, 2022) is a plate driven
by a voice coil and read by a microphone; its input-output map is a sum of
lightly damped modes, made nonlinear at large amplitude. Here each mode ``m``
(frequency ``f_m``, quality factor Q, coupling ``b_m`` at the drive point and
``c_m`` at the pickup point) obeys::

    q'' + (w_m / Q) q' + w_m^2 (q + kappa q^3) = (w_m^2 / Q) b_m u(t),   u = drive * x
    y = sum_m c_m q_m

(normalized so the resonance gain of a linear mode is ``b_m``). Discretized
mode by mode as ``q_n = a1 q_{n-1} - a2 q_{n-2} + g u_n - e q_{n-1}^3`` with
``a1 = 2 r cos(w_d dt)``, ``a2 = r^2``, ``r = exp(-w dt / 2Q)``: the linear free
response has exactly the configured frequencies and decay rates, and ``g``
gives the exact static gain. The cubic term is explicit, which is stable while
``(w dt)^2 (1 + 3 kappa q^2) < 4``; the constructor keeps the highest mode
below fs/8 so this holds for ``kappa q^2`` up to about 2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ...device import Control
from ...errors import ConfigurationError, StabilityError
from ._base import AudioDevice
from ._ops import modal

#: Highest mode frequency (at the largest frequency_scale) as a fraction of the sample rate.
MAX_MODE_FRACTION = 1.0 / 8.0
FREQUENCY_SCALE = (0.5, 1.5)


def plate_modes(n_modes: int, fundamental: float, aspect: float) -> list[tuple[float, int, int]]:
    """The ``n_modes`` lowest modes ``(frequency Hz, m, n)`` of a simply supported rectangular plate.

    ``f_mn = fundamental * (m^2 + (n / aspect)^2) / (1 + 1 / aspect^2)`` (Kirchhoff plate, sides 1 and ``aspect``).
    """
    span = range(1, n_modes + 1)
    norm = 1 + 1 / aspect ** 2
    modes = sorted((fundamental * (m * m + (n / aspect) ** 2) / norm, m, n) for m in span for n in span)
    return modes[:n_modes]


class DrivenPlate(AudioDevice):
    """A driven plate: drive voltage x (B, T) -> pickup signal y (B, T).

    Args:
        n_modes: modes kept (the lowest of a simply supported plate).
        fundamental: Hz, frequency of the (1, 1) mode; aspect: side ratio of the plate.
        mode_frequencies: Hz, explicit mode frequencies instead of the plate's (then the
            drive/pickup couplings are ``input_coupling``/``output_coupling``, default all 1).
        q_factor: Q of every mode.
        drive_point, pickup_point: (x, y) as fractions of the sides.
        input_coupling, output_coupling: per-mode ``b_m``, ``c_m`` overriding the points.
        sample_rate, num_samples, backend, seed: see :class:`AudioDevice`.

    Controls: drive (V/V), frequency_scale (all modes, like tension), cubic
    (kappa, 1/V^2, amplitude-dependent stiffness; 0 = linear).
    """

    name = "plate"

    def __init__(self, *, n_modes: int = 8, fundamental: float = 100.0, aspect: float = 1.37,
                 mode_frequencies: Sequence[float] | None = None, q_factor: float = 30.0,
                 drive_point: tuple[float, float] = (0.31, 0.43), pickup_point: tuple[float, float] = (0.67, 0.59),
                 input_coupling: Sequence[float] | None = None, output_coupling: Sequence[float] | None = None,
                 sample_rate: float = 44100.0, num_samples: int = 44100, backend: str = "auto",
                 seed: int | None = None) -> None:
        super().__init__(sample_rate=sample_rate, num_samples=num_samples, backend=backend, seed=seed)
        if q_factor <= 0.5:
            raise ConfigurationError(f"DrivenPlate needs q_factor > 0.5 (underdamped modes), got {q_factor}")
        if mode_frequencies is None and not (n_modes >= 1 and fundamental > 0 and aspect > 0):
            raise ConfigurationError(f"DrivenPlate needs n_modes >= 1, fundamental > 0 Hz and aspect > 0; got "
                                     f"n_modes={n_modes}, fundamental={fundamental}, aspect={aspect}")
        if mode_frequencies is None:
            modes = plate_modes(n_modes, fundamental, aspect)
            freqs = [f for f, _, _ in modes]
            b = [math.sin(m * math.pi * drive_point[0]) * math.sin(n * math.pi * drive_point[1]) for _, m, n in modes]
            c = [math.sin(m * math.pi * pickup_point[0]) * math.sin(n * math.pi * pickup_point[1]) for _, m, n in modes]
        else:
            freqs = [float(f) for f in mode_frequencies]
            b = c = [1.0] * len(freqs)
        b = list(input_coupling) if input_coupling is not None else b
        c = list(output_coupling) if output_coupling is not None else c
        if not freqs or len(b) != len(freqs) or len(c) != len(freqs) or min(freqs) <= 0:
            raise ConfigurationError(f"DrivenPlate needs positive mode frequencies and one coupling per mode; got "
                                     f"{len(freqs)} frequencies, {len(b)} input and {len(c)} output couplings")
        top = max(freqs) * FREQUENCY_SCALE[1]
        if top > MAX_MODE_FRACTION * self.sample_rate:
            raise StabilityError(f"DrivenPlate: highest mode {max(freqs):g} Hz x frequency_scale "
                                 f"{FREQUENCY_SCALE[1]} = {top:g} Hz exceeds fs/8 = {self.sample_rate / 8:g} Hz; "
                                 "raise the sample rate or lower the modes")
        self.q_factor = float(q_factor)
        self.register_buffer("mode_frequencies", torch.tensor(freqs, dtype=torch.float64))
        self.register_buffer("input_coupling", torch.tensor(b, dtype=torch.float64))
        self.register_buffer("output_coupling", torch.tensor(c, dtype=torch.float64))
        self.controls = (
            Control("drive", (), 0.0, 10.0, "V/V", 1.0, "drive gain into the voice coil"),
            Control("frequency_scale", (), *FREQUENCY_SCALE, "", 1.0, "scales every mode frequency"),
            Control("cubic", (), 0.0, 1.0, "1/V^2", 0.0, "cubic stiffness kappa (hardening)"),
        )

    def mode_coefficients(self, controls: dict[str, torch.Tensor], batch: int,
                          like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(a1, a2, g, e)``, each (batch, M), of the discrete mode recursions."""
        scale = self.per_row(controls["frequency_scale"], batch)[:, None]
        w = 2 * math.pi * self.mode_frequencies.to(like) * scale
        dt, q = 1.0 / self.sample_rate, self.q_factor
        r = torch.exp(-w * dt / (2 * q))
        a1 = 2 * r * torch.cos(w * math.sqrt(1 - 1 / (4 * q * q)) * dt)
        a2 = r * r
        static = 1 - a1 + a2  # (w dt)^2 to leading order
        g = static * self.input_coupling.to(like) / q
        e = static * self.per_row(controls["cubic"], batch)[:, None]
        return a1, a2, g, e

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        a1, a2, g, e = self.mode_coefficients(controls, x.shape[0], x)
        u = self.per_row(controls["drive"], x.shape[0])[:, None] * x
        return modal(u, a1, a2, g, e, self.output_coupling.to(x))
