"""Retrying: a device wrapper that survives timeouts, NaN measurements and dropped sessions."""

from __future__ import annotations

import logging
import time

import torch

from ...device import Device
from ...errors import (
    ConfigurationError,
    DeviceBusyError,
    DeviceConnectionError,
    DeviceOutputError,
    DeviceUnavailableError,
)
from ..wrapper import Wrapper

log = logging.getLogger("physnn.devices.adapters")

#: Failures worth another try: the device did not answer, lost its session, or measured NaN/Inf or garbage.
TRANSIENT = (DeviceConnectionError, DeviceOutputError, TimeoutError, ConnectionError)


class Retrying(Wrapper):
    """``device`` with retries: a failed call is repeated after ``backoff * 2**k`` seconds.

    Retried: :data:`TRANSIENT` failures (timeouts, dropped connections, NaN/Inf
    or wrongly shaped outputs, rejected recordings). Never retried: bad inputs
    or controls (validated here, before the device is driven), errors the
    instrument itself reports, and an instrument held by another session
    (:class:`~physnn.errors.DeviceBusyError`: give ``lock_wait_s`` to wait
    for it). Adapters reopen a dropped session on their next call, so a retry
    is also a reconnect. When every attempt failed, raises
    :class:`~physnn.errors.DeviceUnavailableError` naming the
    device, the attempts and the last failure; a training loop stops there,
    and resumes from its last checkpoint once the device is back.

    Args:
        device: the device to protect.
        retries: extra attempts after the first (0 disables retrying).
        backoff: wait before the first retry, seconds; doubles each retry.
        max_backoff: ceiling of the wait, seconds.

    Shapes, controls, bounds and differentiability are the wrapped device's.
    ``failures`` counts the failed attempts so far.
    """

    def __init__(self, device: Device, *, retries: int = 3, backoff: float = 0.1, max_backoff: float = 10.0) -> None:
        super().__init__(device, f"retrying({device.name})")
        if retries < 0 or backoff < 0 or max_backoff < 0:
            raise ConfigurationError(f"Retrying needs retries >= 0, backoff >= 0 and max_backoff >= 0, got "
                                     f"{retries}, {backoff}, {max_backoff}")
        self.retries, self.backoff, self.max_backoff = int(retries), float(backoff), float(max_backoff)
        self.failures = 0

    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        attempt = 0
        while True:
            try:
                return self.inner(x, controls)
            except DeviceBusyError:
                raise
            except TRANSIENT as exc:
                self.failures += 1
                if attempt == self.retries:
                    raise DeviceUnavailableError(
                        f"{self.inner._label()} failed {self.retries + 1} time(s) in a row (retries={self.retries}, "
                        f"backoff={self.backoff:g} s); last failure: {type(exc).__name__}: {exc}") from exc
                wait = min(self.backoff * 2**attempt, self.max_backoff)
                log.warning("%s: attempt %d of %d failed (%s: %s); retrying in %.3g s", self.inner._label(),
                            attempt + 1, self.retries + 1, type(exc).__name__, exc, wait)
                time.sleep(wait)
                attempt += 1
