"""CallableDevice: a plain function behind the device contract."""

import numpy as np
import pytest
import torch

from physnn import Control, PhysicalLayer
from physnn.devices.adapters import CallableDevice
from physnn.errors import ConfigurationError, DeviceOutputError, InputError
from physnn.testing import check_device

GAIN = Control("gain", (), 0.0, 4.0, "V/V", 1.0, "drive gain")


def test_numpy_function_per_batch_is_a_black_box_that_conforms():
    def saturate(x, gain):  # x: (B, 3) float64 array, gain: 0-d array
        return np.tanh(gain * x)

    device = CallableDevice(saturate, (3,), (3,), controls=[GAIN], backend="numpy", input_bounds=(-2, 2))
    assert device.name == "saturate" and not device.differentiable
    x = torch.rand(5, 3, dtype=torch.float64)
    torch.testing.assert_close(device(x, {"gain": 2.0}), torch.tanh(2 * x))
    assert device(x.float()).dtype == torch.float32
    assert not check_device(device).failed


def test_torch_function_per_sample_may_be_differentiable():
    def energy(x, gain):  # one sample: x (4,) -> (2,)
        return torch.stack([gain * x.square().sum(), x.sum()])

    device = CallableDevice(energy, (4,), (2,), controls=[GAIN], per_sample=True, differentiable=True)
    report = check_device(device)
    assert "gradcheck" in report.passed and "routes" in report.passed
    layer = PhysicalLayer(device, route="autograd")
    layer(torch.rand(3, 4)).sum().backward()
    assert layer.raw_controls["gain"].grad is not None


def test_stochastic_function_repeats_under_a_seed():
    def noisy(x, generator):
        return x + 0.1 * generator.standard_normal(x.shape)

    device = CallableDevice(noisy, (2,), (2,), backend="numpy", stochastic=True, seed=3)
    assert "determinism" in check_device(device).passed


def test_batched_controls_reach_a_per_sample_function_one_setting_each():
    device = CallableDevice(lambda x, gain: gain * x, (2,), (2,), controls=[GAIN], per_sample=True,
                            batched_controls=True)
    y = device(torch.ones(3, 2), {"gain": torch.tensor([1.0, 2.0, 3.0])})
    torch.testing.assert_close(y, torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]))


def test_mistakes_are_named():
    with pytest.raises(ConfigurationError, match="differentiable=True needs backend='torch'"):
        CallableDevice(np.tanh, (2,), (2,), backend="numpy", differentiable=True)
    device = CallableDevice(lambda x: x[:, :1], (2,), (2,), name="halver")
    with pytest.raises(DeviceOutputError, match=r"CallableDevice\('halver'\) returned output of shape \(1, 1\)"):
        device(torch.ones(1, 2))
    with pytest.raises(DeviceOutputError, match="returned str, not an array"):
        CallableDevice(lambda x: "volts", (2,), (2,), backend="numpy")(torch.ones(1, 2))
    with pytest.raises(InputError, match="must have shape"):
        device(torch.ones(1, 3))
