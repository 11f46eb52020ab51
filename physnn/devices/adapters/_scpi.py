"""SCPI message parsing for the instrument emulator: commands, IEEE 488.2 blocks, limits.

A byte stream is cut into commands at newlines, except inside definite-length
binary blocks (``#<n><length><bytes>``), whose payload may hold any byte. Lines
and blocks beyond the configured limits are discarded as they stream in
(memory stays bounded) and reported as SCPI error -223, "Too much data".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """One SCPI command: ``header`` (e.g. ``SOUR:DATA`` or ``*IDN?``), text ``args``, binary ``block`` if any."""

    header: str
    args: str = ""
    block: bytes | None = None

    @property
    def is_query(self) -> bool:
        return self.header.endswith("?")


@dataclass(frozen=True)
class ParseError:
    """A message that could not be parsed: SCPI error ``code`` and ``message``."""

    code: int
    message: str


class Parser:
    """Incremental parser: ``feed(bytes)`` returns the commands and errors completed so far.

    Args:
        max_line: longest text command, bytes.
        max_block: longest binary block payload, bytes.
    """

    def __init__(self, max_line: int = 65536, max_block: int = 1 << 26) -> None:
        self.max_line, self.max_block = int(max_line), int(max_block)
        self._buf = bytearray()
        self._skip_bytes = 0       # payload of an oversized block still to discard
        self._skip_line = False    # discard up to the next newline

    def feed(self, data: bytes) -> list[Command | ParseError]:
        self._buf.extend(data)
        out: list[Command | ParseError] = []
        while self._step(out):
            pass
        return out

    def _step(self, out: list[Command | ParseError]) -> bool:
        """Consume one item from the buffer; False when more bytes are needed."""
        buf = self._buf
        if self._skip_bytes:
            n = min(self._skip_bytes, len(buf))
            del buf[:n]
            self._skip_bytes -= n
            return bool(buf) and not self._skip_bytes
        if self._skip_line:
            end = buf.find(b"\n")
            if end < 0:
                buf.clear()
                return False
            del buf[:end + 1]
            self._skip_line = False
            return True
        newline, mark = buf.find(b"\n"), buf.find(b"#")
        if mark >= 0 and (newline < 0 or mark < newline) and mark <= self.max_line:
            return self._block(mark, out)
        if newline < 0:
            if len(buf) > self.max_line:
                out.append(ParseError(-223, f"Too much data; command longer than {self.max_line} bytes"))
                buf.clear()
                self._skip_line = True
            return False
        line = bytes(buf[:newline])
        del buf[:newline + 1]
        if len(line) > self.max_line:
            out.append(ParseError(-223, f"Too much data; command longer than {self.max_line} bytes"))
            return True
        text = line.decode("utf-8", errors="replace").strip()
        for part in filter(None, (p.strip() for p in text.split(";"))):
            header, _, args = part.partition(" ")
            out.append(Command(header.upper(), args.strip()))
        return True

    def _block(self, mark: int, out: list[Command | ParseError]) -> bool:
        buf = self._buf
        if len(buf) < mark + 2:
            return False
        n = buf[mark + 1] - ord("0")
        if not 1 <= n <= 9:
            out.append(ParseError(-161, "Invalid block data; expected #<1-9><length><bytes> "
                                        "(indefinite-length blocks are not supported)"))
            self._skip_line = True
            return True
        if len(buf) < mark + 2 + n:
            return False
        digits = bytes(buf[mark + 2:mark + 2 + n])
        if not digits.isdigit():
            out.append(ParseError(-161, f"Invalid block data; length field {digits!r} is not a number"))
            self._skip_line = True
            return True
        length, start = int(digits), mark + 2 + n
        prefix = bytes(buf[:mark]).decode("utf-8", errors="replace").strip()
        if length > self.max_block:
            out.append(ParseError(-223, f"Too much data; block of {length} bytes exceeds {self.max_block}"))
            del buf[:start]
            self._skip_bytes = length
            return True
        if len(buf) < start + length:
            return False
        block = bytes(buf[start:start + length])
        del buf[:start + length]
        header, _, args = prefix.partition(" ")
        out.append(Command(header.upper(), args.strip().rstrip(","), block))
        return True


def matches(pattern: str, header: str) -> bool:
    """Whether ``header`` spells the SCPI ``pattern`` in its short or long form.

    ``matches("SOURce:DATA", "sour:data")`` and ``matches("SOURce:DATA", "SOURCE:DATA")`` hold;
    the uppercase letters of each node are its short form.
    """
    want_query, got_query = pattern.endswith("?"), header.endswith("?")
    if want_query != got_query:
        return False
    nodes, given = pattern.rstrip("?").lstrip(":").split(":"), header.rstrip("?").lstrip(":").split(":")
    if len(nodes) != len(given):
        return False
    for node, word in zip(nodes, given):
        short = "".join(c for c in node if not c.islower())
        if word.upper() not in (short.upper(), node.upper()):
            return False
    return True


def block(payload: bytes) -> bytes:
    """``payload`` as an IEEE 488.2 definite-length block."""
    size = str(len(payload)).encode()
    return b"#" + str(len(size)).encode() + size + payload
