"""Text (ASCII) @Track reports: dispatch by report type and the decoders of
the status reports and of every position report without a layout of its own.

Report types with their own decoder: FRI/RTL, ERI, IGN/IGF/VGN/VGF, IDA,
LSW/TSW, DAR, DAT, BAA/BID (module `reports`), CAN/OBD (module `vehicle`),
and here INF (device information), VER (versions), PNA/PFA (power on/off),
GSM (cell list), WIF (Wi-Fi list), DTT (transparent data).  Every other
report (SOS, SPD, GEO, TOW, STT, BPL, HBM, NMR, ...) goes through
`decode_other`, which finds the first GPS item anywhere in the frame and
names the alarm from the report type; a frame a specific decoder does not
recognise falls back to it too.  "+ACK:" frames are command answers
(GTHBD is the heartbeat).
"""

from __future__ import annotations

import binascii
import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from protocols.base import CommandResult, Message
from protocols.gl200 import reports, vehicle
from protocols.gl200.common import TextMessage, outdated, position
from protocols.gl200.fields import (
    DIGITS,
    HEX,
    MAC,
    SMALL_INT,
    VIN,
    cell_tower,
    field,
    find_gps,
    gps_item,
    mac_address,
    milli,
    to_int,
)
from protocols.values import add_alarm, network

Decoder = Callable[[TextMessage, dt.datetime], "list[Message] | None"]

ALARMS = {
    "SOS": "sos", "SPD": "overspeed", "TOW": "tow", "BPL": "lowBattery", "STT": "movement",
    "SWG": "geofence", "TMP": "temperature", "TEM": "temperature", "JDR": "jamming",
    "JDS": "jamming", "MPN": "powerRestored", "MPF": "powerCut", "EPN": "powerRestored",
    "EPF": "powerCut", "CRA": "accident", "IDL": "idle", "PNA": "powerOn", "PFA": "powerOff",
}
"""Alarm named by the report type alone (Traccar's alarm vocabulary)."""

_HARSH = {"0": "hardBraking", "1": "hardAcceleration", "2": "hardCornering"}


# --------------------------------------------------------------------------
# Generic position report
# --------------------------------------------------------------------------

def _report_attributes(msg: TextMessage, fields: list[str], index: int, attrs: dict[str, Any]) -> None:
    """Attributes taken from the report id/type field, two before the GPS
    item (after it: the item count)."""
    report = field(fields, index - 2)
    kind = report[-1:]
    if msg.type == "HBM":
        add_alarm(attrs, _HARSH.get(kind))
    elif msg.type == "GEO" and kind in ("0", "1"):
        add_alarm(attrs, "geofenceEnter" if kind == "1" else "geofenceExit")
    elif msg.type == "NMR":
        attrs["motion"] = report == "1"
    elif msg.type == "DIS" and len(report) == 2 and report[0].isdigit():
        attrs[f"in{report[0]}"] = kind == "1"
    elif msg.type == "IGL":
        attrs["ignition"] = kind == "1"
    elif msg.type == "EPS" and DIGITS.fullmatch(field(fields, index - 3)):
        attrs["power"] = milli(fields[index - 3])


def _hdop_value(text: str) -> int | float:
    return int(text) if DIGITS.fullmatch(text) else float(text)


def decode_other(msg: TextMessage, now: dt.datetime) -> list[Message]:
    """Any position report: the first GPS item in the frame, its cell, the
    battery % when it is the last field before the send time, the alarm of
    the report type.  Without a GPS item but with a cell: an outdated
    record; with neither: no record."""
    fields, stop = list(msg.fields), msg.send_index
    index = find_gps(fields, msg.body, stop - 6)
    if index is None:
        return _unlocated_other(msg, fields, now)
    fix = gps_item(fields, index)
    assert fix is not None
    attrs: dict[str, Any] = {}
    _report_attributes(msg, fields, index, attrs)
    if fix.hdop:
        attrs["hdop"] = _hdop_value(fix.hdop)
    cell_end = min(index + 11, stop)
    tower = cell_tower(fields, index + 7) if index + 11 <= stop else None
    tail = fields[cell_end:stop]
    if tail and SMALL_INT.fullmatch(tail[-1]):
        attrs["batteryLevel"] = int(tail[-1])
    add_alarm(attrs, ALARMS.get(msg.type))
    attrs["type"] = msg.type
    return [position(msg, fix, attrs, now, network=network([tower] if tower else []))]


def _unlocated_other(msg: TextMessage, fields: list[str], now: dt.datetime) -> list[Message]:
    """A report whose GPS fields are empty: a cell block after three empty
    fields (longitude, latitude, time) still places it."""
    for index in range(msg.body + 3, msg.send_index - 3):
        if fields[index - 3:index] == ["", "", ""] and (tower := cell_tower(fields, index)):
            attrs: dict[str, Any] = {}
            add_alarm(attrs, ALARMS.get(msg.type))
            attrs["type"] = msg.type
            return [outdated(msg, attrs, now=now, network=network([tower]))]
    return []


# --------------------------------------------------------------------------
# Status reports
# --------------------------------------------------------------------------

def _inf_state(state: str, attrs: dict[str, Any]) -> None:
    """Motion state: first digit 1 ignition off / 2 on (4: no ignition
    sense), second digit 1 = at rest, anything else moving or towed."""
    if not re.fullmatch(r"[0-9A-Fa-f]{2}", state):
        return
    if state[0] in "12":
        attrs["ignition"] = state[0] == "2"
    attrs["motion"] = state[1] != "1"


def _inf_adc(fields: list[str], start: int, stop: int, attrs: dict[str, Any]) -> None:
    """Analog inputs of the GV310-style INF tail (after the last fix time):
    reserved, three analog inputs, input, output, time zone, DST."""
    tail = fields[start:stop]
    if len(tail) == 8 and re.fullmatch(r"[+-]\d{4}", tail[6]):
        for number, value in enumerate(tail[1:4], 1):
            if DIGITS.fullmatch(value):
                attrs[f"adc{number}"] = int(value)


def decode_inf(msg: TextMessage, now: dt.datetime) -> list[Message] | None:
    """GTINF: [VIN], name, motion state, ICCID, RSSI, BER, external power
    flag, external power (mV; a mileage in km on GL300W), second power (mV),
    backup battery (V), reserved, charging, ..., last fix time, ..."""
    if msg.version is None:
        return []
    fields, stop = list(msg.fields), msg.send_index
    vin_first = VIN.fullmatch(field(fields, msg.body)) is not None and msg.body + 2 < stop
    state = msg.body + 2 if vin_first else msg.body + 1
    attrs: dict[str, Any] = {"vin": fields[msg.body]} if vin_first else {}
    _inf_state(field(fields, state), attrs)
    if field(fields, state + 1):
        attrs["iccid"] = fields[state + 1]
    if DIGITS.fullmatch(field(fields, state + 2)):
        attrs["rssi"] = int(fields[state + 2])
    power = field(fields, state + 5)
    if re.fullmatch(r"\d+\.\d+", power):
        attrs["odometer"] = float(power) * 1000
    elif DIGITS.fullmatch(power):
        attrs["power"] = milli(power)
    if DIGITS.fullmatch(field(fields, state + 6)):
        attrs["power2"] = milli(fields[state + 6])
    if re.fullmatch(r"\d+(?:\.\d+)?", field(fields, state + 7)):
        attrs["battery"] = float(fields[state + 7])
    if field(fields, state + 9) == "1":
        attrs["charge"] = True
    last_fix = next((k for k in range(state + 10, stop) if re.fullmatch(r"\d{14}", fields[k])), None)
    if last_fix is not None:
        _inf_adc(fields, last_fix + 1, stop, attrs)
    attrs["type"] = msg.type
    return [outdated(msg, attrs, now=now)]


def decode_ver(msg: TextMessage, now: dt.datetime) -> list[Message] | None:
    """GTVER: device type, firmware and hardware version (hex)."""
    fields = list(msg.fields)
    attrs: dict[str, Any] = {}
    if field(fields, msg.body + 1):
        attrs["deviceType"] = fields[msg.body + 1]
    for key, offset in (("versionFw", 2), ("versionHw", 3)):
        value = to_int(field(fields, msg.body + offset), 16)
        if value is not None:
            attrs[key] = value
    attrs["type"] = msg.type
    return [outdated(msg, attrs, now=now)]


def decode_power(msg: TextMessage, now: dt.datetime) -> list[Message] | None:
    """GTPNA / GTPFA: the device powered on / off."""
    return [outdated(msg, {"alarm": ALARMS[msg.type], "type": msg.type}, now=now)]


def decode_gsm(msg: TextMessage, now: dt.datetime) -> list[Message] | None:
    """GTGSM: fix type, then up to six neighbour cells and the serving cell,
    each MCC, MNC, LAC, cell id, RSSI, reserved."""
    fields, stop = list(msg.fields), msg.send_index
    towers = []
    for index in range(msg.body + 1, stop - 5, 6):
        tower = cell_tower(fields, index)
        if tower is not None:
            if DIGITS.fullmatch(fields[index + 4]):
                tower["signalStrength"] = -int(fields[index + 4])
            towers.append(tower)
    return [outdated(msg, {"type": msg.type}, now=now, network=network(towers))]


def decode_wif(msg: TextMessage, now: dt.datetime) -> list[Message] | None:
    """GTWIF: count, then per access point MAC, RSSI and three reserved
    fields; battery % before the send time."""
    fields, stop = list(msg.fields), msg.send_index
    points = []
    for index in range(msg.body + 2, stop, 5):
        if MAC.fullmatch(fields[index]):
            point: dict[str, Any] = {"macAddress": mac_address(fields[index].lower())}
            if re.fullmatch(r"-?\d+", field(fields, index + 1)):
                point["signalStrength"] = int(fields[index + 1])
            points.append(point)
    attrs: dict[str, Any] = {}
    if SMALL_INT.fullmatch(field(fields, stop - 1)):
        attrs["batteryLevel"] = int(fields[stop - 1])
    attrs["type"] = msg.type
    return [outdated(msg, attrs, now=now, network=network(wifi=points))]


def decode_dtt(msg: TextMessage, now: dt.datetime) -> list[Message] | None:
    """GTDTT: transparent data (hex).  A fuel-sensor "COMB,<n>,<level>,..."
    line gives the fuel level."""
    data = field(list(msg.fields), msg.send_index - 1)
    attrs: dict[str, Any] = {}
    if HEX.fullmatch(data) and len(data) % 2 == 0:
        text = binascii.unhexlify(data).decode("latin-1")
        for line in text.splitlines():
            parts = line.split(",")
            if parts[0] == "COMB" and re.fullmatch(r"-?\d+(?:\.\d+)?", field(parts, 2)):
                attrs["fuel"] = float(parts[2])
    attrs["type"] = msg.type
    return [outdated(msg, attrs, now=now)]


def decode_ack(msg: TextMessage, now: dt.datetime) -> list[Message]:
    """"+ACK:" frames: GTHBD is the heartbeat (no record); any other is the
    answer to a command: a CommandResult and a "result" status record."""
    if msg.type == "HBD":
        return []
    text = ",".join(msg.fields)
    return [CommandResult(text, msg.unique_id),
            outdated(msg, {"result": f"+ACK:GT{msg.type}"}, now=now)]


DECODERS: dict[str, Decoder] = {
    "FRI": reports.decode_fri, "RTL": reports.decode_fri,
    "ERI": reports.decode_eri,
    "IGN": reports.decode_ignition, "IGF": reports.decode_ignition,
    "VGN": reports.decode_ignition, "VGF": reports.decode_ignition,
    "IDA": reports.decode_ida,
    "LSW": reports.decode_switch, "TSW": reports.decode_switch,
    "DAR": reports.decode_dar, "DAT": reports.decode_dat,
    "BAA": reports.decode_accessory, "BID": reports.decode_accessory,
    "CAN": vehicle.decode_can, "OBD": vehicle.decode_obd,
    "INF": decode_inf, "VER": decode_ver, "PNA": decode_power, "PFA": decode_power,
    "GSM": decode_gsm, "WIF": decode_wif, "DTT": decode_dtt,
}


def decode_text(msg: TextMessage, now: dt.datetime) -> list[Message]:
    """All messages of one text frame."""
    if msg.kind == "ACK":
        return decode_ack(msg, now)
    decoder = DECODERS.get(msg.type)
    result = decoder(msg, now) if decoder is not None else None
    return result if result is not None else decode_other(msg, now)


__all__ = ["ALARMS", "DECODERS", "decode_other", "decode_text"]
