"""Field-level helpers shared by the @Track text decoders.

A text frame is split on commas into `fields`; these helpers recognise the
recurring blocks in it: the GPS item (accuracy, speed km/h, azimuth,
altitude m, longitude, latitude, UTC time), the cell block (MCC, MNC, LAC
and cell id in hex), the device status word and the counters (mileage in
km with one decimal, hour meter "HHHHH:MM:SS").  Nothing here raises on bad
input: a field that does not have its format is treated as absent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from protocols import values
from protocols.values import KMH_PER_KNOT

DIGITS = re.compile(r"\d+")
SMALL_INT = re.compile(r"\d{1,3}")
DECIMAL = re.compile(r"-?\d+(?:\.\d+)?")
HEX = re.compile(r"[0-9A-Fa-f]+")
HEX2 = re.compile(r"[0-9A-Fa-f]{2}")
HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
HEX6 = re.compile(r"[0-9A-Fa-f]{6}")
TIME14 = re.compile(r"\d{14}")
ODOMETER = re.compile(r"\d{1,9}\.\d")
HOUR_METER = re.compile(r"(\d{1,6}):(\d\d):(\d\d)")
VIN = re.compile(r"[0-9A-Z]{17}")
MAC = re.compile(r"[0-9A-Fa-f]{12}")

_HDOP = re.compile(r"\d{1,2}(?:\.\d+)?")
_SPEED = re.compile(r"\d{1,4}(?:\.\d+)?")
_COURSE = re.compile(r"\d{1,3}")
_ALTITUDE = re.compile(r"-?\d{1,6}(?:\.\d+)?")
_LONGITUDE = re.compile(r"-?\d{1,3}\.\d+")
_LATITUDE = re.compile(r"-?\d{1,2}\.\d+")


def field(fields: list[str], index: int) -> str:
    """fields[index], or "" when the frame is shorter."""
    return fields[index] if 0 <= index < len(fields) else ""


def parse_time(text: str) -> dt.datetime | None:
    """YYYYMMDDhhmmss (UTC) -> aware datetime; None when malformed."""
    if not TIME14.fullmatch(text):
        return None
    try:
        return dt.datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def hours_ms(text: str) -> int | None:
    """Hour meter "HHHHH:MM:SS" -> milliseconds."""
    match = HOUR_METER.fullmatch(text)
    if not match:
        return None
    hours, minutes, seconds = (int(g) for g in match.groups())
    return ((hours * 60 + minutes) * 60 + seconds) * 1000


def odometer_m(text: str) -> float | None:
    """Mileage "12345.6" km -> metres (float); None when absent."""
    return float(text) * 1000 if ODOMETER.fullmatch(text) else None


def to_int(text: str, base: int = 10) -> int | None:
    try:
        return int(text, base) if text else None
    except ValueError:
        return None


def milli(text: str) -> float:
    """An integer field in thousandths (mV, m) as units.  Float division: a
    number longer than a float holds reads as inf (which the sanitiser drops)
    where int(text) / 1000 would raise OverflowError."""
    return float(text) / 1000


def to_float(text: str) -> float | None:
    return float(text) if DECIMAL.fullmatch(text) else None


@dataclasses.dataclass(slots=True)
class Fix:
    """One GPS item.  `time` is None and the coordinates 0 when the device
    had no position (all GPS fields empty)."""

    hdop: str
    speed_kn: float
    course_deg: float
    altitude_m: float
    latitude: float
    longitude: float
    time: dt.datetime | None

    @property
    def located(self) -> bool:
        return self.time is not None


def gps_item(fields: list[str], index: int, *, allow_empty: bool = False) -> Fix | None:
    """The 7 GPS fields starting at `index` (accuracy .. UTC time), or None
    when they do not have the item's formats.  With `allow_empty`, an item
    whose position and time fields are all empty gives an unlocated Fix."""
    if index < 0 or index + 7 > len(fields):
        return None
    hdop, speed, course, alt, lon, lat, time = fields[index:index + 7]
    if not all(pattern.fullmatch(value) or not value for pattern, value in (
            (_HDOP, hdop), (_SPEED, speed), (_COURSE, course), (_ALTITUDE, alt))):
        return None
    if allow_empty and not (lon or lat or time):
        return Fix(hdop, 0.0, 0.0, 0.0, 0.0, 0.0, None)
    when = parse_time(time)
    if not (_LONGITUDE.fullmatch(lon) and _LATITUDE.fullmatch(lat)) or when is None:
        return None
    longitude, latitude = float(lon), float(lat)
    if not (-180 <= longitude <= 180 and -90 <= latitude <= 90):
        return None
    return Fix(hdop, float(speed) / KMH_PER_KNOT if speed else 0.0, float(course or 0),
               float(alt or 0), latitude, longitude, when)


def find_gps(fields: list[str], start: int, stop: int | None = None) -> int | None:
    """Index of the first GPS item with a position at or after `start`."""
    stop = len(fields) - 6 if stop is None else min(stop, len(fields) - 6)
    for index in range(max(start, 0), stop):
        if gps_item(fields, index) is not None:
            return index
    return None


def cell_tower(fields: list[str], index: int) -> dict[str, Any] | None:
    """MCC, MNC (decimal), LAC, cell id (hex) at `index` as a Traccar cell tower."""
    mcc, mnc, lac, cid = (field(fields, index + k) for k in range(4))
    if not (DIGITS.fullmatch(mcc) and DIGITS.fullmatch(mnc) and HEX.fullmatch(lac)
            and HEX.fullmatch(cid)):
        return None
    if not (int(mcc) or int(cid, 16)):
        return None
    return values.cell_tower(int(mcc), int(mnc), int(lac, 16), int(cid, 16))


def mac_address(text: str) -> str:
    """"c413e200ff14" -> "c4:13:e2:00:ff:14"."""
    return ":".join(text[i:i + 2] for i in range(0, 12, 2))


def status_word(text: str, attrs: dict[str, Any], *, io_bits: bool = True) -> bool:
    """Device status "SSIIOO" (hex): motion state, digital inputs, outputs.

    Motion state 1x = ignition off, 2x = ignition on, 4x = no ignition
    detection (motion sensor only).  Inputs bit 1/2 are in1/in2 (bit 0 is
    the ignition input), outputs bit 0/1 are out1/out2.  Returns False
    (nothing set) when `text` is not six hex digits."""
    if not HEX6.fullmatch(text):
        return False
    state = text[0]
    if state == "1":
        attrs["ignition"] = False
    elif state == "2":
        attrs["ignition"] = True
    inputs, outputs = int(text[2:4], 16), int(text[4:6], 16)
    attrs["input"] = inputs
    if io_bits:
        attrs["in1"] = bool(inputs & 0x02)
        attrs["in2"] = bool(inputs & 0x04)
    attrs["output"] = outputs
    if io_bits:
        attrs["out1"] = bool(outputs & 0x01)
        attrs["out2"] = bool(outputs & 0x02)
    return True


__all__ = [
    "Fix", "cell_tower", "field", "find_gps", "gps_item", "hours_ms", "mac_address", "milli", "odometer_m",
    "parse_time", "status_word", "to_float", "to_int",
]
