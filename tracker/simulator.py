"""Device simulator: many GT06 trackers on real TCP connections, for load tests.

`tracker simulate --devices 2000 --interval 5 --duration 60` opens one TCP
connection per simulated device (connections staggered over the first interval),
logs each device in with its IMEI, waits for the login ack and then sends a
location (GT06 type 0x12) every interval, an alarm (0x16) in place of every Kth
location and a heartbeat (0x13) now and then.

Each device behaves as a real tracker's firmware does with its buffer: a position
or alarm stays in the device's buffer, keyed by its serial number, until the
server acknowledges that serial.  When the connection drops, the device reconnects
with backoff (1 s doubling to 10 s, jittered), logs in again and resends its
unacknowledged messages first, byte for byte (same serial, same fix time), before
anything new.  Messages produced while offline are buffered too (up to
`--buffer` per device; the oldest are dropped beyond that and stay unacked).
Heartbeats carry no data and are neither buffered nor resent.

Routes are a seeded random walk per device around a start point near Berlin:
speed 0..90 km/h, the reported course is the direction actually moved, and fix
times are the current UTC second, strictly increasing per device (with an
interval below one second fix times therefore run ahead of the clock).

After `--duration` the devices stop producing and the simulation drains: it waits
up to `--drain-timeout` seconds for outstanding acks (reconnecting and resending
as needed), then closes every connection and reports.  SIGINT/SIGTERM start the
drain early; a second signal ends at once.  The report line is

    sent=<n> acked=<n> unacked=<n> resent=<n> connections=<n> ack_p50_ms=<x> ack_p99_ms=<x>

where `sent` counts positions and alarms the devices produced, `resent` their
retransmissions after a reconnect, `connections` the TCP connections established,
and the latencies run from a message's (last) transmission to its ack.  The exit
status is 0 when every produced message was acknowledged, 1 otherwise.

`--acked-log FILE` appends one line per acknowledged position or alarm:
``<imei> <fix time, ISO 8601 UTC, e.g. 2024-05-01T12:00:05Z> <position|alarm>``;
tests compare it with the database.

Programmatic use (tests, benchmarks)::

    stats = await run_simulation(reactor, SimulationOptions(port=5023, devices=10,
                                                            interval_s=1, duration_s=5))

Everything runs on one reactor, passed in; nothing blocks it except the buffered
appends to the acked log.  Memory per device is a few hundred bytes plus its
connection and its buffered frames.
"""

from __future__ import annotations

import argparse
import array
import dataclasses
import datetime as dt
import math
import random
import signal
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from twisted.internet import abstract, defer, protocol
from twisted.logger import Logger

from protocols import ProtocolError, gt06

log = Logger()

SIMULATED_PROTOCOLS = ("gt06",)
DEFAULT_PORTS = {"gt06": 5023}

FIRST_IMEI = 860_000_000_000_000
LAST_IMEI = 999_999_999_999_999
ALARMS = ("sos", "powerCut", "vibration", "lowBattery")
START_LON, START_LAT = 13.405, 52.52     # routes start within ~25 km of Berlin
START_SPREAD_DEG = 0.25
MAX_SPEED_KMH = 90.0
METRES_PER_DEG_LAT = 111_320.0
MAX_SERIAL = 0xFFFF
MAX_BUFFER = 60_000             # leaves free serials for logins and heartbeats
LATENCY_SAMPLES = 1_000_000     # reservoir size for the percentiles
CLOSE_GRACE_S = 2.0             # after this, connections still open are aborted


@dataclasses.dataclass(frozen=True, slots=True)
class SimulationOptions:
    """What to simulate and against which server.  Durations in seconds.

    `duration_s` None means: produce until `Simulation.stop()` (or a signal).
    `alarm_every` K > 0 sends an alarm in place of every Kth location;
    `heartbeat_every` H > 0 adds a heartbeat after every Hth message.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORTS["gt06"]
    protocol: str = "gt06"
    devices: int = 1
    interval_s: float = 10.0
    duration_s: float | None = None
    first_imei: int = FIRST_IMEI
    alarm_every: int = 0
    heartbeat_every: int = 10
    acked_log: str | None = None
    seed: int = 0
    drain_timeout_s: float = 10.0
    connect_timeout_s: float = 10.0
    login_timeout_s: float = 10.0
    backoff_min_s: float = 1.0
    backoff_max_s: float = 10.0
    buffer_limit: int = 1_000

    def __post_init__(self) -> None:
        if self.protocol not in SIMULATED_PROTOCOLS:
            raise ValueError(f"cannot simulate protocol {self.protocol!r}; "
                             f"supported: {', '.join(SIMULATED_PROTOCOLS)}")
        if self.devices < 1:
            raise ValueError("devices must be at least 1")
        if not self.interval_s > 0:
            raise ValueError("interval must be positive")
        if self.duration_s is not None and self.duration_s < 0:
            raise ValueError("duration must not be negative")
        if not 10**14 <= self.first_imei <= LAST_IMEI:
            raise ValueError(f"first IMEI {self.first_imei} is not a 15-digit number")
        if self.first_imei + self.devices - 1 > LAST_IMEI:
            raise ValueError(f"{self.devices} devices from IMEI {self.first_imei} "
                             "run past 15 digits")
        if self.alarm_every < 0 or self.heartbeat_every < 0:
            raise ValueError("alarm and heartbeat periods must not be negative")
        if not 1 <= self.buffer_limit <= MAX_BUFFER:
            raise ValueError(f"buffer must be between 1 and {MAX_BUFFER} messages")
        if not 0 < self.backoff_min_s <= self.backoff_max_s:
            raise ValueError("backoff must satisfy 0 < min <= max")


@dataclasses.dataclass(frozen=True, slots=True)
class Stats:
    """Counters of a simulation (a snapshot; `Simulation.stats()` makes a new one).

    Latency percentiles are NaN when nothing was acknowledged.
    """

    devices: int
    sent: int            # positions and alarms produced (transmitted, or buffered offline)
    acked: int           # of those, acknowledged by the server
    unacked: int         # sent - acked: still buffered, or dropped from a full buffer
    resent: int          # retransmissions after a reconnect
    connections: int     # TCP connections established
    logins: int          # logins acknowledged
    heartbeats: int      # heartbeats sent
    dropped: int         # messages discarded from a full buffer (counted in unacked)
    ack_p50_ms: float
    ack_p99_ms: float
    elapsed_s: float     # from start until the report
    interrupted: bool    # stopped by stop()/abort() (a signal) rather than --duration

    @property
    def ok(self) -> bool:
        """Every produced message was acknowledged."""
        return self.unacked == 0

    def summary(self) -> str:
        """The one-line report the command prints."""
        return (f"sent={self.sent} acked={self.acked} unacked={self.unacked} "
                f"resent={self.resent} connections={self.connections} "
                f"ack_p50_ms={self.ack_p50_ms:.1f} ack_p99_ms={self.ack_p99_ms:.1f}")


def run_simulation(reactor: Any, options: SimulationOptions) -> defer.Deferred[Stats]:
    """Run a whole simulation on `reactor`; the Deferred fires with its `Stats`."""
    return Simulation(reactor, options).run()


class Simulation:
    """A fleet of simulated devices sharing one reactor.

    `run()` starts it and returns a Deferred firing with `Stats` once the devices
    stopped producing, the drain ended and every connection is closed.  `stop()`
    ends production early and drains; `abort()` closes without draining.
    """

    def __init__(self, reactor: Any, options: SimulationOptions,
                 acked_log: IO[str] | None = None) -> None:
        self.reactor = reactor
        self.options = options
        self._acked_log = acked_log
        self._own_acked_log = False
        self._phase = "new"            # new -> producing -> draining -> closing -> done
        self._interrupted = False
        self._devices: list[_Device] = []
        self._done: defer.Deferred[Stats] = defer.Deferred()
        self._host = options.host
        self._start_time = 0.0
        self._end_time: float | None = None
        self._timer: Any = None        # duration, drain or close-grace timer
        self._open = 0                 # connections or attempts still live while closing
        self._latencies = array.array("d")
        self._latency_count = 0
        self._sampler = random.Random(options.seed)
        self._warned: set[str] = set()
        self.sent = self.acked = self.resent = self.connections = 0
        self.logins = self.heartbeats = self.dropped = 0
        self.buffered = 0              # messages in device buffers right now

    # -- control ---------------------------------------------------------------

    def run(self) -> defer.Deferred[Stats]:
        """Start every device; fires with `Stats` at the end (once)."""
        if self._phase != "new":
            raise RuntimeError("a Simulation runs once")
        self._phase = "producing"
        self._start_time = self.reactor.seconds()
        host = self.options.host
        if abstract.isIPAddress(host) or abstract.isIPv6Address(host):
            self._start(host)
        else:   # resolve once, not once per connection of 2,000 devices
            d = self.reactor.resolve(host)
            d.addCallbacks(self._start, self._resolve_failed)
        return self._done

    def stop(self) -> None:
        """Stop producing now and drain (as at the end of the duration)."""
        if self._phase in ("new", "producing"):
            self._interrupted = True
        self._end_production()

    def abort(self) -> None:
        """Close every connection now, without waiting for outstanding acks."""
        self._interrupted = True
        self._close()

    def interrupt(self) -> None:
        """What a signal does: the first drains, the next one aborts."""
        if self._phase in ("new", "producing"):
            self.stop()
        else:
            self.abort()

    def stats(self) -> Stats:
        """A snapshot of the counters."""
        samples = sorted(self._latencies)
        end = self._end_time if self._end_time is not None else self.reactor.seconds()
        return Stats(
            devices=self.options.devices, sent=self.sent, acked=self.acked,
            unacked=self.sent - self.acked, resent=self.resent,
            connections=self.connections, logins=self.logins,
            heartbeats=self.heartbeats, dropped=self.dropped,
            ack_p50_ms=_percentile(samples, 50.0) * 1000.0,
            ack_p99_ms=_percentile(samples, 99.0) * 1000.0,
            elapsed_s=end - self._start_time if self._phase != "new" else 0.0,
            interrupted=self._interrupted,
        )

    @property
    def producing(self) -> bool:
        return self._phase == "producing"

    @property
    def closing(self) -> bool:
        return self._phase in ("closing", "done")

    # -- phases ------------------------------------------------------------------

    def _start(self, host: str) -> None:
        if self._phase != "producing":   # stopped while resolving
            self._close()
            return
        self._host = host
        options = self.options
        if options.acked_log and self._acked_log is None:
            # line-buffered, so the log can be followed while the run goes on
            self._acked_log = open(options.acked_log, "a", encoding="utf-8", buffering=1)
            self._own_acked_log = True
        spacing_s = options.interval_s / options.devices
        for index in range(options.devices):
            device = _Device(self, index, str(options.first_imei + index))
            self._devices.append(device)
            device.start(offset_s=index * spacing_s)
        if options.duration_s is not None:
            self._timer = self.reactor.callLater(options.duration_s, self._end_production)

    def _resolve_failed(self, failure: Any) -> None:
        self._phase = "done"
        self._done.errback(failure)

    def _end_production(self) -> None:
        if self._phase != "producing":
            return
        self._phase = "draining"
        self._cancel_timer()
        for device in self._devices:
            device.stop_producing()
        if self.buffered == 0:
            self._close()
        else:
            self._timer = self.reactor.callLater(self.options.drain_timeout_s, self._close)

    def _close(self) -> None:
        if self._phase in ("closing", "done"):
            return
        self._phase = "closing"
        self._cancel_timer()
        for device in self._devices:
            device.cancel_timers()
        live = [device for device in self._devices if device.connector is not None]
        self._open = len(live) + 1     # + 1 until every close was asked for
        for device in live:
            device.connector.disconnect()
        self.device_closed()
        if self._phase == "closing":
            self._timer = self.reactor.callLater(CLOSE_GRACE_S, self._abort_connections)

    def _abort_connections(self) -> None:
        self._timer = None
        for device in self._devices:
            device.abort_connection()
        self._timer = self.reactor.callLater(CLOSE_GRACE_S, self._finish)

    def _finish(self) -> None:
        if self._phase == "done":
            return
        self._phase = "done"
        self._cancel_timer()
        self._end_time = self.reactor.seconds()
        if self._acked_log is not None:
            if self._own_acked_log:
                self._acked_log.close()
            else:
                self._acked_log.flush()
        self._done.callback(self.stats())

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    # -- callbacks from devices ---------------------------------------------------

    def warn_once(self, key: str, format: str, **fields: Any) -> None:
        """Log a warning the first time only: 2,000 devices fail alike."""
        if key not in self._warned:
            self._warned.add(key)
            log.warn(format + " (further cases are logged at debug level)", **fields)
        else:
            log.debug(format, **fields)

    def device_closed(self) -> None:
        """A device's connection (or attempt) ended while closing."""
        self._open -= 1
        if self._open == 0 and self._phase == "closing":
            self._finish()

    def message_acked(self, imei: str, message: _Buffered, now: float) -> None:
        self.acked += 1
        self.buffered -= 1
        self._record_latency(now - message.sent_at)
        if self._acked_log is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(message.fix_time_s))
            self._acked_log.write(f"{imei} {stamp} {message.kind}\n")
        if self.buffered == 0 and self._phase == "draining":
            self._close()

    def _record_latency(self, latency_s: float) -> None:
        self._latency_count += 1
        if len(self._latencies) < LATENCY_SAMPLES:
            self._latencies.append(latency_s)
        else:   # reservoir sampling keeps the percentiles unbiased in bounded memory
            slot = self._sampler.randrange(self._latency_count)
            if slot < LATENCY_SAMPLES:
                self._latencies[slot] = latency_s


def _percentile(ordered: list[float], percent: float) -> float:
    """Nearest-rank percentile of sorted values; NaN for none."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(percent / 100.0 * len(ordered)))
    return ordered[rank - 1]


class _Buffered:
    """One position or alarm in a device's buffer until the server acks it."""

    __slots__ = ("frame", "fix_time_s", "kind", "sent_at", "transmissions")

    def __init__(self, frame: bytes, fix_time_s: int, kind: str) -> None:
        self.frame = frame
        self.fix_time_s = fix_time_s
        self.kind = kind              # "position" or "alarm"
        self.sent_at = 0.0            # reactor time of the last transmission
        self.transmissions = 0


class _Random:
    """A tiny seeded generator (SplitMix64): one int of state per device.

    `random.Random` carries ~2.5 KB of state; 2,000 of them would dwarf the rest
    of a device.  Quality is ample for a random walk.
    """

    __slots__ = ("state",)
    MASK = (1 << 64) - 1

    def __init__(self, seed: int) -> None:
        self.state = seed & self.MASK

    def random(self) -> float:
        """A float in [0, 1)."""
        self.state = z = (self.state + 0x9E3779B97F4A7C15) & self.MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.MASK
        return ((z ^ (z >> 31)) >> 11) / float(1 << 53)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()


class _Device(protocol.ClientFactory):
    """One simulated tracker: its route, serial counter and unacked buffer.

    The device is its own client factory: connections come and go (each a
    `_Connection`), the device and its buffer stay.
    """

    noisy = False

    def __init__(self, simulation: Simulation, index: int, imei: str) -> None:
        self.simulation = simulation
        self.imei = imei
        options = simulation.options
        self.rng = _Random(options.seed * 1_000_003 + index)
        self.longitude = START_LON + self.rng.uniform(-1, 1) * START_SPREAD_DEG * 1.6
        self.latitude = START_LAT + self.rng.uniform(-1, 1) * START_SPREAD_DEG
        self.speed_kmh = self.rng.uniform(0, 50)
        self.course_deg = self.rng.uniform(0, 360)
        self.last_fix_s = 0
        self.produced = 0
        self.serial = int(self.rng.uniform(0, 1000))
        self.buffer: dict[int, _Buffered] = {}    # by serial, oldest first
        self.connector: Any = None                 # live while connecting or connected
        self.connection: _Connection | None = None
        self.logged_in = False
        self.login_serial = -1
        self.backoff_s = options.backoff_min_s
        self.next_tick = 0.0
        self.tick_call: Any = None
        self.retry_call: Any = None
        self.login_call: Any = None

    # -- lifecycle ------------------------------------------------------------------

    def start(self, offset_s: float) -> None:
        reactor = self.simulation.reactor
        interval_s = self.simulation.options.interval_s
        self.retry_call = reactor.callLater(offset_s, self.connect)
        self.next_tick = reactor.seconds() + offset_s + interval_s
        self.tick_call = reactor.callLater(offset_s + interval_s, self._tick)

    def connect(self) -> None:
        self.retry_call = None
        if self.simulation.closing:
            return
        options = self.simulation.options
        self.connector = self.simulation.reactor.connectTCP(
            self.simulation._host, options.port, self, timeout=options.connect_timeout_s)

    def stop_producing(self) -> None:
        _cancel(self.tick_call)
        self.tick_call = None

    def cancel_timers(self) -> None:
        for call in (self.tick_call, self.retry_call, self.login_call):
            _cancel(call)
        self.tick_call = self.retry_call = self.login_call = None

    def abort_connection(self) -> None:
        if self.connection is not None:
            self.connection.transport.abortConnection()

    # -- ClientFactory ---------------------------------------------------------------

    def buildProtocol(self, addr: Any) -> _Connection:
        return _Connection(self)

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        if not self.simulation.closing:
            self.simulation.warn_once(
                "connect", "device {imei}: cannot connect to {host}:{port} ({reason}), "
                "retrying with backoff", imei=self.imei, host=self.simulation._host,
                port=self.simulation.options.port, reason=reason.getErrorMessage())
        self._ended()

    def clientConnectionLost(self, connector: Any, reason: Any) -> None:
        if self.simulation.closing:
            pass
        elif not self.logged_in:
            self.simulation.warn_once(
                "refused", "device {imei}: the connection closed before the login was "
                "acked (an unknown device refused?); retrying", imei=self.imei)
        else:
            log.debug("device {imei}: connection lost: {reason}; {n} messages unacked",
                      imei=self.imei, reason=reason.getErrorMessage(), n=len(self.buffer))
        self._ended()

    def _ended(self) -> None:
        self.connector = None
        self.connection = None
        self.logged_in = False
        _cancel(self.login_call)
        self.login_call = None
        if self.simulation.closing:
            self.simulation.device_closed()
            return
        delay_s = min(self.backoff_s * (1.0 + 0.25 * self.rng.random()),
                      self.simulation.options.backoff_max_s)
        self.backoff_s = min(self.backoff_s * 2, self.simulation.options.backoff_max_s)
        self.retry_call = self.simulation.reactor.callLater(delay_s, self.connect)

    # -- connection events -------------------------------------------------------------

    def connection_made(self, connection: _Connection) -> None:
        simulation = self.simulation
        simulation.connections += 1
        self.connection = connection
        self.logged_in = False
        self.login_serial = self._next_serial()
        connection.transport.write(gt06.device_login(self.imei, self.login_serial))
        self.login_call = simulation.reactor.callLater(
            simulation.options.login_timeout_s, self._login_timed_out)

    def _login_timed_out(self) -> None:
        self.login_call = None
        self.simulation.warn_once(
            "login", "device {imei}: no login ack within {timeout} s; reconnecting",
            imei=self.imei, timeout=self.simulation.options.login_timeout_s)
        if self.connection is not None:
            self.connection.transport.loseConnection()

    def ack_received(self, message_type: int, serial: int) -> None:
        if not self.logged_in:
            if serial == self.login_serial:
                self._logged_in()
            return
        message = self.buffer.get(serial)
        if message is None or message.transmissions == 0:
            return       # a heartbeat's ack, or one for a serial we never sent
        del self.buffer[serial]
        self.simulation.message_acked(self.imei, message, self.simulation.reactor.seconds())

    def _logged_in(self) -> None:
        _cancel(self.login_call)
        self.login_call = None
        self.logged_in = True
        self.backoff_s = self.simulation.options.backoff_min_s
        self.simulation.logins += 1
        if self.buffer:   # the backlog first, oldest first, in one write
            now = self.simulation.reactor.seconds()
            frames = [self._mark_sent(message, now) for message in self.buffer.values()]
            self.connection.transport.write(b"".join(frames))

    def _mark_sent(self, message: _Buffered, now: float) -> bytes:
        if message.transmissions:
            self.simulation.resent += 1
        message.transmissions += 1
        message.sent_at = now
        return message.frame

    # -- production ------------------------------------------------------------------

    def _tick(self) -> None:
        self.tick_call = None
        if not self.simulation.producing:
            return
        self._produce()
        reactor = self.simulation.reactor
        now = reactor.seconds()
        self.next_tick = max(self.next_tick + self.simulation.options.interval_s, now)
        self.tick_call = reactor.callLater(self.next_tick - now, self._tick)

    def _produce(self) -> None:
        simulation = self.simulation
        options = simulation.options
        now = simulation.reactor.seconds()
        self._move(options.interval_s)
        self.last_fix_s = max(int(now), self.last_fix_s + 1)
        fix_time = dt.datetime.fromtimestamp(self.last_fix_s, dt.UTC)
        self.produced += 1
        serial = self._next_serial()
        if options.alarm_every and self.produced % options.alarm_every == 0:
            alarm = ALARMS[(self.produced // options.alarm_every - 1) % len(ALARMS)]
            frame = gt06.device_alarm(
                serial=serial, fix_time=fix_time, latitude=self.latitude,
                longitude=self.longitude, speed_kmh=self.speed_kmh,
                course_deg=self.course_deg, alarm=alarm)
            kind = "alarm"
        else:
            frame = gt06.device_location(
                serial=serial, fix_time=fix_time, latitude=self.latitude,
                longitude=self.longitude, speed_kmh=self.speed_kmh,
                course_deg=self.course_deg, valid=True,
                satellites=7 + int(self.rng.random() * 5))
            kind = "position"
        if len(self.buffer) >= options.buffer_limit:   # full: the oldest goes
            del self.buffer[next(iter(self.buffer))]
            simulation.dropped += 1
            simulation.buffered -= 1
        message = _Buffered(frame, self.last_fix_s, kind)
        self.buffer[serial] = message
        simulation.sent += 1
        simulation.buffered += 1
        if self.logged_in:
            self.connection.transport.write(self._mark_sent(message, now))
            if options.heartbeat_every and self.produced % options.heartbeat_every == 0:
                self.connection.transport.write(gt06.device_heartbeat(
                    serial=self._next_serial(), battery_level=4, gsm_signal=4,
                    ignition=self.speed_kmh > 0))
                simulation.heartbeats += 1

    def _move(self, elapsed_s: float) -> None:
        """One step of the random walk; course is the direction moved."""
        rng = self.rng
        if rng.random() < 0.05:
            self.speed_kmh = 0.0                      # a red light
        else:
            self.speed_kmh = min(MAX_SPEED_KMH, max(0.0, self.speed_kmh + rng.uniform(-12, 14)))
        if self.speed_kmh > 0:
            self.course_deg = (self.course_deg + rng.uniform(-30, 30)) % 360.0
            distance_m = self.speed_kmh / 3.6 * elapsed_s
            heading = math.radians(self.course_deg)
            self.latitude += distance_m * math.cos(heading) / METRES_PER_DEG_LAT
            self.latitude = max(-85.0, min(85.0, self.latitude))
            self.longitude += (distance_m * math.sin(heading)
                               / (METRES_PER_DEG_LAT * math.cos(math.radians(self.latitude))))
            self.longitude = (self.longitude + 180.0) % 360.0 - 180.0

    def _next_serial(self) -> int:
        """The next 16-bit serial (1..65535) not held by a buffered message."""
        serial = self.serial
        while True:
            serial = serial % MAX_SERIAL + 1
            if serial not in self.buffer:
                self.serial = serial
                return serial


class _Connection(protocol.Protocol):
    """One TCP connection of a device: splits the server's bytes into acks."""

    def __init__(self, device: _Device) -> None:
        self.device = device
        self.session = gt06.AckReader()

    def connectionMade(self) -> None:
        self.device.connection_made(self)

    def dataReceived(self, data: bytes) -> None:
        try:
            frames = self.session.receive_data(data)
        except ProtocolError as error:
            log.warn("device {imei}: bad data from the server ({error}); disconnecting",
                     imei=self.device.imei, error=error)
            self.transport.loseConnection()
            return
        for frame in frames:
            if self.device.connection is not self or self.transport.disconnecting:
                return
            try:
                message_type, serial = gt06.parse_ack(frame)
            except ProtocolError:
                log.debug("device {imei}: ignoring server frame {frame}",
                          imei=self.device.imei, frame=frame.hex())
                continue
            self.device.ack_received(message_type, serial)

    def connectionLost(self, reason: Any = None) -> None:
        pass    # the device learns it from clientConnectionLost


def _cancel(call: Any) -> None:
    if call is not None and call.active():
        call.cancel()


# -- command line ---------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `tracker simulate`."""
    parser.description = ("Simulate GPS trackers against a running server: N TCP "
                          "connections, a location every interval, acks checked.")
    parser.add_argument("--protocol", choices=SIMULATED_PROTOCOLS, default="gt06")
    parser.add_argument("--devices", type=_positive_int, default=1, metavar="N",
                        help="simulated devices, one TCP connection each (default 1)")
    parser.add_argument("--interval", type=_positive_float, default=10.0, metavar="S",
                        help="seconds between a device's locations (default 10)")
    parser.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=None,
                        help="server port (default: the protocol's, 5023 for gt06)")
    parser.add_argument("--duration", type=_non_negative_float, default=None, metavar="S",
                        help="stop producing after S seconds, then drain (default: "
                             "until SIGINT/SIGTERM)")
    parser.add_argument("--drain-timeout", type=_non_negative_float, default=10.0, metavar="S",
                        help="after producing, wait up to S seconds for acks (default 10)")
    parser.add_argument("--first-imei", type=_imei, default=FIRST_IMEI, metavar="IMEI",
                        help=f"IMEI of the first device; the others count up (default {FIRST_IMEI})")
    parser.add_argument("--alarm-every", type=_non_negative_int, default=0, metavar="K",
                        help="send an alarm instead of every Kth location (default 0: never)")
    parser.add_argument("--heartbeat-every", type=_non_negative_int, default=10, metavar="H",
                        help="send a heartbeat after every Hth message (default 10; 0: never)")
    parser.add_argument("--buffer", type=_positive_int, default=1_000, metavar="N",
                        help="unacked messages a device keeps (default 1000)")
    parser.add_argument("--acked-log", metavar="FILE",
                        help="append '<imei> <fix time> <position|alarm>' per acked message")
    parser.add_argument("--seed", type=int, default=0, help="seed of the routes (default 0)")
    parser.add_argument("--log-level", choices=("debug", "info", "warn", "error"),
                        default="warn", help="log to stderr from this level (default warn)")


def options_from_args(args: argparse.Namespace) -> SimulationOptions:
    """SimulationOptions from parsed `tracker simulate` arguments (ValueError if bad)."""
    return SimulationOptions(
        host=args.host,
        port=args.port if args.port is not None else DEFAULT_PORTS[args.protocol],
        protocol=args.protocol, devices=args.devices, interval_s=args.interval,
        duration_s=args.duration, first_imei=args.first_imei,
        alarm_every=args.alarm_every, heartbeat_every=args.heartbeat_every,
        acked_log=args.acked_log, seed=args.seed, drain_timeout_s=args.drain_timeout,
        buffer_limit=args.buffer,
    )


class SimulationFailed(Exception):
    """The simulation could not run to its end (e.g. the host did not resolve)."""


def run_blocking(options: SimulationOptions, reactor: Any = None) -> Stats:
    """Run the reactor (the global one by default: once per process) until the
    simulation ends; SIGINT/SIGTERM drain first, a second one aborts.

    Raises SimulationFailed when it stops without results.
    """
    if reactor is None:
        from twisted.internet import reactor
    _raise_open_files_limit(options.devices + 64)
    simulation = Simulation(reactor, options)
    outcome: dict[str, Any] = {}

    def on_signal(signum: int, frame: Any) -> None:
        reactor.callFromThread(simulation.interrupt)

    def started() -> None:
        d = simulation.run()
        d.addCallbacks(lambda stats: outcome.update(stats=stats),
                       lambda failure: outcome.update(error=failure.getErrorMessage()))
        d.addBoth(lambda _: reactor.stop())

    previous = {number: signal.signal(number, on_signal)
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        reactor.callWhenRunning(started)
        reactor.run(installSignalHandlers=False)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if "stats" not in outcome:
        raise SimulationFailed(outcome.get("error", "stopped before the end"))
    return outcome["stats"]


def run(args: argparse.Namespace, reactor: Any = None) -> int:
    """`tracker simulate`: run until done, print the report line, return the exit code.

    0: every produced message was acked; 1: some were not; 2: bad options or the
    server's name could not be resolved.
    """
    try:
        options = options_from_args(args)
    except ValueError as error:
        print(f"tracker simulate: {error}", file=sys.stderr)
        return 2
    _begin_logging(getattr(args, "log_level", "warn"))
    try:
        stats = run_blocking(options, reactor)
    except SimulationFailed as error:
        print(f"tracker simulate: {error}", file=sys.stderr)
        return 2
    print(stats.summary(), flush=True)
    return 0 if stats.ok else 1


def _begin_logging(level_name: str) -> None:
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level_name))
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(sys.stderr), [predicate])],
        redirectStandardIO=False)


def _raise_open_files_limit(wanted: int) -> None:
    """One socket per device: lift the soft limit (often 1024) towards the hard one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
    if new_soft < wanted:
        log.warn("open files limited to {limit}; {wanted} devices need more",
                 limit=new_soft, wanted=wanted)


def _number(kind: Callable[[str], Any], check: Callable[[Any], bool], what: str):
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value
    parse.__name__ = what
    return parse


_positive_int = _number(int, lambda v: v > 0, "a positive integer")
_non_negative_int = _number(int, lambda v: v >= 0, "a non-negative integer")
_positive_float = _number(float, lambda v: v > 0 and math.isfinite(v), "a positive number")
_non_negative_float = _number(float, lambda v: v >= 0 and math.isfinite(v),
                              "a non-negative number")
_port = _number(int, lambda v: 0 < v < 65536, "a port number")
_imei = _number(int, lambda v: 10**14 <= v <= LAST_IMEI, "a 15-digit IMEI")
