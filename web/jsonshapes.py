"""Traccar's JSON shapes, built from `tracker.models` records.

Field names, nesting and null/zero conventions follow Traccar's REST API
(https://www.traccar.org/api-reference/) as far as `pytraccar` and the Home
Assistant integration read them.  Values that our model does not have (phone,
model, address ...) are sent as Traccar sends an unset field.

Unset references: a geofence's ``calendarId`` is ``null`` when there is none;
devices (``positionId``, ``groupId``, ``calendarId``) and events (``positionId``,
``geofenceId``, ``maintenanceId``) follow Traccar exactly: 0 when there is none.
Input accepts both (`tracker.editing.optional_id`).

Our own shapes where Traccar has none or a different one: a geofence also carries
``geojson`` (its stored GeoJSON Feature, lon/lat) next to Traccar's ``area``;
a calendar's ``data`` is our weekly schedule object (`geofence.calendar`), not
Traccar's base64 iCalendar; rules (``/api/rules``) are ours entirely.

Times are formatted as Traccar's Jackson configuration does:
``2024-01-01T12:00:00.000+00:00`` (UTC, milliseconds, colon in the offset).
Speeds stay in knots, as in Traccar.  Non-finite floats (NaN, infinities) have
no JSON spelling and become ``null``.  `dumps` writes ASCII (other characters as
``\\u`` escapes, so even a lone surrogate in old stored data is valid JSON), and
arrays and objects deeper than `MAX_OUTPUT_DEPTH` as ``null``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from collections.abc import Mapping
from typing import Any

from geofence.formats import traccar_area
from tracker.models import (
    Calendar,
    Device,
    Geofence,
    Group,
    Rule,
    StoredCommand,
    StoredEvent,
    StoredPosition,
    User,
)

ONLINE_WITHIN = dt.timedelta(minutes=5)
"""A device is "online" when its last update is at most this old."""

MAX_OUTPUT_DEPTH = 64
"""Arrays and objects deeper than this in an answer are sent as ``null`` (input is
capped at 32 levels, `web.validation`; only data stored before that limit can be
deeper, and it must not make its whole collection unreadable)."""


def format_time(value: dt.datetime | None) -> str | None:
    """``2024-01-01T12:00:00.000+00:00``; a naive datetime is taken as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+00:00"


def device_status(device: Device, now: dt.datetime) -> str:
    """"online", "offline", or "unknown" when the device never reported."""
    if device.last_update is None:
        return "unknown"
    last = device.last_update
    if last.tzinfo is None:
        last = last.replace(tzinfo=dt.UTC)
    return "online" if now - last <= ONLINE_WITHIN else "offline"


def device_json(device: Device, now: dt.datetime, *,
                attributes: bool = True) -> dict[str, Any]:
    """Traccar's Device: ``positionId``, ``groupId`` and ``calendarId`` are 0 when
    there is none (devices have no calendar here); ``attributes`` False (Traccar's
    ``excludeAttributes``): ``{}``, as Traccar sends an excluded attributes column."""
    return {
        "id": device.id,
        "name": device.name,
        "uniqueId": device.unique_id,
        "status": device_status(device, now),
        "disabled": device.disabled,
        "lastUpdate": format_time(device.last_update),
        "positionId": device.position_id or 0,
        "groupId": device.group_id or 0,
        "calendarId": 0,
        "phone": None,
        "model": None,
        "contact": None,
        "category": None,
        "attributes": dict(device.attributes) if attributes else {},
    }


def group_json(group: Group) -> dict[str, Any]:
    """Traccar's Group; groups do not nest here, so ``groupId`` is always null."""
    return {"id": group.id, "name": group.name, "groupId": None,
            "attributes": dict(group.attributes)}


def geofence_attributes(geofence: Geofence) -> dict[str, Any]:
    """The stored attributes; a corridor also shows Traccar's ``polylineDistance``
    (half its width) when it was not given, so Traccar clients draw it right."""
    attributes = dict(geofence.attributes)
    properties = geofence.geometry.get("properties") or {}
    if "width_m" in properties and "polylineDistance" not in attributes:
        attributes["polylineDistance"] = properties["width_m"] / 2
    return attributes


def geofence_json(geofence: Geofence) -> dict[str, Any]:
    """Traccar's Geofence (``area`` in its lat lon syntax) plus ``geojson``: the
    stored Feature (lon, lat; a circle is a Point with properties.radius_m)."""
    return {
        "id": geofence.id,
        "name": geofence.name,
        "description": geofence.description,
        "area": traccar_area(geofence.geometry),
        "calendarId": geofence.calendar_id,
        "attributes": geofence_attributes(geofence),
        "geojson": _plain(geofence.geometry),
    }


def geofence_feature(geofence: Geofence) -> dict[str, Any]:
    """The geofence as a GeoJSON Feature: ``id`` the geofence id, the stored
    properties (radius_m, width_m) plus name, description, calendarId, attributes."""
    stored = _plain(geofence.geometry)
    properties = dict(stored.get("properties") or {})
    properties.update(name=geofence.name, description=geofence.description,
                      calendarId=geofence.calendar_id, attributes=dict(geofence.attributes))
    return {"type": "Feature", "id": geofence.id, "geometry": stored["geometry"],
            "properties": properties}


def geofence_collection(geofences: list[Geofence]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": [geofence_feature(g) for g in geofences]}


def calendar_json(calendar: Calendar) -> dict[str, Any]:
    """Traccar's Calendar shape, but ``data`` is our schedule object (see above)."""
    return {"id": calendar.id, "name": calendar.name, "data": _plain(calendar.data),
            "attributes": {}}


def rule_json(rule: Rule) -> dict[str, Any]:
    """Ours: id, name, enabled and the definition's keys (when, devices, groups,
    zone, calendar, then) side by side, as POST and PUT take them."""
    return {"id": rule.id, "name": rule.name, "enabled": rule.enabled,
            **_plain(rule.definition)}


def event_json(event: StoredEvent) -> dict[str, Any]:
    """Traccar's Event: ids of what is not there are 0, as Traccar sends them."""
    return {
        "id": event.id,
        "type": event.type,
        "eventTime": format_time(event.event_time),
        "deviceId": event.device_id,
        "positionId": event.position_id or 0,
        "geofenceId": event.geofence_id or 0,
        "maintenanceId": 0,
        "attributes": dict(event.attributes),
    }


def _plain(value: Any, depth: int = 0) -> Any:
    """Nested mappings and sequences as plain dicts and lists (stored JSON may come
    back as read-only mappings or tuples); deeper than `MAX_OUTPUT_DEPTH`: None."""
    if isinstance(value, Mapping | list | tuple) and depth >= MAX_OUTPUT_DEPTH:
        return None
    if isinstance(value, Mapping):
        return {key: _plain(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item, depth + 1) for item in value]
    return value


def position_json(position: StoredPosition) -> dict[str, Any]:
    attributes = dict(position.attributes)
    if position.archive:
        attributes["archive"] = True   # Traccar's key for out-of-order uploads
    return {
        "id": position.id,
        "deviceId": position.device_id,
        "protocol": position.protocol,
        "serverTime": format_time(position.server_time),
        "deviceTime": format_time(position.device_time),
        "fixTime": format_time(position.fix_time),
        "outdated": False,
        "valid": position.valid,
        "latitude": position.latitude,
        "longitude": position.longitude,
        "altitude": position.altitude_m,
        "speed": position.speed_kn,
        "course": position.course_deg,
        "address": None,
        "accuracy": position.accuracy_m,
        "network": dict(position.network) if position.network is not None else None,
        "geofenceIds": None,
        "attributes": attributes,
    }


def command_json(command: StoredCommand) -> dict[str, Any]:
    """Traccar's Command shape, plus where it stands (status, sent, result)."""
    return {
        "id": command.id,
        "deviceId": command.device_id,
        "description": None,
        "type": command.type,
        "textChannel": False,
        "attributes": dict(command.attributes),
        "status": command.status,
        "createdTime": format_time(command.created),
        "sentTime": format_time(command.sent_time),
        "resultTime": format_time(command.result_time),
        "result": command.result,
    }


def user_json(user: User) -> dict[str, Any]:
    """The account as Traccar's /api/session returns it; never any secret."""
    return {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "phone": None,
        "readonly": False,
        "administrator": user.administrator,
        "map": None,
        "latitude": 0.0,
        "longitude": 0.0,
        "zoom": 0,
        "twelveHourFormat": False,
        "coordinateFormat": None,
        "disabled": False,
        "expirationTime": None,
        "deviceLimit": -1,
        "userLimit": 0,
        "deviceReadonly": False,
        "limitCommands": False,
        "disableReports": False,
        "fixedEmail": False,
        "poiLayer": None,
        "attributes": {},
    }


def server_json(version: str) -> dict[str, Any]:
    return {
        "id": 1,
        "registration": False,
        "readonly": False,
        "deviceReadonly": False,
        "limitCommands": False,
        "map": None,
        "bingKey": None,
        "mapUrl": None,
        "poiLayer": None,
        "latitude": 0.0,
        "longitude": 0.0,
        "zoom": 0,
        "twelveHourFormat": False,
        "version": version,
        "forceSettings": False,
        "coordinateFormat": None,
        "attributes": {},
    }


def error_json(status: int, reason: str, message: str) -> dict[str, Any]:
    return {"status": status, "error": reason, "message": message}


def dumps(value: Any) -> bytes:
    """Strict JSON (no NaN) as ASCII bytes (valid UTF-8); odd attribute values are
    converted.  ASCII-safe: a lone surrogate in old stored data becomes the escape
    ``\\ud800``, which any JSON parser reads, instead of failing to encode."""
    return json.dumps(_clean(value), ensure_ascii=True, allow_nan=False,
                      separators=(",", ":")).encode("ascii")


def _clean(value: Any, depth: int = 0) -> Any:
    """A copy of `value` that `json.dumps` accepts.

    Attributes come from device decoders and may hold values JSON has no type
    for: datetimes (formatted like the other times), bytes (hex, as Traccar
    shows raw data), decimals, sets and tuples.  Containers nested deeper than
    `MAX_OUTPUT_DEPTH` become None (so neither this nor json.dumps can run out of
    recursion).
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping | list | tuple | set | frozenset) and depth >= MAX_OUTPUT_DEPTH:
        return None
    if isinstance(value, Mapping):
        return {str(key): _clean(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean(item, depth + 1) for item in value]
    if isinstance(value, dt.datetime):
        return format_time(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, decimal.Decimal):
        return _clean(float(value))
    return str(value)


__all__ = [
    "MAX_OUTPUT_DEPTH", "ONLINE_WITHIN", "calendar_json", "device_json", "device_status", "dumps",
    "error_json", "event_json", "format_time", "geofence_collection", "geofence_feature", "geofence_json",
    "group_json", "position_json", "rule_json", "server_json", "user_json",
]
