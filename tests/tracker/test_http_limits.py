"""HTTP connection limits (tracker.bounded_http.BoundedSite) on the device HTTP site
and the web site: header deadline, connection cap, rate-limited log lines."""

from __future__ import annotations

import pytest
from twisted.internet import defer, protocol, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial import unittest

from tests.tracker.doubles import (
    EPOCH,
    FakeReactor,
    ManualWriter,
    MemoryDevices,
    QueryHttpCodec,
    SyncThreadPool,
    rule_service,
)
from tracker.adapters import Ingest
from tracker.bounded_http import OVER_CAPACITY_RESPONSE, BoundedSite
from tracker.devices import DeviceDirectory
from tracker.http_adapter import device_http_site
from web.site import build_site

NO_DEVICE = b"GET /?nothing HTTP/1.1\r\nHost: x\r\n\r\n"   # answered 400 at once, kept alive


def make_ingest(clock):
    directory = DeviceDirectory(MemoryDevices("phone1"), clock, SyncThreadPool())
    return Ingest(QueryHttpCodec(), directory, ManualWriter(), rule_service(clock))


def device_site(clock=None, **limits):
    clock = clock if clock is not None else FakeReactor()
    if clock.seconds() == 0:
        clock.advance(EPOCH.timestamp())
    return clock, device_http_site(make_ingest(clock), clock, **limits)


def connect(site, port=1234, host="10.0.0.5"):
    address = IPv4Address("TCP", host, port)
    channel = site.buildProtocol(address)
    transport = StringTransport(peerAddress=address)
    channel.makeConnection(transport)
    return channel, transport


# -- header deadline ------------------------------------------------------------------------


def test_a_slow_header_is_closed_at_the_deadline_whatever_it_drips():
    clock, site = device_site(header_timeout_s=10, idle_timeout_s=60)
    channel, transport = connect(site)
    start = clock.seconds()
    for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
        channel.dataReceived(bytes([byte]))   # one byte every 0.5 s: each resets the idle timer
        clock.advance(0.5)
        if transport.disconnecting:
            break
    assert clock.seconds() - start == 10
    assert transport.value() == b""          # closed, not answered


def test_a_header_in_time_is_answered_and_not_closed_later_by_the_deadline():
    clock, site = device_site(header_timeout_s=10)
    channel, transport = connect(site)
    clock.advance(9)
    channel.dataReceived(NO_DEVICE)
    assert transport.value().startswith(b"HTTP/1.1 400")
    clock.advance(9.9)                        # the next request's deadline runs from here
    assert not transport.disconnecting
    clock.advance(0.1)
    assert transport.disconnecting           # kept alive, but no next header in 10 s


def test_a_kept_alive_connection_gets_a_fresh_deadline_per_request():
    clock, site = device_site(header_timeout_s=10)
    channel, transport = connect(site)
    for _ in range(5):
        clock.advance(8)
        channel.dataReceived(NO_DEVICE)
    assert transport.value().count(b"HTTP/1.1 400") == 5
    assert not transport.disconnecting


def test_pipelined_requests_complete_within_the_deadline():
    clock, site = device_site(header_timeout_s=10)
    channel, transport = connect(site)
    channel.dataReceived(NO_DEVICE * 3)
    clock.advance(9)
    assert transport.value().count(b"HTTP/1.1 400") == 3 and not transport.disconnecting


def test_the_header_deadline_is_not_applied_while_a_response_is_pending():
    """A request waiting for its commit is not a slow header."""
    clock, site = device_site(header_timeout_s=10, idle_timeout_s=600)
    channel, transport = connect(site)
    channel.dataReceived(b"GET /?id=phone1&t=10 HTTP/1.1\r\nHost: x\r\n\r\n")
    clock.advance(30)
    assert not transport.disconnecting and transport.value() == b""


def test_no_deadline_when_it_is_none():
    clock, site = device_site(header_timeout_s=None, idle_timeout_s=600)
    channel, transport = connect(site)
    channel.dataReceived(b"GET / HT")
    clock.advance(300)
    assert not transport.disconnecting


def test_slow_header_lines_are_rate_limited():
    clock, site = device_site(header_timeout_s=10)
    with capturedLogs() as events:
        for port in range(100):
            connect(site, port=port)[0].dataReceived(b"GET")
        clock.advance(10)
    lines = [formatEvent(e) for e in events if "not complete in" in formatEvent(e)]
    assert len(lines) == site.limited_log.lines_per_window
    assert "query: request headers from 10.0.0.5" in lines[0]


# -- connection cap ---------------------------------------------------------------------------


def test_the_connection_beyond_the_cap_is_answered_503_and_closed():
    _, site = device_site(max_connections=2)
    (first, _), (_, second) = connect(site, 1), connect(site, 2)
    extra, extra_transport = connect(site, 3)
    assert extra_transport.value() == OVER_CAPACITY_RESPONSE
    assert extra_transport.disconnecting and not second.disconnecting
    extra.dataReceived(NO_DEVICE)            # nothing is read from it
    assert extra_transport.value() == OVER_CAPACITY_RESPONSE
    assert site.connections == 3
    extra.connectionLost(Failure(ConnectionError()))
    first.connectionLost(Failure(ConnectionError()))
    first.connectionLost(Failure(ConnectionError()))   # reported twice: counted once
    assert site.connections == 1
    _, again = connect(site, 4)
    assert not again.disconnecting           # room again


def test_connection_limit_lines_are_rate_limited():
    _, site = device_site(max_connections=1)
    with capturedLogs() as events:
        for port in range(100):
            connect(site, port)
    lines = [formatEvent(e) for e in events if "connection limit" in formatEvent(e)]
    assert len(lines) == site.limited_log.lines_per_window


def test_the_web_site_is_bounded_too():
    clock = FakeReactor()
    site = build_site(None, SyncThreadPool(), clock, max_connections=1, header_timeout_s=5)
    assert isinstance(site, BoundedSite)
    _, transport = connect(site, 1)
    _, extra = connect(site, 2)
    assert extra.value().startswith(b"HTTP/1.1 503") and extra.disconnecting
    clock.advance(5)
    assert transport.disconnecting           # the web site's header deadline


def test_build_site_defaults():
    site = build_site(None, SyncThreadPool(), FakeReactor())
    assert (site.max_connections, site.header_timeout_s) == (1_000, 10.0)
    _, device = device_site()
    assert (device.max_connections, device.header_timeout_s, device.timeOut) == (10_000, 10.0, 60)


def test_the_cap_must_be_positive():
    with pytest.raises(ValueError, match="max_connections must be >= 1"):
        device_site(max_connections=0)


# -- real loopback sockets -----------------------------------------------------------------------


class Recorder(protocol.Protocol):
    """A client that records what it got and fires `closed` when the server closes."""

    def __init__(self):
        self.received = b""
        self.closed = defer.Deferred()

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.closed.callback(self.received)


@pytest.mark.slow   # real loopback sockets
class Loopback(unittest.TestCase):
    timeout = 20    # hang detection only

    def listen(self, site) -> int:
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.addCleanup(site.limited_log.flush)   # its window timer
        return port.getHost().port

    @defer.inlineCallbacks
    def connect(self, port_number) -> Recorder:
        client = yield protocol.ClientCreator(reactor, Recorder).connectTCP("127.0.0.1",
                                                                            port_number)
        self.addCleanup(lambda: client.transport.abortConnection()
                        if client.transport.connected else None)
        return client

    @defer.inlineCallbacks
    def test_a_slow_header_on_a_real_socket_is_closed(self):
        _, site = device_site(clock=reactor, header_timeout_s=0.5, idle_timeout_s=60)
        client = yield self.connect(self.listen(site))
        dripping = []

        def drip(data=b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100):
            if data and client.transport.connected:
                client.transport.write(data[:1])
                dripping.append(reactor.callLater(0.05, drip, data[1:]))
        drip()
        self.addCleanup(lambda: [c.cancel() for c in dripping if c.active()])
        received = yield client.closed
        self.assertEqual(received, b"")      # closed by the server, no answer
        self.assertGreater(len(dripping), 3)  # it was still dripping when closed

    @defer.inlineCallbacks
    def test_the_web_site_cap_on_real_sockets(self):
        site = build_site(None, SyncThreadPool(), reactor, max_connections=2,
                          header_timeout_s=5)
        port_number = self.listen(site)
        kept = []
        for _ in range(2):
            kept.append((yield self.connect(port_number)))
        extra = yield self.connect(port_number)
        received = yield extra.closed
        self.assertTrue(received.startswith(b"HTTP/1.1 503"), received)
        self.assertTrue(all(client.transport.connected for client in kept))
