"""What physnn knows about each built-in device without importing or building it.

``physnn devices`` lists these entries (building every device took 19 s: the
measured cavity fits its data, the quantum circuit imports PennyLane), and
``physnn check NAME`` builds the device with its small ``check_settings``:
``gradcheck`` costs two device calls per input element, so a 44,100-sample
audio device is checked at 32 samples, a 100 x 160 wave medium at 10 x 12.
Shapes and controls are those of the default settings, written as
:func:`describe_control` prints them; tests/test_cli.py builds every device and
compares it with its entry, so the two cannot drift apart.

Devices registered at run time or through entry points have no entry; a
device class (or factory function) may declare its own ``check_settings``
dict, which ``physnn check`` uses the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..device import Control

#: a small but complete audio device: gradcheck in float64 over 2 x 32 samples
_AUDIO_CHECK = {"num_samples": 32}


@dataclass(frozen=True)
class DeviceInfo:
    """A built-in device at its default settings: where it lives, shapes, controls, what it needs.

    ``target`` is ``"module:attribute"``; ``requires`` lists importable modules
    beyond the base install, with the pip ``extra`` that provides them;
    ``needs_data`` is a file inside the data directory.
    """

    target: str
    cls: str
    differentiable: bool
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    controls: tuple[str, ...]
    check_settings: Mapping[str, Any] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    extra: str = ""
    needs_data: str = ""


def _biquad(cls: str, frequency: float, gain: bool = False) -> DeviceInfo:
    controls = (f"frequency in [10, 19845] Hz (default {frequency})", "q in [0.1, 10] (default 0.7071067811865475)")
    return DeviceInfo(f"physnn.devices.audio:{cls}", cls, True, (44100,), (44100,),
                      controls + (("gain in [-24, 24] dB (default 6.0)",) if gain else ()), _AUDIO_CHECK)


CATALOG: dict[str, DeviceInfo] = {
    "reference": DeviceInfo(
        "physnn.devices.reference:ReferenceDevice", "ReferenceDevice", True, (4,), (4,),
        ("gain [4] in [0, 5] V/V (default 1.0)", "bias [4] in [-1, 1] V (default 0.0)"), {"n": 3}),
    "coupled-pendula": DeviceInfo(
        "physnn.devices.oscillators:CoupledPendula", "CoupledPendula", True, (4,), (4,),
        ("coupling [3] in [0, 40] 1/s^2 (default 4.0)", "offset [4] in [-0.5, 0.5] rad (default 0.0)"),
        {"n": 3, "steps": 30}),
    "phyll-cavity": DeviceInfo(
        "physnn.devices.measured:phyll_cavity", "MeasuredDevice", False, (20,), (20,), (), {"features": 200},
        requires=("scipy",), extra="data", needs_data="phyll/acoustic_x_data.csv"),
    "wave-2d": DeviceInfo(
        "physnn.devices.wave:WaveMedium2D", "WaveMedium2D", True, (1000,), (3,),
        ("rho [100, 160] in [0, 1] (default 0.5)",),
        {"shape": (10, 12), "n_steps": 12, "absorber_width": 2, "absorber_strength": 1.0,
         "projection_beta": 2.0, "c_nl": -0.2}),
    "quantum-circuit": DeviceInfo(
        "physnn.devices.quantum:QuantumCircuit", "QuantumCircuit", True, (4,), (4,),
        ("weights [2, 4, 3] in [-inf, inf] rad (default: 24 values in [0.0547, 5.63])",),
        {"n_qubits": 2, "layers": 1}, requires=("pennylane",), extra="quantum"),
    "diode-clipper": DeviceInfo(
        "physnn.devices.audio:DiodeClipper", "DiodeClipper", True, (44100,), (44100,),
        ("drive in [0, 50] V/V (default 1.0)", "resistance in [100, 100000] ohm (default 2200.0)",
         "saturation_current in [0.01, 1000] nA (default 2.52)", "ideality in [1, 3] (default 1.752)",
         "asymmetry in [0, 2] (default 0.0)"), _AUDIO_CHECK),
    "overdrive": DeviceInfo(
        "physnn.devices.audio:OpAmpOverdrive", "OpAmpOverdrive", True, (44100,), (44100,),
        ("drive in [0, 1] (default 0.5)", "level in [0, 4] V/V (default 1.0)"), _AUDIO_CHECK),
    "compressor": DeviceInfo(
        "physnn.devices.audio:Compressor", "Compressor", True, (44100,), (44100,),
        ("threshold in [-30, 0] dB (default -12.0)", "ratio in [1, 5] (default 4.0)",
         "knee in [0, 12] dB (default 6.0)", "attack in [1, 40] ms (default 5.0)",
         "release in [1, 40] ms (default 20.0)", "makeup in [-12, 24] dB (default 0.0)"), _AUDIO_CHECK),
    "lowpass": _biquad("LowpassFilter", 5000.0),
    "highpass": _biquad("HighpassFilter", 5000.0),
    "peaking-eq": _biquad("PeakingEQ", 1000.0, gain=True),
    "plate": DeviceInfo(
        "physnn.devices.audio:DrivenPlate", "DrivenPlate", True, (44100,), (44100,),
        ("drive in [0, 10] V/V (default 1.0)", "frequency_scale in [0.5, 1.5] (default 1.0)",
         "cubic in [0, 1] 1/V^2 (default 0.0)"), _AUDIO_CHECK),
    "pedalboard": DeviceInfo(
        "physnn.devices.audio:pedalboard_effect", "PedalboardEffect", False, (44100,), (44100,),
        ("drive_db in [-inf, inf] dB (default 25.0)",), {"effect": "Distortion", "num_samples": 64},
        requires=("pedalboard",), extra="audio"),
    "scattering-medium": DeviceInfo(
        "physnn.devices.optics:ScatteringMedium", "ScatteringMedium", True, (256,), (64,),
        ("exposure in [0.01, 100] ms (default 1.0)", "gain in [0, 24] dB (default 0.0)"),
        {"n_slm": 6, "n_camera": 4, "noise": "none", "bits": None}),
    "mzi-mesh": DeviceInfo(
        "physnn.devices.optics:MZIMesh", "MZIMesh", True, (4,), (4,),
        ("theta [6] in [0, 6.28319] rad (default: 6 values in [0.923, 1.93])",
         "phi [6] in [0, 6.28319] rad (default: 6 values in [0.151, 4.91])",
         "output_phase [4] in [0, 6.28319] rad (default: 4 values in [0.704, 6.14])"), {"n_modes": 3}),
    "shg-crystal": DeviceInfo(
        "physnn.devices.optics:SHGCrystal", "SHGCrystal", True, (16,), (16,),
        ("phase [16] in [0, 6.28319] rad (default: 16 values in [0.0172, 5.88])",),
        {"in_features": 2, "n_controls": 1, "out_features": 2, "steps": 2, "n_freq": 36}),
    "diffractive-network": DeviceInfo(
        "physnn.devices.optics:DiffractiveNetwork", "DiffractiveNetwork", True, (784,), (10,),
        ("phase [5, 200, 200] in [0, 6.28319] rad (default 3.141592653589793)",),
        {"n": 8, "layers": 1, "input_size": 2, "detector_size": 1, "spacing": 2e-3}),
}


def describe_control(control: Control) -> str:
    """:meth:`Control.describe`, with a many-valued default summarized (count and range), never printed whole."""
    default = torch.as_tensor(control.default, dtype=torch.float64)
    if default.numel() == 1:
        return control.describe()
    head = control.describe().rsplit(" (default", 1)[0]
    return f"{head} (default: {default.numel()} values in [{float(default.min()):.3g}, {float(default.max()):.3g}])"
