"""Notification resources under /api/notifications: the caller's push tokens, their
preferences, and what was delivered (every attempt).

=====================================================  ==============================
``GET/POST /api/notifications``, ``PUT/DELETE .../{id}``  Traccar's notifications (the
                                                       caller's subscriptions)
``GET /api/notifications/types``                       event types one can subscribe to
``GET /api/notifications/tokens``                      the user's tokens (masked)
``POST /api/notifications/tokens``                     register {channel, platform, token}
``DELETE /api/notifications/tokens/{id}``              forget one (204)
``GET /api/notifications/preferences``                 the user's preferences (defaults
                                                       filled in when none are stored)
``PUT /api/notifications/preferences``                 replace them (400 names the field)
``GET /api/notifications/deliveries[?eventId=N]``      the user's deliveries, newest
                                                       first, each with its attempts
=====================================================  ==============================

Tokens are secrets: answers show ``tokenHint`` (first characters and a hash), never
the token itself.  Everything is the calling user's own: another user's token id is
a 404.
"""

from __future__ import annotations

from typing import Any

from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from tracker.models import PushToken, User
from tracker.push.base import CHANNELS, mask
from tracker.push.preferences import NOTIFICATORS, Preferences, PreferencesError, TraccarNotification
from web.api import (
    ApiError,
    CollectionResource,
    JsonResource,
    Reply,
    int_params,
    json_body,
    no_such_item,
    single_int_param,
)
from web.jsonshapes import format_time

PLATFORMS = ("android", "ios", "web", "harmonyos", "other")
MAX_TOKEN_CHARS = 4096


def token_json(token: PushToken) -> dict[str, Any]:
    return {"id": token.id, "channel": token.channel, "platform": token.platform,
            "tokenHint": mask(token.token), "created": format_time(token.created),
            "disabled": format_time(token.disabled), "disabledReason": token.disabled_reason}


class TokensResource(CollectionResource):
    methods = {b"GET": "get", b"POST": "post"}
    item_methods = {b"DELETE": "delete"}

    async def get(self, request: IRequest, user: User) -> Any:
        tokens = await self.context.call(self.context.store.push_tokens, user.id)
        return [token_json(t) for t in tokens]

    async def post(self, request: IRequest, user: User) -> Any:
        body = json_body(request)
        channel, platform, token = body.get("channel"), body.get("platform", "android"), body.get("token")
        if channel not in CHANNELS:
            raise ApiError(400, f"channel: one of {', '.join(CHANNELS)}")
        if platform not in PLATFORMS:
            raise ApiError(400, f"platform: one of {', '.join(PLATFORMS)}")
        if not isinstance(token, str) or not token.strip() or len(token) > MAX_TOKEN_CHARS:
            raise ApiError(400, f"token: a non-empty string of at most {MAX_TOKEN_CHARS} characters")
        if channel == "webhook" and not user.administrator:
            # A webhook makes the server POST to any URL it can reach, internal ones
            # included: only administrators may point it somewhere.
            raise ApiError(403, "webhooks are registered by administrators only")
        stored = await self.context.call(self.context.store.add_push_token, user.id, channel,
                                         platform, token.strip(), self.context.now())
        return token_json(stored)

    async def delete(self, token_id: int, request: IRequest, user: User) -> Reply:
        if not await self.context.call(self.context.store.delete_push_token, user.id, token_id):
            raise no_such_item()
        return Reply(204)


def preferences_json(preferences: Preferences) -> dict[str, Any]:
    quiet = None
    if preferences.quiet_from_min is not None and preferences.quiet_to_min is not None:
        quiet = {"from": _hhmm(preferences.quiet_from_min), "to": _hhmm(preferences.quiet_to_min)}
    return {"types": sorted(preferences.types), "alarms": sorted(preferences.alarms),
            "devices": sorted(preferences.devices), "channels": sorted(preferences.channels),
            "quietHours": quiet, "timezone": preferences.timezone,
            "language": preferences.language, "criticalOverride": preferences.critical_override}


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


class PreferencesResource(JsonResource):
    methods = {b"GET": "get", b"PUT": "put"}

    async def get(self, request: IRequest, user: User) -> Any:
        stored = await self.context.call(self.context.store.preferences, user.id)
        try:
            return preferences_json(Preferences.from_json(stored))
        except PreferencesError:
            return preferences_json(Preferences())

    async def put(self, request: IRequest, user: User) -> Any:
        body = json_body(request)
        try:
            preferences = Preferences.from_json(body)
        except PreferencesError as error:
            raise ApiError(400, str(error)) from None
        canonical = preferences_json(preferences)
        await self.context.call(self.context.store.set_preferences, user.id, canonical)
        return canonical


class DeliveriesResource(JsonResource):
    methods = {b"GET": "get"}

    async def get(self, request: IRequest, user: User) -> Any:
        event_ids = int_params(request, "eventId")
        if len(event_ids) > 1:
            raise ApiError(400, "eventId: give at most one")
        return await self.context.call(_deliveries, self.context.store, user.id,
                                       event_ids[0] if event_ids else None)


def _deliveries(store, user_id: int, event_id: int | None) -> list[dict[str, Any]]:
    answer = []
    found = store.deliveries_of(user_id, event_id)
    attempts_of = store.delivery_attempts([delivery.id for delivery in found])
    for delivery in found:
        attempts = [{"time": format_time(a["attempt_time"]), "status": a["status"],
                     "error": a["error"]} for a in attempts_of.get(delivery.id, [])]
        answer.append({"id": delivery.id, "eventId": delivery.event_id, "channel": delivery.channel,
                       "tokenHash": delivery.token_hash, "status": delivery.status,
                       "attempts": attempts, "lastError": delivery.last_error,
                       "updated": format_time(delivery.updated)})
    return answer


# -- Traccar's /api/notifications ------------------------------------------------------

EVENT_TYPES = ("alarm", "geofenceEnter", "geofenceExit", "geofenceDwell", "geofenceCrossed",
               "deviceOverspeed", "ignitionOn", "ignitionOff", "deviceMoving", "deviceStopped",
               "deviceIdle", "deviceOnline", "deviceOffline", "deviceUnknown", "deviceInactive",
               "sensorThreshold", "ruleTriggered")


def notification_json(n: TraccarNotification) -> dict[str, Any]:
    return {"id": n.id, "type": n.type, "always": n.always, "notificators": n.notificators,
            "attributes": dict(n.attributes), "calendarId": 0, "commandId": 0}


def _notification_fields(body: dict[str, Any]) -> tuple[str, bool, str, dict[str, Any]]:
    kind, always = body.get("type"), body.get("always", True)
    notificators, attributes = body.get("notificators", ""), body.get("attributes") or {}
    if not isinstance(kind, str) or not kind or len(kind) > 64:
        raise ApiError(400, "type: an event type, e.g. alarm or geofenceEnter")
    if not isinstance(always, bool):
        raise ApiError(400, "always: true or false")
    if not isinstance(notificators, str) or len(notificators) > 200:
        raise ApiError(400, 'notificators: comma-separated names, e.g. "firebase,mail"')
    unknown = {n.strip() for n in notificators.split(",") if n.strip()} - set(NOTIFICATORS) - {"web"}
    if unknown:
        raise ApiError(400, f"notificators: unknown {', '.join(sorted(unknown))}; "
                            f"known: {', '.join(sorted({*NOTIFICATORS, 'web'}))}")
    if not isinstance(attributes, dict):
        raise ApiError(400, "attributes: an object")
    return kind, always, notificators, attributes


class TraccarNotificationsResource(CollectionResource):
    """Traccar's ``/api/notifications`` CRUD on the caller's own subscriptions
    (Traccar links notifications to users with /api/permissions; here the creator
    owns it).  ``always: false`` limits one to the devices and groups linked with
    ``POST /api/permissions {deviceId|groupId, notificationId}``; ``GET
    ?deviceId=`` (``?groupId=``) lists those linked to one.  ``notificators``:
    firebase / traccar (every push channel), mail (e-mail), webhook; web is accepted
    and has no effect (no live page yet)."""

    methods = {b"GET": "get", b"POST": "post"}
    item_methods = {b"PUT": "put", b"DELETE": "delete"}

    async def get(self, request: IRequest, user: User) -> Any:
        device_id = single_int_param(request, "deviceId")
        group_id = single_int_param(request, "groupId")
        found = await self.context.call(lambda: self.context.store.traccar_notifications(
            user.id, device_id=device_id, group_id=group_id))
        return [notification_json(n) for n in found]

    async def post(self, request: IRequest, user: User) -> Any:
        kind, always, notificators, attributes = _notification_fields(json_body(request))
        created = await self.context.call(self.context.store.add_traccar_notification, user.id,
                                          kind, always, notificators, attributes)
        return notification_json(created)

    async def put(self, notification_id: int, request: IRequest, user: User) -> Any:
        kind, always, notificators, attributes = _notification_fields(
            json_body(request, notification_id))
        updated = await self.context.call(
            lambda: self.context.store.update_traccar_notification(
                user.id, notification_id, type=kind, always=always, notificators=notificators,
                attributes=attributes))
        if updated is None:
            raise no_such_item()
        return notification_json(updated)

    async def delete(self, notification_id: int, request: IRequest, user: User) -> Reply:
        if not await self.context.call(self.context.store.delete_traccar_notification, user.id,
                                       notification_id):
            raise no_such_item()
        return Reply(204)


class NotificationTypesResource(JsonResource):
    methods = {b"GET": "get"}

    async def get(self, request: IRequest, user: User) -> Any:
        return [{"type": kind} for kind in EVENT_TYPES]


class NotificationsRoot(Resource):
    """``/api/notifications``: Traccar's collection (and ``/{id}``), plus the named
    children tokens, preferences, deliveries and types."""

    def __init__(self, context) -> None:
        super().__init__()
        self.collection = TraccarNotificationsResource(context)
        self.named = {b"tokens": TokensResource(context), b"preferences": PreferencesResource(context),
                      b"deliveries": DeliveriesResource(context),
                      b"types": NotificationTypesResource(context)}

    def getChild(self, path: bytes, request: IRequest) -> Resource:
        if path in self.named:
            return self.named[path]
        request.postpath.insert(0, request.prepath.pop())   # an id: the collection's item
        return self.collection

    def render(self, request: IRequest):
        return self.collection.render(request)
