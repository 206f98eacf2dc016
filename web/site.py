"""Assembles the twisted.web resource tree: ``/api/...`` (see `web.api`).

Pages and the WebSocket will hang further children on the root returned here
(``site.resource``); anything not claimed answers a JSON 404.
"""

from __future__ import annotations

import importlib.metadata

from twisted.web.server import Site

from tracker.storage.api import Store
from web.api import (
    ApiContext,
    BoundedRequest,
    CommandLogResource,
    CommandSendResource,
    CommandTypesResource,
    DevicesResource,
    JsonRoot,
    PositionsResource,
    ServerResource,
    SessionResource,
)
from web.auth import Authenticator

IDLE_TIMEOUT_S = 60


def server_version() -> str:
    try:
        return importlib.metadata.version("tracker")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def build_site(store: Store, threadpool, reactor, *, secure_cookies: bool = False,
               commands=None) -> Site:
    """The HTTP site.

    `threadpool` runs every store call (a started `twisted.python.threadpool.ThreadPool`
    or anything with its ``callInThreadWithCallback``); `reactor` provides the
    clock (sessions' "now", device status, rate limiting, idle timeouts) and
    ``callFromThread``.  `secure_cookies` adds ``Secure`` to the session cookie:
    set it when the site is served over TLS (directly or behind a proxy).
    `commands` (a tracker.commands.CommandDispatcher) backs /api/commands.
    """
    auth = Authenticator(store, threadpool, reactor, secure_cookies=secure_cookies)
    context = ApiContext(store=store, threadpool=threadpool, reactor=reactor, auth=auth,
                         version=server_version(), commands=commands)
    api = JsonRoot()
    api.putChild(b"server", ServerResource(context))
    api.putChild(b"session", SessionResource(context))
    api.putChild(b"devices", DevicesResource(context))
    api.putChild(b"positions", PositionsResource(context))
    commands_root = JsonRoot()
    commands_root.putChild(b"send", CommandSendResource(context))
    commands_root.putChild(b"types", CommandTypesResource(context))
    commands_root.putChild(b"log", CommandLogResource(context))
    api.putChild(b"commands", commands_root)
    root = JsonRoot()
    root.putChild(b"api", api)

    site = Site(root, requestFactory=BoundedRequest, parsePOSTFormSubmission=False,
                reactor=reactor, timeout=IDLE_TIMEOUT_S)
    site.displayTracebacks = False
    return site


__all__ = ["build_site", "server_version"]
