"""OsmAnd / Traccar Client protocol: positions as HTTP requests.

Spec followed: the OsmAnd live-tracking URL convention as Traccar documents it
for its "osmand" port (query parameters ``id``/``deviceid``, ``timestamp``,
``lat``, ``lon``, ``location``, ``speed``, ``bearing``/``heading``,
``altitude``, ``accuracy``, ``hdop``, ``batt``, ``charge``, ``driverUniqueId``,
``alarm``, ``cell``, ``wifi``; any other parameter is kept as an attribute),
and the JSON body that Traccar Client 8+ posts (the Transistor Software
background-geolocation location object: ``device_id`` and ``location`` with
``timestamp``, ``coords``, ``is_moving``, ``odometer``, ``event``, ``battery``,
``activity``, ``mock``, ``extras``).

Transport: HTTP on port 5055 (``http:5055``).  The server's HTTP adapter hands
each request to `decode_frame` as a `protocols.HttpRequest` (method, path and
query, headers, body); there is no byte stream, so `receive_data` and
`receive_datagram` raise `ProtocolError`.  GET and POST are accepted; a POST
body is JSON (``Content-Type: application/json`` or a body starting with ``{``)
or form-encoded parameters, merged with the query's.

Answers: the Frame's `reply` is the response body, b"" (200 OK, empty).  A
request the codec cannot read (bad number, out-of-range coordinates, invalid
device id, malformed JSON, oversize body) raises `ProtocolError`: the adapter
answers 400.  A request without any device id decodes to a Frame without
messages (Traccar stores nothing and answers 400 Bad Request): the adapter
should answer it 400 too.  There is no downlink: commands are unsupported.

Units and time: ``timestamp`` is Unix seconds (milliseconds when larger than
2^31 - 1), or ISO 8601 / ``yyyy-MM-dd HH:mm:ss`` (UTC when no offset is
given); without it the fix time is the time of reception.  Query ``speed`` is
in knots (as Traccar Client sends it), the JSON ``coords.speed`` in m/s;
negative speed, heading or battery level mean "unknown" and are left out.
Altitude and accuracy in metres, ``batt`` in percent, the JSON battery level
as a 0..1 fraction (stored as an integer percent).  A request without
coordinates gives a status record (`outdated`), as do cell/Wi-Fi-only ones.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from protocols.base import (
    CodecSpec,
    Command,
    Frame,
    HttpRequest,
    Position,
    ProtocolError,
    UnsupportedCommand,
)
from protocols.values import MPS_PER_KNOT, cell_tower, network

NAME = "osmand"
DEFAULT_LISTEN = ("http:5055",)
MAX_FRAME_BYTES = 65536
"""Largest request accepted (URL plus body): a Traccar Client batch is a few kB."""

_MAX_ID_LENGTH = 128
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
r"""A decimal number.  Written so that a long digit run splits one way only: the
former ``[0-9]+\.?[0-9]*`` backtracked quadratically on 8 000 digits and a bad tail."""
_INTEGER = re.compile(r" *-?[0-9]{1,10} *")


# --------------------------------------------------------------------------
# Value parsing
# --------------------------------------------------------------------------

def _utf8(text: str) -> bytes:
    """`text` for a ProtocolError's frame bytes (lone surrogates replaced)."""
    return text.encode("utf-8", "replace")


def _number(value: str, what: str) -> float:
    """A finite decimal number; ProtocolError otherwise."""
    text = value.strip()
    if not _NUMBER.fullmatch(text):
        raise ProtocolError(f"osmand: {what} is not a number: {value[:40]!r}", _utf8(value[:80]))
    number = float(text)
    if not math.isfinite(number):
        raise ProtocolError(f"osmand: {what} is out of range: {value[:40]!r}", _utf8(value[:80]))
    return number


def _generic(value: str) -> Any:
    """Any other parameter: a number becomes a float, "true"/"false" a boolean,
    anything else stays text (Traccar's reading of unknown parameters)."""
    text = value.strip()
    if _NUMBER.fullmatch(text) and math.isfinite(float(text)):
        return float(text)
    if value in ("true", "false"):
        return value == "true"
    return value


def parse_time(value: str) -> dt.datetime:
    """Unix seconds or milliseconds, or an ISO 8601 date-time (naive = UTC)."""
    text = value.strip()
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        seconds = float(text)
        if seconds > 2**31 - 1:
            seconds /= 1000
        try:
            return dt.datetime.fromtimestamp(seconds, dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise ProtocolError(f"osmand: timestamp out of range: {text[:40]!r}") from None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ProtocolError(f"osmand: unreadable timestamp {text[:40]!r}", _utf8(text[:80])) from None
    if when.tzinfo is None:
        return when.replace(tzinfo=dt.UTC)
    try:   # "0001-01-01T00:00+01:00" is a valid ISO 8601 time before year 1 in UTC
        return when.astimezone(dt.UTC)
    except OverflowError:
        raise ProtocolError(f"osmand: timestamp out of range: {text[:40]!r}", _utf8(text[:80])) from None


def _device_id(value: Any) -> str:
    text = str(value).strip()
    if not text or len(text) > _MAX_ID_LENGTH or not text.isprintable():
        raise ProtocolError(f"osmand: invalid device id {text[:40]!r}", _utf8(text[:80]))
    return text


def _check_coordinates(latitude: float, longitude: float) -> None:
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise ProtocolError(f"osmand: coordinates out of range: {latitude}, {longitude}")


def _cell(value: str) -> dict[str, Any]:
    """``mcc,mnc,lac,cid[,signal dBm]``."""
    parts = value.split(",")
    if len(parts) not in (4, 5) or not all(_INTEGER.fullmatch(p) for p in parts):
        raise ProtocolError(f"osmand: bad cell {value[:60]!r}", _utf8(value[:80]))
    mcc, mnc, lac, cid, *signal = (int(p) for p in parts)
    return cell_tower(mcc, mnc, lac, cid, signal[0] if signal else None)


def _wifi(value: str) -> dict[str, Any]:
    """``mac,signal dBm`` (the MAC with ``-`` or ``:`` separators)."""
    mac, _, signal = value.partition(",")
    if not re.fullmatch(r" *[0-9A-Fa-f]{2}([-:][0-9A-Fa-f]{2}){5} *", mac) or not _INTEGER.fullmatch(signal):
        raise ProtocolError(f"osmand: bad wifi {value[:60]!r}", _utf8(value[:80]))
    return {"macAddress": mac.strip().replace("-", ":"), "signalStrength": int(signal)}


# --------------------------------------------------------------------------
# Query / form parameters
# --------------------------------------------------------------------------

@dataclasses.dataclass(slots=True)
class Draft:
    """A position being assembled from parameters."""

    unique_id: str | None = None
    time: dt.datetime | None = None
    valid: bool = True
    latitude: float | None = None
    longitude: float | None = None
    speed_kn: float = 0.0
    course_deg: float = 0.0
    altitude_m: float = 0.0
    accuracy_m: float = 0.0
    attributes: dict[str, Any] = dataclasses.field(default_factory=dict)
    cells: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    wifi: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def position(self, now: dt.datetime) -> Position:
        time = self.time or now
        cells = network(self.cells, self.wifi)
        if self.latitude is None or self.longitude is None:
            return Position(fix_time=time, valid=self.valid, latitude=0.0, longitude=0.0, device_time=time,
                            outdated=True, attributes=self.attributes, network=cells,
                            unique_id=self.unique_id)
        _check_coordinates(self.latitude, self.longitude)
        return Position(fix_time=time, valid=self.valid, latitude=self.latitude, longitude=self.longitude,
                        altitude_m=self.altitude_m, speed_kn=self.speed_kn, course_deg=self.course_deg,
                        accuracy_m=self.accuracy_m, device_time=time, attributes=self.attributes,
                        network=cells, unique_id=self.unique_id)


def _location(draft: Draft, value: str) -> None:
    lat, _, lon = value.partition(",")
    draft.latitude, draft.longitude = _number(lat, "latitude"), _number(lon, "longitude")


def _set_speed(draft: Draft, value: str) -> None:
    speed = _number(value, "speed")
    if speed >= 0:
        draft.speed_kn = speed


def _set_course(draft: Draft, value: str) -> None:
    course = _number(value, "bearing")
    if course >= 0:
        draft.course_deg = course % 360


_PARAMETERS = {
    "id": lambda d, v: setattr(d, "unique_id", _device_id(v)),
    "deviceid": lambda d, v: setattr(d, "unique_id", _device_id(v)),
    "valid": lambda d, v: setattr(d, "valid", v.strip().lower() in ("true", "1")),
    "timestamp": lambda d, v: setattr(d, "time", parse_time(v)),
    "lat": lambda d, v: setattr(d, "latitude", _number(v, "latitude")),
    "lon": lambda d, v: setattr(d, "longitude", _number(v, "longitude")),
    "location": _location,
    "cell": lambda d, v: d.cells.append(_cell(v)),
    "wifi": lambda d, v: d.wifi.append(_wifi(v)),
    "speed": _set_speed,
    "bearing": _set_course,
    "heading": _set_course,
    "altitude": lambda d, v: setattr(d, "altitude_m", _number(v, "altitude")),
    "accuracy": lambda d, v: setattr(d, "accuracy_m", max(0.0, _number(v, "accuracy"))),
    "hdop": lambda d, v: d.attributes.__setitem__("hdop", _number(v, "hdop")),
    "batt": lambda d, v: d.attributes.__setitem__("batteryLevel", _number(v, "batt")),
    "charge": lambda d, v: d.attributes.__setitem__("charge", v.strip().lower() == "true"),
    "driverUniqueId": lambda d, v: d.attributes.__setitem__("driverUniqueId", v),
    "alarm": lambda d, v: d.attributes.__setitem__("alarm", v),
}
"""How each known parameter lands in the position; others become attributes."""


def decode_parameters(pairs: Iterable[tuple[str, str]]) -> Draft:
    """Query and form parameters, in order (repeated ``cell``/``wifi`` add up)."""
    draft = Draft()
    for key, value in pairs:
        handler = _PARAMETERS.get(key)
        if handler is not None:
            handler(draft, value)
        elif key:
            draft.attributes[key] = _generic(value)
    return draft


# --------------------------------------------------------------------------
# JSON body (Traccar Client 8+)
# --------------------------------------------------------------------------

def _json_number(value: Any) -> float | None:
    """A JSON number as a finite float (None for anything else)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _scalar(value: Any) -> Any:
    """An `extras` value as an attribute: numbers, booleans and text as they are."""
    if isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value)):
        return value
    return None


def decode_json_location(location: Mapping[str, Any], unique_id: str) -> Draft:
    """One location object: timestamp, coords, is_moving, odometer, event,
    battery, activity, mock, extras."""
    draft = Draft(unique_id=unique_id)
    timestamp = location.get("timestamp")
    if isinstance(timestamp, str):
        draft.time = parse_time(timestamp)
    elif (number := _json_number(timestamp)) is not None and number >= 0:
        draft.time = parse_time(f"{timestamp:.3f}")
    coords = location.get("coords")
    if isinstance(coords, Mapping):
        _json_coords(draft, coords)
    attrs = draft.attributes
    if isinstance(location.get("event"), str):
        attrs["event"] = location["event"]
    if isinstance(location.get("is_moving"), bool):
        attrs["motion"] = location["is_moving"]
    odometer = _json_number(location.get("odometer"))
    if odometer is not None:
        attrs["odometer"] = int(odometer)
    if isinstance(location.get("mock"), bool):
        attrs["mock"] = location["mock"]
    activity = location.get("activity")
    if isinstance(activity, Mapping) and isinstance(activity.get("type"), str):
        attrs["activity"] = activity["type"]
    _json_battery(attrs, location.get("battery"))
    extras = location.get("extras")
    if isinstance(extras, Mapping):
        for key, value in extras.items():
            if _scalar(value) is not None:
                attrs[str(key)] = value
    return draft


def _json_coords(draft: Draft, coords: Mapping[str, Any]) -> None:
    latitude, longitude = _json_number(coords.get("latitude")), _json_number(coords.get("longitude"))
    if latitude is not None and longitude is not None:
        draft.latitude, draft.longitude = latitude, longitude
    speed = _json_number(coords.get("speed"))
    if speed is not None and speed >= 0:
        draft.speed_kn = speed / MPS_PER_KNOT
    heading = _json_number(coords.get("heading"))
    if heading is not None and heading >= 0:
        draft.course_deg = heading % 360
    altitude = _json_number(coords.get("altitude"))
    if altitude is not None:
        draft.altitude_m = altitude
    accuracy = _json_number(coords.get("accuracy"))
    if accuracy is not None and accuracy >= 0:
        draft.accuracy_m = accuracy


def _json_battery(attrs: dict[str, Any], battery: Any) -> None:
    """Level 0..1 (negative: unknown) as integer percent; `charge` only when charging."""
    if not isinstance(battery, Mapping):
        return
    level = _json_number(battery.get("level"))
    if level is not None and level >= 0 and math.isfinite(level * 100):   # 1e307 * 100 is inf
        attrs["batteryLevel"] = round(level * 100)
    if battery.get("is_charging") is True:
        attrs["charge"] = True


def decode_json(body: bytes) -> list[Draft]:
    """``{"device_id": ..., "location": {...} | [{...}, ...]}``."""
    try:
        root = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError("osmand: body is not valid JSON", body[:80]) from None
    if not isinstance(root, Mapping):
        raise ProtocolError("osmand: JSON body is not an object", body[:80])
    raw_id = root.get("device_id")
    if raw_id is None or isinstance(raw_id, (bool, dict, list)):
        return []
    unique_id = _device_id(raw_id)
    locations = root.get("location")
    if isinstance(locations, Mapping):
        locations = [locations]
    if not isinstance(locations, list) or not all(isinstance(x, Mapping) for x in locations):
        raise ProtocolError("osmand: JSON body has no location object", body[:80])
    return [decode_json_location(location, unique_id) for location in locations]


# --------------------------------------------------------------------------
# Session and codec
# --------------------------------------------------------------------------

def _header(request: HttpRequest, name: str) -> str:
    for key, value in (request.headers or {}).items():
        if key.lower() == name:
            return str(value)
    return ""


def _is_json(request: HttpRequest) -> bool:
    return "json" in _header(request, "content-type").lower() or request.body.lstrip()[:1] == b"{"


def decode_request(request: HttpRequest) -> list[Draft]:
    """The positions a request carries (empty when it names no device)."""
    if not isinstance(request, HttpRequest):
        raise ProtocolError("osmand: expected an HTTP request", bytes(request)[:64]
                            if isinstance(request, (bytes, bytearray)) else b"")
    if len(request.url) + len(request.body) > MAX_FRAME_BYTES:
        raise ProtocolError(f"osmand: request over {MAX_FRAME_BYTES} bytes", _utf8(request.url[:64]))
    if request.method.upper() not in ("GET", "POST"):
        raise ProtocolError(f"osmand: method {request.method[:10]!r} not allowed")
    try:
        query = urlsplit(request.url).query
    except ValueError as exc:      # e.g. "//x[": an unbalanced IPv6 bracket in the authority
        raise ProtocolError(f"osmand: unreadable URL {request.url[:40]!r}: {exc}",
                            _utf8(request.url[:80])) from None
    if request.method.upper() == "POST" and request.body and _is_json(request):
        return decode_json(request.body)
    pairs = parse_qsl(query, keep_blank_values=True)
    if request.method.upper() == "POST" and request.body:
        try:
            pairs += parse_qsl(request.body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise ProtocolError("osmand: form body is not UTF-8", request.body[:80]) from None
    draft = decode_parameters(pairs)
    return [draft] if draft.unique_id else []


class OsmandSession:
    """Decoder for requests of one HTTP connection; `unique_id` is the device
    named by the last request."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})
        self.unique_id: str | None = None

    def receive_data(self, data: bytes, now: dt.datetime) -> list[Frame]:
        raise ProtocolError("osmand is carried in HTTP requests", bytes(data[:64]))

    def receive_datagram(self, data: bytes, now: dt.datetime) -> list[Frame]:
        raise ProtocolError("osmand is carried in HTTP requests", bytes(data[:64]))

    def decode_frame(self, frame: HttpRequest | bytes, now: dt.datetime) -> Frame:
        """One request -> its positions; reply b"" (200 OK with an empty body)."""
        if not isinstance(frame, HttpRequest):
            raise ProtocolError("osmand is carried in HTTP requests", bytes(frame[:64]))
        drafts = decode_request(frame)
        positions = tuple(draft.position(now) for draft in drafts)
        if positions:
            self.unique_id = positions[-1].unique_id
        raw = f"{frame.method} {frame.url}".encode("utf-8", "replace") + b"\r\n\r\n" + frame.body
        return Frame(messages=positions, reply=b"", raw=raw)

    def encode_command(self, command: Command, now: dt.datetime) -> bytes:
        raise UnsupportedCommand("osmand: the phone apps take no commands")


CODEC = CodecSpec(
    name=NAME, default_listen=DEFAULT_LISTEN, max_frame_bytes=MAX_FRAME_BYTES,
    command_types=frozenset(), session_factory=OsmandSession)


__all__ = [
    "CODEC", "DEFAULT_LISTEN", "MAX_FRAME_BYTES", "NAME", "Draft", "OsmandSession",
    "decode_json", "decode_json_location", "decode_parameters", "decode_request", "parse_time"
]
