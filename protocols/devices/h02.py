"""The device side of H02, for `tracker simulate` and tests (the server
never uses it): what a simulated device sends and how it reads the server's replies.

The wire format is `protocols.h02`'s (see its docstring); this module only
builds device frames and reads server replies with it.
"""

from __future__ import annotations

import datetime as dt

from protocols.base import DeviceReport
from protocols.devices.common import SerialFreeDevice, no_login
from protocols.h02 import (
    Framer,
    Status,
)

_DEVICE_ALARM_BITS = {"vibration": Status.THEFT, "sos": Status.ROBBERY,
                      "overspeed": Status.OVERSPEED, "powerCut": Status.BACKUP_POWER}


def _ddmm(value: float, degree_digits: int) -> str:
    """Degrees -> (D)DDMM.MMMM (absolute value)."""
    minutes_total = round(abs(value) * 60 * 10000)
    degrees, minutes = divmod(minutes_total, 60 * 10000)
    return f"{degrees:0{degree_digits}d}{minutes // 10000:02d}.{minutes % 10000:04d}"


def device_report(device_id: str, report: DeviceReport, maker: str = "HQ") -> bytes:
    """DEVICE side: a V1 general message; `report.alarm` clears its status bit
    (sos, powerCut, overspeed, vibration)."""
    status = 0xFFFFFFFF
    if report.alarm:
        try:
            status &= ~(1 << _DEVICE_ALARM_BITS[report.alarm])
        except KeyError:
            raise ValueError(f"unsupported H02 alarm {report.alarm!r}") from None
    t = report.fix_time.astimezone(dt.UTC)
    text = (f"*{maker},{device_id},V1,{t:%H%M%S},{'A' if report.valid else 'V'},"
            f"{_ddmm(report.latitude, 2)},{'N' if report.latitude >= 0 else 'S'},"
            f"{_ddmm(report.longitude, 3)},{'E' if report.longitude >= 0 else 'W'},"
            f"{report.speed_kn:.2f},{round(report.course_deg):d},{t:%d%m%y},{status:08X}#")
    return text.encode("ascii")


def device_heartbeat(device_id: str, maker: str = "HQ") -> bytes:
    """DEVICE side: the plain heartbeat (no record, no reply)."""
    return f"*{maker},{device_id},HTBT#".encode("ascii")


class DeviceAckReader:
    """DEVICE side, as `protocols.base.AckReader`: splits the server's bytes
    into text frames; a V4,V1 confirmation yields a token (None: H02 acks carry
    no serial); commands yield none."""

    def __init__(self) -> None:
        self._framer = Framer()

    def receive_data(self, data: bytes) -> list[int | None]:
        self._framer.feed(data)
        tokens: list[int | None] = []
        for frame in self._framer.frames():
            fields = frame.decode("latin-1").rstrip("#").split(",")
            if len(fields) > 3 and fields[2] == "V4" and fields[3] == "V1":
                tokens.append(None)
        return tokens


DEVICE = SerialFreeDevice(
    transport="tcp", acks_login=False, acks_reports=False, login_frame=no_login,
    report_frame=device_report, heartbeat_frame=device_heartbeat, make_ack_reader=DeviceAckReader)
"""DEVICE side of H02 for `tracker simulate` (see `protocols.base.DeviceSide`)."""


__all__ = ["DEVICE", "DeviceAckReader", "device_heartbeat", "device_report"]
