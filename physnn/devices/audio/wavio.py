"""WAV (and any libsndfile format) in and out of audio devices, and the ``physnn process`` command.

Sample values map to volts by ``full_scale`` (volts at digital full scale, 1 V
by default). Nothing is written silently damaged: NaN/Inf, samples beyond full
scale (which a PCM file would clip) and sample-rate mismatches are errors, and
files are written to a temporary name and moved into place only when complete.

    physnn process in.wav out.wav --device diode-clipper --set drive=0.8
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import soundfile as sf
import torch

from ..._atomic import default_file_mode
from ...cli import fail, parse_settings
from ...device import Device
from ...errors import ClippingError, ConfigurationError, DataFormatError, DataNotFoundError, InputError, PhysnnError
from .._registry import create, factory_of
from .preset import load_preset

#: Peak that ``normalize`` scales the output to, dB re full scale.
NORMALIZE_PEAK_DB = -1.0


def read_wav(path: str, *, full_scale: float = 1.0) -> tuple[np.ndarray, int, str]:
    """Read an audio file: ``(audio (channels, frames) float64 volts, sample_rate Hz, subtype)``."""
    if not os.path.isfile(path):
        raise DataNotFoundError(f"audio file {path!r} " + ("is a folder" if os.path.isdir(path) else "does not exist"))
    try:
        data, rate = sf.read(path, dtype="float64", always_2d=True)
        info = sf.info(path)
    except sf.SoundFileError as exc:
        raise DataFormatError(f"{path!r} is not a sound file libsndfile can read (WAV, FLAC, AIFF, OGG, MP3...): "
                              f"{exc}") from exc
    audio = np.ascontiguousarray(data.T) * full_scale
    if not np.isfinite(audio).all():
        raise InputError(f"audio file {path!r} holds NaN or Inf samples")
    if audio.shape[1] == 0:
        raise InputError(f"audio file {path!r} holds no samples")
    return audio, int(rate), info.subtype


def write_wav(path: str, audio: np.ndarray, sample_rate: int, *, subtype: str = "PCM_24",
              full_scale: float = 1.0) -> None:
    """Write audio (channels, frames) or (frames,) in volts; refuse NaN/Inf and anything beyond ``full_scale``."""
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    if not np.isfinite(audio).all():
        raise InputError(f"refusing to write {path!r}: the audio holds NaN or Inf")
    peak = float(np.abs(audio).max()) / full_scale
    if peak > 1.0:
        over = 20 * np.log10(peak)
        raise ClippingError(f"refusing to write {path!r}: peak {over:+.2f} dBFS exceeds full scale ({full_scale:g} V) "
                            f"and would clip; lower the level by {over + 0.1:.1f} dB or more (--gain-db), "
                            "use --normalize, or raise --full-scale")
    check_output(path, subtype)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=os.path.splitext(path)[1] or ".wav", dir=folder)
    os.close(fd)
    try:
        sf.write(tmp, (audio / full_scale).T, int(sample_rate), subtype=subtype)
        os.chmod(tmp, default_file_mode())  # mkstemp made it 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def output_format(path: str) -> str:
    """The libsndfile format of an output file named ``path`` (``"WAV"`` without extension); checks the folder.

    Raises :class:`ConfigurationError` for an unknown extension, a missing or
    unwritable folder, or a path that is a folder: before any audio is processed.
    """
    fmt = os.path.splitext(path)[1][1:].upper() or "WAV"
    if fmt not in sf.available_formats():
        known = ", ".join("." + f.lower() for f in sf.available_formats())
        raise ConfigurationError(f"output {path!r}: unknown sound-file extension {os.path.splitext(path)[1]!r}; "
                                 f"expected one of {known}")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ConfigurationError(f"output {path!r} is a folder, expected a file name")
    if not os.path.isdir(folder):
        raise ConfigurationError(f"output {path!r}: folder {folder!r} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise ConfigurationError(f"output {path!r}: folder {folder!r} is not writable")
    return fmt


def check_output(path: str, subtype: str) -> None:
    """Raise :class:`ConfigurationError` unless a ``subtype`` file can be written at ``path`` (see output_format)."""
    fmt = output_format(path)
    if not sf.check_format(fmt, subtype):
        fits = [s for s in sf.available_subtypes(fmt) if sf.check_format(fmt, s)]
        raise ConfigurationError(f"output {path!r}: {fmt} files cannot hold subtype {subtype!r}; "
                                 f"{fmt} holds {', '.join(fits)}")


def process_audio(device: Device, audio: np.ndarray, sample_rate: float,
                  controls: Mapping[str, Any] | None = None) -> np.ndarray:
    """Run an audio device on audio (channels, frames) volts; each channel is one batch row.

    The device must run at ``sample_rate``; it is resized to the file's length
    (state starts at rest). Returns (channels, frames) float64 volts.
    """
    if not hasattr(device, "sample_rate") or not hasattr(device, "resized"):
        raise ConfigurationError(f"{type(device).__name__} is not an audio device (no sample_rate); "
                                 "use a device from physnn.devices.audio")
    if float(device.sample_rate) != float(sample_rate):
        raise ConfigurationError(f"sample-rate mismatch: the audio is at {sample_rate:g} Hz but "
                                 f"{device._label()} runs at {device.sample_rate:g} Hz; build it with "
                                 f"sample_rate={sample_rate:g} or resample the audio")
    audio = np.atleast_2d(audio)
    dtype = torch.float64 if torch.float64 in device.dtypes else device.dtypes[0]
    runner = device.resized(audio.shape[1]) if device.num_samples != audio.shape[1] else device
    with torch.no_grad():
        y = runner(torch.as_tensor(audio, dtype=dtype), dict(controls or {}))
    return y.detach().cpu().double().numpy()


def process_file(input_path: str, output_path: str, device: str | Device | None = None, *,
                 controls: Mapping[str, Any] | None = None, options: Mapping[str, Any] | None = None,
                 gain_db: float = 0.0, normalize: bool = False, full_scale: float = 1.0,
                 subtype: str | None = None, preset: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Process an audio file through a device (a registry name or a built device) into ``output_path``.

    Args:
        device: e.g. ``"diode-clipper"`` (built with the file's sample rate and
            length plus ``options``) or an audio device instance at the file's rate.
        controls: knob settings by name.
        options: constructor keywords when ``device`` is a name.
        gain_db: output gain applied before writing; normalize: scale the peak to -1 dBFS instead.
        full_scale: volts at digital full scale, for input and output.
        subtype: libsndfile subtype of the output (default: the input's, if the
            output's format holds it, else that format's default subtype).
        preset: a JSON preset (:mod:`physnn.devices.audio.preset`) giving the device and its
            knobs instead of ``device``; ``controls`` override its knobs.

    Returns:
        A summary: sample rate, channels, frames, input and output peaks in dBFS.
    """
    if (device is None) == (preset is None):
        raise ConfigurationError("process needs a device (--device NAME) or a preset (--preset FILE), not both")
    if not (math.isfinite(full_scale) and full_scale > 0):
        raise ConfigurationError(f"full_scale must be a positive number of volts, got {full_scale}")
    if not math.isfinite(gain_db):
        raise ConfigurationError(f"gain_db must be a finite number of dB, got {gain_db}")
    fmt = output_format(output_path)
    if subtype is not None:
        check_output(output_path, subtype)
    audio, rate, in_subtype = read_wav(input_path, full_scale=full_scale)
    subtype = subtype or (in_subtype if sf.check_format(fmt, in_subtype) else sf.default_subtype(fmt))
    if preset is not None:
        device, knobs = load_preset(preset, sample_rate=rate, num_samples=audio.shape[1])
        controls = {**knobs, **dict(controls or {})}
    if isinstance(device, str):
        if "sample_rate" not in inspect.signature(factory_of(device)).parameters:
            raise ConfigurationError(f"device {device!r} cannot be built as an audio device: it has no sample_rate "
                                     "setting")
        device = create(device, sample_rate=rate, num_samples=audio.shape[1], **dict(options or {}))
    elif options:
        raise ConfigurationError("options apply only when the device is given by name")
    out = process_audio(device, audio, rate, controls)
    peak = float(np.abs(out).max()) / full_scale
    if normalize:
        if peak == 0.0:
            raise InputError(f"cannot normalize: the output of {device._label()} is silent")
        out = out * (10 ** (NORMALIZE_PEAK_DB / 20) / peak)
    else:
        out = out * 10 ** (gain_db / 20)
    write_wav(output_path, out, rate, subtype=subtype, full_scale=full_scale)

    def dbfs(x: np.ndarray) -> float:
        return float(20 * np.log10(max(float(np.abs(x).max()) / full_scale, 1e-12)))

    return {"sample_rate": rate, "channels": audio.shape[0], "frames": audio.shape[1],
            "input_peak_dbfs": dbfs(audio), "output_peak_dbfs": dbfs(out)}


# ------------------------------------------------------------------------- CLI
def add_process_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``physnn process`` on an argparse subparsers object; its handler is ``args.handler(args)``."""
    p = subparsers.add_parser("process", help="run an audio device on a sound file",
                              description="Process a WAV (or FLAC, AIFF...) file through an audio device. "
                                          "Each channel is processed independently at the file's sample rate.")
    p.add_argument("input", help="input audio file")
    p.add_argument("output", help="output audio file (written only when complete and unclipped)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--device", help="registered device name, e.g. diode-clipper")
    what.add_argument("--preset", metavar="FILE", help="JSON preset (device and knobs; --set overrides its knobs)")
    p.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE", help="control setting (repeatable)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="device constructor option, e.g. mode=fast (repeatable)")
    p.add_argument("--gain-db", type=float, default=0.0, help="output gain in dB")
    p.add_argument("--normalize", action="store_true", help=f"scale the output peak to {NORMALIZE_PEAK_DB:g} dBFS")
    p.add_argument("--full-scale", type=float, default=1.0, help="volts at digital full scale (default 1)")
    p.add_argument("--subtype", default=None, help="output subtype, e.g. PCM_16, PCM_24, FLOAT (default: the "
                   "input's, if the output format holds it, else that format's default)")
    p.set_defaults(handler=run_process)
    return p


def run_process(args: argparse.Namespace) -> int:
    """Handler of ``physnn process``: 0 on success, 2 with a one-line error otherwise."""
    try:
        summary = process_file(args.input, args.output, args.device, preset=args.preset,
                               controls=parse_settings(args.set, "--set"),
                               options=parse_settings(args.option, "--option"), gain_db=args.gain_db,
                               normalize=args.normalize, full_scale=args.full_scale, subtype=args.subtype)
    except PhysnnError as exc:
        return fail("physnn process", exc)
    print(f"{args.input} -> {args.output}: {summary['channels']} channel(s), {summary['frames']} frames at "
          f"{summary['sample_rate']} Hz, peak {summary['input_peak_dbfs']:.1f} -> "
          f"{summary['output_peak_dbfs']:.1f} dBFS")
    return 0
