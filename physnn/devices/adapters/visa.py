"""VisaDevice: an arbitrary-waveform generator and a digitizer, driven over PyVISA with SCPI.

One forward call plays every sample of the batch as one segment of a single
upload, records one segment per sample (segmented acquisition), and cuts each
response window out of its segment:

1. set the controls (``controls.set``): every call (``verify = "resend"``), or
   when changed and then read back and compared (``"readback"``),
2. upload the drive, ``S * prod(in_shape)`` volts (``awg.upload``),
3. set the record length ``delay + prod(out_shape)`` (``digitizer.points``), every call,
4. arm the digitizer, trigger the AWG, wait for completion (``*OPC?``),
5. read the error queues (an entry raises :class:`InstrumentError`),
6. fetch ``S * points`` codes, check for clipping, scale to volts
   (``code * y_increment + y_offset``, re-read every call), cut ``[delay, delay + prod(out_shape))``.

Nothing set by an earlier call is trusted: another session, a front-panel user
or a reset may have changed it. A session that controls an instrument holds it
exclusively (profile ``[lock]``: the VISA exclusive lock where the backend has
one, and the instrument's SCPI lock); a second one gets
:class:`~physnn.errors.DeviceBusyError` naming the holder.

Batches larger than the instruments' memory are split. The SCPI dialect is a
profile file (:mod:`._profile`), so a new instrument needs no Python.
Timeouts, dropped sessions and unreadable replies are retried with exponential
backoff over a fresh session; errors name the instrument, the command and the reply.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import re
import socket
import struct
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...device import Control, Device
from ...errors import (
    ConfigurationError,
    ControlReadbackError,
    DeviceBusyError,
    DeviceConnectionError,
    DeviceTimeoutError,
    InstrumentError,
    InstrumentReplyError,
    RecordingError,
)
from ._profile import load_profile, profile_sha256

log = logging.getLogger("physnn.devices.adapters")
_SESSION_IDS = itertools.count(1)
_SCPI_ERROR = re.compile(r'^[+-]?\d+,"')  # an error-queue entry, e.g. -310,"System error; ..."


class VisaDevice(Device):
    """A physical system between an AWG output and a digitizer input, as a black-box device.

    Args:
        resource: VISA resource of the AWG (or the one instrument doing both),
            e.g. ``"TCPIP::192.168.1.20::INSTR"`` or ``"TCPIP::127.0.0.1::5025::SOCKET"``.
        profile: the instruments' SCPI dialect: a shipped profile name
            (``"physnn-emulator"``), a TOML path, or a dict of the same form.
        digitizer: VISA resource of a separate digitizer (default: ``resource``).
        in_shape, out_shape: shape of one drive and one response; default from
            the profile's ``describe`` query. Drives are in volts.
        delay: samples from the trigger to the response (default from the
            profile or ``describe``).
        backend: PyVISA backend: ``"@py"`` (pyvisa-py), ``"@ivi"``, or
            ``"file.yaml@sim"`` (pyvisa-sim).
        timeout_ms: per-command timeout (default from the profile).
        retries, backoff: extra attempts after a timeout, dropped session or
            unreadable reply, and the first wait in seconds (doubling each time).
        max_segments: most samples per acquisition (default: what fits in memory).
        lock_wait_s: how long to wait for an instrument another session holds,
            seconds; 0 (default) raises :class:`~physnn.errors.DeviceBusyError` at once.
        name: name used in messages and ``describe()``.

    The session opens on construction (failing fast, with the reason), takes
    the instrument's lock as :attr:`owner` (``host:pid:session``) unless the
    profile declares ``sharing = "independent-channels"``, and reopens (and
    re-locks) by itself after a failure. ``close()`` releases both.
    """

    differentiable = False
    not_rebuildable = "it drives a live instrument session; open the instrument yourself"

    def __init__(self, resource: str, profile: str | Path | Mapping[str, Any] = "physnn-emulator", *,
                 digitizer: str | None = None, in_shape: Sequence[int] | None = None,
                 out_shape: Sequence[int] | None = None, delay: int | None = None, backend: str = "@py",
                 timeout_ms: int | None = None, retries: int = 3, backoff: float = 0.05,
                 max_segments: int | None = None, lock_wait_s: float = 0.0, name: str | None = None,
                 seed: int | None = None) -> None:
        super().__init__(seed=seed)
        self.profile = load_profile(profile)
        self.profile_sha256 = profile_sha256(self.profile)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{next(_SESSION_IDS)}"
        self.lock_wait_s = float(lock_wait_s)
        self.resource, self.digitizer_resource = resource, digitizer or resource
        self.backend, self.retries, self.backoff = backend, int(retries), float(backoff)
        self.timeout_ms = int(timeout_ms or self.profile["connection"]["timeout_ms"])
        self.name = name or self.profile["instrument"]["name"] or "visa"
        self.idn = ""
        self._manager: Any = None
        self._awg: _Session | None = None
        self._dig: _Session | None = None
        self._sent: dict[str, np.ndarray] = {}
        try:
            self._connect()
            self._configure(in_shape, out_shape, delay, max_segments)
        except BaseException:
            self.close()
            raise

    def _configure(self, in_shape: Sequence[int] | None, out_shape: Sequence[int] | None, delay: int | None,
                   max_segments: int | None) -> None:
        found = self._describe()
        self.in_shape = _shape(in_shape if in_shape is not None else found.get("in_shape"), "in_shape", self)
        self.out_shape = _shape(out_shape if out_shape is not None else found.get("out_shape"), "out_shape", self)
        dig = self.profile["digitizer"]
        self.delay = int(delay if delay is not None else found.get("delay", dig["delay"]))
        bounds = found.get("input_bounds")
        limit = float(self.profile["awg"]["max_volts"])
        self.input_bounds = (float(bounds[0]), float(bounds[1])) if bounds else (-limit, limit)
        self.controls = tuple(self._knobs(found.get("controls")))
        self.points = self.delay + math.prod(self.out_shape)
        memory = int(found.get("max_points", min(self.profile["awg"]["max_points"], dig["max_points"])))
        awg_memory, dig_memory = min(memory, self.profile["awg"]["max_points"]), min(memory, dig["max_points"])
        fits = min(awg_memory // math.prod(self.in_shape), dig_memory // self.points)
        if fits < 1:
            raise ConfigurationError(f"{self._label()}: one segment ({math.prod(self.in_shape)} drive samples, "
                                     f"{self.points} record points) does not fit the instruments' memory")
        self.max_segments = min(fits, int(max_segments)) if max_segments else fits

    # ------------------------------------------------------------- forward
    def _forward(self, x: torch.Tensor, controls: dict[str, torch.Tensor]) -> torch.Tensor:
        drive = x.detach().cpu().double().reshape(x.shape[0], -1).numpy()
        settings = {k: v.detach().cpu().double().numpy() for k, v in controls.items()}
        parts = [self._with_retries(drive[i:i + self.max_segments], settings)
                 for i in range(0, drive.shape[0], self.max_segments)]
        y = torch.as_tensor(np.concatenate(parts), dtype=x.dtype, device=x.device)
        return y.reshape((x.shape[0],) + tuple(self.out_shape))

    def _with_retries(self, drive: np.ndarray, settings: dict[str, np.ndarray]) -> np.ndarray:
        attempt = 0
        while True:
            try:
                return self._acquire(drive, settings)
            except DeviceBusyError:
                self._disconnect()
                raise
            except (DeviceConnectionError, InstrumentReplyError) as exc:
                self._disconnect()
                if attempt == self.retries:
                    raise type(exc)(f"{exc} [gave up after {attempt + 1} attempt(s), each over a fresh "
                                    "session]") from exc
                wait = self.backoff * 2**attempt
                log.warning("%s: %s; reconnecting and retrying in %.3g s", self._label(), exc, wait)
                time.sleep(wait)
                attempt += 1

    def _acquire(self, drive: np.ndarray, settings: dict[str, np.ndarray]) -> np.ndarray:
        if self._awg is None:
            self._connect()
        awg, dig, p = self._awg, self._dig, self.profile
        assert awg is not None and dig is not None
        self._set_controls(awg, settings)
        awg.write_values(p["awg"]["upload"], drive.reshape(-1), p["awg"])
        if p["digitizer"]["points"]:
            dig.write(p["digitizer"]["points"].format(points=self.points))
        for cmd in p["digitizer"]["arm"]:
            dig.write(cmd)
        for cmd in p["awg"]["trigger"]:
            awg.write(cmd)
        if p["digitizer"]["wait"]:
            reply = dig.query(p["digitizer"]["wait"]).strip()
            if reply != p["digitizer"]["wait_reply"]:
                raise InstrumentReplyError(f"{dig.label}: {p['digitizer']['wait']!r} answered {reply!r}, "
                                           f"expected {p['digitizer']['wait_reply']!r}")
        self._check_errors()
        codes = dig.query_values(p["digitizer"]["fetch"], p["digitizer"])
        self._check_errors()
        segments = drive.shape[0]
        if codes.size != segments * self.points:
            raise InstrumentReplyError(f"{dig.label}: {p['digitizer']['fetch']!r} returned {codes.size} points, "
                                       f"expected {segments} segments x {self.points}")
        full = p["digitizer"]["full_scale"]
        if full and np.abs(codes).max() >= full:
            raise RecordingError(f"{dig.label}: the recording clipped (codes reached +-{full}); lower the drive "
                                 "or raise the digitizer range")
        inc, off = dig.number(p["digitizer"]["y_increment"]), dig.number(p["digitizer"]["y_offset"])
        trace = codes.reshape(segments, self.points).astype(np.float64) * inc + off
        return trace[:, self.delay:]

    # ------------------------------------------------------------ session
    def _connect(self) -> None:
        try:
            import pyvisa
        except ImportError as exc:
            raise ConfigurationError(f"{self._label()} needs PyVISA: pip install 'physnn[lab]' "
                                     "(pyvisa and the pure-Python backend pyvisa-py)") from exc

        if self._manager is None:
            try:
                self._manager = pyvisa.ResourceManager(self.backend)
            except (OSError, ValueError, pyvisa.errors.Error) as exc:
                raise ConfigurationError(f"{self._label()}: PyVISA backend {self.backend!r} unavailable: {exc}; "
                                         "install pyvisa-py (pip install 'physnn[lab]')") from exc
        conn, inst = self.profile["connection"], self.profile["instrument"]
        self._awg = _Session(self._manager, self.resource, conn, self.timeout_ms, self.name)
        self._dig = self._awg
        if self.digitizer_resource != self.resource:
            self._dig = _Session(self._manager, self.digitizer_resource, conn, self.timeout_ms, self.name)
        self._sent = {}
        for session in self._sessions():
            if inst["identify"]:
                session.idn = session.query(inst["identify"]).strip()
                if _SCPI_ERROR.match(session.idn):
                    raise DeviceBusyError(f"{session.label} refused the session: {inst['identify']!r} answered "
                                          f"{session.idn!r} (too many sessions open? close some, or raise the "
                                          "instrument's limit)")
                if inst["expect_idn"] and inst["expect_idn"] not in session.idn:
                    raise InstrumentError(f"{session.label}: {inst['identify']!r} answered {session.idn!r}, which "
                                          f"lacks {inst['expect_idn']!r}: wrong instrument for this profile?")
            if inst["sharing"] == "exclusive":
                session.lock(self.owner, self.profile["lock"], self.lock_wait_s)
            for cmd in inst["reset"]:
                session.write(cmd)
        self.idn = self._awg.idn
        for cmd in self.profile["awg"]["setup"]:
            self._awg.write(cmd)
        for cmd in self.profile["digitizer"]["setup"]:
            self._dig.write(cmd)
        self._check_errors()

    def _sessions(self) -> list[_Session]:
        """The open sessions, each once (generator and digitizer may share one)."""
        return list({id(s): s for s in (self._awg, self._dig) if s is not None}.values())

    def _disconnect(self) -> None:
        for session in self._sessions():
            session.close(self.profile["lock"])
        self._awg = self._dig = None

    def close(self) -> None:
        """Release the instrument's lock and close the sessions.

        The PyVISA resource manager is shared by every session of the process
        (closing it would close other devices' sessions too); PyVISA closes it at exit.
        """
        self._disconnect()
        self._manager = None

    def exclusive_resources(self) -> tuple[str, ...]:
        """The instruments this device holds locked: ``()`` if the profile declares independent channels."""
        if self.profile["instrument"]["sharing"] == "independent-channels":
            return ()
        return tuple(dict.fromkeys((self.resource, self.digitizer_resource)))

    def _describe(self) -> dict[str, Any]:
        query = self.profile["instrument"]["describe"]
        if not query:
            return {}
        assert self._awg is not None
        reply = self._awg.query(query)
        try:
            found = json.loads(reply)
        except json.JSONDecodeError as exc:
            raise InstrumentReplyError(f"{self._awg.label}: {query!r} answered {reply[:80]!r}, not JSON") from exc
        if not isinstance(found, dict):
            raise InstrumentReplyError(f"{self._awg.label}: {query!r} answered {reply[:80]!r}, not a JSON object")
        return found

    def _check_errors(self) -> None:
        query, ok = self.profile["instrument"]["error_query"], self.profile["instrument"]["no_error"]
        if not query:
            return
        for session in self._sessions():
            entries = []
            for _ in range(32):
                reply = session.query(query).strip()
                if reply.startswith(ok) and not reply[len(ok):len(ok) + 1].isdigit():
                    break
                entries.append(reply)
            if entries:
                raise InstrumentError(f"{session.label} reported {entries} (error queue {query!r}) after "
                                      f"{session.recent()}")

    # ------------------------------------------------------------ controls
    def _knobs(self, described: list[dict[str, Any]] | None) -> list[Control]:
        declared = list(self.profile["controls"]["knob"]) + list(described or [])
        knobs = []
        for spec in declared:
            fields = {k: spec[k] for k in ("shape", "low", "high", "unit", "default", "doc") if k in spec}
            knobs.append(Control(spec["name"], **fields))
            if not (spec.get("set") or self.profile["controls"]["set"]):
                raise ConfigurationError(f"{self._label()}: control {spec['name']!r} has no SCPI command; give "
                                         "the profile [controls] set = '...{name} {value}' or the knob a 'set'")
        self._templates = {s["name"]: s.get("set") or self.profile["controls"]["set"] for s in declared}
        return knobs

    def _set_controls(self, awg: _Session, settings: dict[str, np.ndarray]) -> None:
        """Make the instrument's controls ``settings``: resend them all, or send changes and read every one back."""
        spec = self.profile["controls"]
        readback = spec["verify"] == "readback"
        for knob in self.controls:
            value = settings[knob.name]
            if not readback or knob.name not in self._sent or not np.array_equal(self._sent[knob.name], value):
                awg.write(self._set_command(knob, value))
                self._sent[knob.name] = value.copy()
            if readback:
                self._read_back(awg, knob, value, spec)

    def _read_back(self, awg: _Session, knob: Control, value: np.ndarray, spec: dict[str, Any]) -> None:
        query = spec["query"].format(name=knob.name)
        reply = awg.query(query).strip()
        try:
            read = np.array([float(v) for v in reply.split(",")])
        except ValueError:
            raise InstrumentReplyError(f"{awg.label}: {query!r} answered {reply[:80]!r}, not comma-separated "
                                       "numbers") from None
        if read.size != value.size or np.abs(read - value.reshape(-1)).max() > spec["tolerance"]:
            self._sent.clear()  # nothing we sent can be trusted now: the next call sends everything again
            raise ControlReadbackError(f"{awg.label}: control {knob.name!r} was set to "
                                       f"{value.reshape(-1).tolist()} but {query!r} reads {reply[:200]!r} "
                                       f"(tolerance {spec['tolerance']:g}); another session or the front "
                                       "panel changed it?")

    def _set_command(self, knob: Control, value: np.ndarray) -> str:
        text: Any = float(value) if knob.shape == () else ",".join(f"{v:.9g}" for v in value.reshape(-1))
        return self._templates[knob.name].format(name=knob.name, value=text)

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(resource=self.resource, digitizer=self.digitizer_resource, idn=self.idn, delay=self.delay,
                    owner=self.owner, sharing=self.profile["instrument"]["sharing"],
                    profile_sha256=self.profile_sha256)
        return info


class _Session:
    """One open VISA session, translating every failure into a physnn error naming instrument, command, reply."""

    def __init__(self, manager: Any, resource: str, conn: dict[str, Any], timeout_ms: int, name: str) -> None:
        import pyvisa

        self.resource, self.idn, self.name, self._log = resource, "", name, []
        self.visa_locked = self.scpi_locked = False
        try:
            self.inst = manager.open_resource(resource, read_termination=conn["read_termination"],
                                              write_termination=conn["write_termination"], timeout=timeout_ms)
        except (pyvisa.errors.VisaIOError, OSError, ValueError) as exc:
            raise DeviceConnectionError(f"{self.label}: cannot open the VISA session: {exc}") from exc
        self.inst.chunk_size = int(conn["chunk_size"])
        if conn["nodelay"]:
            _set_nodelay(self.inst)

    @property
    def label(self) -> str:
        who = self.idn or self.name
        return f"instrument {who!r} at {self.resource}"

    def recent(self) -> list[str]:
        """The last commands sent (for error messages)."""
        return self._log[-8:]

    def _call(self, command: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import pyvisa

        self._log.append(command.strip())
        del self._log[:-16]
        try:
            return fn(*args, **kwargs)
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                raise DeviceTimeoutError(f"{self.label}: no reply to {command.strip()!r} within "
                                         f"{self.inst.timeout:g} ms") from exc
            raise DeviceConnectionError(f"{self.label}: session failed during {command.strip()!r}: {exc}") from exc
        except (OSError, EOFError) as exc:
            raise DeviceConnectionError(f"{self.label}: connection lost during {command.strip()!r}: "
                                        f"{type(exc).__name__}: {exc}") from exc

    def write(self, command: str) -> None:
        self._call(command, self.inst.write, command)

    def query(self, command: str) -> str:
        try:
            return self._call(command, self.inst.query, command)
        except UnicodeDecodeError as exc:
            raise InstrumentReplyError(f"{self.label}: reply to {command!r} is not text: {exc.object[:40]!r}") from exc

    def number(self, setting: str | float) -> float:
        """A number given in the profile, or the reply to the query given there."""
        if not isinstance(setting, str):
            return float(setting)
        reply = self.query(setting)
        try:
            return float(reply)
        except ValueError:
            raise InstrumentReplyError(f"{self.label}: {setting!r} answered {reply[:80]!r}, not a number") from None

    def write_values(self, prefix: str, values: np.ndarray, spec: dict[str, Any]) -> None:
        if spec["format"] == "ascii":
            self.write(prefix + ",".join(f"{v:.9g}" for v in values))
            return
        self._call(f"{prefix}<{values.size} x {spec['datatype']}>", self.inst.write_binary_values, prefix,
                   values, datatype=spec["datatype"], is_big_endian=spec["big_endian"])

    def query_values(self, command: str, spec: dict[str, Any]) -> np.ndarray:
        if spec["format"] == "ascii":
            reply = self.query(command)
            try:
                return np.array([float(v) for v in reply.split(",")])
            except ValueError:
                raise InstrumentReplyError(f"{self.label}: {command!r} answered {reply[:80]!r}, not "
                                           "comma-separated numbers") from None
        self.write(command)
        payload = self._call(command, self._read_block, command)
        size = struct.calcsize(spec["datatype"])
        if len(payload) % size:
            raise InstrumentReplyError(f"{self.label}: {command!r} answered a block of {len(payload)} bytes, not a "
                                       f"whole number of {spec['datatype']!r} values ({size} bytes each)")
        order = ">" if spec["big_endian"] else "<"
        return np.frombuffer(payload, dtype=np.dtype(order + spec["datatype"]))

    def _read_block(self, command: str) -> bytes:
        """An IEEE 488.2 block ``#<n><length><payload>`` and its terminator, read by count.

        The termination character is switched off meanwhile: binary data holds
        newline bytes, and reading by count avoids splitting the transfer at each.
        """
        import pyvisa

        attribute = pyvisa.constants.ResourceAttribute.termchar_enabled
        self.inst.set_visa_attribute(attribute, False)
        try:
            head = bytes(self.inst.read_bytes(2))
            digits = head[1:2]
            if head[:1] != b"#" or not digits.isdigit() or digits == b"0":
                raise InstrumentReplyError(f"{self.label}: {command!r} answered {head + self._peek()!r}, not an "
                                           "IEEE 488.2 block (#<n><length><bytes>)")
            length = bytes(self.inst.read_bytes(int(digits)))
            if not length.isdigit():
                raise InstrumentReplyError(f"{self.label}: {command!r} answered a block whose length field is "
                                           f"{length!r}")
            payload = bytes(self.inst.read_bytes(int(length) + len(self.inst.read_termination or "")))
        finally:
            self.inst.set_visa_attribute(attribute, True)
        return payload[:int(length)]

    def _peek(self) -> bytes:
        """Whatever else is waiting to be read (at most 40 bytes, 50 ms), for error messages."""
        timeout, self.inst.timeout = self.inst.timeout, 50
        try:
            return bytes(self.inst.read_bytes(40, break_on_termchar=True))
        except Exception:  # noqa: BLE001 - best effort: the session is reopened after this error anyway
            return b""
        finally:
            self.inst.timeout = timeout

    def lock(self, owner: str, spec: dict[str, Any], wait_s: float) -> None:
        """Hold the instrument exclusively as ``owner``, waiting up to ``wait_s`` seconds; else DeviceBusyError."""
        import pyvisa

        if spec["visa"]:
            try:
                self.inst.lock_excl(int(wait_s * 1000))
                self.visa_locked = True
            except NotImplementedError:
                pass  # pyvisa-sim: no locks
            except pyvisa.errors.VisaIOError as exc:
                if exc.error_code == pyvisa.constants.StatusCode.error_resource_locked:
                    raise DeviceBusyError(f"{self.label} is locked by another VISA session (waited "
                                          f"{wait_s:g} s); close it, or pass lock_wait_s=...") from exc
                if exc.error_code != pyvisa.constants.StatusCode.error_nonsupported_operation:
                    raise DeviceConnectionError(f"{self.label}: the VISA exclusive lock failed: {exc}") from exc
        if not spec["request"]:
            return
        if spec["name"]:
            self.write(spec["name"].format(owner=owner))
        deadline = time.monotonic() + wait_s
        while (reply := self.query(spec["request"]).strip()) != spec["granted"]:
            if time.monotonic() >= deadline:
                holder = self.query(spec["owner"]).strip() if spec["owner"] else "unknown (no owner query)"
                raise DeviceBusyError(f"{self.label} is held by {holder} ({spec['request']!r} answered {reply!r} "
                                      f"after {wait_s:g} s); close that session, or pass lock_wait_s=... to wait")
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        self.scpi_locked = True

    def close(self, lock: dict[str, Any]) -> None:
        """Release the locks (best effort: the session may already be dead) and close the session."""
        try:
            if self.scpi_locked and lock["release"]:
                self.inst.write(lock["release"])
                if lock["owner"]:  # answered after the release: the instrument is free when close() returns
                    self.inst.query(lock["owner"])
            if self.visa_locked:
                self.inst.unlock()
        except Exception as exc:  # noqa: BLE001 - a dead session released its locks with it
            log.debug("releasing %s: %s", self.label, exc)
        try:
            self.inst.close()
        except Exception as exc:  # noqa: BLE001 - closing a dead session must not mask the original failure
            log.debug("closing %s: %s", self.label, exc)


def _set_nodelay(inst: Any) -> None:
    """Disable Nagle on a pyvisa-py socket session (binary transfers ~5x faster); other backends are left alone."""
    session = getattr(inst.visalib, "sessions", {}).get(inst.session)
    sock = getattr(getattr(session, "interface", None), "setsockopt", None)
    if sock is not None:
        sock(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _shape(value: Sequence[int] | None, what: str, device: VisaDevice) -> tuple[int, ...]:
    if value is None:
        raise ConfigurationError(f"{device._label()}: give {what}=... (the profile has no 'describe' query "
                                 "that reports it)")
    shape = tuple(int(s) for s in value)
    if not shape or min(shape) < 1:
        raise ConfigurationError(f"{device._label()}: {what} must be a non-empty shape of positive sizes, got {shape}")
    return shape
