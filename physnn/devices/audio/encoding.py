"""Digital front and back ends that make an audio device a layer of a classifier.

Encoders turn a feature vector (B, F) into a drive waveform (B, T) volts;
readouts turn the device's output waveform (B, T) into features (B, K). Both
are ordinary differentiable ``nn.Module``s for ``PhysicalLayer(encoder=...,
readout=...)``; put an ``nn.Linear`` before an encoder to learn the drive.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ...errors import ConfigurationError


class _BasisEncoder(nn.Module):
    """``drive = amplitude * features @ basis``, basis (F, T) fixed."""

    basis: torch.Tensor

    def __init__(self, basis: torch.Tensor, amplitude: float) -> None:
        super().__init__()
        self.register_buffer("basis", basis.float())
        self.amplitude = float(amplitude)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, F) -> drive (B, T) volts."""
        return self.amplitude * features @ self.basis.to(features.dtype)


class ToneEncoder(_BasisEncoder):
    """Amplitude-modulated tones: feature ``f`` sets the amplitude of a sine at ``frequencies[f]``.

    Args:
        num_features: F.
        num_samples, sample_rate: T and Hz of the drive.
        frequencies: Hz, one per feature (default log-spaced from 200 Hz to fs/5).
        amplitude: V per unit feature, divided by sqrt(F) so the drive power stays near
            ``amplitude^2 / 2`` for unit features.

    Tones start with a 5 ms raised-cosine fade-in and have Schroeder phases (low crest factor).
    """

    def __init__(self, num_features: int, *, num_samples: int, sample_rate: float = 44100.0,
                 frequencies: Sequence[float] | None = None, amplitude: float = 0.5) -> None:
        if frequencies is None:
            top = sample_rate / 5
            frequencies = [200.0 * (top / 200.0) ** (i / max(num_features - 1, 1)) for i in range(num_features)]
        if len(frequencies) != num_features or max(frequencies) >= sample_rate / 2:
            raise ConfigurationError(f"ToneEncoder needs {num_features} frequencies below Nyquist "
                                     f"({sample_rate / 2:g} Hz), got {list(frequencies)}")
        t = torch.arange(num_samples, dtype=torch.float64) / sample_rate
        k = torch.arange(num_features, dtype=torch.float64)
        phase = math.pi * k * (k - 1) / num_features
        f = torch.as_tensor(frequencies, dtype=torch.float64)
        fade = 0.5 - 0.5 * torch.cos(math.pi * (t / 0.005).clamp(max=1.0))
        basis = torch.sin(2 * math.pi * f[:, None] * t + phase[:, None]) * fade / math.sqrt(num_features)
        super().__init__(basis, amplitude)
        self.frequencies = tuple(float(v) for v in frequencies)


class TimeBinEncoder(_BasisEncoder):
    """Time bins: feature ``f`` sets the amplitude of a carrier tone during the ``f``-th of F equal bins.

    Args: num_features F; num_samples T; sample_rate Hz; carrier Hz; amplitude V per unit
    feature. Each bin has a raised-cosine (Hann) envelope, so adjacent bins do not click.
    """

    def __init__(self, num_features: int, *, num_samples: int, sample_rate: float = 44100.0,
                 carrier: float = 1000.0, amplitude: float = 0.5) -> None:
        if num_samples < num_features or carrier >= sample_rate / 2:
            raise ConfigurationError(f"TimeBinEncoder needs num_samples >= num_features ({num_samples} < "
                                     f"{num_features}?) and a carrier below Nyquist ({carrier:g} Hz vs "
                                     f"{sample_rate / 2:g} Hz)")
        t = torch.arange(num_samples, dtype=torch.float64)
        edges = torch.linspace(0, num_samples, num_features + 1, dtype=torch.float64)
        pos = (t[None, :] - edges[:-1, None]) / (edges[1:, None] - edges[:-1, None])
        window = torch.where((pos >= 0) & (pos < 1), 0.5 - 0.5 * torch.cos(2 * math.pi * pos), torch.zeros_like(pos))
        super().__init__(window * torch.sin(2 * math.pi * carrier * t / sample_rate), amplitude)
        self.carrier = float(carrier)


class BandEnergyReadout(nn.Module):
    """Spectral band energies of the output: y (B, T) -> (B, K).

    The energy of a band is ``sum |rfft(y)_k|^2 / T^2`` over the FFT bins ``k`` in
    ``[low, high)``, in V^2 (a sine of amplitude A at a bin frequency gives A^2 / 4).

    Args:
        num_samples, sample_rate: T and Hz of the device output.
        edges: K + 1 band edges in Hz (default: ``num_bands`` log-spaced bands, 100 Hz to Nyquist).
        num_bands: K when ``edges`` is not given.
        log: return ``log(energy + 1e-8)`` (natural log, energy in V^2), which keeps
            features of quiet and loud bands on one scale.
    """

    band_matrix: torch.Tensor

    def __init__(self, num_samples: int, *, sample_rate: float = 44100.0, edges: Sequence[float] | None = None,
                 num_bands: int = 16, log: bool = True) -> None:
        super().__init__()
        nyquist = sample_rate / 2
        if edges is None:
            edges = [100.0 * (nyquist / 100.0) ** (i / num_bands) for i in range(num_bands + 1)]
        edges_t = torch.as_tensor(edges, dtype=torch.float64)
        freqs = torch.fft.rfftfreq(num_samples, 1.0 / sample_rate).to(torch.float64)
        matrix = ((freqs[:, None] >= edges_t[None, :-1]) & (freqs[:, None] < edges_t[None, 1:])).double()
        empty = (matrix.sum(0) == 0).nonzero().flatten().tolist()
        if empty:
            raise ConfigurationError(f"BandEnergyReadout: bands {empty} hold no FFT bin at T={num_samples}, "
                                     f"fs={sample_rate:g} Hz (bin spacing {sample_rate / num_samples:g} Hz); "
                                     "widen them")
        self.register_buffer("band_matrix", (matrix / num_samples ** 2).float())
        self.log = bool(log)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """y (B, T) volts -> band energies (B, K)."""
        power = torch.fft.rfft(y, dim=-1).abs() ** 2
        energy = power @ self.band_matrix.to(power.dtype)
        return torch.log(energy + 1e-8) if self.log else energy


class EnvelopeReadout(nn.Module):
    """Time-binned RMS envelope: y (B, T) volts -> (B, K) volts RMS in K equal bins (the last may be shorter)."""

    def __init__(self, num_bins: int) -> None:
        super().__init__()
        if num_bins < 1:
            raise ConfigurationError(f"EnvelopeReadout needs num_bins >= 1, got {num_bins}")
        self.num_bins = int(num_bins)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        chunks = torch.tensor_split(y, self.num_bins, dim=-1)
        return torch.stack([torch.sqrt((c * c).mean(-1) + 1e-12) for c in chunks], dim=-1)
