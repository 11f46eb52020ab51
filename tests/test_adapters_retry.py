"""Retrying: timeouts, NaN and dropped sessions are retried; a device that stays down stops training cleanly."""

import pytest
import torch

from physnn import Device
from physnn.devices import ReferenceDevice
from physnn.devices.adapters import (
    CallableDevice,
    DeviceTimeoutError,
    DeviceUnavailableError,
    InstrumentError,
    Retrying,
)
from physnn.errors import DeviceBusyError, DeviceConnectionError
from physnn.testing import check_device


class Flaky(Device):
    """``inner`` that fails while ``down``, or for its next ``failures`` calls, in the way ``mode`` says."""

    def __init__(self, inner: Device, mode: str = "disconnect") -> None:
        super().__init__()
        self.inner, self.mode, self.failures, self.down = inner, mode, 0, False
        self.name = "flaky"
        self.in_shape, self.out_shape, self.controls = inner.in_shape, inner.out_shape, inner.controls
        self.differentiable = inner.differentiable

    def _forward(self, x, controls):
        if self.down or self.failures > 0:
            self.failures -= 1
            if self.mode == "timeout":
                raise DeviceTimeoutError("flaky: no reply to 'FETC:DATA?' within 100 ms")
            if self.mode == "nan":
                return torch.full((x.shape[0],) + tuple(self.out_shape), float("nan"), dtype=x.dtype)
            if self.mode == "refused":
                raise InstrumentError('flaky reported ["-222,Data out of range"]')
            raise DeviceConnectionError("flaky: connection reset by peer")
        return self.inner(x, controls)


@pytest.mark.parametrize("mode", ["disconnect", "timeout", "nan"])
def test_transient_failures_are_retried(mode):
    flaky = Flaky(ReferenceDevice(3), mode)
    device = Retrying(flaky, retries=2, backoff=0.0)
    flaky.failures = 2
    x = torch.rand(4, 3)
    torch.testing.assert_close(device(x), ReferenceDevice(3)(x))
    assert device.failures == 2 and device.calls == 1 and flaky.calls == 3


def test_a_device_that_stays_down_is_reported_with_its_last_failure():
    flaky = Flaky(ReferenceDevice(3), "timeout")
    flaky.down = True
    with pytest.raises(DeviceUnavailableError) as info:
        Retrying(flaky, retries=2, backoff=0.001)(torch.rand(1, 3))
    assert str(info.value).startswith("Flaky('flaky') failed 3 time(s) in a row (retries=2, backoff=0.001 s); "
                                      "last failure: DeviceTimeoutError: flaky: no reply to 'FETC:DATA?'")
    assert isinstance(info.value, DeviceConnectionError)


def test_errors_the_instrument_reports_are_not_retried():
    flaky = Flaky(ReferenceDevice(3), "refused")
    flaky.failures = 1
    with pytest.raises(InstrumentError, match="-222"):
        Retrying(flaky, retries=3, backoff=0.0)(torch.rand(1, 3))
    assert flaky.calls == 1


def test_retrying_keeps_the_contract_and_differentiability():
    report = check_device(Retrying(ReferenceDevice(3)))
    assert "gradcheck" in report.passed and not report.failed


def test_training_stops_at_a_device_that_stays_down_and_resumes_where_it_stopped(tmp_path):
    from physnn.training import Callback, PhysicsAware, fit, physical_network

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(2).repeat(16)
    x = torch.stack([labels.float(), 1 - labels.float(), torch.zeros(32), torch.zeros(32)], 1)
    x = x + 0.3 * torch.randn(32, 4, generator=g)

    def method(device):
        model = physical_network([device], [2], twins=[ReferenceDevice(4)], seed=0)
        return PhysicsAware(model, lr=0.05)

    class Unplug(Callback):  # the instrument goes away after the first batch of epoch 2
        def on_batch_end(self, epoch, batch, method):
            if (epoch, batch) == (1, 0):
                flaky.down = True

    options = {"epochs": 3, "batch_size": 8, "progress": False, "plot": False}
    reference = fit(method(ReferenceDevice(4)), (x, labels), **options)
    flaky = Flaky(ReferenceDevice(4))
    run = method(Retrying(flaky, retries=2, backoff=0.0))
    with pytest.raises(DeviceUnavailableError, match="Flaky\\('flaky'\\) failed 3 time"):
        fit(run, (x, labels), out_dir=tmp_path, callbacks=[Unplug()], **options)
    assert (tmp_path / "checkpoint.pt").exists()
    flaky.down = False  # back on the bench: the run continues from epoch 2's start
    resumed = fit(run, (x, labels), out_dir=tmp_path, resume=True, **options)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for mine, theirs in zip(resumed.history, reference.history):
        assert mine["loss"] == pytest.approx(theirs["loss"], abs=1e-6)
        assert mine["train_accuracy"] == theirs["train_accuracy"]


def test_a_busy_instrument_is_not_retried():
    calls = []

    def held(x):
        calls.append(1)
        raise DeviceBusyError("instrument at TCPIP::scope is held by lab2:4242:1")

    device = Retrying(CallableDevice(held, (2,), (2,)), retries=3, backoff=0.0)
    with pytest.raises(DeviceBusyError, match="held by lab2"):
        device(torch.zeros(1, 2))
    assert len(calls) == 1
