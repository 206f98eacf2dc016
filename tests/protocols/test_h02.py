"""H02 decoding: message types, status-word alarms, binary reports, replies,
commands, the device side.

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
    Position,
    ProtocolError,
    UnsupportedCommand,
    h02,
    replay,
)
from protocols.devices import h02 as h02_device
from protocols.records import position_record

NOW = dt.datetime(2024, 5, 1, 12, 30, 45, tzinfo=dt.UTC)

# Captures (Traccar test suite, Apache-2.0).
V1 = b"*HQ,4106012736,V1,224434,A,1827.3855,N,06705.7577,W,000.00,000,100117,FFFFFBFF,310,260,49101,1753,5#"
V1_SOS = (b"*HQ,353505220903211,V1,140817,A,5239.3538,N,01003.5292,E,21.03,312,221013,FFFBFFFF,"
          b"106,14, 203,1cd#")
V1_NODOT = b"*HQ,5905101893,V1,105759,A,37573392,S,145037022,E,000.00,173,280122,FF7FFBFF,,,9059e2c,8232,4#"
V1_DASHED = b"*HQ,1451316485,V1,121557,A,-23-35.3408,S,-48-2.8926,W,0.1,158,241115,FFFFFFFF#"
V1_NO_TIME = b"*HQ,353505220873067,V1,,V,4605.75732,N,01430.73863,E,0.00,0,,FFFFFFEF,125,194,  64,d3#"
V1_NO_DATE = (b"*HQ,353588020068342,V1,000000,V,0.0000,0,0.0000,0,0.00,0.00,000000,ffffffff,"
              b"000106,000002,000203,004c87,16#")
V1_ODOMETER = (b"*HQ,2130510938,V1,012632,A,0520.0663,N,10028.6324,E,0.286,023,100317,FFFFDFFF,"
               b"69129336,0,100.0,18,5141,5A20#")
V4_ANSWER = b"*TH,2020916012,V4,S20,ERROR,130305,050316,A,2212.8745,N,11346.6574,E,14.28,028,220902,FFFFFBFF#"
NBR = (b"*HQ,7401004662,NBR,160453,234,10,0,2,21580,27766,-67,21580,27766,-67,291019,FFFFFBFF,6#")
LINK = b"*HQ,1600068860,LINK,112137,20,8,67,0,0,081116,FFFFFBFF#"
V3 = (b"*HQ,355488020882405,V3,095426,74001,04,010278,045142,128,-92,010278,026311,125,,010278,"
      b"026582,125,,010278,028322,119,,02DD,0,X,090517,FFFFFBFF#")
HTBT_BATTERY = b"*HQ,135790246811220,HTBT,100#"
HTBT = b"*HQ,135790246811220,HTBT#"
SMS = b"*HQ,5226073533,SMS,ST906 V2.0\nID:5226073533\nVOLT:12.9V#"
BINARY_SHORT = bytes.fromhex("2441060116601245431311165035313006004318210e000000fffffbffff0024")
BINARY_SW = bytes.fromhex("24270517030820321418041423307879000463213792000056fffff9ffff0000")
BINARY_IMEI = bytes.fromhex(
    "2435248308419329301047591808172627335900074412294e024138feffffffff01120064ba73005ecc")
BINARY_SOS = bytes.fromhex(
    "24410600082621532131081504419390060740418306000000fffffbfdff0015060000002c02dc0c000000001f")


def decode(frame: bytes, **options) -> Frame:
    return h02.CODEC.new_session(options).decode_frame(frame, NOW)


def only_position(frame: Frame) -> Position:
    positions = [m for m in frame.messages if isinstance(m, Position)]
    assert len(positions) == 1
    return positions[0]


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


# -- codec wiring ------------------------------------------------------------------

def test_codec_is_registered_with_traccar_port():
    assert CODECS["h02"] is h02.CODEC
    assert h02.CODEC.default_listen == ("tcp:5013", "udp:5013")
    assert h02.CODEC.command_types == {"engineStop", "engineResume", "positionPeriodic", "custom"}


# -- V1 general message ------------------------------------------------------------

def test_v1_report_fields_status_and_extras():
    """Capture: time and date UTC, DDMM.MMMM, speed already in knots, io fields as strings."""
    p = only_position(decode(V1))
    assert p.fix_time == p.device_time == utc(2017, 1, 10, 22, 44, 34)
    assert p.valid and not p.outdated and p.unique_id == "4106012736"
    assert p.latitude == pytest.approx(18 + 27.3855 / 60)
    assert p.longitude == pytest.approx(-(67 + 5.7577 / 60))
    assert (p.speed_kn, p.course_deg) == (0.0, 0.0)
    assert p.attributes == {"ignition": False, "status": 0xFFFFFBFF, "io1": "310", "io2": "260",
                            "io3": "49101", "io4": "1753", "io5": "5"}


@pytest.mark.parametrize("status,alarm", [
    ("FFFFFFFF", None), ("FFFFFBFD", "sos"), ("FFFBFFFF", "sos"), ("FFF7FFFF", "powerCut"),
    ("FFFFFFFB", "overspeed"), ("FFFFFFFE", "vibration"), ("FFE7FBFF", "powerCut"),
    ("FFFFBBFF", None), ("FFFEFBFF", None),
])
def test_status_word_alarms_use_negative_logic(status, alarm):
    frame = f"*HQ,1,V1,010203,A,1000.0000,N,02000.0000,E,1.00,10,010524,{status}#".encode()
    attrs = only_position(decode(frame)).attributes
    assert attrs.get("alarm") == alarm
    assert attrs["status"] == int(status, 16)


def test_ignition_is_status_bit_10():
    on = f"*HQ,1,V1,010203,A,1000.0000,N,02000.0000,E,1.00,10,010524,{0xFFFFFFFF:08X}#".encode()
    off = f"*HQ,1,V1,010203,A,1000.0000,N,02000.0000,E,1.00,10,010524,{0xFFFFFBFF:08X}#".encode()
    assert only_position(decode(on)).attributes["ignition"] is True
    assert only_position(decode(off)).attributes["ignition"] is False


def test_sos_capture_with_padded_extras():
    p = only_position(decode(V1_SOS))
    assert p.attributes["alarm"] == "sos" and p.attributes["io3"] == "203"
    assert p.speed_kn == 21.03 and p.course_deg == 312.0


@pytest.mark.parametrize("frame,lat,lon", [
    (V1_NODOT, -(37 + 57.3392 / 60), 145 + 3.7022 / 60),
    (V1_DASHED, -(23 + 35.3408 / 60), -(48 + 2.8926 / 60)),
    (b"*HQ,1,V1,195200,A,701.8915,S,3450.3399,W,0.00,205.70,050213,ffffffff#",
     -(7 + 1.8915 / 60), -(34 + 50.3399 / 60)),
])
def test_coordinate_dialects(frame, lat, lon):
    """Captures: implied decimals, "-DD-MM.MMMM" and short degree fields."""
    p = only_position(decode(frame))
    assert (p.latitude, p.longitude) == (pytest.approx(lat), pytest.approx(lon))


def test_frame_without_time_and_date_is_stamped_now():
    p = only_position(decode(V1_NO_TIME))
    assert p.fix_time == NOW and p.valid is False


def test_frame_with_date_000000_gives_no_record():
    """Capture: a tracker without a fix since power-on sends zeros."""
    assert decode(V1_NO_DATE).messages == ()


def test_frame_with_empty_coordinates_gives_no_record():
    assert decode(b"*HQ,353505510948929,V1,,V,,N,,E,0.00,0,,FFFFF7FF,f0,a,11a0,c0c6#").messages == ()


def test_odometer_extension():
    """Capture: odometer, temperature, fuel, altitude, LAC and cell id (hex)."""
    p = only_position(decode(V1_ODOMETER))
    assert p.altitude_m == 18.0
    assert p.attributes == {"ignition": True, "status": 0xFFFFDFFF, "odometer": 69129336,
                            "temp1": 0, "fuel": 100.0}
    assert p.network["cellTowers"] == [{"cellId": 0x5A20, "locationAreaCode": 0x5141,
                                        "mobileCountryCode": 0, "mobileNetworkCode": 0}]


def test_lower_case_header_and_other_manufacturer():
    p = only_position(decode(b"*hq,356327080425330,VP1,A,2702.7245,S,15251.9311,E,0.48,0.0000,080917#"))
    assert p.fix_time == utc(2017, 9, 8) and p.latitude == pytest.approx(-(27 + 2.7245 / 60))
    assert only_position(decode(V4_ANSWER)).fix_time == utc(2002, 9, 22, 5, 3, 16)


# -- V4 confirmations and text answers ---------------------------------------------

def test_v4_confirmation_with_position_is_a_command_result():
    frame = decode(V4_ANSWER)
    assert CommandResult("S20,ERROR,130305", unique_id="2020916012") in frame.messages
    p = only_position(frame)
    assert p.attributes == {"result": "S20,ERROR,130305", "ignition": False, "status": 0xFFFFFBFF}


def test_v4_confirmation_without_position():
    """The answer to S20 as logged from a CJ730: no position appended."""
    frame = decode(b"*HQ,7340001234,V4,S20,034313,1,1#")
    assert frame.messages[0] == CommandResult("S20,034313,1,1", unique_id="7340001234")
    assert only_position(frame).outdated


def test_sms_answer():
    frame = decode(SMS)
    assert frame.messages[0] == CommandResult("ST906 V2.0\nID:5226073533\nVOLT:12.9V", "5226073533")
    assert only_position(frame).attributes == {"result": "ST906 V2.0\nID:5226073533\nVOLT:12.9V"}


# -- status messages -----------------------------------------------------------------

def test_link_heartbeat_is_an_outdated_status_record():
    p = only_position(decode(LINK))
    assert p.outdated and p.device_time == utc(2016, 11, 8, 11, 21, 37)
    assert p.attributes == {"rssi": 20, "sat": 8, "batteryLevel": 67, "steps": 0, "turnovers": 0,
                            "ignition": False, "status": 0xFFFFFBFF}


def test_heartbeat_with_and_without_battery():
    p = only_position(decode(HTBT_BATTERY))
    assert p.outdated and p.attributes == {"batteryLevel": 100}
    assert decode(HTBT).messages == ()


def test_neighbour_cells():
    p = only_position(decode(NBR))
    assert p.outdated and p.device_time == utc(2019, 10, 29, 16, 4, 53)
    assert p.network["cellTowers"] == [{"cellId": 27766, "locationAreaCode": 21580,
                                        "mobileCountryCode": 234, "mobileNetworkCode": 10,
                                        "signalStrength": -67}]


def test_v3_lbs_report():
    p = only_position(decode(V3))
    assert p.outdated and p.attributes["battery"] == 0x2DD
    towers = p.network["cellTowers"]
    assert len(towers) == 4 and towers[0] == {"cellId": 45142, "locationAreaCode": 10278,
                                               "mobileCountryCode": 740, "mobileNetworkCode": 1}


@pytest.mark.parametrize("frame", [b"*HQ,8401016597,BASE,152609,0,0,0,0,211014,FFFFFFFF#",
                                   b"*HQ,356327080425330,XT,1,100#", b"*HQ,4109198974,#",
                                   b"*HQ,1,NBR,12#", b"*HQ,1,LINK,x,y#"])
def test_unknown_or_malformed_messages_give_no_record(frame):
    assert decode(frame).messages == ()


# -- binary reports -------------------------------------------------------------------

def test_binary_short_report():
    """Capture: 5-byte BCD id, BCD time/date/coordinates, coded battery 6 = 100 %."""
    frame = decode(BINARY_SHORT)
    p = only_position(frame)
    assert p.unique_id == "4106011660"
    assert p.fix_time == utc(2016, 11, 13, 12, 45, 43)
    assert (p.latitude, p.longitude) == (pytest.approx(50.58855), pytest.approx(4.53035))
    assert p.valid and p.attributes == {"batteryLevel": 100, "ignition": False, "status": 0xFFFFFBFF}
    assert frame.reply == b""


def test_binary_flags_nibble_gives_hemispheres_and_validity():
    """Capture: flags 0x2 = valid, south, west; speed and course BCD."""
    p = only_position(decode(BINARY_SW))
    assert p.valid and p.latitude < 0 and p.longitude < 0 and p.course_deg == 56.0


def test_binary_report_with_imei():
    """Capture: an 8-byte id (15-digit IMEI and a pad nibble)."""
    p = only_position(decode(BINARY_IMEI))
    assert p.unique_id == "352483084193293"
    assert p.fix_time == utc(2017, 8, 18, 10, 47, 59)
    assert (p.speed_kn, p.course_deg) == (24.0, 138.0)


def test_binary_sos_alarm():
    assert only_position(decode(BINARY_SOS)).attributes["alarm"] == "sos"


@pytest.mark.parametrize("level,percent", [(0, None), (1, 5), (2, 10), (3, 20), (4, 60), (5, 80),
                                           (6, 100), (0x60, 96), (0xC8, None)])
def test_binary_battery_level(level, percent):
    frame = BINARY_SHORT[:16] + bytes([level]) + BINARY_SHORT[17:]   # byte 16: after the latitude
    assert only_position(decode(frame)).attributes.get("batteryLevel") == percent


def test_binary_report_without_date_gives_no_record():
    frame = BINARY_SHORT[:9] + b"\x00\x00\x00" + BINARY_SHORT[12:]
    assert decode(frame).messages == ()


# -- per-field corruption -----------------------------------------------------------------

@pytest.mark.parametrize("index,replacement", [(0, b"#"), (1, b"\xff"), (3, b"\x00")])
def test_damaged_text_header_is_a_protocol_error(index, replacement):
    """Start marker, manufacturer and separator damaged in turn."""
    with pytest.raises(ProtocolError):
        decode(V1[:index] + replacement + V1[index + 1:])


def test_damaged_message_type_gives_no_record():
    assert decode(V1.replace(b",V1,", b",Q1,")).messages == ()


@pytest.mark.parametrize("field,index", [("start", 0), ("id", 2), ("hour", 6), ("day", 9),
                                         ("latitude", 12)])
def test_damaged_binary_fields_are_protocol_errors(field, index):
    frame = BINARY_SHORT[:index] + b"\xaa" + BINARY_SHORT[index + 1:]
    with pytest.raises(ProtocolError):
        decode(frame)


def test_truncated_binary_frame_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="short"):
        decode(BINARY_SHORT[:20])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([b"", b"*HQ,", b"*HQ,123,V1,", b"*HQ,1,V4,",
                                                 b"*HQ,1,NBR,", b"*HQ,1,V3,", b"$"]))
def test_random_frames_give_a_frame_or_protocol_error(data, prefix):
    """decode_frame on random bytes: a Frame with JSON-ready records, or ProtocolError."""
    try:
        frame = decode(prefix + data)
    except ProtocolError:
        return
    for message in frame.messages:
        if isinstance(message, Position):
            position_record(message, "h02", None)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789ABCDEFNSWV.,- ", max_size=120))
def test_random_v1_fields_give_a_frame_or_protocol_error(fields):
    try:
        decode(f"*HQ,1,V1,{fields}#".encode())
    except ProtocolError:
        pass


# -- replies -------------------------------------------------------------------------------

def test_reports_get_no_reply_by_default():
    for frame in (V1, LINK, HTBT, NBR, BINARY_SHORT):
        assert decode(frame).reply == b""


def test_ack_option_confirms_position_reports_with_the_time():
    assert decode(V1, ack=True).reply == b"*HQ,4106012736,V4,V1,20240501123045#"
    assert decode(V1, ack="true").reply == b"*HQ,4106012736,V4,V1,20240501123045#"
    tagged = b"*TH,2020916012,V1,050316,A,2212.8745,N,11346.6574,E,14.28,028,220902,FFFFFBFF#"
    assert decode(tagged, ack=True).reply == b"*TH,2020916012,V4,V1,20240501123045#"
    assert decode(LINK, ack=True).reply == b""


# -- commands --------------------------------------------------------------------------------

def identified(frame: bytes = V1):
    s = h02.CODEC.new_session()
    s.decode_frame(frame, NOW)
    return s


@pytest.mark.parametrize("command,expected", [
    (Command("engineStop"), b"*HQ,4106012736,S20,123045,1,1#"),
    (Command("engineResume"), b"*HQ,4106012736,S20,123045,1,0#"),
    (Command("positionPeriodic", {"frequency": 30}), b"*HQ,4106012736,S71,123045,22,30#"),
    (Command("custom", {"data": "SCF,123045,0,0"}), b"*HQ,4106012736,SCF,123045,0,0#"),
    (Command("custom", {"data": "*HQ,4106012736,R1,123045#"}), b"*HQ,4106012736,R1,123045#"),
])
def test_commands_byte_exact(command, expected):
    assert identified().encode_command(command, NOW) == expected


def test_commands_use_the_device_manufacturer_tag():
    s = identified(b"*TH,2020916012,V1,050316,A,2212.8745,N,11346.6574,E,14.28,028,220902,FFFFFBFF#")
    assert s.encode_command(Command("engineStop"), NOW) == b"*TH,2020916012,S20,123045,1,1#"


@pytest.mark.parametrize("command", [Command("rebootDevice"), Command("positionSingle"),
                                     Command("positionPeriodic", {"frequency": 0}),
                                     Command("custom", {"data": ""}), Command("custom", {"data": "a#b"})])
def test_unsupported_commands(command):
    with pytest.raises(UnsupportedCommand):
        identified().encode_command(command, NOW)


def test_command_before_the_device_is_known():
    with pytest.raises(UnsupportedCommand, match="identified"):
        h02.CODEC.new_session().encode_command(Command("engineStop"), NOW)


# -- device side -------------------------------------------------------------------------------

@pytest.mark.parametrize("alarm", [None, "sos", "powerCut", "overspeed", "vibration"])
def test_device_report_round_trip(alarm):
    report = DeviceReport(utc(2024, 2, 29, 23, 59, 58), -33.123456, -70.654321, 12.34, 271.0,
                          True, alarm)
    frame = h02_device.DEVICE.report("860000000000001", 7, report)
    p = only_position(decode(frame))
    assert p.fix_time == report.fix_time and p.valid
    assert p.latitude == pytest.approx(report.latitude, abs=1e-5)
    assert p.longitude == pytest.approx(report.longitude, abs=1e-5)
    assert (p.speed_kn, p.course_deg) == (12.34, 271.0)
    assert p.attributes.get("alarm") == alarm
    assert p.unique_id == "860000000000001"


def test_device_refuses_alarms_it_cannot_encode():
    report = DeviceReport(NOW, 1.0, 2.0, alarm="geofenceEnter")
    with pytest.raises(ValueError):
        h02_device.DEVICE.report("1", 1, report)


def test_device_login_and_heartbeat():
    assert h02_device.DEVICE.login("123", 1) == b"" and not h02_device.DEVICE.acks_login
    assert not h02_device.DEVICE.acks_reports
    assert decode(h02_device.DEVICE.heartbeat("123", 2)).messages == ()


def test_ack_reader_reads_confirmations_and_ignores_commands():
    reader = h02_device.DEVICE.ack_reader()
    reply = decode(V1, ack=True).reply
    command = identified().encode_command(Command("engineStop"), NOW)
    assert reader.receive_data(command + reply[:7]) == []
    assert reader.receive_data(reply[7:] + reply) == [None, None]


# -- records and replay ---------------------------------------------------------------------

def test_replay_per_frame_and_as_a_stream_agree():
    frames = [V1, LINK, BINARY_SHORT, HTBT, V4_ANSWER]
    per_frame = replay("h02", frames, now=NOW)
    assert [len(r) for r in per_frame] == [1, 1, 1, 0, 1]
    assert per_frame[1][0]["outdated"] is True and per_frame[0][0]["uniqueId"] == "4106012736"
    data = b"".join(frames)
    chunks = [data[i:i + 200] for i in range(0, len(data), 200)]
    streamed = [r for item in replay("h02", chunks, stream=True, now=NOW) for r in item]
    assert streamed == [r for records in per_frame for r in records]
