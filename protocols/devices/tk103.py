"""The device side of TK103, for `tracker simulate` and tests (the server
never uses it): what a simulated device sends and how it reads the server's replies.

The wire format is `protocols.tk103`'s (see its docstring); this module only
builds device frames and reads server replies with it.
"""

from __future__ import annotations

import datetime as dt
import re

from protocols.base import DeviceReport
from protocols.devices.common import SerialFreeDevice
from protocols.tk103 import (
    ALARM_NAMES,
    Framer,
    split_frame,
)
from protocols.values import KMH_PER_KNOT

_DEVICE_ALARM_CODES = {name: int(code) for code, name in ALARM_NAMES.items()}


def _terminal_id(unique_id: str) -> str:
    """Terminal ids are at least 12 characters: shorter ones are zero-padded."""
    if not re.fullmatch(r"[0-9A-Za-z]{1,20}", unique_id):
        raise ValueError(f"TK103 terminal id must be 1..20 letters or digits: {unique_id!r}")
    return unique_id.rjust(12, "0")


def _ddmm(value: float, degree_digits: int) -> str:
    minutes_total = round(abs(value) * 60 * 10000)
    degrees, minutes = divmod(minutes_total, 60 * 10000)
    return f"{degrees:0{degree_digits}d}{minutes // 10000:02d}.{minutes % 10000:04d}"


def device_location_body(report: DeviceReport, ignition: bool = True) -> str:
    """The standard location body of a report (speed in km/h, one decimal)."""
    t = report.fix_time.astimezone(dt.UTC)
    speed_kmh = min(report.speed_kn * KMH_PER_KNOT, 999.9)
    return (f"{t:%y%m%d}{'A' if report.valid else 'V'}"
            f"{_ddmm(report.latitude, 2)}{'N' if report.latitude >= 0 else 'S'}"
            f"{_ddmm(report.longitude, 3)}{'E' if report.longitude >= 0 else 'W'}"
            f"{speed_kmh:05.1f}{t:%H%M%S}{report.course_deg % 360:06.2f}"
            f"0{'1' if ignition else '0'}000000L00000000")


def device_login(unique_id: str) -> bytes:
    """DEVICE side: BP05 with the IMEI (the id, zero-padded to 15) and no location."""
    terminal = _terminal_id(unique_id)
    return f"({terminal}BP05{terminal[-15:].rjust(15, '0')})".encode("ascii")


def device_report(unique_id: str, report: DeviceReport) -> bytes:
    """DEVICE side: BR00, or BO01 with the alarm digit when `report.alarm` is set."""
    terminal = _terminal_id(unique_id)
    if report.alarm:
        try:
            code = _DEVICE_ALARM_CODES[report.alarm]
        except KeyError:
            raise ValueError(f"unsupported TK103 alarm {report.alarm!r}") from None
        return f"({terminal}BO01{code}{device_location_body(report)})".encode("ascii")
    return f"({terminal}BR00{device_location_body(report)})".encode("ascii")


def device_heartbeat(unique_id: str) -> bytes:
    """DEVICE side: the BP00 handshake."""
    return f"({_terminal_id(unique_id)}BP00HSO)".encode("ascii")


class DeviceAckReader:
    """DEVICE side, as `protocols.base.AckReader`: each AP05 / AP01 / AS01
    answer yields a token (None: TK103 answers carry no serial); server
    commands yield none."""

    def __init__(self) -> None:
        self._framer = Framer()

    def receive_data(self, data: bytes) -> list[int | None]:
        self._framer.feed(data)
        tokens: list[int | None] = []
        for frame in self._framer.frames():
            ctx = split_frame(frame)
            if ctx.word in ("AP05", "AP01", "AS01"):
                tokens.append(None)
        return tokens


DEVICE = SerialFreeDevice(
    transport="tcp", acks_login=True, acks_reports=False, login_frame=device_login,
    report_frame=device_report, heartbeat_frame=device_heartbeat, make_ack_reader=DeviceAckReader)
"""DEVICE side of TK103 for `tracker simulate` (see `protocols.base.DeviceSide`)."""


__all__ = [
    "DEVICE", "DeviceAckReader", "device_heartbeat", "device_location_body",
    "device_login", "device_report"
]
