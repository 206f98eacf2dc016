"""The device side of GT06 (Concox), for `tracker simulate` and tests (the server
never uses it): what a simulated device sends and how it reads the server's replies.

The wire format is `protocols.gt06`'s (see its docstring); this module only
builds device frames and reads server replies with it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from protocols.base import DeviceReport
from protocols.gt06 import (
    ACKED_TYPES,
    COORD_DIVISOR,
    STATUS_ALARMS,
    Framer,
    MsgType,
    build_packet,
    parse_envelope,
)
from protocols.values import KMH_PER_KNOT


def _encode_datetime(when: dt.datetime) -> bytes:
    t = when.astimezone(dt.UTC)
    return bytes([t.year - 2000, t.month, t.day, t.hour, t.minute, t.second])


def _encode_gps(fix_time: dt.datetime, latitude: float, longitude: float, *, speed_kmh: float,
                course_deg: float, valid: bool, satellites: int) -> bytes:
    """The 18-byte GPS block as a device writes it."""
    flags = (int(round(course_deg)) % 360) & 0x03FF
    flags |= 0x1000 if valid else 0
    flags |= 0x0400 if latitude >= 0 else 0
    flags |= 0x0800 if longitude < 0 else 0
    return (_encode_datetime(fix_time) + bytes([0xC0 | (min(satellites, 15) & 0x0F)])
            + round(abs(latitude) * COORD_DIVISOR).to_bytes(4, "big")
            + round(abs(longitude) * COORD_DIVISOR).to_bytes(4, "big")
            + bytes([max(0, min(255, round(speed_kmh)))]) + flags.to_bytes(2, "big"))


_DEVICE_CELL = bytes(8)  # MCC, MNC, LAC, CI all zero: "no cell", decoded as no network


def device_login(imei: str, serial: int) -> bytes:
    """DEVICE side: login (0x01) with the IMEI as 8 bytes of BCD."""
    if not imei.isdigit() or len(imei) > 16:
        raise ValueError(f"IMEI must be up to 16 digits: {imei!r}")
    return build_packet(MsgType.LOGIN, bytes.fromhex(imei.rjust(16, "0")), serial)


def device_location(  # noqa: PLR0917 - the simulator's agreed signature
        serial: int, fix_time: dt.datetime, latitude: float, longitude: float,
        speed_kmh: float, course_deg: float, valid: bool = True, satellites: int = 8) -> bytes:
    """DEVICE side: GPS + LBS location (0x12); speed in km/h, whole units."""
    content = _encode_gps(fix_time, latitude, longitude, speed_kmh=speed_kmh,
                          course_deg=course_deg, valid=valid, satellites=satellites) + _DEVICE_CELL
    return build_packet(MsgType.GPS_LBS, content, serial)


def device_heartbeat(serial: int, battery_level: int = 4, gsm_signal: int = 4,
                     ignition: bool = False) -> bytes:
    """DEVICE side: status / heartbeat (0x13).  `battery_level` is the 0..6
    voltage level, `gsm_signal` 0..4."""
    status = 0x40 | (0x02 if ignition else 0)
    content = bytes([status, battery_level & 0xFF, gsm_signal & 0xFF, 0x00, 0x02])
    return build_packet(MsgType.STATUS, content, serial)


_DEVICE_STATUS_ALARMS = {name: bits for bits, name in STATUS_ALARMS.items()}
_DEVICE_ALARM_CODES = {"overspeed": 0x06, "tampering": 0x13, "door": 0x14, "powerOff": 0x11}


def device_alarm(  # noqa: PLR0917 - the simulator's agreed signature
        serial: int, fix_time: dt.datetime, latitude: float, longitude: float,
        speed_kmh: float, course_deg: float, alarm: str) -> bytes:
    """DEVICE side: alarm (0x16).  `alarm` is a Traccar alarm name: sos,
    powerCut, vibration, lowBattery, removing (terminal-information bits) or
    overspeed, tampering, door, powerOff (alarm byte)."""
    status, code = 0x40, 0x00
    if alarm in _DEVICE_STATUS_ALARMS:
        status |= _DEVICE_STATUS_ALARMS[alarm] << 3
    elif alarm in _DEVICE_ALARM_CODES:
        code = _DEVICE_ALARM_CODES[alarm]
    else:
        raise ValueError(f"unsupported GT06 alarm {alarm!r}")
    content = (_encode_gps(fix_time, latitude, longitude, speed_kmh=speed_kmh,
                           course_deg=course_deg, valid=True, satellites=8)
               + b"\x09" + _DEVICE_CELL + bytes([status, 0x04, 0x04, code, 0x02]))
    return build_packet(MsgType.GPS_LBS_STATUS, content, serial)


def device_command_response(serial: int, text: str) -> bytes:
    """DEVICE side: a device's answer to an online command (0x15): length,
    server flag (0), ASCII text, language (English)."""
    body = b"\x00\x00\x00\x00" + text.encode("ascii")
    return build_packet(MsgType.STRING_INFO, bytes([len(body)]) + body + b"\x00\x02", serial)


class AckReader:
    """DEVICE side: splits the server's byte stream into whole reply frames
    (strict framing: a bad CRC or oversize frame raises ProtocolError)."""

    def __init__(self) -> None:
        self._framer = Framer()

    def receive_data(self, data: bytes) -> list[bytes]:
        """Buffer `data`; return the reply frames it completed, in order."""
        self._framer.feed(data)
        return self._framer.frames()


class DeviceAckReader:
    """DEVICE side, as `protocols.base.AckReader`: yields the serial of every
    server ack (time replies and commands acknowledge nothing)."""

    def __init__(self) -> None:
        self._reader = AckReader()

    def receive_data(self, data: bytes) -> list[int | None]:
        tokens: list[int | None] = []
        for frame in self._reader.receive_data(data):
            message_type, serial = parse_ack(frame)
            if message_type in ACKED_TYPES:
                tokens.append(serial)
        return tokens


@dataclasses.dataclass(frozen=True, slots=True)
class Gt06Device:
    """DEVICE side of GT06 for `tracker simulate` (see `protocols.base.DeviceSide`)."""

    transport: str = "tcp"
    acks_login: bool = True
    acks_reports: bool = True

    def login(self, unique_id: str, serial: int) -> bytes:
        return device_login(unique_id, serial)

    def report(self, unique_id: str, serial: int, report: DeviceReport) -> bytes:
        speed_kmh = report.speed_kn * KMH_PER_KNOT
        if report.alarm:
            return device_alarm(serial, report.fix_time, report.latitude, report.longitude,
                                speed_kmh, report.course_deg, report.alarm)
        return device_location(serial, report.fix_time, report.latitude, report.longitude,
                               speed_kmh, report.course_deg, valid=report.valid)

    def heartbeat(self, unique_id: str, serial: int) -> bytes:
        return device_heartbeat(serial)

    def ack_reader(self) -> DeviceAckReader:
        return DeviceAckReader()


DEVICE = Gt06Device()


def parse_ack(frame: bytes) -> tuple[int, int]:
    """(message type, serial) of a server reply frame (ack or time reply);
    ProtocolError when it is not a valid frame."""
    env = parse_envelope(frame)
    assert env.serial is not None  # strict parsing always yields a serial
    return env.type, env.serial


__all__ = [
    "AckReader", "DEVICE", "DeviceAckReader", "Gt06Device", "device_alarm",
    "device_command_response", "device_heartbeat", "device_location", "device_login",
    "parse_ack"
]
