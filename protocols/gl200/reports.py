"""Decoders of the @Track position reports with a layout of their own.

GTFRI / GTRTL (fixed and real-time reports) and GTERI (fixed report with
extended data) carry one or more GPS items followed by the vehicle block;
GTIGN/GTIGF/GTVGN/GTVGF (ignition), GTIDA (driver id), GTLSW/GTTSW (input
switches), GTDAR (driving warning), GTDAT (transparent data) and
GTBAA/GTBID (BLE accessory) a single GPS item with a few fields around it.

A GPS item is: accuracy (0 = no current fix, 1-50 = HDOP), speed (km/h),
azimuth, altitude (m), longitude, latitude, GPS UTC time, MCC, MNC, LAC
(hex), cell id (hex), then a reserved field that newer firmware uses as the
"position append mask" (2 hex digits; bit 0 adds the satellite count, every
set bit one field).  GL-series firmware puts the odometer (km) there.

Each decoder returns None when the frame does not have its layout; the
caller then falls back to the generic decoder (`text.decode_other`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from protocols.base import Message
from protocols.gl200.common import Model, TextMessage, outdated, position
from protocols.gl200.fields import (
    DIGITS,
    HEX2,
    HEX4,
    HEX6,
    MAC,
    ODOMETER,
    SMALL_INT,
    VIN,
    Fix,
    cell_tower,
    field,
    find_gps,
    gps_item,
    hours_ms,
    mac_address,
    milli,
    odometer_m,
    status_word,
    to_int,
)
from protocols.values import network

_HEX8 = re.compile(r"[0-9A-Fa-f]{8}")
_GV200_MODELS = (Model.GV200, Model.GV200_OBSERVED)


@dataclasses.dataclass(slots=True)
class Item:
    """One GPS item with its cell, Wi-Fi list and reserved field index."""

    fix: Fix
    tower: dict[str, Any] | None
    wifi: list[dict[str, Any]]
    reserved: int

    def network(self) -> dict[str, Any] | None:
        return network([self.tower] if self.tower else [], self.wifi)


def _hdop(fix: Fix) -> dict[str, Any]:
    """Accuracy as a float "hdop" attribute (absent when the field is empty)."""
    return {"hdop": float(fix.hdop)} if fix.hdop else {}


def _wifi(fields: list[str], index: int) -> tuple[list[dict[str, Any]], int]:
    """An optional Wi-Fi list after the GPS time: count, then per access
    point MAC, RSSI and three reserved fields.  Returns (list, next index)."""
    count = to_int(field(fields, index))
    if count is None or not count or not MAC.fullmatch(field(fields, index + 1)):
        return [], index
    count = min(count, (len(fields) - index - 1) // 5)
    points = []
    for k in range(count):
        mac, rssi = field(fields, index + 1 + 5 * k), field(fields, index + 2 + 5 * k)
        if MAC.fullmatch(mac):
            point: dict[str, Any] = {"macAddress": mac_address(mac.lower())}
            if re.fullmatch(r"-?\d+", rssi):
                point["signalStrength"] = int(rssi)
            points.append(point)
    return points, index + 1 + 5 * count


def read_items(fields: list[str], start: int, count: int, stop: int) -> list[Item] | None:
    """`count` consecutive GPS items from `start`; None if one is malformed
    or they run into the send time at `stop`."""
    items = []
    index = start
    for _ in range(count):
        fix = gps_item(fields, index, allow_empty=True)
        if fix is None:
            return None
        wifi, index = _wifi(fields, index + 7)
        tower = cell_tower(fields, index)
        reserved = index + 4
        if reserved >= stop:
            return None
        items.append(Item(fix, tower, wifi, reserved))
        index = reserved + 1
    return items


def _mask_rest(tail: list[str]) -> list[tuple[list[str], int | None]]:
    """Readings of a tail that starts with the reserved field: first as a
    plain reserved field, then (if it is two hex digits) as a position
    append mask followed by one field per set bit (bit 0: satellites)."""
    readings: list[tuple[list[str], int | None]] = [(tail[1:], None)]
    reserved = tail[0] if tail else ""
    if HEX2.fullmatch(reserved) and reserved != "00":
        bits = int(reserved, 16)
        extra = bin(bits).count("1")
        satellites = to_int(field(tail, 1)) if bits & 1 else None
        readings.append((tail[1 + extra:], satellites))
    return readings


# --------------------------------------------------------------------------
# GTFRI / GTRTL
# --------------------------------------------------------------------------

_OPT = {
    "odometer": re.compile(r"(?:\d{1,9}\.\d)?"),
    "hours": re.compile(r"(?:\d{1,6}:\d\d:\d\d)?"),
    "adc": re.compile(r"[0-9A-Fa-f]*"),
    "battery": re.compile(r"\d{0,3}"),
    "status": re.compile(r"(?:[0-9A-Fa-f]{6})?"),
    "rpm": re.compile(r"\d*"),
    "consumption": re.compile(r"(?:\d+(?:\.\d*)?|Inf|NaN)?"),
    "fuel": re.compile(r"\d*"),
}


def _gv_layout(adcs: int) -> tuple[str, ...]:
    return ("odometer", "hours", *("adc",) * adcs, "battery", "status", "rpm", "consumption", "fuel")


_GV_LAYOUTS = (_gv_layout(2), _gv_layout(3))
"""The GV-series vehicle block after the GPS items: mileage, hour meter,
analog inputs (2, or 3 on newer firmware), backup battery %, device status,
then engine RPM, fuel consumption and fuel level (empty unless read from
the vehicle bus)."""


def _gv_match(rest: list[str]) -> tuple[str, ...] | None:
    """The GV layout `rest` has: exactly one of `_GV_LAYOUTS`, or else mileage,
    hour meter, 0-3 analog inputs, battery and a six-digit status followed
    by up to six fields (the first three RPM, consumption, fuel)."""
    for layout in _GV_LAYOUTS:
        if len(rest) == len(layout) and all(_OPT[k].fullmatch(v) for k, v in zip(layout, rest,
                                                                                  strict=True)):
            return layout
    status = next((j for j in range(3, min(len(rest), 7)) if HEX6.fullmatch(rest[j])), None)
    if status is None or len(rest) - status - 1 > 6:
        return None
    layout = _gv_layout(status - 3)
    head = layout[:status + 1]
    after = layout[status + 1:]
    if all(_OPT[k].fullmatch(v) for k, v in zip(head, rest, strict=False)) and \
            all(_OPT[k].fullmatch(v) for k, v in zip(after, rest[status + 1:], strict=False)):
        return layout
    return None


def _fri_vehicle(rest: list[str], attrs: dict[str, Any]) -> bool:
    """Decode `rest` as a GV vehicle block if it has that layout."""
    layout = _gv_match(rest)
    if layout is None:
        return False
    values = dict(zip(layout, rest, strict=False))
    adcs = rest[2:2 + layout.count("adc")]
    if (odometer := odometer_m(values["odometer"])) is not None:
        attrs["odometer"] = odometer
    if (hours := hours_ms(values["hours"])) is not None:
        attrs["hours"] = hours
    for number, value in enumerate(adcs, 1):
        if value:
            attrs[f"adc{number}"] = value
    if values["battery"]:
        attrs["batteryLevel"] = int(values["battery"])
    status_word(values["status"], attrs)
    if values.get("rpm"):
        attrs["rpm"] = int(values["rpm"])
    if values.get("fuel"):
        attrs["fuel"] = int(values["fuel"])
    return True


def _fri_tail(tail: list[str]) -> dict[str, Any] | None:
    """Attributes of the fields after the last GPS item (from its reserved
    field to the send time) for the layouts of GV and GL firmware; None for
    any other layout."""
    attrs: dict[str, Any] = {}
    for rest, satellites in _mask_rest(tail):
        if _fri_vehicle(rest, attrs):
            if satellites is not None:
                attrs["sat"] = satellites
            return attrs
    size = len(tail)
    if size >= 8 and ODOMETER.fullmatch(tail[1]):
        attrs["odometer"] = float(tail[1]) * 1000     # GV block with an unknown field: mileage only
    elif size in (2, 3) and (not tail[-1] or SMALL_INT.fullmatch(tail[-1])):
        if size == 3 and re.fullmatch(r"-?\d+", tail[1]):   # GL: reserved, [RSSI], battery %
            attrs["rssi"] = int(tail[1])
        if tail[-1]:
            attrs["batteryLevel"] = int(tail[-1])
    elif size in (7, 8) and SMALL_INT.fullmatch(tail[3]):
        attrs["batteryLevel"] = int(tail[3])          # GL500/GL520: CSQ, BER, -, battery %
    else:
        return None
    return attrs


def _fri_preamble(msg: TextMessage, pre: list[str]) -> tuple[int, dict[str, Any]] | None:
    """(number of GPS items, attributes) from the fields between the device
    name and the first item, or None for a layout this decoder does not know.

    GV and GL: power (mV; GL: reserved), report id/type, number.  The
    ATW-firmware trackers (type 0x42) add fields: GT501 one after the number,
    the Bolt two before it (motion and charging state)."""
    attrs: dict[str, Any] = {}
    if len(pre) == 3 and DIGITS.fullmatch(pre[1]) and DIGITS.fullmatch(pre[2]):
        power, report, number = pre
        if len(report) == 2 and DIGITS.fullmatch(power):
            attrs["power"] = milli(power)
        return int(number), attrs
    if msg.model == Model.ATW and len(pre) == 4 and DIGITS.fullmatch(pre[2]):
        return int(pre[2]), attrs
    if msg.model == Model.ATW and len(pre) == 5 and DIGITS.fullmatch(pre[4]):
        attrs["motion"] = pre[2] == "1"
        attrs["charge"] = pre[3] == "1"
        return int(pre[4]), attrs
    return None


def _vin_and_name(fields: list[str], index: int, stop: int) -> tuple[str | None, int]:
    """An optional VIN before the device name; returns (VIN, index after the name)."""
    if VIN.fullmatch(field(fields, index)) and index + 1 < stop:
        return fields[index], index + 2
    return None, index + 1


def decode_fri(msg: TextMessage, now: dt.datetime) -> list[Message] | None:
    """GTFRI / GTRTL: one record per GPS item; the vehicle block (and the
    preamble's power) goes to the last one.  Items without a position give
    outdated records that stay `valid` (as Traccar reports them)."""
    if msg.version is None:
        return None
    fields, stop = list(msg.fields), msg.send_index
    vin, index = _vin_and_name(fields, msg.body, stop)
    first = find_gps(fields, index, index + 7)
    if first is None:
        first = index + 3
    found = _fri_preamble(msg, fields[index:first])
    if found is None or not 0 < found[0] <= 100:
        return None
    number, common = found
    items = read_items(fields, first, number, stop)
    if items is None:
        return None
    tail_attrs = _fri_tail(fields[items[-1].reserved:stop])
    if tail_attrs is None:
        return None
    records: list[Message] = []
    for k, item in enumerate(items):
        attrs: dict[str, Any] = {"vin": vin} if vin else {}
        attrs.update(_hdop(item.fix))
        reserved = fields[item.reserved]
        if ODOMETER.fullmatch(reserved) and "odometer" not in tail_attrs:
            attrs["odometer"] = float(reserved) * 1000
        if k == len(items) - 1:
            attrs.update(common)
            attrs.update(tail_attrs)
        attrs["type"] = msg.type
        records.append(position(msg, item.fix, attrs, now, network=item.network()))
    return records


# --------------------------------------------------------------------------
# GTERI
# --------------------------------------------------------------------------

def _eri_inputs(rest: list[str], attrs: dict[str, Any], model: int | None) -> int | None:
    """Find battery and device status after mileage and hour meter; decode
    the analog inputs between them.  Returns the index after the status (or
    after the GV200's separate input and output bytes), None if not found."""
    end = None
    for j in range(3, len(rest)):
        if HEX6.fullmatch(rest[j]) and re.fullmatch(r"\d{0,3}", rest[j - 1]):
            adcs, battery, end = rest[2:j - 1], rest[j - 1], j + 1
            status_word(rest[j], attrs)
            break
    if end is None and model in _GV200_MODELS:
        for j in range(2, len(rest) - 1):
            if HEX2.fullmatch(rest[j]) and HEX2.fullmatch(rest[j + 1]) and \
                    all(re.fullmatch(r"F?\d*", v) for v in rest[2:j]):
                adcs, battery, end = rest[2:j], "", j + 2
                attrs["input"] = int(rest[j], 16)
                attrs["output"] = int(rest[j + 1], 16)
                break
    if end is None:
        return None
    for number, value in enumerate(adcs, 1):
        if value.startswith("F") and DIGITS.fullmatch(value[1:]):
            attrs[f"fuel{number}"] = int(value[1:])
        elif DIGITS.fullmatch(value):
            attrs[f"adc{number}"] = milli(value)
    if battery:
        attrs["batteryLevel"] = int(battery)
    return end


def _one_wire(fields: list[str], pos: int, attrs: dict[str, Any]) -> int:
    """1-Wire block: count, then per device id, type (1 = temperature) and
    value (hex, signed, 1/16 degC).  Returns the index after the block."""
    count = min(to_int(field(fields, pos)) or 0, (len(fields) - pos - 1) // 3)
    for k in range(count):
        kind, value = field(fields, pos + 2 + 3 * k), field(fields, pos + 3 + 3 * k)
        if kind == "1" and HEX4.fullmatch(value):
            raw = int(value, 16)
            attrs[f"temp{k + 1}"] = (raw - 0x10000 if raw & 0x8000 else raw) / 16
    return pos + 1 + 3 * count


_BLE_KEYS = {1: "Id", 4: "Temp", 5: "Humidity", 13: "Battery"}
"""BLE append-mask bits decoded: 0 name, 1 MAC, 2 status, 3 battery mV,
4 temperature, 5 humidity, 13 battery %; every set bit is one field."""


def _ble_fields(fields: list[str], pos: int) -> tuple[dict[int, str], int]:
    """From an accessory mask at `pos`: {bit: value}, index after the fields."""
    mask = int(fields[pos], 16)
    values: dict[int, str] = {}
    pos += 1
    for bit in range(16):
        if mask & (1 << bit):
            values[bit] = field(fields, pos)
            pos += 1
    return values, pos


def _find_mask(fields: list[str], pos: int, within: int) -> int | None:
    """Index of the first 4-hex-digit field among the next `within` fields."""
    for j in range(pos, min(pos + within, len(fields))):
        if HEX4.fullmatch(fields[j]):
            return j
    return None


def _ble(fields: list[str], pos: int, attrs: dict[str, Any]) -> int:
    """BLE accessory block: count, then per accessory index, type, model,
    firmware-dependent id fields, append mask and its fields."""
    count = to_int(field(fields, pos)) or 0
    pos += 1
    for number in range(1, count + 1):
        if pos >= len(fields):
            break
        mask_at = _find_mask(fields, pos + 3, 3)
        if mask_at is None:
            break
        values, pos = _ble_fields(fields, mask_at)
        for bit, key in _BLE_KEYS.items():
            value = values.get(bit, "")
            if not value:
                continue
            if bit == 1:
                attrs[f"tag{number}Id"] = value
            elif bit == 4 and re.fullmatch(r"-?\d+(?:\.\d+)?", value):
                attrs[f"tag{number}{key}"] = float(value)
            elif bit in (5, 13) and DIGITS.fullmatch(value):
                attrs[f"tag{number}{key}"] = int(value)
    return pos


def _eri_blocks(mask: int, fields: list[str], pos: int, attrs: dict[str, Any]) -> None:
    """The optional blocks the ERI mask announces, in bit order: 0 digital
    fuel sensor (1 field), 1 1-Wire, 2 CAN (state, CAN mask, one field per
    bit 0-21), 3 fuel sensors (count, then type and percentage), 8 BLE
    accessories.  Decoding stops at a block it does not know."""
    for bit in range(9):
        if not mask & (1 << bit):
            continue
        if bit == 0:
            pos += 1
        elif bit == 1:
            pos = _one_wire(fields, pos, attrs)
        elif bit == 2:
            can_mask = to_int(field(fields, pos + 1), 16) or 0
            pos += 2 + bin(can_mask & 0x3FFFFF).count("1")
        elif bit == 3:
            count = to_int(field(fields, pos)) or 0
            level = field(fields, pos + 2)
            if count and re.fullmatch(r"\d+(?:\.\d+)?", level):
                attrs["fuel"] = float(level)
            return
        elif bit == 8:
            _ble(fields, pos, attrs)
        else:
            return


def _eri_tail(tail: list[str], mask: int, model: int | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    readings = _mask_rest(tail)
    rest, satellites = readings[-1]
    if satellites is not None:
        attrs["sat"] = satellites
    if (odometer := odometer_m(field(rest, 0))) is not None:
        attrs["odometer"] = odometer
    if (hours := hours_ms(field(rest, 1))) is not None:
        attrs["hours"] = hours
    end = _eri_inputs(rest, attrs, model)
    if end is None:
        battery = next((v for v in rest if SMALL_INT.fullmatch(v)), None)
        if battery is not None:
            attrs["batteryLevel"] = int(battery)
        return attrs
    _eri_blocks(mask, rest, end + 1, attrs)          # end: the UART device type
    return attrs


def decode_eri(msg: TextMessage, now: dt.datetime) -> list[Message] | None:
    """GTERI: like GTFRI with an ERI mask before the power field and the
    optional blocks (1-Wire, CAN, fuel, BLE) after the device status."""
    if msg.version is None:
        return None
    fields, stop = list(msg.fields), msg.send_index
    vin, index = _vin_and_name(fields, msg.body, stop)
    mask, power, number = field(fields, index), field(fields, index + 1), field(fields, index + 3)
    if not _HEX8.fullmatch(mask) or not DIGITS.fullmatch(number) or not 0 < int(number) <= 100:
        return None
    items = read_items(fields, index + 4, int(number), stop)
    if items is None:
        return None
    tail_attrs = _eri_tail(fields[items[-1].reserved:stop], int(mask, 16), msg.model)
    records: list[Message] = []
    for k, item in enumerate(items):
        attrs: dict[str, Any] = {"vin": vin} if vin else {}
        attrs.update(_hdop(item.fix))
        if k == len(items) - 1:
            if DIGITS.fullmatch(power):
                attrs["power"] = milli(power)
            attrs.update(tail_attrs)
        attrs["type"] = msg.type
        records.append(position(msg, item.fix, attrs, now, network=item.network()))
    return records


# --------------------------------------------------------------------------
# Single-item reports
# --------------------------------------------------------------------------

def _single(msg: TextMessage, before: int = 6) -> tuple[list[str], int, Fix] | None:
    """(fields, index of the GPS item, fix) for a report with one GPS item
    within `before` fields after the device name."""
    fields = list(msg.fields)
    start = msg.body + 1
    index = find_gps(fields, start, start + before)
    if index is None:
        return None
    fix = gps_item(fields, index)
    assert fix is not None
    return fields, index, fix


def _after_cell(fields: list[str], index: int, stop: int) -> tuple[list[str], int | None]:
    """Fields after an item's cell block (append mask resolved) and the
    satellite count when the mask announces it."""
    tail = fields[index + 11:stop]
    if not tail:
        return [], None
    return _mask_rest(tail)[-1]


def decode_ignition(msg: TextMessage, now: dt.datetime) -> list[Message] | None:
    """GTIGN / GTVGN (ignition on) and GTIGF / GTVGF (off): duration, one GPS
    item, then hour meter and mileage."""
    found = _single(msg)
    if found is None:
        return None
    fields, index, fix = found
    attrs: dict[str, Any] = {**_hdop(fix), "ignition": msg.type in ("IGN", "VGN")}
    rest, satellites = _after_cell(fields, index, msg.send_index)
    if satellites is not None:
        attrs["sat"] = satellites
    hours = next((h for v in rest if (h := hours_ms(v)) is not None), None)
    if hours is not None:
        attrs["hours"] = hours
    odometer = next((v for v in rest if ODOMETER.fullmatch(v)), None)
    if odometer is not None:
        attrs["odometer"] = float(odometer) * 1000
    attrs["type"] = msg.type
    tower = cell_tower(fields, index + 7)
    return [position(msg, fix, attrs, now, network=network([tower] if tower else []))]


def decode_ida(msg: TextMessage, now: dt.datetime) -> list[Message] | None:
    """GTIDA: driver id (RFID / iButton), status, number, GPS item, mileage."""
    found = _single(msg)
    if found is None:
        return None
    fields, index, fix = found
    attrs: dict[str, Any] = {}
    driver = field(fields, index - 3)
    if driver and index - 3 > msg.body:
        attrs["driverUniqueId"] = driver
    attrs.update(_hdop(fix))
    rest, _ = _after_cell(fields, index, msg.send_index)
    odometer = next((v for v in rest if ODOMETER.fullmatch(v)), None)
    if odometer is not None:
        attrs["odometer"] = float(odometer) * 1000
    attrs["type"] = msg.type
    return [position(msg, fix, attrs, now)]


def decode_switch(msg: TextMessage, now: dt.datetime) -> list[Message] | None:
    """GTLSW / GTTSW: digital input 1 / 2 changed; its new state precedes
    the GPS item."""
    found = _single(msg, 4)
    if found is None:
        return None
    fields, index, fix = found
    key = "in1" if msg.type == "LSW" else "in2"
    attrs = {key: field(fields, index - 1) == "1", **_hdop(fix), "type": msg.type}
    return [position(msg, fix, attrs, now)]


def decode_dar(msg: TextMessage, now: dt.datetime) -> list[Message] | None:
    """GTDAR: driving-assistant warning (warning type first)."""
    found = _single(msg)
    if found is None:
        return None
    fields, _, fix = found
    attrs: dict[str, Any] = {}
    warning = to_int(field(fields, msg.body + 1))
    if warning is not None:
        attrs["warningType"] = warning
    attrs.update(_hdop(fix))
    attrs["type"] = msg.type
    return [position(msg, fix, attrs, now)]


def decode_dat(msg: TextMessage, now: dt.datetime) -> list[Message] | None:
    """GTDAT: transparent serial data, with or without a GPS item after it."""
    fields = list(msg.fields)
    start = msg.body + 1
    index = find_gps(fields, start, start + 8)
    if index is None:
        data = next((v for v in reversed(fields[start:msg.send_index]) if v), "")
        return [outdated(msg, {"data": data, "type": msg.type} if data else {"type": msg.type},
                         now=now)]
    fix = gps_item(fields, index)
    assert fix is not None
    attrs: dict[str, Any] = {}
    if field(fields, index - 1):
        attrs["data"] = fields[index - 1]
    attrs.update(_hdop(fix))
    attrs["type"] = msg.type
    tower = cell_tower(fields, index + 7)
    return [position(msg, fix, attrs, now, network=network([tower] if tower else []))]


def decode_accessory(msg: TextMessage, now: dt.datetime) -> list[Message] | None:
    """GTBAA (BLE accessory alarm) / GTBID (accessory identification):
    accessory append mask (4 hex) and its fields, then a GPS item."""
    found = _single(msg, 10)
    if found is None:
        return None
    fields, index, fix = found
    attrs: dict[str, Any] = {}
    mask_at = _find_mask(fields, msg.body + 1, index - msg.body - 1)
    if mask_at is not None:
        values, _ = _ble_fields(fields, mask_at)
        if MAC.fullmatch(values.get(1, "")):
            attrs["accessoryMac"] = values[1]
        if DIGITS.fullmatch(values.get(3, "")):
            attrs["accessoryVoltage"] = milli(values[3])
        if re.fullmatch(r"-?\d+(?:\.\d+)?", values.get(4, "")):
            attrs["accessoryTemp"] = float(values[4])
        if DIGITS.fullmatch(values.get(5, "")):
            attrs["accessoryHumidity"] = int(values[5])
    attrs.update(_hdop(fix))
    attrs["type"] = msg.type
    return [position(msg, fix, attrs, now)]


__all__ = ["Item", "decode_accessory", "decode_dar", "decode_dat", "decode_eri", "decode_fri",
           "decode_ida", "decode_ignition", "decode_switch", "read_items"]
