"""SoundCardDevice: a sound card's output and input with a physical system between them.

Each forward call plays one buffer and records the input at the same time
(python-sounddevice ``playrec``)::

    [sync chirp][gap][x_0][gap][x_1] ... [x_{B-1}][tail]

The recording is aligned by cross-correlating the sync chirp, which removes
the interface's latency; each sample's response is cut at its own offset. A
recording that reaches the clip level is rejected, and with ``takes=2`` (the
default) two takes must agree within ``max_esr``, the error-to-signal ratio
``sum((a - b)^2) / sum(b^2)`` (Neural Amp Modeler's repeatability check).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ...device import Device
from ...errors import ConfigurationError, DeviceConnectionError, RecordingError


def sync_chirp(samplerate: float, seconds: float, low: float = 200.0, high: float = 8000.0) -> np.ndarray:
    """A Hann-windowed exponential sine sweep from ``low`` to ``high`` Hz, amplitude 0.5 full scale."""
    t = np.arange(int(round(seconds * samplerate))) / samplerate
    k = math.log(high / low)
    phase = 2 * math.pi * low * seconds / k * (np.exp(t / seconds * k) - 1)
    return 0.5 * np.sin(phase) * np.hanning(t.size)


def find_delay(recording: np.ndarray, chirp: np.ndarray, max_delay: int) -> tuple[int, float]:
    """Latency of ``chirp`` inside ``recording`` (samples) and its normalized correlation peak (1 = exact copy).

    Searches delays ``0..max_delay`` by FFT cross-correlation.
    """
    n = chirp.size
    segment = recording[:max_delay + n]
    size = 1 << int(math.ceil(math.log2(segment.size + n)))
    corr = np.fft.irfft(np.fft.rfft(segment, size) * np.conj(np.fft.rfft(chirp, size)), size)[:max_delay + 1]
    delay = int(np.argmax(corr))
    window = segment[delay:delay + n]
    norm = float(np.linalg.norm(window) * np.linalg.norm(chirp))
    return delay, float(corr[delay] / norm) if norm > 0 else 0.0


def error_to_signal(take: np.ndarray, reference: np.ndarray) -> float:
    """``sum((take - reference)^2) / sum(reference^2)``; ``inf`` when the reference is silent."""
    energy = float(np.sum(reference ** 2))
    return float(np.sum((take - reference) ** 2)) / energy if energy > 0 else math.inf


class SoundCardDevice(Device):
    """A system wired from a sound card's output to its input. x: (B, n) -> y: (B, m), full-scale units.

    Args:
        n_samples: drive length per sample, ``n``.
        response_samples: recorded window per sample, ``m`` (default ``n``; longer captures tails).
        samplerate: Hz; must be the interface's (JACK: the server's rate).
        device: sounddevice device name or index (``None``: the default device).
        output_channel, input_channel: 0-based channels the system is wired to.
        chirp_seconds, gap_seconds: length of the sync chirp and of the silence after it
            and between samples (make the gap longer than the system's ring-out).
        max_latency_seconds: longest interface latency searched for.
        min_sync: lowest normalized chirp correlation accepted (the wiring check).
        clip_level: a recorded |sample| at or above this (full scale) rejects the take.
        takes: recordings per call; with 2 or more they must agree within ``max_esr``
            and the output is their mean.
        max_esr: largest error-to-signal ratio between takes.
        blocksize: PortAudio block size (0: the host's choice).

    Drives lie in ``[-1, 1]`` (``input_bounds``). No controls: the knobs of the
    system between output and input are set by hand, or by another device.
    """

    differentiable = False
    input_bounds = (-1.0, 1.0)
    not_rebuildable = "it drives a sound card wired to a physical system; open it yourself"

    def __init__(self, n_samples: int, *, response_samples: int | None = None, samplerate: int = 44100,
                 device: int | str | None = None, output_channel: int = 0, input_channel: int = 0,
                 chirp_seconds: float = 0.05, gap_seconds: float = 0.02, max_latency_seconds: float = 0.5,
                 min_sync: float = 0.5, clip_level: float = 0.999, takes: int = 2, max_esr: float = 1e-3,
                 blocksize: int = 0, name: str = "soundcard", seed: int | None = None) -> None:
        super().__init__(seed=seed)
        if n_samples < 1 or takes < 1 or not 0 < clip_level <= 1 or max_esr < 0:
            raise ConfigurationError(f"SoundCardDevice needs n_samples >= 1, takes >= 1, 0 < clip_level <= 1 and "
                                     f"max_esr >= 0; got {n_samples}, {takes}, {clip_level}, {max_esr}")
        self.name = name
        try:
            import sounddevice as sd  # imported here: PortAudio finds the host APIs (JACK) when it initializes
        except (ImportError, OSError) as exc:
            raise ConfigurationError(f"{self._label()} needs python-sounddevice and the PortAudio library: "
                                     "pip install 'physnn[lab]' (and apt-get install libportaudio2)") from exc
        self._sd = sd
        self.n, self.m = int(n_samples), int(response_samples or n_samples)
        self.in_shape, self.out_shape = (self.n,), (self.m,)
        self.samplerate, self.device, self.blocksize = int(samplerate), device, int(blocksize)
        self.output_channel, self.input_channel = int(output_channel), int(input_channel)
        self.gap, self.max_latency = int(gap_seconds * samplerate), int(max_latency_seconds * samplerate)
        self.chirp = sync_chirp(samplerate, chirp_seconds)
        self.min_sync, self.clip_level = float(min_sync), float(clip_level)
        self.takes, self.max_esr = int(takes), float(max_esr)
        self.last_delay: int | None = None
        try:
            info = sd.query_devices(device)
        except (ValueError, sd.PortAudioError) as exc:
            raise DeviceConnectionError(f"{self._label()}: no sound device {device!r} ({exc}); devices here:\n"
                                        f"{sd.query_devices()}") from exc
        if output_channel >= info["max_output_channels"] or input_channel >= info["max_input_channels"]:
            raise ConfigurationError(f"{self._label()}: {info['name']!r} has {info['max_output_channels']} output "
                                     f"and {info['max_input_channels']} input channels; asked for output "
                                     f"{output_channel} and input {input_channel} (0-based)")
        self.interface = info["name"]

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        drive = x.detach().cpu().double().numpy()
        stride = self.n + max(self.gap, self.m - self.n + self.gap)
        start = self.chirp.size + self.gap
        buffer = np.zeros(start + drive.shape[0] * stride + self.m + self.max_latency)
        buffer[:self.chirp.size] = self.chirp
        for i, row in enumerate(drive):
            buffer[start + i * stride:start + i * stride + self.n] = row
        takes = [self._take(buffer, start, stride, drive.shape[0]) for _ in range(self.takes)]
        for k, take in enumerate(takes[1:], start=2):
            esr = error_to_signal(take, takes[0])
            if esr > self.max_esr:
                raise RecordingError(f"{self._label()} on {self.interface!r}: take {k} differs from take 1 by an "
                                     f"error-to-signal ratio of {esr:.3g} > max_esr={self.max_esr:g}: the system or "
                                     "the interface is not repeatable (noise, drift, dropouts)")
        return torch.as_tensor(np.mean(takes, axis=0), dtype=x.dtype, device=x.device)

    def _take(self, buffer: np.ndarray, start: int, stride: int, batch: int) -> np.ndarray:
        recording = self._playrec(buffer)
        peak = float(np.abs(recording).max())
        if peak >= self.clip_level:
            raise RecordingError(f"{self._label()} on {self.interface!r}: the recording clipped (peak {peak:.4f} >= "
                                 f"clip_level {self.clip_level:g} full scale); lower the drive or the input gain")
        delay, sync = find_delay(recording, self.chirp, self.max_latency)
        if sync < self.min_sync:
            raise RecordingError(f"{self._label()} on {self.interface!r}: sync chirp not found on input "
                                 f"{self.input_channel} (correlation {sync:.2f} < {self.min_sync:g}); is output "
                                 f"{self.output_channel} wired to it?")
        self.last_delay = delay
        rows = [recording[delay + start + i * stride:delay + start + i * stride + self.m] for i in range(batch)]
        return np.stack(rows)

    def _playrec(self, buffer: np.ndarray) -> np.ndarray:
        sd = self._sd
        try:
            recording: Any = sd.playrec(buffer.astype(np.float32)[:, None], samplerate=self.samplerate,
                                        device=self.device, blocksize=self.blocksize, blocking=True,
                                        output_mapping=[self.output_channel + 1],
                                        input_mapping=[self.input_channel + 1], dtype="float32")
        except sd.PortAudioError as exc:
            raise DeviceConnectionError(f"{self._label()} on {self.interface!r}: playback/recording failed: "
                                        f"{exc}") from exc
        return np.asarray(recording, dtype=np.float64)[:, 0]

    def sample_inputs(self, n: int, generator: torch.Generator | None = None,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Drives at half full scale: uniform in [-0.5, 0.5]."""
        g = generator if generator is not None else self.generator
        return torch.rand((n, self.n), generator=g, dtype=dtype) - 0.5
