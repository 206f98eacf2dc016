"""GL200 (Queclink @Track) codec: wiring, replies, commands, device side, binary reports.

Frames marked "capture" come from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0); the others are
built here.  Expected replies and commands are written out byte for byte.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import (
    CODECS,
    Command,
    CommandResult,
    DeviceReport,
    Position,
    ProtocolError,
    UnsupportedCommand,
    get_device_side,
    gl200,
    replay,
)
from protocols.devices import gl200 as gl200_device
from protocols.devices.gl200 import ALARM_REPORTS

NOW = dt.datetime(2024, 5, 1, 12, 30, 45, tzinfo=dt.UTC)
IMEI = "864251020186064"

# Captures (Traccar test suite, Apache-2.0).
HBD = b"+ACK:GTHBD,1A0401,135790246811220,,20100214093254,11F0$"
ACK_JDC = b"+ACK:GTJDC,0A0102,135790246811220,,0016,20090214093254,11F0$"
STT = (b"+RESP:GTSTT,060228,862894020178276,,21,0,0.0,0,411.3,-63.169745,-17.776330,20160319132220,"
       b"0736,0003,6AD4,5BAA,00,20160319092223,1FBD$")
BINARY_RSP = bytes.fromhex(
    "2b5253500700fc1fbf005d4501020209563254030003430564377e42071001000000000000007eff75a151"
    "025c6a8107e10801081a2a02680003189c1ac500000000000002100700000000000000000007e108010824"
    "1019e17ebe0d0a")
BINARY_EVT = bytes.fromhex(
    "2b4556542d00fc1fbf0063450102020956325403000343056437f8220700000200000000010000160100f2"
    "007eff75a1f0025c6b1a07e1080108241a02680003189c1ac500000000000002100800000000000000000007"
    "e1080108241a19e24e4e0d0a")
BINARY_COMPACT = bytes.fromhex(
    "2b000038000865134050947226820300030000216a3ed6f101895000521629fa8b28f402ac1a8e6a3ed6f1000016"
    "00000010f505010ff824")
BINARY_ACK = bytes.fromhex("2b41434b017f244501010108676231303000000000ffff07e1070b03112d054dfe030d0a")


def decode(frame: bytes, **options):
    return gl200.CODEC.new_session(options).decode_frame(frame, NOW)


def positions(frame) -> list[Position]:
    return [m for m in frame.messages if isinstance(m, Position)]


# -- wiring ------------------------------------------------------------------------

def test_codec_is_registered_with_traccar_port():
    assert CODECS["gl200"] is gl200.CODEC
    assert gl200.CODEC.default_listen == ("tcp:5004", "udp:5004")
    assert get_device_side("gl200") is gl200_device.DEVICE
    assert gl200.CODEC.command_types == {"engineStop", "engineResume", "rebootDevice",
                                         "positionSingle", "positionPeriodic", "custom"}


def test_every_frame_names_the_device():
    s = gl200.CODEC.new_session()
    assert s.unique_id is None
    s.decode_frame(STT, NOW)
    assert s.unique_id == "862894020178276"
    s.decode_frame(HBD, NOW)
    assert s.unique_id == "135790246811220"


# -- replies -----------------------------------------------------------------------

def test_heartbeat_gets_its_sack_and_no_record():
    frame = decode(HBD)
    assert frame.messages == ()
    assert frame.reply == b"+SACK:GTHBD,1A0401,11F0$"


def test_heartbeat_is_answered_even_with_ack_off():
    assert decode(HBD, ack=False).reply == b"+SACK:GTHBD,1A0401,11F0$"


def test_report_is_acknowledged_with_its_count_number():
    assert decode(STT).reply == b"+SACK:1FBD$"


def test_ack_option_off_sends_nothing_for_reports():
    assert decode(STT, ack=False).reply == b""
    assert decode(STT, ack="false").reply == b""


def test_frame_without_a_count_number_gets_no_reply():
    assert decode(STT.replace(b",1FBD$", b",XYZ$")).reply == b""


def test_command_answer_is_a_command_result_and_a_result_record():
    frame = decode(ACK_JDC)
    result, record = frame.messages
    assert result == CommandResult("+ACK:GTJDC,0A0102,135790246811220,,0016,20090214093254,11F0",
                                   "135790246811220")
    assert record.outdated and record.attributes == {"result": "+ACK:GTJDC"}
    assert frame.reply == b"+SACK:11F0$"


def test_binary_report_is_acknowledged_with_its_count_number():
    assert decode(BINARY_RSP).reply == b"+SACK:19E1$"
    assert decode(BINARY_ACK).reply == b""


# -- commands ----------------------------------------------------------------------

@pytest.mark.parametrize("kind,expected", [
    ("engineStop", b"AT+GTOUT=gl200,1,,,0,0,0,0,0,0,,,,,,,,002A$"),
    ("engineResume", b"AT+GTOUT=gl200,0,,,0,0,0,0,0,0,,,,,,,,002A$"),
    ("rebootDevice", b"AT+GTRTO=gl200,3,,,,,,002A$"),
    ("positionSingle", b"AT+GTRTO=gl200,1,,,,,,002A$"),
])
def test_commands_byte_exact(kind, expected):
    assert gl200.CODEC.new_session().encode_command(Command(kind, id=42), NOW) == expected


def test_position_periodic_sets_the_fixed_report_interval():
    command = Command("positionPeriodic", {"frequency": 60}, id=0x1234)
    assert gl200.CODEC.new_session().encode_command(command, NOW) == \
        b"AT+GTFRI=gl200,1,,,,,,,60,,,,,,,,,,,,1234$"


def test_password_option_and_serial_modulo_65536():
    s = gl200.CODEC.new_session({"password": "gv300"})
    assert s.encode_command(Command("rebootDevice", id=0x1FFFE), NOW) == b"AT+GTRTO=gv300,3,,,,,,FFFE$"


def test_custom_command_is_sent_as_given():
    command = Command("custom", {"data": "AT+GTRTO=gl200,8,,,,,,0001$"})
    assert gl200.CODEC.new_session().encode_command(command, NOW) == b"AT+GTRTO=gl200,8,,,,,,0001$"


@pytest.mark.parametrize("command", [
    Command("alarmArm"), Command("custom"), Command("custom", {"data": "caf\u00e9"}),
    Command("positionPeriodic"), Command("positionPeriodic", {"frequency": 86401}),
    Command("positionPeriodic", {"frequency": "often"}),
])
def test_unsupported_or_malformed_commands_are_refused(command):
    with pytest.raises(UnsupportedCommand):
        gl200.CODEC.new_session().encode_command(command, NOW)


def test_unusable_password_is_refused_at_session_creation():
    with pytest.raises(ValueError, match="password"):
        gl200.CODEC.new_session({"password": "a,b$"})


# -- device side --------------------------------------------------------------------

REPORT = DeviceReport(dt.datetime(2024, 5, 1, 10, 11, 12, tzinfo=dt.UTC), -33.123456, 151.654321,
                      speed_kn=12.3, course_deg=271.0)


def test_device_side_shape():
    device = gl200_device.DEVICE
    assert (device.transport, device.acks_login, device.acks_reports) == ("tcp", False, True)
    assert device.login(IMEI, 1) == b""


@pytest.mark.parametrize("alarm", [None, *ALARM_REPORTS])
def test_device_report_round_trip(alarm):
    """The report decodes to its own time, place, speed, course and alarm; the
    server's SACK gives the device back its serial."""
    report = dataclasses.replace(REPORT, alarm=alarm)
    s = gl200.CODEC.new_session()
    (frame,) = s.receive_data(gl200_device.DEVICE.report(IMEI, 0x1A2B, report), NOW)
    (record,) = positions(frame)
    assert record.fix_time == report.fix_time
    assert abs(record.latitude - report.latitude) < 1e-5
    assert abs(record.longitude - report.longitude) < 1e-5
    assert abs(record.speed_kn - report.speed_kn) < 0.06
    assert record.course_deg == 271
    assert record.attributes.get("alarm") == alarm
    assert s.unique_id == IMEI
    assert gl200_device.DEVICE.ack_reader().receive_data(frame.reply) == [0x1A2B]


def test_device_report_byte_exact():
    assert gl200_device.DEVICE.report(IMEI, 5, REPORT) == (
        b"+RESP:GTFRI,060100,864251020186064,,12000,10,1,1,22.8,271,0.0,151.654321,-33.123456,"
        b"20240501101112,,,,,00,0.0,,,,100,210000,,,,20240501101112,0005$")


def test_unknown_alarm_is_refused_by_the_device_builder():
    with pytest.raises(ValueError, match="alarm"):
        gl200_device.DEVICE.report(IMEI, 1, dataclasses.replace(REPORT, alarm="fatigue"))


def test_device_heartbeat_round_trip():
    heartbeat = gl200_device.DEVICE.heartbeat(IMEI, 7)
    assert heartbeat == b"+ACK:GTHBD,060100,864251020186064,,,0007$"
    (frame,) = gl200.CODEC.new_session().receive_data(heartbeat, NOW)
    assert frame.messages == ()
    assert gl200_device.DEVICE.ack_reader().receive_data(frame.reply) == [7]


def test_ack_reader_handles_split_replies_and_skips_commands():
    reader = gl200_device.DEVICE.ack_reader()
    assert reader.receive_data(b"+SACK:00") == []
    assert reader.receive_data(b"1F$AT+GTRTO=gl200,1,,,,,,0001$+SACK:GTHBD,060100,0002$") == [0x1F, 2]


def test_ack_reader_refuses_endless_replies():
    with pytest.raises(ProtocolError):
        gl200_device.DEVICE.ack_reader().receive_data(b"+SACK:" + b"0" * 5000)


# -- binary reports -----------------------------------------------------------------

def test_binary_report():
    """capture: +RSP fixed report of a GB100 (power in mV, HDOP 0 = not valid)."""
    (record,) = positions(decode(BINARY_RSP))
    assert record.fix_time == dt.datetime(2017, 8, 1, 8, 26, 42, tzinfo=dt.UTC)
    assert (record.latitude, record.longitude, record.altitude_m) == (39.611009, -9.068207, 126.0)
    assert not record.valid
    assert record.attributes == {"batteryLevel": 100, "power": 14206, "sat": 7, "hdop": 0}
    assert record.network["cellTowers"] == [{"cellId": 6853, "locationAreaCode": 6300,
                                            "mobileCountryCode": 616, "mobileNetworkCode": 3}]


def test_binary_event_carries_firmware_version_and_speed():
    (record,) = positions(decode(BINARY_EVT))
    assert record.attributes["versionFw"] == "521"
    assert record.speed_kn == pytest.approx(563.3 / 1.852)
    assert record.course_deg == 242


def test_binary_compact_report():
    s = gl200.CODEC.new_session()
    (record,) = positions(s.decode_frame(BINARY_COMPACT, NOW))
    assert (record.latitude, record.longitude, record.altitude_m) == (44.833422, -91.543308, 434.1)
    assert record.fix_time == dt.datetime(2026, 6, 26, 19, 45, 53, tzinfo=dt.UTC)
    assert record.attributes == {"hdop": 2.2, "sat": 5}
    assert s.unique_id == "865134050947226"


def test_binary_ack_gives_no_record():
    assert decode(BINARY_ACK).messages == ()


# -- replay -------------------------------------------------------------------------

def test_replay_per_frame_and_as_a_stream_agree():
    frames = [HBD, STT, BINARY_RSP, ACK_JDC]
    per_frame = replay("gl200", frames, now=NOW)
    streamed = replay("gl200", [b"".join(frames)], stream=True, now=NOW)
    assert [r for records in per_frame for r in records] == streamed[0]
    assert [len(r) for r in per_frame] == [0, 1, 1, 1]


# -- random reports -----------------------------------------------------------------

FIELD_VALUES = st.sampled_from([
    "", "0", "1", "00", "01", "02", "10", "21", "FF", "1A", "nan", "4.3", "-1", "12345", "99",
    "20240101000000", "202401010000", "210100", "0.0", "2000.0", "12345:12:34", "121.354335",
    "31.222073", "-63.169745", "0460", "18d8", "6141", "F0", "283F", "FFFFFFFF", "C03FFFFF",
    "7805414BA78A", "3BKHHZ8X7GF723380", "H123", "P50.0", "L/H1.5", "28FF4560A3150483", "05B0",
    "99999999999", "+0800",
])
TYPES = st.sampled_from(["FRI", "RTL", "ERI", "IGN", "IGF", "IDA", "LSW", "TSW", "DAR", "DAT", "BAA",
                         "BID", "CAN", "OBD", "INF", "VER", "PNA", "GSM", "WIF", "DTT", "SOS", "GEO",
                         "HBM", "NMR", "STT", "XYZ"])


@settings(deadline=None, max_examples=300)
@given(st.sampled_from(["RESP", "BUFF", "ACK"]), TYPES, st.lists(FIELD_VALUES, max_size=60))
def test_random_reports_decode_or_raise_protocol_error(kind, report, fields):
    """Any field soup under a valid head gives a Frame or a ProtocolError."""
    frame = f"+{kind}:GT{report},060100,{IMEI},{','.join(fields)}$".encode("latin-1")
    try:
        result = decode(frame)
    except ProtocolError:
        return
    for message in result.messages:
        if isinstance(message, Position):
            assert message.fix_time.tzinfo is not None
            assert -90 <= message.latitude <= 90 and -180 <= message.longitude <= 180
