"""The HTTP device adapter: store-then-respond, refusals, bad requests, body cap."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

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
from tracker.devices import DeviceDirectory
from tracker.http_adapter import device_http_site


class CountingDispatcher:
    def __init__(self):
        self.calls = 0

    def connected(self, device_id, channel):
        self.calls += 1


def make_site(policy="refuse", commands=None):
    reactor = FakeReactor()
    reactor.advance(EPOCH.timestamp() + 3600)
    directory = DeviceDirectory(MemoryDevices("phone1"), reactor, SyncThreadPool(), policy)
    writer = ManualWriter()
    site = device_http_site(Ingest(QueryHttpCodec(), directory, writer, rule_service(reactor),
                                     commands=commands), reactor)
    return site, writer


def test_a_request_is_no_command_channel():
    """HTTP requests never reach the command dispatcher (no DB lookup per request)."""
    dispatcher = CountingDispatcher()
    site, writer = make_site(commands=dispatcher)
    request(site, b"GET /?id=phone1&t=10 HTTP/1.1\r\nHost: x\r\n\r\n")
    writer.commit(0)
    assert dispatcher.calls == 0


def request(site, raw: bytes) -> StringTransport:
    channel = site.buildProtocol(IPv4Address("TCP", "10.0.0.5", 1234))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.5", 1234))
    channel.makeConnection(transport)
    channel.dataReceived(raw)
    return transport


def status(transport: StringTransport) -> int:
    return int(transport.value().split(b" ", 2)[1])


def test_the_response_waits_for_the_commit():
    site, writer = make_site()
    transport = request(site, b"GET /?id=phone1&t=10&lat=1&lon=2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value() == b"", "answered before the data was stored"
    (batch, _), = writer.submitted
    assert batch.positions[0].latitude == 1.0
    writer.commit(0)
    assert status(transport) == 200


def test_storage_failure_is_503_so_the_app_retries():
    site, writer = make_site()
    transport = request(site, b"GET /?id=phone1&t=10 HTTP/1.1\r\nHost: x\r\n\r\n")
    writer.submitted[0][1].errback(ConnectionError("database down"))
    assert status(transport) == 503


def test_unknown_device_is_403():
    site, writer = make_site()
    transport = request(site, b"GET /?id=stranger&t=10 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status(transport) == 403 and writer.submitted == []


def test_a_request_the_codec_refuses_is_400_with_the_reason():
    site, _ = make_site()
    transport = request(site, b"GET /?id=phone1&lat=north HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status(transport) == 400 and transport.value().endswith(b"bad lat\n")


def test_a_request_naming_no_device_is_400():
    site, writer = make_site()
    transport = request(site, b"GET /?lat=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status(transport) == 400 and writer.submitted == []


def test_a_body_over_the_cap_is_413():
    site, writer = make_site()
    body = b"x" * 5000
    transport = request(site, b"POST /?id=phone1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
                        + body)
    assert status(transport) == 413 and writer.submitted == []
