"""Analog audio effects as physical devices: exact, fast, differentiable circuit models with knobs.

Every model maps x (B, T) volts at ``sample_rate`` to y (B, T) volts, takes
its knobs as :class:`~physnn.Control` settings (scalar or one per sample), and
differentiates through compiled recursions with hand-written adjoints
(numba on the host, for tensors of any torch device):

* :class:`DiodeClipper` - RC diode clipper (Yeh, Abel & Smith), exact per-sample solve.
* :class:`OpAmpOverdrive` - op-amp stage with diodes in the feedback loop (soft clipping).
* :class:`Compressor` - feed-forward compressor with soft knee and attack/release.
* :class:`BiquadFilter` (:class:`LowpassFilter`, :class:`HighpassFilter`, :class:`PeakingEQ`).
* :class:`DrivenPlate` - damped plate modes with optional cubic stiffness.
* :class:`EffectChain` - stages in series.
* :class:`PedalboardEffect`, :func:`load_plugin` - pedalboard effects and VST3/AU plugins as black boxes.

Audio files: :mod:`physnn.devices.audio.wavio`; feature encoders and readouts
for classifiers: :mod:`physnn.devices.audio.encoding`.
"""

from ._base import AudioDevice
from .biquad import BiquadFilter, HighpassFilter, LowpassFilter, PeakingEQ
from .chain import EffectChain
from .clipper import DiodeClipper
from .compressor import Compressor
from .overdrive import OpAmpOverdrive
from .pedalboard_device import PedalboardEffect, load_plugin, pedalboard_effect
from .plate import DrivenPlate

__all__ = ["AudioDevice", "BiquadFilter", "Compressor", "DiodeClipper", "DrivenPlate", "EffectChain",
           "HighpassFilter", "LowpassFilter", "OpAmpOverdrive", "PeakingEQ", "PedalboardEffect",
           "load_plugin", "pedalboard_effect"]
