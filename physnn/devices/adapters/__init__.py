"""Real hardware behind the :class:`physnn.Device` interface.

* :class:`VisaDevice`: an AWG + digitizer over PyVISA, its SCPI dialect in a
  profile file (``profiles/*.toml``); :class:`InstrumentEmulator` (``physnn
  serve-instrument``) serves any simulated device in that dialect on loopback.
* :class:`SoundCardDevice`: a sound card's output and input with a physical
  system between them (python-sounddevice).
* :class:`CallableDevice`: any Python function as a black box (or
  differentiable torch function).
* :class:`Retrying`: retries with backoff around any device.

Instrument libraries (pyvisa, sounddevice) load only when a device is built;
install them with ``pip install 'physnn[lab]'``.
"""

from ...errors import DeviceTimeoutError, DeviceUnavailableError, InstrumentError, InstrumentReplyError, RecordingError
from ._profile import load_profile
from .callable import CallableDevice
from .emulator import InstrumentEmulator
from .retry import Retrying
from .soundcard import SoundCardDevice
from .visa import VisaDevice

__all__ = ["CallableDevice", "DeviceTimeoutError", "DeviceUnavailableError", "InstrumentEmulator", "InstrumentError",
           "InstrumentReplyError", "RecordingError", "Retrying", "SoundCardDevice", "VisaDevice", "load_profile"]
