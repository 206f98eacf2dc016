"""User input -> validated store arguments, shared by the REST API and the CLI.

The API hands in a decoded JSON body (Traccar's field names), the CLI a dict it
built from its arguments; both get the same checks and the same messages.  Anything
wrong raises `EditError` (a `ValueError`) whose message starts with the field, e.g.
``attributes.speedLimit: must be a number >= 0 (knots), got 'fast'``; the API answers
it with a 400, the CLI prints it and exits 2.

What is checked here and what the store checks: this module checks shapes, types,
ranges and zone / calendar / rule syntax (through `geofence.formats`,
`geofence.calendar` and `geofence.rules`).  Whether a referenced id (a geofence's
``calendarId``, a device's ``groupId``) exists in the organisation is the store's
business (`NotFoundError`), except in rules, whose references live inside their JSON
definition and are checked by `rule_fields` against the organisation's objects.

Conventions (Traccar's):

- An id field that is absent, null or 0 means "none" (Traccar's Java models send 0).
- ``attributes`` absent or null is ``{}``.  Known keys are validated (units in the
  tables below); a known key set to null is dropped (unset); other keys are kept as
  given, as Traccar keeps any attribute.
- Names are 1..`MAX_NAME` characters after stripping surrounding white space.
"""

from __future__ import annotations

import json
import math
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from geofence.calendar import Calendar, CalendarError
from geofence.formats import feature_from_input
from geofence.rules import RuleError, parse_rule
from geofence.zones import ZoneError
from protocols.values import KMH_PER_KNOT
from tracker.models import DEFAULT_ORGANISATION_ID

__all__ = [
    "DEVICE_SETTINGS",
    "GEOFENCE_ATTRIBUTES",
    "KMH_PER_KNOT",
    "MAX_DESCRIPTION",
    "MAX_NAME",
    "MAX_UNIQUE_ID",
    "CalendarFields",
    "DeviceFields",
    "EditError",
    "GeofenceFields",
    "GroupFields",
    "Permission",
    "RuleFields",
    "attribute_pairs",
    "attributes_field",
    "calendar_data",
    "calendar_fields",
    "device_fields",
    "device_settings",
    "geofence_attributes",
    "geofence_fields",
    "group_fields",
    "knots_from_kmh",
    "name_field",
    "optional_id",
    "permission_fields",
    "rule_fields",
    "rule_name_and_enabled",
    "timezone_name",
    "unique_id_field",
]

MAX_NAME = 200
MAX_DESCRIPTION = 2000
MAX_UNIQUE_ID = 128     # the devices.unique_id column


class EditError(ValueError):
    """Input that cannot be stored; the message starts with the field's name."""


class GeofenceFields(NamedTuple):
    name: str
    feature: dict[str, Any]         # the validated GeoJSON Feature (lon, lat)
    description: str
    calendar_id: int | None
    attributes: dict[str, Any]


class GroupFields(NamedTuple):
    name: str
    attributes: dict[str, Any]


class DeviceFields(NamedTuple):
    name: str
    group_id: int | None
    attributes: dict[str, Any]


class CalendarFields(NamedTuple):
    name: str
    data: dict[str, Any]            # canonical (`Calendar.to_json`)


class RuleFields(NamedTuple):
    name: str
    definition: dict[str, Any]      # canonical (`geofence.rules.Rule.to_json`)
    enabled: bool


class Permission(NamedTuple):
    """A zone or a notification linked to exactly one of a device or a group."""

    kind: str                  # "geofence" or "notification"
    target_id: int             # the zone's or the notification's id
    device_id: int | None
    group_id: int | None


# -- plain fields -----------------------------------------------------------------------

def name_field(value: Any, field: str = "name") -> str:
    """A required display name, 1..MAX_NAME characters once stripped."""
    if not isinstance(value, str):
        raise EditError(f"{field}: required, a text of 1 to {MAX_NAME} characters")
    text = value.strip()
    if not text:
        raise EditError(f"{field}: must not be empty")
    if len(text) > MAX_NAME:
        raise EditError(f"{field}: at most {MAX_NAME} characters, got {len(text)}")
    return text


def _description(value: Any, field: str = "description") -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise EditError(f"{field}: must be a text, got {_describe(value)}")
    if len(value) > MAX_DESCRIPTION:
        raise EditError(f"{field}: at most {MAX_DESCRIPTION} characters, got {len(value)}")
    return value


def optional_id(value: Any, field: str) -> int | None:
    """An object id; absent, null and 0 mean none (Traccar sends 0)."""
    if value is None or (value == 0 and not isinstance(value, bool)):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EditError(f"{field}: must be an id (a positive integer), got {_describe(value)}")
    return value


def _required_id(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise EditError(f"{field}: must be an id (a positive integer), got {_describe(value)}")
    return value


def attributes_field(value: Any, field: str = "attributes") -> dict[str, Any]:
    """A JSON object (absent or null: empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise EditError(f"{field}: must be an object, got {_describe(value)}")
    for key in value:
        if not isinstance(key, str) or not key:
            raise EditError(f"{field}: keys must be non-empty texts, got {_describe(key)}")
    return dict(value)


def _describe(value: Any) -> str:
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "...")
    return type(value).__name__


# -- attribute checks -------------------------------------------------------------------

Check = Callable[[Any, str], Any]


def _number(minimum: float, *, inclusive: bool, unit: str) -> Check:
    relation = ">=" if inclusive else ">"

    def check(value: Any, field: str) -> float | int:
        ok = (not isinstance(value, bool) and isinstance(value, int | float)
              and math.isfinite(value) and (value >= minimum if inclusive else value > minimum))
        if not ok:
            raise EditError(f"{field}: must be a number {relation} {minimum:g} ({unit}), "
                            f"got {_describe(value)}")
        return value
    return check


def _count(minimum: int) -> Check:
    def check(value: Any, field: str) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise EditError(f"{field}: must be an integer >= {minimum}, got {_describe(value)}")
        return value
    return check


GEOFENCE_ATTRIBUTES: Mapping[str, Check] = {
    "speedLimit": _number(0, inclusive=True, unit="knots"),
    "dwellMinutes": _number(0, inclusive=False, unit="minutes"),
    "hysteresisMeters": _number(0, inclusive=True, unit="metres"),
    "hysteresisFixes": _count(1),
    "polylineDistance": _number(0, inclusive=False, unit="metres"),
}
"""A geofence's attributes that mean something to the rule engine (Traccar's names)."""

DEVICE_SETTINGS: Mapping[str, Check] = {
    "speedLimit": _number(0, inclusive=True, unit="knots"),
    "overspeedMinimalDuration": _number(0, inclusive=True, unit="seconds"),
    "motionSpeedThreshold": _number(0, inclusive=True, unit="knots"),
    "movingMinimalDistance": _number(0, inclusive=True, unit="metres"),
    "movingMinimalDuration": _number(0, inclusive=True, unit="seconds"),
    "stoppedMinimalDuration": _number(0, inclusive=True, unit="seconds"),
    "idleMinimalDuration": _number(0, inclusive=True, unit="seconds"),
    "inactivityPeriod": _number(0, inclusive=True, unit="seconds"),
    "statusTimeout": _number(0, inclusive=True, unit="seconds"),
    "hysteresisMeters": _number(0, inclusive=True, unit="metres"),
    "hysteresisFixes": _count(1),
}
"""Device settings and group attributes the rule engine reads (`tracker.rules.SETTINGS`)."""


def _checked(value: Any, checks: Mapping[str, Check], field: str) -> dict[str, Any]:
    attributes = attributes_field(value, field)
    result: dict[str, Any] = {}
    for key, item in attributes.items():
        check = checks.get(key)
        if check is None:
            result[key] = item
        elif item is not None:
            result[key] = check(item, f"{field}.{key}")
    return result


def geofence_attributes(value: Any, field: str = "attributes") -> dict[str, Any]:
    """A geofence's attributes, the `GEOFENCE_ATTRIBUTES` checked."""
    return _checked(value, GEOFENCE_ATTRIBUTES, field)


def device_settings(value: Any, field: str = "attributes") -> dict[str, Any]:
    """A device's or a group's settings attributes, the `DEVICE_SETTINGS` checked."""
    return _checked(value, DEVICE_SETTINGS, field)


def knots_from_kmh(kmh: float, field: str = "speed limit") -> float:
    """A speed limit given in km/h (CLI) as knots (stored, as Traccar does)."""
    _number(0, inclusive=True, unit="km/h")(kmh, field)
    return kmh / KMH_PER_KNOT


def attribute_pairs(pairs: Iterable[str], field: str = "--attribute") -> dict[str, Any]:
    """CLI ``KEY=VALUE`` pairs: numbers and true/false become JSON values, anything else
    stays text; ``KEY=`` (no value) maps KEY to None, which removes it."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise EditError(f"{field}: {pair!r} is not KEY=VALUE")
        if text == "":
            result[key] = None
            continue
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        if not (isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value))):
            value = text
        result[key] = value
    return result


# -- objects -----------------------------------------------------------------------------

_ZONE_INPUTS = ("area", "wkt", "geojson")


def _body(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise EditError(f"body: must be a JSON object, got {_describe(body)}")
    return body


def geofence_fields(body: Any) -> GeofenceFields:
    """A geofence from Traccar's body ``{name, description, area, calendarId,
    attributes}``, with ``wkt`` or ``geojson`` allowed instead of ``area``, or from a
    GeoJSON Feature whose properties carry name, description, calendarId, attributes.

    The zone is given once; a body with several of area / wkt / geojson (the shape
    GET returns, sent back by a client that edits other fields) is accepted when they
    all describe the same zone.
    """
    body = _body(body)
    if body.get("type") == "Feature":
        properties = body.get("properties")
        if properties is None:
            properties = {}
        if not isinstance(properties, Mapping):
            raise EditError(f"properties: must be an object, got {_describe(properties)}")
        prefix = "properties."
        fields, zones = properties, {"geojson": body}
    else:
        prefix = ""
        fields = body
        zones = {key: body[key] for key in _ZONE_INPUTS if body.get(key) is not None}
    name = name_field(fields.get("name"), f"{prefix}name")
    description = _description(fields.get("description"), f"{prefix}description")
    calendar_id = optional_id(fields.get("calendarId"), f"{prefix}calendarId")
    attributes = geofence_attributes(fields.get("attributes"), f"{prefix}attributes")
    if not zones:
        raise EditError("area: required: the zone as one of area (Traccar), wkt or geojson")
    features = {}
    for key, value in zones.items():
        try:
            features[key] = feature_from_input(**{key: value}, attributes=attributes)
        except ZoneError as error:
            raise EditError(f"{key}: {error}") from None
    feature, *others = features.values()
    if any(other != feature for other in others):
        raise EditError(f"{', '.join(features)}: describe different zones; send only one of them")
    return GeofenceFields(name, feature, description, calendar_id, attributes)


def group_fields(body: Any) -> GroupFields:
    """A group from Traccar's body ``{name, groupId, attributes}`` (no nesting)."""
    body = _body(body)
    if optional_id(body.get("groupId"), "groupId") is not None:
        raise EditError("groupId: groups inside groups are not supported; send null or 0")
    return GroupFields(name_field(body.get("name")), device_settings(body.get("attributes")))


def device_fields(body: Any, unique_id: str) -> DeviceFields:
    """What PUT /api/devices/{id} may change: name, groupId (null or 0: none) and
    the settings attributes (replaced as a whole).  ``uniqueId``, when sent, must be
    the device's own (`unique_id`): it cannot be changed here."""
    body = _body(body)
    sent = body.get("uniqueId")
    if sent is not None and sent != unique_id:
        raise EditError(f"uniqueId: cannot be changed (the device's is {unique_id!r})")
    return DeviceFields(name_field(body.get("name")),
                        optional_id(body.get("groupId"), "groupId"),
                        device_settings(body.get("attributes")))


def unique_id_field(value: Any, field: str = "uniqueId") -> str:
    """A new device's unique id (IMEI ...): 1..MAX_UNIQUE_ID characters, no
    whitespace at either end (a device would never identify with it)."""
    if not isinstance(value, str) or not value:
        raise EditError(f"{field}: required, a text of 1 to {MAX_UNIQUE_ID} characters")
    if value != value.strip():
        raise EditError(f"{field}: must not start or end with whitespace")
    if len(value) > MAX_UNIQUE_ID:
        raise EditError(f"{field}: at most {MAX_UNIQUE_ID} characters, got {len(value)}")
    return value


def calendar_data(data: Any, field: str = "data") -> dict[str, Any]:
    """Our weekly schedule (`geofence.calendar`), canonical.  Traccar's base64
    iCalendar text is not understood, and says so."""
    if isinstance(data, str):
        raise EditError(f"{field}: must be a schedule object "
                        '{"intervals": [{"days": [...], "from": "HH:MM", "to": "HH:MM"}]}, '
                        "not text (Traccar's iCalendar is not supported)")
    try:
        return Calendar.from_json(data).to_json()
    except CalendarError as error:
        message = str(error)
        if message.startswith("calendar: "):
            message = message[len("calendar: "):]
            raise EditError(f"{field}: {message}") from None
        raise EditError(f"{field}.{message}") from None


def calendar_fields(body: Any) -> CalendarFields:
    """A calendar from ``{name, data}``; Traccar's ``attributes`` are ignored."""
    body = _body(body)
    if "data" not in body:
        raise EditError("data: required, a schedule object")
    return CalendarFields(name_field(body.get("name")), calendar_data(body["data"]))


_RULE_FIELDS = ("id", "name", "enabled")


def rule_fields(store: Any, user: Any, body: Any, *,
                organisation_id: int | None = None) -> RuleFields:
    """A rule from ``{name, enabled, when, devices, groups, zone, calendar, then}``
    (the definition's keys next to name and enabled; ``id`` is ignored here).

    Blocking: the ids the definition names must exist in the rule's organisation
    (`organisation_id`; default the user's, or the default organisation for the
    CLI), so the store's geofences, calendars, devices and groups are read.
    """
    name, enabled = rule_name_and_enabled(body)
    body = _body(body)
    definition = {key: value for key, value in body.items() if key not in _RULE_FIELDS}
    if organisation_id is None:
        organisation_id = user.organisation_id if user is not None else DEFAULT_ORGANISATION_ID

    def ids(objects: Iterable[Any]) -> frozenset[int]:
        return frozenset(o.id for o in objects if o.organisation_id == organisation_id)

    try:
        rule = parse_rule(definition, rule_id=0, organisation_id=organisation_id, name=name,
                          zone_ids=ids(store.geofences(user)),
                          calendar_ids=ids(store.calendars(user)),
                          device_ids=ids(store.devices(user)),
                          group_ids=ids(store.groups(user)))
    except RuleError as error:
        raise EditError(str(error)) from None
    return RuleFields(name, rule.to_json(), enabled)


def rule_name_and_enabled(body: Any) -> tuple[str, bool]:
    """A rule body's name and enabled flag (default true), checked as `rule_fields`
    checks them first; needs no store."""
    body = _body(body)
    name = name_field(body.get("name"))
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise EditError(f"enabled: must be true or false, got {_describe(enabled)}")
    return name, enabled


def permission_fields(body: Any) -> Permission:
    """Traccar's permission body, the kinds kept here: ``{deviceId, geofenceId}``,
    ``{groupId, geofenceId}``, ``{deviceId, notificationId}`` and
    ``{groupId, notificationId}``."""
    body = _body(body)
    keys = set(body)
    for target_key in ("geofenceId", "notificationId"):
        for owner_key in ("deviceId", "groupId"):
            if keys == {owner_key, target_key}:
                owner_id = _required_id(body[owner_key], owner_key)
                return Permission(target_key.removesuffix("Id"), _required_id(body[target_key], target_key),
                                  owner_id if owner_key == "deviceId" else None,
                                  owner_id if owner_key == "groupId" else None)
    raise EditError(f"unsupported permission {{{', '.join(sorted(map(str, keys)))}}}: send "
                    "deviceId or groupId with geofenceId or notificationId")


def timezone_name(name: Any, field: str = "timezone") -> str:
    """An IANA time zone name known to this system (``Europe/Berlin``, ``UTC``)."""
    if not isinstance(name, str) or name not in zoneinfo.available_timezones():
        raise EditError(f"{field}: not an IANA time zone name (e.g. Europe/Berlin), "
                        f"got {_describe(name)}")
    return name
