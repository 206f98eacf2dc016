"""GL200 text report decoding: fields, units, dialects and fallbacks, report type by type.

Every frame here is a capture from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0) unless marked
"built".  Speeds are km/h on the wire and knots in records.
"""

from __future__ import annotations

import datetime as dt

import pytest

from protocols import Position, gl200

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
KN = 1 / 1.852


def records(text: str) -> list[Position]:
    frame = gl200.CODEC.new_session().decode_frame(text.encode("latin-1"), NOW)
    return [m for m in frame.messages if isinstance(m, Position)]


def only(text: str) -> Position:
    (record,) = records(text)
    return record


# -- GTFRI / GTRTL ------------------------------------------------------------------

def test_fri_with_four_items_gives_four_records_battery_on_the_last():
    found = records(
        "+RESP:GTFRI,1A0900,860599000306845,G3-313,0,0,4,1,2.1,0,426.7,8.611466,47.681639,"
        "20181214134603,0228,0001,077F,4812,25.2,1,5.7,34,437.3,8.611600,47.681846,20181214134619,"
        "0228,0001,077F,4812,25.2,1,4.4,62,438.2,8.611893,47.681983,20181214134633,0228,0001,077F,"
        "4812,25.2,1,4.8,78,436.6,8.612236,47.682040,20181214134648,0228,0001,077F,4812,25.2,83,"
        "20181214134702,0654$")
    assert [r.fix_time.second for r in found] == [3, 19, 33, 48]
    assert [r.course_deg for r in found] == [0, 34, 62, 78]
    assert found[1].speed_kn == pytest.approx(5.7 * KN)
    assert all(r.attributes["odometer"] == 25200.0 for r in found)   # GL300: mileage per item
    assert [r.attributes.get("batteryLevel") for r in found] == [None, None, None, 83]


def test_fri_gv_vehicle_block():
    """Power (mV -> V), mileage (km -> m), hour meter (-> ms), analog inputs
    kept as sent, battery %, device status word."""
    record = only(
        "+RESP:GTFRI,060228,862894020180553,,14827,10,1,1,3.4,199,409.6,-63.174466,-17.739317,"
        "20170407121823,0000,0000,0000,0000,00,15989.5,01070:43:13,13,180,0,220101,,,,"
        "20170407081824,9607$")
    assert record.attributes == {
        "hdop": 1.0, "power": 14.827, "odometer": 15989500.0, "hours": 3854593000, "adc1": "13",
        "adc2": "180", "batteryLevel": 0, "ignition": True, "input": 1, "in1": False, "in2": False,
        "output": 1, "out1": True, "out2": False, "type": "FRI"}
    assert record.valid and record.altitude_m == 409.6


def test_fri_with_vin_and_engine_data():
    record = only(
        "+RESP:GTFRI,360201,864251020186064,1G1JC5444R7252367,,12802,10,1,0,0.0,0,219.5,-76.661456,"
        "39.832588,20160507132235,,,,,,20460.9,00080:03:37,,,100,210000,791,,56,20160507132239,0233$")
    assert record.attributes["vin"] == "1G1JC5444R7252367"
    assert (record.attributes["rpm"], record.attributes["fuel"]) == (791, 56)
    assert record.attributes["hdop"] == 0.0 and record.valid   # accuracy 0: last known fix


def test_fri_item_without_position_is_outdated_but_keeps_its_battery():
    record = only("+RESP:GTFRI,210102,354524044925825,,1,1,1,,,,,,,,310,410,51bc,ca1dae6,10800,1,"
                  "20170318214333,0002$")
    assert record.outdated and record.valid
    assert record.attributes == {"batteryLevel": 1, "type": "FRI"}
    assert record.fix_time == dt.datetime(2017, 3, 18, 21, 43, 33, tzinfo=dt.UTC)


def test_fri_wifi_list_goes_to_the_network():
    record = only(
        "+RESP:GTFRI,423037,866884047716519,GT501,0,1,1,5,12,0.1,0,46.8,-95.559173,30.109955,"
        "20231110185836,2,0e36c9916485,-50,,,,e831cd5eb79d,-73,,,,310,10,711D,81ECF0F,00,,93,"
        "20231110185839,0005$")
    assert record.attributes == {"hdop": 12.0, "batteryLevel": 93, "type": "FRI"}
    assert record.network["wifiAccessPoints"][0] == {"macAddress": "0e:36:c9:91:64:85",
                                                     "signalStrength": -50}


def test_fri_with_an_unknown_tail_falls_back_to_the_generic_decoder():
    """A MAC where the reserved field stands: generic decoding (integer HDOP,
    battery from the last field)."""
    record = only("+RESP:GTFRI,07000D,868487001005941,,0,0,1,1,0.0,0,46.3,-77.039627,38.907573,"
                  "20120731175232,0310,0260,B44B,EBC9,0015e96913a7,-58,,100,20120731175244,0114")
    assert record.attributes == {"hdop": 1, "batteryLevel": 100, "type": "FRI"}


def test_fri_append_mask_field_is_skipped():
    """Deliberate deviation from Traccar (gl200text-38): mask 02 adds one field."""
    record = only(
        "+BUFF:GTFRI,8020040200,866314060249032,,12194,10,1,3,0.0,0,20.1,-71.596533,-33.524718,"
        "20230926200338,0730,0001,772A,052B253E,02,0,0.0,,,,,0,420000,,,,20230926200340,1549$")
    assert record.attributes["odometer"] == 0.0
    assert record.attributes["batteryLevel"] == 0
    assert "ignition" not in record.attributes and record.attributes["input"] == 0


def test_rtl_decodes_like_fri():
    record = only("+RESP:GTRTL,210102,A10000499AEF9B,,0,0,1,10,0.2,0,305.4,-76.902274,39.578517,"
                  "20161101155001,,,,,00,73,20161101155001,00A6$")
    assert record.attributes == {"hdop": 10.0, "batteryLevel": 73, "type": "RTL"}


# -- GTERI -------------------------------------------------------------------------

def test_eri_ble_sensors_and_satellites():
    record = only(
        "+RESP:GTERI,6E0A03,868589060745174,,00000100,,10,1,1,0.0,0,1509.0,-90.544928,14.584461,"
        "20250307182819,0704,0001,13A7,000B60AB,01,12,358.6,,,,,100,1A0000,0,2,00,6,5,0E7109BB,"
        "283F,SENTEMP1,7805412CF2DD,1,3466,24,36,24.91,100,01,6,2,,083F,SENTEMP2,7805412CF25C,0,,,,,"
        "20250307182820,1ABC$")
    attrs = record.attributes
    assert (attrs["sat"], attrs["odometer"], attrs["batteryLevel"]) == (12, 358600.0, 100)
    assert (attrs["tag1Id"], attrs["tag1Temp"], attrs["tag1Humidity"], attrs["tag1Battery"]) == \
        ("7805412CF2DD", 24.0, 36, 100)
    assert attrs["tag2Id"] == "7805412CF25C" and "tag2Temp" not in attrs
    assert record.network["cellTowers"][0]["cellId"] == 0x000B60AB


def test_eri_one_wire_temperatures_on_a_gv200():
    """GV200: inputs and outputs are two separate bytes; 1-Wire value in 1/16 degC."""
    record = only(
        "+RESP:GTERI,040A00,862894022579562,gv200,00000002,,10,1,1,96.1,180,749.7,39.222692,"
        "24.165463,20210225065756,0420,0004,759C,3360,00,15529.8,,,2789,,01,00,2,2,282BD47A0B000063,"
        "1,FFE2,281FDD5D0B000057,1,FFC8,20210225065800,6974$")
    assert record.attributes == {"hdop": 1.0, "odometer": 15529800.0, "adc2": 2.789, "input": 1,
                                 "output": 0, "temp1": -1.875, "temp2": -3.5, "type": "ERI"}
    assert record.speed_kn == pytest.approx(96.1 * KN)


def test_eri_fuel_inputs_and_fuel_sensor():
    fuel_inputs = only(
        "+BUFF:GTERI,6E0A03,868589060742171,,00000005,,10,1,1,0.0,0,225.6,-90.795241,14.261515,"
        "20250301071037,0704,0001,10B9,00105915,01,12,0.0,,F0,F0,,100,1A0201,0,,0,0,20250301071038,"
        "062C$")
    assert (fuel_inputs.attributes["fuel1"], fuel_inputs.attributes["fuel2"]) == (0, 0)
    assert fuel_inputs.attributes["in1"] and fuel_inputs.attributes["out1"]
    sensor = only(
        "+RESP:GTERI,250C02,868789023691057,,00000019,,10,1,1,0.0,196,2258.0,-99.201807,19.559242,"
        "20180214002957,0334,0003,235B,7F8D,00,6786.7,,,,100,110000,1,0394,1,4,100.0,100.0,"
        "20180214003006,C72B$")
    assert sensor.attributes["fuel"] == 100.0


def test_eri_power_is_reported_even_when_zero():
    record = only("+RESP:GTERI,C30303,860201068142036,,00000100,0,0,1,1,0.0,0,219.7,8.111111,"
                  "50.111111,20251221144733,,,,,,97,1,32.4,20251221144735,18B6$")
    assert record.attributes == {"hdop": 1.0, "power": 0.0, "batteryLevel": 97, "type": "ERI"}


# -- single-item reports -----------------------------------------------------------

def test_ignition_on_with_satellites_and_mileage():
    record = only("+BUFF:GTIGN,6E0202,868589060169789,ra79,379,1,0.0,105,532.2,-70.616413,"
                  "-33.393457,20240610201712,0730,0001,333A,00CFA301,01,11,,0.0,20240610201713,3AE2$")
    assert record.attributes == {"hdop": 1.0, "ignition": True, "sat": 11, "odometer": 0.0,
                                 "type": "IGN"}


def test_ignition_off():
    record = only("+RESP:GTIGF,8020050502,867488060278727,,509,1,0.0,184,32.6,14.003446,42.654554,"
                  "20240219124629,0222,0001,0FAD,0497F715,00,,0.0,20240219124630,FD2F$")
    assert record.attributes["ignition"] is False


def test_driver_id_switches_warning_data_and_accessory():
    assert only("+RESP:GTIDA,06020A,862170013895931,,,D2C4FBC5,1,1,1,0.8,0,22.2,117.198630,"
                "31.845229,20120802121626,0460,0000,5663,2BB9,00,0.0,,,,,20120802121627,008E$"
                ).attributes["driverUniqueId"] == "D2C4FBC5"
    assert only("+RESP:GTLSW,300500,860599002636595,,0,1,0,0.0,0,2886.5,-78.467145,-0.165335,"
                "20180518221818,,,,,,20180518221819,B6FF$").attributes["in1"] is True
    assert only("+RESP:GTTSW,1A0100,135790246811220,,1,0,0,4.3,92,70.0,121.354335,31.222073,"
                "20090214013254,0460,0000,18d8,6141,00,20100214093254,11F0$").attributes["in2"] is False
    assert only("+RESP:GTDAR,F10406,865284049582228,,4,0,,,1,18.5,0,129.4,114.015430,22.537279,"
                "20210922004634,0460,0000,27BD,0DFC,,,,20210922004635,082B$"
                ).attributes["warningType"] == 4
    assert only("+RESP:GTDAT,270B01,867162027893742,gv300w,1,,,>I:5014|DB|<,0,37.6,184,1940.4,"
                "-101.041169,22.143452,20240726234344,0334,0020,2F03,BDB2E4B,00,,,,,20240726234346,"
                "4CFE$").attributes["data"] == ">I:5014|DB|<"
    accessory = only("+RESP:GTBID,C20105,866833040163013,GV350M,1,0,000A,B80EA11FF800,2934,0,0.0,0,"
                     "1506.5,-99.192686,18.932709,20221026025339,0334,0020,0232,029D4E02,,"
                     "20221026181026,9F1D$")
    assert (accessory.attributes["accessoryMac"], accessory.attributes["accessoryVoltage"]) == \
        ("B80EA11FF800", 2.934)


# -- CAN / OBD ---------------------------------------------------------------------

def test_can_report_fields_by_mask_and_validity_from_accuracy():
    record = only(
        "+RESP:GTCAN,4B0201,867995030004314,,00,1,C07FFFFF,,2,H982769,30263.00,1266,69,82,H0,P69.20,"
        ",0,2037.40,243.93,45.56,74.33,13115,,C00,,0,,,0,68.3,99,42.5,-69.099503,18.445614,"
        "20190417233605,0370,0002,5A3D,EB42,00,20190417183607,BD76$")
    assert not record.valid                      # GPS accuracy 0
    assert record.attributes == {
        "ignition": True, "obdOdometer": 982769, "fuelUsed": 30263.0, "rpm": 1266, "obdSpeed": 69,
        "coolantTemp": 82, "fuel": 69.2, "throttle": 0, "hours": 7334640000, "drivingTime": 243.93,
        "idleHours": 45.56, "idleFuelConsumption": 74.33, "axleWeight": 13115, "indicators": 3072,
        "doors": 0, "type": "CAN"}


def test_can_report_without_gps_is_outdated():
    record = only("+RESP:GTCAN,310701,863286023712855,,10,0,003FFFFF,,2,H46358,12305.50,601,0,83,,"
                  "P53.00,,0,2749.15,0.19,2.80,,,,40,,0,,,20181110103016,2945$")
    assert record.outdated and record.attributes["indicators"] == 64


def test_obd_report():
    record = only(
        "+RESP:GTOBD,1F0109,864251020135483,4T1BE46KX7U018210,gv500,0,78FFFF,4T1BE46KX7U018210,1,"
        "13411,981B81C0,787,3,43,,921,463,1,10,0300030103030304001200310351035203530354,20,55,,1286,"
        "0,6.5,74,21.6,3.379710,6.529714,20150813074824,0621,0030,51C0,A2B3,00,0.0,20150813074828,"
        "A7E9$")
    assert record.attributes == {
        "odbConnect": True, "rpm": 787, "obdSpeed": 3, "temp1": 43, "dtcsClearedDistance": 921,
        "dtcsNumber": 10, "dtcsCodes": "0300030103030304001200310351035203530354", "throttle": 20,
        "obdOdometer": 0, "hdop": 0.0, "type": "OBD"}


# -- status reports ----------------------------------------------------------------

def test_inf_power_battery_and_analog_inputs():
    record = only(
        "+RESP:GTINF,6E0202,868589060187625,RA82,11,89883030000091225018,41,0,1,12349,,4.15,0,1,0,0,"
        "20240328231013,0,0,0,0,00,00,+0000,0,20240328231015,7D4F")
    assert record.outdated and not record.valid
    assert record.attributes == {
        "ignition": False, "motion": False, "iccid": "89883030000091225018", "rssi": 41,
        "power": 12.349, "battery": 4.15, "charge": True, "adc1": 0, "adc2": 0, "adc3": 0,
        "type": "INF"}


def test_inf_mileage_instead_of_power_on_gl300w():
    record = only("+RESP:GTINF,210102,A10000499AEF9B,,41,,0,0,0,15.0,9,3.87,0,1,1,0,0,20161101140211,"
                  "72,,,,,20161101140211,00A3$")
    assert (record.attributes["odometer"], record.attributes["power2"]) == (15000.0, 0.009)


def test_inf_with_vin_before_the_name():
    """Deliberate deviation from Traccar (gl200text-94): the VIN shifts the fields."""
    record = only("+RESP:GTINF,2D0300,A1000043D20139,1G1JC5444R7252367,,11,,31,0,1,12986,,4.16,0,2,,,"
                  "20170802145640,,,,,,+0000,0,20170802145643,CD5A$")
    assert record.attributes == {"vin": "1G1JC5444R7252367", "ignition": False, "motion": False,
                                 "rssi": 31, "power": 12.986, "battery": 4.16, "type": "INF"}


def test_inf_without_protocol_version_gives_no_record():
    """Pre-2012 GT300 layout (IMEI first): not decoded."""
    assert records("+RESP:GTINF,359464030073766,8938003990320469804f,18,99,100,1,0,+2.00,0,"
                   "20131018084015,00EE,0103090402") == []


def test_versions_power_events_cells_wifi_and_data():
    assert only("+RESP:GTVER,1A0800,860599000773978,GL300,GL300,0A03,0103,20161007041531,10F8$"
                ).attributes == {"deviceType": "GL300", "versionFw": 2563, "versionHw": 259,
                                 "type": "VER"}
    assert only("+RESP:GTPFA,F50201,866425030235982,GL300M,20190208124849,0BD4$").attributes == \
        {"alarm": "powerOff", "type": "PFA"}
    cells = only("+RESP:GTGSM,400201,862365030034940,STR,0234,0030,0870,2469,19,,0234,0030,0870,35ee,"
                 "18,,,,,,,,,,,,,,,,,,,,,,,,,,0234,0030,0870,35ef,17,,20170215220049,008D$")
    assert {t["cellId"] for t in cells.network["cellTowers"]} == {0x2469, 0x35EE, 0x35EF}
    wifi = only("+RESP:GTWIF,210102,354524044484948,,1,08626693fb98,-36,,,,,,,,97,20170119071300,"
                "05E3$")
    assert wifi.attributes["batteryLevel"] == 97
    assert wifi.network["wifiAccessPoints"] == [{"macAddress": "08:62:66:93:fb:98",
                                                 "signalStrength": -36}]
    fuel = only("+RESP:GTDTT,410502,864802030541621,,,,1,35,45637561747261636b0d0a434f4d422c302c39"
                "342e302c2d312e302c2c2c4844430d0a,20230421034626,EA2E$")
    assert fuel.attributes == {"fuel": 94.0, "type": "DTT"}


# -- generic position reports ------------------------------------------------------

def test_generic_report_alarm_battery_and_cell():
    record = only("+RESP:GTSTT,060228,862894020178276,,21,0,0.0,0,411.3,-63.169745,-17.776330,"
                  "20160319132220,0736,0003,6AD4,5BAA,00,20160319092223,1FBD$")
    assert record.attributes == {"hdop": 0, "batteryLevel": 0, "alarm": "movement", "type": "STT"}
    assert record.network["cellTowers"] == [{"cellId": 0x5BAA, "locationAreaCode": 0x6AD4,
                                            "mobileCountryCode": 736, "mobileNetworkCode": 3}]


@pytest.mark.parametrize("report,alarm", [("10", "hardBraking"), ("11", "hardAcceleration"),
                                          ("12", "hardCornering")])
def test_harsh_behaviour_from_the_report_type(report, alarm):
    record = only(f"+RESP:GTHBM,0F0100,135790246811220,,,{report},1,1,4.3,92,70.0,121.354335,"
                  "31.222073,20090214013254,0460,0000,18d8,6141,00,2000.0,20090214093254,11F0$")
    assert record.attributes["alarm"] == alarm


@pytest.mark.parametrize("report,alarm", [("01", "geofenceEnter"), ("00", "geofenceExit")])
def test_geofence_enter_and_exit(report, alarm):
    """built: GV300 GTGEO, report id 0, type 1 = enter / 0 = exit."""
    record = only(f"+RESP:GTGEO,060100,135790246811220,,0,{report},1,1,4.3,92,70.0,121.354335,"
                  "31.222073,20090214013254,0460,0000,18d8,6141,00,2000.0,20090214093254,11F0$")
    assert record.attributes["alarm"] == alarm


def test_non_movement_and_input_reports():
    assert only("+RESP:GTNMR,210102,A10000458356CE,,0,1,1,9,0.0,8,190.7,-85.765865,42.894837,"
                "20160316123202,,,,,60,30,20160316123202,0137$").attributes == \
        {"motion": True, "hdop": 9, "batteryLevel": 30, "type": "NMR"}
    assert only("+RESP:GTDIS,270302,867162025086950,,,21,1,1,0.0,81,117.8,-116.862025,32.453497,"
                "20180309084516,0334,0020,2B24,52CA916,00,1286.2,20180309084517,357E$"
                ).attributes["in2"] is True


def test_old_layout_without_protocol_version():
    record = only("+RESP:GTTRI,862370030005908,1,0,99,1,0.0,354,18.5,18.821100,-34.084002,"
                  "20170607152024,0655,0001,00DD,1CAE,00,0103010100,20170607172115,3E7D$")
    assert record.unique_id == "862370030005908"
    assert (record.latitude, record.longitude) == (-34.084002, 18.8211)


def test_report_without_fix_but_with_a_cell_is_outdated():
    record = only("+BUFF:GTSTC,410301,864802030022424,,,0,,,,,,,0228,0002,4EE8,1BFF489,00,"
                  "20181207134332,EC90$")
    assert record.outdated and record.network["cellTowers"][0]["cellId"] == 0x1BFF489


def test_report_without_fix_or_cell_gives_no_record():
    """built: a configuration answer carries nothing to store."""
    assert records("+RESP:GTCID,1A0102,135790246811220,,898600810906F8048812,20100214093254,11F0$") \
        == []
