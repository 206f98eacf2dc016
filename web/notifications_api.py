"""Notification resources under /api/notifications: the caller's push targets, their
preferences, and what was delivered (every attempt).

=====================================================  ==============================
``GET/POST /api/notifications``, ``PUT/DELETE .../{id}``  Traccar's notifications (the
                                                       caller's subscriptions)
``GET /api/notifications/types``                       event types one can subscribe to
``GET /api/notifications/tokens``                      the user's targets (masked), each
                                                       with ``confirmed`` true/false
``POST /api/notifications/tokens``                     register {channel, platform, token}
``POST /api/notifications/tokens/{id}/confirm``        confirm an e-mail target with
                                                       {"code": "..."} from the mail
``GET /api/notifications/tokens/{id}/confirm?code=``   the same, as the mail's link
``DELETE /api/notifications/tokens/{id}``              forget one (204)
``GET /api/notifications/preferences``                 the user's preferences (defaults
                                                       filled in when none are stored)
``PUT /api/notifications/preferences``                 replace them (400 names the field)
``GET /api/notifications/deliveries[?eventId=N]``      the user's deliveries, newest
                                                       first, each with its attempts
=====================================================  ==============================

Tokens are secrets: answers show ``tokenHint`` (first characters and a hash), never
the token itself.  Everything is the calling user's own: another user's token id is
a 404 (confirming included).

Registering (``POST /api/notifications/tokens``):

- A (channel, token) that another user (of any organisation) holds is refused with
  409 ``this <channel> target is already registered by another user``, which does
  not say who; it is never moved, so its holder keeps getting alarms.  The one
  exception is a dead claim: an e-mail target that was never confirmed and whose
  code expired or was voided is replaced (`register_push_token` in
  `tracker.storage.notifications`).
- The same user registering it again gets that target back (enabled again if a
  gateway had pruned it).
- App tokens (fcm, jpush, huawei, xiaomi, oppo, vivo, apns) and webhooks
  (administrators only: 403 for others) are confirmed at registration.
- E-mail (channel ``email``, the token an address) is stored unconfirmed and gets
  nothing until confirmed (`tracker.push.confirm`): a fresh 8-digit code is mailed
  to the address through the configured e-mail channel (on the push thread pool,
  never blocking the reactor), with a link to ``/api/notifications/tokens/{id}/
  confirm?code=...`` under ``[push] public_url``.  The answer is the target with
  ``confirmed: false`` and ``confirmationSent: true``.  Registering an unconfirmed
  address again mails a new code (the old one stops working).  If the mail cannot
  be sent the target is withdrawn: 400 when the mail server refused the address,
  502 otherwise.  At most 10 confirmation mails per user and hour (429 with
  ``Retry-After``).  **When no e-mail channel is configured** (no ``[push.email]``
  table), registering an e-mail target is a 400 saying so.  An operator adding an
  address with ``tracker notification token-add`` vouches for it: confirmed at once.

Confirming: the owner sends the code (``POST .../{id}/confirm``, or opens the link
while logged in, Basic or cookie).  200 with the target (``confirmed: true``); a
target already confirmed is simply returned.  A wrong code is a 400 saying how many
tries are left; the fifth wrong one voids the code, and a voided or expired (24 h)
code is a 410: register the address again for a new one.

Every route is declared once with `web.routes.route`; the e-mail confirmation
mailer is ``ApiContext.confirmations`` (None: no e-mail channel configured).
"""


from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from tracker.models import PushToken
from tracker.ports import NotFoundError, Store
from tracker.push.base import CHANNELS, INVALID_TOKEN, SENT, mask
from tracker.push.confirm import (
    MAX_CODE_CHARS,
    ConfirmationRefused,
    PushTargetTaken,
    TooManyMails,
    is_confirmed,
    needs_confirmation,
    new_code,
)
from tracker.push.email import looks_like_address
from tracker.push.preferences import NOTIFICATORS, Preferences, PreferencesError, TraccarNotification
from web.jsonshapes import format_time
from web.routes import (
    ApiError,
    Call,
    CheckedId,
    CheckedObject,
    CheckedText,
    Ints,
    JsonBody,
    OneInt,
    Query,
    Reply,
    Texts,
    no_such_item,
    refuse,
    route,
)
from web.schemas import (
    DeliveryOut,
    NotificationOut,
    NotificationTypeOut,
    PreferencesOut,
    TokenOut,
)

PLATFORMS = ("android", "ios", "web", "harmonyos", "other")
MAX_TOKEN_CHARS = 4096


def token_json(token: PushToken) -> dict[str, Any]:
    return {"id": token.id, "channel": token.channel, "platform": token.platform,
            "tokenHint": mask(token.token), "created": format_time(token.created),
            "disabled": format_time(token.disabled), "disabledReason": token.disabled_reason,
            "confirmed": is_confirmed(token)}


# -- push targets ------------------------------------------------------------------------

@route("GET", "/api/notifications/tokens", response=list[TokenOut])
async def list_tokens(call: Call) -> Any:
    """The user's push targets (masked), each with ``confirmed``."""
    tokens = await call.context.call(call.context.store.push_tokens, call.user.id)
    return [token_json(t) for t in tokens]


class TokenBody(JsonBody):
    """A push target: ``channel``, ``platform`` (default android) and ``token`` (the
    app's token, a webhook URL, or an e-mail address)."""

    channel: CheckedText = Field(None, json_schema_extra={"enum": list(CHANNELS)})
    platform: CheckedText = Field("android", json_schema_extra={"enum": list(PLATFORMS)})
    token: CheckedText = Field(None, json_schema_extra={"maxLength": MAX_TOKEN_CHARS})

    @classmethod
    def check(cls, body: dict[str, Any]) -> tuple[str, str, str]:
        channel, platform, token = body.get("channel"), body.get("platform", "android"), body.get("token")
        if channel not in CHANNELS:
            raise ValueError(f"channel: one of {', '.join(CHANNELS)}")
        if platform not in PLATFORMS:
            raise ValueError(f"platform: one of {', '.join(PLATFORMS)}")
        if not isinstance(token, str) or not token.strip() or len(token) > MAX_TOKEN_CHARS:
            raise ValueError(f"token: a non-empty string of at most {MAX_TOKEN_CHARS} characters")
        return channel, platform, token.strip()


@route("POST", "/api/notifications/tokens", body=TokenBody, response=TokenOut,
       errors=(403, 409, 429, 502))
async def add_token(call: Call, body: TokenBody) -> Any:
    """Register a push target; an e-mail address is stored unconfirmed and mailed a code."""
    channel, platform, token = body.checked
    user = call.user
    if channel == "webhook" and not user.administrator:
        # A webhook makes the server POST to any URL it can reach, internal ones
        # included: only administrators may point it somewhere.
        raise ApiError(403, "webhooks are registered by administrators only")
    if not needs_confirmation(channel):
        stored = await _register(call, channel, platform, token, None)
        return token_json(stored.token)
    return await _register_email(call, platform, token)


async def _register_email(call: Call, platform: str, address: str) -> Any:
    """An e-mail target: stored unconfirmed, its code mailed; withdrawn again
    when the mail cannot be sent (nobody could confirm it)."""
    context, user = call.context, call.user
    if not looks_like_address(address):
        raise ApiError(400, "token: an e-mail address (local@domain), without spaces")
    mailer = context.confirmations
    if mailer is None:
        raise ApiError(400, "e-mail targets cannot be registered: this server has no e-mail "
                            "channel configured ([push.email]), so no confirmation code can "
                            "be sent")
    try:
        mailer.allow(user.id)
    except TooManyMails as error:
        raise ApiError(429, str(error), {"Retry-After": str(error.retry_after_s)}) from None
    code = new_code()
    try:
        registration = await _register(call, "email", platform, address, code)
    except BaseException:
        mailer.refund(user.id)
        raise
    target = registration.token
    if not registration.code_issued:      # already confirmed: nothing to send
        mailer.refund(user.id)
        return token_json(target)
    try:
        result = await mailer.send(target.token, target.id, code)
    except Exception:
        await context.call(context.store.withdraw_push_token, user.id, target.id)
        raise
    if result.status != SENT:
        await context.call(context.store.withdraw_push_token, user.id, target.id)
        if result.status == INVALID_TOKEN:
            raise ApiError(400, f"token: the mail server refused this address "
                                f"({result.error}); nothing was registered")
        raise ApiError(502, f"the confirmation mail could not be sent ({result.error}); "
                            "nothing was registered, try again later")
    return {**token_json(target), "confirmationSent": True}


async def _register(call: Call, channel: str, platform: str, token: str, code: str | None) -> Any:
    context, user = call.context, call.user
    store = context.store
    try:
        return await context.call(
            lambda: store.register_push_token(user.id, channel, platform, token,
                                              context.now(), confirm_code=code))
    except PushTargetTaken as error:
        raise ApiError(409, f"{error}; it cannot be registered again") from None


class ConfirmBody(JsonBody):
    code: CheckedText = Field(None, description="the confirmation code from the mail")


class ConfirmQuery(Query):
    code: Texts = Field(default_factory=list, description="the confirmation code from the mail")


@route("POST", "/api/notifications/tokens/{id}/confirm", body=ConfirmBody, response=TokenOut,
       errors=(404, 410))
async def confirm_token(call: Call, id: int, body: ConfirmBody) -> Any:  # noqa: A002
    """Confirm an e-mail target with the code from the mail."""
    return await _confirm(call, id, body.raw.get("code"))


@route("GET", "/api/notifications/tokens/{id}/confirm", query=ConfirmQuery, response=TokenOut,
       errors=(404, 410))
async def confirm_token_link(call: Call, id: int, query: ConfirmQuery) -> Any:  # noqa: A002
    """The same, as the mail's link (``?code=``)."""
    return await _confirm(call, id, query.code[0] if len(query.code) == 1 else None)


async def _confirm(call: Call, token_id: int, code: Any) -> Any:
    if not isinstance(code, str) or not code.strip() or len(code) > MAX_CODE_CHARS:
        raise ApiError(400, f"code: the confirmation code from the mail (a string of at most "
                            f"{MAX_CODE_CHARS} characters)")
    context = call.context
    try:
        stored = await context.call(
            context.store.confirm_push_token, call.user.id, token_id, code, context.now())
    except NotFoundError:
        raise no_such_item() from None
    except ConfirmationRefused as refused:
        raise ApiError(400 if refused.reason == "wrong" else 410, f"code: {refused}") from None
    return token_json(stored)


@route("DELETE", "/api/notifications/tokens/{id}", status=204, errors=(404,))
async def delete_token(call: Call, id: int) -> Reply:  # noqa: A002
    """Forget one push target."""
    if not await call.context.call(call.context.store.delete_push_token, call.user.id, id):
        raise no_such_item()
    return Reply(204)


# -- preferences ---------------------------------------------------------------------------

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


@route("GET", "/api/notifications/preferences", response=PreferencesOut)
async def get_preferences(call: Call) -> Any:
    """The user's preferences (defaults filled in when none are stored)."""
    stored = await call.context.call(call.context.store.preferences, call.user.id)
    try:
        return preferences_json(Preferences.from_json(stored))
    except PreferencesError:
        return preferences_json(Preferences())


class PreferencesBody(JsonBody):
    """`tracker.push.preferences`: what, from which devices, where, and when not."""

    types: CheckedText = Field(None, json_schema_extra={"type": "array", "items": {"type": "string"}})
    alarms: CheckedText = Field(None, json_schema_extra={"type": "array", "items": {"type": "string"}})
    devices: CheckedText = Field(None, json_schema_extra={"type": "array",
                                                          "items": {"type": "integer"}})
    channels: CheckedText = Field(None, json_schema_extra={"type": "array",
                                                           "items": {"type": "string"}})
    quietHours: CheckedObject = Field(None, description='{"from": "HH:MM", "to": "HH:MM"} or null')
    timezone: CheckedText = Field(None, description="IANA name; default UTC")
    language: CheckedText = Field(None, description="en (default) or zh")
    criticalOverride: CheckedText = Field(None, json_schema_extra={"type": "boolean"})

    @classmethod
    def check(cls, body: dict[str, Any]) -> Preferences:
        return Preferences.from_json(body)


@route("PUT", "/api/notifications/preferences", body=PreferencesBody, response=PreferencesOut)
async def put_preferences(call: Call, body: PreferencesBody) -> Any:
    """Replace the user's preferences (400 names the field)."""
    canonical = preferences_json(body.checked)
    await call.context.call(call.context.store.set_preferences, call.user.id, canonical)
    return canonical


# -- deliveries ------------------------------------------------------------------------------

class DeliveriesQuery(Query):
    eventId: Ints = Field(default_factory=list, description="only this event's (at most one)")

    @model_validator(mode="after")
    def _one(self) -> DeliveriesQuery:
        if len(self.eventId) > 1:
            raise refuse("eventId: give at most one")
        return self


@route("GET", "/api/notifications/deliveries", query=DeliveriesQuery, response=list[DeliveryOut])
async def list_deliveries(call: Call, query: DeliveriesQuery) -> Any:
    """The user's deliveries, newest first, each with its attempts."""
    return await call.context.call(_deliveries, call.context.store, call.user.id,
                                   query.eventId[0] if query.eventId else None)


def _deliveries(store: Store, user_id: int, event_id: int | None) -> list[dict[str, Any]]:
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


class NotificationBody(JsonBody):
    """Traccar's notification: ``type`` (an event type), ``always`` (false: only the
    devices and groups linked with /api/permissions), ``notificators``
    (comma-separated: firebase / traccar = every push channel, mail, webhook; web is
    accepted and has no effect), ``attributes``."""

    id: CheckedId = None
    type: CheckedText = Field(None, json_schema_extra={"enum": list(EVENT_TYPES)})
    always: CheckedText = Field(True, json_schema_extra={"type": "boolean"})
    notificators: CheckedText = ""
    attributes: CheckedObject = None

    @classmethod
    def check(cls, body: dict[str, Any]) -> tuple[str, bool, str, dict[str, Any]]:
        kind, always = body.get("type"), body.get("always", True)
        notificators, attributes = body.get("notificators", ""), body.get("attributes") or {}
        if not isinstance(kind, str) or not kind or len(kind) > 64:
            raise ValueError("type: an event type, e.g. alarm or geofenceEnter")
        if not isinstance(always, bool):
            raise ValueError("always: true or false")
        if not isinstance(notificators, str) or len(notificators) > 200:
            raise ValueError('notificators: comma-separated names, e.g. "firebase,mail"')
        unknown = {n.strip() for n in notificators.split(",") if n.strip()} - set(NOTIFICATORS) - {"web"}
        if unknown:
            raise ValueError(f"notificators: unknown {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted({*NOTIFICATORS, 'web'}))}")
        if not isinstance(attributes, dict):
            raise ValueError("attributes: an object")
        return kind, always, notificators, attributes


class NotificationsQuery(Query):
    deviceId: OneInt = Field(None, description="those linked to this device")
    groupId: OneInt = Field(None, description="those linked to this group")


@route("GET", "/api/notifications", query=NotificationsQuery, response=list[NotificationOut])
async def list_notifications(call: Call, query: NotificationsQuery) -> Any:
    """Traccar's notifications: the caller's own subscriptions (the creator owns one)."""
    context, user = call.context, call.user
    found = await context.call(lambda: context.store.traccar_notifications(
        user.id, device_id=query.deviceId, group_id=query.groupId))
    return [notification_json(n) for n in found]


@route("POST", "/api/notifications", body=NotificationBody, response=NotificationOut)
async def add_notification(call: Call, body: NotificationBody) -> Any:
    """Subscribe."""
    kind, always, notificators, attributes = body.checked
    created = await call.context.call(call.context.store.add_traccar_notification, call.user.id,
                                      kind, always, notificators, attributes)
    return notification_json(created)


@route("PUT", "/api/notifications/{id}", body=NotificationBody, response=NotificationOut,
       errors=(404,))
async def put_notification(call: Call, id: int, body: NotificationBody) -> Any:  # noqa: A002
    """Replace a subscription."""
    kind, always, notificators, attributes = body.checked
    context, user = call.context, call.user
    updated = await context.call(
        lambda: context.store.update_traccar_notification(
            user.id, id, type=kind, always=always, notificators=notificators,
            attributes=attributes))
    if updated is None:
        raise no_such_item()
    return notification_json(updated)


@route("DELETE", "/api/notifications/{id}", status=204, errors=(404,))
async def delete_notification(call: Call, id: int) -> Reply:  # noqa: A002
    """Unsubscribe."""
    if not await call.context.call(call.context.store.delete_traccar_notification, call.user.id,
                                   id):
        raise no_such_item()
    return Reply(204)


@route("GET", "/api/notifications/types", response=list[NotificationTypeOut])
async def notification_types(call: Call) -> Any:
    """The event types one can subscribe to."""
    return [{"type": kind} for kind in EVENT_TYPES]


__all__ = [
    "EVENT_TYPES", "MAX_TOKEN_CHARS", "PLATFORMS", "ConfirmBody", "DeliveriesQuery",
    "NotificationBody", "PreferencesBody", "TokenBody", "notification_json", "preferences_json",
    "token_json",
]
