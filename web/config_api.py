"""The configuration resources under /api: geofences, permissions, groups, calendars,
rules, and the event reads (``/api/events/{id}``, ``/api/reports/events``).

Traccar's paths and JSON shapes where Traccar has them (`web.jsonshapes` says where
ours differ); the conventions are `web.api`'s and every route is declared once
with `web.routes.route`.  In short:

- Validation is `tracker.editing`'s (shared with the CLI), run by each route's
  pydantic body model (`web.routes.JsonBody.check`): a 400 naming the field.  A
  referenced id (a ``calendarId``, a ``groupId``, a permission's ``deviceId``) that
  does not exist or is not visible is the store's `NotFoundError`: 404 with its
  message.  Deleting what something still uses (a calendar named by a rule) is the
  store's `InUseError`: 409.
- ``/api/<things>/{id}`` of an object that does not exist or belongs to another
  organisation is a 404 "no such resource", exactly like an unknown path.
- POST answers 200 with the created object (as Traccar), PUT 200 with the stored
  object (a full replacement; a body ``id``, when present and not 0, must be the
  path's), DELETE 204.  Every successful write calls ``config_changed``.
- Every store call runs on the thread pool; a handler's reads and its write go in
  one call, so a visibility check and the write cost one hop.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from tracker import editing
from tracker.models import User
from tracker.ports import Store
from web import jsonshapes
from web.routes import (
    GEOJSON_TYPE,
    MAX_IDS,
    ApiError,
    Call,
    CheckedId,
    CheckedIds,
    CheckedObject,
    CheckedText,
    Ints,
    JsonBody,
    OneInt,
    OneTime,
    Query,
    Reply,
    Texts,
    no_such_item,
    refuse,
    route,
)
from web.schemas import (
    CalendarOut,
    EventOut,
    FeatureCollectionOut,
    FeatureOut,
    GeofenceOut,
    GroupOut,
    RuleOut,
)

ALL_EVENTS = "allEvents"   # Traccar's report type meaning "every type"
REPORT_LIMIT = 10_000
_JSON_OR_GEOJSON = ("application/json", "application/geo+json")


# -- helpers (blocking: they run on the thread pool) ---------------------------------------

def _visible_group(store: Store, user: User, group_id: int) -> Any:
    return next((g for g in store.groups(user) if g.id == group_id), None)


def _visible_calendar(store: Store, user: User, calendar_id: int) -> Any:
    return next((c for c in store.calendars(user) if c.id == calendar_id), None)


def _require(found: Any) -> Any:
    if found is None:
        raise no_such_item()
    return found


def _check_filters(store: Store, user: User, device_ids: Sequence[int],
                   group_ids: Sequence[int]) -> None:
    """404 naming the first device or group id the user may not see."""
    if device_ids:
        visible = {d.id for d in store.devices(user)}
        for device_id in device_ids:
            if device_id not in visible:
                raise ApiError(404, f"no device with id {device_id}")
    if group_ids:
        visible = {g.id for g in store.groups(user)}
        for group_id in group_ids:
            if group_id not in visible:
                raise ApiError(404, f"no group with id {group_id}")


# -- geofences ------------------------------------------------------------------------------

class FormatQuery(Query):
    format: Texts = Field(default_factory=list,
                          description="geojson: a GeoJSON answer (also with Accept: "
                                      "application/geo+json); json: Traccar's (the last one counts)")

    @model_validator(mode="after")
    def _known_format(self) -> FormatQuery:
        if self.format and self.format[-1] not in ("geojson", "json"):
            raise refuse(f"format must be geojson or json, not {self.format[-1][:40]!r}")
        return self


class GeofencesQuery(FormatQuery):
    deviceId: OneInt = Field(None, description="the zones linked to this device, directly")
    groupId: OneInt = Field(None, description="the zones linked to this group")


def _wants_geojson(call: Call, query: FormatQuery) -> bool:
    if query.format:
        return query.format[-1] == "geojson"
    accept = (call.request.getHeader(b"accept") or b"").lower()
    return b"application/geo+json" in accept


class GeofenceBody(JsonBody):
    """Traccar's geofence ``{name, description, area, calendarId, attributes}``, with
    ``wkt`` or ``geojson`` allowed instead of ``area``, or a GeoJSON Feature whose
    properties carry name, description, calendarId, attributes
    (`tracker.editing.geofence_fields`)."""

    id: CheckedId = None
    name: CheckedText = None
    description: CheckedText = None
    area: CheckedText = Field(None, description="Traccar's WKT-like text, lat lon order")
    wkt: CheckedText = Field(None, description="WKT, lon lat order")
    geojson: CheckedObject = Field(None, description="a GeoJSON geometry or Feature (lon, lat)")
    calendarId: CheckedId = None
    attributes: CheckedObject = None
    type: CheckedText = Field(None, description="Feature: the body is a GeoJSON Feature")
    geometry: CheckedObject = None
    properties: CheckedObject = None

    @classmethod
    def check(cls, body: dict[str, Any]) -> editing.GeofenceFields:
        return editing.geofence_fields(body)


@route("GET", "/api/geofences", query=GeofencesQuery, response=list[GeofenceOut],
       content_types=_JSON_OR_GEOJSON, errors=(404,))
async def list_geofences(call: Call, query: GeofencesQuery) -> Any:
    """Zones; ``deviceId`` / ``groupId``: those linked (404 when not visible);
    GeoJSON: a FeatureCollection."""
    geojson = _wants_geojson(call, query)
    geofences = await call.context.call(_geofences, call.context.store, call.user,
                                        query.deviceId, query.groupId)
    if geojson:
        return Reply(200, jsonshapes.geofence_collection(geofences), content_type=GEOJSON_TYPE)
    return [jsonshapes.geofence_json(g) for g in geofences]


@route("POST", "/api/geofences", body=GeofenceBody, response=GeofenceOut, changes_config=True,
       errors=(404,))
async def add_geofence(call: Call, body: GeofenceBody) -> Any:
    """Create a zone."""
    geofence = await call.context.call(_add_geofence, call.context.store, call.user, body.checked)
    return jsonshapes.geofence_json(geofence)


@route("GET", "/api/geofences/{id}", query=FormatQuery, response=GeofenceOut,
       content_types=_JSON_OR_GEOJSON, errors=(404,))
async def get_geofence(call: Call, id: int, query: FormatQuery) -> Any:  # noqa: A002
    """One zone (GeoJSON: a Feature)."""
    geojson = _wants_geojson(call, query)
    geofence = _require(await call.context.call(call.context.store.geofence, call.user, id))
    if geojson:
        return Reply(200, jsonshapes.geofence_feature(geofence), content_type=GEOJSON_TYPE)
    return jsonshapes.geofence_json(geofence)


@route("PUT", "/api/geofences/{id}", body=GeofenceBody, response=GeofenceOut,
       changes_config=True, errors=(404,))
async def put_geofence(call: Call, id: int, body: GeofenceBody) -> Any:  # noqa: A002
    """Replace a zone."""
    geofence = await call.context.call(_update_geofence, call.context.store, call.user, id,
                                       body.checked)
    return jsonshapes.geofence_json(geofence)


@route("DELETE", "/api/geofences/{id}", status=204, changes_config=True, errors=(404, 409))
async def delete_geofence(call: Call, id: int) -> Reply:  # noqa: A002
    """Delete a zone; 409 while a rule names it."""
    await call.context.call(_delete_geofence, call.context.store, call.user, id)
    return Reply(204)


def _geofences(store: Store, user: User, device_id: int | None, group_id: int | None) -> Any:
    _check_filters(store, user, [device_id] if device_id is not None else [],
                   [group_id] if group_id is not None else [])
    if device_id is not None and group_id is not None:
        by_group = {g.id for g in store.geofences(user, group_id=group_id)}
        return [g for g in store.geofences(user, device_id=device_id) if g.id in by_group]
    return store.geofences(user, device_id=device_id, group_id=group_id)


def _add_geofence(store: Store, user: User, fields: editing.GeofenceFields) -> Any:
    return store.add_geofence(user, fields.name, fields.feature, description=fields.description,
                              calendar_id=fields.calendar_id, attributes=fields.attributes)


def _update_geofence(store: Store, user: User, geofence_id: int,
                     fields: editing.GeofenceFields) -> Any:
    _require(store.geofence(user, geofence_id))
    return store.update_geofence(user, geofence_id, name=fields.name, geometry=fields.feature,
                                 description=fields.description, calendar_id=fields.calendar_id,
                                 attributes=fields.attributes)


def _delete_geofence(store: Store, user: User, geofence_id: int) -> None:
    _require(store.geofence(user, geofence_id))
    store.delete_geofence(user, geofence_id)


# -- permissions ------------------------------------------------------------------------------

class PermissionBody(JsonBody):
    """Traccar's permission, the kinds kept here: ``{deviceId|groupId, geofenceId}``
    (a zone assigned to a device or a group) and ``{deviceId|groupId,
    notificationId}`` (the caller's own notification, for its ``always: false``).
    Other Traccar permissions (users, drivers ...) are a 400: not kept here."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    deviceId: int | None = None
    groupId: int | None = None
    geofenceId: int | None = None
    notificationId: int | None = None

    @classmethod
    def check(cls, body: dict[str, Any]) -> editing.Permission:
        return editing.permission_fields(body)


@route("POST", "/api/permissions", body=PermissionBody, status=204, changes_config=True,
       errors=(404,))
async def link(call: Call, body: PermissionBody) -> Reply:
    """Link a zone or a notification to a device or a group."""
    await call.context.call(_link, call.context.store, call.user, body.checked, True)
    return Reply(204)


@route("DELETE", "/api/permissions", body=PermissionBody, status=204, changes_config=True,
       errors=(404,))
async def unlink(call: Call, body: PermissionBody) -> Reply:
    """Remove such a link."""
    await call.context.call(_link, call.context.store, call.user, body.checked, False)
    return Reply(204)


def _link(store: Store, user: User, link: editing.Permission, linked: bool) -> None:
    """Add (`linked`) or remove that link."""
    method: Callable[..., None]
    if link.kind == "geofence":
        method = store.link_geofence if linked else store.unlink_geofence
    else:
        method = store.link_notification if linked else store.unlink_notification
    method(user, link.target_id, device_id=link.device_id, group_id=link.group_id)


# -- groups -------------------------------------------------------------------------------------

class GroupBody(JsonBody):
    """Traccar's Group ``{name, groupId: null, attributes}``; attributes are settings
    (speedLimit ...) for the group's devices (`tracker.editing.group_fields`)."""

    id: CheckedId = None
    name: str
    groupId: int | None = Field(None, description="null or 0: groups do not nest here")
    attributes: dict[str, Any] | None = None

    @classmethod
    def check(cls, body: dict[str, Any]) -> editing.GroupFields:
        return editing.group_fields(body)


@route("GET", "/api/groups", response=list[GroupOut])
async def list_groups(call: Call) -> Any:
    """Device groups."""
    groups = await call.context.call(call.context.store.groups, call.user)
    return [jsonshapes.group_json(g) for g in groups]


@route("POST", "/api/groups", body=GroupBody, response=GroupOut, changes_config=True)
async def add_group(call: Call, body: GroupBody) -> Any:
    """Create a group."""
    group = await call.context.call(_add_group, call.context.store, call.user, body.checked)
    return jsonshapes.group_json(group)


@route("GET", "/api/groups/{id}", response=GroupOut, errors=(404,))
async def get_group(call: Call, id: int) -> Any:  # noqa: A002
    """One group."""
    group = await call.context.call(_visible_group, call.context.store, call.user, id)
    return jsonshapes.group_json(_require(group))


@route("PUT", "/api/groups/{id}", body=GroupBody, response=GroupOut, changes_config=True,
       errors=(404,))
async def put_group(call: Call, id: int, body: GroupBody) -> Any:  # noqa: A002
    """Replace a group."""
    group = await call.context.call(_update_group, call.context.store, call.user, id,
                                    body.checked)
    return jsonshapes.group_json(group)


@route("DELETE", "/api/groups/{id}", status=204, changes_config=True, errors=(404,))
async def delete_group(call: Call, id: int) -> Reply:  # noqa: A002
    """Delete a group; its devices are left without one."""
    await call.context.call(_delete_group, call.context.store, call.user, id)
    return Reply(204)


def _add_group(store: Store, user: User, fields: editing.GroupFields) -> Any:
    return store.add_group(user, fields.name, fields.attributes)


def _update_group(store: Store, user: User, group_id: int, fields: editing.GroupFields) -> Any:
    _require(_visible_group(store, user, group_id))
    return store.update_group(user, group_id, name=fields.name, attributes=fields.attributes)


def _delete_group(store: Store, user: User, group_id: int) -> None:
    _require(_visible_group(store, user, group_id))
    store.delete_group(user, group_id)


# -- calendars ------------------------------------------------------------------------------------

class CalendarBody(JsonBody):
    """``{name, data}``: ``data`` is OUR weekly schedule object (`geofence.calendar`),
    not Traccar's base64 iCalendar text; ``attributes`` are ignored."""

    id: CheckedId = None
    name: str
    data: CheckedObject = Field(description='{"intervals": [{"days": [...], "from": "HH:MM", '
                                            '"to": "HH:MM"}]}')
    attributes: CheckedObject = None

    @classmethod
    def check(cls, body: dict[str, Any]) -> editing.CalendarFields:
        return editing.calendar_fields(body)


@route("GET", "/api/calendars", response=list[CalendarOut])
async def list_calendars(call: Call) -> Any:
    """Calendars (weekly schedules)."""
    calendars = await call.context.call(call.context.store.calendars, call.user)
    return [jsonshapes.calendar_json(c) for c in calendars]


@route("POST", "/api/calendars", body=CalendarBody, response=CalendarOut, changes_config=True)
async def add_calendar(call: Call, body: CalendarBody) -> Any:
    """Create a calendar."""
    calendar = await call.context.call(_add_calendar, call.context.store, call.user, body.checked)
    return jsonshapes.calendar_json(calendar)


@route("GET", "/api/calendars/{id}", response=CalendarOut, errors=(404,))
async def get_calendar(call: Call, id: int) -> Any:  # noqa: A002
    """One calendar."""
    calendar = await call.context.call(_visible_calendar, call.context.store, call.user, id)
    return jsonshapes.calendar_json(_require(calendar))


@route("PUT", "/api/calendars/{id}", body=CalendarBody, response=CalendarOut,
       changes_config=True, errors=(404,))
async def put_calendar(call: Call, id: int, body: CalendarBody) -> Any:  # noqa: A002
    """Replace a calendar."""
    calendar = await call.context.call(_update_calendar, call.context.store, call.user, id,
                                       body.checked)
    return jsonshapes.calendar_json(calendar)


@route("DELETE", "/api/calendars/{id}", status=204, changes_config=True, errors=(404, 409))
async def delete_calendar(call: Call, id: int) -> Reply:  # noqa: A002
    """Delete a calendar; 409 while a rule names it."""
    await call.context.call(_delete_calendar, call.context.store, call.user, id)
    return Reply(204)


def _add_calendar(store: Store, user: User, fields: editing.CalendarFields) -> Any:
    return store.add_calendar(user, fields.name, fields.data)


def _update_calendar(store: Store, user: User, calendar_id: int,
                     fields: editing.CalendarFields) -> Any:
    _require(_visible_calendar(store, user, calendar_id))
    return store.update_calendar(user, calendar_id, name=fields.name, data=fields.data)


def _delete_calendar(store: Store, user: User, calendar_id: int) -> None:
    _require(_visible_calendar(store, user, calendar_id))
    store.delete_calendar(user, calendar_id)


# -- rules ------------------------------------------------------------------------------------------

class RuleBody(JsonBody):
    """Ours: ``{name, enabled, when, devices, groups, zone, calendar, then}``.  The
    model checks name and enabled; the definition is checked on the thread pool,
    against the organisation's objects (`tracker.editing.rule_fields`)."""

    id: CheckedId = None
    name: str
    enabled: bool = True
    when: CheckedObject = None
    devices: CheckedIds = None
    groups: CheckedIds = None
    zone: CheckedId = None
    calendar: CheckedId = None
    then: CheckedObject = None

    @classmethod
    def check(cls, body: dict[str, Any]) -> Any:
        return editing.rule_name_and_enabled(body)


@route("GET", "/api/rules", response=list[RuleOut])
async def list_rules(call: Call) -> Any:
    """Ours: user rules."""
    rules = await call.context.call(call.context.store.rules, call.user)
    return [jsonshapes.rule_json(r) for r in rules]


@route("POST", "/api/rules", body=RuleBody, response=RuleOut, changes_config=True)
async def add_rule(call: Call, body: RuleBody) -> Any:
    """Create a rule; the ids it names must be of the user's organisation."""
    rule = await call.context.call(_add_rule, call.context.store, call.user, body.raw)
    return jsonshapes.rule_json(rule)


@route("GET", "/api/rules/{id}", response=RuleOut, errors=(404,))
async def get_rule(call: Call, id: int) -> Any:  # noqa: A002
    """One rule."""
    rule = await call.context.call(call.context.store.rule, call.user, id)
    return jsonshapes.rule_json(_require(rule))


@route("PUT", "/api/rules/{id}", body=RuleBody, response=RuleOut, changes_config=True,
       errors=(404,))
async def put_rule(call: Call, id: int, body: RuleBody) -> Any:  # noqa: A002
    """Replace a rule."""
    rule = await call.context.call(_update_rule, call.context.store, call.user, id, body.raw)
    return jsonshapes.rule_json(rule)


@route("DELETE", "/api/rules/{id}", status=204, changes_config=True, errors=(404,))
async def delete_rule(call: Call, id: int) -> Reply:  # noqa: A002
    """Delete a rule."""
    await call.context.call(_delete_rule, call.context.store, call.user, id)
    return Reply(204)


def _add_rule(store: Store, user: User, body: Mapping[str, Any]) -> Any:
    fields = editing.rule_fields(store, user, body)
    return store.add_rule(user, fields.name, fields.definition, fields.enabled)


def _update_rule(store: Store, user: User, rule_id: int, body: Mapping[str, Any]) -> Any:
    rule = _require(store.rule(user, rule_id))
    fields = editing.rule_fields(store, user, body, organisation_id=rule.organisation_id)
    return store.update_rule(user, rule_id, name=fields.name, definition=fields.definition,
                             enabled=fields.enabled)


def _delete_rule(store: Store, user: User, rule_id: int) -> None:
    _require(store.rule(user, rule_id))
    store.delete_rule(user, rule_id)


# -- events ----------------------------------------------------------------------------------------

@route("GET", "/api/events/{id}", response=EventOut, errors=(404,))
async def get_event(call: Call, id: int) -> Any:  # noqa: A002
    """One event of a visible device (Traccar's Event); /api/reports/events is the list."""
    event = await call.context.call(call.context.store.event, call.user, id)
    return jsonshapes.event_json(_require(event))


class EventsReportQuery(Query):
    start: OneTime = Field(None, alias="from", description="required; ISO 8601 with an offset")
    end: OneTime = Field(None, alias="to", description="required; ISO 8601 with an offset")
    deviceId: Ints = Field(default_factory=list, description="repeatable; none: every visible device")
    groupId: Ints = Field(default_factory=list, description="repeatable; adds the group's devices")
    type: Texts = Field(default_factory=list, description=f"repeatable; {ALL_EVENTS} or none: every type")

    @model_validator(mode="after")
    def _window(self) -> EventsReportQuery:
        if self.start is None or self.end is None:
            raise refuse("from and to are required")
        if self.start > self.end:
            raise refuse("from must not be after to")
        if len(self.deviceId) + len(self.groupId) > MAX_IDS:
            raise refuse(f"at most {MAX_IDS} device and group ids")
        return self


@route("GET", "/api/reports/events", query=EventsReportQuery, response=list[EventOut],
       errors=(404,))
async def events_report(call: Call, query: EventsReportQuery) -> Any:
    """Events oldest first (at most 10,000); a device or group the user may not see
    is a 404.  JSON only (Traccar's Excel variant is not offered)."""
    assert query.start is not None and query.end is not None   # the query model checked them
    types = [] if ALL_EVENTS in query.type else query.type
    report = EventsQuery(query.start, query.end, tuple(sorted(set(query.deviceId))),
                         tuple(sorted(set(query.groupId))), tuple(sorted(set(types))))
    events = await call.context.call(_events_report, call.context.store, call.user, report)
    return [jsonshapes.event_json(e) for e in events]


@dataclasses.dataclass(frozen=True, slots=True)
class EventsQuery:
    start_time: dt.datetime
    end_time: dt.datetime
    device_ids: tuple[int, ...]
    group_ids: tuple[int, ...]
    types: tuple[str, ...]


def _events_report(store: Store, user: User, query: EventsQuery) -> Any:
    _check_filters(store, user, query.device_ids, query.group_ids)
    return store.events_report(user, query.start_time, query.end_time,
                               device_ids=query.device_ids, group_ids=query.group_ids,
                               types=query.types, limit=REPORT_LIMIT)


__all__ = [
    "ALL_EVENTS", "REPORT_LIMIT", "CalendarBody", "EventsReportQuery", "FeatureCollectionOut",
    "FeatureOut", "GeofenceBody", "GeofencesQuery", "GroupBody", "PermissionBody", "RuleBody",
]
