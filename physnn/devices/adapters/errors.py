"""Errors of the hardware adapters, on top of :mod:`physnn.errors`.

Each message names the instrument (resource and identity), the command and the
reply, so that a failure on the bench can be diagnosed without a debugger.
"""

from __future__ import annotations

from ...errors import DeviceConnectionError, DeviceOutputError, PhysnnError


class DeviceTimeoutError(DeviceConnectionError, TimeoutError):
    """An instrument or worker did not answer within its timeout."""


class DeviceUnavailableError(DeviceConnectionError):
    """A device kept failing (timeouts, dropped sessions, NaN) after every retry."""


class InstrumentError(PhysnnError, RuntimeError):
    """The instrument reported an error (an SCPI error-queue entry); retrying the same command will not help."""


class InstrumentReplyError(InstrumentError):
    """The instrument's reply could not be understood (garbage, wrong length, wrong format).

    The session may be out of step, so adapters reconnect before retrying.
    """


class RecordingError(DeviceOutputError):
    """A measurement was taken but must be rejected: clipped, not repeatable, or its sync mark was not found."""
