"""TK103 framing: "(...)" frames in a stream, "$...$" texts with parentheses,
resynchronisation, size caps, datagrams.

Frames marked "capture" are device frames from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0).
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import CommandResult, Frame, ProtocolError, tk103

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)

# Captures (Traccar test suite, Apache-2.0).
LOGIN = b"(012345678901BP05000012345678901130520A3439.9629S05826.3504W000.1175622323.8700000000L000450AC)"
REPORT = b"(012345678901BR00130520A3439.9629S05826.3504W000.1175622323.8700000000L000450AC)"
HANDSHAKE = b"(087073005534BP00HSO)"
TEXT_WITH_PARENTHESES = (b"(864555555555555,ZC03,191117,234207,$3 .Check interval is set to 240 "
                         b"minute(s).\r\n5 .SOS SMS Alert: On$)")


def session():
    return tk103.CODEC.new_session()


def raws(frames: list[Frame]) -> list[bytes]:
    return [f.raw for f in frames]


def test_whole_buffer_gives_every_frame_in_order():
    frames = session().receive_data(LOGIN + REPORT + HANDSHAKE, NOW)
    assert raws(frames) == [LOGIN, REPORT, HANDSHAKE]


def test_one_byte_at_a_time_gives_the_same_frames():
    s, frames = session(), []
    data = LOGIN + REPORT
    for i in range(len(data)):
        frames += s.receive_data(data[i:i + 1], NOW)
    assert raws(frames) == [LOGIN, REPORT]


@pytest.mark.parametrize("cut", range(1, len(LOGIN + REPORT)))
def test_every_split_point_gives_the_same_frames(cut):
    data = LOGIN + REPORT
    s = session()
    assert raws(s.receive_data(data[:cut], NOW) + s.receive_data(data[cut:], NOW)) == [LOGIN, REPORT]


def test_two_frames_back_to_back_with_line_ends():
    frames = session().receive_data(REPORT + b"\r\n" + REPORT + b"\r\n", NOW)
    assert raws(frames) == [REPORT, REPORT]


def test_trailing_partial_frame_waits_for_its_rest():
    s = session()
    assert raws(s.receive_data(LOGIN + REPORT[:30], NOW)) == [LOGIN]
    assert raws(s.receive_data(REPORT[30:], NOW)) == [REPORT]


def test_garbage_before_a_frame_is_skipped():
    assert raws(session().receive_data(b"\x00\xffGET / HTTP/1.1\r\n)" + REPORT, NOW)) == [REPORT]


def test_a_parenthesis_inside_dollar_text_does_not_end_the_frame():
    """Capture: ZC03 free text "minute(s)" between $ signs."""
    frames = session().receive_data(TEXT_WITH_PARENTHESES + REPORT, NOW)
    assert raws(frames) == [TEXT_WITH_PARENTHESES, REPORT]
    assert isinstance(frames[0].messages[0], CommandResult)


def test_frame_without_end_beyond_the_cap_raises_then_resumes():
    s = session()
    with pytest.raises(ProtocolError, match=r"no '\)'"):
        s.receive_data(b"(" + b"1" * tk103.MAX_FRAME_BYTES + REPORT, NOW)
    assert raws(s.receive_data(b"", NOW)) == [REPORT]


def test_decode_frame_refuses_an_oversized_frame():
    with pytest.raises(ProtocolError, match="exceeds"):
        session().decode_frame(b"(012345678901BR00" + b"0" * tk103.MAX_FRAME_BYTES + b")", NOW)


def test_endless_garbage_is_a_protocol_error():
    framer = tk103.Framer()
    framer.feed(b"\x01\x02\x03\x04" * 8)
    assert framer.frames() == []
    framer.feed(b"\x01\x02\x03\x04" * (tk103.MAX_FRAME_BYTES // 4 + 1))
    with pytest.raises(ProtocolError, match="garbage") as error:
        framer.frames()
    assert error.value.frame.startswith(b"\x01\x02")


def test_garbage_count_restarts_after_each_good_frame():
    framer = tk103.Framer()
    for _ in range(3):
        framer.feed(b"\x00" * (tk103.MAX_FRAME_BYTES - 10) + REPORT)
        assert framer.frames() == [REPORT]


def test_good_frames_before_a_bad_one_are_returned_first():
    s = session()
    assert raws(s.receive_data(REPORT + b"(" + b"1" * tk103.MAX_FRAME_BYTES, NOW)) == [REPORT]
    with pytest.raises(ProtocolError):
        s.receive_data(b"", NOW)


def test_datagram_with_two_frames():
    assert raws(session().receive_datagram(LOGIN + REPORT, NOW)) == [LOGIN, REPORT]


def test_datagram_ending_inside_a_frame_raises():
    with pytest.raises(ProtocolError, match="datagram"):
        session().receive_datagram(LOGIN + REPORT[:12], NOW)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_random_bytes_give_frames_or_protocol_errors(chunks):
    s = session()
    for chunk in chunks + [b""]:
        try:
            frames = s.receive_data(chunk, NOW)
        except ProtocolError:
            continue
        assert all(isinstance(f, Frame) for f in frames)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_datagrams_give_frames_or_protocol_errors(data):
    for candidate in (data, b"(" + data + b")", b"(012345678901BR00" + data + b")"):
        try:
            frames = session().receive_datagram(candidate, NOW)
        except ProtocolError:
            continue
        assert all(isinstance(f, Frame) for f in frames)
