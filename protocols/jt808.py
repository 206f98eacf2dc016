"""JT/T 808 (Chinese road-transport terminal protocol): framing, decoding, replies, commands.

Spec followed: JT/T 808-2013 "Road transport vehicle satellite positioning system -
terminal communication protocol and data format" and its 2019 revision (the header
version flag, a protocol-version byte and a 10-byte terminal number), completed by
the vendor extensions seen in real captures (Traccar's test suite, served there as
"huabao").  Where a field is only known from captures the decoder says "observed".

Transports: TCP (a byte stream, `receive_data`) and UDP (one or more whole frames
per datagram, `receive_datagram`), both on port 5015 as in Traccar.

Framing::

    0x7E | message id (2) | body attributes (2) | [version (1)] | terminal number
         | serial (2) | [package count (2) | package index (2)] | body | XOR | 0x7E

Between the delimiters 0x7E is sent as 0x7D 0x02 and 0x7D as 0x7D 0x01.  The framer
unescapes, so `decode_frame` takes a frame *as the framer delivers it*: both 0x7E
delimiters present and the content already unescaped (an 0x7D followed by anything
but 0x01/0x02 is kept as it is: some devices send it raw).  The checksum is the XOR
of every byte from the message id through the body.  Body attributes: bits 0-9 the
body length, 10-12 encryption (RSA), 13 subpackage, 14 the 2019 version flag.  The
terminal number is 6 bytes of BCD (2013) or a version byte and 10 bytes of BCD
(2019).  The length field is informational: devices in the field misstate it for
vendor messages, the checksum guards the content, so the body is whatever lies
between the header and the checksum.  Frames larger than `MAX_FRAME_BYTES` on the
wire are refused.

By default the codec is strict: a bad checksum raises `ProtocolError`.  The option
`lenient=True` skips the checksum (as Traccar does) for captures with hand-edited
bytes.

Also carried on the same port (observed, Jointech-style e-locks): text frames
``(ID,1,001,TYPE,...)`` and binary 0x55xx reports inside 0x7E delimiters.

Unique id: the terminal number as hex digits, e.g. "014450376202" for 2013 headers;
for 2019 headers the 20 digits without leading zeros, kept at least 12 digits long
("00000866496077582164" -> "866496077582164"), so an IMEI-numbered device keeps its
IMEI.  Every frame names the device.

Dialects (option `modelOverride`, as Traccar's per-device setting): JC371 (dash cams:
0xE8 status block), AL300 / GL100 / VL300 (AOVX: 0xF8 device information, alarm
bit 16 "movement" on AL300), C5L (0xF8 step count), MV710G (door in status bit 16).

Units and time: the standard's BCD times are GMT+8 and are converted to UTC (the
e-lock reports are UTC).  Latitude/longitude arrive in 1e-6 degrees with the south
and west flags in the status word, altitude in metres, speed in 0.1 km/h (converted
to knots), course in degrees, mileage item 0x01 in 0.1 km (converted to metres).

Replies: registration 0x0100 gets 0x8100 (result 0 and an authentication code, the
unique id); every other terminal message gets the platform general response 0x8001
(its serial and id, result 0) except the terminal's own responses (0x0001, 0x0104,
0x0107, 0x0201, 0x0500), which need none, and the e-lock frames, whose replies are
not known.  The platform's serial numbers count per connection from 0.  Refusal
(`Frame.refusal`, sent instead of the reply when the server cannot store a frame's
data for good): the same general response with result 1 (failure); registrations and
the unanswered messages have none.  Commands:
see `encode_command`.  A subpackaged or encrypted message is acknowledged but not
decoded (its body is a fragment or ciphertext).

The device side (registration, location, heartbeat builders) for the simulator
and tests is `protocols.devices.jt808`; the server never uses it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from protocols import nmea
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
from protocols.framing import StreamFramer
from protocols.session import DecoderTable, StreamSession
from protocols.values import KMH_PER_KNOT, add_alarm, cell_tower, network, option_flag

NAME = "jt808"
DEFAULT_LISTEN = ("tcp:5015", "udp:5015")
MAX_FRAME_BYTES = 4096
"""Largest frame accepted on the wire, delimiters and escapes included.  A standard
frame is at most 2 + 2 x 1045 bytes (1023-byte body, escaped); vendor messages
that misstate their length get some headroom."""

DELIMITER = 0x7E
ESCAPE = 0x7D
TEXT_START, TEXT_END = 0x28, 0x29   # "(" and ")" of the e-lock text frames
MIN_FRAME_BYTES = 15                # delimiters, 12-byte 2013 header, checksum
GMT8 = dt.timezone(dt.timedelta(hours=8))
COORD_DIVISOR = 1_000_000.0


@enum.unique
class MsgId(enum.IntEnum):
    """Message ids: terminal to platform (0x0xxx and vendor ids), platform to terminal (0x8xxx)."""

    TERMINAL_RESPONSE = 0x0001
    HEARTBEAT = 0x0002
    LOGOUT = 0x0003
    REGISTER = 0x0100
    AUTHENTICATE = 0x0102
    PARAMETERS = 0x0104
    ATTRIBUTES = 0x0107
    LOCATION = 0x0200
    LOCATION_QUERY = 0x0201
    LOCATION_LIST = 0x0210          # observed: length-prefixed positions
    CONTROL_RESPONSE = 0x0500
    RESULT_TEXT = 0x0701            # waybill report, used by devices for command results
    DRIVER = 0x0702
    BATCH = 0x0704
    TRANSPARENT = 0x0900
    ACCELERATION = 0x2070           # observed: G-sensor samples
    LOCK_REPORT = 0x5501            # observed: e-lock report
    LOCK_ALARM = 0x5502             # observed: e-lock alarm report
    GENERAL_RESPONSE = 0x8001
    REGISTER_RESPONSE = 0x8100
    SET_PARAMETERS = 0x8103
    TERMINAL_CONTROL = 0x8105
    QUERY_LOCATION = 0x8201
    TEXT_MESSAGE = 0x8300
    VEHICLE_CONTROL = 0x8500


UNACKED = frozenset({
    MsgId.TERMINAL_RESPONSE, MsgId.PARAMETERS, MsgId.ATTRIBUTES, MsgId.LOCATION_QUERY,
    MsgId.CONTROL_RESPONSE, MsgId.LOCK_REPORT, MsgId.LOCK_ALARM,
})
"""Terminal messages that get no platform reply: the terminal's own responses (the
standard asks for none) and the e-lock reports (their reply format is unknown)."""


# --------------------------------------------------------------------------
# Checksum, escaping, framing
# --------------------------------------------------------------------------

def checksum(data: bytes) -> int:
    """XOR of all bytes (the standard's check code)."""
    value = 0
    for byte in data:
        value ^= byte
    return value


def escape(data: bytes) -> bytes:
    """0x7D -> 0x7D 0x01 and 0x7E -> 0x7D 0x02 (content between the delimiters)."""
    return data.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")


def unescape(data: bytes) -> bytes:
    """Undo `escape`; an 0x7D before any other byte is kept as it is."""
    if ESCAPE not in data:
        return data
    out = bytearray()
    i, end = 0, len(data)
    while i < end:
        byte = data[i]
        if byte == ESCAPE and i + 1 < end and data[i + 1] in (0x01, 0x02):
            out.append(ESCAPE if data[i + 1] == 0x01 else DELIMITER)
            i += 2
        else:
            out.append(byte)
            i += 1
    return bytes(out)


def wire_frame(content: bytes) -> bytes:
    """Header + body (unescaped) -> the escaped frame with checksum and delimiters."""
    packed = content + bytes([checksum(content)])
    return b"\x7e" + escape(packed) + b"\x7e"


def check_checksum(frame: bytes) -> None:
    """Raise ProtocolError unless the XOR over id..body matches the check code."""
    expected, actual = frame[-2], checksum(frame[1:-2])
    if expected != actual:
        raise ProtocolError(f"jt808: bad checksum {expected:02x}, computed {actual:02x}", frame)


_TEXT_STOP = re.compile(rb"[^\x20-\x28\x2a-\x7e]")
"""What ends the scan of a text frame: its ")" or a byte that is not printable ASCII."""


class Framer(StreamFramer):
    """Splits a TCP byte stream into frames as `decode_frame` takes them.

    A binary frame runs from one 0x7E to the next and comes out unescaped with
    both delimiters; two adjacent 0x7E (an end and a start) are no frame.  A text
    frame runs from "(" to ")" and must be printable.  Bytes before a start are
    skipped (resynchronisation), up to `max_frame_bytes` of them in a row: more
    garbage than that raises ProtocolError.  A frame longer than the cap raises
    ProtocolError.  In strict mode a binary frame with a bad checksum raises
    ProtocolError; only its opening delimiter is dropped, so its closing one may
    open the next frame (a stray 0x7E in garbage costs no good frame).  Text is
    scanned once however it arrives: the stretch of printable bytes without ")"
    found so far is remembered (stream offsets), so neither a frame trickling in
    nor a run of "(" in garbage is scanned again for every byte or every "(".
    """

    name = NAME

    def __init__(self, *, lenient: bool = False, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        super().__init__(max_frame_bytes)
        self.lenient = lenient
        self._text_clear = (0, 0)   # stream offsets [from, to): printable bytes, no ")"

    def _next_frame(self) -> bytes | None:
        while True:
            start = self._find_start()
            if start < 0:
                return None
            if self._buffer[0] == TEXT_START:
                frame = self._text_frame()
            else:
                frame = self._binary_frame()
            if frame is None:
                return None
            if frame:
                return frame

    def _find_start(self) -> int:
        buf = self._buffer
        hits = [i for i in (buf.find(DELIMITER), buf.find(TEXT_START)) if i >= 0]
        start = min(hits) if hits else len(buf)
        self._skip(start)
        return 0 if hits else -1

    def _binary_frame(self) -> bytes | None:
        """b"" when the start was no frame (dropped), None when incomplete."""
        buf = self._buffer
        end = buf.find(DELIMITER, 1)
        if end < 0:
            if len(buf) > self.max_frame_bytes:
                self._reject("no closing 0x7e within the frame size cap")
            return None
        if end == 1:
            self._skip(1)
            return b""
        if end + 1 > self.max_frame_bytes:
            self._reject(f"frame of {end + 1} bytes exceeds {self.max_frame_bytes}")
        frame = b"\x7e" + unescape(bytes(buf[1:end])) + b"\x7e"
        if not self.lenient:
            if len(frame) < MIN_FRAME_BYTES:
                self._reject(f"frame of {len(frame)} bytes is too short", frame=frame)
            try:
                check_checksum(frame)
            except ProtocolError:
                del buf[:end]
                raise
        del buf[:end + 1]
        return frame

    def _text_frame(self) -> bytes | None:
        """The "(...)" frame at the buffer's start: its ")" is at most at index
        `max_frame_bytes`, every byte before it printable."""
        buf = self._buffer
        base = self.offset
        clear_from, clear_to = self._text_clear
        if not clear_from <= base + 1 <= clear_to:
            clear_from = clear_to = base + 1
        end = min(len(buf), self.max_frame_bytes + 1)
        stop = _TEXT_STOP.search(buf, clear_to - base, end)
        self._text_clear = (clear_from, base + (stop.start() if stop else end))
        if stop is not None and buf[stop.start()] == TEXT_END:
            frame = bytes(buf[:stop.start() + 1])
            del buf[:stop.start() + 1]
            return frame
        if stop is not None or len(buf) > self.max_frame_bytes:
            self._skip(1)              # a stray "(" in binary data, or no ")" within the cap
            return b""
        return None

def split_frames(buffer: bytearray) -> list[bytes]:
    """Remove and return the complete frames at the front of `buffer` (for clients
    reading server replies); a trailing partial frame stays in `buffer`."""
    return Framer().split(buffer)


# --------------------------------------------------------------------------
# Header
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class Header:
    """A frame's header.  `version` is None for 2013 headers; `terminal` the raw
    BCD terminal number; `package` (count, index) when subpackaged."""

    msg_id: int
    attributes: int
    version: int | None
    terminal: bytes
    serial: int
    package: tuple[int, int] | None
    body_start: int

    @property
    def body_length(self) -> int:
        return self.attributes & 0x03FF

    @property
    def encrypted(self) -> bool:
        return bool(self.attributes & 0x1C00)

    @property
    def unique_id(self) -> str:
        return terminal_id(self.terminal)


def terminal_id(terminal: bytes) -> str:
    """The unique id for a BCD terminal number (see the module docstring)."""
    digits = terminal.hex()
    if len(terminal) > 6:
        digits = digits.lstrip("0").rjust(12, "0")
    return digits


def parse_header(frame: bytes) -> Header:
    """Split the header off a frame (delimiters included, content unescaped)."""
    if len(frame) < MIN_FRAME_BYTES or frame[0] != DELIMITER or frame[-1] != DELIMITER:
        raise ProtocolError("jt808: not a frame (delimiters or size)", frame[:64])
    msg_id = int.from_bytes(frame[1:3], "big")
    attributes = int.from_bytes(frame[3:5], "big")
    pos, version = 5, None
    if attributes & 0x4000:
        version, pos = frame[5], 6
    width = 10 if version is not None else 6
    terminal = frame[pos:pos + width]
    pos += width
    serial = int.from_bytes(frame[pos:pos + 2], "big")
    pos += 2
    package = None
    if attributes & 0x2000:
        package = (int.from_bytes(frame[pos:pos + 2], "big"), int.from_bytes(frame[pos + 2:pos + 4], "big"))
        pos += 4
    if pos > len(frame) - 2:
        raise ProtocolError("jt808: frame shorter than its header", frame[:64])
    return Header(msg_id, attributes, version, terminal, serial, package, pos)


def build_message(msg_id: int, body: bytes, serial: int, terminal: bytes, version: int | None) -> bytes:
    """A whole escaped frame (either direction).  A 2019 header when `version` is set."""
    attributes = len(body) & 0x03FF
    head = msg_id.to_bytes(2, "big")
    if version is not None:
        head += (attributes | 0x4000).to_bytes(2, "big") + bytes([version & 0xFF])
        head += terminal.rjust(10, b"\x00")[-10:]
    else:
        head += attributes.to_bytes(2, "big") + terminal.rjust(6, b"\x00")[-6:]
    return wire_frame(head + (serial & 0xFFFF).to_bytes(2, "big") + body)


RESULT_SUCCESS = 0
RESULT_FAILURE = 1
"""Results of the platform general response (JT/T 808-2013 8.2): 0 success /
acknowledged, 1 failure, 2 message error, 3 not supported, 4 alarm confirmed."""


def general_response(header: Header, serial: int, result: int = RESULT_SUCCESS) -> bytes:
    """Platform general response 0x8001: the acked serial, the acked id, result
    (`RESULT_SUCCESS`; `RESULT_FAILURE` is the refusal of a frame whose data the
    server cannot store)."""
    body = header.serial.to_bytes(2, "big") + header.msg_id.to_bytes(2, "big") + bytes([result])
    return build_message(MsgId.GENERAL_RESPONSE, body, serial, header.terminal, header.version)


def register_response(header: Header, serial: int, auth_code: str) -> bytes:
    """Registration response 0x8100: the acked serial, result 0, authentication code."""
    body = header.serial.to_bytes(2, "big") + b"\x00" + auth_code.encode("ascii", "replace")
    return build_message(MsgId.REGISTER_RESPONSE, body, serial, header.terminal, header.version)


# --------------------------------------------------------------------------
# Reading helpers
# --------------------------------------------------------------------------

def bcd_time(raw: bytes, tz: dt.tzinfo = GMT8) -> dt.datetime | None:
    """YYMMDDhhmmss in BCD, in zone `tz` -> aware UTC; None when not a valid time
    (devices send zeros before their first fix)."""
    digits = raw.hex()
    if not digits.isdigit():
        return None
    values = [int(digits[i:i + 2]) for i in range(0, 12, 2)]
    try:
        year, month, day, hour, minute, second = values
        local = dt.datetime(2000 + year, month, day, hour, minute, second, tzinfo=tz)
    except ValueError:
        return None
    return local.astimezone(dt.UTC)


def _text(raw: bytes) -> str:
    """Device text: NUL-padded, ASCII or GBK."""
    raw = raw.split(b"\x00", 1)[0]
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return raw.decode("gbk", "replace")


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


# --------------------------------------------------------------------------
# Decoding context
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """Session settings: `model` (Traccar's modelOverride, upper case) and
    `lenient` (skip the checksum)."""

    model: str = ""
    lenient: bool = False

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> Options:
        options = options or {}
        model = str(options.get("modelOverride") or options.get("model") or "").upper()
        return cls(model=model, lenient=option_flag(options.get("lenient", False)))

    @property
    def aovx(self) -> bool:
        """AOVX trackers (GL100, AL300, VL300) send device information in 0xF8."""
        return self.model.startswith(("GL100", "AL300", "VL300"))


@dataclasses.dataclass(slots=True)
class Record:
    """A record under construction: attributes and network lists."""

    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)
    cells: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    wifi: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def network(self) -> dict[str, Any] | None:
        return network(self.cells, self.wifi)


@dataclasses.dataclass(frozen=True, slots=True)
class Context:
    """What decoders may look at besides the bytes."""

    options: Options
    now: dt.datetime
    unique_id: str


def _status_only(ctx: Context, rec: Record, time: dt.datetime | None = None) -> Position:
    """A record with status but no fix of its own (Traccar's "outdated")."""
    return Position(fix_time=ctx.now, valid=False, latitude=0.0, longitude=0.0, device_time=time,
                    outdated=True, attributes=rec.attrs, network=rec.network(),
                    unique_id=ctx.unique_id)


# --------------------------------------------------------------------------
# Location basic information
# --------------------------------------------------------------------------

ALARM_BITS: tuple[tuple[int, str], ...] = (
    (0, "sos"), (1, "overspeed"), (2, "fatigueDriving"), (5, "gpsAntennaCut"),
    (7, "lowPower"), (17, "tampering"), (18, "lowBattery"), (8, "powerOff"),
    (11, "fault"), (20, "geofence"), (29, "accident"), (31, "door"),
)
"""Alarm flag bits -> Traccar alarms, in the order they are reported.  The 2013
standard: 0 emergency, 1 overspeed, 2 fatigue, 5 GNSS antenna cut, 7 main power
under-voltage, 8 main power off, 11 camera fault, 20 area in/out, 29 collision,
31 illegal door opening.  Observed on personal trackers (reserved bits in the
standard): 17 tampering (light sensor), 18 low battery."""

MODEL_ALARM_BITS = {"AL300": ((16, "movement"),)}
"""Observed dialects: the AL300 reports movement in bit 16."""


def _alarms(flags: int, options: Options, rec: Record) -> None:
    for bit, alarm in ALARM_BITS + MODEL_ALARM_BITS.get(options.model, ()):
        if flags >> bit & 1:
            add_alarm(rec.attrs, alarm)


def _status(status: int, options: Options, rec: Record) -> None:
    """Status bits: 0 ACC (ignition), 10 oil circuit cut ("blocked"), 26 charging
    (observed); bit 16 is the door on MV710G (observed)."""
    rec.attrs["ignition"] = bool(status & 0x01)
    rec.attrs["blocked"] = bool(status & 0x0400)
    if options.model == "MV710G":
        rec.attrs["door"] = bool(status & 0x00010000)
    rec.attrs["charge"] = bool(status & 0x04000000)


@dataclasses.dataclass(slots=True)
class Fix:
    """The basic location block as decoded."""

    time: dt.datetime | None
    valid: bool
    latitude: float
    longitude: float
    altitude_m: float
    speed_kn: float
    course_deg: float


def _basic(r: Reader, options: Options, rec: Record) -> Fix:
    """Alarm flags (4), status (4), latitude (4, 1e-6 deg), longitude (4), altitude
    (2, m), speed (2, 0.1 km/h), course (2, deg), time (6, BCD GMT+8): 28 bytes."""
    alarm, status = r.u32(), r.u32()
    _alarms(alarm, options, rec)
    _status(status, options, rec)
    latitude, longitude = r.u32() / COORD_DIVISOR, r.u32() / COORD_DIVISOR
    if status & 0x04:
        latitude = -latitude
    if status & 0x08:
        longitude = -longitude
    altitude, speed, course = r.s16(), r.u16(), r.u16()
    return Fix(bcd_time(r.take(6)), bool(status & 0x02), latitude, longitude, float(altitude),
               speed / 10 / KMH_PER_KNOT, float(course))


def _position(ctx: Context, fix: Fix, rec: Record) -> Position:
    """A located record; without a valid time it is a status record."""
    return Position(
        fix_time=fix.time or ctx.now, valid=fix.valid, latitude=fix.latitude,
        longitude=fix.longitude, altitude_m=fix.altitude_m, speed_kn=fix.speed_kn,
        course_deg=fix.course_deg, device_time=fix.time, outdated=fix.time is None,
        attributes=rec.attrs, network=rec.network(), unique_id=ctx.unique_id)


def decode_location(ctx: Context, data: bytes, start: int, end: int) -> Position:
    """One location (basic block + additional items) found in `data[start:end]`.

    Additional items may be read past their declared length and into the bytes
    after `end` (the checksum), as the devices' firmware and the reference decoder
    do (see `_extension`)."""
    r = Reader(data, NAME, start)
    rec = Record()
    fix = _basic(r, ctx.options, rec)
    _extension(r, end, ctx, rec)
    return _position(ctx, fix, rec)


# --------------------------------------------------------------------------
# Additional information items
# --------------------------------------------------------------------------

Item = Callable[[Reader, int, Context, Record], None]
_ITEMS: dict[int, Item] = {}


def _item(*ids: int) -> Callable[[Item], Item]:
    def register(func: Item) -> Item:
        for item_id in ids:
            _ITEMS[item_id] = func
        return func
    return register


FIXED_EXTENSION_BYTES = 18
"""Observed: some devices append an 18-byte block without item ids instead; it is
told from an 18-byte item list by not being a chain of known items."""


def _extension(r: Reader, end: int, ctx: Context, rec: Record) -> None:
    """Items of id (1), length (1), value until `end`.  A decoder may read past the
    declared length (observed firmware does, e.g. 0xE3 with length 1 carrying 4
    bytes); the next item starts at the declared end regardless.  Running out of
    bytes or an item overrunning `end` stops the list, keeping what was decoded.
    See `FIXED_EXTENSION_BYTES` for the one block that is not a list."""
    if end - r.pos == FIXED_EXTENSION_BYTES and not _known_items(r.data[r.pos:end]):
        _fixed_extension(r, rec)
        return
    while r.pos + 2 <= end:
        item_id, length = r.u8(), r.u8()
        start = r.pos
        if start + length > end:
            return
        handler = _ITEMS.get(item_id)
        if handler is not None:
            try:
                handler(r, length, ctx, rec)
            except ProtocolError:
                return
        r.pos = start + length


def _known_items(block: bytes) -> bool:
    """True when `block` is a chain of items this decoder knows, ending exactly."""
    pos = 0
    while pos + 2 <= len(block):
        if block[pos] not in _ITEMS:
            return False
        pos += 2 + block[pos + 1]
    return pos == len(block)


def _fixed_extension(r: Reader, rec: Record) -> None:
    """Observed 18-byte block: ? (4), mileage km (4), battery 0.1 V (2), ? (4),
    GSM signal (1), ? (3)."""
    r.skip(4)
    rec.attrs["odometer"] = r.u32() * 1000
    rec.attrs["battery"] = r.u16() / 10
    r.skip(4)
    rec.attrs["rssi"] = r.u8()


@_item(0x01)
def _mileage(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Mileage in 0.1 km -> metres."""
    rec.attrs["odometer"] = r.u32() * 100


@_item(0x02)
def _fuel(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Fuel in 0.1 L."""
    rec.attrs["fuel"] = r.u16() / 10


@_item(0x14)
def _video_alarm(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """JT/T 1078 video alarm flags."""
    rec.attrs["videoAlarm"] = r.u32()


@_item(0x25)
def _signal_status(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Extended vehicle signal status word."""
    rec.attrs["input"] = r.u32()


@_item(0x2B)
def _analog(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Analog inputs AD0, AD1 (0.01 V units)."""
    rec.attrs["adc1"] = r.u16() / 100
    rec.attrs["adc2"] = r.u16() / 100


@_item(0xA7)
def _analog_a7(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Observed: analog inputs 1 and 2 in 0.01 V."""
    rec.attrs["adc1"] = r.u16() / 100
    rec.attrs["adc2"] = r.u16() / 100


@_item(0xAC)
def _odometer_metres(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Observed: odometer in metres."""
    rec.attrs["odometer"] = r.u32()


@_item(0x30)
def _rssi(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    rec.attrs["rssi"] = r.u8()


@_item(0x31)
def _satellites(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    rec.attrs["sat"] = r.u8()


@_item(0x33)
def _mode(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Observed: working mode."""
    rec.attrs["mode"] = r.u8()


@_item(0x51)
def _temperature(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Observed: temperature in 0.1 degC."""
    rec.attrs["temp1"] = r.s16() / 10


@_item(0x56)
def _battery_tenths(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Observed: battery level in tens of percent (then a reserved byte)."""
    rec.attrs["batteryLevel"] = r.u8() * 10


@_item(0x5D)
def _cell_list(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Observed: count, then MCC (2), MNC (1), LAC (2), cell id (4), signal (1)."""
    for _ in range(r.u8()):
        mcc, mnc, lac, cid, signal = r.u16(), r.u8(), r.u16(), r.u32(), r.u8()
        rec.cells.append(cell_tower(mcc, mnc, lac, cid, -signal))


@_item(0x63)
def _seal_locks(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Observed: 11-byte lock records: id (6), battery mV (2), state (3)."""
    for index in range(1, n // 11 + 1):
        rec.attrs[f"lock{index}Id"] = r.take(6).hex()
        rec.attrs[f"lock{index}Battery"] = r.u16() / 1000
        state = r.take(3)
        rec.attrs[f"lock{index}Seal"] = bool(state[1] & 0x01)


@_item(0x64)
def _adas(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """ADAS alarm (JT/T 1078 / Su-standard): id (4), flag (1), type (1) ...,
    ending with the 16-byte alarm label."""
    value = r.take(n)
    if n >= 22:
        rec.attrs["adasAlarm"] = value[5]
        rec.attrs["alarmLabel"] = value[-16:].hex()


@_item(0x67)
def _password(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    rec.attrs["password"] = _text(r.take(n))


@_item(0x69)
def _battery_centivolts(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    rec.attrs["battery"] = r.u16() / 100


@_item(0x77)
def _tires(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Observed TPMS: 8-byte records of index, sensor id (3), pressure (2, 1/40 bar),
    temperature (1, +50 degC), status (1)."""
    for _ in range(n // 8):
        index = r.u8()
        prefix = f"tire{index}"
        rec.attrs[f"{prefix}SensorId"] = r.take(3).hex()
        rec.attrs[f"{prefix}Pressure"] = r.u16() / 40
        rec.attrs[f"{prefix}Temp"] = r.u8() - 50
        rec.attrs[f"{prefix}Status"] = r.u8()


@_item(0x82, 0xD3)
def _power_decivolts(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """External power in 0.1 V."""
    rec.attrs["power"] = r.u16() / 10


def _obd_item(key: str, width: int, factor: int = 1, offset: int = 0) -> Item:
    """Observed OBD item: an unsigned value times `factor` plus `offset`."""
    def decode(r: Reader, n: int, ctx: Context, rec: Record) -> None:
        rec.attrs[key] = r.uint(width) * factor + offset
    return decode


_OBD_ITEMS = {
    0x81: _obd_item("rpm", 2), 0x83: _obd_item("engineLoad", 1),
    0x84: _obd_item("coolantTemp", 1, offset=-40), 0x85: _obd_item("fuelConsumption", 2),
    0x86: _obd_item("intakeTemp", 1, offset=-40), 0x87: _obd_item("intakeFlow", 2),
    0x88: _obd_item("intakePressure", 1), 0x89: _obd_item("throttle", 1),
    0x8C: _obd_item("obdOdometer", 4, 100), 0x8D: _obd_item("tripOdometer", 2, 1000),
    0x8E: _obd_item("fuel", 1),
}
"""Observed OBD items 0x81-0x8E (0x82 is the power, above): units as the device
sends them, temperatures offset by 40, odometer 0.1 km and trip km -> metres."""
_ITEMS.update(_OBD_ITEMS)


@_item(0x8B)
def _vin(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    rec.attrs["vin"] = _text(r.take(n))


@_item(0xA0)
def _dtcs(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Observed: comma-separated trouble codes."""
    if n:
        rec.attrs["dtcs"] = _text(r.take(n)).replace(",", " ")


@_item(0xBC)
def _driver_name(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    rec.attrs["driver"] = _text(r.take(n)).strip()


@_item(0xBD)
def _driver_id(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    rec.attrs["driverUniqueId"] = _text(r.take(n))


@_item(0xD4)
def _battery_level(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    rec.attrs["batteryLevel"] = r.u8()


@_item(0xD5)
def _card_locks(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Observed: count, then lock id (5), card (5), battery % (1), status (2)."""
    for index in range(1, r.u8() + 1):
        rec.attrs[f"lock{index}Id"] = r.take(5).hex()
        rec.attrs[f"lock{index}Card"] = r.take(5).hex()
        rec.attrs[f"lock{index}Battery"] = r.u8()
        rec.attrs[f"lock{index}Locked"] = bool(r.u16() & 0x01)


@_item(0xDA)
def _asset_status(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Observed asset-tracker flags: bit 0 strap cut, bit 2 moving, bit 3 cover open."""
    flags = r.u8()
    rec.attrs["string"] = bool(flags & 0x01)
    rec.attrs["motion"] = bool(flags & 0x04)
    rec.attrs["cover"] = not flags & 0x08


@_item(0xE1)
def _e1(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Observed, told apart by length: power 0.1 V (2), driver id (4), cell (12:
    MCC 2, MNC 2, LAC 3, cell id 4, signal 1)."""
    if n == 2:
        rec.attrs["power"] = r.u16() / 10
    elif n == 4:
        rec.attrs["driverUniqueId"] = str(r.u32())
    elif n == 12:
        mcc, mnc, lac, cid = r.u16(), r.u16(), r.uint(3), r.u32()
        rec.cells.append(cell_tower(mcc, mnc, lac, cid, -r.u8()))


@_item(0xE2)
def _fuel_e2(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Observed: fuel in 0.1 L (4 bytes)."""
    rec.attrs["fuel"] = r.u32() / 10


@_item(0xE3)
def _battery_e3(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Observed: reserved (1), battery % (1), battery 0.01 V (2), whatever the
    declared length."""
    r.skip(1)
    rec.attrs["batteryLevel"] = r.u8()
    rec.attrs["battery"] = r.u16() / 100


@_item(0xE4)
def _charge_e4(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Observed: charge state (0 = charging), battery %."""
    rec.attrs["charge"] = r.u8() == 0
    rec.attrs["batteryLevel"] = r.u8()


@_item(0xE5)
def _motion_e5(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Observed: one byte, non-zero when moving (other lengths carry other data)."""
    if n == 1:
        rec.attrs["motion"] = r.u8() != 0


@_item(0xE6)
def _e6(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Observed: "$OBD-RT" text, or 11-byte BLE sensor records: index (1), MAC (6),
    temperature (signed degrees + 1/255 fraction), humidity % (1), reserved (1)."""
    value = r.take(n)
    if value.startswith(b"$OBD"):
        rec.attrs.update(obd_text(value))
        return
    for offset in range(0, n - 10, 11):
        index = value[offset]
        whole = int.from_bytes(value[offset + 7:offset + 8], "big", signed=True)
        fraction = value[offset + 8] / 255
        rec.attrs[f"temp{index}"] = whole - fraction if whole < 0 else whole + fraction
        rec.attrs[f"humidity{index}"] = float(value[offset + 9])


@_item(0xE8)
def _e8(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """JC371: event and status blocks (see `_jc371`); elsewhere (observed) a 3-byte
    lock status."""
    if ctx.options.model == "JC371":
        _jc371(Reader(r.take(n), NAME), rec)
    else:
        rec.attrs["lockStatus"] = r.uint(3)


_JC371_EVENTS = {0x04: "vibration"}


def _jc371(r: Reader, rec: Record) -> None:
    """Event (1), then blocks of id (1), length (1): 0x03 battery block (charging,
    level 0..6, battery 0.01 V, signal, power 0.01 V); 0x05 items of id (2),
    length (1) with 0x2001 power 0.1 V and 0x0007 HDOP x10."""
    add_alarm(rec.attrs, _JC371_EVENTS.get(r.u8()))
    while r.remaining() >= 2:
        block, length = r.u8(), r.u8()
        value = Reader(r.take(length), NAME)
        if block == 0x03:
            rec.attrs["charge"] = value.u8() == 1
            rec.attrs["batteryLevel"] = value.u8() * 100 // 6
            rec.attrs["battery"] = value.u16() / 100
            rec.attrs["rssi"] = value.u8()
            rec.attrs["power"] = value.u16() / 100
        elif block == 0x05:
            while value.remaining() >= 3:
                item, size = value.u16(), value.u8()
                data = Reader(value.take(size), NAME)
                if item == 0x2001:
                    rec.attrs["power"] = data.u16() / 10
                elif item == 0x0007:
                    rec.attrs["hdop"] = data.u16() / 10


@_item(0xEB)
def _eb(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Observed, three forms: a time zone text ("UTC+08:00"), a list of items of
    length (2, counting the id) and id (2) (see `_EB_ITEMS`), or a cell list."""
    value = r.take(n)
    if value.startswith(b"UTC"):
        rec.attrs["timezone"] = _text(value)
        return
    items = _eb_items(value)
    if items is None:
        return
    for item_id, data in items:
        handler = _EB_ITEMS.get(item_id)
        if handler is not None and data:
            handler(data, rec)


def _eb_items(value: bytes) -> list[tuple[int, bytes]] | None:
    """The (id, value) list, or None unless the lengths chain to the end exactly."""
    items, pos = [], 0
    while pos < len(value):
        if pos + 4 > len(value):
            return None
        length = int.from_bytes(value[pos:pos + 2], "big")
        if length < 2 or pos + 2 + length > len(value):
            return None
        items.append((int.from_bytes(value[pos + 2:pos + 4], "big"), value[pos + 4:pos + 2 + length]))
        pos += 2 + length
    return items


def _eb_alarm_flags(data: bytes, rec: Record) -> None:
    """0x0089, active low: bit 0 power off, bit 12 removal."""
    flags = int.from_bytes(data[:4], "big")
    if not flags & 0x0001:
        add_alarm(rec.attrs, "powerOff")
    if not flags & 0x1000:
        add_alarm(rec.attrs, "removing")


def _eb_status_flags(data: bytes, rec: Record) -> None:
    """0x00C5, active low: bit 6 vibration; bit 24 low means bit 23 tells motion
    (low = moving)."""
    flags = int.from_bytes(data[:4], "big")
    if not flags & 0x40:
        add_alarm(rec.attrs, "vibration")
    if not flags & 0x01000000:
        rec.attrs["motion"] = not flags & 0x00800000


def _eb_voltage(data: bytes, rec: Record) -> None:
    """0x002D: battery mV in two bytes, external power mV in four."""
    key = "battery" if len(data) == 2 else "power"
    rec.attrs[key] = int.from_bytes(data, "big") / 1000


def _eb_fuel_text(data: bytes, rec: Record) -> None:
    try:
        rec.attrs["fuel2"] = float(_text(data))
    except ValueError:
        pass


_EB_ITEMS: dict[int, Callable[[bytes, Record], None]] = {
    0x0001: lambda data, rec: rec.attrs.__setitem__("fuel1", int.from_bytes(data[:2], "big") / 10),
    0x0023: _eb_fuel_text,
    0x002D: _eb_voltage,
    0x0089: _eb_alarm_flags,
    0x00A8: lambda data, rec: rec.attrs.__setitem__("batteryLevel", data[0]),
    0x00B2: lambda data, rec: rec.attrs.__setitem__("iccid", data.hex().rstrip("f")),
    0x00C5: _eb_status_flags,
    0x00CE: lambda data, rec: rec.attrs.__setitem__("power", int.from_bytes(data[:2], "big") / 100),
    0x00E1: lambda data, rec: rec.attrs.__setitem__("batteryLevel", data[0]),
}
"""Observed 0xEB items: fuel sensors, voltages, alarm and status flags, battery
level, ICCID."""


@_item(0xF0)
def _aovx_cells(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """AOVX: 13-byte cells of MCC (2), MNC (2), cell id (4), LAC (4), signal (1)."""
    for _ in range(n // 13):
        mcc, mnc, cid, lac, signal = r.u16(), r.u16(), r.u32(), r.u32(), r.u8()
        rec.cells.append(cell_tower(mcc, mnc, lac, cid, -signal))


@_item(0xF1)
def _aovx_power(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """AOVX: external power in mV."""
    rec.attrs["power"] = r.u32() / 1000


@_item(0xF2)
def _aovx_firmware(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    rec.attrs["versionFw"] = _text(r.take(n))


@_item(0xF3)
def _obd_block(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Observed OBD block: items of id (2), length (1); see `_OBD_BLOCK`.  Values
    are read at their natural width whatever the declared length."""
    end = r.pos + n
    while n >= 3 and r.pos + 3 <= end:
        item, size = r.u16(), r.u8()
        start = r.pos
        decoder = _OBD_BLOCK.get(item)
        if decoder is not None:
            decoder(r, size, rec)
        r.pos = start + size


def _obd_value(key: str, width: int, scale: float | None = None) -> Callable[[Reader, int, Record], None]:
    def decode(r: Reader, size: int, rec: Record) -> None:
        value = r.uint(width)
        rec.attrs[key] = value if scale is None else value / scale
    return decode


_OBD_BLOCK: dict[int, Callable[[Reader, int, Record], None]] = {
    0x0002: _obd_value("obdSpeed", 2, 10),
    0x0003: _obd_value("rpm", 2),
    0x0004: _obd_value("power", 2, 1000),
    0x0005: _obd_value("obdOdometer", 4),
    0x0006: _obd_value("fuelConsumption", 2, 10),
    0x0008: _obd_value("engineLoad", 2, 10),
    0x0052: lambda r, size, rec: rec.attrs.__setitem__("calid", r.take(size).decode("latin-1")),
    0x0100: _obd_value("tripOdometer", 2, 10),
    0x0102: _obd_value("tripFuel", 2, 10),
    0x0111: _obd_value("hardAccelerationCount", 2),
    0x0112: _obd_value("hardDecelerationCount", 2),
    0x0113: _obd_value("hardCorneringCount", 2),
}


@_item(0xF4, 0xEC)
def _wifi_list(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Wi-Fi access points: MAC (6), signal (1, signed dBm)."""
    for _ in range(n // 7):
        mac = _mac(r.take(6))
        rec.wifi.append({"macAddress": mac, "signalStrength": r.s8()})


@_item(0xF6)
def _aovx_sensors(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """AOVX sensors: event (1), mask (1), then per mask bit: 0 light, 1 temperature
    (0.1 degC), 2 humidity (0.1 %), 3 G-sensor x, y, z.  Event 2 is movement.
    An 8-byte item is the IMEI instead (observed, VL300)."""
    if n == 8:
        rec.attrs["imei"] = r.take(8).hex()[1:]
        return
    event, mask = r.u8(), r.u8()
    rec.attrs["event"] = event
    if event == 2:
        rec.attrs["motion"] = True
    if mask & 0x01:
        rec.attrs["lightSensor"] = r.u16()
    if mask & 0x02:
        rec.attrs["temp1"] = r.s16() / 10
    if mask & 0x04:
        rec.attrs["humidity"] = r.u16() / 10
    if mask & 0x08:
        rec.attrs["gSensor"] = f"[{r.s16()},{r.s16()},{r.s16()}]"


@_item(0xF7)
def _aovx_battery(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """AOVX: battery mV (4), charge state (1, 2 = charging), battery % (1)."""
    rec.attrs["battery"] = r.u32() / 1000
    rec.attrs["charge"] = r.u8() == 2
    rec.attrs["batteryLevel"] = r.u8()


@_item(0xF8)
def _f8(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """By dialect: AOVX device information (type, IMEI BCD 8, ICCID 10, model);
    C5L step count; otherwise (observed) device temperature (0.1 degC + 50)."""
    if ctx.options.aovx:
        r.skip(9)
        rec.attrs["iccid"] = r.take(10).hex()
    elif ctx.options.model == "C5L":
        rec.attrs["steps"] = r.u16()
    else:
        rec.attrs["temp2"] = r.u16() / 10 - 50


@_item(0xF9)
def _aovx_gnss(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """AOVX GNSS details: HDOP x10 at offset 10."""
    r.skip(10)
    rec.attrs["hdop"] = r.u16() / 10


@_item(0xFB)
def _container(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    rec.attrs["container"] = r.take(n).decode("latin-1")


_DRIVING_ALARMS = ((0, "hardAcceleration"), (1, "hardBraking"), (2, "hardCornering"))


@_item(0xFE)
def _fe(r: Reader, n: int, ctx: Context, rec: Record) -> None:
    """Observed, by length: battery % (1), power 0.1 V (2), or a flag byte and
    items of id (1), length (1): 0x01 driving-behaviour bits, 0xF1 status block
    ending with the battery % at offset 12."""
    if n == 1:
        rec.attrs["batteryLevel"] = r.u8()
        return
    if n == 2:
        rec.attrs["power"] = r.u16() / 10
        return
    end = r.pos + n
    r.skip(1)
    while r.pos + 2 <= end:
        item, size = r.u8(), r.u8()
        start = r.pos
        if item == 0x01:
            flags = r.u32()
            for bit, alarm in _DRIVING_ALARMS:
                if flags >> bit & 1:
                    add_alarm(rec.attrs, alarm)
        elif item == 0xF1:
            r.skip(12)
            rec.attrs["batteryLevel"] = r.u8()
        r.pos = start + size


# --------------------------------------------------------------------------
# Text carried in items and transparent data
# --------------------------------------------------------------------------

_OBD_TEXT_FIELDS = ("power", "rpm", "obdSpeed", "throttle", "engineLoad", "coolantTemp", None,
                    "fuelConsumption", "tripOdometer", "obdOdometer", "tripFuelUsed", "fuelUsed")


def obd_text(raw: bytes) -> dict[str, Any]:
    """"$OBD-RT,power,rpm,speed,throttle,load,coolant,?,consumption,trip,odometer,
    trip fuel,fuel used,..." -> attributes (empty fields skipped; coolant an int)."""
    fields = raw.decode("latin-1").strip().split(",")[1:]
    attrs: dict[str, Any] = {}
    for key, text in zip(_OBD_TEXT_FIELDS, fields, strict=False):
        if key is None or not text.strip():
            continue
        try:
            value = float(text)
        except ValueError:
            continue
        if not math.isfinite(value):   # float() also reads "nan", "inf" and 400-digit numbers
            continue
        attrs[key] = int(value) if key == "coolantTemp" else value
    return attrs


# --------------------------------------------------------------------------
# Message decoders
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class Parsed:
    """A frame taken apart for the message decoders: `data` is the whole frame,
    the body is `data[start:end]` (the checksum and delimiter follow)."""

    header: Header
    data: bytes
    start: int
    end: int

    def reader(self) -> Reader:
        return Reader(self.data[:self.end], NAME, self.start)


Decoder = Callable[[Context, Parsed], list[Message]]
_DECODERS: DecoderTable[int, Decoder] = DecoderTable(NAME)
_decoder = _DECODERS.register


@_decoder(MsgId.REGISTER, MsgId.AUTHENTICATE)
def _login(ctx: Context, p: Parsed) -> list[Message]:
    """Registration (province, city, maker, model, terminal id, plate) and
    authentication (the code): the header names the device, nothing to store."""
    return [Login(ctx.unique_id)]


@_decoder(MsgId.LOCATION)
def _location(ctx: Context, p: Parsed) -> list[Message]:
    return [decode_location(ctx, p.data, p.start, p.end)]


@_decoder(MsgId.LOCATION_QUERY, MsgId.CONTROL_RESPONSE)
def _location_answer(ctx: Context, p: Parsed) -> list[Message]:
    """Answers to 0x8201 / 0x8500: the command's serial (2), then a location."""
    position = decode_location(ctx, p.data, p.start + 2, p.end)
    return [position, CommandResult(f"location, serial {p.reader().u16()}", ctx.unique_id)]


@_decoder(MsgId.BATCH)
def _batch(ctx: Context, p: Parsed) -> list[Message]:
    """Count (2), type (1: 1 = blind-area backlog -> archive), then length (2) +
    location each."""
    r = p.reader()
    count, kind = r.u16(), r.u8()
    positions: list[Message] = []
    for _ in range(count):
        if r.remaining() < 2:
            break
        length = r.u16()
        if length < 28 or r.pos + length > p.end:
            break
        positions.append(_archived(decode_location(ctx, r.data, r.pos, r.pos + length), kind == 1))
        r.pos += length
    return positions


def _archived(position: Position, archive: bool) -> Position:
    if not archive:
        return position
    return dataclasses.replace(position, attributes={**position.attributes, "archive": True})


@_decoder(MsgId.LOCATION_LIST)
def _location_list(ctx: Context, p: Parsed) -> list[Message]:
    """Observed: records of length (1) + basic block (+ extra data not decoded)."""
    r = p.reader()
    positions: list[Message] = []
    while r.remaining() > 0:
        length = r.u8()
        if length < 28 or r.remaining() < length:
            break
        rec = Record()
        fix = _basic(Reader(r.take(length), NAME), ctx.options, rec)
        positions.append(_position(ctx, fix, rec))
    return positions


@_decoder(MsgId.TERMINAL_RESPONSE)
def _terminal_response(ctx: Context, p: Parsed) -> list[Message]:
    """The terminal's answer to a command: serial (2), id (2), result (1)."""
    r = p.reader()
    serial, msg_id, result = r.u16(), r.u16(), r.u8()
    outcome = _RESULTS.get(result, f"result {result}")
    return [CommandResult(f"{msg_id:#06x} serial {serial}: {outcome}", ctx.unique_id)]


_RESULTS = {0: "success", 1: "failure", 2: "message error", 3: "not supported", 4: "alarm confirmed"}


@_decoder(MsgId.RESULT_TEXT)
def _result_text(ctx: Context, p: Parsed) -> list[Message]:
    """Observed: a command result as length (4) + text."""
    r = p.reader()
    length = r.u32()
    text = _text(r.take(min(length, r.remaining())))
    return [_status_only(ctx, Record({"result": text})), CommandResult(text, ctx.unique_id)]


@_decoder(MsgId.DRIVER)
def _driver(ctx: Context, p: Parsed) -> list[Message]:
    """Driver identity (2013): card status (1), time (6), IC result (1), name length
    + name, qualification code (20), issuer length + issuer, validity (BCD 4)."""
    r = p.reader()
    rec = Record()
    rec.attrs["cardStatus"] = r.u8()
    time = bcd_time(r.take(6))
    if r.remaining():
        rec.attrs["cardResult"] = r.u8()
        name = _text(r.take(r.u8()))
        if name:
            rec.attrs["driver"] = name
        rec.attrs["cardCode"] = _text(r.take(20))
        r.skip(r.u8())
        rec.attrs["cardValidity"] = r.take(4).hex()
    return [_status_only(ctx, rec, time)]


@_decoder(MsgId.ATTRIBUTES)
def _attributes(ctx: Context, p: Parsed) -> list[Message]:
    """Terminal attributes: type (2), maker (5), model (20 / 30 in 2019), terminal id
    (7 / 30), ICCID (BCD 10), versions...: the ICCID is kept."""
    r = p.reader()
    r.skip(2 + 5 + (60 if p.header.version is not None else 27))
    return [_status_only(ctx, Record({"iccid": r.take(10).hex()}))]


@_decoder(MsgId.ACCELERATION)
def _acceleration(ctx: Context, p: Parsed) -> list[Message]:
    """Observed: 12-byte samples of time (6) and x, y, z (sign and magnitude, 2 each)."""
    r = p.reader()
    samples = []
    while r.remaining() >= 12:
        r.skip(6)
        samples.append([_sign_magnitude(r.u16()) for _ in range(3)])
    text = "[" + ",".join(f"[{x},{y},{z}]" for x, y, z in samples) + "]"
    return [_status_only(ctx, Record({"gSensor": text}))]


def _sign_magnitude(value: int) -> int:
    return -(value & 0x7FFF) if value & 0x8000 else value


@_decoder(MsgId.TRANSPARENT)
def _transparent(ctx: Context, p: Parsed) -> list[Message]:
    """Transparent data: type (1), then by type (see `_TRANSPARENT`)."""
    r = p.reader()
    decoder = _TRANSPARENT.get(r.u8())
    return decoder(ctx, r) if decoder is not None else []


def _transparent_obd_text(ctx: Context, r: Reader) -> list[Message]:
    """0x41 (serial port 1): "$OBD-RT,..." text."""
    attrs = obd_text(r.take(r.remaining()))
    return [_status_only(ctx, Record(attrs))] if attrs else []


def _transparent_card(ctx: Context, r: Reader) -> list[Message]:
    """0x40 (observed): length (2) + "GTSL|a|b|c|driver id|..." text."""
    fields = _text(r.take(min(r.u16(), r.remaining()))).split("|")
    if len(fields) > 4 and fields[4]:
        return [_status_only(ctx, Record({"driverUniqueId": fields[4]}))]
    return []


def _transparent_obd(ctx: Context, r: Reader) -> list[Message]:
    """0xF0 (observed OBD box): time (6), archive flag (1), ? (1), data type (1):
    1 = data stream of count (1) x [id (2), length (1), value]; 2 = trouble codes;
    then status (4), latitude (4), longitude (4).  The record is marked outdated
    (OBD data, not a fix of its own, as the reference decoder reports it) but keeps
    the place it names."""
    time = bcd_time(r.take(6))
    archive, _, kind = r.u8(), r.u8(), r.u8()
    rec = Record()
    if archive:
        rec.attrs["archive"] = True
    if kind == 1:
        for _ in range(r.count(r.u8(), 3, "OBD data stream count")):
            item, size = r.u16(), r.u8()
            _obd_stream_item(item, r.take(size), rec)
    elif kind == 2:
        _obd_trouble_codes(r, rec)
    status = r.u32()
    _status(status, ctx.options, rec)
    latitude, longitude = r.u32() / COORD_DIVISOR, r.u32() / COORD_DIVISOR
    return [Position(
        fix_time=time or ctx.now, valid=bool(status & 0x02), device_time=time, outdated=True,
        latitude=-latitude if status & 0x04 else latitude,
        longitude=-longitude if status & 0x08 else longitude,
        attributes=rec.attrs, unique_id=ctx.unique_id)]


_OBD_STREAM = {
    0x052B: ("fuel", 1, 0), 0x052C: ("fuelUsed", 0.01, 0), 0x052D: ("coolantTemp", 1, -40),
    0x052E: ("airTemp", 1, -40), 0x0530: ("power", 0.001, 0), 0x0535: ("obdSpeed", 0.1, 0),
    0x0536: ("rpm", 1, 0), 0x0539: ("fuelConsumption", 0.01, 0),
    0x053D: ("intakePressure", 0.1, 0), 0x0544: ("liquidLevel", 1, 0),
    0x0546: ("odometer", 100, 0),
}
_OBD_STREAM_SKIPPED = frozenset({0x0538})


def _obd_stream_item(item: int, value: bytes, rec: Record) -> None:
    """One data-stream value; unknown ids become "io<id>"."""
    number = int.from_bytes(value, "big")
    if item in _OBD_STREAM_SKIPPED:
        return
    if item not in _OBD_STREAM:
        rec.attrs[f"io{item}"] = number
        return
    key, factor, offset = _OBD_STREAM[item]
    if len(value) > 8:          # no reading is wider; a float cannot hold 255 bytes times a factor
        return
    scaled = number * factor + offset
    rec.attrs[key] = round(scaled, 6) if isinstance(factor, float) else scaled


def _obd_trouble_codes(r: Reader, rec: Record) -> None:
    """Groups (2) x [mask (4), count (2), count x code (4)], then a text block
    (reserved (4), length (2), text)."""
    codes = []
    for _ in range(r.count(r.u16(), 6, "trouble code group count")):
        r.skip(4)
        codes += [_dtc(r.u32()) for _ in range(r.count(r.u16(), 4, "trouble code count"))]
    r.skip(4)
    r.skip(r.u16())
    if codes:
        rec.attrs["dtcs"] = " ".join(codes)


def _dtc(code: int) -> str:
    """SAE J2012 two-byte code -> "P0123" (system letter from the top two bits)."""
    return "PCBU"[code >> 14 & 0x03] + f"{code & 0x3FFF:04X}"


def _transparent_tags(ctx: Context, r: Reader) -> list[Message]:
    """0x53 (observed, GL100 BLE tags): status (4), latitude (4), longitude (4),
    altitude (2), speed (2), course (2), time (6), ? (1), then tags of
    index (1), MAC (6), RSSI (1, signed), length (1), data."""
    rec = Record()
    status = r.u32()
    _status(status, ctx.options, rec)
    latitude, longitude = r.u32() / COORD_DIVISOR, r.u32() / COORD_DIVISOR
    altitude, speed, course = r.s16(), r.u16(), r.u16()
    time = bcd_time(r.take(6))
    r.skip(1)
    index = 0
    while r.remaining() >= 9:
        index += 1
        r.skip(1)
        rec.attrs[f"tag{index}Mac"] = r.take(6).hex()
        rec.attrs[f"tag{index}Rssi"] = r.s8()
        rec.attrs[f"tag{index}Data"] = r.take(min(r.u8(), r.remaining())).hex()
    fix = Fix(time, bool(status & 0x02), -latitude if status & 0x04 else latitude,
              -longitude if status & 0x08 else longitude, float(altitude),
              speed / 10 / KMH_PER_KNOT, float(course))
    return [_position(ctx, fix, rec)]


_TRANSPARENT: dict[int, Callable[[Context, Reader], list[Message]]] = {
    0x40: _transparent_card,
    0x41: _transparent_obd_text,
    0x53: _transparent_tags,
    0xF0: _transparent_obd,
}


# --------------------------------------------------------------------------
# E-lock frames (observed, Jointech style)
# --------------------------------------------------------------------------

@_decoder(MsgId.LOCK_REPORT, MsgId.LOCK_ALARM)
def _lock_report(ctx: Context, p: Parsed) -> list[Message]:
    """Observed e-lock report after the 10-byte header: index (1, bit 1 = fix
    valid), date DDMMYY and time (BCD, UTC), latitude ddmm.mmmm (BCD 4), longitude
    dddmm.mmmm (9 BCD digits) + flags nibble (bit 1 north, bit 2 east), speed (1),
    course (1), signal (1), satellites (1), mileage km (4), battery (1, % or 0xAA
    charging), ? (2), cell id (2), LAC (2), ? (1), status (2), ? (2), then items of
    id (1), length (1)."""
    r = Reader(p.data[:p.end], NAME, 11)
    index = r.u8()
    digits = r.take(6).hex()
    try:
        time = dt.datetime(2000 + int(digits[4:6]), int(digits[2:4]), int(digits[0:2]),
                           int(digits[6:8]), int(digits[8:10]), int(digits[10:12]), tzinfo=dt.UTC)
    except ValueError as exc:
        raise ProtocolError(f"jt808: bad e-lock time {digits}", p.data[:64]) from exc
    lat_digits, lon_digits = r.take(4).hex(), r.take(5).hex()
    if not (lat_digits + lon_digits[:9]).isdigit():
        raise ProtocolError("jt808: bad e-lock coordinates", p.data[:64])
    flags = int(lon_digits[9], 16)
    latitude = nmea.bcd_coordinate(lat_digits, 2)
    longitude = nmea.bcd_coordinate(lon_digits[:9], 3)
    rec = Record()
    speed_kmh = r.u8()
    course = r.u8() * 2
    rec.attrs["rssi"], rec.attrs["sat"] = r.u8(), r.u8()
    rec.attrs["odometer"] = r.u32() * 1000
    battery = r.u8()
    if battery == 0xAA:
        rec.attrs["charge"] = True
    else:
        rec.attrs["batteryLevel"] = battery
    r.skip(2)
    cid, lac = r.u16(), r.u16()
    if cid or lac:
        rec.cells.append(cell_tower(0, 0, lac, cid))
    r.skip(1)
    status = r.u16()
    rec.attrs["blocked"] = bool(status & 0x01)
    rec.attrs["status"] = status
    r.skip(2)
    _lock_items(r, rec)
    fix = Fix(time, bool(index & 0x02), latitude if flags & 0x02 else -latitude,
              longitude if flags & 0x04 else -longitude, 0.0, speed_kmh / KMH_PER_KNOT,
              float(course))
    return [_position(ctx, fix, rec)]


_LOCK_IDS = frozenset({MsgId.LOCK_REPORT, MsgId.LOCK_ALARM})
"""E-lock reports use the attribute bits otherwise (not encryption)."""


def _lock_items(r: Reader, rec: Record) -> None:
    """0x0B lock command (1) [+ password (6) + result (1)], 0x0C tilt x, y, z
    (signed, 2 each), 0x10 wake-up source (1); others skipped."""
    while r.remaining() >= 2:
        item, size = r.u8(), r.u8()
        if size > r.remaining():
            return
        value = Reader(r.take(size), NAME)
        if item == 0x0B and size >= 1:
            rec.attrs["lockCommand"] = value.u8()
            if size >= 8:
                rec.attrs["lockPassword"] = _text(value.take(6))
                rec.attrs["unlockResult"] = value.u8()
        elif item == 0x0C and size >= 6:
            rec.attrs["tilt"] = f"[{value.s16()},{value.s16()},{value.s16()}]"
        elif item == 0x10 and size >= 1:
            rec.attrs["wakeSource"] = value.u8()


def text_frame_id(frame: bytes) -> str:
    """The device id of an "(ID,1,001,TYPE,...)" e-lock text frame."""
    fields = frame.decode("latin-1").strip().strip("()").split(",")
    if len(fields) < 4 or not fields[0].isalnum():
        raise ProtocolError("jt808: unrecognised text frame", frame[:64])
    return fields[0]


def _text_frame(ctx: Context, frame: bytes) -> Frame:
    """E-lock text: command answers (ELOCK ...) are results; others (BASE time
    requests ...) carry nothing to store and get no reply (its format is unknown)."""
    text = frame.decode("latin-1").strip()
    if text.strip("()").split(",")[3] == "BASE":
        return Frame(messages=(), raw=frame)
    return Frame(messages=(_status_only(ctx, Record({"result": text})),
                           CommandResult(text, ctx.unique_id)), raw=frame)


# --------------------------------------------------------------------------
# Session and codec
# --------------------------------------------------------------------------

class Jt808Session(StreamSession):
    """One connection's decoder: framer, the device's terminal number and header
    version (for replies and commands), the platform's serial counter (see
    StreamSession)."""

    name = NAME
    max_frame_bytes = MAX_FRAME_BYTES

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = Options.from_mapping(options)
        self.terminal: bytes | None = None
        self.version: int | None = None
        self._serial = 0
        super().__init__()

    def new_framer(self, *, datagram: bool = False) -> Framer:
        return Framer(lenient=self.options.lenient)

    def _decode_frame(self, frame: bytes, now: dt.datetime) -> Frame:
        """Decode one frame as the framer delivers it (see the module docstring):
        unknown message ids give a Frame without messages (acknowledged)."""
        if frame[:1] == b"(":
            self.unique_id = text_frame_id(frame)
            return _text_frame(Context(self.options, now, self.unique_id), frame)
        header = parse_header(frame)
        if not self.options.lenient:
            check_checksum(frame)
        self.unique_id, self.terminal, self.version = header.unique_id, header.terminal, header.version
        ctx = Context(self.options, now, header.unique_id)
        messages: list[Message] = []
        decoder = _DECODERS.get(header.msg_id)
        if decoder is not None and header.package is None and \
                (not header.encrypted or header.msg_id in _LOCK_IDS):
            messages = decoder(ctx, Parsed(header, frame, header.body_start, len(frame) - 2))
        reply, refusal = self._answers(header)
        return Frame(messages=tuple(messages), reply=reply, raw=frame, refusal=refusal)

    def _next_serial(self) -> int:
        serial, self._serial = self._serial, (self._serial + 1) & 0xFFFF
        return serial

    def _answers(self, header: Header) -> tuple[bytes, bytes]:
        """(reply, refusal) for a frame.  Both carry the same platform serial:
        only one of them is ever sent.  The refusal is the general response
        with result 1 (failure), for the frames the general response answers;
        a registration (answered 0x8100, nothing to store) and the unanswered
        messages have none."""
        if header.msg_id in UNACKED:
            return b"", b""
        serial = self._next_serial()
        if header.msg_id == MsgId.REGISTER:
            return register_response(header, serial, header.unique_id), b""
        return (general_response(header, serial, RESULT_SUCCESS),
                general_response(header, serial, RESULT_FAILURE))

    def encode_command(self, command: Command, now: dt.datetime) -> bytes:
        """A downlink frame for `command`, addressed with the device's own terminal
        number and header version; the command id (mod 65536) is the serial, which
        the terminal's general response 0x0001 quotes back.

        - custom: 0x8300 text message, flag 0x01, GBK text (2019: text type 1);
        - rebootDevice: 0x8105 terminal control, command word 4 (reset);
        - engineStop / engineResume: 0x8105 with the widespread vendor command words
          0x64 (cut oil and power) / 0x65 (restore).  (0x8500 "vehicle control"
          is the standard's door lock, so it is not used for the engine.)
        - positionSingle: 0x8201 location query (empty body);
        - positionPeriodic: 0x8103 set parameters, one parameter 0x0029 (default
          reporting interval, seconds, DWORD).
        """
        if self.terminal is None:
            raise UnsupportedCommand("jt808: the device has not sent a frame on this connection yet")
        msg_id, body = command_body(command, self.version)
        return build_message(msg_id, body, command.id & 0xFFFF, self.terminal, self.version)


ENGINE_COMMAND_WORDS = {"engineStop": 0x64, "engineResume": 0x65}


def command_body(command: Command, version: int | None = None) -> tuple[int, bytes]:
    """(message id, body) for a Traccar command type; UnsupportedCommand otherwise."""
    kind = command.type
    if kind == "custom":
        text = str(command.attributes.get("data", ""))
        if not text:
            raise UnsupportedCommand("jt808: custom command needs text in attributes.data")
        try:
            encoded = text.encode("gbk")
        except UnicodeEncodeError:
            raise UnsupportedCommand("jt808: custom text is not representable in GBK") from None
        prefix = b"\x01\x01" if version is not None else b"\x01"
        return MsgId.TEXT_MESSAGE, prefix + encoded
    if kind == "rebootDevice":
        return MsgId.TERMINAL_CONTROL, b"\x04"
    if kind in ENGINE_COMMAND_WORDS:
        return MsgId.TERMINAL_CONTROL, bytes([ENGINE_COMMAND_WORDS[kind]])
    if kind == "positionSingle":
        return MsgId.QUERY_LOCATION, b""
    if kind == "positionPeriodic":
        try:
            frequency_s = int(command.attributes.get("frequency", 0))
        except (TypeError, ValueError):
            frequency_s = 0
        if not 1 <= frequency_s <= 0xFFFFFFFF:
            raise UnsupportedCommand("jt808: positionPeriodic needs a positive frequency in seconds")
        return MsgId.SET_PARAMETERS, b"\x01" + (0x29).to_bytes(4, "big") + b"\x04" + \
            frequency_s.to_bytes(4, "big")
    raise UnsupportedCommand(f"jt808: unsupported command type {kind!r}")


COMMAND_TYPES = frozenset({"custom", "rebootDevice", "engineStop", "engineResume",
                           "positionSingle", "positionPeriodic"})


CODEC = CodecSpec(name=NAME, default_listen=DEFAULT_LISTEN, max_frame_bytes=MAX_FRAME_BYTES,
                  command_types=COMMAND_TYPES, session_factory=Jt808Session)


__all__ = [
    "ALARM_BITS", "CODEC", "COMMAND_TYPES", "DEFAULT_LISTEN", "MAX_FRAME_BYTES", "NAME",
    "UNACKED", "Framer", "Header", "Jt808Session", "RESULT_FAILURE", "RESULT_SUCCESS", "MsgId",
    "Options", "bcd_time", "checksum", "command_body", "escape", "general_response",
    "parse_header", "register_response", "split_frames", "terminal_id", "unescape", "wire_frame"
]
