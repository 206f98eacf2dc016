"""GPS103 / Coban text protocol (TK103B, TK303, GPS102/103/104): framing, decoding, replies.

Spec followed: Coban "GPS102, GPS103, GPS104 GPRS data protocol" (the
TK102/TK103/TK104/TK106 "GPRS Data Protocol" sheet: log-on request,
heartbeat, position and alarm reports, the `**,imei:` command set), completed
by the frames of real devices collected in Traccar's test suite where the
sheet is silent (the status tail after the course, the OBD report, the
"L" report with cell ids, the CSV-like report of a rebranded firmware).
Variants known only from captures are marked "observed" below.

Transports: TCP (a byte stream, `receive_data`) and UDP (one or more whole
frames per datagram, `receive_datagram`), both on port 5001 as in Traccar.

Framing: ASCII text (decoded as ISO-8859-1), one frame per message, ended by
";" (most frames), "*" (an observed firmware) or a line feed; "\\r" and
blank frames between them are ignored.  There is no length, checksum or
escaping.  A frame starts with "imei:" (reports), "##," (log-on) or is a
bare run of digits (heartbeat); bytes before such a start are garbage and
are skipped, up to `MAX_FRAME_BYTES` of them in a row.  Frames are at most
`MAX_FRAME_BYTES` long.

Messages::

    ##,imei:<imei>,A;                          log-on       -> server replies "LOAD"
    <imei>;                                    heartbeat    -> server replies "ON"
                                               (both decode to a Login; no record)
    imei:<imei>,<word>,<local YYMMDDhhmm[ss]>,<phone>,F,<hhmmss.sss UTC>,A|V,
         <ddmm.mmmm>,N|S,<dddmm.mmmm>,E|W,<speed kn>,<course>[,<altitude m>
         [,<ignition 0|1>,<door 0|1>,<fuel %>,<x>,<temperature degC>]];
    imei:<imei>,<word>,<time>,<phone>,L,<..>,<..>,<lac hex>,<..>,<cell id hex>...;
    imei:<imei>,OBD,<YYMMDDhhmmss>,<odometer>,<x>,<fuel consumption>,<hours>,
         <speed km/h>,<engine load %>,<coolant degC>,<throttle %>,<rpm>,
         <battery V>,<dtc>,<dtc>,<dtc>,<dtc>;

`<word>` says why the report was sent: "tracker" for periodic reports, an
alarm word (mapped to Traccar's alarm values by `ALARM_WORDS`), "acc on" /
"acc off" (ignition), "oil..." (fuel leak, optionally with the fuel level),
"T:<degC>" (temperature alarm); any other word is kept as `event`
(observed "vt<nn>" firmware report names are plain positions).  Observed
dialects: the hemisphere letters may precede the coordinates, a hemisphere
may be empty (positive), the status tail above is optional and only read
when it starts with the ignition digit.

Time: the report carries the device's local date-time (minute precision;
seconds, when present, are not used) and the GPS UTC time of day.  The fix
time is the UTC time of day on the date (local date -1, 0 or +1 day) that
lies closest to the local date-time, i.e. time zones within +-12 h are
resolved; without a usable UTC time the local date-time is taken as UTC.
Milliseconds are dropped.  OBD and "L" reports carry no fix: they are
status records (`outdated`; the OBD time is read as UTC, an "L" report's
time, local and often zero, is not used).  Units: speed arrives in knots (as NMEA) and is
kept; the OBD speed is km/h as sent (`obdSpeed`); altitude metres; hours
from the OBD report become milliseconds (`hours`).

Commands (`encode_command`): "**,imei:<imei>,<code>" with B (positionSingle),
C,<interval> (positionPeriodic), J (engineStop), K (engineResume) and any
code as custom.  The firmware sends no answer that could be told apart from
its reports, so no frame decodes to a CommandResult.

The device side (for the simulator and tests; the server never uses it) is
`protocols.devices.gps103`.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping
from typing import Any

from protocols import nmea
from protocols.base import (
    CodecSpec,
    Command,
    Frame,
    Login,
    Message,
    Position,
    ProtocolError,
    UnsupportedCommand,
)
from protocols.framing import StreamFramer
from protocols.session import StreamSession
from protocols.values import cell_tower, knots_from_kmh, network

NAME = "gps103"
DEFAULT_LISTEN = ("tcp:5001", "udp:5001")
MAX_FRAME_BYTES = 4096
"""Largest frame accepted, delimiter included.  Reports are under 200 bytes;
the observed voice-record frame ("vr", hex audio) runs to about 1 KiB."""

DELIMITERS = b";*\n"
LOGIN_REPLY = b"LOAD"
HEARTBEAT_REPLY = b"ON"
_CLOCK_SKEW = dt.timedelta(minutes=5)


@enum.unique
class FrameKind(enum.IntEnum):
    """What a frame is, from its first bytes."""

    LOGIN = 1        # "##,imei:<imei>,A"
    HEARTBEAT = 2    # "<imei>"
    REPORT = 3       # "imei:<imei>,..."


# --------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------

_START = re.compile(rb"imei:|##,")
_HEARTBEAT = re.compile(rb"\d{6,20}")
_BLANK = b"\r\n\t "


def _delimiter_index(buffer: bytes | bytearray) -> int:
    """Index of the first frame delimiter in `buffer`, or -1."""
    hits = [i for i in (buffer.find(d) for d in (b";", b"*", b"\n")) if i >= 0]
    return min(hits) if hits else -1


class Framer(StreamFramer):
    """Splits a TCP byte stream into GPS103 frames (delimiter included).

    A chunk between delimiters that holds no frame start is garbage and is
    skipped, as are bytes before a frame start within a chunk (blank chunks
    and whitespace around a frame are not counted); more than
    `max_frame_bytes` garbage bytes in a row, or a frame longer than
    `max_frame_bytes`, raise ProtocolError (the offending bytes are dropped
    first, so the next call resumes after them).
    """

    name = NAME

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        super().__init__(max_frame_bytes)

    def _next_frame(self) -> bytes | None:
        buf = self._buffer
        while True:
            end = _delimiter_index(buf)
            if end < 0:
                if len(buf) > self.max_frame_bytes:
                    self._reject(f"no delimiter within {self.max_frame_bytes} bytes", drop=len(buf))
                return None
            frame = self._frame_in(end + 1)
            if frame is not None:
                return frame

    def _frame_in(self, size: int) -> bytes | None:
        """Take the delimited chunk of `size` bytes off the buffer: its frame
        (garbage before it skipped), or None."""
        buf = self._buffer
        chunk = bytes(buf[:size])
        if size > self.max_frame_bytes:
            self._reject(f"frame of {size} bytes exceeds {self.max_frame_bytes}", drop=size,
                         frame=chunk[:64])
        body = chunk[:-1].strip(_BLANK)
        if not body:
            del buf[:size]
            return None
        start = _START.search(body)
        if start is None and not _HEARTBEAT.fullmatch(body):
            self._skip(size)
            return None
        lead = size - 1 - len(chunk[:-1].lstrip(_BLANK))   # blanks before the body
        garbage = start.start() if start is not None else 0
        del buf[:lead]
        self._skip(garbage)
        del buf[:size - lead - garbage]
        return body[garbage:] + chunk[-1:]


# --------------------------------------------------------------------------
# Field parsing
# --------------------------------------------------------------------------

ALARM_WORDS = {
    "help me": "sos",
    "low battery": "lowBattery",
    "move": "movement",
    "speed": "overspeed",
    "stockade": "geofence",
    "ac alarm": "powerCut",
    "door alarm": "door",
    "sensor alarm": "vibration",
    "accident alarm": "accident",
    "bonnet alarm": "bonnet",
    "footbrake alarm": "footBrake",
    "dtc": "fault",
}
"""Report words (lower case) that announce an alarm -> Traccar's alarm value."""

PLAIN_WORDS = re.compile(r"(?:tracker|vt\d{0,4})?", re.IGNORECASE)
"""Words of ordinary position reports (no alarm, no event)."""

_NUMBER = r"\d{1,10}(?:\.\d{1,10})?"
_SIGNED = r"[-+]?" + _NUMBER


def _word_attributes(word: str) -> dict[str, Any]:
    """Attributes implied by the report word: alarm, ignition, fuel, temp1, event."""
    lower = word.lower()
    if lower in ALARM_WORDS:
        return {"alarm": ALARM_WORDS[lower]}
    if lower in ("acc on", "acc off"):
        return {"ignition": lower == "acc on"}
    if lower.startswith("oil"):
        attrs: dict[str, Any] = {"alarm": "fuelLeak"}
        level = lower[3:]   # "oil1"/"oil2" name the sensor; "oil 51.67" carries the level
        if level.startswith(" ") and re.fullmatch(_NUMBER, level.strip()):
            attrs["fuel"] = float(level.strip())
        return attrs
    if word.startswith("T:"):
        attrs = {"alarm": "temperature"}
        if re.fullmatch(_SIGNED, word[2:]):
            attrs["temp1"] = float(word[2:])
        return attrs
    if PLAIN_WORDS.fullmatch(word):
        return {}
    return {"event": word}


def _local_time(text: str) -> dt.datetime | None:
    """The device's local date-time "YYMMDDhhmm[ss]" (or "YY/MM/DD hh:mm"), to
    the minute, as a naive-UTC aware datetime; None when absent or invalid."""
    digits = re.sub(r"[/ :]", "", text)
    if not re.fullmatch(r"\d{10}(?:\d\d)?", digits):
        return None
    try:
        return dt.datetime(2000 + int(digits[0:2]), int(digits[2:4]), int(digits[4:6]),
                           int(digits[6:8]), int(digits[8:10]), tzinfo=dt.UTC)
    except ValueError:
        return None


def _utc_time_of_day(text: str) -> dt.time | None:
    """"hhmmss[.sss]" -> time of day (milliseconds dropped); None if unusable."""
    match = re.fullmatch(r"(\d\d)(\d\d)(\d\d)(?:\.\d{1,6})?", text)
    if match is None:
        return None
    hour, minute, second = (int(g) for g in match.groups())
    if hour > 23 or minute > 59 or second > 59:
        return None
    return dt.time(hour, minute, second, tzinfo=dt.UTC)


def resolve_fix_time(local: dt.datetime | None, utc: dt.time | None, now: dt.datetime) -> dt.datetime:
    """The fix time from the local date-time and the UTC time of day.

    The UTC time of day is placed on the day (before, same, after the local
    date) closest to the local date-time, which resolves any zone within
    +-12 h.  Without a UTC time the local date-time counts as UTC.  Without a
    local date the latest such time not after `now` (plus 5 minutes of clock
    skew) is taken; without either, `now`.
    """
    if utc is None:
        return local or now
    anchor = local or now.astimezone(dt.UTC)
    candidates = [dt.datetime.combine(anchor.date() + dt.timedelta(days=shift), utc)
                  for shift in (-1, 0, 1)]
    if local is None:
        return max(c for c in candidates if c <= anchor + _CLOCK_SKEW)
    return min(candidates, key=lambda c: abs(c - anchor))


def _coordinate(value: str, hemisphere: str | None) -> float:
    """"ddmm.mmmm" / "dddmm.mmmm" with its hemisphere letter (None or "" when
    absent) -> signed degrees.  The report pattern gates the digits; minutes are
    not checked (never were: no frame changes)."""
    return nmea.coordinate(value, hemisphere or None, check_minutes=False)


# --------------------------------------------------------------------------
# Report formats
# --------------------------------------------------------------------------

_FIX_REPORT = re.compile(rf"""
    imei:(?P<imei>\d{{1,20}}),
    (?P<word>[^,]*),
    (?P<local>[^,]*),
    [^,]*,                                        # phone number
    F,
    (?P<utc>[^,]*),
    (?P<valid>[AV]),
    (?:(?P<lat_pre>[NS]),)?(?P<lat>\d{{3,10}}(?:\.\d{{1,10}})?)(?:,(?P<lat_hem>[NS]))?,
    (?:(?P<lon_pre>[EW]),)?(?P<lon>\d{{3,10}}(?:\.\d{{1,10}})?)(?:,(?P<lon_hem>[EW]?)(?=,|\Z))?
    (?:,(?P<speed>{_NUMBER})?
      (?:,(?P<course>{_NUMBER})?
        (?:,(?P<altitude>{_SIGNED})?
          (?:,(?P<ignition>[01]),(?P<door>[01])?,
             (?:(?:(?P<fuel>{_NUMBER})%)?,[^,]*,)?
             (?P<temp>[-+]?\d{{1,4}})?
          )?
        )?
      )?
    )?
    .*
""", re.VERBOSE | re.DOTALL)
"""The position report ("F": GPS fix).  Each trailing field is optional and
only read when the ones before it are present (the status tail starts with
the ignition digit), so truncated reports still decode.  As in Traccar, the
temperature is the leading integer of its field ("0.0" reads 0) and a fuel
field without "%" is skipped together with the field after it."""

_CELL_REPORT = re.compile(r"""
    imei:(?P<imei>\d{1,20}),
    (?P<word>[^,]*),
    (?P<local>[^,]*),
    [^,]*,                                        # phone number
    L(?:,(?P<cells>.*))?
""", re.VERBOSE | re.DOTALL)
"""The report without GPS ("L"): optionally the serving cell's LAC and id (hex)."""

_OBD_REPORT = re.compile(rf"""
    imei:(?P<imei>\d{{1,20}}),OBD,
    (?P<time>\d{{12}}),
    (?P<odometer>\d{{0,10}}),
    (?:{_NUMBER})?,                               # (observed, not named)
    (?P<consumption>{_NUMBER})?,
    (?P<hours>\d{{1,8}}),
    (?P<speed>\d{{1,4}}),
    (?P<load>{_NUMBER}%),
    (?P<coolant>[-+]?\d{{1,4}}),
    (?P<throttle>{_NUMBER}%),
    (?P<rpm>\d{{1,6}}),
    (?P<battery>{_NUMBER})
    (?P<dtcs>(?:,[^,]*)*)
""", re.VERBOSE | re.DOTALL)
"""The OBD status report (observed, TK303 with OBD adapter)."""

_CSV_REPORT = re.compile(rf"""
    imei:(?P<imei>\d{{1,20}}),
    [^,]*,[^,]*,[^,]*,[^,]*,                      # device name, three placeholders
    (?P<time>\d{{6}}),(?P<date>\d{{6}}),
    (?P<rssi>\d{{1,3}}),(?P<valid>[01]),
    (?P<lat>-?{_NUMBER}),(?P<lon>-?{_NUMBER}),
    (?P<speed>\d{{1,4}}),(?P<course>\d{{1,3}}),(?P<altitude>-?\d{{1,5}}),
    (?P<hdop>{_NUMBER}),(?P<sat>\d{{1,2}}),
    (?P<ignition>[01]),(?P<charge>[01])
    (?:,.*)?
""", re.VERBOSE | re.DOTALL)
"""A CSV-like report with decimal degrees (observed, rebranded firmware):
name, placeholders, hhmmss, DDMMYY (UTC), signal, validity, lat, lon, speed
(km/h), course, altitude, HDOP, satellites, ignition, charging."""


def _fix_report(match: re.Match[str], now: dt.datetime) -> Position:
    g = match.groupdict()
    time = resolve_fix_time(_local_time(g["local"]), _utc_time_of_day(g["utc"]), now)
    attrs = _word_attributes(g["word"])
    if g["ignition"] is not None:
        attrs["ignition"] = g["ignition"] == "1"
    if g["door"] is not None:
        attrs["door"] = g["door"] == "1"
    if g["fuel"] is not None:
        attrs["fuel1"] = float(g["fuel"])
    if g["temp"] is not None:
        attrs["temp1"] = int(g["temp"])
    return Position(
        fix_time=time, device_time=time, valid=g["valid"] == "A",
        latitude=_coordinate(g["lat"], g["lat_pre"] or g["lat_hem"]),
        longitude=_coordinate(g["lon"], g["lon_pre"] or g["lon_hem"]),
        altitude_m=float(g["altitude"] or 0), speed_kn=float(g["speed"] or 0),
        course_deg=float(g["course"] or 0), attributes=attrs, unique_id=g["imei"])


def _cell_network(cells: str | None) -> dict[str, Any] | None:
    """The serving cell of an "L" report: fields 3 and 5 after "L" are LAC and
    cell id in hex (MCC/MNC are not sent)."""
    fields = (cells or "").split(",")
    if len(fields) < 5:
        return None
    lac, cid = fields[2], fields[4]
    if not (re.fullmatch(r"[0-9A-Fa-f]{1,8}", lac) and re.fullmatch(r"[0-9A-Fa-f]{1,8}", cid)):
        return None
    return network([cell_tower(0, 0, int(lac, 16), int(cid, 16))])


def _cell_report(match: re.Match[str], now: dt.datetime) -> Position:
    return Position(
        fix_time=now, valid=False, latitude=0.0, longitude=0.0, outdated=True,
        attributes=_word_attributes(match["word"]), network=_cell_network(match["cells"]),
        unique_id=match["imei"])


def _obd_report(match: re.Match[str], now: dt.datetime) -> Position | None:
    g = match.groupdict()
    try:
        time = dt.datetime.strptime(g["time"], "%y%m%d%H%M%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    attrs: dict[str, Any] = {
        "odometer": int(g["odometer"] or 0),
        "fuelConsumption": float(g["consumption"] or 0),
        "hours": int(g["hours"]) * 3_600_000,
        "obdSpeed": int(g["speed"]),
        "engineLoad": g["load"],
        "coolantTemp": int(g["coolant"]),
        "throttle": g["throttle"],
        "rpm": int(g["rpm"]),
        "battery": float(g["battery"]),
    }
    dtcs = [code for code in g["dtcs"].split(",") if code.strip()]
    if dtcs:
        attrs["dtcs"] = " ".join(dtcs)
    return Position(fix_time=time, device_time=time, valid=False, latitude=0.0, longitude=0.0,
                    outdated=True, attributes=attrs, unique_id=g["imei"])


def _csv_report(match: re.Match[str], now: dt.datetime) -> Position | None:
    g = match.groupdict()
    try:
        time = dt.datetime.strptime(g["date"] + g["time"], "%d%m%y%H%M%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    latitude, longitude = float(g["lat"]), float(g["lon"])
    if abs(latitude) > 90 or abs(longitude) > 180:
        return None
    attrs = {"rssi": int(g["rssi"]), "hdop": float(g["hdop"]), "sat": int(g["sat"]),
             "ignition": g["ignition"] == "1", "charge": g["charge"] == "1"}
    return Position(
        fix_time=time, device_time=time, valid=g["valid"] == "1", latitude=latitude,
        longitude=longitude, altitude_m=float(g["altitude"]),
        speed_kn=knots_from_kmh(int(g["speed"])), course_deg=float(g["course"]),
        attributes=attrs, unique_id=g["imei"])


def decode_report(text: str, now: dt.datetime) -> Position | None:
    """One "imei:" report -> a Position, or None when no known layout fits
    (voice records, truncated or unknown reports)."""
    if match := _OBD_REPORT.fullmatch(text):
        return _obd_report(match, now)
    if match := _FIX_REPORT.fullmatch(text):
        position = _fix_report(match, now)
        if abs(position.latitude) <= 90 and abs(position.longitude) <= 180:
            return position
        return None
    if match := _CELL_REPORT.fullmatch(text):
        return _cell_report(match, now)
    if match := _CSV_REPORT.fullmatch(text):
        return _csv_report(match, now)
    return None


# --------------------------------------------------------------------------
# Session and codec
# --------------------------------------------------------------------------

_LOGIN = re.compile(r"##,imei:(\d{1,20}),A")


def frame_kind(text: str) -> FrameKind:
    """Classify one frame's text (delimiter removed); ProtocolError if it is
    none of log-on, heartbeat or report."""
    if text.startswith("##,"):
        return FrameKind.LOGIN
    if text.startswith("imei:"):
        return FrameKind.REPORT
    if re.fullmatch(r"\d{6,20}", text):
        return FrameKind.HEARTBEAT
    raise ProtocolError("gps103: not a GPS103 frame", text.encode("latin-1")[:64])


def frame_text(frame: bytes) -> str:
    """The frame's text without surrounding whitespace and trailing delimiters."""
    return frame.decode("latin-1").strip().rstrip(";*").strip()


class Gps103Session(StreamSession):
    """One connection's decoder: framer and the device's IMEI (see StreamSession)."""

    name = NAME
    max_frame_bytes = MAX_FRAME_BYTES

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})
        super().__init__()

    def new_framer(self, *, datagram: bool = False) -> Framer:
        return Framer()

    def receive_datagram(self, data: bytes, now: dt.datetime) -> list[Frame]:
        """UDP: one datagram of whole frames; the last may lack its delimiter
        (it is supplied, not an error)."""
        return self._decode_datagram_closing(data, now, b";", _BLANK)

    def _decode_frame(self, raw: bytes, now: dt.datetime) -> Frame:
        """Decode one frame (its delimiter may be present or absent)."""
        text = frame_text(raw)
        kind = frame_kind(text)
        if kind == FrameKind.HEARTBEAT:
            self.unique_id = text
            return Frame(messages=(Login(text),), reply=HEARTBEAT_REPLY, raw=raw)
        if kind == FrameKind.LOGIN:
            match = _LOGIN.match(text)
            if match is None:
                return Frame(messages=(), raw=raw)
            self.unique_id = match.group(1)
            return Frame(messages=(Login(self.unique_id),), reply=LOGIN_REPLY, raw=raw)
        position = decode_report(text, now)
        messages: tuple[Message, ...] = ()
        if position is not None:
            self.unique_id = position.unique_id
            messages = (position,)
        return Frame(messages=messages, raw=raw)

    def encode_command(self, command: Command, now: dt.datetime) -> bytes:
        """"**,imei:<imei>,<code>" for this session's device (no terminator)."""
        unique_id = self.require_unique_id("the device has not said its IMEI yet")
        return command_frame(unique_id, command_code(command))


COMMAND_CODES = {
    "positionSingle": "B",
    "engineStop": "J",
    "engineResume": "K",
}


def interval_text(frequency_s: int) -> str:
    """The C command's interval: "NNs", "NNm" or "NNh" (at most 255 units),
    in the largest unit that divides the interval; from 10 s."""
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if frequency_s % size == 0 and frequency_s >= size:
            count = frequency_s // size
            if count <= 255 and frequency_s >= 10:
                return f"{count:02d}{unit}"
            break
    raise UnsupportedCommand(f"gps103: positionPeriodic frequency {frequency_s} s cannot be sent "
                             "(10..255 s, or whole minutes or hours up to 255)")


def command_code(command: Command) -> str:
    """The code after "**,imei:<imei>," for a Traccar command type."""
    if command.type == "custom":
        data = str(command.attributes.get("data", ""))
        if not data or not data.isascii() or any(c in data for c in ";*\r\n"):
            raise UnsupportedCommand("gps103: custom command needs ASCII text without ; * or newlines")
        return data
    if command.type == "positionPeriodic":
        return "C," + interval_text(int(command.attributes.get("frequency", 0)))
    try:
        return COMMAND_CODES[command.type]
    except KeyError:
        raise UnsupportedCommand(f"gps103: unsupported command type {command.type!r}") from None


def command_frame(imei: str, code: str) -> bytes:
    return f"**,imei:{imei},{code}".encode("ascii")


CODEC = CodecSpec(
    name=NAME, default_listen=DEFAULT_LISTEN, max_frame_bytes=MAX_FRAME_BYTES,
    command_types=frozenset({*COMMAND_CODES, "positionPeriodic", "custom"}),
    session_factory=Gps103Session)


__all__ = [
    "ALARM_WORDS", "CODEC", "COMMAND_CODES", "DEFAULT_LISTEN", "HEARTBEAT_REPLY", "LOGIN_REPLY",
    "MAX_FRAME_BYTES", "NAME", "FrameKind", "Framer", "Gps103Session", "command_code",
    "command_frame", "decode_report", "resolve_fix_time", "frame_kind", "frame_text",
    "interval_text"
]
