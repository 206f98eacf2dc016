"""A `protocols.base.DeviceSide` for the text protocols whose frames carry no serial
number: the frame builders get the unique id (and the report) only."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from protocols.base import DeviceReport


def no_login(unique_id: str) -> bytes:
    """The login frame of a protocol without one: nothing."""
    return b""


@dataclasses.dataclass(frozen=True, slots=True)
class SerialFreeDevice:
    """DEVICE side built from frame builders that ignore the simulator's serial.

    `login_frame` may be `no_login` for protocols without a login (then the first
    report identifies the device); `ack_reader` makes a fresh reader of the
    server's answers per connection."""

    transport: str
    acks_login: bool
    acks_reports: bool
    login_frame: Callable[[str], bytes]
    report_frame: Callable[[str, DeviceReport], bytes]
    heartbeat_frame: Callable[[str], bytes]
    make_ack_reader: Callable[[], Any]

    def login(self, unique_id: str, serial: int) -> bytes:
        return self.login_frame(unique_id)

    def report(self, unique_id: str, serial: int, report: DeviceReport) -> bytes:
        return self.report_frame(unique_id, report)

    def heartbeat(self, unique_id: str, serial: int) -> bytes:
        return self.heartbeat_frame(unique_id)

    def ack_reader(self) -> Any:
        return self.make_ack_reader()


__all__ = ["SerialFreeDevice", "no_login"]
