"""Kids' and elderly 3G/4G watches: the "SG / 3G / CS" text protocol.

Spec followed: the SeTracker / Beesure "Server Protocol GPRS Communication"
(V1.8, 2019, with the 2022-2024 updates for 4G watches: UD_LTE / AL_LTE,
heart rate and blood pressure), completed by the frames of real watches
collected in Traccar's test suite where the document is silent (the "ZJ"
dialect with a serial-number field, the `WT` report).

Transport: TCP, port 5093 as in Traccar (the watches hold one connection
open and keep it alive with `LK`).

Framing::

    [ MM * ID * LLLL * content ]                 (most watches)
    [ MM * ID * NNNN * LLLL * content ]          (the "ZJ" dialect)

`MM` is the manufacturer (two characters: SG, 3G, CS, ZJ ...; up to four are
accepted), `ID` the watch id (10 digits, the last digits of the IMEI; up to
20 letters or digits are accepted), `NNNN` a serial number in hex (ZJ only),
`LLLL` the length of `content` in bytes as four hex digits.  There is no
checksum.  `content` is text (`TYPE,field,field...`) except for voice and
picture messages (`TK`, `JXTK` ...), whose payload is binary with the bytes
0x7D [ ] , * escaped as 0x7D 0x01..0x05; their length counts the escaped
bytes.  Frames are therefore delimited by the length field, never by
searching for "]": the byte after the content must be "]" (strict, the
default).  Option `lenient=True` accepts frames whose length field is stale:
for the known text types, which cannot contain "]", the frame then ends at
the first "]" (Traccar's test frames include such hand-edited lengths).
Frames over `MAX_FRAME_BYTES` are refused.

Messages (device -> server) and what the server answers:

- `LK` link keep / login: answered `[MM*ID*0002*LK]`.  `LK,steps,rolls,battery%`
  also gives a status record (batteryLevel %, steps).
- `UD`, `UD2` (blind-spot re-send), `UD3`, `UD_LTE`, `UD_WCDMA`, `WT`: positions,
  not answered.  `AL`, `AL_LTE`, `AL_WCDMA`: alarm positions, answered with
  their own type (`[MM*ID*0002*AL]`).  Fields: date DDMMYY, time hhmmss (UTC),
  A/V, latitude, N/S, longitude, E/W, speed km/h, course deg, altitude m,
  satellites, GSM signal %, battery %, steps, rolls, terminal status (hex,
  alarm bits below), then cells (count, timing advance, MCC, MNC, then LAC,
  cell id, signal per cell; LAC and cell id decimal, or hex when they hold
  hex letters) and Wi-Fi (count, then name, MAC, signal per access point).
- `TKQ` / `TKQ2` (voice-message query) answered with the same type, `CONFIG`
  answered `CONFIG,1`, `TK` (voice message) answered `TK,1`.  The voice data
  itself is not stored (no media store in this server).
- `PULSE` / `heart` (heart rate) and `bphrt` (blood pressure and heart rate):
  status records with `heartRate`, `pressureHigh`, `pressureLow`.
- The watch's answer to a command (the command's keyword, e.g. `[SG*ID*0002*CR]`)
  becomes a `CommandResult`.  Other types give a frame without messages.

Terminal status bits (Traccar alarm names): bit 0 low battery (lowBattery),
bit 4 moving (`motion` true), bit 16 SOS (sos), 17 low battery (lowBattery),
18 out of fence (geofenceExit), 19 into fence (geofenceEnter), 20 watch taken
off the wrist (removing), 21 fall (fallDown).  An `AL` frame without any of
these bits reports `general`.

Units and time: times are UTC; speed km/h is converted to knots; altitude m;
`rssi` and `batteryLevel` are percentages.  Status records without a fix of
their own carry `now` as their time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Mapping
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
from protocols.framing import StreamFramer
from protocols.session import StreamSession
from protocols.values import KMH_PER_KNOT, cell_tower, network, option_flag

NAME = "watch"
DEFAULT_LISTEN = ("tcp:5093",)
MAX_FRAME_BYTES = 0x10000
"""Largest whole frame accepted ("[" to "]").  Voice messages are the large
ones (a few kB); the length field alone could announce 65 535 content bytes
plus a header, which is refused."""

START = b"["
END = b"]"
_HEADER = re.compile(rb"\[([0-9A-Za-z]{1,4})\*([0-9A-Za-z]{1,20})\*([0-9A-Fa-f]{4})\*")
_PARTIAL_HEADER = re.compile(
    rb"\[(?:[0-9A-Za-z]{0,4}(?:\*[0-9A-Za-z]{0,20}(?:\*[0-9A-Fa-f]{0,4})?)?)?")
_SERIAL_THEN_LENGTH = re.compile(rb"([0-9A-Fa-f]{4})\*")
_MAX_HEADER = 1 + 4 + 1 + 20 + 1 + 5 + 5
_MAC = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")


@enum.unique
class MsgType(enum.StrEnum):
    """Content types (the first field of the content)."""

    LINK = "LK"
    POSITION = "UD"
    POSITION_BLIND = "UD2"
    POSITION_3 = "UD3"
    POSITION_LTE = "UD_LTE"
    POSITION_WCDMA = "UD_WCDMA"
    POSITION_WT = "WT"
    ALARM = "AL"
    ALARM_LTE = "AL_LTE"
    ALARM_WCDMA = "AL_WCDMA"
    VOICE_QUERY = "TKQ"
    VOICE_QUERY_2 = "TKQ2"
    CONFIG = "CONFIG"
    VOICE = "TK"
    VOICE_SEGMENT = "JXTK"
    PULSE = "PULSE"
    HEART = "HEART"
    BLOOD_PRESSURE = "BPHRT"


POSITION_TYPES = frozenset({
    MsgType.POSITION, MsgType.POSITION_BLIND, MsgType.POSITION_3, MsgType.POSITION_LTE,
    MsgType.POSITION_WCDMA, MsgType.POSITION_WT,
})
ALARM_TYPES = frozenset({MsgType.ALARM, MsgType.ALARM_LTE, MsgType.ALARM_WCDMA})
BINARY_TYPES = frozenset({MsgType.VOICE, MsgType.VOICE_SEGMENT})
"""Types whose payload is binary: framed by the length field only."""
TEXT_TYPES = frozenset(MsgType) - BINARY_TYPES
"""Known text types: they cannot contain "]" (lenient framing may use it)."""

REPLIES: dict[str, str] = {   # keyed by the frame's type text
    MsgType.LINK: "LK", MsgType.VOICE_QUERY: "TKQ", MsgType.VOICE_QUERY_2: "TKQ2",
    MsgType.CONFIG: "CONFIG,1", MsgType.VOICE: "TK,1",
}
"""Reply content per type; alarm types are answered with their own type."""

COMMAND_ANSWERS = frozenset({
    "CR", "UPLOAD", "RESET", "POWEROFF", "FIND", "MONITOR", "CALL", "CENTER", "SLAVE", "PW",
    "SOS", "SOS1", "SOS2", "SOS3", "IP", "FACTORY", "LZ", "LOWBAT", "APN", "TS", "VERNO", "REMOVE",
    "SOSSMS", "WORK", "WORKTIME", "SILENCETIME", "PHB", "PHB2", "FLOWER", "MESSAGE", "PEDO",
    "HRTSTART", "BPHRTSTART",
})
"""Keywords of commands a watch answers by echoing the keyword (see `encode_command`)."""

_STATUS_ALARMS = (
    (0x00000001, "lowBattery"), (0x00010000, "sos"), (0x00020000, "lowBattery"),
    (0x00040000, "geofenceExit"), (0x00080000, "geofenceEnter"), (0x00100000, "removing"),
    (0x00200000, "fallDown"),
)
_MOTION_BIT = 0x00000010


# --------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class Header:
    """The part of a frame before the content.  `serial` is the ZJ dialect's
    serial-number field (four hex digits as sent) or None; `size` counts the
    header bytes, "[" to the "*" before the content."""

    manufacturer: str
    device_id: str
    serial: str | None
    length: int
    size: int


def parse_header(buf: bytes | bytearray) -> Header | None:
    """The header at the start of `buf`; None when `buf` ends inside it.

    Raises ProtocolError when `buf` does not start with a header.  The ZJ
    dialect is recognised by a second four-hex-digit field followed by "*".
    """
    match = _HEADER.match(buf)
    if match is None:
        if len(buf) < _MAX_HEADER and _PARTIAL_HEADER.fullmatch(buf):
            return None
        raise ProtocolError("watch: not a frame header", bytes(buf[:_MAX_HEADER]))
    manufacturer, device_id, first = (g.decode("ascii") for g in match.groups())
    rest = buf[match.end():match.end() + 5]
    second = _SERIAL_THEN_LENGTH.match(rest)
    if second is not None:
        return Header(manufacturer, device_id, first, int(second.group(1), 16), match.end() + 5)
    if len(rest) < 5 and re.fullmatch(rb"[0-9A-Fa-f]{0,4}", rest):
        return None   # a ZJ length field may still be arriving
    return Header(manufacturer, device_id, None, int(first, 16), match.end())


def _content_type(content: bytes) -> str:
    """The type keyword of a content (upper case; "" when not ASCII)."""
    head = content[:16].split(b",", 1)[0].split(b"]", 1)[0]
    return head.decode("ascii", "replace").upper() if head.isascii() else ""


def _is_text_frame(buf: bytes | bytearray, size: int) -> bool | None:
    """Whether the content starting at `size` is of a known text type; None
    while its type keyword is still arriving."""
    segment = bytes(buf[size:size + 16])
    match = re.match(rb"([0-9A-Za-z_]+)[,\]]", segment)
    if match is not None:
        return match.group(1).decode("ascii").upper() in TEXT_TYPES
    if len(segment) < 16 and re.fullmatch(rb"[0-9A-Za-z_]*", segment):
        return None
    return False


class Framer(StreamFramer):
    """Splits a TCP byte stream into whole frames, by their length field.

    Bytes before "[" are skipped (resynchronisation), at most
    `max_frame_bytes` in a row: more garbage than that raises ProtocolError.
    A "[" not followed by a header is skipped as garbage.  A frame over the
    size cap, or whose length field does not land on "]" (strict), raises
    ProtocolError after dropping its "[" so the next call resumes behind it.
    """

    name = NAME

    def __init__(self, *, lenient: bool = False, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        super().__init__(max_frame_bytes)
        self.lenient = lenient

    def _next_frame(self) -> bytes | None:
        buf = self._buffer
        found = _HEADER.search(buf)
        if found is None:
            # No complete header: keep a header still arriving at the very end.
            start = buf.rfind(START, max(0, len(buf) - _MAX_HEADER))
            if start < 0 or not _PARTIAL_HEADER.fullmatch(buf, start):
                start = len(buf)
            self._skip(start)
            return None
        # Everything before the first complete header is garbage: one regex scan
        # (C speed) instead of an exception per stray "[" (a spray of "[" bytes
        # otherwise costs the reactor a ProtocolError each).
        self._skip(found.start())
        header = parse_header(buf)
        if header is None:
            return None
        return self._frame_after(header)

    def _frame_after(self, header: Header) -> bytes | None:
        buf = self._buffer
        total = header.size + header.length + 1
        if total > self.max_frame_bytes:
            self._reject(f"declared frame size {total} exceeds {self.max_frame_bytes}")
        if len(buf) >= total and buf[total - 1:total] == END:
            return self._take(total)
        if self.lenient:
            text = _is_text_frame(buf, header.size)
            if text is None or text:
                return self._lenient_frame(header) if text else None
        if len(buf) < total:
            return None
        self._reject(f"length field {header.length} does not end at ']'")
        return None

    def _lenient_frame(self, header: Header) -> bytes | None:
        """Lenient, known text type: the frame ends at its first "]"."""
        end = self._buffer.find(END, header.size)
        if end >= 0:
            return self._take(end + 1)
        if len(self._buffer) >= self.max_frame_bytes:
            self._reject("no ']' within the frame size cap")
        return None

    def _take(self, size: int) -> bytes:
        frame = bytes(self._buffer[:size])
        del self._buffer[:size]
        return frame


def split_frame(frame: bytes, *, lenient: bool = False) -> tuple[Header, bytes]:
    """Header and content of one whole frame (the closing "]" may be absent).

    Strict: the length field must match the content and nothing may follow
    the "]".  Lenient: a stale length is tolerated for known text types (the
    content then ends at the first "]"), and bytes after the frame are ignored.
    """
    header = parse_header(frame)
    if header is None:
        raise ProtocolError("watch: truncated frame header", frame[:_MAX_HEADER])
    rest = frame[header.size:]
    length = header.length
    if rest[length:length + 1] == END and (lenient or len(rest) == length + 1):
        return header, rest[:length]
    if len(rest) == length and not rest.endswith(END):
        return header, rest
    if lenient and _content_type(rest) in TEXT_TYPES:
        end = rest.find(END)
        return header, rest if end < 0 else rest[:end]
    raise ProtocolError(f"watch: length field {length} does not match the frame", frame[:64])


def build_frame(manufacturer: str, device_id: str, content: str | bytes,
                serial: str | None = None) -> bytes:
    """One frame in either direction: `[MM*ID*LLLL*content]` (length in upper-case
    hex), with the ZJ serial field when `serial` is given."""
    body = content.encode("latin-1") if isinstance(content, str) else content
    if len(body) > 0xFFFF:
        raise ValueError("watch: content longer than 65535 bytes")
    head = f"[{manufacturer}*{device_id}*" + (f"{serial}*" if serial else "") + f"{len(body):04X}*"
    return head.encode("ascii") + body + END


def unescape(data: bytes) -> bytes:
    """Binary payloads (voice, pictures): 0x7D 0x01..0x05 -> 0x7D [ ] , *."""
    table = {1: 0x7D, 2: 0x5B, 3: 0x5D, 4: 0x2C, 5: 0x2A}
    out = bytearray()
    index = 0
    while index < len(data):
        byte = data[index]
        if byte == 0x7D and index + 1 < len(data) and data[index + 1] in table:
            out.append(table[data[index + 1]])
            index += 2
        else:
            out.append(byte)
            index += 1
    return bytes(out)


# --------------------------------------------------------------------------
# Field helpers
# --------------------------------------------------------------------------

def _int(text: str) -> int | None:
    """A decimal integer field, None when empty or not a number."""
    text = text.strip()
    return int(text) if re.fullmatch(r"-?\d{1,12}", text) else None


def _float(text: str) -> float | None:
    text = text.strip()
    return float(text) if re.fullmatch(r"-?\d{1,12}(?:\.\d{0,12})?", text) else None


def _cell_number(text: str) -> int | None:
    """LAC / cell id: decimal, or hex when the field holds hex letters."""
    text = text.strip()
    if re.fullmatch(r"\d{1,12}", text):
        return int(text)
    if re.fullmatch(r"[0-9A-Fa-f]{1,12}", text):
        return int(text, 16)
    return None


def _fix_time(date: str, time: str) -> dt.datetime:
    """DDMMYY + hhmmss[.sss] (UTC) -> aware datetime."""
    try:
        return nmea.date_time(date, time, fraction=True)
    except ValueError as exc:
        raise ProtocolError(f"watch: {exc}") from exc


def _coordinate(value: str, hemisphere: str, negative: str, limit: float) -> float:
    """Degrees; the hemisphere letter negates (a signed value stays signed)."""
    number = _float(value)
    if number is None or abs(number) > limit:
        raise ProtocolError(f"watch: bad coordinate {value!r}")
    return -number if hemisphere.strip().upper() == negative else number


def _add_alarm(attrs: dict[str, Any], alarm: str) -> None:
    """Append an alarm (comma-joined, as Traccar does), once: unlike
    values.add_alarm, an alarm already present is not repeated."""
    present = attrs.get("alarm")
    if present is None:
        attrs["alarm"] = alarm
    elif alarm not in present.split(","):
        attrs["alarm"] = f"{present},{alarm}"


def _status(attrs: dict[str, Any], text: str) -> None:
    """Terminal status (hex): alarm bits and the motion bit (see module doc)."""
    text = text.strip()
    if not re.fullmatch(r"[0-9A-Fa-f]{1,8}", text):
        return
    status = int(text, 16)
    for bit, alarm in _STATUS_ALARMS:
        if status & bit:
            _add_alarm(attrs, alarm)
    if status & _MOTION_BIT:
        attrs["motion"] = True


# --------------------------------------------------------------------------
# Network (cells and Wi-Fi)
# --------------------------------------------------------------------------

def _looks_like_cell_head(fields: list[str]) -> bool:
    """Timing advance, MCC, MNC: three numeric (or empty) fields."""
    return len(fields) >= 3 and all(re.fullmatch(r"[0-9A-Fa-f]*", f.strip()) for f in fields[:3])


def _network(fields: list[str]) -> dict[str, Any] | None:
    """Cells then Wi-Fi, as they follow the terminal status (see module doc).

    A cell count of 0 is normally still followed by timing advance, MCC and
    MNC; some firmware goes straight on to the Wi-Fi count, recognised by
    non-numeric fields there.  Cells with an invalid MCC are dropped.
    """
    towers: list[dict[str, Any]] = []
    count = _int(fields[0]) if fields else None
    if count is None:
        return None
    index = 1
    if count < 0 or (count > 0 and 4 + 3 * count - 1 > len(fields)):
        raise ProtocolError(f"watch: cell count {count} does not fit the {max(0, len(fields) - 4)} "
                            "fields left (3 per cell)")
    if count > 0 or _looks_like_cell_head(fields[1:]):
        mcc, mnc = _int(fields[2]) if len(fields) > 2 else None, _int(fields[3]) if len(fields) > 3 else None
        index = 4
        for _ in range(count):
            cell = fields[index:index + 3]
            index += 3
            if len(cell) < 2 or mcc is None or not 0 < mcc < 1000 or mnc is None:
                continue
            lac, cid = _cell_number(cell[0]), _cell_number(cell[1])
            if lac is None or cid is None:
                continue
            signal = _int(cell[2]) if len(cell) > 2 else None
            towers.append(cell_tower(mcc, mnc, lac, cid, None if signal is None else -abs(signal)))
    return network(towers, _wifi(fields[index:]))


def _wifi(fields: list[str]) -> list[dict[str, Any]]:
    """Wi-Fi count, then name, MAC, signal (dBm) per access point."""
    count = _int(fields[0]) if fields else None
    if count is not None and (count < 0 or 1 + 3 * count > len(fields)):
        raise ProtocolError(f"watch: Wi-Fi count {count} does not fit the {max(0, len(fields) - 1)} "
                            "fields left (3 per access point)")
    points: list[dict[str, Any]] = []
    for n in range(count or 0):
        entry = fields[1 + 3 * n:4 + 3 * n]
        if len(entry) < 3:
            break
        signal = _int(entry[2])
        if _MAC.fullmatch(entry[1].strip()) and signal is not None:
            points.append({"macAddress": entry[1].strip().lower(), "signalStrength": signal})
    return points


# --------------------------------------------------------------------------
# Decoders
# --------------------------------------------------------------------------

def _location(fields: list[str], device_id: str, *, alarm_frame: bool) -> Position:
    """UD / AL family: fields after the type (see the module docstring)."""
    if len(fields) < 7:
        raise ProtocolError(f"watch: position with {len(fields)} fields")
    fix_time = _fix_time(fields[0], fields[1])
    latitude = _coordinate(fields[3], fields[4], "S", 90.0)
    longitude = _coordinate(fields[5], fields[6], "W", 180.0)
    values = fields[7:] + [""] * max(0, 16 - len(fields))
    attrs: dict[str, Any] = {}
    for key, text in (("sat", values[3]), ("rssi", values[4]), ("batteryLevel", values[5]),
                      ("steps", values[6])):
        number = _int(text)
        if number is not None:
            attrs[key] = number
    _status(attrs, values[8])
    if alarm_frame and "alarm" not in attrs:
        attrs["alarm"] = "general"
    return Position(
        fix_time=fix_time, valid=fields[2].strip().upper() == "A", latitude=latitude,
        longitude=longitude, altitude_m=_float(values[2]) or 0.0,
        speed_kn=(_float(values[0]) or 0.0) / KMH_PER_KNOT, course_deg=_float(values[1]) or 0.0,
        device_time=fix_time, attributes=attrs, network=_network(fields[16:]), unique_id=device_id)


def _status_record(attrs: dict[str, Any], device_id: str, now: dt.datetime) -> Position:
    return Position(fix_time=now, valid=False, latitude=0.0, longitude=0.0, outdated=True,
                    attributes=attrs, unique_id=device_id)


def _link(fields: list[str], device_id: str, now: dt.datetime) -> list[Message]:
    """LK: login / keep-alive; `LK,steps,rolls,battery%` adds a status record."""
    messages: list[Message] = [Login(device_id)]
    if len(fields) == 3:
        steps, battery = _int(fields[0]), _int(fields[2])
        attrs = {k: v for k, v in (("batteryLevel", battery), ("steps", steps)) if v is not None}
        if attrs:
            messages.append(_status_record(attrs, device_id, now))
    return messages


def _health(kind: str, fields: list[str], device_id: str, now: dt.datetime) -> list[Message]:
    """PULSE / heart: heart rate; bphrt: high and low pressure (text, as
    Traccar reports them) and heart rate."""
    attrs: dict[str, Any] = {}
    if kind == MsgType.BLOOD_PRESSURE:
        values = fields + ["", "", ""]
        if values[0].strip():
            attrs["pressureHigh"] = values[0].strip()
        if values[1].strip():
            attrs["pressureLow"] = values[1].strip()
        rate = _int(values[2])
    else:
        rate = _int(fields[0]) if fields else None
    if rate is not None:
        attrs["heartRate"] = rate
    return [_status_record(attrs, device_id, now)] if attrs else []


# --------------------------------------------------------------------------
# Session and codec
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """Session settings: `lenient` (stale length fields, trailing bytes)."""

    lenient: bool = False

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> Options:
        return cls(lenient=option_flag((options or {}).get("lenient", False)))


class WatchSession(StreamSession):
    """One connection's decoder: framer, watch id, manufacturer, and the
    keywords of commands sent and not yet answered (see StreamSession; UDP
    datagrams are for tools: the watches use TCP)."""

    name = NAME
    max_frame_bytes = MAX_FRAME_BYTES

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = Options.from_mapping(options)
        self.manufacturer: str = "SG"
        self.serial: str | None = None
        self._awaiting: set[str] = set()
        super().__init__()

    def new_framer(self, *, datagram: bool = False) -> Framer:
        return Framer(lenient=self.options.lenient)

    def _decode_frame(self, frame: bytes, now: dt.datetime) -> Frame:
        """Decode one whole frame; unknown types give a Frame without messages."""
        header, content = split_frame(frame, lenient=self.options.lenient)
        self.unique_id, self.manufacturer, self.serial = (
            header.device_id, header.manufacturer, header.serial)
        kind = _content_type(content)
        messages = self._messages(kind, content, header.device_id, now)
        answer = kind == MsgType.VOICE and content in (b"TK,0", b"TK,1")   # not a voice message
        reply = b"" if answer else self._reply(kind)
        return Frame(messages=tuple(messages), reply=reply, raw=frame)

    def _messages(self, kind: str, content: bytes, device_id: str,
                  now: dt.datetime) -> list[Message]:
        if kind in BINARY_TYPES:
            return []
        fields = content.decode("latin-1").split(",")[1:]
        if kind == MsgType.LINK:
            return _link(fields, device_id, now)
        if kind in POSITION_TYPES or kind in ALARM_TYPES:
            return [_location(fields, device_id, alarm_frame=kind in ALARM_TYPES)]
        if kind in (MsgType.PULSE, MsgType.HEART, MsgType.BLOOD_PRESSURE):
            return _health(kind, fields, device_id, now)
        if kind in self._awaiting or kind in COMMAND_ANSWERS:
            self._awaiting.discard(kind)
            return [CommandResult(content.decode("latin-1"), unique_id=device_id)]
        return []

    def _reply(self, kind: str) -> bytes:
        """What the watch expects back for a frame of this type (b"" for nothing)."""
        if kind in ALARM_TYPES:
            content = kind
        elif kind in REPLIES:
            content = REPLIES[kind]
        else:
            return b""
        return build_frame(self.manufacturer, self.unique_id or "", content, self.serial)

    def encode_command(self, command: Command, now: dt.datetime) -> bytes:
        """The command frame for this session's watch (same manufacturer and id)."""
        unique_id = self.require_unique_id("the watch has not identified itself yet")
        text = command_text(command)
        self._awaiting.add(text.split(",", 1)[0].upper())
        return build_frame(self.manufacturer, unique_id, text, self.serial)


COMMAND_TEXTS = {
    "positionSingle": "CR",
    "rebootDevice": "RESET",
    "powerOff": "POWEROFF",
}
"""Fixed command contents.  `powerOff` is Traccar's type name; it is accepted
here but not listed in `command_types`, which holds only the server's types
(send it as custom "POWEROFF" through the API)."""


def command_text(command: Command) -> str:
    """The watch command content for a Traccar command type."""
    if command.type == "positionPeriodic":
        frequency_s = int(command.attributes.get("frequency", 0))
        if not 10 <= frequency_s <= 86400:
            raise UnsupportedCommand("watch: positionPeriodic frequency must be 10..86400 s")
        return f"UPLOAD,{frequency_s}"
    if command.type == "custom":
        data = str(command.attributes.get("data", ""))
        if not data or not all(" " <= ch <= "~" for ch in data) or "[" in data or "]" in data:
            raise UnsupportedCommand("watch: custom command needs printable ASCII without [ ]")
        return data
    try:
        return COMMAND_TEXTS[command.type]
    except KeyError:
        raise UnsupportedCommand(f"watch: unsupported command type {command.type!r}") from None


CODEC = CodecSpec(
    name=NAME, default_listen=DEFAULT_LISTEN, max_frame_bytes=MAX_FRAME_BYTES,
    command_types=frozenset({"positionSingle", "positionPeriodic", "rebootDevice", "custom"}),
    session_factory=WatchSession)


__all__ = [
    "ALARM_TYPES", "BINARY_TYPES", "CODEC", "COMMAND_TEXTS", "DEFAULT_LISTEN",
    "MAX_FRAME_BYTES", "NAME", "POSITION_TYPES", "REPLIES", "TEXT_TYPES", "Framer", "Header",
    "MsgType", "Options", "WatchSession", "build_frame", "command_text", "parse_header",
    "split_frame", "unescape"
]
