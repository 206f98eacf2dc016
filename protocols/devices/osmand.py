"""The device side of OsmAnd (HTTP), for `tracker simulate` and tests (the server
never uses it): what a simulated device sends and how it reads the server's replies.

The wire format is `protocols.osmand`'s (see its docstring); this module only
builds device frames and reads server replies with it.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urlencode

from protocols.base import (
    DeviceReport,
    HttpRequest,
)


def device_request(unique_id: str, report: DeviceReport) -> HttpRequest:
    """DEVICE side: the GET request Traccar Client sends (speed in knots,
    timestamp in Unix seconds with milliseconds)."""
    params = [("id", unique_id), ("lat", f"{report.latitude:.6f}"), ("lon", f"{report.longitude:.6f}"),
              ("timestamp", f"{report.fix_time.timestamp():.3f}"), ("speed", f"{report.speed_kn:.3f}"),
              ("bearing", f"{report.course_deg % 360:.2f}"), ("altitude", "0")]
    if not report.valid:
        params.append(("valid", "false"))
    if report.alarm:
        params.append(("alarm", report.alarm))
    return HttpRequest("GET", "/?" + urlencode(params))


class DeviceAckReader:
    """DEVICE side: the HTTP status is the ack and the simulator reads it
    itself; bytes given here yield no token."""

    def receive_data(self, data: bytes) -> list[int | None]:
        return []


@dataclasses.dataclass(frozen=True, slots=True)
class OsmandDevice:
    """DEVICE side of OsmAnd for `tracker simulate` (see `protocols.base.DeviceSide`)."""

    transport: str = "http"
    acks_login: bool = False
    acks_reports: bool = True

    def login(self, unique_id: str, serial: int) -> bytes:
        return b""

    def report(self, unique_id: str, serial: int, report: DeviceReport) -> HttpRequest:
        return device_request(unique_id, report)

    def heartbeat(self, unique_id: str, serial: int) -> bytes:
        return b""

    def ack_reader(self) -> DeviceAckReader:
        return DeviceAckReader()


DEVICE = OsmandDevice()


__all__ = ["DEVICE", "DeviceAckReader", "OsmandDevice", "device_request"]
