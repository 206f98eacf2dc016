"""What every stream protocol's session shares: `StreamSession`, and
`DecoderTable`, the message-type -> decoder map the codecs dispatch on.

A protocol's session subclasses `StreamSession`: it sets `name` and
`max_frame_bytes`, parses its options in `__init__` before calling
`super().__init__()` (the framer may depend on them), and implements
`new_framer()` (the protocol's `StreamFramer`), `_decode_frame()` (one whole
frame, already size-checked and as bytes) and `encode_command()`.  The base
then gives it the TCP path (`receive_data`: a `StreamDecoder`, so a bad frame
after good ones is raised by the next call), the UDP path (`receive_datagram`:
one datagram of whole frames), the size cap of `decode_frame`, and the device
id bookkeeping (`unique_id`, `identify`, `require_unique_id`).  A protocol whose
datagrams or frames differ overrides just that method.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Iterator
from typing import ClassVar, Generic, TypeVar

from protocols.base import Command, Frame, UnsupportedCommand
from protocols.framing import StreamDecoder, StreamFramer, check_frame_size, decode_datagram

K = TypeVar("K", bound=Hashable)
D = TypeVar("D", bound=Callable[..., object])


class StreamSession:
    """Base of the per-connection sessions of stream (TCP/UDP) protocols; see
    the module docstring.  Implements `protocols.base.Session`.

    After `receive_data` raised ProtocolError the offending bytes are gone;
    call `receive_data(b"", now)` to continue with the bytes after them.
    """

    name: ClassVar[str] = "protocol"          # for error messages: "<name>: ..."
    max_frame_bytes: ClassVar[int] = 0        # decode_frame's cap (the framer has its own)

    def __init__(self) -> None:
        self.unique_id: str | None = None
        self._stream = StreamDecoder(self.new_framer(), self._decode_streamed)

    # -- to implement ------------------------------------------------------

    def new_framer(self, *, datagram: bool = False) -> StreamFramer:
        """A fresh framer: for the connection's stream, or (`datagram`) for one
        datagram."""
        raise NotImplementedError

    def _decode_frame(self, frame: bytes, now: dt.datetime) -> Frame:
        """Decode one whole frame (bytes, within `max_frame_bytes`)."""
        raise NotImplementedError

    def encode_command(self, command: Command, now: dt.datetime) -> bytes:
        """The bytes that carry `command` to this session's device;
        UnsupportedCommand when the protocol cannot carry it."""
        raise UnsupportedCommand(f"{self.name}: the protocol takes no commands")

    # -- the transport paths -----------------------------------------------

    def receive_data(self, data: bytes, now: dt.datetime) -> list[Frame]:
        """TCP: buffer `data`, return the frames it completed, in order; a
        bad frame after good ones is reported by the next call."""
        return self._stream.receive(data, now)

    def receive_datagram(self, data: bytes, now: dt.datetime) -> list[Frame]:
        """UDP: one datagram of whole frames; a partial frame is an error."""
        return decode_datagram(self.new_framer(datagram=True), self.decode_frame, data, now)

    def decode_frame(self, frame: bytes, now: dt.datetime) -> Frame:
        """Decode exactly one frame as the framer delivers it; ProtocolError when
        it exceeds `max_frame_bytes`."""
        frame = bytes(frame)
        check_frame_size(self.name, frame, self.max_frame_bytes)
        return self._decode_frame(frame, now)

    def _decode_streamed(self, frame: bytes, now: dt.datetime) -> Frame:
        """`decode_frame` for the frames of the TCP stream; a protocol that
        watches the stream as a whole (e.g. refuses a peer that sends only
        unknown lines) adds that here."""
        return self.decode_frame(frame, now)

    def _decode_datagram_closing(self, data: bytes, now: dt.datetime, terminator: bytes,
                                 blank: bytes | None = None) -> list[Frame]:
        """`receive_datagram` for protocols whose last frame in a datagram may
        lack its terminator: when the bytes left over are not blank (`blank`:
        the bytes that count as such, None for whitespace), `terminator` is
        supplied and they are decoded too."""
        framer = self.new_framer(datagram=True)
        framer.feed(data)
        raws = framer.frames()
        if framer.remainder().strip(blank):
            framer.feed(terminator)
            raws += framer.frames()
        return [self.decode_frame(raw, now) for raw in raws]

    # -- the device id -----------------------------------------------------

    def identify(self, unique_id: str | None) -> None:
        """Adopt the id a frame named; a frame that names none keeps the last one."""
        if unique_id:
            self.unique_id = unique_id

    def require_unique_id(self, reason: str = "the device has not identified itself yet") -> str:
        """The device's id, for a command; UnsupportedCommand("<name>: reason")
        while the device has not said it."""
        if not self.unique_id:
            raise UnsupportedCommand(f"{self.name}: {reason}")
        return self.unique_id


class DecoderTable(Generic[K, D]):
    """Message type -> decoder, filled by decorating each decoder with
    `@table.register(type, ...)`.  Registering a type twice is a bug in the
    codec (ValueError at import), so one decoder can never silently replace
    another."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._decoders: dict[K, D] = {}

    def register(self, *keys: K) -> Callable[[D], D]:
        def register(decoder: D) -> D:
            for key in keys:
                if key in self._decoders:
                    raise ValueError(f"{self.name}: {key!r} already has a decoder")
                self._decoders[key] = decoder
            return decoder
        return register

    def get(self, key: K) -> D | None:
        """The decoder of `key`, None for a type without one."""
        return self._decoders.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._decoders

    def __iter__(self) -> Iterator[K]:
        return iter(self._decoders)

    def __len__(self) -> int:
        return len(self._decoders)


__all__ = ["DecoderTable", "StreamSession"]
