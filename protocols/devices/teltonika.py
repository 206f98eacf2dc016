"""The device side of Teltonika, for `tracker simulate` and tests (the server
never uses it): what a simulated device sends and how it reads the server's replies.

The wire format is `protocols.teltonika`'s (see its docstring); this module only
builds device frames and reads server replies with it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import struct

from protocols.base import (
    DeviceReport,
    ProtocolError,
)
from protocols.teltonika import (
    MAX_FRAME_BYTES,
    MAX_IMEI_DIGITS,
    PING,
    PREAMBLE,
    UNIX_EPOCH,
    CodecId,
    MessageType,
    crc_ok,
    tcp_packet,
)
from protocols.values import KMH_PER_KNOT


def device_hello(imei: str) -> bytes:
    """DEVICE side: the IMEI hello that opens a TCP connection."""
    if not imei.isdigit() or not 1 <= len(imei) <= MAX_IMEI_DIGITS:
        raise ValueError(f"IMEI must be 1..{MAX_IMEI_DIGITS} digits: {imei!r}")
    return len(imei).to_bytes(2, "big") + imei.encode("ascii")


_DEVICE_ALARMS = {
    "sos": (236, 1),
    "hardAcceleration": (253, 1), "hardBraking": (253, 2), "hardCornering": (253, 3),
}
"""Alarms a Codec 8 record can carry on every model: (event IO id, value)."""


def device_record(fix_time: dt.datetime, latitude: float, longitude: float, *,  # noqa: PLR0917
                  speed_kmh: float = 0.0, course_deg: float = 0.0, valid: bool = True,
                  satellites: int = 8, alarm: str | None = None) -> bytes:
    """DEVICE side: one Codec 8 record.  An alarm (see `_DEVICE_ALARMS`) becomes
    the record's event element with priority 2 (panic); an invalid fix is sent
    with 0 satellites.  Speed and course travel as whole units."""
    event, elements = 0, b""
    priority = 0
    if alarm is not None:
        if alarm not in _DEVICE_ALARMS:
            raise ValueError(f"unsupported Teltonika alarm {alarm!r}; known: {sorted(_DEVICE_ALARMS)}")
        event, value = _DEVICE_ALARMS[alarm]
        elements = bytes([event, value])
        priority = 2
    ms = round((fix_time - UNIX_EPOCH).total_seconds() * 1000)
    gps = struct.pack(">iihHBH", round(longitude * 1e7), round(latitude * 1e7), 0,
                      round(course_deg) % 360, satellites if valid else 0,
                      max(0, min(0xFFFF, round(speed_kmh))))
    io = bytes([event, len(elements) // 2, len(elements) // 2]) + elements + b"\x00\x00\x00"
    return ms.to_bytes(8, "big") + bytes([priority]) + gps + io


def device_avl(records: list[bytes], codec: int = CodecId.CODEC_8) -> bytes:
    """DEVICE side: a TCP AVL packet holding already encoded records."""
    count = bytes([len(records)])
    return tcp_packet(bytes([codec]) + count + b"".join(records) + count)


def device_udp(imei: str, packet_id: int, avl_packet_id: int, records: list[bytes],
               codec: int = CodecId.CODEC_8) -> bytes:
    """DEVICE side: a UDP datagram with channel header, IMEI and records."""
    count = bytes([len(records)])
    body = (packet_id.to_bytes(2, "big") + b"\x01" + bytes([avl_packet_id])
            + len(imei).to_bytes(2, "big") + imei.encode("ascii")
            + bytes([codec]) + count + b"".join(records) + count)
    return len(body).to_bytes(2, "big") + body


def device_response(text: str) -> bytes:
    """DEVICE side: a Codec 12 response (type 0x06) to a command."""
    payload = text.encode("latin-1")
    return tcp_packet(bytes([CodecId.CODEC_12, 1, MessageType.RESPONSE])
                      + len(payload).to_bytes(4, "big") + payload + b"\x01")


class DeviceAckReader:
    """DEVICE side, as `protocols.base.AckReader`: reads the server's TCP replies.

    0x01 accepts the hello; a 4-byte record count acknowledges an AVL packet
    (it names no packet, so it yields None: the oldest unacknowledged one); a
    Codec 12 command (preamble 00 00 00 00) acknowledges nothing.  A 0x00 hello
    refusal is not expected from this server and would be read as the start of a
    count.  A command with a bad CRC or over the size cap raises ProtocolError.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.commands: list[bytes] = []

    def receive_data(self, data: bytes) -> list[int | None]:
        self._buffer += data
        tokens: list[int | None] = []
        buf = self._buffer
        while buf:
            if buf[0] == 0x01:
                del buf[:1]
                tokens.append(None)
            elif len(buf) < 4:
                break
            elif buf[:4] != PREAMBLE:
                del buf[:4]
                tokens.append(None)
            elif not self._take_command():
                break
        return tokens

    def _take_command(self) -> bool:
        buf = self._buffer
        if len(buf) < 8:
            return False
        total = 12 + int.from_bytes(buf[4:8], "big")
        if total > MAX_FRAME_BYTES:
            del buf[:4]
            raise ProtocolError(f"teltonika: server packet of {total} bytes exceeds {MAX_FRAME_BYTES}")
        if len(buf) < total:
            return False
        frame = bytes(buf[:total])
        del buf[:total]
        if not crc_ok(frame):
            raise ProtocolError("teltonika: server packet with a bad CRC", frame)
        self.commands.append(frame)
        return True


@dataclasses.dataclass(frozen=True, slots=True)
class TeltonikaDevice:
    """DEVICE side of Teltonika (TCP, Codec 8) for `tracker simulate`."""

    transport: str = "tcp"
    acks_login: bool = True
    acks_reports: bool = True

    def login(self, unique_id: str, serial: int) -> bytes:
        return device_hello(unique_id)

    def report(self, unique_id: str, serial: int, report: DeviceReport) -> bytes:
        record = device_record(report.fix_time, report.latitude, report.longitude,
                               speed_kmh=report.speed_kn * KMH_PER_KNOT,
                               course_deg=report.course_deg, valid=report.valid, alarm=report.alarm)
        return device_avl([record])

    def heartbeat(self, unique_id: str, serial: int) -> bytes:
        """The 0xFF ping FMB devices send to keep the link up (never answered)."""
        return PING

    def ack_reader(self) -> DeviceAckReader:
        return DeviceAckReader()


DEVICE = TeltonikaDevice()


__all__ = [
    "DEVICE", "DeviceAckReader", "TeltonikaDevice", "device_avl", "device_hello",
    "device_record", "device_response", "device_udp"
]
