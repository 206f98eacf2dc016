"""The device side of Suntech, for `tracker simulate` and tests (the server
never uses it): what a simulated device sends and how it reads the server's replies.

The wire format is `protocols.suntech`'s (see its docstring); this module only
builds device frames and reads server replies with it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from protocols.base import DeviceReport
from protocols.suntech import (
    ALERT_ALARMS,
    MAX_FRAME_BYTES,
)
from protocols.values import KMH_PER_KNOT

_DEVICE_EMERGENCY = {"sos": 1, "parking": 2, "powerCut": 3, "door": 5, "movement": 7}
_DEVICE_ALERTS = {alarm: code for code, alarm in sorted(ALERT_ALARMS.items(), reverse=True)}


def _device_common(header: str, unique_id: str, report: DeviceReport) -> str:
    if not unique_id or not unique_id.isalnum():
        raise ValueError(f"Suntech device id must be letters and digits: {unique_id!r}")
    t = report.fix_time.astimezone(dt.UTC)
    speed_kmh = max(0.0, report.speed_kn * KMH_PER_KNOT)
    return (f"{header};{unique_id};04;100;{t:%Y%m%d};{t:%H:%M:%S};00000;"
            f"{report.latitude:+010.6f};{report.longitude:+011.6f};{speed_kmh:07.3f};"
            f"{report.course_deg % 360:06.2f};{8 if report.valid else 0};{1 if report.valid else 0};"
            "0;12.00;000000")


def device_report(unique_id: str, serial: int, report: DeviceReport) -> bytes:
    """DEVICE side: an ST300 status report, or an emergency (sos, parking,
    powerCut, door, movement) / alert (see `ALERT_ALARMS`) report for an alarm."""
    if report.alarm is None:
        line = f"{_device_common('ST300STT', unique_id, report)};1;{serial % 10000:04d}"
    elif report.alarm in _DEVICE_EMERGENCY:
        line = f"{_device_common('ST300EMG', unique_id, report)};{_DEVICE_EMERGENCY[report.alarm]}"
    elif report.alarm in _DEVICE_ALERTS:
        line = f"{_device_common('ST300ALT', unique_id, report)};{_DEVICE_ALERTS[report.alarm]}"
    else:
        raise ValueError(f"unsupported Suntech alarm {report.alarm!r}")
    return line.encode("ascii") + b"\r"


class DeviceAckReader:
    """DEVICE side: Suntech servers acknowledge nothing; command lines the
    server sends are read and dropped (bounded buffer), no token is yielded."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def receive_data(self, data: bytes) -> list[int | None]:
        self._buffer += data
        cut = self._buffer.rfind(b"\r")
        if cut >= 0:
            del self._buffer[:cut + 1]
        del self._buffer[:max(0, len(self._buffer) - MAX_FRAME_BYTES)]
        return []


@dataclasses.dataclass(frozen=True, slots=True)
class SuntechDevice:
    """DEVICE side of Suntech for `tracker simulate` (see `protocols.base.DeviceSide`)."""

    transport: str = "tcp"
    acks_login: bool = False
    acks_reports: bool = False

    def login(self, unique_id: str, serial: int) -> bytes:
        return b""

    def report(self, unique_id: str, serial: int, report: DeviceReport) -> bytes:
        return device_report(unique_id, serial, report)

    def heartbeat(self, unique_id: str, serial: int) -> bytes:
        return f"ST300ALV;{unique_id}\r".encode("ascii")

    def ack_reader(self) -> DeviceAckReader:
        return DeviceAckReader()


DEVICE = SuntechDevice()


__all__ = ["DEVICE", "DeviceAckReader", "SuntechDevice", "device_report"]
