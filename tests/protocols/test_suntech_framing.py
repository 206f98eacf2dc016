"""Suntech framing: text reports split on CR, zip frames by length, UEX data by
its length, resynchronisation, size caps, UDP datagrams, random input.

The reports are device captures from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0), see test_suntech.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import Frame, Position, ProtocolError, suntech
from tests.protocols.test_suntech import (
    SA200_ALV,
    SA200_STT,
    ST600_STT,
    UEX_BINARY,
    UEX_FUEL_SENSORS,
    UEX_RFID,
    UNIVERSAL_ZIP_ALERT,
    ZIP_STATUS,
)

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
TEXT = SA200_STT + b"\r"
STREAM = (TEXT + ZIP_STATUS + UEX_RFID + b"\r" + ST600_STT + b"\r\n" + UNIVERSAL_ZIP_ALERT
          + UEX_FUEL_SENSORS + b"\r")
EXPECTED = [SA200_STT, ZIP_STATUS, UEX_RFID, ST600_STT, UNIVERSAL_ZIP_ALERT, UEX_FUEL_SENSORS]


def session(**options):
    return suntech.CODEC.new_session(options)


def raws(frames: list[Frame]) -> list[bytes]:
    return [f.raw for f in frames]


def test_whole_buffer_gives_every_frame_in_order():
    frames = session().receive_data(STREAM, NOW)
    assert raws(frames) == EXPECTED
    assert all(len(f.messages) == 1 and isinstance(f.messages[0], Position) for f in frames)


def test_one_byte_at_a_time_gives_the_same_frames():
    s = session()
    frames = []
    for i in range(len(STREAM)):
        frames += s.receive_data(STREAM[i:i + 1], NOW)
    assert raws(frames) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_every_split_point_gives_the_same_frames(cut):
    s = session()
    frames = s.receive_data(STREAM[:cut], NOW) + s.receive_data(STREAM[cut:], NOW)
    assert raws(frames) == EXPECTED


def test_uex_data_with_cr_and_semicolons_stays_in_one_frame():
    """The RFID data ends with CR LF and the sensor data holds ';' and LF CR."""
    frames = session().receive_data(UEX_RFID + b"\r" + UEX_FUEL_SENSORS + b"\r" + UEX_BINARY + b"\r", NOW)
    assert raws(frames) == [UEX_RFID, UEX_FUEL_SENSORS, UEX_BINARY]
    assert frames[0].messages[0].attributes["serial"] == "RFID:008FB2BEBA39"


def test_two_frames_back_to_back_and_crlf_delimiters():
    frames = session().receive_data(TEXT + TEXT + SA200_STT + b"\r\n" + ZIP_STATUS + ZIP_STATUS, NOW)
    assert raws(frames) == [SA200_STT] * 3 + [ZIP_STATUS] * 2


def test_trailing_partial_frames_wait_for_their_rest():
    s = session()
    assert raws(s.receive_data(TEXT + ZIP_STATUS[:10], NOW)) == [SA200_STT]
    assert raws(s.receive_data(ZIP_STATUS[10:] + SA200_STT[:20], NOW)) == [ZIP_STATUS]
    assert raws(s.receive_data(SA200_STT[20:] + b"\r", NOW)) == [SA200_STT]


def test_uex_report_waits_for_its_data_before_the_cr():
    s = session()
    cut = UEX_RFID.index(b"\r\n") + 1    # up to the CR inside the data
    assert s.receive_data(UEX_RFID[:cut], NOW) == []
    assert raws(s.receive_data(UEX_RFID[cut:] + b"\r", NOW)) == [UEX_RFID]


def test_binary_garbage_before_a_frame_is_skipped():
    frames = session().receive_data(b"\x00\xff\xfe\x07\x1b" + TEXT + b"\x00\x00" + ZIP_STATUS, NOW)
    assert raws(frames) == [SA200_STT, ZIP_STATUS]


def test_text_garbage_line_is_a_frame_without_messages():
    frames = session().receive_data(b"GET / HTTP/1.1\r" + TEXT, NOW)
    assert [len(f.messages) for f in frames] == [0, 1]


def test_endless_binary_garbage_is_a_protocol_error():
    s = session()
    with pytest.raises(ProtocolError):
        for _ in range(10):
            s.receive_data(b"\x00\x01\xff" * 1000, NOW)


def test_endless_text_lines_that_are_no_reports_are_a_protocol_error():
    s = session()
    with pytest.raises(ProtocolError):
        for _ in range(100):
            s.receive_data(b"hello, this is not a tracker\r\n" * 10, NOW)


def test_oversized_text_frame_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        session().receive_data(b"ST300STT;" + b"1" * (suntech.MAX_FRAME_BYTES + 10), NOW)


def test_oversized_zip_frame_is_a_protocol_error():
    frame = b"\x02\xff\xff\x10" + bytes.fromhex("5113408770") + bytes(100)
    with pytest.raises(ProtocolError):
        session().receive_data(frame, NOW)


def test_zip_frame_without_end_byte_is_rejected_then_the_stream_resumes():
    damaged = ZIP_STATUS[:-1] + b"\x04"
    s = session()
    with pytest.raises(ProtocolError):
        s.receive_data(damaged + TEXT, NOW)
    assert raws(s.receive_data(b"", NOW)) == [SA200_STT]


def test_zip_start_with_a_non_bcd_id_is_rejected_at_once():
    """A stray 0x02 followed by text does not swallow the next report."""
    s = session()
    with pytest.raises(ProtocolError):
        s.receive_data(b"\x02\x00\x30" + TEXT, NOW)
    frames = s.receive_data(b"", NOW)
    assert raws(frames)[-1].endswith(SA200_STT)   # the length byte "0" is glued before it
    assert frames[-1].messages[0].unique_id == "317652"


def test_good_frames_before_a_bad_one_are_returned_first():
    s = session()
    frames = s.receive_data(TEXT + ZIP_STATUS[:-1] + b"\x00", NOW)
    assert raws(frames) == [SA200_STT]
    with pytest.raises(ProtocolError):
        s.receive_data(b"", NOW)


def test_datagram_reports_may_lack_the_delimiter():
    frames = session().receive_datagram(TEXT + SA200_ALV, NOW)
    assert raws(frames) == [SA200_STT, SA200_ALV]


def test_datagram_with_a_zip_frame_and_text():
    assert raws(session().receive_datagram(ZIP_STATUS + SA200_STT, NOW)) == [ZIP_STATUS, SA200_STT]


def test_datagram_ending_inside_a_zip_frame_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        session().receive_datagram(ZIP_STATUS[:-5], NOW)


@given(st.binary(max_size=600))
@settings(deadline=None, max_examples=300)
def test_random_bytes_give_frames_or_protocol_errors(data):
    for decode in (session().receive_data, session().receive_datagram, session().decode_frame):
        try:
            decode(data, NOW)
        except ProtocolError:
            pass


_FIELD = st.one_of(st.sampled_from(["", "0", "1", "-65", "4.1", "+20.5", "-103.4", "00000001", "FFFFFF",
                                    "20240501", "12:00:00", "ST300STT", "UEX", "12", "999999"]),
                   st.text(alphabet="0123456789ABCDEF.:+-|=\r", max_size=12))


@given(st.sampled_from(["ST300STT", "ST600UEX", "ST300ALT", "ST300EMG", "STT", "ALT", "ST910", "ST410STT",
                        "SA200CMD", "RES", "ST300HTE"]),
       st.lists(_FIELD, max_size=40),
       st.sampled_from([{}, {"hbm": 1, "includeAdc": True, "includeRpm": True, "includeTemp": True},
                        {"hbm": 2, "protocolType": 1}]))
@settings(deadline=None, max_examples=300)
def test_report_shaped_text_gives_frames_or_protocol_errors(header, fields, options):
    """Plausible headers with random fields exercise the field decoders."""
    data = ";".join([header, "205170303", *fields]).encode("latin-1")
    for decode in (session(**options).receive_data, session(**options).decode_frame):
        try:
            decode(data + b"\r", NOW)
        except ProtocolError:
            pass


@given(st.binary(min_size=1, max_size=120), st.sampled_from([ZIP_STATUS, UNIVERSAL_ZIP_ALERT]))
@settings(deadline=None, max_examples=300)
def test_random_zip_content_gives_frames_or_protocol_errors(content, template):
    """Any content under a well-formed zip envelope decodes or is a ProtocolError."""
    if template[0] == 0x02:
        frame = b"\x02" + len(content).to_bytes(2, "big") + content + b"\x03"
    else:
        frame = template[:1] + len(content).to_bytes(2, "big") + content
    try:
        session().decode_frame(frame, NOW)
    except ProtocolError:
        pass


def test_random_garbage_is_refused_within_one_receive():
    """A peer sending noise is refused at once, not buffered beyond the cap."""
    import random
    garbage = random.Random("suntech").randbytes(3 * suntech.MAX_FRAME_BYTES)
    session = suntech.CODEC.new_session()
    with pytest.raises(ProtocolError):
        session.receive_data(garbage, NOW)
