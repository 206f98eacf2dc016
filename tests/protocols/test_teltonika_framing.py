"""Teltonika TCP framing: hello / packet / ping splitting, resynchronisation, size cap,
CRC, and the streams a session and the device's ack reader see.

HELLO and CODEC8 are device captures from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0).
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import Frame, Login, Position, ProtocolError, teltonika
from tests.protocols.test_teltonika import CODEC8, CODEC16, HELLO, packet

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
STREAM = HELLO + CODEC8 + b"\xff" + CODEC16


def session(**options):
    return teltonika.CODEC.new_session(options)


def raws(frames: list[Frame]) -> list[bytes]:
    return [f.raw for f in frames]


def test_whole_buffer_gives_every_frame_in_order():
    frames = session().receive_data(STREAM, NOW)
    assert raws(frames) == [HELLO, CODEC8, b"\xff", CODEC16]
    assert isinstance(frames[0].messages[0], Login) and isinstance(frames[1].messages[0], Position)
    assert [f.reply for f in frames] == [b"\x01", b"\x00\x00\x00\x01", b"", b"\x00\x00\x00\x01"]


def test_one_byte_at_a_time_gives_the_same_frames():
    s = session()
    frames = [f for i in range(len(STREAM)) for f in s.receive_data(STREAM[i:i + 1], NOW)]
    assert raws(frames) == [HELLO, CODEC8, b"\xff", CODEC16]


@pytest.mark.parametrize("cut", range(1, len(HELLO + CODEC8)))
def test_every_split_point_gives_the_same_frames(cut):
    data = HELLO + CODEC8
    s = session()
    frames = s.receive_data(data[:cut], NOW) + s.receive_data(data[cut:], NOW)
    assert raws(frames) == [HELLO, CODEC8]


def test_two_packets_back_to_back():
    assert raws(session().receive_data(CODEC8 + CODEC8, NOW)) == [CODEC8, CODEC8]


def test_trailing_partial_packet_waits_for_its_rest():
    s = session()
    assert raws(s.receive_data(HELLO + CODEC8[:30], NOW)) == [HELLO]
    assert s._stream.framer.buffered == 30
    assert raws(s.receive_data(CODEC8[30:], NOW)) == [CODEC8]


def test_garbage_before_a_frame_is_skipped():
    frames = session().receive_data(b"GET / HTTP/1.1\r\n\x00\x99\x00\x00\x07" + HELLO, NOW)
    assert raws(frames) == [HELLO]


def test_partial_hello_digits_wait_but_a_non_digit_ends_the_candidate():
    s = session()
    assert s.receive_data(HELLO[:9], NOW) == []
    assert raws(s.receive_data(HELLO[9:], NOW)) == [HELLO]
    assert raws(session().receive_data(HELLO[:9] + b"x" + HELLO, NOW)) == [HELLO]


def test_oversized_declared_length_raises_and_the_stream_resumes():
    s = session()
    with pytest.raises(ProtocolError, match="exceeds"):
        s.receive_data(b"\x00\x00\x00\x00\x00\x10\x00\x00" + HELLO, NOW)
    assert raws(s.receive_data(b"", NOW)) == [HELLO]


def test_length_too_small_for_codec_and_counts_raises():
    with pytest.raises(ProtocolError, match="too small"):
        session().receive_data(b"\x00\x00\x00\x00\x00\x00\x00\x02\x08\x00", NOW)


def test_bad_crc_drops_the_packet_then_the_next_one_decodes():
    damaged = CODEC8[:-1] + bytes([CODEC8[-1] ^ 1])
    s = session()
    with pytest.raises(ProtocolError, match="CRC"):
        s.receive_data(damaged + HELLO, NOW)
    assert raws(s.receive_data(b"", NOW)) == [HELLO]


def test_good_frames_before_a_bad_one_are_returned_first():
    damaged = CODEC8[:20] + b"\x00" + CODEC8[21:]
    s = session()
    assert raws(s.receive_data(HELLO + damaged, NOW)) == [HELLO]
    with pytest.raises(ProtocolError):
        s.receive_data(b"", NOW)


def test_lenient_framer_accepts_a_bad_crc():
    damaged = CODEC8[:-2] + b"\x00\x00"
    frames = session(lenient=True).receive_data(damaged, NOW)
    assert isinstance(frames[0].messages[0], Position)


def test_zeros_in_garbage_do_not_hold_back_a_complete_packet():
    """A preamble in garbage announcing more bytes than follow is given up when a
    complete packet with a good CRC is buffered after it."""
    garbage = b"\x00\x00\x00\x00\x00\x00\x01\x00\x13"
    s = session()
    delivered, errors = [], 0
    data = garbage + CODEC8
    while not delivered and errors < 5:
        try:
            delivered = raws(s.receive_data(data, NOW))
        except ProtocolError:
            errors += 1       # the shifted zero runs announce oversized packets
        data = b""
    assert delivered == [CODEC8]


def test_an_incomplete_packet_is_not_abandoned_for_a_later_preamble():
    """Zero runs inside a packet still in flight are no reason to resynchronise."""
    s = session()
    assert s.receive_data(CODEC16[:100], NOW) == []
    assert raws(s.receive_data(CODEC16[100:], NOW)) == [CODEC16]


def test_endless_garbage_is_a_protocol_error():
    framer = teltonika.Framer()
    framer.feed(b"\xde\xad\xbe\xef" * 8)
    assert framer.frames() == []
    assert framer.buffered == 0
    framer.feed(b"\xde\xad\xbe\xef" * (teltonika.MAX_FRAME_BYTES // 4 + 1))
    with pytest.raises(ProtocolError, match="garbage") as error:
        framer.frames()
    assert error.value.frame.startswith(b"\xde\xad")


def test_pings_do_not_reset_the_garbage_count():
    framer = teltonika.Framer()
    chunk = b"\x01" * 1000 + b"\xff"
    with pytest.raises(ProtocolError, match="garbage"):
        for _ in range(teltonika.MAX_FRAME_BYTES // 1000 + 2):
            framer.feed(chunk)
            framer.frames()


def test_garbage_count_restarts_after_each_good_frame():
    framer = teltonika.Framer()
    for _ in range(3):
        framer.feed(b"\x01" * (teltonika.MAX_FRAME_BYTES - 10) + HELLO)
        assert framer.frames() == [HELLO]


def test_oversized_frame_to_decode_frame_raises():
    big = packet(b"\x0c\x01\x06" + (20000).to_bytes(4, "big") + b"a" * 20000 + b"\x01")
    with pytest.raises(ProtocolError, match="exceeds"):
        session().decode_frame(big, NOW)
    with pytest.raises(ProtocolError, match="exceeds"):
        session().receive_datagram(big, NOW)


def test_datagram_must_be_a_udp_packet():
    with pytest.raises(ProtocolError):
        session().receive_datagram(CODEC8[:40], NOW)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8), st.booleans())
def test_random_bytes_give_frames_or_protocol_errors(chunks, lenient):
    """Random bytes never raise anything but ProtocolError; after an error the
    session keeps working."""
    s = session(lenient=lenient)
    for chunk in [*chunks, b"", HELLO]:
        try:
            frames = s.receive_data(chunk, NOW)
        except ProtocolError:
            continue
        assert all(isinstance(f, Frame) for f in frames)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_before_a_packet_never_corrupt_it(prefix):
    """Whatever precedes it, a well-formed packet is eventually delivered intact
    (possibly after ProtocolErrors for the garbage)."""
    s = session()
    delivered: list[bytes] = []
    data = prefix + CODEC8 + CODEC8
    for _ in range(50):
        try:
            delivered += raws(s.receive_data(data, NOW))
        except ProtocolError:
            pass
        data = b""
    assert CODEC8 in delivered
