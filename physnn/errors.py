"""The errors physnn raises.

Every error names the device (or file, or instrument), the argument, what was
expected and what came, so that a user can fix the call without reading code.
Each class also derives from the matching builtin (``ValueError``,
``FileNotFoundError``...) so generic handlers keep working.
"""

from __future__ import annotations


class PhysnnError(Exception):
    """Base class of every error physnn raises on purpose."""


class InputError(PhysnnError, ValueError):
    """A drive signal ``x`` has the wrong type, dtype, shape, range, or holds NaN/Inf."""


class ControlError(PhysnnError, ValueError):
    """A control setting is unknown, of the wrong shape, non-finite or outside its physical bounds."""


class ConfigurationError(PhysnnError, ValueError):
    """A device or layer was built with settings that cannot work (e.g. an unstable time step)."""


class StabilityError(ConfigurationError):
    """A time step violates the stability (CFL) limit of a simulation."""


class GradientRouteError(PhysnnError, RuntimeError):
    """A gradient was asked of a route that cannot give one (e.g. autograd through a black box)."""


class DeviceOutputError(PhysnnError, RuntimeError):
    """A device returned an output of the wrong shape, or one holding NaN/Inf."""


class DeviceConnectionError(PhysnnError, ConnectionError):
    """A device's resource (instrument, sound card, worker) could not be reached or was lost."""


class DataNotFoundError(PhysnnError, FileNotFoundError):
    """A data file is missing: the message says which, where it was looked for, and where to get it."""


class ChecksumError(PhysnnError, ValueError):
    """A data file exists but its SHA-256 differs from the expected one."""


class DataFormatError(PhysnnError, ValueError):
    """A data file exists and its checksum (if known) passed, but its content cannot be parsed."""


class DeviceTimeoutError(DeviceConnectionError, TimeoutError):
    """An instrument or worker did not answer within its timeout."""


class DeviceBusyError(DeviceConnectionError):
    """An instrument is held by another controlling session: the message names the resource and the holder."""


class DeviceUnavailableError(DeviceConnectionError):
    """A device kept failing (timeouts, dropped sessions, NaN) after every retry, or was marked unusable."""


class InstrumentError(PhysnnError, RuntimeError):
    """The instrument reported an error (an SCPI error-queue entry); retrying the same command will not help."""


class InstrumentReplyError(InstrumentError):
    """The instrument's reply could not be understood (garbage, wrong length, wrong format).

    The session may be out of step, so adapters reconnect before retrying.
    """


class ControlReadbackError(InstrumentError):
    """A control read back from the instrument differs from the value sent: names the control, sent and read."""


class RecordingError(DeviceOutputError):
    """A measurement was taken but must be rejected: clipped, not repeatable, or its sync mark was not found."""


class RecordError(PhysnnError, ValueError):
    """A measurement record cannot be written or read (wrong schema, corrupt file): names the file."""


class ReplayMissError(RecordError, LookupError):
    """A replayed device was asked for an input (or control setting) its record never saw."""


class CheckpointError(PhysnnError, ValueError):
    """A training checkpoint is truncated, empty, altered or of another run: names the file and what to do."""


class ClippingError(PhysnnError, ValueError):
    """Audio to be written exceeds full scale: a PCM file would clip it. Names the file and the peak in dBFS."""


class DeviceCheckError(PhysnnError, AssertionError):
    """A device broke the :class:`physnn.Device` contract in ``physnn.testing.check_device``: lists each failure."""


class MissingDependencyError(PhysnnError, ImportError):
    """An optional package a feature needs is not installed: names the package and the pip command."""


class NotRebuildableError(ConfigurationError):
    """A device cannot be rebuilt from its configuration (a wrapped function, a live instrument session):
    names the device and the reason; deploy a saved model onto an instance with ``physnn.load(devices=...)``."""


class ModelFileError(CheckpointError):
    """A saved model file (``physnn.save``) is truncated, altered, of a newer format, or does not fit the
    model it is loaded into: names the file and what differs."""
