"""The SCPI instrument emulator: any simulated physnn device behind an AWG + digitizer on a TCP socket.

``physnn serve-instrument --device NAME --port N`` (or :class:`InstrumentEmulator`
in Python) answers the dialect of the profile ``physnn-emulator``, so that
:class:`~physnn.devices.adapters.VisaDevice` drives a simulation through the
real PyVISA stack exactly as it drives a bench instrument:

=========================  ================================================================
command                    meaning
=========================  ================================================================
``*IDN?`` ``*RST``         identity, reset (controls to defaults, record length, range)
``*CLS`` ``SYST:ERR?``     clear / pop the error queue (``0,"No error"`` when empty)
``SYST:DESC?``             JSON: ``in_shape``, ``out_shape``, ``input_bounds``, ``delay``, ``max_points``,
                           ``controls``
``SOUR:DATA #<block>``     drive waveform, float32 little-endian volts (or comma-separated ASCII),
                           ``S * prod(in_shape)`` samples: one segment per batch sample
``ACQ:POIN n`` / ``?``     digitizer record length per segment, samples
``VOLT:RANG v`` / ``?``    digitizer full scale, +-v volts (int16 codes, clipped at +-32767)
``INIT`` ``*TRG``          arm, then trigger: every segment is played and recorded
``*OPC?``                  ``1`` once the acquisition is complete
``FETC:DATA?``             int16 little-endian block, ``S * points`` codes
``WAV:YINC?`` ``WAV:YOFF?``  volts per code, offset: ``volts = code * yinc + yoff``
``CTRL:<name> v[,v...]``   set a control of the simulated device (``CTRL:<name>?`` reads it)
=========================  ================================================================

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
from typing import Any

import numpy as np
import torch

from ...device import Device
from ...errors import ConfigurationError, PhysnnError
from . import _scpi

FULL_SCALE = 32767
FAULTS = ("drop", "stall", "garbage")


class InstrumentEmulator:
    """An SCPI AWG + digitizer on ``host:port`` whose "physics" is ``device``.

    Args:
        device: the simulated system (any :class:`~physnn.Device`).
        host: address to listen on; loopback by default.
        port: TCP port; 0 picks a free one (read it from :attr:`port`).
        delay: trigger latency, samples of silence before each recorded segment.
        max_volts: AWG output limit, volts (tightened by the device's own ``input_bounds``).
        range_volts: initial digitizer full scale, volts.
        max_points: AWG and digitizer memory, samples.
        max_line: longest text command accepted, bytes.
    """

    def __init__(self, device: Device, *, host: str = "127.0.0.1", port: int = 0, delay: int = 16,
                 max_volts: float = 5.0, range_volts: float = 5.0, max_points: int = 1 << 22,
                 max_line: int = 65536) -> None:
        self.device, self.host, self.port = device, host, int(port)
        self.delay, self.max_points, self.max_line = int(delay), int(max_points), int(max_line)
        lo, hi = device.input_bounds or (-math.inf, math.inf)
        self.input_bounds = (max(lo, -float(max_volts)), min(hi, float(max_volts)))
        self.initial_range = float(range_volts)
        self.dtype = torch.float64 if torch.float64 in device.dtypes else device.dtypes[0]
        self.errors: deque[str] = deque()
        self._faults: dict[str, int] = dict.fromkeys(FAULTS, 0)
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: OSError | None = None
        self._reset()

    # --------------------------------------------------------------- lifecycle
    @property
    def resource(self) -> str:
        """The VISA resource string of this emulator (pyvisa-py socket)."""
        return f"TCPIP::{self.host}::{self.port}::SOCKET"

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
        except OSError as exc:  # e.g. the port is taken
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
            self._loop.call_soon_threadsafe(lambda: [w.close() for w in list(self._writers)])

    def inject(self, fault: str, count: int = 1) -> None:
        """Misbehave on the next ``count`` occasions, to rehearse fault handling.

        ``"drop"``: close the session on receiving a command; ``"stall"``: send
        no reply to a query; ``"garbage"``: reply to a query with bytes that
        mean nothing.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose one of {list(FAULTS)}")
        self._faults[fault] += int(count)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            for w in list(self._writers):
                w.close()
            await server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writers.add(writer)
        parser = _scpi.Parser(self.max_line, 4 * self.max_points)
        try:
            while data := await reader.read(1 << 20):
                for item in parser.feed(data):
                    if self._take("drop"):
                        return
                    reply = self.handle(item)
                    if reply is None or self._take("stall"):
                        continue
                    writer.write(b"\x15\xfe?garbage\x00" if self._take("garbage") else reply)
                    writer.write(b"\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _take(self, fault: str) -> bool:
        if self._faults[fault] > 0:
            self._faults[fault] -= 1
            return True
        return False

    # ---------------------------------------------------------------- commands
    def handle(self, item: _scpi.Command | _scpi.ParseError) -> bytes | None:
        """Execute one parsed command; return the reply of a query (None otherwise). Never raises."""
        if isinstance(item, _scpi.ParseError):
            self._error(item.code, item.message)
            return None
        try:
            return self._dispatch(item)
        except _SCPIFailure as exc:
            self._error(exc.code, f"{exc.message}; {item.header}")
        except PhysnnError as exc:
            self._error(-222, f"Data out of range; {exc}")
        except Exception as exc:  # noqa: BLE001 - an instrument reports, it does not crash
            self._error(-300, f"Device-specific error; {type(exc).__name__}: {exc}")
        return None

    def _dispatch(self, cmd: _scpi.Command) -> bytes | None:
        h, m = cmd.header, _scpi.matches
        if h.startswith(("CTRL:", ":CTRL:")):
            return self._control(cmd)
        if m("*IDN?", h):
            return f"physnn,InstrumentEmulator({self.device.name}),0,1".encode()
        if m("*RST", h):
            self._reset()
        elif m("*CLS", h):
            self.errors.clear()
        elif m("*OPC?", h):
            return b"1"
        elif m("*WAI", h):
            pass
        elif m("SYSTem:ERRor?", h) or m("SYSTem:ERRor:NEXT?", h):
            return (self.errors.popleft() if self.errors else '0,"No error"').encode()
        elif m("SYSTem:DESCribe?", h):
            return self._describe().encode()
        elif m("SOURce:DATA", h):
            self._upload(cmd)
        elif m("ACQuire:POINts", h):
            self.points = self._integer(cmd, 1, self.max_points)
        elif m("ACQuire:POINts?", h):
            return str(self.points).encode()
        elif m("VOLTage:RANGe", h):
            self.range = self._number(cmd, 1e-3, 1e3)
        elif m("VOLTage:RANGe?", h):
            return repr(self.range).encode()
        elif m("INITiate", h):
            self.armed, self.trace = True, None
        elif m("*TRG", h):
            self._acquire()
        elif m("FETCh:DATA?", h):
            if self.trace is None:
                raise _SCPIFailure(-230, "Data corrupt or stale; no completed acquisition (send INIT and *TRG)")
            return _scpi.block(self.trace.astype("<i2").tobytes())
        elif m("WAVeform:YINCrement?", h):
            return repr(self.range / FULL_SCALE).encode()
        elif m("WAVeform:YOFFset?", h):
            return b"0.0"
        else:
            raise _SCPIFailure(-113, "Undefined header")
        return None

    def _reset(self) -> None:
        self.values = self.device.control_defaults(self.dtype)
        self.points = self.delay + math.prod(self.device.out_shape)
        self.range = self.initial_range
        self.waveform: np.ndarray | None = None
        self.armed, self.trace = False, None

    def _upload(self, cmd: _scpi.Command) -> None:
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
        self.waveform, self.trace = wave.reshape(-1, n), None

    def _acquire(self) -> None:
        if not self.armed:
            raise _SCPIFailure(-211, "Trigger ignored; digitizer not armed (send INIT first)")
        if self.waveform is None:
            raise _SCPIFailure(-221, "Settings conflict; no waveform uploaded (SOUR:DATA)")
        segments = self.waveform.shape[0]
        if segments * self.points > self.max_points:
            raise _SCPIFailure(-225, f"Out of memory; {segments} segments x {self.points} points")
        x = torch.as_tensor(self.waveform, dtype=self.dtype).reshape((segments,) + tuple(self.device.in_shape))
        with torch.no_grad():
            y = self.device(x, self.values).reshape(segments, -1).double().numpy()
        trace = np.zeros((segments, self.delay + y.shape[1]))
        trace[:, self.delay:] = y
        trace = np.pad(trace, ((0, 0), (0, max(0, self.points - trace.shape[1]))))[:, :self.points]
        self.trace = np.clip(np.round(trace / self.range * FULL_SCALE), -FULL_SCALE, FULL_SCALE).reshape(-1)
        self.armed = False

    def _control(self, cmd: _scpi.Command) -> bytes | None:
        query = cmd.is_query
        wanted = cmd.header.lstrip(":")[5:].rstrip("?").lower()
        spec = next((c for c in self.device.controls if c.name.lower() == wanted), None)
        if spec is None:
            raise _SCPIFailure(-113, f"Undefined header; no control {wanted!r} "
                                     f"(controls: {[c.name for c in self.device.controls]})")
        if query:
            return ",".join(repr(v) for v in self.values[spec.name].reshape(-1).tolist()).encode()
        values = self._floats(cmd.args)
        if values.size != max(1, math.prod(spec.shape)):
            raise _SCPIFailure(-109 if values.size < math.prod(spec.shape) else -108,
                               f"Parameter count; control {spec.name} takes {math.prod(spec.shape)} value(s), "
                               f"got {values.size}")
        if not np.isfinite(values).all() or values.min() < spec.low or values.max() > spec.high:
            raise _SCPIFailure(-222, f"Data out of range; control {spec.name} must lie in "
                                     f"[{spec.low:g}, {spec.high:g}] {spec.unit}")
        self.values[spec.name] = torch.as_tensor(values, dtype=self.dtype).reshape(spec.shape)
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

    def _error(self, code: int, message: str) -> None:
        if len(self.errors) >= 31:
            self.errors[-1] = '-350,"Queue overflow"'
            return
        self.errors.append(f'{code},"{message[:200]}"'.replace("\n", " "))


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
    p.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from ...cli import parse_settings
    from .._registry import create

    device = create(args.device, **parse_settings(args.set))
    emulator = InstrumentEmulator(device, host=args.host, port=args.port, delay=args.delay,
                                  max_volts=args.max_volts, range_volts=args.range_volts).start()
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
