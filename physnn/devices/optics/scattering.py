"""ScatteringMedium: SLM -> fixed complex transmission matrix -> camera, as in PhyLL's optical experiments.

The drive ``x`` (B, n_slm) in [0, 1] is written on the SLM as a phase (``pi * phase_depth * x`` rad
with the default ``phase_depth=1``), an amplitude (``x``) or a binary DMD amplitude (``x > 0.5``, with
a straight-through gradient). The field crosses the medium (a complex transmission matrix,
:mod:`._transmission`) and a camera records its intensity (:mod:`._camera`). Outputs are camera
readings in [0, 1] of full scale, shape (B, n_camera).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ...device import Control, Device
from ...errors import ConfigurationError
from ._camera import Camera
from ._transmission import DenseTransmission, StructuredTransmission, complex_dtype

ENCODINGS = ("phase", "amplitude", "binary")
TRANSMISSIONS = ("gaussian", "structured")


class ScatteringMedium(Device):
    """An SLM, a scattering medium and a camera. x: (B, n_slm) in [0, 1] -> y: (B, n_camera) in [0, 1].

    Args:
        n_slm, n_camera: SLM and camera pixels (default 256 and 64); with a measured ``transmission``
            they come from the file, and given ones must match its shape.
        transmission: ``"gaussian"`` (dense i.i.d., seeded by ``medium_seed``), ``"structured"``
            (FFT-structured with the same statistics, O(N) memory: for large media) or the path
            of a measured matrix (``.npy``/``.npz``/``.mat``, shape (n_camera, n_slm)).
        encoding: ``"phase"``, ``"amplitude"`` or ``"binary"`` (DMD).
        phase_depth: phase stroke of the SLM at ``x = 1``, in units of pi rad.
        bits, full_well, photon_rate, read_noise, noise: the camera (:class:`._camera.Camera`);
            ``noise="poisson"`` makes the device a black box (``differentiable=False``).
        perturbation: decorrelation of the medium from its nominal draw (0: none, 1: a new medium),
            for hardware stand-ins whose medium differs from the model's.
        medium_seed: seed of the transmission matrix; ``seed`` seeds the camera noise.
    """

    name = "scattering-medium"
    input_bounds = (0.0, 1.0)

    def __init__(self, n_slm: int | None = None, n_camera: int | None = None, *, transmission: str | Path = "gaussian",
                 encoding: str = "phase", phase_depth: float = 1.0, bits: int | None = 8,
                 full_well: float = 10000.0, photon_rate: float = 2000.0, read_noise: float = 2.0,
                 noise: str = "gaussian", perturbation: float = 0.0, medium_seed: int = 0,
                 seed: int | None = None) -> None:
        super().__init__(seed=seed)
        if encoding not in ENCODINGS:
            raise ConfigurationError(f"ScatteringMedium encoding must be one of {list(ENCODINGS)}, got {encoding!r}")
        if not 0.0 <= perturbation <= 1.0:
            raise ConfigurationError(f"ScatteringMedium perturbation must lie in [0, 1], got {perturbation}")
        if not phase_depth > 0:
            raise ConfigurationError(f"ScatteringMedium phase_depth must be > 0 (units of pi rad), got {phase_depth}")
        self.camera = Camera(bits=bits, full_well=full_well, photon_rate=photon_rate, read_noise=read_noise,
                             noise=noise)
        self.encoding, self.phase_depth = encoding, float(phase_depth)
        medium = torch.Generator().manual_seed(int(medium_seed))
        self.medium = self._build_medium(transmission, n_slm, n_camera, medium)
        if perturbation > 0:
            self.medium = self.medium.perturbed(perturbation, medium)
        self.n_slm, self.n_camera = self.medium.n_slm, self.medium.n_camera
        self.in_shape, self.out_shape = (self.n_slm,), (self.n_camera,)
        self.differentiable = noise != "poisson"
        self.stochastic = noise != "none"
        self.controls = (
            Control("exposure", (), 0.01, 100.0, "ms", 1.0, "camera exposure time"),
            Control("gain", (), 0.0, 24.0, "dB", 0.0, "camera analog gain over unity (full well = full scale)"),
        )

    @staticmethod
    def _build_medium(transmission: str | Path, n_slm: int | None, n_camera: int | None,
                      generator: torch.Generator) -> DenseTransmission | StructuredTransmission:
        if isinstance(transmission, str) and transmission in TRANSMISSIONS:
            n_slm, n_camera = int(256 if n_slm is None else n_slm), int(64 if n_camera is None else n_camera)
            if n_slm < 1 or n_camera < 1:
                raise ConfigurationError(f"ScatteringMedium needs n_slm >= 1 and n_camera >= 1, "
                                         f"got n_slm={n_slm}, n_camera={n_camera}")
            if transmission == "gaussian":
                return DenseTransmission.gaussian(n_slm, n_camera, generator)
            return StructuredTransmission(n_slm, n_camera, generator)
        if isinstance(transmission, str) and Path(transmission).suffix == "":
            raise ConfigurationError(f"ScatteringMedium transmission must be one of {list(TRANSMISSIONS)} "
                                     f"or a .npy/.npz/.mat file, got {transmission!r}")
        medium = DenseTransmission.load(transmission)
        for label, given, found in (("n_slm", n_slm, medium.n_slm), ("n_camera", n_camera, medium.n_camera)):
            if given is not None and given != found:
                raise ConfigurationError(f"ScatteringMedium {label}={given} does not match the measured matrix in "
                                         f"{transmission} of shape (n_camera, n_slm) = {tuple(medium.tm.shape)}")
        return medium

    def slm_field(self, x: torch.Tensor) -> torch.Tensor:
        """The SLM's complex field (B, n_slm) for drive ``x`` (unit amplitude for phase encoding)."""
        if self.encoding == "phase":
            return torch.polar(torch.ones_like(x), math.pi * self.phase_depth * x)
        if self.encoding == "binary":
            x = x + ((x > 0.5).to(x.dtype) - x).detach()  # DMD mirrors on/off, straight-through gradient
        return torch.complex(x, torch.zeros_like(x))

    def intensity(self, x: torch.Tensor) -> torch.Tensor:
        """Noise-free camera-plane intensity (B, n_camera), in units of the mean SLM pixel intensity."""
        field = self.slm_field(x).to(complex_dtype(x.dtype))
        return torch.view_as_real(self.medium(field)).square().sum(-1)

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.camera.measure(self.intensity(x), controls["exposure"], controls["gain"], self.generator)
