"""The shared stream framer and decoder: garbage accounting and error timing."""

import datetime as dt

import pytest

from protocols import Frame, Login, ProtocolError
from protocols.framing import StreamDecoder, StreamFramer

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class LineFramer(StreamFramer):
    """Lines ending in ";", starting with "#"; anything else is garbage."""

    name = "line"

    def _next_frame(self):
        start = self._buffer.find(b"#")
        self._skip(len(self._buffer) if start < 0 else start)
        end = self._buffer.find(b";")
        if start < 0 or end < 0:
            return None
        frame = bytes(self._buffer[:end + 1])
        del self._buffer[:end + 1]
        if frame == b"#BAD;":
            raise ProtocolError("line: bad frame", frame)
        return frame


def decode(raw, now):
    return Frame((Login(raw.decode()),) if raw != b"#;" else (), b"", raw)


def test_garbage_over_the_cap_in_a_row_is_an_error_and_a_frame_resets_the_count():
    framer = LineFramer(max_frame_bytes=10)
    framer.feed(b"xxxxxxxx#a;xxxxxxxx#b;")
    assert framer.frames() == [b"#a;", b"#b;"]
    framer.feed(b"x" * 11)
    with pytest.raises(ProtocolError, match="line: no frame in over 10 bytes of garbage"):
        framer.frames()


def test_good_frames_come_first_and_the_error_on_the_next_call():
    stream = StreamDecoder(LineFramer(100), decode)
    assert [f.raw for f in stream.receive(b"#a;#BAD;#c;", NOW)] == [b"#a;"]
    with pytest.raises(ProtocolError):
        stream.receive(b"", NOW)
    assert [f.raw for f in stream.receive(b"", NOW)] == [b"#c;"]


def test_an_error_after_empty_frames_only_is_raised_at_once():
    """Keep-alive-like frames found in garbage must not hold a bad peer's error back."""
    stream = StreamDecoder(LineFramer(100), decode)
    with pytest.raises(ProtocolError):
        stream.receive(b"#;#;#BAD;", NOW)
