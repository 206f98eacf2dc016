"""JT808 framing: delimiters, escaping, resynchronisation, size cap, checksum, UDP datagrams.

Frames marked "capture" are device frames from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0); the others are built
here with an escaping and an XOR written independently of the codec.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import Frame, Login, Position, ProtocolError, jt808

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)

# Captures (Traccar test suite, Apache-2.0); none holds 0x7d / 0x7e inside.
REGISTER = bytes.fromhex(
    "7e01000021013345678906000f002c012f373031313142534a2d4d3742203030303030303001d4c1423838383838b47e")
LOCATION = bytes.fromhex(
    "7e0200002a013833501744001900000000000000c201597fa806cc01580080000000081508180721210104000002f5"
    "02020000030200009f7e")
HEARTBEAT = bytes.fromhex("7e0002000004304832546500b7ca7e")
LOCK_TEXT = b"(740190311185,1,001,ELOCK,3,529439)"


def xor(data: bytes) -> int:
    return functools.reduce(operator.xor, data, 0)


def wire(content: bytes) -> bytes:
    """Header + body -> escaped frame, byte by byte (independent of the codec)."""
    out = bytearray(b"\x7e")
    for byte in content + bytes([xor(content)]):
        out += {0x7E: b"\x7d\x02", 0x7D: b"\x7d\x01"}.get(byte, bytes([byte]))
    return bytes(out + b"\x7e")


# A heartbeat whose terminal number and serial need escaping: 7e and 7d inside.
ESCAPED_CONTENT = bytes.fromhex("00020000") + bytes.fromhex("01237e7d4567") + bytes.fromhex("7e7d")
ESCAPED = wire(ESCAPED_CONTENT)


def session(**options):
    return jt808.CODEC.new_session(options)


def raws(frames: list[Frame]) -> list[bytes]:
    return [f.raw for f in frames]


def test_escaping_doubles_the_special_bytes():
    """The test's own wire form: 7e -> 7d 02, 7d -> 7d 01 between the delimiters."""
    assert ESCAPED.count(b"\x7d\x02") == 2 and ESCAPED.count(b"\x7d\x01") == 2
    assert jt808.escape(ESCAPED_CONTENT + bytes([xor(ESCAPED_CONTENT)])) == ESCAPED[1:-1]
    assert jt808.unescape(ESCAPED[1:-1]) == ESCAPED_CONTENT + bytes([xor(ESCAPED_CONTENT)])


def test_unescape_keeps_an_unknown_escape_pair():
    """0x7d before a byte other than 01/02 stays as it is (observed raw 0x7d)."""
    assert jt808.unescape(b"\x01\x7d\xa0\x7d\x01") == b"\x01\x7d\xa0\x7d"


def test_captures_carry_a_valid_xor():
    for frame in (REGISTER, LOCATION, HEARTBEAT):
        assert xor(frame[1:-2]) == frame[-2]
        assert jt808.checksum(frame[1:-2]) == frame[-2]


def test_whole_buffer_gives_every_frame_in_order():
    frames = session().receive_data(REGISTER + LOCATION + HEARTBEAT, NOW)
    assert raws(frames) == [REGISTER, LOCATION, HEARTBEAT]
    assert isinstance(frames[0].messages[0], Login) and isinstance(frames[1].messages[0], Position)


def test_one_byte_at_a_time_gives_the_same_frames():
    s, frames = session(), []
    for byte in REGISTER + LOCATION:
        frames += s.receive_data(bytes([byte]), NOW)
    assert raws(frames) == [REGISTER, LOCATION]


@pytest.mark.parametrize("cut", range(1, len(REGISTER + ESCAPED + LOCATION)))
def test_every_split_point_gives_the_same_frames(cut):
    data = REGISTER + ESCAPED + LOCATION
    s = session()
    frames = s.receive_data(data[:cut], NOW) + s.receive_data(data[cut:], NOW)
    assert raws(frames) == [REGISTER, b"\x7e" + ESCAPED_CONTENT + bytes([xor(ESCAPED_CONTENT)]) + b"\x7e",
                            LOCATION]


def test_the_framer_delivers_the_frame_unescaped():
    """decode_frame sees the content as the device meant it: serial 0x7e7d."""
    frame = session().receive_data(ESCAPED, NOW)[0]
    assert frame.raw[1:-1] == ESCAPED_CONTENT + bytes([xor(ESCAPED_CONTENT)])
    assert jt808.parse_header(frame.raw).serial == 0x7E7D
    assert jt808.parse_header(frame.raw).terminal == bytes.fromhex("01237e7d4567")


def test_two_frames_back_to_back_then_a_text_frame():
    frames = session().receive_data(LOCATION + LOCATION + LOCK_TEXT, NOW)
    assert raws(frames) == [LOCATION, LOCATION, LOCK_TEXT]


def test_trailing_partial_frame_waits_for_its_rest():
    s = session()
    assert raws(s.receive_data(REGISTER + LOCATION[:20], NOW)) == [REGISTER]
    assert raws(s.receive_data(LOCATION[20:], NOW)) == [LOCATION]


def test_garbage_before_a_frame_is_skipped():
    frames = session().receive_data(b"\x00\xffGET / HTTP/1.1\r\n" + LOCATION, NOW)
    assert raws(frames) == [LOCATION]


def test_a_stray_delimiter_in_garbage_costs_no_good_frame():
    """A stray 7e in garbage pairs with the frame's opening 7e and is refused (too
    short, or a bad checksum); only the stray start is dropped, so the real frame
    follows."""
    for garbage in (b"\x7e\x01\x02\x03", b"\x7e" + bytes(range(1, 21))):
        s = session()
        with pytest.raises(ProtocolError, match="short|checksum"):
            s.receive_data(garbage + LOCATION, NOW)
        assert raws(s.receive_data(b"", NOW)) == [LOCATION]


def test_adjacent_delimiters_are_no_frame():
    """An end followed by a start (7e 7e) is skipped, not decoded."""
    assert raws(session().receive_data(b"\x7e" + LOCATION + b"\x7e" + HEARTBEAT, NOW)) == \
        [LOCATION, HEARTBEAT]


def test_a_stray_parenthesis_in_binary_garbage_is_skipped():
    assert raws(session().receive_data(b"(\x00\x01" + LOCATION, NOW)) == [LOCATION]


def test_garbage_without_a_start_is_not_buffered():
    framer = jt808.Framer()
    framer.feed(b"\x01\x02" * 200)
    assert framer.next_frame() is None
    assert framer.buffered == 0


def test_oversized_frame_raises_and_the_stream_resumes():
    """No closing 0x7e within MAX_FRAME_BYTES: the start is dropped with an error."""
    s = session()
    with pytest.raises(ProtocolError, match="cap"):
        s.receive_data(b"\x7e" + b"\x01" * jt808.MAX_FRAME_BYTES, NOW)
    assert raws(s.receive_data(LOCATION, NOW)) == [LOCATION]   # the rest was garbage


def test_oversized_decode_frame_raises():
    with pytest.raises(ProtocolError, match="exceeds"):
        session().decode_frame(b"\x7e" + bytes(jt808.MAX_FRAME_BYTES) + b"\x7e", NOW)


def test_long_garbage_without_a_frame_is_a_protocol_error():
    framer = jt808.Framer()
    framer.feed(b"\xde\xad\xbe\xef" * 8)
    assert framer.frames() == []
    framer.feed(b"\xde\xad\xbe\xef" * (jt808.MAX_FRAME_BYTES // 4 + 1))
    with pytest.raises(ProtocolError, match="garbage") as error:
        framer.frames()
    assert error.value.frame.startswith(b"\xde\xad")


def test_garbage_count_restarts_after_each_good_frame():
    framer = jt808.Framer()
    for _ in range(3):
        framer.feed(b"\x00" * (jt808.MAX_FRAME_BYTES - 10) + HEARTBEAT)
        assert framer.frames() == [HEARTBEAT]


def test_bad_checksum_raises_then_the_next_frame_decodes():
    damaged = LOCATION[:-2] + bytes([LOCATION[-2] ^ 0xFF]) + b"\x7e"
    s = session()
    with pytest.raises(ProtocolError, match="checksum"):
        s.receive_data(damaged + HEARTBEAT, NOW)
    assert raws(s.receive_data(b"", NOW)) == [HEARTBEAT]


def test_good_frames_before_a_bad_one_are_returned_first():
    damaged = LOCATION[:30] + bytes([LOCATION[30] ^ 1]) + LOCATION[31:]
    s = session()
    assert raws(s.receive_data(REGISTER + damaged, NOW)) == [REGISTER]
    with pytest.raises(ProtocolError):
        s.receive_data(b"", NOW)


def test_lenient_framer_accepts_a_bad_checksum():
    damaged = LOCATION[:-2] + b"\x00\x7e"
    frames = session(lenient=True).receive_data(damaged, NOW)
    assert isinstance(frames[0].messages[0], Position)


def test_a_too_short_frame_is_refused():
    with pytest.raises(ProtocolError, match="short"):
        session().receive_data(b"\x7e\x00\x02\x00\x7e", NOW)


def test_datagram_with_two_frames():
    frames = session().receive_datagram(REGISTER + LOCATION, NOW)
    assert [type(f.messages[0]).__name__ for f in frames] == ["Login", "Position"]


def test_datagram_ending_inside_a_frame_raises():
    with pytest.raises(ProtocolError, match="datagram"):
        session().receive_datagram(REGISTER + LOCATION[:12], NOW)


def test_split_frames_keeps_the_partial_tail():
    buffer = bytearray(b"\x00" + HEARTBEAT + HEARTBEAT[:5])
    assert jt808.split_frames(buffer) == [HEARTBEAT]
    assert bytes(buffer) == HEARTBEAT[:5]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8), st.booleans())
def test_random_bytes_give_frames_or_protocol_errors(chunks, lenient):
    """Random bytes never raise anything but ProtocolError; the session keeps working."""
    s = session(lenient=lenient)
    for chunk in chunks + [b""]:
        try:
            frames = s.receive_data(chunk, NOW)
        except ProtocolError:
            continue
        assert all(isinstance(f, Frame) for f in frames)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"\x7e", b"\x7d", b"(", b")", b"\x00", b"\x02", b"\x01", b"A"]),
                max_size=200), st.booleans())
def test_delimiter_heavy_bytes_give_frames_or_protocol_errors(pieces, lenient):
    s = session(lenient=lenient)
    try:
        frames = s.receive_data(b"".join(pieces), NOW)
    except ProtocolError:
        return
    assert all(isinstance(f, Frame) for f in frames)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_random_frames_give_a_frame_or_protocol_error(data, lenient):
    for candidate in (data, b"\x7e" + data + b"\x7e", b"(" + data + b")"):
        try:
            frame = session(lenient=lenient).decode_frame(candidate, NOW)
        except ProtocolError:
            continue
        assert isinstance(frame, Frame)
