"""The Traccar-compatible REST resources under /api.

Endpoints (Traccar's paths, parameters and JSON shapes, so `pytraccar` and other
Traccar integrations work unchanged).  The configuration resources (geofences to
reports) live in `web.config_api`; ``{id}`` paths are `CollectionResource` items:

======================================  ========================================================
``GET /api/server``                     server information; no authentication (as Traccar)
``GET /api/session``                    the logged-in user; 404 when not logged in
``POST /api/session``                   form login (``email``, ``password``); sets the cookie
``DELETE /api/session``                 logout: the session is deleted, 204 (also when none)
``GET /api/devices``                    devices the user may see; ``id`` / ``uniqueId`` filters
``GET /api/devices/{id}``               one device
``PUT /api/devices/{id}``               Traccar's device body: name, groupId, settings
                                        ``attributes`` (speedLimit ...); uniqueId cannot change
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

- Every store call runs on the thread pool (`deferToThreadPool`); handlers are
  coroutines and the response is written when they finish (``NOT_DONE_YET``).
- Errors are JSON ``{"status", "error", "message"}`` with the status code; an
  unexpected exception is logged with its traceback and the client gets a 500
  with no detail.  Nothing a client sends can take the server down.
- Every request finishes: if building or writing the answer raises (the error
  answer included), the failure is logged, the client gets a fixed JSON 500 with
  ``Connection: close`` (or, when part of the answer was already sent, just the
  close) and the connection is closed (`_answer`, `_last_resort`).  JSON bodies are
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
  UTF-16 surrogate U+D800 not allowed``.  Then each handler checks the type of
  every field it reads: invalid input, a list where a text is expected included,
  is a 400 naming the field (`tracker.editing.EditError`), never a 500.  Nothing
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

import dataclasses
import datetime as dt
import functools
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from protocols import COMMAND_TYPES
from tracker import editing
from tracker.bounded_http import BoundedRequest
from tracker.editing import EditError
from tracker.models import User
from tracker.ports import InUseError, NotFoundError, Store
from web import jsonshapes
from web.auth import (
    REALM,
    UNSAFE_METHODS,
    AuthenticationFailed,
    Authenticator,
    TooManyAttempts,
    same_origin,
)
from web.validation import InputError, check_text, parse_json

log = Logger()

MAX_BODY_BYTES = 64 * 1024
MAX_IDS = 1000
# Characters of a custom command's attributes.data: device command texts are short,
# and GT06's online command carries at most 251 (a one-byte length).
MAX_COMMAND_DATA = 250
JSON_TYPE = b"application/json; charset=utf-8"
GEOJSON_TYPE = b"application/geo+json"   # RFC 7946: no charset parameter (always UTF-8)

_INT_RE = re.compile(r"[0-9]{1,18}")
CONFIG_WRITES = frozenset({b"POST", b"PUT", b"DELETE"})
_SPACE_OFFSET_RE = re.compile(r"(.*T[0-9:.,]+) ([0-9]{2}(?::?[0-9]{2})?)")


class ApiError(Exception):
    """An error answer: status, message for the client, extra headers."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    body: Any = None             # JSON-ready value; None with 204
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    content_type: bytes = JSON_TYPE   # of a body (GeoJSON: GEOJSON_TYPE)


@dataclasses.dataclass(frozen=True, slots=True)
class ApiContext:
    """What the resources share: the store, where to run it, who is calling."""

    store: Store
    threadpool: Any
    reactor: Any
    auth: Authenticator
    version: str
    commands: Any = None    # tracker.commands.CommandDispatcher; None: commands off
    # called (on the reactor thread) after every successful configuration write, so
    # the running rule engine reloads at once instead of at its next poll
    config_changed: Callable[[], Any] | None = None

    def call(self, fn: Callable[..., Any], *args: Any) -> Deferred:
        """Run a blocking store call on the thread pool."""
        return deferToThreadPool(self.reactor, self.threadpool, fn, *args)

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.reactor.seconds(), dt.UTC)


# -- response writing --------------------------------------------------------------

def _start_headers(request: IRequest) -> None:
    request.setHeader(b"Server", b"tracker")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")


def _write(request: IRequest, reply: Reply) -> None:
    """Write `reply` and finish.  The body is serialised first, so a value that cannot
    be serialised raises before anything of the answer is set."""
    body = None if reply.body is None else jsonshapes.dumps(reply.body)
    request.setResponseCode(reply.status)
    for name, value in reply.headers.items():
        request.setHeader(_header_name(name), _header_bytes(value))
    if body is None:
        if reply.status != HTTPStatus.NO_CONTENT:   # 204 has no Content-Length (RFC 9110)
            request.setHeader(b"Content-Length", b"0")
    else:
        request.setHeader(b"Content-Type", reply.content_type)
        request.setHeader(b"Content-Length", str(len(body)).encode("ascii"))
        request.write(body)
    request.finish()


def _header_bytes(text: str) -> bytes:
    """A header value as bytes that never fail to encode: Latin-1 (RFC 9110's
    field-value octets), other characters as ``?``, control characters as spaces
    (so no value can end the header or inject another)."""
    return _CONTROL_RE.sub(" ", text).encode("latin-1", "replace")


def _header_name(text: str) -> bytes:
    """A header name as RFC 9110 token bytes: any other character becomes ``-``."""
    return _NON_TOKEN_RE.sub("-", text).encode("ascii") or b"X-Invalid"


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_NON_TOKEN_RE = re.compile(r"[^!#$%&'*+.^_`|~0-9A-Za-z-]")
_LAST_RESORT_BODY = (b'{"status":500,"error":"Internal Server Error",'
                     b'"message":"internal server error"}')


def _answer(request: IRequest, build: Callable[[], Reply]) -> None:
    """Write the reply `build` makes.  If building or writing it raises, the failure
    is logged and the request still ends: a fixed 500 (when nothing of the answer
    was sent yet) and the connection closed (`_last_resort`)."""
    try:
        _write(request, build())
    except Exception:
        log.failure("could not answer {method} {path}", method=_printable(request.method),
                    path=_printable(request.path))
        _last_resort(request)


def _last_resort(request: IRequest) -> None:
    """End a request whose answer failed: a plain JSON 500 with ``Connection: close``
    if no byte was written yet, then close the connection whatever happens."""
    channel = getattr(request, "channel", None)   # finish() detaches it from the request
    try:
        if not request.finished and not request.startedWriting:
            request.setResponseCode(500)
            request.responseHeaders = Headers()
            _start_headers(request)
            request.setHeader(b"Connection", b"close")
            request.setHeader(b"Content-Type", JSON_TYPE)
            request.setHeader(b"Content-Length", str(len(_LAST_RESORT_BODY)).encode("ascii"))
            request.write(_LAST_RESORT_BODY)
        if not request.finished:
            request.finish()
    except Exception:
        log.failure("could not write the last-resort 500")
    finally:
        try:
            if channel is not None:
                channel.loseConnection()
        except Exception:
            log.failure("could not close the connection")


def error_reply(status: int, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    reason = HTTPStatus(status).phrase
    return Reply(status, jsonshapes.error_json(status, reason, message), dict(headers or {}))


def _reply_for_failure(request: IRequest, failure: Failure) -> Reply:
    error = failure.value
    if isinstance(error, ApiError):
        return error_reply(error.status, error.message, error.headers)
    if isinstance(error, AuthenticationFailed):
        headers = {}
        xhr = (request.getHeader(b"x-requested-with") or b"").lower() == b"xmlhttprequest"
        if error.basic_challenge and not xhr:
            # Traccar's rule: no challenge for XHR, so browsers show no dialog.
            headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
        return error_reply(401, error.message, headers)
    if isinstance(error, TooManyAttempts):
        return error_reply(429, str(error), {"Retry-After": str(error.retry_after_s)})
    if isinstance(error, EditError):
        return error_reply(400, str(error))
    if isinstance(error, NotFoundError):
        return error_reply(404, str(error) or "no such resource")
    if isinstance(error, InUseError):
        return error_reply(409, str(error))
    log.failure("error serving {method} {path}", failure,
                method=_printable(request.method), path=_printable(request.path))
    return error_reply(500, "internal server error")


def _printable(raw: bytes | None) -> str:
    return (raw or b"").decode("ascii", "backslashreplace")[:200]


# -- resources ---------------------------------------------------------------------

Handler = Callable[[IRequest, User | None], Awaitable[Any]]


class JsonResource(Resource):
    """Base of the API endpoints: method dispatch, errors, auth, async rendering.

    Subclasses name their handlers in `methods` (method -> coroutine method
    name); a handler gets the request and the user (None when `needs_user` is
    false) and returns a `Reply` or a JSON-ready value (200).  With
    `changes_config`, a successful POST, PUT or DELETE calls the context's
    ``config_changed`` (GET and HEAD never do).
    """

    isLeaf = True
    methods: Mapping[bytes, str] = {}
    needs_user = True
    changes_config = False

    def __init__(self, context: ApiContext):
        super().__init__()
        self.context = context

    def route(self, request: IRequest) -> tuple[Mapping[bytes, str], tuple[Any, ...]] | None:
        """The handlers for the rest of the path and the extra handler arguments;
        None: no such resource.  Here: only the resource itself (or a trailing /)."""
        if request.postpath not in ([], [b""]):
            return None
        return self.methods, ()

    def render(self, request: IRequest):
        _start_headers(request)
        method = request.method.upper()
        route = self.route(request)
        if route is None or not route[0]:
            _answer(request, lambda: error_reply(404, "no such resource"))
            return server.NOT_DONE_YET
        methods, arguments = route
        if method == b"HEAD" and b"HEAD" not in methods:
            method = b"GET"
        name = methods.get(method)
        if name is None:
            allowed = sorted(methods) + ([b"HEAD"] if b"GET" in methods else [])
            allow = ", ".join(m.decode() for m in allowed)
            _answer(request, lambda: error_reply(405, "method not allowed", {"Allow": allow}))
            return server.NOT_DONE_YET
        handler = getattr(self, name)
        if arguments:
            handler = functools.partial(handler, *arguments)

        disconnected = []
        request.notifyFinish().addErrback(lambda _: disconnected.append(True))

        def done(reply: Any) -> None:
            if disconnected:
                return
            _answer(request, lambda: reply if isinstance(reply, Reply) else Reply(200, reply))

        def failed(failure: Failure) -> None:
            if disconnected:
                log.failure("error after the client left {method} {path}", failure,
                            method=_printable(request.method), path=_printable(request.path))
                return
            _answer(request, lambda: _reply_for_failure(request, failure))

        def broken(failure: Failure) -> None:   # done or failed raised: a bug here
            log.failure("error answering {method} {path}", failure,
                        method=_printable(request.method), path=_printable(request.path))
            _last_resort(request)

        d = Deferred.fromCoroutine(self._serve(request, method, handler))
        d.addCallbacks(done, failed)
        d.addErrback(broken)
        return server.NOT_DONE_YET

    async def _serve(self, request: IRequest, method: bytes, handler: Handler) -> Any:
        if getattr(request, "body_too_large", False):
            raise ApiError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
        if method in UNSAFE_METHODS and not same_origin(
                request.getHeader(b"origin"), request.getHeader(b"host")):
            raise ApiError(403, "cross-origin request refused (Origin does not match Host)")
        user = await self.context.auth.require_user(request) if self.needs_user else None
        result = await handler(request, user)
        if self.changes_config and method in CONFIG_WRITES:
            self._config_changed()
        return result

    def _config_changed(self) -> None:
        """Tell the running server; its failure is logged, never the client's answer
        (the write is committed, and the server's own poll sees it anyway)."""
        notify = self.context.config_changed
        if notify is None:
            return
        try:
            result = notify()
        except Exception:
            log.failure("config_changed failed")
            return
        if isinstance(result, Deferred):
            result.addErrback(lambda f: log.failure("config_changed failed", f))


class CollectionResource(JsonResource):
    """``/api/<things>`` and ``/api/<things>/<id>``: `methods` serve the collection,
    `item_methods` an item; their handlers get the id first:
    ``handler(item_id, request, user)``.  An id that is not a decimal number, or a
    path deeper than the id, is a 404 like any unknown path; so is an item that does
    not exist or that the user may not see (`no_such_item`).
    """

    item_methods: Mapping[bytes, str] = {}

    def route(self, request: IRequest) -> tuple[Mapping[bytes, str], tuple[Any, ...]] | None:
        postpath = request.postpath
        if postpath in ([], [b""]):
            return self.methods, ()
        if len(postpath) == 1 or (len(postpath) == 2 and postpath[1] == b""):
            text = postpath[0].decode("ascii", "replace")
            if _INT_RE.fullmatch(text):
                return self.item_methods, (int(text),)
        return None


def no_such_item() -> ApiError:
    """The 404 of an item path whose object does not exist or is not visible: the
    same answer as an unknown path, so it does not tell which."""
    return ApiError(404, "no such resource")


class NotFound(Resource):
    """404 JSON for any path (and method) nothing else claims."""

    isLeaf = True

    def render(self, request: IRequest):
        _start_headers(request)
        _answer(request, lambda: error_reply(404, "no such resource"))
        return server.NOT_DONE_YET


class JsonRoot(Resource):
    """A directory whose unknown children are JSON 404s (and itself too)."""

    def getChild(self, path: bytes, request: IRequest) -> Resource:
        return NotFound()

    def render(self, request: IRequest):
        return NotFound().render(request)


class ServerResource(JsonResource):
    methods = {b"GET": "get"}
    needs_user = False

    async def get(self, request: IRequest, user: None) -> Any:
        return jsonshapes.server_json(self.context.version)


class SessionResource(JsonResource):
    methods = {b"GET": "get", b"POST": "post", b"DELETE": "delete"}
    needs_user = False

    async def get(self, request: IRequest, user: None) -> Any:
        auth = self.context.auth
        if request.getHeader(b"authorization") is not None:
            return jsonshapes.user_json(await auth.basic_user(request))
        found = await auth.cookie_user(request)
        if found is None:
            raise ApiError(404, "not logged in")
        return jsonshapes.user_json(found)

    async def post(self, request: IRequest, user: None) -> Any:
        fields = _form_fields(request)
        email = _single(fields, "email")
        password = _single(fields, "password")
        if not email or password is None:
            raise ApiError(400, "form fields email and password are required")
        login = await self.context.auth.login(request, email, password)
        return jsonshapes.user_json(login.user)

    async def delete(self, request: IRequest, user: None) -> Reply:
        await self.context.auth.logout(request)
        return Reply(204)


class DevicesResource(CollectionResource):
    """GET /api/devices (filters ``id``, ``uniqueId``), GET /api/devices/{id}, and
    PUT /api/devices/{id}: Traccar's device body; name, groupId and the settings
    ``attributes`` (speedLimit ...) change, ``uniqueId`` must stay (see
    `tracker.editing.device_fields`)."""

    methods = {b"GET": "get"}
    item_methods = {b"GET": "get_one", b"PUT": "put"}
    changes_config = True

    async def get(self, request: IRequest, user: User) -> Any:
        ids = set(int_params(request, "id"))
        unique_ids = set(str_params(request, "uniqueId"))
        devices = await self.context.call(self.context.store.devices, user)
        if ids or unique_ids:
            devices = [d for d in devices if d.id in ids or d.unique_id in unique_ids]
        now = self.context.now()
        return [jsonshapes.device_json(device, now) for device in devices]

    async def get_one(self, device_id: int, request: IRequest, user: User) -> Any:
        device = await self.context.call(visible_device, self.context.store, user, device_id)
        if device is None:
            raise no_such_item()
        return jsonshapes.device_json(device, self.context.now())

    async def put(self, device_id: int, request: IRequest, user: User) -> Any:
        body = json_body(request, device_id)
        device = await self.context.call(_update_device, self.context.store, user, device_id, body)
        return jsonshapes.device_json(device, self.context.now())


def _update_device(store: Store, user: User, device_id: int, body: Mapping[str, Any]):
    device = visible_device(store, user, device_id)
    if device is None:
        raise no_such_item()
    fields = editing.device_fields(body, device.unique_id)
    return store.update_device(user, device_id, name=fields.name, group_id=fields.group_id,
                               attributes=fields.attributes)


def visible_device(store: Store, user: User, device_id: int):
    """The device if the user may see it, else None (blocking)."""
    return next((d for d in store.devices(user) if d.id == device_id), None)


class PositionsResource(JsonResource):
    methods = {b"GET": "get"}

    async def get(self, request: IRequest, user: User) -> Any:
        store = self.context.store
        ids = int_params(request, "id")
        device_ids = int_params(request, "deviceId")
        start = time_param(request, "from")
        end = time_param(request, "to")
        if len(device_ids) > 1:
            raise ApiError(400, "deviceId may be given only once")
        if ids and (device_ids or start or end):
            raise ApiError(400, "id cannot be combined with deviceId, from or to")
        if (start is None) != (end is None):
            raise ApiError(400, "from and to must be given together")
        if start is not None and not device_ids:
            raise ApiError(400, "from and to need a deviceId")
        if start is not None and start > end:
            raise ApiError(400, "from must not be after to")

        if ids:
            positions = await self.context.call(store.positions_by_ids, user, ids)
        elif device_ids:
            positions = await self.context.call(
                _device_positions, store, user, device_ids[0], start, end)
            if positions is None:
                raise ApiError(404, f"no device with id {device_ids[0]}")
        else:
            positions = await self.context.call(store.latest_positions, user)
        return [jsonshapes.position_json(position) for position in positions]


class CommandSendResource(JsonResource):
    """POST /api/commands/send: Traccar's body {deviceId, type, attributes}.

    200 with the command when it was sent to the connected device, 202 when it is
    queued until the device connects, 400 when the device's protocol cannot carry
    it (the command is then stored as failed, with the reason)."""

    methods = {b"POST": "post"}

    async def post(self, request: IRequest, user: User) -> Reply:
        if self.context.commands is None:
            raise ApiError(503, "commands are not available on this server")
        body = _json_body(request)
        device_id = body.get("deviceId")
        if not isinstance(device_id, int) or isinstance(device_id, bool):
            raise ApiError(400, "deviceId must be an integer")
        # Visibility first: whether another organisation's device exists, is online or
        # what its protocol takes must not show in the answer to a bad command.
        if not await self.context.call(_may_see_device, self.context.store, user, device_id):
            raise no_such_device(device_id)
        command_type = body.get("type")
        attributes = body.get("attributes")
        attributes = {} if attributes is None else attributes
        if not isinstance(attributes, dict):
            raise ApiError(400, "attributes must be an object")
        _check_command(command_type, attributes, self.context.commands.command_types(device_id))
        command = await self.context.commands.queue(device_id, command_type, attributes, user.id)
        if command.status == "failed":
            raise ApiError(400, f"the device cannot take this command: {command.result}")
        status = 200 if command.status == "sent" else 202
        return Reply(status, jsonshapes.command_json(command))


class CommandTypesResource(JsonResource):
    """GET /api/commands/types?deviceId=N: what the device's protocol can carry
    (all known types while it is not connected)."""

    methods = {b"GET": "get"}

    async def get(self, request: IRequest, user: User) -> Any:
        device_id = single_int_param(request, "deviceId")
        types = COMMAND_TYPES
        if device_id is not None:
            if not await self.context.call(_may_see_device, self.context.store, user, device_id):
                raise no_such_device(device_id)
            if self.context.commands is not None:
                types = self.context.commands.command_types(device_id) or COMMAND_TYPES
        return [{"type": t} for t in sorted(types)]


class CommandLogResource(JsonResource):
    """GET /api/commands/log[?deviceId=N]: sent and queued commands, newest first
    (our own endpoint: Traccar's /api/commands holds saved command templates)."""

    methods = {b"GET": "get"}

    async def get(self, request: IRequest, user: User) -> Any:
        device_ids = int_params(request, "deviceId")
        device_id = device_ids[0] if device_ids else None
        commands = await self.context.call(self.context.store.commands, user, device_id, 100)
        return [jsonshapes.command_json(command) for command in commands]


def _may_see_device(store: Store, user: User, device_id: int) -> bool:
    return any(d.id == device_id for d in store.devices(user))


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


def json_body(request: IRequest, item_id: int | None = None) -> dict[str, Any]:
    """The JSON object in the body; with `item_id` (PUT of an item) its ``id``, when
    present and not 0, must be that id."""
    body = _json_body(request)
    if item_id is not None:
        sent = body.get("id")
        if sent not in (None, 0, item_id) or isinstance(sent, bool):
            shown = repr(sent) if len(repr(sent)) <= 40 else repr(sent)[:40] + "..."
            raise ApiError(400, f"id: the body's id {shown} is not the id in the path ({item_id})")
    return body


def _json_body(request: IRequest) -> dict[str, Any]:
    """The body as a JSON object, through `web.validation.parse_json` (depth, int64,
    finite numbers, no lone surrogates or NUL): its refusals are 400s naming the field."""
    content_type = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if content_type != b"application/json":
        raise ApiError(415, "send the body as application/json")
    request.content.seek(0)
    try:
        body = parse_json(request.content.read())
    except InputError as error:
        raise ApiError(400, str(error)) from None
    if not isinstance(body, dict):
        raise ApiError(400, "the JSON body must be an object")
    return body


def _device_positions(store: Store, user: User, device_id: int, start: dt.datetime | None,
                      end: dt.datetime | None):
    """One device's history (or latest position); None if the user may not see it.

    Runs on the thread pool as one unit, so the visibility check and the read
    cost one hop.
    """
    device = next((d for d in store.devices(user) if d.id == device_id), None)
    if device is None:
        return None
    if start is not None:
        return store.positions(user, device_id, start, end)
    if device.position_id is None:
        return []
    return store.positions_by_ids(user, [device.position_id])


# -- parameters ----------------------------------------------------------------------

def _short(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")


def str_params(request: IRequest, name: str) -> list[str]:
    values = (request.args or {}).get(name.encode("ascii"), [])
    if len(values) > MAX_IDS:
        raise ApiError(400, f"at most {MAX_IDS} values of {name}")
    try:
        return [check_text(name, value.decode("utf-8")) for value in values]
    except UnicodeDecodeError:
        raise ApiError(400, f"{name} is not valid UTF-8") from None
    except InputError as error:
        raise ApiError(400, str(error)) from None


def int_params(request: IRequest, name: str) -> list[int]:
    result = []
    for value in str_params(request, name):
        if not _INT_RE.fullmatch(value.strip()):
            raise ApiError(400, f"{name} must be a non-negative integer, not {_short(value)}")
        result.append(int(value))
    return result


def single_int_param(request: IRequest, name: str) -> int | None:
    """The query parameter `name` as an integer, None when absent; 400 when given twice."""
    values = int_params(request, name)
    if len(values) > 1:
        raise ApiError(400, f"{name} may be given only once")
    return values[0] if values else None


def parse_time(name: str, value: str) -> dt.datetime:
    """An ISO 8601 time with a UTC offset, as an aware UTC datetime."""
    text = value.strip()
    repaired = _SPACE_OFFSET_RE.fullmatch(text)
    if repaired:   # "+02:00" sent unencoded arrives as " 02:00"
        text = f"{repaired[1]}+{repaired[2]}"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, f"{name} is not an ISO 8601 time: {_short(value)}") from None
    if parsed.tzinfo is None:
        raise ApiError(400, f"{name} needs a UTC offset, e.g. 2024-01-01T00:00:00Z")
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:
        raise ApiError(400, f"{name} is out of range: {_short(value)}") from None


def time_param(request: IRequest, name: str) -> dt.datetime | None:
    values = str_params(request, name)
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(400, f"{name} may be given only once")
    return parse_time(name, values[0])


def _form_fields(request: IRequest) -> dict[str, list[str]]:
    """The fields of an application/x-www-form-urlencoded body (not the query)."""
    content_type = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if content_type != b"application/x-www-form-urlencoded":
        raise ApiError(415, "send the form as application/x-www-form-urlencoded")
    request.content.seek(0)
    body = request.content.read()
    try:
        fields = urllib.parse.parse_qs(body.decode("ascii"), keep_blank_values=True,
                                       strict_parsing=False, encoding="utf-8",
                                       errors="strict", max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "malformed form body") from None
    try:
        for name, values in fields.items():
            check_text("form field name", name)
            for value in values:
                check_text(f"form field {name[:40]}", value)
    except InputError as error:
        raise ApiError(400, str(error)) from None
    return fields


def _single(fields: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = fields.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(400, f"form field {name} given more than once")
    return values[0]


__all__ = [
    "GEOJSON_TYPE", "JSON_TYPE", "MAX_BODY_BYTES", "MAX_COMMAND_DATA", "MAX_IDS", "ApiContext",
    "ApiError", "BoundedRequest", "CollectionResource", "CommandLogResource", "CommandSendResource",
    "CommandTypesResource", "DevicesResource", "JsonResource", "JsonRoot", "NotFound",
    "PositionsResource", "Reply", "ServerResource", "SessionResource", "int_params",
    "json_body", "no_such_device", "no_such_item", "parse_time", "single_int_param", "str_params",
    "time_param", "visible_device",
]
