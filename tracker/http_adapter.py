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

Connection limits: `tracker.bounded_http.BoundedSite` (shared with the web site).
"""

from __future__ import annotations

from twisted.logger import Logger
from twisted.web import resource, server

from protocols import HttpRequest, ProtocolError
from tracker.adapters import DeviceChannel, Ingest, frame_hex, log_allowed
from tracker.bounded_http import BoundedRequest, BoundedSite

log = Logger()


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
            # HTTP codecs decode an HttpRequest; protocols.base.Session types it bytes.
            frame = session.decode_frame(http_request,  # type: ignore[arg-type]
                                         self.ingest.directory.now())
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
