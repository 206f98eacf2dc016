"""GPS103 (Coban) decoding: reports, alarms, time zones, status tails, replies,
commands and the device side.

Frames marked "capture" are device frames from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0); the others are built
here.  Expected values are worked out by hand from the frame text.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import (
    CODECS,
    Command,
    DeviceReport,
    Frame,
    Login,
    Position,
    ProtocolError,
    UnsupportedCommand,
    gps103,
    replay,
)
from protocols.devices import gps103 as gps103_device

NOW = dt.datetime(2024, 5, 1, 12, 30, 45, tzinfo=dt.UTC)
IMEI = "359586015829802"

# Captures (Traccar test suite, Apache-2.0).
LOGIN = b"##,imei:359586015829802,A;"
HEARTBEAT = b"359586015829802;"
SOS = b"imei:359586015829802,help me,0809231429,13554900601,F,062947.294,A,2234.4026,N,11354.3277,E,0.00,;"
STATUS_TAIL = (b"imei:864180034124375,vt14,190116192753,,F,172750.000,A,3649.2186,N,00235.8411,W,"
               b"0.00,0,,0,0,51.93%,,+22;")
NO_GPS_CELL = b"imei:359710041100000,tracker,000000000,,L,,,fa8,,c9af,,,,,0,0,0.00%,,"
OBD = b"imei:862106025092216,OBD,170605095949,195874,,370.8,808,066,30.0%,+87,13.0%,02444,14.3,,,,;"


def session() -> gps103.Gps103Session:
    return gps103.CODEC.new_session()


def decode(frame: bytes) -> Frame:
    return session().decode_frame(frame, NOW)


def only_position(frame: Frame) -> Position:
    positions = [m for m in frame.messages if isinstance(m, Position)]
    assert len(positions) == 1
    return positions[0]


def report(word: str = "tracker", local: str = "2405011230", utc: str = "123045.000",
           tail: str = "") -> bytes:
    """A position report at 51.5 N 0.25 W, 10.5 kn, course 90."""
    return (f"imei:{IMEI},{word},{local},,F,{utc},A,5130.0000,N,00015.0000,W,10.50,90.00{tail};"
            .encode())


# -- codec wiring ------------------------------------------------------------------

def test_codec_is_registered_with_traccar_port():
    assert CODECS["gps103"] is gps103.CODEC
    assert gps103.CODEC.default_listen == ("tcp:5001", "udp:5001")
    assert gps103.CODEC.command_types == {"positionSingle", "positionPeriodic", "engineStop",
                                          "engineResume", "custom"}


def test_frame_kinds_are_unique_int_enums():
    assert len({int(k) for k in gps103.FrameKind}) == len(gps103.FrameKind)


# -- log-on and heartbeat ------------------------------------------------------------

def test_login_names_the_device_and_is_answered_load():
    s = session()
    frame = s.decode_frame(LOGIN, NOW)
    assert frame.messages == (Login(IMEI),)
    assert frame.reply == b"LOAD"
    assert s.unique_id == IMEI


def test_heartbeat_is_answered_on_and_carries_no_record():
    """The bare IMEI keeps the link up: "ON" back, the device named, no position."""
    s = session()
    frame = s.decode_frame(HEARTBEAT, NOW)
    assert frame.reply == b"ON"
    assert frame.messages == (Login(IMEI),)
    assert s.unique_id == IMEI


def test_login_without_the_a_flag_gets_no_reply():
    frame = decode(b"##,imei:359586015829802,X;")
    assert frame.messages == () and frame.reply == b""


def test_reports_get_no_reply():
    assert decode(SOS).reply == b""


# -- position reports ------------------------------------------------------------------

def test_sos_report_capture():
    """help me -> alarm sos; ddmm.mmmm to degrees; UTC time on the local date."""
    position = only_position(decode(SOS))
    assert position.fix_time == dt.datetime(2008, 9, 23, 6, 29, 47, tzinfo=dt.UTC)
    assert position.valid
    assert position.latitude == pytest.approx(22 + 34.4026 / 60)
    assert position.longitude == pytest.approx(113 + 54.3277 / 60)
    assert position.attributes == {"alarm": "sos"}
    assert position.unique_id == IMEI


def test_speed_is_knots_and_hemispheres_sign_the_coordinates():
    position = only_position(decode(report()))
    assert position.speed_kn == 10.5
    assert position.course_deg == 90.0
    assert position.latitude == pytest.approx(51.5)
    assert position.longitude == pytest.approx(-0.25)


def test_invalid_fix_is_flagged_not_dropped():
    position = only_position(decode(report().replace(b",A,5130", b",V,5130")))
    assert not position.valid


@pytest.mark.parametrize("local,utc,expected", [
    ("0809231929", "055403.000", dt.datetime(2008, 9, 24, 5, 54, 3)),    # local UTC-10: next day
    ("1301080525", "212511.000", dt.datetime(2013, 1, 7, 21, 25, 11)),   # local UTC+8: previous day
    ("140527055653", "215653.00", dt.datetime(2014, 5, 26, 21, 56, 53)),
    ("13/02/27 23:40", "125952.000", dt.datetime(2013, 2, 27, 12, 59, 52)),
    ("150401165832", "31.0", dt.datetime(2015, 4, 1, 16, 58)),            # no UTC time: local, to the minute
])
def test_fix_time_puts_the_utc_time_on_the_day_nearest_the_local_time(local, utc, expected):
    position = only_position(decode(report(local=local, utc=utc)))
    assert position.fix_time == expected.replace(tzinfo=dt.UTC)


def test_fix_time_without_local_date_uses_the_day_nearest_now():
    assert gps103.resolve_fix_time(None, dt.time(23, 59, tzinfo=dt.UTC), NOW) == \
        dt.datetime(2024, 4, 30, 23, 59, tzinfo=dt.UTC)


@pytest.mark.parametrize("word,attributes", [
    ("help me", {"alarm": "sos"}),
    ("low battery", {"alarm": "lowBattery"}),
    ("move", {"alarm": "movement"}),
    ("speed", {"alarm": "overspeed"}),
    ("stockade", {"alarm": "geofence"}),
    ("ac alarm", {"alarm": "powerCut"}),
    ("door alarm", {"alarm": "door"}),
    ("sensor alarm", {"alarm": "vibration"}),
    ("accident alarm", {"alarm": "accident"}),
    ("bonnet alarm", {"alarm": "bonnet"}),
    ("footbrake alarm", {"alarm": "footBrake"}),
    ("DTC", {"alarm": "fault"}),
    ("oil1", {"alarm": "fuelLeak"}),
    ("oil 51.67", {"alarm": "fuelLeak", "fuel": 51.67}),
    ("T:+28.0", {"alarm": "temperature", "temp1": 28.0}),
    ("acc on", {"ignition": True}),
    ("acc off", {"ignition": False}),
    ("tracker", {}),
    ("vt14", {}),
    ("", {}),
    ("acc alarm", {"event": "acc alarm"}),
    ("001", {"event": "001"}),
])
def test_report_words_map_to_traccar_attributes(word, attributes):
    assert only_position(decode(report(word=word))).attributes == attributes


def test_status_tail_capture():
    """Altitude, ignition, door, fuel % and temperature after the course."""
    position = only_position(decode(STATUS_TAIL))
    assert position.attributes == {"ignition": False, "door": False, "fuel1": 51.93, "temp1": 22}
    assert isinstance(position.attributes["temp1"], int)


@pytest.mark.parametrize("tail,attributes,altitude", [
    (",-0.1,1,,,,20", {"ignition": True, "temp1": 20}, -0.1),
    (",,1,,0.00%,,", {"ignition": True, "fuel1": 0.0}, 0.0),
    (",,,,51.6,41.7,", {}, 0.0),                      # no ignition digit: no tail
    (",175.9,", {}, 175.9),
])
def test_status_tail_variants(tail, attributes, altitude):
    position = only_position(decode(report(tail=tail)))
    assert position.attributes == attributes
    assert position.altitude_m == altitude


def test_hemisphere_letters_before_the_coordinates():
    """Observed firmware: "A,N,5306.64155,E,00700.77848,speed"."""
    frame = (b"imei:353552045403597,tracker,150420050648,53.0,F,0.0,A,N,5306.64155,E,00700.77848,"
             b"0.0,,1.0,;")
    position = only_position(decode(frame))
    assert position.latitude == pytest.approx(53 + 6.64155 / 60)
    assert position.longitude == pytest.approx(7 + 0.77848 / 60)
    assert position.altitude_m == 1.0


def test_empty_hemisphere_is_positive_and_speed_still_read():
    frame = b"imei:863070010423167,tracker,1211051840,,F,104000.000,A,2220.6483,N,11407.6377,,1.5,7,"
    position = only_position(decode(frame))
    assert position.longitude == pytest.approx(114 + 7.6377 / 60)
    assert (position.speed_kn, position.course_deg) == (1.5, 7.0)


def test_coordinates_beyond_the_globe_give_no_record():
    assert decode(report().replace(b"5130.0000", b"9130.0000")).messages == ()


def test_no_gps_report_is_a_status_record_with_the_cell():
    position = only_position(decode(NO_GPS_CELL))
    assert position.outdated and not position.valid
    assert position.network == {"radioType": "gsm", "considerIp": False, "cellTowers": [
        {"cellId": 0xC9AF, "locationAreaCode": 0xFA8, "mobileCountryCode": 0, "mobileNetworkCode": 0}]}


def test_no_gps_alarm_keeps_its_alarm():
    position = only_position(decode(b"imei:359586015829802,help me,000000000,13554900601,L,;"))
    assert position.outdated and position.attributes == {"alarm": "sos"} and position.network is None


def test_obd_report_capture():
    position = only_position(decode(OBD))
    assert position.outdated
    assert position.device_time == dt.datetime(2017, 6, 5, 9, 59, 49, tzinfo=dt.UTC)
    assert position.attributes == {
        "odometer": 195874, "fuelConsumption": 370.8, "hours": 808 * 3_600_000, "obdSpeed": 66,
        "engineLoad": "30.0%", "coolantTemp": 87, "throttle": "13.0%", "rpm": 2444, "battery": 14.3}


def test_obd_report_joins_its_trouble_codes():
    frame = OBD.replace(b"14.3,,,,;", b"14.3,P0137,,U1108,;")
    assert only_position(decode(frame)).attributes["dtcs"] == "P0137 U1108"


def test_obd_report_with_a_signless_temperature_gives_no_record():
    assert decode(b"imei:865328021049167,OBD,141118115036,,,0.0,,000,0.0%,+,0.0%,00000,,,,,").messages == ()


def test_csv_dialect_with_decimal_degrees():
    frame = (b"imei:861359038609986,Equipo 1,---,------,----,214812,241018,14,1,-33.42317,-70.61930,"
             b"037,045,0600,1.2,07,1,0,---,*")
    position = only_position(decode(frame))
    assert position.fix_time == dt.datetime(2018, 10, 24, 21, 48, 12, tzinfo=dt.UTC)
    assert (position.latitude, position.longitude, position.valid) == (-33.42317, -70.6193, True)
    assert position.speed_kn == pytest.approx(37 / 1.852)
    assert position.attributes == {"rssi": 14, "hdop": 1.2, "sat": 7, "ignition": True,
                                   "charge": False}


@pytest.mark.parametrize("frame", [
    b"imei:123451234512345,L,*",
    b"imei:864180034124375,vr,0c00fa011ea05a03d726977103ad;",
    b"imei:359586015829802,tracker,0809231429,,F,062947.294,A;",
])
def test_unknown_or_truncated_reports_give_an_empty_frame(frame):
    result = decode(frame)
    assert result.messages == () and result.reply == b""


def test_report_names_its_device_for_the_session():
    s = session()
    s.decode_frame(SOS, NOW)
    assert s.unique_id == IMEI


# -- per-field corruption ---------------------------------------------------------------

@pytest.mark.parametrize("damaged", [
    b"imEi:359586015829802,tracker;",       # start marker
    b"#,imei:359586015829802,A;",            # log-on marker
    b"3595860158298x2;",                     # heartbeat digits
])
def test_damaged_start_markers_are_protocol_errors(damaged):
    with pytest.raises(ProtocolError):
        decode(damaged)


@pytest.mark.parametrize("old,new", [
    (b",F,", b",X,"),              # report type (F: fix, L: no fix)
    (b",A,22", b",Q,22"),          # validity
    (b"2234.4026", b"22x4.4026"),  # latitude digits
    (b",N,", b",Z,"),              # hemisphere
])
def test_damaged_report_fields_give_no_record(old, new):
    assert decode(SOS.replace(old, new)).messages == ()


# -- commands --------------------------------------------------------------------------

def logged_in() -> gps103.Gps103Session:
    s = session()
    s.decode_frame(LOGIN, NOW)
    return s


@pytest.mark.parametrize("command,expected", [
    (Command("positionSingle"), b"**,imei:359586015829802,B"),
    (Command("engineStop"), b"**,imei:359586015829802,J"),
    (Command("engineResume"), b"**,imei:359586015829802,K"),
    (Command("positionPeriodic", {"frequency": 30}), b"**,imei:359586015829802,C,30s"),
    (Command("positionPeriodic", {"frequency": 300}), b"**,imei:359586015829802,C,05m"),
    (Command("positionPeriodic", {"frequency": 7200}), b"**,imei:359586015829802,C,02h"),
    (Command("positionPeriodic", {"frequency": 90}), b"**,imei:359586015829802,C,90s"),
    (Command("custom", {"data": "H,060"}), b"**,imei:359586015829802,H,060"),
])
def test_commands_are_byte_exact(command, expected):
    assert logged_in().encode_command(command, NOW) == expected


@pytest.mark.parametrize("command", [
    Command("rebootDevice"),
    Command("positionPeriodic", {"frequency": 5}),
    Command("positionPeriodic", {"frequency": 301}),
    Command("custom", {"data": ""}),
    Command("custom", {"data": "B;"}),
])
def test_unsupported_commands_are_refused(command):
    with pytest.raises(UnsupportedCommand):
        logged_in().encode_command(command, NOW)


def test_command_needs_the_device_imei():
    with pytest.raises(UnsupportedCommand):
        session().encode_command(Command("positionSingle"), NOW)


# -- device side ------------------------------------------------------------------------

@pytest.mark.parametrize("alarm", [None, *gps103_device.DEVICE_WORDS])
def test_device_report_round_trip(alarm):
    """DEVICE.report decoded by a session gives back time, place, speed, course, alarm."""
    sent = DeviceReport(dt.datetime(2024, 5, 1, 23, 59, 58, tzinfo=dt.UTC), -33.8688197, -151.2092955,
                        speed_kn=12.345, course_deg=271.5, alarm=alarm)
    position = only_position(decode(gps103_device.DEVICE.report(IMEI, 1, sent)))
    assert position.fix_time == sent.fix_time
    assert position.latitude == pytest.approx(sent.latitude, abs=1e-5)
    assert position.longitude == pytest.approx(sent.longitude, abs=1e-5)
    assert position.speed_kn == pytest.approx(sent.speed_kn, abs=0.005)
    assert position.course_deg == pytest.approx(sent.course_deg, abs=0.005)
    assert position.attributes.get("alarm") == alarm


def test_device_report_refuses_unknown_alarms():
    with pytest.raises(ValueError):
        gps103_device.DEVICE.report(IMEI, 1, DeviceReport(NOW, 0, 0, alarm="nonsense"))


def test_device_login_and_heartbeat_round_trip_and_acks():
    device = gps103_device.DEVICE
    assert (device.transport, device.acks_login, device.acks_reports) == ("tcp", True, False)
    s = session()
    frames = s.receive_data(device.login(IMEI, 1) + device.heartbeat(IMEI, 2), NOW)
    assert [f.messages for f in frames] == [(Login(IMEI),), (Login(IMEI),)]
    reader = device.ack_reader()
    replies = b"".join(f.reply for f in frames)
    assert reader.receive_data(replies[:3]) == []
    assert reader.receive_data(replies[3:]) == [None, None]


def test_ack_reader_skips_commands_between_replies():
    reader = gps103_device.DEVICE.ack_reader()
    assert reader.receive_data(b"LOAD**,imei:1,BON") == [None, None]


def test_replay_gives_traccar_records():
    records = replay("gps103", [LOGIN, SOS], now=NOW)
    assert records[0] == []
    assert records[1][0]["uniqueId"] == IMEI
    assert records[1][0]["fixTime"] == "2008-09-23T06:29:47.000Z"
    assert records[1][0]["attributes"] == {"alarm": "sos"}


# -- random input ------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_frames_give_a_frame_or_protocol_error(data):
    for candidate in (data, b"imei:" + data, b"imei:1," + data, b"##," + data):
        try:
            frame = session().decode_frame(candidate, NOW)
        except ProtocolError:
            continue
        assert isinstance(frame, Frame)


_FIELD = st.sampled_from(["", "A", "V", "F", "L", "N", "S", "E", "W", "0", "1", "12.5", "-3",
                          "0809231429", "062947.294", "2234.4026", "11354.3277", "51.93%", "+22",
                          "help me", "OBD", "x"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_FIELD, max_size=22))
def test_random_report_fields_give_a_frame(fields):
    """Structured junk behind a valid prefix decodes (maybe to nothing), never crashes."""
    frame = ("imei:123456789012345," + ",".join(fields) + ";").encode()
    assert isinstance(session().decode_frame(frame, NOW), Frame)
