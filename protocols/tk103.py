"""TK103 family text protocol (Xexun/Coban TK103, KX402, GPS103-style "(...)" frames).

Spec followed: "GPS Tracker Communication Protocol" for TK103 / KX402 (GPRS
communication protocol V1.5: head, 12-character terminal id, 4-character
command word, body, tail), with the message table of that document (BP00
handshake, BP05 login, BR00 isochronous report, BO01 alarm, BP04 answer to a
one-time call; AP01/AP05/AS01 answers; AV01 oil control, AR00 report interval,
AP00 one-time call).  Later dialects known from devices in the field are marked
"observed": the comma-separated form ``(<imei>,<CMD>,...)`` (ZC.., DW5.., BP05),
LBS reports BZ00 and BP05 with ``{mcc,mnc,lac,cid}`` cells, BP02, BQ81 alarms,
BV00 VIN, and BS50/BS51 battery-management (BMS) data.

Transports: TCP (`receive_data`) and UDP (`receive_datagram`), both on port 5002
as in Traccar.

Framing: ``(`` ... ``)``; no length, no checksum, no escaping.  Text answers
of the ZC03 kind quote free text between ``$`` signs, which may contain ``)``:
a ``)`` inside an open ``$...$`` does not end the frame.  Garbage between
frames (CR LF ...) is skipped; frames over `MAX_FRAME_BYTES`, and more than
that much garbage in a row, raise `ProtocolError`.

Standard body of a location (BR00, BP04, BO01 after the alarm digit, BP05 after
the 15-character IMEI): ``YYMMDD`` + ``A``/``V`` + latitude ``DDMM.MMMM`` +
``N``/``S`` + longitude ``DDDMM.MMMM`` + ``E``/``W`` + speed (5 characters,
km/h) + ``hhmmss`` + course (up to 6 characters) + I/O state (8 characters:
main power 0 = on, ACC 1 = on, input 2, panic, output 2, fuel level in 3 hex
digits) + ``L`` + mileage (hex, metres) + optional extras.  The comma form
carries ``DDMMYY,A,DDMM.MMMMN,DDDMM.MMMME,speed km/h,hhmmss,course``.

Time zone and units: times are UTC.  Dates are read leniently, as devices
with an unset clock send them ("000007" is 7 December 1999: month 00 is the
December before), the way the reference decoder reads them.  Speed arrives
in km/h and leaves in knots.  Battery levels 1..6 map to percent by the
vendor's table (6 = 100, 5 = 80, 4 = 60, 3 = 20, 2 = 10).

Replies: login BP05 -> ``(<id>AP05)``; handshake BP00 -> ``(<id>AP01HSO)``;
alarm BO01 -> ``(<id>AS01<alarm digit>)``.  Reports (BR00 ...) get none.
Commands: ``(<id>AV010)`` engine stop (oil cut), ``(<id>AV011)`` resume,
``(<id>AP00)`` one-time position, ``(<id>AR00<interval s, 4 hex><0000>)``
periodic positions; answers BV00 (not a VIN), BV01 ... and BS0x become
`CommandResult` messages.
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
    Login,
    Message,
    Position,
    ProtocolError,
    UnsupportedCommand,
)
from protocols.binary import Reader
from protocols.framing import StreamFramer
from protocols.session import DecoderTable, StreamSession
from protocols.values import cell_tower, knots_from_kmh, network

NAME = "tk103"
DEFAULT_LISTEN = ("tcp:5002", "udp:5002")
MAX_FRAME_BYTES = 1024
"""Largest frame accepted, parentheses included.  Reports are under 120 bytes;
BMS data and free-text answers stay well below this."""

START = ord("(")
END = ord(")")
_CLOSE, _DOLLAR = b")", b"$"


@enum.unique
class Alarm(enum.IntEnum):
    """The alarm digit of BO01 (and of the AS01 answer)."""

    POWER_OFF = 0       # vehicle power cut
    ACCIDENT = 1
    ROBBERY = 2         # SOS button
    ANTI_THEFT = 3      # anti-theft (vibration) alarm
    LOW_SPEED = 4
    OVERSPEED = 5
    GEOFENCE = 6        # out of the geo-fence
    MOVEMENT = 7


ALARM_NAMES = {
    Alarm.POWER_OFF: "powerCut", Alarm.ACCIDENT: "accident", Alarm.ROBBERY: "sos",
    Alarm.ANTI_THEFT: "vibration", Alarm.LOW_SPEED: "lowspeed", Alarm.OVERSPEED: "overspeed",
    Alarm.GEOFENCE: "geofenceExit", Alarm.MOVEMENT: "movement",
}

_EVENT_ALARMS = {"1": "movement", "2": "lowBattery", "3": "powerCut", "7": "removing"}
"""Observed comma dialect: ZC1<x> and DW5<x> events carrying an alarm."""

_BQ81_ALARMS = {"1": "overspeed"}
"""Observed BQ81,ALARM,<type>: type 1 is overspeed."""

_BATTERY_LEVELS = {1: 5, 2: 10, 3: 20, 4: 60, 5: 80, 6: 100}

ANSWER_WORDS = re.compile(r"BV0[0-9]|BS[0-4][0-9]")
"""Command words of the device's answers to server commands (BV00 circuit /
BV01 oil control, BS0x..BS4x settings); BV00 carrying a 17-character VIN is
the observed VIN report instead."""


# --------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------

def _frame_end(buf: bytes | bytearray, limit: int, start: int = 1,
               inside: bool = False) -> tuple[int, int, bool]:
    """(index of the ")" that ends the frame starting at buf[0] ("("), or -1;
    index scanned up to; whether that is inside a $...$ text): a ")" inside an
    open $...$ text does not count.  `start` and `inside` resume an earlier scan.
    Searches with bytes.find and .count, so a frame refused after `limit`
    bytes costs little to rescan from the next "(" (no byte-by-byte loop)."""
    stop = max(start, min(len(buf), limit))
    index = start
    while (close := buf.find(_CLOSE, index, stop)) >= 0:
        inside ^= buf.count(_DOLLAR, index, close) % 2 == 1
        if not inside:
            return close, close, inside
        index = close + 1
    inside ^= buf.count(_DOLLAR, index, stop) % 2 == 1
    return -1, stop, inside


class Framer(StreamFramer):
    """Splits a TK103 byte stream into whole "(...)" frames.

    Bytes before "(" are skipped, up to `max_frame_bytes` in a row; more raises
    `ProtocolError`.  A frame without ")" within `max_frame_bytes` raises
    `ProtocolError` after dropping its "(" (the next call resumes after it).
    A frame still arriving is scanned once: the next call resumes where the
    last one stopped.
    """

    name = NAME

    def __init__(self, *, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        super().__init__(max_frame_bytes)
        self._scan = (-1, 1, False)   # (offset of the "(", index scanned up to, inside $...$)

    def _next_frame(self) -> bytes | None:
        buf = self._buffer
        start = buf.find(b"(")
        if start < 0:
            self._skip(len(buf))
            return None
        self._skip(start)
        at, scanned, inside = self._scan
        if at != self.offset:
            scanned, inside = 1, False
        end, scanned, inside = _frame_end(buf, self.max_frame_bytes, scanned, inside)
        if end < 0:
            if len(buf) >= self.max_frame_bytes:
                self._reject(f"no ')' within {self.max_frame_bytes} bytes")
            self._scan = (self.offset, scanned, inside)
            return None
        frame = bytes(buf[:end + 1])
        del buf[:end + 1]
        return frame


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

class _Malformed(ValueError):
    """Fields of a known message that do not parse: the frame gives no record."""


@dataclasses.dataclass(slots=True)
class Fix:
    """A decoded fix: UTC time, degrees, knots, degrees."""

    time: dt.datetime
    valid: bool
    latitude: float
    longitude: float
    speed_kn: float = 0.0
    course_deg: float = 0.0


def _lenient_datetime(year: int, month: int, day: int, hms: str) -> dt.datetime:
    """Year 2000+YY; month and day may overflow or be 0 (rolled over as a
    calendar would: month 0 is the previous December, month 18 next June)."""
    if not re.fullmatch(r"\d{6}", hms):
        raise _Malformed(f"bad time {hms!r}")
    carry, month0 = divmod(month - 1, 12)
    try:
        base = dt.datetime(2000 + year + carry, month0 + 1, 1, tzinfo=dt.UTC)
    except ValueError:
        raise _Malformed(f"bad date {year} {month} {day}") from None
    return base + dt.timedelta(days=day - 1, hours=int(hms[:2]), minutes=int(hms[2:4]),
                               seconds=int(hms[4:]))


def _date_time(date: str, hms: str, *, day_first: bool) -> dt.datetime:
    """YYMMDD (or DDMMYY) + hhmmss -> UTC, leniently."""
    if not re.fullmatch(r"\d{6}", date):
        raise _Malformed(f"bad date {date!r}")
    a, b, c = int(date[:2]), int(date[2:4]), int(date[4:])
    return _lenient_datetime(c, b, a, hms) if day_first else _lenient_datetime(a, b, c, hms)


def _coordinate(text: str, hemisphere: str) -> float:
    """(D)DDMM.MMMM -> degrees, negative for S and W."""
    if not re.fullmatch(r"\s*\d*\d\d\.\d+\s*", text) or hemisphere not in nmea.HEMISPHERES:
        raise _Malformed(f"bad coordinate {text!r}{hemisphere}")
    try:   # minutes are not checked (never were: no frame changes)
        return nmea.coordinate(text.strip(), hemisphere, check_minutes=False)
    except ValueError:
        raise _Malformed(f"coordinate out of range {text[:20]!r}") from None


def _number(text: str) -> float:
    text = text.strip()
    if not re.fullmatch(r"\d+(\.\d*)?|\.\d+", text):
        raise _Malformed(f"not a number: {text!r}")
    return float(text)


def _reading(text: str, what: str) -> int:
    """A decimal reading (a voltage in 0.01 or 0.1 V, a level); _Malformed when
    it is not one or has more digits than any reading (a float cannot hold 400
    digits divided by 100)."""
    value = int(text)
    if not -1_000_000_000 < value < 1_000_000_000:
        raise _Malformed(f"{what} out of range: {text[:20]!r}")
    return value


def _battery_level(level: int) -> int | None:
    """Vendor level 1..6 -> percent; 7..100 are percent already; 0: not reported."""
    if level in _BATTERY_LEVELS:
        return _BATTERY_LEVELS[level]
    return level if 6 < level <= 100 else None


def _unique(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for i, item in enumerate(items) if item not in items[:i]]


def _network(cells: list[dict[str, Any]], wifi: list[dict[str, Any]] | None = None
             ) -> dict[str, Any] | None:
    """The shared `network`, but with duplicate cells and access points dropped (order kept)."""
    return network(_unique(cells), _unique(wifi or []))


# --------------------------------------------------------------------------
# Location bodies
# --------------------------------------------------------------------------

_FIX = (r"(?P<date>\d{6})(?P<valid>[AV])"
        r"(?P<lat>\s*\d+\.\d+)(?P<ns>[NS])(?P<lon>\s*\d+\.\d+)(?P<ew>[EW])"
        r"(?P<speed>[ \d.]{5})(?P<time>\d{6})")
_LOCATION = re.compile(_FIX + r"(?P<course>[ \d.]+?),?(?P<io>[0-9A-Fa-f]{8})L(?P<mileage>[0-9A-Fa-f]+)",
                       re.S)
"""Standard location with I/O state and mileage (the course is as long as the
8 I/O characters before "L" leave it)."""
_LOCATION_SHORT = re.compile(_FIX + r"(?P<course>[ \d.]{0,6})", re.S)
"""Location without I/O state and mileage (BQ81, BP02, other models)."""


def _fix_of(match: re.Match[str], *, day_first: bool = False) -> Fix:
    fix = Fix(_date_time(match["date"], match["time"], day_first=day_first), match["valid"] == "A",
              _coordinate(match["lat"], match["ns"]), _coordinate(match["lon"], match["ew"]))
    fix.speed_kn = knots_from_kmh(_number(match["speed"]))
    course = match["course"].strip()
    fix.course_deg = _number(course) if course else 0.0
    return fix


def _io_attributes(io: str, mileage: str) -> dict[str, Any]:
    """I/O state (main power, ACC, input 2, panic, output 2, fuel hex) and
    mileage (hex), in the reference decoder's keys."""
    return {"charge": io[0] == "0", "ignition": io[1] == "1", "in2": int(io[2], 16),
            "panic": int(io[3], 16), "out2": int(io[4], 16), "fuel": int(io[5:8], 16),
            "odometer": int(mileage, 16)}


def _location(body: str) -> tuple[Fix, dict[str, Any]] | None:
    """A standard location body (see the module docstring); None when `body`
    is not one."""
    if match := _LOCATION.match(body):
        return _fix_of(match), _io_attributes(match["io"], match["mileage"])
    if match := _LOCATION_SHORT.match(body):
        return _fix_of(match), {}
    return None


# --------------------------------------------------------------------------
# Decoding context and message decoders
# --------------------------------------------------------------------------

@dataclasses.dataclass(slots=True)
class Context:
    """One frame taken apart: device id, command word, body (after the word)."""

    device_id: str
    word: str
    body: str
    now: dt.datetime
    comma: bool = False

    def position(self, fix: Fix, attrs: dict[str, Any]) -> Position:
        return Position(fix_time=fix.time, valid=fix.valid, latitude=fix.latitude,
                        longitude=fix.longitude, speed_kn=fix.speed_kn, course_deg=fix.course_deg,
                        device_time=fix.time, attributes=attrs, unique_id=self.device_id)

    def status_record(self, attrs: dict[str, Any], device_time: dt.datetime | None = None,
                      network: dict[str, Any] | None = None, *, fix_time: dt.datetime | None = None
                      ) -> Position:
        """A record without a fix of its own (outdated)."""
        return Position(fix_time=fix_time or device_time or self.now, valid=False, latitude=0.0,
                        longitude=0.0, device_time=device_time, outdated=True, attributes=attrs,
                        network=network, unique_id=self.device_id)


_Decoder = Callable[[Context], list[Message]]
_DECODERS: DecoderTable[str, _Decoder] = DecoderTable(NAME)
_COMMA_DECODERS: DecoderTable[str, _Decoder] = DecoderTable(f"{NAME} (comma form)")


def _decoder(*words: str, comma: bool = False) -> Callable[[_Decoder], _Decoder]:
    return (_COMMA_DECODERS if comma else _DECODERS).register(*words)


def _report(ctx: Context, body: str, attrs: dict[str, Any] | None = None) -> list[Message]:
    located = _location(body)
    if located is None:
        return []
    fix, io = located
    return [ctx.position(fix, {**(attrs or {}), **io})]


@_decoder("BP00")
def _handshake(ctx: Context) -> list[Message]:
    """Handshake (heartbeat): no record; answered AP01HSO."""
    return []


@_decoder("BP05")
def _login(ctx: Context) -> list[Message]:
    """Login: the 15-character IMEI, then a location, an LBS list or nothing."""
    rest = ctx.body[15:]
    if rest.startswith(","):
        return _lbs_braces(ctx, rest)
    return [Login(ctx.device_id), *_report(ctx, rest)]


@_decoder("BO01")
def _alarm(ctx: Context) -> list[Message]:
    """Alarm: one digit (see `Alarm`), then a location; answered AS01<digit>."""
    code = ctx.body[:1]
    attrs = {"alarm": ALARM_NAMES[Alarm(int(code))]} if code.isdigit() and int(code) in ALARM_NAMES else {}
    return _report(ctx, ctx.body[1:], attrs)


@_decoder("BZ00")
def _lbs(ctx: Context) -> list[Message]:
    """LBS report (observed): ",{mcc,mnc,lac,cid}..." (decimal) with a hex
    mileage, or ",mcc,mnc,lac,cid,..." (LAC and cell id hex; only the serving
    cell is reliable, later fields vary by model)."""
    if "{" in ctx.body:
        return _lbs_braces(ctx, ctx.body)
    fields = ctx.body.lstrip(",").split(",")
    if len(fields) < 4:
        raise _Malformed("BZ00 too short")
    cell = cell_tower(int(fields[0]), int(fields[1]), int(fields[2], 16), int(fields[3], 16))
    return [ctx.status_record({}, network=_network([cell]))]


def _lbs_braces(ctx: Context, body: str) -> list[Message]:
    cells = [cell_tower(*map(int, found))
             for found in re.findall(r"\{(\d+),(\d+),(\d+),(\d+)\}", body)]
    attrs: dict[str, Any] = {}
    if match := re.search(r",([0-9A-Fa-f]{8})\s*$", body):
        attrs["odometer"] = int(match[1], 16)
    messages: list[Message] = [ctx.status_record(attrs, network=_network(cells))]
    return ([Login(ctx.device_id)] if ctx.word == "BP05" else []) + messages


@_decoder("BP02")
def _report_gps(ctx: Context) -> list[Message]:
    """BP02 (observed): ",G,<n>," then a short location with a DDMMYY date."""
    parts = ctx.body.split(",", 3)
    match = _LOCATION_SHORT.match(parts[3]) if len(parts) == 4 else None
    if match is None:
        return []
    return [ctx.position(_fix_of(match, day_first=True), {})]


@_decoder("BQ81")
def _alarm_obd(ctx: Context) -> list[Message]:
    """BQ81 (observed): ",ALARM,<type>,<value>," then a short location."""
    parts = ctx.body.split(",", 4)
    if len(parts) < 5 or parts[1] != "ALARM":
        return []
    match = _LOCATION_SHORT.match(parts[4])
    if match is None:
        return []
    attrs = {"alarm": _BQ81_ALARMS[parts[2]]} if parts[2] in _BQ81_ALARMS else {}
    return [ctx.position(_fix_of(match), attrs)]


@_decoder("BQ86")
def _obd_data(ctx: Context) -> list[Message]:
    """BQ86 (observed OBD data block): layout unknown, no record."""
    return []


@_decoder("BV00")
def _vin(ctx: Context) -> list[Message]:
    """BV00 with a 17-character VIN (observed); otherwise an answer."""
    if re.fullmatch(r"[0-9A-HJ-NPR-Z]{17}", ctx.body):
        return [ctx.status_record({"vin": ctx.body})]
    return _answer(ctx)


def _answer(ctx: Context) -> list[Message]:
    text = ctx.word + ctx.body
    return [CommandResult(text, unique_id=ctx.device_id), ctx.status_record({"result": text})]


def _bms_items(body: str) -> dict[int, bytes]:
    items = {}
    for item in body.split(","):
        key, _, value = item.partition(":")
        if re.fullmatch(r"[0-9A-Fa-f]{2}", key) and re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", value):
            items[int(key, 16)] = bytes.fromhex(value)
    return items


@_decoder("BS51")
def _bms_summary(ctx: Context) -> list[Message]:
    """BMS summary (observed): "<id>:<hex>" items, big-endian words.  0x90
    pack voltage and gathered voltage (0.1 V), current (0.1 A, offset 30000),
    state of charge (0.1 %); 0x91 highest/lowest cell voltage (mV) and their
    cell numbers; 0x92 highest/lowest temperature (degC + 40) and sensor
    numbers; 0x96.. cell temperatures, 7 per item after a 1-based item number."""
    items = _bms_items(ctx.body)
    attrs: dict[str, Any] = {}
    if len(v := items.get(0x90, b"")) >= 8:
        r = Reader(v, NAME)
        attrs.update(cumulativeVoltage=r.u16() / 10, gatherVoltage=r.u16() / 10,
                     current=(r.u16() - 30000) / 10, soc=r.u16() / 10)
    if len(v := items.get(0x91, b"")) >= 6:
        r = Reader(v, NAME)
        attrs.update(maxCellVoltage=r.u16() / 1000, maxCellVoltageCount=r.u8(),
                     minCellVoltage=r.u16() / 1000, minCellVoltageCount=r.u8())
    if len(v := items.get(0x92, b"")) >= 4:
        attrs.update(maxTemp=v[0] - 40, maxTempCount=v[1], minTemp=v[2] - 40, minTempCount=v[3])
    for key in (0x96, 0x97, 0x98):
        v = items.get(key, b"")
        if len(v) >= 2 and v[0] >= 1:
            for index, raw in enumerate(v[1:8], start=1):
                attrs[f"cellTemp{(v[0] - 1) * 7 + index}"] = raw - 40
    return [ctx.status_record(attrs)] if attrs else []


def _le16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at:at + 2], "little")


@_decoder("BS50")
def _bms_detail(ctx: Context) -> list[Message]:
    """BMS detail (observed, little-endian words): byte 3 cell count, cell
    voltages (mV) from byte 4 (24 slots), then from byte 52: current (0.01 A,
    signed, bytes 53-54), pack voltage (0.01 V, 55-56), level % (57), flags
    overheat / charge protection / discharge protection / charging (58-61),
    fault code (62), cycles (63-64), temperature count (72), power and
    equilibrium temperatures (73, 74) and battery temperatures (75..), degC + 40,
    calibration capacity (0.01 Ah, 82-83), discharge capacity (Ah, 84-85)."""
    if not re.fullmatch(r"(?:[0-9A-Fa-f]{2}){86,}", ctx.body):
        return []
    data = bytes.fromhex(ctx.body)
    attrs: dict[str, Any] = {}
    for index in range(min(data[3], 24)):
        attrs[f"battery{index + 1}"] = _le16(data, 4 + 2 * index) / 1000
    attrs.update(current=int.from_bytes(data[53:55], "little", signed=True) / 100,
                 battery=_le16(data, 55) / 100, batteryLevel=data[57],
                 batteryOverheat=data[58] != 0, chargeProtection=data[59] != 0,
                 dischargeProtection=data[60] != 0, charge=data[61] != 0, faultAlarm=data[62],
                 cycles=_le16(data, 63), powerTemp=data[73] - 40, equilibriumTemp=data[74] - 40,
                 calibrationCapacity=_le16(data, 82) / 100, dischargeCapacity=_le16(data, 84))
    for index in range(min(data[72], 7)):
        attrs[f"batteryTemp{index + 1}"] = data[75 + index] - 40
    return [ctx.status_record(attrs)]


# --------------------------------------------------------------------------
# The comma dialect (observed): (<imei>,<WORD>,field,...)
# --------------------------------------------------------------------------

def _comma_fix(fields: list[str]) -> Fix:
    """DDMMYY, A/V, DDMM.MMMMN, DDDMM.MMMME, speed km/h, hhmmss, course."""
    if len(fields) < 7 or fields[1] not in ("A", "V"):
        raise _Malformed("short comma location")
    lat, lon = fields[2].strip(), fields[3].strip()
    fix = Fix(_date_time(fields[0], fields[5], day_first=True), fields[1] == "A",
              _coordinate(lat[:-1], lat[-1:]), _coordinate(lon[:-1], lon[-1:]))
    fix.speed_kn = knots_from_kmh(_number(fields[4]))
    fix.course_deg = _number(fields[6]) if fields[6].strip() else 0.0
    return fix


def _comma_report(ctx: Context) -> list[Message]:
    fields = ctx.body.split(",")
    attrs: dict[str, Any] = {}
    if ctx.word.startswith("ZC1") and ctx.word[3:] in _EVENT_ALARMS:
        attrs["alarm"] = _EVENT_ALARMS[ctx.word[3:]]
    messages: list[Message] = [Login(ctx.device_id)] if ctx.word == "BP05" else []
    return [*messages, ctx.position(_comma_fix(fields), attrs)]


@_decoder("ZC20", comma=True)
def _battery(ctx: Context) -> list[Message]:
    """ZC20: DDMMYY, hhmmss, battery level (1..6), battery (0.01 V), external
    power (0.1 V, 65535 = none), a last field of unknown meaning."""
    f = ctx.body.split(",")
    if len(f) < 5:
        raise _Malformed("ZC20 too short")
    attrs: dict[str, Any] = {}
    level = _battery_level(int(f[2]))
    if level is not None:
        attrs["batteryLevel"] = level
    attrs["battery"] = _reading(f[3], "battery") / 100
    power = _reading(f[4], "power")
    if power != 0xFFFF:
        attrs["power"] = power / 10
    return [ctx.status_record(attrs, _date_time(f[0], f[1], day_first=True))]


@_decoder("ZC03", comma=True)
def _text(ctx: Context) -> list[Message]:
    """ZC03: DDMMYY, hhmmss, then a free text between $ signs (an answer)."""
    f = ctx.body.split(",", 2)
    if len(f) < 3:
        raise _Malformed("ZC03 too short")
    text = f[2].strip().strip("$")
    return [CommandResult(text, unique_id=ctx.device_id),
            ctx.status_record({"result": text}, _date_time(f[0], f[1], day_first=True))]


def _wifi(text: str) -> dict[str, Any]:
    mac, rssi, channel = text.split("*")
    return {"macAddress": mac, "signalStrength": int(rssi), "channel": int(channel)}


def _cells_and_wifi(ctx: Context) -> list[Message]:
    """DW5<x>: MCC, MNC, LAC, cell id, Wi-Fi count, "mac*rssi*channel" each,
    DDMMYY, hhmmss: a status record at that time with its network."""
    f = ctx.body.split(",")
    count = int(f[4])
    if len(f) < 7 + count:
        raise _Malformed("DW5x shorter than its Wi-Fi count")
    wifi = [_wifi(item) for item in f[5:5 + count]]
    when = _date_time(f[5 + count], f[6 + count], day_first=True)
    attrs = {"alarm": _EVENT_ALARMS[ctx.word[3:]]} if ctx.word[3:] in _EVENT_ALARMS else {}
    cell = cell_tower(int(f[0]), int(f[1]), int(f[2]), int(f[3]))
    return [ctx.status_record(attrs, when, _network([cell], wifi), fix_time=when)]


# --------------------------------------------------------------------------
# Frame -> messages
# --------------------------------------------------------------------------

_STANDARD = re.compile(r"(?P<id>[0-9A-Za-z]{12,20}?)(?P<word>[A-Z]{2}[0-9A-Z]{2})(?P<body>.*)", re.S)
_COMMA = re.compile(r"(?P<id>[0-9A-Za-z]{1,20}),(?P<word>[A-Z]{2}[0-9A-Z]{2})(?:,(?P<body>.*))?$", re.S)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def split_frame(frame: bytes, now: dt.datetime = _EPOCH) -> Context:
    """Take one frame apart (with or without its closing parenthesis); ProtocolError
    when it has no id and command word.  `now` stamps records without a time."""
    text = frame.decode("latin-1").strip()
    if not text.startswith("("):
        raise ProtocolError("tk103: frame does not start with '('", frame[:64])
    text = text[1:-1] if text.endswith(")") else text[1:]
    if match := _COMMA.match(text):
        return Context(match["id"], match["word"], match["body"] or "", now, comma=True)
    if match := _STANDARD.match(text):
        return Context(match["id"], match["word"], match["body"], now)
    raise ProtocolError("tk103: frame without terminal id and command word", frame[:64])


def _messages(ctx: Context) -> list[Message]:
    if ctx.comma:
        decoder = _COMMA_DECODERS.get(ctx.word)
        if decoder is None:
            decoder = _cells_and_wifi if ctx.word.startswith("DW5") else _comma_report
        return decoder(ctx)
    decoder = _DECODERS.get(ctx.word)
    if decoder is not None:
        return decoder(ctx)
    if ANSWER_WORDS.fullmatch(ctx.word):
        return _answer(ctx)
    return _report(ctx, ctx.body)


def reply_for(ctx: Context) -> bytes:
    """What the device expects back: AP05 for a login, AP01HSO for a
    handshake, AS01<digit> for an alarm; b"" otherwise."""
    if ctx.word == "BP05":
        return f"({ctx.device_id}AP05)".encode("latin-1")
    if ctx.word == "BP00" and not ctx.comma:
        return f"({ctx.device_id}AP01HSO)".encode("latin-1")
    if ctx.word == "BO01" and not ctx.comma and ctx.body[:1].isdigit():
        return f"({ctx.device_id}AS01{ctx.body[0]})".encode("latin-1")
    return b""


# --------------------------------------------------------------------------
# Session and codec
# --------------------------------------------------------------------------

class Tk103Session(StreamSession):
    """One connection's decoder: framer and the device's terminal id (see
    StreamSession)."""

    name = NAME
    max_frame_bytes = MAX_FRAME_BYTES

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})
        super().__init__()

    def new_framer(self, *, datagram: bool = False) -> Framer:
        return Framer()

    def _decode_frame(self, frame: bytes, now: dt.datetime) -> Frame:
        """Decode one whole frame; a known message whose fields do not parse,
        or an unknown one without a location, gives a Frame without messages."""
        ctx = split_frame(frame, now)
        self.unique_id = ctx.device_id
        try:
            messages = _messages(ctx)
        except (ValueError, IndexError):   # _Malformed, or a number field that is not one
            messages = []
        return Frame(messages=tuple(messages), reply=reply_for(ctx), raw=frame)

    def encode_command(self, command: Command, now: dt.datetime) -> bytes:
        """``(<id><word><parameters>)`` for this session's device."""
        return command_frame(self.require_unique_id(), command)


def command_frame(device_id: str, command: Command) -> bytes:
    """The downlink frame for a Traccar command type (see the module docstring);
    a custom command's data is the word and parameters, or a whole "(...)" frame."""
    if command.type == "custom":
        data = str(command.attributes.get("data", ""))
        if not data or not data.isascii() or ")" in data[:-1] or "(" in data[1:]:
            raise UnsupportedCommand("tk103: custom command needs ASCII text in attributes.data")
        return (data if data.startswith("(") else f"({device_id}{data})").encode("ascii")
    if command.type == "positionPeriodic":
        frequency_s = int(command.attributes.get("frequency", 0))
        if not 1 <= frequency_s <= 0xFFFF:
            raise UnsupportedCommand("tk103: positionPeriodic frequency must be 1..65535 s")
        return f"({device_id}AR00{frequency_s:04X}0000)".encode("ascii")
    try:
        return f"({device_id}{COMMANDS[command.type]})".encode("ascii")
    except KeyError:
        raise UnsupportedCommand(f"tk103: unsupported command type {command.type!r}") from None


COMMANDS = {
    "engineStop": "AV010",      # AV01: oil control, 0 = cut
    "engineResume": "AV011",    # 1 = restore
    "positionSingle": "AP00",   # one-time call, answered with BP04
}


CODEC = CodecSpec(
    name=NAME, default_listen=DEFAULT_LISTEN, max_frame_bytes=MAX_FRAME_BYTES,
    command_types=frozenset({*COMMANDS, "positionPeriodic", "custom"}),
    session_factory=Tk103Session)


__all__ = [
    "ALARM_NAMES", "CODEC", "COMMANDS", "DEFAULT_LISTEN", "MAX_FRAME_BYTES", "NAME", "Alarm",
    "Framer", "Tk103Session", "command_frame", "reply_for", "split_frame"
]
