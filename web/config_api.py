"""The configuration resources under /api: geofences, permissions, groups, calendars,
rules, and the event reads (``/api/events/{id}``, ``/api/reports/events``).

Traccar's paths and JSON shapes where Traccar has them (`web.jsonshapes` says where
ours differ); the conventions are `web.api`'s.  In short:

- Validation is `tracker.editing`'s (shared with the CLI): its `EditError` is a 400
  naming the field.  A referenced id (a ``calendarId``, a ``groupId``, a
  permission's ``deviceId``) that does not exist or is not visible is the store's
  `NotFoundError`: 404 with its message.  Deleting what something still uses (a
  calendar named by a rule) is the store's `InUseError`: 409.
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
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.web.iweb import IRequest

from tracker import editing
from tracker.models import User
from tracker.ports import Store
from web import jsonshapes
from web.api import (
    GEOJSON_TYPE,
    MAX_IDS,
    ApiError,
    CollectionResource,
    JsonResource,
    Reply,
    int_params,
    json_body,
    no_such_item,
    single_int_param,
    str_params,
    time_param,
)

ALL_EVENTS = "allEvents"   # Traccar's report type meaning "every type"
REPORT_LIMIT = 10_000


# -- helpers (blocking: they run on the thread pool) ---------------------------------------

def _visible_group(store: Store, user: User, group_id: int):
    return next((g for g in store.groups(user) if g.id == group_id), None)


def _visible_calendar(store: Store, user: User, calendar_id: int):
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

def _wants_geojson(request: IRequest) -> bool:
    formats = str_params(request, "format")
    if formats:
        if formats[-1] not in ("geojson", "json"):
            raise ApiError(400, f"format must be geojson or json, not {formats[-1][:40]!r}")
        return formats[-1] == "geojson"
    accept = (request.getHeader(b"accept") or b"").lower()
    return b"application/geo+json" in accept


class GeofencesResource(CollectionResource):
    """GET/POST /api/geofences, GET/PUT/DELETE /api/geofences/{id}.

    GET takes ``deviceId`` or ``groupId`` (the zones linked to that device, directly,
    or to that group; 404 when it is not visible); ``?format=geojson`` or ``Accept:
    application/geo+json`` answers a FeatureCollection (one Feature for an item).
    Bodies: see `tracker.editing.geofence_fields`.
    """

    methods = {b"GET": "get", b"POST": "post"}
    item_methods = {b"GET": "get_one", b"PUT": "put", b"DELETE": "delete"}
    changes_config = True

    async def get(self, request: IRequest, user: User) -> Any:
        device_id = single_int_param(request, "deviceId")
        group_id = single_int_param(request, "groupId")
        geojson = _wants_geojson(request)
        geofences = await self.context.call(_geofences, self.context.store, user, device_id, group_id)
        if geojson:
            return Reply(200, jsonshapes.geofence_collection(geofences), content_type=GEOJSON_TYPE)
        return [jsonshapes.geofence_json(g) for g in geofences]

    async def post(self, request: IRequest, user: User) -> Any:
        fields = editing.geofence_fields(json_body(request))
        geofence = await self.context.call(_add_geofence, self.context.store, user, fields)
        return jsonshapes.geofence_json(geofence)

    async def get_one(self, geofence_id: int, request: IRequest, user: User) -> Any:
        geojson = _wants_geojson(request)
        geofence = _require(await self.context.call(self.context.store.geofence, user, geofence_id))
        if geojson:
            return Reply(200, jsonshapes.geofence_feature(geofence), content_type=GEOJSON_TYPE)
        return jsonshapes.geofence_json(geofence)

    async def put(self, geofence_id: int, request: IRequest, user: User) -> Any:
        fields = editing.geofence_fields(json_body(request, geofence_id))
        geofence = await self.context.call(_update_geofence, self.context.store, user,
                                           geofence_id, fields)
        return jsonshapes.geofence_json(geofence)

    async def delete(self, geofence_id: int, request: IRequest, user: User) -> Reply:
        await self.context.call(_delete_geofence, self.context.store, user, geofence_id)
        return Reply(204)


def _geofences(store: Store, user: User, device_id: int | None, group_id: int | None):
    _check_filters(store, user, [device_id] if device_id is not None else [],
                   [group_id] if group_id is not None else [])
    if device_id is not None and group_id is not None:
        by_group = {g.id for g in store.geofences(user, group_id=group_id)}
        return [g for g in store.geofences(user, device_id=device_id) if g.id in by_group]
    return store.geofences(user, device_id=device_id, group_id=group_id)


def _add_geofence(store: Store, user: User, fields: editing.GeofenceFields):
    return store.add_geofence(user, fields.name, fields.feature, description=fields.description,
                              calendar_id=fields.calendar_id, attributes=fields.attributes)


def _update_geofence(store: Store, user: User, geofence_id: int, fields: editing.GeofenceFields):
    _require(store.geofence(user, geofence_id))
    return store.update_geofence(user, geofence_id, name=fields.name, geometry=fields.feature,
                                 description=fields.description, calendar_id=fields.calendar_id,
                                 attributes=fields.attributes)


def _delete_geofence(store: Store, user: User, geofence_id: int) -> None:
    _require(store.geofence(user, geofence_id))
    store.delete_geofence(user, geofence_id)


# -- permissions ------------------------------------------------------------------------------

class PermissionsResource(JsonResource):
    """POST /api/permissions links, DELETE unlinks; 204.  Traccar's JSON bodies
    ``{deviceId|groupId, geofenceId}`` (a zone assigned to a device or a group) and
    ``{deviceId|groupId, notificationId}`` (the caller's own notification, for its
    ``always: false``).  Other Traccar permissions (users, drivers ...) are a 400:
    not kept here."""

    methods = {b"POST": "post", b"DELETE": "delete"}
    changes_config = True

    async def post(self, request: IRequest, user: User) -> Reply:
        link = editing.permission_fields(json_body(request))
        await self.context.call(_link, self.context.store, user, link, True)
        return Reply(204)

    async def delete(self, request: IRequest, user: User) -> Reply:
        link = editing.permission_fields(json_body(request))
        await self.context.call(_link, self.context.store, user, link, False)
        return Reply(204)


def _link(store: Store, user: User, link: editing.Permission, linked: bool) -> None:
    """Add (`linked`) or remove that link."""
    if link.kind == "geofence":
        method = store.link_geofence if linked else store.unlink_geofence
    else:
        method = store.link_notification if linked else store.unlink_notification
    method(user, link.target_id, device_id=link.device_id, group_id=link.group_id)


# -- groups -------------------------------------------------------------------------------------

class GroupsResource(CollectionResource):
    """GET/POST /api/groups, GET/PUT/DELETE /api/groups/{id}: Traccar's Group
    ``{id, name, groupId: null, attributes}``; attributes are settings (speedLimit ...)
    for the group's devices.  Deleting a group leaves its devices without one."""

    methods = {b"GET": "get", b"POST": "post"}
    item_methods = {b"GET": "get_one", b"PUT": "put", b"DELETE": "delete"}
    changes_config = True

    async def get(self, request: IRequest, user: User) -> Any:
        groups = await self.context.call(self.context.store.groups, user)
        return [jsonshapes.group_json(g) for g in groups]

    async def post(self, request: IRequest, user: User) -> Any:
        fields = editing.group_fields(json_body(request))
        group = await self.context.call(_add_group, self.context.store, user, fields)
        return jsonshapes.group_json(group)

    async def get_one(self, group_id: int, request: IRequest, user: User) -> Any:
        group = await self.context.call(_visible_group, self.context.store, user, group_id)
        return jsonshapes.group_json(_require(group))

    async def put(self, group_id: int, request: IRequest, user: User) -> Any:
        fields = editing.group_fields(json_body(request, group_id))
        group = await self.context.call(_update_group, self.context.store, user, group_id, fields)
        return jsonshapes.group_json(group)

    async def delete(self, group_id: int, request: IRequest, user: User) -> Reply:
        await self.context.call(_delete_group, self.context.store, user, group_id)
        return Reply(204)


def _add_group(store: Store, user: User, fields: editing.GroupFields):
    return store.add_group(user, fields.name, fields.attributes)


def _update_group(store: Store, user: User, group_id: int, fields: editing.GroupFields):
    _require(_visible_group(store, user, group_id))
    return store.update_group(user, group_id, name=fields.name, attributes=fields.attributes)


def _delete_group(store: Store, user: User, group_id: int) -> None:
    _require(_visible_group(store, user, group_id))
    store.delete_group(user, group_id)


# -- calendars ------------------------------------------------------------------------------------

class CalendarsResource(CollectionResource):
    """GET/POST /api/calendars, GET/PUT/DELETE /api/calendars/{id}: ``{id, name,
    data, attributes: {}}`` where ``data`` is OUR weekly schedule object
    (`geofence.calendar`), not Traccar's base64 iCalendar text.  DELETE of a
    calendar a rule names: 409."""

    methods = {b"GET": "get", b"POST": "post"}
    item_methods = {b"GET": "get_one", b"PUT": "put", b"DELETE": "delete"}
    changes_config = True

    async def get(self, request: IRequest, user: User) -> Any:
        calendars = await self.context.call(self.context.store.calendars, user)
        return [jsonshapes.calendar_json(c) for c in calendars]

    async def post(self, request: IRequest, user: User) -> Any:
        fields = editing.calendar_fields(json_body(request))
        calendar = await self.context.call(_add_calendar, self.context.store, user, fields)
        return jsonshapes.calendar_json(calendar)

    async def get_one(self, calendar_id: int, request: IRequest, user: User) -> Any:
        calendar = await self.context.call(_visible_calendar, self.context.store, user, calendar_id)
        return jsonshapes.calendar_json(_require(calendar))

    async def put(self, calendar_id: int, request: IRequest, user: User) -> Any:
        fields = editing.calendar_fields(json_body(request, calendar_id))
        calendar = await self.context.call(_update_calendar, self.context.store, user,
                                           calendar_id, fields)
        return jsonshapes.calendar_json(calendar)

    async def delete(self, calendar_id: int, request: IRequest, user: User) -> Reply:
        await self.context.call(_delete_calendar, self.context.store, user, calendar_id)
        return Reply(204)


def _add_calendar(store: Store, user: User, fields: editing.CalendarFields):
    return store.add_calendar(user, fields.name, fields.data)


def _update_calendar(store: Store, user: User, calendar_id: int, fields: editing.CalendarFields):
    _require(_visible_calendar(store, user, calendar_id))
    return store.update_calendar(user, calendar_id, name=fields.name, data=fields.data)


def _delete_calendar(store: Store, user: User, calendar_id: int) -> None:
    _require(_visible_calendar(store, user, calendar_id))
    store.delete_calendar(user, calendar_id)


# -- rules ------------------------------------------------------------------------------------------

class RulesResource(CollectionResource):
    """GET/POST /api/rules, GET/PUT/DELETE /api/rules/{id} (ours): ``{id, name,
    enabled, when, devices, groups, zone, calendar, then}``; the ids a rule names
    must be of its organisation (`tracker.editing.rule_fields`)."""

    methods = {b"GET": "get", b"POST": "post"}
    item_methods = {b"GET": "get_one", b"PUT": "put", b"DELETE": "delete"}
    changes_config = True

    async def get(self, request: IRequest, user: User) -> Any:
        rules = await self.context.call(self.context.store.rules, user)
        return [jsonshapes.rule_json(r) for r in rules]

    async def post(self, request: IRequest, user: User) -> Any:
        body = json_body(request)
        rule = await self.context.call(_add_rule, self.context.store, user, body)
        return jsonshapes.rule_json(rule)

    async def get_one(self, rule_id: int, request: IRequest, user: User) -> Any:
        rule = await self.context.call(self.context.store.rule, user, rule_id)
        return jsonshapes.rule_json(_require(rule))

    async def put(self, rule_id: int, request: IRequest, user: User) -> Any:
        body = json_body(request, rule_id)
        rule = await self.context.call(_update_rule, self.context.store, user, rule_id, body)
        return jsonshapes.rule_json(rule)

    async def delete(self, rule_id: int, request: IRequest, user: User) -> Reply:
        await self.context.call(_delete_rule, self.context.store, user, rule_id)
        return Reply(204)


def _add_rule(store: Store, user: User, body: Mapping[str, Any]):
    fields = editing.rule_fields(store, user, body)
    return store.add_rule(user, fields.name, fields.definition, fields.enabled)


def _update_rule(store: Store, user: User, rule_id: int, body: Mapping[str, Any]):
    rule = _require(store.rule(user, rule_id))
    fields = editing.rule_fields(store, user, body, organisation_id=rule.organisation_id)
    return store.update_rule(user, rule_id, name=fields.name, definition=fields.definition,
                             enabled=fields.enabled)


def _delete_rule(store: Store, user: User, rule_id: int) -> None:
    _require(store.rule(user, rule_id))
    store.delete_rule(user, rule_id)


# -- events ----------------------------------------------------------------------------------------

class EventsResource(CollectionResource):
    """GET /api/events/{id}: one event of a visible device (Traccar's Event shape).
    There is no list here: /api/reports/events is the list."""

    item_methods = {b"GET": "get_one"}

    async def get_one(self, event_id: int, request: IRequest, user: User) -> Any:
        event = await self.context.call(self.context.store.event, user, event_id)
        return jsonshapes.event_json(_require(event))


class EventsReportResource(JsonResource):
    """GET /api/reports/events?from=&to=[&deviceId=..][&groupId=..][&type=..]:
    events oldest first (at most `REPORT_LIMIT`).

    ``from`` and ``to`` are required (ISO 8601 with an offset, as /api/positions);
    ``deviceId`` and ``groupId`` repeat and add up (none: every visible device); a
    device or group the user may not see is a 404; ``type`` repeats, and
    ``allEvents`` (Traccar's) or no type means every type.  JSON only (Traccar's
    Excel variant is not offered)."""

    methods = {b"GET": "get"}

    async def get(self, request: IRequest, user: User) -> Any:
        start = time_param(request, "from")
        end = time_param(request, "to")
        if start is None or end is None:
            raise ApiError(400, "from and to are required")
        if start > end:
            raise ApiError(400, "from must not be after to")
        device_ids = int_params(request, "deviceId")
        group_ids = int_params(request, "groupId")
        types = str_params(request, "type")
        if ALL_EVENTS in types:
            types = []
        if len(device_ids) + len(group_ids) > MAX_IDS:
            raise ApiError(400, f"at most {MAX_IDS} device and group ids")
        query = EventsQuery(start, end, tuple(sorted(set(device_ids))),
                            tuple(sorted(set(group_ids))), tuple(sorted(set(types))))
        events = await self.context.call(_events_report, self.context.store, user, query)
        return [jsonshapes.event_json(e) for e in events]


@dataclasses.dataclass(frozen=True, slots=True)
class EventsQuery:
    start_time: dt.datetime
    end_time: dt.datetime
    device_ids: tuple[int, ...]
    group_ids: tuple[int, ...]
    types: tuple[str, ...]


def _events_report(store: Store, user: User, query: EventsQuery):
    _check_filters(store, user, query.device_ids, query.group_ids)
    return store.events_report(user, query.start_time, query.end_time,
                               device_ids=query.device_ids, group_ids=query.group_ids,
                               types=query.types, limit=REPORT_LIMIT)


__all__ = [
    "ALL_EVENTS", "CalendarsResource", "EventsReportResource", "EventsResource",
    "GeofencesResource", "GroupsResource", "PermissionsResource", "REPORT_LIMIT",
    "RulesResource",
]
