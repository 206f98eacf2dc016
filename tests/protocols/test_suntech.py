"""Suntech decoding: legacy, ST910, ST410, universal and zip reports, commands, device side.

Reports named in capitals are device captures from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0), as the framer
delivers them (without the ``\\r``); ST300_CMD is a shortened capture.  Zip
frames marked "built" are assembled here byte by byte, independently of the
codec.
"""

from __future__ import annotations

import datetime as dt

import pytest

from protocols import CODECS, Command, CommandResult, DeviceReport, Login, Position, ProtocolError, suntech
from protocols.base import UnsupportedCommand
from protocols.devices import suntech as suntech_device

NOW = dt.datetime(2024, 5, 1, 12, 30, 45, tzinfo=dt.UTC)
KMH = 1 / 1.852   # knots per km/h

# Captures (Traccar test suite, Apache-2.0).

SA200_STT = (b"SA200STT;317652;042;20120718;15:37:12;16d41;-15.618755;-056.083241;000.024;000.00;8;1;41548;"
             b"12.17;100000;2;1979")
ST300_STT = (b"ST300STT;205170303;12;561;20170816;09:10:34;173f53;+19.082370;-098.214287;006.776;000.00;0;"
             b"0;52982186;12.75;100000;2;6328;155747;4.2;1;0.00;0;0.00;0.00;00000000000000;0;"
             b"28F2B7600600005D:+5.2;:;:")
ST600_STT = (b"ST600STT;008084783;20;419;20180308;18:00:36;0032cc3e;736;3;445c;41;-16.530023;-068.084267;"
             b"018.640;267.99;10;1;11655;13.33;100000;2;0336;000061;4.5;0;0.00")
ST300_STT_ADC_TEMP = (b"ST300STT;205173382;07;564;20160322;23:23:18;232e19;+19.288278;-099.128750;000.122;"
                      b"000.00;9;1;478391;11.53;000100;1;9498;079324;4.3;1;0.00;0.00;0.00;00000000000000;0;"
                      b"2898E16006000058:-20.8;2861626006000039:+2.5;:")
ST300_STT_RPM = (b"ST300STT;907131077;04;706;20190227;23:59:34;cc719;-12.963490;-038.499587;000.067;000.00;"
                 b"7;1;57095;12.50;000000;1;0337;000207;0.0;1;0;012E717F010000;1")
ST300_STT_HBM_CELL = (b"ST300STT;007878646;40;319H;20250521;21:52:14;54728;-30.021829;-051.204818;000.000;"
                      b"077.61;0;0;35310247;14.33;000000;1;1306;069596;4.1;1;23675;724;5;-75;1351;1")
ST500_STT = (b"ST500STT;205450135;07;843;20170816;23:24:45;+19.338432;-099.179817;000.283;000.00;6;1;"
             b"141121;12.89;0;0;1;4659;002.795;0;001.891;611;4.0")
ST300_ALT = (b"ST300ALT;205174410;14;712;20110101;00:00:07;00000;+20.593923;-100.336716;000.000;000.00;0;0;"
             b"0;16.57;000000;81;000000;4.0;0;0.00;0000;0000;0;0")
SA200_ALV = b"SA200ALV;317652"
ST410_STT = (b"ST410STT;007638094;426;01;24153;724;4;-65;365;0;24161;724;4;365;0;0;24162;724;4;365;0;0;"
             b"24363;724;4;365;0;0;24151;724;4;365;0;0;24991;724;4;365;0;0;24373;724;4;365;0;0;3.98;1;0176;"
             b"2;016;20200106;19:18:04;-15.571860;-056.062637;000.852;238.28;6;1;201")
ST910_LOCATION = (b"ST910;Location;344506;017;20130727;14:10:00;-25.398714;-049.296818;000.187;000.00;1;"
                  b"4.32;1;1;0001")
ST910_EMERGENCY_TYPE1 = (b"ST910;Emergency;238569;528;20170403;00:02:09;7574160020;+19.661292;-099.144473;"
                         b"000.176;000.00;1;228638;1")
ST300_HTE = (b"ST300HTE;100850001;04;248;20110101;00:13:52;167559;12.28;004005;0.0;1;0;3;3;0;-22.881018;"
             b"-047.070831;-22.881018;-047.070831;000.000;000.000;0;0;3;0;0;0;01E04D44160000")
ST300_CMD = b"ST300CMD;Res;511848119;315;PresetA;NTW;0;eseye.com;user;pass;rastreamento.inviocar.com;6011"
UNIVERSAL_RES = b"RES;4309999001;04;02;TEST"
UNIVERSAL_STT = (b"STT;0560001616;BFFFFF;56;1.0.15;1;20200219;20:52:25;00008D6C;334;20;0925;24;+20.741764;"
                 b"-103.430364;0.00;0.00;19;1;00000001;00000000;2;1;1765;00008003;0.0;12.14;136598")
UNIVERSAL_ALT_MAP = (b"ALT;0840037569;FFFFFF;84;1.0.6;0;20221228;11:33:05;00004490;724;11;05D3;33;"
                     b"-22.845935;-46.322000;0.00;0.00;18;0;00000001;00000000;99;;;;08E3800F;4.1;12.37;0;0;"
                     b"0;0;4;;;;")
UNIVERSAL_ALT = (b"ALT;0950030205;3FFFFF;95;1.0.11;0;20251001;19:34:41;02F2F402;334;20;5B11;28;+25.791061;"
                 b"-100.170745;0.00;0.00;17;1;00000000;00000000;134;1;1440,360,360,360;+23.0;0002;"
                 b"AABBCCDDEEFF")
UEX_RFID = (b"ST300UEX;511248287;45;311;20220701;18:42:08;14c943;-22.975257;-043.373065;000.000;000.00;0;0;"
            b"0;12.14;100010;19;RFID:008FB2BEBA39\r\n;3E;000135;4.1;1;00000000000000;0")
UEX_FUEL_SENSORS = (b"ST600UEX;008728327;20;568;20200602;17:10:03;0bf1a893;334;20;2f19;23;+20.514492;"
                    b"-100.743221;000.033;000.00;12;1;41564973;13.17;000000;44;t_0=1C;N_0=0419.0;t_1=22;"
                    b"N_1=0001.0;Q_D=09\n\r;76;113771;4.1;1")
UEX_CAB_AVL = (b'ST300UEX;109003241;08;1026;20190425;17:36:04;04402;+04.722553;-074.052583;000.020;000.00;'
               b'10;1;0;12.04;010000;51;CabAVL"CabMensaje,0,58.5,-1.0,,,FinMensaje"FinAVL\r\n;B1;'
               b'0000000000;4.1;1')
UEX_DRIVER = (b"ST300UEX;511331307;45;311;20210420;12:41:01;12361;-01.280825;-047.931773;000.000;000.00;16;"
              b"1;0;12.54;000000;23;GTSL|6|1|0|9255143|2|;6F;000276;0.0;1;00000000000000;0")
UEX_BINARY = bytes.fromhex(
    "53543330305545583b3531313639393339383b34353b3331353b32303232303632333b31383a32343a35383b36613133"
    "32393b2d32392e3735343934373b2d3035372e3038353838353b3030302e3030303b3030302e30303b31303b313b3732"
    "3b302e30303b3030303030303b31323b0201100110011090011001100110011001100110fe3b39303b3030303030303b"
    "332e393b313b30303030303030303030303030303b30")
ZIP_STATUS = bytes.fromhex(
    "02003210511340877028813f180c170016041051290c0635652d793653000038001a30e601665e560000000100750002"
    "712704000103")
UNIVERSAL_ZIP_STATUS = bytes.fromhex(
    "81004e05200013383fffff3401000301130a0512080400000000000000000000000047f9d5846a068100722252140101"
    "00020300a8002604c1000004b000000470000025a100000000000025c4000000a6")
UNIVERSAL_ZIP_ALERT = bytes.fromhex(
    "82004d05800000553fffff360100100114020410293902ccccf102dc007b00053c00476fa18469e87f000000000b0100"
    "003b00081d00000113f3f8010000049e00000000000000001d00000113f3f801")


def decode(frame: bytes, **options) -> list:
    """The messages of one frame on a fresh session."""
    return list(suntech.CODEC.new_session(options).decode_frame(frame, NOW).messages)


def position(frame: bytes, **options) -> Position:
    """The single position record of `frame`."""
    messages = [m for m in decode(frame, **options) if isinstance(m, Position)]
    assert len(messages) == 1
    return messages[0]


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


# --------------------------------------------------------------------------
# Codec
# --------------------------------------------------------------------------

def test_codec_is_registered_on_traccars_port_for_tcp_and_udp():
    assert CODECS["suntech"] is suntech.CODEC
    assert suntech.CODEC.default_listen == ("tcp:5011", "udp:5011")
    assert suntech.CODEC.command_types == {"engineStop", "engineResume", "rebootDevice", "positionSingle",
                                           "custom"}


def test_type_codes_are_unique_enums():
    assert [h.value for h in suntech.ZipHeader] == [0x10, 0x11, 0x12, 0x13]
    assert [h.value for h in suntech.UniversalZipHeader] == [0x81, 0x82]
    assert len({t.value for t in suntech.ReportType}) == len(suntech.ReportType)


# --------------------------------------------------------------------------
# Legacy (model-prefixed) text reports
# --------------------------------------------------------------------------

def test_sa200_status_without_model_field():
    """SA200 reports have no model field: version comes right after the id."""
    p = position(SA200_STT)
    assert p.unique_id == "317652"
    assert p.fix_time == utc(2012, 7, 18, 15, 37, 12) == p.device_time
    assert (p.latitude, p.longitude, p.valid) == (-15.618755, -56.083241, True)
    assert p.speed_kn == pytest.approx(0.024 * KMH)
    assert p.network is None   # a lone legacy cell field has no MCC/MNC
    assert p.attributes == {"type": "STT", "versionFw": "042", "sat": 8, "odometer": 41548, "power": 12.17,
                            "ignition": True, "in1": False, "in2": False, "in3": False, "out1": False,
                            "out2": False, "status": 2, "index": 1979}


def test_st300_status_without_hbm_stops_after_the_message_number():
    p = position(ST300_STT)
    assert p.valid is False and p.attributes["sat"] == 0
    assert p.speed_kn == pytest.approx(6.776 * KMH)
    assert p.attributes["index"] == 6328
    assert "hours" not in p.attributes and "battery" not in p.attributes


def test_st600_five_field_cell_gives_a_tower():
    """Cell id (hex); MCC; MNC; LAC (hex); RX level -> one tower with -dBm."""
    p = position(ST600_STT)
    assert p.network == {"radioType": "gsm", "considerIp": False, "cellTowers": [
        {"cellId": 0x32CC3E, "locationAreaCode": 0x445C, "mobileCountryCode": 736, "mobileNetworkCode": 3,
         "signalStrength": -41}]}
    assert p.course_deg == 267.99
    assert p.speed_kn == pytest.approx(18.64 * KMH)


def test_hbm_adds_hours_backup_battery_and_archive():
    """HBM: hour meter in minutes (stored in ms), backup V, message type 0 = archive."""
    p = position(ST600_STT, hbm=True)
    assert p.attributes["hours"] == 61 * 60_000
    assert p.attributes["battery"] == 4.5
    assert p.attributes["archive"] is True


def test_hbm_with_adc_driver_and_temperature_sensors():
    p = position(ST300_STT_ADC_TEMP, hbm=1, includeAdc=True, includeTemp=True)
    a = p.attributes
    assert (a["adc1"], a["adc2"], a["adc3"]) == (0.0, 0.0, 0.0)
    assert a["driverUniqueId"] == "00000000000000"
    assert (a["temp1"], a["temp2"]) == (-20.8, 2.5)
    assert "temp3" not in a   # an empty sensor ":" is skipped
    assert "archive" not in a   # message type 1: real time


def test_hbm_with_rpm_then_driver():
    a = position(ST300_STT_RPM, hbm="true", includeRpm="true").attributes
    assert a["rpm"] == 0 and type(a["rpm"]) is int
    assert a["driverUniqueId"] == "012E717F010000"
    assert a["hours"] == 207 * 60_000


def test_hbm_2_reads_a_serving_cell_and_no_driver():
    p = position(ST300_STT_HBM_CELL, hbm=2, protocolType=1)
    assert p.network["cellTowers"] == [{"cellId": 23675, "locationAreaCode": 1351, "mobileCountryCode": 724,
                                        "mobileNetworkCode": 5, "signalStrength": -75}]
    assert "driverUniqueId" not in p.attributes
    assert p.attributes["battery"] == 4.1


def test_short_io_field_gives_no_io_attributes():
    """ST500 sends a one-character I/O field: no ignition/in/out guessed."""
    a = position(ST500_STT).attributes
    assert "ignition" not in a
    assert (a["status"], a["index"]) == (0, 1)


def test_alert_without_alarm_mapping_has_no_alarm():
    a = position(ST300_ALT).attributes
    assert a["type"] == "ALT" and "alarm" not in a and "index" not in a


@pytest.mark.parametrize("alert_id,alarm", [(1, "overspeed"), (41, "powerCut"), (40, "powerRestored"),
                                            (47, "hardBraking"), (50, "jamming"), (33, None)])
def test_alert_ids_map_to_traccar_alarms(alert_id, alarm):
    frame = ST300_ALT.replace(b";000000;81;", f";000000;{alert_id};".encode())
    assert position(frame).attributes.get("alarm") == alarm


@pytest.mark.parametrize("emergency_id,alarm", [(1, "sos"), (2, "parking"), (3, "powerCut"), (7, "movement"),
                                                (4, None)])
def test_emergency_ids_map_to_traccar_alarms(emergency_id, alarm):
    frame = ST300_ALT.replace(b"ST300ALT", b"ST300EMG")
    frame = frame.replace(b";000000;81;", f";000000;{emergency_id};".encode())
    assert position(frame).attributes.get("alarm") == alarm


def test_event_report_keeps_the_event_id():
    frame = ST300_ALT.replace(b"ST300ALT", b"ST300EVT").replace(b";000000;81;", b";000000;3;")
    a = position(frame).attributes
    assert a["type"] == "EVT" and a["event"] == 3 and "alarm" not in a


def test_emergency_gets_no_reply_unless_configured():
    frame = ST300_ALT.replace(b"ST300ALT", b"ST300EMG").replace(b";000000;81;", b";000000;1;")
    assert suntech.CODEC.new_session().decode_frame(frame, NOW).reply == b""
    reply = suntech.CODEC.new_session({"ackEmergency": True}).decode_frame(frame, NOW).reply
    assert reply == b"ST300CMD;205174410;02;AckEmerg\r"


def test_status_reports_get_no_reply():
    for frame in (SA200_STT, ST300_STT, UNIVERSAL_STT, ZIP_STATUS, UNIVERSAL_ZIP_STATUS):
        assert suntech.CODEC.new_session().decode_frame(frame, NOW).reply == b""


def test_keep_alive_names_the_device_without_a_record():
    session = suntech.CODEC.new_session()
    frame = session.decode_frame(SA200_ALV + b"\r", NOW)
    assert frame.messages == (Login("317652"),)
    assert session.unique_id == "317652"


def test_trip_report_is_a_status_record_with_the_driver():
    p = position(ST300_HTE)
    assert p.outdated is True
    assert p.attributes == {"driverUniqueId": "01E04D44160000"}


def test_command_answer_is_a_command_result_and_a_status_record():
    messages = decode(ST300_CMD)
    text = "315;PresetA;NTW;0;eseye.com;user;pass;rastreamento.inviocar.com;6011"
    assert messages[0] == CommandResult(text, "511848119")
    assert messages[1].outdated and messages[1].attributes == {"type": "CMD", "result": text}


def test_other_command_echoes_with_res_are_command_results():
    messages = decode(b"ST300HGD;Res;100850000;267;001;00001000000000")
    assert messages[0] == CommandResult("267;001;00001000000000", "100850000")


def test_junk_glued_before_a_report_is_dropped():
    """A line starting with junk (e.g. the tail of a damaged frame) still decodes."""
    assert position(b"0x" + SA200_STT).unique_id == "317652"


def test_unknown_text_is_a_frame_without_messages():
    assert decode(b"-Error") == []
    assert decode(b"ST300XYZ;100850000;garbage") == []


# --------------------------------------------------------------------------
# External device data (UEX)
# --------------------------------------------------------------------------

def test_uex_serial_data_is_kept_trimmed():
    a = position(UEX_RFID).attributes
    assert a["serial"] == "RFID:008FB2BEBA39"
    assert a["type"] == "UEX" and a["power"] == 12.14


def test_uex_fuel_sensor_payload_with_semicolons():
    """t_N = temperature, N_N = level (hex), Q_D = driving quality; fuel = total level."""
    a = position(UEX_FUEL_SENSORS).attributes
    assert (a["temp0"], a["fuel0"], a["temp1"], a["fuel1"]) == (0x1C, 0x419, 0x22, 1)
    assert a["drivingQuality"] == 9
    assert a["fuel"] == 1050.0 and type(a["fuel"]) is float
    assert "serial" not in a


def test_uex_fuel_gauge_payload():
    a = position(UEX_CAB_AVL).attributes
    assert a["fuel1"] == 58.5 and a["fuel"] == 58.5
    assert "fuel2" not in a   # -1.0: no sensor


def test_uex_driver_card_reader():
    a = position(UEX_DRIVER).attributes
    assert a["driverUniqueId"] == "9255143"


def test_uex_escaped_binary_data_is_kept_as_sent():
    assert position(UEX_BINARY).attributes["serial"] == \
        "\x90\x01\x10\x01\x10\x01\x10\x01\x10\x01\x10\x01\x10\xfe"


def test_uex_hbm_fields_follow_the_checksum():
    a = position(UEX_FUEL_SENSORS, hbm=True).attributes
    assert a["hours"] == 113771 * 60_000 and a["battery"] == 4.1


# --------------------------------------------------------------------------
# ST910 and ST410 families
# --------------------------------------------------------------------------

def test_st910_location():
    p = position(ST910_LOCATION)
    assert p.fix_time == utc(2013, 7, 27, 14, 10)
    assert (p.latitude, p.longitude, p.valid) == (-25.398714, -49.296818, True)
    assert p.attributes == {"versionFw": "017"}


def test_st910_emergency_with_protocol_type_1_has_odometer_and_alarm():
    p = position(ST910_EMERGENCY_TYPE1, protocolType=1)
    assert p.attributes == {"alarm": "general", "versionFw": "528", "odometer": 228638}


def test_st410_cells_first_layout():
    p = position(ST410_STT)
    assert p.fix_time == utc(2020, 1, 6, 19, 18, 4)
    assert (p.latitude, p.longitude) == (-15.57186, -56.062637)
    assert p.attributes == {"type": "STT", "versionFw": "426", "battery": 3.98, "index": 176, "status": 2,
                            "sat": 6}
    towers = p.network["cellTowers"]
    assert len(towers) == 7
    assert towers[0] == {"cellId": 24153, "locationAreaCode": 365, "mobileCountryCode": 724,
                         "mobileNetworkCode": 4, "signalStrength": -65}


# --------------------------------------------------------------------------
# Universal text reports
# --------------------------------------------------------------------------

def test_universal_status_with_assign_map():
    p = position(UNIVERSAL_STT)
    assert p.unique_id == "0560001616"
    assert p.attributes == {"type": "STT", "versionFw": "1.0.15", "rssi": 24, "sat": 19, "ignition": True,
                            "input": 1, "output": 0, "mode": 2, "reason": 1, "index": 1765,
                            "io1": "0.0", "io2": "12.14", "io16": "136598"}
    assert p.network["cellTowers"] == [{"cellId": 0x8D6C, "locationAreaCode": 0x925,
                                        "mobileCountryCode": 334, "mobileNetworkCode": 20}]


def test_universal_alert_finds_the_assign_map_after_empty_fields():
    a = position(UNIVERSAL_ALT_MAP).attributes
    assert a["archive"] is True
    assert {k: v for k, v in a.items() if k.startswith("io")} == {
        "io1": "4.1", "io2": "12.37", "io3": "0", "io4": "0", "io16": "0", "io17": "0", "io18": "4"}


def test_universal_alert_without_assign_map_numbers_the_rest():
    a = position(UNIVERSAL_ALT).attributes
    assert a["alertModifier"] == "1" and a["alertData"] == "1440,360,360,360"
    assert (a["assign1"], a["assign2"], a["assign3"]) == ("+23.0", "0002", "AABBCCDDEEFF")


def test_universal_report_map_selects_the_fields():
    """Map 0x00FC19: model, date, time, lat, lon, speed, course, sats, fix (no version, no cell)."""
    p = position(b"ALT;0123456789;00FC19;07;20240501;12:00:00;-10.5;+20.25;18.52;90.00;5;1")
    assert p.fix_time == utc(2024, 5, 1, 12)
    assert (p.latitude, p.longitude, p.speed_kn, p.course_deg) == (-10.5, 20.25, pytest.approx(10.0), 90.0)
    assert p.attributes == {"type": "ALT", "sat": 5}


def test_universal_report_without_coordinates_is_a_status_record():
    p = position(b"EMG;0123456789;000019;07;20240501;12:00:00")
    assert p.outdated is True


def test_universal_emergency_alarm():
    p = position(b"EMG;0123456789;07FC18;20240501;12:00:00;-10.5;+20.25;0;0;5;1;00000000;00000000;1")
    assert p.attributes["alarm"] == "sos"


def test_universal_result_is_a_command_result():
    messages = decode(UNIVERSAL_RES)
    assert messages[0] == CommandResult("04;02;TEST", "4309999001")
    assert messages[1].attributes == {"type": "RES", "result": "04;02;TEST"}


# --------------------------------------------------------------------------
# Zip reports
# --------------------------------------------------------------------------

def test_zip_status_capture():
    """Speed 0 + BCD 38 = 0.38 km/h; signs and fix from the satellite byte."""
    p = position(ZIP_STATUS)
    assert p.unique_id == "511340877"
    assert p.fix_time == utc(2024, 12, 23, 0, 22, 4)
    assert (p.latitude, p.longitude, p.valid) == (-12.063565, -45.793653, True)
    assert p.speed_kn == pytest.approx(0.38 * KMH)
    assert p.course_deg == pytest.approx(26.3)
    assert p.attributes["odometer"] == 23486038
    assert (p.attributes["status"], p.attributes["index"], p.attributes["battery"]) == (1, 117, 4.0)


def built_zip_alert(alert_id: int = 41) -> bytes:
    """Built: legacy zip alert (0x13) for device 205174410."""
    content = (b"\x13" + bytes.fromhex("2051744100") + b"\x0e\x02\xc8"
               + bytes([24, 5, 1, 12, 30, 45]) + b"\x01\x45\x20"
               + b"\x25\x47\x85\x19" + b"\x7e\x88\x68\x19"     # 37.478519, 126.886819
               + b"\x00\x20\x51" + b"\x01\x0e\x50"             # 32.51 km/h, 270.50 deg
               + bytes([0x80 | 0x40 | 0x20 | 9])               # fix, south, west, 9 satellites
               + (0x12345).to_bytes(4, "big") + b"\x0c\x34"    # 74565 m, 12.34 V
               + bytes([0b010001]) + bytes([alert_id])         # ignition, out1; alert id
               + (100).to_bytes(4, "big") + b"\x04\x05" + b"\x00")   # 100 min, 4.05 V, stored
    return b"\x02" + len(content).to_bytes(2, "big") + content + b"\x03"


def test_built_zip_alert_decodes_every_field():
    p = position(built_zip_alert())
    assert p.unique_id == "205174410"
    assert p.fix_time == utc(2024, 5, 1, 12, 30, 45)
    assert (p.latitude, p.longitude) == (-37.478519, -126.886819)
    assert p.speed_kn == pytest.approx(32.51 * KMH) and p.course_deg == pytest.approx(270.5)
    assert p.attributes == {"sat": 9, "odometer": 0x12345, "power": 12.34, "ignition": True, "in1": False,
                            "in2": False, "in3": False, "out1": True, "out2": False, "alarm": "powerCut",
                            "hours": 6_000_000, "battery": 4.05, "archive": True}


def test_universal_zip_status_capture():
    p = position(UNIVERSAL_ZIP_STATUS)
    assert p.unique_id == "0520001338"
    assert p.fix_time == utc(2019, 10, 5, 18, 8, 4)
    assert (p.latitude, p.longitude) == (4.717013, -74.057345)
    assert p.speed_kn == pytest.approx(1.14 * KMH) and p.course_deg == pytest.approx(87.86)
    assert p.attributes == {"versionFw": "1.0.3", "rssi": 0, "sat": 20, "ignition": True, "input": 1,
                            "output": 0}
    assert p.network is None   # an all-zero cell


def test_universal_zip_alert_carries_the_ibutton_driver():
    p = position(UNIVERSAL_ZIP_ALERT)
    assert p.attributes["driverUniqueId"] == "1d00000113f3f801"
    assert p.network["cellTowers"] == [{"cellId": 0x02CCCCF1, "locationAreaCode": 5,
                                        "mobileCountryCode": 732, "mobileNetworkCode": 123}]


def test_unknown_universal_zip_header_names_the_device_only():
    frame = b"\x85" + UNIVERSAL_ZIP_STATUS[1:]
    session = suntech.CODEC.new_session()
    assert session.decode_frame(frame, NOW).messages == ()
    assert session.unique_id == "0520001338"


# --------------------------------------------------------------------------
# Per-field corruption
# --------------------------------------------------------------------------

@pytest.mark.parametrize("damage", [
    lambda f: f.replace(b"-15.618755", b"-15.6x8755"),   # latitude: the report has no coordinates
    lambda f: f.replace(b"-15.618755", b"-95.618755"),   # latitude out of range
    lambda f: f.replace(b"15:37:12", b"25:37:12"),       # time
    lambda f: f.replace(b"20120718", b"20121318"),       # date
    lambda f: f.replace(b";8;1;41548", b";x;1;41548"),   # satellites
    lambda f: f.replace(b"12.17", b"12,17"),             # power
], ids=["lat-chars", "lat-range", "time", "date", "sats", "power"])
def test_damaged_legacy_fields_raise_or_give_no_record(damage):
    frame = damage(SA200_STT)
    try:
        messages = decode(frame)
    except ProtocolError:
        return
    assert not any(isinstance(m, Position) for m in messages)


@pytest.mark.parametrize("index,value", [(0, 0x03), (2, 0x31), (3, 0x20), (4, 0xAB), (53, 0x04)],
                         ids=["start", "length", "header", "bcd-id", "end"])
def test_damaged_zip_fields_are_protocol_errors(index, value):
    frame = bytearray(ZIP_STATUS)
    frame[index] = value
    with pytest.raises(ProtocolError):
        suntech.CODEC.new_session().decode_frame(bytes(frame), NOW)


def test_damaged_zip_bcd_coordinate_is_a_protocol_error():
    frame = bytearray(ZIP_STATUS)
    frame[23] = 0x6A   # second byte of the latitude: BCD digit A
    with pytest.raises(ProtocolError):
        suntech.CODEC.new_session().decode_frame(bytes(frame), NOW)


@pytest.mark.parametrize("index,value", [(2, 0x4F), (3, 0xFF)], ids=["length", "bcd-id"])
def test_damaged_universal_zip_fields_are_protocol_errors(index, value):
    frame = bytearray(UNIVERSAL_ZIP_STATUS)
    frame[index] = value
    with pytest.raises(ProtocolError):
        suntech.CODEC.new_session().decode_frame(bytes(frame), NOW)


def test_truncated_universal_zip_is_a_protocol_error():
    frame = UNIVERSAL_ZIP_STATUS[:40]
    frame = frame[:1] + (len(frame) - 3).to_bytes(2, "big") + frame[3:]
    with pytest.raises(ProtocolError):
        suntech.CODEC.new_session().decode_frame(frame, NOW)


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------

def session_of(frame: bytes):
    session = suntech.CODEC.new_session()
    session.decode_frame(frame, NOW)
    return session


@pytest.mark.parametrize("command_type,expected", [
    ("engineStop", b"SA200CMD;317652;02;Enable1\r"),
    ("engineResume", b"SA200CMD;317652;02;Disable1\r"),
    ("rebootDevice", b"SA200CMD;317652;02;Reboot\r"),
    ("positionSingle", b"SA200CMD;317652;02;StatusReq\r"),
])
def test_commands_use_the_devices_model_prefix_and_id(command_type, expected):
    assert session_of(SA200_STT).encode_command(Command(command_type), NOW) == expected


def test_custom_command_id_and_custom_whole_line():
    session = session_of(ST300_STT)
    assert session.encode_command(Command("custom", {"data": "PresetA"}), NOW) == \
        b"ST300CMD;205170303;02;PresetA\r"
    assert session.encode_command(Command("custom", {"data": "ST300RPT;205170303;02;60;180"}), NOW) == \
        b"ST300RPT;205170303;02;60;180\r"


def test_universal_devices_take_only_whole_custom_lines():
    session = session_of(UNIVERSAL_STT)
    with pytest.raises(UnsupportedCommand):
        session.encode_command(Command("engineStop"), NOW)
    assert session.encode_command(Command("custom", {"data": "CMD;0560001616;04;01"}), NOW) == \
        b"CMD;0560001616;04;01\r"


@pytest.mark.parametrize("command", [Command("positionPeriodic", {"frequency": 60}), Command("custom"),
                                     Command("custom", {"data": "bad\rline"}), Command("alarmArm")])
def test_unsupported_commands_are_refused(command):
    with pytest.raises(UnsupportedCommand):
        session_of(SA200_STT).encode_command(command, NOW)


def test_commands_need_a_known_device():
    with pytest.raises(UnsupportedCommand):
        suntech.CODEC.new_session().encode_command(Command("rebootDevice"), NOW)


# --------------------------------------------------------------------------
# Device side
# --------------------------------------------------------------------------

def round_trip(report: DeviceReport, serial: int = 7) -> Position:
    wire = suntech_device.DEVICE.report("205170303", serial, report)
    frames = suntech.CODEC.new_session().receive_data(wire, NOW)
    assert len(frames) == 1 and frames[0].reply == b""
    (p,) = frames[0].messages
    return p


def test_device_report_round_trip():
    report = DeviceReport(fix_time=utc(2024, 5, 1, 12, 30, 45), latitude=-23.5612345, longitude=-46.6554321,
                          speed_kn=33.3, course_deg=271.25)
    p = round_trip(report)
    assert p.unique_id == "205170303" and p.fix_time == report.fix_time and p.valid
    assert p.latitude == pytest.approx(report.latitude, abs=1e-5)
    assert p.longitude == pytest.approx(report.longitude, abs=1e-5)
    assert p.speed_kn == pytest.approx(report.speed_kn, abs=1e-3)
    assert p.course_deg == pytest.approx(report.course_deg, abs=0.01)
    assert "alarm" not in p.attributes and p.attributes["index"] == 7


def test_device_invalid_fix_round_trip():
    p = round_trip(DeviceReport(fix_time=NOW, latitude=1.0, longitude=2.0, valid=False))
    assert p.valid is False


@pytest.mark.parametrize("alarm", ["sos", "powerCut", "parking", "movement", "door", "overspeed",
                                   "vibration", "hardBraking", "jamming", "geofenceEnter", "lowPower"])
def test_device_alarm_round_trip(alarm):
    p = round_trip(DeviceReport(fix_time=NOW, latitude=10.0, longitude=20.0, alarm=alarm))
    assert p.attributes["alarm"] == alarm


def test_device_sos_is_an_emergency_report():
    wire = suntech_device.DEVICE.report("205170303", 1, DeviceReport(NOW, 1.0, 2.0, alarm="sos"))
    assert wire.startswith(b"ST300EMG;205170303;") and wire.endswith(b";1\r")


def test_device_unknown_alarm_is_refused():
    with pytest.raises(ValueError):
        suntech_device.DEVICE.report("205170303", 1, DeviceReport(NOW, 1.0, 2.0, alarm="noSuchAlarm"))


def test_device_has_no_login_and_a_keep_alive_heartbeat():
    assert suntech_device.DEVICE.transport == "tcp"
    assert (suntech_device.DEVICE.acks_login, suntech_device.DEVICE.acks_reports) == (False, False)
    assert suntech_device.DEVICE.login("205170303", 0) == b""
    heartbeat = suntech_device.DEVICE.heartbeat("205170303", 0)
    assert heartbeat == b"ST300ALV;205170303\r"
    assert suntech.CODEC.new_session().receive_data(heartbeat, NOW)[0].messages == (Login("205170303"),)


def test_device_ack_reader_yields_nothing_for_server_lines():
    reader = suntech_device.DEVICE.ack_reader()
    assert reader.receive_data(b"ST300CMD;205170303;02;AckEmerg\r") == []
    assert reader.receive_data(b"x" * 10_000) == []
