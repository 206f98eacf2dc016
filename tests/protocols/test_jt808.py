"""JT808 decoding: messages, attributes, replies, commands, dialects, device side.

Frames marked "capture" are device frames from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0); the rest are built here.
Expected replies and commands are assembled by hand with an XOR written in this
file, so a codec bug cannot hide in its own expectations.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import (
    CODECS,
    Command,
    CommandResult,
    DeviceReport,
    Frame,
    Login,
    Position,
    ProtocolError,
    UnsupportedCommand,
    get_device_side,
    jt808,
    replay,
)
from protocols.devices import jt808 as jt808_device
from protocols.records import position_record

NOW = dt.datetime(2024, 5, 1, 12, 30, 45, tzinfo=dt.UTC)

# Captures (Traccar test suite, Apache-2.0).
REGISTER = bytes.fromhex(
    "7e01000021013345678906000f002c012f373031313142534a2d4d3742203030303030303001d4c1423838383838b47e")
REGISTER_2019 = bytes.fromhex(
    "7e0100405c010000086649607758216452180000000000000000000000000000004d443330300000000000000000"
    "000000000000000000000000000000000038363634393630373735383231363400000000000000000000000000"
    "000004000000000000000000000000000000007a7e")
AUTH = bytes.fromhex("7e0102000e013511221122000661757468656e7469636174696f6e3f7e")
HEARTBEAT = bytes.fromhex("7e0002000004304832546500b7ca7e")
LOCATION = bytes.fromhex(
    "7e0200002a013833501744001900000000000000c201597fa806cc01580080000000081508180721210104000002f5"
    "02020000030200009f7e")
SOS_WEST = bytes.fromhex(
    "7e0200002e094027587492000a000000010000000a03083db7001329f3000000140000130412164952010400000012"
    "360a0002341502cb0c20085c107e")
BATCH_2019 = bytes.fromhex(
    "7e0704402d0100000866496077582164881d0001000028000000000000000701a00192091f2a470016000000022605"
    "0916422701040000258230010031010e507e")
RESULT_TEXT = bytes.fromhex("7e070100150120764632790008000000114d442c53455420434f4e464947204f4b21187e")
DOOR = bytes.fromhex(
    "7e02000036019111110000007b000000000001004202b71a72008dbba000000000000025070208082901040000000030"
    "011731010e57080000000000000000820200829e7e")
JC371_BATTERY = bytes.fromhex(
    "7e020000344eb6fb4ad6280001000000000000000301587d0106cbff6600000000000026010112000001040000007b30"
    "011831010ae80a2003070105019f030190657e")
LOCK_TEXT = b"(740190311185,1,001,ELOCK,3,529439)"


def xor(data: bytes) -> int:
    return functools.reduce(operator.xor, data, 0)


def frame_of(content: bytes) -> bytes:
    """Header + body -> frame as the framer delivers it (unescaped, delimited)."""
    return b"\x7e" + content + bytes([xor(content)]) + b"\x7e"


def wire(content: bytes) -> bytes:
    """Header + body -> escaped wire frame (independent of the codec)."""
    out = bytearray(b"\x7e")
    for byte in content + bytes([xor(content)]):
        out += {0x7E: b"\x7d\x02", 0x7D: b"\x7d\x01"}.get(byte, bytes([byte]))
    return bytes(out + b"\x7e")


def header(msg_id: int, body: bytes, terminal: str, serial: int, version: int | None = None) -> bytes:
    """A header for `body`: 2013 (6-byte terminal) or 2019 (version + 10 bytes)."""
    if version is None:
        return msg_id.to_bytes(2, "big") + len(body).to_bytes(2, "big") + bytes.fromhex(terminal) + \
            serial.to_bytes(2, "big")
    return msg_id.to_bytes(2, "big") + (0x4000 | len(body)).to_bytes(2, "big") + bytes([version]) + \
        bytes.fromhex(terminal) + serial.to_bytes(2, "big")


def message(msg_id: int, body: bytes, terminal: str = "013833501744", serial: int = 1) -> bytes:
    return frame_of(header(msg_id, body, terminal, serial) + body)


def session(**options):
    return jt808.CODEC.new_session(options)


def decode(frame: bytes, **options) -> Frame:
    return session(**options).decode_frame(frame, NOW)


def only_position(frame: Frame) -> Position:
    positions = [m for m in frame.messages if isinstance(m, Position)]
    assert len(positions) == 1
    return positions[0]


# -- codec wiring ------------------------------------------------------------------

def test_codec_is_registered_with_traccar_port():
    assert CODECS["jt808"] is jt808.CODEC
    assert jt808.CODEC.default_listen == ("tcp:5015", "udp:5015")
    assert jt808.CODEC.command_types == {"custom", "rebootDevice", "engineStop", "engineResume",
                                         "positionSingle", "positionPeriodic"}
    assert get_device_side("jt808") is jt808_device.DEVICE


def test_message_ids_are_unique_int_enums():
    assert jt808.MsgId(0x0200) is jt808.MsgId.LOCATION
    assert len({int(m) for m in jt808.MsgId}) == len(jt808.MsgId)


# -- header and identity -------------------------------------------------------------

def test_2013_header_names_the_device_by_its_twelve_digits():
    h = jt808.parse_header(REGISTER)
    assert (h.msg_id, h.version, h.serial, h.body_length) == (0x0100, None, 15, 0x21)
    assert h.unique_id == "013345678906"


def test_2019_header_drops_the_padding_zeros_of_an_imei():
    h = jt808.parse_header(REGISTER_2019)
    assert (h.version, h.terminal.hex()) == (1, "00000866496077582164")
    assert h.unique_id == "866496077582164"


def test_2019_short_numbers_keep_twelve_digits():
    assert jt808.terminal_id(bytes.fromhex("00000000013912345678")) == "013912345678"


def test_subpackage_header_fields():
    body = b"\x00\x01"
    content = (0x0801).to_bytes(2, "big") + (0x2000 | len(body)).to_bytes(2, "big") + \
        bytes.fromhex("013833501744") + b"\x00\x05" + b"\x00\x03\x00\x01" + body
    h = jt808.parse_header(frame_of(content))
    assert h.package == (3, 1) and h.body_start == 17


# -- registration, authentication, heartbeat ---------------------------------------

def test_registration_is_answered_with_8100_and_an_auth_code():
    """Capture: 0x0100; reply 0x8100: acked serial, result 0, code = the unique id."""
    s = session()
    frame = s.decode_frame(REGISTER, NOW)
    assert frame.messages == (Login("013345678906"),)
    assert s.unique_id == "013345678906"
    body = (15).to_bytes(2, "big") + b"\x00" + b"013345678906"
    assert frame.reply == wire(header(0x8100, body, "013345678906", 0) + body)


def test_2019_registration_reply_uses_a_2019_header():
    frame = decode(REGISTER_2019)
    body = (0x5218).to_bytes(2, "big") + b"\x00" + b"866496077582164"
    assert frame.reply == wire(header(0x8100, body, "00000866496077582164", 0, version=1) + body)


def test_authentication_is_a_login_with_a_general_response():
    """Capture: 0x0102; reply 0x8001: acked serial 6, acked id 0x0102, result 0."""
    frame = decode(AUTH)
    assert frame.messages == (Login("013511221122"),)
    body = bytes.fromhex("0006" "0102" "00")
    assert frame.reply == wire(header(0x8001, body, "013511221122", 0) + body)


def test_heartbeat_gives_no_record_and_is_answered():
    s = session()
    frame = s.decode_frame(HEARTBEAT, NOW)
    assert frame.messages == () and s.unique_id == "043048325465"
    body = bytes.fromhex("00b7" "0002" "00")
    assert frame.reply == wire(header(0x8001, body, "043048325465", 0) + body)


def test_platform_serial_counts_per_connection():
    s = session()
    replies = [s.decode_frame(HEARTBEAT, NOW).reply for _ in range(3)]
    assert [jt808.parse_header(jt808.split_frames(bytearray(r))[0]).serial for r in replies] == [0, 1, 2]


# -- locations -----------------------------------------------------------------------

def test_location_fields_units_and_time_zone():
    """Capture: BCD time is GMT+8 (2015-08-18 07:21:21 -> 2015-08-17 23:21:21 UTC),
    mileage 0.1 km -> m, fuel 0.1 L."""
    frame = decode(LOCATION)
    p = only_position(frame)
    assert p.fix_time == dt.datetime(2015, 8, 17, 23, 21, 21, tzinfo=dt.UTC) == p.device_time
    assert (p.valid, p.latitude, p.longitude, p.altitude_m) == (True, 22.6426, 114.032984, 128.0)
    assert (p.speed_kn, p.course_deg, p.outdated) == (0.0, 8.0, False)
    assert p.attributes == {"ignition": False, "blocked": False, "charge": False,
                            "odometer": 75700, "fuel": 0.0}
    assert p.unique_id == "013833501744"
    body = bytes.fromhex("0019" "0200" "00")
    assert frame.reply == wire(header(0x8001, body, "013833501744", 0) + body)


def test_sos_alarm_west_flag_and_speed_in_knots():
    """Capture: alarm bit 0, status bit 3 (west), speed 20 x 0.1 km/h."""
    p = only_position(decode(SOS_WEST))
    assert p.attributes["alarm"] == "sos"
    assert p.longitude == pytest.approx(-1.255923) and p.latitude == pytest.approx(50.871735)
    assert p.speed_kn == pytest.approx(2.0 / 1.852)


def test_eighteen_byte_block_without_item_ids():
    """Capture: the old fixed block (mileage km, battery 0.1 V, signal)."""
    attrs = only_position(decode(SOS_WEST)).attributes
    assert (attrs["odometer"], attrs["battery"], attrs["rssi"]) == (1193482000, 0.2, 12)


def _location_body(extension: bytes, alarm: int = 0, status: int = 0x02) -> bytes:
    return (alarm.to_bytes(4, "big") + status.to_bytes(4, "big") + (22_000_000).to_bytes(4, "big")
            + (114_000_000).to_bytes(4, "big") + (50).to_bytes(2, "big") + (600).to_bytes(2, "big")
            + (90).to_bytes(2, "big") + bytes.fromhex("240501203045") + extension)


def test_an_eighteen_byte_list_of_known_items_is_a_list():
    extension = bytes.fromhex("010400000064" "250400000001" "300115" "310109")
    attrs = only_position(decode(message(0x0200, _location_body(extension)))).attributes
    assert (attrs["odometer"], attrs["input"], attrs["rssi"], attrs["sat"]) == (10000, 1, 21, 9)


def test_status_flags_and_alarm_bits():
    status = 0x01 | 0x02 | 0x04 | 0x0400 | 0x04000000
    alarm = (1 << 8) | (1 << 1)
    p = only_position(decode(message(0x0200, _location_body(b"", alarm, status))))
    assert p.attributes == {"alarm": "overspeed,powerOff", "ignition": True, "blocked": True,
                            "charge": True}
    assert p.latitude == -22.0 and p.longitude == 114.0 and p.speed_kn == pytest.approx(60 / 1.852)


def test_invalid_bcd_time_gives_a_status_record():
    body = _location_body(b"")[:-6] + bytes(6)
    p = only_position(decode(message(0x0200, body)))
    assert p.outdated and p.fix_time == NOW and p.device_time is None


def test_items_may_be_read_past_their_declared_length():
    """0xE3 declared with one byte still carries level and voltage (observed firmware);
    the next item starts at the declared end."""
    extension = bytes.fromhex("e30100" "5f020e01" "300117")
    attrs = only_position(decode(message(0x0200, _location_body(extension)))).attributes
    assert (attrs["batteryLevel"], attrs["battery"], attrs["rssi"]) == (0x5F, 5.26, 0x17)


def test_an_item_overrunning_the_body_stops_the_list():
    extension = bytes.fromhex("300117" "31ff00")
    attrs = only_position(decode(message(0x0200, _location_body(extension)))).attributes
    assert attrs["rssi"] == 0x17 and "sat" not in attrs


def test_batch_of_locations_from_a_2019_header():
    """Capture: 0x0704 type 0 (no archive flag), 2019 header."""
    frame = decode(BATCH_2019)
    (p,) = frame.messages
    assert p.latitude == pytest.approx(-27.263378) and p.attributes["sat"] == 14
    assert "archive" not in p.attributes
    assert p.unique_id == "866496077582164"
    body = bytes.fromhex("881d" "0704" "00")
    assert frame.reply == wire(header(0x8001, body, "00000866496077582164", 0, version=1) + body)


def test_backlog_batch_is_archived():
    record = _location_body(b"")
    body = b"\x00\x02\x01" + (len(record)).to_bytes(2, "big") + record + \
        (len(record)).to_bytes(2, "big") + record
    positions = decode(message(0x0704, body)).messages
    assert len(positions) == 2 and all(p.attributes["archive"] is True for p in positions)


# -- dialects ------------------------------------------------------------------------

def test_door_is_status_bit_16_on_mv710g_only():
    """Capture: the same frame with and without modelOverride MV710G."""
    assert only_position(decode(DOOR, modelOverride="MV710G")).attributes["door"] is True
    assert "door" not in only_position(decode(DOOR)).attributes


def test_jc371_battery_block():
    """Capture: 0xE8 block 3: charging, level 5/6, battery 4.15 V, signal 3, power 4.0 V."""
    attrs = only_position(decode(JC371_BATTERY, modelOverride="JC371")).attributes
    assert (attrs["charge"], attrs["batteryLevel"], attrs["battery"], attrs["rssi"], attrs["power"]) == \
        (True, 83, 4.15, 3, 4.0)


@pytest.mark.parametrize("model,expected", [("", {"temp2": 53.2}), ("C5L", {"steps": 0x0408}),
                                            ("GL100", {"iccid": "89553202100062282617"})])
def test_item_f8_depends_on_the_model(model, expected):
    value = bytes.fromhex("04" "0865413057160185" "89553202100062282617") + b"GL100-LA\x00\x00"
    extension = bytes([0xF8, len(value)]) + value
    attrs = only_position(decode(message(0x0200, _location_body(extension)),
                                 modelOverride=model)).attributes
    assert {k: attrs[k] for k in expected} == pytest.approx(expected)


def test_movement_alarm_bit_on_al300_only():
    frame = message(0x0200, _location_body(b"", alarm=1 << 16))
    assert only_position(decode(frame, modelOverride="AL300")).attributes["alarm"] == "movement"
    assert "alarm" not in only_position(decode(frame)).attributes


# -- other messages --------------------------------------------------------------------

def test_terminal_general_response_is_a_command_result_without_reply():
    frame = decode(message(0x0001, bytes.fromhex("0007" "8105" "00")))
    assert frame.messages == (CommandResult("0x8105 serial 7: success", "013833501744"),)
    assert frame.reply == b""


def test_result_text_message():
    """Capture: 0x0701 carrying a command answer."""
    frame = decode(RESULT_TEXT)
    assert CommandResult("MD,SET CONFIG OK!", "012076463279") in frame.messages
    assert only_position(frame).attributes == {"result": "MD,SET CONFIG OK!"}
    assert only_position(frame).outdated


def test_lock_text_answer():
    s = session()
    frame = s.decode_frame(LOCK_TEXT, NOW)
    assert CommandResult(LOCK_TEXT.decode(), "740190311185") in frame.messages
    assert s.unique_id == "740190311185" and frame.reply == b""


def test_unknown_message_is_acknowledged_without_messages():
    frame = decode(message(0x0F0F, b"\x01\x02"))
    assert frame.messages == ()
    body = bytes.fromhex("0001" "0f0f" "00")
    assert frame.reply == wire(header(0x8001, body, "013833501744", 0) + body)


def test_subpackaged_message_is_acknowledged_not_decoded():
    body = _location_body(b"")
    content = (0x0200).to_bytes(2, "big") + (0x2000 | len(body)).to_bytes(2, "big") + \
        bytes.fromhex("013833501744") + b"\x00\x09" + b"\x00\x02\x00\x01" + body
    frame = decode(frame_of(content))
    assert frame.messages == () and frame.reply.startswith(b"\x7e\x80\x01")


# -- per-field corruption --------------------------------------------------------------

def _damaged(frame: bytes, index: int) -> bytes:
    return frame[:index] + bytes([frame[index] ^ 0x5A]) + frame[index + 1:]


@pytest.mark.parametrize("field,index", [("start", 0), ("message id", 1), ("length", 4),
                                         ("terminal", 6), ("serial", 11), ("body", 20),
                                         ("checksum", -2), ("end", -1)])
def test_each_damaged_field_is_a_protocol_error(field, index):
    """Start marker, id, length, terminal, serial, body, checksum and end marker
    damaged in turn: the delimiters or the XOR catch it."""
    with pytest.raises(ProtocolError):
        decode(_damaged(LOCATION, index))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([0x0001, 0x0002, 0x0100, 0x0102, 0x0107, 0x0200, 0x0201, 0x0210, 0x0500,
                        0x0701, 0x0702, 0x0704, 0x0900, 0x2070, 0x5501, 0x5502, 0x1234]),
       st.binary(max_size=200), st.sampled_from(["", "JC371", "AL300", "GL100", "C5L", "MV710G"]))
def test_any_body_under_a_valid_envelope_decodes_or_is_a_protocol_error(msg_id, body, model):
    """Well-formed frames of every known id with random bodies: only ProtocolError."""
    try:
        frame = decode(message(msg_id, body), modelOverride=model)
    except ProtocolError:
        return
    for item in frame.messages:
        if isinstance(item, Position):
            position_record(item, "jt808", None)   # aware times, JSON-ready values


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.sampled_from(["", "JC371", "AL300", "C5L"]))
def test_random_location_extensions_decode(extension, model):
    """Any extension after a good basic block still gives the position."""
    p = only_position(decode(message(0x0200, _location_body(extension)), modelOverride=model))
    assert p.latitude == 22.0 and p.longitude == 114.0


# -- commands ----------------------------------------------------------------------------

def _connected(frame: bytes = LOCATION) -> jt808.Jt808Session:
    s = session()
    s.decode_frame(frame, NOW)
    return s


@pytest.mark.parametrize("command,msg_id,body", [
    (Command("custom", {"data": "WHERE#"}, id=7), 0x8300, b"\x01WHERE#"),
    (Command("rebootDevice", id=8), 0x8105, b"\x04"),
    (Command("engineStop", id=9), 0x8105, b"\x64"),
    (Command("engineResume", id=10), 0x8105, b"\x65"),
    (Command("positionSingle", id=11), 0x8201, b""),
    (Command("positionPeriodic", {"frequency": 30}, id=12), 0x8103,
     bytes.fromhex("01" "00000029" "04" "0000001e")),
])
def test_commands_are_byte_exact(command, msg_id, body):
    """Addressed with the device's terminal number; the command id is the serial."""
    expected = wire(header(msg_id, body, "013833501744", command.id) + body)
    assert _connected().encode_command(command, NOW) == expected


def test_command_to_a_2019_device_uses_its_header_and_text_type():
    s = _connected(BATCH_2019)
    body = b"\x01\x01" + "你好".encode("gbk")
    assert s.encode_command(Command("custom", {"data": "你好"}, id=0x7E7D), NOW) == \
        wire(header(0x8300, body, "00000866496077582164", 0x7E7D, version=1) + body)


@pytest.mark.parametrize("command", [Command("sosNumber"), Command("custom", {"data": ""}),
                                     Command("positionPeriodic", {"frequency": 0}),
                                     Command("custom", {"data": "\U0001F600"})])
def test_unsupported_commands(command):
    with pytest.raises(UnsupportedCommand):
        _connected().encode_command(command, NOW)


def test_no_command_before_the_device_is_known():
    with pytest.raises(UnsupportedCommand):
        session().encode_command(Command("rebootDevice"), NOW)


# -- device side -----------------------------------------------------------------------

IMEI = "866496077582164"


@pytest.mark.parametrize("unique_id", [IMEI, "014450376202"])
def test_device_login_is_acked_with_a_token(unique_id):
    s = session()
    frame = s.receive_data(jt808_device.DEVICE.login(unique_id, 41), NOW)[0]
    assert frame.messages == (Login(unique_id),) and s.unique_id == unique_id
    assert jt808_device.DEVICE.ack_reader().receive_data(frame.reply) == [41]


@pytest.mark.parametrize("alarm", [None, "sos", "overspeed", "powerOff", "lowBattery", "tampering"])
def test_device_report_round_trip(alarm):
    """Time, place (1e-6 deg), speed (0.1 km/h), course and alarm come back; the ack
    reader reads the report's serial from the server's 0x8001."""
    fix = dt.datetime(2024, 2, 29, 23, 59, 58, tzinfo=dt.UTC)
    report = DeviceReport(fix, -33.8688, -151.2093, speed_kn=27.3, course_deg=359.4, alarm=alarm)
    s = session()
    frame = s.receive_data(jt808_device.DEVICE.report(IMEI, 70000 % 65536, report), NOW)[0]
    p = only_position(frame)
    assert p.fix_time == fix and p.valid and p.unique_id == IMEI
    assert p.latitude == pytest.approx(-33.8688, abs=1e-6)
    assert p.longitude == pytest.approx(-151.2093, abs=1e-6)
    assert p.speed_kn == pytest.approx(27.3, abs=0.03) and p.course_deg == 359.0
    assert p.attributes.get("alarm") == alarm
    assert jt808_device.DEVICE.ack_reader().receive_data(frame.reply) == [70000 % 65536]


def test_device_invalid_fix_round_trip():
    report = DeviceReport(NOW, 1.0, 2.0, valid=False)
    assert only_position(decode(jt808_device.DEVICE.report("014450376202", 1, report))).valid is False


def test_device_refuses_an_unknown_alarm():
    with pytest.raises(ValueError):
        jt808_device.DEVICE.report(IMEI, 1, DeviceReport(NOW, 1.0, 2.0, alarm="geofenceEnter"))


def test_device_heartbeat_is_acked():
    frame = decode(jt808_device.DEVICE.heartbeat(IMEI, 513))
    assert frame.messages == ()
    assert jt808_device.DEVICE.ack_reader().receive_data(frame.reply) == [513]


def test_ack_reader_splits_replies_and_ignores_commands():
    s = _connected()
    ack = s.decode_frame(LOCATION, NOW).reply
    command = s.encode_command(Command("positionSingle", id=3), NOW)
    reader = jt808_device.DEVICE.ack_reader()
    assert reader.receive_data(ack[:5]) == []
    assert reader.receive_data(ack[5:] + command + ack) == [0x19, 0x19]


def test_ack_reader_rejects_a_damaged_reply():
    ack = _connected().decode_frame(LOCATION, NOW).reply
    with pytest.raises(ProtocolError):
        jt808_device.DEVICE.ack_reader().receive_data(ack[:-2] + bytes([ack[-2] ^ 1]) + b"\x7e")


# -- records and replay ------------------------------------------------------------------

def test_replay_per_frame_and_as_a_stream_agree():
    frames = [REGISTER, LOCATION, HEARTBEAT, SOS_WEST]
    per_frame = replay("jt808", frames, now=NOW)
    assert [len(r) for r in per_frame] == [0, 1, 0, 1]
    assert per_frame[1][0]["uniqueId"] == "013833501744"
    assert per_frame[1][0]["fixTime"] == "2015-08-17T23:21:21.000Z"
    data = b"".join(frames)
    chunks = [data[i:i + 7] for i in range(0, len(data), 7)]
    streamed = [r for item in replay("jt808", chunks, stream=True, now=NOW) for r in item]
    assert streamed == per_frame[1] + per_frame[3]
