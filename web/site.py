"""Assembles the site: every route declared with `web.routes.route` (in `web.api`,
`web.config_api`, `web.notifications_api`, `web.health` and `web.openapi`) served
by one Klein app (`web.routes.build_resource`), on a `BoundedSite`.

``/api/socket`` (Traccar's WebSocket of live updates, `web.live`) is served
beside the Klein app when `build_site` gets a `web.live.LiveHub`.  Pages will be
declared as further routes; anything not declared answers a JSON 404.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from typing import Any

from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import Site

from tracker.bounded_http import BoundedRequest, BoundedSite
from tracker.ports import Store
from tracker.push.confirm import ConfirmationMailer

# The modules that declare the routes (imported for their declarations).
from web import api, config_api, health, notifications_api, openapi  # noqa: F401
from web.auth import Authenticator
from web.health import Counters
from web.live import SOCKET_PATH, LiveHub, LiveResource
from web.routes import API, ApiContext, build_resource

IDLE_TIMEOUT_S = 60


def server_version() -> str:
    try:
        return importlib.metadata.version("tracker")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def build_site(store: Store, threadpool, reactor, *, secure_cookies: bool = False,
               commands=None, config_changed: Callable[[], Any] | None = None,
               max_connections: int = 1_000, header_timeout_s: float | None = 10.0,
               counters: Counters | None = None,
               confirmations: ConfirmationMailer | None = None,
               live: LiveHub | None = None) -> Site:
    """The HTTP site.

    `threadpool` runs every store call (a started `twisted.python.threadpool.ThreadPool`
    or anything with its ``callInThreadWithCallback``); `reactor` provides the
    clock (sessions' "now", device status, rate limiting, idle timeouts) and
    ``callFromThread``.  `secure_cookies` adds ``Secure`` to the session cookie:
    set it when the site is served over TLS (directly or behind a proxy).
    `commands` (a tracker.commands.CommandDispatcher) backs /api/commands.
    `config_changed` is called after every successful configuration write through
    the API (geofences, groups, calendars, rules, permissions, device settings), so
    the running rule engine reloads at once.
    Connection limits (`tracker.bounded_http.BoundedSite`): at most
    `max_connections` open connections (the next is answered 503 and closed), the
    request line and headers complete within `header_timeout_s` seconds of the
    connection or of the previous response (None: no such deadline), and
    `IDLE_TIMEOUT_S` of silence at most.
    `counters` (no arguments, a mapping of names to numbers) feeds
    ``/api/server/health``; `confirmations` mails the codes that confirm e-mail
    push targets (None: e-mail targets cannot be registered through the API).
    `live` (a `web.live.LiveHub`, fed by the batch writer) serves the WebSocket
    ``/api/socket``; None: that path is a 404 like any other not declared.
    """
    auth = Authenticator(store, threadpool, reactor, secure_cookies=secure_cookies)
    context = ApiContext(store=store, threadpool=threadpool, reactor=reactor, auth=auth,
                         version=server_version(), commands=commands,
                         config_changed=config_changed, counters=counters or dict,
                         confirmations=confirmations)
    root = build_resource(API, context)
    if live is not None:
        root = _SiteRoot(root, LiveResource(live, auth))

    site = BoundedSite(root, max_connections=max_connections, header_timeout_s=header_timeout_s,
                       name="web", requestFactory=BoundedRequest,
                       parsePOSTFormSubmission=False, reactor=reactor, timeout=IDLE_TIMEOUT_S)
    site.displayTracebacks = False
    return site


class _SiteRoot(Resource):
    """``/api/socket`` to the WebSocket, every other path to the API (both leaves:
    each sees the whole path)."""

    isLeaf = True

    def __init__(self, api_root: Resource, socket: Resource) -> None:
        super().__init__()
        self._api, self._socket = api_root, socket

    def render(self, request: IRequest) -> Any:
        path = tuple(request.postpath or ())
        if path in (SOCKET_PATH, (*SOCKET_PATH, b"")):
            return self._socket.render(request)
        return self._api.render(request)


__all__ = ["build_site", "server_version"]
