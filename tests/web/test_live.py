"""The live WebSocket ``/api/socket`` (web.live) in memory: real handshake and frames
(wsproto as the client) through the real site on a `StringTransport`, the hub fed
as the batch writer feeds it (`batch_committed` after `write_batch`)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from tests.web.harness import ADMIN, ALICE, BOB, T0, QueuedThreadPool, basic, make_world
from tracker.models import Batch, NewEvent, NewPosition
from web.live import LiveHub, may_see
from web.site import build_site


def position(device, when, *, lat=52.5, archive=False):
    return NewPosition(device_id=device.id, protocol="gt06", server_time=when, device_time=when,
                       fix_time=when, valid=True, latitude=lat, longitude=13.4, archive=archive)


class WsClient:
    """One WebSocket connection to the site, in memory (wsproto is the client)."""

    def __init__(self, site, *, headers=(), host="localhost:8082"):
        self.site = site
        self.ws = WSConnection(ConnectionType.CLIENT)
        address = IPv4Address("TCP", "127.0.0.1", 50000)
        self.protocol = site.buildProtocol(address)
        self.transport = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 8082),
                                         peerAddress=address)
        self.protocol.makeConnection(self.transport)
        self.accepted = False
        self.rejected: int | None = None
        self.body = b""
        self.messages: list[dict] = []
        self.pings = 0
        self.close_code: int | None = None
        self.protocol.dataReceived(self.ws.send(Request(
            host=host, target="/api/socket",
            extra_headers=[(k.encode(), v.encode()) for k, v in headers])))
        self.pump()

    def pump(self) -> None:
        data = self.transport.value()
        self.transport.clear()
        if not data:
            return
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, AcceptConnection):
                self.accepted = True
            elif isinstance(event, RejectConnection):
                self.rejected = event.status_code
            elif isinstance(event, RejectData):
                self.body += event.data
            elif isinstance(event, TextMessage):
                self.messages.append(json.loads(event.data))
            elif isinstance(event, Ping):
                self.pings += 1
            elif isinstance(event, CloseConnection):
                self.close_code = event.code

    def take(self) -> list[dict]:
        self.pump()
        messages, self.messages = self.messages, []
        return messages

    def pong(self) -> None:
        self.protocol.dataReceived(self.ws.send(Pong(b"")))

    def lose(self) -> None:
        self.protocol.connectionLost(Failure(ConnectionDone()))


@pytest.fixture
def world(tmp_path):
    world = make_world(tmp_path / "live.db")
    world.hub = LiveHub(world.store, world.threadpool, world.reactor,
                        max_queued_messages=5, keepalive_s=30.0)
    world.live_site = build_site(world.store, world.threadpool, world.reactor, live=world.hub)
    return world


def login(world, credentials) -> str:
    response = world.new_client().request("POST", "/api/session", form={
        "email": credentials[0], "password": credentials[1]})
    assert response.status == 200
    return response.header("Set-Cookie").split(";")[0]


def open_socket(world, credentials=ALICE, *, site=None) -> WsClient:
    client = WsClient(site or world.live_site, headers=[("Cookie", login(world, credentials))])
    assert client.accepted, client.rejected
    return client


def commit(world, batch: Batch) -> None:
    world.store.write_batch(batch)
    world.hub.batch_committed(batch)


def ids(messages, key):
    return [item["id"] for message in messages for item in message.get(key) or []]


def test_snapshot_on_connect_has_the_users_devices_and_latest_positions_only(world):
    d1, d3 = world.devices["d1"], world.devices["d3"]
    world.store.write_batch(Batch(positions=(position(d1, T0), position(d3, T0))))
    client = open_socket(world, ALICE)
    [snapshot] = client.take()
    assert sorted(d["id"] for d in snapshot["devices"]) == [d1.id, world.devices["d2"].id]
    assert [p["deviceId"] for p in snapshot["positions"]] == [d1.id]
    assert snapshot["positions"][0]["id"] == world.store.latest_positions(
        world.store.user_by_email(ALICE[0]))[0].id


def test_a_committed_position_reaches_exactly_the_users_who_may_see_its_device(world):
    alice, bob, admin = (open_socket(world, who) for who in (ALICE, BOB, ADMIN))
    for client in (alice, bob, admin):
        client.take()
    d1, d3 = world.devices["d1"], world.devices["d3"]
    commit(world, Batch(positions=(position(d1, T0),)))
    commit(world, Batch(positions=(position(d3, T0),)))
    got_alice, got_bob, got_admin = alice.take(), bob.take(), admin.take()
    assert {p["deviceId"] for m in got_alice for p in m.get("positions", [])} == {d1.id}
    assert {p["deviceId"] for m in got_bob for p in m.get("positions", [])} == {d3.id}
    assert {p["deviceId"] for m in got_admin for p in m.get("positions", [])} == {d1.id, d3.id}
    assert {d["id"] for m in got_bob for d in m.get("devices", [])} == {d3.id}
    stored = world.store.positions_by_ids(world.store.user_by_email(ADMIN[0]),
                                          ids(got_admin, "positions"))
    assert len(stored) == 2    # pushed with the stored ids
    assert got_alice[0]["positions"][0]["latitude"] == 52.5


def test_a_position_is_pushed_at_most_once_per_socket(world):
    d1 = world.devices["d1"]
    world.store.write_batch(Batch(positions=(position(d1, T0),)))
    client = open_socket(world)
    [snapshot] = client.take()
    first = snapshot["positions"][0]["id"]
    commit(world, Batch(positions=(position(d1, T0),)))     # resent, skipped by the store
    assert ids(client.take(), "positions") == []
    batch = Batch(positions=(position(d1, T0 + dt.timedelta(seconds=10)),))
    commit(world, batch)
    commit(world, batch)                                     # the same batch again
    pushed = ids(client.take(), "positions")
    assert len(pushed) == 1 and pushed[0] > first


def test_an_archive_position_and_an_unseen_device_push_nothing(world):
    d1, d3 = world.devices["d1"], world.devices["d3"]
    world.store.write_batch(Batch(positions=(position(d1, T0),)))
    client = open_socket(world)
    client.take()
    commit(world, Batch(positions=(position(d1, T0 - dt.timedelta(hours=1), archive=True),)))
    commit(world, Batch(positions=(position(d3, T0 + dt.timedelta(seconds=5)),)))
    assert ids(client.take(), "positions") == []


def test_events_are_pushed_with_their_stored_ids(world):
    d1, d3 = world.devices["d1"], world.devices["d3"]
    client = open_socket(world)
    client.take()
    alarm = NewEvent(device_id=d1.id, type="alarm", event_time=T0, attributes={"alarm": "sos"})
    commit(world, Batch(events=(alarm, NewEvent(device_id=d3.id, type="alarm", event_time=T0))))
    commit(world, Batch(events=(alarm,)))       # idempotent resend: not again
    messages = client.take()
    events = [e for m in messages for e in m.get("events", [])]
    assert [(e["deviceId"], e["type"], e["attributes"]) for e in events] == [
        (d1.id, "alarm", {"alarm": "sos"})]
    alice = world.store.user_by_email(ALICE[0])
    assert events[0]["id"] == world.store.events(alice, d1.id, T0, T0)[0].id


def test_updates_committed_before_the_snapshot_is_read_follow_it_without_repeats(tmp_path):
    pool = QueuedThreadPool()
    world = make_world(tmp_path / "queued.db", threadpool=pool)
    hub = LiveHub(world.store, pool, world.reactor)
    site = build_site(world.store, pool, world.reactor, live=hub)
    d1 = world.devices["d1"]
    client = WsClient(site, headers=[("Authorization", basic(*ALICE))])
    while not client.accepted:      # authentication, then the upgrade
        pool.run_one()
        client.pump()
    assert client.messages == [] and len(pool.queue) == 1    # the snapshot's read waits
    batch = Batch(positions=(position(d1, T0),))
    world.store.write_batch(batch)
    hub.batch_committed(batch)
    assert len(pool.queue) == 2       # the snapshot's read, then the update's
    pool.queue.reverse()              # the update is read (and offered) first
    pool.run_all()
    messages = client.take()
    assert len(messages) == 1         # the snapshot, holding the position; not pushed again
    assert set(messages[0]) == {"devices", "positions"}
    assert [p["deviceId"] for p in messages[0]["positions"]] == [d1.id]


def test_a_slow_consumer_is_dropped_with_1008_and_logged_once(world, logged_failures):
    d1 = world.devices["d1"]
    client = open_socket(world)
    client.take()
    client.protocol.pauseProducing()      # what the transport does when its buffer is full
    for i in range(7):
        commit(world, Batch(positions=(position(d1, T0 + dt.timedelta(seconds=i)),)))
    client.pump()
    assert client.close_code == 1008
    assert client.transport.disconnecting
    assert not world.hub.sockets
    drops = [e for e in logged_failures if "dropped" in str(e.get("log_format", ""))]
    assert len(drops) == 1


def test_a_paused_socket_sends_what_waited_in_order_once_resumed(world):
    d1 = world.devices["d1"]
    client = open_socket(world)
    client.take()
    client.protocol.pauseProducing()
    for i in range(3):
        commit(world, Batch(positions=(position(d1, T0 + dt.timedelta(seconds=i)),)))
    assert client.take() == []
    client.protocol.resumeProducing()
    pushed = ids(client.take(), "positions")
    assert len(pushed) == 3 and pushed == sorted(pushed)
    assert client.close_code is None


def test_keepalive_pings_and_closes_a_peer_that_never_answers(world):
    client = open_socket(world)
    client.take()
    world.reactor.advance(30)
    client.pump()
    assert client.pings == 1
    client.pong()
    world.reactor.advance(30)
    client.pump()
    assert client.pings == 2 and client.close_code is None
    world.reactor.advance(30)      # the second ping got no pong
    client.pump()
    assert client.close_code == 1001


def test_a_device_going_offline_by_time_is_pushed(world):
    d1 = world.devices["d1"]
    world.store.write_batch(Batch(positions=(position(d1, T0),)))
    client = open_socket(world)
    [snapshot] = client.take()
    assert {d["id"]: d["status"] for d in snapshot["devices"]}[d1.id] == "online"
    for _ in range(11):             # 5.5 min, answering pings
        world.reactor.advance(30)
        client.pong()
    devices = [d for m in client.take() for d in m.get("devices", [])]
    assert [(d["id"], d["status"]) for d in devices] == [(d1.id, "offline")]


def test_the_connection_slot_is_released_when_the_socket_closes(world):
    client = open_socket(world)
    assert world.live_site.connections == 1
    client.lose()
    assert world.live_site.connections == 0
    assert not world.hub.sockets


def test_no_session_no_socket(world):
    client = WsClient(world.live_site)
    assert not client.accepted and client.rejected == 401
    assert json.loads(client.body)["status"] == 401
    assert not world.hub.sockets
    wrong = WsClient(world.live_site, headers=[("Authorization", basic(ALICE[0], "wrong"))])
    assert wrong.rejected == 401


def test_a_cross_origin_handshake_is_refused(world):
    client = WsClient(world.live_site, headers=[("Cookie", login(world, ALICE)),
                                                ("Origin", "https://evil.example")])
    assert client.rejected == 403 and not world.hub.sockets


def test_plain_requests_to_the_socket_path_get_json_errors(world):
    from tests.web.harness import Client

    http = Client(world.live_site)
    assert http.request("GET", "/api/socket", auth=ALICE).status == 400
    assert http.request("POST", "/api/socket", auth=ALICE).status == 405
    assert http.request("GET", "/api/devices", auth=ALICE).status == 200   # the API is still there
    without = Client(world.site)            # no hub: the path is not served
    assert without.request("GET", "/api/socket", auth=ALICE).status == 404


def test_may_see_is_the_stores_own_scoping(world):
    devices = world.store.devices(None)
    for email in (ADMIN[0], ALICE[0], BOB[0]):
        user = world.store.user_by_email(email)
        assert {d.id for d in devices if may_see(user, d)} == {
            d.id for d in world.store.devices(user)}
