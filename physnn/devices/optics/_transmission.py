"""Complex transmission matrices of a scattering medium: dense Gaussian, structured, or measured.

Each maps SLM fields ``(B, n_slm)`` to camera fields ``(B, n_camera)`` (complex). All are
normalized so that ``E|T_ij|^2 = 1 / n_slm``: a camera pixel's mean intensity equals the
mean SLM pixel intensity.

* :class:`DenseTransmission`: i.i.d. circular complex Gaussian entries (seeded), or a
  measured matrix; memory ``8 n_camera n_slm`` bytes (complex64).
* :class:`StructuredTransmission`: ``T = c S F D_3 F A F D_2 F D_1 P`` with ``F`` the unitary FFT,
  ``D_k`` random phases, ``A`` random phases times amplitudes drawn from the
  Marchenko-Pastur law of ratio 1, ``P`` zero-padding of the SLM field and ``S`` the first
  ``n_camera`` outputs. Memory ``O(N)``, time ``O(B N log N)`` with ``N = max(n_slm, n_camera)``.
  Its entries are circular Gaussian and its singular values follow the Marchenko-Pastur
  law of an i.i.d. Gaussian matrix of the same shape (tests/test_optics_scattering.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...errors import ConfigurationError, DataFormatError, DataNotFoundError

#: dense matrices above this size must be structured (or given explicitly), bytes
DENSE_LIMIT_BYTES = 1 << 30


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    """The complex dtype matching real ``dtype`` (float64 -> complex128, else complex64)."""
    return torch.complex128 if dtype == torch.float64 else torch.complex64


class DenseTransmission(nn.Module):
    """A dense transmission matrix ``tm`` of shape ``(n_camera, n_slm)``, complex64."""

    def __init__(self, tm: torch.Tensor) -> None:
        super().__init__()
        # stored as real (n_camera, n_slm, 2): Module.to(float dtype) would discard a complex buffer's imaginary part
        self.register_buffer("parts", torch.view_as_real(tm.to(torch.complex64)).clone())
        self.n_camera, self.n_slm = (int(s) for s in tm.shape)

    @property
    def tm(self) -> torch.Tensor:
        """The matrix, complex (n_camera, n_slm)."""
        return torch.view_as_complex(self.parts.contiguous())

    @classmethod
    def gaussian(cls, n_slm: int, n_camera: int, generator: torch.Generator) -> DenseTransmission:
        """i.i.d. circular complex Gaussian entries of variance ``1 / n_slm``."""
        nbytes = 8 * n_slm * n_camera
        if nbytes > DENSE_LIMIT_BYTES:
            raise ConfigurationError(
                f"a dense {n_camera} x {n_slm} transmission matrix needs {nbytes / 2**30:.1f} GiB "
                f"(limit {DENSE_LIMIT_BYTES / 2**30:.0f} GiB); use transmission='structured' for large media")
        parts = torch.randn(2, n_camera, n_slm, generator=generator) * math.sqrt(0.5 / n_slm)
        return cls(torch.complex(parts[0], parts[1]))

    @classmethod
    def load(cls, path: str | Path) -> DenseTransmission:
        """A measured matrix from ``.npy``, ``.npz`` or ``.mat`` (shape ``(n_camera, n_slm)``), used as is."""
        return cls(torch.from_numpy(load_matrix(path)))

    def perturbed(self, strength: float, generator: torch.Generator) -> DenseTransmission:
        """The medium after partial decorrelation: ``sqrt(1 - s^2) T + s T'`` with ``T'`` a fresh draw."""
        fresh = DenseTransmission.gaussian(self.n_slm, self.n_camera, generator).tm.to(self.tm.device)
        scale = self.tm.abs().square().mean().mul(self.n_slm).sqrt()  # keeps a measured matrix's power
        return DenseTransmission(math.sqrt(1 - strength**2) * self.tm + strength * scale * fresh)

    def forward(self, field: torch.Tensor) -> torch.Tensor:
        """Camera fields ``(B, n_camera)`` of SLM fields ``(B, n_slm)``."""
        return field @ self.tm.to(field.device, field.dtype).transpose(0, 1)


class StructuredTransmission(nn.Module):
    """``T = c S F D_3 F A F D_2 F D_1 P``: an FFT-structured transmission matrix with Gaussian statistics."""

    def __init__(self, n_slm: int, n_camera: int, generator: torch.Generator) -> None:
        super().__init__()
        self.n_slm, self.n_camera = int(n_slm), int(n_camera)
        self.size = max(self.n_slm, self.n_camera)
        # real buffers (angles in rad): Module.to(float dtype) would discard a complex buffer's imaginary part
        self.register_buffer("angles", 2 * math.pi * torch.rand(4, self.size, generator=generator))
        self.register_buffer("amplitudes", _marchenko_pastur_one(self.size, generator).sqrt().float())
        # unitary F, A and D: c makes E|T_ij|^2 = 1 / n_slm when the SLM is zero-padded (n_slm < N)
        self.scale = math.sqrt(self.size / self.n_slm)

    def perturbed(self, strength: float, generator: torch.Generator) -> DecorrelatedTransmission:
        """The medium after partial decorrelation: ``sqrt(1 - s^2) T + s T'`` with ``T'`` a fresh draw."""
        return DecorrelatedTransmission(self, StructuredTransmission(self.n_slm, self.n_camera, generator), strength)

    def forward(self, field: torch.Tensor) -> torch.Tensor:
        """Camera fields ``(B, n_camera)`` of SLM fields ``(B, n_slm)``."""
        real = field.real.dtype
        angles, amplitudes = self.angles.to(field.device, real), self.amplitudes.to(field.device, real)
        phases = torch.polar(torch.ones_like(angles), angles)
        e = torch.fft.fft(nn.functional.pad(field, (0, self.size - self.n_slm)) * phases[0], norm="ortho")
        e = torch.fft.fft(e * phases[1], norm="ortho") * (amplitudes * phases[2])
        e = torch.fft.fft(torch.fft.fft(e, norm="ortho") * phases[3], norm="ortho")
        return self.scale * e[:, :self.n_camera]


class DecorrelatedTransmission(nn.Module):
    """``sqrt(1 - s^2) T + s T'``: a structured medium partly replaced by an independent one (same statistics)."""

    def __init__(self, nominal: StructuredTransmission, fresh: StructuredTransmission, strength: float) -> None:
        super().__init__()
        self.nominal, self.fresh, self.strength = nominal, fresh, float(strength)
        self.n_slm, self.n_camera = nominal.n_slm, nominal.n_camera

    def forward(self, field: torch.Tensor) -> torch.Tensor:
        """Camera fields ``(B, n_camera)`` of SLM fields ``(B, n_slm)``."""
        return math.sqrt(1 - self.strength**2) * self.nominal(field) + self.strength * self.fresh(field)


def _marchenko_pastur_one(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` stratified draws from the Marchenko-Pastur law of ratio 1 (density ``sqrt((4 - l) / l) / (2 pi)``
    on [0, 4]), one per quantile bin ``[k / n, (k + 1) / n)``, in random order.

    With ``l = 4 sin^2(u)``, ``u`` has density ``(4 / pi) cos^2(u)`` on [0, pi/2] and CDF
    ``(2u + sin 2u) / pi``, inverted here by Newton's method (monotone, 30 steps to float64 precision).
    """
    bins = torch.randperm(n, generator=generator).to(torch.float64)
    target = math.pi * (bins + torch.rand(n, generator=generator, dtype=torch.float64)) / n
    u = target / 4
    for _ in range(30):
        step = (2 * u + torch.sin(2 * u) - target) / (2 + 2 * torch.cos(2 * u)).clamp_min(1e-12)
        u = (u - step).clamp(0, math.pi / 2)
    return 4 * torch.sin(u).square()


def load_matrix(path: str | Path) -> np.ndarray:
    """A complex 2D matrix from ``.npy``, ``.npz`` (one array, or key ``tm``) or ``.mat`` (key ``tm``/``TM``)."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"transmission matrix file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            data = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                data = _pick(path, {k: archive[k] for k in archive.files})
        elif suffix == ".mat":
            from scipy.io import loadmat
            data = _pick(path, {k: v for k, v in loadmat(path).items() if not k.startswith("__")})
        else:
            raise DataFormatError(f"transmission matrix file {path}: expected .npy, .npz or .mat, got {suffix!r}")
    except (ValueError, OSError) as exc:
        if isinstance(exc, DataFormatError):
            raise
        raise DataFormatError(f"transmission matrix file {path} could not be read: {exc}") from exc
    if data.ndim != 2 or min(data.shape) < 1:
        raise DataFormatError(f"transmission matrix in {path} must be 2D (n_camera, n_slm), got shape {data.shape}")
    if not (np.issubdtype(data.dtype, np.complexfloating) or np.issubdtype(data.dtype, np.floating)):
        raise DataFormatError(f"transmission matrix in {path} must hold complex (or real) floats, "
                              f"got dtype {data.dtype}")
    finite = np.isfinite(data)
    if not finite.all():
        bad = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise DataFormatError(f"transmission matrix in {path} must be finite, got {data[bad]} at index {bad}")
    return data.astype(np.complex64)


def _pick(path: Path, arrays: dict[str, np.ndarray]) -> np.ndarray:
    for key in ("tm", "TM"):
        if key in arrays:
            return arrays[key]
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    raise DataFormatError(f"transmission matrix file {path}: expected one array or one named 'tm', "
                          f"got {sorted(arrays)}")
