"""The device side of GPS103 (Coban), for `tracker simulate` and tests (the server
never uses it): what a simulated device sends and how it reads the server's replies.

The wire format is `protocols.gps103`'s (see its docstring); this module only
builds device frames and reads server replies with it.
"""

from __future__ import annotations

import datetime as dt

from protocols.base import DeviceReport
from protocols.devices.common import SerialFreeDevice
from protocols.gps103 import (
    ALARM_WORDS,
    HEARTBEAT_REPLY,
    LOGIN_REPLY,
)

DEVICE_WORDS = {alarm: word for word, alarm in ALARM_WORDS.items() if word != "dtc"}
DEVICE_WORDS["fault"] = "DTC"
DEVICE_WORDS["fuelLeak"] = "oil"
"""Traccar alarm value -> the report word a device sends for it."""


def _encode_coordinate(value: float, degree_digits: int) -> str:
    """Signed degrees -> "ddmm.mmmmm" (5 decimals of minutes, ~2 cm)."""
    total = round(abs(value) * 60 * 100_000)
    degrees, minutes = divmod(total, 60 * 100_000)
    return f"{degrees:0{degree_digits}d}{minutes // 100_000:02d}.{minutes % 100_000:05d}"


def device_login(imei: str) -> bytes:
    """DEVICE side: log-on request."""
    return f"##,imei:{imei},A;".encode("ascii")


def device_heartbeat(imei: str) -> bytes:
    """DEVICE side: heartbeat (the bare IMEI)."""
    return f"{imei};".encode("ascii")


def device_report(imei: str, report: DeviceReport) -> bytes:
    """DEVICE side: a position report ("tracker", or the alarm's word).  The
    local time written is the UTC time (a device set to UTC); speed knots."""
    if report.alarm is None:
        word = "tracker"
    elif report.alarm in DEVICE_WORDS:
        word = DEVICE_WORDS[report.alarm]
    else:
        raise ValueError(f"unsupported GPS103 alarm {report.alarm!r}")
    when = report.fix_time.astimezone(dt.UTC)
    fields = [
        f"imei:{imei}", word, when.strftime("%y%m%d%H%M%S"), "", "F", when.strftime("%H%M%S.000"),
        "A" if report.valid else "V",
        _encode_coordinate(report.latitude, 2), "N" if report.latitude >= 0 else "S",
        _encode_coordinate(report.longitude, 3), "E" if report.longitude >= 0 else "W",
        f"{report.speed_kn:.2f}", f"{report.course_deg % 360:.2f}",
    ]
    return (",".join(fields) + ";").encode("ascii")


class DeviceAckReader:
    """DEVICE side, as `protocols.base.AckReader`: "LOAD" (log-on) and "ON"
    (heartbeat) each yield None; reports are not answered.  Other bytes (a
    command, which has no terminator) are skipped."""

    _REPLIES = (LOGIN_REPLY, HEARTBEAT_REPLY)

    def __init__(self) -> None:
        self._buffer = b""

    def receive_data(self, data: bytes) -> list[int | None]:
        self._buffer += data
        tokens: list[int | None] = []
        while self._buffer:
            reply = next((r for r in self._REPLIES if self._buffer.startswith(r)), None)
            if reply is not None:
                self._buffer = self._buffer[len(reply):]
                tokens.append(None)
            elif any(r.startswith(self._buffer) for r in self._REPLIES):
                break   # the start of a reply: wait for the rest
            else:
                self._buffer = self._buffer[1:]
        return tokens


DEVICE = SerialFreeDevice(
    transport="tcp", acks_login=True, acks_reports=False, login_frame=device_login,
    report_frame=device_report, heartbeat_frame=device_heartbeat, make_ack_reader=DeviceAckReader)
"""DEVICE side of GPS103 for `tracker simulate` (see `protocols.base.DeviceSide`)."""


__all__ = [
    "DEVICE", "DEVICE_WORDS", "DeviceAckReader", "device_heartbeat",
    "device_login", "device_report"
]
