"""Teltonika decoding: hello, Codec 8 / 8E / 16 / 7 records, IO names, Codec 12/13/14,
UDP, replies, commands, options and the device side.

Frames marked "capture" are device frames from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0); frames marked "spec" are
the examples of Teltonika's public Codec documentation; the rest are assembled here
with an independent CRC so that a codec bug cannot hide in its own expectations.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from pathlib import Path

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
    teltonika,
)
from protocols.devices import teltonika as teltonika_device
from protocols.records import position_record

NOW = dt.datetime(2024, 5, 1, 12, 30, 45, tzinfo=dt.UTC)
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "teltonika.json"

# Captures (Traccar test suite, Apache-2.0).
HELLO = bytes.fromhex("000f313233343536373839303132333435")
CODEC8 = bytes.fromhex(
    "000000000000004508010000015eb70a86d00024089d4d21dee3860137005f12005f000e06ef01f00150011503c8"
    "00450108b5000bb6000642382718005fcd057ace19d3430f57440000000001000002bf")
CODEC8E_VIN = bytes.fromhex(
    "00000000000000818e0100000166e368a510000f0d8b5b20961c35008d010308000000000014000900ef0000f001"
    "00500100150400c800004501001e00002500002900000a00b5000800b60007004230dc0018000000430fcb004400"
    "5f001103de001200e50013001200240000000000000001010000113141314a43353434345237323532333637010000"
    "5e99")
CODEC16 = bytes.fromhex(
    "000000000000009f100100000164d855401800d5e3b744ec11c762023b011a060000000007200a01000001050001"
    "0600010d00010e00010f00011600011700011800011f001301010000010700000108000001090000010a0000010b"
    "0000010c000001100000011100000112000001130000011400000115000001190000011a0000011b0000011c0000"
    "011d0000011e000003010200000000010300000000010400000000000100000d3b")
CODEC7 = bytes.fromhex(
    "000000000000003107024c61410b013f4231c2c141d0beb9003d000005006483ff4c6140eb013f4231c2c141d0be"
    "b9003d000005006483ff02000041df")
BEACONS = bytes.fromhex(
    "00000000000000858e0200000174431aadc100061d888f21000e8a0032002e0c000001810001000000000000000000"
    "010181001711210102030405060708090a0b0c0d0e0f10020b010ad000000174431a389100061d888f21000e8a00"
    "33002e0d000001810001000000000000000000010181001711210102030405060708090a0b0c0d0e0f10020b010a"
    "d2020000492b")
TAGS = bytes.fromhex(
    "00000000000000768e010000018fdc4b27cb015b3e33ceefa529030009013f0e000002240001000000000000000000"
    "0102240049010f0001c60106babbf36300550202806d0f0001ca01063456555565690202806b0f0001d101064679"
    "75425450020280690b0001c90106fa54ba8d00550b0001cf0106cabbf36300550100005455")
IBUTTON = bytes.fromhex(
    "000000000000009f080400000159738f76b8012e13b796110ab27600d700000b00004e01000000014e0000000000"
    "00000000000159738f6ee8012e13b796110ab27600d700000a00004e01000000014e01000b00791c179300000159"
    "738f6b00012e13b796110ab27600d700000a00004e01000000014e000000000000000000000159738f5f48012e13"
    "b796110ab27600d700000b00004e01000000014e01000b00791c17930400009671")
RESPONSE_TEXT = bytes.fromhex(
    "000000000000002d0c01060000002523464d323d3236323033323736313732313339362c32363230332c30372e30"
    "322e30350d0a0100009a2e")
RESPONSE_BINARY = bytes.fromhex("00000000000000100c010600000008010300010015d5c5010000d988")
AXLES = bytes.fromhex(
    "000000000000004f0c01060000004755555555777730362e343b30342e323b30302e303b30302e303b30302e303b"
    "30302e303b30302e303b30302e303b30312e333b30302e303b31302e373b30302e303b5353530d0a010000e371")
CAMERA = bytes.fromhex("00000000000000090c010d00000001000100000cd8")
ZERO_LENGTH = bytes.fromhex(   # capture with length and CRC fields zeroed by hand
    "0000000000000000080100000113fc208dff00209cca800f14f650006f00d60400040004030101150316030001"
    "460000015d000100000000")

# Examples of Teltonika's Codec documentation (spec).
SPEC_TCP = bytes.fromhex(
    "000000000000003608010000016B40D8EA30010000000000000000000000000000000105021503010101425E0F01"
    "F10000601A014E0000000000000000010000C7CF")
SPEC_UDP = bytes.fromhex(
    "003DCAFE0105000F33353230393330383634303336353508010000016B4F815B3001000000000000000000000000"
    "0000000103021503010101425DBC000001")
SPEC_GETINFO = bytes.fromhex("000000000000000F0C010500000007676574696E666F0100004312")


def crc_arc(data: bytes) -> int:
    """CRC-16/ARC bit by bit (independent of the codec)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def packet(data: bytes) -> bytes:
    """A TCP packet around `data` (codec id .. final count), built independently."""
    return b"\x00" * 4 + struct.pack(">I", len(data)) + data + struct.pack(">I", crc_arc(data))


def messages(data: bytes, codec: int, kind: int, payloads: list[bytes]) -> bytes:
    """Codec 12/13/14 data: codec, quantity, (type, size, payload)..., quantity."""
    body = b"".join(bytes([kind]) + struct.pack(">I", len(p)) + p for p in payloads)
    return packet(bytes([codec, len(payloads)]) + body + bytes([len(payloads)]) + data)


def decode(frame: bytes, **options) -> Frame:
    return teltonika.CODEC.new_session(options).decode_frame(frame, NOW)


def positions(frame: Frame) -> list[Position]:
    return [m for m in frame.messages if isinstance(m, Position)]


def only_position(frame: Frame) -> Position:
    found = positions(frame)
    assert len(found) == 1
    return found[0]


# -- wiring -------------------------------------------------------------------------

def test_codec_is_registered_on_traccars_port():
    codec = CODECS["teltonika"]
    assert codec is teltonika.CODEC
    assert codec.default_listen == ("tcp:5027", "udp:5027")
    assert codec.command_types == {"engineStop", "engineResume", "rebootDevice", "positionSingle",
                                   "custom"}


def test_crc_is_crc16_arc():
    """Check value of CRC-16/ARC (IBM) over "123456789" is 0xBB3D."""
    assert crc_arc(b"123456789") == 0xBB3D
    assert teltonika.crc16_ibm(b"123456789") == 0xBB3D


def test_captures_and_spec_examples_carry_good_crcs():
    for frame in (CODEC8, CODEC8E_VIN, CODEC16, CODEC7, BEACONS, TAGS, SPEC_TCP, SPEC_GETINFO):
        assert crc_arc(frame[8:-4]) == int.from_bytes(frame[-4:], "big")


# -- hello ------------------------------------------------------------------------

def test_hello_names_the_device_and_is_accepted_with_0x01():
    s = teltonika.CODEC.new_session()
    frame = s.decode_frame(HELLO, NOW)
    assert frame.messages == (Login("123456789012345"),)
    assert frame.reply == b"\x01"
    assert s.unique_id == "123456789012345"


def test_records_after_the_hello_belong_to_its_imei():
    records = replay("teltonika", [HELLO, CODEC8], now=NOW)
    assert records[0] == [] and records[1][0]["uniqueId"] == "123456789012345"


# -- Codec 8 / 8E / 16 records ----------------------------------------------------

def test_codec8_record_and_its_record_count_ack():
    """Capture: time in ms, 1e-7 degrees, km/h -> knots, IO names, ack = count (4 bytes)."""
    frame = decode(CODEC8)
    p = only_position(frame)
    assert p.fix_time == dt.datetime(2017, 9, 25, 3, 17, 54, tzinfo=dt.UTC) == p.device_time
    assert p.valid and not p.outdated
    assert (p.latitude, p.longitude) == pytest.approx((56.8255366, 60.4544333), abs=1e-9)
    assert (p.altitude_m, p.course_deg) == (311.0, 95.0)
    assert p.speed_kn == pytest.approx(95 / 1.852)
    assert p.attributes == {
        "priority": 0, "sat": 18, "event": 0, "ignition": True, "motion": True, "io80": 1, "rssi": 3,
        "io200": 0, "io69": 1, "pdop": 1.1, "hdop": 0.6, "power": 14.375, "io24": 95, "io205": 1402,
        "io206": 6611, "battery": 3.927, "io68": 0}
    assert frame.reply == b"\x00\x00\x00\x01"


def test_spec_codec8_example():
    """Spec: one record, no fix (0 satellites), ack 00000001."""
    frame = decode(SPEC_TCP)
    p = only_position(frame)
    assert p.fix_time == dt.datetime(2019, 6, 10, 10, 4, 46, tzinfo=dt.UTC)
    assert p.valid is False
    assert p.attributes == {"priority": 1, "sat": 0, "event": 1, "rssi": 3, "in1": True,
                            "power": 24.079, "operator": 24602}
    assert frame.reply == bytes.fromhex("00000001")


def test_codec8_extended_variable_length_vin_and_axes():
    """Capture: 2-byte ids and counts; VIN (256) as a variable-length element."""
    p = only_position(decode(CODEC8E_VIN))
    assert p.attributes["vin"] == "1A1JC5444R7252367"
    assert (p.attributes["axisX"], p.attributes["axisY"], p.attributes["axisZ"]) == (990, 229, 18)
    assert p.attributes["power"] == 12.508 and p.attributes["ignition"] is False


def test_codec16_two_byte_ids_and_generation_type():
    """Capture: Codec 16 record with 32 zero elements with ids 256..287."""
    frame = decode(CODEC16)
    p = only_position(frame)
    assert (p.latitude, p.longitude, p.altitude_m, p.course_deg) == pytest.approx(
        (-33.4379166, -70.64967, 571.0, 282.0))
    assert p.attributes["io256"] == 0 and p.attributes["io287"] == 0
    assert len(p.attributes) == 3 + 32
    assert frame.reply == b"\x00\x00\x00\x01"


def test_codec7_gh3000_float_coordinates_and_cell():
    """Capture: GH3000 records: time since 2007, float lat/lon, LAC + cell id."""
    frame = decode(CODEC7)
    first, second = positions(frame)
    assert first.fix_time == dt.datetime(2013, 7, 31, 22, 30, 35, tzinfo=dt.UTC)
    assert second.fix_time == dt.datetime(2013, 7, 31, 22, 30, 3, tzinfo=dt.UTC)
    assert (first.latitude, first.longitude) == pytest.approx((44.4401893, 26.0931262), abs=1e-6)
    assert first.altitude_m == 61.0 and first.attributes == {"sat": 5}
    assert first.network["cellTowers"] == [{"cellId": 33791, "locationAreaCode": 100,
                                            "mobileCountryCode": 0, "mobileNetworkCode": 0}]
    assert frame.reply == b"\x00\x00\x00\x02"


def test_ibutton_driver_id_is_read_least_significant_byte_first():
    """Capture: io78 01000b00791c1793 -> 93171C79000B0001; zero means no driver."""
    records = positions(decode(IBUTTON))
    assert "driverUniqueId" not in records[0].attributes
    assert records[1].attributes["driverUniqueId"] == "93171C79000B0001"
    assert all("io78" not in r.attributes for r in records)


def test_beacon_list_385():
    """Capture: iBeacon entries (flags 0x21: UUID, major, minor, RSSI)."""
    p = positions(decode(BEACONS))[0]
    assert p.attributes == {"priority": 0, "sat": 12, "event": 385,
                            "beacon1Uuid": "0102030405060708090a0b0c0d0e0f10", "beacon1Major": 523,
                            "beacon1Minor": 266, "beacon1Rssi": -48}


def test_ble_tag_list_548():
    """Capture: tags as (kind, length, value) items: RSSI, id, EYE voltage code."""
    attrs = only_position(decode(TAGS)).attributes
    assert (attrs["tag1Rssi"], attrs["tag1Id"], attrs["tag1Voltage"]) == (-58, "babbf3630055", 3090)
    assert attrs["tag5Id"] == "cabbf3630055" and "tag5Voltage" not in attrs


def _record8(elements: dict[int, list[tuple[int, bytes]]], event: int = 0, sats: int = 7,
             speed_kmh: int = 40, sixteen: bool = False) -> bytes:
    """A Codec 8 record (extended dialect when `sixteen`), built by hand."""
    head = struct.pack(">QB", 1_700_000_000_000, 0) + struct.pack(">iihHBH", 100_000_000, 500_000_000,
                                                                     10, 90, sats, speed_kmh)
    groups = (1, 2, 4, 8, 16) if sixteen else (1, 2, 4, 8)
    io = bytes([event, sum(len(v) for v in elements.values())])
    for size in groups:
        group = elements.get(size, [])
        io += bytes([len(group)]) + b"".join(bytes([i]) + value for i, value in group)
    return head + io


def _avl8(*records: bytes) -> bytes:
    return packet(b"\x08" + bytes([len(records)]) + b"".join(records) + bytes([len(records)]))


def test_fmb_model_names_analog_inputs_and_takes_speed_from_element_24():
    frame = _avl8(_record8({2: [(9, b"\x30\x39"), (24, b"\x00\x05")], 1: [(247, b"\x01")]}))
    plain = only_position(decode(frame))
    fmb = only_position(decode(frame, modelOverride="fmb920"))
    assert plain.attributes["io9"] == 12345 and plain.attributes["io24"] == 5
    assert plain.attributes["io247"] == 1 and plain.speed_kn == pytest.approx(40 / 1.852)
    assert fmb.attributes["adc1"] == 12.345 and "io24" not in fmb.attributes
    assert fmb.attributes["alarm"] == "accident"
    assert fmb.speed_kn == pytest.approx(5 / 1.852)


def test_fmb_iccid_from_an_eight_byte_element_11():
    frame = _avl8(_record8({8: [(11, (89883030000066932).to_bytes(8, "big"))]}))
    assert only_position(decode(frame, modelOverride="FMC130")).attributes["iccid"] == "89883030000066932"
    assert only_position(decode(frame)).attributes["io11"] == 89883030000066932


def test_extended_option_reads_a_group_of_sixteen_byte_values():
    value = bytes(range(16))
    frame = _avl8(_record8({1: [(1, b"\x01")], 16: [(203, value)]}, sixteen=True))
    p = only_position(decode(frame, extended=True))
    assert p.attributes["io203"] == value.hex() and p.attributes["in1"] is True
    with pytest.raises(ProtocolError):
        decode(frame)     # without the option the 16-byte group is left over


def test_green_driving_and_alarm_elements_become_alarms():
    frame = _avl8(_record8({1: [(253, b"\x02"), (254, b"\x21"), (236, b"\x01")]}, event=253))
    attrs = only_position(decode(frame)).attributes
    assert attrs["alarm"] == "hardBraking,sos" and attrs["io254"] == 33 and "io253" not in attrs


def test_value_types_follow_the_element_size():
    """1/2/4-byte values unsigned, 8-byte signed (Java long), axes signed."""
    frame = _avl8(_record8({2: [(17, b"\xff\xe5"), (100, b"\xff\xff")], 4: [(113, b"\xff\xfd\x8c\x85")],
                            8: [(105, b"\xff" * 8)]}))
    attrs = only_position(decode(frame)).attributes
    assert (attrs["axisX"], attrs["io100"], attrs["io113"], attrs["io105"]) == (-27, 65535,
                                                                                 4294806661, -1)


def test_no_satellites_means_an_invalid_fix():
    assert only_position(decode(_avl8(_record8({}, sats=0)))).valid is False


def test_lenient_mode_accepts_hand_edited_length_and_crc():
    """Capture with zeroed length and CRC: strict refuses it, lenient decodes it."""
    with pytest.raises(ProtocolError, match="length"):
        decode(ZERO_LENGTH)
    p = only_position(decode(ZERO_LENGTH, lenient=True))
    assert (p.latitude, p.longitude) == pytest.approx((25.3032016, 54.7146368))


def test_record_counts_must_agree_in_strict_mode():
    record = _record8({})
    frame = packet(b"\x08\x01" + record + b"\x02")
    with pytest.raises(ProtocolError, match="counts"):
        decode(frame)
    assert len(positions(decode(frame, lenient=True))) == 1


# -- per-field corruption -----------------------------------------------------------

def _corrupt(frame: bytes, index: int) -> bytes:
    return frame[:index] + bytes([frame[index] ^ 0x5A]) + frame[index + 1:]


@pytest.mark.parametrize("field,index", [("preamble", 0), ("preamble", 3), ("length", 7),
                                         ("codec", 8), ("count", 9), ("record", 20),
                                         ("trailing count", -5), ("crc", -1), ("crc", -2)])
def test_each_damaged_field_is_a_protocol_error(field, index):
    """Preamble, length, codec id, counts, record and CRC damaged in turn."""
    with pytest.raises(ProtocolError):
        decode(_corrupt(CODEC8, index))


def test_damaged_hello_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        decode(HELLO[:-1] + b"x")
    with pytest.raises(ProtocolError):
        decode(b"\x00\x10" + HELLO[2:])


# -- Codec 12 / 13 / 14 ----------------------------------------------------------

def test_text_response_is_a_command_result_and_a_status_record():
    """Capture: Codec 12 type 6 text; CR LF dropped; no reply."""
    frame = decode(RESPONSE_TEXT)
    text = "#FM2=262032761721396,26203,07.02.05"
    assert frame.messages[0] == CommandResult(text)
    status = only_position(frame)
    assert status.outdated and status.valid and status.attributes == {"type": 6, "result": text}
    assert status.fix_time == NOW and frame.reply == b""


def test_spec_getinfo_response():
    frame = decode(bytes.fromhex(
        "00000000000000900C010600000088494E493A323031392F372F323220373A3232205254433A323031392F372F"
        "323220373A3533205253543A32204552523A312053523A302042523A302043463A302046473A3020464C3A3020"
        "54553A302F302055543A3020534D533A30204E4F4750533A303A3330204750533A31205341543A302052533A33"
        "2052463A36352053463A31204D443A30010000C78F"))
    assert frame.messages[0].text.startswith("INI:2019/7/22 7:22 RTC:2019/7/22 7:53")


def test_binary_response_is_reported_as_hex():
    frame = decode(RESPONSE_BINARY)
    assert frame.messages[0] == CommandResult("010300010015d5c5")


def test_axle_scale_report():
    """Capture: "UUUUww" + 12 tonnages + "SSS" through the serial port."""
    attrs = only_position(decode(AXLES)).attributes
    assert attrs["type"] == 6 and attrs["axle1"] == 6.4 and attrs["totalTruck"] == 10.7
    assert "result" not in attrs


def test_camera_file_packets_are_ignored():
    frame = decode(CAMERA)
    assert frame.messages == () and frame.reply == b""


def test_codec13_message_carries_the_device_time():
    sent = int(dt.datetime(2024, 4, 30, tzinfo=dt.UTC).timestamp())
    frame = decode(messages(b"", 0x0D, 0x05, [struct.pack(">I", sent) + b"hello server"]))
    assert frame.messages[0] == CommandResult("hello server")
    assert only_position(frame).device_time == dt.datetime(2024, 4, 30, tzinfo=dt.UTC)


def test_codec14_ack_and_nack():
    imei = bytes.fromhex("0352093081452251")
    ack = decode(messages(b"", 0x0E, 0x06, [imei + b"Ver:03.25.14"]))
    assert ack.messages[0] == CommandResult("Ver:03.25.14")
    assert decode(messages(b"", 0x0E, 0x11, [imei])).messages == ()


def test_unknown_codec_gives_an_empty_frame_without_reply():
    frame = decode(packet(b"\x42\x01\x00\x01"))
    assert frame.messages == () and frame.reply == b""


# -- UDP --------------------------------------------------------------------------

def test_spec_udp_datagram_and_its_ack():
    """Spec: packet id CAFE, AVL packet id 05, one record -> 0005 CAFE 01 05 01."""
    s = teltonika.CODEC.new_session()
    (frame,) = s.receive_datagram(SPEC_UDP, NOW)
    p = only_position(frame)
    assert p.unique_id == "352093086403655" == s.unique_id
    assert p.fix_time == dt.datetime(2019, 6, 13, 6, 23, 26, tzinfo=dt.UTC)
    assert frame.reply == bytes.fromhex("0005CAFE010501")


def test_udp_length_must_match_the_datagram():
    with pytest.raises(ProtocolError, match="UDP length"):
        teltonika.CODEC.new_session().receive_datagram(SPEC_UDP + b"\x00", NOW)


def test_device_udp_builder_round_trip():
    record = teltonika_device.device_record(NOW, 1.5, -2.5, speed_kmh=10, course_deg=45)
    datagram = teltonika_device.device_udp("490154203237518", 0x0102, 7, [record, record])
    (frame,) = teltonika.CODEC.new_session().receive_datagram(datagram, NOW)
    assert len(positions(frame)) == 2 and frame.reply == bytes.fromhex("0005010201" "0702")


# -- commands ---------------------------------------------------------------------

def _expected_command(text: str) -> bytes:
    payload = text.encode("ascii")
    return packet(b"\x0c\x01\x05" + struct.pack(">I", len(payload)) + payload + b"\x01")


def test_spec_codec12_getinfo_command():
    command = Command("custom", {"data": "getinfo"})
    assert teltonika.CODEC.new_session().encode_command(command, NOW) == SPEC_GETINFO


@pytest.mark.parametrize("kind,text", [("engineStop", "setdigout 1"), ("engineResume", "setdigout 0"),
                                       ("rebootDevice", "cpureset"), ("positionSingle", "getgps")])
def test_commands_are_codec12_texts(kind, text):
    encoded = teltonika.CODEC.new_session().encode_command(Command(kind, id=9), NOW)
    assert encoded == _expected_command(text)


@pytest.mark.parametrize("command", [Command("positionPeriodic", {"frequency": 60}),
                                     Command("custom", {"data": ""}), Command("custom", {"data": "é"}),
                                     Command("alarmArm")])
def test_unsupported_commands_are_refused(command):
    with pytest.raises(UnsupportedCommand):
        teltonika.CODEC.new_session().encode_command(command, NOW)


def test_device_response_decodes_to_the_command_result():
    frame = decode(teltonika_device.device_response("DOUT1:1 Timeout:INFINITY"))
    assert frame.messages[0] == CommandResult("DOUT1:1 Timeout:INFINITY")


# -- device side ------------------------------------------------------------------

@pytest.mark.parametrize("alarm", [None, "sos", "hardBraking", "hardAcceleration", "hardCornering"])
def test_device_report_round_trip(alarm):
    """DEVICE.report decoded by a session gives back time, place, speed, course, alarm."""
    fix = dt.datetime(2024, 2, 29, 23, 59, 58, 250_000, tzinfo=dt.UTC)
    report = DeviceReport(fix, 48.8566, -2.3522, speed_kn=27.0, course_deg=359.4, alarm=alarm)
    s = teltonika.CODEC.new_session()
    s.decode_frame(teltonika_device.DEVICE.login("356307042441013", 1), NOW)
    frame = s.decode_frame(teltonika_device.DEVICE.report("356307042441013", 2, report), NOW)
    p = only_position(frame)
    assert p.fix_time == fix and p.valid
    assert (p.latitude, p.longitude) == pytest.approx((48.8566, -2.3522), abs=1e-6)
    assert p.speed_kn == pytest.approx(27.0, abs=0.5 / 1.852) and p.course_deg == 359.0
    assert p.attributes.get("alarm") == alarm
    assert frame.reply == b"\x00\x00\x00\x01"


def test_device_report_invalid_fix_and_unknown_alarm():
    invalid = DeviceReport(NOW, 1.0, 2.0, valid=False)
    assert only_position(decode(teltonika_device.DEVICE.report("1", 1, invalid))).valid is False
    with pytest.raises(ValueError, match="powerCut"):
        teltonika_device.DEVICE.report("1", 1, DeviceReport(NOW, 1.0, 2.0, alarm="powerCut"))


def test_device_heartbeat_is_an_unanswered_ping():
    frame = decode(teltonika_device.DEVICE.heartbeat("1", 1))
    assert frame.messages == () and frame.reply == b""


def test_ack_reader_yields_one_token_per_server_reply():
    """0x01 hello accept, 4-byte counts: one None each; a command yields none."""
    s = teltonika.CODEC.new_session()
    hello = s.decode_frame(teltonika_device.DEVICE.login("356307042441013", 1), NOW).reply
    report = DeviceReport(NOW, 10.0, 20.0)
    ack = s.decode_frame(teltonika_device.DEVICE.report("356307042441013", 2, report), NOW).reply
    command = s.encode_command(Command("rebootDevice"), NOW)
    stream = hello + ack + command + ack
    reader = teltonika_device.DEVICE.ack_reader()
    tokens = [token for i in range(len(stream)) for token in reader.receive_data(stream[i:i + 1])]
    assert tokens == [None, None, None]
    assert reader.commands == [command]


def test_ack_reader_refuses_a_damaged_command():
    command = teltonika.command_frame("getgps")
    with pytest.raises(ProtocolError, match="CRC"):
        teltonika_device.DEVICE.ack_reader().receive_data(command[:-1] + b"\x00")


def test_device_side_flags():
    device = teltonika_device.DEVICE
    assert (device.transport, device.acks_login, device.acks_reports) == (
        "tcp", True, True)


# -- records, replay, corpus strictness ------------------------------------------------

def test_position_record_shape():
    record = position_record(only_position(decode(CODEC8)), "teltonika", "123456789012345")
    assert record["fixTime"] == "2017-09-25T03:17:54.000Z" and "outdated" not in record
    status = position_record(only_position(decode(RESPONSE_TEXT)), "teltonika", None)
    assert status["outdated"] is True and status["deviceTime"] is None


@pytest.mark.skipif(not CORPUS.is_file(), reason="no teltonika corpus")
def test_strict_mode_refuses_exactly_the_damaged_corpus_frames():
    """Strict sessions refuse a corpus frame iff its length field or CRC is wrong."""
    cases = json.loads(CORPUS.read_text())["cases"]
    mismatched = []
    for case in cases:
        frame = bytes.fromhex(case["payload"]["hex"])
        damaged = frame[:4] == b"\0\0\0\0" and (
            len(frame) != int.from_bytes(frame[4:8], "big") + 12
            or crc_arc(frame[8:-4]) != int.from_bytes(frame[-4:], "big"))
        try:
            settings_ = (case.get("decoder_config") or {}).get("settings") or {}
            teltonika.CODEC.new_session(settings_).decode_frame(frame, NOW)
            accepted = True
        except ProtocolError:
            accepted = False
        if accepted == damaged:
            mismatched.append(case["id"])
    assert not mismatched


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([0x07, 0x08, 0x8E, 0x10, 0x0C, 0x0D, 0x0E, 0x55]), st.binary(max_size=200),
       st.sampled_from([{}, {"modelOverride": "FMB130"}, {"extended": True}, {"lenient": True}]))
def test_any_data_under_a_valid_envelope_decodes_or_is_a_protocol_error(codec, data, options):
    """Well-formed packets of every codec with random content raise nothing but
    ProtocolError, and what they give is JSON-ready."""
    try:
        frame = decode(packet(bytes([codec]) + data), **options)
    except ProtocolError:
        return
    for message in frame.messages:
        if isinstance(message, Position):
            json.dumps(position_record(message, "teltonika", None))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_random_frames_give_a_frame_or_protocol_error(data, lenient):
    for candidate in (data, b"\x00\x00\x00\x00" + data, b"\x00\x0f" + data):
        try:
            frame = teltonika.CODEC.new_session({"lenient": lenient}).decode_frame(candidate, NOW)
        except ProtocolError:
            continue
        assert isinstance(frame, Frame)
