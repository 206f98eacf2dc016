"""GL200 (@Track) framing: text frames to "$", binary frames by length, resync, caps, UDP.

The captures below are device frames from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0).
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import Position, ProtocolError, gl200
from protocols.gl200.framing import MAX_FRAME_BYTES, Framer

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)

# Captures (Traccar test suite, Apache-2.0).
FRI = (b"+RESP:GTFRI,060228,862894020180553,,14827,10,1,1,3.4,199,409.6,-63.174466,-17.739317,"
       b"20170407121823,0000,0000,0000,0000,00,15989.5,01070:43:13,13,180,0,220101,,,,"
       b"20170407081824,9607$")
HBD = b"+ACK:GTHBD,1A0401,135790246811220,,20100214093254,11F0$"
STT = (b"+RESP:GTSTT,060228,862894020178276,,21,0,0.0,0,411.3,-63.169745,-17.776330,20160319132220,"
       b"0736,0003,6AD4,5BAA,00,20160319092223,1FBD$")
BINARY = bytes.fromhex(
    "2b5253500700fc1fbf005d4501020209563254030003430564377e42071001000000000000007eff75a151"
    "025c6a8107e10801081a2a02680003189c1ac500000000000002100700000000000000000007e108010824"
    "1019e17ebe0d0a")


def session(**options):
    return gl200.CODEC.new_session(options)


def raws(frames):
    return [f.raw for f in frames]


def test_captured_binary_frame_announces_its_own_size():
    """Binary +RSP: the length field at bytes 9-10 counts the whole frame."""
    assert int.from_bytes(BINARY[9:11], "big") == len(BINARY)


def test_whole_buffer_gives_every_frame_in_order():
    frames = session().receive_data(FRI + HBD + STT, NOW)
    assert raws(frames) == [FRI, HBD, STT]


def test_one_byte_at_a_time_gives_the_same_frames():
    s = session()
    frames = []
    data = FRI + BINARY + HBD
    for i in range(len(data)):
        frames += s.receive_data(data[i:i + 1], NOW)
    assert raws(frames) == [FRI, BINARY, HBD]


@pytest.mark.parametrize("cut", range(1, len(HBD + STT)))
def test_every_split_point_gives_the_same_frames(cut):
    data = HBD + STT
    s = session()
    frames = s.receive_data(data[:cut], NOW) + s.receive_data(data[cut:], NOW)
    assert raws(frames) == [HBD, STT]


@pytest.mark.parametrize("cut", range(1, len(BINARY)))
def test_every_split_point_of_a_binary_frame(cut):
    s = session()
    frames = s.receive_data(BINARY[:cut], NOW) + s.receive_data(BINARY[cut:], NOW)
    assert raws(frames) == [BINARY]


def test_text_and_binary_frames_back_to_back():
    frames = session().receive_data(BINARY + FRI + BINARY, NOW)
    assert raws(frames) == [BINARY, FRI, BINARY]
    assert all(isinstance(f.messages[0], Position) for f in frames)


def test_trailing_partial_frame_waits_for_its_rest():
    s = session()
    assert raws(s.receive_data(HBD + STT[:30], NOW)) == [HBD]
    assert raws(s.receive_data(STT[30:], NOW)) == [STT]


def test_garbage_and_line_ends_between_frames_are_skipped():
    """CR LF after "$", stray bytes and a lone "+" never become frames."""
    frames = session().receive_data(b"\x00\xffhello+ +\r\n" + HBD + b"\r\n" + STT + b"\r\n", NOW)
    assert raws(frames) == [HBD, STT]


def test_old_frame_ending_with_a_line_end_instead_of_dollar():
    """Some old firmware ends frames with CR LF only; the frame comes without it."""
    frames = session().receive_data(HBD[:-1] + b"\r\n" + STT, NOW)
    assert raws(frames) == [HBD[:-1], STT]
    assert frames[0].reply == b"+SACK:GTHBD,1A0401,11F0$"


def test_endless_garbage_raises():
    with pytest.raises(ProtocolError, match="garbage"):
        session().receive_data(b"x" * (MAX_FRAME_BYTES + 1), NOW)


def test_garbage_below_the_cap_is_dropped_not_buffered():
    framer = Framer()
    framer.feed(b"abc" * 100)
    assert framer.next_frame() is None
    assert framer.buffered == 0


def test_oversized_text_frame_raises_then_the_stream_resumes():
    s = session()
    with pytest.raises(ProtocolError, match="without"):
        s.receive_data(b"+RESP:GTFRI," + b"1" * MAX_FRAME_BYTES, NOW)
    assert raws(s.receive_data(b"$" + HBD, NOW)) == [HBD]


def test_binary_length_beyond_the_cap_raises_and_the_stream_resumes():
    s = session()
    oversized = b"+RSP\x07\x00\xfc\x1f\xbf\xff\xff" + b"\x00" * 10
    with pytest.raises(ProtocolError, match="length"):
        s.receive_data(oversized + HBD, NOW)
    assert raws(s.receive_data(b"", NOW)) == [HBD]


def test_binary_length_too_small_to_hold_its_header_raises():
    with pytest.raises(ProtocolError, match="length"):
        session().receive_data(b"+RSP\x07\x00\xfc\x1f\xbf\x00\x03" + HBD, NOW)


def test_good_frames_before_a_bad_one_are_returned_first():
    """The error is held back so the frames already complete are not lost."""
    s = session()
    bad = b"+RSP\x07\x00\xfc\x1f\xbf\x00\x01"
    assert raws(s.receive_data(HBD + bad + STT, NOW)) == [HBD]
    with pytest.raises(ProtocolError):
        s.receive_data(b"", NOW)
    assert raws(s.receive_data(b"", NOW)) == [STT]


# -- per-field corruption -------------------------------------------------------------

def test_damaged_start_marker_is_skipped_as_garbage():
    assert session().receive_data(b"x" + HBD[1:] + STT, NOW)[0].raw == STT


def test_damaged_head_is_a_protocol_error_and_the_stream_resumes():
    """"+REXP:" is not a report head: the frame is refused, the next one decodes."""
    damaged = STT.replace(b"+RESP:", b"+REXP:")
    with pytest.raises(ProtocolError):
        session().decode_frame(damaged, NOW)
    s = session()
    with pytest.raises(ProtocolError, match="not an @Track"):
        s.receive_data(damaged + HBD, NOW)
    assert raws(s.receive_data(b"", NOW)) == [HBD]


def test_damaged_report_type_decodes_as_a_generic_report():
    """An unknown report type is not an error: its GPS item still makes a record."""
    frame = session().decode_frame(STT.replace(b"GTSTT", b"GTZZZ"), NOW)
    assert frame.messages[0].attributes["type"] == "ZZZ"
    assert "alarm" not in frame.messages[0].attributes


def test_damaged_binary_length_field_is_a_protocol_error():
    """decode_frame: the length field must match the frame's size."""
    for length in (len(BINARY) - 1, len(BINARY) + 1, 0):
        damaged = BINARY[:9] + length.to_bytes(2, "big") + BINARY[11:]
        with pytest.raises(ProtocolError):
            session().decode_frame(damaged, NOW)


def test_damaged_binary_header_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        session().decode_frame(b"+XYZ" + BINARY[4:], NOW)


def test_truncated_binary_frame_is_a_protocol_error():
    for size in (5, 11, 40, len(BINARY) - 1):
        with pytest.raises(ProtocolError):
            session().decode_frame(BINARY[:size], NOW)


def test_frame_over_the_cap_is_refused_by_decode_frame():
    with pytest.raises(ProtocolError, match="exceeds"):
        session().decode_frame(b"+RESP:GTFRI," + b"1," * MAX_FRAME_BYTES + b"$", NOW)


# -- UDP ------------------------------------------------------------------------------

def test_datagram_with_several_frames_the_last_without_dollar():
    frames = session().receive_datagram(HBD + STT[:-1], NOW)
    assert raws(frames) == [HBD, STT[:-1]]
    assert isinstance(frames[1].messages[0], Position)


def test_datagram_ending_inside_a_binary_frame_is_an_error():
    with pytest.raises(ProtocolError, match="datagram"):
        session().receive_datagram(HBD + BINARY[:-3], NOW)


def test_datagram_with_one_binary_frame():
    assert raws(session().receive_datagram(BINARY, NOW)) == [BINARY]


# -- random input -----------------------------------------------------------------------

@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=600))
def test_random_bytes_give_frames_or_protocol_errors(data):
    s = session()
    for call in (lambda: s.receive_data(data, NOW), lambda: s.receive_data(b"", NOW),
                 lambda: session().decode_frame(data, NOW),
                 lambda: session().receive_datagram(data, NOW)):
        try:
            call()
        except ProtocolError:
            pass


@settings(deadline=None, max_examples=300)
@given(st.lists(st.sampled_from([b"+", b"$", b"+RESP:GT", b"+ACK:GT", b"+RSP", b"+EVT", b"+INF",
                                 b"+\x00\x00", b"\r\n", b",", b"FRI", b"HBD", b"\x00", b"\xff"])
                | st.binary(max_size=8), max_size=40))
def test_stream_of_frame_fragments_gives_frames_or_protocol_errors(parts):
    """Random mixes of frame heads and terminators exercise the framer's states."""
    s = session()
    for part in parts:
        try:
            s.receive_data(part, NOW)
        except ProtocolError:
            pass
