"""Watch framing: length-delimited frames, binary payloads, resynchronisation, size cap.

Frames marked "capture" are device frames from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0); the others are
written out here by hand.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import Frame, ProtocolError, watch

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)

LINK = b"[SG*8800000015*0002*LK]"                                        # capture
POSITION = (b"[3G*4700222306*0077*UD,120316,140610,V,48.779045,N, 9.1574736,E,0.00,0.0,0.0,0,"
            b"25,83,0,0,00000000,2,255,262,1,21041,9067,121,21041,5981,116]")   # capture
# capture: voice message whose binary payload holds "}", "[", "]", ",", "*" and 0xFF
VOICE = bytes.fromhex("5b43532a313233343536373839302a303030652a544b2c2321414d527d5b5d2c2aff5d")
# capture (ZJ dialect): serial number 0064 before the length 0x33
ZJ_POSITION = (b"[ZJ*014111001350304*0033*0064*UD,070318,020827,V,00.000000,N,000.000000,E,0,0,0,"
               b"0,100,19,1000,50,00000000,1,255,460,0,9346,5223,42]")
STALE_LENGTH = b"[SG*9081000548*0009*LK,0,100]"   # capture: declares 9 bytes, holds 8


def session(**options):
    return watch.CODEC.new_session(options)


def raws(frames):
    return [f.raw for f in frames]


def test_captures_declare_their_content_length():
    """The length field (hex) counts the content bytes between the header and "]"."""
    assert len(b"LK") == 0x0002
    assert len(VOICE) - len(b"[CS*1234567890*000e*") - 1 == 0x0E
    assert watch.parse_header(ZJ_POSITION).length == 0x64
    assert watch.parse_header(ZJ_POSITION).serial == "0033"


def test_whole_buffer_gives_every_frame_in_order():
    frames = session().receive_data(LINK + POSITION + VOICE, NOW)
    assert raws(frames) == [LINK, POSITION, VOICE]


def test_one_byte_at_a_time_gives_the_same_frames():
    s = session()
    data = LINK + VOICE + ZJ_POSITION
    frames = []
    for i in range(len(data)):
        frames += s.receive_data(data[i:i + 1], NOW)
    assert raws(frames) == [LINK, VOICE, ZJ_POSITION]


@pytest.mark.parametrize("cut", range(1, len(LINK + VOICE + ZJ_POSITION)))
def test_every_split_point_gives_the_same_frames(cut):
    data = LINK + VOICE + ZJ_POSITION
    s = session()
    frames = s.receive_data(data[:cut], NOW) + s.receive_data(data[cut:], NOW)
    assert raws(frames) == [LINK, VOICE, ZJ_POSITION]


def test_binary_payload_with_brackets_is_delimited_by_length():
    """The voice data holds "]" bytes: the frame still ends where the length says."""
    frames = session().receive_data(VOICE + LINK, NOW)
    assert raws(frames) == [VOICE, LINK]


def test_two_frames_back_to_back():
    assert raws(session().receive_data(POSITION + POSITION, NOW)) == [POSITION, POSITION]


def test_trailing_partial_frame_waits_for_its_rest():
    s = session()
    assert raws(s.receive_data(LINK + POSITION[:40], NOW)) == [LINK]
    assert raws(s.receive_data(POSITION[40:], NOW)) == [POSITION]


def test_zj_length_field_still_arriving_waits():
    """After "[ZJ*id*0033*" the next field may be a length: wait for it."""
    s = session()
    assert s.receive_data(ZJ_POSITION[:27], NOW) == []
    assert raws(s.receive_data(ZJ_POSITION[27:], NOW)) == [ZJ_POSITION]


def test_garbage_before_a_frame_is_skipped():
    frames = session().receive_data(b"\x00\xffGET / HTTP/1.1\r\n[[x*" + LINK, NOW)
    assert raws(frames) == [LINK]


def test_bracket_without_a_header_is_skipped():
    assert raws(session().receive_data(b"[not a header]" + LINK, NOW)) == [LINK]


def test_endless_garbage_is_a_protocol_error():
    framer = watch.Framer()
    framer.feed(b"\xde\xad\xbe\xef" * 8)
    assert framer.frames() == []
    framer.feed(b"\xde\xad" * (watch.MAX_FRAME_BYTES // 2 + 1))
    with pytest.raises(ProtocolError, match="garbage"):
        framer.frames()


def test_garbage_count_restarts_after_each_good_frame():
    framer = watch.Framer()
    for _ in range(3):
        framer.feed(b"\x00" * (watch.MAX_FRAME_BYTES - 100) + LINK)
        assert framer.frames() == [LINK]


def test_oversized_declared_length_raises_and_the_stream_resumes():
    """FFFF content bytes plus the header exceed MAX_FRAME_BYTES."""
    s = session()
    with pytest.raises(ProtocolError, match="exceeds"):
        s.receive_data(b"[SG*8800000015*FFFF*TK," + LINK, NOW)
    assert raws(s.receive_data(b"", NOW)) == [LINK]


def test_strict_length_not_landing_on_bracket_raises_then_resumes():
    s = session()
    with pytest.raises(ProtocolError, match="does not end"):
        s.receive_data(b"[SG*8800000015*0001*LK]" + LINK, NOW)
    assert raws(s.receive_data(b"", NOW)) == [LINK]


def test_good_frames_before_a_bad_one_are_returned_first():
    s = session()
    assert raws(s.receive_data(LINK + b"[SG*8800000015*0001*LK]", NOW)) == [LINK]
    with pytest.raises(ProtocolError):
        s.receive_data(b"", NOW)


def test_lenient_text_frame_with_stale_length_ends_at_its_bracket():
    frames = session(lenient=True).receive_data(STALE_LENGTH + LINK, NOW)
    assert raws(frames) == [STALE_LENGTH, LINK]


@pytest.mark.parametrize("cut", range(1, len(STALE_LENGTH)))
def test_lenient_stale_length_survives_every_split(cut):
    s = session(lenient=True)
    frames = s.receive_data(STALE_LENGTH[:cut], NOW) + s.receive_data(STALE_LENGTH[cut:], NOW)
    assert raws(frames) == [STALE_LENGTH]


def test_lenient_length_shorter_than_text_content_waits_for_the_bracket():
    """A stale length that ends inside a position report: wait for the real "]"."""
    stale = POSITION.replace(b"*0077*", b"*0070*")
    s = session(lenient=True)
    assert s.receive_data(stale[:-3], NOW) == []
    assert raws(s.receive_data(stale[-3:], NOW)) == [stale]


def test_lenient_mode_keeps_binary_frames_length_delimited():
    frames = session(lenient=True).receive_data(VOICE + LINK, NOW)
    assert raws(frames) == [VOICE, LINK]


def test_datagram_with_two_frames_and_one_cut_short():
    assert len(session().receive_datagram(LINK + POSITION, NOW)) == 2
    with pytest.raises(ProtocolError, match="datagram"):
        session().receive_datagram(LINK + POSITION[:30], NOW)


@pytest.mark.parametrize("damaged, reason", [
    (b"{SG*8800000015*0002*LK]", "start"),
    (b"[SG*8800000015*00G2*LK]", "length not hex"),
    (b"[SG*8800000015*0003*LK]", "length too long"),
    (b"[SG*8800000015*0001*LK]", "length too short"),
    (b"[SG#8800000015*0002*LK]", "separator"),
    (b"[SG*8800000015*0002*LK)", "end"),
])
def test_each_damaged_field_is_refused_by_decode_frame(damaged, reason):
    with pytest.raises(ProtocolError):
        session().decode_frame(damaged, NOW)


def test_decode_frame_accepts_a_frame_without_its_closing_bracket():
    frame = session().decode_frame(LINK[:-1], NOW)
    assert frame.reply == LINK


def test_unescape_restores_the_five_escaped_bytes():
    assert watch.unescape(b"a\x7d\x01\x7d\x02\x7d\x03\x7d\x04\x7d\x05\x7d") == b"a}[],*}"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8), st.booleans())
def test_random_bytes_give_frames_or_protocol_errors(chunks, lenient):
    s = session(lenient=lenient)
    for chunk in chunks + [b""]:
        try:
            frames = s.receive_data(chunk, NOW)
        except ProtocolError:
            continue
        assert all(isinstance(f, Frame) for f in frames)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans(),
       st.sampled_from([b"", b"[SG*8800000015*", b"[SG*8800000015*0010*UD,", b"[ZJ*1*0001*0020*AL,"]))
def test_random_frames_give_a_frame_or_protocol_error(data, lenient, prefix):
    try:
        frame = session(lenient=lenient).decode_frame(prefix + data, NOW)
    except ProtocolError:
        return
    assert isinstance(frame, Frame)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="0123456789,.-ANSVEW", max_size=12), min_size=0, max_size=40),
       st.sampled_from(["UD", "AL", "UD_LTE", "LK", "bphrt", "PULSE", "CR"]))
def test_random_text_fields_give_a_frame_or_protocol_error(fields, kind):
    """Well-framed reports with random field contents never crash the decoder."""
    content = ",".join([kind, *fields]).encode("ascii")
    frame = watch.build_frame("3G", "1234567890", content)
    try:
        decoded = session().decode_frame(frame, NOW)
    except ProtocolError:
        return
    assert isinstance(decoded, Frame)
