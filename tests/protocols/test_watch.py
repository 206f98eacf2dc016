"""Watch decoding: positions, alarms, status records, replies, commands, device side.

Frames marked "capture" are device frames from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0); expected replies and
commands are written out byte by byte here.
"""

from __future__ import annotations

import datetime as dt

import pytest

from protocols import (
    CODECS,
    Command,
    CommandResult,
    DeviceReport,
    Login,
    Position,
    ProtocolError,
    UnsupportedCommand,
    get_device_side,
    watch,
)
from protocols.devices import watch as watch_device

NOW = dt.datetime(2024, 5, 1, 12, 30, 45, tzinfo=dt.UTC)


def decode(frame: bytes, **options):
    return watch.CODEC.new_session(options).decode_frame(frame, NOW)


def positions(frame):
    return [m for m in frame.messages if isinstance(m, Position)]


def only_position(frame) -> Position:
    found = positions(frame)
    assert len(found) == 1
    return found[0]


# -- codec wiring ----------------------------------------------------------------

def test_codec_is_registered_on_traccars_port():
    assert CODECS["watch"] is watch.CODEC
    assert watch.CODEC.default_listen == ("tcp:5093",)
    assert get_device_side("watch") is watch_device.DEVICE


def test_command_types_are_the_servers_types():
    assert watch.CODEC.command_types == {"positionSingle", "positionPeriodic", "rebootDevice", "custom"}


# -- link keep / login ----------------------------------------------------------------

def test_link_names_the_watch_and_is_answered_with_lk():
    """capture: [SG*8800000015*0002*LK] -> Login, same bytes back, no record."""
    s = watch.CODEC.new_session()
    frame = s.decode_frame(b"[SG*8800000015*0002*LK]", NOW)
    assert frame.messages == (Login("8800000015"),)
    assert frame.reply == b"[SG*8800000015*0002*LK]"
    assert s.unique_id == "8800000015"


def test_link_with_steps_rolls_battery_gives_a_status_record():
    """capture: LK,steps,rolls,battery% -> outdated record (batteryLevel, steps)."""
    frame = decode(b"[3G*4700186508*000B*LK,0,10,100]")
    assert frame.reply == b"[3G*4700186508*0002*LK]"
    p = only_position(frame)
    assert p.outdated is True
    assert p.fix_time == NOW
    assert p.attributes == {"batteryLevel": 100, "steps": 0}
    assert p.unique_id == "4700186508"


def test_link_with_two_values_gives_no_record():
    """capture: LK,0,100 is ambiguous (steps? battery?): answered, no record."""
    frame = decode(b"[SG*9081000548*0008*LK,0,100]")
    assert positions(frame) == []
    assert frame.reply == b"[SG*9081000548*0002*LK]"


# -- positions ------------------------------------------------------------------------

UD_LTE = (b"[3G*2104326058*00E9*UD_LTE,300621,135101,A,32.162652,N,34.888748,E,30.84,265.158,"
          b"65.621,18,100,83,0,0,00000000,1,1,425,01,10223,8012811,100,3,ES4104,22:74:1d:39:64:ff,"
          b"-46,metropoline-wifi,a8:3f:a1:e0:66:ba,-89,Egged.co.il,00:0c:42:51:cf:cd,-81,1.7055488]")


def test_lte_position_fields_units_and_network():
    """capture: UD_LTE: UTC time, km/h -> knots, altitude, counters, one cell, three APs."""
    frame = decode(UD_LTE)
    assert frame.reply == b""
    p = only_position(frame)
    assert p.fix_time == dt.datetime(2021, 6, 30, 13, 51, 1, tzinfo=dt.UTC)
    assert (p.valid, p.latitude, p.longitude) == (True, 32.162652, 34.888748)
    assert p.speed_kn == pytest.approx(30.84 / 1.852)
    assert (p.course_deg, p.altitude_m) == (265.158, 65.621)
    assert p.attributes == {"sat": 18, "rssi": 100, "batteryLevel": 83, "steps": 0}
    assert p.network["cellTowers"] == [{"cellId": 8012811, "locationAreaCode": 10223,
                                        "mobileCountryCode": 425, "mobileNetworkCode": 1,
                                        "signalStrength": -100}]
    assert {ap["macAddress"] for ap in p.network["wifiAccessPoints"]} == {
        "22:74:1d:39:64:ff", "a8:3f:a1:e0:66:ba", "00:0c:42:51:cf:cd"}
    assert p.unique_id == "2104326058"


def test_south_and_west_hemispheres_and_signed_values():
    """capture contents: S latitude, empty longitude hemisphere; and a signed value with N/E
    stays negative."""
    south = decode(watch.build_frame("SG", "9081000548", "UD,110116,113639,V,16.479064,S,68.119072,,"
                                     "0.7593,000,99,00,80,80,0,50,00000000,0,1,,,,00"))
    p = only_position(south)
    assert (p.latitude, p.longitude, p.valid) == (-16.479064, 68.119072, False)
    signed = decode(watch.build_frame("3G", "6105117105", "UD2,210716,231601,V,-33.480366,N,"
                                      "-70.7630692,E,0.00,0.0,0.0,0,100,34,0,0,00000000,0,1,,,,00"))
    p = only_position(signed)
    assert (p.latitude, p.longitude) == (-33.480366, -70.7630692)


def test_hex_cell_ids_and_invalid_mcc():
    """capture: LAC/CI with hex letters are hex; an MCC of FFFF means no cell."""
    hexed = decode(b"[SG*9059011020*0067*AL,240123,181628,V,54.427538,N,6.409275,W,0.00,0,0,0,19,"
                   b"90,0,0,00000000,1,1,234,10,55C0,3B882A2,132,,10]")
    assert only_position(hexed).network["cellTowers"][0] == {
        "cellId": 0x3B882A2, "locationAreaCode": 0x55C0, "mobileCountryCode": 234,
        "mobileNetworkCode": 10, "signalStrength": -132}
    none = decode(b"[SG*9059011020*006b*UD2,240123,162011,A,54.427621,N,6.409190,W,0.00,0,0,8,19,"
                  b"88,0,0,00000000,1,1,FFFF,FFFF,FFFE,3B882A2,132,,00]")
    assert only_position(none).network is None


def test_wifi_without_cells_is_kept():
    """capture: 0 cells then straight to 5 access points (no TA/MCC/MNC fields)."""
    frame = decode(b"[3G*8800000015*00DD*UD,010120,025946,V,0.0,N,0.0,E,22.0,0,-1,0,100,98,0,0,"
                   b"00000000,0,5,eduroam,f4:db:e6:d2:a8:00,-53,eduroam,f4:db:e6:da:d0:80,-79,"
                   b"eduroam,78:0c:f0:24:f9:80,-82,Lions,b0:be:76:0a:05:9a,-82,tubs-guest,"
                   b"f4:db:e6:d2:a8:01,-53,0.0]")
    p = only_position(frame)
    assert p.altitude_m == -1.0
    assert "cellTowers" not in p.network
    assert len(p.network["wifiAccessPoints"]) == 5


def test_zj_dialect_position():
    """capture: ZJ frames carry a 15-digit id and a serial field before the length."""
    frame = decode(b"[ZJ*014111001350304*0033*0064*UD,070318,020827,V,00.000000,N,000.000000,E,0,0,"
                   b"0,0,100,19,1000,50,00000000,1,255,460,0,9346,5223,42]")
    p = only_position(frame)
    assert p.unique_id == "014111001350304"
    assert p.attributes == {"sat": 0, "rssi": 100, "batteryLevel": 19, "steps": 1000}


# -- alarms -------------------------------------------------------------------------

@pytest.mark.parametrize("status, alarm", [
    ("00010000", "sos"), ("00020000", "lowBattery"), ("00000001", "lowBattery"),
    ("00040000", "geofenceExit"), ("00080000", "geofenceEnter"), ("00100000", "removing"),
    ("00200000", "fallDown"), ("00000000", "general"), ("00030000", "sos,lowBattery"),
])
def test_alarm_bits_map_to_traccar_alarms(status, alarm):
    content = (f"AL,220414,134652,A,22.571707,N,113.8613968,E,0.1,0.0,100,7,60,90,1000,50,{status},"
               "0,0,0,0,0").encode()
    frame = decode(watch.build_frame("SG", "8800000015", content))
    assert only_position(frame).attributes["alarm"] == alarm


def test_alarm_is_answered_with_its_type():
    """capture: AL_LTE -> [3G*...*0006*AL_LTE]; SOS bit 16."""
    frame = decode(b"[3G*6907919734*003e*AL_LTE,170525,214118,V,0,N,0,E,0,0,0,0,0,22,0,0,00010000,"
                   b"0,0,0]")
    assert frame.reply == b"[3G*6907919734*0006*AL_LTE]"
    assert only_position(frame).attributes == {"sat": 0, "rssi": 0, "batteryLevel": 22, "steps": 0,
                                               "alarm": "sos"}


def test_zj_alarm_reply_keeps_the_serial_field():
    frame = decode(b"[ZJ*014111001332708*0075*0064*AL,040418,052156,A,22.536207,N,113.938673,E,0,0,0,"
                   b"5,100,82,1000,50,00100000,1,255,460,0,9340,3663,35]")
    assert frame.reply == b"[ZJ*014111001332708*0075*0002*AL]"
    assert only_position(frame).attributes["alarm"] == "removing"


def test_motion_bit_and_fall_down():
    """capture: status 00200010 -> fallDown and motion."""
    frame = decode(b"[3G*8308373902*0080*AL,230817,095346,A,47.083950,N,15.4821850,E,7.60,273.8,0.0,"
                   b"4,15,44,0,0,00200010,2,255,232,1,7605,42530,118,7605,58036,119,0,65.8]")
    attrs = only_position(frame).attributes
    assert (attrs["alarm"], attrs["motion"]) == ("fallDown", True)


def test_position_report_is_not_answered():
    frame = decode(watch_device.device_position("8800000015", DeviceReport(NOW, 1.0, 2.0)))
    assert frame.reply == b""


# -- health and other messages ----------------------------------------------------------------

@pytest.mark.parametrize("frame, attrs", [
    (b"[CS*8800000015*0008*PULSE,72]", {"heartRate": 72}),
    (b"[3G*6005412902*0008*heart,71]", {"heartRate": 71}),
    (b"[3G*4700609403*0013*bphrt,120,79,73,,,,]",
     {"pressureHigh": "120", "pressureLow": "79", "heartRate": 73}),
])
def test_health_data_gives_status_records(frame, attrs):
    """captures: heart rate and blood pressure (pressures as text, as Traccar gives them)."""
    p = only_position(decode(frame))
    assert p.outdated and p.attributes == attrs


@pytest.mark.parametrize("frame, reply", [
    (b"[3G*8800000015*0003*TKQ]", b"[3G*8800000015*0003*TKQ]"),
    (b"[3G*8800000015*0004*TKQ2]", b"[3G*8800000015*0004*TKQ2]"),
    (b"[SG*8800000015*0006*CONFIG]", b"[SG*8800000015*0008*CONFIG,1]"),
    (bytes.fromhex("5b43532a313233343536373839302a303030652a544b2c2321414d527d5b5d2c2aff5d"),
     b"[CS*1234567890*0004*TK,1]"),
])
def test_queries_and_voice_are_answered(frame, reply):
    decoded = decode(frame)
    assert decoded.reply == reply
    assert positions(decoded) == []


def test_watch_answer_to_a_server_voice_message_is_not_acked():
    """TK,1 from the watch acknowledges our voice message: answering it would loop."""
    assert decode(b"[3G*8800000015*0004*TK,1]").reply == b""


def test_unknown_type_gives_an_empty_unanswered_frame():
    frame = decode(b"[SG*8800000015*0008*WHATEVER]")
    assert (frame.messages, frame.reply) == ((), b"")


def test_bad_date_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="date"):
        decode(watch.build_frame("SG", "1", "UD,320199,250000,A,1,N,1,E,0,0,0,0,0,0,0,0,0"))


# -- commands -----------------------------------------------------------------------

def connected_session(frame: bytes = b"[3G*4700186508*0002*LK]"):
    s = watch.CODEC.new_session()
    s.decode_frame(frame, NOW)
    return s


@pytest.mark.parametrize("command, expected", [
    (Command("positionSingle"), b"[3G*4700186508*0002*CR]"),
    (Command("positionPeriodic", {"frequency": 600}), b"[3G*4700186508*000A*UPLOAD,600]"),
    (Command("rebootDevice"), b"[3G*4700186508*0005*RESET]"),
    (Command("powerOff"), b"[3G*4700186508*0008*POWEROFF]"),
    (Command("custom", {"data": "SOS1,13800138000"}), b"[3G*4700186508*0010*SOS1,13800138000]"),
])
def test_commands_are_framed_for_the_connected_watch(command, expected):
    assert connected_session().encode_command(command, NOW) == expected


def test_commands_use_the_zj_serial_field():
    s = connected_session(b"[ZJ*014111001350304*0033*0002*LK]")
    assert s.encode_command(Command("positionSingle"), NOW) == b"[ZJ*014111001350304*0033*0002*CR]"


@pytest.mark.parametrize("command", [
    Command("engineStop"), Command("positionPeriodic", {"frequency": 1}),
    Command("custom", {"data": "bad]data"}), Command("custom", {"data": ""}),
])
def test_unsupported_commands_are_refused(command):
    with pytest.raises(UnsupportedCommand):
        connected_session().encode_command(command, NOW)


def test_command_before_the_watch_identified_itself_is_refused():
    with pytest.raises(UnsupportedCommand):
        watch.CODEC.new_session().encode_command(Command("positionSingle"), NOW)


def test_watch_answer_to_a_command_is_a_command_result():
    s = connected_session()
    s.encode_command(Command("custom", {"data": "MYCMD,1"}), NOW)
    answer = s.decode_frame(b"[3G*4700186508*0008*MYCMD,OK]", NOW)
    assert answer.messages == (CommandResult("MYCMD,OK", unique_id="4700186508"),)
    assert s.decode_frame(b"[3G*4700186508*0002*CR]", NOW).messages == (
        CommandResult("CR", unique_id="4700186508"),)


# -- device side ---------------------------------------------------------------------

def test_device_login_and_heartbeat_are_link_frames_answered_with_lk():
    s = watch.CODEC.new_session()
    login = s.decode_frame(watch_device.DEVICE.login("8800000015", 1), NOW)
    assert watch_device.DEVICE.login("8800000015", 1) == b"[SG*8800000015*0002*LK]"
    assert login.messages == (Login("8800000015"),)
    beat = s.decode_frame(watch_device.DEVICE.heartbeat("8800000015", 2), NOW)
    reader = watch_device.DEVICE.ack_reader()
    assert reader.receive_data(login.reply + beat.reply[:5]) == [None]
    assert reader.receive_data(beat.reply[5:]) == [None]


@pytest.mark.parametrize("alarm", [None, "sos", "lowBattery", "removing", "fallDown"])
def test_device_report_round_trip(alarm):
    """Time, place (1e-5 deg), speed and course come back; the alarm as attributes["alarm"]."""
    report = DeviceReport(dt.datetime(2024, 5, 1, 10, 0, 5, tzinfo=dt.UTC), -33.8688197,
                          151.2092955, speed_kn=23.4, course_deg=271.0, alarm=alarm)
    frame = watch.CODEC.new_session().decode_frame(watch_device.DEVICE.report("8800000015", 3, report), NOW)
    p = only_position(frame)
    assert p.fix_time == report.fix_time and p.valid
    assert p.latitude == pytest.approx(report.latitude, abs=1e-5)
    assert p.longitude == pytest.approx(report.longitude, abs=1e-5)
    assert p.speed_kn == pytest.approx(report.speed_kn, abs=0.01)
    assert p.course_deg == pytest.approx(report.course_deg, abs=0.05)
    assert p.attributes.get("alarm") == alarm
    assert (frame.reply != b"") == (alarm is not None)
    assert watch_device.DEVICE.ack_reader().receive_data(frame.reply) == ([None] if alarm else [])


def test_device_refuses_an_alarm_it_cannot_carry():
    with pytest.raises(ValueError, match="unsupported watch alarm"):
        watch_device.DEVICE.report("8800000015", 1, DeviceReport(NOW, 0.0, 0.0, alarm="powerCut"))


def test_ack_reader_ignores_commands():
    assert watch_device.DEVICE.ack_reader().receive_data(b"[SG*8800000015*0002*CR]") == []


def test_device_side_flags():
    device = watch_device.DEVICE
    assert (device.transport, device.acks_login, device.acks_reports) == (
        "tcp", True, False)
