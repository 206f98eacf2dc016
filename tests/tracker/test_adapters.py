"""TCP and UDP adapters: identification, store-then-ack ordering, bad input, limits."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import FakeDatagramTransport, StringTransport
from twisted.logger import capturedLogs, formatEvent

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


class BookkeepingDevices(MemoryDevices):
    """MemoryDevices with the batched unknown-device write of the Store interface."""

    def record_unknown_devices(self, attempts, max_rows):
        self.unknown.extend(attempts)
        del self.unknown[:-max_rows]


def make_ingest(policy="refuse", devices=("dev1",)):
    reactor = FakeReactor()
    reactor.advance(EPOCH.timestamp() + 3600)   # "now" is an hour after the test fixes
    store = BookkeepingDevices(*devices)
    directory = DeviceDirectory(store, reactor, SyncThreadPool(), policy,
                                bookkeeping_threadpool=SyncThreadPool())
    writer = ManualWriter()
    return reactor, store, writer, Ingest(LineCodec(), directory, writer, rule_service(reactor))


def connect(ingest, reactor, host="10.0.0.9", port=40000, **kwargs):
    factory = DeviceStreamFactory(ingest, reactor, **kwargs)
    proto = factory.buildProtocol(None)
    transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
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
    assert store.unknown == []            # recorded in batches, not per attempt
    ingest.directory.flush()
    (attempt,) = store.unknown
    assert (attempt.unique_id, attempt.protocol, attempt.remote_address) == (
        "stranger", "line", "10.0.0.9:40000")


def test_unknown_device_is_registered_when_configured():
    reactor, store, writer, ingest = make_ingest(policy="register", devices=())
    _, proto, transport = connect(ingest, reactor)
    proto.dataReceived(b"LOGIN newcomer\n")
    assert transport.value() == b"ACK LOGIN newcomer\n"
    ingest.directory.flush()
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


# -- slow clients: first-frame deadline, idle timer reset by frames only -------------------


def test_a_drip_of_partial_bytes_is_closed_at_the_first_frame_deadline():
    """One byte every 10 s, never a whole frame: closed 30 s after connecting."""
    reactor, _, _, ingest = make_ingest()
    _, proto, transport = connect(ingest, reactor, idle_timeout_s=600, first_frame_timeout_s=30)
    for byte in b"LO":                    # t = 0 and 10
        proto.dataReceived(bytes([byte]))
        reactor.advance(10)
    proto.dataReceived(b"G")              # t = 20
    reactor.advance(9.9)
    assert not transport.disconnecting
    reactor.advance(0.1)                  # t = 30
    assert transport.disconnecting


def test_the_first_frame_cancels_the_first_frame_deadline():
    reactor, _, _, ingest = make_ingest()
    _, proto, transport = connect(ingest, reactor, idle_timeout_s=600, first_frame_timeout_s=30)
    reactor.advance(29)
    proto.dataReceived(b"LOGIN dev1\n")
    reactor.advance(100)
    assert not transport.disconnecting


def test_the_idle_timer_is_not_reset_by_partial_bytes():
    reactor, _, _, ingest = make_ingest()
    _, proto, transport = connect(ingest, reactor, idle_timeout_s=30)
    proto.dataReceived(b"LOGIN dev1\n")
    for _ in range(2):
        reactor.advance(10)
        proto.dataReceived(b"P")          # part of a frame that never completes
    reactor.advance(9)
    assert not transport.disconnecting
    reactor.advance(1)                    # 30 s after the last complete frame
    assert transport.disconnecting


def test_a_device_sending_frames_stays_open_past_the_idle_timeout():
    reactor, _, _, ingest = make_ingest()
    _, proto, transport = connect(ingest, reactor, idle_timeout_s=30, first_frame_timeout_s=30)
    proto.dataReceived(b"LOGIN dev1\n")
    for _ in range(20):                   # 400 s of heartbeats, one every 20 s
        reactor.advance(20)
        proto.dataReceived(b"HB\n")
    assert not transport.disconnecting


def test_no_timers_are_left_after_the_connection_ends():
    reactor, _, _, ingest = make_ingest()
    _, proto, _ = connect(ingest, reactor)
    proto.connectionLost(None)
    assert [c for c in reactor.getDelayedCalls()
            if c.func.__qualname__.startswith("DeviceStreamProtocol")] == []


# -- log floods ------------------------------------------------------------------------------


def messages(events, text):
    return [formatEvent(e) for e in events if text in formatEvent(e)]


def test_a_thousand_bad_frames_from_one_host_give_a_few_lines_and_a_count():
    reactor, _, _, ingest = make_ingest()
    limit = ingest.directory.limited_log.lines_per_window
    with capturedLogs() as events:
        for port in range(1000):          # every bad frame closes its connection
            _, proto, transport = connect(ingest, reactor, port=20000 + port)
            proto.dataReceived(b"BAD\n")
            assert transport.disconnecting
        _, proto, _ = connect(ingest, reactor, host="10.0.0.10")
        proto.dataReceived(b"BAD\n")
        reactor.advance(60)               # the window ends
    lines = messages(events, ", closing: bad line")
    assert len([line for line in lines if "10.0.0.9:" in line]) == limit
    assert len([line for line in lines if "10.0.0.10:" in line]) == 1   # another host
    (summary,) = messages(events, "more log lines suppressed")
    assert f"bad frame from 10.0.0.9: {1000 - limit} more" in summary


def test_bad_datagrams_are_rate_limited_per_host():
    reactor, _, _, ingest = make_ingest()
    udp = DeviceDatagramProtocol(ingest, reactor)
    udp.makeConnection(FakeDatagramTransport())
    with capturedLogs() as events:
        for port in range(1000):
            udp.datagramReceived(b"BAD", ("10.0.0.1", port))
    assert len(messages(events, "bad datagram")) == ingest.directory.limited_log.lines_per_window


def test_refused_connection_and_idle_lines_are_rate_limited():
    reactor, _, _, ingest = make_ingest(devices=())
    with capturedLogs() as events:
        for port in range(50):
            _, proto, _ = connect(ingest, reactor, port=port, idle_timeout_s=5)
            proto.dataReceived(b"LOGIN stranger\n")
        for port in range(50):
            connect(ingest, reactor, port=1000 + port, idle_timeout_s=5)
        reactor.advance(5)
    limit = ingest.directory.limited_log.lines_per_window
    assert len(messages(events, "refused: unknown device")) == limit
    assert len(messages(events, "idle, closing")) == limit


def test_connection_limit_lines_are_rate_limited():
    reactor, _, _, ingest = make_ingest()
    factory = DeviceStreamFactory(ingest, reactor, max_connections=1)
    with capturedLogs() as events:
        for port in range(100):
            factory.buildProtocol(None).makeConnection(
                StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.3", port)))
    assert len(messages(events, "connection limit")) == ingest.directory.limited_log.lines_per_window
