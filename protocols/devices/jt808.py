"""The device side of JT/T 808, for `tracker simulate` and tests (the server
never uses it): what a simulated device sends and how it reads the server's replies.

The wire format is `protocols.jt808`'s (see its docstring); this module only
builds device frames and reads server replies with it.
"""

from __future__ import annotations

import dataclasses

from protocols.base import DeviceReport
from protocols.jt808 import (
    ALARM_BITS,
    COORD_DIVISOR,
    GMT8,
    Framer,
    MsgId,
    build_message,
    check_checksum,
    parse_header,
)
from protocols.values import KMH_PER_KNOT


def device_terminal(unique_id: str) -> tuple[bytes, int | None]:
    """(BCD terminal number, header version) for an id: up to 12 digits use a
    2013 header, longer ids (IMEIs) a 2019 header with 20 digits."""
    if not unique_id.isdigit() or len(unique_id) > 20:
        raise ValueError(f"JT808 terminal numbers are up to 20 digits: {unique_id!r}")
    if len(unique_id) <= 12:
        return bytes.fromhex(unique_id.rjust(12, "0")), None
    return bytes.fromhex(unique_id.rjust(20, "0")), 1


def device_register(unique_id: str, serial: int) -> bytes:
    """DEVICE side: registration 0x0100 (province, city, maker, model, terminal id,
    plate colour 0, plate "SIM")."""
    terminal, version = device_terminal(unique_id)
    maker, model, term = (11, 30, 30) if version is not None else (5, 20, 7)
    body = (bytes(4) + b"TRKR".ljust(maker, b"\x00") + b"SIM808".ljust(model, b"\x00")
            + unique_id[-term:].encode().ljust(term, b"\x00") + b"\x00SIM")
    return build_message(MsgId.REGISTER, body, serial, terminal, version)


DEVICE_ALARM_BITS = {alarm: bit for bit, alarm in ALARM_BITS}


def device_location(unique_id: str, serial: int, report: DeviceReport, satellites: int = 8) -> bytes:
    """DEVICE side: location 0x0200 with the report's alarm as its alarm bit,
    mileage 0, signal 31 and `satellites`."""
    terminal, version = device_terminal(unique_id)
    alarm = 0
    if report.alarm:
        if report.alarm not in DEVICE_ALARM_BITS:
            raise ValueError(f"unsupported JT808 alarm {report.alarm!r}")
        alarm = 1 << DEVICE_ALARM_BITS[report.alarm]
    status = (0x02 if report.valid else 0) | (0x04 if report.latitude < 0 else 0) | \
        (0x08 if report.longitude < 0 else 0)
    local = report.fix_time.astimezone(GMT8)
    body = (alarm.to_bytes(4, "big") + status.to_bytes(4, "big")
            + round(abs(report.latitude) * COORD_DIVISOR).to_bytes(4, "big")
            + round(abs(report.longitude) * COORD_DIVISOR).to_bytes(4, "big")
            + bytes(2) + min(0xFFFF, round(report.speed_kn * KMH_PER_KNOT * 10)).to_bytes(2, "big")
            + (round(report.course_deg) % 360).to_bytes(2, "big")
            + bytes.fromhex(local.strftime("%y%m%d%H%M%S"))
            + b"\x01\x04" + bytes(4) + b"\x30\x01\x1f\x31\x01" + bytes([satellites & 0xFF]))
    return build_message(MsgId.LOCATION, body, serial, terminal, version)


def device_heartbeat(unique_id: str, serial: int) -> bytes:
    """DEVICE side: heartbeat 0x0002 (empty body)."""
    terminal, version = device_terminal(unique_id)
    return build_message(MsgId.HEARTBEAT, b"", serial, terminal, version)


def parse_reply(frame: bytes) -> tuple[int, int | None]:
    """(message id, acknowledged serial) of a server frame: the serial quoted by
    0x8001 / 0x8100, None for other messages (commands).  ProtocolError when the
    frame is not a valid JT808 frame."""
    header = parse_header(frame)
    check_checksum(frame)
    if header.msg_id in (MsgId.GENERAL_RESPONSE, MsgId.REGISTER_RESPONSE) and \
            len(frame) - 2 - header.body_start >= 2:
        return header.msg_id, int.from_bytes(frame[header.body_start:header.body_start + 2], "big")
    return header.msg_id, None


class DeviceAckReader:
    """DEVICE side, as `protocols.base.AckReader`: yields the serial quoted by each
    0x8001 / 0x8100 reply; commands from the server acknowledge nothing."""

    def __init__(self) -> None:
        self._framer = Framer()

    def receive_data(self, data: bytes) -> list[int | None]:
        self._framer.feed(data)
        tokens: list[int | None] = []
        for frame in self._framer.frames():
            if frame[:1] == b"(":
                continue
            _, serial = parse_reply(frame)
            if serial is not None:
                tokens.append(serial)
        return tokens


@dataclasses.dataclass(frozen=True, slots=True)
class Jt808Device:
    """DEVICE side of JT808 for `tracker simulate` (see `protocols.base.DeviceSide`)."""

    transport: str = "tcp"
    acks_login: bool = True
    acks_reports: bool = True

    def login(self, unique_id: str, serial: int) -> bytes:
        return device_register(unique_id, serial)

    def report(self, unique_id: str, serial: int, report: DeviceReport) -> bytes:
        return device_location(unique_id, serial, report)

    def heartbeat(self, unique_id: str, serial: int) -> bytes:
        return device_heartbeat(unique_id, serial)

    def ack_reader(self) -> DeviceAckReader:
        return DeviceAckReader()


DEVICE = Jt808Device()


__all__ = [
    "DEVICE", "DEVICE_ALARM_BITS", "DeviceAckReader", "Jt808Device", "device_heartbeat",
    "device_location", "device_register", "device_terminal", "parse_reply"
]
