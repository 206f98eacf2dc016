"""GTCAN (CAN-bus report) and GTOBD (OBD-II report) decoders.

Both announce their fields with a report mask (hex): every set bit adds
one field, in bit order.  GTCAN bits 0-21: VIN, ignition key, total
distance (unit letter + integer, kept as the integer), fuel used (l), RPM,
speed (km/h), coolant (degC), fuel consumption ("L/H" + l/h), fuel level
("P" + %), range (0.1 km), accelerator pedal (%), engine hours (h),
driving time (h), idle time (h), idle fuel (l), axle weight (kg),
tachograph info, indicators, lights, doors (hex words), vehicle and engine
overspeed time (h); bit 29 adds an expansion mask and its fields; bits
30/31 announce the GPS item (and cell) at the end of the frame.
GTOBD bits 0-15: VIN, OBD connected, power voltage, supported PIDs, RPM,
speed, coolant, fuel consumption, DTC-cleared distance, MIL distance, MIL
status, DTC count, DTC codes, throttle, engine load, fuel level; the GPS
item, cell and mileage follow.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from typing import Any

from protocols.base import Message
from protocols.gl200.common import TextMessage, outdated, position
from protocols.gl200.fields import DIGITS, HEX, field, gps_item, to_int


def _number(text: str) -> float | None:
    """A decimal field; None when it is not one or too large for a float
    (400 digits read as inf, which no integer conversion survives)."""
    if not re.fullmatch(r"\d+(?:\.\d+)?", text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _int(text: str) -> int | None:
    return int(text) if DIGITS.fullmatch(text) else None


def _hex(text: str) -> int | None:
    return int(text, 16) if HEX.fullmatch(text) else None


def _prefixed(text: str) -> str:
    """"H2898058" -> "2898058", "P99.20" -> "99.20" (unit letter dropped)."""
    return re.sub(r"^[A-Za-z/]+", "", text)


def _hours(text: str) -> int | None:
    value = _number(text)
    return round(value * 3_600_000) if value is not None else None


def _consumption(text: str) -> float | None:
    return _number(text[3:]) if text.startswith("L/H") else None


def _range(text: str) -> int | None:
    value = _int(text)
    return value * 100 if value is not None else None


_CAN_FIELDS: dict[int, tuple[str, Callable[[str], Any]]] = {
    0: ("vin", lambda v: v),
    1: ("ignition", lambda v: v != "0" if DIGITS.fullmatch(v) else None),
    2: ("obdOdometer", lambda v: _int(_prefixed(v))),
    3: ("fuelUsed", _number),
    4: ("rpm", _int),
    5: ("obdSpeed", _int),
    6: ("coolantTemp", _int),
    7: ("fuelConsumption", _consumption),
    8: ("fuel", lambda v: _number(_prefixed(v))),
    9: ("range", _range),
    10: ("throttle", _int),
    11: ("hours", _hours),
    12: ("drivingTime", _number),
    13: ("idleHours", _number),
    14: ("idleFuelConsumption", _number),
    15: ("axleWeight", _int),
    16: ("tachographInfo", _hex),
    17: ("indicators", _hex),
    18: ("lights", _hex),
    19: ("doors", _hex),
    20: ("vehicleOverspeed", _number),
    21: ("engineOverspeed", _number),
}


def _masked(fields: list[str], start: int, mask: int, table: dict[int, tuple[str, Callable[[str], Any]]],
            bits: int) -> tuple[dict[str, Any], int]:
    """Decode one field per set bit below `bits`; returns (attributes, next index)."""
    attrs: dict[str, Any] = {}
    index = start
    for bit in range(bits):
        if not mask & (1 << bit):
            continue
        value = field(fields, index)
        index += 1
        if value and bit in table:
            key, convert = table[bit]
            converted = convert(value)
            if converted is not None:
                attrs[key] = converted
    return attrs, index


def _gps_near_end(fields: list[str], stop: int, after_time: tuple[int, ...]) -> int | None:
    """Index of a GPS item whose time is followed by exactly one of
    `after_time` field counts before `stop`."""
    for extra in after_time:
        index = stop - extra - 7
        if gps_item(fields, index) is not None:
            return index
    return None


def decode_can(msg: TextMessage, now: dt.datetime) -> list[Message] | None:
    """GTCAN: name, report type, CAN state, report mask, masked fields,
    then (mask bit 30/31) the GPS item with its cell block.  Validity
    follows the GPS accuracy (0 = last known position)."""
    fields, stop = list(msg.fields), msg.send_index
    mask = to_int(field(fields, msg.body + 3), 16)
    if mask is None:
        return None
    attrs, _ = _masked(fields, msg.body + 4, mask, _CAN_FIELDS, 22)
    attrs["type"] = msg.type
    index = _gps_near_end(fields, stop, (5, 0)) if mask & 0xC0000000 else None
    if index is None:
        return [outdated(msg, attrs, now=now)]
    fix = gps_item(fields, index)
    assert fix is not None
    return [position(msg, fix, attrs, now, valid=bool(fix.hdop) and float(fix.hdop) > 0)]


_OBD_FIELDS: dict[int, tuple[str, Callable[[str], Any]]] = {
    1: ("odbConnect", lambda v: v == "1"),
    4: ("rpm", _int),
    5: ("obdSpeed", _int),
    6: ("temp1", _int),
    8: ("dtcsClearedDistance", _int),
    11: ("dtcsNumber", _int),
    12: ("dtcsCodes", lambda v: v),
    13: ("throttle", _int),
}
"""GTOBD fields kept, with Traccar's keys ("odbConnect" is Traccar's spelling)."""


def decode_obd(msg: TextMessage, now: dt.datetime) -> list[Message] | None:
    """GTOBD: [VIN], name, report type, report mask, masked fields (bits
    0-15), GPS item, cell, reserved and mileage (km, as obdOdometer in m).
    Another tail layout goes to the generic decoder."""
    fields, stop = list(msg.fields), msg.send_index
    mask = to_int(field(fields, msg.body + 3), 16)
    index = stop - 13
    fix = gps_item(fields, index)
    mileage = field(fields, stop - 1)
    if mask is None or fix is None or not re.fullmatch(r"\d+\.\d", mileage) \
            or not math.isfinite(float(mileage) * 1000):
        return None
    attrs, _ = _masked(fields, msg.body + 4, mask, _OBD_FIELDS, 16)
    attrs["obdOdometer"] = round(float(mileage) * 1000)
    if fix.hdop:
        attrs["hdop"] = float(fix.hdop)
    attrs["type"] = msg.type
    return [position(msg, fix, attrs, now)]


__all__ = ["decode_can", "decode_obd"]
