"""TCP and UDP adapters: identification, store-then-ack ordering, bad input, limits."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import FakeDatagramTransport, StringTransport

from tests.tracker.doubles import (
    EPOCH,
    FakeReactor,
    LineCodec,
    ManualWriter,
    MemoryDevices,
    SyncThreadPool,
    rule_service,
)
from tracker.adapters import DeviceDatagramProtocol, DeviceStreamFactory, Ingest
from tracker.devices import DeviceDirectory


def make_ingest(policy="refuse", devices=("dev1",)):
    reactor = FakeReactor()
    reactor.advance(EPOCH.timestamp() + 3600)   # "now" is an hour after the test fixes
    store = MemoryDevices(*devices)
    directory = DeviceDirectory(store, reactor, SyncThreadPool(), policy)
    writer = ManualWriter()
    return reactor, store, writer, Ingest(LineCodec(), directory, writer, rule_service(reactor))


def connect(ingest, reactor, **kwargs):
    factory = DeviceStreamFactory(ingest, reactor, **kwargs)
    proto = factory.buildProtocol(None)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.9", 40000))
    proto.makeConnection(transport)
    return factory, proto, transport


def test_login_is_acked_once_the_device_is_known():
    reactor, _, _, ingest = make_ingest()
    _, proto, transport = connect(ingest, reactor)
    proto.dataReceived(b"LOGIN dev1\n")
    assert transport.value() == b"ACK LOGIN dev1\n"


def test_a_position_is_acked_only_after_commit_and_acks_keep_order():
    reactor, _, writer, ingest = make_ingest()
    _, proto, transport = connect(ingest, reactor)
    proto.dataReceived(b"LOGIN dev1\nPOS 1 1.0 2.0\nPOS 2 1.0 2.0\n")
    transport.clear()
    assert len(writer.submitted) == 2
    writer.commit(1)                      # the second commits first ...
    assert transport.value() == b""       # ... but its ack waits for the first
    writer.commit(0)
    assert transport.value() == b"ACK POS 1 1.0 2.0\nACK POS 2 1.0 2.0\n"


def test_a_failed_commit_sends_no_ack_and_closes():
    reactor, _, writer, ingest = make_ingest()
    _, proto, transport = connect(ingest, reactor)
    proto.dataReceived(b"LOGIN dev1\nPOS 1 1.0 2.0\n")
    transport.clear()
    writer.submitted[0][1].errback(ConnectionError("database down"))
    assert transport.value() == b""
    assert transport.disconnecting


def test_unknown_device_is_refused_and_recorded():
    reactor, store, writer, ingest = make_ingest(devices=())
    _, proto, transport = connect(ingest, reactor)
    proto.dataReceived(b"LOGIN stranger\nPOS 1 1.0 2.0\n")
    assert transport.value() == b""
    assert transport.disconnecting
    assert writer.submitted == []
    (attempt,) = store.unknown
    assert (attempt.unique_id, attempt.protocol, attempt.remote_address) == (
        "stranger", "line", "10.0.0.9:40000")


def test_unknown_device_is_registered_when_configured():
    reactor, store, writer, ingest = make_ingest(policy="register", devices=())
    _, proto, transport = connect(ingest, reactor)
    proto.dataReceived(b"LOGIN newcomer\n")
    assert transport.value() == b"ACK LOGIN newcomer\n"
    assert "newcomer" in store.devices and len(store.unknown) == 1


def test_garbage_closes_only_that_connection():
    reactor, _, writer, ingest = make_ingest(devices=("dev1", "dev2"))
    _, bad, bad_transport = connect(ingest, reactor)
    _, good, good_transport = connect(ingest, reactor)
    bad.dataReceived(b"LOGIN dev1\nBAD\n")
    good.dataReceived(b"LOGIN dev2\nPOS 1 1.0 2.0\n")
    writer.commit(0)
    assert bad_transport.disconnecting
    assert not good_transport.disconnecting
    assert good_transport.value().endswith(b"ACK POS 1 1.0 2.0\n")


def test_oversized_frame_closes_the_connection():
    reactor, _, _, ingest = make_ingest()
    _, proto, transport = connect(ingest, reactor)
    proto.dataReceived(b"X" * 100)
    assert transport.disconnecting


def test_data_after_close_is_ignored():
    reactor, _, writer, ingest = make_ingest()
    _, proto, _ = connect(ingest, reactor)
    proto.dataReceived(b"BAD\n")
    proto.dataReceived(b"LOGIN dev1\nPOS 1 1.0 2.0\n")
    assert writer.submitted == []


def test_position_before_login_is_dropped_without_ack():
    reactor, _, writer, ingest = make_ingest()
    _, proto, transport = connect(ingest, reactor)
    proto.dataReceived(b"POS 1 1.0 2.0\n")
    assert transport.value() == b"" and writer.submitted == []


def test_implausible_position_is_acked_without_storing():
    """A fix from the far future is dropped; acking it stops useless retransmission."""
    reactor, _, writer, ingest = make_ingest()
    _, proto, transport = connect(ingest, reactor)
    proto.dataReceived(b"LOGIN dev1\nPOS 999999 1.0 2.0\n")
    assert writer.submitted == []
    assert transport.value().endswith(b"ACK POS 999999 1.0 2.0\n")


def test_idle_connection_times_out():
    reactor, _, _, ingest = make_ingest()
    _, proto, transport = connect(ingest, reactor, idle_timeout_s=30)
    reactor.advance(29)
    proto.dataReceived(b"LOGIN dev1\n")
    reactor.advance(29)
    assert not transport.disconnecting
    reactor.advance(2)
    assert transport.disconnecting


def test_connection_cap_refuses_the_extra_connection():
    reactor, _, _, ingest = make_ingest()
    factory = DeviceStreamFactory(ingest, reactor, max_connections=1)
    first, second = StringTransport(), StringTransport()
    factory.buildProtocol(None).makeConnection(first)
    factory.buildProtocol(None).makeConnection(second)
    assert not first.disconnecting and second.disconnecting


def test_udp_acks_after_commit_and_drops_bad_datagrams():
    reactor, _, writer, ingest = make_ingest(devices=("dev1", "dev2"))
    udp = DeviceDatagramProtocol(ingest, reactor)
    transport = FakeDatagramTransport()
    udp.makeConnection(transport)
    udp.datagramReceived(b"BAD", ("10.0.0.1", 5000))
    udp.datagramReceived(b"LOGIN dev1\nPOS 1 1.0 2.0\n", ("10.0.0.2", 5000))
    assert transport.written == [(b"ACK LOGIN dev1\n", ("10.0.0.2", 5000))]
    writer.commit(0)
    assert transport.written[-1] == (b"ACK POS 1 1.0 2.0\n", ("10.0.0.2", 5000))


def test_udp_peers_are_bounded():
    reactor, _, _, ingest = make_ingest(devices=())
    udp = DeviceDatagramProtocol(ingest, reactor, max_peers=3)
    udp.makeConnection(FakeDatagramTransport())
    for port in range(10):
        udp.datagramReceived(b"HELLO", ("10.0.0.1", port))
    assert len(udp._peers) == 3


def test_heartbeat_status_goes_through_the_writer_before_its_ack():
    reactor, _, writer, ingest = make_ingest()
    _, proto, transport = connect(ingest, reactor)
    proto.dataReceived(b"LOGIN dev1\nHB\n")
    transport.clear()
    (batch, _), = writer.submitted
    assert batch.positions == () and len(batch.statuses) == 1
    writer.commit(0)
    assert transport.value() == b"ACK HB\n"


def test_a_connection_reports_online_then_offline_to_the_rule_service():
    reactor, _, writer, ingest = make_ingest()
    ingest.rules.start(writer.submit)
    try:
        _, proto, transport = connect(ingest, reactor)
        proto.dataReceived(b"LOGIN dev1\n")
        proto.connectionLost(None)
        proto.connectionLost(None)     # reported twice by a transport: one offline
        types = [e.type for batch, _ in writer.submitted for e in batch.events]
        assert types == ["deviceOnline", "deviceOffline"]
    finally:
        ingest.rules.stop()


def test_an_http_request_is_no_connection_for_the_rule_service():
    from tracker.http_adapter import DeviceHttpResource
    _, _, _, ingest = make_ingest()
    assert DeviceHttpResource(ingest).ingest.connections is False
