"""TK103 decoding: location bodies, logins, alarms, dialects, replies, commands,
the device side.

Frames marked "capture" are device frames from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0); the rest are built
here.  Expected reply and command bytes are written out in full.
"""

from __future__ import annotations

import datetime as dt

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
    replay,
    tk103,
)
from protocols.devices import tk103 as tk103_device
from protocols.records import position_record

NOW = dt.datetime(2024, 5, 1, 12, 30, 45, tzinfo=dt.UTC)
KNOTS_PER_KMH = 1 / 1.852

# Captures (Traccar test suite, Apache-2.0).
LOGIN = b"(012345678901BP05000012345678901130520A3439.9629S05826.3504W000.1175622323.8700000000L000450AC)"
REPORT = b"(019358704260BR00180725A2300.0957N07235.2748E032.412092187.58001100166L000D9779)"
REPORT_SPACES = b"(027023361470BR00200617A4000.5775N 8415.4076W 46.0173725 87.3101000000L00000000)"
ALARM = b"(013666666666BO012110925A1234.5678N01234.5678W000.0025948118.7200000000L000024DE)"
HANDSHAKE = b"(027044702512BP00027044702512HSO01A4)"
LBS_LOGIN = (b"(027045009305BP05355227045009305,{413,2,30073,16724}\n{413,2,30073,16730}\n"
             b"{413,2,30073,49860}\n,01000000)")
LBS_HEX = b"(088047194605BZ00,510,010,36e6,932c,43,36e6,766b,36,36e6,7668,32)"
COMMA_LOGIN = b"(352606090042050,BP05,240414,A,4527.3513N,00909.9758E,4.80,112825,155.49)"
COMMA_ALARM = b"(013632651491,ZC13,040613,A,2234.0297N,11405.9101E,000.0,040137,178.48)"
BATTERY = b"(013632651491,ZC20,040613,040137,6,42,112,0)"
WIFI = (b"(864555555555555,DW51,200,1,3215,43370,2,58:F3:BB:3B:AA:82*-65*1,"
        b"1C:6A:BB:AA:81:95*-78*1,151117,154419)")
TEXT = b"(864555555555555,ZC03,191117,234207,$Notice: Device version: 1.0$)"
VIN = b"(027023361470BV005J6RW2H53HL066029)"
BMS = (b"(007030201454BS5190:02150000753001DC,91:0EE8060EDC0A01DC,92:42014201DC0A01DC,"
       b"96:0142000000000000,97:0000000000000000)")


def decode(frame: bytes) -> Frame:
    return tk103.CODEC.new_session().decode_frame(frame, NOW)


def only_position(frame: Frame) -> Position:
    positions = [m for m in frame.messages if isinstance(m, Position)]
    assert len(positions) == 1
    return positions[0]


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


# -- codec wiring ------------------------------------------------------------------

def test_codec_is_registered_with_traccar_port():
    assert CODECS["tk103"] is tk103.CODEC
    assert tk103.CODEC.default_listen == ("tcp:5002", "udp:5002")
    assert tk103.CODEC.command_types == {"engineStop", "engineResume", "positionSingle",
                                         "positionPeriodic", "custom"}


def test_alarm_codes_are_unique_int_enums():
    assert tk103.Alarm(2) is tk103.Alarm.ROBBERY and tk103.ALARM_NAMES[tk103.Alarm(2)] == "sos"


# -- standard location body ---------------------------------------------------------

def test_report_fields_io_state_and_mileage():
    """Capture: YYMMDD, km/h -> knots, course before the 8 I/O characters, hex mileage."""
    frame = decode(REPORT)
    p = only_position(frame)
    assert p.unique_id == "019358704260" and frame.reply == b""
    assert p.fix_time == p.device_time == utc(2018, 7, 25, 12, 9, 21)
    assert p.latitude == pytest.approx(23 + 0.0957 / 60)
    assert p.longitude == pytest.approx(72 + 35.2748 / 60)
    assert p.speed_kn == pytest.approx(32.4 * KNOTS_PER_KMH)
    assert p.course_deg == 87.58
    assert p.attributes == {"charge": True, "ignition": True, "in2": 1, "panic": 0, "out2": 0,
                            "fuel": 0x166, "odometer": 0xD9779}


def test_padded_fields_and_hemispheres():
    """Capture: blanks instead of leading zeros, west longitude."""
    p = only_position(decode(REPORT_SPACES))
    assert p.longitude == pytest.approx(-(84 + 15.4076 / 60))
    assert p.speed_kn == pytest.approx(46 * KNOTS_PER_KMH) and p.course_deg == 87.31


def test_short_course_field():
    """Capture: course "99" (two characters) before the I/O state; date 000007
    with an unset clock reads as 1999-12-07."""
    p = only_position(decode(b"(087072009461BR00000007V0000.0000N00000.0000E000.00014039900000000L00000000)"))
    assert p.course_deg == 99.0 and p.valid is False
    assert p.fix_time == utc(1999, 12, 7, 0, 14, 3)


def test_alphanumeric_terminal_id():
    frame = b"(BALLESTEROS3BR00190408A4113.5700N00140.3100E000.0162431000.0001000000L00000000)"
    p = only_position(decode(frame))
    assert p.unique_id == "BALLESTEROS3"


def test_report_without_io_state():
    """Location without I/O characters and mileage: the fix only."""
    p = only_position(decode(b"(012345678901BR00240501A5230.0000N01323.0000E010.0101010090.00)"))
    assert p.fix_time == utc(2024, 5, 1, 10, 10, 10) and p.attributes == {}


# -- login, handshake, alarm and their replies -----------------------------------------

def test_login_is_answered_ap05_and_carries_a_location():
    frame = decode(LOGIN)
    assert frame.reply == b"(012345678901AP05)"
    assert frame.messages[0] == Login("012345678901")
    assert only_position(frame).fix_time == utc(2013, 5, 20, 17, 56, 22)


def test_login_without_location():
    frame = decode(b"(012345678901BP05000012345678901)")
    assert frame.messages == (Login("012345678901"),) and frame.reply == b"(012345678901AP05)"


def test_handshake_is_answered_ap01hso():
    frame = decode(HANDSHAKE)
    assert frame.messages == () and frame.reply == b"(027044702512AP01HSO)"


@pytest.mark.parametrize("code,alarm", [(0, "powerCut"), (1, "accident"), (2, "sos"), (3, "vibration"),
                                        (4, "lowspeed"), (5, "overspeed"), (6, "geofenceExit"),
                                        (7, "movement")])
def test_alarm_codes_and_their_as01_answer(code, alarm):
    frame = decode(ALARM.replace(b"BO012", b"BO01" + str(code).encode()))
    assert only_position(frame).attributes["alarm"] == alarm
    assert frame.reply == b"(013666666666AS01" + str(code).encode() + b")"


def test_alarm_capture():
    p = only_position(decode(ALARM))
    assert p.fix_time == utc(2011, 9, 25, 2, 59, 48)
    assert (p.latitude, p.longitude) == (pytest.approx(12.57613), pytest.approx(-12.57613))


# -- observed dialects ------------------------------------------------------------------

def test_lbs_login_with_braced_cells():
    frame = decode(LBS_LOGIN)
    p = only_position(frame)
    assert p.outdated and p.attributes == {"odometer": 0x01000000}
    assert {c["cellId"] for c in p.network["cellTowers"]} == {16724, 16730, 49860}
    assert frame.reply == b"(027045009305AP05)"


def test_lbs_hex_serving_cell():
    p = only_position(decode(LBS_HEX))
    assert p.network["cellTowers"] == [{"cellId": 0x932C, "locationAreaCode": 0x36E6,
                                        "mobileCountryCode": 510, "mobileNetworkCode": 10}]


def test_comma_dialect_login():
    frame = decode(COMMA_LOGIN)
    p = only_position(frame)
    assert p.fix_time == utc(2014, 4, 24, 11, 28, 25) and p.unique_id == "352606090042050"
    assert p.speed_kn == pytest.approx(4.8 * KNOTS_PER_KMH) and p.course_deg == 155.49
    assert frame.reply == b"(352606090042050AP05)"


@pytest.mark.parametrize("word,alarm", [(b"ZC07", None), (b"ZC11", "movement"), (b"ZC12", "lowBattery"),
                                        (b"ZC13", "powerCut"), (b"ZC17", "removing")])
def test_comma_dialect_events(word, alarm):
    p = only_position(decode(COMMA_ALARM.replace(b"ZC13", word)))
    assert p.attributes.get("alarm") == alarm and p.fix_time == utc(2013, 6, 4, 4, 1, 37)


def test_battery_status():
    p = only_position(decode(BATTERY))
    assert p.outdated and p.device_time == utc(2013, 6, 4, 4, 1, 37)
    assert p.attributes == {"batteryLevel": 100, "battery": 0.42, "power": 11.2}
    no_power = only_position(decode(b"(864768010159785,ZC20,291015,030413,3,362,65535,255)"))
    assert no_power.attributes == {"batteryLevel": 20, "battery": 3.62}


def test_cells_and_wifi():
    p = only_position(decode(WIFI))
    assert p.outdated and p.fix_time == utc(2017, 11, 15, 15, 44, 19)
    assert p.attributes == {"alarm": "movement"}
    assert p.network["wifiAccessPoints"][0] == {"macAddress": "58:F3:BB:3B:AA:82",
                                                "signalStrength": -65, "channel": 1}


def test_text_answer_is_a_command_result():
    frame = decode(TEXT)
    assert frame.messages[0] == CommandResult("Notice: Device version: 1.0", "864555555555555")
    assert only_position(frame).attributes == {"result": "Notice: Device version: 1.0"}


def test_vin_and_command_answers():
    assert only_position(decode(VIN)).attributes == {"vin": "5J6RW2H53HL066029"}
    frame = decode(b"(012345678901BV01OK)")
    assert frame.messages[0] == CommandResult("BV01OK", "012345678901")


def test_bms_summary_is_read_big_endian():
    """Capture: pack 53.3 V with cells of 3.804..3.816 V (14 x 3.81 V)."""
    attrs = only_position(decode(BMS)).attributes
    assert attrs["cumulativeVoltage"] == 53.3 and attrs["current"] == 0.0 and attrs["soc"] == 47.6
    assert (attrs["maxCellVoltage"], attrs["minCellVoltage"]) == (3.816, 3.804)
    assert (attrs["maxTemp"], attrs["cellTemp1"], attrs["cellTemp2"]) == (26, 26, -40)
    assert "cellTemp8" not in attrs


@pytest.mark.parametrize("frame", [
    b"(027028258309BQ86,0,05550c21b10d1d0f431008bd114c0ea5078400010007a100423932,161117005322,01000001)",
    b"(012345678901BR00garbage)", b"(012345678901ZZ99)", b"(864768010159785,ZC20,xx,yy,1)",
    b"(864555555555555,DW51,200,1,3215,43370,9,151117,154419)",
])
def test_unknown_or_malformed_messages_give_no_record(frame):
    assert [m for m in decode(frame).messages if isinstance(m, Position)] == []


# -- per-field corruption ---------------------------------------------------------------------

def test_damaged_start_or_word_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        decode(b"[" + REPORT[1:])
    with pytest.raises(ProtocolError):
        decode(REPORT[:13] + b"br00" + REPORT[17:])


@pytest.mark.parametrize("index", [17, 23, 28, 33, 38, 47, 53])
def test_damaged_location_field_gives_no_record(index):
    """Date, validity, latitude, hemisphere, longitude, speed and time damaged in turn."""
    damaged = REPORT[:index] + b"X" + REPORT[index + 1:]
    assert decode(damaged).messages == ()


def test_frame_without_closing_parenthesis_decodes_the_same():
    assert decode(REPORT[:-1]).messages == decode(REPORT).messages


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([b"", b"(", b"(012345678901BR00", b"(012345678901BO01",
                                                 b"(012345678901BP05", b"(1,ZC20,", b"(1,DW50,",
                                                 b"(012345678901BS50", b"(012345678901BS51"]))
def test_random_frames_give_a_frame_or_protocol_error(data, prefix):
    try:
        frame = decode(prefix + data)
    except ProtocolError:
        return
    for message in frame.messages:
        if isinstance(message, Position):
            position_record(message, "tk103", None)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789ABCDEFLNSWV. ,:*{}", max_size=120))
def test_random_bodies_give_a_frame_or_protocol_error(body):
    for word in ("BR00", "BP05", "BO01", "BZ00", "BS50", "BS51", "BP02", "BQ81"):
        try:
            decode(f"(012345678901{word}{body})".encode())
        except ProtocolError:
            pass


# -- commands ------------------------------------------------------------------------------------

def identified():
    s = tk103.CODEC.new_session()
    s.decode_frame(LOGIN, NOW)
    return s


@pytest.mark.parametrize("command,expected", [
    (Command("engineStop"), b"(012345678901AV010)"),
    (Command("engineResume"), b"(012345678901AV011)"),
    (Command("positionSingle"), b"(012345678901AP00)"),
    (Command("positionPeriodic", {"frequency": 30}), b"(012345678901AR00001E0000)"),
    (Command("positionPeriodic", {"frequency": 3600}), b"(012345678901AR000E100000)"),
    (Command("custom", {"data": "AP15"}), b"(012345678901AP15)"),
    (Command("custom", {"data": "(012345678901AV000)"}), b"(012345678901AV000)"),
])
def test_commands_byte_exact(command, expected):
    assert identified().encode_command(command, NOW) == expected


@pytest.mark.parametrize("command", [Command("rebootDevice"), Command("positionPeriodic", {"frequency": 0}),
                                     Command("custom", {"data": ""}), Command("custom", {"data": "A)B"})])
def test_unsupported_commands(command):
    with pytest.raises(UnsupportedCommand):
        identified().encode_command(command, NOW)


def test_command_before_the_device_is_known():
    with pytest.raises(UnsupportedCommand):
        tk103.CODEC.new_session().encode_command(Command("engineStop"), NOW)


# -- device side ----------------------------------------------------------------------------------

@pytest.mark.parametrize("alarm", [None, "sos", "powerCut", "overspeed", "movement"])
def test_device_report_round_trip(alarm):
    report = DeviceReport(utc(2024, 2, 29, 23, 59, 58), -33.123456, -70.654321, 12.34, 271.25,
                          True, alarm)
    s = tk103.CODEC.new_session()
    login = s.decode_frame(tk103_device.DEVICE.login("860000000000001", 1), NOW)
    assert login.messages == (Login("860000000000001"),)
    frame = s.decode_frame(tk103_device.DEVICE.report("860000000000001", 2, report), NOW)
    p = only_position(frame)
    assert p.fix_time == report.fix_time and p.valid and p.unique_id == "860000000000001"
    assert p.latitude == pytest.approx(report.latitude, abs=1e-5)
    assert p.longitude == pytest.approx(report.longitude, abs=1e-5)
    assert p.speed_kn == pytest.approx(12.34, abs=0.05 / 1.852) and p.course_deg == 271.25
    assert p.attributes.get("alarm") == alarm
    reader = tk103_device.DEVICE.ack_reader()
    assert reader.receive_data(login.reply) == [None]
    assert reader.receive_data(frame.reply) == ([None] if alarm else [])


def test_device_side_flags_and_heartbeat():
    assert tk103_device.DEVICE.acks_login and not tk103_device.DEVICE.acks_reports
    frame = decode(tk103_device.DEVICE.heartbeat("860000000000001", 3))
    assert frame.messages == () and frame.reply == b"(860000000000001AP01HSO)"


def test_device_pads_short_ids_and_refuses_unknown_alarms():
    assert tk103_device.DEVICE.login("12345", 1) == b"(000000012345BP05000000000012345)"
    with pytest.raises(ValueError):
        tk103_device.DEVICE.report("12345", 1, DeviceReport(NOW, 0.0, 0.0, alarm="tampering"))


def test_ack_reader_ignores_commands_and_waits_for_whole_replies():
    reader = tk103_device.DEVICE.ack_reader()
    assert reader.receive_data(b"(012345678901AV010)(0123456789") == []
    assert reader.receive_data(b"01AP05)") == [None]


# -- records and replay --------------------------------------------------------------------------

def test_replay_per_frame_and_as_a_stream_agree():
    frames = [LOGIN, REPORT, HANDSHAKE, ALARM, BATTERY]
    per_frame = replay("tk103", frames, now=NOW)
    assert [len(r) for r in per_frame] == [1, 1, 0, 1, 1]
    data = b"".join(frames)
    chunks = [data[i:i + 50] for i in range(0, len(data), 50)]
    streamed = [r for item in replay("tk103", chunks, stream=True, now=NOW) for r in item]
    assert streamed == [r for records in per_frame for r in records]
