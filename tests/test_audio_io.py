"""WAV in and out, the ``physnn process`` command, and pedalboard effects as black boxes."""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from physnn.devices import available, register
from physnn.devices.audio import (
    DiodeClipper,
    EffectChain,
    LowpassFilter,
    PedalboardEffect,
    load_plugin,
    pedalboard_device,
    wavio,
)
from physnn.errors import ClippingError, ConfigurationError, ControlError, DataNotFoundError, InputError
from physnn.testing import check_device


@pytest.fixture(autouse=True)
def audio_names():
    """The registry names the audio devices are published under (added here if the registry lacks them)."""
    for name, target in {"diode-clipper": "physnn.devices.audio:DiodeClipper",
                         "lowpass": "physnn.devices.audio:LowpassFilter",
                         "pedalboard": "physnn.devices.audio:pedalboard_effect"}.items():
        if name not in available():
            register(name, target)


def tone(path, rate=44100, channels=1, seconds=0.05, amplitude=0.5, subtype="PCM_24"):
    t = np.arange(int(rate * seconds)) / rate
    data = np.stack([amplitude * np.sin(2 * np.pi * (220 * (c + 1)) * t) for c in range(channels)], axis=1)
    sf.write(path, data, rate, subtype=subtype)
    return data


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="physnn")
    wavio.add_process_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.handler(args)


@pytest.mark.parametrize("channels", [1, 2])
def test_process_file_equals_the_device(tmp_path, channels):
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    data = tone(src, channels=channels, rate=48000)
    summary = wavio.process_file(str(src), str(dst), "diode-clipper", controls={"drive": 4.0},
                                 options={"mode": "fast"})
    out, rate = sf.read(dst, always_2d=True)
    assert rate == 48000 and out.shape == data.shape and summary["channels"] == channels
    device = DiodeClipper(sample_rate=48000, num_samples=data.shape[0], mode="fast")
    expected = device(torch.as_tensor(sf.read(src, always_2d=True)[0].T), {"drive": 4.0}).numpy().T
    np.testing.assert_allclose(out, expected, atol=2 ** -22)  # PCM_24 quantization
    assert np.abs(out).max() < 0.8


def test_cli_process(tmp_path, capsys):
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    tone(src, channels=2)
    assert cli("process", str(src), str(dst), "--device", "diode-clipper", "--set", "drive=0.8") == 0
    assert "2 channel(s)" in capsys.readouterr().out
    assert sf.info(str(dst)).channels == 2


def test_cli_reports_errors_without_writing(tmp_path, capsys):
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    tone(src, rate=4000)
    assert cli("process", str(src), str(dst), "--device", "diode-clipper") == 2
    assert "supports sample rates" in capsys.readouterr().err
    assert cli("process", str(src), str(dst), "--device", "diode-clipper", "--set", "drive=99") == 2
    assert cli("process", str(src), str(dst), "--device", "reference") == 2
    assert "cannot be built as an audio device" in capsys.readouterr().err
    assert not dst.exists()


def test_clipping_is_refused_and_no_file_is_left(tmp_path):
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    tone(src, amplitude=0.9)
    with pytest.raises(ClippingError, match="dBFS exceeds full scale"):
        wavio.process_file(str(src), str(dst), "lowpass", controls={"frequency": 300.0, "q": 8.0}, gain_db=12.0)
    assert list(tmp_path.iterdir()) == [src]
    summary = wavio.process_file(str(src), str(dst), "lowpass", controls={"frequency": 300.0, "q": 8.0},
                                 normalize=True)
    assert summary["output_peak_dbfs"] == pytest.approx(-1.0, abs=1e-3)


def test_nan_audio_is_refused(tmp_path):
    src = tmp_path / "nan.wav"
    data = tone(src, subtype="FLOAT")
    data[10] = np.nan
    sf.write(src, data, 44100, subtype="FLOAT")
    with pytest.raises(InputError, match="NaN"):
        wavio.read_wav(str(src))
    with pytest.raises(InputError, match="NaN"):
        wavio.write_wav(str(tmp_path / "out.wav"), data.T, 44100)


def test_sample_rate_mismatch_and_missing_file(tmp_path):
    src = tmp_path / "in.wav"
    tone(src, rate=48000)
    with pytest.raises(ConfigurationError, match="sample-rate mismatch"):
        wavio.process_file(str(src), str(tmp_path / "o.wav"), DiodeClipper(sample_rate=44100.0))
    with pytest.raises(DataNotFoundError):
        wavio.read_wav(str(tmp_path / "missing.wav"))


def test_device_instance_is_resized_to_the_file(tmp_path):
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    tone(src)
    chain = EffectChain([DiodeClipper(num_samples=10), LowpassFilter(num_samples=10)])
    wavio.process_file(str(src), str(dst), chain, controls={"lowpass:frequency": 2000.0})
    assert sf.info(str(dst)).frames == sf.info(str(src)).frames and chain.num_samples == 10


# ------------------------------------------------------------------ pedalboard
def test_pedalboard_effect_is_a_black_box():
    pedalboard = pytest.importorskip("pedalboard")
    device = PedalboardEffect(pedalboard.Distortion(drive_db=20.0), num_samples=64)
    assert [c.name for c in device.controls] == ["drive_db"] and device.control("drive_db").unit == "dB"
    check_device(device)
    board = pedalboard.Pedalboard([pedalboard.Gain(gain_db=6.0), pedalboard.LowpassFilter()])
    chain = PedalboardEffect(board, knobs={"0:gain_db": (-12.0, 12.0, "dB")}, num_samples=64)
    x = chain.sample_inputs(2, dtype=torch.float64)
    np.testing.assert_allclose(chain(x, {"0:gain_db": 0.0}).numpy() * 10 ** (6 / 20), chain(x).numpy(), rtol=1e-4, atol=1e-6)


def test_plugin_refusals_are_control_errors():
    pedalboard = pytest.importorskip("pedalboard")
    device = PedalboardEffect(pedalboard.Compressor(), num_samples=16)
    with pytest.raises(ControlError, match="refused by the plugin"):
        device(torch.zeros(1, 16), {"ratio": 0.5})


def test_cli_runs_a_pedalboard_effect(tmp_path):
    pytest.importorskip("pedalboard")
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    tone(src, amplitude=0.1)
    assert cli("process", str(src), str(dst), "--device", "pedalboard", "--option", "effect=Distortion",
               "--set", "drive_db=30", "--normalize") == 0
    assert np.abs(sf.read(dst)[0]).max() == pytest.approx(10 ** (-1 / 20), abs=1e-4)


def test_load_plugin_errors(tmp_path):
    pytest.importorskip("pedalboard")
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_plugin(str(tmp_path / "missing.vst3"))
    bogus = tmp_path / "bogus.vst3"
    bogus.write_text("not a plugin")
    with pytest.raises(ConfigurationError, match="could not load plugin"):
        load_plugin(str(bogus))


def test_missing_pedalboard_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pedalboard", None)
    with pytest.raises(ImportError, match=r"physnn\[audio\]"):
        pedalboard_device.pedalboard_effect("Distortion")
