"""GT06 decoding: messages, attributes, replies, dialects, device-side builders.

Frames marked "capture" are device frames from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0); the rest are built
here.  Expected acknowledgement bytes are assembled by hand with an
independent CRC so a codec bug cannot hide in its own expectations.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import CODECS, CommandResult, Frame, Login, Position, ProtocolError, gt06, replay
from protocols.devices import gt06 as gt06_device
from protocols.records import position_record
from tests.protocols.gt06_captures import LOCATION, LOGIN, LONG_INFO, crc_x25

NOW = dt.datetime(2024, 5, 1, 12, 30, 45, tzinfo=dt.UTC)

# Captures (Traccar test suite, Apache-2.0).
HEARTBEAT = bytes.fromhex("78780a13c40604000201298f5b0d0a")
ALARM_SOS = bytes.fromhex(
    "787826161709130f3a2dcc02c55f2a089f9af9005c210901360481fe066d9b03413e420102035f92fe0d0a")
TIME_REQUEST = bytes.fromhex("7878058a000688290d0a")
STALE_CRC = bytes.fromhex("78781219012ed042cc00954d00040419000056fe290d0a")


def expected_reply(body: bytes, *, long: bool = False) -> bytes:
    """Start bits + body (length .. serial) + CRC + stop bits."""
    return (b"\x79\x79" if long else b"\x78\x78") + body + crc_x25(body).to_bytes(2, "big") + b"\r\n"


def frame_with(msg_type: int, content: bytes, serial: int = 1, *, long: bool = False) -> bytes:
    """A well-formed device frame, assembled independently of the codec."""
    length = 1 + len(content) + 4
    size = length.to_bytes(2, "big") if long else bytes([length])
    return expected_reply(size + bytes([msg_type]) + content + serial.to_bytes(2, "big"), long=long)


def decode(frame: bytes, **options) -> Frame:
    return gt06.CODEC.new_session(options).decode_frame(frame, NOW)


def only_position(frame: Frame) -> Position:
    positions = [m for m in frame.messages if isinstance(m, Position)]
    assert len(positions) == 1
    return positions[0]


# -- codec wiring ------------------------------------------------------------------

def test_codec_is_registered_with_traccar_port():
    codec = CODECS["gt06"]
    assert codec is gt06.CODEC
    assert codec.default_listen == ("tcp:5023", "udp:5023")
    assert codec.max_frame_bytes == gt06.MAX_FRAME_BYTES


def test_message_types_are_unique_int_enums():
    assert gt06.MsgType(0x12) is gt06.MsgType.GPS_LBS
    assert len({int(t) for t in gt06.MsgType}) == len(gt06.MsgType)


# -- login -----------------------------------------------------------------------

def test_login_names_the_device_and_is_acknowledged():
    """Login: IMEI from BCD (leading zero dropped), ack 7878 05 01 serial crc 0d0a."""
    s = gt06.CODEC.new_session()
    frame = s.decode_frame(LOGIN, NOW)
    assert frame.messages == (Login("864717003283581"),)
    assert s.unique_id == "864717003283581"
    assert frame.reply == expected_reply(bytes.fromhex("05010009"))
    assert frame.reply == bytes.fromhex("787805010009") + crc_x25(bytes.fromhex("05010009")).to_bytes(
        2, "big") + b"\r\n"


def test_extended_login_with_type_and_time_zone():
    frame = decode(bytes.fromhex("787811010863586038760942a0010000010aa4000d0a"))
    assert frame.messages == (Login("863586038760942"),)


def test_login_with_non_bcd_id_is_rejected():
    with pytest.raises(ProtocolError, match="BCD"):
        decode(frame_with(0x01, bytes.fromhex("0a0b0c0d0e0f0102")))


# -- locations -------------------------------------------------------------------

def test_gps_lbs_location():
    """0x12: time, satellites, coordinates, course/status, cell; acked once stored."""
    frame = decode(LOCATION)
    p = only_position(frame)
    assert p.fix_time == dt.datetime(2015, 10, 20, 14, 21, 11, tzinfo=dt.UTC)
    assert p.device_time == p.fix_time
    assert p.valid is True
    assert p.latitude == pytest.approx(54.945346666)
    assert p.longitude == pytest.approx(24.017622222)
    assert (p.speed_kn, p.course_deg, p.outdated) == (0.0, 0.0, False)
    assert p.attributes == {"type": 0x12, "sat": 5, "ignition": False}
    assert p.network["cellTowers"] == [{"cellId": 21978, "locationAreaCode": 110,
                                        "mobileCountryCode": 246, "mobileNetworkCode": 1}]
    assert frame.reply == expected_reply(bytes.fromhex("05120003"))


def test_speed_arrives_in_kmh_and_leaves_in_knots():
    frame = gt06_device.device_location(5, NOW, 10.0, 20.0, speed_kmh=100, course_deg=90)
    assert only_position(decode(frame)).speed_kn == pytest.approx(100 / 1.852)


def test_south_and_west_come_from_the_course_status_word():
    frame = gt06_device.device_location(5, NOW, -33.5, -70.25, speed_kmh=0, course_deg=359)
    p = only_position(decode(frame))
    assert (round(p.latitude, 6), round(p.longitude, 6), p.course_deg) == (-33.5, -70.25, 359.0)


def test_invalid_fix_is_flagged_not_dropped():
    frame = gt06_device.device_location(5, NOW, 1.0, 2.0, speed_kmh=0, course_deg=0, valid=False)
    assert only_position(decode(frame)).valid is False


def test_location_frame_without_content_gives_no_record():
    """Capture: a 0x12 packet with nothing but its serial."""
    assert decode(bytes.fromhex("787805120099abec0d0a")).messages == ()


# -- status and heartbeat --------------------------------------------------------

def test_heartbeat_is_an_outdated_status_record_and_acknowledged():
    """0x13: terminal info 0xC4 (charging, fuel cut), level 6, signal 4."""
    frame = decode(HEARTBEAT)
    p = only_position(frame)
    assert p.outdated is True
    assert p.fix_time == NOW and p.device_time is None
    assert p.attributes == {"type": 0x13, "status": 0xC4, "ignition": False, "charge": True,
                            "blocked": True, "batteryLevel": 100, "rssi": 4}
    assert frame.reply == expected_reply(bytes.fromhex("05130129"))


def test_status_alarm_byte_and_model_dialects():
    """The same status packet read as SEEWORLD puts volts in the alarm byte."""
    content = bytes([0x45, 0x06, 0x56, 0x0B, 0x01])
    plain = only_position(decode(frame_with(0x13, content))).attributes
    seeworld = only_position(decode(frame_with(0x13, content), modelOverride="SEEWORLD")).attributes
    assert "power" not in plain
    assert seeworld["power"] == 11.0 and isinstance(seeworld["power"], float)


# -- alarms ----------------------------------------------------------------------

def test_sos_alarm_with_its_ack():
    """Capture: 0x16 with alarm byte 0x01 and a 4-byte cell id."""
    frame = decode(ALARM_SOS)
    p = only_position(frame)
    assert p.attributes["alarm"] == "sos"
    assert p.attributes["batteryLevel"] == 62 and p.attributes["rssi"] == 66
    assert p.network["cellTowers"][0]["cellId"] == 107846403
    assert frame.reply == expected_reply(bytes.fromhex("0516035f"))


@pytest.mark.parametrize("alarm", ["sos", "powerCut", "vibration", "lowBattery", "removing",
                                   "overspeed", "tampering"])
def test_device_alarm_round_trip(alarm):
    frame = gt06_device.device_alarm(9, NOW, 52.5, 13.4, speed_kmh=36, course_deg=10, alarm=alarm)
    decoded = decode(frame)
    p = only_position(decoded)
    assert p.attributes["alarm"] == alarm
    assert (round(p.latitude, 5), round(p.longitude, 5)) == (52.5, 13.4)
    assert gt06_device.parse_ack(decoded.reply) == (0x16, 9)


def test_unknown_alarm_name_is_refused_by_the_builder():
    with pytest.raises(ValueError):
        gt06_device.device_alarm(1, NOW, 0, 0, speed_kmh=0, course_deg=0, alarm="geofenceEnter")


# -- other packet kinds ----------------------------------------------------------

def test_long_frame_information_packet():
    """Capture: 0x7979 info packet (external voltage), no reply expected."""
    frame = decode(LONG_INFO)
    p = only_position(frame)
    assert p.outdated and p.attributes == {"power": 7.39}
    assert frame.reply == b""


def test_long_frame_ack_uses_the_two_byte_length():
    frame = decode(frame_with(0x13, bytes([0x40, 0x04, 0x04, 0x00, 0x02]), 0x0203, long=True))
    assert frame.reply == expected_reply(bytes.fromhex("0005130203"), long=True)


def test_time_request_is_answered_with_utc_time():
    """Capture: 0x8A; reply 7878 0b 8a YY MM DD hh mm ss serial crc 0d0a."""
    frame = decode(TIME_REQUEST)
    assert frame.messages == ()
    body = bytes.fromhex("0b8a") + bytes([24, 5, 1, 12, 30, 45]) + bytes.fromhex("0006")
    assert frame.reply == expected_reply(body)
    assert gt06_device.parse_ack(frame.reply) == (0x8A, 6)


def test_command_reply_text():
    """0x21 (0x7979): server flag, encoding 1 = ASCII, text."""
    frame = decode(frame_with(0x21, b"\x00\x00\x00\x01\x01Relay ON OK!", long=True))
    assert CommandResult("Relay ON OK!") in frame.messages
    assert only_position(frame).attributes == {"result": "Relay ON OK!"}


@pytest.mark.parametrize("msg_type", sorted(gt06.UNACKED_TYPES))
def test_command_replies_info_and_requests_get_no_ack(msg_type):
    frame = decode(frame_with(msg_type, b"\x00" * 40, long=True))
    assert frame.reply == b"" or msg_type == gt06.MsgType.TIME_REQUEST


def test_unknown_type_becomes_a_frame_without_messages():
    frame = decode(frame_with(0x7E, b"\x01\x02\x03"))
    assert frame.messages == () and frame.reply == b""


def test_stale_crc_needs_the_lenient_option():
    """Capture with a checksum that does not match (hand-edited upstream)."""
    with pytest.raises(ProtocolError, match="CRC"):
        decode(STALE_CRC)
    p = only_position(decode(STALE_CRC, lenient=True))
    assert p.attributes["alarm"] == "lowBattery"
    assert decode(STALE_CRC, lenient=True).reply == b"\x78\x78\x05\x19\x00\x56" + \
        crc_x25(b"\x05\x19\x00\x56").to_bytes(2, "big") + b"\r\n"


# -- per-field corruption ----------------------------------------------------------

def _corrupt(frame: bytes, index: int) -> bytes:
    return frame[:index] + bytes([frame[index] ^ 0x5A]) + frame[index + 1:]


@pytest.mark.parametrize("field,index", [("start", 0), ("start", 1), ("length", 2), ("type", 3),
                                         ("content", 10), ("serial", -6), ("crc", -4), ("crc", -3)])
def test_each_damaged_field_is_a_protocol_error(field, index):
    """Start, length, type, content, serial and CRC damaged in turn."""
    with pytest.raises(ProtocolError):
        decode(_corrupt(LOCATION, index))


@pytest.mark.parametrize("index", [0, 2, 3, 10, -4])
def test_damaged_frames_in_a_stream_never_escape_as_other_errors(index):
    s = gt06.CODEC.new_session()
    try:
        frames = s.receive_data(_corrupt(LOCATION, index) + LOGIN, NOW)
    except ProtocolError:
        frames = s.receive_data(b"", NOW)
    assert frames[-1].raw == LOGIN


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 255), st.binary(max_size=120), st.booleans(),
       st.sampled_from(["", "VL103", "NT20", "XT40", "QH302R", "R11", "SEEWORLD", "G18", "LW4G-4B"]))
def test_any_content_under_a_valid_envelope_decodes_or_is_a_protocol_error(
        msg_type, content, long, model):
    """Well-formed frames of every type with random content: decoders raise
    nothing but ProtocolError."""
    try:
        frame = decode(frame_with(msg_type, content, long=long), modelOverride=model)
    except ProtocolError:
        return
    for message in frame.messages:
        if isinstance(message, Position):
            position_record(message, "gt06", None)  # times are aware, values JSON-ready


# -- device side builders ----------------------------------------------------------

def test_device_login_round_trip():
    frame = gt06_device.device_login("359710049095095", 1)
    assert frame[:4] == b"\x78\x78\x0d\x01" and frame[4:12] == bytes.fromhex("0359710049095095")
    s = gt06.CODEC.new_session()
    assert s.decode_frame(frame, NOW).messages == (Login("359710049095095"),)
    assert gt06_device.parse_ack(s.decode_frame(frame, NOW).reply) == (0x01, 1)


def test_device_location_round_trip():
    fix = dt.datetime(2024, 2, 29, 23, 59, 58, tzinfo=dt.UTC)
    frame = gt06_device.device_location(300, fix, 48.85, 2.35, 50.0, 180.0, satellites=11)
    p = only_position(decode(frame))
    assert p.fix_time == fix and p.valid
    assert (round(p.latitude, 6), round(p.longitude, 6)) == (48.85, 2.35)
    assert p.speed_kn == pytest.approx(50 / 1.852) and p.course_deg == 180.0
    assert p.attributes["sat"] == 11


@pytest.mark.parametrize("ignition", [False, True])
def test_device_heartbeat_round_trip(ignition):
    frame = gt06_device.device_heartbeat(77, battery_level=3, gsm_signal=2, ignition=ignition)
    decoded = decode(frame)
    attrs = only_position(decoded).attributes
    assert (attrs["batteryLevel"], attrs["rssi"], attrs["ignition"]) == (50, 2, ignition)
    assert gt06_device.parse_ack(decoded.reply) == (0x13, 77)


def test_parse_ack_rejects_garbage():
    with pytest.raises(ProtocolError):
        gt06_device.parse_ack(b"\x78\x78\x05\x01\x00\x01\x00\x00\r\n")


def test_command_frame_is_well_formed():
    frame = gt06.command_frame("WHERE,000000#", 4)
    assert frame[3] == 0x80 and int.from_bytes(frame[-4:-2], "big") == crc_x25(frame[2:-4])


# -- records and replay ------------------------------------------------------------

def test_position_record_shape():
    record = position_record(only_position(decode(LOCATION)), "gt06", "864717003283581")
    assert record["fixTime"] == "2015-10-20T14:21:11.000Z"
    assert record["deviceTime"] == "2015-10-20T14:21:11.000Z"
    assert record["uniqueId"] == "864717003283581" and record["protocol"] == "gt06"
    assert "outdated" not in record and "network" in record
    outdated = position_record(only_position(decode(HEARTBEAT)), "gt06", None)
    assert outdated["outdated"] is True and outdated["deviceTime"] is None


def test_replay_per_frame_and_as_a_stream_agree():
    frames = [LOGIN, LOCATION, HEARTBEAT]
    per_frame = replay("gt06", frames, now=NOW)
    assert [len(r) for r in per_frame] == [0, 1, 1]
    assert per_frame[1][0]["uniqueId"] == "864717003283581"
    data = b"".join(frames)
    chunks = [data[i:i + 7] for i in range(0, len(data), 7)]
    streamed = [r for item in replay("gt06", chunks, stream=True, now=NOW) for r in item]
    assert streamed == per_frame[1] + per_frame[2]


def test_replay_errors_skip_keeps_going():
    results = replay("gt06", [STALE_CRC, LOCATION], now=NOW, errors="skip")
    assert [len(r) for r in results] == [0, 1]
    with pytest.raises(ProtocolError):
        replay("gt06", [STALE_CRC], now=NOW)
