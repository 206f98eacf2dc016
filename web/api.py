"""The Traccar-compatible REST resources under /api.

Endpoints (Traccar's paths, parameters and JSON shapes, so `pytraccar` and other
Traccar integrations work unchanged).  The configuration resources (geofences to
reports) live in `web.config_api`; every route is declared once with
`web.routes.route` (routing, validation, errors and the OpenAPI document,
``GET /api/openapi.json``):

======================================  ========================================================
``GET /api/server``                     server information; no authentication (as Traccar)
``GET /api/session``                    the logged-in user; 404 when not logged in
``POST /api/session``                   form login (``email``, ``password``); sets the cookie
``DELETE /api/session``                 logout: the session is deleted, 204 (also when none)
``POST /api/session/token``             a new API token (text/plain) for ``Authorization:
                                        Bearer``; form ``expiration`` (ISO 8601; none: never)
``POST /api/session/token/revoke``      form ``token``: revoke one of the caller's tokens, 204
``GET /api/devices``                    devices the user may see, by id; ``id`` / ``uniqueId``
                                        / ``keyword`` filters, ``offset`` + ``limit`` pages,
                                        ``excludeAttributes=true``: attributes ``{}``
``POST /api/devices``                   create {uniqueId, name, groupId, attributes} in the
                                        caller's organisation; a taken uniqueId is a 400
``GET /api/devices/{id}``               one device
``PUT /api/devices/{id}``               Traccar's device body: name, groupId, settings
                                        ``attributes`` (speedLimit ...); uniqueId cannot change
``DELETE /api/devices/{id}``            with its positions, events, commands and links, 204
``PUT /api/devices/{id}/accumulators``  {totalDistance (m), hours (ms)}: set on the latest
                                        position (400 while there is none), 204
``GET /api/positions``                  latest per device; ``deviceId`` + ``from`` + ``to``:
                                        history oldest first; ``id``: those positions
``POST /api/commands/send``             queue a command {deviceId, type, attributes}: 200 sent,
                                        202 queued until the device connects
``GET /api/commands/types``             command types the device's protocol can carry
``GET /api/commands/log``               our own: sent/queued/answered commands, newest first
``GET /api/geofences``                  zones (``deviceId`` / ``groupId``: those linked);
                                        ``?format=geojson`` / ``Accept: application/geo+json``:
                                        a FeatureCollection
``POST /api/geofences``                 create: Traccar ``area``, or ``wkt``, ``geojson``, or a
                                        GeoJSON Feature as the body
``GET|PUT|DELETE /api/geofences/{id}``  one zone; PUT replaces it; 409 while a rule names it
``POST|DELETE /api/permissions``        link / unlink a zone: {deviceId|groupId, geofenceId}
``GET|POST /api/groups``                device groups; attributes are settings for their devices
``GET|PUT|DELETE /api/groups/{id}``     one group
``GET|POST /api/calendars``             ``data`` is OUR weekly schedule object, not iCalendar
``GET|PUT|DELETE /api/calendars/{id}``  one calendar; 409 while a rule names it
``GET|POST /api/rules``                 our own: user rules {id, name, enabled, when, devices,
                                        groups, zone, calendar, then}
``GET|PUT|DELETE /api/rules/{id}``      one rule
``GET /api/events/{id}``                one event (Traccar's Event shape)
``GET /api/reports/events``             ``from`` + ``to`` (required), ``deviceId``, ``groupId``,
                                        ``type`` (repeatable; ``allEvents``): oldest first
======================================  ========================================================

Conventions:

- Every store call runs on the thread pool (``call.context.call``); handlers are
  coroutines and the response is written when they finish (`web.routes`).
- Errors are JSON ``{"status", "error", "message"}`` with the status code; an
  unexpected exception is logged with its traceback and the client gets a 500
  with no detail.  Nothing a client sends can take the server down.
- Every request finishes: if building or writing the answer raises (the error
  answer included), the failure is logged, the client gets a fixed JSON 500 with
  ``Connection: close`` (or, when part of the answer was already sent, just the
  close) and the connection is closed (`web.routes`).  JSON bodies are
  ASCII (``ensure_ascii``: a lone surrogate in old stored data is sent as the
  escape ``\\ud800``); header values are Latin-1 with anything else replaced, so
  they cannot fail to encode or inject a header.
- Every response carries ``Cache-Control: no-store`` and ``X-Content-Type-Options:
  nosniff``; JSON bodies are ``application/json; charset=utf-8`` (GeoJSON ones
  ``application/geo+json``).
- Unknown path: 404.  Known path, wrong method: 405 with ``Allow``.  HEAD works
  wherever GET does.  Request bodies are capped at `MAX_BODY_BYTES` (413).
- JSON bodies (POST, PUT, and DELETE /api/permissions) must be
  ``application/json`` (415) and a JSON object (400 when malformed).  Every body
  passes one gate first, `web.validation.parse_json`, and is refused (400, nothing
  stored) unless: it is UTF-8; arrays and objects nest at most 32 levels (the body
  is level 1; checked before parsing, so no depth can exhaust the stack);
  integers are within the signed 64-bit range (booleans are not integers);
  numbers are finite (no ``NaN``/``Infinity`` literals, no ``1e400``); no string or
  key holds a lone UTF-16 surrogate (``"\\ud800"``) or NUL; no key repeats.  The
  message starts with the path of the offending value, e.g. ``attributes.k: lone
  UTF-16 surrogate U+D800 not allowed``.  Then the route's pydantic body model checks
  every field (through `tracker.editing`'s validators): invalid input, a list where
  a text is expected included, is a 400 naming the field, never a 500.  Nothing
  is stored on a refusal: every check runs before the write.  A referenced object
  that does not exist or is not visible is a 404 (the store's `NotFoundError`); deleting
  what a rule still uses is a 409 (`InUseError`).  After every successful
  configuration write ``ApiContext.config_changed`` is called.
- Scoping, and what an invisible object looks like: list filters (``id`` and
  ``uniqueId`` on devices, ``id`` on positions) simply leave out what the user may
  not see or what does not exist, as an empty result does.  ``deviceId`` names
  one device, and a device the user may not see is a 404 exactly like a device
  that does not exist, so the answer does not reveal which it is.  Likewise an
  ``/api/<things>/{id}`` item of another organisation is the same 404 "no such
  resource" as an unknown path.
- Bad parameters are a 400 naming the parameter: a non-integer id, a time that is
  not ISO 8601 or has no UTC offset (``2024-01-01T00:00:00Z``), ``from`` after
  ``to``, only one of ``from``/``to``, ``from``/``to`` without ``deviceId``, ``id``
  together with ``deviceId``.  A ``+`` offset sent unencoded in the query (which
  form decoding turns into a space) is repaired.  Unknown parameters are ignored,
  as Traccar does.  Integer parameters and path ids have at most 18 digits (so
  always fit 64 bits); text parameters and form fields (``POST /api/session``)
  must be UTF-8 without NUL (400).
- Commands: ``POST /api/commands/send`` and ``GET /api/commands/types?deviceId=``
  check that the device is visible before anything else about the command, so a
  device of another organisation and one that does not exist get the same 404
  ``no device with id N`` whatever the type and attributes (nothing about its
  existence, connection or protocol shows).  A custom command's
  ``attributes.data`` has at most `MAX_COMMAND_DATA` characters.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, WithJsonSchema, model_validator

from protocols import COMMAND_TYPES
from tracker import editing
from tracker.models import StoredPosition, User
from tracker.ports import DuplicateError, NoPositionError, NotFoundError, Store
from web import jsonshapes
from web.routes import (
    GEOJSON_TYPE,
    JSON_TYPE,
    MAX_BODY_BYTES,
    MAX_IDS,
    TEXT_TYPE,
    ApiContext,
    ApiError,
    Call,
    CheckedId,
    CheckedText,
    Form,
    FormText,
    Ints,
    JsonBody,
    OneBool,
    OneInt,
    OneText,
    OneTime,
    Query,
    Reply,
    Texts,
    no_such_item,
    refuse,
    route,
)
from web.schemas import CommandOut, CommandTypeOut, DeviceOut, PositionOut, ServerOut, UserOut

# Characters of a custom command's attributes.data: device command texts are short,
# and GT06's online command carries at most 251 (a one-byte length).
MAX_COMMAND_DATA = 250
# Accumulators (m, ms) are integers exact in a double: what JavaScript clients read.
MAX_ACCUMULATOR = 2 ** 53

# -- server and session --------------------------------------------------------------

@route("GET", "/api/server", response=ServerOut, auth="none")
async def get_server(call: Call) -> Any:
    """Server information (no authentication, as Traccar)."""
    return jsonshapes.server_json(call.context.version)


class SessionQuery(Query):
    token: OneText = Field(None, description="an API token: log in with it (sets the cookie)")


@route("GET", "/api/session", query=SessionQuery, response=UserOut, auth="none",
       errors=(401, 404, 429))
async def get_session(call: Call, query: SessionQuery) -> Any:
    """The logged-in user (the Authorization header, else ``token``, else the session
    cookie); 404 when not logged in.

    ``?token=`` logs in with an API token as Traccar does: a new session replaces
    the old one and its cookie is set; a refused token is a 401 counted by the rate
    limiter.  The session is an ordinary one (`web.auth.SESSION_LIFETIME`): it does
    not end when the token expires or is revoked.
    """
    auth = call.context.auth
    if call.request.getHeader(b"authorization") is not None:
        return jsonshapes.user_json(await auth.header_user(call.request))
    if query.token is not None:
        return jsonshapes.user_json((await auth.token_login(call.request, query.token)).user)
    found = await auth.cookie_user(call.request)
    if found is None:
        raise ApiError(404, "not logged in")
    return jsonshapes.user_json(found)


class LoginForm(Form):
    """Traccar's form login."""

    email: FormText = None
    password: FormText = None

    @model_validator(mode="after")
    def _both(self) -> LoginForm:
        if not self.email or self.password is None:
            raise refuse("form fields email and password are required")
        return self


@route("POST", "/api/session", form=LoginForm, response=UserOut, auth="none",
       errors=(401, 415, 429))
async def post_session(call: Call, body: LoginForm) -> Any:
    """Form login (``email``, ``password``): sets the session cookie."""
    assert body.email is not None and body.password is not None   # LoginForm checked them
    login = await call.context.auth.login(call.request, body.email, body.password)
    return jsonshapes.user_json(login.user)


@route("DELETE", "/api/session", status=204, auth="none")
async def delete_session(call: Call) -> Reply:
    """Logout: the session is deleted (204, also when there was none)."""
    await call.context.auth.logout(call.request)
    return Reply(204)


class TokenForm(Form):
    """Traccar's token request: ``expiration`` optional."""

    expiration: OneTime = Field(None, description="ISO 8601 with an offset; absent: never expires")


@route("POST", "/api/session/token", form=TokenForm, response=str, content_types=("text/plain",),
       errors=(415,))
async def post_session_token(call: Call, body: TokenForm) -> Reply:
    """A new API token for the caller, as text/plain: send it as ``Authorization:
    Bearer <token>`` or log in with ``GET /api/session?token=``.

    ``expiration`` (ISO 8601 with an offset) must be in the future; without it the
    token never expires (integrations run for years; revoke it when done).  There
    is no server maximum: a cap on explicit expirations would add nothing while no
    expiration means never.  Only the token's SHA-256 is stored, so it is shown
    this once.
    """
    now = call.context.now()
    if body.expiration is not None and body.expiration <= now:
        raise ApiError(400, "expiration must be in the future")
    token = await call.context.call(call.context.store.create_api_token, call.user.id,
                                    body.expiration)
    return Reply(200, token.encode("ascii"), content_type=TEXT_TYPE)


class RevokeForm(Form):
    """Traccar's token revocation: ``token`` required."""

    token: FormText = None

    @model_validator(mode="after")
    def _given(self) -> RevokeForm:
        if not self.token:
            raise refuse("form field token is required")
        return self


@route("POST", "/api/session/token/revoke", form=RevokeForm, status=204, errors=(415,))
async def revoke_session_token(call: Call, body: RevokeForm) -> Reply:
    """Revoke one of the caller's API tokens (204, also when it was revoked
    before); a token that is unknown or another user's is a 400, the same answer
    for both, and nothing changes."""
    assert body.token is not None   # RevokeForm checked it
    revoked = await call.context.call(call.context.store.revoke_api_token, call.user.id,
                                      body.token)
    if not revoked:
        raise ApiError(400, "no such token of yours")
    return Reply(204)


# -- devices ---------------------------------------------------------------------------

class DevicesQuery(Query):
    id: Ints = Field(default_factory=list, description="only these devices")
    uniqueId: Texts = Field(default_factory=list, description="only these devices")
    keyword: OneText = Field(None, description="only those whose name or uniqueId contains it "
                                               "(case-insensitive)")
    limit: OneInt = Field(None, description="at most this many (0: no limit)")
    offset: OneInt = Field(None, description="skip this many first (by id)")
    excludeAttributes: OneBool = Field(None, description="true: attributes sent as {}")


@route("GET", "/api/devices", query=DevicesQuery, response=list[DeviceOut])
async def list_devices(call: Call, query: DevicesQuery) -> Any:
    """The devices the user may see, by id; ``id`` / ``uniqueId`` filter (what is not
    visible is left out), ``keyword`` too; then ``offset`` and ``limit``."""
    devices = await call.context.call(functools.partial(
        call.context.store.devices, call.user, ids=query.id, unique_ids=query.uniqueId,
        keyword=query.keyword or None, limit=query.limit or None, offset=query.offset or 0))
    now, attributes = call.context.now(), not query.excludeAttributes
    return [jsonshapes.device_json(device, now, attributes=attributes) for device in devices]


class NewDeviceBody(JsonBody):
    """Traccar's device: ``uniqueId`` and ``name`` required, ``groupId`` (null or 0:
    none) and the settings ``attributes``; other fields are ignored."""

    name: str
    uniqueId: str
    groupId: int | None = None
    attributes: dict[str, Any] | None = None

    @classmethod
    def check(cls, body: dict[str, Any]) -> Any:
        unique_id = editing.unique_id_field(body.get("uniqueId"))
        return unique_id, editing.device_fields(body, unique_id)


@route("POST", "/api/devices", body=NewDeviceBody, response=DeviceOut, changes_config=True,
       errors=(404,))
async def post_device(call: Call, body: NewDeviceBody) -> Any:
    """Create a device in the caller's organisation; a taken ``uniqueId`` is a 400
    (as Traccar), a group not visible a 404."""
    unique_id, fields = body.checked
    try:
        device = await call.context.call(functools.partial(
            call.context.store.add_device, unique_id, fields.name, call.user.organisation_id,
            group_id=fields.group_id, attributes=fields.attributes))
    except DuplicateError:
        raise ApiError(400, f"uniqueId: {unique_id!r} is taken") from None
    return jsonshapes.device_json(device, call.context.now())


@route("DELETE", "/api/devices/{id}", status=204, changes_config=True, errors=(404,))
async def delete_device(call: Call, id: int) -> Reply:  # noqa: A002
    """Delete a device with its positions, events and commands."""
    try:
        await call.context.call(call.context.store.delete_device, call.user, id)
    except NotFoundError:
        raise no_such_item() from None
    return Reply(204)


class AccumulatorsBody(JsonBody):
    """Traccar's DeviceAccumulators: ``totalDistance`` (m), ``hours`` (ms); at least
    one.  ``deviceId``, when sent and not 0, must be the path's."""

    deviceId: int | None = None
    totalDistance: float | None = None
    hours: float | None = None

    @classmethod
    def check(cls, body: dict[str, Any]) -> Any:
        total_distance = _accumulator(body.get("totalDistance"), "totalDistance")
        hours = _accumulator(body.get("hours"), "hours")
        if total_distance is None and hours is None:
            raise editing.EditError("totalDistance or hours: at least one is required")
        return total_distance, None if hours is None else round(hours)


def _accumulator(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not 0 <= value <= MAX_ACCUMULATOR):
        raise editing.EditError(f"{field}: must be a number from 0 to 2^53")
    return value


@route("PUT", "/api/devices/{id}/accumulators", body=AccumulatorsBody, status=204,
       errors=(404,))
async def put_accumulators(call: Call, id: int, body: AccumulatorsBody) -> Reply:  # noqa: A002
    """Set the device's ``totalDistance`` and ``hours``: on its latest position, as
    Traccar (400 while it has none)."""
    device_id = body.raw.get("deviceId")
    if device_id is not None and (isinstance(device_id, bool) or device_id not in (0, id)):
        raise ApiError(400, f"deviceId: must be the path's device id {id}")
    total_distance, hours = body.checked
    try:
        await call.context.call(functools.partial(
            call.context.store.set_accumulators, call.user, id,
            total_distance_m=total_distance, hours_ms=hours))
    except NotFoundError:
        raise no_such_item() from None
    except NoPositionError:
        raise ApiError(400, f"device {id} has no position yet to set accumulators on") from None
    return Reply(204)


@route("GET", "/api/devices/{id}", response=DeviceOut, errors=(404,))
async def get_device(call: Call, id: int) -> Any:  # noqa: A002 - the path's name
    """One device."""
    device = await call.context.call(visible_device, call.context.store, call.user, id)
    if device is None:
        raise no_such_item()
    return jsonshapes.device_json(device, call.context.now())


class DeviceBody(JsonBody):
    """Traccar's device: name, groupId (null or 0: none) and the settings
    ``attributes`` change; ``uniqueId``, when sent, must be the device's own
    (`tracker.editing.device_fields`)."""

    id: CheckedId = None
    name: str
    uniqueId: CheckedText = None
    groupId: int | None = None
    attributes: dict[str, Any] | None = None

    @classmethod
    def check(cls, body: dict[str, Any]) -> Any:
        # uniqueId is compared with the stored one on the thread pool
        return editing.device_fields(body, body.get("uniqueId"))   # type: ignore[arg-type]


@route("PUT", "/api/devices/{id}", body=DeviceBody, response=DeviceOut, changes_config=True,
       errors=(404,))
async def put_device(call: Call, id: int, body: DeviceBody) -> Any:  # noqa: A002
    """Change a device's name, group and settings."""
    device = await call.context.call(_update_device, call.context.store, call.user, id, body.raw)
    return jsonshapes.device_json(device, call.context.now())


def _update_device(store: Store, user: User, device_id: int, body: Mapping[str, Any]) -> Any:
    device = visible_device(store, user, device_id)
    if device is None:
        raise no_such_item()
    fields = editing.device_fields(body, device.unique_id)
    return store.update_device(user, device_id, name=fields.name, group_id=fields.group_id,
                               attributes=fields.attributes)


def visible_device(store: Store, user: User, device_id: int) -> Any:
    """The device if the user may see it, else None (blocking; one row read)."""
    return store.visible_device(user, device_id)


# -- positions -------------------------------------------------------------------------

class PositionsQuery(Query):
    id: Ints = Field(default_factory=list, description="these positions")
    deviceId: OneInt = Field(None, description="one device: its latest, or with from/to its history")
    start: OneTime = Field(None, alias="from", description="ISO 8601 with an offset")
    end: OneTime = Field(None, alias="to", description="ISO 8601 with an offset")

    @model_validator(mode="after")
    def _combination(self) -> PositionsQuery:
        if self.id and (self.deviceId is not None or self.start or self.end):
            raise refuse("id cannot be combined with deviceId, from or to")
        if (self.start is None) != (self.end is None):
            raise refuse("from and to must be given together")
        if self.start is not None and self.deviceId is None:
            raise refuse("from and to need a deviceId")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise refuse("from must not be after to")
        return self


@route("GET", "/api/positions", query=PositionsQuery, response=list[PositionOut], errors=(404,))
async def list_positions(call: Call, query: PositionsQuery) -> Any:
    """The latest position per device; ``deviceId`` + ``from`` + ``to``: that
    device's history, oldest first; ``id``: those positions."""
    store, user = call.context.store, call.user
    if query.id:
        positions = await call.context.call(store.positions_by_ids, user, query.id)
    elif query.deviceId is not None:
        positions = await call.context.call(
            _device_positions, store, user, query.deviceId, query.start, query.end)
        if positions is None:
            raise no_such_device(query.deviceId)
    else:
        positions = await call.context.call(store.latest_positions, user)
    return [jsonshapes.position_json(position) for position in positions]


def _device_positions(store: Store, user: User, device_id: int, start: dt.datetime | None,
                      end: dt.datetime | None) -> list[StoredPosition] | None:
    """One device's history (or latest position); None if the user may not see it.

    Runs on the thread pool as one unit, so the visibility check and the read
    cost one hop.
    """
    device = store.visible_device(user, device_id)
    if device is None:
        return None
    if start is not None and end is not None:
        return list(store.positions(user, device_id, start, end))
    if device.position_id is None:
        return []
    return list(store.positions_by_ids(user, [device.position_id]))


# -- commands --------------------------------------------------------------------------

class CommandBody(JsonBody):
    """Traccar's command {deviceId, type, attributes}.  ``type`` and ``attributes``
    are checked only after the device was found visible (so nothing about another
    organisation's device shows): the model checks ``deviceId`` alone."""

    deviceId: int
    type: Annotated[Any, WithJsonSchema({"type": "string", "enum": sorted(COMMAND_TYPES)})] = None
    attributes: Annotated[Any, WithJsonSchema({"type": "object"})] = None

    @classmethod
    def check(cls, body: dict[str, Any]) -> Any:
        device_id = body.get("deviceId")
        if not isinstance(device_id, int) or isinstance(device_id, bool):
            raise ValueError("deviceId must be an integer")
        return device_id


@route("POST", "/api/commands/send", body=CommandBody, response=CommandOut, errors=(404, 503))
async def send_command(call: Call, body: CommandBody) -> Reply:
    """Queue a command: 200 with the command when it was sent to the connected
    device, 202 when it is queued until the device connects, 400 when the device's
    protocol cannot carry it (the command is then stored as failed, with the reason)."""
    context, user = call.context, call.user
    if context.commands is None:
        raise ApiError(503, "commands are not available on this server")
    device_id: int = body.checked
    # Visibility first: whether another organisation's device exists, is online or
    # what its protocol takes must not show in the answer to a bad command.
    if not await context.call(_may_see_device, context.store, user, device_id):
        raise no_such_device(device_id)
    command_type = body.raw.get("type")
    attributes = body.raw.get("attributes")
    attributes = {} if attributes is None else attributes
    if not isinstance(attributes, dict):
        raise ApiError(400, "attributes must be an object")
    _check_command(command_type, attributes, context.commands.command_types(device_id))
    command = await context.commands.queue(device_id, command_type, attributes, user.id)
    if command.status == "failed":
        raise ApiError(400, f"the device cannot take this command: {command.result}")
    status = 200 if command.status == "sent" else 202
    return Reply(status, jsonshapes.command_json(command))


class CommandTypesQuery(Query):
    deviceId: OneInt = Field(None, description="what this device's protocol can carry")


@route("GET", "/api/commands/types", query=CommandTypesQuery, response=list[CommandTypeOut],
       errors=(404,))
async def command_types(call: Call, query: CommandTypesQuery) -> Any:
    """The command types the device's protocol can carry (all known types while it
    is not connected, or without ``deviceId``)."""
    context, device_id = call.context, query.deviceId
    types = COMMAND_TYPES
    if device_id is not None:
        if not await context.call(_may_see_device, context.store, call.user, device_id):
            raise no_such_device(device_id)
        if context.commands is not None:
            types = context.commands.command_types(device_id) or COMMAND_TYPES
    return [{"type": t} for t in sorted(types)]


class CommandLogQuery(Query):
    deviceId: Ints = Field(default_factory=list, description="only this device's (the first given)")


@route("GET", "/api/commands/log", query=CommandLogQuery, response=list[CommandOut])
async def command_log(call: Call, query: CommandLogQuery) -> Any:
    """Ours: sent, queued and answered commands, newest first (Traccar's
    /api/commands holds saved command templates)."""
    device_id = query.deviceId[0] if query.deviceId else None
    commands = await call.context.call(call.context.store.commands, call.user, device_id, 100)
    return [jsonshapes.command_json(command) for command in commands]


def _may_see_device(store: Store, user: User, device_id: int) -> bool:
    return store.visible_device(user, device_id) is not None


def no_such_device(device_id: int) -> ApiError:
    """The 404 of a ``deviceId`` that does not exist or is not visible: one answer
    for both, so it does not tell which."""
    return ApiError(404, f"no device with id {device_id}")


def _check_command(command_type: Any, attributes: Mapping[str, Any],
                   supported: frozenset[str] | None) -> None:
    """400 unless the command is well-formed (and carried by the connected device)."""
    if not isinstance(command_type, str) or command_type not in COMMAND_TYPES:
        raise ApiError(400, f"type must be one of {', '.join(sorted(COMMAND_TYPES))}")
    if supported is not None and command_type not in supported:
        raise ApiError(400, f"the device's protocol cannot carry {command_type}; "
                            f"it takes {', '.join(sorted(supported)) or 'no commands'}")
    if command_type == "positionPeriodic":
        frequency = attributes.get("frequency")
        if not isinstance(frequency, int) or isinstance(frequency, bool) or frequency <= 0:
            raise ApiError(400, "positionPeriodic needs attributes.frequency in seconds (integer)")
    if command_type == "custom":
        data = attributes.get("data")
        if not (isinstance(data, str) and data):
            raise ApiError(400, "custom needs attributes.data (text)")
        if len(data) > MAX_COMMAND_DATA:
            raise ApiError(400, f"attributes.data: at most {MAX_COMMAND_DATA} characters, "
                                f"got {len(data)}")


__all__ = [
    "GEOJSON_TYPE", "JSON_TYPE", "MAX_ACCUMULATOR", "MAX_BODY_BYTES", "MAX_COMMAND_DATA",
    "MAX_IDS", "AccumulatorsBody", "ApiContext", "ApiError", "CommandBody", "DeviceBody",
    "DevicesQuery", "LoginForm", "NewDeviceBody",
    "PositionsQuery", "Reply", "RevokeForm", "SessionQuery", "TokenForm", "no_such_device",
    "visible_device",
]
