"""In-memory HTTP for the web tests.

`Client` drives the real `Site` (parsing, resource traversal, our request class)
through `buildProtocol` on a `StringTransport`, so a test sends real request
bytes and reads real response bytes with no socket and no running reactor.
Store calls go through `SyncThreadPool`, which runs them at once in the test's
thread, and `FakeReactor` (a `Clock` whose ``callFromThread`` runs at once), so a
response is complete when `Client.request` returns and time moves only by
``reactor.advance``.

Run as ``python -m tests.web.harness SQLALCHEMY_URL`` it serves the site on a
real loopback port with a real thread pool and prints the port (end-to-end test).
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import datetime as dt
import email.message
import http.client
import io
import json
import urllib.parse
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

T0 = dt.datetime(2024, 6, 1, 12, 0, 0, tzinfo=dt.UTC)


class SyncThreadPool:
    """Stands in for `ThreadPool`: runs the work immediately in the caller's thread."""

    def callInThreadWithCallback(self, onResult, func, *args, **kwargs):
        try:
            result = func(*args, **kwargs)
        except BaseException:
            onResult(False, Failure())
        else:
            onResult(True, result)


class QueuedThreadPool:
    """Stands in for `ThreadPool`: keeps the work until `run_all` (to interleave events)."""

    def __init__(self):
        self.queue = collections.deque()

    def callInThreadWithCallback(self, onResult, func, *args, **kwargs):
        self.queue.append((onResult, func, args, kwargs))

    def run_one(self) -> None:
        on_result, func, args, kwargs = self.queue.popleft()
        SyncThreadPool().callInThreadWithCallback(on_result, func, *args, **kwargs)

    def run_all(self) -> None:
        while self.queue:
            self.run_one()


class FakeReactor(Clock):
    """A `Clock` that also takes ``callFromThread`` (run at once: one thread here)."""

    def __init__(self, start: dt.datetime = T0):
        super().__init__()
        self.advance(start.timestamp())

    def callFromThread(self, f, *args, **kwargs):
        f(*args, **kwargs)

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.seconds(), dt.UTC)


@dataclasses.dataclass
class Response:
    status: int
    headers: email.message.Message
    body: bytes
    raw: bytes
    finished: bool = True   # the server finished the request (`Client.send_raw` sets it)
    closed: bool = False    # the server closed the connection after answering

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def header_all(self, name: str) -> list[str]:
        return self.headers.get_all(name) or []


class _BytesSocket:
    def __init__(self, data: bytes):
        self._file = io.BytesIO(data)

    def makefile(self, mode, *args, **kwargs):
        return self._file


def parse_response(raw: bytes, method: str = "GET") -> Response:
    response = http.client.HTTPResponse(_BytesSocket(raw), method=method)
    response.begin()
    body = response.read()
    return Response(response.status, response.msg, body, raw)


def basic(email: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{email}:{password}".encode()).decode("ascii")


class Client:
    """Sends one request per connection to `site`, in memory."""

    def __init__(self, site, host: str = "localhost:8082"):
        self.site = site
        self.host = host
        self.cookies: dict[str, str] = {}

    def connect(self, peer: str = "127.0.0.1"):
        address = (IPv6Address("TCP", peer, 50000) if ":" in peer
                   else IPv4Address("TCP", peer, 50000))
        protocol = self.site.buildProtocol(address)
        transport = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 8082),
                                    peerAddress=address)
        protocol.makeConnection(transport)
        return protocol, transport

    def send_raw(self, data: bytes, peer: str = "127.0.0.1", method: str = "GET") -> Response:
        protocol, transport = self.connect(peer)
        protocol.dataReceived(data)
        raw = transport.value()
        finished = not getattr(getattr(protocol, "_channel", protocol), "requests", ())
        closed = transport.disconnecting
        protocol.connectionLost(Failure(ConnectionDone()))
        assert raw, "no response written"
        response = parse_response(raw, method)
        response.finished, response.closed = finished, closed
        return response

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                body: bytes = b"", form: dict[str, str] | None = None,
                auth: tuple[str, str] | None = None, peer: str = "127.0.0.1",
                use_cookies: bool = True) -> Response:
        all_headers = {"Host": self.host}
        if form is not None:
            body = urllib.parse.urlencode(form).encode("ascii")
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        if auth is not None:
            all_headers["Authorization"] = basic(*auth)
        if use_cookies and self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        all_headers.update(headers or {})
        if body or method in ("POST", "PUT"):
            all_headers["Content-Length"] = str(len(body))
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in all_headers.items()) + "\r\n"
        response = self.send_raw(head.encode("utf-8") + body, peer=peer, method=method)
        for cookie in response.header_all("Set-Cookie"):
            name, _, rest = cookie.partition("=")
            value = rest.split(";")[0]
            if value:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return response


FAST_HASHER_ARGS = {"time_cost": 1, "memory_cost": 8, "parallelism": 1}
PASSWORD = "correct horse"


@dataclasses.dataclass
class World:
    """A site on a migrated SQLite store with two organisations and three users.

    ``admin`` (administrator) and ``alice`` belong to organisation 1, ``bob`` to
    a second one; devices ``d1``/``d2`` are in organisation 1, ``d3`` in bob's.
    Every password is `PASSWORD`.
    """

    store: Any
    reactor: FakeReactor
    threadpool: Any
    site: Any
    client: Client
    other_organisation_id: int
    devices: dict[str, Any]
    commands: Any = None

    def new_client(self) -> Client:
        return Client(self.site)


def make_world(db_path, *, secure_cookies: bool = False, threadpool=None,
               config_changed=None, counters=None) -> World:
    from argon2 import PasswordHasher

    from tests.templates import migrated_sqlite_url
    from tracker.commands import CommandDispatcher
    from tracker.storage import SqlStore
    from web.site import build_site

    store = SqlStore(migrated_sqlite_url(db_path),
                     password_hasher=PasswordHasher(**FAST_HASHER_ARGS))
    other = store.add_organisation("other")
    store.add_user("admin@example.com", PASSWORD, administrator=True, name="Admin")
    store.add_user("alice@example.com", PASSWORD, name="Alice")
    store.add_user("bob@example.com", PASSWORD, name="Bob", organisation_id=other)
    devices = {
        "d1": store.add_device("100000000000001", "Truck 1"),
        "d2": store.add_device("100000000000002", "Truck 2"),
        "d3": store.add_device("300000000000003", "Bob's car", organisation_id=other),
    }
    reactor = FakeReactor()
    threadpool = threadpool if threadpool is not None else SyncThreadPool()
    commands = CommandDispatcher(store, reactor, threadpool)
    site = build_site(store, threadpool, reactor, secure_cookies=secure_cookies, commands=commands,
                      config_changed=config_changed, counters=counters)
    return World(store, reactor, threadpool, site, Client(site), other, devices, commands)


ADMIN = ("admin@example.com", PASSWORD)
ALICE = ("alice@example.com", PASSWORD)
BOB = ("bob@example.com", PASSWORD)


def main(argv: list[str]) -> None:
    """Serve the site on 127.0.0.1 with a real reactor and thread pool; print the port."""
    from twisted.internet import reactor
    from twisted.python.threadpool import ThreadPool

    from tracker.storage import SqlStore
    from web.site import build_site

    store = SqlStore(argv[0])
    threadpool = ThreadPool(minthreads=1, maxthreads=4, name="store")
    threadpool.start()
    reactor.addSystemEventTrigger("during", "shutdown", threadpool.stop)
    port = reactor.listenTCP(0, build_site(store, threadpool, reactor), interface="127.0.0.1")
    print(port.getHost().port, flush=True)
    reactor.run()


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])
