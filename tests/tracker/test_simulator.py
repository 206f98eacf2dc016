"""The device simulator against small servers on real loopback ports.

- GT06 end to end: the server decodes with the real `protocols.gt06` session and
  acks (or not) as a test configures it; what it acks it records, as a
  store-then-ack server would.
- Each transport path with a tiny fake device side (a line protocol defined
  here): TCP with serial acks, TCP with FIFO (None) acks, TCP without report
  acks, UDP with a lost datagram, HTTP with a failed request.
- `run` for every registered protocol against a server made of that codec's own
  session (grows as protocols land).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import io
import itertools
import math
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import pytest
from twisted.internet import defer, error, protocol, reactor, task
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web import resource, server

import protocols
from protocols import HttpRequest, Login, Position, ProtocolError, gt06
from protocols.registry import DEVICES
from tracker import simulator
from tracker.simulator import SimulationOptions, Stats, run_simulation

FIRST_IMEI = 860_000_000_000_000
ACKED_LINE = re.compile(r"^(\d{15}) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (position|alarm)$")
SUMMARY_LINE = re.compile(
    r"^sent=(\d+) acked=(\d+|n/a delivered=\d+) unacked=(\d+) resent=(\d+) connections=(\d+) "
    r"ack_p50_ms=(\S+) ack_p99_ms=(\S+)$")
REPO = Path(__file__).resolve().parents[2]
STAMP = "%Y-%m-%dT%H:%M:%SZ"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Tracked:
    """Test servers know their open connections; `all_closed()` waits for them."""

    def __init__(self) -> None:
        self.open: set[object] = set()
        self.connections = 0
        self._closed_waiters: list[defer.Deferred] = []

    def opened(self, connection) -> None:
        self.connections += 1
        self.open.add(connection)

    def all_closed(self) -> defer.Deferred:
        if not self.open:
            return defer.succeed(None)
        d = defer.Deferred()
        self._closed_waiters.append(d)
        return d

    def connection_closed(self, connection) -> None:
        self.open.discard(connection)
        if not self.open:
            waiters, self._closed_waiters = self._closed_waiters, []
            for d in waiters:
                d.callback(None)


class TrackedSite(server.Site):
    """A twisted.web Site whose HTTP connections are tracked."""

    noisy = False

    def __init__(self, root, tracker: Tracked) -> None:
        super().__init__(root)
        self.tracker = tracker

    def buildProtocol(self, addr):
        channel = super().buildProtocol(addr)
        tracker = self.tracker
        tracker.opened(channel)
        lost = channel.connectionLost

        def connectionLost(reason):
            lost(reason)
            tracker.connection_closed(channel)
        channel.connectionLost = connectionLost
        return channel

    def log(self, request) -> None:
        pass    # no access log in tests


# ---------------------------------------------------------------------------
# GT06 test server
# ---------------------------------------------------------------------------

class Gt06TestServer(protocol.Factory, Tracked):
    """Acks logins always; data frames per the settings; records what it acked.

    `ack_data` False: positions and alarms are never acked.  `drop_after` K: the
    first `drops` connections are closed on their Kth data frame, none of their
    data acked.
    """

    noisy = False

    def __init__(self, ack_data: bool = True, drop_after: int | None = None,
                 drops: int = 0) -> None:
        Tracked.__init__(self)
        self.ack_data = ack_data
        self.drop_after = drop_after
        self.drops_left = drops
        self.acked: list[tuple[str, Position]] = []   # (IMEI, record) in ack order
        self.logins = 0
        self.heartbeats = 0

    def buildProtocol(self, addr):
        return _Gt06ServerConnection(self)


class _Gt06ServerConnection(protocol.Protocol):
    def __init__(self, server: Gt06TestServer) -> None:
        self.server = server
        self.session = gt06.CODEC.new_session()
        self.data_frames = 0
        self.dropping = False

    def connectionMade(self):
        self.server.opened(self)
        self.dropping = self.server.drop_after is not None and self.server.drops_left > 0
        if self.dropping:
            self.server.drops_left -= 1

    def dataReceived(self, data):
        for frame in self.session.receive_data(data, _now()):
            if not self.transport.connected or self.transport.disconnecting:
                return
            positions = [m for m in frame.messages if isinstance(m, Position) and not m.outdated]
            if any(isinstance(m, Login) for m in frame.messages):
                self.server.logins += 1
                self.transport.write(frame.reply)
                continue
            if not positions:             # a heartbeat
                self.server.heartbeats += 1
                self.transport.write(frame.reply)
                continue
            self.data_frames += 1
            if self.dropping:
                if self.data_frames >= self.server.drop_after:
                    self.transport.loseConnection()
                    return
            elif self.server.ack_data:
                for record in positions:
                    self.server.acked.append((record.unique_id or self.session.unique_id, record))
                self.transport.write(frame.reply)

    def connectionLost(self, reason=None):
        self.server.connection_closed(self)


class InMemory(unittest.SynchronousTestCase):
    """One GT06 device on a MemoryReactorClock; the codec's own session plays the server."""

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.reactor.advance(dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC).timestamp())
        self.simulation = simulator.Simulation(self.reactor, SimulationOptions(
            host="10.0.0.1", port=5023, devices=1, interval_s=5.0, heartbeat_every=0,
            buffer_limit=3))
        self.done = self.simulation.run()
        self.reactor.advance(0)

    def connect(self):
        """Accept the device's latest connection attempt."""
        _, port, factory, _, _ = self.reactor.tcpClients[-1]
        self.assertEqual(port, 5023)
        connection = factory.buildProtocol(None)
        transport = StringTransport()
        connection.makeConnection(transport)
        return factory, connection, transport, gt06.CODEC.new_session()

    def serve(self, connection, transport, server, ack=True):
        """What the device wrote, decoded; acked when `ack`."""
        frames = server.receive_data(transport.value(), _now())
        transport.clear()
        if ack:
            connection.dataReceived(b"".join(frame.reply for frame in frames))
        return frames

    def drop(self, factory, connection):
        reason = Failure(error.ConnectionLost())
        connection.connectionLost(reason)
        factory.clientConnectionLost(self.reactor.connectors[-1], reason)

    def test_backlog_is_resent_identically_after_the_next_login(self):
        """After a drop: reconnect after >= 1 s, log in, then the very bytes sent before."""
        factory, connection, transport, server = self.connect()
        [login] = self.serve(connection, transport, server)
        self.assertEqual(login.messages, (Login(str(FIRST_IMEI)),))
        self.reactor.advance(5)
        self.reactor.advance(5)
        unacked = self.serve(connection, transport, server, ack=False)
        self.assertEqual(len(unacked), 2)
        self.assertLess(unacked[0].messages[0].fix_time, unacked[1].messages[0].fix_time)
        self.drop(factory, connection)
        self.reactor.advance(0.99)
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.reactor.advance(0.3)
        self.assertEqual(len(self.reactor.tcpClients), 2)

        factory, connection, transport, server = self.connect()
        [login] = server.receive_data(transport.value(), _now())
        self.assertIsInstance(login.messages[0], Login)   # only the login before its ack
        transport.clear()
        connection.dataReceived(login.reply)
        self.assertEqual(transport.value(), b"".join(frame.raw for frame in unacked))
        self.serve(connection, transport, server)
        self.assertEqual((self.simulation.sent, self.simulation.acked, self.simulation.resent),
                         (2, 2, 2))
        self.simulation.stop()
        self.assertEqual(self.reactor.connectors[-1]._disconnected, True)
        self.drop(factory, connection)
        stats = self.successResultOf(self.done)
        self.assertTrue(stats.ok)
        self.assertEqual((stats.connections, stats.logins), (2, 2))

    def test_backoff_doubles_to_ten_seconds_and_resets_after_login(self):
        """Refused connections are retried after ~1, 2, 4, 8, 10, 10 s."""
        attempts = [self.reactor.seconds()]
        while len(attempts) < 7:
            _, _, factory, _, _ = self.reactor.tcpClients[-1]
            factory.clientConnectionFailed(self.reactor.connectors[-1],
                                           Failure(error.ConnectionRefusedError()))
            count = len(self.reactor.tcpClients)
            while len(self.reactor.tcpClients) == count:
                self.reactor.advance(0.01)
            attempts.append(self.reactor.seconds())
        gaps = [after - before for before, after in itertools.pairwise(attempts)]
        for gap, low in zip(gaps, (1, 2, 4, 8, 10, 10), strict=True):
            self.assertTrue(low - 0.02 <= gap <= min(low * 1.25, 10) + 0.02, gaps)
        factory, connection, transport, server = self.connect()
        self.serve(connection, transport, server)
        self.drop(factory, connection)
        self.reactor.advance(1.3)
        self.assertEqual(len(self.reactor.tcpClients), 8)

    def test_offline_buffer_is_bounded(self):
        """Without a connection reports are buffered up to the limit; the oldest go."""
        self.reactor.pump([5] * 5)
        self.assertEqual(self.simulation.sent, 5)
        self.assertEqual(self.simulation.dropped, 2)
        self.assertEqual(len(self.simulation._devices[0].buffer), 3)
        self.simulation.abort()
        self.assertNoResult(self.done)
        self.reactor.pump([simulator.CLOSE_GRACE_S] * 2)   # a hung attempt is given up
        stats = self.successResultOf(self.done)
        self.assertEqual((stats.unacked, stats.dropped), (5, 2))
        self.assertTrue(stats.interrupted)

    def test_serials_wrap_and_skip_buffered_ones(self):
        device = self.simulation._devices[0]
        device.serial = 65534
        device.buffer = {65535: None, 1: None}
        self.assertEqual(device._next_serial(), 2)


@pytest.mark.slow   # real loopback servers and child processes: the e2e env
class SimulatorTestCase(unittest.TestCase):
    def start_server(self, **settings) -> tuple[Gt06TestServer, int]:
        server = Gt06TestServer(**settings)
        port = reactor.listenTCP(0, server, interface="127.0.0.1")
        self.addCleanup(server.all_closed)
        self.addCleanup(port.stopListening)
        return server, port.getHost().port

    def options(self, port: int, **overrides) -> SimulationOptions:
        settings = dict(port=port, devices=4, interval_s=0.2, duration_s=1.2,
                        drain_timeout_s=5.0, backoff_min_s=0.2, backoff_max_s=1.0,
                        heartbeat_every=3, seed=7)
        settings.update(overrides)
        return SimulationOptions(**settings)

    def acked_log(self) -> Path:
        """A fresh file path in a directory removed after the test.

        (Not `self.mktemp()`: under pytest that writes into the working directory.)
        """
        directory = Path(tempfile.mkdtemp(prefix="tracker-sim-"))
        self.addCleanup(shutil.rmtree, directory, True)
        return directory / "acked.log"

    def parse_acked_log(self, text: str) -> list[tuple[str, dt.datetime, str]]:
        lines = []
        for line in text.splitlines():
            match = ACKED_LINE.match(line)
            self.assertIsNotNone(match, f"malformed acked-log line {line!r}")
            imei, stamp, kind = match.groups()
            lines.append((imei, dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z"), kind))
        return lines

    def read_acked_log(self, path: Path) -> list[tuple[str, dt.datetime, str]]:
        return self.parse_acked_log(path.read_text(encoding="utf-8"))

    def assert_log_matches_server(self, log_lines, server: Gt06TestServer) -> None:
        """The acked log and what the server acked are the same records, each once."""
        logged = sorted((imei, fix_time) for imei, fix_time, _ in log_lines)
        stored = sorted((imei, record.fix_time) for imei, record in server.acked)
        self.assertEqual(len(set(stored)), len(stored), "a record was stored twice")
        self.assertEqual(logged, stored)


class EverythingAcked(SimulatorTestCase):
    @defer.inlineCallbacks
    def test_every_message_acked_and_logged_once(self):
        """All acked: sent == acked, no resends, one connection per device, log == server."""
        server, port = self.start_server()
        log_path = self.acked_log()
        stats = yield run_simulation(reactor, self.options(
            port, alarm_every=3, acked_log=str(log_path)))
        self.assertIsInstance(stats, Stats)
        self.assertGreaterEqual(stats.sent, 4 * 4)
        self.assertEqual((stats.acked, stats.unacked, stats.resent, stats.dropped),
                         (stats.sent, 0, 0, 0))
        self.assertEqual((stats.connections, stats.logins), (4, 4))
        self.assertEqual(server.logins, 4)
        self.assertTrue(stats.ok)
        self.assertFalse(stats.interrupted)
        self.assertTrue(0 <= stats.ack_p50_ms <= stats.ack_p99_ms < 5000)
        self.assertGreater(stats.heartbeats, 0)
        self.assertEqual(server.heartbeats, stats.heartbeats)

        lines = self.read_acked_log(log_path)
        self.assertEqual(len(lines), stats.acked)
        self.assertEqual({imei for imei, _, _ in lines},
                         {str(FIRST_IMEI + i) for i in range(4)})
        self.assert_log_matches_server(lines, server)
        alarms = [record.attributes.get("alarm") for _, record in server.acked
                  if record.attributes.get("alarm")]
        self.assertEqual(len(alarms), sum(1 for *_, kind in lines if kind == "alarm"))
        self.assertTrue(alarms)
        self.assertEqual(set(alarms), {"sos"})
        yield server.all_closed()

    @defer.inlineCallbacks
    def test_routes_are_plausible(self):
        """Fix times rise per device, speeds stay 0..90 km/h, course is the way moved."""
        server, port = self.start_server()
        yield run_simulation(reactor, self.options(port, devices=3, duration_s=2.0,
                                                   interval_s=0.1))
        by_device: dict[str, list[Position]] = {}
        for imei, record in server.acked:
            by_device.setdefault(imei, []).append(record)
        self.assertEqual(len(by_device), 3)
        checked = 0
        for records in by_device.values():
            records.sort(key=lambda r: r.fix_time)
            for before, after in itertools.pairwise(records):
                self.assertLess(before.fix_time, after.fix_time)
                self.assertEqual(after.fix_time.microsecond, 0)
                self.assertTrue(0 <= after.speed_kn * 1.852 <= 90.5, after.speed_kn)
                self.assertTrue(after.valid)
                self.assertLess(abs(after.latitude - 52.52), 1.0)
                self.assertLess(abs(after.longitude - 13.405), 1.0)
                north_m = (after.latitude - before.latitude) * 111_320
                east_m = ((after.longitude - before.longitude) * 111_320
                          * math.cos(math.radians(after.latitude)))
                if math.hypot(north_m, east_m) > 1.0:
                    bearing = math.degrees(math.atan2(east_m, north_m)) % 360
                    difference = abs((bearing - after.course_deg + 180) % 360 - 180)
                    self.assertLess(difference, 10, (before, after))
                    checked += 1
        self.assertGreater(checked, 10)


class Reconnection(SimulatorTestCase):
    @defer.inlineCallbacks
    def test_dropped_connection_is_reconnected_and_unacked_resent(self):
        """The server drops each device's first connection unacked: all is resent, stored once."""
        server, port = self.start_server(drop_after=3, drops=4)
        log_path = self.acked_log()
        stats = yield run_simulation(reactor, self.options(
            port, duration_s=1.5, alarm_every=4, acked_log=str(log_path)))
        self.assertTrue(stats.ok, stats)
        self.assertEqual(stats.acked, stats.sent)
        self.assertGreaterEqual(stats.resent, 4 * 3)
        self.assertGreaterEqual(stats.connections, 8)
        self.assertEqual(stats.logins, stats.connections)
        lines = self.read_acked_log(log_path)
        self.assertEqual(len(lines), stats.sent)
        self.assert_log_matches_server(lines, server)

    @defer.inlineCallbacks
    def test_messages_made_offline_are_buffered_and_sent_later(self):
        """Nothing listens at first: reports are buffered, then delivered once the server is up."""
        probe = reactor.listenTCP(0, protocol.Factory(), interface="127.0.0.1")
        port_number = probe.getHost().port
        yield probe.stopListening()
        server = Gt06TestServer()
        simulation = simulator.Simulation(reactor, self.options(
            port_number, devices=2, duration_s=1.5, backoff_min_s=0.5, backoff_max_s=0.5))
        done = simulation.run()
        yield task.deferLater(reactor, 0.9, lambda: None)
        self.assertEqual(simulation.connections, 0)
        self.assertGreater(simulation.sent, 0)
        port = reactor.listenTCP(port_number, server, interface="127.0.0.1")
        self.addCleanup(server.all_closed)
        self.addCleanup(port.stopListening)
        stats = yield done
        self.assertTrue(stats.ok, stats)
        self.assertEqual(stats.resent, 0)          # first transmissions, not resends
        self.assertEqual(len(server.acked), stats.sent)


class NoAcks(SimulatorTestCase):
    @defer.inlineCallbacks
    def test_unacked_messages_are_counted_and_not_ok(self):
        """A server that never acks data: everything is unacked, nothing logged."""
        server, port = self.start_server(ack_data=False)
        log_path = self.acked_log()
        stats = yield run_simulation(reactor, self.options(
            port, duration_s=0.8, drain_timeout_s=0.3, acked_log=str(log_path)))
        self.assertGreater(stats.sent, 0)
        self.assertEqual((stats.acked, stats.unacked), (0, stats.sent))
        self.assertFalse(stats.ok)
        self.assertTrue(math.isnan(stats.ack_p50_ms))
        self.assertEqual(server.acked, [])
        self.assertEqual(log_path.read_text(), "")

    @defer.inlineCallbacks
    def test_login_without_ack_times_out_and_reconnects(self):
        """No login ack within the timeout: the device reconnects and tries again."""
        class Silent(protocol.Protocol):
            pass
        factory = protocol.Factory.forProtocol(Silent)
        factory.noisy = False
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        stats = yield run_simulation(reactor, self.options(
            port.getHost().port, devices=1, duration_s=1.0, drain_timeout_s=0.0,
            login_timeout_s=0.3, backoff_min_s=0.1, backoff_max_s=0.1))
        self.assertGreaterEqual(stats.connections, 2)
        self.assertEqual(stats.logins, 0)
        self.assertFalse(stats.ok)


# ---------------------------------------------------------------------------
# A fake device side (a line protocol) for each transport path
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class FakeDevice:
    """Device side of a toy line protocol:

        LOGIN,<id>,<serial>   POS,<id>,<serial>,<fix time>,<lat>,<lon>,<kn>,<deg>,<alarm>
        PING,<id>,<serial>

    The server answers "ACK,<serial>" (a serial token), "OK" (a None token) or
    "TIME,<now>" (acknowledges nothing).  Over HTTP a report is a POST of the
    POS line to /report?id=<id>&serial=<serial>.
    """

    transport: str = "tcp"
    acks_login: bool = True
    acks_reports: bool = True

    def login(self, unique_id, serial):
        return b"" if self.transport == "http" else f"LOGIN,{unique_id},{serial}\n".encode()

    def report(self, unique_id, serial, report):
        line = (f"POS,{unique_id},{serial},{report.fix_time:{STAMP}},{report.latitude:.6f},"
                f"{report.longitude:.6f},{report.speed_kn:.2f},{report.course_deg:.1f},"
                f"{report.alarm or ''}\n").encode()
        if self.transport == "http":
            return HttpRequest("POST", f"/report?id={unique_id}&serial={serial}",
                               {"Content-Type": "text/plain", "Content-Length": "999"}, line)
        return line

    def heartbeat(self, unique_id, serial):
        return b"" if self.transport == "http" else f"PING,{unique_id},{serial}\n".encode()

    def ack_reader(self):
        return FakeAckReader()


class FakeAckReader:
    def __init__(self):
        self.buffer = b""

    def receive_data(self, data):
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        tokens = []
        for line in lines:
            if line.startswith(b"ACK,"):
                tokens.append(int(line[4:]))
            elif line == b"OK":
                tokens.append(None)
            elif not line.startswith(b"TIME,"):
                raise ProtocolError("not a reply", line)
        return tokens


class FakeBackend(Tracked):
    """The fake protocol's server logic, shared by the TCP, UDP and HTTP servers.

    `acks`: "serial" (ACK,<serial>, half of them late so that acks overtake each
    other), "fifo" (OK, in order, after a TIME line) or "none" (reports unanswered).
    `heartbeat_replies`: whether PING is answered.  `lose`: numbers (1-based) of
    reports the server never sees the first time (a lost datagram).
    """

    def __init__(self, acks="serial", heartbeat_replies=True, lose=()):
        super().__init__()
        self.acks = acks
        self.heartbeat_replies = heartbeat_replies
        self.lose = set(lose)
        self.reports_seen = 0
        self.stored: list[tuple[str, str, str]] = []     # (id, fix time, alarm)
        self.stored_keys: set[tuple[str, str]] = set()
        self.logins = self.heartbeats = 0

    def ack(self, serial: str) -> bytes:
        return f"ACK,{serial}\n".encode() if self.acks == "serial" else b"OK\n"

    def handle(self, line: bytes, reply) -> None:
        """Handle one line; `reply(bytes, delay_s)` sends an answer."""
        kind, unique_id, serial, *fields = line.decode().split(",")
        if kind == "LOGIN":
            self.logins += 1
            reply(self.ack(serial), 0.0)
        elif kind == "PING":
            self.heartbeats += 1
            if self.heartbeat_replies:
                reply(self.ack(serial), 0.0)
        elif kind == "POS":
            self.reports_seen += 1
            if self.reports_seen in self.lose:
                self.lose.discard(self.reports_seen)
                return
            self.store(unique_id, fields[0], fields[-1])
            if self.acks == "serial":
                reply(self.ack(serial), 0.05 if self.reports_seen % 2 else 0.0)
            elif self.acks == "fifo":
                reply(b"TIME,20260501120000\n" + self.ack(serial), 0.0)
        else:
            raise AssertionError(f"unexpected line {line!r}")

    def store(self, unique_id: str, fix_time: str, alarm: str) -> None:
        key = (unique_id, fix_time)
        assert key not in self.stored_keys, f"{key} stored twice"
        self.stored_keys.add(key)
        self.stored.append((unique_id, fix_time, alarm))


class _FakeTcpServer(protocol.Factory):
    noisy = False

    def __init__(self, backend: FakeBackend) -> None:
        self.backend = backend

    def buildProtocol(self, addr):
        return _FakeTcpConnection(self.backend)


class _FakeTcpConnection(protocol.Protocol):
    def __init__(self, backend: FakeBackend) -> None:
        self.backend = backend
        self.buffer = b""
        self.pending: list = []

    def connectionMade(self):
        self.backend.opened(self)

    def dataReceived(self, data):
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            self.backend.handle(line, self.reply)

    def reply(self, data: bytes, delay_s: float) -> None:
        if delay_s:
            self.pending.append(reactor.callLater(delay_s, self.reply, data, 0.0))
        elif self.transport.connected:
            self.transport.write(data)

    def connectionLost(self, reason=None):
        for call in self.pending:
            if call.active():
                call.cancel()
        self.backend.connection_closed(self)


class _FakeUdpServer(protocol.DatagramProtocol):
    noisy = False

    def __init__(self, backend: FakeBackend) -> None:
        self.backend = backend
        self.peers: set = set()

    def datagramReceived(self, data, addr):
        self.peers.add(addr)
        for line in data.split(b"\n"):
            if line:
                self.backend.handle(line, lambda answer, _delay_s: self.transport.write(answer, addr))


class _FakeHttpResource(resource.Resource):
    """Answers POST /report with the statuses given in turn, then 200; stores on 200."""

    isLeaf = True

    def __init__(self, backend: FakeBackend, statuses) -> None:
        super().__init__()
        self.backend = backend
        self.statuses = list(statuses)
        self.requests: list[tuple[bytes, int]] = []

    def render_POST(self, request):
        status = self.statuses.pop(0) if self.statuses else 200
        self.requests.append((request.uri, status))
        assert request.uri.startswith(b"/report?id="), request.uri
        assert request.getHeader(b"content-type") == b"text/plain"
        request.setResponseCode(status)
        if status == 200:
            body = request.content.read()
            self.backend.handle(body.rstrip(b"\n"), lambda answer, delay_s: None)
        return b"stored" if status == 200 else b"try again"


class CheckedLog(io.StringIO):
    """An acked log that notes every line written before the server stored it."""

    def __init__(self, backend: FakeBackend) -> None:
        super().__init__()
        self.backend = backend
        self.early: list[str] = []

    def write(self, text: str) -> int:
        unique_id, stamp, _ = text.split()
        if (unique_id, stamp) not in self.backend.stored_keys:
            self.early.append(text)
        return super().write(text)


class FakeTransports(SimulatorTestCase):
    """Each transport path with the fake device side."""

    def fake_options(self, port: int, **overrides) -> SimulationOptions:
        settings = dict(port=port, devices=3, interval_s=0.1, duration_s=1.0,
                        drain_timeout_s=5.0, backoff_min_s=0.2, backoff_max_s=1.0,
                        heartbeat_every=2, alarm_every=3, seed=3, retry_timeout_s=0.3,
                        reply_wait_s=0.3)
        settings.update(overrides)
        return SimulationOptions(**settings)

    def tcp_backend(self, **settings) -> tuple[FakeBackend, int]:
        backend = FakeBackend(**settings)
        port = reactor.listenTCP(0, _FakeTcpServer(backend), interface="127.0.0.1")
        self.addCleanup(backend.all_closed)
        self.addCleanup(port.stopListening)
        return backend, port.getHost().port

    @defer.inlineCallbacks
    def simulate(self, backend, options, device, checked=True):
        log = CheckedLog(backend) if checked else io.StringIO()
        simulation = simulator.Simulation(reactor, options, acked_log=log, device=device)
        stats = yield simulation.run()
        return simulation, stats, log

    def assert_all_stored_once(self, stats, backend, log):
        """Every report acked (or delivered), each logged once, the log == the server."""
        self.assertTrue(stats.ok, stats)
        self.assertEqual(stats.delivered, stats.sent)
        lines = self.parse_acked_log(log.getvalue())
        self.assertEqual(len(lines), stats.sent)
        logged = sorted((imei, fix_time.strftime(STAMP)) for imei, fix_time, _ in lines)
        self.assertEqual(logged, sorted(backend.stored_keys))
        alarms = {(imei, fix_time.strftime(STAMP)) for imei, fix_time, kind in lines
                  if kind == "alarm"}
        self.assertEqual(alarms, {(imei, stamp) for imei, stamp, alarm in backend.stored
                                  if alarm == "sos"})
        self.assertTrue(alarms)

    @defer.inlineCallbacks
    def test_tcp_serial_acks_match_by_serial(self):
        """Acks that overtake each other still ack the report with their serial."""
        backend, port = self.tcp_backend(acks="serial")
        simulation, stats, log = yield self.simulate(
            backend, self.fake_options(port), FakeDevice())
        self.assert_all_stored_once(stats, backend, log)
        self.assertEqual(log.early, [])
        self.assertEqual((stats.connections, stats.logins, backend.logins), (3, 3, 3))
        self.assertEqual(stats.resent, 0)
        self.assertGreater(stats.heartbeats, 0)
        self.assertEqual(backend.heartbeats, stats.heartbeats)
        self.assertIs(simulation.fifo_acks, False)
        self.assertIn(f"sent={stats.sent} acked={stats.sent} unacked=0 ", stats.summary())

    @defer.inlineCallbacks
    def test_tcp_fifo_acks_with_answered_heartbeats(self):
        """None tokens ack the oldest outstanding message; heartbeat replies are told apart."""
        backend, port = self.tcp_backend(acks="fifo", heartbeat_replies=True)
        simulation, stats, log = yield self.simulate(
            backend, self.fake_options(port), FakeDevice())
        self.assert_all_stored_once(stats, backend, log)
        self.assertEqual(log.early, [], "an ack was taken for a report not yet stored")
        self.assertIs(simulation.fifo_acks, True)
        self.assertIs(simulation.heartbeat_replies, True)
        self.assertGreater(stats.heartbeats, 0)
        self.assertEqual(backend.heartbeats, stats.heartbeats)

    @defer.inlineCallbacks
    def test_tcp_fifo_acks_with_unanswered_heartbeats(self):
        """FIFO acks and silent heartbeats: learned after one wait, no report misread."""
        backend, port = self.tcp_backend(acks="fifo", heartbeat_replies=False)
        simulation, stats, log = yield self.simulate(
            backend, self.fake_options(port), FakeDevice())
        self.assert_all_stored_once(stats, backend, log)
        self.assertEqual(log.early, [])
        self.assertIs(simulation.heartbeat_replies, False)
        self.assertGreater(stats.heartbeats, 3)

    @defer.inlineCallbacks
    def test_tcp_without_report_acks_counts_written_reports(self):
        """acks_reports False: a report is delivered once written; acked=n/a."""
        backend, port = self.tcp_backend(acks="none")
        device = FakeDevice(acks_reports=False)
        _, stats, log = yield self.simulate(backend, self.fake_options(port), device,
                                            checked=False)
        yield backend.all_closed()      # everything written has arrived
        self.assert_all_stored_once(stats, backend, log)
        self.assertEqual((stats.acked, stats.acks_reports), (0, False))
        self.assertTrue(math.isnan(stats.ack_p50_ms))
        self.assertTrue(stats.summary().startswith(
            f"sent={stats.sent} acked=n/a delivered={stats.sent} unacked=0 resent=0 "
            "connections=3 "), stats.summary())
        self.assertRegex(stats.summary(), SUMMARY_LINE)
        self.assertGreater(stats.heartbeats, 0)

    @defer.inlineCallbacks
    def test_tcp_login_without_ack_is_not_awaited(self):
        """acks_login False: reports follow the login at once."""
        backend, port = self.tcp_backend(acks="serial")
        device = FakeDevice(acks_login=False)
        _, stats, log = yield self.simulate(backend, self.fake_options(port, devices=1), device)
        # the server still answers the login: an unexpected ACK that matches nothing
        self.assert_all_stored_once(stats, backend, log)
        self.assertEqual(stats.logins, 1)

    @defer.inlineCallbacks
    def test_udp_lost_datagram_is_sent_again(self):
        """Over UDP a report the server never saw is sent again after the retry timeout."""
        backend = FakeBackend(acks="serial", lose=(3, 7))
        udp_server = _FakeUdpServer(backend)
        port = reactor.listenUDP(0, udp_server, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        device = FakeDevice(transport="udp")
        simulation, stats, log = yield self.simulate(
            backend, self.fake_options(port.getHost().port), device)
        self.assert_all_stored_once(stats, backend, log)
        self.assertEqual(log.early, [])
        self.assertEqual(stats.resent, 2)
        self.assertEqual((stats.connections, stats.logins, backend.logins), (3, 3, 3))
        self.assertEqual(len(udp_server.peers), 3)          # one socket per device
        self.assertEqual(simulation.transport, "udp")

    @defer.inlineCallbacks
    def test_udp_silent_server_makes_the_device_open_a_new_socket(self):
        """No login ack after `max_tries` datagrams: a new socket, after backoff."""
        class Deaf(protocol.DatagramProtocol):
            noisy = False
            datagrams = 0

            def datagramReceived(self, data, addr):
                Deaf.datagrams += 1
        port = reactor.listenUDP(0, Deaf(), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        stats = yield run_simulation(reactor, self.fake_options(
            port.getHost().port, devices=1, duration_s=1.0, drain_timeout_s=0.0,
            retry_timeout_s=0.1, max_tries=2, backoff_min_s=0.1, backoff_max_s=0.1),
            device=FakeDevice(transport="udp"))
        self.assertGreaterEqual(stats.connections, 3)
        self.assertEqual(stats.logins, 0)
        self.assertGreaterEqual(Deaf.datagrams, 2 * 3)
        self.assertFalse(stats.ok)

    @defer.inlineCallbacks
    def test_http_failed_request_is_retried(self):
        """200, then 500, then 200: the failed report is sent again and stored once."""
        backend = FakeBackend(acks="none")
        root = _FakeHttpResource(backend, statuses=[200, 500])
        site = TrackedSite(root, backend)
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(backend.all_closed)
        self.addCleanup(port.stopListening)
        simulation, stats, log = yield self.simulate(
            backend, self.fake_options(port.getHost().port, devices=1), FakeDevice("http"))
        self.assert_all_stored_once(stats, backend, log)
        self.assertEqual(log.early, [])
        self.assertEqual(stats.resent, 1)
        self.assertEqual([status for _, status in root.requests].count(500), 1)
        self.assertEqual(len(root.requests), stats.sent + 1)
        self.assertEqual(root.requests[1][0], root.requests[2][0])   # the same report again
        self.assertEqual(stats.connections, 1)                       # kept alive
        self.assertEqual(backend.connections, 1)
        self.assertEqual((stats.logins, stats.heartbeats), (0, 0))
        self.assertEqual(simulation.transport, "http")


# ---------------------------------------------------------------------------
# Every registered protocol, against a server made of its own codec session
# ---------------------------------------------------------------------------

class CodecServer(Tracked):
    """Decodes with the codec's own sessions and writes each frame's reply at once;
    records (unique id, fix time) -> alarm of every position decoded."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.codec = protocols.CODECS[name]
        self.positions: dict[tuple[str | None, dt.datetime], str | None] = {}
        self.errors: list[str] = []

    def frames(self, session, frames) -> bytes:
        replies = []
        for frame in frames:
            for message in frame.messages:
                if isinstance(message, Position) and not message.outdated:
                    unique_id = message.unique_id or session.unique_id
                    key = (unique_id, message.fix_time.astimezone(dt.UTC))
                    self.positions[key] = message.attributes.get("alarm")
            replies.append(frame.reply)
        return b"".join(replies)

    def listen(self, transport: str) -> object:
        if transport == "tcp":
            return reactor.listenTCP(0, _CodecTcpFactory(self), interface="127.0.0.1")
        if transport == "udp":
            return reactor.listenUDP(0, _CodecUdpServer(self), interface="127.0.0.1")
        return reactor.listenTCP(0, TrackedSite(_CodecHttpResource(self), self),
                                 interface="127.0.0.1")


class _CodecTcpFactory(protocol.Factory):
    noisy = False

    def __init__(self, server: CodecServer) -> None:
        self.server = server

    def buildProtocol(self, addr):
        return _CodecTcpConnection(self.server)


class _CodecTcpConnection(protocol.Protocol):
    def __init__(self, server: CodecServer) -> None:
        self.server = server
        self.session = server.codec.new_session()

    def connectionMade(self):
        self.server.opened(self)

    def dataReceived(self, data):
        try:
            reply = self.server.frames(self.session, self.session.receive_data(data, _now()))
        except ProtocolError as problem:
            self.server.errors.append(f"{problem}: {problem.frame.hex()}")
            self.transport.loseConnection()
            return
        if reply:
            self.transport.write(reply)

    def connectionLost(self, reason=None):
        self.server.connection_closed(self)


class _CodecUdpServer(protocol.DatagramProtocol):
    noisy = False

    def __init__(self, server: CodecServer) -> None:
        self.server = server
        self.sessions: dict = {}

    def datagramReceived(self, data, addr):
        session = self.sessions.setdefault(addr, self.server.codec.new_session())
        try:
            reply = self.server.frames(session, session.receive_datagram(data, _now()))
        except ProtocolError as problem:
            self.server.errors.append(f"{problem}: {problem.frame.hex()}")
            return
        if reply:
            self.transport.write(reply, addr)


class _CodecHttpResource(resource.Resource):
    isLeaf = True

    def __init__(self, server: CodecServer) -> None:
        super().__init__()
        self.server = server
        self.sessions: dict = {}

    def render(self, request):
        peer = request.getClientAddress()
        session = self.sessions.setdefault((peer.host, peer.port), self.server.codec.new_session())
        http_request = HttpRequest(
            method=request.method.decode("ascii"), url=request.uri.decode("utf-8"),
            headers={name.decode("latin-1"): b", ".join(values).decode("latin-1")
                     for name, values in request.requestHeaders.getAllRawHeaders()},
            body=request.content.read())
        try:
            frame = session.decode_frame(http_request, _now())
        except ProtocolError as problem:
            self.server.errors.append(str(problem))
            request.setResponseCode(400)
            return b""
        return self.server.frames(session, [frame])


def _simulated_protocols() -> list[str]:
    return sorted(name for name in protocols.CODECS if DEVICES.get(name) is not None)


class ChildProcessTestCase(SimulatorTestCase):
    """Runs `run(args)` in a child process and reads its report line."""

    DRIVER = ("import argparse, sys\n"
              "from tracker import simulator\n"
              "parser = argparse.ArgumentParser()\n"
              "simulator.add_arguments(parser)\n"
              "sys.exit(simulator.run(parser.parse_args(sys.argv[1:])))\n")

    def spawn(self, *arguments: str) -> tuple[defer.Deferred, _Child]:
        child = _Child()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
        reactor.spawnProcess(child, sys.executable, [sys.executable, "-c", self.DRIVER,
                                                     *arguments], env=env, path=str(REPO))
        return child.ended, child

    def summary(self, child: _Child) -> dict[str, str]:
        lines = child.out.decode().splitlines()
        self.assertEqual(len(lines), 1, child.out + child.err)
        match = SUMMARY_LINE.match(lines[0])
        self.assertIsNotNone(match, lines[0])
        names = ("sent", "acked", "unacked", "resent", "connections", "p50", "p99")
        return dict(zip(names, match.groups(), strict=True))


class Command(ChildProcessTestCase):
    """`run(args)` in a child process: the report line, exit codes and signals."""

    def common(self, port: int) -> list[str]:
        return ["--port", str(port), "--devices", "3", "--interval", "0.2",
                "--drain-timeout", "2"]

    @defer.inlineCallbacks
    def test_exit_0_and_report_when_everything_is_acked(self):
        server, port = self.start_server()
        log_path = self.acked_log()
        ended, child = self.spawn(*self.common(port), "--duration", "1",
                                  "--acked-log", str(log_path))
        code = yield ended
        self.assertEqual(code, 0, child.err)
        report = self.summary(child)
        self.assertEqual(report["sent"], report["acked"])
        self.assertEqual((report["unacked"], report["connections"]), ("0", "3"))
        self.assertGreaterEqual(float(report["p99"]), float(report["p50"]))
        self.assertEqual(len(self.read_acked_log(log_path)), int(report["acked"]))
        self.assertEqual(len(server.acked), int(report["acked"]))

    @defer.inlineCallbacks
    def test_exit_1_when_messages_stay_unacked(self):
        _, port = self.start_server(ack_data=False)
        ended, child = self.spawn(*self.common(port), "--duration", "0.6",
                                  "--drain-timeout", "0.2")
        code = yield ended
        self.assertEqual(code, 1, child.err)
        report = self.summary(child)
        self.assertEqual(report["acked"], "0")
        self.assertEqual(report["unacked"], report["sent"])
        self.assertNotEqual(report["sent"], "0")

    @defer.inlineCallbacks
    def test_sigterm_drains_reports_and_exits(self):
        """Without --duration the simulator runs until SIGTERM, then drains and reports."""
        server, port = self.start_server()
        ended, child = self.spawn(*self.common(port))
        for _ in range(300):          # until positions flow (a slow machine starts late)
            if len(server.acked) >= 6:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        child.transport.signalProcess(signal.SIGTERM)
        code = yield ended
        self.assertEqual(code, 0, child.err)
        report = self.summary(child)
        self.assertNotEqual(report["sent"], "0")
        self.assertEqual(report["sent"], report["acked"])
        self.assertEqual(len(server.acked), int(report["acked"]))

    @defer.inlineCallbacks
    def test_bad_options_exit_2(self):
        ended, child = self.spawn("--first-imei", "999999999999999", "--devices", "2")
        code = yield ended
        self.assertEqual(code, 2)
        self.assertIn(b"15 digits", child.err)


class EveryProtocol(ChildProcessTestCase):
    """`tracker simulate --protocol NAME` against that codec's own session, for
    every registered protocol with a device side (methods are generated below)."""

    @defer.inlineCallbacks
    def check_protocol(self, name: str, transport: str | None = None):
        device = DEVICES[name]
        server = CodecServer(name)
        port = server.listen(transport or device.transport)
        self.addCleanup(server.all_closed)
        self.addCleanup(port.stopListening)
        log_path = self.acked_log()
        arguments = ["--protocol", name, "--port", str(port.getHost().port), "--devices", "2",
                     "--interval", "0.2", "--duration", "1.2", "--drain-timeout", "3",
                     "--alarm-every", "2", "--heartbeat-every", "2", "--retry-timeout", "0.5",
                     "--acked-log", str(log_path)]
        if transport:
            arguments += ["--transport", transport]
        ended, child = self.spawn(*arguments)
        code = yield ended
        self.assertEqual(code, 0, child.err.decode() + "\n".join(server.errors))
        report = self.summary(child)
        self.assertEqual(report["unacked"], "0")
        yield server.all_closed()
        lines = self.read_acked_log(log_path)
        self.assertGreaterEqual(len(lines), 2 * 4)
        self.assertEqual({imei for imei, _, _ in lines}, {str(FIRST_IMEI), str(FIRST_IMEI + 1)})
        for imei, fix_time, kind in lines:
            self.assertIn((imei, fix_time), server.positions,
                          f"{name}: {imei} {fix_time} {kind} was acked but not decoded; "
                          f"decoded: {sorted(server.positions)[:4]}...")
            alarm = server.positions[(imei, fix_time)]
            self.assertEqual(alarm, "sos" if kind == "alarm" else None,
                             f"{name}: {imei} {fix_time} {kind}")
        self.assertEqual(server.errors, [])

    def test_run_gt06_over_udp(self):
        """`--transport udp`: GT06 frames in datagrams, against the codec's datagram session."""
        return self.check_protocol("gt06", "udp")


def _add_protocol_tests() -> None:
    for name in _simulated_protocols():
        def test(self, name=name):
            return self.check_protocol(name)
        test.__name__ = f"test_run_{name}"
        test.__doc__ = f"`run` simulates {name} devices against the {name} codec's session."
        setattr(EveryProtocol, test.__name__, test)
_add_protocol_tests()


class _Child(protocol.ProcessProtocol):
    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.ended: defer.Deferred = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason) -> None:
        self.ended.callback(reason.value.exitCode)


def test_options_are_validated():
    """Bad numbers are refused with a reason."""
    for bad in (dict(devices=0), dict(interval_s=0), dict(first_imei=123),
                dict(first_imei=999_999_999_999_999, devices=2), dict(buffer_limit=0),
                dict(protocol="no-such-protocol"), dict(duration_s=-1), dict(port=70000),
                dict(transport="http"), dict(max_tries=0), dict(retry_timeout_s=0)):
        try:
            SimulationOptions(**bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")


def test_arguments_map_to_options():
    parser = argparse.ArgumentParser()
    simulator.add_arguments(parser)
    args = parser.parse_args(["--devices", "2000", "--interval", "5", "--host", "10.1.2.3",
                              "--duration", "60", "--alarm-every", "7", "--seed", "3",
                              "--acked-log", "acked.txt", "--retry-timeout", "2",
                              "--tries", "4", "--transport", "udp"])
    options = simulator.options_from_args(args)
    assert (options.devices, options.interval_s, options.host, options.port) == (
        2000, 5.0, "10.1.2.3", 5023)
    assert (options.duration_s, options.alarm_every, options.seed, options.acked_log) == (
        60.0, 7, 3, "acked.txt")
    assert (options.retry_timeout_s, options.max_tries, options.transport) == (2.0, 4, "udp")
    assert options.first_imei == FIRST_IMEI


@pytest.mark.parametrize("name", sorted(protocols.CODECS))
def test_default_port_is_the_protocols_first(name):
    """Without --port, the port of the codec's first default_listen entry."""
    parser = argparse.ArgumentParser()
    simulator.add_arguments(parser)
    options = simulator.options_from_args(parser.parse_args(["--protocol", name]))
    first = protocols.CODECS[name].default_listen[0]
    assert options.port == int(first.partition(":")[2])


def test_default_port_follows_the_transport():
    assert simulator.default_port("gt06") == 5023
    assert simulator.default_port("gt06", "udp") == 5023


def test_summary_line_format():
    stats = Stats(devices=1, sent=3, acked=2, unacked=1, resent=1, connections=2, logins=2,
                  heartbeats=0, dropped=0, ack_p50_ms=1.5, ack_p99_ms=float("nan"),
                  elapsed_s=1.0, interrupted=False)
    assert stats.summary() == ("sent=3 acked=2 unacked=1 resent=1 connections=2 "
                               "ack_p50_ms=1.5 ack_p99_ms=nan")
    assert not stats.ok
    unacknowledged = dataclasses.replace(stats, acked=0, unacked=0, acks_reports=False,
                                         delivered=3)
    assert unacknowledged.summary() == ("sent=3 acked=n/a delivered=3 unacked=0 resent=1 "
                                        "connections=2 ack_p50_ms=1.5 ack_p99_ms=nan")
    assert unacknowledged.ok
