"""Meitrack decoding: AAA text reports, CCE/CCC binary reports, answers, commands, device side.

Frames marked "capture" are device frames from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0); "spec" frames are
examples of the Meitrack GPRS protocol documents.  Expected bytes are written
out, with checksums from an independent byte sum.
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
    get_device_side,
    meitrack,
)
from protocols.devices import meitrack as meitrack_device
from tests.protocols.test_meitrack_framing import BINARY, COMPRESSED, REPORT, sum_checksum

NOW = dt.datetime(2024, 5, 1, 12, 30, 45, tzinfo=dt.UTC)
IMEI = "353358017784062"


def decode(frame: bytes, **options) -> Frame:
    return meitrack.CODEC.new_session(options).decode_frame(frame, NOW)


def positions(frame: Frame) -> list[Position]:
    return [m for m in frame.messages if isinstance(m, Position)]


def only_position(frame: Frame) -> Position:
    found = positions(frame)
    assert len(found) == 1
    return found[0]


def framed(text: str, start: bytes = b"$$", flag: str = "A", imei: str = IMEI) -> bytes:
    """A frame assembled independently of the codec (decimal length, byte-sum checksum)."""
    body = f",{imei},{text}*".encode("latin-1")
    head = start + flag.encode() + str(len(body) + 4).encode()
    return head + body + f"{sum_checksum(head + body):02X}".encode() + b"\r\n"


def report(fields: str) -> Position:
    return only_position(decode(framed("AAA," + fields)))


# -- codec wiring ------------------------------------------------------------------

def test_codec_is_registered_on_traccars_port():
    assert CODECS["meitrack"] is meitrack.CODEC
    assert meitrack.CODEC.default_listen == ("tcp:5020", "udp:5020")
    assert get_device_side("meitrack") is meitrack_device.DEVICE


# -- AAA text reports -------------------------------------------------------------------

def test_text_report_fields_and_units():
    """capture: AAA event 35 with cell (hex LAC/CI), I/O and analog values."""
    frame = decode(REPORT)
    assert frame.reply == b""
    p = only_position(frame)
    assert p.fix_time == dt.datetime(2014, 5, 21, 9, 53, 14, tzinfo=dt.UTC)
    assert (p.valid, p.latitude, p.longitude, p.altitude_m) == (True, -7.26676, 112.74355, 45.0)
    assert (p.speed_kn, p.course_deg) == (0.0, 275.0)
    assert p.attributes == {"event": 35, "sat": 3, "hdop": 2.7, "odometer": 1984, "runtime": "8059",
                            "input": 0, "output": 0, "adc1": 0, "adc2": 0, "adc3": 0,
                            "battery": 23.24, "power": 0.02}
    assert p.network["cellTowers"] == [{"cellId": 0xEBFE, "locationAreaCode": 0x3504,
                                        "mobileCountryCode": 510, "mobileNetworkCode": 1,
                                        "signalStrength": -22}]
    assert p.unique_id == "013777001293701"


def test_speed_is_converted_from_kmh():
    p = report("35,1.0,2.0,240501120000,A,5,15,100,90,1.0,10,0,0,0|0|0|0,0000,0000|0000|0000|0000|0000")
    assert p.speed_kn == pytest.approx(100 / 1.852)


@pytest.mark.parametrize("event, alarm", [
    (1, "sos"), (17, "lowBattery"), (18, "lowPower"), (19, "overspeed"), (20, "geofenceEnter"),
    (21, "geofenceExit"), (22, "powerRestored"), (23, "powerCut"), (28, "gpsAntennaCut"),
    (36, "tow"), (44, "jamming"), (79, "fallDown"), (129, "hardBraking"),
    (130, "hardAcceleration"), (35, None), (34, None),
])
def test_event_codes_map_to_traccar_alarms(event, alarm):
    p = report(f"{event},1.0,2.0,240501120000,A,5,15,0,0,1.0,10,0,0,0|0|0|0,0000,0000|0000")
    assert p.attributes["event"] == event
    assert p.attributes.get("alarm") == alarm


def test_io_status_is_inputs_then_outputs():
    """capture content: 8400 -> input 0x84, output 0."""
    p = report("35,1.0,2.0,240501120000,A,5,15,0,0,1.0,10,0,0,0|0|0|0,8401,0000|0000")
    assert (p.attributes["input"], p.attributes["output"]) == (0x84, 1)


def test_decimal_analog_form_is_battery_then_power():
    """capture content: 4.33|12.96|1.92|2.72|2.69 -> battery 4.33 V, power 12.96 V."""
    p = report("35,-1.264865,36.800705,211001105240,A,9,20,41.0,323,1,1697,1,0,000|00||,0000,"
               "4.33|12.96|1.92|2.72|2.69,0.000000|0|0.000000,")
    assert p.network is None
    assert {k: p.attributes[k] for k in ("battery", "power")} == {"battery": 4.33, "power": 12.96}
    assert "adc1" not in p.attributes and "eventData" not in p.attributes


def test_empty_analog_values_are_skipped_and_empty_power_is_zero():
    p = report("29,47.05522,28.893193,170914144240,V,0,7,0,0,0,132,1,2,259|2|02F8|413F,0000,"
               "000D|000C||028C|,")
    assert {k: v for k, v in p.attributes.items() if k.startswith("adc")} == {"adc1": 13, "adc2": 12}
    assert (p.attributes["battery"], p.attributes["power"]) == (6.52, 0.0)


def test_tail_event_data_fuel_and_temperature():
    """capture contents: event data, protocol version, fuel (hex 1/100 %), sensors IIVVVV."""
    p = report("35,1.0,2.0,200202020238,A,12,4,0,279,0.6,45,1,2,520|3|12DF|015273E2,0000,"
               "0000|0000|0000|018D|04F0,00000001,,1,0A8C,002134|01FF38")
    assert p.attributes["eventData"] == "00000001"
    assert p.attributes["fuel"] == 27.0
    assert (p.attributes["temp0"], p.attributes["temp1"]) == (85.0, -2.0)


def test_taximeter_trip():
    """capture: protocol 108 taximeter field, trip finished (state 11)."""
    frame = (b"$$S214,864507031219974,AAA,109,13.844643,100.644395,171207021520,A,10,28,0,31,0.8,6,"
             b"390,421327,520|0|0016|000F2DB0,8400,0000|0000|0000|018D|04C6,,,108,0000,,6,0,,,,,"
             b"11|171207091500|171207091500|78|3500|000000|000003*12")
    attrs = only_position(decode(frame)).attributes
    assert {k: v for k, v in attrs.items() if k.startswith("taximeter")} == {
        "taximeterOn": False, "taximeterStart": "171207091500", "taximeterEnd": "171207091500",
        "taximeterDistance": 78, "taximeterFare": 3500, "taximeterTrip": "000000",
        "taximeterWait": "000003"}


def test_aff_report_has_a_buffer_index_before_the_event():
    p = only_position(decode(framed("AFF,0004,1,58.588926,16.180473,140928192856,A,10,27,0,161,1.2,"
                                    "19,1648894,435695,240|24|88B9|E435,0000,|||0A22|0000")))
    assert (p.attributes["event"], p.attributes["alarm"], p.latitude) == (1, "sos", 58.588926)


@pytest.mark.parametrize("fields", [
    "35,91.0,2.0,240501120000,A",          # latitude out of range
    "35,1.0,2.0,241301120000,A",          # month 13
    "x,1.0,2.0,240501120000,A",           # event code
    "35,1.0",                              # too short
])
def test_bad_text_reports_are_protocol_errors(fields):
    with pytest.raises(ProtocolError):
        decode(framed("AAA," + fields))


# -- CCE binary reports -----------------------------------------------------------------

def test_cce_report_with_obd_values():
    """capture: CCE, one packet: fix, OBD speed/rpm/coolant, odometers, event 90."""
    frame = decode(BINARY)
    assert frame.reply == b""
    p = only_position(frame)
    assert p.fix_time == dt.datetime(2020, 9, 30, 0, 7, 45, tzinfo=dt.UTC)
    assert (p.valid, p.latitude, p.longitude, p.altitude_m) == (True, 1.3562, 103.739715, 23.0)
    assert p.speed_kn == pytest.approx(28 / 1.852)
    assert p.course_deg == 313.0
    assert p.attributes == {"sat": 9, "rssi": 27, "hdop": 7, "battery": 4.14, "power": 14.29,
                            "obdSpeed": 26, "rpm": 2244, "coolantTemp": 85, "fuelConsumption": 62,
                            "event": 90, "odometer": 3033701, "runtime": 3605922,
                            "obdOdometer": 70883000}
    assert p.network["cellTowers"] == [{"cellId": 27194890, "locationAreaCode": 31402,
                                        "mobileCountryCode": 525, "mobileNetworkCode": 3,
                                        "signalStrength": 0}]


def cce(*packets: bytes) -> bytes:
    data = b"\x00\x00\x00\x00" + len(packets).to_bytes(2, "little")
    for packet in packets:
        data += len(packet).to_bytes(2, "little") + packet
    return _framed_bytes(b"CCE," + data)


def _framed_bytes(payload: bytes) -> bytes:
    body = b"," + IMEI.encode() + b"," + payload + b"*"
    head = b"$$A" + str(len(body) + 4).encode()
    return head + body + f"{sum_checksum(head + body):02X}".encode() + b"\r\n"


def packet(one=b"", two=b"", four=b"", many=b"", counts=(0, 0, 0, 0)) -> bytes:
    return (sum(counts).to_bytes(2, "little") + bytes([counts[0]]) + one + bytes([counts[1]]) + two
            + bytes([counts[2]]) + four + bytes([counts[3]]) + many)


def test_cce_two_byte_ids_wifi_temperature_and_sos():
    """0xFE-prefixed ids, Wi-Fi (0x1D), temperature (0x2A), event 1 -> sos."""
    one = b"\x01\x01" + b"\x05\x01" + b"\xfe\x69\x61"
    four = (b"\x02" + (-27257698).to_bytes(4, "little", signed=True)
            + b"\x03" + (153030471).to_bytes(4, "little") + b"\x04" + (802578040).to_bytes(4, "little"))
    many = (b"\x1d\x08" + bytes.fromhex("2abd890a491c") + (-46).to_bytes(2, "little", signed=True)
            + b"\x2a\x03\x00" + (-250).to_bytes(2, "little", signed=True))
    p = only_position(decode(cce(packet(one, b"", four, many, (3, 0, 3, 2)))))
    assert p.fix_time == dt.datetime(2025, 6, 7, 2, 20, 40, tzinfo=dt.UTC)
    assert (p.latitude, p.longitude, p.valid) == (-27.257698, 153.030471, True)
    assert p.attributes == {"event": 1, "alarm": "sos", "batteryLevel": 97, "temp0": -2.5}
    assert p.network["wifiAccessPoints"] == [{"macAddress": "2a:bd:89:0a:49:1c",
                                              "signalStrength": -46}]


def test_cce_packet_without_time_or_place_is_a_status_record():
    p = only_position(decode(cce(packet(b"\x07\x10", counts=(1, 0, 0, 0)))))
    assert p.outdated and p.fix_time == NOW and p.attributes == {"rssi": 16}


def test_cce_several_packets_give_several_records():
    two = packet(b"\x01\x23", counts=(1, 0, 0, 0))
    assert len(positions(decode(cce(two, two, two)))) == 3


def test_cce_truncated_packet_is_a_protocol_error():
    with pytest.raises(ProtocolError, match=r"1-byte parameter count 1 needs 2 bytes, 1 left"):
        decode(cce(b"\x01\x00" + b"\x01" + b"\x07"))   # one 1-byte parameter: id, no value


# -- CCC compressed reports -------------------------------------------------------------

def test_ccc_record_and_its_confirmation():
    """capture: one CCC record; the server confirms with "CCC,1" under the same flag."""
    frame = decode(COMPRESSED)
    p = only_position(frame)
    assert p.fix_time == dt.datetime(2014, 5, 24, 4, 59, 49, tzinfo=dt.UTC)
    assert (p.valid, p.latitude, p.longitude) == (False, -7.266504, 112.743651)
    assert p.attributes == {"event": 35, "sat": 9, "hdop": 0.0, "odometer": 80083,
                            "runtime": 180092, "status": 2, "adc1": 5, "battery": 4.19, "power": 0}
    assert p.network["cellTowers"][0]["signalStrength"] == -19
    assert frame.reply == framed("CCC,1", start=b"@@", flag="X", imei="369800014090021")
    head = b"@@X27,369800014090021,CCC,1*"
    assert frame.reply == head + f"{sum_checksum(head):02X}".encode() + b"\r\n"


def test_ccc_record_size_too_small_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="record size"):
        decode(_framed_bytes(b"CCC," + bytes.fromhex("0201100001000000") + bytes(16)))


# -- answers, photos ----------------------------------------------------------------------

@pytest.mark.parametrize("frame, text", [
    (b"$$D28,353358017784062,D03,OK*F3", "D03,OK"),                  # capture
    (b"$$M28,353358017784062,C01,OK*F9\r\n", "C01,OK"),              # spec
    (b"$$z27,861451040910625,AAC,1*D3", "AAC,1"),                    # capture
])
def test_device_answers_are_command_results(frame, text):
    decoded = decode(frame)
    assert [m.text for m in decoded.messages if isinstance(m, CommandResult)] == [text]
    assert decoded.reply == b""


def test_photo_packet_gives_nothing():
    frame = decode(_framed_bytes(b"D00,180224072614_C1E109_N1U1D1.jpg,14,0,\xff\xd8\xff\xdb"))
    assert (frame.messages, frame.reply) == ((), b"")


# -- commands --------------------------------------------------------------------------

def connected_session():
    s = meitrack.CODEC.new_session()
    s.decode_frame(b"$$D28,353358017784062,D03,OK*F3", NOW)
    return s


def test_position_single_matches_the_spec_example():
    """spec: @@Q25,353358017784062,A10*6A (flag Q is chr(0x41 + 16))."""
    assert connected_session().encode_command(Command("positionSingle", id=16), NOW) == \
        b"@@Q25,353358017784062,A10*6A\r\n"


@pytest.mark.parametrize("command, text", [
    (Command("positionPeriodic", {"frequency": 60}), "A12,6"),
    (Command("positionPeriodic", {"frequency": 300}), "A12,30"),
    (Command("engineStop"), "C01,0,12222"),
    (Command("engineResume"), "C01,0,02222"),
    (Command("rebootDevice"), "F02"),
    (Command("custom", {"data": "A11,10"}), "A11,10"),
])
def test_commands_byte_exact(command, text):
    assert connected_session().encode_command(command, NOW) == framed(text, start=b"@@")


@pytest.mark.parametrize("command", [
    Command("powerOff"), Command("positionPeriodic", {"frequency": 4}),
    Command("custom", {"data": "A11*1"}), Command("custom", {"data": ""}),
])
def test_unsupported_commands_are_refused(command):
    with pytest.raises(UnsupportedCommand):
        connected_session().encode_command(command, NOW)


def test_command_before_the_device_identified_itself_is_refused():
    with pytest.raises(UnsupportedCommand):
        meitrack.CODEC.new_session().encode_command(Command("positionSingle"), NOW)


def test_command_flag_cycles_through_the_allowed_characters():
    assert {meitrack.flag_for(n) for n in range(200)} == {chr(c) for c in range(0x41, 0x7B)}


# -- device side -------------------------------------------------------------------------

@pytest.mark.parametrize("alarm", [None, "sos", "powerCut", "lowBattery", "overspeed"])
def test_device_report_round_trip(alarm):
    """Time, place (1e-5 deg), speed and course come back; the alarm as attributes["alarm"]."""
    sent = DeviceReport(dt.datetime(2024, 5, 1, 10, 0, 5, tzinfo=dt.UTC), 52.5200066, -13.404954,
                        speed_kn=31.7, course_deg=88.0, alarm=alarm)
    frame = meitrack.CODEC.new_session().decode_frame(meitrack_device.DEVICE.report(IMEI, 7, sent), NOW)
    p = only_position(frame)
    assert p.fix_time == sent.fix_time and p.valid
    assert p.latitude == pytest.approx(sent.latitude, abs=1e-5)
    assert p.longitude == pytest.approx(sent.longitude, abs=1e-5)
    assert p.speed_kn == pytest.approx(sent.speed_kn, abs=0.03)
    assert p.course_deg == pytest.approx(sent.course_deg, abs=0.5)
    assert p.attributes.get("alarm") == alarm
    assert frame.reply == b""


def test_device_side_has_no_login_no_heartbeat_and_no_report_acks():
    device = meitrack_device.DEVICE
    assert (device.transport, device.acks_login, device.acks_reports) == ("tcp", False, False)
    assert device.login(IMEI, 1) == b"" and device.heartbeat(IMEI, 2) == b""


def test_device_refuses_an_alarm_it_cannot_carry():
    with pytest.raises(ValueError, match="unsupported meitrack alarm"):
        meitrack_device.DEVICE.report(IMEI, 1, DeviceReport(NOW, 0.0, 0.0, alarm="vibration"))


def test_ack_reader_counts_ccc_confirmations_only():
    reader = meitrack_device.DEVICE.ack_reader()
    confirmation = decode(COMPRESSED).reply
    command = connected_session().encode_command(Command("positionSingle"), NOW)
    assert reader.receive_data(command + confirmation[:9]) == []
    assert reader.receive_data(confirmation[9:]) == [None]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="0123456789ABCDEF|.-AV", max_size=14), max_size=30))
def test_random_report_fields_give_a_frame_or_protocol_error(fields):
    try:
        frame = decode(framed(",".join(["AAA", *fields])))
    except ProtocolError:
        return
    assert isinstance(frame, Frame)
