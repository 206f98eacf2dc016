"""Health: ``GET /api/health`` (Traccar's plain "OK" for uptime monitors) and
``GET /api/server/health`` (our own: the counters an operator watches).

- ``/api/health``: no authentication; ``200 OK`` (text/plain) when the database
  answers, ``500`` otherwise.
- ``/api/server/health``: administrators only (401 without credentials, 403 for
  other users); JSON ``{"status", "database", "counters", "quarantine"}`` where
  ``counters`` come from the server (`counters()`: batch writer, device directory,
  rule service ...: see `tracker.app.TrackerServer.counters`) and
  ``quarantine.rows`` is the number of entries in the quarantine table.
  ``/api/server`` itself is served as before (`web.api.ServerResource`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.web import server
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from web.api import ApiContext, ApiError, ServerResource

log = Logger()

Counters = Callable[[], Mapping[str, Any]]


class ServerStatusResource(ServerResource):
    """``/api/server`` and ``/api/server/health``."""

    def __init__(self, context: ApiContext, counters: Counters | None = None) -> None:
        super().__init__(context)
        self._counters = counters or dict

    def route(self, request: IRequest):
        if request.postpath in ([b"health"], [b"health", b""]):
            return {b"GET": "health"}, ()
        return super().route(request)

    async def health(self, request: IRequest, user: None) -> Any:
        caller = await self.context.auth.require_user(request)
        if not caller.administrator:
            raise ApiError(403, "administrators only")
        database = "ok"
        rows = None
        try:
            rows = await self.context.call(self.context.store.quarantine_count)
        except Exception as error:   # the database is what is being checked here
            database = f"unavailable: {type(error).__name__}"
        return {"status": "ok" if database == "ok" else "degraded", "database": database,
                "counters": dict(self._counters()), "quarantine": {"rows": rows}}


class HealthResource(Resource):
    """``/api/health``: Traccar's plain-text check."""

    isLeaf = True

    def __init__(self, context: ApiContext) -> None:
        super().__init__()
        self.context = context

    def render_GET(self, request: IRequest):  # noqa: N802 - twisted.web's name
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        d = deferToThreadPool(self.context.reactor, self.context.threadpool,
                              self.context.store.ping)

        def answer(status: int, body: bytes) -> None:
            if request.finished or request.channel is None:
                return
            request.setResponseCode(status)
            request.write(body)
            request.finish()

        def unavailable(failure) -> None:
            # an outage is what this check reports, not a bug: one line, no traceback
            log.warn("health check: database unavailable: {error}", error=failure.value)
            answer(500, b"database unavailable")

        d.addCallbacks(lambda _: answer(200, b"OK"), unavailable)
        return server.NOT_DONE_YET

    render_HEAD = render_GET  # noqa: N815
