"""GT06 framing: stream splitting, resynchronisation, size cap, CRC, UDP datagrams.

Two frames below are device captures from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0).
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import Login, Position, ProtocolError, gt06
from protocols.devices import gt06 as gt06_device
from tests.protocols.gt06_captures import LOCATION, LOGIN, LONG_INFO, crc_x25

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)



def session(**options):
    return gt06.CODEC.new_session(options)


def kinds(frames):
    """The message classes of each frame, for compact comparisons."""
    return [[type(m).__name__ for m in f.messages] for f in frames]


def test_crc_matches_the_x25_check_value():
    """CRC-ITU is CRC-16/X-25: check value 0x906E over "123456789"."""
    assert crc_x25(b"123456789") == 0x906E
    assert gt06.crc_itu(b"123456789") == 0x906E


def test_captured_frames_carry_a_valid_crc():
    """The test captures are well formed: CRC over length..serial."""
    for frame in (LOGIN, LOCATION, LONG_INFO):
        assert int.from_bytes(frame[-4:-2], "big") == crc_x25(frame[2:-4])


def test_whole_buffer_gives_every_frame_in_order():
    frames = session().receive_data(LOGIN + LOCATION, NOW)
    assert kinds(frames) == [["Login"], ["Position"]]
    assert [f.raw for f in frames] == [LOGIN, LOCATION]


def test_one_byte_at_a_time_gives_the_same_frames():
    s = session()
    frames = []
    for i in range(len(LOGIN + LOCATION)):
        frames += s.receive_data((LOGIN + LOCATION)[i:i + 1], NOW)
    assert [f.raw for f in frames] == [LOGIN, LOCATION]


@pytest.mark.parametrize("cut", range(1, len(LOGIN + LOCATION)))
def test_every_split_point_gives_the_same_frames(cut):
    data = LOGIN + LOCATION
    s = session()
    frames = s.receive_data(data[:cut], NOW) + s.receive_data(data[cut:], NOW)
    assert [f.raw for f in frames] == [LOGIN, LOCATION]


def test_two_frames_back_to_back_then_a_long_frame():
    frames = session().receive_data(LOCATION + LOCATION + LONG_INFO, NOW)
    assert [f.raw for f in frames] == [LOCATION, LOCATION, LONG_INFO]


def test_trailing_partial_frame_waits_for_its_rest():
    s = session()
    assert [f.raw for f in s.receive_data(LOGIN + LOCATION[:10], NOW)] == [LOGIN]
    assert [f.raw for f in s.receive_data(LOCATION[10:], NOW)] == [LOCATION]


def test_garbage_before_a_frame_is_skipped():
    frames = session().receive_data(b"\x00\xffGET / HTTP/1.1\r\n\x78" + LOGIN, NOW)
    assert [f.raw for f in frames] == [LOGIN]


def test_garbage_without_a_start_marker_is_not_buffered():
    framer = gt06.Framer()
    framer.feed(b"\x01\x02" * 200)
    assert framer.next_frame() is None
    assert framer.buffered == 0


def test_oversized_declared_length_raises():
    """A 0x7979 frame announcing 65 535 bytes exceeds MAX_FRAME_BYTES."""
    with pytest.raises(ProtocolError, match="exceeds"):
        session().receive_data(b"\x79\x79\xff\xff\x94" + b"\x00" * 10, NOW)


def test_oversized_frame_is_dropped_and_the_stream_resumes():
    s = session()
    with pytest.raises(ProtocolError):
        s.receive_data(b"\x79\x79\xff\xff\x94" + LOGIN, NOW)
    assert [f.raw for f in s.receive_data(b"", NOW)] == [LOGIN]


def test_length_field_too_small_raises():
    with pytest.raises(ProtocolError, match="too small"):
        session().receive_data(b"\x78\x78\x02\x01\x00\x00\x0d\x0a", NOW)


def test_bad_crc_raises_then_the_next_frame_decodes():
    damaged = LOGIN[:-4] + bytes([LOGIN[-4] ^ 0xFF]) + LOGIN[-3:]
    s = session()
    with pytest.raises(ProtocolError, match="CRC"):
        s.receive_data(damaged + LOCATION, NOW)
    assert [f.raw for f in s.receive_data(b"", NOW)] == [LOCATION]


def test_missing_stop_bits_raise():
    with pytest.raises(ProtocolError, match="stop"):
        session().receive_data(LOGIN[:-2] + b"\x00\x00", NOW)


def test_good_frames_before_a_bad_one_are_returned_first():
    """The error is held back so frames already complete are not lost."""
    damaged = LOCATION[:20] + b"\x00" + LOCATION[21:]
    s = session()
    assert [f.raw for f in s.receive_data(LOGIN + damaged, NOW)] == [LOGIN]
    with pytest.raises(ProtocolError):
        s.receive_data(b"", NOW)


def test_datagram_with_two_frames():
    frames = session().receive_datagram(LOGIN + LOCATION, NOW)
    assert kinds(frames) == [["Login"], ["Position"]]


def test_datagram_ending_inside_a_frame_raises():
    with pytest.raises(ProtocolError, match="datagram"):
        session().receive_datagram(LOGIN + LOCATION[:12], NOW)


def test_lenient_framer_accepts_a_stale_crc():
    damaged = LOGIN[:-4] + b"\x00\x00" + LOGIN[-2:]
    frames = session(lenient=True).receive_data(damaged, NOW)
    assert isinstance(frames[0].messages[0], Login)


def test_lenient_framer_delimits_legacy_count_frames_by_stop_bits():
    """0x69 reports carry a Wi-Fi count where the length belongs (no CRC)."""
    legacy = bytes.fromhex("7878006919012105090303028f01007549e05a00bc9c5c5a007a8d1a5a0d0a")
    frames = session(lenient=True).receive_data(legacy + LOGIN, NOW)
    assert [f.raw for f in frames] == [legacy, LOGIN]
    assert frames[0].messages[0].network["cellTowers"][0]["mobileCountryCode"] == 655


def test_split_frames_keeps_the_partial_tail():
    ack = gt06.ack_frame(0x01, 7)
    buffer = bytearray(b"\x00" + ack + ack[:5])
    assert gt06.split_frames(buffer) == [ack]
    assert bytes(buffer) == ack[:5]


def test_ack_reader_splits_server_replies():
    reader = gt06_device.AckReader()
    ack = gt06.ack_frame(0x13, 0x0102)
    assert reader.receive_data(ack[:4]) == []
    assert reader.receive_data(ack[4:] + ack) == [ack, ack]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8), st.booleans())
def test_random_bytes_give_frames_or_protocol_errors(chunks, lenient):
    """Random bytes never raise anything but ProtocolError; after an error
    the session keeps working."""
    s = session(lenient=lenient)
    for chunk in chunks + [b""]:
        try:
            frames = s.receive_data(chunk, NOW)
        except ProtocolError:
            continue
        assert all(isinstance(f, gt06.Frame) for f in frames)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_random_frames_give_a_frame_or_protocol_error(data, lenient):
    for candidate in (data, b"\x78\x78" + data, b"\x79\x79" + data):
        try:
            frame = session(lenient=lenient).decode_frame(candidate, NOW)
        except ProtocolError:
            continue
        assert isinstance(frame, gt06.Frame)


def test_a_frame_that_decodes_is_a_position_frame():
    frame = session().receive_data(LOCATION, NOW)[0]
    assert isinstance(frame.messages[0], Position)


def test_long_garbage_without_a_frame_start_is_a_protocol_error():
    """Line noise is skipped, but a peer that sends only garbage is refused."""
    framer = gt06.Framer()
    framer.feed(b"\xde\xad\xbe\xef" * 8)
    assert framer.frames() == []
    framer.feed(b"\xde\xad\xbe\xef" * (gt06.MAX_FRAME_BYTES // 4 + 1))
    with pytest.raises(ProtocolError, match="garbage") as error:
        framer.frames()
    assert error.value.frame.startswith(b"\xde\xad")


def test_garbage_count_restarts_after_each_good_frame():
    framer = gt06.Framer()
    chunk = b"\x00" * (gt06.MAX_FRAME_BYTES - 10)
    for serial in range(1, 4):
        framer.feed(chunk + gt06_device.device_login("123456789012345", serial))
        assert len(framer.frames()) == 1
