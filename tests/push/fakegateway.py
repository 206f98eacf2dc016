"""A fake push gateway: a real HTTP/1.1 server on loopback, in a thread.

Channel tests point a notifier's base URL at ``gateway.url`` and get real HTTP:
the fake checks authentication and request shape as the real service does and
answers with that service's real success and error bodies.  A subclass (one per
service, in tests/push/fake_<channel>.py) implements ``handle(request)``;
``script`` queues canned answers that take precedence (to play quota errors, 5xx
...), and ``received`` keeps every request that reached the gateway.

    with FakeFcm() as gateway:
        notifier = FcmNotifier({... "base_url": gateway.url})
        ...
        assert gateway.received[-1].json["message"]["token"] == "tok"

Client timeouts: ``gateway.stall(path_suffix, max_s=2.0)`` holds back every later
request whose path (query string aside) ends with ``path_suffix`` ("" = all of them)
for up to ``max_s`` seconds before it is answered; ``gateway.release()`` ends the stall
and lets held requests go on at once (``stop()`` releases too).  The request is in
``received`` while it is held.

    gateway.stall(":send")                      # the token request still answers at once
    assert notifier.send(target, message).error == "timeout"
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str                     # with the query string
    headers: dict[str, str]       # header names lower-cased
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any = None              # dict/list -> JSON; str/bytes sent as they are
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


class FakeGateway:
    """Base of the fakes; see the module docstring."""

    def __init__(self) -> None:
        self.received: list[Request] = []
        self.script: deque[Answer] = deque()
        self._lock = threading.Lock()
        self._stall: tuple[str, float, threading.Event] | None = None   # (path suffix, max s, release)
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in separate writes: without TCP_NODELAY, Nagle
            # and the client's delayed ACK add ~40 ms to every answer.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(self.command, self.path,
                                  {k.lower(): v for k, v in self.headers.items()},
                                  self.rfile.read(length) if length else b"")
                with gateway._lock:
                    gateway.received.append(request)
                    scripted = gateway.script.popleft() if gateway.script else None
                gateway._hold(request)
                answer = scripted or gateway.handle(request)
                body = answer.body
                if isinstance(body, dict | list):
                    body = json.dumps(body).encode()
                    content_type = "application/json;charset=UTF-8"
                else:
                    body = body.encode() if isinstance(body, str) else (body or b"")
                    content_type = "text/plain"
                try:
                    self.send_response(answer.status)
                    headers = {"Content-Type": content_type, **answer.headers}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):   # the client gave up (timeout tests)
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:   # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # Poll for shutdown every 20 ms (the default 0.5 s makes each teardown slow).
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def handle(self, request: Request) -> Answer:
        raise NotImplementedError

    def stall(self, path_suffix: str = "", *, max_s: float = 2.0) -> None:
        """Hold back later requests whose path ends with ``path_suffix`` for up to ``max_s`` seconds."""
        self._stall = (path_suffix, max_s, threading.Event())

    def release(self) -> None:
        """End the stall: held requests are answered at once, later ones are not held."""
        stall, self._stall = self._stall, None
        if stall:
            stall[2].set()

    def _hold(self, request: Request) -> None:
        stall = self._stall
        if stall and request.path.split("?")[0].endswith(stall[0]):
            stall[2].wait(stall[1])

    def start(self) -> FakeGateway:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
