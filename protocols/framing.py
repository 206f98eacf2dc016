"""What every stream framer shares: a buffer, its size cap, garbage accounting,
rejecting a bad frame; `StreamDecoder`, the TCP half of every session;
`decode_datagram` (UDP) and `check_frame_size` (decode_frame's guard).

A protocol's framer subclasses `StreamFramer` and implements `_next_frame()`,
which returns the next whole frame from `self._buffer` (removing it), None when
more bytes are needed, or raises ProtocolError for a bad frame after dropping
enough of it that the next call resumes behind it.  Garbage before a frame is
dropped with `_skip(count)`: short line noise is tolerated, but more than
`max_frame_bytes` of garbage in a row, with no good frame in between, raises
ProtocolError (the peer does not speak this protocol).

Bytes only ever leave the buffer from its start, so `offset` (the stream offset
of the buffer's first byte) tells a framer whether the frame it was scanning
is still the one at the start: a scan that waits for more bytes can resume
where it stopped instead of starting over with every `feed` (which would make
a frame trickling in byte by byte cost quadratic time).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from protocols.base import Frame, ProtocolError


class StreamFramer:
    """Base of the stream framers; see the module docstring."""

    name = "protocol"   # for error messages: "<name>: ..."

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._skipped = 0   # garbage bytes dropped since the last good frame
        self._fed = 0       # bytes fed since the start of the stream

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buffer)

    @property
    def offset(self) -> int:
        """Stream offset of the buffer's first byte (bytes dropped or returned so far)."""
        return self._fed - len(self._buffer)

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buffer += data
        self._fed += len(data)

    def remainder(self) -> bytes:
        """The buffered bytes not yet returned as frames."""
        return bytes(self._buffer)

    def frames(self) -> list[bytes]:
        """Every complete frame now buffered (raises on the first bad one)."""
        out = []
        while (frame := self.next_frame()) is not None:
            out.append(frame)
        return out

    def next_frame(self) -> bytes | None:
        """The next complete frame, or None when more bytes are needed."""
        frame = self._next_frame()
        if frame is not None:
            self._skipped = 0
        return frame

    def _next_frame(self) -> bytes | None:
        raise NotImplementedError

    def split(self, buffer: bytearray) -> list[bytes]:
        """Remove and return the complete frames at the front of `buffer` (for
        clients reading the server's replies); a trailing partial frame stays in
        `buffer`.  Uses this framer's state, so give it a fresh framer."""
        self.feed(bytes(buffer))
        try:
            return self.frames()
        finally:
            buffer[:] = self.remainder()

    def _reject(self, reason: str, drop: int = 1, frame: bytes = b"") -> None:
        """Raise ProtocolError("<name>: reason") for the frame at the buffer's
        start, after dropping its first `drop` bytes (its start marker) so that
        the next call resynchronises behind it."""
        head = frame or bytes(self._buffer[:64])
        del self._buffer[:drop]
        raise ProtocolError(f"{self.name}: {reason}", head)

    def _skip(self, count: int) -> None:
        """Drop `count` garbage bytes from the buffer's start; more than
        `max_frame_bytes` of them in a row is a ProtocolError."""
        if count <= 0:
            return
        garbage = bytes(self._buffer[:count])
        del self._buffer[:count]
        self._skipped += count
        if self._skipped > self.max_frame_bytes:
            self._skipped = 0
            raise ProtocolError(f"{self.name}: no frame in over {self.max_frame_bytes} bytes "
                                "of garbage", garbage[:64])


class StreamDecoder:
    """The stream (TCP) half of every session: bytes in, decoded Frames out.

    `decode(raw, now)` decodes one frame.  When a bad frame follows good ones in
    the same call, the good ones are returned and the error is raised by the
    next call, so that data already received is never lost to a later error.
    Frames that carry nothing (no message, no reply: e.g. keep-alive bytes found
    in garbage) are not worth that delay: the error is raised at once.
    """

    def __init__(self, framer: StreamFramer, decode: Callable[[bytes, dt.datetime], Frame]) -> None:
        self.framer = framer
        self._decode = decode
        self._pending: ProtocolError | None = None

    def receive(self, data: bytes, now: dt.datetime) -> list[Frame]:
        self.framer.feed(data)
        if self._pending is not None:
            error, self._pending = self._pending, None
            raise error
        frames: list[Frame] = []
        while True:
            try:
                raw = self.framer.next_frame()
                if raw is None:
                    return frames
                frames.append(self._decode(raw, now))
            except ProtocolError as error:
                if not any(frame.messages or frame.reply for frame in frames):
                    raise
                self._pending = error
                return frames


def decode_datagram(framer: StreamFramer, decode: Callable[[bytes, dt.datetime], Frame],
                    data: bytes, now: dt.datetime) -> list[Frame]:
    """Decode one datagram of whole frames with a fresh `framer`; bytes left over
    (a frame cut short) are a ProtocolError."""
    framer.feed(data)
    frames = [decode(raw, now) for raw in framer.frames()]
    if framer.buffered:
        raise ProtocolError(f"{framer.name}: datagram ends inside a frame", data[:64])
    return frames


def check_frame_size(name: str, frame: bytes, max_frame_bytes: int) -> None:
    """ProtocolError when a frame handed to decode_frame exceeds the cap."""
    if len(frame) > max_frame_bytes:
        raise ProtocolError(f"{name}: frame of {len(frame)} bytes exceeds {max_frame_bytes}",
                            bytes(frame[:64]))
