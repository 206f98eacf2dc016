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


def test_a_datagram_cut_inside_a_frame_is_refused():
    from protocols.framing import decode_datagram
    assert [f.raw for f in decode_datagram(LineFramer(100), decode, b"#a;#b;", NOW)] == [b"#a;", b"#b;"]
    with pytest.raises(ProtocolError, match="line: datagram ends inside a frame"):
        decode_datagram(LineFramer(100), decode, b"#a;#b", NOW)


def test_oversized_frames_are_refused_before_decoding():
    from protocols.framing import check_frame_size
    check_frame_size("line", b"x" * 10, 10)
    with pytest.raises(ProtocolError, match="line: frame of 11 bytes exceeds 10"):
        check_frame_size("line", b"x" * 11, 10)


def test_values_network_alarm_and_flags():
    from protocols.values import add_alarm, cell_tower, network, option_flag
    assert network() is None
    assert network([cell_tower(460, 0, 1, 2, -70)]) == {
        "radioType": "gsm", "considerIp": False, "cellTowers": [{
            "cellId": 2, "locationAreaCode": 1, "mobileCountryCode": 460,
            "mobileNetworkCode": 0, "signalStrength": -70}]}
    attributes = {}
    add_alarm(attributes, "sos")
    add_alarm(attributes, None)
    add_alarm(attributes, "lowBattery")
    assert attributes == {"alarm": "sos,lowBattery"}
    assert [option_flag(v) for v in ("1", "true", " Yes", "off", "0", 1, 0, None)] == [
        True, True, True, False, False, True, False, False]
