"""Downlink commands: storage on both backends, and the dispatcher's sending rules."""

from __future__ import annotations

import datetime as dt

import pytest

from protocols import Command, UnsupportedCommand
from tests.tracker.doubles import EPOCH, FakeReactor, SyncThreadPool
from tracker.commands import CommandDispatcher
from tracker.models import Batch, NewEvent
from tracker.storage import SqlStore

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def answer(device_id: int, text: str, when: dt.datetime = NOW) -> Batch:
    return Batch(events=(NewEvent(device_id, "commandResult", when, {"result": text}),))


def test_queue_send_answer_on_both_backends(store):
    device = store.add_device("1234", "van")
    first = store.queue_command(device.id, "engineStop", {}, NOW)
    second = store.queue_command(device.id, "positionPeriodic", {"frequency": 60}, NOW)
    assert [c.id for c in store.queued_commands([device.id])] == [first.id, second.id]
    assert first.status == "queued" and second.attributes == {"frequency": 60}

    store.mark_command(first.id, "sent", NOW)
    store.mark_command(second.id, "sent", NOW)
    assert store.queued_commands([device.id]) == []
    store.write_batch(answer(device.id, "RELAY:OK"))
    store.write_batch(answer(device.id, "RELAY:OK"))   # a retransmitted answer
    by_id = {c.id: c for c in store.commands(None, device.id)}
    assert (by_id[first.id].status, by_id[first.id].result) == ("answered", "RELAY:OK")
    assert by_id[second.id].status == "sent", "one answer answers one command"


def test_failed_command_keeps_the_reason(store):
    device = store.add_device("1234", "van")
    command = store.queue_command(device.id, "custom", {"data": "x"}, NOW)
    store.mark_command(command.id, "failed", NOW, "no downlink in this protocol")
    (stored,) = store.commands(None, device.id)
    assert (stored.status, stored.result) == ("failed", "no downlink in this protocol")
    with pytest.raises(ValueError):
        store.mark_command(command.id, "answered", NOW)


class FakeSession:
    def __init__(self, supported=("engineStop",)):
        self.supported = supported

    def encode_command(self, command: Command, now):
        if command.type not in self.supported:
            raise UnsupportedCommand(f"no {command.type}")
        return f"CMD {command.id} {command.type}".encode()


class FakeChannel:
    def __init__(self, session=None):
        self.session = session or FakeSession()
        self.closed = False
        self.sent = []

    def send_command(self, data):
        self.sent.append(data)


@pytest.fixture
def world(tmp_path):
    store = SqlStore(f"sqlite:///{tmp_path / 't.db'}")
    store.migrate()
    reactor = FakeReactor()
    reactor.advance(EPOCH.timestamp())
    device = store.add_device("1234", "van")
    return store, CommandDispatcher(store, reactor, SyncThreadPool()), device, reactor


def statuses(store, device):
    return [(c.type, c.status) for c in reversed(store.commands(None, device.id))]


def test_queued_commands_go_out_when_the_device_connects(world):
    store, dispatcher, device, _ = world
    store.queue_command(device.id, "engineStop", {}, NOW)
    channel = FakeChannel()
    dispatcher.connected(device.id, channel)
    assert len(channel.sent) == 1 and channel.sent[0].endswith(b"engineStop")
    assert statuses(store, device) == [("engineStop", "sent")]


def test_a_command_for_a_connected_device_is_sent_at_once(world):
    store, dispatcher, device, _ = world
    channel = FakeChannel()
    dispatcher.connected(device.id, channel)
    result = []
    dispatcher.queue(device.id, "engineStop", {}).addCallback(result.append)
    assert result[0].status == "sent" and len(channel.sent) == 1


def test_a_command_for_an_absent_device_waits(world):
    store, dispatcher, device, _ = world
    result = []
    dispatcher.queue(device.id, "engineStop", {}).addCallback(result.append)
    assert result[0].status == "queued"
    channel = FakeChannel()
    channel.closed = True
    dispatcher.connected(device.id, channel)   # a closed channel takes nothing
    assert channel.sent == [] and statuses(store, device) == [("engineStop", "queued")]


def test_an_unsupported_command_fails_with_the_reason(world):
    store, dispatcher, device, _ = world
    dispatcher.connected(device.id, FakeChannel())
    result = []
    dispatcher.queue(device.id, "rebootDevice", {}).addCallback(result.append)
    assert (result[0].status, result[0].result) == ("failed", "no rebootDevice")


def test_the_poll_sends_what_another_process_queued(world):
    store, dispatcher, device, reactor = world
    channel = FakeChannel()
    dispatcher.connected(device.id, channel)
    dispatcher.start()
    store.queue_command(device.id, "engineStop", {}, NOW)    # e.g. `tracker command send`
    assert channel.sent == []
    reactor.advance(2.0)
    assert len(channel.sent) == 1
    reactor.advance(2.0)
    assert len(channel.sent) == 1, "a sent command is not sent again"
    dispatcher.stop()


def test_after_disconnect_nothing_is_sent(world):
    store, dispatcher, device, _ = world
    channel = FakeChannel()
    dispatcher.connected(device.id, channel)
    dispatcher.disconnected(device.id, channel)
    dispatcher.queue(device.id, "engineStop", {})
    assert channel.sent == [] and dispatcher.command_types(device.id) is None


class BrokenSession(FakeSession):
    def encode_command(self, command: Command, now):
        if command.type == "custom":
            raise ValueError("encoder bug")
        return super().encode_command(command, now)


def test_an_encoder_bug_fails_that_command_and_the_next_still_goes(world):
    store, dispatcher, device, _ = world
    store.queue_command(device.id, "custom", {"data": "x" * 300}, NOW)
    store.queue_command(device.id, "engineStop", {}, NOW)
    channel = FakeChannel(BrokenSession())
    dispatcher.connected(device.id, channel)
    assert statuses(store, device) == [("custom", "failed"), ("engineStop", "sent")]
    assert len(channel.sent) == 1


def test_devices_connecting_during_a_read_are_read_together_after_it(tmp_path):
    from tests.web.harness import QueuedThreadPool

    store = SqlStore(f"sqlite:///{tmp_path / 't.db'}")
    store.migrate()
    reactor = FakeReactor()
    reactor.advance(EPOCH.timestamp())
    vans = [store.add_device(f"imei{i}", f"van {i}") for i in range(5)]
    for van in vans:
        store.queue_command(van.id, "engineStop", {}, NOW)
    reads = []
    real = store.queued_commands
    store.queued_commands = lambda ids: (reads.append(sorted(ids)), real(ids))[1]
    pool = QueuedThreadPool()
    dispatcher = CommandDispatcher(store, reactor, pool)
    channels = [FakeChannel() for _ in vans]
    for van, channel in zip(vans, channels, strict=True):
        dispatcher.connected(van.id, channel)     # the first read is still running
    pool.run_all()
    assert reads == [[vans[0].id], sorted(v.id for v in vans[1:])]
    assert all(len(channel.sent) == 1 for channel in channels)
