"""Live updates: Traccar's WebSocket ``/api/socket``.

A client opens ``GET /api/socket`` as a WebSocket (RFC 6455; framing by Twisted's
`twisted.web.websocket` on `wsproto`), authenticated as every API call is
(`web.auth.Authenticator.require_user`: the ``JSESSIONID`` cookie of ``POST
/api/session``, which is what `pytraccar`'s ``subscribe`` and Traccar's web app
send, or HTTP Basic).  There is no ``?token=``: the auth layer has no API tokens.
Refusals are the REST API's JSON errors, before the upgrade: 401 / 429 for
credentials, 403 when a browser's ``Origin`` is not the ``Host`` (cross-site
WebSocket hijacking: browsers send cookies on cross-origin handshakes), 405 for
another method, 400 for a GET that is not a WebSocket handshake.

Messages are JSON text objects with any of the keys ``devices``, ``positions``,
``events``, each a list of the REST shapes (`web.jsonshapes`):

- on connect, the snapshot: ``{"devices": [...], "positions": [...]}`` (every
  visible device and each one's latest position), so a reconnecting client is
  up to date at once;
- then, after every batch the writer committed (`LiveHub.batch_committed`, on
  the reactor thread): the devices it touched, their new latest positions and its
  events, read back from the store (so with their ids, exactly as REST shows them).
  Positions are coalesced per device: a client gets a device's latest position, and
  never one it was already sent or one older than it (at most once per socket, also
  for resent frames the store skipped); an archive upload that did not move a
  device's latest position pushes nothing.  A device is pushed again when its
  status, last update, position, name, group or disabled flag changed, also when it
  goes offline by time alone (checked every `KEEPALIVE_S`);
- client messages are ignored, as Traccar does.

Scoping is the store's (`tracker.ports`): an administrator sees every device, any
other user the devices of their organisation (`may_see`); a socket never gets a
device, position or event of a device its user may not see.  The user is the one
authenticated at the handshake: a later change of their rights (or a logout)
applies from their next connection.

Limits: each socket writes straight to its connection while the connection
takes data; while the kernel and Twisted's buffer are full (the transport paused
its producer, this socket), messages wait in a queue of at most
`MAX_QUEUED_MESSAGES` messages and `MAX_QUEUED_BYTES` characters.  A consumer that
falls further behind is dropped: the socket is closed with 1008 (policy
violation), logged once, and aborted if it has not closed `ABORT_AFTER_S` later.
A WebSocket ping goes out every `KEEPALIVE_S`; a socket that has not answered
the previous ping by then is closed (1001).  Sockets count against the web
port's ``max_connections``.  Reading the store for an update happens on the
database pool, one read at a time: batches committed meanwhile are merged into
the next read (at most `MAX_PENDING_EVENTS` events wait; beyond that the oldest
are pushed no more, with a log line).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.websocket import WebSocketResource, WebSocketTransport
from wsproto.utilities import LocalProtocolError
from zope.interface import implementer

from tracker.models import Batch, Device, StoredEvent, StoredPosition, User
from tracker.ports import Store
from web import jsonshapes
from web.auth import REALM, AuthenticationFailed, Authenticator, TooManyAttempts, same_origin

log = Logger()

MAX_QUEUED_MESSAGES = 1_000
MAX_QUEUED_BYTES = 8 * 1024 * 1024
KEEPALIVE_S = 30.0
ABORT_AFTER_S = 10.0
MAX_PENDING_EVENTS = 10_000

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY_VIOLATION = 1008
CLOSE_INTERNAL_ERROR = 1011

SOCKET_PATH = (b"api", b"socket")

# The store's reads of positions and events take a user; the hub reads for every
# socket at once and scopes per socket itself (`may_see`), so it reads as an
# administrator (who, by the store's rule, sees everything).
_EVERYTHING = User(id=0, email="", name="live updates", organisation_id=0, administrator=True)


def may_see(user: User, device: Device) -> bool:
    """Whether `user` may see `device`: the store's rule (`tracker.ports`, its
    ``visible_to``): administrators see every device, others their organisation's."""
    return user.administrator or device.organisation_id == user.organisation_id


@dataclasses.dataclass(frozen=True, slots=True)
class Update:
    """What one or more committed batches changed, as stored: the devices touched
    (by id; also the ones of the positions and events), their latest positions
    and the new events."""

    devices: Mapping[int, Device] = dataclasses.field(default_factory=dict)
    positions: tuple[StoredPosition, ...] = ()
    events: tuple[StoredEvent, ...] = ()


def _fingerprint(device: Device, now: dt.datetime) -> tuple[Any, ...]:
    """What of a device a client sees change (pushed again when it differs)."""
    return (jsonshapes.device_status(device, now), device.last_update, device.position_id,
            device.name, device.group_id, device.disabled)


@dataclasses.dataclass(slots=True)
class _Pending:
    """What committed batches touched and the hub has not read back yet."""

    touched: set[int] = dataclasses.field(default_factory=set)      # device ids
    moved: set[int] = dataclasses.field(default_factory=set)        # non-archive positions
    events: collections.OrderedDict[tuple[int, dt.datetime], set[str]] = dataclasses.field(
        default_factory=collections.OrderedDict)
    event_count: int = 0

    def __bool__(self) -> bool:
        return bool(self.touched)


def read_update(store: Store, pending: _Pending) -> Update:
    """Blocking (the database pool): read back what `pending` names."""
    devices: dict[int, Device] = {}
    for device_id in sorted(pending.touched):
        device = store.visible_device(None, device_id)
        if device is not None:
            devices[device_id] = device
    latest = [device.position_id for device_id, device in devices.items()
              if device_id in pending.moved and device.position_id is not None]
    positions = store.positions_by_ids(_EVERYTHING, latest) if latest else []
    events: list[StoredEvent] = []
    for (device_id, event_time), types in pending.events.items():
        if device_id in devices:
            events += [event for event in store.events(_EVERYTHING, device_id, event_time,
                                                       event_time) if event.type in types]
    events.sort(key=lambda event: event.id)
    return Update(devices, tuple(positions), tuple(events))


@implementer(IPushProducer)
class LiveSocket:
    """One client's socket (a `twisted.web.websocket.WebSocketProtocol`, and the
    push producer its HTTP channel pauses and resumes); see the module docstring."""

    transport: WebSocketTransport | None = None

    def __init__(self, hub: LiveHub, user: User, *,
                 on_lost: Callable[[Failure], object] | None = None,
                 abort: Callable[[], object] | None = None) -> None:
        self.hub = hub
        self.user = user
        self._on_lost = on_lost
        self._abort = abort
        self._abort_call: Any = None
        self.ready = False            # the snapshot was sent
        self.closed = False
        self.paused = False
        self.awaiting_pong = False
        self._early: list[Update] = []    # updates that came before the snapshot
        self._queue: collections.deque[str] = collections.deque()
        self._queued_chars = 0
        self._positions: dict[int, int] = {}          # device id -> last position id sent
        self._events: dict[int, int] = {}             # device id -> last event id sent
        self._devices: dict[int, tuple[Any, ...]] = {}   # device id -> fingerprint sent

    # -- WebSocketProtocol -----------------------------------------------------------

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        self.hub.attach(self)

    def textMessageReceived(self, message: str) -> None:
        """Ignored, as Traccar ignores what clients send."""

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        """Ignored."""

    def pongReceived(self, payload: bytes) -> None:
        self.awaiting_pong = False

    def connectionLost(self, reason: Failure) -> None:
        self.closed = True
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self._abort_call = None
        self._queue.clear()
        self._queued_chars = 0
        self._early = []
        self.hub.detach(self)
        if self._on_lost is not None:
            self._on_lost(reason)

    # -- IPushProducer (the connection's send buffer) --------------------------------

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        while self._queue and not self.paused and not self.closed:
            text = self._queue.popleft()
            self._queued_chars -= len(text)
            self._write(text)

    def stopProducing(self) -> None:
        self.closed = True

    # -- what the hub calls --------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Messages waiting for the connection to take data."""
        return len(self._queue)

    def send_snapshot(self, devices: Iterable[Device], positions: Iterable[StoredPosition],
                      now: dt.datetime) -> None:
        """Send the snapshot, then what came meanwhile (filtered against it)."""
        if self.closed:
            return
        shown = [device for device in devices if may_see(self.user, device)]
        visible = {device.id for device in shown}
        latest = [position for position in positions if position.device_id in visible]
        for device in shown:
            self._devices[device.id] = _fingerprint(device, now)
        for position in latest:
            self._positions[position.device_id] = max(position.id,
                                                      self._positions.get(position.device_id, 0))
        self._send({"devices": [jsonshapes.device_json(device, now) for device in shown],
                    "positions": [jsonshapes.position_json(position) for position in latest]})
        self.ready = True
        early, self._early = self._early, []
        for update in early:
            self.offer(update, now)

    def offer(self, update: Update, now: dt.datetime) -> None:
        """Send what of `update` this user may see and was not sent yet."""
        if self.closed:
            return
        if not self.ready:
            if len(self._early) >= self.hub.max_queued_messages:
                self.drop(f"more than {self.hub.max_queued_messages} updates before the snapshot")
                return
            self._early.append(update)
            return
        message = {}
        devices = self._new_devices(update.devices.values(), now)
        positions = self._new_positions(update)
        events = self._new_events(update)
        if devices:
            message["devices"] = devices
        if positions:
            message["positions"] = positions
        if events:
            message["events"] = events
        if message:
            self._send(message)

    def _visible(self, devices: Mapping[int, Device], device_id: int) -> bool:
        device = devices.get(device_id)
        return device is not None and may_see(self.user, device)

    def _new_devices(self, devices: Iterable[Device], now: dt.datetime) -> list[dict[str, Any]]:
        shown = []
        for device in devices:
            if may_see(self.user, device):
                fingerprint = _fingerprint(device, now)
                if self._devices.get(device.id) != fingerprint:
                    self._devices[device.id] = fingerprint
                    shown.append(jsonshapes.device_json(device, now))
        return shown

    def _new_positions(self, update: Update) -> list[dict[str, Any]]:
        shown = []
        for position in update.positions:
            if (self._visible(update.devices, position.device_id)
                    and position.id > self._positions.get(position.device_id, 0)):
                self._positions[position.device_id] = position.id
                shown.append(jsonshapes.position_json(position))
        return shown

    def _new_events(self, update: Update) -> list[dict[str, Any]]:
        shown = []
        for event in update.events:
            if (self._visible(update.devices, event.device_id)
                    and event.id > self._events.get(event.device_id, 0)):
                self._events[event.device_id] = event.id
                shown.append(jsonshapes.event_json(event))
        return shown

    def keepalive(self) -> None:
        """Ping; close the socket if the previous ping got no pong."""
        if self.closed or self.transport is None:
            return
        if self.awaiting_pong:
            log.info("live socket of user {user}: no pong within {interval} s, closing",
                     user=self.user.id, interval=self.hub.keepalive_s)
            self.close(CLOSE_GOING_AWAY)
            return
        self.awaiting_pong = True
        self._use_transport(lambda transport: transport.ping(b""))

    def drop(self, why: str) -> None:
        """Close a consumer that fell behind (1008), logged once."""
        if self.closed:
            return
        log.warn("live socket of user {user} dropped: {why}", user=self.user.id, why=why)
        self.close(CLOSE_POLICY_VIOLATION)

    def close(self, code: int) -> None:
        if self.closed:
            return
        self.closed = True
        self._queue.clear()
        self._queued_chars = 0
        self._early = []
        self.hub.detach(self)
        self._use_transport(lambda transport: transport.loseConnection(code))
        if self._abort is not None:   # a peer that reads nothing never sees the close
            self._abort_call = self.hub.reactor.callLater(ABORT_AFTER_S, self._abort)

    # -- writing -------------------------------------------------------------------------

    def _send(self, message: Mapping[str, Any]) -> None:
        text = jsonshapes.dumps(message).decode("ascii")
        if not self.paused and not self._queue:
            self._write(text)
            return
        self._queue.append(text)
        self._queued_chars += len(text)
        hub = self.hub
        if len(self._queue) > hub.max_queued_messages or self._queued_chars > hub.max_queued_bytes:
            self.drop(f"more than {hub.max_queued_messages} messages or "
                      f"{hub.max_queued_bytes} bytes waiting")

    def _write(self, text: str) -> None:
        self._use_transport(lambda transport: transport.sendTextMessage(text))

    def _use_transport(self, action: Callable[[WebSocketTransport], object]) -> None:
        """Run `action` unless the WebSocket is closing already (the peer's close
        frame arrived and the connection is about to be lost: wsproto refuses to
        send then)."""
        if self.transport is None:
            return
        try:
            action(self.transport)
        except LocalProtocolError:
            self.closed = True


class LiveHub:
    """Every open socket, fed from the batch writer (a `tracker.writer.BatchObserver`).

    `threadpool` runs the store reads (the web's database pool), `reactor` gives the
    clock and runs the keep-alive.  `max_queued_messages`, `max_queued_bytes` and
    `keepalive_s` are the limits of the module docstring.
    """

    def __init__(self, store: Store, threadpool: Any, reactor: Any, *,
                 max_queued_messages: int = MAX_QUEUED_MESSAGES,
                 max_queued_bytes: int = MAX_QUEUED_BYTES,
                 keepalive_s: float = KEEPALIVE_S,
                 max_pending_events: int = MAX_PENDING_EVENTS) -> None:
        self.store = store
        self.threadpool = threadpool
        self.reactor = reactor
        self.max_queued_messages = max_queued_messages
        self.max_queued_bytes = max_queued_bytes
        self.keepalive_s = keepalive_s
        self.max_pending_events = max_pending_events
        self.sockets: set[LiveSocket] = set()
        self._pending = _Pending()
        self._reading = False
        self._known: dict[int, Device] = {}      # devices some socket was shown, latest read
        self._status: dict[int, str] = {}        # their status when last checked
        self._keepalive: LoopingCall | None = None
        self.dropped_events = 0

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.reactor.seconds(), dt.UTC)

    def _call(self, fn: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return deferToThreadPool(self.reactor, self.threadpool, fn, *args)

    # -- sockets -------------------------------------------------------------------------

    def attach(self, socket: LiveSocket) -> None:
        """A socket is open: register it (updates wait for its snapshot) and read the snapshot."""
        self.sockets.add(socket)
        if self._keepalive is None:
            self._keepalive = LoopingCall(self._tick)
            self._keepalive.clock = self.reactor
            self._keepalive.start(self.keepalive_s, now=False).addErrback(
                lambda failure: log.failure("live keep-alive failed", failure))
        d = self._call(self._read_snapshot, socket.user)
        d.addCallback(lambda snapshot: self._snapshot_read(socket, *snapshot))
        d.addErrback(self._snapshot_failed, socket)

    def _read_snapshot(self, user: User) -> tuple[list[Device], list[StoredPosition]]:
        return self.store.devices(user), self.store.latest_positions(user)

    def _snapshot_read(self, socket: LiveSocket, devices: list[Device],
                       positions: list[StoredPosition]) -> None:
        now = self.now()
        for device in devices:
            self._remember(device, now)
        socket.send_snapshot(devices, positions, now)

    def _snapshot_failed(self, failure: Failure, socket: LiveSocket) -> None:
        log.failure("cannot read the live snapshot for user {user}", failure, user=socket.user.id)
        socket.close(CLOSE_INTERNAL_ERROR)

    def detach(self, socket: LiveSocket) -> None:
        self.sockets.discard(socket)
        if not self.sockets:
            self._known.clear()
            self._status.clear()
            if self._keepalive is not None:
                keepalive, self._keepalive = self._keepalive, None
                if keepalive.running:
                    keepalive.stop()

    def stop(self) -> None:
        """Close every socket (server shutdown)."""
        for socket in list(self.sockets):
            socket.close(CLOSE_GOING_AWAY)

    # -- BatchObserver -------------------------------------------------------------------

    def batch_committed(self, batch: Batch) -> None:
        """Note what `batch` touched and read it back (one read at a time)."""
        if not self.sockets:
            return
        pending = self._pending
        for position in batch.positions:
            pending.touched.add(position.device_id)
            if not position.archive:
                pending.moved.add(position.device_id)
        for status in batch.statuses:
            pending.touched.add(status.device_id)
        for event in batch.events:
            pending.touched.add(event.device_id)
            pending.events.setdefault((event.device_id, event.event_time), set()).add(event.type)
            pending.event_count += 1
        while pending.event_count > self.max_pending_events and pending.events:
            _, types = pending.events.popitem(last=False)
            pending.event_count -= len(types)
            self.dropped_events += len(types)
            if self.dropped_events == len(types):   # the first time only
                log.warn("live updates fall behind: events are pushed no more beyond "
                         "{limit} waiting", limit=self.max_pending_events)
        self._read_next()

    def batch_refused(self, batch: Batch) -> None:
        """Nothing of a refused batch is stored, so nothing is pushed."""

    def _read_next(self) -> None:
        if self._reading or not self._pending:
            return
        pending, self._pending = self._pending, _Pending()
        if not self.sockets:
            return
        audience = self._audience()
        pending.touched = {device_id for device_id in pending.touched
                           if self._may_interest(device_id, audience)}
        if not pending:
            return
        self._reading = True
        d = self._call(read_update, self.store, pending)
        d.addCallback(self.publish)
        d.addErrback(lambda failure: log.failure("cannot read live updates", failure))
        d.addBoth(self._read_done)

    def _read_done(self, _: object) -> None:
        self._reading = False
        self._read_next()

    def _audience(self) -> tuple[bool, frozenset[int]]:
        users = [socket.user for socket in self.sockets]
        return (any(user.administrator for user in users),
                frozenset(user.organisation_id for user in users))

    def _may_interest(self, device_id: int, audience: tuple[bool, frozenset[int]]) -> bool:
        """False only for a known device no socket's user may see (`may_see`)."""
        device = self._known.get(device_id)
        any_administrator, organisations = audience
        return device is None or any_administrator or device.organisation_id in organisations

    # -- fan-out -------------------------------------------------------------------------

    def publish(self, update: Update) -> None:
        """Offer `update` to every socket (each takes what its user may see)."""
        now = self.now()
        for device in update.devices.values():
            self._remember(device, now)
        for socket in list(self.sockets):
            socket.offer(update, now)

    def _remember(self, device: Device, now: dt.datetime) -> None:
        self._known[device.id] = device
        self._status[device.id] = jsonshapes.device_status(device, now)

    def _tick(self) -> None:
        """Every `keepalive_s`: pings, and devices whose status changed by time alone."""
        for socket in list(self.sockets):
            socket.keepalive()
        now = self.now()
        changed = {}
        for device_id, device in self._known.items():
            status = jsonshapes.device_status(device, now)
            if status != self._status.get(device_id):
                self._status[device_id] = status
                changed[device_id] = device
        if changed:
            update = Update(devices=changed)
            for socket in list(self.sockets):
                socket.offer(update, now)


# -- the resource ----------------------------------------------------------------------

def _write_error(request: IRequest, status: int, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
    from http import HTTPStatus

    body = jsonshapes.dumps(jsonshapes.error_json(status, HTTPStatus(status).phrase, message))
    request.setResponseCode(status)
    request.setHeader(b"Server", b"tracker")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    for name, value in (headers or {}).items():
        request.setHeader(name.encode("ascii"), value.encode("ascii"))
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    request.setHeader(b"Content-Length", str(len(body)).encode("ascii"))
    request.write(body)
    request.finish()


@dataclasses.dataclass(frozen=True, slots=True)
class _SocketFactory:
    """The `WebSocketServerFactory` of one authenticated handshake."""

    hub: LiveHub
    user: User

    def buildProtocol(self, request: server.Request) -> LiveSocket:
        channel = request.channel

        def lost(reason: Failure) -> None:
            # The upgrade hands the channel's connectionLost to the WebSocket; the
            # channel's own (connection count, timers, the request) still has to run.
            type(channel).connectionLost(channel, reason)

        def abort() -> None:
            transport = channel.transport
            if transport is not None:
                transport.abortConnection()  # type: ignore[attr-defined]  # a TCP or TLS one

        socket = LiveSocket(self.hub, self.user, on_lost=lost, abort=abort)
        # The channel pauses and resumes its request's producer when the
        # connection's send buffer fills and drains: that is the socket's backpressure.
        request.registerProducer(socket, True)
        return socket


class LiveResource(Resource):
    """``/api/socket``: authenticates, then upgrades to a `LiveSocket`."""

    isLeaf = True

    def __init__(self, hub: LiveHub, auth: Authenticator) -> None:
        super().__init__()
        self.hub = hub
        self.auth = auth

    def render(self, request: IRequest) -> int:
        if request.method != b"GET":
            _write_error(request, 405, "method not allowed", {"Allow": "GET"})
            return server.NOT_DONE_YET
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))  # type: ignore[attr-defined]
        d = Deferred.fromCoroutine(self._open(request, gone))
        d.addErrback(self._refused, request, gone)
        return server.NOT_DONE_YET

    async def _open(self, request: IRequest, gone: list[bool]) -> None:
        if not same_origin(request.getHeader(b"origin"), request.getHeader(b"host")):
            _write_error(request, 403, "cross-origin WebSocket refused (Origin does not match Host)")
            return
        user = await self.auth.require_user(request)
        if gone:
            return
        upgraded = WebSocketResource(_SocketFactory(self.hub, user)).render_GET(
            request)  # type: ignore[arg-type]
        if upgraded != server.NOT_DONE_YET:
            _write_error(request, 400, "expected a WebSocket handshake (Upgrade: websocket)")
            return

    def _refused(self, failure: Failure, request: IRequest, gone: list[bool]) -> None:
        if gone:
            return
        error = failure.value
        if isinstance(error, AuthenticationFailed):
            _write_error(request, 401, error.message,
                         {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})
        elif isinstance(error, TooManyAttempts):
            _write_error(request, 429, str(error), {"Retry-After": str(error.retry_after_s)})
        else:
            log.failure("cannot open a live socket", failure)
            _write_error(request, 500, "internal server error")


__all__ = ["KEEPALIVE_S", "LiveHub", "LiveResource", "LiveSocket", "MAX_QUEUED_BYTES",
           "MAX_QUEUED_MESSAGES", "SOCKET_PATH", "Update", "may_see", "read_update"]
