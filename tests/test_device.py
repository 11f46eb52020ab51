"""The Device contract: validation in the base class, counting, capabilities, registry."""

import math

import numpy as np
import pytest
import torch

import physnn
from physnn import Control, Device
from physnn.devices import BlackBox, CoupledPendula, ReferenceDevice, available, create, register
from physnn.errors import (
    ConfigurationError,
    ControlError,
    DeviceOutputError,
    GradientRouteError,
    InputError,
    PhysnnError,
    StabilityError,
)
from physnn.testing import DeviceCheckError, check_device


def test_import_is_light():
    import subprocess
    import sys
    code = ("import sys, physnn, physnn.devices; heavy = [m for m in ('pennylane', 'numba', 'ray', 'pyvisa', "
            "'sounddevice', 'scipy', 'matplotlib', 'sklearn') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_errors_name_device_argument_expected_and_got():
    d = ReferenceDevice(3)
    with pytest.raises(InputError, match=r"ReferenceDevice\('reference'\): input x must have shape \(batch, 3\), got \(2, 4\)"):
        d(torch.zeros(2, 4))
    with pytest.raises(InputError, match="no batch dimension"):
        d(torch.zeros(3))
    with pytest.raises(InputError, match="must be finite, got nan at index"):
        d(torch.tensor([[0.0, math.nan, 0.0]]))
    with pytest.raises(ControlError, match=r"control 'gain' must lie within its physical bounds \[0, 5\] V/V, got values in \[-1, 1\]"):
        d(torch.zeros(1, 3), {"gain": torch.tensor([1.0, 1.0, -1.0])})
    with pytest.raises(ControlError, match=r"control 'gain' must have shape \(3,\) or per-sample \(2, 3\), got \(\)"):
        d(torch.zeros(2, 3), {"gain": 1.0})
    with pytest.raises(ControlError, match=r"unknown control\(s\) \['gian'\]; this device has \['bias', 'gain'\]"):
        d(torch.zeros(1, 3), {"gian": torch.ones(3)})
    with pytest.raises(InputError, match="dtype"):
        d(torch.zeros(1, 3, dtype=torch.int32))
    assert issubclass(InputError, ValueError) and issubclass(InputError, PhysnnError)


def test_controls_never_clipped_or_broadcast():
    d = CoupledPendula(3)
    x = torch.zeros(2, 3)
    with pytest.raises(ControlError, match="offset"):
        d(x, {"offset": torch.tensor([0.0, 0.0, 0.6])})
    with pytest.raises(ControlError, match="no broadcasting"):
        d(x, {"coupling": torch.ones(1)})
    with pytest.raises(InputError, match=r"physical range \[-1.5708, 1.5708\]"):
        d(torch.full((1, 3), 2.0))


def test_per_sample_controls_only_where_declared():
    class OneKnob(Device):
        name = "one-knob"
        differentiable = True
        in_shape = out_shape = (2,)
        controls = (Control("k", (), 0.0, 1.0, "", 0.5),)

        def _forward(self, x, controls):
            return x * controls["k"]

    d = OneKnob()
    assert torch.equal(d(torch.ones(2, 2), {"k": 0.25}), torch.full((2, 2), 0.25))
    with pytest.raises(ControlError, match="takes one setting per call"):
        d(torch.ones(2, 2), {"k": torch.tensor([0.1, 0.2])})
    r = ReferenceDevice(2)
    y = r(torch.ones(2, 2), {"gain": torch.tensor([[1.0, 1.0], [2.0, 2.0]])})
    assert torch.allclose(y[1], torch.tanh(torch.tensor([2.0, 2.0])))


def test_output_checked():
    class Broken(Device):
        name = "broken"
        in_shape = out_shape = (2,)

        def _forward(self, x, controls):
            return x[:, :1] if x.shape[0] > 1 else x * math.nan

    with pytest.raises(DeviceOutputError, match=r"returned output of shape \(2, 1\), expected \(2, 2\)"):
        Broken()(torch.zeros(2, 2))
    with pytest.raises(DeviceOutputError, match="NaN"):
        Broken()(torch.zeros(1, 2))


def test_black_box_refuses_autograd_and_names_routes():
    box = BlackBox(ReferenceDevice(2))
    with pytest.raises(GradientRouteError, match="'twin'.*'zeroth_order'.*'none'"):
        box(torch.zeros(1, 2, requires_grad=True))
    with torch.no_grad():
        box(torch.zeros(1, 2, requires_grad=True))  # measuring without gradients is fine


def test_call_counting_and_context_manager():
    closed = []

    class Instrument(ReferenceDevice):
        def close(self):
            closed.append(True)

    with Instrument(2) as d:
        d(torch.zeros(5, 2))
        d(torch.zeros(3, 2))
        assert (d.calls, d.samples) == (2, 8)
        d.reset_counters()
        assert d.counter.as_dict() == {"calls": 0, "samples": 0}
    assert closed == [True]


def test_blackbox_noise_statistics_and_seed():
    box = BlackBox(ReferenceDevice(4), noise_std=0.1, gain=2.0, offset=0.5, seed=3)
    x = torch.zeros(20000, 4, dtype=torch.float64)
    y = box(x)
    assert abs(float(y.mean()) - 0.5) < 0.005  # gain * tanh(0) + offset
    assert abs(float(y.std()) - 0.1) < 0.002
    box.reseed(3)
    assert torch.equal(box(x), y)


def test_pendula_match_scipy_reference():
    from scipy.integrate import solve_ivp
    omega = [5.0, 6.0, 7.0]
    d = CoupledPendula(3, omega=omega, damping=0.3, duration=2.0, steps=400, max_coupling=10.0)
    x = torch.tensor([[0.9, -0.4, 0.2]], dtype=torch.float64)  # large angles: sin(theta) is nonlinear
    k = torch.tensor([3.0, 1.5], dtype=torch.float64)
    off = torch.tensor([0.1, 0.0, -0.2], dtype=torch.float64)
    y = d(x, {"coupling": k, "offset": off})[0].numpy()

    def rhs(t, s):
        th, v = s[:3], s[3:]
        f = np.zeros(3)
        f[:-1] += k.numpy() * (th[1:] - th[:-1])
        f[1:] -= k.numpy() * (th[1:] - th[:-1])
        return np.concatenate([v, -np.square(omega) * np.sin(th) - 0.6 * v + f])

    s0 = np.concatenate([(x[0] + off).numpy(), np.zeros(3)])
    ref = solve_ivp(rhs, (0, 2.0), s0, method="Radau", rtol=1e-11, atol=1e-12).y[:3, -1]
    assert np.max(np.abs(y - ref)) < 1e-7
    assert np.max(np.abs(y - ref)) / np.max(np.abs(ref)) < 1e-6


def test_pendula_unstable_step_rejected_before_running():
    with pytest.raises(StabilityError, match="use steps >= "):
        CoupledPendula(3, omega=50.0, duration=1.0, steps=20)


@pytest.mark.parametrize("make", [
    lambda: ReferenceDevice(3),
    lambda: CoupledPendula(3, steps=40),
    lambda: BlackBox(CoupledPendula(3, steps=40)),
    lambda: BlackBox(ReferenceDevice(3), noise_std=0.05, seed=0),
], ids=["reference", "pendula", "blackbox", "noisy-blackbox"])
def test_builtin_devices_conform(make):
    report = check_device(make(), spsa_perturbations=64)
    assert "bad_inputs" in report.passed and "routes" in report.passed


def test_check_device_catches_a_broken_device():
    class Leaky(ReferenceDevice):  # mixes batch mates and clips controls silently
        def _forward(self, x, controls):
            return super()._forward(x, controls) + 1e-3 * x.mean(0)

        def check_controls(self, controls, x):
            c = dict(controls or {})
            if "gain" in c:
                c["gain"] = torch.as_tensor(c["gain"], dtype=x.dtype).clamp(0, 5)
            return super().check_controls(c, x)

    with pytest.raises(DeviceCheckError) as err:
        check_device(Leaky(3), checks=("batch_independence", "bad_inputs"))
    assert "batch_independence" in str(err.value) and "control gain above bounds: accepted silently" in str(err.value)


def test_registry_create_register_and_entry_points(monkeypatch):
    assert {"reference", "coupled-pendula", "phyll-cavity"} <= set(available())
    d = create("coupled-pendula", n=5)
    assert isinstance(d, CoupledPendula) and d.in_shape == (5,)
    with pytest.raises(ConfigurationError, match="no device named 'nope'; registered devices:"):
        create("nope")
    register("my-amp", lambda n=2: ReferenceDevice(n), overwrite=True)
    assert create("my-amp", n=6).out_shape == (6,)
    with pytest.raises(ConfigurationError, match="already registered"):
        register("my-amp", ReferenceDevice)

    class FakeEntryPoint:
        name, value = "third-party", "physnn.devices.reference:ReferenceDevice"

    import physnn.devices._registry as registry
    monkeypatch.setattr(registry, "entry_points", lambda group: [FakeEntryPoint()] if group == "physnn.devices" else [])
    assert isinstance(create("third-party", n=2), ReferenceDevice)


def test_control_declaration_errors():
    with pytest.raises(ControlError, match="outside"):
        Control("k", (), 0.0, 1.0, default=2.0)
    with pytest.raises(ControlError, match="must not exceed"):
        Control("k", (), 1.0, 0.0)
    assert physnn.Control("k", (2,), 0, 1, "V", 0.5).describe() == "k [2] in [0, 1] V (default 0.5)"


def test_all_finite_finds_every_bad_value_and_survives_an_overflowing_sum():
    from physnn.device import all_finite

    x = torch.rand(8, 1000)
    assert all_finite(x) and all_finite(torch.full((10,), 3e38))  # the sum overflows; every element is finite
    for bad in (float("nan"), float("inf"), -float("inf")):
        y = x.clone()
        y[3, 100] = bad
        assert not all_finite(y)
    y = x.clone()
    y[0, 0], y[1, 1] = float("inf"), -float("inf")  # their sum is NaN, still caught
    assert not all_finite(y)
