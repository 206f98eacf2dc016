"""The routing layer of the HTTP API: each route is declared once, and that one
declaration gives its routing (a Klein route on twisted.web), its input
validation (pydantic v2 models), its error mapping and its entry in the OpenAPI
document (`web.openapi`).

Declaring a route::

    @route("GET", "/api/devices/{id}", response=DeviceOut)
    async def get_device(call: Call, id: int) -> Any:
        ...

- ``method`` and ``path``: ``{name}`` segments are object ids (1 to 18 ASCII
  digits, so always 64-bit; anything else is the JSON 404 of an unknown path) and
  are passed to the handler as keyword arguments.  A trailing ``/`` is the same
  route; HEAD is served wherever GET is (without the body).  A path that is not
  declared is a JSON 404, a declared path with another method a 405 with
  ``Allow``.
- ``query=`` a `Query` model: the query parameters it declares (by alias, e.g.
  ``from``) are validated by it and it reaches the handler as ``query=``; other
  parameters are ignored, as Traccar does.  Its fields use the parameter types
  below (`Ints`, `OneInt`, `Texts`, `OneText`, `OneTime`, `OneBool`), whose messages
  name the parameter (``deviceId must be a non-negative integer, not 'x'``).
- ``body=`` a `JsonBody` model: the body must be ``application/json`` (415), is
  parsed by `web.validation.parse_json` (the one gate: depth, int64, finite
  numbers, no NUL or lone surrogates, no repeated key) and must be an object; in a
  PUT on an ``{id}`` path a body ``id``, when present and not 0, must be the path's.  Then
  the model validates it: first its `JsonBody.check` (the shared validators of
  `tracker.editing` and `tracker.push.preferences`, so the API and the CLI give the
  same messages), then its declared fields.  The handler gets it as ``body=``
  (``body.checked`` is what the check returned, ``body.raw`` the parsed object).
- ``form=`` a `Form` model: an ``application/x-www-form-urlencoded`` body (415
  otherwise), its fields UTF-8 without NUL.
- ``response=`` the type of the answer (a pydantic model, ``list[Model]``, ...),
  for the document only: the answer itself is built by `web.jsonshapes` and written
  by the one writer here.  ``status=`` the success status (204: no body).
- ``auth=``: ``"user"`` (default; HTTP Basic or the session cookie,
  `web.auth.Authenticator`: 401 / 429), ``"admin"`` (403 for other users) or
  ``"none"`` (the handler may still look at credentials itself).
- ``changes_config=True``: after a successful POST, PUT or DELETE the context's
  ``config_changed`` is called (its failure is logged, never the client's answer).

A handler is a coroutine ``handler(call, **path_ids[, query=][, body=]) -> Reply |
JSON-ready value`` (200).  `Call` carries the request, the `ApiContext` and the
caller; every store call goes through ``call.context.call`` (the thread pool).

Serving a request, in this order: 413 when the body was over `MAX_BODY_BYTES`;
403 for an unsafe method whose ``Origin`` is not its ``Host`` (CSRF, `web.auth`);
authentication; the query; the body; the handler.  Errors are JSON ``{"status",
"error", "message"}``: `ApiError` (its status and headers), a pydantic
``ValidationError`` (400; the message names the field at fault: a parameter, or
the body path like ``attributes.k``), ``AuthenticationFailed`` (401, with the
Basic challenge unless XHR), ``TooManyAttempts`` (429, ``Retry-After``),
``EditError`` (400), ``NotFoundError`` (404), ``InUseError`` (409); anything else
is logged with its traceback and answered 500 without detail.

Writing: one writer (`_write`) for every answer; JSON through
`web.jsonshapes.dumps` (ASCII), ``Cache-Control: no-store``, ``X-Content-Type-
Options: nosniff`` and ``Server`` on every answer, header values as Latin-1 with
control characters replaced (no header injection).  If building or writing an
answer raises (the error answer included), the failure is logged, the client gets
a fixed JSON 500 with ``Connection: close`` (or just the close, when part of the
answer was sent) and the connection is closed.  A client that leaves before its
answer is ready gets nothing written; the handler still runs to its end.

Request paths must be UTF-8 (a segment holding an encoded ``/`` or invalid UTF-8 is
a 404), and the ``Host`` header too (400).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Annotated, Any, Literal

from klein import Klein
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.http_headers import Headers
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import BaseConverter

from tracker.editing import EditError
from tracker.models import User
from tracker.ports import InUseError, NotFoundError, Store
from web import jsonshapes
from web.auth import REALM, UNSAFE_METHODS, AuthenticationFailed, Authenticator, TooManyAttempts, same_origin
from web.validation import InputError, check_text, field_path, parse_json

log = Logger()

MAX_BODY_BYTES = 64 * 1024
MAX_IDS = 1000
JSON_TYPE = b"application/json; charset=utf-8"
GEOJSON_TYPE = b"application/geo+json"   # RFC 7946: no charset parameter (always UTF-8)
TEXT_TYPE = b"text/plain; charset=utf-8"
CONFIG_WRITES = frozenset({"POST", "PUT", "DELETE"})
ID_PATTERN = "[0-9]{1,18}"

Auth = Literal["none", "user", "admin"]
_ERROR_TYPE = "tracker"   # pydantic error type of our own messages (shown as they are)


class ApiError(Exception):
    """An error answer: status, message for the client, extra headers."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def no_such_item() -> ApiError:
    """The 404 of an item path whose object does not exist or is not visible: the
    same answer as an unknown path, so it does not tell which."""
    return ApiError(404, "no such resource")


@dataclasses.dataclass(frozen=True, slots=True)
class Reply:
    status: int = 200
    body: Any = None             # JSON-ready value, or bytes sent as they are; None: no body
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    content_type: bytes = JSON_TYPE   # of a body (GeoJSON: GEOJSON_TYPE)


@dataclasses.dataclass(frozen=True, slots=True)
class ApiContext:
    """What the routes share: the store, where to run it, who is calling."""

    store: Store
    threadpool: Any
    reactor: Any
    auth: Authenticator
    version: str
    commands: Any = None    # tracker.commands.CommandDispatcher; None: commands off
    # called (on the reactor thread) after every successful configuration write, so
    # the running rule engine reloads at once instead of at its next poll
    config_changed: Callable[[], Any] | None = None
    counters: Callable[[], Mapping[str, Any]] = dict   # /api/server/health
    confirmations: Any = None   # tracker.push.confirm.ConfirmationMailer; None: no e-mail

    def call(self, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """Run a blocking store call on the thread pool."""
        return deferToThreadPool(self.reactor, self.threadpool, fn, *args)

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.reactor.seconds(), dt.UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class Call:
    """One request as a handler sees it."""

    request: IRequest
    context: ApiContext
    caller: User | None      # None on ``auth="none"`` routes

    @property
    def user(self) -> User:
        """The authenticated caller (routes with ``auth="user"`` or ``"admin"``)."""
        if self.caller is None:
            raise RuntimeError("this route does not authenticate")
        return self.caller


# -- input models --------------------------------------------------------------------

def refuse(message: str) -> PydanticCustomError:
    """A validation error shown to the client as `message` exactly (it names the field)."""
    return PydanticCustomError(_ERROR_TYPE, "{message}", {"message": message})


@dataclasses.dataclass(frozen=True, slots=True)
class Param:
    """The raw values of one query parameter or form field, with its name."""

    name: str
    values: tuple[bytes | str, ...]


def _short(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")


def _texts_of(value: Any, info: ValidationInfo) -> tuple[str, list[str]]:
    if isinstance(value, Param):
        name, raw = value.name, list(value.values)
    else:   # built in code: a list of texts or one text
        name, raw = info.field_name or "parameter", list(value) if isinstance(value, list) else [value]
    if len(raw) > MAX_IDS:
        raise refuse(f"at most {MAX_IDS} values of {name}")
    texts = []
    for item in raw:
        try:
            text = item.decode("utf-8") if isinstance(item, bytes) else str(item)
            texts.append(check_text(name, text))
        except UnicodeDecodeError:
            raise refuse(f"{name} is not valid UTF-8") from None
        except InputError as error:
            raise refuse(str(error)) from None
    return name, texts


def _single(name: str, texts: list[str]) -> str | None:
    if len(texts) > 1:
        raise refuse(f"{name} may be given only once")
    return texts[0] if texts else None


def _int(name: str, text: str) -> int:
    if not re.fullmatch(ID_PATTERN, text.strip()):
        raise refuse(f"{name} must be a non-negative integer, not {_short(text)}")
    return int(text)


_SPACE_OFFSET_RE = re.compile(r"(.*T[0-9:.,]+) ([0-9]{2}(?::?[0-9]{2})?)")


def parse_time(name: str, value: str) -> dt.datetime:
    """An ISO 8601 time with a UTC offset, as an aware UTC datetime."""
    text = value.strip()
    repaired = _SPACE_OFFSET_RE.fullmatch(text)
    if repaired:   # "+02:00" sent unencoded arrives as " 02:00"
        text = f"{repaired[1]}+{repaired[2]}"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise refuse(f"{name} is not an ISO 8601 time: {_short(value)}") from None
    if parsed.tzinfo is None:
        raise refuse(f"{name} needs a UTC offset, e.g. 2024-01-01T00:00:00Z")
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:
        raise refuse(f"{name} is out of range: {_short(value)}") from None


def _texts(value: Any, info: ValidationInfo) -> list[str]:
    return _texts_of(value, info)[1]


def _one_text(value: Any, info: ValidationInfo) -> str | None:
    return _single(*_texts_of(value, info))


def _ints(value: Any, info: ValidationInfo) -> list[int]:
    name, texts = _texts_of(value, info)
    return [_int(name, text) for text in texts]


def _one_int(value: Any, info: ValidationInfo) -> int | None:
    name, texts = _texts_of(value, info)
    ints = [_int(name, text) for text in texts]
    if len(ints) > 1:
        raise refuse(f"{name} may be given only once")
    return ints[0] if ints else None


def _one_time(value: Any, info: ValidationInfo) -> dt.datetime | None:
    name, texts = _texts_of(value, info)
    text = _single(name, texts)
    return None if text is None else parse_time(name, text)


def _one_bool(value: Any, info: ValidationInfo) -> bool | None:
    name, texts = _texts_of(value, info)
    text = _single(name, texts)
    if text is None:
        return None
    if text.strip().lower() not in ("true", "false"):
        raise refuse(f"{name} must be true or false, not {_short(text)}")
    return text.strip().lower() == "true"


Texts = Annotated[list[str], BeforeValidator(_texts)]
"""Every value of a repeatable text parameter (at most `MAX_IDS`)."""
OneText = Annotated[str | None, BeforeValidator(_one_text)]
"""A text parameter given at most once."""
Ints = Annotated[list[int], BeforeValidator(_ints)]
"""Every value of a repeatable id parameter (each 0 to 18 digits' worth)."""
OneInt = Annotated[int | None, BeforeValidator(_one_int)]
"""An id parameter given at most once."""
OneTime = Annotated[dt.datetime | None, BeforeValidator(_one_time)]
"""An ISO 8601 time with a UTC offset, given at most once."""
OneBool = Annotated[bool | None, BeforeValidator(_one_bool)]
"""``true`` or ``false`` (any case), given at most once."""


class Query(BaseModel):
    """Base of query models: its fields are the parameters (alias = parameter name)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Form(Query):
    """Base of form models (``application/x-www-form-urlencoded`` bodies)."""


class JsonBody(BaseModel):
    """Base of JSON body models.  `check` (override it) runs first on the parsed
    object and raises `ValueError` (`EditError` ...) whose message names the field;
    what it returns is ``checked``.  Then the declared fields are validated; they
    document the body and never refuse what `check` accepted.  Keys not declared
    are kept (Traccar sends whole objects back)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)
    _checked: Any = PrivateAttr(default=None)

    @classmethod
    def check(cls, body: dict[str, Any]) -> Any:
        return None

    @model_validator(mode="wrap")
    @classmethod
    def _check_first(cls, data: Any, handler: Callable[[Any], Any]) -> Any:
        checked = None
        if isinstance(data, dict):
            try:
                checked = cls.check(data)
            except ValueError as error:
                raise refuse(str(error)) from None
        model = handler(data)
        if isinstance(data, dict):
            model._raw = data
            model._checked = checked
        return model

    @property
    def raw(self) -> dict[str, Any]:
        """The body as `web.validation.parse_json` returned it."""
        return self._raw

    @property
    def checked(self) -> Any:
        return self._checked


# Fields whose value `JsonBody.check` validates (or ignores, as Traccar does) in every
# shape the body may take: the declared type documents them and refuses nothing.
CheckedText = Annotated[Any, WithJsonSchema({"type": "string"})]
CheckedId = Annotated[Any, WithJsonSchema({"type": "integer", "minimum": 0})]
CheckedObject = Annotated[Any, WithJsonSchema({"type": "object"})]
CheckedIds = Annotated[Any, WithJsonSchema({"type": "array", "items": {"type": "integer"}})]


def validation_message(error: ValidationError) -> str:
    """The 400 message of a pydantic error: ours as they are, pydantic's prefixed with
    the path of the field at fault (``attributes.k: ...``)."""
    first = error.errors(include_url=False)[0]
    if first["type"] == _ERROR_TYPE:
        return str(first["msg"])
    place = field_path([part for part in first["loc"] if isinstance(part, str | int)])
    return f"{place}: {first['msg']}"


# -- declarations --------------------------------------------------------------------

Handler = Callable[..., Awaitable[Any]]


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """One declared route (see the module docstring)."""

    method: str
    path: str                        # OpenAPI template: /api/devices/{id}
    handler: Handler
    query: type[Query] | None = None
    body: type[JsonBody] | None = None
    form: type[Form] | None = None
    response: Any = None             # type of the answer, for the document
    status: int = 200
    auth: Auth = "user"
    changes_config: bool = False
    content_types: tuple[str, ...] = ("application/json",)   # of the answer, for the document
    errors: tuple[int, ...] = ()     # further documented error statuses

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", self.path)

    @property
    def rule(self) -> str:
        """The werkzeug rule (``{id}`` -> ``<id:id>``)."""
        return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", r"<id:\1>", self.path)

    @property
    def summary(self) -> str:
        doc = (self.handler.__doc__ or "").strip()
        return " ".join(doc.split("\n\n")[0].split())


class RouteTable:
    """The declared routes, in declaration order."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(self, method: str, path: str, *, query: type[Query] | None = None,
              body: type[JsonBody] | None = None, form: type[Form] | None = None,
              response: Any = None, status: int = 200, auth: Auth = "user",
              changes_config: bool = False, content_types: Sequence[str] = ("application/json",),
              errors: Sequence[int] = ()) -> Callable[[Handler], Handler]:
        def declare(handler: Handler) -> Handler:
            new = Route(method.upper(), path, handler, query, body, form, response, status, auth,
                        changes_config, tuple(content_types), tuple(errors))
            if any((r.method, r.rule) == (new.method, new.rule) for r in self.routes):
                raise ValueError(f"{new.method} {new.path} is declared twice")
            self.routes.append(new)
            return handler
        return declare


API = RouteTable()
"""Every route of the site; `web.site` imports the modules that declare them."""
route = API.route


# -- response writing ----------------------------------------------------------------

def _start_headers(request: IRequest) -> None:
    request.setHeader(b"Server", b"tracker")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")


def _write(request: IRequest, reply: Reply) -> None:
    """Write `reply` and finish.  The body is serialised first, so a value that cannot
    be serialised raises before anything of the answer is set."""
    if reply.body is None:
        body = None
    elif isinstance(reply.body, bytes):
        body = reply.body
    else:
        body = jsonshapes.dumps(reply.body)
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
        if not request.finished and not request.startedWriting:  # type: ignore[attr-defined]
            request.setResponseCode(500)
            request.responseHeaders = Headers()
            _start_headers(request)
            request.setHeader(b"Connection", b"close")
            request.setHeader(b"Content-Type", JSON_TYPE)
            request.setHeader(b"Content-Length", str(len(_LAST_RESORT_BODY)).encode("ascii"))
            request.write(_LAST_RESORT_BODY)
        if not request.finished:  # type: ignore[attr-defined]
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
    if isinstance(error, ValidationError):
        return error_reply(400, validation_message(error))
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


# -- serving -----------------------------------------------------------------------------

class _ErrorAnswer(Resource):
    """A JSON error answer (what Klein renders for a path or method not declared)."""

    isLeaf = True

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__()
        self.status, self.message, self.headers = status, message, dict(headers or {})

    def render(self, request: IRequest) -> int:
        _answer(request, lambda: error_reply(self.status, self.message, self.headers))
        return server.NOT_DONE_YET


class _Serve(Resource):
    """Serves one matched route: the steps of the module docstring, then the reply."""

    isLeaf = True

    def __init__(self, route: Route, context: ApiContext, ids: Mapping[str, int]):
        super().__init__()
        self.route, self.context, self.ids = route, context, dict(ids)

    def render(self, request: IRequest) -> int:
        disconnected: list[bool] = []
        finished: Deferred[None] = request.notifyFinish()  # type: ignore[attr-defined]
        finished.addErrback(lambda _: disconnected.append(True))

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

        d = Deferred.fromCoroutine(self._serve(request))
        d.addCallbacks(done, failed)
        d.addErrback(broken)
        return server.NOT_DONE_YET

    async def _serve(self, request: IRequest) -> Any:
        route, context = self.route, self.context
        if getattr(request, "body_too_large", False):
            raise ApiError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
        method = request.method.upper()
        if method in UNSAFE_METHODS and not same_origin(
                request.getHeader(b"origin"), request.getHeader(b"host")):
            raise ApiError(403, "cross-origin request refused (Origin does not match Host)")
        caller = None
        if route.auth != "none":
            caller = await context.auth.require_user(request)
            if route.auth == "admin" and not caller.administrator:
                raise ApiError(403, "administrators only")
        arguments: dict[str, Any] = dict(self.ids)
        if route.query is not None:
            arguments["query"] = route.query.model_validate(
                _params(request.args or {}, route.query))
        if route.body is not None:
            item_id = self.ids.get("id") if route.method == "PUT" else None
            arguments["body"] = route.body.model_validate(_json_body(request, item_id))
        if route.form is not None:
            fields = _form_fields(request)
            arguments["body"] = route.form.model_validate(
                {name: Param(name, tuple(values)) for name, values in fields.items()})
        result = await route.handler(Call(request, context, caller), **arguments)
        if route.changes_config and route.method in CONFIG_WRITES:
            _config_changed(context)
        return result


def _params(args: Mapping[bytes, Sequence[bytes]], model: type[Query]) -> dict[str, Param]:
    """The query parameters `model` declares, by their names."""
    found = {}
    for name, field in model.model_fields.items():
        alias = field.alias or name
        values = args.get(alias.encode("ascii"))
        if values is not None:
            found[alias] = Param(alias, tuple(values))
    return found


def _json_body(request: IRequest, item_id: int | None) -> dict[str, Any]:
    """The body as a JSON object, through `web.validation.parse_json` (depth, int64,
    finite numbers, no lone surrogates or NUL): its refusals are 400s naming the field.
    With `item_id` (a PUT of an item) its ``id``, when present and not 0, must be that id."""
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
    if item_id is not None:
        sent = body.get("id")
        if sent not in (None, 0, item_id) or isinstance(sent, bool):
            shown = repr(sent) if len(repr(sent)) <= 40 else repr(sent)[:40] + "..."
            raise ApiError(400, f"id: the body's id {shown} is not the id in the path ({item_id})")
    return body


def _form_fields(request: IRequest) -> dict[str, list[str]]:
    """The fields of an application/x-www-form-urlencoded body (not the query).  No
    body and no Content-Type is an empty form (its model then says what is missing):
    Traccar's optional forms, ``POST /api/session/token``, are often sent so."""
    raw_type = request.getHeader(b"content-type")
    request.content.seek(0)
    body = request.content.read()
    if raw_type is None and not body:
        return {}
    content_type = (raw_type or b"").split(b";")[0].strip().lower()
    if content_type != b"application/x-www-form-urlencoded":
        raise ApiError(415, "send the form as application/x-www-form-urlencoded")
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


def form_field(value: Any, info: ValidationInfo) -> str | None:
    """A form field given at most once (`Form` models: ``Annotated[str | None,
    BeforeValidator(form_field)]``)."""
    name, texts = _texts_of(value, info)
    if len(texts) > 1:
        raise refuse(f"form field {name} given more than once")
    return texts[0] if texts else None


FormText = Annotated[str | None, BeforeValidator(form_field)]


def _config_changed(context: ApiContext) -> None:
    """Tell the running server; its failure is logged, never the client's answer
    (the write is committed, and the server's own poll sees it anyway)."""
    notify = context.config_changed
    if notify is None:
        return
    try:
        result = notify()
    except Exception:
        log.failure("config_changed failed")
        return
    if isinstance(result, Deferred):
        result.addErrback(lambda f: log.failure("config_changed failed", f))


class _IdConverter(BaseConverter):
    """``{name}`` path segments: 1 to 18 ASCII digits (always a 64-bit id)."""

    regex = ID_PATTERN

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: Any) -> str:
        return str(int(value))


def _allow(methods: Iterable[str]) -> str:
    """The ``Allow`` header: the declared methods sorted, then HEAD when GET is there."""
    declared = sorted(m for m in methods if m != "HEAD")
    return ", ".join(declared + (["HEAD"] if "GET" in declared else []))


def klein_app(table: RouteTable, context: ApiContext) -> Klein:
    """A Klein app serving every route of `table` with `context`."""
    app = Klein()
    app.url_map.converters["id"] = _IdConverter
    app.url_map.strict_slashes = False    # /api/devices/ is /api/devices
    app.url_map.merge_slashes = False     # /api//devices is unknown, as it always was

    for declared in table.routes:
        def endpoint(request: IRequest, _route: Route = declared, **ids: int) -> Resource:
            return _Serve(_route, context, ids)

        app.route(declared.rule, methods=[declared.method],
                  endpoint=f"{declared.method} {declared.path}")(endpoint)

    @app.handle_errors(MethodNotAllowed)
    def not_allowed(request: IRequest, failure: Failure) -> Resource:
        error = failure.value
        methods = (error.valid_methods if isinstance(error, MethodNotAllowed) else None) or []
        return _ErrorAnswer(405, "method not allowed", {"Allow": _allow(methods)})

    @app.handle_errors(HTTPException)
    def not_found(request: IRequest, failure: Failure) -> Resource:
        return _ErrorAnswer(404, "no such resource")

    return app


class ApiRoot(Resource):
    """The site's root: every path goes to the Klein app (a leaf: Klein routes the
    whole path), after the checks Klein's URL decoding needs (see the module docstring)."""

    isLeaf = True

    def __init__(self, app: Klein):
        super().__init__()
        self._klein = app.resource()

    def render(self, request: IRequest) -> Any:
        _start_headers(request)
        segments = request.postpath or []
        try:
            request.getRequestHostname().decode("utf-8")
        except UnicodeDecodeError:
            return _ErrorAnswer(400, "the Host header is not valid UTF-8").render(request)
        try:
            for segment in segments:
                segment.decode("utf-8")
        except UnicodeDecodeError:
            return _ErrorAnswer(404, "no such resource").render(request)
        if any(b"/" in segment for segment in segments):   # an encoded / (%2F)
            return _ErrorAnswer(404, "no such resource").render(request)
        return self._klein.render(request)


def build_resource(table: RouteTable, context: ApiContext) -> Resource:
    """The resource that serves `table` (the root of the site)."""
    return ApiRoot(klein_app(table, context))


__all__ = [
    "API", "CONFIG_WRITES", "GEOJSON_TYPE", "JSON_TYPE", "MAX_BODY_BYTES", "MAX_IDS", "TEXT_TYPE",
    "ApiContext", "ApiError", "ApiRoot", "Call", "CheckedId", "CheckedIds", "CheckedObject",
    "CheckedText", "Form", "FormText", "Ints", "JsonBody", "OneBool", "OneInt",
    "OneText", "OneTime", "Param", "Query", "Reply", "Route", "RouteTable", "Texts",
    "build_resource", "error_reply", "form_field", "klein_app", "no_such_item", "parse_time",
    "refuse", "route", "validation_message",
]
