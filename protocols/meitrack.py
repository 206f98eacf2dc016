"""Meitrack `$$` protocol (MT90, MVT100/340/380/600/800, T1, T3, T333, T355, T366,
T399, T622, TC68S, P66 ...): framing, decoding, command encoding.

Spec followed: "MEITRACK GPRS Protocol" V1.6/V1.7 (MT90 ... P66) and the
model documents that extend it (T1 & T333 V1.4, T622 V1.2: CCC compression,
CCE binary reports, output control C01), completed by the frames of real
devices collected in Traccar's test suite where the documents are silent
(CCE parameter ids, taximeter and temperature fields).

Transports: TCP and UDP, both on port 5020 as in Traccar.

Framing::

    $$ <flag> <length> , <IMEI> , <command> [, <data>] * <checksum> \\r\\n   (device -> server)
    @@ <flag> <length> , <IMEI> , <command> [, <data>] * <checksum> \\r\\n   (server -> device)

`flag` is one character 0x41..0x7A; an answer carries the flag of the command
it answers.  `length` (decimal) counts the bytes from the first comma through
the final CR LF.  `checksum` is two hex digits: the sum, modulo 256, of every
byte from the first `$` (or `@`) through the `*`.  There is no escaping: the
binary reports (CCC, CCE) and photo packets (D00) are delimited by the length
field.  Frames over `MAX_FRAME_BYTES` are refused.  The codec is strict by
default (a bad checksum or a length that does not land on `*XX\\r\\n` raises
ProtocolError); option `lenient=True` skips the checksum and decodes a frame
whose length is wrong as far as its bytes go (Traccar's test frames include
hand-edited checksums and a truncated photo packet).

Reports:

- `AAA` text event report: event code, latitude, longitude (signed degrees),
  date-time yymmddHHMMSS (UTC), A/V, satellites, GSM signal, speed km/h,
  course, HDOP, altitude m, odometer m, run time s, base station
  `MCC|MNC|LAC|CI` (LAC and CI hex), I/O status (hex: inputs byte then outputs
  byte), analog values `AD1|AD2|AD3|battery|external power` (hex, 1/100 V for
  battery and power; some models send decimal volts `battery|power|...`),
  then model-specific fields: event data (RFID / picture / fence), custom
  data, protocol version, fuel (hex, 1/100 %), temperature sensors
  (`IIVVVV`, index and signed 1/100 degC), ..., taximeter.
  `AFF` is the same report with a buffer index before the event code.
- `CCC` compressed buffered reports (little endian, fixed-size records) and
  `CCE` binary reports (little endian; per packet, groups of 1-, 2-, 4- and
  N-byte parameters, each group a count then id/value pairs; an id byte 0xFE
  starts a two-byte id).
- `D00` photo packets give no record (there is no media store).
- Any other command from the device is its answer to a command
  (`C01,OK`, `A12,OK` ...): a `CommandResult` with text `<command>,<data>`.

The server answers only `CCC` (`CCC,<records received>`, which lets the
device delete them from its buffer).  `AAA` reports are not acknowledged in
the default transmission mode (C03,0); `CCE` is not answered either.

Event codes map to Traccar alarms (see `EVENT_ALARMS`): 1 sos, 17 lowBattery,
18 lowPower, 19 overspeed, 20 geofenceEnter, 21 geofenceExit, 22
powerRestored, 23 powerCut, 28 gpsAntennaCut, 36 tow, 44 jamming, 50/51
temperature, 54 fuelLeak, 78 accident, 79 fallDown, 129 hardBraking, 130
hardAcceleration, 135 fatigueDriving.  The code itself is attribute `event`.

Units: speed km/h in the frame, knots in records; `odometer` m, `runtime` s
(text reports give it as text, binary ones as a number, as Traccar does),
`hours` ms, voltages V, `batteryLevel` and `fuel` %, temperatures degC.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Callable, Mapping
from typing import Any

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
from protocols.session import StreamSession
from protocols.values import KMH_PER_KNOT, cell_tower, network, option_flag

NAME = "meitrack"
DEFAULT_LISTEN = ("tcp:5020", "udp:5020")
MAX_FRAME_BYTES = 8192
"""Largest whole frame accepted.  Commands carry at most 1 024 data bytes;
buffered binary reports and photo packets stay within a few kB."""

DEVICE_START = b"$$"
SERVER_START = b"@@"
STOP = b"\r\n"
_EPOCH_2000 = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_HEAD = re.compile(rb"(\$\$|@@)([\x41-\x7a])(\d{1,5}),")
_PARTIAL_HEAD = re.compile(rb"(?:\$\$|@@)(?:[\x41-\x7a]\d{0,5})?")
_MAX_HEAD = 2 + 1 + 5 + 1
_MIN_LENGTH = len(",I,AAA*00\r\n")


@enum.unique
class Cmd(enum.StrEnum):
    """Device-side command codes that carry reports."""

    REPORT = "AAA"
    REPORT_CONFIRM = "AFF"
    COMPRESSED = "CCC"
    BINARY = "CCE"
    PHOTO = "D00"


EVENT_ALARMS = {
    1: "sos", 17: "lowBattery", 18: "lowPower", 19: "overspeed", 20: "geofenceEnter",
    21: "geofenceExit", 22: "powerRestored", 23: "powerCut", 28: "gpsAntennaCut", 36: "tow",
    44: "jamming", 50: "temperature", 51: "temperature", 54: "fuelLeak", 78: "accident",
    79: "fallDown", 129: "hardBraking", 130: "hardAcceleration", 135: "fatigueDriving",
}
"""Meitrack event code -> Traccar alarm (event codes without one are plain reports)."""


def checksum(data: bytes) -> int:
    """Sum of the bytes modulo 256 (over "$$" / "@@" through "*")."""
    return sum(data) & 0xFF


# --------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------

class Framer(StreamFramer):
    """Splits a byte stream into whole frames that start with `start`
    (b"$$" from devices, b"@@" from the server), by their length field.

    Bytes before a start marker are skipped, at most `max_frame_bytes` in a
    row (more raises ProtocolError).  A frame over the size cap, with a
    length too small, without `*XX\\r\\n` at the declared end, or (strict)
    with a bad checksum raises ProtocolError after dropping its start marker,
    so the next call resumes behind it.
    """

    name = NAME

    def __init__(self, *, start: bytes = DEVICE_START, lenient: bool = False,
                 max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        super().__init__(max_frame_bytes)
        self.start = start
        self.lenient = lenient

    def _next_frame(self) -> bytes | None:
        buf = self._buffer
        while True:
            at = buf.find(self.start)
            if at < 0:
                self._skip(len(buf) - (1 if buf[-1:] == self.start[:1] else 0))
                return None
            self._skip(at)
            match = _HEAD.match(buf)
            if match is not None and match.group(1) == self.start:
                break
            if len(buf) < _MAX_HEAD and _PARTIAL_HEAD.fullmatch(buf):
                return None
            self._skip(1)
        total = match.end() - 1 + int(match.group(3))
        if total > self.max_frame_bytes:
            self._reject(f"declared frame size {total} exceeds {self.max_frame_bytes}", drop=2)
        if int(match.group(3)) < _MIN_LENGTH:
            self._reject(f"length field {int(match.group(3))} too small", drop=2)
        if len(buf) < total:
            return None
        frame = bytes(buf[:total])
        if frame[-2:] != STOP or frame[-5:-4] != b"*":
            self._reject("length field does not end at '*XX\\r\\n'", drop=2)
        if not self.lenient and not _checksum_ok(frame):
            self._reject("bad checksum", drop=2)
        del buf[:total]
        return frame


def _checksum_ok(frame: bytes) -> bool:
    """`frame` ends with `*XX\\r\\n`; XX must be the checksum of what precedes it."""
    text = frame[-4:-2]
    if not re.fullmatch(rb"[0-9A-Fa-f]{2}", text):
        return False
    return int(text, 16) == checksum(frame[:-4])


@dataclasses.dataclass(frozen=True, slots=True)
class Envelope:
    """A frame taken apart: flag character, IMEI, command code, data bytes."""

    flag: str
    imei: str
    command: str
    data: bytes


def parse_frame(frame: bytes, *, lenient: bool = False) -> Envelope:
    """Check one whole frame (the final CR LF may be absent) and split it.

    Strict: the length field must match and the checksum must be right.
    Lenient: no checksum check; a frame whose length does not match is read
    up to its last `*XX` (or to its end when it has none).
    """
    match = _HEAD.match(frame)
    if match is None:
        raise ProtocolError("meitrack: not a frame (bad start, flag or length)", frame[:64])
    comma = match.end() - 1
    total = comma + int(match.group(3))
    whole = frame + STOP if len(frame) == total - 2 else frame
    fits = len(whole) == total and whole[-2:] == STOP and whole[-5:-4] == b"*"
    if fits and (lenient or _checksum_ok(whole)):
        body = whole[comma + 1:-5]
    elif not lenient:
        raise ProtocolError("meitrack: " + ("bad checksum" if fits else "length field does not "
                                            "match the frame"), frame[:64])
    else:
        body = _lenient_body(frame[comma + 1:])
    parts = body.split(b",", 2)
    imei = parts[0].decode("latin-1")
    command = parts[1].decode("latin-1") if len(parts) > 1 else ""
    if not re.fullmatch(r"[0-9A-Za-z]{1,20}", imei) or not re.fullmatch(r"[0-9A-Za-z]{1,4}", command):
        raise ProtocolError("meitrack: bad IMEI or command field", frame[:64])
    return Envelope(match.group(2).decode("ascii"), imei, command,
                    parts[2] if len(parts) > 2 else b"")


def _lenient_body(rest: bytes) -> bytes:
    """Lenient: the frame body without a trailing `*XX` / `*XX\\r\\n`, if any."""
    rest = rest.removesuffix(STOP)
    if re.fullmatch(rb"\*[0-9A-Fa-f]{2}", rest[-3:]):
        return rest[:-3]
    return rest


def build_frame(start: bytes, flag: str, imei: str, text: str | bytes) -> bytes:
    """One frame: start, flag, length, `,IMEI,text*XX\\r\\n` (checksum in upper-case hex)."""
    payload = text.encode("latin-1") if isinstance(text, str) else text
    body = b"," + imei.encode("ascii") + b"," + payload + b"*"
    head = start + flag.encode("ascii") + str(len(body) + 4).encode("ascii")
    return head + body + f"{checksum(head + body):02X}".encode("ascii") + STOP


# --------------------------------------------------------------------------
# Field helpers
# --------------------------------------------------------------------------

def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if re.fullmatch(r"-?\d{1,12}", text) else None


def _float(text: str) -> float | None:
    text = text.strip()
    return float(text) if re.fullmatch(r"-?\d{1,12}(?:\.\d{0,12})?", text) else None


def _hex(text: str) -> int | None:
    text = text.strip()
    return int(text, 16) if re.fullmatch(r"[0-9A-Fa-f]{1,8}", text) else None


def _event(attrs: dict[str, Any], code: int) -> None:
    attrs["event"] = code
    if code in EVENT_ALARMS:
        attrs["alarm"] = EVENT_ALARMS[code]


def _cell(mcc: int, mnc: int, lac: int, cid: int, signal: int | None) -> dict[str, Any] | None:
    """A cell tower in Traccar's shape; None for "no cell" (MCC 0 or no ids)."""
    if not 0 < mcc < 1000 or (lac == 0 and cid == 0):
        return None
    return cell_tower(mcc, mnc, lac, cid, signal)


# --------------------------------------------------------------------------
# Text reports (AAA, AFF)
# --------------------------------------------------------------------------

def _text_time(text: str) -> dt.datetime:
    """yymmddHHMMSS (UTC) -> aware datetime."""
    if not re.fullmatch(r"\d{12}", text):
        raise ProtocolError(f"meitrack: bad date-time {text!r}")
    v = [int(text[i:i + 2]) for i in range(0, 12, 2)]
    try:
        return dt.datetime(2000 + v[0], v[1], v[2], v[3], v[4], v[5], tzinfo=dt.UTC)
    except ValueError as exc:
        raise ProtocolError(f"meitrack: invalid date-time {text}") from exc


def _text_cell(text: str, gsm: int | None) -> dict[str, Any] | None:
    """`MCC|MNC|LAC|CI` (LAC and CI hex); the report's GSM signal goes with it."""
    parts = text.split("|")
    if len(parts) != 4:
        return None
    mcc, mnc, lac, cid = _int(parts[0]), _int(parts[1]), _hex(parts[2]), _hex(parts[3])
    if mcc is None or mnc is None or lac is None or cid is None:
        return None
    return _cell(mcc, mnc, lac, cid, None if gsm is None else -gsm)


def _io(attrs: dict[str, Any], text: str) -> None:
    """I/O status, four hex digits: inputs byte then outputs byte."""
    text = text.strip()
    if re.fullmatch(r"[0-9A-Fa-f]{4}", text):
        attrs["input"] = int(text[:2], 16)
        attrs["output"] = int(text[2:4], 16)


def _analog(attrs: dict[str, Any], text: str) -> bool:
    """Analog values.  Hex form `AD1|...|ADn|battery|power` (ADs raw, battery
    and power 1/100 V, an empty battery or power is 0 V); decimal form
    `battery|power|...` in volts.  Returns True for the decimal form."""
    values = text.split("|")
    if any("." in v for v in values):
        for key, value in zip(("battery", "power"), values, strict=False):
            number = _float(value)
            if number is not None:
                attrs[key] = number
        return True
    if len(values) < 2:
        return False
    for index, value in enumerate(values[:-2], start=1):
        number = _hex(value)
        if number is not None:
            attrs[f"adc{index}"] = number
    for key, value in (("battery", values[-2]), ("power", values[-1])):
        number = _hex(value) if value.strip() else 0
        if number is not None:
            attrs[key] = number / 100
    return False


def _temperatures(attrs: dict[str, Any], text: str) -> None:
    """Temperature sensors `IIVVVV|...`: index (hex) and signed 1/100 degC (hex)."""
    for raw in text.split("|"):
        item = raw.strip()
        if re.fullmatch(r"[0-9A-Fa-f]{6}", item):
            value = int(item[2:6], 16)
            value -= 0x10000 if value & 0x8000 else 0
            attrs[f"temp{int(item[:2], 16)}"] = value / 100


_TAXIMETER = (("taximeterStart", str), ("taximeterEnd", str), ("taximeterDistance", int),
              ("taximeterFare", int), ("taximeterTrip", str), ("taximeterWait", str))


def _taximeter(attrs: dict[str, Any], text: str) -> None:
    """Taximeter `state|start|end|distance|fare|trip|wait` (state 10: meter on)."""
    parts = text.split("|")
    if len(parts) < 2 or _int(parts[0]) is None:
        return
    attrs["taximeterOn"] = parts[0].strip() == "10"
    for (key, kind), value in zip(_TAXIMETER, parts[1:], strict=False):
        if kind is int:
            number = _int(value)
            if number is not None:
                attrs[key] = number
        elif value:
            attrs[key] = value


def _tail(attrs: dict[str, Any], rest: list[str]) -> None:
    """Fields after the analog values: event data, custom data, protocol
    version, fuel (hex 1/100 %), temperature sensors, ..., taximeter (12th)."""
    rest = rest + [""] * (12 - len(rest))
    if rest[0].strip():
        attrs["eventData"] = rest[0].strip()
    fuel = _hex(rest[3])
    if fuel is not None:
        attrs["fuel"] = fuel / 100
    _temperatures(attrs, rest[4])
    if rest[11].strip():
        _taximeter(attrs, rest[11])


def _text_report(env: Envelope, *, confirm_mode: bool) -> list[Message]:
    """AAA (and AFF, whose first field is a buffer index): one position."""
    fields = env.data.decode("latin-1").split(",")
    if confirm_mode:
        fields = fields[1:]
    if len(fields) < 5:
        raise ProtocolError(f"meitrack: report with {len(fields)} fields", env.data[:64])
    values = fields + [""] * max(0, 16 - len(fields))
    event, latitude, longitude = _int(values[0]), _float(values[1]), _float(values[2])
    if event is None or latitude is None or longitude is None \
            or abs(latitude) > 90 or abs(longitude) > 180:
        raise ProtocolError("meitrack: bad event code or coordinates", env.data[:64])
    fix_time = _text_time(values[3].strip())
    attrs: dict[str, Any] = {}
    _event(attrs, event)
    _text_numbers(attrs, values)
    _io(attrs, values[14])
    decimal = _analog(attrs, values[15])
    if not confirm_mode and not decimal:
        _tail(attrs, fields[16:])
    cell = _text_cell(values[13], _int(values[6]))
    return [Position(
        fix_time=fix_time, valid=values[4].strip() == "A", latitude=latitude, longitude=longitude,
        altitude_m=_float(values[10]) or 0.0, speed_kn=(_float(values[7]) or 0.0) / KMH_PER_KNOT,
        course_deg=_float(values[8]) or 0.0, device_time=fix_time, attributes=attrs,
        network=network([cell] if cell else [], []), unique_id=env.imei)]


def _text_numbers(attrs: dict[str, Any], values: list[str]) -> None:
    """Satellites, HDOP, odometer (m) and run time (s, kept as text)."""
    for key, value in (("sat", _int(values[5])), ("hdop", _float(values[9])),
                       ("odometer", _int(values[11]))):
        if value is not None:
            attrs[key] = value
    if values[12].strip():
        attrs["runtime"] = values[12].strip()


# --------------------------------------------------------------------------
# Binary reports (CCC, CCE)
# --------------------------------------------------------------------------

class LittleEndianReader(Reader):
    """`protocols.binary.Reader` reading integers little endian (CCC, CCE)."""

    __slots__ = ()

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little")

    def sint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little", signed=True)


def _signed(raw: bytes) -> int:
    return int.from_bytes(raw, "little", signed=True)


def _unsigned(raw: bytes) -> int:
    return int.from_bytes(raw, "little")


@dataclasses.dataclass(slots=True)
class _Record:
    """One binary report being assembled."""

    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)
    time: dt.datetime | None = None
    valid: bool = False
    latitude: float | None = None
    longitude: float | None = None
    speed_kn: float = 0.0
    course_deg: float = 0.0
    altitude_m: float = 0.0
    cells: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    wifi: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def position(self, imei: str, now: dt.datetime) -> Position:
        """The record as a Position; without time or place it is a status record."""
        outdated = self.time is None or self.latitude is None or self.longitude is None
        when = now if self.time is None else self.time
        return Position(
            fix_time=when, valid=self.valid and not outdated, latitude=self.latitude or 0.0,
            longitude=self.longitude or 0.0, altitude_m=self.altitude_m, speed_kn=self.speed_kn,
            course_deg=self.course_deg, device_time=when, outdated=outdated,
            attributes=self.attrs, network=network(self.cells, self.wifi), unique_id=imei)


def _scaled(key: str, divisor: float) -> Callable[[_Record, bytes], None]:
    def put(record: _Record, raw: bytes) -> None:
        record.attrs[key] = _unsigned(raw) / divisor
    return put


def _plain(key: str, signed: bool = False) -> Callable[[_Record, bytes], None]:
    def put(record: _Record, raw: bytes) -> None:
        record.attrs[key] = _signed(raw) if signed else _unsigned(raw)
    return put


def _put_event(record: _Record, raw: bytes) -> None:
    _event(record.attrs, _unsigned(raw))


def _put_valid(record: _Record, raw: bytes) -> None:
    record.valid = _unsigned(raw) == 1


def _put_lock(record: _Record, raw: bytes) -> None:
    state = _unsigned(raw)
    if state in (1, 2):
        record.attrs["lock"] = state == 2


def _put_speed(record: _Record, raw: bytes) -> None:
    record.speed_kn = _unsigned(raw) / KMH_PER_KNOT


def _put_course(record: _Record, raw: bytes) -> None:
    record.course_deg = float(_unsigned(raw))


def _put_altitude(record: _Record, raw: bytes) -> None:
    record.altitude_m = float(_signed(raw))


def _put_latitude(record: _Record, raw: bytes) -> None:
    record.latitude = _signed(raw) / 1_000_000


def _put_longitude(record: _Record, raw: bytes) -> None:
    record.longitude = _signed(raw) / 1_000_000


def _put_time(record: _Record, raw: bytes) -> None:
    record.time = _EPOCH_2000 + dt.timedelta(seconds=_unsigned(raw))


def _put_driver(record: _Record, raw: bytes) -> None:
    record.attrs["driverUniqueId"] = str(_unsigned(raw))


def _put_hours(record: _Record, raw: bytes) -> None:
    record.attrs["hours"] = _unsigned(raw) * 60_000     # minutes -> ms


CCE_FIXED: dict[int, Callable[[_Record, bytes], None]] = {
    # 1-byte parameters
    0x01: _put_event, 0x05: _put_valid, 0x06: _plain("sat"), 0x07: _plain("rssi"),
    0x14: _plain("output"), 0x15: _plain("input"), 0x47: _put_lock, 0x97: _plain("throttle"),
    0x9D: _plain("fuel"), 0xFE69: _plain("batteryLevel"),
    # 2-byte parameters
    0x08: _put_speed, 0x09: _put_course, 0x0A: _plain("hdop"), 0x0B: _put_altitude,
    0x16: _scaled("adc1", 100), 0x17: _scaled("adc2", 100), 0x19: _scaled("battery", 100),
    0x1A: _scaled("power", 100), 0x40: _put_event, 0x92: _plain("obdSpeed"), 0x99: _plain("rpm"),
    0x9C: _plain("coolantTemp", signed=True), 0x9F: _plain("temp1", signed=True),
    0xC9: _plain("fuelConsumption"),
    # 4-byte parameters
    0x02: _put_latitude, 0x03: _put_longitude, 0x04: _put_time, 0x0C: _plain("odometer"),
    0x0D: _plain("runtime"), 0x25: _put_driver, 0x9B: _plain("obdOdometer"),
    0xA0: _scaled("fuelUsed", 1000), 0xA2: _scaled("fuelConsumption", 100), 0xFEF4: _put_hours,
}
"""CCE parameter id -> how its value goes into the record.  Ids not listed
(reserved, model-specific, or duplicates of listed values) are skipped."""


def _cce_variable(record: _Record, ident: int, raw: bytes) -> None:
    """N-byte parameters: 0x0E cell, 0x1D..0x24 Wi-Fi, 0x2A..0x31 temperature
    sensors, 0xFE31 picture (a byte, the alarm type that took it, the file
    name, reported under a yyyy-mm-dd/ folder), 0xFEA8 battery level."""
    if ident == 0x0E and len(raw) >= 10:
        signal = _signed(raw[10:12]) if len(raw) >= 12 else None
        cell = _cell(_unsigned(raw[0:2]), _unsigned(raw[2:4]), _unsigned(raw[4:6]),
                     _unsigned(raw[6:10]), signal)
        if cell is not None:
            record.cells.append(cell)
    elif 0x1D <= ident <= 0x24 and len(raw) >= 8:
        mac = ":".join(f"{b:02x}" for b in raw[:6])
        record.wifi.append({"macAddress": mac, "signalStrength": _signed(raw[6:8])})
    elif 0x2A <= ident <= 0x31 and len(raw) >= 3:
        record.attrs[f"temp{ident - 0x2A}"] = _signed(raw[1:3]) / 100
    elif ident == 0xFE31 and len(raw) > 2:
        record.attrs["alarmType"] = raw[1]
        name = raw[2:].decode("latin-1")
        if re.match(r"\d{8}", name):
            name = f"{name[0:4]}-{name[4:6]}-{name[6:8]}/{name}"
        record.attrs["image"] = name
    elif ident == 0xFEA8 and len(raw) >= 2:
        record.attrs["batteryLevel"] = raw[1]


def _cce_id(r: LittleEndianReader) -> int:
    ident = r.uint(1)
    return 0xFE00 | r.uint(1) if ident == 0xFE else ident


def _cce_packet(data: bytes) -> _Record:
    """One CCE packet (after its length): parameter count, then the 1-, 2-,
    4- and N-byte groups."""
    r = LittleEndianReader(data, NAME)
    r.uint(2)   # parameter count (the group counts are what the layout follows)
    record = _Record()
    for size in (1, 2, 4):
        for _ in range(r.count(r.uint(1), 1 + size, f"{size}-byte parameter count")):
            ident, raw = _cce_id(r), r.take(size)
            put = CCE_FIXED.get(ident)
            if put is not None:
                put(record, raw)
    if r.remaining():
        for _ in range(r.count(r.uint(1), 2, "N-byte parameter count")):
            ident = _cce_id(r)
            _cce_variable(record, ident, r.take(r.uint(1)))
    return record


def _cce(env: Envelope, now: dt.datetime) -> list[Message]:
    """CCE: remaining buffered records (4), packet count (2), then packets of
    length (2) and content."""
    r = LittleEndianReader(env.data, NAME)
    r.uint(4)
    count = r.count(r.uint(2), 2, "CCE packet count")
    return [_cce_packet(r.take(r.uint(2))).position(env.imei, now) for _ in range(count)]


def _ccc_record(data: bytes, imei: str, now: dt.datetime) -> Position:
    """One CCC record: event, lat, lon (1e-6 deg), time (s since 2000), fix
    flag, satellites, GSM signal, speed, course, HDOP (1/10), altitude,
    odometer, run time, MCC, MNC, LAC, CI, status, AD1, battery (1/100 V),
    external power (raw)."""
    r = LittleEndianReader(data, NAME)
    record = _Record()
    _event(record.attrs, r.uint(1))
    record.latitude, record.longitude = r.sint(4) / 1_000_000, r.sint(4) / 1_000_000
    _put_time(record, r.take(4))
    record.valid = r.uint(1) == 1
    record.attrs["sat"] = r.uint(1)
    gsm = r.uint(1)
    record.speed_kn = r.uint(2) / KMH_PER_KNOT
    record.course_deg = float(r.uint(2))
    record.attrs["hdop"] = r.uint(2) / 10
    record.altitude_m = float(r.sint(2))
    record.attrs["odometer"] = r.uint(4)
    record.attrs["runtime"] = r.uint(4)
    cell = _cell(r.uint(2), r.uint(2), r.uint(2), r.uint(2), -gsm)
    if cell is not None:
        record.cells.append(cell)
    record.attrs["status"] = r.uint(2)
    record.attrs["adc1"] = r.uint(2)
    record.attrs["battery"] = r.uint(2) / 100
    record.attrs["power"] = r.uint(2)
    return record.position(imei, now)


_CCC_RECORD_MIN = 48


def _ccc(env: Envelope, now: dt.datetime) -> list[Message]:
    """CCC: version (2), record size (2), remaining buffered records (4), records."""
    r = LittleEndianReader(env.data, NAME)
    r.uint(2)
    size = r.uint(2)
    r.uint(4)
    if size < _CCC_RECORD_MIN:
        raise ProtocolError(f"meitrack: CCC record size {size} too small", env.data[:64])
    records: list[Message] = []
    while r.remaining() >= size:
        records.append(_ccc_record(r.take(size), env.imei, now))
    return records


# --------------------------------------------------------------------------
# Session and codec
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """Session settings: `lenient` (no checksum check, tolerate wrong lengths)."""

    lenient: bool = False

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> Options:
        return cls(lenient=option_flag((options or {}).get("lenient", False)))


class MeitrackSession(StreamSession):
    """One connection's decoder (the IMEI comes with every frame; see
    StreamSession: after a ProtocolError the offending frame's start is gone)."""

    name = NAME
    max_frame_bytes = MAX_FRAME_BYTES

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = Options.from_mapping(options)
        super().__init__()

    def new_framer(self, *, datagram: bool = False) -> Framer:
        return Framer(lenient=self.options.lenient)

    def _decode_frame(self, frame: bytes, now: dt.datetime) -> Frame:
        """Decode one whole frame (its CR LF may be absent)."""
        env = parse_frame(frame, lenient=self.options.lenient)
        self.unique_id = env.imei
        messages = _messages(env, now)
        reply = b""
        if env.command == Cmd.COMPRESSED:
            reply = build_frame(SERVER_START, env.flag, env.imei, f"CCC,{len(messages)}")
        return Frame(messages=tuple(messages), reply=reply, raw=frame)

    def encode_command(self, command: Command, now: dt.datetime) -> bytes:
        """`@@` frame for this session's device; the flag follows the command id."""
        unique_id = self.require_unique_id()
        return build_frame(SERVER_START, flag_for(command.id), unique_id, command_text(command))


def _messages(env: Envelope, now: dt.datetime) -> list[Message]:
    if env.command == Cmd.REPORT:
        return _text_report(env, confirm_mode=False)
    if env.command == Cmd.REPORT_CONFIRM:
        return _text_report(env, confirm_mode=True)
    if env.command == Cmd.BINARY:
        return _cce(env, now)
    if env.command == Cmd.COMPRESSED:
        return _ccc(env, now)
    if env.command == Cmd.PHOTO:
        return []
    text = env.command + ("," + env.data.decode("latin-1") if env.data else "")
    return [CommandResult(text, unique_id=env.imei)]


def flag_for(serial: int) -> str:
    """A frame flag character (0x41..0x7A) derived from a serial number."""
    return chr(0x41 + serial % 58)


COMMAND_TEXTS = {
    "positionSingle": "A10",
    "engineStop": "C01,0,12222",
    "engineResume": "C01,0,02222",
    "rebootDevice": "F02",
}
"""Fixed commands: A10 real-time location query; C01 output control (speed 0
= at once, then outputs 1..5: 1 on, 0 off, 2 unchanged; output 1 cuts the
engine); F02 restart (as the project's brief and Traccar use it; the T622
document titles F01 "restart the GSM module" and F02 "restart the GPS
module")."""


def command_text(command: Command) -> str:
    """The Meitrack command (code and parameters) for a Traccar command type."""
    if command.type == "positionPeriodic":
        frequency_s = int(command.attributes.get("frequency", 0))
        units = round(frequency_s / 10)
        if not 1 <= units <= 65535:
            raise UnsupportedCommand("meitrack: positionPeriodic frequency must be 10..655350 s")
        return f"A12,{units}"
    if command.type == "custom":
        data = str(command.attributes.get("data", ""))
        if not data or not all(" " <= ch <= "~" for ch in data) or "*" in data:
            raise UnsupportedCommand("meitrack: custom command needs printable ASCII without '*'")
        return data
    try:
        return COMMAND_TEXTS[command.type]
    except KeyError:
        raise UnsupportedCommand(f"meitrack: unsupported command type {command.type!r}") from None


CODEC = CodecSpec(
    name=NAME, default_listen=DEFAULT_LISTEN, max_frame_bytes=MAX_FRAME_BYTES,
    command_types=frozenset({*COMMAND_TEXTS, "positionPeriodic", "custom"}),
    session_factory=MeitrackSession)


__all__ = [
    "CODEC", "COMMAND_TEXTS", "DEFAULT_LISTEN", "DEVICE_START", "EVENT_ALARMS",
    "MAX_FRAME_BYTES", "NAME", "SERVER_START", "Cmd", "Envelope", "Framer", "MeitrackSession",
    "Options", "build_frame", "checksum", "command_text", "flag_for", "parse_frame"
]
