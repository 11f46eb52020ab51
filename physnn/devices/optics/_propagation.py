"""Scalar free-space propagation by the band-limited angular-spectrum method.

A field ``E(x, y)`` sampled on an ``(ny, nx)`` grid of pitch ``dx`` (m) is zero-padded to
``(2 ny, 2 nx)`` (no wrap-around: a linear, not circular, convolution), transformed, multiplied by

    H(fx, fy) = exp(i 2 pi z sqrt(1/lambda^2 - fx^2 - fy^2))

and transformed back; the central ``(ny, nx)`` window is returned. Evanescent components
(``fx^2 + fy^2 >= 1/lambda^2``) are dropped, and ``H`` is limited to
``|fx| <= u_lim = 1 / (lambda sqrt((2 du z)^2 + 1))`` (and likewise in y, with ``du = 1/(2 n dx)``)
where its sampled phase would alias (Matsushima & Shimobaba, Opt. Express 17, 19662 (2009)).
Within the band ``|H| = 1``: the padded propagation conserves energy exactly.

Transfer functions are cached per (shape, pitch, wavelength, distance, torch device, dtype).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from ...errors import ConfigurationError, InputError

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128,
            torch.complex64: torch.complex64, torch.complex128: torch.complex128}


def band_limit(n: int, pitch: float, wavelength: float, distance: float) -> float:
    """Matsushima-Shimobaba band limit (1/m) for a padded grid of ``2 n`` samples of pitch ``pitch`` (m)."""
    du = 1.0 / (2 * n * pitch)
    return 1.0 / (wavelength * math.sqrt((2 * du * distance) ** 2 + 1))


@lru_cache(maxsize=64)
def _transfer(shape: tuple[int, int], pitch: float, wavelength: float, distance: float, device: str,
              dtype: torch.dtype) -> torch.Tensor:
    ny, nx = shape
    fy = torch.fft.fftfreq(2 * ny, d=pitch, dtype=torch.float64)
    fx = torch.fft.fftfreq(2 * nx, d=pitch, dtype=torch.float64)
    fy, fx = fy[:, None], fx[None, :]
    arg = 1.0 / wavelength ** 2 - fx ** 2 - fy ** 2
    propagating = arg > 0
    inside = (fx.abs() <= band_limit(nx, pitch, wavelength, distance)) & (
        fy.abs() <= band_limit(ny, pitch, wavelength, distance))
    phase = 2 * math.pi * distance * torch.sqrt(arg.clamp(min=0))
    h = torch.polar((propagating & inside).to(torch.float64), phase)
    return h.to(device=device, dtype=dtype)


def transfer_function(shape: tuple[int, int], pitch: float, wavelength: float, distance: float,
                      device: torch.device | str = "cpu", dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    """The band-limited transfer function ``H`` on the padded ``(2 ny, 2 nx)`` FFT grid (cached; do not modify)."""
    if not (pitch > 0 and wavelength > 0 and distance >= 0):
        raise ConfigurationError(f"angular-spectrum propagation needs pitch > 0, wavelength > 0 and distance >= 0 "
                                 f"(m), got pitch={pitch}, wavelength={wavelength}, distance={distance}")
    return _transfer((int(shape[0]), int(shape[1])), float(pitch), float(wavelength), float(distance),
                     str(torch.device(device)), _COMPLEX[dtype])


def propagate(field: torch.Tensor, pitch: float, wavelength: float, distance: float) -> torch.Tensor:
    """Propagate ``field`` (..., ny, nx), complex, over ``distance`` (m); returns the same shape and dtype.

    ``pitch`` is the sampling pitch (m), ``wavelength`` the vacuum wavelength (m). Differentiable.
    """
    if not field.is_complex() or field.dim() < 2:
        raise InputError(f"propagate: field must be a complex tensor of shape (..., ny, nx), "
                         f"got dtype {field.dtype} and shape {tuple(field.shape)}")
    ny, nx = field.shape[-2:]
    h = transfer_function((ny, nx), pitch, wavelength, distance, field.device, field.dtype)
    padded = F.pad(field, (nx // 2, nx - nx // 2, ny // 2, ny - ny // 2))
    out = torch.fft.ifft2(torch.fft.fft2(padded) * h)
    return out[..., ny // 2:ny // 2 + ny, nx // 2:nx // 2 + nx]
