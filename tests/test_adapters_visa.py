"""VisaDevice through the real PyVISA API: pyvisa-sim dialogues and faults, the loopback emulator, training."""

import os
import re
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from physnn.devices import ReferenceDevice
from physnn.devices.adapters import (
    DeviceTimeoutError,
    InstrumentEmulator,
    InstrumentError,
    InstrumentReplyError,
    RecordingError,
    VisaDevice,
    _scpi,
    load_profile,
)
from physnn.errors import ConfigurationError
from physnn.testing import check_device

pytest.importorskip("pyvisa", reason="VisaDevice needs pyvisa: pip install 'physnn[lab]'")
pytest.importorskip("pyvisa_py", reason="the loopback tests need pyvisa-py: pip install 'physnn[lab]'")

SIM = Path(__file__).with_name("sim") / "awg_digitizer.yaml"
SIM_PROFILE = {
    "instrument": {"name": "sim box", "expect_idn": "SIM,AWG-DIG", "reset": ["*RST"]},
    "awg": {"format": "ascii", "max_volts": 1.0},
    "digitizer": {"format": "ascii", "y_increment": "WAV:YINC?", "y_offset": "WAV:YOFF?", "full_scale": 127,
                  "delay": 1},
    "controls": {"knob": [{"name": "amplitude", "low": 0.0, "high": 2.0, "unit": "V", "default": 1.0,
                           "doc": "AWG amplitude", "set": "SOUR:VOLT {value:.3f}"}]},
}
DRIVE = torch.tensor([[0.5, -0.25, 0.0]])


def sim_device(n: int, **kw) -> VisaDevice:
    pytest.importorskip("pyvisa_sim", reason="protocol tests need pyvisa-sim (pip install pyvisa-sim)")
    options = {"in_shape": (3,), "out_shape": (2,), "backend": f"{SIM}@sim", "timeout_ms": 100, "backoff": 0.0}
    return VisaDevice(f"USB::0x1111::0x2222::0x000{n}::INSTR", SIM_PROFILE, **{**options, **kw})


# ------------------------------------------------------------------ profiles
def test_profile_names_the_file_and_key_it_cannot_use(tmp_path):
    assert load_profile("physnn-emulator")["digitizer"]["fetch"] == "FETC:DATA?"
    bad = tmp_path / "scope.toml"
    bad.write_text('[awg]\nuplaod = "DATA "\n')
    with pytest.raises(ConfigurationError, match=r"scope.toml: unknown key awg.uplaod; \[awg\] takes"):
        load_profile(bad)
    with pytest.raises(ConfigurationError, match="shipped name: .*physnn-emulator"):
        load_profile("no-such-scope")
    with pytest.raises(ConfigurationError, match="digitizer.full_scale must be a int"):
        load_profile({"digitizer": {"full_scale": "max"}})


def test_the_bench_profile_in_the_docs_is_valid(tmp_path):
    docs = (Path(__file__).resolve().parents[1] / "docs" / "hardware.md").read_text()
    (tmp_path / "bench.toml").write_text(re.search(r"```toml\n(.*?)```", docs, flags=re.S).group(1))
    profile = load_profile(tmp_path / "bench.toml")
    assert profile["digitizer"]["fetch"] == "CURV?" and profile["controls"]["knob"][0]["name"] == "amplitude"


# ------------------------------------------------------- pyvisa-sim dialogues
def test_sim_dialogue_uploads_triggers_fetches_scales_and_cuts():
    with sim_device(1) as device:
        assert device.idn == "SIM,AWG-DIG,0,1" and [c.name for c in device.controls] == ["amplitude"]
        y = device(DRIVE)  # codes 0,10,-20 -> volts 0.1 + 0.01 * code; the window starts after delay 1
        torch.testing.assert_close(y, torch.tensor([[0.2, -0.1]]))
        torch.testing.assert_close(device(DRIVE, {"amplitude": 1.25}), y)  # matches the setter "SOUR:VOLT 1.250"


def test_sim_error_queue_entry_names_instrument_commands_and_reply():
    with sim_device(1) as device, pytest.raises(InstrumentError) as info:
        device(DRIVE, {"amplitude": 1.8})  # within the profile's bounds, beyond the instrument's (1.5)
    message = str(info.value)
    assert "SIM,AWG-DIG,0,1" in message and "USB::0x1111::0x2222::0x0001::INSTR" in message
    assert '-113,"Undefined header"' in message and "SOUR:VOLT 1.800" in message
    with sim_device(4) as device, pytest.raises(InstrumentError, match=r"-113.*'INIT'"):
        device(DRIVE)  # an instrument that does not know INIT


def test_sim_no_reply_times_out_after_retries_naming_the_command():
    with sim_device(2, retries=2) as device:
        start = time.perf_counter()
        with pytest.raises(DeviceTimeoutError, match=r"no reply to '\*OPC\?' within 100 ms.*after 3 attempt"):
            device(DRIVE)
        assert time.perf_counter() - start >= 0.3


def test_sim_garbage_reply_is_named():
    with sim_device(3, retries=1) as device, pytest.raises(InstrumentReplyError) as info:
        device(DRIVE)
    assert "'FETC:DATA?' answered '0,1O,#?', not comma-separated numbers" in str(info.value)


def test_sim_wrong_instrument_is_refused_at_connection():
    with pytest.raises(InstrumentError, match="answered 'ACME,PSU-3000,0,1', which lacks 'SIM,AWG-DIG'"):
        sim_device(5)


# ----------------------------------------------------------- loopback emulator
@pytest.fixture(scope="module")
def emulator():
    with InstrumentEmulator(ReferenceDevice(4), max_points=4096) as emu:
        yield emu


def test_emulator_listens_on_loopback_only(emulator):
    assert emulator.host == "127.0.0.1" and emulator.resource == f"TCPIP::127.0.0.1::{emulator.port}::SOCKET"
    with pytest.raises(ConfigurationError, match=f"cannot listen on 127.0.0.1:{emulator.port}: .*in use"):
        InstrumentEmulator(ReferenceDevice(2), port=emulator.port).start()


def test_visa_device_matches_the_simulation_and_passes_check_device(emulator):
    with VisaDevice(emulator.resource) as device:
        assert device.in_shape == (4,) and [c.name for c in device.controls] == ["gain", "bias"]
        assert device.input_bounds == (-5.0, 5.0) and device.delay == 16
        x = torch.rand(6, 4, dtype=torch.float64) * 2 - 1
        controls = {"gain": torch.tensor([0.5, 1.0, 2.0, 4.0]), "bias": torch.tensor([0.0, 0.1, -0.2, 0.3])}
        exact = ReferenceDevice(4)(x.float().double(), controls)  # the AWG takes float32 volts
        lsb = 5.0 / 32767  # one digitizer code, volts
        assert float((device(x, controls) - exact).abs().max()) <= lsb / 2 + 1e-9
        report = check_device(device)
        assert not report.failed and "bad_inputs" in report.passed


def test_large_batches_are_split_across_acquisitions(emulator):
    x = torch.rand(9, 4) * 2 - 1
    with VisaDevice(emulator.resource) as whole:  # one controlling session at a time
        expected = whole(x)
        assert whole.max_segments == 4096 // 20  # instrument memory / (delay 16 + 4 points)
    with VisaDevice(emulator.resource, max_segments=4) as split:
        torch.testing.assert_close(split(x), expected)


@pytest.mark.parametrize("fault", ["drop", "stall", "garbage"])
def test_faults_are_retried_over_a_fresh_session(emulator, fault):
    x = torch.rand(3, 4) * 2 - 1
    with VisaDevice(emulator.resource, timeout_ms=300, backoff=0.0) as device:
        expected = device(x)
        emulator.inject(fault)
        torch.testing.assert_close(device(x), expected)


def test_garbage_is_named_when_retries_run_out(emulator):
    with VisaDevice(emulator.resource, retries=0) as device:
        emulator.inject("garbage")
        with pytest.raises(InstrumentReplyError, match=r"reply to '\*OPC\?' is not text: b'\\x15\\xfe\?garbage"):
            device(torch.rand(1, 4))


def test_session_dropped_between_calls_reconnects(emulator):
    x = torch.rand(2, 4)
    with VisaDevice(emulator.resource, backoff=0.0) as device:
        expected = device(x)
        emulator.drop_connections()
        time.sleep(0.05)
        torch.testing.assert_close(device(x), expected)


def test_instrument_side_rejection_names_command_and_entry(emulator):
    # a drive of 3 samples per segment does not fit the emulated device's 4: the AWG says so
    with VisaDevice(emulator.resource, in_shape=(3,)) as device, pytest.raises(InstrumentError) as info:
        device(torch.zeros(2, 3))
    assert '-221,"Settings conflict; waveform of 6 samples' in str(info.value) and "SOUR:DATA" in str(info.value)


def test_clipped_recording_is_rejected():
    with InstrumentEmulator(ReferenceDevice(2), range_volts=0.5) as emu, VisaDevice(emu.resource) as device:
        with pytest.raises(RecordingError, match=r"clipped \(codes reached \+-32767\)"):
            device(torch.full((1, 2), 0.9))


def _dialogue(port: int, payload: bytes, queries: int) -> list[bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        replies, buf = [], b""
        while len(replies) < queries:
            buf += s.recv(65536)
            *lines, buf = buf.split(b"\n")
            replies += lines
        return replies


def test_emulator_answers_malformed_unknown_and_oversized_commands_with_scpi_errors():
    with InstrumentEmulator(ReferenceDevice(2), max_points=64, max_line=1024) as emu:
        payload = (b"FOO:BAR 1\n" b"\xff\xfe\x00\n" b"CTRL:GAIN abc\n" b"CTRL:GAIN 9,9\n" b"SOUR:DATA #x12\n"
                   b"SOUR:DATA #41000" + b"\x00" * 1000 + b"\n" + b"A" * 5000 + b"\n" + b"FETC:DATA?\n"
                   + b"SYST:ERR?\n" * 9 + b"*IDN?\n")
        replies = _dialogue(emu.port, payload, 10)
    codes = [r.split(b",")[0] for r in replies[:9]]
    assert codes == [b"-113", b"-113", b"-104", b"-222", b"-161", b"-223", b"-223", b"-230", b"0"], replies
    assert replies[9].startswith(b"physnn,InstrumentEmulator(reference)")


def test_scpi_parser_keeps_block_bytes_and_matches_long_forms():
    parser = _scpi.Parser()
    message = b"SOUR:DATA " + _scpi.block(b"a\nb;c#1") + b"\n*OPC?;*TRG\n"
    items = [item for byte in message for item in parser.feed(bytes([byte]))]
    assert items == [_scpi.Command("SOUR:DATA", "", b"a\nb;c#1"), _scpi.Command("*OPC?"), _scpi.Command("*TRG")]
    assert _scpi.matches("SOURce:DATA", "source:data") and _scpi.matches("SOURce:DATA", "SOUR:DATA")
    assert not _scpi.matches("SOURce:DATA", "SOURC:DATA") and not _scpi.matches("SOURce:DATA", "SOUR:DATA?")


# ------------------------------------------------- the CLI server, end to end
@pytest.fixture(scope="module")
def served():
    """``serve-instrument`` in its own process (as users run it), on a free loopback port."""
    code = ("import argparse, sys; from physnn.devices.adapters.emulator import add_serve_parser; "
            "p = argparse.ArgumentParser(); add_serve_parser(p.add_subparsers()); "
            "a = p.parse_args(sys.argv[1:]); sys.exit(a.handler(a))")
    proc = subprocess.Popen([sys.executable, "-c", code, "serve-instrument", "--device", "reference",
                             "--set", "n=4", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else "(nothing within 60 s)"
        match = re.search(r"TCPIP::127\.0\.0\.1::\d+::SOCKET", line)
        assert match, f"serve-instrument printed {line!r}"
        yield match.group(0)
    finally:
        proc.terminate()
        proc.wait(10)


def test_training_through_the_served_instrument_learns_like_the_simulation(served):
    from physnn.training import PhysicsAware, fit, physical_network

    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 1.0]])
    labels = torch.arange(3).repeat(40)
    x = centers[labels] + 0.35 * torch.randn(len(labels), 4, generator=g)

    def train(device):
        model = physical_network([device], [3], twins=[ReferenceDevice(4)], seed=0)
        return fit(PhysicsAware(model, lr=0.05), (x, labels), epochs=15, batch_size=40, progress=False,
                   plot=False)

    simulated = train(ReferenceDevice(4))
    with VisaDevice(served) as instrument:
        measured = train(instrument)
        assert instrument.calls >= 15 * 3
    assert measured.final("train_accuracy") >= 0.9
    assert abs(measured.final("train_accuracy") - simulated.final("train_accuracy")) <= 0.05
    assert abs(measured.final("loss") - simulated.final("loss")) <= 5e-3  # 16-bit quantization is all that differs


# ------------------------------------------------------ a real instrument, opt-in
def test_real_instrument(request):
    address = request.config.getoption("--device-address")
    if not address:
        pytest.skip("no real instrument: pass --device-address=RESOURCE (and $PHYSNN_DEVICE_PROFILE)")
    profile = load_profile(os.environ.get("PHYSNN_DEVICE_PROFILE", "physnn-emulator"))
    shapes = {} if profile["instrument"]["describe"] else {"in_shape": (64,), "out_shape": (64,)}
    with VisaDevice(address, profile, **shapes) as device:
        report = check_device(device)
    assert not report.failed


def test_hardware_in_the_loop_example_trains_through_the_emulator():
    example = Path(__file__).resolve().parents[1] / "examples" / "hardware_in_the_loop.py"
    run = subprocess.run([sys.executable, str(example), "--epochs", "2", "--train", "100", "--test", "50"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "visa: VisaDevice('physnn instrument emulator')" in run.stdout and "epoch 2: loss" in run.stdout
