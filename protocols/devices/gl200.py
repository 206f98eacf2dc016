"""The device side of @Track, for `tracker simulate` and tests (the server never uses it).

A simulated device speaks the GV300 text format (protocol version
"060100"): no login (the IMEI is in every report), fixed reports as
"+RESP:GTFRI", alarms as the report type that carries them (GTSOS, GTSPD,
GTGEO ...), the heartbeat "+ACK:GTHBD".  The server answers reports with
"+SACK:<count>$" (SACK mode) and heartbeats with
"+SACK:GTHBD,<version>,<count>$"; the ack reader yields the count of each.
"""

from __future__ import annotations

import dataclasses
import re

from protocols.base import DeviceReport, ProtocolError
from protocols.values import KMH_PER_KNOT

DEVICE_VERSION = "060100"   # GV300, firmware 01.00

ALARM_REPORTS = {
    "sos": ("SOS", "0"), "overspeed": ("SPD", "0"), "tow": ("TOW", "0"),
    "lowBattery": ("BPL", "0"), "movement": ("STT", "0"), "geofence": ("SWG", "0"),
    "geofenceEnter": ("GEO", "01"), "geofenceExit": ("GEO", "00"),
    "temperature": ("TMP", "0"), "jamming": ("JDR", "0"), "powerRestored": ("MPN", "0"),
    "powerCut": ("MPF", "0"), "accident": ("CRA", "0"), "idle": ("IDL", "0"),
    "hardBraking": ("HBM", "10"), "hardAcceleration": ("HBM", "11"),
    "hardCornering": ("HBM", "12"),
}
"""Traccar alarm -> (report type, report id/type field) a device sends it as."""


def _count(serial: int) -> str:
    return f"{serial & 0xFFFF:04X}"


def _gps(report: DeviceReport) -> str:
    """One GPS item (accuracy, speed km/h, azimuth, altitude, lon, lat, time)
    with an empty cell block and reserved "00"."""
    speed_kmh = max(0.0, report.speed_kn * KMH_PER_KNOT)
    return (f"{1 if report.valid else 0},{speed_kmh:.1f},{round(report.course_deg) % 360},0.0,"
            f"{report.longitude:.6f},{report.latitude:.6f},"
            f"{report.fix_time.strftime('%Y%m%d%H%M%S')},,,,,00")


def device_report(unique_id: str, serial: int, report: DeviceReport) -> bytes:
    """A GTFRI fixed report, or for `report.alarm` the report that carries
    that alarm; the send time is the fix time (the device side has no clock)."""
    send = report.fix_time.strftime("%Y%m%d%H%M%S")
    if report.alarm is None:
        body = f"GTFRI,{DEVICE_VERSION},{unique_id},,12000,10,1,{_gps(report)},0.0,,,,100,210000,,,"
    else:
        try:
            kind, report_id = ALARM_REPORTS[report.alarm]
        except KeyError:
            raise ValueError(f"gl200: unsupported alarm {report.alarm!r}") from None
        body = f"GT{kind},{DEVICE_VERSION},{unique_id},,0,{report_id},1,{_gps(report)},0.0"
    return f"+RESP:{body},{send},{_count(serial)}$".encode("ascii")


def device_heartbeat(unique_id: str, serial: int) -> bytes:
    """"+ACK:GTHBD" (the send time is left empty: the device side has no clock)."""
    return f"+ACK:GTHBD,{DEVICE_VERSION},{unique_id},,,{_count(serial)}$".encode("ascii")


_SACK = re.compile(rb"\+SACK:(?:GTHBD,[0-9A-Za-z]*,)?([0-9A-Fa-f]{4})")


class DeviceAckReader:
    """Reads the server's "+SACK:...$" replies; yields the count number of
    each (commands and other text are skipped)."""

    def __init__(self, max_bytes: int = 4096) -> None:
        self._buffer = bytearray()
        self._max_bytes = max_bytes

    def receive_data(self, data: bytes) -> list[int | None]:
        self._buffer += data
        tokens: list[int | None] = []
        while (end := self._buffer.find(b"$")) >= 0:
            reply = bytes(self._buffer[:end + 1])
            del self._buffer[:end + 1]
            start = reply.find(b"+SACK:")
            match = _SACK.match(reply, start) if start >= 0 else None
            if match:
                tokens.append(int(match.group(1), 16))
        if len(self._buffer) > self._max_bytes:
            self._buffer.clear()
            raise ProtocolError("gl200: server reply without '$'")
        return tokens


@dataclasses.dataclass(frozen=True, slots=True)
class Gl200Device:
    """DEVICE side of @Track (see `protocols.base.DeviceSide`)."""

    transport: str = "tcp"
    acks_login: bool = False
    acks_reports: bool = True

    def login(self, unique_id: str, serial: int) -> bytes:
        return b""

    def report(self, unique_id: str, serial: int, report: DeviceReport) -> bytes:
        return device_report(unique_id, serial, report)

    def heartbeat(self, unique_id: str, serial: int) -> bytes:
        return device_heartbeat(unique_id, serial)

    def ack_reader(self) -> DeviceAckReader:
        return DeviceAckReader()


DEVICE = Gl200Device()

__all__ = ["ALARM_REPORTS", "DEVICE", "DEVICE_VERSION", "DeviceAckReader", "Gl200Device",
           "device_heartbeat", "device_report"]
