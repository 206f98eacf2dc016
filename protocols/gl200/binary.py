"""Binary ("HEX" report format) @Track frames: best-effort decoding.

Layout of "+RSP" / "+BSP" (reports), "+EVT" / "+BVT" (events), after the
header, message type (1), report mask (4) and length (2):

    bit 0 device type (1) | bit 1 protocol version (2) | bit 2 firmware (2)
    | bit 3 IMEI (8) | bit 4 backup battery % (1) | bit 5 external power
    (2, mV) | bit 7 motion status (1) | bit 8 satellites (1) | ...

then (after report-specific fields that depend on the type and on mask bit
6, which this decoder skips by searching) the GPS item: accuracy (1),
speed (3, 0.1 km/h), azimuth (2), altitude (2, signed m), longitude and
latitude (4 each, signed, 1e-6 degree), UTC time (year 2, month, day,
hour, minute, second), MCC, MNC, LAC, cell id (2 each); the frame ends
with send time (7), count number (2), checksum (2) and CR LF.

"+" 0x00 0x00 frames are a compact GPS report observed on GL-series
devices: length (1), reserved (1), IMEI (8, BCD), ..., longitude and
latitude at offsets 31 and 35, Unix time at 39, HDOP (0.1) at 45,
altitude (0.1 m) at 49, satellites at 51.

"+INF" frames give an outdated record with the firmware version; "+ACK"
and "+HBD" frames give no record.  Units follow Traccar's binary decoder
(power in mV as an integer, accuracy as an integer HDOP).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any

from protocols.base import Message, Position, ProtocolError
from protocols.gl200.framing import binary_length
from protocols.values import KMH_PER_KNOT, cell_tower, network


@enum.unique
class ReportMask(enum.IntEnum):
    """Report mask bits of "+RSP"/"+EVT" frames (bit number: field, size in bytes)."""

    DEVICE_TYPE = 0        # 1
    PROTOCOL_VERSION = 1   # 2
    FIRMWARE_VERSION = 2   # 2
    IMEI = 3               # 8
    BATTERY_LEVEL = 4      # 1, %
    EXTERNAL_POWER = 5     # 2, mV
    MOTION_STATUS = 7      # 1
    SATELLITES = 8         # 1


_HEADER_FIELDS = (
    (ReportMask.DEVICE_TYPE, 1, None), (ReportMask.PROTOCOL_VERSION, 2, None),
    (ReportMask.FIRMWARE_VERSION, 2, "versionFw"), (ReportMask.IMEI, 8, "imei"),
    (ReportMask.BATTERY_LEVEL, 1, "batteryLevel"), (ReportMask.EXTERNAL_POWER, 2, "power"),
)

_REPORTS = (b"+RSP", b"+BSP", b"+EVT", b"+BVT")
_EVENTS = (b"+EVT", b"+BVT")
_INFO = (b"+INF", b"+BNF")


@dataclasses.dataclass(frozen=True, slots=True)
class Decoded:
    """What one binary frame gave: messages, the IMEI if it carried one,
    and the count number (4 hex digits, "" when the frame has none)."""

    messages: tuple[Message, ...]
    unique_id: str | None
    count: str


def _imei(raw: bytes) -> str:
    """8-byte IMEI: packed BCD ("08 65 13 ..." -> "865134..."), or one
    decimal pair per byte when every byte is below 100 (observed)."""
    if all(b <= 99 for b in raw) and raw.hex()[0] != "0":
        return "".join(f"{b:02d}" for b in raw)[:15]
    digits = raw.hex()
    return digits.lstrip("0") or "0"


def _time(raw: bytes) -> dt.datetime | None:
    """year (2), month, day, hour, minute, second -> aware UTC datetime."""
    if len(raw) < 4:   # no month and day
        return None
    month, day, hour, minute, second = (*raw[2:7], 0, 0, 0)[:5]
    try:
        return dt.datetime(int.from_bytes(raw[:2], "big"), month, day, hour, minute, second,
                           tzinfo=dt.UTC)
    except ValueError:
        return None


def _gps_at(frame: bytes, k: int) -> dict[str, Any] | None:
    """The GPS item at offset k, or None when its fields are implausible."""
    if k + 31 > len(frame):
        return None
    when = _time(frame[k + 16:k + 23])
    course = int.from_bytes(frame[k + 4:k + 6], "big")
    lon = int.from_bytes(frame[k + 8:k + 12], "big", signed=True)
    lat = int.from_bytes(frame[k + 12:k + 16], "big", signed=True)
    if when is None or not 2000 <= when.year <= 2100 or course > 360 or not (
            abs(lon) <= 180_000_000 and abs(lat) <= 90_000_000) or (lon == 0 and lat == 0):
        return None
    cell = [int.from_bytes(frame[k + 23 + 2 * i:k + 25 + 2 * i], "big") for i in range(4)]
    tower = cell_tower(cell[0], cell[1], cell[2], cell[3])
    return {
        "hdop": frame[k], "speed_kn": int.from_bytes(frame[k + 1:k + 4], "big") / 10 / KMH_PER_KNOT,
        "course": float(course), "altitude": float(int.from_bytes(frame[k + 6:k + 8], "big",
                                                                   signed=True)),
        "longitude": lon / 1e6, "latitude": lat / 1e6, "time": when,
        "tower": tower if cell[0] or cell[3] else None,
    }


def _count(frame: bytes) -> str:
    return frame[-6:-4].hex().upper() if frame.endswith(b"\r\n") and len(frame) >= 17 else ""


def _report(frame: bytes, now: dt.datetime, unique_id: str | None) -> Decoded:
    if len(frame) < 11:
        raise ProtocolError("gl200: binary report too short", frame[:64])
    mask = int.from_bytes(frame[5:9], "big")
    pos = 11
    attrs: dict[str, Any] = {}
    for bit, size, key in _HEADER_FIELDS:
        if not mask & (1 << bit):
            continue
        raw = frame[pos:pos + size]
        pos += size
        if key == "imei" and len(raw) == 8:
            unique_id = _imei(raw)
        elif key == "versionFw" and frame[:4] in _EVENTS:
            attrs[key] = str(int.from_bytes(raw, "big"))
        elif key in ("batteryLevel", "power") and raw:
            attrs[key] = int.from_bytes(raw, "big")
    pos += 1 if mask & (1 << ReportMask.MOTION_STATUS) else 0
    if mask & (1 << ReportMask.SATELLITES) and pos < len(frame):
        attrs["sat"] = frame[pos]
        pos += 1
    gps = next((g for k in range(pos, len(frame) - 30) if (g := _gps_at(frame, k))), None)
    messages: tuple[Message, ...] = ()
    if gps is not None:
        attrs["hdop"] = gps["hdop"]
        messages = (Position(
            fix_time=gps["time"], valid=gps["hdop"] > 0, latitude=gps["latitude"],
            longitude=gps["longitude"], altitude_m=gps["altitude"], speed_kn=gps["speed_kn"],
            course_deg=gps["course"], device_time=gps["time"], attributes=attrs,
            network=network([gps["tower"]] if gps["tower"] else []), unique_id=unique_id),)
    return Decoded(messages, unique_id, _count(frame))


def _compact(frame: bytes) -> Decoded:
    if len(frame) < 52:
        raise ProtocolError("gl200: compact binary report too short", frame[:64])
    unique_id = _imei(frame[5:13])
    lon = int.from_bytes(frame[31:35], "big", signed=True) / 1e6
    lat = int.from_bytes(frame[35:39], "big", signed=True) / 1e6
    when = dt.datetime.fromtimestamp(int.from_bytes(frame[39:43], "big"), dt.UTC)
    if not (abs(lon) <= 180 and abs(lat) <= 90):
        raise ProtocolError("gl200: compact report with impossible coordinates", frame[:64])
    attrs = {"hdop": frame[45] / 10, "sat": frame[51]}
    altitude = int.from_bytes(frame[49:51], "big", signed=True) / 10
    position = Position(fix_time=when, valid=True, latitude=lat, longitude=lon, altitude_m=altitude,
                        device_time=when, attributes=attrs, unique_id=unique_id)
    return Decoded((position,), unique_id, "")


def _info(frame: bytes, now: dt.datetime, unique_id: str | None) -> Decoded:
    """+INF: an outdated record with the firmware version (observed at the
    third two-byte field after the 8-byte id and device type)."""
    if len(frame) < 24:
        raise ProtocolError("gl200: binary information frame too short", frame[:64])
    attrs = {"versionFw": str(int.from_bytes(frame[22:24], "big"))}
    position = Position(fix_time=now, valid=False, latitude=0.0, longitude=0.0, outdated=True,
                        attributes=attrs, unique_id=unique_id)
    return Decoded((position,), unique_id, _count(frame))


def decode_binary(frame: bytes, now: dt.datetime, unique_id: str | None) -> Decoded:
    """Decode one whole binary frame (see the module docstring); its length
    field must match its size."""
    if binary_length(frame) != len(frame):
        raise ProtocolError("gl200: binary frame length field does not match its size", frame[:64])
    head = frame[:4]
    if frame[:3] == b"+\x00\x00":
        return _compact(frame)
    if head in _REPORTS:
        return _report(frame, now, unique_id)
    if head in _INFO:
        return _info(frame, now, unique_id)
    return Decoded((), unique_id, "")


__all__ = ["Decoded", "ReportMask", "decode_binary"]
