"""GT06 / Concox binary protocol: framing, decoding, acknowledgements.

Spec followed: Concox "GPS Tracker Communication Protocol" for GT06 / GT06N /
GT06E / JM-VW01 (V1.x, 0x78 0x78 packets with login, status and alarm), the
GT03 document (0x10..0x1A packet family) and the Concox 4G / VL-series
additions (0x79 0x79 packets, 0x22/0x26/0x94/0xA0-0xA5), completed by the
frames of real devices collected in Traccar's test suite where the documents
are silent.  Where a dialect is only known from captures, the decoder names it
("observed") rather than pretending a document describes it.

Transports: TCP (a byte stream, `receive_data`) and UDP (one or more whole
frames per datagram, `receive_datagram`), both on port 5023 as in Traccar.

Framing::

    0x78 0x78 | length (1 byte) | type | content | serial (2) | CRC (2) | 0x0D 0x0A
    0x79 0x79 | length (2 bytes, big endian) | type | ...          (same)

`length` counts type, content, serial and CRC.  The CRC is CRC-ITU, i.e.
CRC-16/X-25 (reflected poly 0x1021, init and xorout 0xFFFF), computed over
the bytes from the length field through the serial number.  There is no
escaping.  Frames longer than `MAX_FRAME_BYTES` are refused.

By default the codec is strict: a bad CRC, an impossible length field or
missing stop bits raise `ProtocolError`.  The option `lenient=True` decodes
such frames as far as their bytes allow, like Traccar (which checks no CRC):
frames with stale checksums, truncated frames, and the CRC-less legacy
Wi-Fi/cell reports 0x17/0x69 whose length byte carries a count.

Dialects (option `modelOverride`, as Traccar's per-device setting): VL103,
NT20, XT40, QH302R, R11, SEEWORLD, G18 and the LW4G family change the layout
or the alarm codes of a few packet types; several other variants are told
apart by the content length (documented at each decoder).

Units and time: times are UTC (the devices send UTC date-time; the time-zone
field of the extended login only serves the device's own SMS replies and is
not applied).  Coordinates are degrees = raw / 1 800 000 (minutes x 30 000),
signs from the course-status word.  Speed arrives in km/h and is converted to
knots.  Voltages are volts, odometer metres unless a decoder notes otherwise,
`hours` milliseconds, `batteryLevel` percent (the 0..6 "voltage level" scale
is mapped to 0..100).

The device side (login, location, heartbeat, alarm builders, `parse_ack`) for
the device simulator and tests is `protocols.devices.gt06`; the server never
uses it.  `split_frames` lets such a client read server replies.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from protocols.base import (
    CodecSpec,
    Command,
    CommandResult,
    Frame,
    Login,
    Message,
    Position,
    ProtocolError,
    UnsupportedCommand,
)
from protocols.binary import Reader
from protocols.checksums import crc16_x25
from protocols.framing import StreamFramer
from protocols.session import DecoderTable, StreamSession
from protocols.values import KMH_PER_KNOT, add_alarm, cell_tower, option_flag
from protocols.values import network as network_map

NAME = "gt06"
DEFAULT_LISTEN = ("tcp:5023", "udp:5023")
MAX_FRAME_BYTES = 2048
"""Largest whole frame accepted, start to stop bits.  0x7979 frames may declare
up to 65 535 bytes, but no Concox packet needs more than a few hundred."""

START_SHORT = b"\x78\x78"
START_LONG = b"\x79\x79"
STOP = b"\r\n"
COORD_DIVISOR = 1_800_000.0


@enum.unique
class MsgType(enum.IntEnum):
    """Protocol numbers (the byte after the length field)."""

    LOGIN = 0x01
    HEARTBEAT_SHORT = 0x08
    GPS = 0x10
    GPS_LBS_LEGACY = 0x11
    GPS_LBS = 0x12
    STATUS = 0x13
    STRING_INFO = 0x15
    GPS_LBS_STATUS = 0x16
    LBS_PHONE = 0x17
    LBS_EXTEND = 0x18
    LBS_STATUS = 0x19
    GPS_PHONE = 0x1A
    COMMAND_RESPONSE = 0x21
    GPS_LBS_2 = 0x22
    HEARTBEAT = 0x23
    GPS_LBS_3 = 0x24
    GPS_LBS_DRIVER = 0x25
    ALARM = 0x26
    ALARM_FENCE = 0x27
    LBS_MULTIPLE = 0x28
    ADDRESS_REQUEST = 0x2A
    WIFI = 0x2C
    GPS_LBS_ALTITUDE = 0x31
    GPS_LBS_STATUS_ALTITUDE = 0x32
    STATUS_EXTENDED = 0x33
    GPS_LBS_IO = 0x34
    STATUS_TLV = 0x36
    GPS_LBS_ARCHIVE = 0x37
    GPS_LBS_RFID = 0x61
    WIFI_LBS = 0x69
    TLV = 0x70
    COMMAND = 0x80
    TIME_REQUEST = 0x8A
    OBD = 0x8C
    INFO = 0x94
    EVENT = 0x95
    SERIAL_DATA = 0x9B
    GPS_4G = 0xA0
    LBS_4G = 0xA1
    WIFI_4G = 0xA2
    STATUS_4G = 0xA3
    ALARM_4G = 0xA4
    LBS_ALARM_4G = 0xA5
    EXTENDED_STATUS = 0xF1
    EXTERNAL_BATTERY = 0xF2
    WIFI_LIST = 0xF3


UNACKED_TYPES = frozenset({
    MsgType.STRING_INFO, MsgType.COMMAND_RESPONSE, MsgType.SERIAL_DATA, MsgType.INFO,
    MsgType.GPS_PHONE, MsgType.ADDRESS_REQUEST, MsgType.LBS_PHONE, MsgType.TIME_REQUEST,
    MsgType.COMMAND,
})
"""Known packets that get no acknowledgement: command replies and information
(the spec asks for none), address requests (they await an address, which
this server does not provide) and the time request (answered with the time)."""

ACKED_TYPES = frozenset(MsgType) - UNACKED_TYPES
"""Every other known packet is acknowledged with its type and serial.  The
Concox documents require it for login, heartbeats and alarms; for locations
the ack is what the server sends once the data is stored (store-then-ack),
and devices that do not wait for it ignore it.  Unknown types are not acked."""


# --------------------------------------------------------------------------
# CRC
# --------------------------------------------------------------------------

def crc_itu(data: bytes) -> int:
    """CRC-ITU as Concox names it: CRC-16/X-25 (check value 0x906E for b"123456789")."""
    return crc16_x25(data)


# --------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------

def _header_size(start: bytes) -> int:
    """Start bits plus length field: 3 for 0x7878, 4 for 0x7979."""
    return 3 if start == START_SHORT else 4


def _declared_total(buf: bytes | bytearray) -> int:
    """Whole-frame size the length field announces (start to stop bits)."""
    if buf[:2] == START_SHORT:
        return 3 + buf[2] + 2
    return 4 + int.from_bytes(buf[2:4], "big") + 2


def _find_start(buf: bytearray, begin: int = 0) -> int:
    """Index of the first 0x7878 / 0x7979 at or after `begin`, or -1."""
    hits = [i for i in (buf.find(START_SHORT, begin), buf.find(START_LONG, begin)) if i >= 0]
    return min(hits) if hits else -1


class Framer(StreamFramer):
    """Splits a TCP byte stream into whole GT06 frames.

    Bytes before a start marker are skipped (resynchronisation), up to
    `max_frame_bytes` of them in a row: more garbage than that without a frame
    raises `ProtocolError` (the peer is not a GT06 device).  A frame
    whose length field exceeds `max_frame_bytes`, whose length is too small to
    hold type, serial and CRC, whose stop bits are missing or whose CRC is
    wrong raises `ProtocolError`; its start marker is dropped first, so the
    next call resumes with the bytes after it.  In lenient mode CRCs are not
    checked and a frame whose length field does not land on stop bits (the
    legacy count-in-length reports) extends to the next 0x0D 0x0A instead.
    """

    name = NAME

    def __init__(self, *, lenient: bool = False, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        super().__init__(max_frame_bytes)
        self.lenient = lenient

    def _next_frame(self) -> bytes | None:
        buf = self._buffer
        while True:
            start = _find_start(buf)
            if start < 0:
                keep = 1 if buf[-1:] in (b"\x78", b"\x79") else 0
                self._skip(len(buf) - keep)
                return None
            self._skip(start)
            if len(buf) < _header_size(bytes(buf[:2])):
                return None
            total = _declared_total(buf)
            if total > self.max_frame_bytes:
                self._reject(f"declared frame size {total} exceeds {self.max_frame_bytes}", 2)
            if not self._false_start(total):
                break
            del buf[:1]
        if self.lenient:
            return self._next_lenient(total)
        if total < _header_size(bytes(buf[:2])) + 7:
            self._reject(f"length field {total} too small", 2)
        if len(buf) < total:
            return None
        frame = bytes(buf[:total])
        if frame[-2:] != STOP:
            self._reject("missing stop bits 0d0a", 2, frame)
        try:
            _check_crc(frame)
        except ProtocolError:
            del buf[:2]
            raise
        del buf[:total]
        return frame

    def _false_start(self, total: int) -> bool:
        """True when the frame at the buffer's start is still incomplete but a
        later start marker begins a complete, well-formed frame: the first
        marker was then a stray 0x78/0x79 in garbage (e.g. 78 | 78 78 0d ...)."""
        buf = self._buffer
        if len(buf) >= total:
            return False
        later = _find_start(buf, 1)
        while 0 < later:
            if self._complete_at(later):
                return True
            later = _find_start(buf, later + 1)
        return False

    def _complete_at(self, index: int) -> bool:
        buf = self._buffer
        if len(buf) < index + 5:
            return False
        total = _declared_total(buf[index:index + 4])
        frame = bytes(buf[index:index + total])
        if len(frame) < total or total > self.max_frame_bytes or frame[-2:] != STOP:
            return False
        return self.lenient or crc_itu(frame[2:-4]) == int.from_bytes(frame[-4:-2], "big")

    def _next_lenient(self, total: int) -> bytes | None:
        buf = self._buffer
        if len(buf) >= total and buf[total - 2:total] == STOP and total >= 6:
            frame = bytes(buf[:total])
            del buf[:total]
            return frame
        if len(buf) < total:
            return None
        end = buf.find(STOP, 4)
        if end < 0:
            if len(buf) >= self.max_frame_bytes:
                self._reject("no stop bits within the frame size cap", 2)
            return None
        frame = bytes(buf[:end + 2])
        del buf[:end + 2]
        return frame


def _check_crc(frame: bytes) -> None:
    """Raise ProtocolError unless the CRC over length..serial matches
    (`frame` is a whole frame, stop bits included)."""
    crc_end = len(frame) - 4
    expected = int.from_bytes(frame[crc_end:crc_end + 2], "big")
    actual = crc_itu(frame[2:crc_end])
    if actual != expected:
        raise ProtocolError(f"gt06: bad CRC {expected:04x}, computed {actual:04x}", frame)


def split_frames(buffer: bytearray) -> list[bytes]:
    """Remove and return the complete frames at the front of `buffer`.

    For clients (the device simulator) reading server replies: garbage is
    skipped, a trailing partial frame stays in `buffer`.  Raises
    ProtocolError on a bad CRC or oversize frame.
    """
    return Framer().split(buffer)


# --------------------------------------------------------------------------
# Envelope: one frame -> type, content, serial
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class Envelope:
    """A frame taken apart.  `length_field` is the raw length (a count in the
    legacy 0x17/0x69 reports); `serial` is None for frames without one."""

    long: bool
    length_field: int
    type: int
    content: bytes
    serial: int | None


def parse_envelope(frame: bytes, *, lenient: bool = False) -> Envelope:
    """Check start, length and CRC of one whole frame and split it.

    Strict: the declared frame must be present with a good CRC; bytes after
    the CRC may only be (part of) the stop bits.  Lenient: no CRC check, and a
    frame whose length field does not fit is read from type to stop bits.
    """
    if frame[:2] not in (START_SHORT, START_LONG) or len(frame) < 5:
        raise ProtocolError("gt06: not a frame (bad start bits or too short)", frame)
    long = frame[:2] == START_LONG
    head = 4 if long else 3
    length = int.from_bytes(frame[2:head], "big")
    total = head + length + 2
    fits = length >= 5 and len(frame) >= total - 2 and STOP.startswith(frame[total - 2:])
    if not lenient:
        if not fits:
            raise ProtocolError("gt06: length field does not match the frame", frame)
        _check_crc(frame[:total - 2] + STOP)
    if fits:
        serial = int.from_bytes(frame[total - 6:total - 4], "big")
        return Envelope(long, length, frame[head], frame[head + 1:total - 6], serial)
    if len(frame) <= head:
        raise ProtocolError("gt06: frame has no type", frame)
    end = len(frame) - 2 if frame.endswith(STOP) else len(frame)
    return Envelope(long, length, frame[head], frame[head + 1:max(end, head + 1)], None)


def build_packet(msg_type: int, content: bytes, serial: int, *, long: bool = False) -> bytes:
    """Encode one frame (either direction)."""
    length = 1 + len(content) + 4
    head = START_LONG + length.to_bytes(2, "big") if long else START_SHORT + bytes([length])
    body = head[2:] + bytes([msg_type]) + content + (serial & 0xFFFF).to_bytes(2, "big")
    return head[:2] + body + crc_itu(body).to_bytes(2, "big") + STOP


def ack_frame(msg_type: int, serial: int, *, long: bool = False) -> bytes:
    """The server's acknowledgement: same type and serial, empty content."""
    return build_packet(msg_type, b"", serial, long=long)


def time_reply(serial: int, now: dt.datetime, *, long: bool = False) -> bytes:
    """Answer to a time request (0x8A): the server's UTC time YY MM DD hh mm ss."""
    t = now.astimezone(dt.UTC)
    content = bytes([t.year % 100, t.month, t.day, t.hour, t.minute, t.second])
    return build_packet(MsgType.TIME_REQUEST, content, serial, long=long)


def command_frame(text: str, serial: int, server_flag: int = 0) -> bytes:
    """Online command (0x80) carrying an ASCII command such as "WHERE,000000#"."""
    body = server_flag.to_bytes(4, "big") + text.encode("ascii")
    content = bytes([len(body)]) + body + b"\x00\x02"
    return build_packet(MsgType.COMMAND, content, serial, long=len(content) > 240)


# --------------------------------------------------------------------------
# Reading helpers
# --------------------------------------------------------------------------

def _datetime(r: Reader) -> dt.datetime:
    """YY MM DD hh mm ss (binary, UTC) -> aware datetime."""
    raw = r.take(6)
    try:
        return dt.datetime(2000 + raw[0], raw[1], raw[2], raw[3], raw[4], raw[5],
                           tzinfo=dt.UTC)
    except ValueError as exc:
        raise ProtocolError(f"gt06: invalid date-time {raw.hex()}", raw) from exc


def _bcd_datetime(r: Reader) -> dt.datetime:
    """YY MM DD hh mm ss in packed BCD (legacy reports) -> aware datetime."""
    raw = r.take(6)
    digits = raw.hex()
    if not digits.isdigit():
        raise ProtocolError(f"gt06: invalid BCD date-time {digits}", raw)
    values = [int(digits[i:i + 2]) for i in range(0, 12, 2)]
    try:
        year, month, day, hour, minute, second = values
        return dt.datetime(2000 + year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError as exc:
        raise ProtocolError(f"gt06: invalid date-time {digits}", raw) from exc


def _unix_time(r: Reader) -> dt.datetime:
    """4-byte Unix seconds -> aware datetime."""
    return dt.datetime.fromtimestamp(r.u32(), dt.UTC)


def _bcd(raw: bytes) -> str:
    """Packed BCD digits; a leading zero nibble of a 16-digit IMEI is dropped."""
    digits = raw.hex()
    return digits[1:] if len(digits) == 16 and digits[0] == "0" else digits


def _level_to_percent(level: int) -> int:
    """Battery: Concox "voltage level" 0..6 -> 0..100 %; larger values are
    already percentages (4G firmware)."""
    return level * 100 // 6 if level <= 6 else level


def _printable(text: str) -> bool:
    return all(" " <= ch <= "~" for ch in text)


# --------------------------------------------------------------------------
# Decoding context and common blocks
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """Session settings: `model` (Traccar's modelOverride, upper case) and
    `lenient` (accept bad CRCs / lengths, see the module docstring)."""

    model: str = ""
    lenient: bool = False

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> Options:
        """From decoder settings; strings such as "true" / "0" are accepted."""
        options = options or {}
        model = str(options.get("modelOverride") or options.get("model") or "").upper()
        return cls(model=model, lenient=option_flag(options.get("lenient", False)))

    @property
    def lw(self) -> bool:
        """The LW4G family reuses alarm codes for driving behaviour."""
        return self.model.startswith("LW")


@dataclasses.dataclass(slots=True)
class Context:
    """What a decoder may look at besides the content."""

    env: Envelope
    options: Options
    now: dt.datetime
    session: Gt06Session


@dataclasses.dataclass(slots=True)
class Fix:
    """A GPS block as decoded: time (UTC), degrees, knots, degrees."""

    time: dt.datetime
    valid: bool
    latitude: float
    longitude: float
    speed_kn: float = 0.0
    course_deg: float = 0.0
    altitude_m: float = 0.0


def _course_status(r: Reader, fix: Fix, attrs: dict[str, Any]) -> None:
    """The 16-bit course/status word: bits 0-9 course, 10 north, 11 west,
    12 positioned (valid); bit 14 set means bit 15 carries the ACC (ignition)."""
    flags = r.u16()
    fix.course_deg = float(flags & 0x03FF)
    fix.valid = bool(flags & 0x1000)
    if not flags & 0x0400:
        fix.latitude = -fix.latitude
    if flags & 0x0800:
        fix.longitude = -fix.longitude
    if flags & 0x4000:
        attrs["ignition"] = bool(flags & 0x8000)


def _gps(r: Reader, attrs: dict[str, Any], *, time: dt.datetime | None = None,
         satellites: bool = True) -> Fix:
    """Standard 18-byte GPS block: date-time (6), GPS length / satellites (1),
    latitude (4), longitude (4), speed km/h (1), course/status (2).
    `time` given means the block has no date-time of its own."""
    when = time if time is not None else _datetime(r)
    if satellites:
        attrs["sat"] = r.u8() & 0x0F
    fix = Fix(when, False, r.u32() / COORD_DIVISOR, r.u32() / COORD_DIVISOR)
    fix.speed_kn = r.u8() / KMH_PER_KNOT
    _course_status(r, fix, attrs)
    return fix


_LBS_WIDTHS = {  # block size (no length byte) -> MNC, LAC, cell-id widths
    8: (1, 2, 3), 9: (1, 2, 4), 10: (2, 2, 4), 14: (2, 2, 8), 15: (1, 4, 8), 16: (2, 4, 8),
}


def _cell(r: Reader, size: int) -> dict[str, Any] | None:
    """One serving cell: MCC (2, bit 15 = two-byte MNC), MNC, LAC, cell id.

    The field widths follow from the block `size`: 8 (GSM), 9-10 (4-byte
    cell id), 15-16 (LTE: 4-byte TAC, 8-byte ECI).  A cell with neither LAC nor
    id is no cell (devices fill zeros when they have none).
    """
    raw_mcc = r.u16()
    mnc_w, lac_w, cid_w = _LBS_WIDTHS.get(size, (1, 2, 3))
    if size == 9 and raw_mcc & 0x8000:
        mnc_w, lac_w, cid_w = 2, 2, 3
    if size in (8, 15) and raw_mcc & 0x8000:
        mnc_w = 2
    mnc, lac, cid = r.uint(mnc_w), r.uint(lac_w), r.uint(cid_w)
    r.skip(max(0, size - 2 - mnc_w - lac_w - cid_w))
    return cell_tower(raw_mcc & 0x7FFF, mnc, lac, cid) if lac or cid else None


def _lbs_sized(r: Reader, n: int) -> dict[str, Any] | None:
    """An LBS block of `n` bytes: with a leading length byte when n >= 9
    (the byte's value is not trusted, devices disagree whether it counts
    itself), bare MCC/MNC/LAC/CI when n == 8; 0 or a zero length byte: none."""
    if n <= 0:
        return None
    if n < 8:
        r.skip(n)
        return None
    if n == 8:
        return _cell(r, 8)
    if r.u8() == 0:
        r.skip(n - 1)
        return None
    return _cell(r, n - 1)


def _network(cells: Iterable[dict[str, Any] | None] = (),
             wifi: Iterable[dict[str, Any]] = (), *, radio: str = "gsm") -> dict[str, Any] | None:
    """values.network, but skipping None cells and duplicates (order kept)."""
    towers: list[dict[str, Any]] = []
    for cell in cells:
        if cell is not None and cell not in towers:
            towers.append(cell)
    return network_map(towers, list(wifi), radio)


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _wifi(r: Reader, count: int) -> list[dict[str, Any]]:
    """`count` access points of MAC (6) + signal (1, -dBm)."""
    return [{"macAddress": _mac(r.take(6)), "signalStrength": -r.u8()} for _ in range(count)]


def _status(attrs: dict[str, Any], status: int) -> None:
    """Terminal-information byte: bit 1 ACC, bit 2 charging, bit 7 fuel/power
    cut ("blocked"); bits 3-5 an alarm (see `STATUS_ALARMS`)."""
    attrs["status"] = status
    attrs["ignition"] = bool(status & 0x02)
    attrs["charge"] = bool(status & 0x04)
    attrs["blocked"] = bool(status & 0x80)


STATUS_ALARMS = {1: "vibration", 2: "powerCut", 3: "lowBattery", 4: "sos", 7: "removing"}

_STATUS_MESSAGE_ALARMS = {
    0x01: "sos", 0x02: "powerCut", 0x03: "vibration", 0x04: "geofenceEnter",
    0x05: "geofenceExit", 0x06: "overspeed",
}
"""Alarm byte of the status packet (0x13), as in the GT06 document."""

_ALARM_CODES = {
    0x01: "sos", 0x02: "powerCut", 0x03: "vibration", 0x06: "overspeed",
    0x09: "vibration", 0x0C: "tampering", 0x0E: "lowPower", 0x0F: "lowPower",
    0x11: "powerOff", 0x13: "tampering", 0x14: "door", 0x19: "lowBattery",
}
"""Alarm byte of the alarm / location packets (0x16, 0x19, 0x26, 0x27, 0xA4...).
Fence in/out (0x04/0x05) are left to the geofence byte and the server's own
geofences, as the reference decoder does."""

_MODEL_ALARM_CODES = {
    "G18": {0x30: "hardBraking"},
    "LW": {0x19: "hardAcceleration", 0x1A: "hardBraking", 0x1B: "hardCornering"},
}


def _alarm_code(options: Options, code: int) -> str | None:
    family = "LW" if options.lw else options.model
    return _MODEL_ALARM_CODES.get(family, {}).get(code) or _ALARM_CODES.get(code)


def _status_block(r: Reader, ctx: Context, attrs: dict[str, Any]) -> None:
    """Terminal info (1), voltage level (1), GSM signal (1), alarm (1),
    language (1) as carried by the alarm packets."""
    status = r.u8()
    _status(attrs, status)
    attrs["batteryLevel"] = _level_to_percent(r.u8())
    attrs["rssi"] = r.u8()
    add_alarm(attrs, STATUS_ALARMS.get((status >> 3) & 0x07))
    code = r.u8()
    add_alarm(attrs, _alarm_code(ctx.options, code))
    if ctx.options.model == "VL103" and code:
        attrs["event"] = code
    r.skip(1)


# --------------------------------------------------------------------------
# Position construction
# --------------------------------------------------------------------------

def _position(fix: Fix, attrs: dict[str, Any], network: Mapping[str, Any] | None = None) -> Position:
    return Position(
        fix_time=fix.time, valid=fix.valid, latitude=fix.latitude, longitude=fix.longitude,
        altitude_m=fix.altitude_m, speed_kn=fix.speed_kn, course_deg=fix.course_deg,
        device_time=fix.time, attributes=attrs, network=network)


def _status_only(ctx: Context, attrs: dict[str, Any], time: dt.datetime | None = None,
                 network: Mapping[str, Any] | None = None) -> Position:
    """A record with status but no fix of its own (Traccar's "outdated")."""
    return Position(
        fix_time=time or ctx.now, valid=False, latitude=0.0, longitude=0.0,
        device_time=time, outdated=True, attributes=attrs, network=network)


Decoder = Callable[[Context, Reader], list[Message]]
_DECODERS: DecoderTable[int, Decoder] = DecoderTable(NAME)
_decoder = _DECODERS.register


# --------------------------------------------------------------------------
# Login, heartbeats, status
# --------------------------------------------------------------------------

@_decoder(MsgType.LOGIN)
def _login(ctx: Context, r: Reader) -> list[Message]:
    """Terminal id: 8 bytes BCD (IMEI with a leading 0); the extended form adds
    a type code (2) and time zone / language (2), which are not needed."""
    unique_id = _bcd(r.take(8))
    if not unique_id.isdigit():
        raise ProtocolError(f"gt06: login id {unique_id!r} is not BCD", ctx.env.content)
    ctx.session.unique_id = unique_id
    return [Login(unique_id)]


@_decoder(MsgType.HEARTBEAT_SHORT, MsgType.TIME_REQUEST, MsgType.ADDRESS_REQUEST,
          MsgType.GPS_PHONE, MsgType.LBS_PHONE)
def _no_record(ctx: Context, r: Reader) -> list[Message]:
    """Keep-alives and requests: nothing to store.  The time request is
    answered with the time; address requests (0x17, 0x1A, 0x2A) get no reply,
    this server has no geocoder.  The legacy CRC-less 0x17 cell report is
    decoded."""
    if ctx.env.type == MsgType.LBS_PHONE and ctx.env.serial is None:
        return _legacy_cells(ctx, r)
    return []


@_decoder(MsgType.STATUS)
def _status_packet(ctx: Context, r: Reader) -> list[Message]:
    """Status / heartbeat (0x13): terminal info, voltage level, GSM signal,
    alarm, language.  Dialects: R11 sends power (2, V/100) instead of level and
    signal; SEEWORLD sends power in volts in the alarm byte; LW4G sends power
    (V/10) in the language byte; 14- and 16-byte contents are extended forms."""
    size = r.remaining()
    if size == 14:
        return [_status_only(ctx, _status_extended(r))]
    if size == 16:
        return [_status_only(ctx, _status_temperature(r))]
    attrs: dict[str, Any] = {"type": ctx.env.type}
    status = r.u8()
    _status(attrs, status)
    model = ctx.options.model
    if model == "R11":
        attrs["power"] = r.u16() / 100
        attrs["rssi"] = r.u8()
        return [_status_only(ctx, attrs)]
    attrs["batteryLevel"] = _level_to_percent(r.u8())
    attrs["rssi"] = r.u8()
    add_alarm(attrs, STATUS_ALARMS.get((status >> 3) & 0x07))
    code = r.u8() if r.remaining() else 0
    if model == "SEEWORLD":
        attrs["power"] = float(code)
    else:
        add_alarm(attrs, _STATUS_MESSAGE_ALARMS.get(code))
    if ctx.options.lw and r.remaining():
        attrs["power"] = r.u8() / 10
    return [_status_only(ctx, attrs)]


def _status_extended(r: Reader) -> dict[str, Any]:
    """14-byte status (observed): terminal info, satellites/signal word (bits
    0-4 signal, 5-9 and 10-14 two constellations' satellite counts), flags (2;
    bit 1: temperature present), battery % (1), reserved (1), power (2, V/100),
    reserved (3), temperature (2, degC/10)."""
    attrs: dict[str, Any] = {"type": int(MsgType.STATUS)}
    _status(attrs, r.u8())
    word = r.u16()
    attrs["sat"] = ((word >> 5) & 0x1F) + ((word >> 10) & 0x1F)
    attrs["rssi"] = word & 0x1F
    flags = r.u16()
    attrs["batteryLevel"] = r.u8()
    r.skip(1)
    attrs["power"] = r.u16() / 100
    r.skip(3)
    temperature = r.s16()
    if flags & 0x0002:
        attrs["temp1"] = temperature / 10
    return attrs


def _status_temperature(r: Reader) -> dict[str, Any]:
    """16-byte status of a temperature logger (observed): battery % at offset
    5 and the temperature (2, degC/10, bit 15 a marker) at the end."""
    content = r.rest()
    return {"batteryLevel": content[5],
            "temp1": (int.from_bytes(content[14:16], "big") & 0x7FFF) / 10}


@_decoder(MsgType.HEARTBEAT)
def _heartbeat(ctx: Context, r: Reader) -> list[Message]:
    """Heartbeat (0x23): terminal info, battery voltage (2, V/100), GSM signal,
    language (2)."""
    status = r.u8()
    attrs: dict[str, Any] = {
        "armed": bool(status & 0x01), "ignition": bool(status & 0x02),
        "charge": bool(status & 0x04), "battery": r.u16() / 100, "rssi": r.u8()}
    return [_status_only(ctx, attrs)]


@_decoder(MsgType.STATUS_TLV)
def _status_tlv(ctx: Context, r: Reader) -> list[Message]:
    """0x36.  Default: status block followed by extension items (id 2, length
    1, value): 0x0018 battery V/100, 0x0032 startup status, 0x006A battery %.
    VL103 (44+ bytes): a location with ACC, upload mode, odometer, power,
    engine minutes and driver id."""
    if ctx.options.model == "VL103" and r.remaining() >= 18 + 9 + 17:
        return _vl103_location(ctx, r)
    attrs: dict[str, Any] = {"type": ctx.env.type}
    _status_block(r, ctx, attrs)
    while r.remaining() >= 3:
        item, size = r.u16(), r.u8()
        value = r.uint(size) if size <= 8 else 0
        if item == 0x0018:
            attrs["battery"] = value / 100
        elif item == 0x0032:
            attrs["startupStatus"] = value
        elif item == 0x006A:
            attrs["batteryLevel"] = value
    return [_status_only(ctx, attrs)]


def _vl103_location(ctx: Context, r: Reader) -> list[Message]:
    attrs: dict[str, Any] = {}
    fix = _gps(r, attrs)
    network = _network([_cell(r, 9)])
    attrs["ignition"] = r.u8() > 0
    attrs["uploadMode"] = r.u8()
    attrs["archive"] = r.u8() == 1
    attrs["odometer"] = r.u32()
    attrs["power"] = r.u16() / 100
    attrs["battery"] = r.u8() / 10
    attrs["hours"] = r.uint(3) * 60_000
    if r.remaining() >= 8:
        attrs["driverUniqueId"] = r.take(8).hex()
    return [_position(fix, attrs, network)]


# --------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------

@_decoder(MsgType.GPS)
def _gps_only(ctx: Context, r: Reader) -> list[Message]:
    """GPS packet (0x10, GT03): the GPS block; trailing bytes are ignored."""
    if r.remaining() < 18:
        return []
    attrs: dict[str, Any] = {"type": ctx.env.type}
    return [_position(_gps(r, attrs), attrs)]


@_decoder(MsgType.GPS_LBS_LEGACY)
def _gps_lbs_legacy(ctx: Context, r: Reader) -> list[Message]:
    """0x11 as GT06 clones send it: GPS block and a cell of the remaining size."""
    attrs: dict[str, Any] = {"type": ctx.env.type}
    fix = _gps(r, attrs)
    return [_position(fix, attrs, _network([_cell(r, r.remaining())]))]


@_decoder(MsgType.GPS_LBS)
def _gps_lbs(ctx: Context, r: Reader) -> list[Message]:
    """Location (0x12): GPS block, cell (MCC 2, MNC 1, LAC 2, CI 3), then by
    the bytes left: 2 = I/O word (bit 15 ACC, bit 14 input 2, bits 0-13 ADC 1
    in V/10); 4+ = odometer (m); 5 = status, power (V/100), signal, reserved;
    12 = those plus fuel (2), temperature (1, degC) and odometer (4, x10 m).
    QH302R prefixes the IMEI (8 bytes)."""
    if ctx.options.model == "QH302R" and r.remaining() >= 8 + 18:
        r.skip(8)
    if r.remaining() < 18:
        return []
    attrs: dict[str, Any] = {"type": ctx.env.type}
    fix = _gps(r, attrs)
    network = _network([_cell(r, 8)]) if r.remaining() >= 8 else None
    _gps_lbs_tail(r, attrs)
    return [_position(fix, attrs, network)]


def _gps_lbs_tail(r: Reader, attrs: dict[str, Any]) -> None:
    left = r.remaining()
    if left == 2:
        word = r.u16()
        attrs["ignition"] = bool(word & 0x8000)
        attrs["in2"] = bool(word & 0x4000)
        attrs["adc1"] = (word & 0x3FFF) / 10
    elif left in (5, 12):
        _status(attrs, r.u8())
        attrs["power"] = r.u16() / 100
        attrs["rssi"] = r.u8()
        r.skip(1)
        if left == 12:
            attrs["oil"] = r.u16()
            attrs["temp1"] = r.u8()
            attrs["odometer"] = r.u32() * 10
    elif left >= 4:
        attrs["odometer"] = r.u32()


@_decoder(MsgType.GPS_LBS_2)
def _gps_lbs_2(ctx: Context, r: Reader) -> list[Message]:
    """Location (0x22): GPS block, cell, ACC (1), upload mode (1, "event"),
    re-upload flag (1, "archive").  A 24-byte tail (observed) carries a
    4-byte cell id, ACC, odometer and temperature / humidity (/100).
    NT20 / XT40 prefix IMEI and event time and append power and counters."""
    if ctx.options.model in ("NT20", "XT40") and r.remaining() >= _XT40_MIN_CONTENT:
        return _xt40_location(ctx, r, driver=False)
    attrs: dict[str, Any] = {"type": ctx.env.type}
    fix = _gps(r, attrs)
    if r.remaining() == 24:
        network = _network([_cell(r, 9)])
        attrs["ignition"] = r.u8() > 0
        r.skip(2)
        attrs["odometer"] = r.u32()
        r.skip(4)
        attrs["temp1"] = r.u16() / 100
        attrs["humidity"] = r.u16() / 100
        return [_position(fix, attrs, network)]
    network = _network([_cell(r, 9 if r.remaining() == 12 else 8)])
    if r.remaining() >= 3:
        attrs["ignition"] = r.u8() > 0
        attrs["event"] = r.u8()
        attrs["archive"] = r.u8() == 1
    return [_position(fix, attrs, network)]


_XT40_MIN_CONTENT = 1 + 8 + 6 + 18 + 9 + 13
"""Smallest NT20/XT40 0x22 content; shorter frames are the standard layout."""


def _xt40_location(ctx: Context, r: Reader, *, driver: bool) -> list[Message]:
    """NT20/XT40 (0x22, 0x25): 0x01 + IMEI (8) + event time (6), GPS block, cell
    with length byte, [0x25: one byte], terminal info, power (2, V/100), battery
    (1, V/10), signal (1), reserved (2), odometer (3, m), engine minutes (3),
    [0x25: driver id: length, kind, bytes]."""
    r.skip(1 + 8 + 6)
    attrs: dict[str, Any] = {"type": ctx.env.type}
    fix = _gps(r, attrs)
    if driver:
        size = max(r.u8(), 9)
        network = _network([_cell(r, size - 1)])
        r.skip(1)
    else:
        network = _network([_lbs_sized(r, r.remaining() - 13)])
    _status(attrs, r.u8())
    attrs["power"] = r.u16() / 100
    attrs["battery"] = r.u8() / 10
    attrs["rssi"] = r.u8()
    r.skip(2)
    attrs["odometer"] = r.uint(3)
    attrs["hours"] = r.uint(3) * 60_000
    if driver and r.remaining() >= 2:
        size = r.u8()
        r.skip(1)
        attrs["driverUniqueId"] = r.take(max(0, min(size - 1, r.remaining()))).hex()
    return [_position(fix, attrs, network)]


@_decoder(MsgType.GPS_LBS_DRIVER)
def _gps_lbs_driver(ctx: Context, r: Reader) -> list[Message]:
    """0x25 (XT40 family): location with a driver (RFID) id."""
    return _xt40_location(ctx, r, driver=True)


@_decoder(MsgType.GPS_LBS_3)
def _gps_lbs_3(ctx: Context, r: Reader) -> list[Message]:
    """0x24 (observed): GPS block, cell, ACC (1), power (2, V/100), battery
    (2, V/100), then reserved bytes."""
    attrs: dict[str, Any] = {}
    fix = _gps(r, attrs)
    network = _network([_cell(r, 8)])
    attrs["ignition"] = r.u8() > 0
    attrs["power"] = r.u16() / 100
    attrs["battery"] = r.u16() / 100
    return [_position(fix, attrs, network)]


@_decoder(MsgType.GPS_LBS_ALTITUDE)
def _gps_lbs_altitude(ctx: Context, r: Reader) -> list[Message]:
    """0x31 (observed): GPS block, cell (MNC 2, LAC 2, CI 8), ACC, upload mode,
    re-upload flag, altitude (2, m, signed)."""
    attrs: dict[str, Any] = {"type": ctx.env.type}
    fix = _gps(r, attrs)
    network = _network([_cell(r, 14)])
    attrs["ignition"] = r.u8() > 0
    attrs["event"] = r.u8()
    attrs["archive"] = r.u8() == 1
    fix.altitude_m = float(r.s16())
    return [_position(fix, attrs, network)]


@_decoder(MsgType.GPS_LBS_STATUS_ALTITUDE)
def _gps_lbs_status_altitude(ctx: Context, r: Reader) -> list[Message]:
    """0x32.  In 0x7878 frames (observed): GPS block, one byte, cell (MNC 2,
    LAC 2, CI 8), terminal info, altitude (2, m, signed).  In 0x7979 frames: a
    cell and Wi-Fi report, see `_lbs_wifi_report`."""
    if ctx.env.long:
        return _lbs_wifi_report(ctx, r)
    attrs: dict[str, Any] = {"type": ctx.env.type}
    fix = _gps(r, attrs)
    r.skip(1)
    network = _network([_cell(r, 14)])
    _status(attrs, r.u8())
    fix.altitude_m = float(r.s16())
    return [_position(fix, attrs, network)]


def _lbs_wifi_report(ctx: Context, r: Reader) -> list[Message]:
    """0x7979 0x32 (observed): time, status (1), reserved (1), serving cell
    with signal; neighbour cells and Wi-Fi follow and are not decoded."""
    time = _datetime(r)
    attrs: dict[str, Any] = {"status": r.u8()}
    r.skip(1)
    cell = _cell(r, 8)
    attrs["rssi"] = r.u8()
    return [_status_only(ctx, attrs, time, _network([cell]))]


@_decoder(MsgType.STATUS_EXTENDED)
def _status_extended_long(ctx: Context, r: Reader) -> list[Message]:
    """0x7979 0x33 (observed): time, reserved (4), status byte (bit 7 armed)."""
    time = _datetime(r)
    r.skip(4)
    status = r.u8()
    return [_status_only(ctx, {"status": status, "armed": bool(status & 0x80)}, time)]


@_decoder(MsgType.GPS_LBS_IO)
def _gps_lbs_io(ctx: Context, r: Reader) -> list[Message]:
    """0x34 (observed): reserved (4), GPS block, reserved (2), odometer (4, m),
    cell with 4-byte CI, driver id (4, decimal; 0 = none), battery (2, V/100),
    power (2, V/100), reserved (4), inputs, outputs, ADC 1 and 2 (2, V/100)."""
    r.skip(4)
    attrs: dict[str, Any] = {}
    fix = _gps(r, attrs)
    r.skip(2)
    attrs["odometer"] = r.u32()
    network = _network([_cell(r, 9)])
    driver = r.u32()
    if driver:
        attrs["driverUniqueId"] = str(driver)
    attrs["battery"] = r.u16() / 100
    attrs["power"] = r.u16() / 100
    r.skip(4)
    attrs["input"] = r.u8()
    attrs["output"] = r.u8()
    attrs["adc1"] = r.u16() / 100
    attrs["adc2"] = r.u16() / 100
    return [_position(fix, attrs, network)]


@_decoder(MsgType.GPS_LBS_ARCHIVE)
def _gps_lbs_archive(ctx: Context, r: Reader) -> list[Message]:
    """0x37 (observed): GPS block, cell, ACC, upload mode, re-upload flag,
    reserved (3), odometer (4, m), further bytes not decoded."""
    attrs: dict[str, Any] = {"type": ctx.env.type}
    fix = _gps(r, attrs)
    network = _network([_cell(r, 8)])
    attrs["ignition"] = r.u8() > 0
    attrs["event"] = r.u8()
    attrs["archive"] = r.u8() == 1
    r.skip(3)
    attrs["odometer"] = r.u32()
    return [_position(fix, attrs, network)]


@_decoder(MsgType.GPS_LBS_RFID)
def _gps_lbs_rfid(ctx: Context, r: Reader) -> list[Message]:
    """0x61 (observed): IMEI (8), GPS block, cell with 4-byte CI, reserved (2),
    driver card number (4, decimal)."""
    r.skip(8)
    attrs: dict[str, Any] = {}
    fix = _gps(r, attrs)
    network = _network([_cell(r, 9)])
    r.skip(2)
    attrs["driverUniqueId"] = str(r.u32())
    return [_position(fix, attrs, network)]


@_decoder(MsgType.GPS_4G)
def _gps_4g(ctx: Context, r: Reader) -> list[Message]:
    """4G location (0xA0): GPS block, LTE cell (MCC 2, MNC 1/2, TAC 4, ECI 8),
    ACC (1); upload mode and re-upload flag follow."""
    attrs: dict[str, Any] = {"type": ctx.env.type}
    fix = _gps(r, attrs)
    network = _network([_cell(r, 15)], radio="lte")
    attrs["ignition"] = r.u8() > 0
    return [_position(fix, attrs, network)]


# --------------------------------------------------------------------------
# Alarms
# --------------------------------------------------------------------------

@_decoder(MsgType.GPS_LBS_STATUS, MsgType.ALARM, MsgType.ALARM_FENCE, MsgType.ALARM_4G)
def _alarm(ctx: Context, r: Reader) -> list[Message]:
    """Alarm packets: GPS block, cell block (see `_lbs_sized`), status block
    (terminal info, voltage level, signal, alarm, language) at the end, then a
    geofence number for 0x27 / 0xA4 and an 8-byte driver id for VL103.  The
    cell block is whatever lies between (8 to 16 bytes; 0xA4 carries LTE)."""
    attrs: dict[str, Any] = {"type": ctx.env.type}
    fix = _gps(r, attrs)
    trailer = 1 if ctx.env.type in (MsgType.ALARM_FENCE, MsgType.ALARM_4G) else 0
    if ctx.options.model == "VL103" and r.remaining() >= 22:
        trailer = 8
    cell = _lbs_sized(r, r.remaining() - 5 - trailer)
    radio = "lte" if ctx.env.type == MsgType.ALARM_4G else "gsm"
    _status_block(r, ctx, attrs)
    if trailer == 1:
        attrs["geofence"] = r.u8()
    elif trailer == 8:
        attrs["driverUniqueId"] = r.take(8).hex()
    return [_position(fix, attrs, _network([cell], radio=radio))]


@_decoder(MsgType.LBS_STATUS)
def _lbs_status(ctx: Context, r: Reader) -> list[Message]:
    """0x19: cell (8 bytes) and status block; other sizes are not decoded."""
    if r.remaining() != 13:
        return []
    attrs: dict[str, Any] = {"type": ctx.env.type}
    network = _network([_cell(r, 8)])
    _status_block(r, ctx, attrs)
    return [_status_only(ctx, attrs, network=network)]


@_decoder(MsgType.LBS_ALARM_4G)
def _lbs_alarm_4g(ctx: Context, r: Reader) -> list[Message]:
    """0xA5: LTE cell (15/16 bytes) and status block."""
    attrs: dict[str, Any] = {"type": ctx.env.type}
    network = _network([_cell(r, r.remaining() - 5)], radio="lte")
    _status_block(r, ctx, attrs)
    return [_status_only(ctx, attrs, network=network)]


@_decoder(MsgType.STATUS_4G)
def _status_4g(ctx: Context, r: Reader) -> list[Message]:
    """0xA3.  With a fix (observed): GPS block, one byte, LTE cell, status
    block.  Without (19 bytes, observed): terminal info, reserved (3), signal
    (1), power (1, V), reserved (3), steps (4), battery % (1), reserved (1),
    motion (1), reserved (3)."""
    attrs: dict[str, Any] = {"type": ctx.env.type}
    if r.remaining() < 18 + 1 + 15 + 5:
        _status(attrs, r.u8())
        r.skip(3)
        attrs["rssi"] = r.u8()
        attrs["power"] = float(r.u8())
        r.skip(3)
        attrs["steps"] = r.u32()
        attrs["batteryLevel"] = r.u8()
        r.skip(1)
        attrs["motion"] = r.u8() > 0
        return [_status_only(ctx, attrs)]
    fix = _gps(r, attrs)
    r.skip(1)
    network = _network([_cell(r, r.remaining() - 5)], radio="lte")
    _status_block(r, ctx, attrs)
    return [_position(fix, attrs, network)]


@_decoder(MsgType.EVENT)
def _event(ctx: Context, r: Reader) -> list[Message]:
    """Dash-camera event (0x95, observed in three forms): time + event code;
    time, position, event, event data (2), file names; or 0xFFFF, one byte,
    time, GPS block (speed 2 bytes), power (2, V/10), event, data, files."""
    attrs: dict[str, Any] = {}
    content = ctx.env.content
    if content[:2] == b"\xff\xff":
        r.skip(3)
        time = _datetime(r)
        attrs["sat"] = r.u8() & 0x0F
        fix = Fix(time, False, r.u32() / COORD_DIVISOR, r.u32() / COORD_DIVISOR)
        _course_status(r, fix, attrs)
        fix.speed_kn = r.u16() / KMH_PER_KNOT
        attrs["power"] = r.u16() / 10
    else:
        time = _datetime(r)
        if r.remaining() < 8:
            attrs["event"] = r.u8()
            add_alarm(attrs, _EVENT_ALARMS_SHORT.get(attrs["event"]))
            return [_status_only(ctx, attrs, time)]
        fix = Fix(time, False, r.u32() / COORD_DIVISOR, r.u32() / COORD_DIVISOR)
        _course_status(r, fix, attrs)
    attrs["event"] = r.u8()
    attrs["eventData"] = r.u16()
    add_alarm(attrs, _EVENT_ALARMS.get(attrs["event"]))
    files = r.rest().split(b"\x00", 1)[0].decode("latin-1")
    if files:
        attrs["eventFiles"] = files
    return [_position(fix, attrs)]


_EVENT_ALARMS = {0x01: "sos", 0x91: "hardBraking", 0x92: "hardCornering", 0x93: "accident"}
_EVENT_ALARMS_SHORT = {0x01: "general", 0x91: "hardBraking", 0x92: "hardCornering",
                       0x93: "accident"}


# --------------------------------------------------------------------------
# Cell and Wi-Fi reports (no fix of their own)
# --------------------------------------------------------------------------

@_decoder(MsgType.LBS_EXTEND, MsgType.LBS_MULTIPLE, MsgType.WIFI)
def _lbs_multiple(ctx: Context, r: Reader) -> list[Message]:
    """0x18 / 0x28: time, MCC, MNC, seven cells (LAC 2, CI 3, signal 1), timing
    advance, language.  0x2C adds a Wi-Fi count and access points."""
    time = _datetime(r)
    cells = _cell_list(r, 7, lac=2, cid=3)
    wifi: list[dict[str, Any]] = []
    if ctx.env.type == MsgType.WIFI and r.remaining() >= 2:
        r.skip(1)
        wifi = _wifi(r, min(r.u8(), r.remaining() // 7))
    return [_status_only(ctx, {}, time, _network(cells, wifi))]


def _cell_list(r: Reader, count: int, *, lac: int, cid: int) -> list[dict[str, Any] | None]:
    """MCC (2, bit 15 = two-byte MNC), MNC, then `count` x (LAC, CI, signal)."""
    raw_mcc = r.u16()
    mnc = r.uint(2 if raw_mcc & 0x8000 else 1)
    cells: list[dict[str, Any] | None] = []
    for _ in range(count):
        area, cell_id, signal = r.uint(lac), r.uint(cid), r.u8()
        if area or cell_id:
            cells.append(cell_tower(raw_mcc & 0x7FFF, mnc, area, cell_id, -signal))
    return cells


@_decoder(MsgType.LBS_4G)
def _lbs_4g(ctx: Context, r: Reader) -> list[Message]:
    """0xA1: time, MCC, MNC, seven LTE cells (TAC 4, ECI 8, signal 1)."""
    time = _datetime(r)
    cells = _cell_list(r, 7, lac=4, cid=8)
    return [_status_only(ctx, {}, time, _network(cells, radio="lte"))]


@_decoder(MsgType.WIFI_4G)
def _wifi_4g(ctx: Context, r: Reader) -> list[Message]:
    """0xA2: as 0xA1 plus timing advance, Wi-Fi count and access points.  A
    59-byte content (observed) is instead a location with status, power,
    battery level, odometer and input state."""
    if r.remaining() < 100:
        return _wifi_4g_location(ctx, r)
    time = _datetime(r)
    cells = _cell_list(r, 7, lac=4, cid=8)
    r.skip(1)
    wifi = _wifi(r, min(r.u8(), r.remaining() // 7))
    return [_status_only(ctx, {}, time, _network(cells, wifi, radio="lte"))]


def _wifi_4g_location(ctx: Context, r: Reader) -> list[Message]:
    attrs: dict[str, Any] = {"type": ctx.env.type}
    fix = _gps(r, attrs)
    network = _network([_cell(r, 15)], radio="lte")
    r.skip(1)
    _status(attrs, r.u8())
    attrs["power"] = r.u16() / 100
    attrs["batteryLevel"] = _level_to_percent(r.u8())
    attrs["rssi"] = r.u8()
    r.skip(2)
    attrs["odometer"] = r.u32()
    attrs["hours"] = r.u32()
    r.skip(9)
    attrs["input"] = r.u8()
    return [_position(fix, attrs, network)]


@_decoder(MsgType.WIFI_LBS)
def _wifi_lbs(ctx: Context, r: Reader) -> list[Message]:
    """0x69 legacy report (no serial, no CRC; the length byte is the Wi-Fi
    count): time, Wi-Fi (MAC 6, signal 1), cell count, MCC, MNC, cells (LAC 2,
    CI 2, signal 1).  Only decodable in lenient mode."""
    if ctx.env.serial is not None:
        return []
    return _legacy_cells(ctx, r, wifi_count=ctx.env.length_field)


def _legacy_cells(ctx: Context, r: Reader, wifi_count: int = 0) -> list[Message]:
    time = _bcd_datetime(r)
    wifi = _wifi(r, r.count(wifi_count, 7, "Wi-Fi count (length field)"))
    count = r.u8()
    raw_mcc = r.u16()
    mnc = r.u8()
    cells = []
    for _ in range(r.count(count, 5, "cell count")):
        area, cell_id, signal = r.u16(), r.u16(), r.u8()
        cells.append(cell_tower(raw_mcc, mnc, area, cell_id, -signal))
    return [_status_only(ctx, {}, time, _network(cells, wifi))]


@_decoder(MsgType.WIFI_LIST)
def _wifi_list(ctx: Context, r: Reader) -> list[Message]:
    """0xF3 (observed): time, count, count x (reserved 2, MAC 6)."""
    time = _datetime(r)
    points = []
    for _ in range(min(r.u8(), r.remaining() // 8)):
        r.skip(2)
        points.append({"macAddress": _mac(r.take(6))})
    return [_status_only(ctx, {}, time, _network(wifi=points))]


# --------------------------------------------------------------------------
# Information, command replies, extension modules
# --------------------------------------------------------------------------

@_decoder(MsgType.INFO)
def _info(ctx: Context, r: Reader) -> list[Message]:
    """Information transmission (0x94): sub-type then data.  0x00 ADC voltage
    (2, V/100), 0x04 status text "ALM1=..;STA1=..;DYD=..", 0x05 door state
    (time, bit 0 door, bit 2 input 1), 0x0A IMEI/IMSI/ICCID, 0x0B power
    (2, V/100), 0x0D fuel sensor text.  A bare 2-byte content is the power."""
    if r.remaining() == 2:
        return [_status_only(ctx, {"power": r.u16() / 100})]
    sub = r.u8()
    attrs: dict[str, Any] = {}
    time = None
    if sub in (0x00, 0x0B) and r.remaining() >= 2:
        attrs["adc1" if sub == 0x00 else "power"] = r.u16() / 100
    elif sub == 0x04:
        attrs.update(_alarm_status_text(r.rest().decode("latin-1")))
    elif sub == 0x05 and r.remaining() >= 7:
        time = _datetime(r)
        flags = r.u8()
        attrs["door"] = bool(flags & 0x01)
        attrs["io1"] = bool(flags & 0x04)
    elif sub == 0x0A and r.remaining() >= 26:
        r.skip(16)
        attrs["iccid"] = r.take(10).hex().rstrip("f")
    elif sub == 0x0D:
        attrs.update(_fuel_text(r.rest().decode("latin-1")))
    if not attrs:
        return []
    return [_status_only(ctx, attrs, time)]


_ALARM_STATUS_KEYS = {"ALM1": "alarm1Status", "ALM2": "alarm2Status", "ALM3": "alarm3Status",
                      "STA1": "otherStatus", "DYD": "engineStatus"}


def _alarm_status_text(text: str) -> dict[str, Any]:
    """"ALM1=C5;ALM2=CC;...;DYD=01;..." -> hex values of the known keys."""
    attrs = {}
    for item in text.split(";"):
        key, _, value = item.partition("=")
        if key in _ALARM_STATUS_KEYS and re.fullmatch(r"[0-9A-Fa-f]{1,8}", value):
            attrs[_ALARM_STATUS_KEYS[key]] = int(value, 16)
    return attrs


def _fuel_text(text: str) -> dict[str, Any]:
    """Fuel sensor sentence "*AIOIL,id,?,temperature,?,?,fuel,..." after a
    6-byte time: temperature (degC) and fuel level."""
    fields = text[6:].split(",") if len(text) > 6 else []
    attrs: dict[str, Any] = {}
    for index, key in ((3, "temp1"), (6, "fuel")):
        try:
            attrs[key] = float(fields[index])
        except (IndexError, ValueError):
            continue
    return attrs


@_decoder(MsgType.COMMAND_RESPONSE, MsgType.STRING_INFO)
def _command_response(ctx: Context, r: Reader) -> list[Message]:
    """Command reply.  0x21 (0x7979): server flag (4), encoding (1: ASCII,
    2: UTF-16BE), text.  0x15: length (1), server flag (4), text, language (2).
    A "Current position!Lat:N..,Lon:E..,Course:..,Speed:..,DateTime:.." reply
    becomes a position; any other text a CommandResult and a "result" record."""
    if ctx.env.type == MsgType.STRING_INFO:
        size = r.u8()
        r.skip(4)
        text = r.take(max(0, min(size - 4, r.remaining()))).decode("latin-1")
    else:
        r.skip(4)
        encoding = r.u8()
        raw = r.rest()
        text = raw.decode("utf-16-be", "replace") if encoding == 2 else raw.decode("latin-1")
    text = text.rstrip("\x00")
    position = _text_position(text)
    if position is not None:
        return [position]
    return [CommandResult(text), _status_only(ctx, {"result": text})]


_POSITION_TEXT = re.compile(
    r"Lat:([NS])(\d+\.\d+),Lon:([EW])(\d+\.\d+),Course:(\d+\.\d+),Speed:(\d+\.\d+),"
    r"DateTime:(\d{4})-(\d\d)-(\d\d) +(\d\d):(\d\d):(\d\d)")


def _text_position(text: str) -> Position | None:
    match = _POSITION_TEXT.search(text)
    if match is None:
        return None
    g = match.groups()
    try:
        year, month, day, hour, minute, second = (int(v) for v in g[6:12])
        time = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError:
        return None
    fix = Fix(time, True, float(g[1]) * (-1 if g[0] == "S" else 1),
              float(g[3]) * (-1 if g[2] == "W" else 1),
              speed_kn=float(g[5]) / KMH_PER_KNOT, course_deg=float(g[4]))
    return _position(fix, {})


@_decoder(MsgType.SERIAL_DATA)
def _serial_data(ctx: Context, r: Reader) -> list[Message]:
    """Transparent serial data (0x9B): kind (1), data; printable text (less
    its CR LF) or else hex goes to "result"."""
    r.skip(1)
    raw = r.rest()
    text = raw.decode("latin-1").rstrip("\r\n")
    result = text if text and _printable(text) else raw.hex()
    return [CommandResult(result), _status_only(ctx, {"result": result})]


@_decoder(MsgType.EXTENDED_STATUS)
def _extended_status(ctx: Context, r: Reader) -> list[Message]:
    """0xF1 (observed): Unix time (4), items (id 2, length 1, value): 1 ACC,
    2 armed, 3 moving, 5 power (V/100)."""
    time = _unix_time(r)
    attrs: dict[str, Any] = {}
    names = {0x0001: "ignition", 0x0002: "armed", 0x0003: "motion"}
    while r.remaining() >= 3:
        item, size = r.u16(), r.u8()
        value = r.uint(min(size, r.remaining()))
        if item in names:
            attrs[names[item]] = value > 0
        elif item == 0x0005:
            attrs["power"] = value / 100
    return [_status_only(ctx, attrs, time)]


@_decoder(MsgType.EXTERNAL_BATTERY)
def _external_battery(ctx: Context, r: Reader) -> list[Message]:
    """0xF2 (observed): Unix time (4), items (id 2, length 1); item 0x000C is
    the external battery: level % (1), charge cycles (2), ..."""
    time = _unix_time(r)
    attrs: dict[str, Any] = {}
    while r.remaining() >= 3:
        item, value = r.u16(), r.take(min(r.u8(), r.remaining()))
        if item == 0x000C and len(value) >= 3:
            attrs["externalBatteryLevel"] = value[0]
            attrs["externalBatteryCycles"] = int.from_bytes(value[1:3], "big")
    return [_status_only(ctx, attrs, time)]


@_decoder(MsgType.OBD)
def _obd(ctx: Context, r: Reader) -> list[Message]:
    """OBD data (0x8C): time (6), kind (1), "id=hexvalue,..." text, then a
    GPS block without time (satellites, position, speed, course/status; 12)."""
    time = _datetime(r)
    r.skip(1)
    text_size = r.remaining() - 12
    if text_size < 0:
        return []
    attrs = _obd_text(r.take(text_size).decode("latin-1"))
    fix = _gps(r, attrs, time=time)
    return [_position(fix, attrs)]


_OBD_KEYS = {
    0x283: "odometer", 0x473: "fuelUsed", 0x2B3: "fuel", 0x2D3: "coolantTemp",
    0x353: "obdSpeed", 0x363: "rpm", 0x493: "hours",
}
"""OBD item ids whose hex value / 100 maps to a Traccar key (units as the
device sends them: km, litres, degC, km/h, rpm, hours)."""


def _obd_text(text: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        try:
            ident = int(key, 16)
        except ValueError:
            continue
        if ident == 0x4A3:
            if value:
                attrs["vin"] = value
        elif ident == 0x223 and value in ("0", "1"):
            attrs["ignition"] = value == "1"
        elif ident in _OBD_KEYS and re.fullmatch(r"[0-9A-Fa-f]{1,8}", value):
            attrs[_OBD_KEYS[ident]] = int(value, 16) / 100
    return attrs


@_decoder(MsgType.TLV)
def _tlv(ctx: Context, r: Reader) -> list[Message]:
    """0x70 (observed, asset trackers): items of id (2), length (2), value.
    0x33 location (Unix time, satellites, altitude, lat, lon, speed, course
    word), 0x34 event, 0x03 ICCID, 0x18 battery V/100, 0x0A visible
    satellites, 0x28 HDOP/10, 0x29 index, 0x2A door (bit 0) / tamper (bit 4),
    0x2B boot reason, 0x2E odometer (little endian), 0x7F BLE tag."""
    attrs: dict[str, Any] = {}
    fix = None
    tags = 0
    while r.remaining() >= 4:
        item, size = r.u16(), r.u16()
        value = Reader(r.take(min(size, r.remaining())), NAME)
        if item == 0x0033 and size >= 18:
            fix = _tlv_location(value, attrs)
        elif item == 0x007F and size >= 14:
            tags += 1
            _tlv_tag(value, attrs, tags)
        else:
            _tlv_item(item, value, attrs)
    if attrs.get("event") == 0x12:
        add_alarm(attrs, "removing")
    if fix is None:
        return [_status_only(ctx, attrs)]
    return [_position(fix, attrs)]


def _tlv_location(value: Reader, attrs: dict[str, Any]) -> Fix:
    time = _unix_time(value)
    attrs["sat"] = value.u8()
    altitude = value.s16()
    fix = _gps(value, attrs, time=time, satellites=False)
    fix.altitude_m = float(altitude)
    return fix


def _tlv_tag(value: Reader, attrs: dict[str, Any], index: int) -> None:
    prefix = f"tag{index}"
    attrs[prefix + "Id"] = value.take(6).hex()
    attrs[prefix + "Battery"] = value.u16() / 1000
    attrs[prefix + "BatteryLevel"] = value.u8()
    attrs[prefix + "Temp"] = value.s16() / 10
    attrs[prefix + "Humidity"] = value.u16()
    attrs[prefix + "Status"] = value.u8()


def _tlv_item(item: int, value: Reader, attrs: dict[str, Any]) -> None:
    size = value.remaining()
    if item == 0x0034 and size >= 1:
        attrs["event"] = value.u8()
    elif item == 0x0003 and size:
        attrs["iccid"] = value.rest().hex()
    elif item == 0x0018 and size >= 2:
        attrs["battery"] = value.u16() / 100
    elif item == 0x002B and size >= 1:
        attrs["bootReason"] = value.u8()
    elif item == 0x000A and size >= 1:
        attrs["satVisible"] = value.u8()
    elif item == 0x0028 and size >= 1:
        attrs["hdop"] = value.u8() / 10
    elif item == 0x002E and size >= 4:
        attrs["odometer"] = int.from_bytes(value.take(4), "little")
    elif item == 0x002A and size >= 1:
        flags = value.u8()
        attrs["door"] = bool(flags & 0x01)
        attrs["tamper"] = bool(flags & 0x10)
    elif item == 0x0029 and size >= 4:
        attrs["index"] = value.u32()


# --------------------------------------------------------------------------
# Session and codec
# --------------------------------------------------------------------------

def _reply(env: Envelope, now: dt.datetime) -> bytes:
    """What the device expects back for this frame (b"" for nothing)."""
    if env.serial is None:
        return b""
    if env.type == MsgType.TIME_REQUEST:
        return time_reply(env.serial, now, long=env.long)
    if env.type in ACKED_TYPES:
        return ack_frame(env.type, env.serial, long=env.long)
    return b""


class Gt06Session(StreamSession):
    """One connection's decoder: framer, logged-in IMEI, dialect options (see
    StreamSession)."""

    name = NAME
    max_frame_bytes = MAX_FRAME_BYTES

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = Options.from_mapping(options)
        super().__init__()

    def new_framer(self, *, datagram: bool = False) -> Framer:
        return Framer(lenient=self.options.lenient)

    def _decode_frame(self, frame: bytes, now: dt.datetime) -> Frame:
        """Decode one whole frame; unknown packet types give a Frame without
        messages (and no reply)."""
        env = parse_envelope(frame, lenient=self.options.lenient)
        decoder = _DECODERS.get(env.type)
        messages: list[Message] = []
        if decoder is not None:
            messages = decoder(Context(env, self.options, now, self), Reader(env.content, NAME))
        return Frame(messages=tuple(messages), reply=_reply(env, now), raw=frame)

    def encode_command(self, command: Command, now: dt.datetime) -> bytes:
        """An online command (0x80) carrying the Concox text command; the
        command id (mod 65536) is the serial number."""
        return command_frame(command_text(command), command.id & 0xFFFF)


def command_text(command: Command) -> str:
    """The Concox SMS/GPRS command text for a Traccar command type."""
    if command.type == "custom":
        data = str(command.attributes.get("data", ""))
        if not data or not data.isascii():
            raise UnsupportedCommand("gt06: custom command needs ASCII text in attributes.data")
        return data
    if command.type == "positionPeriodic":
        frequency_s = int(command.attributes.get("frequency", 0))
        if not 10 <= frequency_s <= 18000:
            raise UnsupportedCommand("gt06: positionPeriodic frequency must be 10..18000 s")
        return f"TIMER,{frequency_s}#"
    try:
        return COMMAND_TEXTS[command.type]
    except KeyError:
        raise UnsupportedCommand(f"gt06: unsupported command type {command.type!r}") from None


COMMAND_TEXTS = {   # Concox GT06N / JM01 command set
    "engineStop": "RELAY,1#",
    "engineResume": "RELAY,0#",
    "rebootDevice": "RESET#",
    "positionSingle": "WHERE#",
}


CODEC = CodecSpec(name=NAME, default_listen=DEFAULT_LISTEN, max_frame_bytes=MAX_FRAME_BYTES,
                  command_types=frozenset({*COMMAND_TEXTS, "positionPeriodic", "custom"}),
                  session_factory=Gt06Session)


__all__ = [
    "ACKED_TYPES", "CODEC", "COMMAND_TEXTS", "DEFAULT_LISTEN", "MAX_FRAME_BYTES", "NAME",
    "UNACKED_TYPES", "Envelope", "Framer", "Gt06Session", "MsgType", "Options", "ack_frame",
    "command_frame", "crc_itu", "parse_envelope", "split_frames", "time_reply"
]
