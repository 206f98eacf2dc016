"""A big-endian cursor over a binary frame's content, shared by the binary codecs.

Running short raises ProtocolError naming the protocol: the device sent less
than its message type needs (truncated or corrupt frame), which is the peer's
fault, never an IndexError in our code.  `count` checks a count read from the
frame against the bytes left before anything loops over it.
"""

from __future__ import annotations

from protocols.base import ProtocolError


class Reader:
    """Reads fields front to back; `pos` is the offset of the next byte."""

    __slots__ = ("data", "name", "pos")

    def __init__(self, data: bytes, name: str = "protocol", pos: int = 0) -> None:
        self.data = data
        self.name = name
        self.pos = pos

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolError(f"{self.name}: content too short: {n} bytes wanted at offset "
                                f"{self.pos} of {len(self.data)}", bytes(self.data[:64]))
        chunk = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return chunk

    def count(self, n: int, item_bytes: int, what: str) -> int:
        """`n`, a count of items of at least `item_bytes` bytes each read from the
        frame, when that many fit in the bytes left; ProtocolError naming `what`
        otherwise (a count the frame cannot hold is never looped over)."""
        if n < 0 or n * item_bytes > self.remaining():
            raise ProtocolError(f"{self.name}: {what} {n} needs {n * item_bytes} bytes, "
                                f"{self.remaining()} left at offset {self.pos}", bytes(self.data[:64]))
        return n

    def rest(self) -> bytes:
        return self.take(self.remaining())

    def skip(self, n: int) -> None:
        self.take(n)

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def sint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big", signed=True)

    def u8(self) -> int:
        return self.uint(1)

    def s8(self) -> int:
        return self.sint(1)

    def u16(self) -> int:
        return self.uint(2)

    def s16(self) -> int:
        return self.sint(2)

    def u32(self) -> int:
        return self.uint(4)

    def s32(self) -> int:
        return self.sint(4)
