"""twisted.web with limits, for every HTTP port: the web API and pages
(`web.site`) and device HTTP ports (`tracker.http_adapter`).

Connection limits (`BoundedSite`): at most
`max_connections` open connections per site (the next one is answered 503 and
closed at once, before it is read); the request line and headers must be complete
within `header_timeout_s` of the connection, or, on a kept-alive connection, of
the end of the previous response (else the connection is closed); the body is
capped (`BoundedRequest`) and an idle timeout (`timeout` of the Site) closes a
connection silent that long.  Log lines about connections (limit reached, slow
header, idle close) are rate limited per client host (`tracker.lograte`).
HTTP/2 is not offered (no ALPN), so every connection is an HTTP/1.x channel.
"""

from __future__ import annotations

from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, server

from tracker.lograte import RateLimitedLog

log = Logger()


class BoundedRequest(server.Request):
    """A request whose body is capped at `max_body_bytes`; beyond it the body is
    read and dropped and `body_too_large` is set (twisted.web would otherwise
    buffer any body, spilling to a temporary file)."""

    max_body_bytes = 64 * 1024
    body_too_large = False
    _body_bytes = 0

    def gotLength(self, length):
        if length is not None and length > self.max_body_bytes:
            self.body_too_large = True
            length = 0
        self._body_bytes = 0
        super().gotLength(length)

    def handleContentChunk(self, data):
        self._body_bytes += len(data)
        if self._body_bytes > self.max_body_bytes:
            self.body_too_large = True
        if not self.body_too_large:
            super().handleContentChunk(data)


_OVER_CAPACITY_BODY = b"too many connections, retry later\n"
OVER_CAPACITY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: " + str(len(_OVER_CAPACITY_BODY)).encode("ascii") + b"\r\n"
    b"Connection: close\r\n\r\n" + _OVER_CAPACITY_BODY)
"""What a connection beyond the site's cap gets before it is closed."""


class BoundedHTTPChannel(http.HTTPChannel):
    """An HTTP/1.x channel with the limits of its `BoundedSite` (`self.factory`):
    the connection cap and the header deadline; see the module docstring."""

    _refused = False     # over the cap: answered 503, nothing read
    _counted = False     # counted in the site's connections (until connectionLost)
    _header_deadline = None
    _abort_call = None
    transport: ITCPTransport   # set by Twisted before connectionMade

    def connectionMade(self) -> None:
        site = self.factory
        site.connections += 1
        self._counted = True
        if site.connections > site.max_connections:
            self._refused = True
            if site.log_allowed("connection limit", self._host()):
                log.warn("{site}: connection limit {limit} reached, refusing {remote}",
                         site=site.name, limit=site.max_connections, remote=self._host())
            self.transport.write(OVER_CAPACITY_RESPONSE)
            self.transport.loseConnection()
            return
        super().connectionMade()
        self._arm_header_deadline()

    def dataReceived(self, data: bytes) -> None:
        if not self._refused:
            super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        self._cancel_header_deadline()
        super().allHeadersReceived()

    def requestDone(self, request) -> None:
        # Armed first: the next request may already be buffered and complete at once.
        if self.persistent:
            self._arm_header_deadline()
        super().requestDone(request)

    def timeoutConnection(self) -> None:
        """Idle timeout (twisted.web logs every one; this log is rate limited)."""
        if self.factory.log_allowed("idle close", self._host()):
            log.info("{site}: connection from {remote} idle, closing", site=self.factory.name,
                     remote=self._host())
        self._close()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_header_deadline()
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self._abort_call = None
        if self._counted:
            self._counted = False
            self.factory.connections -= 1
        super().connectionLost(reason)

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        timeout = self.factory.header_timeout_s
        if timeout is not None:
            self._header_deadline = self.callLater(timeout, self._header_too_slow)

    def _cancel_header_deadline(self) -> None:
        deadline, self._header_deadline = self._header_deadline, None
        if deadline is not None and deadline.active():
            deadline.cancel()

    def _header_too_slow(self) -> None:
        self._header_deadline = None
        if self.factory.log_allowed("slow header", self._host()):
            log.info("{site}: request headers from {remote} not complete in {timeout} s, closing",
                     site=self.factory.name, remote=self._host(),
                     timeout=self.factory.header_timeout_s)
        self._close()

    def _close(self) -> None:
        """Close once pending output is written; abort if that takes abortTimeout."""
        self.setTimeout(None)
        if self.abortTimeout is not None and self._abort_call is None:
            self._abort_call = self.callLater(self.abortTimeout, self.transport.abortConnection)
        self.loseConnection()

    def _host(self) -> str:
        peer = self.transport.getPeer()
        return str(getattr(peer, "host", peer))


class BoundedSite(server.Site):
    """A Site whose connections are `BoundedHTTPChannel`s: at most
    `max_connections` open at once (`connections` counts them), request headers
    within `header_timeout_s` (None: no header deadline).  `name` names the site
    in log lines; `limited_log` (default: a new one on the site's reactor) rate
    limits them."""

    # Site.buildProtocol calls protocol() (twisted types it as the HTTP/1-or-2 wrapper).
    protocol = BoundedHTTPChannel   # type: ignore[assignment]

    def __init__(self, resource, *, max_connections: int, header_timeout_s: float | None,
                 name: str = "web", limited_log: RateLimitedLog | None = None,
                 **site_options) -> None:
        super().__init__(resource, **site_options)
        if max_connections < 1:
            raise ValueError(f"{name}: max_connections must be >= 1, not {max_connections}")
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.name = name
        self.connections = 0
        self.limited_log = limited_log if limited_log is not None else RateLimitedLog(self.reactor)

    def log_allowed(self, kind: str, host: str) -> bool:
        return self.limited_log.allow(f"{self.name} {kind}", host)


__all__ = ["OVER_CAPACITY_RESPONSE", "BoundedHTTPChannel", "BoundedRequest", "BoundedSite"]
