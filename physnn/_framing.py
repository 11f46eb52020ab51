"""A payload behind a one-line header that names its kind, format version and SHA-256.

``<kind> <version> sha256=<64 hex digits of the payload>\\n<payload>``: the framing of
``physnn.save`` files and of ``fit`` checkpoints. Callers check the version and word the errors.
"""

from __future__ import annotations

import hashlib
import re


def frame(kind: str, version: int, payload: bytes) -> bytes:
    """The header line followed by ``payload``."""
    return f"{kind} {version} sha256={hashlib.sha256(payload).hexdigest()}\n".encode() + payload


def unframe(kind: str, data: bytes) -> tuple[int, str, bytes] | None:
    """``(version, digest in the header, payload)`` of ``data``; ``None`` when it has no ``kind`` header."""
    match = re.compile(re.escape(kind).encode() + rb" (\d+) sha256=([0-9a-f]{64})\n").match(data)
    return None if match is None else (int(match.group(1)), match.group(2).decode(), data[match.end():])


def no_header(kind: str, data: bytes) -> str:
    """Why ``data`` has no ``kind`` header, as a predicate ("is empty", "does not start with ...")."""
    return "is empty" if not data else f"does not start with a {kind} header (starts {data[:24]!r})"


def corruption(payload: bytes, digest: str) -> str | None:
    """Why ``payload`` does not match the header's ``digest`` (a predicate), or ``None`` when it does."""
    actual = hashlib.sha256(payload).hexdigest()
    if actual == digest:
        return None
    return (f"is corrupt: its content ({len(payload)} bytes) has SHA-256 {actual[:16]}..., "
            f"its header says {digest[:16]}...")
