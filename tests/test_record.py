"""Measurement records: Recorded, load_record, ReplayDevice, recording(), fitting from records, crash safety."""

import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from physnn import PhysicalLayer
from physnn.data import load_record
from physnn.device import Control
from physnn.devices import BlackBox, Recorded, ReferenceDevice, ReplayDevice, recording
from physnn.devices.adapters import CallableDevice
from physnn.devices.measured import MeasuredDevice
from physnn.errors import (
    ConfigurationError,
    DeviceConnectionError,
    DeviceOutputError,
    InputError,
    RecordError,
    ReplayMissError,
)
from physnn.training import CalibratedTwin, NeuralTwin, fit_twin


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _lens(differentiable: bool = True) -> CallableDevice:
    """A flat device with one per-call control (no per-sample settings): y = tanh(x * gain) @ mix."""
    mix = torch.linspace(-1, 1, 12).reshape(4, 3)

    def lens(x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x * gain) @ mix.to(x)

    return CallableDevice(lens, (4,), (3,), controls=(Control("gain", (), 0.1, 3.0, "", 1.0),),
                          differentiable=differentiable, input_bounds=(-1.0, 1.0), name="lens")


# ------------------------------------------------------------------ round trip
def test_round_trip_is_bit_exact_with_times_and_identity(tmp_path):
    path = tmp_path / "run.sqlite"
    device = Recorded(ReferenceDevice(3), path)
    g = _gen()
    x1 = torch.randn(5, 3, generator=g)
    c1 = {"gain": 0.5 + torch.rand(5, 3, generator=g), "bias": torch.rand(3, generator=g) - 0.5}  # per-sample + shared
    x2 = torch.randn(2, 3, generator=g)
    before = time.time()
    y1, y2 = device(x1, c1), device(x2)  # second call: controls at their defaults
    after = time.time()
    rec = load_record(path)
    assert rec.inputs.dtype == torch.float32 and torch.equal(rec.inputs, torch.cat([x1, x2]))
    assert torch.equal(rec.outputs, torch.cat([y1, y2]))
    assert torch.equal(rec.controls["gain"], torch.cat([c1["gain"], torch.ones(2, 3)]))
    assert torch.equal(rec.controls["bias"], torch.cat([c1["bias"].expand(5, 3), torch.zeros(2, 3)]))
    assert rec.sample_call.tolist() == [0] * 5 + [1] * 2 and rec.batch.tolist() == [5, 2]
    assert rec.errors == [None, None]
    assert before <= rec.t_start[0] <= rec.t_end[0] <= rec.t_start[1] <= rec.t_end[1] <= after
    (identity,) = rec.devices.values()
    assert (identity.label, identity.name, identity.cls) == ("reference", "reference", "ReferenceDevice")
    assert identity.describe["controls"] == ReferenceDevice(3).describe()["controls"]
    assert identity.interface["in_shape"] == [3] and identity.interface["batched_controls"] is True
    x64 = torch.randn(2, 3, dtype=torch.float64, generator=g)
    y64 = device(x64)
    device.close()
    mixed = load_record(path).outputs  # a float64 call promotes the loaded tensors...
    assert mixed.dtype == torch.float64 and torch.equal(mixed, torch.cat([y1.double(), y2.double(), y64]))
    raw = sqlite3.connect(path).execute("SELECT y_dtype, y FROM calls WHERE id = 3").fetchone()
    assert raw[0] == "<f8" and np.array_equal(np.frombuffer(raw[1], "<f8"), y64.numpy().ravel())  # ...stored as sent


class _Configured(ReferenceDevice):
    def config(self) -> dict:
        return {"name": "reference", "n": 2, "saturation": 1.0}


def test_config_is_stored_where_the_device_has_one(tmp_path):
    path = tmp_path / "config.sqlite"
    Recorded(_Configured(2), path)(torch.zeros(1, 2))
    assert next(iter(load_record(path).devices.values())).config == {"name": "reference", "n": 2, "saturation": 1.0}


def test_gradients_flow_through_a_recorded_differentiable_device(tmp_path):
    bare, recorded = ReferenceDevice(3), Recorded(ReferenceDevice(3), tmp_path / "g.sqlite")
    x = torch.randn(4, 3, dtype=torch.float64, generator=_gen(), requires_grad=True)
    gain = torch.full((3,), 0.7, dtype=torch.float64, requires_grad=True)
    assert recorded.differentiable and torch.autograd.gradcheck(lambda a, k: recorded(a, {"gain": k}), (x, gain))
    (gx,) = torch.autograd.grad(recorded(x, {"gain": gain}).sum(), x)
    (bx,) = torch.autograd.grad(bare(x, {"gain": gain}).sum(), x)
    assert torch.equal(gx, bx) and not load_record(tmp_path / "g.sqlite").outputs.requires_grad


def test_failed_calls_are_recorded_and_reraised(tmp_path):
    state = {"n": 0}

    def flaky(x: torch.Tensor) -> torch.Tensor:
        state["n"] += 1
        if state["n"] == 2:
            raise DeviceConnectionError("digitizer on TCPIP::10.0.0.7 dropped the session")
        return 2 * x if state["n"] != 3 else x * float("nan")

    path = tmp_path / "flaky.sqlite"
    device = Recorded(CallableDevice(flaky, (2,), (2,)), path)
    x = torch.tensor([[0.25, -0.5]])
    device(x)
    with pytest.raises(DeviceConnectionError, match="dropped the session"):
        device(x + 1)
    with pytest.raises(DeviceOutputError, match="NaN"):
        device(x + 2)
    rec = load_record(path)
    assert rec.errors[0] is None and rec.errors[1] == ("DeviceConnectionError",
                                                      "digitizer on TCPIP::10.0.0.7 dropped the session")
    assert rec.errors[2][0] == "DeviceOutputError" and "NaN" in rec.errors[2][1]
    assert torch.equal(rec.inputs, x) and torch.equal(rec.outputs, 2 * x)  # per-sample tensors: returned calls only
    failed = sqlite3.connect(path).execute("SELECT x, y FROM calls WHERE error_type IS NOT NULL").fetchall()
    assert [np.frombuffer(r[0], "<f4").tolist() for r in failed] == [[1.25, 0.5], [2.25, 1.5]]
    assert all(r[1] is None for r in failed)


def test_inner_checks_still_run_when_the_inner_interface_changed(tmp_path):
    inner = _lens()
    device = Recorded(inner, tmp_path / "bounds.sqlite")
    inner.input_bounds = (-0.5, 0.5)  # narrowed after wrapping: the wrapper's own checks are stale
    with pytest.raises(InputError, match=r"CallableDevice\('lens'\): input x must lie in the physical range \[-0.5"):
        device(torch.full((1, 4), 0.8))
    assert load_record(tmp_path / "bounds.sqlite").errors[0][0] == "InputError"


def test_a_copied_recorder_appends_to_the_same_file(tmp_path):
    path = tmp_path / "copied.sqlite"
    device = Recorded(ReferenceDevice(2), path)
    device(torch.zeros(1, 2))
    twin = pickle.loads(pickle.dumps(device))
    twin(torch.ones(1, 2))
    assert torch.equal(load_record(path).inputs, torch.tensor([[0.0, 0.0], [1.0, 1.0]]))


def test_the_file_reads_with_plain_sqlite_per_the_documented_schema(tmp_path):
    path = tmp_path / "plain.sqlite"
    x = torch.rand(3, 4, generator=_gen()) * 2 - 1
    with Recorded(_lens(), path, label="layer0") as device:
        y = device(x, {"gain": 2.0})
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert dict(con.execute("SELECT key, value FROM meta"))["format"] == "physnn-record"
    label, cls, describe, interface = con.execute("SELECT label, class, describe, interface FROM devices").fetchone()
    assert (label, cls, json.loads(describe)["name"]) == ("layer0", "CallableDevice", "lens")
    assert json.loads(interface)["controls"][0] == {"name": "gain", "shape": [], "low": 0.1, "high": 3.0, "unit": "",
                                                    "default": 1.0, "doc": ""}
    t0, t1, xd, xs, xb, yd, ys, yb = con.execute(
        "SELECT t_start, t_end, x_dtype, x_shape, x, y_dtype, y_shape, y FROM calls").fetchone()
    assert 0 < t1 - t0 < 60 and abs(t1 - time.time()) < 600
    assert np.array_equal(np.frombuffer(xb, xd).reshape(json.loads(xs)), x.numpy())
    assert np.array_equal(np.frombuffer(yb, yd).reshape(json.loads(ys)), y.numpy())
    name, dtype, shape, value = con.execute("SELECT name, dtype, shape, value FROM controls").fetchone()
    assert (name, json.loads(shape), np.frombuffer(value, dtype).tolist()) == ("gain", [], [2.0])


def test_bad_files_raise_record_error_naming_the_file(tmp_path):
    with pytest.raises(RecordError, match=r"missing\.sqlite: no such file"):
        load_record(tmp_path / "missing.sqlite")
    text = tmp_path / "notes.sqlite"
    text.write_text("this is not a database, just notes " * 100)
    with pytest.raises(RecordError, match=r"notes\.sqlite: not a readable SQLite record"):
        load_record(text)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (a)")
    with pytest.raises(RecordError, match=r"other\.sqlite: expected meta format='physnn-record'"):
        load_record(other)
    with pytest.raises(RecordError, match=r"other\.sqlite: expected meta"):
        Recorded(ReferenceDevice(2), other)
    path = tmp_path / "ok.sqlite"
    Recorded(ReferenceDevice(2), path)(torch.zeros(1, 2))
    sqlite3.connect(path, isolation_level=None).execute("UPDATE calls SET y_shape = '[7, 7]'")
    with pytest.raises(RecordError, match=r"ok\.sqlite: corrupt content"):
        load_record(path)
    with pytest.raises(RecordError, match=r"no device 'layer9'; it holds \['reference'\]"):
        load_record(path, device="layer9")


def test_several_devices_share_one_file_and_filter_by_label(tmp_path):
    path = tmp_path / "model.sqlite"
    a, b = Recorded(ReferenceDevice(3), path, label="a"), Recorded(_lens(), path, label="b")
    a(torch.zeros(2, 3))
    b(torch.zeros(1, 4))
    a(torch.ones(1, 3))
    assert load_record(path, device="a").inputs.shape == (3, 3)
    assert load_record(path, device="b").outputs.shape == (1, 3)
    with pytest.raises(RecordError, match=r"inputs have different shapes .* it holds devices \['a', 'b'\]"):
        load_record(path)


def test_visa_instrument_identity_is_recorded(tmp_path):
    pytest.importorskip("pyvisa")
    pytest.importorskip("pyvisa_py")
    from physnn.devices.adapters import InstrumentEmulator, VisaDevice

    path = tmp_path / "lab.sqlite"
    x = torch.rand(3, 2, dtype=torch.float64, generator=_gen()) - 0.5
    with InstrumentEmulator(ReferenceDevice(2)) as emu, Recorded(VisaDevice(emu.resource), path) as device:
        y = device(x)
    rec = load_record(path)
    (identity,) = rec.devices.values()
    assert identity.cls == "VisaDevice" and identity.idn and "InstrumentEmulator" in identity.idn
    assert identity.describe["idn"] == identity.idn and identity.describe["name"] == identity.name
    assert torch.equal(rec.outputs, y) and torch.equal(rec.inputs, x)


# --------------------------------------------------------------- crash safety
CRASH_SCRIPT = textwrap.dedent("""
    import sys, torch
    from physnn.devices import BlackBox, Recorded, ReferenceDevice
    device = Recorded(BlackBox(ReferenceDevice(8), noise_std=0.1, seed=0), sys.argv[1])
    g = torch.Generator().manual_seed(0)
    for i in range(1000000):
        device(torch.randn(16, 8, generator=g))
        print(i, flush=True)
""")


def test_sigkill_while_recording_keeps_every_returned_call(tmp_path):
    path = tmp_path / "killed.sqlite"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(path)], stdout=subprocess.PIPE, env=env)
    printed = []
    for line in proc.stdout:
        printed.append(int(line))
        if len(printed) == 50:
            break
    proc.send_signal(signal.SIGKILL)
    printed += [int(line) for line in proc.stdout.read().split()]
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL and printed == list(range(len(printed)))
    rec = load_record(path)
    assert len(rec.call_ids) >= len(printed) >= 50 and rec.errors == [None] * len(rec.call_ids)
    g = torch.Generator().manual_seed(0)
    drives = torch.cat([torch.randn(16, 8, generator=g) for _ in range(len(rec.call_ids))])
    assert torch.equal(rec.inputs, drives)  # every call whole, in order
    replay = ReplayDevice(path)
    assert torch.equal(replay(drives[:16]), rec.outputs[:16])


# --------------------------------------------------------------------- replay
def test_replay_reproduces_a_noisy_run_call_by_call_and_any_batch(tmp_path):
    path = tmp_path / "noisy.sqlite"
    device = Recorded(BlackBox(ReferenceDevice(3), noise_std=0.05, seed=1), path)
    g = _gen()
    drives = [torch.rand(4, 3, generator=g) for _ in range(3)]
    drives.append(torch.cat([drives[0][:2], drives[0][:1]]))  # repeats: sample 0 three times in all
    settings = [{"gain": 0.5 + torch.rand(3, generator=g)} if k == 1 else {} for k in range(4)]
    outputs = [device(x, c) for x, c in zip(drives, settings)]
    replay = ReplayDevice(path)
    assert replay.stochastic and replay.name == "replay(blackbox(reference))"
    assert [c.name for c in replay.controls] == ["gain", "bias"] and replay.batched_controls
    for x, c, y in zip(drives, settings, outputs):
        assert torch.equal(replay(x, c), y)
    replay.reseed()
    shuffled = torch.cat([drives[2], drives[0]])[torch.tensor([5, 0, 3, 7, 1])]
    expected = torch.cat([outputs[2], outputs[0]])[torch.tensor([5, 0, 3, 7, 1])]
    assert torch.equal(replay(shuffled), expected)
    first_again = replay(drives[0][:1].expand(4, 3))  # its 3 measurements in record order, then the 1st again
    assert torch.equal(first_again, torch.stack([outputs[0][0], outputs[3][0], outputs[3][2], outputs[0][0]]))
    with pytest.raises(ReplayMissError, match=r"noisy\.sqlite never measured sample 1 of this batch") as info:
        replay(torch.stack([drives[0][0], drives[0][0] + 1e-6]))
    assert "1 of 2 samples unseen" in str(info.value)
    with pytest.raises(ReplayMissError, match="never measured sample 0"):  # a drive seen, but at another setting
        replay(drives[1], {"gain": torch.ones(3)})


def test_replay_needs_one_device_and_a_returned_call(tmp_path):
    path = tmp_path / "two.sqlite"
    Recorded(ReferenceDevice(3), path, label="a")(torch.zeros(1, 3))
    Recorded(_lens(), path, label="b")(torch.zeros(1, 4))
    with pytest.raises(RecordError, match=r"choose one with device=<label>: it holds devices \['a', 'b'\]"):
        ReplayDevice(path)
    assert ReplayDevice(path, device="b").in_shape == (4,)
    assert [c.low for c in ReplayDevice(path, device="b").controls] == [0.1]


# ------------------------------------------------------------- recording(...)
def test_recording_wraps_only_hardware_and_restores_even_on_errors(tmp_path):
    path = tmp_path / "train.sqlite"
    hardware = BlackBox(ReferenceDevice(4), noise_std=0.01, seed=0)
    twin = CalibratedTwin(ReferenceDevice(4))
    first = PhysicalLayer(hardware, route="twin", twin=twin)
    second = PhysicalLayer(_lens(differentiable=False), route="zeroth_order", perturbations=2)
    model = torch.nn.Sequential(first, second)
    x = torch.rand(5, 4, generator=_gen())
    with recording(model, path) as writer:
        assert isinstance(first.device, Recorded) and first.device.inner is hardware and first.twin is twin
        assert first.device.label == "0" and second.device.label == "1" and writer.path == path
        model(x).sum().backward()  # twin backward: no device call; SPSA: 2 extra calls of the second device
        calls = (first.device.calls, second.device.calls)
    assert first.device is hardware and isinstance(second.device, CallableDevice)
    assert calls[0] == 1 and calls[1] > 1  # SPSA drove the second device again; the twin is not hardware
    assert [len(load_record(path, device=k).call_ids) for k in ("0", "1")] == list(calls)
    assert torch.equal(load_record(path, device="0").inputs, x)
    with pytest.raises(RuntimeError, match="boom"), recording(model, tmp_path / "b.sqlite"):
        raise RuntimeError("boom")
    assert first.device is hardware


# ----------------------------------------------------------- fitting from records
def _mixer() -> CallableDevice:
    """A flat device without controls: y = tanh(x) @ mix."""
    mix = torch.linspace(-1, 1, 12).reshape(4, 3)
    return CallableDevice(lambda x: torch.tanh(x) @ mix.to(x), (4,), (3,), differentiable=True, name="mixer")


@pytest.mark.parametrize("make_twin", [lambda d: CalibratedTwin(_mixer()), lambda d: NeuralTwin.like(d, hidden=16)])
def test_fit_twin_from_a_record_equals_fitting_the_same_pairs(tmp_path, make_twin):
    path = tmp_path / "fit.sqlite"
    device = BlackBox(_mixer(), noise_std=0.01, seed=0)
    drives = torch.rand(60, 4, generator=_gen()) * 2 - 1
    live_twin, record_twin = make_twin(device), make_twin(device)
    options = dict(epochs=3, batch_size=16, lr=1e-2, seed=5)
    with Recorded(device, path) as recorded:
        live = fit_twin(recorded, live_twin, inputs=drives, **options)
    calls = device.calls
    offline = fit_twin(device, record_twin, record=path, **options)
    assert device.calls == calls and offline.device_calls == 0 and live.device_calls == 15  # 60 drives in 16 groups
    assert {**offline.as_dict(), "device_calls": 15, "device_samples": 60} == live.as_dict()
    for a, b in zip(live_twin.parameters(), record_twin.parameters()):
        assert torch.equal(a, b)


def test_fit_twin_from_a_record_groups_rows_by_their_recorded_setting(tmp_path):
    path = tmp_path / "lens.sqlite"
    device = _lens()
    with Recorded(device, path) as recorded:  # 3 settings of a per-call control, 40 drives each
        for gain in (0.5, 1.0, 2.5):
            recorded(torch.rand(40, 4, generator=_gen(int(gain * 10))) * 2 - 1, {"gain": gain})
    twin = CalibratedTwin(_lens(), gain=True, offset=True)
    with torch.no_grad():
        twin.gain.fill_(0.5)
    calls = device.calls
    report = fit_twin(device, twin, record=path, epochs=60, batch_size=40, lr=5e-2)
    assert report.nrmse_before > 0.3 and report.nrmse < 0.05 and device.calls == calls
    assert torch.allclose(twin.gain, torch.ones(3), atol=0.05)


def test_fit_twin_from_a_record_averages_repeats_and_checks_shapes(tmp_path):
    path = tmp_path / "rep.sqlite"
    device = BlackBox(ReferenceDevice(3), noise_std=0.1, seed=0)
    drives = torch.rand(40, 3, generator=_gen())
    with Recorded(device, path) as recorded:
        for _ in range(3):
            recorded(drives)
    report = fit_twin(device, NeuralTwin.like(device, hidden=8), record=path, epochs=1)
    assert report.n_train + report.n_test == 40  # 120 measurements of 40 drives
    with pytest.raises(RecordError, match=r"holds \(in_shape, out_shape, controls\) = \(\(3,\)"):
        fit_twin(_lens(), CalibratedTwin(_lens()), record=path, epochs=1)
    with pytest.raises(ConfigurationError, match="either record= .* or inputs="):
        fit_twin(device, NeuralTwin.like(device), record=path, inputs=drives)
    with pytest.raises(ConfigurationError, match="inputs must be a tensor of drives .* or 'sample_inputs', got 'network'"):
        fit_twin(device, NeuralTwin.like(device), inputs="network")


def test_measured_device_from_a_record(tmp_path):
    path = tmp_path / "cavity.sqlite"
    with Recorded(_lens(differentiable=False), path, label="cavity") as device:
        x = torch.rand(80, 4, generator=_gen()) * 2 - 1
        y = torch.cat([device(x[:50], {"gain": 1.5}), device(x[50:], {"gain": 1.5})])
    measured = MeasuredDevice.from_record(path, method="idw", holdout=0.0)
    direct = MeasuredDevice(x, y, method="idw", holdout=0.0)
    assert measured.name == "cavity" and measured.in_shape == (4,) and measured.out_shape == (3,)
    probe = torch.rand(5, 4, generator=_gen(1)) * 0.5
    assert torch.equal(measured(probe), direct(probe)) and torch.equal(measured(x[:3]), y[:3])
    device = Recorded(_lens(differentiable=False), path, label="cavity")
    device(x[:5], {"gain": 0.5})
    with pytest.raises(RecordError, match=r"varies control 'gain' across its calls"):
        MeasuredDevice.from_record(path)
