"""H02 framing: text "*...#" and binary "$" frames in one stream, resynchronisation,
size caps, datagrams.

Frames marked "capture" are device frames from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0).
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import Frame, Position, ProtocolError, h02

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)

# Captures (Traccar test suite, Apache-2.0).
TEXT = b"*HQ,4106012736,V1,224434,A,1827.3855,N,06705.7577,W,000.00,000,100117,FFFFFBFF,310,260,49101,1753,5#"
HEARTBEAT = b"*HQ,1600068860,LINK,112137,20,8,67,0,0,081116,FFFFFBFF#"
SHORT_BINARY = bytes.fromhex("2441060116601245431311165035313006004318210e000000fffffbffff0024")        # 32 B
LONG_BINARY = bytes.fromhex(
    "2441091144271222470112142233983006114026520e000000fffffbffff0014060000000001cc00262b0f170a")  # 45 B
IMEI_BINARY = bytes.fromhex(
    "2435248308419329301047591808172627335900074412294e024138feffffffff01120064ba73005ecc")        # 42 B


def session(**options):
    return h02.CODEC.new_session(options)


def raws(frames: list[Frame]) -> list[bytes]:
    return [f.raw for f in frames]


def test_capture_lengths_are_the_known_binary_lengths():
    """The binary captures are 32, 45 and 42 bytes: lengths the framer knows."""
    assert [len(SHORT_BINARY), len(LONG_BINARY), len(IMEI_BINARY)] == [32, 45, 42]
    assert {32, 42, 45} <= set(h02.KNOWN_BINARY_LENGTHS)


def test_whole_buffer_of_mixed_frames_gives_every_frame_in_order():
    data = TEXT + LONG_BINARY + HEARTBEAT + SHORT_BINARY + IMEI_BINARY
    frames = session().receive_data(data, NOW)
    assert raws(frames) == [TEXT, LONG_BINARY, HEARTBEAT, SHORT_BINARY, IMEI_BINARY]
    assert all(isinstance(f.messages[0], Position) for f in frames)


def test_text_frames_one_byte_at_a_time():
    s, frames = session(), []
    data = TEXT + HEARTBEAT
    for i in range(len(data)):
        frames += s.receive_data(data[i:i + 1], NOW)
    assert raws(frames) == [TEXT, HEARTBEAT]


@pytest.mark.parametrize("cut", range(1, len(TEXT + HEARTBEAT)))
def test_text_frames_at_every_split_point(cut):
    data = TEXT + HEARTBEAT
    s = session()
    assert raws(s.receive_data(data[:cut], NOW) + s.receive_data(data[cut:], NOW)) == [TEXT, HEARTBEAT]


@pytest.mark.parametrize("cut", range(1, 2 * len(LONG_BINARY)))
def test_binary_frames_at_every_split_point_with_a_fixed_length(cut):
    """With messageLength set (Traccar's option) binary frames survive any split."""
    data = LONG_BINARY + LONG_BINARY
    s = session(messageLength=45)
    assert raws(s.receive_data(data[:cut], NOW) + s.receive_data(data[cut:], NOW)) == [LONG_BINARY] * 2


def test_binary_frames_one_byte_at_a_time_with_a_fixed_length():
    s, frames = session(messageLength=45), []
    for byte in LONG_BINARY + LONG_BINARY:
        frames += s.receive_data(bytes([byte]), NOW)
    assert raws(frames) == [LONG_BINARY, LONG_BINARY]


def test_binary_frame_ends_where_the_next_frame_starts():
    """Detection: a 45-byte frame followed by anything well-formed ends at byte 45."""
    s = session()
    assert raws(s.receive_data(LONG_BINARY + SHORT_BINARY[:20], NOW)) == [LONG_BINARY]
    assert raws(s.receive_data(SHORT_BINARY[20:], NOW)) == [SHORT_BINARY]


def test_binary_frame_of_a_known_length_is_complete_at_the_segment_end():
    """A TCP segment holding exactly one 32/42/45-byte frame is decoded at once."""
    for frame in (SHORT_BINARY, LONG_BINARY, IMEI_BINARY):
        assert raws(session().receive_data(frame, NOW)) == [frame]


def test_binary_frame_of_an_unknown_length_waits_for_the_next_frame():
    odd = LONG_BINARY + b"\x00\x01\x00\x00"      # 49 bytes: not a known length
    s = session()
    assert s.receive_data(odd, NOW) == []
    assert raws(s.receive_data(TEXT, NOW)) == [odd, TEXT]


def test_trailing_partial_frame_waits_for_its_rest():
    s = session()
    assert raws(s.receive_data(TEXT + HEARTBEAT[:10], NOW)) == [TEXT]
    assert raws(s.receive_data(HEARTBEAT[10:], NOW)) == [HEARTBEAT]


def test_garbage_and_line_ends_before_frames_are_skipped():
    data = b"\r\n\x00GET / HTTP/1.1\r\n#*x$\x99" + TEXT + b"\r\n" + SHORT_BINARY
    assert raws(session().receive_data(data, NOW)) == [TEXT, SHORT_BINARY]


def test_a_stray_dollar_in_garbage_does_not_swallow_the_next_frame():
    """'$' followed by bytes that are no BCD id/time/date is garbage."""
    assert raws(session().receive_data(b"$\xff\xff" + LONG_BINARY, NOW)) == [LONG_BINARY]


def test_text_frame_without_end_beyond_the_cap_raises():
    s = session()
    with pytest.raises(ProtocolError, match="'#'"):
        s.receive_data(b"*HQ," + b"1" * h02.MAX_FRAME_BYTES, NOW)


def test_oversized_text_frame_is_dropped_and_the_stream_resumes():
    """The oversized frame's start is dropped, its body is then garbage (one more
    error, it exceeds the garbage cap too); the frame after it decodes."""
    s = session()
    with pytest.raises(ProtocolError, match="'#'"):
        s.receive_data(b"*HQ," + b"1" * h02.MAX_FRAME_BYTES + TEXT, NOW)
    errors, frames = 0, []
    while not frames and errors < 5:
        try:
            frames = s.receive_data(b"", NOW)
        except ProtocolError:
            errors += 1
    assert raws(frames) == [TEXT] and errors == 1


def test_decode_frame_refuses_an_oversized_frame():
    with pytest.raises(ProtocolError, match="exceeds"):
        session().decode_frame(TEXT[:-1] + b"," * h02.MAX_FRAME_BYTES + b"#", NOW)


def test_endless_garbage_is_a_protocol_error():
    framer = h02.Framer()
    framer.feed(b"\x01\x02\x03\x04" * 8)
    assert framer.frames() == []
    framer.feed(b"\x01\x02\x03\x04" * (h02.MAX_FRAME_BYTES // 4 + 1))
    with pytest.raises(ProtocolError, match="garbage") as error:
        framer.frames()
    assert error.value.frame.startswith(b"\x01\x02")


def test_garbage_count_restarts_after_each_good_frame():
    framer = h02.Framer()
    for _ in range(3):
        framer.feed(b"\x00" * (h02.MAX_FRAME_BYTES - 10) + TEXT)
        assert framer.frames() == [TEXT]


def test_good_frames_before_a_bad_one_are_returned_first():
    s = session()
    assert raws(s.receive_data(TEXT + b"*HQ," + b"9" * h02.MAX_FRAME_BYTES, NOW)) == [TEXT]
    with pytest.raises(ProtocolError):
        s.receive_data(b"", NOW)


def test_datagram_with_text_and_binary_frames():
    frames = session().receive_datagram(TEXT + b"\r\n" + LONG_BINARY, NOW)
    assert raws(frames) == [TEXT, LONG_BINARY]


def test_datagram_end_ends_a_binary_frame_of_any_length():
    odd = LONG_BINARY + b"\x00\x00\x00\x00"
    assert raws(session().receive_datagram(odd, NOW)) == [odd]


def test_datagram_ending_inside_a_text_frame_raises():
    with pytest.raises(ProtocolError):
        session().receive_datagram(TEXT[:30], NOW)


def test_datagram_with_a_truncated_binary_frame_raises():
    with pytest.raises(ProtocolError):
        session().receive_datagram(SHORT_BINARY[:20], NOW)


def test_message_length_option_is_validated():
    with pytest.raises(ValueError, match="messageLength"):
        session(messageLength=5)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8), st.sampled_from([0, 32, 45]))
def test_random_bytes_give_frames_or_protocol_errors(chunks, length):
    """Random stream bytes never raise anything but ProtocolError."""
    s = session(messageLength=length)
    for chunk in chunks + [b""]:
        try:
            frames = s.receive_data(chunk, NOW)
        except ProtocolError:
            continue
        assert all(isinstance(f, Frame) for f in frames)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_datagrams_give_frames_or_protocol_errors(data):
    for candidate in (data, b"*HQ,1," + data, b"$" + data):
        try:
            frames = session().receive_datagram(candidate, NOW)
        except ProtocolError:
            continue
        assert all(isinstance(f, Frame) for f in frames)
