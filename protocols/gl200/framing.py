"""Queclink @Track framing: '$'-terminated text frames and length-prefixed binary frames.

Text frames (the "ASCII" report format) start with "+RESP:", "+BUFF:" or
"+ACK:" and end with "$" (a few old firmwares end a frame with CR LF
instead; a bare line end therefore also closes a text frame).  Fields are
comma separated ISO-8859-1 text; nothing is escaped and there is no checksum
(the last field, the "count number", is a serial number, not a check).

Binary frames (the "HEX" report format of GV-series firmware) start with a
four byte ASCII header and carry their total length:

    "+RSP" "+BSP" "+EVT" "+BVT"   type (1) | mask (4) | length (2, big endian) ...
    "+INF" "+BNF"                 type (1) | mask (2) | length (2) ...
    "+ACK" "+HBD"                 type (1) | mask (1) | length (1) ...
    "+" 0x00 0x00                 length (1) ...   (compact GPS report, observed)

`length` counts the whole frame from "+" on.  Binary frames end with a
checksum (2) and CR LF, which are not verified (the documents do not define
the checksum the same way for every model).
"""

from __future__ import annotations

import re

from protocols.base import ProtocolError
from protocols.framing import StreamFramer

MAX_FRAME_BYTES = 4096
"""Largest whole frame accepted.  The longest text reports (GTCAN with its
expansion block, GTERI with several BLE accessories) stay below 1.5 KB."""

_TEXT_HEAD = re.compile(rb"\+[A-Z]{3,4}:")
_BINARY_LENGTH = {   # header -> (offset, size) of the length field
    b"+RSP": (9, 2), b"+BSP": (9, 2), b"+EVT": (9, 2), b"+BVT": (9, 2),
    b"+INF": (7, 2), b"+BNF": (7, 2),
    b"+ACK": (6, 1), b"+HBD": (6, 1),
}
_COMPACT = b"+\x00\x00"
_TEXT_END = re.compile(rb"[$\r\n]")


def is_text(frame: bytes) -> bool:
    """True when `frame` starts like a text frame ("+RESP:", "+ACK:" ...)."""
    return _TEXT_HEAD.match(frame) is not None


def binary_length(buf: bytes | bytearray) -> int | None:
    """Total size a binary frame at the start of `buf` announces; None while
    the length field has not arrived; ProtocolError when `buf` does not start
    with a known binary header."""
    if buf[:3] == _COMPACT:
        return buf[3] if len(buf) >= 4 else None
    spec = _BINARY_LENGTH.get(bytes(buf[:4]))
    if spec is None:
        raise ProtocolError("gl200: unknown binary header", bytes(buf[:16]))
    offset, size = spec
    if len(buf) < offset + size:
        return None
    return int.from_bytes(buf[offset:offset + size], "big")


def classify(buf: bytes | bytearray) -> str:
    """What the bytes at the start of `buf` (which begins with "+") are:
    "text", "binary", "wait" (too few bytes to tell) or "garbage"."""
    head = bytes(buf[:6])
    if _TEXT_HEAD.match(head):
        return "text"
    if head[:3] == _COMPACT or (head[:4] in _BINARY_LENGTH and len(head) > 4):
        return "binary"
    if len(head) < 6 and (re.fullmatch(rb"\+[A-Z]{0,4}", head) or _COMPACT.startswith(head)):
        return "wait"
    return "garbage"


class Framer(StreamFramer):
    """Splits a byte stream into whole @Track frames (text or binary).

    Bytes before a "+" that starts a frame are skipped (resynchronisation),
    up to `max_frame_bytes` of them in a row; more garbage than that raises
    `ProtocolError`.  A text frame with no terminator within
    `max_frame_bytes` raises `ProtocolError` and is dropped with everything
    buffered; a binary frame announcing more than that (or less than its own
    header) raises `ProtocolError` after its "+" is dropped.  Either way the
    next call resumes after the bad frame's start.  Returned text frames keep
    their "$"; a CR LF ending is not part of the frame.
    """

    name = "gl200"

    def __init__(self, *, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        super().__init__(max_frame_bytes)

    def _next_frame(self) -> bytes | None:
        buf = self._buffer
        while True:
            start = buf.find(b"+")
            if start < 0:
                self._skip(len(buf))
                return None
            self._skip(start)
            kind = classify(buf)
            if kind == "wait":
                return None
            if kind != "garbage":
                break
            self._skip(1)
        return self._text_frame() if kind == "text" else self._binary_frame()

    def flush(self) -> bytes | None:
        """The buffered rest as a last text frame without terminator (for a
        datagram, which always holds whole frames), or None if nothing useful
        is left."""
        rest = bytes(self._buffer).strip()
        self._buffer.clear()
        return rest if rest and is_text(rest) else None

    def _text_frame(self) -> bytes | None:
        buf = self._buffer
        match = _TEXT_END.search(buf, 1)
        if match is None:
            if len(buf) > self.max_frame_bytes:   # every buffered byte belongs to the bad frame
                head = bytes(buf[:64])
                buf.clear()
                self._skipped = 0
                raise ProtocolError(f"gl200: text frame without '$' within {self.max_frame_bytes} "
                                    "bytes", head)
            return None
        end = match.start()
        if end + 1 > self.max_frame_bytes:
            self._reject(f"text frame of {end + 1} bytes exceeds {self.max_frame_bytes}")
        frame = bytes(buf[:end + 1]) if buf[end:end + 1] == b"$" else bytes(buf[:end])
        del buf[:end + 1]
        return frame

    def _binary_frame(self) -> bytes | None:
        buf = self._buffer
        try:
            total = binary_length(buf)
        except ProtocolError:
            del buf[:1]
            raise
        if total is None:
            return None
        if total > self.max_frame_bytes or total < 8:
            self._reject(f"binary frame length {total} out of range 8..{self.max_frame_bytes}")
        if len(buf) < total:
            return None
        frame = bytes(buf[:total])
        del buf[:total]
        return frame

__all__ = ["MAX_FRAME_BYTES", "Framer", "binary_length", "classify", "is_text"]
