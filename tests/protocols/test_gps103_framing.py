"""GPS103 framing: delimiters, stream splitting, resynchronisation, size cap, UDP.

The frames are device captures from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0).
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import Frame, ProtocolError, gps103

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)

LOGIN = b"##,imei:359586015829802,A;"
HEARTBEAT = b"359586015829802;"
REPORT = b"imei:359586015829802,help me,0809231429,13554900601,F,062947.294,A,2234.4026,N,11354.3277,E,0.00,;"
STAR = (b"imei:861359038609986,Equipo 1,---,------,----,214812,241018,14,0,-33.42317,-70.61930,"
        b"000,000,0000,99.9,00,0,1,---,*")
STREAM = LOGIN + HEARTBEAT + REPORT


def session():
    return gps103.CODEC.new_session()


def raws(frames):
    return [f.raw for f in frames]


def test_whole_buffer_gives_every_frame_in_order():
    frames = session().receive_data(STREAM, NOW)
    assert raws(frames) == [LOGIN, HEARTBEAT, REPORT]
    assert [f.reply for f in frames] == [b"LOAD", b"ON", b""]


def test_one_byte_at_a_time_gives_the_same_frames():
    s = session()
    frames = []
    for i in range(len(STREAM)):
        frames += s.receive_data(STREAM[i:i + 1], NOW)
    assert raws(frames) == [LOGIN, HEARTBEAT, REPORT]


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_every_split_point_gives_the_same_frames(cut):
    s = session()
    frames = s.receive_data(STREAM[:cut], NOW) + s.receive_data(STREAM[cut:], NOW)
    assert raws(frames) == [LOGIN, HEARTBEAT, REPORT]


def test_two_reports_back_to_back():
    assert raws(session().receive_data(REPORT + REPORT, NOW)) == [REPORT, REPORT]


def test_star_and_line_feed_also_end_frames_and_crlf_is_ignored():
    data = LOGIN + b"\r\n" + STAR + REPORT[:-1] + b"\r\n"
    frames = session().receive_data(data, NOW)
    assert raws(frames) == [LOGIN, STAR, REPORT[:-1] + b"\n"]
    assert all(len(f.messages) == 1 for f in frames)


def test_trailing_partial_frame_waits_for_its_rest():
    s = session()
    assert raws(s.receive_data(LOGIN + REPORT[:30], NOW)) == [LOGIN]
    assert raws(s.receive_data(REPORT[30:], NOW)) == [REPORT]


def test_garbage_before_a_frame_is_skipped():
    frames = session().receive_data(b"\x00\xffGET / HTTP/1.1\r\n\x16\x03" + REPORT, NOW)
    assert raws(frames) == [REPORT]


def test_oversized_frame_is_refused_and_the_stream_resumes():
    s = session()
    with pytest.raises(ProtocolError, match="delimiter"):
        s.receive_data(b"imei:" + b"1" * gps103.MAX_FRAME_BYTES, NOW)
    assert raws(s.receive_data(b";" + LOGIN, NOW)) == [LOGIN]


def test_oversized_delimited_frame_is_refused():
    framer = gps103.Framer(max_frame_bytes=40)
    framer.feed(REPORT + LOGIN)
    with pytest.raises(ProtocolError, match="exceeds"):
        framer.frames()
    assert framer.frames() == [LOGIN]


def test_endless_garbage_is_a_protocol_error():
    """Garbage lines are skipped, but a peer that sends only garbage is refused."""
    s = session()
    with pytest.raises(ProtocolError, match="garbage"):
        for _ in range(gps103.MAX_FRAME_BYTES // 16 + 1):
            s.receive_data(b"GET / HTTP/1.1\r\n", NOW)


def test_frame_right_after_too_much_garbage_survives_the_error():
    """The garbage error drops the garbage only: the frame behind it in the same
    chunk is returned by the next call."""
    s = session()
    garbage = b"GET / HTTP/1.1\r\n" * (gps103.MAX_FRAME_BYTES // 16 - 6) + b"\x00" * 200
    with pytest.raises(ProtocolError, match="garbage"):
        s.receive_data(garbage + REPORT, NOW)
    assert raws(s.receive_data(b"", NOW)) == [REPORT]


def test_good_frames_before_a_bad_one_are_returned_first():
    s = session()
    big = b"imei:" + b"1" * gps103.MAX_FRAME_BYTES + b";"
    assert raws(s.receive_data(LOGIN + big + REPORT, NOW)) == [LOGIN]
    with pytest.raises(ProtocolError):
        s.receive_data(b"", NOW)
    assert raws(s.receive_data(b"", NOW)) == [REPORT]


def test_decode_frame_takes_frames_with_or_without_delimiter():
    assert session().decode_frame(REPORT, NOW).messages == session().decode_frame(REPORT[:-1], NOW).messages


def test_decode_frame_refuses_oversized_input():
    with pytest.raises(ProtocolError):
        session().decode_frame(b"imei:1," + b"x" * gps103.MAX_FRAME_BYTES, NOW)


def test_datagram_with_several_frames_the_last_without_delimiter():
    frames = session().receive_datagram(LOGIN + REPORT + REPORT[:-1], NOW)
    assert [len(f.messages) for f in frames] == [1, 1, 1]
    assert frames[0].reply == b"LOAD"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_random_bytes_give_frames_or_protocol_errors(chunks):
    """Random bytes never raise anything but ProtocolError; the session keeps working."""
    s = session()
    for chunk in chunks + [b""]:
        try:
            frames = s.receive_data(chunk, NOW)
        except ProtocolError:
            continue
        assert all(isinstance(f, Frame) for f in frames)
    assert raws(s.receive_data(b";" + LOGIN, NOW))[-1:] == [LOGIN]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_datagrams_give_frames_or_protocol_errors(data):
    try:
        frames = session().receive_datagram(data, NOW)
    except ProtocolError:
        return
    assert all(isinstance(f, Frame) for f in frames)
