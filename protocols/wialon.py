"""Wialon IPS (Gurtam) text protocol, versions 1.1 and 2.0: framing, decoding, replies.

Spec followed: Gurtam "Wialon IPS communication protocol" v1.1 and v2.0 (the
2.0 document adds the protocol version to the login and to UDP packets, a
CRC16 field to L, SD, D and M packets and a checksum error code to their
answers).  Where the documents are silent the decoder follows the frames of
real devices collected in Traccar's test suite ("observed").

Transports: TCP (a byte stream, `receive_data`) and UDP (one or more whole
packets per datagram, `receive_datagram`), both on port 5039 as in Traccar.
Over UDP each packet is prefixed with the device id, "imei#SD#..." (1.1) or
"2.0;imei#SD#..." (2.0); the prefix names the device (`Position.unique_id`).

Framing: text lines "#TYPE#message\\r\\n" (UTF-8; a line that is not valid
UTF-8 is read as ISO-8859-1).  No length field, no escaping.  Bytes before
the "#TYPE#" marker that are not a UDP id prefix are garbage and skipped, as
are lines without a marker, up to `MAX_FRAME_BYTES` garbage bytes in a row;
a line longer than `MAX_FRAME_BYTES` is refused.  Photo (#I#) and other
binary transfers are not supported: their binary payload counts as garbage.

Checksum (2.0): CRC-16/ARC (reflected polynomial 0xA001, initial value 0,
check value 0xBB3D for "123456789") over the message from the byte after
"#TYPE#" up to and including the ";" (or for #B#, the "|") before the CRC,
sent as hex ("CE45"; an observed firmware writes "0x9b0").  A packet carries
a CRC when it has one field more than its 1.1 form (SD 11, D 17 fields; a
#B# whose last "|" element is a bare hex number; L with 4 fields; M in a 2.0
session).  A CRC mismatch is answered with the spec's error code and the
packet's data are dropped; the option `lenient=True` accepts such packets
(Traccar checks no CRC; the test frames carry hand-made ones).

Packets and the server's answers::

    #L#imei;password                 (1.1)  -> #AL#1   (0 refused, 01 bad password)
    #L#2.0;imei;password;crc         (2.0)  -> #AL#1   (10 bad CRC)
    #SD#date;time;lat1;lat2;lon1;lon2;speed;course;height;sats[;crc] -> #ASD#1
    #D#<SD fields>;hdop;inputs;outputs;adc;ibutton;params[;crc]      -> #AD#1
    #B#<SD or D record>|<record>|...[|crc]       -> #AB#<records stored>  (#AB# bad CRC)
    #P#                                          -> #AP#
    #M#text[;crc]   (a message from the driver)  -> #AM#1  (01 bad CRC)

Error answers follow the spec: -1 structure, 0 time, 10 coordinates, 11
speed/course/height, 12 satellites/HDOP, 13 inputs/outputs, 14 ADC,
(D) 16 / (SD) 13 checksum.  Unknown packet types get no answer and no data.
Refusal (`Frame.refusal`, sent instead of the success answer when the server
cannot store the data for good, see `REFUSAL_CODES`): #ASD#-1, #AD#-1, #AB#0, #AM#0.

Fields: date DDMMYY and time hhmmss[.fraction] are UTC ("NA": the receive
time `now`); lat1/lon1 are ddmm.mmmm / dddmm.mmmm with hemisphere letters
lat2/lon2; speed km/h (converted to knots), course degrees, height metres;
"NA" (or empty) marks a missing value.  A record is `valid` when it has
coordinates and at least 3 satellites, and `outdated` when it has neither
time nor coordinates.  inputs/outputs are kept as text (`input`, `output`),
ADC values as text `adc1`..., the iButton as `driverUniqueId`.  Params
"name:type:value" (type 1 integer, 2 double, 3 string) become attributes
under the lower-cased name, numbers as doubles (as Traccar), except: `temp`
-> `deviceTemp` and `bat` -> `batteryLevel` (integers); `mccN`/`mncN`/
`lacN`/`cell_idN` build the cell towers of `network` (a complete tower's
mcc/mnc/lac leave the attributes, `cell_idN` stays, as in Traccar).

Alarms: Wialon IPS has no alarm field.  A non-zero `SOS` param (kept as
`sos`, a number) also sets `alarm` to "sos"; a param "alarm:3:<value>" is
stored as `alarm` as it stands, which is how the device side sends other
Traccar alarm values.

Commands: "custom" sends the text as a message to the driver,
"#M#text\\r\\n" (with ";crc" in a 2.0 session).  A driver's message from the
device (#M#) decodes to a CommandResult.
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
from protocols.checksums import crc16_arc
from protocols.framing import StreamFramer
from protocols.session import StreamSession
from protocols.values import knots_from_kmh, option_flag

NAME = "wialon"
DEFAULT_LISTEN = ("tcp:5039", "udp:5039")
MAX_FRAME_BYTES = 32768
"""Largest packet line accepted, "\\r\\n" included: room for a black box of
a hundred full D records."""

EOL = b"\r\n"


@enum.unique
class PacketType(enum.StrEnum):
    """Packet types a device sends (the letters between the two "#")."""

    LOGIN = "L"
    SHORT_DATA = "SD"
    DATA = "D"
    BLACK_BOX = "B"
    PING = "P"
    MESSAGE = "M"


SHORT_FIELDS = 10
DATA_FIELDS = 16


# --------------------------------------------------------------------------
# CRC
# --------------------------------------------------------------------------

crc16 = crc16_arc   # Wialon IPS 2.0's checksum


def crc_text(text: str) -> str:
    """The CRC field a sender writes after `text` (4 upper-case hex digits)."""
    return f"{crc16(text.encode('utf-8')):04X}"


_CRC_FIELD = re.compile(r"(?:0[xX])?[0-9A-Fa-f]{1,4}")


def crc_matches(covered: str, field: str) -> bool:
    """True when `field` ("CE45", "0x9b0") is the CRC of `covered`."""
    if not _CRC_FIELD.fullmatch(field):
        return False
    return int(field, 16) == crc16(covered.encode("utf-8"))


# --------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------

_MARKER = re.compile(rb"#[A-Z]{1,3}#")
_UDP_PREFIX = re.compile(rb"(?:\d{1,3}\.\d{1,3};)?[0-9A-Za-z_.-]{1,32}")


class Framer(StreamFramer):
    """Splits a TCP byte stream into Wialon packets (one line each, "\\r\\n"
    included).

    The part of a line before its "#TYPE#" marker is kept when it is a UDP id
    prefix and skipped as garbage otherwise; lines without a marker are
    garbage.  More than `max_frame_bytes` garbage bytes in a row, or a line
    longer than `max_frame_bytes`, raise ProtocolError (the offending bytes
    are dropped first, so the next call resumes after them).
    """

    name = NAME

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        super().__init__(max_frame_bytes)

    def _next_frame(self) -> bytes | None:
        buf = self._buffer
        while True:
            end = buf.find(b"\n")
            if end < 0:
                if len(buf) > self.max_frame_bytes:
                    self._reject(f"no line end within {self.max_frame_bytes} bytes", drop=len(buf))
                return None
            frame = self._packet_in(end + 1)
            if frame is not None:
                return frame

    def _packet_in(self, size: int) -> bytes | None:
        """Take the line of `size` bytes off the buffer: its packet (garbage
        before the marker skipped), or None."""
        buf = self._buffer
        line = bytes(buf[:size])
        if size > self.max_frame_bytes:
            self._reject(f"line of {size} bytes exceeds {self.max_frame_bytes}", drop=size,
                         frame=line[:64])
        body = line.rstrip(b"\r\n")
        if not body.strip():
            del buf[:size]
            return None
        marker = _MARKER.search(body)
        if marker is None:
            self._skip(size)
            return None
        prefix = body[:marker.start()]
        garbage = len(prefix) if prefix and not _UDP_PREFIX.fullmatch(prefix) else 0
        self._skip(garbage)
        del buf[:size - garbage]
        return body[garbage:] + EOL


# --------------------------------------------------------------------------
# Records (the SD and D field lists)
# --------------------------------------------------------------------------

class FieldError(Exception):
    """A field of a data record cannot be read; `code` is the spec's answer code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


_NUMBER = re.compile(r"[-+]?\d{1,12}(?:\.\d{1,20})?")
_COORDINATE = re.compile(r"(\d{1,8})(\d\d(?:\.\d{1,20})?)")


def _missing(value: str) -> bool:
    return value in ("", "NA")


def _number(value: str, code: str, what: str) -> float | None:
    """A decimal field; None when missing ("NA" or empty)."""
    if _missing(value):
        return None
    if not _NUMBER.fullmatch(value):
        raise FieldError(code, f"bad {what} {value!r}")
    return float(value)


def _record_time(date: str, time: str) -> dt.datetime | None:
    """DDMMYY + hhmmss[.fraction] (UTC); None when either is "NA"."""
    if _missing(date) or _missing(time):
        return None
    match = re.fullmatch(r"(\d\d)(\d\d)(\d\d)", date)
    clock = re.fullmatch(r"(\d\d)(\d\d)(\d\d)(?:\.(\d{1,9}))?", time)
    if match is None or clock is None:
        raise FieldError("0", f"bad date/time {date!r} {time!r}")
    day, month, year = (int(g) for g in match.groups())
    micro = int((clock.group(4) or "0").ljust(6, "0")[:6])
    try:
        return dt.datetime(2000 + year, month, day, int(clock.group(1)), int(clock.group(2)),
                           int(clock.group(3)), micro, tzinfo=dt.UTC)
    except ValueError:
        raise FieldError("0", f"bad date/time {date!r} {time!r}") from None


def _coordinate(value: str, hemisphere: str, negative: str, limit: float) -> float | None:
    """ddmm.mmmm / dddmm.mmmm + hemisphere letter -> signed degrees; None if "NA"."""
    if _missing(value) or _missing(hemisphere):
        return None
    if _COORDINATE.fullmatch(value) is None or hemisphere not in nmea.HEMISPHERES:
        raise FieldError("10", f"bad coordinate {value!r} {hemisphere!r}")
    try:   # only `negative` negates: a latitude's "W" stays positive, as it always did
        return nmea.coordinate(value, hemisphere, negative=negative, limit=limit,
                               check_minutes=False)
    except ValueError:
        raise FieldError("10", f"coordinate {value!r} out of range") from None


def _short_fields(fields: list[str], now: dt.datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ten SD fields -> (Position keyword arguments, attributes)."""
    time = _record_time(fields[0], fields[1])
    latitude = _coordinate(fields[2], fields[3], "S", 90)
    longitude = _coordinate(fields[4], fields[5], "W", 180)
    located = latitude is not None and longitude is not None
    speed_kmh = _number(fields[6], "11", "speed") or 0.0
    course = _number(fields[7], "11", "course") or 0.0
    height = _number(fields[8], "11", "height") or 0.0
    sats = _number(fields[9], "12", "satellites")
    attrs: dict[str, Any] = {}
    if sats is not None:
        if sats != int(sats) or sats < 0:
            raise FieldError("12", f"bad satellites {fields[9]!r}")
        attrs["sat"] = int(sats)
    kwargs = {
        "fix_time": time or now, "device_time": time or now,
        "valid": located and sats is not None and sats >= 3,
        "latitude": latitude if located else 0.0, "longitude": longitude if located else 0.0,
        "altitude_m": height, "speed_kn": knots_from_kmh(speed_kmh), "course_deg": course,
        "outdated": time is None and not located,
    }
    return kwargs, attrs


def _extended_fields(fields: list[str], attrs: dict[str, Any]) -> dict[str, Any] | None:
    """The six D-only fields into `attrs`; returns the network built from params."""
    hdop = _number(fields[10], "12", "HDOP")
    if hdop is not None:
        attrs["hdop"] = hdop
    for key, value in (("input", fields[11]), ("output", fields[12])):
        if not _missing(value):
            attrs[key] = value
    if not _missing(fields[13]):
        for index, value in enumerate(fields[13].split(","), start=1):
            if not _missing(value):
                attrs[f"adc{index}"] = value
    if not _missing(fields[14]):
        attrs["driverUniqueId"] = fields[14]
    return _params(fields[15], attrs)


_CELL_KEY = re.compile(r"(mcc|mnc|lac|cell_id)(\d{1,2})")
_TOWER_KEYS = {"mcc": "mobileCountryCode", "mnc": "mobileNetworkCode", "lac": "locationAreaCode",
               "cell_id": "cellId"}


def _param_value(kind: str, value: str) -> Any:
    """A param value by its type: 1 integer and 2 double become doubles (as
    Traccar), 3 and unknown types stay text; None when a number is malformed."""
    if kind in ("1", "2"):
        return float(value) if _NUMBER.fullmatch(value) else None
    return value


def _params(text: str, attrs: dict[str, Any]) -> dict[str, Any] | None:
    """Params "name:type:value,..." into `attrs`; returns the cell network or None.

    Malformed entries (no two ":", a number that is not one) are skipped."""
    cells: dict[int, dict[str, int]] = {}
    cell_attrs: dict[int, list[str]] = {}
    if _missing(text):
        return None
    for item in text.split(","):
        parts = item.split(":", 2)
        if len(parts) != 3 or not parts[0]:
            continue
        name, kind, raw = parts[0].lower(), parts[1], parts[2]
        value = _param_value(kind, raw)
        if value is None:
            continue
        if name in ("temp", "bat") and _NUMBER.fullmatch(raw):
            number = float(raw)
            attrs["deviceTemp" if name == "temp" else "batteryLevel"] = \
                int(number) if number.is_integer() else number
            continue
        attrs[name] = value
        cell = _CELL_KEY.fullmatch(name)
        if cell and re.fullmatch(r"\d{1,9}(?:\.0+)?", raw):
            index = int(cell.group(2))
            cells.setdefault(index, {})[_TOWER_KEYS[cell.group(1)]] = int(float(raw))
            if cell.group(1) != "cell_id":
                cell_attrs.setdefault(index, []).append(name)
    sos = str(attrs.get("sos", "0"))
    if _NUMBER.fullmatch(sos) and float(sos) != 0:
        attrs["alarm"] = "sos"
    return _network(cells, cell_attrs, attrs)


def _network(cells: dict[int, dict[str, int]], cell_attrs: dict[int, list[str]],
             attrs: dict[str, Any]) -> dict[str, Any] | None:
    # Not values.network: the map has only "cellTowers" (no radioType/considerIp), as before.
    towers = []
    for index in sorted(cells):
        if len(cells[index]) == len(_TOWER_KEYS):
            towers.append(cells[index])
            for name in cell_attrs.get(index, ()):
                attrs.pop(name, None)
    return {"cellTowers": towers} if towers else None


def decode_record(fields: list[str], now: dt.datetime, *, archive: bool = False,
                  unique_id: str | None = None) -> Position:
    """One SD (10 fields) or D (16 fields) record -> Position; FieldError when a
    field cannot be read (its code is the answer the spec asks for)."""
    if len(fields) not in (SHORT_FIELDS, DATA_FIELDS):
        raise FieldError("-1", f"{len(fields)} fields")
    kwargs, attrs = _short_fields(fields, now)
    network = _extended_fields(fields, attrs) if len(fields) == DATA_FIELDS else None
    if archive:
        attrs["archive"] = True
    return Position(**kwargs, attributes=attrs, network=network, unique_id=unique_id)


# --------------------------------------------------------------------------
# Packets
# --------------------------------------------------------------------------

_PACKET = re.compile(r"(?P<prefix>[^#]*)#(?P<type>[A-Z]{1,3})#(?P<body>.*)", re.DOTALL)


@dataclasses.dataclass(frozen=True, slots=True)
class Packet:
    """One packet taken apart: type, message text, and the UDP id prefix."""

    type: str
    body: str
    unique_id: str | None = None
    version: str | None = None


def parse_packet(frame: bytes) -> Packet:
    """Split "[prefix]#TYPE#body\\r\\n"; ProtocolError when it is no packet."""
    raw = bytes(frame).rstrip(b"\r\n")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    match = _PACKET.fullmatch(text)
    if match is None:
        raise ProtocolError("wialon: not a Wialon IPS packet", raw[:64])
    prefix = match["prefix"]
    if not prefix:
        return Packet(match["type"], match["body"])
    if not _UDP_PREFIX.fullmatch(prefix.encode("utf-8")):
        raise ProtocolError("wialon: bad UDP id prefix", raw[:64])
    version, _, unique_id = prefix.rpartition(";")
    return Packet(match["type"], match["body"], unique_id, version or None)


REFUSAL_CODES: dict[str, str] = {   # keyed by the packet's type text
    PacketType.SHORT_DATA: "-1", PacketType.DATA: "-1", PacketType.BLACK_BOX: "0",
    PacketType.MESSAGE: "0",
}
"""The answer code sent instead of success when the server cannot store a packet's
data for good (`Frame.refusal`): SD/D -1 (the spec's "incorrect packet structure",
its one code not about a particular field), B 0 (no message registered), M 0
(message not received).  Login and ping packets carry nothing to store."""


def _answer(packet_type: str, code: str) -> bytes:
    return f"#A{packet_type}#{code}".encode() + EOL


def split_crc(body: str, expected_fields: int) -> tuple[str, str, str | None]:
    """(fields text, covered text, crc field or None) of an SD/D message: the
    CRC is present when the message has one field more than the 1.1 form."""
    if body.count(";") == expected_fields:
        head, _, crc = body.rpartition(";")
        return head, head + ";", crc
    return body, body, None


class WialonSession(StreamSession):
    """One connection's decoder: framer, logged-in id and protocol version
    (see StreamSession)."""

    name = NAME
    max_frame_bytes = MAX_FRAME_BYTES

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = dict(options or {})
        self.lenient = option_flag(options.get("lenient", False))
        self.password: str | None = options.get("password")
        self.version = "1.1"
        super().__init__()

    # -- transport ---------------------------------------------------------

    def new_framer(self, *, datagram: bool = False) -> Framer:
        return Framer()

    def receive_datagram(self, data: bytes, now: dt.datetime) -> list[Frame]:
        """UDP: one datagram of whole packets; the last may lack its "\\r\\n"
        (it is supplied, not an error)."""
        return self._decode_datagram_closing(data, now, EOL)

    def _decode_frame(self, frame: bytes, now: dt.datetime) -> Frame:
        """Decode one packet (its "\\r\\n" may be present or absent)."""
        packet = parse_packet(frame)
        if packet.version is not None:
            self.version = packet.version
        handler = self._HANDLERS.get(packet.type)
        if handler is None:
            return Frame(messages=(), raw=frame)
        messages, reply = handler(self, packet, now)
        refusal = _answer(packet.type, REFUSAL_CODES[packet.type]) \
            if messages and packet.type in REFUSAL_CODES else b""
        return Frame(messages=tuple(messages), reply=reply, raw=frame, refusal=refusal)

    # -- packet handlers: (messages, reply) --------------------------------

    def _crc_ok(self, covered: str, crc: str | None) -> bool:
        return crc is None or self.lenient or crc_matches(covered, crc)

    def _login(self, packet: Packet, now: dt.datetime) -> tuple[list[Message], bytes]:
        fields = packet.body.split(";")
        if len(fields) == 4:
            version, imei, password, crc = fields
            if not self._crc_ok(";".join(fields[:3]) + ";", crc):
                return [], _answer("L", "10")
        elif len(fields) == 2:
            version, (imei, password) = "1.1", fields
        else:
            return [], _answer("L", "0")
        if not imei:
            return [], _answer("L", "0")
        if self.password is not None and password != self.password:
            return [], _answer("L", "01")
        self.unique_id, self.version = imei, version
        return [Login(imei)], _answer("L", "1")

    def _data(self, packet: Packet, now: dt.datetime) -> tuple[list[Message], bytes]:
        short = packet.type == PacketType.SHORT_DATA
        expected = SHORT_FIELDS if short else DATA_FIELDS
        text, covered, crc = split_crc(packet.body, expected)
        fields = text.split(";")
        if len(fields) != expected:
            return [], _answer(packet.type, "-1")
        if not self._crc_ok(covered, crc):
            return [], _answer(packet.type, "13" if short else "16")
        try:
            position = decode_record(fields, now, unique_id=packet.unique_id)
        except FieldError as error:
            return [], _answer(packet.type, error.code)
        return [position], _answer(packet.type, "1")

    def _black_box(self, packet: Packet, now: dt.datetime) -> tuple[list[Message], bytes]:
        items = packet.body.split("|")
        if len(items) > 1 and ";" not in items[-1] and _CRC_FIELD.fullmatch(items[-1]):
            covered = packet.body[:len(packet.body) - len(items[-1])]
            if not self._crc_ok(covered, items[-1]):
                return [], b"#AB#" + EOL
            items = items[:-1]
        positions: list[Message] = []
        for item in items:
            if not item:
                continue
            try:
                positions.append(decode_record(item.split(";"), now, archive=True,
                                               unique_id=packet.unique_id))
            except FieldError:
                continue
        return positions, _answer("B", str(len(positions)))

    def _ping(self, packet: Packet, now: dt.datetime) -> tuple[list[Message], bytes]:
        return [], b"#AP#" + EOL

    def _message(self, packet: Packet, now: dt.datetime) -> tuple[list[Message], bytes]:
        text = packet.body
        if self.version != "1.1" and ";" in text:
            text, _, crc = text.rpartition(";")
            if not self._crc_ok(text + ";", crc):
                return [], _answer("M", "01")
        return [CommandResult(text, unique_id=packet.unique_id)], _answer("M", "1")

    _HANDLERS: dict[str, Callable[[WialonSession, Packet, dt.datetime],
                                   tuple[list[Message], bytes]]] = {
        PacketType.LOGIN: _login,
        PacketType.SHORT_DATA: _data,
        PacketType.DATA: _data,
        PacketType.BLACK_BOX: _black_box,
        PacketType.PING: _ping,
        PacketType.MESSAGE: _message,
    }

    # -- commands ----------------------------------------------------------

    def encode_command(self, command: Command, now: dt.datetime) -> bytes:
        """"custom" only: the text as a message to the driver (#M#)."""
        if command.type != "custom":
            raise UnsupportedCommand(f"wialon: unsupported command type {command.type!r}")
        data = str(command.attributes.get("data", ""))
        if not data or any(c in data for c in "\r\n"):
            raise UnsupportedCommand("wialon: custom command needs one line of text in attributes.data")
        return message_packet(data, with_crc=self.version != "1.1")


def message_packet(text: str, *, with_crc: bool) -> bytes:
    """"#M#text\\r\\n", or "#M#text;CRC\\r\\n" for 2.0 (UTF-8)."""
    body = f"{text};{crc_text(text + ';')}" if with_crc else text
    return f"#M#{body}".encode() + EOL


CODEC = CodecSpec(
    name=NAME, default_listen=DEFAULT_LISTEN, max_frame_bytes=MAX_FRAME_BYTES,
    command_types=frozenset({"custom"}), session_factory=WialonSession)


__all__ = [
    "CODEC", "DATA_FIELDS", "DEFAULT_LISTEN", "EOL", "MAX_FRAME_BYTES", "NAME", "REFUSAL_CODES",
    "SHORT_FIELDS", "FieldError", "Framer", "Packet", "PacketType", "WialonSession", "crc16",
    "crc_matches", "crc_text", "decode_record", "message_packet", "parse_packet", "split_crc"
]
