"""The device side of the watch protocol, for `tracker simulate` and tests (the server
never uses it): what a simulated device sends and how it reads the server's replies.

The wire format is `protocols.watch`'s (see its docstring); this module only
builds device frames and reads server replies with it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from protocols.base import DeviceReport
from protocols.values import KMH_PER_KNOT
from protocols.watch import (
    ALARM_TYPES,
    REPLIES,
    Framer,
    build_frame,
    split_frame,
)

DEVICE_ALARM_BITS = {"sos": 0x00010000, "lowBattery": 0x00020000, "geofenceExit": 0x00040000,
                     "geofenceEnter": 0x00080000, "removing": 0x00100000, "fallDown": 0x00200000}
DEVICE_MANUFACTURER = "SG"


def _check_id(device_id: str) -> str:
    if not re.fullmatch(r"[0-9A-Za-z]{1,20}", device_id):
        raise ValueError(f"watch id must be 1..20 letters or digits: {device_id!r}")
    return device_id


def device_link(device_id: str, steps: int | None = None, rolls: int = 0,
                battery_pct: int = 100) -> bytes:
    """DEVICE side: `LK` (login and keep-alive), with steps/rolls/battery when
    `steps` is given."""
    content = "LK" if steps is None else f"LK,{steps},{rolls},{battery_pct}"
    return build_frame(DEVICE_MANUFACTURER, _check_id(device_id), content)


def device_position(device_id: str, report: DeviceReport, *, battery_pct: int = 80) -> bytes:
    """DEVICE side: `UD`, or `AL` with the report's alarm as a status bit."""
    status = 0
    kind = "UD"
    if report.alarm:
        if report.alarm not in DEVICE_ALARM_BITS:
            raise ValueError(f"unsupported watch alarm {report.alarm!r}; "
                             f"known: {', '.join(sorted(DEVICE_ALARM_BITS))}")
        status, kind = DEVICE_ALARM_BITS[report.alarm], "AL"
    t = report.fix_time.astimezone(dt.UTC)
    fields = [
        kind, t.strftime("%d%m%y"), t.strftime("%H%M%S"), "A" if report.valid else "V",
        f"{abs(report.latitude):.6f}", "N" if report.latitude >= 0 else "S",
        f"{abs(report.longitude):.6f}", "E" if report.longitude >= 0 else "W",
        f"{report.speed_kn * KMH_PER_KNOT:.2f}", f"{report.course_deg % 360:.1f}", "0",
        "8", "100", str(battery_pct), "0", "0", f"{status:08X}", "0", "0", "0", "0", "0",
    ]
    return build_frame(DEVICE_MANUFACTURER, _check_id(device_id), ",".join(fields))


class DeviceAckReader:
    """DEVICE side, as `protocols.base.AckReader`: one None token per server
    answer to a device frame (LK, AL..., TKQ, CONFIG, TK); commands yield none."""

    _ACKS = frozenset({*REPLIES.values(), *ALARM_TYPES})

    def __init__(self) -> None:
        self._framer = Framer()

    def receive_data(self, data: bytes) -> list[int | None]:
        self._framer.feed(data)
        tokens: list[int | None] = []
        for frame in self._framer.frames():
            _, content = split_frame(frame)
            if content.decode("latin-1") in self._ACKS:
                tokens.append(None)
        return tokens


@dataclasses.dataclass(frozen=True, slots=True)
class WatchDevice:
    """DEVICE side of the watch protocol for `tracker simulate`.

    The server answers the login/heartbeat `LK` and alarm (`AL`) frames, not
    positions (`UD`): acks_reports is False, and an alarm report's `AL`
    answer still yields a token from the ack reader.
    """

    transport: str = "tcp"
    acks_login: bool = True
    acks_reports: bool = False

    def login(self, unique_id: str, serial: int) -> bytes:
        return device_link(unique_id)

    def report(self, unique_id: str, serial: int, report: DeviceReport) -> bytes:
        return device_position(unique_id, report)

    def heartbeat(self, unique_id: str, serial: int) -> bytes:
        return device_link(unique_id, steps=0, rolls=0, battery_pct=100)

    def ack_reader(self) -> DeviceAckReader:
        return DeviceAckReader()


DEVICE = WatchDevice()


__all__ = [
    "DEVICE", "DEVICE_ALARM_BITS", "DEVICE_MANUFACTURER", "DeviceAckReader", "WatchDevice",
    "device_link", "device_position"
]
