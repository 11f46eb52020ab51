"""Encoders (features -> drive waveforms) and readouts (waveforms -> features) around audio devices."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from physnn import PhysicalLayer
from physnn.devices.audio import DiodeClipper
from physnn.devices.audio.encoding import BandEnergyReadout, EnvelopeReadout, TimeBinEncoder, ToneEncoder
from physnn.errors import ConfigurationError

FS, T = 8000.0, 800


def test_tone_encoder_puts_each_feature_on_its_tone():
    enc = ToneEncoder(4, num_samples=T, sample_rate=FS, frequencies=[200.0, 500.0, 1000.0, 1500.0], amplitude=1.0)
    drive = enc(torch.eye(4))
    spectrum = torch.fft.rfft(drive, dim=-1).abs()
    freqs = np.fft.rfftfreq(T, 1 / FS)
    assert [freqs[int(k)] for k in spectrum.argmax(-1)] == [200.0, 500.0, 1000.0, 1500.0]
    torch.testing.assert_close(enc(2 * torch.eye(4)), 2 * drive)  # amplitude modulation is linear


def test_time_bins_are_disjoint():
    drive = TimeBinEncoder(4, num_samples=T, sample_rate=FS, carrier=1000.0)(torch.eye(4))
    for f in range(4):
        active = torch.nonzero(drive[f].abs() > 0).flatten()
        assert active.min() >= f * T // 4 and active.max() < (f + 1) * T // 4


def test_band_energy_of_a_tone():
    readout = BandEnergyReadout(T, sample_rate=FS, edges=[100, 400, 1000, 4000], log=False)
    t = torch.arange(T, dtype=torch.float64) / FS
    energy = readout(0.6 * torch.sin(2 * math.pi * 500 * t)[None])[0]
    torch.testing.assert_close(energy, torch.tensor([0.0, 0.09, 0.0], dtype=torch.float64), atol=1e-9, rtol=1e-6)


def test_empty_band_is_refused():
    with pytest.raises(ConfigurationError, match="hold no FFT bin"):
        BandEnergyReadout(T, sample_rate=FS, edges=[102, 108, 4000])


def test_envelope_readout():
    y = torch.cat([torch.full((1, 400), 0.5), torch.full((1, 400), -2.0)], dim=1)
    torch.testing.assert_close(EnvelopeReadout(2)(y), torch.tensor([[0.5, 2.0]]))


def test_audio_device_as_a_classifier_layer():
    device = DiodeClipper(sample_rate=FS, num_samples=T)
    layer = PhysicalLayer(device, encoder=nn.Sequential(nn.Linear(3, 5), ToneEncoder(5, num_samples=T, sample_rate=FS)),
                          readout=BandEnergyReadout(T, sample_rate=FS, num_bands=6), trainable=["drive", "resistance"])
    scores = layer(torch.randn(4, 3))
    assert scores.shape == (4, 6)
    scores.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters() if p.requires_grad)


@pytest.mark.slow
def test_vowels_audio_example_runs(tmp_path):
    script = Path(__file__).resolve().parents[1] / "examples" / "vowels_audio.py"
    subprocess.run([sys.executable, str(script), "--synthetic", "--epochs", "1", "--out", str(tmp_path)], check=True)
    results = json.loads((tmp_path / "results.json").read_text())
    assert {"backprop", "physics_aware", "digital_only"} <= set(results)
