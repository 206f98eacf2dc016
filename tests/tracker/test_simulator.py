"""The device simulator against a small GT06 server on a real loopback port.

The server decodes with the real `protocols.gt06` session and acks (or not) as a
test configures it; what it acks it records, as a store-then-ack server would.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import math
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from twisted.internet import defer, error, protocol, reactor, task
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from protocols import Login, Position, gt06
from tracker import simulator
from tracker.simulator import SimulationOptions, Stats, run_simulation

FIRST_IMEI = 860_000_000_000_000
ACKED_LINE = re.compile(r"^(\d{15}) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (position|alarm)$")
SUMMARY_LINE = re.compile(
    r"^sent=(\d+) acked=(\d+) unacked=(\d+) resent=(\d+) connections=(\d+) "
    r"ack_p50_ms=(\S+) ack_p99_ms=(\S+)$")
REPO = Path(__file__).resolve().parents[2]


class Gt06TestServer(protocol.Factory):
    """Acks logins always; data frames per the settings; records what it acked.

    `ack_data` False: positions and alarms are never acked.  `drop_after` K: the
    first `drops` connections are closed on their Kth data frame, none of their
    data acked.
    """

    noisy = False

    def __init__(self, ack_data: bool = True, drop_after: int | None = None,
                 drops: int = 0) -> None:
        self.ack_data = ack_data
        self.drop_after = drop_after
        self.drops_left = drops
        self.acked: list[tuple[str, Position]] = []   # (IMEI, record) in ack order
        self.connections = 0
        self.logins = 0
        self.heartbeats = 0
        self.open: set[_ServerConnection] = set()
        self._closed_waiters: list[defer.Deferred] = []

    def buildProtocol(self, addr):
        return _ServerConnection(self)

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


class _ServerConnection(protocol.Protocol):
    def __init__(self, server: Gt06TestServer) -> None:
        self.server = server
        self.session = gt06.CODEC.new_session()
        self.data_frames = 0
        self.dropping = False

    def connectionMade(self):
        self.server.connections += 1
        self.server.open.add(self)
        self.dropping = self.server.drop_after is not None and self.server.drops_left > 0
        if self.dropping:
            self.server.drops_left -= 1

    def dataReceived(self, data):
        for frame in self.session.receive_data(data, dt.datetime.now(dt.UTC)):
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
    """One device on a MemoryReactorClock; the codec's own session plays the server."""

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
        frames = server.receive_data(transport.value(), dt.datetime.now(dt.UTC))
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
        [login] = server.receive_data(transport.value(), dt.datetime.now(dt.UTC))
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
        """Without a connection messages are buffered up to the limit; the oldest go."""
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

    def read_acked_log(self, path: Path) -> list[tuple[str, dt.datetime, str]]:
        lines = []
        for line in path.read_text(encoding="utf-8").splitlines():
            match = ACKED_LINE.match(line)
            self.assertIsNotNone(match, f"malformed acked-log line {line!r}")
            imei, stamp, kind = match.groups()
            lines.append((imei, dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z"), kind))
        return lines

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
        self.assertLessEqual(set(alarms), {"sos", "powerCut", "vibration", "lowBattery"})
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
        """Nothing listens at first: locations are buffered, then delivered once the server is up."""
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


class Command(SimulatorTestCase):
    """`run(args)` in a child process: the report line, exit codes and signals."""

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

    def common(self, port: int) -> list[str]:
        return ["--port", str(port), "--devices", "3", "--interval", "0.2",
                "--drain-timeout", "2"]

    def summary(self, child: _Child) -> dict[str, str]:
        lines = child.out.decode().splitlines()
        self.assertEqual(len(lines), 1, child.out + child.err)
        match = SUMMARY_LINE.match(lines[0])
        self.assertIsNotNone(match, lines[0])
        names = ("sent", "acked", "unacked", "resent", "connections", "p50", "p99")
        return dict(zip(names, match.groups(), strict=True))

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
                dict(protocol="h02"), dict(duration_s=-1)):
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
                              "--acked-log", "acked.txt"])
    options = simulator.options_from_args(args)
    assert (options.devices, options.interval_s, options.host, options.port) == (
        2000, 5.0, "10.1.2.3", 5023)
    assert (options.duration_s, options.alarm_every, options.seed, options.acked_log) == (
        60.0, 7, 3, "acked.txt")
    assert options.first_imei == FIRST_IMEI


def test_summary_line_format():
    stats = Stats(devices=1, sent=3, acked=2, unacked=1, resent=1, connections=2, logins=2,
                  heartbeats=0, dropped=0, ack_p50_ms=1.5, ack_p99_ms=float("nan"),
                  elapsed_s=1.0, interrupted=False)
    assert stats.summary() == ("sent=3 acked=2 unacked=1 resent=1 connections=2 "
                               "ack_p50_ms=1.5 ack_p99_ms=nan")
    assert not stats.ok
