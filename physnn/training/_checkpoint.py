"""Verified checkpoint files: a one-line header with the SHA-256 of the payload, then a ``torch.save`` payload.

Layout (``head -1 checkpoint.pt`` shows the header)::

    physnn-checkpoint 2 sha256=<64 hex digits>\\n
    <the bytes of torch.save(state)>

Every byte after the header is covered by the digest and every byte of the
header is checked, so a truncated, empty or altered file never loads: it
raises :class:`~physnn.errors.CheckpointError` naming the file. The payload is
read with ``torch.load(weights_only=True)`` (tensors and plain containers only;
nothing arbitrary is unpickled). Audit a file without physnn:
``tail -c +$(( $(head -1 checkpoint.pt | wc -c) + 1 )) checkpoint.pt | sha256sum``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from .._atomic import atomic_write
from .._framing import corruption, frame, no_header, unframe
from ..errors import CheckpointError

VERSION = 2
KIND = "physnn-checkpoint"


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any], *, keep_previous: bool = True) -> Path:
    """Write ``state`` to ``path`` with its digest; the file it replaces becomes ``<stem>.prev<suffix>``.

    Each rename is atomic: a crash leaves the new file, or the old one (as
    ``path`` or, between the two renames, as the previous file).
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    framed = frame(KIND, VERSION, buffer.getvalue())
    tmp = atomic_write(path.with_name(f".{path.name}.new"), lambda f: f.write(framed))
    if keep_previous and path.exists():
        os.replace(path, previous_of(path))
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The state saved by ``save_checkpoint``, after checking its digest; :class:`CheckpointError` otherwise."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc}") from exc
    return verified_state(data, path)


def verified_state(data: bytes, path: Path) -> dict[str, Any]:
    """The state held by the bytes ``data`` of the checkpoint file ``path`` (named in errors)."""
    if (framed := unframe(KIND, data)) is None:
        raise CheckpointError(_advice(path, f"{no_header(KIND, data)}; it was truncated, overwritten, or written by "
                                            "physnn < 0.2"))
    version, digest, payload = framed
    if version != VERSION:
        raise CheckpointError(_advice(path, f"has format {version}; this physnn reads format {VERSION}"))
    if problem := corruption(payload, digest):
        raise CheckpointError(_advice(path, problem))
    try:
        state = torch.load(io.BytesIO(payload), weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a verified payload that torch cannot read is still the file's fault
        raise CheckpointError(_advice(path, f"passed its digest but torch cannot read it: {exc}")) from exc
    if not isinstance(state, dict):
        raise CheckpointError(_advice(path, f"holds a {type(state).__name__}, not a checkpoint dict"))
    return state


def previous_of(path: Path) -> Path:
    """Where :func:`save_checkpoint` keeps the checkpoint before ``path``: ``checkpoint.prev.pt``."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def _advice(path: Path, problem: str) -> str:
    previous = previous_of(path)
    if previous.exists():
        hint = (f"delete it, or resume from the previous checkpoint, which fit keeps: "
                f"mv {previous} {path}")
    else:
        hint = "delete it to start the run afresh (no previous checkpoint is kept beside it)"
    return f"checkpoint {path} {problem}; {hint}"
