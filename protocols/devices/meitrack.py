"""The device side of Meitrack, for `tracker simulate` and tests (the server
never uses it): what a simulated device sends and how it reads the server's replies.

The wire format is `protocols.meitrack`'s (see its docstring); this module only
builds device frames and reads server replies with it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from protocols.base import DeviceReport
from protocols.meitrack import (
    DEVICE_START,
    EVENT_ALARMS,
    SERVER_START,
    Cmd,
    Framer,
    build_frame,
    flag_for,
    parse_frame,
)
from protocols.values import KMH_PER_KNOT

ALARM_EVENTS = {alarm: code for code, alarm in sorted(EVENT_ALARMS.items(), reverse=True)}
"""Traccar alarm -> the (lowest) Meitrack event code reporting it."""
EVENT_TRACK_BY_TIME = 35


def device_report(imei: str, serial: int, report: DeviceReport) -> bytes:
    """DEVICE side: an `AAA` report; its event code carries report.alarm
    (35, track by time interval, when there is none)."""
    if not re.fullmatch(r"\d{1,20}", imei):
        raise ValueError(f"IMEI must be up to 20 digits: {imei!r}")
    event = EVENT_TRACK_BY_TIME
    if report.alarm:
        if report.alarm not in ALARM_EVENTS:
            raise ValueError(f"unsupported meitrack alarm {report.alarm!r}; "
                             f"known: {', '.join(sorted(ALARM_EVENTS))}")
        event = ALARM_EVENTS[report.alarm]
    t = report.fix_time.astimezone(dt.UTC)
    fields = [
        "AAA", str(event), f"{report.latitude:.6f}", f"{report.longitude:.6f}",
        t.strftime("%y%m%d%H%M%S"), "A" if report.valid else "V", "8", "20",
        f"{report.speed_kn * KMH_PER_KNOT:.1f}", str(round(report.course_deg) % 360), "1.0", "0",
        "0", "0", "0|0|0000|0000", "0000", "0000|0000|0000|0190|04B0", "",
    ]
    return build_frame(DEVICE_START, flag_for(serial), imei, ",".join(fields))


class DeviceAckReader:
    """DEVICE side, as `protocols.base.AckReader`: splits the server's `@@`
    frames; only `CCC` confirmations acknowledge device data (one None token
    each); commands yield no token."""

    def __init__(self) -> None:
        self._framer = Framer(start=SERVER_START)

    def receive_data(self, data: bytes) -> list[int | None]:
        self._framer.feed(data)
        return [None for frame in self._framer.frames()
                if parse_frame(frame).command == Cmd.COMPRESSED]


@dataclasses.dataclass(frozen=True, slots=True)
class MeitrackDevice:
    """DEVICE side of Meitrack for `tracker simulate`: no login (the IMEI is
    in every frame), `AAA` reports that the server does not acknowledge, and
    no position-free keep-alive (the heartbeat event 31 carries a position)."""

    transport: str = "tcp"
    acks_login: bool = False
    acks_reports: bool = False

    def login(self, unique_id: str, serial: int) -> bytes:
        return b""

    def report(self, unique_id: str, serial: int, report: DeviceReport) -> bytes:
        return device_report(unique_id, serial, report)

    def heartbeat(self, unique_id: str, serial: int) -> bytes:
        return b""

    def ack_reader(self) -> DeviceAckReader:
        return DeviceAckReader()


DEVICE = MeitrackDevice()


__all__ = [
    "ALARM_EVENTS", "DEVICE", "DeviceAckReader", "EVENT_TRACK_BY_TIME", "MeitrackDevice",
    "device_report"
]
