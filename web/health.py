"""Health: ``GET /api/health`` (Traccar's plain "OK" for uptime monitors) and
``GET /api/server/health`` (our own: the counters an operator watches).

- ``/api/health``: no authentication; ``200 OK`` (text/plain) when the database
  answers, ``500`` otherwise.
- ``/api/server/health``: administrators only (401 without credentials, 403 for
  other users); JSON ``{"status", "database", "counters", "quarantine"}`` where
  ``counters`` come from the server (``ApiContext.counters``: batch writer, device
  directory, rule service ...: see `tracker.app.TrackerServer.counters`) and
  ``quarantine.rows`` is the number of entries in the quarantine table.
  ``/api/server`` itself is `web.api.get_server`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.logger import Logger

from web.routes import TEXT_TYPE, Call, Reply, route
from web.schemas import HealthOut

log = Logger()

Counters = Callable[[], Mapping[str, Any]]


@route("GET", "/api/server/health", response=HealthOut, auth="admin")
async def server_health(call: Call) -> Any:
    """Our own: database state, the server's counters and the quarantine's size
    (administrators only)."""
    context = call.context
    database = "ok"
    rows = None
    try:
        rows = await context.call(context.store.quarantine_count)
    except Exception as error:   # the database is what is being checked here
        database = f"unavailable: {type(error).__name__}"
    return {"status": "ok" if database == "ok" else "degraded", "database": database,
            "counters": dict(context.counters()), "quarantine": {"rows": rows}}


@route("GET", "/api/health", response=str, auth="none", content_types=("text/plain",),
       errors=(500,))
async def health(call: Call) -> Reply:
    """Traccar's plain-text check: ``OK`` when the database answers, else a 500."""
    context = call.context
    try:
        await context.call(context.store.ping)
    except Exception as error:
        # an outage is what this check reports, not a bug: one line, no traceback
        log.warn("health check: database unavailable: {error}", error=error)
        return Reply(500, b"database unavailable", content_type=TEXT_TYPE)
    return Reply(200, b"OK", content_type=TEXT_TYPE)


__all__ = ["Counters", "health", "server_health"]
