"""One instrument, several clients: exclusive sessions, controls that are what the instrument has, a fair emulator.

Everything goes through the real PyVISA stack (pyvisa-py over loopback) or raw
sockets against :class:`InstrumentEmulator`, as a lab user's second script would.
"""

import contextlib
import functools
import hashlib
import json
import re
import socket
import statistics
import threading
import time

import pytest
import torch

from physnn.cli import main as cli_main
from physnn.devices import ReferenceDevice
from physnn.devices.adapters import InstrumentEmulator, VisaDevice, load_profile
from physnn.errors import ConfigurationError, ControlReadbackError, DeviceBusyError, PhysnnError
from physnn.parallel import DevicePool

pytest.importorskip("pyvisa_py", reason="the loopback tests need pyvisa-py: pip install 'physnn[lab]'")

LSB = 5.0 / 32767  # one digitizer code at the emulator's default 5 V range, volts
GAIN2 = {"gain": torch.full((4,), 2.0, dtype=torch.float64)}


def profile(**sections: dict) -> dict:
    """The shipped emulator profile with some keys changed."""
    p = load_profile("physnn-emulator")
    for section, values in sections.items():
        p[section].update(values)
    return p


CHANNELS = profile(instrument={"sharing": "independent-channels"})
NO_LOCK = profile(lock={"request": "", "visa": False})  # a lock-less instrument: anyone may change anything


def exact(x: torch.Tensor, controls: dict | None = None) -> torch.Tensor:
    return ReferenceDevice(4)(x.float().double(), controls or {})  # the AWG takes float32 volts


def drive(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) - 0.5


class Client:
    """A raw SCPI socket client: ``ask`` sends lines and returns the replies to the queries among them."""

    def __init__(self, port: int) -> None:
        self.sock, self.buf = socket.create_connection(("127.0.0.1", port), timeout=5), b""

    def ask(self, *lines: str) -> list[str]:
        self.sock.sendall("".join(line + "\n" for line in lines).encode())
        replies = []
        for _ in range(sum(line.split(" ")[0].endswith("?") for line in lines)):
            while b"\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed; got {self.buf!r}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            replies.append(line.decode())
        return replies

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def emu():
    with InstrumentEmulator(ReferenceDevice(4)) as e:
        yield e


# --------------------------------------------------------------- exclusive sessions
def test_second_session_is_refused_at_once_naming_resource_and_holder(emu):
    with VisaDevice(emu.resource) as a:
        assert emu.holder == a.owner and re.fullmatch(r"[^:]+:\d+:\d+", a.owner)
        assert a.exclusive_resources() == (emu.resource,)
        start = time.perf_counter()
        with pytest.raises(DeviceBusyError, match=re.escape(emu.resource) + ".*held by " + re.escape(a.owner)):
            VisaDevice(emu.resource)
        assert time.perf_counter() - start < 2.0
        torch.testing.assert_close(a(drive(5), GAIN2), exact(drive(5), GAIN2), atol=LSB / 2 + 1e-9, rtol=0)
    assert emu.holder is None  # close() released it
    with VisaDevice(emu.resource) as b:
        assert emu.holder == b.owner


def test_lock_wait_takes_the_instrument_once_released_or_gives_up(emu):
    a = VisaDevice(emu.resource)
    timer = threading.Timer(0.3, a.close)
    timer.start()
    start = time.perf_counter()
    with VisaDevice(emu.resource, lock_wait_s=10) as b:
        assert 0.25 <= time.perf_counter() - start < 10 and emu.holder == b.owner
        start = time.perf_counter()
        with pytest.raises(DeviceBusyError, match=re.escape(b.owner)):
            VisaDevice(emu.resource, lock_wait_s=0.3)
        assert time.perf_counter() - start >= 0.3
    timer.join()


def test_locked_instrument_refuses_other_sessions_state_changes_but_answers_queries(emu):
    x = drive(3)
    with VisaDevice(emu.resource) as a:
        other = Client(emu.port)
        changes = ["CTRL:GAIN 1,1,1,1", "ACQ:POIN 5", "VOLT:RANG 1", "SOUR:DATA 0,0,0,0", "INIT", "*TRG", "*RST"]
        other.sock.sendall(b"FETC:DATA?\n")  # refused too, without a reply: it would hand out a's measurement
        replies = other.ask(*changes, *["SYST:ERR?"] * 9, "*IDN?", "SYST:LOCK:OWN?", "SYST:LOCK:REQ?")
        errors, (idn, owner, granted) = replies[:9], replies[9:]
        assert all(e.startswith(f'-203,"Command protected; locked by {a.owner}') for e in errors[:8]), errors
        assert errors[8] == '0,"No error"'
        assert idn.startswith("physnn,InstrumentEmulator") and owner == a.owner and granted == "0"
        torch.testing.assert_close(a(x, GAIN2), exact(x, GAIN2), atol=LSB / 2 + 1e-9, rtol=0)
        other.close()


def eventually(condition, timeout: float = 5.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass (the server acts asynchronously)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_dropped_session_reconnects_and_retakes_the_lock_unless_someone_else_took_it(emu):
    x = drive(2)
    with VisaDevice(emu.resource, backoff=0.0) as a:
        emu.drop_connections()
        assert eventually(lambda: emu.holder is None)  # released with the holder's connection
        torch.testing.assert_close(a(x), exact(x), atol=LSB / 2 + 1e-9, rtol=0)
        assert emu.holder == a.owner
        emu.drop_connections()
        assert eventually(lambda: emu.holder is None)
        with VisaDevice(emu.resource) as b, pytest.raises(DeviceBusyError, match=re.escape(b.owner)):
            a(x)


def test_two_pooled_sessions_on_one_instrument_never_return_a_measurement(emu):
    with pytest.raises(PhysnnError, match=re.escape(emu.resource)):
        DevicePool(functools.partial(VisaDevice, emu.resource), workers=2)


def test_pool_refuses_to_fan_one_locked_instrument_out_with_a_configuration_error(emu):
    with pytest.raises(ConfigurationError, match=re.escape(emu.resource)):
        DevicePool(functools.partial(VisaDevice, emu.resource), workers=2)


def test_pool_over_independent_channels_is_exact():
    with InstrumentEmulator(ReferenceDevice(4), independent_channels=True) as e:
        factory = functools.partial(VisaDevice, e.resource, CHANNELS)
        with factory() as single:
            assert single.exclusive_resources() == ()
        with DevicePool(factory, workers=2) as pool:
            for seed in range(10):
                x = drive(64, seed)
                torch.testing.assert_close(pool(x, GAIN2), exact(x, GAIN2), atol=LSB / 2 + 1e-9, rtol=0)


# ---------------------------------------------- controls are what the instrument has
def test_settings_changed_behind_the_back_are_resent_every_call(emu):
    x = drive(4)
    with VisaDevice(emu.resource, NO_LOCK) as a:
        a(x, GAIN2)
        other = Client(emu.port)
        other.ask("CTRL:GAIN 1,1,1,1", "ACQ:POIN 7", "VOLT:RANG 2.5", "*OPC?")
        lsb = 2.5 / 32767  # the range the other client chose stays; the scale factor is re-read
        torch.testing.assert_close(a(x, GAIN2), exact(x, GAIN2), atol=lsb / 2 + 1e-9, rtol=0)
        other.close()


def test_readback_mode_names_the_control_changed_behind_the_back(emu):
    x = drive(4)
    with VisaDevice(emu.resource, profile(lock={"request": "", "visa": False}, controls={"verify": "readback"})) as a:
        a(x, GAIN2)
        other = Client(emu.port)
        other.ask("CTRL:GAIN 1,1,1,1", "*OPC?")
        with pytest.raises(ControlReadbackError, match=r"control 'gain' was set to \[2.0, 2.0, 2.0, 2.0\] but "
                                                       r"'CTRL:gain\?' reads '1.0,1.0,1.0,1.0'"):
            a(x, GAIN2)
        torch.testing.assert_close(a(x, GAIN2), exact(x, GAIN2), atol=LSB / 2 + 1e-9, rtol=0)  # sent afresh
        other.close()


def test_describe_names_the_profile_hash_and_identity(emu):
    with VisaDevice(emu.resource) as a:
        info = a.describe()
    canonical = json.dumps(load_profile("physnn-emulator"), sort_keys=True).encode()
    assert info["profile_sha256"] == hashlib.sha256(canonical).hexdigest()
    assert info["idn"] == "physnn,InstrumentEmulator(reference),0,1" and info["owner"] == a.owner
    with VisaDevice(emu.resource, NO_LOCK) as b:
        assert b.describe()["profile_sha256"] != info["profile_sha256"]


# ------------------------------------------------- a fair, shared lab instrument
class SlowDevice(ReferenceDevice):
    def _forward(self, x, controls):
        time.sleep(1.0)
        return super()._forward(x, controls)


def test_an_acquisition_does_not_block_other_clients_queries():
    with InstrumentEmulator(SlowDevice(4), independent_channels=True) as e, VisaDevice(e.resource, CHANNELS) as a:
        x, result = drive(2), {}
        worker = threading.Thread(target=lambda: result.update(y=a(x)))
        worker.start()
        time.sleep(0.3)  # a's acquisition is running
        other = Client(e.port)
        start = time.perf_counter()
        assert other.ask("*IDN?")[0].startswith("physnn,InstrumentEmulator")
        latency = time.perf_counter() - start
        assert worker.is_alive() and latency < 0.3, latency
        worker.join()
        torch.testing.assert_close(result["y"], exact(x), atol=LSB / 2 + 1e-9, rtol=0)
        other.close()


def test_a_flooding_client_does_not_stall_another_clients_idn(emu):
    flood, stop = Client(emu.port), threading.Event()

    def send():
        with contextlib.suppress(OSError):  # until the socket is closed
            while not stop.is_set():
                flood.sock.sendall(b"*IDN?\n" * 50000)

    def drain():
        with contextlib.suppress(OSError):
            while not stop.is_set() and flood.sock.recv(1 << 20):
                pass

    threads = [threading.Thread(target=f, daemon=True) for f in (send, drain)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    other, latencies = Client(emu.port), []
    for _ in range(10):
        start = time.perf_counter()
        other.ask("*IDN?")
        latencies.append(time.perf_counter() - start)
        time.sleep(0.02)
    stop.set()
    flood.close()
    other.close()
    # before: a median of 2.7 s; the second-worst sample bounds it on a loaded machine
    assert sorted(latencies)[-2] < 0.1 and statistics.median(latencies) < 0.05, latencies


def test_clients_past_the_cap_get_an_error_and_visa_device_says_busy():
    with InstrumentEmulator(ReferenceDevice(4), max_clients=2) as e, VisaDevice(e.resource, CHANNELS) as a:
        first = Client(e.port)
        first.ask("*IDN?")  # a and first are the two sessions
        with pytest.raises(DeviceBusyError, match=r"refused the session.*-310.*max_clients=2"):
            VisaDevice(e.resource, CHANNELS)
        refused = Client(e.port)
        assert refused.ask("*IDN?")[0].startswith('-310,"System error; connection refused: 2 sessions open')
        assert refused.sock.recv(100) == b""  # and closed
        refused.close()
        first.close()
        assert eventually(lambda: e.sessions == 1)
        with VisaDevice(e.resource, CHANNELS) as b:  # a slot is free again
            torch.testing.assert_close(b(drive(2)), a(drive(2)))


def test_two_hundred_concurrent_clients_are_served(emu):
    clients = [Client(emu.port) for _ in range(200)]
    for c in clients:
        c.sock.sendall(b"*IDN?\n")
    assert all(_line(c).startswith("physnn,InstrumentEmulator") for c in clients)
    for c in clients:
        c.close()


def _line(client: Client) -> str:
    while b"\n" not in client.buf:
        client.buf += client.sock.recv(4096)
    line, client.buf = client.buf.split(b"\n", 1)
    return line.decode()


# ----------------------------------------------------- configuration fails early
@pytest.mark.parametrize("text, key", [
    ('[digitizer]\npoints = "ACQ:POIN {pionts}"\n', "digitizer.points"),
    ('[controls]\nset = "CTRL:{nam} {value}"\n', "controls.set"),
    ('[[controls.knob]]\nname = "a"\nset = "A {vale}"\n', r"controls.knob\[0\].set"),
    ('[digitizer]\ndatatype = "int16"\n', "digitizer.datatype"),
    ('[awg]\ndatatype = "z"\n', "awg.datatype"),
    ('[instrument]\nreset = "*RST"\n', "instrument.reset"),
    ('[instrument]\nsharing = "shared"\n', "instrument.sharing"),
    ('[controls]\nverify = "readback"\nquery = ""\n', "controls.verify"),
    ('[connection]\ntimeout_ms = "5s"\n', "connection.timeout_ms"),
])
def test_bad_profiles_fail_at_load_naming_file_and_key(tmp_path, text, key):
    path = tmp_path / "bench.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=re.escape(str(path)) + ": " + key):
        load_profile(path)


def test_unknown_fault_is_a_configuration_error(emu):
    with pytest.raises(ConfigurationError, match="unknown fault 'melt'"):
        emu.inject("melt")


@pytest.mark.parametrize("args, message", [
    (["--port", "99999"], "port must be 0-65535"),
    (["--set", "n=0"], "got n=0"),
    (["--set", "n"], "--set must look like KEY=VALUE"),
    (["--max-clients", "0"], "max_clients must be >= 1"),
])
def test_serve_instrument_bad_arguments_print_one_line(capsys, args, message):
    assert cli_main(["serve-instrument", "--device", "reference", *args]) != 0  # the status is the CLI's policy
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_serve_instrument_on_a_port_in_use_prints_one_line(capsys, emu):
    assert cli_main(["serve-instrument", "--device", "reference", "--port", str(emu.port)]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{emu.port}" in err, err
