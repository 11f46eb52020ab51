"""The SCPI instrument emulator: any simulated physnn device behind an AWG + digitizer on a TCP socket.

``physnn serve-instrument --device NAME --port N`` (or :class:`InstrumentEmulator`
in Python) answers the dialect of the profile ``physnn-emulator``, so that
:class:`~physnn.devices.adapters.VisaDevice` drives a simulation through the
real PyVISA stack exactly as it drives a bench instrument:

===========================  ================================================================
command                      meaning
===========================  ================================================================
``*IDN?`` ``*RST``           identity, reset (controls to defaults, record length, range)
``*CLS`` ``SYST:ERR?``       clear / pop the error queue (``0,"No error"`` when empty)
``SYST:DESC?``               JSON: ``in_shape``, ``out_shape``, ``input_bounds``, ``delay``, ``max_points``,
                             ``controls``
``SOUR:DATA #<block>``       drive waveform, float32 little-endian volts (or comma-separated ASCII),
                             ``S * prod(in_shape)`` samples: one segment per batch sample
``ACQ:POIN n`` / ``?``       digitizer record length per segment, samples
``VOLT:RANG v`` / ``?``      digitizer full scale, +-v volts (int16 codes, clipped at +-32767)
``INIT`` ``*TRG``            arm, then trigger: every segment is played and recorded
``*OPC?``                    ``1`` once the acquisition is complete
``FETC:DATA?``               int16 little-endian block, ``S * points`` codes
``WAV:YINC?`` ``WAV:YOFF?``  volts per code, offset: ``volts = code * yinc + yoff``
``CTRL:<name> v[,v...]``     set a control of the simulated device (``CTRL:<name>?`` reads it)
``SYST:LOCK:NAME "o"``       name this session's owner (``host:pid:session``), shown to the others
``SYST:LOCK:REQ?``           ``1`` if this session now holds the instrument's lock, ``0`` if another does
``SYST:LOCK:REL``            release the lock (also released when its session closes)
``SYST:LOCK:OWN?``           the holder's owner name, or ``NONE``
===========================  ================================================================

Sharing, as on a lab instrument: every session has its own error queue; while
one session holds the lock, the others may query (``*IDN?``, ``SYST:ERR?``...)
but every state-changing command, and ``FETC:DATA?``, is refused with error
-203 "Command protected; locked by <owner>". With ``independent_channels``
each session drives its own copy of the instrument state instead. Acquisitions
run on a worker thread, so one session's measurement never blocks another's
queries; a session's commands still run in order, and a flooding session
yields to the others after every command. Past ``max_clients`` sessions a new
connection is answered with error -310 and closed.

Each recorded segment is ``delay`` zeros (the trigger latency) followed by the
device's flattened output, zero-padded or cut to the record length. Malformed,
unknown, out-of-range and oversized commands are answered with an SCPI
error-queue entry; the server never crashes or stops reading. It listens on
127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from ...device import Device
from ...errors import ConfigurationError, PhysnnError
from . import _scpi

FULL_SCALE = 32767
FAULTS = ("drop", "stall", "garbage")
READ_CHUNK = 1 << 14  # bytes parsed per read: bounds the work done before other sessions get a turn


class InstrumentEmulator:
    """An SCPI AWG + digitizer on ``host:port`` whose "physics" is ``device``.

    Args:
        device: the simulated system (any :class:`~physnn.Device`).
        host: address to listen on; loopback by default.
        port: TCP port (0-65535); 0 picks a free one (read it from the ``port`` attribute).
        delay: trigger latency, samples of silence before each recorded segment.
        max_volts: AWG output limit, volts (tightened by the device's own ``input_bounds``).
        range_volts: initial digitizer full scale, volts.
        max_points: AWG and digitizer memory, samples.
        max_line: longest text command accepted, bytes.
        max_clients: most sessions served at once; past it a connection gets error -310 and is closed.
        independent_channels: give every session its own instrument state (no sharing, no lock needed).
    """

    def __init__(self, device: Device, *, host: str = "127.0.0.1", port: int = 0, delay: int = 16,
                 max_volts: float = 5.0, range_volts: float = 5.0, max_points: int = 1 << 22,
                 max_line: int = 65536, max_clients: int = 256, independent_channels: bool = False) -> None:
        if not 0 <= int(port) <= 65535:
            raise ConfigurationError(f"instrument emulator port must be 0-65535 (0: any free port), got {port}")
        if int(max_clients) < 1:
            raise ConfigurationError(f"instrument emulator max_clients must be >= 1, got {max_clients}")
        self.device, self.host, self.port = device, host, int(port)
        self.delay, self.max_points, self.max_line = int(delay), int(max_points), int(max_line)
        self.max_clients, self.independent_channels = int(max_clients), bool(independent_channels)
        lo, hi = device.input_bounds or (-math.inf, math.inf)
        self.input_bounds = (max(lo, -float(max_volts)), min(hi, float(max_volts)))
        self.initial_range = float(range_volts)
        self.dtype = torch.float64 if torch.float64 in device.dtypes else device.dtypes[0]
        self._faults: dict[str, int] = dict.fromkeys(FAULTS, 0)
        self._sessions: dict[asyncio.StreamWriter, _Session] = {}
        self._holder: _Session | None = None
        self._shared = self._channel()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: Exception | None = None

    # --------------------------------------------------------------- lifecycle
    @property
    def resource(self) -> str:
        """The VISA resource string of this emulator (pyvisa-py socket)."""
        return f"TCPIP::{self.host}::{self.port}::SOCKET"

    @property
    def sessions(self) -> int:
        """Client sessions open now."""
        return len(self._sessions)

    @property
    def holder(self) -> str | None:
        """Owner name of the session holding the lock, or None."""
        return self._holder.name if self._holder is not None else None

    def start(self) -> InstrumentEmulator:
        """Serve in a background thread; returns once the socket listens."""
        self._thread = threading.Thread(target=self._run, name="physnn-instrument-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(30) or self._failure is not None:
            raise ConfigurationError(f"instrument emulator cannot listen on {self.host}:{self.port}: "
                                     f"{self._failure or 'no socket after 30 s'}") from self._failure
        return self

    def _run(self) -> None:
        try:
            self.serve_forever()
        except (OSError, OverflowError, ValueError) as exc:  # the port is taken, the host unknown...
            self._failure = exc
            self._ready.set()

    def serve_forever(self) -> None:
        """Serve until :meth:`close` (or Ctrl-C when run in the foreground)."""
        asyncio.run(self._serve())

    def close(self) -> None:
        """Stop serving and close every connection."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> InstrumentEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def drop_connections(self) -> None:
        """Close every client session now, as a power-cycled or unplugged instrument would."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(lambda: [w.close() for w in list(self._sessions)])

    def inject(self, fault: str, count: int = 1) -> None:
        """Misbehave on the next ``count`` occasions, to rehearse fault handling.

        ``"drop"``: close the session on receiving a command; ``"stall"``: send
        no reply to a query; ``"garbage"``: reply to a query with bytes that
        mean nothing.
        """
        if fault not in FAULTS:
            raise ConfigurationError(f"InstrumentEmulator.inject: unknown fault {fault!r}; "
                                     f"choose one of {list(FAULTS)}")
        self._faults[fault] += int(count)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.ensure_future(self._client(reader, writer, physics))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        with ThreadPoolExecutor(1, thread_name_prefix="physnn-emulator-physics") as physics:
            server = await asyncio.start_server(accept, self.host, self.port)
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                server.close()
                for w in list(self._sessions):
                    w.close()
                await server.wait_closed()
                if tasks:
                    await asyncio.wait(tasks, timeout=10)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      physics: ThreadPoolExecutor) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if len(self._sessions) >= self.max_clients:
            await self._refuse(reader, writer)
            return
        peer = writer.get_extra_info("peername") or ("?", 0)
        session = _Session(f"{peer[0]}:{peer[1]}", self._channel() if self.independent_channels else self._shared)
        self._sessions[writer] = session
        parser = _scpi.Parser(self.max_line, 4 * self.max_points)
        try:
            while data := await reader.read(READ_CHUNK):
                for item in parser.feed(data):
                    if writer.is_closing() or self._take("drop"):  # the client left: skip what it had queued
                        return
                    reply = self.handle(item, session)
                    if session.job is not None:
                        await self._run_job(session, physics)
                    if reply is not None and not self._take("stall"):
                        writer.write(b"\x15\xfe?garbage\x00" if self._take("garbage") else reply)
                        writer.write(b"\n")
                    await asyncio.sleep(0)  # one command at a time: a flooding session cannot starve the others
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            del self._sessions[writer]
            if self._holder is session:
                self._holder = None
            writer.close()

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer a connection past ``max_clients`` with error -310, read its first command, close it."""
        writer.write(f'-310,"System error; connection refused: {len(self._sessions)} sessions open, the '
                     f'maximum (max_clients={self.max_clients})"\n'.encode())
        try:
            await writer.drain()
            await asyncio.wait_for(reader.readline(), 1.0)  # consumed input: the close is a FIN, not a reset
        except (ConnectionError, OSError, asyncio.TimeoutError):
            pass
        writer.close()

    async def _run_job(self, session: _Session, physics: ThreadPoolExecutor) -> None:
        """Run a triggered acquisition on the physics thread; its trace lands in the session's channel."""
        job, session.job = session.job, None
        assert job is not None and self._loop is not None
        try:
            session.channel.trace = await self._loop.run_in_executor(physics, job)
        except PhysnnError as exc:
            session.error(-222, f"Data out of range; {exc}")
        except Exception as exc:  # noqa: BLE001 - an instrument reports, it does not crash
            session.error(-300, f"Device-specific error; {type(exc).__name__}: {exc}")

    def _take(self, fault: str) -> bool:
        if self._faults[fault] > 0:
            self._faults[fault] -= 1
            return True
        return False

    # ---------------------------------------------------------------- commands
    def handle(self, item: _scpi.Command | _scpi.ParseError, session: _Session) -> bytes | None:
        """Execute one parsed command for ``session``; return the reply of a query (None otherwise). Never raises.

        A ``*TRG`` leaves its acquisition in ``session.job``, for the caller to run off the event loop.
        """
        if isinstance(item, _scpi.ParseError):
            session.error(item.code, item.message)
            return None
        try:
            self._permit(item, session)
            return self._dispatch(item, session)
        except _SCPIFailure as exc:
            session.error(exc.code, f"{exc.message}; {item.header}")
        except PhysnnError as exc:
            session.error(-222, f"Data out of range; {exc}")
        except Exception as exc:  # noqa: BLE001 - an instrument reports, it does not crash
            session.error(-300, f"Device-specific error; {type(exc).__name__}: {exc}")
        return None

    def _permit(self, cmd: _scpi.Command, session: _Session) -> None:
        """Refuse another session's state changes (and its data readout) while the instrument is locked."""
        holder, h = self._holder, cmd.header
        if holder is None or holder is session or self.independent_channels:
            return
        if _is_lock(h) or _scpi.matches("*CLS", h):
            return
        if cmd.is_query and not _scpi.matches("FETCh:DATA?", h):
            return
        raise _SCPIFailure(-203, f"Command protected; locked by {holder.name}")

    def _dispatch(self, cmd: _scpi.Command, session: _Session) -> bytes | None:
        h, m, ch = cmd.header, _scpi.matches, session.channel
        if h.startswith(("CTRL:", ":CTRL:")):
            return self._control(cmd, ch)
        if m("*IDN?", h):
            return f"physnn,InstrumentEmulator({self.device.name}),0,1".encode()
        if m("*RST", h):
            self._reset(ch)
        elif m("*CLS", h):
            session.errors.clear()
        elif m("*OPC?", h):
            return b"1"
        elif m("*WAI", h):
            pass
        elif m("SYSTem:ERRor?", h) or m("SYSTem:ERRor:NEXT?", h):
            return (session.errors.popleft() if session.errors else '0,"No error"').encode()
        elif m("SYSTem:DESCribe?", h):
            return self._describe().encode()
        elif _is_lock(h):
            return self._lock(cmd, session)
        elif m("SOURce:DATA", h):
            self._upload(cmd, ch)
        elif m("ACQuire:POINts", h):
            ch.points = self._integer(cmd, 1, self.max_points)
        elif m("ACQuire:POINts?", h):
            return str(ch.points).encode()
        elif m("VOLTage:RANGe", h):
            ch.range = self._number(cmd, 1e-3, 1e3)
        elif m("VOLTage:RANGe?", h):
            return repr(ch.range).encode()
        elif m("INITiate", h):
            ch.armed, ch.trace = True, None
        elif m("*TRG", h):
            session.job = self._trigger(ch)
        elif m("FETCh:DATA?", h):
            if ch.trace is None:
                raise _SCPIFailure(-230, "Data corrupt or stale; no completed acquisition (send INIT and *TRG)")
            return _scpi.block(ch.trace.astype("<i2").tobytes())
        elif m("WAVeform:YINCrement?", h):
            return repr(ch.range / FULL_SCALE).encode()
        elif m("WAVeform:YOFFset?", h):
            return b"0.0"
        else:
            raise _SCPIFailure(-113, "Undefined header")
        return None

    def _lock(self, cmd: _scpi.Command, session: _Session) -> bytes | None:
        h, m = cmd.header, _scpi.matches
        if m("SYSTem:LOCK:NAME", h):
            name = cmd.args.strip().strip('"').strip()
            if not name or len(name) > 128:
                raise _SCPIFailure(-224, "Illegal parameter value; owner name must be 1-128 characters")
            session.name = name
        elif m("SYSTem:LOCK:REQuest?", h):
            self._holder = self._holder or session
            return b"1" if self._holder is session else b"0"
        elif m("SYSTem:LOCK:RELease", h):
            if self._holder not in (None, session):
                raise _SCPIFailure(-203, f"Command protected; locked by {self.holder}, not by this session")
            self._holder = None
        elif m("SYSTem:LOCK:OWNer?", h):
            return (self.holder or "NONE").encode()
        else:
            raise _SCPIFailure(-113, "Undefined header")
        return None

    def _channel(self) -> _Channel:
        """A new channel in its power-on state."""
        ch = _Channel()
        self._reset(ch)
        return ch

    def _reset(self, ch: _Channel) -> None:
        """Put ``ch`` in its power-on state (``*RST``): default controls, record length and range, no data."""
        ch.values = self.device.control_defaults(self.dtype)
        ch.points, ch.range = self.delay + math.prod(self.device.out_shape), self.initial_range
        ch.waveform = ch.trace = None
        ch.armed = False

    def _upload(self, cmd: _scpi.Command, ch: _Channel) -> None:
        if cmd.block is not None:
            if len(cmd.block) % 4:
                raise _SCPIFailure(-161, f"Invalid block data; {len(cmd.block)} bytes is not a whole float32 count")
            wave = np.frombuffer(cmd.block, dtype="<f4").astype(np.float64)
        else:
            wave = self._floats(cmd.args)
        n = math.prod(self.device.in_shape)
        if wave.size == 0 or wave.size % n:
            raise _SCPIFailure(-221, f"Settings conflict; waveform of {wave.size} samples is not a whole number "
                                     f"of segments of {n}")
        if wave.size > self.max_points:
            raise _SCPIFailure(-223, f"Too much data; waveform of {wave.size} samples exceeds {self.max_points}")
        lo, hi = self.input_bounds
        if not np.isfinite(wave).all() or wave.min() < lo or wave.max() > hi:
            raise _SCPIFailure(-222, f"Data out of range; waveform must be finite within [{lo:g}, {hi:g}] V")
        ch.waveform, ch.trace = wave.reshape(-1, n), None

    def _trigger(self, ch: _Channel) -> Callable[[], np.ndarray]:
        """Check that ``ch`` can acquire; return the acquisition of its settings as they are now."""
        if not ch.armed:
            raise _SCPIFailure(-211, "Trigger ignored; digitizer not armed (send INIT first)")
        if ch.waveform is None:
            raise _SCPIFailure(-221, "Settings conflict; no waveform uploaded (SOUR:DATA)")
        segments = ch.waveform.shape[0]
        if segments * ch.points > self.max_points:
            raise _SCPIFailure(-225, f"Out of memory; {segments} segments x {ch.points} points")
        ch.armed = False
        wave, values, points, scale = ch.waveform, dict(ch.values), ch.points, FULL_SCALE / ch.range
        return lambda: self._record(wave, values, points, scale)

    def _record(self, wave: np.ndarray, values: dict[str, torch.Tensor], points: int, scale: float) -> np.ndarray:
        """Play ``wave`` (S, n) volts through the device; int16-range codes, ``S * points``."""
        x = torch.as_tensor(wave, dtype=self.dtype).reshape((wave.shape[0],) + tuple(self.device.in_shape))
        with torch.no_grad():
            y = self.device(x, values).reshape(wave.shape[0], -1).double().numpy()
        trace = np.zeros((wave.shape[0], self.delay + y.shape[1]))
        trace[:, self.delay:] = y
        trace = np.pad(trace, ((0, 0), (0, max(0, points - trace.shape[1]))))[:, :points]
        return np.clip(np.round(trace * scale), -FULL_SCALE, FULL_SCALE).reshape(-1)

    def _control(self, cmd: _scpi.Command, ch: _Channel) -> bytes | None:
        wanted = cmd.header.lstrip(":")[5:].rstrip("?").lower()
        spec = next((c for c in self.device.controls if c.name.lower() == wanted), None)
        if spec is None:
            raise _SCPIFailure(-113, f"Undefined header; no control {wanted!r} "
                                     f"(controls: {[c.name for c in self.device.controls]})")
        if cmd.is_query:
            return ",".join(repr(v) for v in ch.values[spec.name].reshape(-1).tolist()).encode()
        values = self._floats(cmd.args)
        if values.size != max(1, math.prod(spec.shape)):
            raise _SCPIFailure(-109 if values.size < math.prod(spec.shape) else -108,
                               f"Parameter count; control {spec.name} takes {math.prod(spec.shape)} value(s), "
                               f"got {values.size}")
        if not np.isfinite(values).all() or values.min() < spec.low or values.max() > spec.high:
            raise _SCPIFailure(-222, f"Data out of range; control {spec.name} must lie in "
                                     f"[{spec.low:g}, {spec.high:g}] {spec.unit}")
        ch.values[spec.name] = torch.as_tensor(values, dtype=self.dtype).reshape(spec.shape)
        return None

    def _describe(self) -> str:
        controls = [{"name": c.name, "shape": list(c.shape), "low": c.low, "high": c.high, "unit": c.unit,
                     "default": c.default if isinstance(c.default, (int, float)) else list(c.default),
                     "doc": c.doc} for c in self.device.controls]
        return json.dumps({"in_shape": list(self.device.in_shape), "out_shape": list(self.device.out_shape),
                           "input_bounds": list(self.input_bounds), "delay": self.delay,
                           "max_points": self.max_points, "controls": controls})

    # ----------------------------------------------------------------- helpers
    def _floats(self, text: str) -> np.ndarray:
        try:
            return np.array([float(v) for v in text.split(",")] if text.strip() else [], dtype=np.float64)
        except ValueError:
            raise _SCPIFailure(-104, f"Data type error; expected comma-separated numbers, got {text[:40]!r}") from None

    def _number(self, cmd: _scpi.Command, low: float, high: float) -> float:
        values = self._floats(cmd.args)
        if values.size != 1:
            raise _SCPIFailure(-109, "Missing parameter" if values.size == 0 else "Parameter not allowed")
        if not low <= values[0] <= high:
            raise _SCPIFailure(-222, f"Data out of range; {values[0]:g} not in [{low:g}, {high:g}]")
        return float(values[0])

    def _integer(self, cmd: _scpi.Command, low: int, high: int) -> int:
        value = self._number(cmd, low, high)
        if value != int(value):
            raise _SCPIFailure(-104, f"Data type error; {value:g} is not an integer")
        return int(value)


class _Channel:
    """The instrument state a session drives: controls, record length (points), range (V), waveform, trace."""

    values: dict[str, torch.Tensor]
    points: int
    range: float
    waveform: np.ndarray | None
    trace: np.ndarray | None
    armed: bool


class _Session:
    """One client connection: its owner ``name``, its ``channel``, its error queue, a triggered ``job``."""

    def __init__(self, name: str, channel: _Channel) -> None:
        self.name, self.channel = name, channel
        self.errors: deque[str] = deque()
        self.job: Callable[[], np.ndarray] | None = None

    def error(self, code: int, message: str) -> None:
        if len(self.errors) >= 31:
            self.errors[-1] = '-350,"Queue overflow"'
            return
        self.errors.append(f'{code},"{message[:200]}"'.replace("\n", " "))


def _is_lock(header: str) -> bool:
    return header.lstrip(":").startswith(("SYST:LOCK:", "SYSTEM:LOCK:"))


class _SCPIFailure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


# -------------------------------------------------------------------- the CLI
def add_serve_parser(subparsers: Any) -> None:
    """Add ``physnn serve-instrument`` to the ``physnn`` command's subparsers."""
    p = subparsers.add_parser("serve-instrument", help="serve a simulated device as an SCPI instrument on TCP",
                              description="Answer the physnn-emulator SCPI dialect on HOST:PORT, backed by a "
                                          "registered device; drive it with VisaDevice(resource, "
                                          "profile='physnn-emulator').")
    p.add_argument("--device", required=True, help="registered device name (see `physnn devices`)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="device setting (repeatable)")
    p.add_argument("--port", type=int, default=5025, help="TCP port; 0 picks a free one (default 5025)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback only)")
    p.add_argument("--delay", type=int, default=16, help="trigger latency, samples (default 16)")
    p.add_argument("--max-volts", type=float, default=5.0, help="AWG output limit, volts (default 5)")
    p.add_argument("--range", type=float, default=5.0, dest="range_volts", help="digitizer full scale, volts")
    p.add_argument("--max-clients", type=int, default=256, help="most sessions at once (default 256)")
    p.add_argument("--independent-channels", action="store_true",
                   help="give every session its own instrument state (profile sharing = 'independent-channels')")
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from ...cli import parse_settings
    from .._registry import create

    settings = parse_settings(args.set)
    try:
        device = create(args.device, **settings)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, PhysnnError):
            raise
        raise ConfigurationError(f"serve-instrument: device {args.device!r} refused --set {settings}: {exc}") from exc
    try:
        emulator = InstrumentEmulator(device, host=args.host, port=args.port, delay=args.delay,
                                      max_volts=args.max_volts, range_volts=args.range_volts,
                                      max_clients=args.max_clients,
                                      independent_channels=args.independent_channels).start()
    except BaseException:
        device.close()
        raise
    print(f"physnn serve-instrument: {device._label()} listening on {emulator.resource} "
          "(profile 'physnn-emulator'); Ctrl-C stops", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("physnn serve-instrument: stopped", file=sys.stderr)
    finally:
        emulator.close()
        device.close()
    return 0
