"""Suntech protocol (ST300 / ST340 / ST600 / SA200 / ST500 / ST410 / ST910 / ST4300 ...).

Specs followed: Suntech "ST300/340 Operation Manual - LATAM" rev. 1.41-1.56 and the
ST310U / ST3330 / ST4940 manuals for the model-prefixed ("legacy") reports and their
zip form, the ST940 user manual for the ST910 family, and Suntech's "Universal
Reporting Guide" (Suntech messages to back-end server, rev. 1.14-1.102) for the
universal reports whose fields are chosen by a report map.  Where only device
captures tell (the ST410/ST419 cell-first layout, the universal zip field widths,
the UEX sensor payloads) the code says "observed".

Transports: TCP (`receive_data`) and UDP (`receive_datagram`, one or more whole
reports per datagram), both on port 5011 as in Traccar.

Framing, three kinds of frames told apart by their first byte:

* text (printable ASCII): fields separated by ``;``, the report ends with ``\\r``
  (some firmware sends ``\\r\\n``; stray ``\\r``/``\\n`` between reports are
  skipped).  An external-device report (``UEX``) carries LEN bytes of data that
  may contain ``;``, ``\\r`` and escaped binary (0x01 0x10 = 0x00, 0x01 0x11 =
  0x01); the framer reads the data by its length before looking for the ``\\r``.
* legacy zip: ``0x02 | LEN (2, big endian) | content (LEN bytes) | 0x03``;
  content: header (0x10 status, 0x11 emergency, 0x12 event, 0x13 alert), device id
  (5 bytes BCD), model, version (2), date-time (6 binary), cell (3), latitude and
  longitude (1 byte degrees + 3 bytes BCD millionths), speed and course (2 bytes
  integer + 1 byte BCD hundredths), fix/sign/satellite byte, distance (4), power
  (1 + 1 BCD), I/O byte, then the type's fields (and, with HBM on, hour meter,
  backup voltage and message type).
* universal zip: ``0x81`` status / ``0x82`` alert ``| LEN (2) | content``; the
  content is the device id (5 bytes BCD), the report map (3) and the mapped fields
  in binary (observed widths, see `_UNIVERSAL_ZIP_WIDTHS`).

No checksum protects the reports (the UEX checksum covers only the serial data
and is not checked: captures with a miscounted LEN exist).  Garbage before a
frame is skipped: bytes that cannot start a frame, a text line up to its last
control byte, junk glued before a report header.  More than `MAX_FRAME_BYTES`
of garbage (or of text lines none of which is a report) in a row, a frame
longer than that, or a zip frame with a bad header, BCD id or end byte raises
`ProtocolError`.

Messages: reports give a `Position` naming the device; keep-alives (ALV) a
`Login` only; command answers (``<prefix>CMD;Res;...``, universal ``RES``) a
`CommandResult` plus a status record carrying it as `result`; trip reports
(HTE) a status record with the driver id.

Dialects: the report header names the model family (``ST300STT``, ``SA200ALT``,
``ST600UEX`` ...; ``STT``/``ALT``/... alone are universal reports with a report
map in hex as third field; ``ST910;Location;...`` is the personal-tracker family).
Optional fields are found from the report's shape (date, coordinates) plus the
settings Traccar uses for the same devices: ``hbm`` (1: hour meter, backup
voltage and message type follow the status fields; 2: the same plus a serving
cell), ``includeAdc``, ``includeRpm``, ``includeTemp`` (extra status fields after
HBM) and ``protocolType`` (1: the ST910 reports carry a cell and odometer).

Units and time: dates and times are UTC (YYYYMMDD;hh:mm:ss); speed arrives in
km/h and leaves in knots; course in degrees; odometer and distance in metres;
voltages in volts; the hour meter in minutes, stored as `hours` in milliseconds.

Replies: the server answers nothing by default (Suntech devices do not wait for
acks); with the option ``ackEmergency`` an emergency report is answered with the
``AckEmerg`` command, which stops the device's emergency repetitions.  Commands
are ``<prefix>CMD;<device id>;02;<command>\\r``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import re
from collections.abc import Callable, Mapping
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
from protocols.framing import StreamFramer
from protocols.session import StreamSession
from protocols.values import KMH_PER_KNOT, cell_tower
from protocols.values import network as _network

NAME = "suntech"
DEFAULT_LISTEN = ("tcp:5011", "udp:5011")
MAX_FRAME_BYTES = 4096
"""Largest frame accepted.  Text reports are a few hundred bytes; the longest are
command answers such as ``PresetA`` (~700) and UEX reports (up to 500 data bytes)."""

STX = 0x02
ETX = 0x03
_TEXT_START = frozenset(range(0x20, 0x7F))
_SEPARATORS = frozenset(b"\r\n")
_CONTROL = bytes([*range(0x20), 0x7F])


@enum.unique
class ZipHeader(enum.IntEnum):
    """First content byte of a legacy zip report."""

    STATUS = 0x10
    EMERGENCY = 0x11
    EVENT = 0x12
    ALERT = 0x13


@enum.unique
class UniversalZipHeader(enum.IntEnum):
    """First byte of a universal zip report (observed: 0x81 status, 0x82 alert)."""

    STATUS = 0x81
    ALERT = 0x82


_ZIP_HEADERS = frozenset(ZipHeader)
_UNIVERSAL_ZIP_HEADERS = frozenset(UniversalZipHeader)


@enum.unique
class ReportType(enum.StrEnum):
    """The three-letter report types of the text reports."""

    STATUS = "STT"
    ALERT = "ALT"
    EMERGENCY = "EMG"
    EVENT = "EVT"
    ALIVE = "ALV"
    EXTERNAL = "UEX"
    TRIP = "HTE"
    COMMAND = "CMD"
    RESULT = "RES"


ALERT_ALARMS = {
    1: "overspeed", 3: "gpsAntennaCut", 5: "geofenceExit", 6: "geofenceEnter",
    14: "lowPower", 15: "vibration", 16: "accident", 40: "powerRestored", 41: "powerCut",
    46: "hardAcceleration", 47: "hardBraking", 48: "hardCornering", 49: "overspeed",
    50: "jamming", 61: "idle", 73: "fuelLeak", 75: "temperature", 76: "temperature",
}
"""Alert ids (ALT reports) with a Traccar alarm, from Suntech's alert id table.
Informative alerts (deep sleep, ignition on/off, i-button, calibrations ...)
give no alarm."""

EMERGENCY_ALARMS = {1: "sos", 2: "parking", 3: "powerCut", 5: "door", 6: "door", 7: "movement",
                    8: "vibration"}
"""Emergency ids (EMG reports): panic button, parking lock, main power removed,
anti-theft (door), motion, anti-theft shock."""

_DATE = re.compile(r"[0-9]{8}")
_TIME = re.compile(r"[0-9]{2}:[0-9]{2}:[0-9]{2}")
_COORD = re.compile(r"[+-]?[0-9]{1,3}\.[0-9]+")
_INT = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?[0-9]+(\.[0-9]*)?")
_HEX = re.compile(r"[0-9A-Fa-f]+")
_LEGACY_HEADER = re.compile(r"([A-Z]{2}[0-9]{3,4})([A-Z]{3})")
_UNIVERSAL_TYPES = frozenset({"STT", "ALT", "EMG", "EVT", "UEX"})
_KNOWN_HEADER = re.compile(r"(?:[A-Z]{2}[0-9]{3,4})?(?:STT|ALT|EMG|EVT|ALV|UEX|HTE|CMD|RES)$|ST910$")


# --------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------

def _flag(value: Any) -> int:
    """A setting as an integer: booleans, numbers and "true"/"false"/"2" strings
    (unlike values.option_flag it keeps numbers: hbm and protocolType are 0-2)."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "yes", "on"):
            return 1
        return int(text) if text.isdigit() else 0
    return int(bool(value)) if isinstance(value, bool) else int(value or 0)


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """Decoder settings (Traccar's names in `from_mapping`)."""

    hbm: int = 0
    include_adc: bool = False
    include_rpm: bool = False
    include_temp: bool = False
    protocol_type: int = 0
    ack_emergency: bool = False

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> Options:
        options = options or {}
        return cls(hbm=_flag(options.get("hbm")),
                   include_adc=bool(_flag(options.get("includeAdc"))),
                   include_rpm=bool(_flag(options.get("includeRpm"))),
                   include_temp=bool(_flag(options.get("includeTemp"))),
                   protocol_type=_flag(options.get("protocolType")),
                   ack_emergency=bool(_flag(options.get("ackEmergency"))))


# --------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------

def java_trim(text: str) -> str:
    """Strip every character <= U+0020 from both ends (control bytes too)."""
    start, end = 0, len(text)
    while start < end and text[start] <= " ":
        start += 1
    while end > start and text[end - 1] <= " ":
        end -= 1
    return text[start:end]


def _uex_data_end(fields: list[str], length_index: int) -> int:
    """Index of the first field after a UEX report's data.

    The data is LEN bytes, possibly holding ``;``: whole ``;``-separated fields
    are taken until they cover LEN (each counted with its separator), which
    also copes with devices that count a CR LF they did not send."""
    if length_index >= len(fields) or not re.fullmatch(r"[0-9]{1,5}", fields[length_index]):
        return length_index + 1
    remaining = int(fields[length_index])
    index = length_index + 1
    while remaining > 0 and index < len(fields):
        remaining -= len(fields[index]) + 1
        index += 1
    return index


def _uex_frame_end(text: str) -> int | None:
    """For a buffer starting with a legacy UEX report: the index of the ``\\r``
    ending it (-1 when the buffer is not such a report, None when more bytes
    are needed)."""
    first_line = text.split("\r", 1)[0]
    header = first_line.split(";", 1)[0]
    match = _LEGACY_HEADER.fullmatch(header)
    if not match or match.group(2) != ReportType.EXTERNAL:
        return -1
    fields = first_line.split(";")
    layout = _legacy_layout(fields)
    if layout is None or layout.lat + 10 >= len(fields):
        return -1
    length_index = layout.lat + 9
    if not re.fullmatch(r"[0-9]{1,5}", fields[length_index]):
        return -1
    start = sum(len(f) + 1 for f in fields[:length_index + 1])
    remaining, pos = int(fields[length_index]), start
    while remaining > 0:
        separator = text.find(";", pos)
        if separator < 0:
            return None
        remaining -= separator - pos + 1
        pos = separator + 1
    end = text.find("\r", pos)
    return None if end < 0 else end


class _Resync:
    """The type of `_RESYNC`."""


_RESYNC = _Resync()   # _text() skipped garbage: the buffer's start needs a fresh look


class Framer(StreamFramer):
    """Splits a byte stream into whole Suntech frames (text lines without their
    delimiter, zip frames whole).

    Bytes that cannot start a frame are skipped, up to `max_frame_bytes` in a
    row; a frame over the cap, or a zip frame without its end byte, raises
    `ProtocolError` after dropping its first byte, so the next call resumes."""

    name = NAME

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        super().__init__(max_frame_bytes)

    def _next_frame(self) -> bytes | None:
        buf = self._buffer
        while buf:
            first = buf[0]
            if first in _SEPARATORS:
                del buf[:1]
            elif first == STX or 0x80 <= first <= 0x8F:
                return self._zip(first == STX)
            elif first in _TEXT_START:
                frame = self._text()
                if not isinstance(frame, _Resync):
                    return frame
            else:
                self._skip_garbage()
        return None

    def flush(self) -> bytes | None:
        """The buffered rest as a last text frame (a datagram's last report may
        lack its delimiter); ProtocolError when it is a partial zip frame."""
        frame = self.next_frame()
        if frame is not None or not self._buffer:
            return frame
        if self._buffer[0] in _TEXT_START:
            frame = bytes(self._buffer)
            self._buffer.clear()
            return frame
        raise ProtocolError("suntech: datagram ends inside a zip frame", bytes(self._buffer[:64]))

    def _skip_garbage(self) -> None:
        """Drop bytes up to the next one that can start a frame."""
        buf = self._buffer
        count = 1
        while count < len(buf) and not _can_start(buf[count]):
            count += 1
        self._skip(count)

    def _zip(self, legacy: bool) -> bytes | None:
        buf = self._buffer
        if len(buf) < 3:
            return None
        if not _plausible_zip_start(bytes(buf[:9]), legacy):
            self._reject("not a zip frame (header or BCD device id)")
        total = 3 + int.from_bytes(buf[1:3], "big") + (1 if legacy else 0)
        if total > self.max_frame_bytes:
            self._reject(f"zip frame of {total} bytes exceeds {self.max_frame_bytes}")
        if len(buf) < total:
            return None
        frame = bytes(buf[:total])
        if legacy and frame[-1] != ETX:
            self._reject("zip frame does not end with 0x03")
        del buf[:total]
        return frame

    def _text(self) -> bytes | None | _Resync:
        """A text report up to its CR.  Control bytes in a line (outside UEX
        data) mark binary garbage: the line restarts after the last of them,
        and `_RESYNC` says to look at what follows afresh."""
        buf = self._buffer
        while buf and buf[0] in _TEXT_START:
            end = buf.find(b"\r", 0, self.max_frame_bytes + 1)
            uex_end = -1
            if 0 < end and b";" in buf[:end]:
                found = _uex_frame_end(bytes(buf[:self.max_frame_bytes + 1]).decode("latin-1"))
                if found is None:
                    end = -1
                else:
                    uex_end = found
                    end = max(end, uex_end)
            if end < 0:
                if len(buf) > self.max_frame_bytes:
                    self._reject(f"no report delimiter within {self.max_frame_bytes} bytes")
                return None
            control = _last_control(buf, end) if uex_end < 0 else -1
            if control >= 0:
                self._skip(control + 1)
                continue
            frame = bytes(buf[:end])
            del buf[:end + 1]
            return frame
        return _RESYNC if buf else None


def _plausible_zip_start(head: bytes, legacy: bool) -> bool:
    """What the first bytes of a zip frame allow to check: a legacy report
    header 0x10-0x1F, and a BCD device id (checked once its bytes are here)."""
    id_bytes = head[4:9] if legacy else head[3:8]
    if legacy and len(head) > 3 and not 0x10 <= head[3] <= 0x1F:
        return False
    return all(b >> 4 <= 9 and b & 0x0F <= 9 for b in id_bytes)


def _last_control(buf: bytearray, end: int) -> int:
    """Index of the last control byte (< 0x20 or 0x7F) before `end`, or -1."""
    return max(buf.rfind(bytes([byte]), 0, end) for byte in _CONTROL)


def _can_start(byte: int) -> bool:
    return byte in _TEXT_START or byte in _SEPARATORS or byte == STX or 0x80 <= byte <= 0x8F


# --------------------------------------------------------------------------
# Field helpers
# --------------------------------------------------------------------------

class Fields:
    """The ``;``-separated fields of a text report; a missing field reads as ""."""

    __slots__ = ("items", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.items = text.split(";")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> str:
        return self.items[index] if 0 <= index < len(self.items) else ""

    def error(self, what: str) -> ProtocolError:
        return ProtocolError(f"suntech: bad {what} in {self.text[:80]!r}",
                             self.text[:200].encode("latin-1", "replace"))


def _int(fields: Fields, index: int, what: str, base: int = 10) -> int:
    value = fields[index]
    try:
        return int(value, base)
    except ValueError:
        raise fields.error(what) from None


def _float(fields: Fields, index: int, what: str) -> float:
    value = fields[index]
    if not _DECIMAL.fullmatch(value):
        raise fields.error(what)
    return float(value)


def _coordinate(fields: Fields, index: int, limit: float) -> float:
    """Latitude (limit 90) or longitude (limit 180) in signed degrees."""
    value = _float(fields, index, "coordinate")
    if abs(value) > limit:
        raise fields.error("coordinate (out of range)")
    return value


def _datetime(fields: Fields, index: int) -> dt.datetime:
    """YYYYMMDD;hh:mm:ss at `index` (UTC)."""
    date, time = fields[index], fields[index + 1]
    try:
        return dt.datetime.strptime(date + time, "%Y%m%d%H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError:
        raise fields.error("date/time") from None


def _find_date(fields: Fields, start: int) -> int | None:
    """Index of the first YYYYMMDD field followed by hh:mm:ss."""
    for index in range(start, len(fields) - 1):
        if _DATE.fullmatch(fields[index]) and _TIME.fullmatch(fields[index + 1]):
            return index
    return None


def _find_coordinates(fields: Fields, start: int, cell_sizes: tuple[int, ...] = (0, 1, 5)) -> int | None:
    """Index of the latitude;longitude pair after a cell block of one of
    `cell_sizes` fields starting at `start` (None when there is none)."""
    for size in cell_sizes:
        index = start + size
        if _COORD.fullmatch(fields[index]) and _COORD.fullmatch(fields[index + 1]):
            return index
    return None


Tower = dict[str, Any]


def _tower(cell_id: int, lac: int, mcc: int, mnc: int, signal: int | None = None) -> Tower:
    """values.cell_tower with Suntech's field order (cell id, LAC, MCC, MNC)."""
    return cell_tower(mcc, mnc, lac, cell_id, signal)


def _io(attrs: dict[str, Any], io: str) -> None:
    """Legacy I/O string: ignition, input 1-3, output 1-2 (one character each;
    ST600 adds two more characters that are not decoded)."""
    if len(io) >= 6 and set(io) <= {"0", "1"}:
        for key, char in zip(("ignition", "in1", "in2", "in3", "out1", "out2"), io, strict=False):
            attrs[key] = char == "1"


@dataclasses.dataclass(slots=True)
class Context:
    """What a decoder looks at besides the report."""

    options: Options
    now: dt.datetime
    session: SuntechSession


@dataclasses.dataclass(frozen=True, slots=True)
class Decoded:
    """Messages of one frame and the reply it needs; `recognised` is False for
    text that is no Suntech report (the session bounds how much it accepts)."""

    messages: tuple[Message, ...] = ()
    reply: bytes = b""
    recognised: bool = True


_UNRECOGNISED = Decoded(recognised=False)


def _status_only(unique_id: str | None, now: dt.datetime, attrs: dict[str, Any]) -> Position:
    return Position(fix_time=now, valid=False, latitude=0.0, longitude=0.0, outdated=True,
                    attributes=attrs, unique_id=unique_id)


def _command_result(unique_id: str | None, report_type: str, text: str, now: dt.datetime) -> Decoded:
    """A command answer: the CommandResult, and a status record carrying it as
    `result` (as Traccar stores it)."""
    attrs = {"type": str(report_type), "result": text}
    return Decoded((CommandResult(text, unique_id), _status_only(unique_id, now, attrs)))


# --------------------------------------------------------------------------
# Legacy text reports (model-prefixed headers)
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class Layout:
    """Where a legacy report's fields are: date index and latitude index."""

    date: int
    lat: int


def _legacy_layout(items: list[str]) -> Layout | None:
    fields = Fields(";".join(items))
    date = _find_date(fields, 2)
    if date is None or date > 5:
        return None
    lat = _find_coordinates(fields, date + 2)
    return None if lat is None else Layout(date, lat)


def _decode_legacy(fields: Fields, prefix: str, kind: str, ctx: Context) -> Decoded:
    """ST300STT, SA200ALT, ST600UEX ... (header = model family + report type)."""
    ctx.session.prefix = prefix
    if kind == ReportType.COMMAND or fields[1] in ("Res", "Err"):
        return _legacy_command(fields, ctx)
    unique_id = fields[1]
    ctx.session.unique_id = unique_id
    if kind == ReportType.ALIVE:
        return Decoded((Login(unique_id),))
    if kind == ReportType.TRIP:
        driver = fields[len(fields) - 1]
        attrs = {"driverUniqueId": driver} if driver else {}
        return Decoded((_status_only(unique_id, ctx.now, attrs),))
    date = _find_date(fields, 2)
    if date is None or kind not in _LEGACY_TAILS:
        return Decoded()
    if date > 5:
        return Decoded((_legacy_cells_first(fields, date, unique_id),))
    position = _legacy_standard(fields, date, kind, unique_id, ctx)
    reply = b""
    if kind == ReportType.EMERGENCY and ctx.options.ack_emergency:
        reply = f"{prefix}CMD;{unique_id};02;AckEmerg\r".encode("latin-1")
    return Decoded((position,), reply)


def _legacy_command(fields: Fields, ctx: Context) -> Decoded:
    """``ST300CMD;Res;<id>;<version>;<command>[;<answer>...]``: the answer text
    is everything after the device id (version included, as Traccar keeps it)."""
    first = 2 if fields[1] in ("Res", "Err") else 1
    unique_id = fields[first] or None
    if unique_id:
        ctx.session.unique_id = unique_id
    text = ";".join(fields.items[first + 1:])
    return _command_result(unique_id, ReportType.COMMAND, text, ctx.now)


def _legacy_standard(fields: Fields, date: int, kind: str, unique_id: str, ctx: Context) -> Position:
    """Header; id; [model;] version; date; time; [cell...]; lat; lon; speed;
    course; satellites; fix; distance; power; I/O; type-specific fields."""
    lat = _find_coordinates(fields, date + 2)
    if lat is None:
        raise fields.error("coordinates")
    attrs: dict[str, Any] = {"type": kind}
    if date >= 3:
        attrs["versionFw"] = fields[date - 1]
    towers = [_legacy_cell(fields, date + 2)] if lat - date - 2 == 5 else []
    time = _datetime(fields, date)
    if fields[lat + 4]:
        attrs["sat"] = _int(fields, lat + 4, "satellites")
    if fields[lat + 6]:
        distance = _float(fields, lat + 6, "distance")
        if not math.isfinite(distance):
            raise fields.error("distance (out of range)")
        attrs["odometer"] = int(distance)
    if fields[lat + 7]:
        attrs["power"] = _float(fields, lat + 7, "power voltage")
    _io(attrs, fields[lat + 8])
    extra_tower = _LEGACY_TAILS[kind](fields, lat + 9, attrs, ctx.options)
    if extra_tower is not None:
        towers.append(extra_tower)
    return Position(fix_time=time, valid=fields[lat + 5] == "1",
                    latitude=_coordinate(fields, lat, 90), longitude=_coordinate(fields, lat + 1, 180),
                    speed_kn=_speed(fields, lat + 2), course_deg=_course(fields, lat + 3), device_time=time,
                    attributes=attrs, network=_network(towers), unique_id=unique_id)


def _speed(fields: Fields, index: int) -> float:
    return _float(fields, index, "speed") / KMH_PER_KNOT if fields[index] else 0.0


def _course(fields: Fields, index: int) -> float:
    return _float(fields, index, "course") if fields[index] else 0.0


def _legacy_cell(fields: Fields, index: int) -> Tower:
    """Cell id (hex); MCC; MNC; LAC (hex); RX level (-dBm)."""
    return _tower(_int(fields, index, "cell id", 16), _int(fields, index + 3, "LAC", 16),
                  _int(fields, index + 1, "MCC"), _int(fields, index + 2, "MNC"),
                  -abs(_int(fields, index + 4, "RX level")))


def _hbm(fields: Fields, index: int, attrs: dict[str, Any], options: Options) -> int:
    """With HBM on: hour meter (minutes), backup battery (V), message type
    (0 = stored, i.e. archive).  Returns the index after them."""
    if options.hbm < 1:
        return index
    if fields[index]:
        attrs["hours"] = _int(fields, index, "hour meter") * 60_000
    if fields[index + 1]:
        attrs["battery"] = _float(fields, index + 1, "backup voltage")
    if fields[index + 2] == "0":
        attrs["archive"] = True
    return index + 3


def _tail_status(fields: Fields, index: int, attrs: dict[str, Any], options: Options) -> Tower | None:
    """STT: mode; message number; then HBM and the optional fields."""
    if fields[index]:
        attrs["status"] = _int(fields, index, "mode")
    if fields[index + 1]:
        attrs["index"] = _int(fields, index + 1, "message number")
    if options.hbm < 1:
        return None
    index = _hbm(fields, index + 2, attrs, options)
    if options.hbm == 2:
        return _hbm_cell(fields, index)
    _status_extras(fields, index, attrs, options)
    return None


def _hbm_cell(fields: Fields, index: int) -> Tower | None:
    """HBM 2 (observed, ST300 with cell reporting): cell id; MCC; MNC; RX
    level (dBm); LAC, all decimal."""
    if len(fields) >= index + 5 and all(_INT.fullmatch(fields[i]) for i in range(index, index + 5)):
        return _tower(int(fields[index]), int(fields[index + 4]), int(fields[index + 1]),
                      int(fields[index + 2]), int(fields[index + 3]))
    return None


def _status_extras(fields: Fields, index: int, attrs: dict[str, Any], options: Options) -> None:
    """After HBM: [ADC 1-3]; [RPM]; driver id; one field not decoded; then
    temperature sensors ``<sensor id>:<degC>`` (position n gives tempN)."""
    if options.include_adc:
        for n in range(3):
            if _COORD.fullmatch(fields[index + n]) or _INT.fullmatch(fields[index + n]):
                attrs[f"adc{n + 1}"] = float(fields[index + n])
        index += 3
    if options.include_rpm:
        if _INT.fullmatch(fields[index]):
            attrs["rpm"] = int(fields[index])
        index += 1
    if fields[index]:
        attrs["driverUniqueId"] = fields[index]
    if options.include_temp:
        for n, sensor in enumerate(fields.items[index + 2:], start=1):
            parts = sensor.split(":")
            while parts and not parts[-1]:
                parts.pop()
            if parts and _DECIMAL.fullmatch(parts[-1]):
                attrs[f"temp{n}"] = float(parts[-1])


def _tail_alert(fields: Fields, index: int, attrs: dict[str, Any], options: Options) -> Tower | None:
    """ALT: alert id; then HBM."""
    if _INT.fullmatch(fields[index]) and int(fields[index]) in ALERT_ALARMS:
        attrs["alarm"] = ALERT_ALARMS[int(fields[index])]
    _hbm(fields, index + 1, attrs, options)
    return None


def _tail_emergency(fields: Fields, index: int, attrs: dict[str, Any], options: Options) -> Tower | None:
    """EMG: emergency id; then HBM."""
    if _INT.fullmatch(fields[index]) and int(fields[index]) in EMERGENCY_ALARMS:
        attrs["alarm"] = EMERGENCY_ALARMS[int(fields[index])]
    _hbm(fields, index + 1, attrs, options)
    return None


def _tail_event(fields: Fields, index: int, attrs: dict[str, Any], options: Options) -> Tower | None:
    """EVT: event id; then HBM."""
    if _INT.fullmatch(fields[index]):
        attrs["event"] = int(fields[index])
    _hbm(fields, index + 1, attrs, options)
    return None


def _tail_external(fields: Fields, index: int, attrs: dict[str, Any], options: Options) -> Tower | None:
    """UEX: LEN; data (see `_uex_data_end`); checksum; then HBM."""
    end = _uex_data_end(fields.items, index)
    _uex_payload(fields.items[index + 1:end], attrs)
    _hbm(fields, end + 1, attrs, options)
    return None


_LEGACY_TAILS: dict[str, Callable[[Fields, int, dict[str, Any], Options], Tower | None]] = {
    ReportType.STATUS: _tail_status,
    ReportType.ALERT: _tail_alert,
    ReportType.EMERGENCY: _tail_emergency,
    ReportType.EVENT: _tail_event,
    ReportType.EXTERNAL: _tail_external,
}


def _uex_payload(items: list[str], attrs: dict[str, Any]) -> None:
    """External device data: a driver id card reader (``GTSL|..|id|..``), fuel
    sensors (``t_N=<hex degC>``, ``N_N=<hex level>``, ``Q_D=<hex>``; observed),
    a fuel gauge (``CabAVL"CabMensaje,<status>,<tank 1>,<tank 2>...``; observed),
    anything else is kept as `serial` (trimmed, as sent)."""
    serial: list[str] = []
    fuels: list[float] = []
    for item in items:
        text = java_trim(item)
        if text.startswith("GTSL"):
            parts = text.split("|")
            if len(parts) > 4 and parts[4]:
                attrs["driverUniqueId"] = parts[4]
        elif text.startswith("CabAVL"):
            fuels += _cab_avl(text, attrs)
        elif re.fullmatch(r"(t_[0-9]{1,4}|N_[0-9]{1,4}|Q_D)=[0-9A-Fa-f]{1,16}(\.[0-9]*)?", text):
            fuels += _sensor_value(text, attrs)
        else:
            serial.append(item)
    if serial and java_trim(";".join(serial)):
        attrs["serial"] = java_trim(";".join(serial))
    if fuels:
        attrs["fuel"] = float(sum(fuels))


def _sensor_value(text: str, attrs: dict[str, Any]) -> list[float]:
    key, _, value = text.partition("=")
    number = int(value.split(".")[0], 16)
    if key == "Q_D":
        attrs["drivingQuality"] = number
        return []
    name, index = key.split("_")
    if name == "t":
        attrs[f"temp{index}"] = number
        return []
    attrs[f"fuel{index}"] = number
    return [number]


def _cab_avl(text: str, attrs: dict[str, Any]) -> list[float]:
    quoted = text.split('"')
    if len(quoted) < 2:
        return []
    parts = quoted[1].split(",")
    levels = []
    for tank, value in enumerate(parts[2:], start=1):
        if re.fullmatch(r"[0-9]+(\.[0-9]+)?", value):
            attrs[f"fuel{tank}"] = float(value)
            levels.append(float(value))
    return levels


def _legacy_cells_first(fields: Fields, date: int, unique_id: str) -> Position:
    """ST410 / ST419 (observed): header; id; version; ...; serving cell (id;
    MCC; MNC; RX level; LAC; TA); neighbour cells (id; MCC; MNC; LAC; RX level;
    -); battery (V); -; message number; mode; [status bits; ...]; date; time;
    lat; lon; speed; course; satellites; fix."""
    attrs: dict[str, Any] = {"type": ReportType.STATUS.value, "versionFw": fields[2]}
    serving = next((i for i in range(3, date - 5) if _is_serving_cell(fields, i)), None)
    towers: list[dict[str, Any]] = []
    index = date
    if serving is not None:
        towers.append(_tower(int(fields[serving]), int(fields[serving + 4]), int(fields[serving + 1]),
                             int(fields[serving + 2]), int(fields[serving + 3])))
        index = serving + 6
        while index + 6 <= date and all(_INT.fullmatch(fields[i]) for i in range(index, index + 6)):
            towers.append(_tower(int(fields[index]), int(fields[index + 3]), int(fields[index + 1]),
                                 int(fields[index + 2]), int(fields[index + 4])))
            index += 6
    if index < date and _COORD.fullmatch(fields[index]):
        attrs["battery"] = float(fields[index])
        if _INT.fullmatch(fields[index + 2]):
            attrs["index"] = int(fields[index + 2])
        if _INT.fullmatch(fields[index + 3]):
            attrs["status"] = int(fields[index + 3])
        for extra in fields.items[index + 4:date]:
            if len(extra) == 8 and set(extra) <= {"0", "1"}:
                attrs["motion"] = extra[-1] == "1"
    lat = date + 2
    if fields[lat + 4]:
        attrs["sat"] = _int(fields, lat + 4, "satellites")
    time = _datetime(fields, date)
    return Position(fix_time=time, valid=fields[lat + 5] == "1",
                    latitude=_coordinate(fields, lat, 90), longitude=_coordinate(fields, lat + 1, 180),
                    speed_kn=_speed(fields, lat + 2), course_deg=_course(fields, lat + 3), device_time=time,
                    attributes=attrs, network=_network(towers), unique_id=unique_id)


def _is_serving_cell(fields: Fields, index: int) -> bool:
    return (all(_INT.fullmatch(fields[i]) for i in range(index, index + 6))
            and fields[index + 3].startswith("-"))


# --------------------------------------------------------------------------
# ST910 family (personal trackers)
# --------------------------------------------------------------------------

_ST910_ALARMS = {"Emergency": "general", "Alert": "general"}


def _decode_st910(fields: Fields, ctx: Context) -> Decoded:
    """``ST910;<Location|Emergency|Alert|Alive>;id;[version;]date;time;[cell;]
    lat;lon;speed;course;fix;...``: with protocol type 1 (or a cell present)
    the distance follows the fix."""
    unique_id = fields[2]
    if not unique_id:
        return _UNRECOGNISED
    ctx.session.unique_id = unique_id
    ctx.session.prefix = "ST910"
    date = _find_date(fields, 3)
    if date is None:
        return Decoded()
    lat = _find_coordinates(fields, date + 2, (0, 1))
    if lat is None:
        raise fields.error("coordinates")
    attrs: dict[str, Any] = {}
    if fields[1] in _ST910_ALARMS:
        attrs["alarm"] = _ST910_ALARMS[fields[1]]
    if date == 4:
        attrs["versionFw"] = fields[3]
    has_cell = lat > date + 2
    if (ctx.options.protocol_type == 1 or has_cell) and _INT.fullmatch(fields[lat + 5]):
        attrs["odometer"] = int(fields[lat + 5])
    time = _datetime(fields, date)
    return Decoded((Position(
        fix_time=time, valid=fields[lat + 4] == "1", latitude=_coordinate(fields, lat, 90),
        longitude=_coordinate(fields, lat + 1, 180), speed_kn=_speed(fields, lat + 2),
        course_deg=_course(fields, lat + 3), device_time=time, attributes=attrs, unique_id=unique_id),))


# --------------------------------------------------------------------------
# Universal text reports (report map)
# --------------------------------------------------------------------------

_UNIVERSAL_COMMON = ("model", "version", "msg_type", "date", "time", "cell_id", "mcc", "mnc", "lac",
                     "rx_level", "lat", "lon", "speed", "course", "sats", "fix", "in", "out")
"""Report map bits 0-17, shared by every report type, in field order."""


def _decode_universal(fields: Fields, kind: str, ctx: Context) -> Decoded:
    """``<type>;<id>;<report map hex>;<mapped fields>...``."""
    unique_id = fields[1]
    ctx.session.unique_id = unique_id
    ctx.session.prefix = ""
    mask = int(fields[2], 16)
    values: dict[str, str] = {}
    index = 3
    for bit, name in enumerate(_UNIVERSAL_COMMON):
        if mask >> bit & 1:
            values[name] = fields[index]
            index += 1
    attrs: dict[str, Any] = {"type": kind}
    _universal_common(values, attrs)
    index = _universal_specific(fields, index, mask, kind, attrs)
    _assigns(fields.items[index:], mask, attrs)
    return Decoded((_universal_position(values, attrs, unique_id, ctx.now, fields),))


def _universal_common(values: dict[str, str], attrs: dict[str, Any]) -> None:
    if values.get("version"):
        attrs["versionFw"] = values["version"]
    if values.get("msg_type") == "0":
        attrs["archive"] = True
    if _INT.fullmatch(values.get("rx_level", "")):
        attrs["rssi"] = int(values["rx_level"])
    if _INT.fullmatch(values.get("sats", "")):
        attrs["sat"] = int(values["sats"])
    inputs, outputs = values.get("in", ""), values.get("out", "")
    if inputs and set(inputs) <= {"0", "1"}:
        attrs["ignition"] = inputs.endswith("1")
        attrs["input"] = int(inputs, 2)
    if outputs and set(outputs) <= {"0", "1"}:
        attrs["output"] = int(outputs, 2)


def _universal_specific(fields: Fields, index: int, mask: int, kind: str, attrs: dict[str, Any]) -> int:
    """Map bits 18-20: STT mode, report reason, message number; ALT / EMG / EVT
    alert (or event) id, modifier, data.  Returns the index after them."""
    taken = []
    for bit in (18, 19, 20):
        if mask >> bit & 1:
            taken.append(fields[index])
            index += 1
        else:
            taken.append("")
    first, second, third = taken
    if kind == ReportType.STATUS:
        for key, value in (("mode", first), ("reason", second), ("index", third)):
            if _INT.fullmatch(value):
                attrs[key] = int(value)
        return index
    if _INT.fullmatch(first):
        code = int(first)
        if kind == ReportType.EVENT:
            attrs["event"] = code
        table = EMERGENCY_ALARMS if kind == ReportType.EMERGENCY else ALERT_ALARMS
        if kind != ReportType.EVENT and code in table:
            attrs["alarm"] = table[code]
    if second:
        attrs["alertModifier"] = second
    if third:
        attrs["alertData"] = third
    return index


def _assigns(rest: list[str], mask: int, attrs: dict[str, Any]) -> None:
    """The assigned fields after the report's own: with map bit 23, an assign
    map (hex) says which of io1..io32 follow; without it they are assign1..N.
    Fields between the report's own and the assign map are not decoded."""
    if not mask >> 23 & 1:
        for n, value in enumerate(rest, start=1):
            if value:
                attrs[f"assign{n}"] = value
        return
    for position, value in enumerate(rest):
        if not re.fullmatch(r"[0-9A-Fa-f]{1,8}", value):
            continue
        assign_map = int(value, 16)
        following = rest[position + 1:]
        if assign_map.bit_count() == len(following):
            bits = [bit for bit in range(32) if assign_map >> bit & 1]
            for bit, item in zip(bits, following, strict=True):
                if item:
                    attrs[f"io{bit + 1}"] = item
            return


def _universal_position(values: dict[str, str], attrs: dict[str, Any], unique_id: str,
                        now: dt.datetime, fields: Fields) -> Position:
    network = None
    if all(values.get(k) for k in ("cell_id", "mcc", "mnc", "lac")):
        try:
            tower = _tower(int(values["cell_id"], 16), int(values["lac"], 16), int(values["mcc"]),
                           int(values["mnc"]))
        except ValueError:
            raise fields.error("cell") from None
        network = _network([tower])
    time = now
    if "date" in values and "time" in values:
        time = _datetime(Fields(f"{values['date']};{values['time']}"), 0)
    if not (_COORD.fullmatch(values.get("lat", "")) and _COORD.fullmatch(values.get("lon", ""))):
        return Position(fix_time=time, valid=False, latitude=0.0, longitude=0.0, outdated=True,
                        device_time=time, attributes=attrs, network=network, unique_id=unique_id)
    speed = Fields(values.get("speed", ""))
    course = Fields(values.get("course", ""))
    coordinates = Fields(f"{values['lat']};{values['lon']}")
    return Position(fix_time=time, valid=values.get("fix") == "1", latitude=_coordinate(coordinates, 0, 90),
                    longitude=_coordinate(coordinates, 1, 180), speed_kn=_speed(speed, 0),
                    course_deg=_course(course, 0), device_time=time, attributes=attrs, network=network,
                    unique_id=unique_id)


# --------------------------------------------------------------------------
# Text dispatch
# --------------------------------------------------------------------------

def decode_text(text: str, ctx: Context) -> Decoded:
    """One text report (without its delimiter); unknown reports decode to nothing."""
    fields = Fields(text)
    header = fields[0]
    if not _KNOWN_HEADER.fullmatch(header) and (found := _KNOWN_HEADER.search(header)):
        fields = Fields(text[found.start():])   # junk glued before the report (resynchronisation)
        header = fields[0]
    if header == "ST910":
        return _decode_st910(fields, ctx)
    if header in _UNIVERSAL_TYPES and len(fields) > 3 and _HEX.fullmatch(fields[2]) and len(fields[2]) <= 8:
        return _decode_universal(fields, header, ctx)
    if header in (ReportType.RESULT, ReportType.COMMAND) and fields[1]:
        ctx.session.unique_id = fields[1]
        return _command_result(fields[1], header, ";".join(fields.items[2:]), ctx.now)
    if header == ReportType.ALIVE and fields[1]:
        ctx.session.unique_id = fields[1]
        return Decoded((Login(fields[1]),))
    match = _LEGACY_HEADER.fullmatch(header)
    if match and fields[1]:
        return _decode_legacy(fields, match.group(1), match.group(2), ctx)
    return _UNRECOGNISED


# --------------------------------------------------------------------------
# Zip (binary) reports
# --------------------------------------------------------------------------

def _bcd(raw: bytes) -> int:
    digits = raw.hex()
    if not digits.isdigit():
        raise ProtocolError(f"suntech: invalid BCD {digits}", raw)
    return int(digits)


def _bcd_id(raw: bytes, digits: int) -> str:
    text = raw.hex()
    if not text.isdigit():
        raise ProtocolError(f"suntech: invalid BCD device id {text}", raw)
    return text[:digits]


def _zip_decimal(r: Reader, whole: int, fraction_digits: int) -> float:
    """`whole` bytes of binary integer followed by BCD decimals."""
    integer = r.uint(whole)
    fraction = _bcd(r.take(fraction_digits // 2))
    return integer + fraction / 10 ** fraction_digits


def _zip_datetime(raw: bytes) -> dt.datetime:
    try:
        return dt.datetime(2000 + raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], tzinfo=dt.UTC)
    except ValueError:
        raise ProtocolError(f"suntech: invalid zip date-time {raw.hex()}", raw) from None


def decode_zip(frame: bytes, ctx: Context) -> Decoded:
    """Legacy zip report: 0x02 | LEN | content | 0x03 (see the module docstring)."""
    if len(frame) < 4 or frame[0] != STX or frame[-1] != ETX:
        raise ProtocolError("suntech: zip frame without 0x02 ... 0x03", frame[:64])
    if int.from_bytes(frame[1:3], "big") != len(frame) - 4:
        raise ProtocolError("suntech: zip length field does not match the frame", frame[:64])
    r = Reader(frame[3:-1], NAME)
    header = r.uint(1)
    if not 0x10 <= header <= 0x1F:
        raise ProtocolError(f"suntech: zip header {header:#04x} is no report type", frame[:64])
    unique_id = _bcd_id(r.take(5), 9)
    ctx.session.unique_id = unique_id
    if header not in _ZIP_HEADERS:
        return Decoded()
    r.take(3)  # model, software version
    time = _zip_datetime(r.take(6))
    r.take(3)  # LAC + BSIC
    lat, lon = _zip_decimal(r, 1, 6), _zip_decimal(r, 1, 6)
    speed_kmh, course = _zip_decimal(r, 2, 2), _zip_decimal(r, 2, 2)
    flags = r.uint(1)
    attrs: dict[str, Any] = {"sat": flags & 0x1F, "odometer": r.uint(4), "power": _zip_decimal(r, 1, 2)}
    io = r.uint(1)
    for bit, key in enumerate(("ignition", "in1", "in2", "in3", "out1", "out2")):
        attrs[key] = bool(io >> bit & 1)
    _zip_tail(r, ZipHeader(header), attrs)
    position = Position(fix_time=time, valid=bool(flags & 0x80), latitude=-lat if flags & 0x40 else lat,
                        longitude=-lon if flags & 0x20 else lon, speed_kn=speed_kmh / KMH_PER_KNOT,
                        course_deg=course, device_time=time, attributes=attrs, unique_id=unique_id)
    return Decoded((position,))


def _zip_tail(r: Reader, header: ZipHeader, attrs: dict[str, Any]) -> None:
    """Type fields (STT mode + message number; EMG / EVT / ALT id), then the
    HBM block (hour meter minutes, backup V, message type) when present."""
    if header == ZipHeader.STATUS:
        attrs["status"] = r.uint(1)
        attrs["index"] = r.uint(2)
    else:
        code = r.uint(1)
        if header == ZipHeader.EVENT:
            attrs["event"] = code
        table = EMERGENCY_ALARMS if header == ZipHeader.EMERGENCY else ALERT_ALARMS
        if header != ZipHeader.EVENT and code in table:
            attrs["alarm"] = table[code]
    if r.remaining() >= 7:
        attrs["hours"] = r.uint(4) * 60_000
        attrs["battery"] = _zip_decimal(r, 1, 2)
        if r.uint(1) == 0:
            attrs["archive"] = True


_UNIVERSAL_ZIP_WIDTHS = (1, 3, 1, 3, 3, 4, 2, 2, 2, 1, 4, 4, 2, 2, 1, 1, 1, 1)
"""Observed byte widths of report map bits 0-17 in universal zip reports."""


def decode_universal_zip(frame: bytes, ctx: Context) -> Decoded:
    """Universal zip report: header | LEN | id (5 BCD) | map (3) | fields.
    Status (0x81) and alert (0x82) reports are decoded up to the outputs (and
    an alert's id and i-button data); other headers only name the device."""
    if len(frame) < 3 or int.from_bytes(frame[1:3], "big") != len(frame) - 3:
        raise ProtocolError("suntech: universal zip length does not match the frame", frame[:64])
    r = Reader(frame[3:], NAME)
    unique_id = _bcd_id(r.take(5), 10)
    ctx.session.unique_id = unique_id
    if frame[0] not in _UNIVERSAL_ZIP_HEADERS:
        return Decoded()
    mask = r.uint(3)
    raw = {bit: r.take(width) for bit, width in enumerate(_UNIVERSAL_ZIP_WIDTHS) if mask >> bit & 1}
    attrs: dict[str, Any] = {}
    if 1 in raw:
        attrs["versionFw"] = ".".join(str(b) for b in raw[1])
    if raw.get(2) == b"\x00":
        attrs["archive"] = True
    for bit, key in ((9, "rssi"), (14, "sat")):
        if bit in raw:
            attrs[key] = raw[bit][0]
    if 16 in raw:
        attrs["ignition"] = bool(raw[16][0] & 1)
        attrs["input"] = raw[16][0]
    if 17 in raw:
        attrs["output"] = raw[17][0]
    if frame[0] == UniversalZipHeader.ALERT and mask >> 18 & 1:
        _universal_zip_alert(r, mask, attrs)
    return Decoded((_universal_zip_position(raw, attrs, unique_id, ctx.now),))


def _universal_zip_alert(r: Reader, mask: int, attrs: dict[str, Any]) -> None:
    """Alert id (1), modifier (1), alert data (length byte + data): the
    i-button alerts (59 inserted, 60 removed) carry the driver id."""
    code = r.uint(1)
    if code in ALERT_ALARMS:
        attrs["alarm"] = ALERT_ALARMS[code]
    if mask >> 19 & 1:
        r.take(1)
    if mask >> 20 & 1 and r.remaining():
        data = r.take(r.uint(1))
        if code in (59, 60) and data:
            attrs["driverUniqueId"] = data.hex()


def _signed_magnitude(raw: bytes) -> float:
    value = int.from_bytes(raw, "big")
    magnitude = (value & 0x7FFFFFFF) / 1e6
    return -magnitude if value & 0x80000000 else magnitude


def _universal_zip_position(raw: dict[int, bytes], attrs: dict[str, Any], unique_id: str,
                            now: dt.datetime) -> Position:
    time = now
    if 3 in raw and 4 in raw:
        time = _zip_datetime(raw[3] + raw[4])
    network = None
    if all(bit in raw for bit in (5, 6, 7, 8)):
        cell_id, lac = int.from_bytes(raw[5], "big"), int.from_bytes(raw[8], "big")
        if cell_id and lac:
            network = _network([_tower(cell_id, lac, int.from_bytes(raw[6], "big"),
                                       int.from_bytes(raw[7], "big"))])
    if 10 not in raw or 11 not in raw:
        return Position(fix_time=time, valid=False, latitude=0.0, longitude=0.0, outdated=True,
                        device_time=time, attributes=attrs, network=network, unique_id=unique_id)
    speed_kmh = int.from_bytes(raw[12], "big") / 100 if 12 in raw else 0.0
    course = int.from_bytes(raw[13], "big") / 100 if 13 in raw else 0.0
    return Position(fix_time=time, valid=raw.get(15) == b"\x01", latitude=_signed_magnitude(raw[10]),
                    longitude=_signed_magnitude(raw[11]), speed_kn=speed_kmh / KMH_PER_KNOT,
                    course_deg=course, device_time=time, attributes=attrs, network=network,
                    unique_id=unique_id)


# --------------------------------------------------------------------------
# Session, commands and codec
# --------------------------------------------------------------------------

class SuntechSession(StreamSession):
    """One connection's decoder: framer, device id, the model prefix its
    commands use, settings (see StreamSession)."""

    name = NAME
    max_frame_bytes = MAX_FRAME_BYTES

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = Options.from_mapping(options)
        self.prefix = "ST300"
        self._unrecognised = 0   # bytes of consecutive text lines that were no report
        super().__init__()

    def new_framer(self, *, datagram: bool = False) -> Framer:
        return Framer()

    def receive_datagram(self, data: bytes, now: dt.datetime) -> list[Frame]:
        """UDP: one datagram of whole reports (the last may lack its ``\\r``).
        Not framing.decode_datagram: a trailing text report without delimiter
        is decoded (Framer.flush), not refused."""
        framer = self.new_framer(datagram=True)
        framer.feed(data)
        frames = []
        while (raw := framer.flush()) is not None:
            frames.append(self.decode_frame(raw, now))
        return frames

    def _decode_streamed(self, raw: bytes, now: dt.datetime) -> Frame:
        """decode_frame, refusing a stream of over MAX_FRAME_BYTES of text
        lines none of which is a Suntech report (the peer is something else)."""
        decoded = self._decode(raw, now)
        self._unrecognised = 0 if decoded.recognised else self._unrecognised + len(raw) + 1
        if self._unrecognised > MAX_FRAME_BYTES:
            self._unrecognised = 0
            raise ProtocolError(f"suntech: over {MAX_FRAME_BYTES} bytes of text without a report", raw[:64])
        return Frame(messages=decoded.messages, reply=decoded.reply, raw=raw)

    def decode_frame(self, frame: bytes, now: dt.datetime) -> Frame:
        """Decode one frame (a text report with or without its delimiter, or a
        whole zip report); unknown reports give a Frame without messages."""
        frame = bytes(frame)
        decoded = self._decode(frame, now)
        return Frame(messages=decoded.messages, reply=decoded.reply, raw=frame)

    def _decode(self, frame: bytes, now: dt.datetime) -> Decoded:
        # not framing.check_frame_size: a text report may bring its CR LF on top
        if len(frame) > MAX_FRAME_BYTES + 2:
            raise ProtocolError(f"suntech: frame of {len(frame)} bytes exceeds {MAX_FRAME_BYTES}",
                                frame[:64])
        ctx = Context(self.options, now, self)
        if not frame:
            return _UNRECOGNISED
        if not (frame[0] in _TEXT_START or frame[0] == STX or 0x80 <= frame[0] <= 0x8F):
            raise ProtocolError(f"suntech: no frame starts with byte {frame[0]:#04x}", frame[:64])
        if frame[0] == STX:
            return decode_zip(frame, ctx)
        if 0x80 <= frame[0] <= 0x8F:
            return decode_universal_zip(frame, ctx)
        return decode_text(frame.rstrip(b"\r\n").decode("latin-1"), ctx)

    def encode_command(self, command: Command, now: dt.datetime) -> bytes:
        """``<prefix>CMD;<id>;02;<command>\\r`` (see `command_line`)."""
        return command_line(command, self.unique_id, self.prefix)


COMMAND_IDS = {
    "engineStop": "Enable1",     # activate output 1 (engine cut relay)
    "engineResume": "Disable1",
    "rebootDevice": "Reboot",
    "positionSingle": "StatusReq",
}


def command_line(command: Command, unique_id: str | None, prefix: str = "ST300") -> bytes:
    """The command text for a device.  `prefix` is the model family the device
    reports with ("" for universal-protocol devices, which only take `custom`
    commands as whole lines).  A `custom` command's data is the command id
    (e.g. ``Preset``), or a whole command line when it contains ``;``."""
    if not unique_id:
        raise UnsupportedCommand("suntech: the device id is not known yet")
    if command.type == "custom":
        data = str(command.attributes.get("data", ""))
        if not data or not data.isprintable() or not data.isascii():
            raise UnsupportedCommand("suntech: custom command needs printable ASCII in attributes.data")
        if ";" in data:
            return data.encode("ascii") + b"\r"
        command_id = data
    elif command.type in COMMAND_IDS:
        command_id = COMMAND_IDS[command.type]
    else:
        raise UnsupportedCommand(f"suntech: unsupported command type {command.type!r}")
    if not prefix:
        raise UnsupportedCommand("suntech: universal-protocol devices take whole custom command lines")
    return f"{prefix}CMD;{unique_id};02;{command_id}\r".encode("ascii")


CODEC = CodecSpec(
    name=NAME, default_listen=DEFAULT_LISTEN, max_frame_bytes=MAX_FRAME_BYTES,
    command_types=frozenset({*COMMAND_IDS, "custom"}), session_factory=SuntechSession)


__all__ = [
    "ALERT_ALARMS", "CODEC", "COMMAND_IDS", "DEFAULT_LISTEN", "EMERGENCY_ALARMS",
    "MAX_FRAME_BYTES", "NAME", "Framer", "Options", "ReportType", "SuntechSession",
    "UniversalZipHeader", "ZipHeader", "command_line", "decode_text", "decode_universal_zip",
    "decode_zip", "java_trim"
]
