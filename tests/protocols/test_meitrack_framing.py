"""Meitrack framing: length field, checksum, binary payloads, resynchronisation, size cap.

Frames marked "capture" are device frames from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0); "spec" frames are
the examples of the Meitrack GPRS protocol documents.  Checksums are checked
with the independent `sum_checksum` below.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import Frame, ProtocolError, get_codec, meitrack
from tests.protocols.corpus import CORPUS_DIR, payload_item

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)

REPORT = (b"$$B140,013777001293701,AAA,35,-7.266760,112.743550,140521095314,A,3,22,0,275,2.7,45,"
          b"1984,8059,510|1|3504|EBFE,0000,0000|0000|0000|0914|0002,,*F9\r\n")            # capture
ANSWER = b"$$D28,353358017784062,D03,OK*F3\r\n"                                        # capture
COMPRESSED = bytes.fromhex(                                                          # capture (CCC)
    "24245838362c3336393830303031343039303032312c4343432c020134000100000023381f91ffe354b806c5e3"
    "121b0009130000000000000000d33801007cbf0200fe0101000435feeb02000500a3010000000000002a62650d0a")
BINARY = bytes.fromhex(                                                              # capture (CCE)
    "2424413132332c3836313538353034333230303836322c4343452c010000000100590015000305010609071b0b"
    "081c000939010a07000b1700199e011a9505921a0099c4089c5500c93e00405a000602a8b114000343f12e0604"
    "d18806270c654a2e000da20537009bb8963904010e0c0d020300aa7a0af69e0100002a35340d0a")


def sum_checksum(data: bytes) -> int:
    """Sum of the bytes modulo 256, written independently of the codec."""
    total = 0
    for byte in data:
        total = (total + byte) % 256
    return total


def session(**options):
    return meitrack.CODEC.new_session(options)


def raws(frames):
    return [f.raw for f in frames]


@pytest.mark.parametrize("frame", [REPORT, ANSWER, COMPRESSED, BINARY])
def test_captures_have_a_good_length_and_checksum(frame):
    """Length counts from the first comma through CR LF; checksum covers "$$" .. "*"."""
    comma = frame.index(b",")
    assert int(frame[3:comma]) == len(frame) - comma
    assert int(frame[-4:-2], 16) == sum_checksum(frame[:-4])


def test_spec_examples_have_a_good_checksum():
    """spec: "@@Q25,353358017784062,A10*6A" and "$$M28,...,C01,OK*F9"."""
    assert sum_checksum(b"@@Q25,353358017784062,A10*") == 0x6A
    assert sum_checksum(b"$$M28,353358017784062,C01,OK*") == 0xF9
    assert meitrack.checksum(b"@@M34,353358017784062,C01,20,10122*") == 0x18


def test_whole_buffer_gives_every_frame_in_order():
    frames = session().receive_data(REPORT + COMPRESSED + ANSWER + BINARY, NOW)
    assert raws(frames) == [REPORT, COMPRESSED, ANSWER, BINARY]


def test_one_byte_at_a_time_gives_the_same_frames():
    s = session()
    data = REPORT + BINARY
    frames = []
    for i in range(len(data)):
        frames += s.receive_data(data[i:i + 1], NOW)
    assert raws(frames) == [REPORT, BINARY]


@pytest.mark.parametrize("cut", range(1, len(ANSWER + COMPRESSED)))
def test_every_split_point_gives_the_same_frames(cut):
    data = ANSWER + COMPRESSED
    s = session()
    frames = s.receive_data(data[:cut], NOW) + s.receive_data(data[cut:], NOW)
    assert raws(frames) == [ANSWER, COMPRESSED]


def test_binary_payload_with_crlf_and_stars_is_delimited_by_length():
    """CCC data may hold "*" and CR LF bytes; the length field decides."""
    payload = b"\x02\x01\x34\x00\x00\x00\x00\x00*\r\n*00\r\n"
    frame = meitrack.build_frame(b"$$", "X", "369800014090021", b"CCC," + payload)
    assert raws(session().receive_data(frame + ANSWER, NOW)) == [frame, ANSWER]


def test_two_frames_back_to_back_and_a_trailing_partial_frame():
    s = session()
    assert raws(s.receive_data(ANSWER + ANSWER + REPORT[:50], NOW)) == [ANSWER, ANSWER]
    assert raws(s.receive_data(REPORT[50:], NOW)) == [REPORT]


def test_garbage_before_a_frame_is_skipped():
    frames = session().receive_data(b"\x00\xff$GPRMC,1*00\r\n$$$" + ANSWER, NOW)
    assert raws(frames) == [ANSWER]


def test_endless_garbage_is_a_protocol_error():
    framer = meitrack.Framer()
    framer.feed(b"\xde\xad\xbe\xef" * 8)
    assert framer.frames() == []
    framer.feed(b"\xde\xad" * (meitrack.MAX_FRAME_BYTES // 2 + 1))
    with pytest.raises(ProtocolError, match="garbage"):
        framer.frames()


def test_garbage_count_restarts_after_each_good_frame():
    framer = meitrack.Framer()
    for _ in range(3):
        framer.feed(b"\x00" * (meitrack.MAX_FRAME_BYTES - 100) + ANSWER)
        assert framer.frames() == [ANSWER]


def test_oversized_declared_length_raises_and_the_stream_resumes():
    s = session()
    with pytest.raises(ProtocolError, match="exceeds"):
        s.receive_data(b"$$A99999,353358017784062,CCE," + ANSWER, NOW)
    assert raws(s.receive_data(b"", NOW)) == [ANSWER]


@pytest.mark.parametrize("damaged, message", [
    (ANSWER.replace(b"*F3", b"*F4"), "checksum"),                 # checksum
    (ANSWER.replace(b"$$D28", b"$$D29"), "length"),               # length (one too long)
    (ANSWER.replace(b"$$D28", b"$$D27"), "length"),               # length (one too short)
    (ANSWER.replace(b"$$D28", b"$$D05"), "too small"),            # length below any frame
    (ANSWER.replace(b"D03,OK", b"D03,OJ"), "checksum"),           # content
])
def test_damaged_field_raises_then_the_next_frame_decodes(damaged, message):
    s = session()
    with pytest.raises(ProtocolError, match=message):
        s.receive_data(damaged + REPORT, NOW)
    frames = []
    for _ in range(3):
        try:
            frames += s.receive_data(b"", NOW)
        except ProtocolError:
            continue
    assert raws(frames)[-1:] == [REPORT]


@pytest.mark.parametrize("damaged", [
    b"##D28,353358017784062,D03,OK*F3\r\n",      # start marker
    b"$$\x10" + ANSWER[3:],                        # flag outside 0x41..0x7A
    ANSWER.replace(b"*F3", b"*G3"),               # checksum not hex
    ANSWER.replace(b"*F3", b"*F4"),               # checksum wrong
    ANSWER.replace(b"$$D28", b"$$D2X"),           # length not decimal
    ANSWER.replace(b",D03", b",D!3"),             # command field
])
def test_each_damaged_field_is_refused_by_decode_frame(damaged):
    with pytest.raises(ProtocolError):
        session().decode_frame(damaged, NOW)


def test_decode_frame_accepts_a_frame_without_its_crlf():
    assert session().decode_frame(ANSWER[:-2], NOW).messages[0].text == "D03,OK"


def test_lenient_mode_skips_the_checksum_only():
    damaged = ANSWER.replace(b"*F3", b"*00")
    assert raws(session(lenient=True).receive_data(damaged, NOW)) == [damaged]
    with pytest.raises(ProtocolError, match="length"):
        session(lenient=True).receive_data(ANSWER.replace(b"$$D28", b"$$D27") + ANSWER, NOW)


def test_datagram_with_two_frames_and_one_cut_short():
    assert len(session().receive_datagram(ANSWER + REPORT, NOW)) == 2
    with pytest.raises(ProtocolError, match="datagram"):
        session().receive_datagram(ANSWER + REPORT[:30], NOW)


@pytest.mark.skipif(not (CORPUS_DIR / "meitrack.json").is_file(), reason="no meitrack corpus")
def test_strict_mode_refuses_exactly_the_corpus_frames_with_bad_checksum_or_length():
    """Default sessions accept a corpus frame iff its length and checksum are right."""
    cases = json.loads((CORPUS_DIR / "meitrack.json").read_text())["cases"]
    mismatched = []
    for case in cases:
        frame = payload_item(case["payload"])
        whole = frame if frame.endswith(b"\r\n") else frame + b"\r\n"
        comma = whole.index(b",")
        good = (int(whole[3:comma]) == len(whole) - comma and whole[-5:-4] == b"*"
                and whole[-4:-2].decode("latin-1").upper() == f"{sum_checksum(whole[:-4]):02X}")
        try:
            get_codec("meitrack").new_session().decode_frame(frame, NOW)
            accepted = True
        except ProtocolError:
            accepted = False
        if accepted != good:
            mismatched.append(case["id"])
    assert not mismatched


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
       st.sampled_from([b"", b"$$A", b"$$A150,", b"$$A150,123,CCE,", b"$$A150,123,CCC,",
                        b"$$A150,123,AAA,"]))
def test_random_frames_give_a_frame_or_protocol_error(data, lenient, prefix):
    try:
        frame = session(lenient=lenient).decode_frame(prefix + data, NOW)
    except ProtocolError:
        return
    assert isinstance(frame, Frame)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([b"CCE,", b"CCC,", b"AAA,", b"AFF,"]), st.binary(max_size=400))
def test_well_framed_random_payloads_give_a_frame_or_protocol_error(command, payload):
    """Checksum and length right, random content: the decoders never crash."""
    frame = meitrack.build_frame(b"$$", "A", "353358017784062", command + payload)
    try:
        decoded = session().decode_frame(frame, NOW)
    except ProtocolError:
        return
    assert isinstance(decoded, Frame)
