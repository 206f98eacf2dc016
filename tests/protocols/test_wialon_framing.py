"""Wialon IPS framing: line splitting, UDP prefixes, resynchronisation, size cap, datagrams.

The data frames are device captures from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0).
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import Frame, ProtocolError, wialon

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)

LOGIN = b"#L#123456789012345;test\r\n"
DATA = (b"#D#151216;140203;5312.59514;N;04830.37834;E;53;273;NA;10;NA;NA;NA;NA;NA;"
        b"EvId:1:1,Board:2:12.81,Accum:2:4.28\r\n")
PING = b"#P#\r\n"
STREAM = LOGIN + DATA + PING


def session():
    return wialon.CODEC.new_session()


def raws(frames):
    return [f.raw for f in frames]


def test_whole_buffer_gives_every_packet_in_order():
    frames = session().receive_data(STREAM, NOW)
    assert raws(frames) == [LOGIN, DATA, PING]
    assert [f.reply for f in frames] == [b"#AL#1\r\n", b"#AD#1\r\n", b"#AP#\r\n"]


def test_one_byte_at_a_time_gives_the_same_packets():
    s = session()
    frames = []
    for i in range(len(STREAM)):
        frames += s.receive_data(STREAM[i:i + 1], NOW)
    assert raws(frames) == [LOGIN, DATA, PING]


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_every_split_point_gives_the_same_packets(cut):
    s = session()
    frames = s.receive_data(STREAM[:cut], NOW) + s.receive_data(STREAM[cut:], NOW)
    assert raws(frames) == [LOGIN, DATA, PING]


def test_two_data_packets_back_to_back():
    assert raws(session().receive_data(DATA + DATA, NOW)) == [DATA, DATA]


def test_bare_line_feed_ends_a_packet_too():
    assert raws(session().receive_data(b"#P#\n" + PING, NOW)) == [PING, PING]


def test_trailing_partial_packet_waits_for_its_rest():
    s = session()
    assert raws(s.receive_data(LOGIN + DATA[:40], NOW)) == [LOGIN]
    assert raws(s.receive_data(DATA[40:], NOW)) == [DATA]


def test_garbage_lines_and_garbage_before_a_marker_are_skipped():
    frames = session().receive_data(b"GET / HTTP/1.1\r\n\x00\xff" + LOGIN + b"\r\n" + PING, NOW)
    assert raws(frames) == [LOGIN, PING]


def test_udp_id_prefix_is_kept():
    packet = b"99999999#SD#270413;205601;5544.6025;N;03739.6834;E;1;2;3;4\r\n"
    frames = session().receive_data(packet, NOW)
    assert raws(frames) == [packet]
    assert frames[0].messages[0].unique_id == "99999999"


def test_oversized_line_is_refused_and_the_stream_resumes():
    s = session()
    with pytest.raises(ProtocolError, match="line end"):
        s.receive_data(b"#D#" + b"1" * wialon.MAX_FRAME_BYTES, NOW)
    assert raws(s.receive_data(b"\r\n" + PING, NOW)) == [PING]


def test_oversized_complete_line_is_refused():
    framer = wialon.Framer(max_frame_bytes=20)
    framer.feed(DATA + PING)
    with pytest.raises(ProtocolError, match="exceeds"):
        framer.frames()
    assert framer.frames() == [PING]


def test_endless_garbage_is_a_protocol_error():
    s = session()
    with pytest.raises(ProtocolError, match="garbage"):
        for _ in range(wialon.MAX_FRAME_BYTES // 16 + 1):
            s.receive_data(b"GET / HTTP/1.1\r\n", NOW)


def test_packet_right_after_too_much_garbage_survives_the_error():
    """The garbage error drops the garbage only: the packet behind it on the
    same line is returned by the next call."""
    s = session()
    garbage = b"GET / HTTP/1.1\r\n" * (wialon.MAX_FRAME_BYTES // 16 - 6) + b"\x00" * 200
    with pytest.raises(ProtocolError, match="garbage"):
        s.receive_data(garbage + PING, NOW)
    assert raws(s.receive_data(b"", NOW)) == [PING]


def test_good_packets_before_a_bad_one_are_returned_first():
    s = session()
    big = b"#D#" + b"1" * wialon.MAX_FRAME_BYTES + b"\r\n"
    assert raws(s.receive_data(LOGIN + big + PING, NOW)) == [LOGIN]
    with pytest.raises(ProtocolError):
        s.receive_data(b"", NOW)
    assert raws(s.receive_data(b"", NOW)) == [PING]


def test_decode_frame_takes_packets_with_or_without_crlf():
    assert session().decode_frame(DATA, NOW).messages == session().decode_frame(DATA[:-2], NOW).messages


def test_decode_frame_refuses_oversized_input():
    with pytest.raises(ProtocolError):
        session().decode_frame(b"#P#" + b" " * wialon.MAX_FRAME_BYTES, NOW)


def test_datagram_with_prefixed_packets_the_last_without_crlf():
    datagram = b"2.0;777#P#\r\n777#SD#270413;205601;5544.6025;N;03739.6834;E;1;2;3;4"
    frames = session().receive_datagram(datagram, NOW)
    assert [f.reply for f in frames] == [b"#AP#\r\n", b"#ASD#1\r\n"]
    assert frames[1].messages[0].unique_id == "777"


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
    assert raws(s.receive_data(b"\r\n" + PING, NOW))[-1:] == [PING]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_datagrams_give_frames_or_protocol_errors(data):
    try:
        frames = session().receive_datagram(data, NOW)
    except ProtocolError:
        return
    assert all(isinstance(f, Frame) for f in frames)
