"""Wialon IPS decoding: login, SD/D/B records, params, CRC, replies, commands, device side.

Frames marked "capture" are device frames from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0); the others are built
here.  CRCs in expectations come from `arc`, an independent bitwise CRC-16/ARC,
so a codec bug cannot hide in its own expectations.
"""

from __future__ import annotations

import datetime as dt
import json

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
    wialon,
)
from protocols.devices import wialon as wialon_device
from tests.protocols.corpus import CORPUS_DIR, payload_item

NOW = dt.datetime(2024, 5, 1, 12, 30, 45, tzinfo=dt.UTC)

# Captures (Traccar test suite, Apache-2.0).
DATA = (b"#D#151216;135910;5321.1466;N;04441.7929;E;87;156;265.000000;12;1.000000;241;NA;NA;NA;"
        b"odo:2:0.000000,total_fuel:1:430087,can_fls:1:201,can_taho:1:11623,can_mileage:1:140367515\r\n")
DATA_V2 = (b"#D#120319;112003;NA;NA;NA;NA;0.000;NA;NA;0;NA;NA;NA;NA;NA;101_521347:1:521246,101_158:1:510,"
           b"101_521055:1:510,101_521055_2.9:1:509,101_521056:1:3;626B\r\n")
SHORT = b"#SD#021214;065947;2237.7552;N;11404.8851;E;0.000;;170.9;5\r\n"
BLACK_BOX = b"#B#110315;045857;5364.0167;N;06127.8262;E;0;155;965;7;2.40;4;0;14.77,0.02,3.6;AB45DF01145;\r\n"


def arc(data: bytes) -> int:
    """CRC-16/ARC, bit by bit (reflected polynomial 0x8005 -> 0xA001, init 0)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def signed(packet_type: str, body: str) -> bytes:
    """A 2.0 packet: body (ending in its separator) + CRC + CRLF."""
    return f"#{packet_type}#{body}{arc(body.encode()):04X}\r\n".encode()


def session(**options) -> wialon.WialonSession:
    return wialon.CODEC.new_session(options)


def decode(frame: bytes, **options) -> Frame:
    return session(**options).decode_frame(frame, NOW)


def only_position(frame: Frame) -> Position:
    positions = [m for m in frame.messages if isinstance(m, Position)]
    assert len(positions) == 1
    return positions[0]


# -- codec wiring and CRC ---------------------------------------------------------

def test_codec_is_registered_with_traccar_port():
    assert CODECS["wialon"] is wialon.CODEC
    assert wialon.CODEC.default_listen == ("tcp:5039", "udp:5039")
    assert wialon.CODEC.command_types == {"custom"}


def test_crc_is_crc16_arc():
    assert arc(b"123456789") == 0xBB3D
    assert wialon.crc16(b"123456789") == 0xBB3D


def test_capture_crc_fields_match_the_independent_crc():
    """The 2.0 capture's "626B" is CRC-16/ARC over the fields and their last ";"."""
    body = DATA_V2[3:].rstrip(b"\r\n").rpartition(b";")[0] + b";"
    assert arc(body) == 0x626B


def test_packet_types_are_unique():
    assert len({t.value for t in wialon.PacketType}) == len(wialon.PacketType)


# -- login and ping --------------------------------------------------------------

def test_v1_login_names_the_device():
    s = session()
    frame = s.decode_frame(b"#L#123456789012345;test\r\n", NOW)
    assert frame.messages == (Login("123456789012345"),)
    assert frame.reply == b"#AL#1\r\n"
    assert (s.unique_id, s.version) == ("123456789012345", "1.1")


def test_v2_login_with_a_good_crc():
    s = session()
    frame = s.decode_frame(signed("L", "2.0;42001300083;NA;"), NOW)
    assert frame.messages == (Login("42001300083"),)
    assert frame.reply == b"#AL#1\r\n"
    assert s.version == "2.0"


def test_v2_login_with_a_bad_crc_is_answered_10():
    """Capture: its CE45 is not the CRC of its text; strict sessions refuse it."""
    s = session()
    frame = s.decode_frame(b"#L#2.0;42001300083;;CE45\r\n", NOW)
    assert (frame.messages, frame.reply) == ((), b"#AL#10\r\n")
    assert s.unique_id is None
    lenient = decode(b"#L#2.0;42001300083;;CE45\r\n", lenient=True)
    assert lenient.messages == (Login("42001300083"),)


def test_password_option_is_checked():
    assert decode(b"#L#2002;NA\r\n", password="secret").reply == b"#AL#01\r\n"
    assert decode(b"#L#2002;secret\r\n", password="secret").reply == b"#AL#1\r\n"


def test_malformed_login_is_refused():
    assert decode(b"#L#only-one-field\r\n").reply == b"#AL#0\r\n"


def test_ping_is_answered_and_carries_no_record():
    frame = decode(b"#P#\r\n")
    assert (frame.messages, frame.reply) == ((), b"#AP#\r\n")


# -- data records -----------------------------------------------------------------

def test_extended_data_capture():
    position = only_position(decode(DATA))
    assert position.fix_time == dt.datetime(2016, 12, 15, 13, 59, 10, tzinfo=dt.UTC)
    assert position.valid and not position.outdated
    assert position.latitude == pytest.approx(53 + 21.1466 / 60)
    assert position.longitude == pytest.approx(44 + 41.7929 / 60)
    assert position.speed_kn == pytest.approx(87 / 1.852)
    assert (position.course_deg, position.altitude_m) == (156.0, 265.0)
    assert position.attributes == {
        "sat": 12, "hdop": 1.0, "input": "241", "odo": 0.0, "total_fuel": 430087.0, "can_fls": 201.0,
        "can_taho": 11623.0, "can_mileage": 140367515.0}
    assert decode(DATA).reply == b"#AD#1\r\n"


def test_short_data_capture_and_reply():
    frame = decode(SHORT)
    position = only_position(frame)
    assert position.fix_time == dt.datetime(2014, 12, 2, 6, 59, 47, tzinfo=dt.UTC)
    assert (position.altitude_m, position.course_deg, position.attributes) == (170.9, 0.0, {"sat": 5})
    assert frame.reply == b"#ASD#1\r\n"


def test_v2_data_with_its_crc():
    frame = decode(DATA_V2)
    position = only_position(frame)
    assert frame.reply == b"#AD#1\r\n"
    assert (position.latitude, position.longitude, position.valid, position.outdated) == (0, 0, False, False)
    assert position.attributes["101_521055_2.9"] == 509.0


def test_missing_time_takes_now_and_missing_everything_is_outdated():
    position = only_position(decode(b"#D#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;;NA;SOS:1:0\r\n"))
    assert position.fix_time == NOW and position.outdated and not position.valid
    assert position.attributes == {"sos": 0.0}


def test_validity_needs_coordinates_and_three_satellites():
    two = SHORT.replace(b";170.9;5", b";170.9;2")
    unknown = SHORT.replace(b";170.9;5", b";170.9;NA")
    assert only_position(decode(SHORT)).valid
    assert not only_position(decode(two)).valid
    assert not only_position(decode(unknown)).valid


def test_southern_and_western_hemispheres_are_negative():
    position = only_position(decode(SHORT.replace(b";N;", b";S;").replace(b";E;", b";W;")))
    assert position.latitude < 0 and position.longitude < 0


def test_params_types_names_and_special_keys():
    frame = (b"#D#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;;NA;"
             b"EvId:1:1,Board:2:12.81,hw:3:V4.5,temp:3:18,bat:3:99\r\n")
    assert only_position(decode(frame)).attributes == {
        "evid": 1.0, "board": 12.81, "hw": "V4.5", "deviceTemp": 18, "batteryLevel": 99}


def test_cell_params_build_the_network():
    frame = (b"#D#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;;NA;mnc1:1:02,mcc1:1:250,lac1:1:5901,"
             b"cell_id1:1:45542,mnc2:1:22,mcc2:1:222,lac2:1:2222,cell_id2:1:22222,mcc3:1:333\r\n")
    position = only_position(decode(frame))
    assert position.network == {"cellTowers": [
        {"mobileCountryCode": 250, "mobileNetworkCode": 2, "locationAreaCode": 5901, "cellId": 45542},
        {"mobileCountryCode": 222, "mobileNetworkCode": 22, "locationAreaCode": 2222, "cellId": 22222}]}
    assert position.attributes == {"cell_id1": 45542.0, "cell_id2": 22222.0, "mcc3": 333.0}


def test_inputs_adc_and_ibutton_in_a_black_box():
    frame = decode(BLACK_BOX)
    position = only_position(frame)
    assert position.attributes == {
        "sat": 7, "hdop": 2.4, "input": "4", "output": "0", "adc1": "14.77", "adc2": "0.02",
        "adc3": "3.6", "driverUniqueId": "AB45DF01145", "archive": True}
    assert frame.reply == b"#AB#1\r\n"


def test_black_box_with_several_records_and_a_crc():
    record = "110315;045857;5364.0167;N;06127.8262;E;0;155;965;7"
    frame = decode(signed("B", f"{record}|{record.replace('045857', '045858')}|"))
    assert [p.fix_time.second for p in frame.messages] == [57, 58]
    assert all(p.attributes["archive"] for p in frame.messages)
    assert frame.reply == b"#AB#2\r\n"


def test_black_box_counts_only_the_records_it_could_read():
    good = "110315;045857;5364.0167;N;06127.8262;E;0;155;965;7"
    frame = decode(f"#B#{good}|garbage;1|{good}\r\n".encode())
    assert frame.reply == b"#AB#2\r\n" and len(frame.messages) == 2


def test_utf8_params():
    frame = "#B#110914;102132;5027.50728;N;03026.20369;E;1.979;288.170;NA;NA;NA;NA;NA;;NA;Батарея:3:100 %\r\n"
    position = only_position(decode(frame.encode()))
    assert position.attributes == {"батарея": "100 %", "archive": True}
    assert position.speed_kn == pytest.approx(1.979 / 1.852)


@pytest.mark.parametrize("param,attributes", [
    ("SOS:1:1", {"sos": 1.0, "alarm": "sos"}),
    ("SOS:3:1", {"sos": "1", "alarm": "sos"}),
    ("SOS:3:0", {"sos": "0"}),
    ("alarm:3:powerCut", {"alarm": "powerCut"}),
])
def test_sos_param_raises_the_sos_alarm(param, attributes):
    frame = f"#D#NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;NA;;NA;{param}\r\n".encode()
    assert only_position(decode(frame)).attributes == attributes


def test_udp_prefix_names_the_device():
    """Capture: "imei#SD#..." as sent over UDP."""
    position = only_position(decode(b"99999999#SD#270413;205601;5544.6025;N;03739.6834;E;1;2;3;4"))
    assert position.unique_id == "99999999"
    assert position.fix_time == dt.datetime(2013, 4, 27, 20, 56, 1, tzinfo=dt.UTC)


def test_v2_udp_prefix_sets_the_version():
    s = session()
    s.decode_frame(b"2.0;12345#P#\r\n", NOW)
    assert s.version == "2.0"


# -- per-field corruption -----------------------------------------------------------

def with_crc(packet_type: str, body: str, crc: int) -> bytes:
    return f"#{packet_type}#{body}{crc:04X}\r\n".encode()


@pytest.mark.parametrize("packet_type,body,code", [
    ("D", DATA_V2[3:-8].decode() + ";", "16"),
    ("SD", "021214;065947;2237.7552;N;11404.8851;E;0.000;;170.9;5;", "13"),
])
def test_damaged_crc_is_answered_with_the_checksum_code(packet_type, body, code):
    crc = arc(body.encode())
    assert decode(with_crc(packet_type, body, crc)).reply == f"#A{packet_type}#1\r\n".encode()
    frame = decode(with_crc(packet_type, body, crc ^ 0x0100))
    assert (frame.messages, frame.reply) == ((), f"#A{packet_type}#{code}\r\n".encode())
    assert len(decode(with_crc(packet_type, body, crc ^ 0x0100), lenient=True).messages) == 1


def test_damaged_black_box_crc_is_answered_without_a_count():
    body = "110315;045857;5364.0167;N;06127.8262;E;0;155;965;7|"
    frame = decode(with_crc("B", body, arc(body.encode()) ^ 1))
    assert (frame.messages, frame.reply) == ((), b"#AB#\r\n")


@pytest.mark.parametrize("old,new,code", [
    (b"151216;135910", b"151316;135910", b"0"),     # month 13
    (b"5321.1466;N", b"53x1.1466;N", b"10"),        # latitude
    (b";N;", b";Q;", b"10"),                        # hemisphere
    (b";87;156;", b";8x;156;", b"11"),              # speed
    (b";12;1.000000;", b";1x;1.000000;", b"12"),    # satellites
    (b";NA;NA;NA;odo", b";NA;NA;odo", b"-1"),       # a field missing (structure)
])
def test_damaged_fields_get_the_spec_error_codes(old, new, code):
    frame = decode(DATA.replace(old, new))
    assert (frame.messages, frame.reply) == ((), b"#AD#" + code + b"\r\n")


@pytest.mark.parametrize("damaged", [b"D#151216;1\r\n", b"#d#151216\r\n", b"#D151216\r\n", b"\x00#D#1"])
def test_damaged_start_or_type_marker_is_a_protocol_error(damaged):
    with pytest.raises(ProtocolError):
        decode(damaged)


def test_unknown_packet_type_gives_an_empty_frame_without_reply():
    frame = decode(b"#XY#whatever\r\n")
    assert (frame.messages, frame.reply) == ((), b"")


# -- driver messages and commands ------------------------------------------------------

def test_driver_message_is_a_command_result():
    frame = decode(b"#M#Engine stopped\r\n")
    assert frame.messages == (CommandResult("Engine stopped"),)
    assert frame.reply == b"#AM#1\r\n"


def test_driver_message_in_a_v2_session_checks_its_crc():
    s = session()
    s.decode_frame(signed("L", "2.0;42001300083;NA;"), NOW)
    good = signed("M", "hello;")
    assert s.decode_frame(good, NOW).messages == (CommandResult("hello"),)
    assert s.decode_frame(b"#M#hello;0000\r\n", NOW).reply == b"#AM#01\r\n"


def test_custom_command_is_a_message_to_the_driver():
    assert session().encode_command(Command("custom", {"data": "Go home"}), NOW) == b"#M#Go home\r\n"


def test_custom_command_in_a_v2_session_carries_its_crc():
    s = session()
    s.decode_frame(signed("L", "2.0;42001300083;NA;"), NOW)
    assert s.encode_command(Command("custom", {"data": "Go home"}), NOW) == signed("M", "Go home;")


@pytest.mark.parametrize("command", [Command("engineStop"), Command("positionSingle"),
                                     Command("custom", {"data": ""}),
                                     Command("custom", {"data": "two\r\nlines"})])
def test_other_commands_are_unsupported(command):
    with pytest.raises(UnsupportedCommand):
        session().encode_command(command, NOW)


# -- device side ------------------------------------------------------------------------

@pytest.mark.parametrize("alarm", [None, "sos", "powerCut", "overspeed"])
def test_device_report_round_trip(alarm):
    sent = DeviceReport(dt.datetime(2024, 5, 1, 23, 59, 58, tzinfo=dt.UTC), 59.4372155, -24.7453688,
                        speed_kn=33.3, course_deg=12.25, alarm=alarm)
    s = session()
    frames = s.receive_data(wialon_device.DEVICE.login("860000000000001", 1)
                            + wialon_device.DEVICE.report("860000000000001", 2, sent), NOW)
    assert frames[0].messages == (Login("860000000000001"),)
    position = only_position(frames[1])
    assert position.fix_time == sent.fix_time and position.valid
    assert position.latitude == pytest.approx(sent.latitude, abs=1e-5)
    assert position.longitude == pytest.approx(sent.longitude, abs=1e-5)
    assert position.speed_kn == pytest.approx(sent.speed_kn, abs=0.005)
    assert position.course_deg == pytest.approx(sent.course_deg, abs=0.005)
    assert position.attributes.get("alarm") == alarm


def test_device_invalid_report_round_trip():
    sent = DeviceReport(NOW, 1.0, 2.0, valid=False)
    assert not only_position(decode(wialon_device.DEVICE.report("1", 1, sent))).valid


def test_device_refuses_alarm_names_that_do_not_fit_a_param():
    with pytest.raises(ValueError):
        wialon_device.DEVICE.report("1", 1, DeviceReport(NOW, 0, 0, alarm="a,b"))


def test_device_ack_reader_reads_the_server_replies():
    device = wialon_device.DEVICE
    assert (device.transport, device.acks_login, device.acks_reports) == ("tcp", True, True)
    s = session()
    frames = s.receive_data(device.login("1", 1) + device.report("1", 2, DeviceReport(NOW, 1, 2))
                            + device.heartbeat("1", 3), NOW)
    replies = b"".join(f.reply for f in frames)
    assert replies == b"#AL#1\r\n#AD#1\r\n#AP#\r\n"
    reader = device.ack_reader()
    assert reader.receive_data(replies[:9]) == [None]
    assert reader.receive_data(replies[9:]) == [None, None]
    assert reader.receive_data(b"#AD#16\r\n#AL#0\r\n#M#hi\r\n#AB#3\r\n") == [None]


def test_replay_gives_traccar_records():
    records = replay("wialon", [b"#L#123;NA", SHORT], now=NOW)
    assert records[0] == []
    assert records[1][0]["uniqueId"] == "123"
    assert records[1][0]["fixTime"] == "2014-12-02T06:59:47.000Z"


@pytest.mark.skipif(not (CORPUS_DIR / "wialon.json").is_file(), reason="no wialon corpus")
def test_strict_sessions_refuse_only_the_corpus_login_with_a_made_up_crc():
    cases = json.loads((CORPUS_DIR / "wialon.json").read_text())["cases"]
    refused = [c["id"] for c in cases
               if decode(payload_item(c["payload"])).reply in (b"#AL#10\r\n", b"#AD#16\r\n")]
    assert refused == ["wialon-1"]


# -- random input ------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_random_frames_give_a_frame_or_protocol_error(data, lenient):
    for candidate in (data, b"#D#" + data, b"#B#" + data, b"#L#" + data, b"1;2#SD#" + data):
        try:
            frame = session(lenient=lenient).decode_frame(candidate, NOW)
        except ProtocolError:
            continue
        assert isinstance(frame, Frame)


_FIELD = st.sampled_from(["", "NA", "N", "S", "E", "W", "0", "3", "12.5", "-3", "151216", "135910",
                          "5321.1466", "04441.7929", "a:1:2", "SOS:1:1", "mcc1:1:250", "x", "0x9b0",
                          "|", "1,2"])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["D", "SD", "B", "L", "M"]), st.lists(_FIELD, max_size=18), st.booleans())
def test_random_fields_give_a_frame(packet_type, fields, lenient):
    """Structured junk in a well-framed packet decodes (maybe to an error answer), never crashes."""
    frame = f"#{packet_type}#{';'.join(fields)}\r\n".encode()
    assert isinstance(session(lenient=lenient).decode_frame(frame, NOW), Frame)
