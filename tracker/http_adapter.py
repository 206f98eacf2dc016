"""The HTTP adapter: serves codecs whose devices report in HTTP requests (OsmAnd).

Each request is one frame: the codec session decodes an `HttpRequest`, the
device is identified from the id the request carries, and the response is
written only after the data is stored (store-then-ack, as on TCP):

- 200 with the codec's reply body: stored (phone apps then drop their copy);
- 400: the codec refused the request (bad values), with the reason, or the
  request names no device (Traccar answers the same);
- 400 also when the data cannot be stored for good (a value no database takes,
  e.g. a NUL in a parameter): the request is kept in the quarantine table;
- 403: unknown device, refused by the configuration (recorded for the admin);
- 413: body over the codec's frame size cap;
- 503: storage failed or is overloaded; the app keeps the report and retries.

Connection limits (`BoundedSite`, also used by the web site, `web.site`): at most
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

from twisted.logger import Logger
from twisted.web import http, resource, server

from protocols import HttpRequest, ProtocolError
from tracker.adapters import DeviceChannel, Ingest, frame_hex, log_allowed
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

    def connectionLost(self, reason) -> None:
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

    protocol = BoundedHTTPChannel

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


class DeviceHttpResource(resource.Resource):
    """Every path and method of the protocol's port; see the module docstring."""

    isLeaf = True

    def __init__(self, ingest: Ingest) -> None:
        super().__init__()
        # A request is no lasting channel to the device: no downlink commands (so a
        # request costs no command lookup in the database) and no deviceOffline when
        # it ends (the rule engine marks HTTP devices unknown after a silence).
        self.ingest = Ingest(ingest.codec, ingest.directory, ingest.writer, ingest.rules,
                             options=ingest.options, connections=False)

    def render(self, request):
        remote = f"{request.getClientAddress().host}:{request.getClientAddress().port}"
        if getattr(request, "body_too_large", False):
            return _answer(request, 413, b"request body too large\n")
        http_request = _http_request(request)
        session = self.ingest.codec.new_session(self.ingest.options)
        try:
            frame = session.decode_frame(http_request, self.ingest.directory.now())
        except ProtocolError as error:
            if log_allowed(self.ingest, "bad request", remote):
                log.warn("{protocol} bad request from {remote}: {error}; {hex}",
                         protocol=self.ingest.codec.name, remote=remote, error=error,
                         hex=frame_hex(http_request.url.encode("utf-8", "replace")
                                       + http_request.body))
            return _answer(request, 400, f"{error}\n".encode())
        if not any(getattr(message, "unique_id", None) for message in frame.messages):
            return _answer(request, 400, b"the request names no device\n")
        replies: list[bytes] = []
        channel = DeviceChannel(self.ingest, session, remote, replies.append, lambda: None)
        channel.frames_received([frame])
        channel.flushed().addCallback(lambda _: _finish(request, channel, replies))
        return server.NOT_DONE_YET


def _http_request(request) -> HttpRequest:
    headers = {name.decode("latin-1"): value.decode("latin-1")
               for name, values in request.requestHeaders.getAllRawHeaders()
               for value in values[-1:]}
    request.content.seek(0)
    return HttpRequest(method=request.method.decode("ascii", "replace"),
                       url=request.uri.decode("utf-8", "replace"),
                       headers=headers, body=request.content.read())


def _finish(request, channel: DeviceChannel, replies: list[bytes]) -> None:
    if request.finished or request.channel is None:   # the client went away
        return
    if channel.refused is not None:
        _answer(request, 400, f"refused, not stored: {channel.refused}\n".encode(
            "ascii", "backslashreplace"), finish=True)
    elif channel.closed and channel.device is None:
        _answer(request, 403, b"unknown device\n", finish=True)
    elif channel.closed:
        _answer(request, 503, b"not stored, retry later\n", finish=True)
    else:
        _answer(request, 200, b"".join(replies), finish=True)


def _answer(request, status: int, body: bytes, finish: bool = False):
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    request.setHeader(b"Content-Length", str(len(body)).encode("ascii"))
    if not finish:
        return body
    request.write(body)
    request.finish()
    return None


def device_http_site(ingest: Ingest, reactor, idle_timeout_s: float = 60.0, *,
                     max_connections: int = 10_000,
                     header_timeout_s: float | None = 10.0) -> BoundedSite:
    """The Site for one HTTP protocol's port: the body capped at the codec's frame
    size, at most `max_connections` connections, headers within
    `header_timeout_s` and `idle_timeout_s` of silence at most (seconds)."""
    request_factory = type("DeviceRequest", (BoundedRequest,),
                           {"max_body_bytes": ingest.codec.max_frame_bytes})
    site = BoundedSite(DeviceHttpResource(ingest), max_connections=max_connections,
                       header_timeout_s=header_timeout_s, name=ingest.codec.name,
                       limited_log=ingest.directory.limited_log,
                       requestFactory=request_factory, reactor=reactor,
                       timeout=idle_timeout_s)
    site.displayTracebacks = False
    site.noisy = False
    return site
