"""H02 (Sinotrack ST-901 and its many clones): framing, decoding, replies, commands.

Spec followed: the H02 / "HQ" GPRS protocol document as distributed with these
trackers (server command structure ``*XX,YYYYYYYYYY,CMD,HHMMSS,PARA1,...#``,
general message V1, confirm message V4, vehicle_status word in negative logic)
and its later additions quoted by device makers: V3 (LBS, "extend protocol"),
NBR (neighbour cells), LINK (heartbeat with signal, satellites, battery and
pedometer), HTBT (heartbeat), SMS (text answers), and the binary "$" report
(coded battery level 2..6 = 10..100 % as the document tabulates it).  Layouts
known only from captured frames (the odometer/fuel/altitude extension of V1,
V19, VP1, the "-DD-MM.MMMM" coordinates of some firmwares) are marked "observed".

Transports: TCP (`receive_data`) and UDP (`receive_datagram`, whole frames per
datagram), both on port 5013 as in Traccar.

Framing (no length field, no checksum, no escaping):

- text: ``*`` + manufacturer (two letters, "HQ", "TH" ...) + ``,`` ... ``#``;
  a CR LF after ``#`` is line noise and skipped.
- binary: ``$`` (0x24) + device id (5 bytes BCD, or 8 bytes: 15-digit IMEI and a
  pad nibble) + time hhmmss (BCD) + date DDMMYY (BCD) + latitude DDMMmmmm (4 bytes
  BCD) + battery level (1 byte) + longitude DDDMMmmmm (9 BCD digits) and a flags
  nibble (bit 1 fix valid, bit 2 north, bit 3 east) + speed (3 BCD digits, knots)
  and course (3 BCD digits) + vehicle_status (4 bytes) + model-dependent extras.
  Binary frames carry no length: devices send 32, 42, 45, 47 ... bytes.  The
  option `messageLength` (Traccar's name) fixes the length; without it the framer
  ends a frame where the next well-formed frame starts, or at the end of the data
  received when that is one of the known lengths (a TCP segment carries one
  device write).  Every field decoded here lies in the first 29 (32) bytes, so a
  frame cut short by a misjudged length loses only extras.

Frames longer than `MAX_FRAME_BYTES`, and more garbage in a row than that
without a frame start, raise `ProtocolError`.

Time zone and units: device times are UTC ("standard time", the document says,
8 hours behind Beijing).  Speed is in knots already (text and binary).
Coordinates are degrees and minutes (NMEA style); hemisphere letters give the
signs.  The vehicle_status word is 32 bits in negative logic (a cleared bit is
active): bit 10 cleared = ACC off (`ignition`), bit 1 or 18 cleared = SOS /
robbery alarm, bit 19 cleared = running on the backup battery (`powerCut`),
bit 2 cleared = overspeed, bit 0 cleared = anti-theft (vibration) alarm.

Replies: H02 devices expect none for their reports.  With the option `ack`
(true) the server answers each position report with the confirm message
``*HQ,<id>,V4,V1,<YYYYMMDDhhmmss>#`` (the server's UTC time), which some models
use to set their clock.  Commands are text: ``*HQ,<id>,S20,<hhmmss>,1,1#``
(engine stop), ``...,S20,<hhmmss>,1,0#`` (resume), ``...,S71,<hhmmss>,22,<s>#``
(upload interval in seconds); the device confirms with a V4 message, decoded as
a `CommandResult`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Callable, Mapping
from typing import Any

from protocols import nmea
from protocols.base import (
    CodecSpec,
    Command,
    CommandResult,
    Frame,
    Message,
    Position,
    ProtocolError,
    UnsupportedCommand,
)
from protocols.binary import Reader
from protocols.framing import StreamFramer
from protocols.session import DecoderTable, StreamSession
from protocols.values import cell_tower, network, option_flag

NAME = "h02"
DEFAULT_LISTEN = ("tcp:5013", "udp:5013")
MAX_FRAME_BYTES = 1024
"""Largest frame accepted (text or binary).  Text reports are under 200 bytes;
SMS answers and neighbour-cell lists stay well below this."""

TEXT_START = ord("*")
BINARY_START = ord("$")
MIN_BINARY_BYTES = 29
"""A binary report with a 5-byte id and no extras: 1+5+3+3+4+1+5+3+4 bytes."""
KNOWN_BINARY_LENGTHS = (32, 42, 45, 47, 48, 51)
"""Binary frame lengths of devices in the field (short, IMEI short, long with
cell data, long with external voltage; 48 and 51 observed)."""
MAX_BINARY_BYTES = 128
"""A binary frame whose end cannot be found within this many bytes is cut at
the longest known length."""


@enum.unique
class Status(enum.IntEnum):
    """vehicle_status bits (negative logic: the condition holds when the bit is 0)."""

    THEFT = 0           # anti-theft alarm (vibration sensor)
    ROBBERY = 1         # robbery / SOS button
    OVERSPEED = 2
    ACC_OFF = 10        # cleared: ACC (ignition) off
    SOS = 18
    BACKUP_POWER = 19   # running on the backup battery: main power cut


_STATUS_ALARMS = (
    (Status.THEFT, "vibration"), (Status.ROBBERY, "sos"), (Status.SOS, "sos"),
    (Status.OVERSPEED, "overspeed"), (Status.BACKUP_POWER, "powerCut"),
)
"""Checked in this order; the first active one is the frame's alarm."""

_BATTERY_LEVELS = {1: 5, 2: 10, 3: 20, 4: 60, 5: 80, 6: 100}
"""Coded battery level of the binary report, as the H02 document tabulates it
(6 = 100 %, 5 = 80 %, 4 = 60 %, 3 = 20 %, 2 = 10 %; 1, "below 10 %", is read as
5 %).  0 means not reported; 7..100 are percentages already."""


# --------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------

def _bcd_ok(value: int, high: int) -> bool:
    """A BCD byte whose decimal value is below `high`."""
    tens, units = value >> 4, value & 0x0F
    return tens <= 9 and units <= 9 and tens * 10 + units < high


def _date_ok(day: int, month: int, year: int) -> bool:
    """BCD DD MM YY: a calendar-plausible date, or all zero (no fix yet)."""
    if day == month == year == 0:
        return True
    return (_bcd_ok(day, 32) and _bcd_ok(month, 13) and _bcd_ok(year, 100)
            and day != 0 and month != 0)


def _header_checks(id_bytes: int) -> list[Callable[[int], bool]]:
    """Per-byte checks for the bytes after "$": id digits, then hh mm ss."""
    checks: list[Callable[[int], bool]] = [lambda b: _bcd_ok(b, 100)] * id_bytes
    if id_bytes == 8:   # 15 digits and a pad nibble
        checks[-1] = lambda b: (b >> 4) <= 9
    return checks + [lambda b: _bcd_ok(b, 24), lambda b: _bcd_ok(b, 60), lambda b: _bcd_ok(b, 60)]


_HEADER_CHECKS = {5: _header_checks(5), 8: _header_checks(8)}


def _binary_layout(buf: bytes | bytearray, at: int = 0) -> bool | None:
    """Whether a well-formed binary header (id, time, date) starts at `at`:
    True, False, or None when the bytes so far fit but are not all there."""
    verdicts = [_layout_verdict(buf, at, id_bytes) for id_bytes in (5, 8)]
    if True in verdicts:
        return True
    return None if None in verdicts else False


def _layout_verdict(buf: bytes | bytearray, at: int, id_bytes: int) -> bool | None:
    checks = _HEADER_CHECKS[id_bytes]
    header = buf[at + 1:at + 1 + len(checks) + 3]
    for value, check in zip(header, checks, strict=False):
        if not check(value):
            return False
    if len(header) < len(checks) + 3:
        return None
    date = header[len(checks):]
    return _date_ok(date[0], date[1], date[2])


_TEXT_HEADER = re.compile(rb"\*[A-Za-z0-9]{2,4},")


def _text_header(buf: bytes | bytearray, at: int = 0) -> bool | None:
    """Whether "*XX," starts at `at` (None: too few bytes to tell yet)."""
    head = bytes(buf[at:at + 6])
    if _TEXT_HEADER.match(head):
        return True
    comma = head.find(b",")
    if comma < 0 and len(head) < 5 and re.fullmatch(rb"\*[A-Za-z0-9]{0,4}", head):
        return None
    return False


def _start_at(buf: bytes | bytearray, at: int) -> bool | None:
    """Whether a well-formed frame (text or binary) starts at `at`."""
    if buf[at] == TEXT_START:
        return _text_header(buf, at)
    if buf[at] == BINARY_START:
        return _binary_layout(buf, at)
    return False


class Framer(StreamFramer):
    """Splits an H02 byte stream into whole frames (see the module docstring).

    Bytes before a frame start are skipped (resynchronisation), up to
    `max_frame_bytes` in a row; more raises `ProtocolError`.  A "*" or "$" that
    does not begin a well-formed header is garbage too.  A text frame without
    "#" within `max_frame_bytes` raises `ProtocolError` (its start is dropped
    first, so the next call resumes after it).  With `datagram` the buffer is
    a whole datagram: its end ends the last binary frame, and a frame it cuts
    short is an error.
    """

    name = NAME

    def __init__(self, *, message_length: int = 0, datagram: bool = False,
                 max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        super().__init__(max_frame_bytes)
        self.message_length = message_length
        self.datagram = datagram

    def _next_frame(self) -> bytes | None:
        buf = self._buffer
        while buf:
            start = self._find_start()
            if start < 0:
                return None
            verdict = _start_at(buf, 0)
            if verdict is None and not self.datagram:
                return None
            if verdict:
                break
            self._skip(1)
        else:
            return None
        if buf[0] == TEXT_START:
            return self._text_frame()
        return self._binary_frame()

    def _find_start(self) -> int:
        """Skip to the first "*" or "$"; -1 (buffer emptied) when there is none."""
        buf = self._buffer
        hits = [i for i in (buf.find(b"*"), buf.find(b"$")) if i >= 0]
        if not hits:
            self._skip(len(buf))
            return -1
        self._skip(min(hits))
        return 0

    def _text_frame(self) -> bytes | None:
        buf = self._buffer
        end = buf.find(b"#", 0, self.max_frame_bytes)
        if end < 0:
            if len(buf) >= self.max_frame_bytes or self.datagram:
                self._reject("text frame without '#' within the size cap")
            return None
        frame = bytes(buf[:end + 1])
        del buf[:end + 1]
        return frame

    def _binary_frame(self) -> bytes | None:
        buf = self._buffer
        length = self.message_length or self._binary_length()
        if length is None or len(buf) < length:
            if self.datagram:
                self._reject(f"binary frame of {len(buf)} bytes ends the datagram early")
            return None
        frame = bytes(buf[:length])
        del buf[:length]
        return frame

    def _binary_length(self) -> int | None:
        """Where the binary frame at the buffer's start ends (None: not known yet)."""
        buf = self._buffer
        pending: list[int] = []     # offsets where a frame may start (header incomplete)
        candidates = [n for n in KNOWN_BINARY_LENGTHS if n < len(buf)]
        candidates += [k for k in range(MIN_BINARY_BYTES, min(len(buf), MAX_BINARY_BYTES))
                       if k not in candidates]
        for offset in candidates:
            verdict = _start_at(buf, offset)
            if verdict:
                return offset
            if verdict is None:
                pending.append(offset)
        if self.datagram:
            return min(len(buf), MAX_BINARY_BYTES)
        # A buffer of a known length is one whole frame, unless a frame may
        # start at a known length inside it (a short frame and the next one's
        # first bytes); a "$" elsewhere in the tail is a data byte.
        if len(buf) in KNOWN_BINARY_LENGTHS and not set(pending) & set(KNOWN_BINARY_LENGTHS):
            return len(buf)
        if pending:
            return None
        if len(buf) >= MAX_BINARY_BYTES:
            return KNOWN_BINARY_LENGTHS[-1]
        return None


# --------------------------------------------------------------------------
# Shared decoding helpers
# --------------------------------------------------------------------------

class _Malformed(ProtocolError):
    """A known message type whose fields do not parse.  A text frame then gives
    no record (`_decode_text` catches it); a binary report is refused with it
    (a ProtocolError, so it can never escape as anything else)."""


@dataclasses.dataclass(slots=True)
class Fix:
    """A decoded fix: UTC time, degrees, knots, degrees."""

    time: dt.datetime
    valid: bool
    latitude: float
    longitude: float
    speed_kn: float = 0.0
    course_deg: float = 0.0
    altitude_m: float = 0.0


def _int(text: str, base: int = 10) -> int:
    try:
        return int(text.strip(), base)
    except ValueError:
        raise _Malformed(f"not a number: {text!r}") from None


def _float(text: str) -> float:
    text = text.strip()
    if not re.fullmatch(r"-?\d+(\.\d*)?|-?\.\d+", text):
        raise _Malformed(f"not a number: {text!r}")
    return float(text)


def _datetime(date: str, time: str, now: dt.datetime) -> dt.datetime:
    """DDMMYY + hhmmss (UTC); both empty means the frame has none: `now`."""
    date, time = date.strip(), time.strip().split(".")[0]
    if not date and not time:
        return now
    try:
        return nmea.date_time(date, time)
    except ValueError as exc:
        raise _Malformed(str(exc)) from None


def _coordinate(text: str, hemisphere: str) -> float:
    """Degrees from (D)DDMM.MMMM, (D)DDMMMMMM (four implied decimals) or the
    observed -DD-MM.MMMM; S and W make it negative."""
    text, hemisphere = text.strip(), hemisphere.strip().upper()
    if hemisphere not in nmea.HEMISPHERES:
        raise _Malformed(f"bad hemisphere {hemisphere!r}")
    if match := re.fullmatch(r"-?(\d+)-(\d+(?:\.\d+)?)", text):
        degrees, minutes = match[1], match[2]
    elif match := re.fullmatch(r"(\d*)(\d\d\.\d+)", text):
        degrees, minutes = match[1] or "0", match[2]
    elif match := re.fullmatch(r"(\d+)(\d\d)(\d{4})", text):
        degrees, minutes = match[1], f"{match[2]}.{match[3]}"
    else:
        raise _Malformed(f"bad coordinate {text!r}")
    try:   # minutes are not checked (never were: no frame changes)
        return nmea.degrees_minutes(float(degrees), float(minutes), hemisphere, check_minutes=False)
    except ValueError:
        raise _Malformed(f"coordinate out of range {text[:20]!r}") from None


def _status_attributes(text: str, attrs: dict[str, Any]) -> bool:
    """Decode an 8-hex-digit vehicle_status word into `attrs`; False when
    `text` is not one."""
    text = text.strip()
    if not re.fullmatch(r"[0-9A-Fa-f]{8}", text):
        return False
    status = int(text, 16)
    for bit, alarm in _STATUS_ALARMS:
        if not status >> bit & 1:
            attrs["alarm"] = alarm
            break
    attrs["ignition"] = bool(status >> Status.ACC_OFF & 1)
    attrs["status"] = status
    return True


def _network(cells: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The shared `network`, but with duplicate cell towers dropped (order kept)."""
    return network([cell for i, cell in enumerate(cells) if cell not in cells[:i]])


@dataclasses.dataclass(slots=True)
class Context:
    """What a text decoder sees: the frame's fields and the session's state."""

    fields: list[str]
    text: str
    unique_id: str | None
    now: dt.datetime

    def position(self, fix: Fix, attrs: dict[str, Any], network: dict[str, Any] | None = None
                 ) -> Position:
        return Position(fix_time=fix.time, valid=fix.valid, latitude=fix.latitude,
                        longitude=fix.longitude, altitude_m=fix.altitude_m, speed_kn=fix.speed_kn,
                        course_deg=fix.course_deg, device_time=fix.time, attributes=attrs,
                        network=network, unique_id=self.unique_id)

    def status_record(self, attrs: dict[str, Any], device_time: dt.datetime | None = None,
                      network: dict[str, Any] | None = None) -> Position:
        """A record without a fix of its own (outdated)."""
        return Position(fix_time=device_time or self.now, valid=False, latitude=0.0, longitude=0.0,
                        device_time=device_time, outdated=True, attributes=attrs,
                        network=network, unique_id=self.unique_id)


# --------------------------------------------------------------------------
# Text messages
# --------------------------------------------------------------------------

_TextDecoder = Callable[[Context], list[Message]]
_TEXT_DECODERS: DecoderTable[str, _TextDecoder] = DecoderTable(NAME)
_text_decoder = _TEXT_DECODERS.register


def _valid_flag(text: str) -> bool:
    """A = valid, V = invalid; empty is invalid; other letters/digits (some
    firmwares send "0") are taken as valid, as the reference decoder does."""
    return text.strip().upper() not in ("V", "")


def _core_fix(fields: list[str], at: int, now: dt.datetime) -> tuple[Fix, int]:
    """The V1 block from `fields[at]`: time, validity, latitude, N/S, longitude,
    E/W, speed (kn), course, [one observed extra field], date.  Returns the fix
    and the index after the date (-1 when an extra field came before the date:
    the observed variant whose status layout is unknown)."""
    if len(fields) < at + 9:
        raise _Malformed("V1 block too short")
    time_text, valid, lat, ns, lon, ew, speed, course = fields[at:at + 8]
    date_at = at + 8
    if not re.fullmatch(r"\d{6}|", fields[date_at].strip()):
        date_at += 1
        if date_at >= len(fields) or not re.fullmatch(r"\d{6}", fields[date_at].strip()):
            raise _Malformed("V1 block without a date")
    fix = Fix(_datetime(fields[date_at], time_text, now), _valid_flag(valid),
              _coordinate(lat, ns), _coordinate(lon, ew))
    fix.speed_kn = _float(speed) if speed.strip() else 0.0
    fix.course_deg = _float(course) if course.strip() else 0.0
    return fix, (date_at + 1 if date_at == at + 8 else -1)


def _extras(extras: list[str], attrs: dict[str, Any], fix: Fix) -> dict[str, Any] | None:
    """Fields after the status word: the observed odometer extension
    (odometer m, temperature, fuel, altitude m, LAC and cell id in hex) or
    plain values io1, io2 ... (strings, empty ones skipped).  Returns the
    network for the extension's cell."""
    if len(extras) == 6 and re.fullmatch(r"\d+,-?\d+,\d+\.\d+,-?\d+(?:\.\d*)?,[0-9A-Fa-f]+,[0-9A-Fa-f]+",
                                         ",".join(e.strip() for e in extras)):
        attrs["odometer"] = int(extras[0])
        attrs["temp1"] = int(extras[1])
        attrs["fuel"] = float(extras[2])
        fix.altitude_m = float(extras[3])
        return _network([cell_tower(0, 0, int(extras[4], 16), int(extras[5], 16))])
    for index, value in enumerate(extras, start=1):
        if value.strip():
            attrs[f"io{index}"] = value.strip()
    return None


@_text_decoder("V1", "V2", "V5", "V6", "VI1")
def _general(ctx: Context) -> list[Message]:
    """The general message: V1 block, vehicle_status, extras."""
    fix, after = _core_fix(ctx.fields, 3, ctx.now)
    attrs: dict[str, Any] = {}
    network = None
    if after > 0 and after < len(ctx.fields) and _status_attributes(ctx.fields[after], attrs):
        network = _extras(ctx.fields[after + 1:], attrs, fix)
    return [ctx.position(fix, attrs, network)]


@_text_decoder("V19")
def _general_sim(ctx: Context) -> list[Message]:
    """V19 (observed): V1 block, then an empty field, IP address, ICCID and the
    status word last."""
    fix, _ = _core_fix(ctx.fields, 3, ctx.now)
    attrs: dict[str, Any] = {}
    _status_attributes(ctx.fields[-1], attrs)
    iccid = [f for f in ctx.fields[12:-1] if re.fullmatch(r"\d{19,20}", f.strip())]
    if iccid:
        attrs["iccid"] = iccid[0].strip()
    return [ctx.position(fix, attrs)]


@_text_decoder("VP1")
def _general_dateonly(ctx: Context) -> list[Message]:
    """VP1 (observed): validity, coordinates, speed, course, date; no time of day."""
    f = ctx.fields
    if len(f) < 11 or f[3].strip().upper() not in ("A", "V"):
        return []
    fix = Fix(_datetime(f[10], "000000", ctx.now), _valid_flag(f[3]),
              _coordinate(f[4], f[5]), _coordinate(f[6], f[7]),
              _float(f[8]) if f[8].strip() else 0.0, _float(f[9]) if f[9].strip() else 0.0)
    return [ctx.position(fix, {})]


def _block_start(fields: list[str], begin: int) -> int:
    """Index of the first V1 block (time, A/V, lat, N/S, lon, E/W) at or after
    `begin`; -1 when there is none."""
    for i in range(begin, len(fields) - 5):
        if (re.fullmatch(r"\d{6}|", fields[i].strip())
                and fields[i + 1].strip().upper() in ("A", "V")
                and fields[i + 3].strip().upper() in ("N", "S")
                and fields[i + 5].strip().upper() in ("E", "W")):
            return i
    return -1


@_text_decoder("V4")
def _confirm(ctx: Context) -> list[Message]:
    """Confirm message: V4, the command and its parameters (and the command's
    time), then a V1 block and status when the device adds its position."""
    start = _block_start(ctx.fields, 4)
    result = ",".join(ctx.fields[3:start if start > 0 else len(ctx.fields)])
    answer = CommandResult(result, unique_id=ctx.unique_id)
    attrs: dict[str, Any] = {"result": result}
    if start < 0:
        return [answer, ctx.status_record(attrs)]
    try:
        fix, after = _core_fix(ctx.fields, start, ctx.now)
    except _Malformed:
        return [answer, ctx.status_record(attrs)]
    if after > 0 and after < len(ctx.fields):
        _status_attributes(ctx.fields[after], attrs)
    return [answer, ctx.position(fix, attrs)]


@_text_decoder("HTBT")
def _heartbeat(ctx: Context) -> list[Message]:
    """Heartbeat, optionally with the battery level (%)."""
    if len(ctx.fields) > 3 and ctx.fields[3].strip():
        return [ctx.status_record({"batteryLevel": _int(ctx.fields[3])})]
    return []


@_text_decoder("LINK")
def _link(ctx: Context) -> list[Message]:
    """LINK heartbeat: time, GSM signal, satellites, battery %, steps,
    turnovers, date, status."""
    f = ctx.fields
    if len(f) < 11:
        raise _Malformed("LINK too short")
    attrs: dict[str, Any] = {"rssi": _int(f[4]), "sat": _int(f[5]), "batteryLevel": _int(f[6]),
                             "steps": _int(f[7]), "turnovers": _int(f[8])}
    _status_attributes(f[10], attrs)
    return [ctx.status_record(attrs, _datetime(f[9], f[3], ctx.now))]


@_text_decoder("NBR")
def _neighbours(ctx: Context) -> list[Message]:
    """Neighbour cells: time, MCC, MNC, timing advance, count, then count x
    (LAC, cell id, signal), date, status."""
    f = ctx.fields
    if len(f) < 8:
        raise _Malformed("NBR too short")
    mcc, mnc, count = _int(f[4]), _int(f[5]), _int(f[7])
    end = 8 + 3 * count
    if count < 0 or len(f) < end + 2:
        raise _Malformed(f"NBR cell count {count} does not fit the {len(f) - 10} fields left")
    cells = [cell_tower(mcc, mnc, _int(f[i]), _int(f[i + 1]), -abs(_int(f[i + 2])))
             for i in range(8, end, 3)]
    attrs: dict[str, Any] = {}
    _status_attributes(f[end + 1], attrs)
    return [ctx.status_record(attrs, _datetime(f[end], f[3], ctx.now), _network(cells))]


@_text_decoder("V3")
def _lbs(ctx: Context) -> list[Message]:
    """V3 (LBS): time, MCC+MNC, count, count x (LAC, cell id, RS, dBm),
    battery (hex, raw ADC as the reference decoder gives it), reboot info, "X",
    date, status."""
    f = ctx.fields
    if len(f) < 6 or len(f[4].strip()) < 4:
        raise _Malformed("V3 too short")
    mcc, mnc, count = _int(f[4][:3]), _int(f[4][3:]), _int(f[5])
    end = 6 + 4 * count
    if count < 0 or len(f) < end + 5:
        raise _Malformed(f"V3 cell count {count} does not fit the {len(f) - 11} fields left")
    cells = [cell_tower(mcc, mnc, _int(f[i]), _int(f[i + 1])) for i in range(6, end, 4)]
    attrs: dict[str, Any] = {"battery": _int(f[end], 16)}
    _status_attributes(f[end + 4], attrs)
    return [ctx.status_record(attrs, _datetime(f[end + 3], f[3], ctx.now), _network(cells))]


@_text_decoder("SMS")
def _sms(ctx: Context) -> list[Message]:
    """A text answer (to a command sent by SMS or GPRS): everything after "SMS,"."""
    result = ctx.text.split(",", 3)[3] if ctx.text.count(",") >= 3 else ""
    return [CommandResult(result, unique_id=ctx.unique_id), ctx.status_record({"result": result})]


POSITION_TYPES = frozenset({"V1", "V2", "V5", "V6", "VI1", "V19", "VP1"})
"""Position reports; answered with V4,V1 when the `ack` option is on."""


def _decode_text(frame: bytes, now: dt.datetime,
                 session_id: str | None) -> tuple[str, str, str, list[Message]]:
    """(manufacturer, device id, type, messages) of one text frame.  A frame
    of a known type whose fields do not parse gives no messages."""
    text = frame.decode("latin-1").strip()
    if text.endswith("#"):
        text = text[:-1]
    if not _TEXT_HEADER.match(text.encode("latin-1") + b","):
        raise ProtocolError("h02: text frame without a *XX, header", frame[:64])
    fields = text[1:].split(",")
    maker, device_id = fields[0], fields[1].strip() if len(fields) > 1 else ""
    kind = fields[2].strip().upper() if len(fields) > 2 else ""
    decoder = _TEXT_DECODERS.get(kind)
    if decoder is None:
        return maker, device_id, kind, []
    ctx = Context(fields, text, device_id or session_id, now)
    try:
        return maker, device_id, kind, decoder(ctx)
    except _Malformed:
        return maker, device_id, kind, []


# --------------------------------------------------------------------------
# Binary messages
# --------------------------------------------------------------------------

def _bcd(raw: bytes) -> str:
    return raw.hex()


def _decode_binary(frame: bytes, now: dt.datetime) -> tuple[str, list[Message]]:
    """(device id, messages) of one binary report (see the module docstring)."""
    id_bytes = 5 if _layout_verdict(frame, 0, 5) else 8
    if len(frame) < MIN_BINARY_BYTES + id_bytes - 5:
        raise ProtocolError(f"h02: binary frame of {len(frame)} bytes is too short", frame[:64])
    if not _layout_verdict(frame, 0, id_bytes):
        raise ProtocolError("h02: binary frame with a bad id, time or date", frame[:64])
    reader = Reader(frame, NAME, pos=1)
    device_id = _bcd(reader.take(id_bytes))[:15 if id_bytes == 8 else 10]
    clock = _bcd(reader.take(6))            # hhmmss DDMMYY
    if clock[6:] == "000000":
        return device_id, []          # no fix since power-on: no date yet
    try:
        time = _datetime(clock[6:], clock[:6], now)
    except _Malformed as exc:         # e.g. 31 September: a calendar-plausible BCD date that is none
        raise ProtocolError(f"h02: binary report with an invalid date/time: {exc}", frame[:64]) from None
    lat_digits = _bcd(reader.take(4))       # DDMMmmmm
    level = reader.u8()
    lon_digits = _bcd(reader.take(5))       # DDDMMmmmm and the flags nibble
    motion = _bcd(reader.take(3))           # speed and course, 3 digits each
    status = reader.take(4).hex()
    if not (lat_digits + lon_digits[:9] + motion).isdigit():
        raise ProtocolError("h02: binary frame with non-BCD position digits", frame[:64])
    flags = int(lon_digits[9], 16)
    latitude = nmea.bcd_coordinate(lat_digits, 2)
    longitude = nmea.bcd_coordinate(lon_digits[:9], 3)
    fix = Fix(time, bool(flags & 0x02), latitude if flags & 0x04 else -latitude,
              longitude if flags & 0x08 else -longitude,
              float(int(motion[:3])), float(int(motion[3:])))
    attrs: dict[str, Any] = {}
    if level in _BATTERY_LEVELS or 6 < level <= 100:
        attrs["batteryLevel"] = _BATTERY_LEVELS.get(level, level)
    _status_attributes(status, attrs)
    ctx = Context([], "", device_id, now)
    return device_id, [ctx.position(fix, attrs)]


# --------------------------------------------------------------------------
# Session and codec
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """Session settings: `ack` (answer position reports with V4,V1 and the
    time) and `message_length` (fixed binary frame length, 0 = detect)."""

    ack: bool = False
    message_length: int = 0

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> Options:
        options = options or {}
        try:
            length = int(options.get("messageLength") or options.get("message_length") or 0)
        except (TypeError, ValueError):
            raise ValueError(f"h02: messageLength must be an integer, not "
                             f"{options.get('messageLength')!r}") from None
        if length and not MIN_BINARY_BYTES <= length <= MAX_BINARY_BYTES:
            raise ValueError(f"h02: messageLength must be {MIN_BINARY_BYTES}..{MAX_BINARY_BYTES}")
        return cls(ack=option_flag(options.get("ack", False)), message_length=length)


def ack_reply(maker: str, device_id: str, now: dt.datetime) -> bytes:
    """The confirm message for a position report: *HQ,<id>,V4,V1,<YYYYMMDDhhmmss>#."""
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S")
    return f"*{maker},{device_id},V4,V1,{stamp}#".encode("latin-1", "replace")


class H02Session(StreamSession):
    """One connection's decoder: framer, device id, manufacturer tag, options
    (see StreamSession)."""

    name = NAME
    max_frame_bytes = MAX_FRAME_BYTES

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = Options.from_mapping(options)
        self.manufacturer = "HQ"
        super().__init__()

    def new_framer(self, *, datagram: bool = False) -> Framer:
        return Framer(message_length=self.options.message_length, datagram=datagram)

    def _decode_frame(self, frame: bytes, now: dt.datetime) -> Frame:
        """Decode one whole frame (text with or without its "#", or binary)."""
        if frame[:1] == b"$":
            device_id, messages = _decode_binary(frame, now)
            self.identify(device_id)
            return Frame(messages=tuple(messages), raw=frame)
        maker, device_id, kind, messages = _decode_text(frame, now, self.unique_id)
        self.identify(device_id)
        self.manufacturer = maker
        reply = b""
        if self.options.ack and kind in POSITION_TYPES and device_id:
            reply = ack_reply(maker, device_id, now)
        return Frame(messages=tuple(messages), reply=reply, raw=frame)

    def encode_command(self, command: Command, now: dt.datetime) -> bytes:
        """The text command for this session's device (see `command_text`)."""
        return command_frame(self.manufacturer, self.require_unique_id(), command, now)


def command_frame(maker: str, device_id: str, command: Command, now: dt.datetime) -> bytes:
    """``*<maker>,<id>,<CMD>,<hhmmss>,<params>#``; a custom command's data is
    sent as ``*<maker>,<id>,<data>#`` (or as is when it is a whole frame)."""
    if command.type == "custom":
        data = str(command.attributes.get("data", "")).rstrip("#")
        if not data or not data.isascii() or "#" in data:
            raise UnsupportedCommand("h02: custom command needs ASCII text without '#' in attributes.data")
        if data.startswith("*"):
            return f"{data}#".encode("ascii")
        return f"*{maker},{device_id},{data}#".encode("latin-1")
    stamp = now.astimezone(dt.UTC).strftime("%H%M%S")
    return f"*{maker},{device_id},{command_text(command, stamp)}#".encode("latin-1")


def command_text(command: Command, stamp: str) -> str:
    """The command word and parameters for a Traccar command type; `stamp` is
    the hhmmss the device echoes in its V4 confirmation."""
    if command.type == "positionPeriodic":
        frequency_s = int(command.attributes.get("frequency", 0))
        if not 1 <= frequency_s <= 65535:
            raise UnsupportedCommand("h02: positionPeriodic frequency must be 1..65535 s")
        return f"S71,{stamp},22,{frequency_s}"
    try:
        word, parameters = COMMANDS[command.type]
    except KeyError:
        raise UnsupportedCommand(f"h02: unsupported command type {command.type!r}") from None
    return f"{word},{stamp},{parameters}"


COMMANDS = {   # S20: oil and circuit control (1 = control; then 1 = cut, 0 = restore)
    "engineStop": ("S20", "1,1"),
    "engineResume": ("S20", "1,0"),
}


CODEC = CodecSpec(
    name=NAME, default_listen=DEFAULT_LISTEN, max_frame_bytes=MAX_FRAME_BYTES,
    command_types=frozenset({*COMMANDS, "positionPeriodic", "custom"}),
    session_factory=H02Session)


__all__ = [
    "CODEC", "COMMANDS", "DEFAULT_LISTEN", "KNOWN_BINARY_LENGTHS", "MAX_FRAME_BYTES", "NAME",
    "POSITION_TYPES", "Framer", "H02Session", "Options", "Status", "ack_reply", "command_frame",
    "command_text"
]
