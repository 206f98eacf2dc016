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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from tracker.models import PushToken, User
from tracker.ports import NotFoundError
from tracker.push.base import CHANNELS, INVALID_TOKEN, SENT, mask
from tracker.push.confirm import (
    MAX_CODE_CHARS,
    ConfirmationMailer,
    ConfirmationRefused,
    PushTargetTaken,
    TooManyMails,
    is_confirmed,
    needs_confirmation,
    new_code,
)
from tracker.push.email import looks_like_address
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
    str_params,
)
from web.jsonshapes import format_time

PLATFORMS = ("android", "ios", "web", "harmonyos", "other")
MAX_TOKEN_CHARS = 4096
_ID_RE = re.compile(r"[0-9]{1,18}")
_CONFIRM = b"confirm"


def token_json(token: PushToken) -> dict[str, Any]:
    return {"id": token.id, "channel": token.channel, "platform": token.platform,
            "tokenHint": mask(token.token), "created": format_time(token.created),
            "disabled": format_time(token.disabled), "disabledReason": token.disabled_reason,
            "confirmed": is_confirmed(token)}


class TokensResource(CollectionResource):
    """The caller's push targets; see the module docstring.  `confirmations` (a
    `tracker.push.confirm.ConfirmationMailer`, None when no e-mail channel is
    configured) mails the codes of e-mail targets."""

    methods = {b"GET": "get", b"POST": "post"}
    item_methods = {b"DELETE": "delete"}
    confirm_methods = {b"GET": "confirm", b"POST": "confirm"}

    def __init__(self, context, confirmations: ConfirmationMailer | None = None) -> None:
        super().__init__(context)
        self.confirmations = confirmations

    def route(self, request: IRequest) -> tuple[Mapping[bytes, str], tuple[Any, ...]] | None:
        """Also ``/{id}/confirm`` (and ``/{id}/confirm/``)."""
        postpath = request.postpath
        if (len(postpath) in (2, 3) and postpath[1] == _CONFIRM
                and (len(postpath) == 2 or postpath[2] == b"")):
            text = postpath[0].decode("ascii", "replace")
            if _ID_RE.fullmatch(text):
                return self.confirm_methods, (int(text),)
            return None
        return super().route(request)

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
        token = token.strip()
        if channel == "webhook" and not user.administrator:
            # A webhook makes the server POST to any URL it can reach, internal ones
            # included: only administrators may point it somewhere.
            raise ApiError(403, "webhooks are registered by administrators only")
        if not needs_confirmation(channel):
            stored = await self._register(user, channel, platform, token, None)
            return token_json(stored.token)
        return await self._register_email(user, platform, token)

    async def _register_email(self, user: User, platform: str, address: str) -> Any:
        """An e-mail target: stored unconfirmed, its code mailed; withdrawn again
        when the mail cannot be sent (nobody could confirm it)."""
        if not looks_like_address(address):
            raise ApiError(400, "token: an e-mail address (local@domain), without spaces")
        mailer = self.confirmations
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
            registration = await self._register(user, "email", platform, address, code)
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
            await self.context.call(self.context.store.withdraw_push_token, user.id, target.id)
            raise
        if result.status != SENT:
            await self.context.call(self.context.store.withdraw_push_token, user.id, target.id)
            if result.status == INVALID_TOKEN:
                raise ApiError(400, f"token: the mail server refused this address "
                                    f"({result.error}); nothing was registered")
            raise ApiError(502, f"the confirmation mail could not be sent ({result.error}); "
                                "nothing was registered, try again later")
        return {**token_json(target), "confirmationSent": True}

    async def _register(self, user: User, channel: str, platform: str, token: str,
                        code: str | None):
        store = self.context.store
        try:
            return await self.context.call(
                lambda: store.register_push_token(user.id, channel, platform, token,
                                                  self.context.now(), confirm_code=code))
        except PushTargetTaken as error:
            raise ApiError(409, f"{error}; it cannot be registered again") from None

    async def confirm(self, token_id: int, request: IRequest, user: User) -> Any:
        if request.method.upper() == b"POST":
            code = json_body(request).get("code")
        else:
            codes = str_params(request, "code")
            code = codes[0] if len(codes) == 1 else None
        if not isinstance(code, str) or not code.strip() or len(code) > MAX_CODE_CHARS:
            raise ApiError(400, f"code: the confirmation code from the mail (a string of at most "
                                f"{MAX_CODE_CHARS} characters)")
        store = self.context.store
        try:
            stored = await self.context.call(
                store.confirm_push_token, user.id, token_id, code, self.context.now())
        except NotFoundError:
            raise no_such_item() from None
        except ConfirmationRefused as refused:
            raise ApiError(400 if refused.reason == "wrong" else 410, f"code: {refused}") from None
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
    children tokens, preferences, deliveries and types.

    `confirmations` mails the confirmation codes of e-mail targets
    (`tracker.push.confirm.confirmation_mailer` over the configured e-mail
    channel); None, the default: no e-mail channel, and registering an e-mail
    target is a 400 saying so."""

    def __init__(self, context, *, confirmations: ConfirmationMailer | None = None) -> None:
        super().__init__()
        self.collection = TraccarNotificationsResource(context)
        self.named = {b"tokens": TokensResource(context, confirmations),
                      b"preferences": PreferencesResource(context),
                      b"deliveries": DeliveriesResource(context),
                      b"types": NotificationTypesResource(context)}

    def getChild(self, path: bytes, request: IRequest) -> Resource:
        if path in self.named:
            return self.named[path]
        request.postpath.insert(0, request.prepath.pop())   # an id: the collection's item
        return self.collection

    def render(self, request: IRequest):
        return self.collection.render(request)
