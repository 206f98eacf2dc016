"""The device side of Wialon IPS, for `tracker simulate` and tests (the server
never uses it): what a simulated device sends and how it reads the server's replies.

The wire format is `protocols.wialon`'s (see its docstring); this module only
builds device frames and reads server replies with it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from protocols.base import DeviceReport
from protocols.values import KMH_PER_KNOT
from protocols.wialon import (
    EOL,
    Framer,
    crc_text,
)


def _encode_coordinate(value: float, degree_digits: int) -> str:
    """Signed degrees -> "ddmm.mmmmmm" (6 decimals of minutes)."""
    total = round(abs(value) * 60 * 1_000_000)
    degrees, minutes = divmod(total, 60 * 1_000_000)
    return f"{degrees:0{degree_digits}d}{minutes // 1_000_000:02d}.{minutes % 1_000_000:06d}"


def _with_crc(body: str) -> str:
    return body + crc_text(body)


def device_login(imei: str, password: str = "NA") -> bytes:
    """DEVICE side: a 2.0 login with its CRC."""
    return f"#L#{_with_crc(f'2.0;{imei};{password};')}".encode() + EOL


def device_params(alarm: str | None) -> str:
    """The params field carrying a Traccar alarm value ("NA" without one)."""
    if alarm is None:
        return "NA"
    if alarm == "sos":
        return "SOS:1:1"
    if not re.fullmatch(r"[A-Za-z0-9]{1,32}", alarm):
        raise ValueError(f"unsupported Wialon alarm {alarm!r}")
    return f"alarm:3:{alarm}"


def device_data(report: DeviceReport) -> bytes:
    """DEVICE side: a 2.0 #D# packet with its CRC (8 satellites when valid, 0
    otherwise; speed in km/h with three decimals)."""
    when = report.fix_time.astimezone(dt.UTC)
    fields = [
        when.strftime("%d%m%y"), when.strftime("%H%M%S"),
        _encode_coordinate(report.latitude, 2), "N" if report.latitude >= 0 else "S",
        _encode_coordinate(report.longitude, 3), "E" if report.longitude >= 0 else "W",
        f"{report.speed_kn * KMH_PER_KNOT:.3f}", f"{report.course_deg % 360:.2f}", "NA",
        "8" if report.valid else "0", "NA", "NA", "NA", "NA", "NA", device_params(report.alarm),
    ]
    return f"#D#{_with_crc(';'.join(fields) + ';')}".encode() + EOL


def device_ping() -> bytes:
    """DEVICE side: ping (heartbeat)."""
    return b"#P#" + EOL


_SUCCESS = re.compile(rb"#A(?:L|SD|D|P|M)#1?|#AB#\d+")


class DeviceAckReader:
    """DEVICE side, as `protocols.base.AckReader`: one None per successful
    answer line (#AL#1, #ASD#1, #AD#1, #AB#n, #AP#, #AM#1); error answers and
    other lines (a #M# from the server) yield nothing."""

    def __init__(self) -> None:
        self._framer = Framer()

    def receive_data(self, data: bytes) -> list[int | None]:
        self._framer.feed(data)
        return [None for line in self._framer.frames()
                if _SUCCESS.fullmatch(line.rstrip(b"\r\n"))]


@dataclasses.dataclass(frozen=True, slots=True)
class WialonDevice:
    """DEVICE side of Wialon IPS 2.0 for `tracker simulate` (see `protocols.base.DeviceSide`)."""

    transport: str = "tcp"
    acks_login: bool = True
    acks_reports: bool = True

    def login(self, unique_id: str, serial: int) -> bytes:
        return device_login(unique_id)

    def report(self, unique_id: str, serial: int, report: DeviceReport) -> bytes:
        return device_data(report)

    def heartbeat(self, unique_id: str, serial: int) -> bytes:
        return device_ping()

    def ack_reader(self) -> DeviceAckReader:
        return DeviceAckReader()


DEVICE = WialonDevice()


__all__ = [
    "DEVICE", "DeviceAckReader", "WialonDevice", "device_data", "device_login", "device_params",
    "device_ping"
]
