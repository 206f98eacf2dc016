"""Traccar's JSON shapes, built from `tracker.models` records.

Field names, nesting and null/zero conventions follow Traccar's REST API
(https://www.traccar.org/api-reference/) as far as `pytraccar` and the Home
Assistant integration read them.  Values that our model does not have (groups,
phone, model, address ...) are sent as Traccar sends an unset field.

Times are formatted as Traccar's Jackson configuration does:
``2024-01-01T12:00:00.000+00:00`` (UTC, milliseconds, colon in the offset).
Speeds stay in knots, as in Traccar.  Non-finite floats (NaN, infinities) have
no JSON spelling and become ``null``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from collections.abc import Mapping
from typing import Any

from tracker.models import Device, StoredCommand, StoredPosition, User

ONLINE_WITHIN = dt.timedelta(minutes=5)
"""A device is "online" when its last update is at most this old."""


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


def device_json(device: Device, now: dt.datetime) -> dict[str, Any]:
    return {
        "id": device.id,
        "name": device.name,
        "uniqueId": device.unique_id,
        "status": device_status(device, now),
        "disabled": device.disabled,
        "lastUpdate": format_time(device.last_update),
        "positionId": device.position_id,
        "groupId": None,
        "phone": None,
        "model": None,
        "contact": None,
        "category": None,
        "attributes": {},
    }


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
    """Strict JSON (no NaN) as UTF-8 bytes; odd attribute values are converted."""
    return json.dumps(_clean(value), ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode("utf-8")


def _clean(value: Any) -> Any:
    """A copy of `value` that `json.dumps` accepts.

    Attributes come from device decoders and may hold values JSON has no type
    for: datetimes (formatted like the other times), bytes (hex, as Traccar
    shows raw data), decimals, sets and tuples.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_clean(item) for item in value]
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
    "ONLINE_WITHIN", "device_json", "device_status", "dumps", "error_json",
    "format_time", "position_json", "server_json", "user_json",
]
