"""DiffractiveNetwork: trainable phase (optionally amplitude) masks separated by free space.

The drive ``x`` (B, s*s) in [0, 1] is an s x s image, row-major, resized (bilinear) to the central
``round(input_fill * n)`` pixels of the n x n input plane and encoded as the field's amplitude
(``E = x``) or phase (``E = exp(i pi x)`` inside that window, 0 outside). The field crosses
``layers`` masks ``a_l exp(i phi_l)``, each preceded by a free-space gap of ``spacing`` m
(angular-spectrum method, :mod:`._propagation`), then one more gap to the detector plane, where the
intensity ``|E|^2`` is summed over each detector square. Outputs (B, regions) are ``gain`` x powers,
with power in units of one fully transmitting input pixel (amplitude 1 over one pitch^2).

Defaults follow Lin et al., Science 361, 1004 (2018): 0.4 THz (lambda = 0.75 mm), 0.4 mm neurons,
200 x 200 neurons per layer, 3 cm between planes, 5 phase-only layers, 10 detector squares in rows
of 3, 4 and 3.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...device import Control, Device
from ...errors import ConfigurationError
from ._propagation import propagate

ENCODINGS = ("amplitude", "phase")
TWO_PI = 2 * math.pi


class DiffractiveNetwork(Device):
    """``layers`` diffractive masks of n x n neurons. x: (B, s*s) in [0, 1] -> y: (B, regions) powers.

    Args:
        n: neurons per side of every plane (input, masks, detector).
        layers: number of trainable masks.
        wavelength, pitch, spacing: vacuum wavelength, neuron pitch and distance between consecutive
            planes (input -> mask 1 -> ... -> mask L -> detector), all in m.
        input_size: side ``s`` of the input image.
        input_fill: fraction of the plane's side the resized image covers, in (0, 1].
        encoding: ``"amplitude"`` or ``"phase"``.
        amplitude: also train a transmission in [0, 1] per neuron (control ``"amplitude"``).
        detectors: detector squares as ``(row, col, side)`` in pixels (top-left corner); default 10
            squares of side ``detector_size`` (default ``max(1, n // 10)``) in rows of 3, 4 and 3.
        phase_error: rms static error of every mask neuron's phase, rad (drawn from ``error_seed``).
        spacing_error: rms static relative error of every gap (drawn from ``error_seed``).
        detector_noise: rms noise of each output relative to the batch's mean output (from ``seed``).
        gain: detector gain; outputs are ``gain`` x power (default 1: power in input-pixel units).
    """

    name = "diffractive-network"
    differentiable = True
    input_bounds = (0.0, 1.0)

    def __init__(self, n: int = 200, layers: int = 5, *, wavelength: float = 0.75e-3, pitch: float = 0.4e-3,
                 spacing: float = 30e-3, input_size: int = 28, input_fill: float = 0.5, encoding: str = "amplitude",
                 amplitude: bool = False, detectors: Sequence[Sequence[int]] | None = None,
                 detector_size: int | None = None, phase_error: float = 0.0, spacing_error: float = 0.0,
                 detector_noise: float = 0.0, gain: float = 1.0, error_seed: int = 1, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        n, layers, s = int(n), int(layers), int(input_size)
        if n < 2 or layers < 1 or s < 1:
            raise ConfigurationError(f"DiffractiveNetwork needs n >= 2, layers >= 1 and input_size >= 1, "
                                     f"got n={n}, layers={layers}, input_size={input_size}")
        if not (wavelength > 0 and pitch > 0 and spacing > 0):
            raise ConfigurationError(f"DiffractiveNetwork wavelength, pitch and spacing must be > 0 (m), got "
                                     f"wavelength={wavelength}, pitch={pitch}, spacing={spacing}")
        if not 0 < input_fill <= 1:
            raise ConfigurationError(f"DiffractiveNetwork input_fill must lie in (0, 1], got {input_fill}")
        if encoding not in ENCODINGS:
            raise ConfigurationError(f"DiffractiveNetwork encoding must be one of {list(ENCODINGS)}, got {encoding!r}")
        if not gain > 0:
            raise ConfigurationError(f"DiffractiveNetwork gain must be > 0, got {gain}")
        for label, value in (("phase_error", phase_error), ("spacing_error", spacing_error),
                             ("detector_noise", detector_noise)):
            if not value >= 0:
                raise ConfigurationError(f"DiffractiveNetwork {label} must be >= 0, got {value}")
        self.n, self.layers, self.input_size, self.encoding = n, layers, s, encoding
        self.wavelength, self.pitch = float(wavelength), float(pitch)
        self.fill = max(1, round(input_fill * n))
        self.detector_noise, self.gain = float(detector_noise), float(gain)
        self.stochastic = detector_noise > 0
        boxes = _lin_layout(n, detector_size or max(1, n // 10)) if detectors is None else _boxes(detectors, n)
        self.register_buffer("regions", _region_masks(n, boxes))
        self.detectors = tuple(boxes)
        self.in_shape, self.out_shape = (s * s,), (len(boxes),)
        g = torch.Generator().manual_seed(int(error_seed))
        gaps = spacing * (1 + spacing_error * torch.randn(layers + 1, generator=g, dtype=torch.float64))
        if bool((gaps <= 0).any()):
            raise ConfigurationError(f"DiffractiveNetwork spacing_error={spacing_error} made a gap <= 0; use a "
                                     "smaller error")
        self.gaps = tuple(float(d) for d in gaps)
        self.register_buffer("phase_errors", phase_error * torch.randn(layers, n, n, generator=g,
                                                                        dtype=torch.float64))
        controls = [Control("phase", (layers, n, n), 0.0, TWO_PI, "rad", math.pi,
                            "phase delay of each mask neuron (default mid-range: trainable both ways)")]
        if amplitude:
            controls.append(Control("amplitude", (layers, n, n), 0.0, 1.0, "", 1.0,
                                    "field transmission of each mask neuron"))
        self.controls = tuple(controls)

    def input_field(self, x: torch.Tensor) -> torch.Tensor:
        """The input plane's complex field (B, n, n) for drives ``x`` (B, s*s)."""
        s, m, n = self.input_size, self.fill, self.n
        image = x.reshape(-1, 1, s, s)
        if m != s:
            image = F.interpolate(image, size=(m, m), mode="bilinear", align_corners=False)
        image = image[:, 0]
        if self.encoding == "amplitude":
            field = torch.complex(image, torch.zeros_like(image))
        else:
            field = torch.polar(torch.ones_like(image), math.pi * image)
        lo = (n - m) // 2
        return F.pad(field, (lo, n - m - lo, lo, n - m - lo))

    def output_field(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        """The complex field (B, n, n) on the detector plane."""
        field = self.input_field(x)
        phase = controls["phase"] + self.phase_errors.to(controls["phase"])
        masks = torch.polar(torch.ones_like(phase), phase)
        if "amplitude" in controls:
            masks = masks * controls["amplitude"]
        for layer in range(self.layers):
            field = propagate(field, self.pitch, self.wavelength, self.gaps[layer]) * masks[layer]
        return propagate(field, self.pitch, self.wavelength, self.gaps[-1])

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        field = self.output_field(x, controls)
        intensity = torch.view_as_real(field).square().sum(-1)
        y = self.gain * torch.einsum("bij,rij->br", intensity, self.regions.to(intensity))
        if self.detector_noise:
            z = torch.randn(y.shape, generator=self.generator, dtype=y.dtype).to(y.device)
            y = y + self.detector_noise * y.detach().abs().mean() * z
        return y


def _boxes(detectors: Any, n: int) -> list[tuple[int, ...]]:
    """``detectors`` as tuples of integers (their geometry is checked by :func:`_region_masks`)."""
    try:
        return [tuple(int(v) for v in d) if all(float(v) == int(v) for v in d) else (None,) for d in detectors]
    except (TypeError, ValueError, OverflowError):
        raise ConfigurationError(f"DiffractiveNetwork detectors must be a list of integer (row, col, side) squares "
                                 f"inside the {n} x {n} plane, got {detectors!r}") from None


def _lin_layout(n: int, side: int) -> list[tuple[int, int, int]]:
    """10 squares of ``side`` pixels in rows of 3, 4 and 3 centred on an n x n plane, 2 sides apart."""
    if 7 * side > n:
        raise ConfigurationError(f"DiffractiveNetwork: 10 detectors of side {side} need n >= {7 * side}, got n={n}")
    c = n / 2
    rows = ((-2, (-2, 0, 2)), (0, (-3, -1, 1, 3)), (2, (-2, 0, 2)))
    return [(math.floor(c + dy * side - side / 2), math.floor(c + dx * side - side / 2), side)
            for dy, xs in rows for dx in xs]


def _region_masks(n: int, boxes: Sequence[tuple[int, ...]]) -> torch.Tensor:
    """0/1 masks (regions, n, n) of the detector squares; each must lie inside the plane."""
    if not boxes:
        raise ConfigurationError("DiffractiveNetwork needs at least one detector")
    masks = torch.zeros(len(boxes), n, n, dtype=torch.float64)
    for k, box in enumerate(boxes):
        if len(box) != 3:
            raise ConfigurationError(f"DiffractiveNetwork detector {k} must be (row, col, side), got {box}")
        r, c, side = box
        if side < 1 or r < 0 or c < 0 or r + side > n or c + side > n:
            raise ConfigurationError(f"DiffractiveNetwork detector {k} = (row={r}, col={c}, side={side}) must lie "
                                     f"inside the {n} x {n} plane")
        masks[k, r:r + side, c:c + side] = 1.0
    return masks


class PowerFractions(nn.Module):
    """Class scores from detector powers (B, regions): ``temperature * p / sum(p)``, no parameters.

    The readout of Lin et al.: the class is the brightest detector; dividing by the total makes the
    scores independent of the source power, and ``temperature`` sets the softmax's sharpness.
    """

    def __init__(self, temperature: float) -> None:
        super().__init__()
        self.temperature = float(temperature)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return self.temperature * power / power.sum(1, keepdim=True).clamp_min(1e-30)
