"""Measurement records: what was sent to a device and what it answered, in one SQLite file.

:class:`physnn.devices.Recorded` writes a record through :class:`RecordWriter`;
:func:`load_record` reads it back as tensors. The file is plain SQLite 3 in WAL
mode, so any SQLite client (the ``sqlite3`` shell, Python's stdlib, pandas,
DuckDB, R) reads it without physnn. Why SQLite: one file, stdlib on both sides,
transactions make every call atomic (a call is in the file whole or not at
all), WAL with ``synchronous=NORMAL`` survives a killed process (not a power
cut: pass ``synchronous="FULL"`` for that), and several devices, threads or
processes may append to one file.

Schema (version 1)::

    meta(key TEXT PRIMARY KEY, value TEXT)
        -- format = 'physnn-record', version = '1', created = UTC ISO time
    devices(id INTEGER PRIMARY KEY, label TEXT, name TEXT, class TEXT, idn TEXT,
            describe TEXT, config TEXT, interface TEXT, first_seen REAL)
        -- one row per distinct identity of a recorded device: a new row when its
        -- describe() changes (another instrument answered *IDN?). label: the
        -- recording's name for the device (e.g. the layer's module path).
        -- describe, config (NULL when the device has no config(), {"unavailable":
        -- reason} when it refused), interface: JSON.
        -- interface = {in_shape, out_shape, controls: [{name, shape, low, high,
        -- unit, default, doc}], input_bounds, batched_controls, differentiable,
        -- stochastic, dtypes}; an infinite bound is JSON null.
    calls(id INTEGER PRIMARY KEY, device_id INTEGER REFERENCES devices(id),
          t_start REAL, t_end REAL, batch INTEGER,
          x_dtype TEXT, x_shape TEXT, x BLOB,
          y_dtype TEXT, y_shape TEXT, y BLOB,
          error_type TEXT, error_message TEXT)
        -- one row per call that reached the device, in call order. t_start,
        -- t_end: wall clock, UTC seconds since the Unix epoch. y columns are
        -- NULL and error_* set when the call raised.
    controls(call_id INTEGER REFERENCES calls(id), name TEXT, dtype TEXT,
             shape TEXT, value BLOB, PRIMARY KEY (call_id, name))
        -- the validated settings sent with each call: shape = the control's
        -- shape (one setting for the batch) or (batch, *shape) (per sample).

Tensors are stored as raw C-order bytes in the BLOB, with their NumPy dtype
string (``'<f4'``, ``'<f8'``: little-endian) and their shape as a JSON list:
``numpy.frombuffer(x, dtype=x_dtype).reshape(json.loads(x_shape))``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physnn.errors import RecordError

FORMAT, VERSION = "physnn-record", "1"

#: the SQLite schema of a record: its tables and columns, one statement per ``;``
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS devices (id INTEGER PRIMARY KEY, label TEXT NOT NULL, name TEXT NOT NULL,
    class TEXT NOT NULL, idn TEXT, describe TEXT NOT NULL, config TEXT, interface TEXT NOT NULL, first_seen REAL);
CREATE TABLE IF NOT EXISTS calls (id INTEGER PRIMARY KEY, device_id INTEGER NOT NULL REFERENCES devices(id),
    t_start REAL NOT NULL, t_end REAL NOT NULL, batch INTEGER NOT NULL,
    x_dtype TEXT NOT NULL, x_shape TEXT NOT NULL, x BLOB NOT NULL, y_dtype TEXT, y_shape TEXT, y BLOB,
    error_type TEXT, error_message TEXT);
CREATE TABLE IF NOT EXISTS controls (call_id INTEGER NOT NULL REFERENCES calls(id), name TEXT NOT NULL,
    dtype TEXT NOT NULL, shape TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (call_id, name)) WITHOUT ROWID;
"""

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def encode(t: torch.Tensor) -> tuple[str, str, memoryview]:
    """``(dtype, shape, bytes)`` of a tensor: NumPy dtype string, JSON shape, raw little-endian C-order bytes."""
    a = t.detach().cpu().numpy()
    if not a.flags.c_contiguous:
        a = a.copy()  # C order (np.ascontiguousarray would make a 0-d control 1-d)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return a.dtype.str, str(list(a.shape)), memoryview(a).cast("B")  # SQLite copies it: no copy here


def decode(dtype: str, shape: str, data: bytes) -> np.ndarray:
    """The array that :func:`encode` stored."""
    return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(json.loads(shape))


def to_json(value: Any) -> str:
    """JSON of a device description: tuples as lists, infinities as null, anything else by ``str``."""
    return json.dumps(_finite(value), sort_keys=True, default=str, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _connect(path: Path, *, create: bool) -> sqlite3.Connection:
    """A connection to a record, checked to be one (else :class:`RecordError` naming the file)."""
    if not create and not path.is_file():
        raise RecordError(f"measurement record {path}: no such file")
    try:
        con = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        if create and not _tables(con):
            con.execute("PRAGMA journal_mode = WAL")
            with _transaction(con):
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        con.execute(statement)
                con.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", [
                    ("format", FORMAT), ("version", VERSION),
                    ("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))])
        meta = dict(con.execute("SELECT key, value FROM meta")) if "meta" in _tables(con) else {}
    except sqlite3.DatabaseError as exc:
        raise RecordError(f"measurement record {path}: not a readable SQLite record ({exc}); expected a file "
                          f"written by physnn.devices.Recorded") from exc
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        con.close()
        raise RecordError(f"measurement record {path}: expected meta format={FORMAT!r} version={VERSION!r}, got "
                          f"format={meta.get('format')!r} version={meta.get('version')!r} (not a physnn record, "
                          "or one from another version)")
    return con


def _tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def __enter__(self) -> sqlite3.Connection:
        self.con.execute("BEGIN IMMEDIATE")
        return self.con

    def __exit__(self, kind: type | None, *exc: object) -> None:
        self.con.execute("COMMIT" if kind is None else "ROLLBACK")


class RecordWriter:
    """Appends devices and calls to a record file, one committed transaction per call.

    Thread-safe; a copy made by ``pickle`` or ``copy.deepcopy`` (a worker
    process, a pool) reopens the same file and appends to it.

    Args:
        path: the SQLite file; created with the schema if missing, appended to otherwise.
        synchronous: SQLite ``synchronous`` pragma: ``"NORMAL"`` survives a killed
            process, ``"FULL"`` also a power cut (slower: an fsync per call).
    """

    def __init__(self, path: str | os.PathLike, *, synchronous: str = "NORMAL") -> None:
        if synchronous.upper() not in _SYNCHRONOUS:
            raise RecordError(f"measurement record {path}: synchronous must be one of {list(_SYNCHRONOUS)}, "
                              f"got {synchronous!r}")
        self.path, self.synchronous = Path(path), synchronous.upper()
        self._con: sqlite3.Connection | None = _connect(self.path, create=True)
        self._con.execute(f"PRAGMA synchronous = {self.synchronous}")
        self._con.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer thread does it, off the call path
        self._lock = threading.Lock()
        self._checkpointer = _Checkpointer(self.path)

    def add_device(self, label: str, name: str, cls: str, describe: str, config: str | None, interface: str,
                   idn: str | None) -> int:
        """The id of this identity of a device (JSON texts as :data:`SCHEMA` documents), stored when new.

        An identity already in the file (the same device recorded again, e.g. by a resumed run or the
        next epoch of one) keeps its row: one row per distinct identity.
        """
        identity = (label, name, cls, idn, describe, config, interface)
        with self._writing() as con:
            found = con.execute("SELECT id FROM devices WHERE label = ? AND name = ? AND class = ? AND idn IS ? "
                                "AND describe = ? AND config IS ? AND interface = ? ORDER BY id LIMIT 1",
                                identity).fetchone()
            if found is not None:
                return int(found[0])
            cur = con.execute("INSERT INTO devices (label, name, class, idn, describe, config, interface, "
                              "first_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", identity + (time.time(),))
            return int(cur.lastrowid)

    def add_call(self, device_id: int, t_start: float, t_end: float, x: torch.Tensor,
                 controls: Mapping[str, torch.Tensor], y: torch.Tensor | None,
                 error: BaseException | None = None) -> int:
        """Store one call and commit it before returning; return its id. ``y`` is ``None`` when it raised."""
        y_cols = encode(y) if y is not None else (None, None, None)
        err = (type(error).__name__, str(error)) if error is not None else (None, None)
        rows = [(name,) + encode(v) for name, v in controls.items()]
        with self._writing() as con:
            cur = con.execute("INSERT INTO calls (device_id, t_start, t_end, batch, x_dtype, x_shape, x, y_dtype, "
                              "y_shape, y, error_type, error_message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                              (device_id, t_start, t_end, int(x.shape[0])) + encode(x) + y_cols + err)
            call_id = int(cur.lastrowid)
            con.executemany("INSERT INTO controls VALUES (?, ?, ?, ?, ?)", [(call_id,) + r for r in rows])
        return call_id

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One locked, committed transaction; a failed write raises :class:`RecordError` naming the file."""
        with self._lock:
            if self._con is None:
                raise RecordError(f"measurement record {self.path}: the writer is closed")
            try:
                with _transaction(self._con) as con:
                    yield con
            except sqlite3.Error as exc:
                raise RecordError(f"measurement record {self.path}: could not write ({exc})") from exc

    def close(self) -> None:
        """Close the file (idempotent); everything written is already committed."""
        with self._lock:
            if self._con is not None:
                self._checkpointer.stop()
                self._con.close()
                self._con = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "synchronous": self.synchronous}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], synchronous=state["synchronous"])  # type: ignore[misc]


class _Checkpointer:
    """Copies the write-ahead log into the database file every ``period`` seconds, in a thread of its own.

    SQLite would otherwise do it inside every thousandth commit, adding its
    cost to that device call; a crash loses nothing either way (the log is
    durable). ``stop`` checkpoints once more and truncates the log.
    """

    def __init__(self, path: Path, period: float = 0.5) -> None:
        self.path, self.period = path, float(period)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"physnn-record-checkpoint({path.name})", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(self.period):
                con.execute("PRAGMA wal_checkpoint(PASSIVE)")
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:  # busy or gone: the log stays valid and the next open checkpoints it
            pass
        finally:
            con.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30.0)


@dataclass(frozen=True)
class RecordedIdentity:
    """One identity of a recorded device (a row of the ``devices`` table); JSON columns parsed."""

    id: int
    label: str
    name: str
    cls: str
    idn: str | None
    describe: dict[str, Any]
    config: Any
    interface: dict[str, Any]


@dataclass
class Record:
    """The calls of a record (or of one device in it), as tensors.

    Per call (``C`` calls in call order, failed ones included): ``call_ids``,
    ``call_device`` (identity id, a key of ``devices``), ``t_start``/``t_end``
    (UTC seconds, float64), ``batch`` and ``errors`` (``(type, message)`` or
    ``None``). Per sample of the calls that returned (``N`` samples):
    ``inputs`` ``(N, *in_shape)``, ``controls`` name -> ``(N, *shape)`` (a
    setting shared by a batch repeated per sample), ``outputs``
    ``(N, *out_shape)`` and ``sample_call`` (index into the per-call arrays).
    Failed calls' drives stay in the file (``calls.x``).
    """

    path: Path
    devices: dict[int, RecordedIdentity]
    call_ids: torch.Tensor
    call_device: torch.Tensor
    t_start: torch.Tensor
    t_end: torch.Tensor
    batch: torch.Tensor
    errors: list[tuple[str, str] | None]
    inputs: torch.Tensor
    controls: dict[str, torch.Tensor]
    outputs: torch.Tensor
    sample_call: torch.Tensor
    labels: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The one device label of this record; :class:`RecordError` when it holds several."""
        if len(self.labels) != 1:
            raise RecordError(f"measurement record {self.path} holds devices {self.labels}; "
                              "choose one with device=<label>")
        return self.labels[0]

    @property
    def interface(self) -> dict[str, Any]:
        """The recorded device's interface (shapes, controls, bounds); :class:`RecordError` when they differ."""
        interfaces = {to_json(d.interface) for d in self.devices.values()}
        if len(interfaces) != 1:
            raise RecordError(f"measurement record {self.path}: devices {self.labels} have different interfaces; "
                              "choose one with device=<label>")
        return next(iter(self.devices.values())).interface


def load_record(path: str | os.PathLike, device: str | int | None = None) -> Record:
    """Read a measurement record written by :class:`physnn.devices.Recorded`.

    Args:
        path: the record file.
        device: keep only the calls of this device: its label (``str``) or an
            identity id (``int``, a ``devices.id``); default every call.

    Raises:
        RecordError: naming the file when it is missing, not a physnn record,
            corrupt, when ``device`` matches nothing, or when the selected calls'
            samples have different shapes or controls (choose one device).
    """
    path = Path(path)
    con = _connect(path, create=False)
    try:
        return _read(con, path, device)
    except RecordError:
        raise
    except (sqlite3.DatabaseError, ValueError, KeyError, TypeError) as exc:
        raise RecordError(f"measurement record {path}: corrupt content ({type(exc).__name__}: {exc})") from exc
    finally:
        con.close()


def _read(con: sqlite3.Connection, path: Path, device: str | int | None) -> Record:
    where, args = ("", ()) if device is None else \
        (("WHERE d.label = ?", (device,)) if isinstance(device, str) else ("WHERE d.id = ?", (int(device),)))
    identities = {row[0]: RecordedIdentity(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]),
                                           None if row[6] is None else json.loads(row[6]), json.loads(row[7]))
                  for row in con.execute("SELECT id, label, name, class, idn, describe, config, interface "
                                         f"FROM devices d {where} ORDER BY id", args)}
    if device is not None and not identities:
        labels = [r[0] for r in con.execute("SELECT DISTINCT label FROM devices ORDER BY id")]
        raise RecordError(f"measurement record {path}: no device {device!r}; it holds {labels}")
    calls = con.execute("SELECT c.id, c.device_id, c.t_start, c.t_end, c.batch, c.x_dtype, c.x_shape, c.x, "
                        f"c.y_dtype, c.y_shape, c.y, c.error_type, c.error_message FROM calls c JOIN devices d "
                        f"ON d.id = c.device_id {where} ORDER BY c.id", args).fetchall()
    settings: dict[int, dict[str, np.ndarray]] = {}
    for call_id, name, dtype, shape, value in con.execute(
            f"SELECT k.call_id, k.name, k.dtype, k.shape, k.value FROM controls k JOIN calls c ON c.id = k.call_id "
            f"JOIN devices d ON d.id = c.device_id {where}", args):
        settings.setdefault(call_id, {})[name] = decode(dtype, shape, value)
    ok = [(i, c) for i, c in enumerate(calls) if c[10] is not None]
    xs = [decode(c[5], c[6], c[7]) for _, c in ok]
    ys = [decode(c[8], c[9], c[10]) for _, c in ok]
    labels = list(dict.fromkeys(d.label for d in identities.values()))
    for name, parts in (("inputs", xs), ("outputs", ys)):
        if len({a.shape[1:] for a in parts}) > 1:
            raise RecordError(f"measurement record {path}: the selected calls' {name} have different shapes "
                              f"{sorted({a.shape[1:] for a in parts})}; choose one with device=<label>: it holds "
                              f"devices {labels}")
    controls = _per_sample(path, ok, settings, identities, labels)
    sample_call = np.repeat([i for i, _ in ok], [len(x) for x in xs]).astype(np.int64)
    return Record(
        path=path, devices=identities,
        call_ids=torch.tensor([c[0] for c in calls], dtype=torch.int64),
        call_device=torch.tensor([c[1] for c in calls], dtype=torch.int64),
        t_start=torch.tensor([c[2] for c in calls], dtype=torch.float64),
        t_end=torch.tensor([c[3] for c in calls], dtype=torch.float64),
        batch=torch.tensor([c[4] for c in calls], dtype=torch.int64),
        errors=[None if c[11] is None else (c[11], c[12]) for c in calls],
        inputs=_cat(xs), controls=controls, outputs=_cat(ys), sample_call=torch.from_numpy(sample_call),
        labels=labels)


def _per_sample(path: Path, ok: list[tuple[int, tuple]], settings: dict[int, dict[str, np.ndarray]],
                identities: dict[int, RecordedIdentity], labels: list[str]) -> dict[str, torch.Tensor]:
    """Each control's settings repeated per sample, ``(N, *shape)``."""
    names = {tuple(sorted(settings.get(c[0], {}))) for _, c in ok}
    if len(names) > 1:
        raise RecordError(f"measurement record {path}: the selected calls have different controls {sorted(names)}; "
                          f"choose one with device=<label>: it holds devices {labels}")
    shapes = {c["name"]: tuple(c["shape"]) for d in identities.values() for c in d.interface["controls"]}
    out = {}
    for name in (names.pop() if names else ()):
        parts = []
        for _, c in ok:
            v, batch = settings[c[0]][name], c[4]
            parts.append(np.broadcast_to(v, (batch,) + v.shape) if v.shape == shapes[name] else v)
        out[name] = _cat(parts)
    return out


def _cat(parts: list[np.ndarray]) -> torch.Tensor:
    if not parts:
        return torch.empty(0)
    return torch.from_numpy(np.concatenate(parts))
