"""Device simulator: many trackers of any registered protocol, for load tests.

`tracker simulate --protocol gt06 --devices 2000 --interval 5 --duration 60` plays
2,000 devices against a running server.  Everything protocol-specific comes from
the protocol's device side (`protocols.get_device_side(name)`, see
`protocols.base.DeviceSide`): what a login, a report and a heartbeat look like on
the wire, whether the server answers logins and reports, and how its replies read
(the ack reader's tokens).  Nothing here knows any protocol.

Transports (the device side's own; `--transport tcp|udp` switches a byte
protocol to the other one, which is right only where the protocol's device frames
are the same on both, as GT06's are; Teltonika's UDP framing, for one, differs):

- tcp: one connection per device, opened staggered over the first interval.
  The device sends its login (unless the protocol has none) and, when the
  protocol acks logins, waits for the reply (`login_timeout_s`, 10 s, then it
  reconnects).  Then a report every interval.
- udp: one UDP socket per device, connected to host:port; the same login and
  the same acks.  A datagram may be lost, so an unacked login or report is sent
  again after `--retry-timeout` seconds; after `--tries` transmissions on one
  socket the device takes the server for gone and opens a new socket (with
  backoff) and logs in again, as a tracker re-registers.  At most
  `UDP_WINDOW` reports are in flight per device.  `connections` counts sockets.
- http: the report is an `HttpRequest` sent to http://host:port<url> over a
  persistent HTTP/1.1 connection (one per device, as a phone app keeps one).  A
  200 response is the ack.  The device sends its buffer oldest first, one request
  at a time; another status or a failed request is retried with backoff (the
  same 1 s doubling to 10 s) like a phone app's buffer.  `connections` counts
  TCP connections opened.

Acknowledgements.  The ack reader turns the server's bytes into tokens.  The
first token on a connection acks the login (when the protocol acks logins).  After
that an int token acks the outstanding report with that serial; None acks the
oldest outstanding message (FIFO), as devices whose acks carry no serial number
read them.  Heartbeat replies cannot be told from report acks by a FIFO reader,
so while it is unknown whether the protocol answers heartbeats (and acks are
FIFO or not yet seen), a device sends a heartbeat only when nothing else is
outstanding and sends nothing else until a token arrives (the protocol answers
heartbeats) or `reply_wait_s` passes (it does not); the simulation remembers the
answer.  Over UDP, FIFO acks are exact only while no datagram is lost or
duplicated (a retransmitted login or report may be answered twice); serial acks
are exact always.  For protocols that do not ack reports (`acks_reports` False)
a report counts as delivered once it is written to a connected socket, and
tokens after the login are ignored.

Each device behaves as a real tracker's firmware does with its buffer: a report
stays in the device's buffer, keyed by its serial number, until the server acks
it.  When the connection drops, the device reconnects with backoff (1 s
doubling to 10 s, jittered), logs in again and resends its unacked reports first,
byte for byte (same serial, same fix time), before anything new.  Reports produced
while offline are buffered too (up to `--buffer` per device; the oldest are
dropped beyond that and stay unacked).  Heartbeats (after every Hth report, half
an interval later) carry no data and are neither buffered nor resent.

Ids are `--first-imei` + i (15 digits; protocols whose ids are not IMEIs take the
same digits).  Routes are a seeded random walk per device around a start point
near Berlin: speed 0..90 km/h, the reported course is the direction actually
moved, and fix times are the current UTC second, strictly increasing per device
(with an interval below one second fix times therefore run ahead of the clock).
Every Kth report (`--alarm-every K`) carries the alarm "sos".  With `--route FILE`
every device follows that route instead, one point per report (`read_route`), and
stops producing at its end (the default duration is then the route's length).

After `--duration` the devices stop producing and the simulation drains: it waits
up to `--drain-timeout` seconds for outstanding acks (reconnecting and resending
as needed), then closes every connection and reports.  SIGINT/SIGTERM start the
drain early; a second signal ends at once.  The report line is

    sent=<n> acked=<n> unacked=<n> resent=<n> connections=<n> ack_p50_ms=<x> ack_p99_ms=<x>

where `sent` counts the reports the devices produced, `resent` their
retransmissions, `connections` the connections (sockets) established, and the
latencies run from a report's (last) transmission to its ack.  For a protocol
without report acks it reads `acked=n/a delivered=<n>`, `unacked` then counts
reports never written, and the latencies are nan.  The exit status is 0 when
every report was acknowledged (or, without report acks, written), 1 otherwise.

`--acked-log FILE` appends one line per acknowledged report (without report acks:
per report written, so no separate sent log is needed): ``<imei> <fix time,
ISO 8601 UTC, e.g. 2024-05-01T12:00:05Z> <position|alarm>``; tests compare it with
the database (without report acks, allowing a moment for the last writes to land).

Programmatic use (tests, benchmarks)::

    stats = await run_simulation(reactor, SimulationOptions(port=5023, devices=10,
                                                            interval_s=1, duration_s=5))

Everything runs on one reactor, passed in; nothing blocks it except the buffered
appends to the acked log.  Memory per device is a few hundred bytes plus its
connection and its buffered reports.
"""

from __future__ import annotations

import argparse
import array
import collections
import dataclasses
import datetime as dt
import math
import random
import signal
import sys
import time
from collections.abc import Callable
from typing import IO, Any, cast

from twisted.internet import abstract, defer, error, protocol
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.interfaces import IPushProducer, IStreamClientEndpoint, ITCPTransport, IUDPTransport
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer
from zope.interface import implementer

from protocols import CODECS, DeviceReport, DeviceSide, HttpRequest, ProtocolError, get_device_side
from protocols.values import KMH_PER_KNOT

log = Logger()

TRANSPORTS = ("tcp", "udp", "http")
FIRST_IMEI = 860_000_000_000_000
LAST_IMEI = 999_999_999_999_999
ALARM = "sos"
START_LON, START_LAT = 13.405, 52.52     # routes start within ~25 km of Berlin
START_SPREAD_DEG = 0.25
MAX_SPEED_KMH = 90.0
METRES_PER_DEG_LAT = 111_320.0
MAX_SERIAL = 0xFFFF
MAX_BUFFER = 60_000             # leaves free serials for logins and heartbeats
LATENCY_SAMPLES = 1_000_000     # reservoir size for the percentiles
CLOSE_GRACE_S = 2.0             # after this, connections still open are aborted
UDP_WINDOW = 32                 # reports in flight per UDP device
HEARTBEAT_MEMORY = 8            # heartbeats awaiting a reply, per connection
_HOP_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding"})


def transport_for(device: DeviceSide, requested: str | None = None) -> str:
    """The transport to simulate `device` on: its own, or `requested` when the
    device speaks bytes and `requested` is the other byte transport."""
    own = device.transport
    if requested is None or requested == own:
        return own
    if requested in ("tcp", "udp") and own in ("tcp", "udp"):
        return requested
    raise ValueError(f"this protocol's devices speak {own}, not {requested}")


def default_port(protocol_name: str, transport: str | None = None) -> int:
    """The protocol's first default listen port (the first of `transport`, if any):
    "tcp:5023" -> 5023, "http:5055" -> 5055."""
    listen = CODECS[protocol_name].default_listen
    ports = [(scheme, int(port)) for scheme, _, port in (entry.partition(":") for entry in listen)]
    for scheme, port in ports:
        if scheme == transport:
            return port
    return ports[0][1]


@dataclasses.dataclass(frozen=True, slots=True)
class SimulationOptions:
    """What to simulate and against which server.  Durations in seconds.

    `port` None means the protocol's default port; `transport` None the device
    side's own.  `duration_s` None means: produce until `Simulation.stop()` (or a
    signal).  `alarm_every` K > 0 sends the alarm "sos" in every Kth report;
    `heartbeat_every` H > 0 adds a heartbeat after every Hth report.
    `retry_timeout_s` and `max_tries` apply to UDP, `request_timeout_s` to HTTP,
    `reply_wait_s` to learning whether heartbeats are answered (see the module).
    """

    host: str = "127.0.0.1"
    port: int | None = None
    protocol: str = "gt06"
    transport: str | None = None
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
    retry_timeout_s: float = 3.0
    max_tries: int = 5
    request_timeout_s: float = 10.0
    reply_wait_s: float = 2.0
    route: tuple[tuple[float, float, float], ...] = ()   # (lon, lat, speed km/h) per report

    def __post_init__(self) -> None:
        try:
            device = get_device_side(self.protocol)
        except (ValueError, KeyError) as problem:
            raise ValueError(f"cannot simulate protocol {self.protocol!r}: {problem}") from None
        transport = transport_for(device, self.transport)
        if self.port is None:
            object.__setattr__(self, "port", default_port(self.protocol, transport))
        elif not 0 < self.port < 65536:
            raise ValueError(f"{self.port} is not a port number")
        if self.route and self.duration_s is None:   # start offset + one report per point
            object.__setattr__(self, "duration_s", self.interval_s * (len(self.route) + 1.5))
        self._check_numbers()

    def _check_numbers(self) -> None:
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
        if not (self.retry_timeout_s > 0 and self.request_timeout_s > 0 and self.reply_wait_s > 0):
            raise ValueError("retry, request and reply timeouts must be positive")
        if self.max_tries < 1:
            raise ValueError("tries must be at least 1")


@dataclasses.dataclass(frozen=True, slots=True)
class Stats:
    """Counters of a simulation (a snapshot; `Simulation.stats()` makes a new one).

    Latency percentiles are NaN when nothing was acknowledged.  When the protocol
    does not ack reports (`acks_reports` False), `acked` is 0, `delivered` counts
    the reports written to a connected socket and `unacked` those never written.
    """

    devices: int
    sent: int            # reports produced (transmitted, or buffered offline)
    acked: int           # of those, acknowledged by the server
    unacked: int         # sent - delivered: still buffered, or dropped from a full buffer
    resent: int          # retransmissions (after a reconnect, a UDP timeout, an HTTP failure)
    connections: int     # connections established (UDP: sockets opened)
    logins: int          # logins acknowledged (or sent, when the protocol acks none)
    heartbeats: int      # heartbeats sent
    dropped: int         # reports discarded from a full buffer (counted in unacked)
    ack_p50_ms: float
    ack_p99_ms: float
    elapsed_s: float     # from start until the report
    interrupted: bool    # stopped by stop()/abort() (a signal) rather than --duration
    acks_reports: bool = True
    delivered: int = 0   # acked, or (without report acks) written

    @property
    def ok(self) -> bool:
        """Every produced report was acknowledged (or, without acks, written)."""
        return self.unacked == 0

    def summary(self) -> str:
        """The one-line report the command prints."""
        acked = f"{self.acked}" if self.acks_reports else f"n/a delivered={self.delivered}"
        return (f"sent={self.sent} acked={acked} unacked={self.unacked} "
                f"resent={self.resent} connections={self.connections} "
                f"ack_p50_ms={self.ack_p50_ms:.1f} ack_p99_ms={self.ack_p99_ms:.1f}")


def run_simulation(reactor: Any, options: SimulationOptions,
                   device: DeviceSide | None = None) -> defer.Deferred[Stats]:
    """Run a whole simulation on `reactor`; the Deferred fires with its `Stats`.
    `device` replaces the protocol's device side (tests)."""
    return Simulation(reactor, options, device=device).run()


class Simulation:
    """A fleet of simulated devices sharing one reactor.

    `run()` starts it and returns a Deferred firing with `Stats` once the devices
    stopped producing, the drain ended and every connection is closed.  `stop()`
    ends production early and drains; `abort()` closes without draining.
    `device` replaces the protocol's device side (tests).
    """

    def __init__(self, reactor: Any, options: SimulationOptions,
                 acked_log: IO[str] | None = None, device: DeviceSide | None = None) -> None:
        self.reactor = reactor
        self.options = options
        self.device_side = device if device is not None else get_device_side(options.protocol)
        self.transport = transport_for(self.device_side, options.transport)
        # over HTTP the status is the ack
        self.acks_reports = self.transport == "http" or bool(self.device_side.acks_reports)
        self.fifo_acks: bool | None = None          # a None token was seen / only ints
        self.heartbeat_replies: bool | None = None  # the server answers heartbeats
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
        self.sent = self.acked = self.delivered = self.resent = self.connections = 0
        self.logins = self.heartbeats = self.dropped = 0
        self.buffered = 0              # reports in device buffers right now

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
            unacked=self.sent - self.delivered, resent=self.resent,
            connections=self.connections, logins=self.logins,
            heartbeats=self.heartbeats, dropped=self.dropped,
            ack_p50_ms=_percentile(samples, 50.0) * 1000.0,
            ack_p99_ms=_percentile(samples, 99.0) * 1000.0,
            elapsed_s=end - self._start_time if self._phase != "new" else 0.0,
            interrupted=self._interrupted, acks_reports=self.acks_reports,
            delivered=self.delivered,
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
        device_class = {"tcp": _TcpDevice, "udp": _UdpDevice, "http": _HttpDevice}[self.transport]
        spacing_s = options.interval_s / options.devices
        for index in range(options.devices):
            device = device_class(self, index, str(options.first_imei + index))
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
        live = [device for device in self._devices if device.has_link()]
        self._open = len(live) + 1     # + 1 until every close was asked for
        for device in live:
            device.close()             # each calls device_closed() once closed
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
        """The server acknowledged `message`."""
        self.acked += 1
        self._record_latency(now - message.sent_at)
        self._settled(imei, message)

    def message_delivered(self, imei: str, message: _Buffered) -> None:
        """`message` was written and the protocol acks no reports: it is done."""
        self._settled(imei, message)

    def _settled(self, imei: str, message: _Buffered) -> None:
        self.delivered += 1
        self.buffered -= 1
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
    """One report in a device's buffer until the server acks it.

    `payload` is the wire bytes (or the HttpRequest); `link` the connection it
    was last transmitted on (0: none yet), `tries` its transmissions on that one.
    """

    __slots__ = ("serial", "payload", "fix_time_s", "kind", "sent_at", "transmissions",
                 "link", "tries", "tx_seq")

    def __init__(self, serial: int, payload: bytes | HttpRequest, fix_time_s: int,
                 kind: str) -> None:
        self.serial = serial
        self.payload = payload
        self.fix_time_s = fix_time_s
        self.kind = kind              # "position" or "alarm"
        self.sent_at = 0.0            # reactor time of the last transmission
        self.transmissions = 0
        self.link = 0
        self.tries = 0
        self.tx_seq = 0               # order of first transmission on `link`


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


class _Device:
    """One simulated device: its route, serial counter and unacked buffer.

    Subclasses add the transport: `connect()` (first at the start offset, then
    after backoff), `_produced()` (a new report is buffered), `has_link()` /
    `close()` (at the end; `close` calls `simulation.device_closed()` once done)
    and `abort_connection()`.
    """

    HEARTBEATS = False

    def __init__(self, simulation: Simulation, index: int, imei: str) -> None:
        self.simulation = simulation
        self.side = simulation.device_side
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
        self.backoff_s = options.backoff_min_s
        self.next_tick = 0.0
        self.tick_call: Any = None
        self.retry_call: Any = None
        self.heartbeat_call: Any = None

    # -- lifecycle ------------------------------------------------------------------

    def start(self, offset_s: float) -> None:
        reactor = self.simulation.reactor
        interval_s = self.simulation.options.interval_s
        self.retry_call = reactor.callLater(offset_s, self.connect)
        self.next_tick = reactor.seconds() + offset_s + interval_s
        self.tick_call = reactor.callLater(offset_s + interval_s, self._tick)

    def connect(self) -> None:
        raise NotImplementedError

    def has_link(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort_connection(self) -> None:
        """Drop a connection that did not close in time."""

    def stop_producing(self) -> None:
        for call in (self.tick_call, self.heartbeat_call):
            _cancel(call)
        self.tick_call = self.heartbeat_call = None

    def cancel_timers(self) -> None:
        for call in (self.tick_call, self.retry_call, self.heartbeat_call):
            _cancel(call)
        self.tick_call = self.retry_call = self.heartbeat_call = None

    def _reconnect_later(self) -> None:
        """connect() again after the backoff (jittered), which then doubles."""
        options = self.simulation.options
        delay_s = min(self.backoff_s * (1.0 + 0.25 * self.rng.random()), options.backoff_max_s)
        self.backoff_s = min(self.backoff_s * 2, options.backoff_max_s)
        self.retry_call = self.simulation.reactor.callLater(delay_s, self.connect)

    def _mark_sent(self, message: _Buffered, now: float) -> None:
        if message.transmissions:
            self.simulation.resent += 1
        message.transmissions += 1
        message.sent_at = now

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
        if options.route:
            if self.produced >= len(options.route):
                return
            self._follow(options.route[self.produced])
        else:
            self._move(options.interval_s)
        self.last_fix_s = max(int(now), self.last_fix_s + 1)
        self.produced += 1
        alarm = bool(options.alarm_every) and self.produced % options.alarm_every == 0
        serial = self._next_serial()
        report = DeviceReport(
            fix_time=dt.datetime.fromtimestamp(self.last_fix_s, dt.UTC),
            latitude=self.latitude, longitude=self.longitude,
            speed_kn=self.speed_kmh / KMH_PER_KNOT, course_deg=self.course_deg, valid=True,
            alarm=ALARM if alarm else None)
        payload = self.side.report(self.imei, serial, report)
        if len(self.buffer) >= options.buffer_limit:   # full: the oldest goes
            self._forget(self.buffer.pop(next(iter(self.buffer))))
            simulation.dropped += 1
            simulation.buffered -= 1
        message = _Buffered(serial, payload, self.last_fix_s, "alarm" if alarm else "position")
        self.buffer[serial] = message
        simulation.sent += 1
        simulation.buffered += 1
        self._produced(message)
        if (self.HEARTBEATS and options.heartbeat_every and self.heartbeat_call is None
                and self.produced % options.heartbeat_every == 0):
            self.heartbeat_call = simulation.reactor.callLater(
                options.interval_s / 2, self._heartbeat)

    def _produced(self, message: _Buffered) -> None:
        raise NotImplementedError

    def _forget(self, message: _Buffered) -> None:
        """`message` left the buffer unacked (the buffer was full)."""

    def _heartbeat(self) -> None:
        self.heartbeat_call = None

    def _follow(self, point: tuple[float, float, float]) -> None:
        """Go to the route's next point; course is the direction moved."""
        lon, lat, speed_kmh = point
        if self.produced:
            east_m = ((lon - self.longitude) * METRES_PER_DEG_LAT
                      * math.cos(math.radians((lat + self.latitude) / 2)))
            north_m = (lat - self.latitude) * METRES_PER_DEG_LAT
            if east_m or north_m:
                self.course_deg = math.degrees(math.atan2(east_m, north_m)) % 360.0
        self.longitude, self.latitude, self.speed_kmh = lon, lat, speed_kmh

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
        """The next 16-bit serial (1..65535) not held by a buffered report."""
        serial = self.serial
        while True:
            serial = serial % MAX_SERIAL + 1
            if serial not in self.buffer:
                self.serial = serial
                return serial


class _ByteDevice(_Device):
    """A device speaking bytes over a link (TCP connection or UDP socket):
    login, ack tokens, heartbeats and the send queue.  Subclasses provide the
    link: `_write(frames)`, `_await_login()`, `_drop_link()`, `_sent_reports()`."""

    HEARTBEATS = True
    WINDOW: int | None = None         # reports in flight per link (None: no limit)

    def __init__(self, simulation: Simulation, index: int, imei: str) -> None:
        super().__init__(simulation, index, imei)
        self.link = 0                 # counts this device's links; 0: none yet
        self.online = False
        self.logged_in = False
        self.login_serial = -1
        self.login_frame = b""
        self.login_call: Any = None
        self.hold_call: Any = None    # waiting for a heartbeat's possible reply
        self.reader: Any = None
        self.unsent: collections.deque[int] = collections.deque()
        self.heartbeats: collections.deque[tuple[int, int]] = collections.deque(
            maxlen=HEARTBEAT_MEMORY)  # (tx_seq, serial) awaiting a reply
        self.in_flight = 0            # reports transmitted on this link, unacked
        self.tx_seq = 0

    # -- link events (from the subclass) ---------------------------------------------

    def link_up(self) -> None:
        """A connection (socket) is ready: log in, then send the backlog."""
        simulation = self.simulation
        simulation.connections += 1
        self.link += 1
        self.online = True
        self.logged_in = False
        self.reader = self.side.ack_reader()
        self.unsent = collections.deque(self.buffer)
        self.heartbeats.clear()
        self.in_flight = 0
        self.login_serial = self._next_serial()
        self.login_frame = self.side.login(self.imei, self.login_serial)
        if self.login_frame:
            self._write([self.login_frame])
        if self.login_frame and self.side.acks_login:
            self._await_login()
        else:
            self._logged_in()

    def link_down(self) -> None:
        """The link is gone; what it carried unacked stays buffered."""
        self.online = False
        self.logged_in = False
        self.reader = None
        _cancel(self.login_call)
        _cancel(self.hold_call)
        self.login_call = self.hold_call = None
        self.unsent.clear()
        self.heartbeats.clear()
        self.in_flight = 0

    def data_received(self, data: bytes) -> None:
        """Bytes from the server: ack tokens."""
        try:
            tokens = self.reader.receive_data(data)
        except ProtocolError as problem:
            log.warn("device {imei}: bad data from the server ({error}); disconnecting",
                     imei=self.imei, error=problem)
            self._drop_link()
            return
        link = self.link
        for token in tokens:
            if self.link != link or not self.online:
                return
            self._token(token)

    def cancel_timers(self) -> None:
        super().cancel_timers()
        for call in (self.login_call, self.hold_call):
            _cancel(call)
        self.login_call = self.hold_call = None

    # -- acknowledgements ----------------------------------------------------------------

    def _token(self, token: int | None) -> None:
        simulation = self.simulation
        if not self.logged_in:
            self._logged_in()          # the first token acks the login
            return
        if not simulation.acks_reports:
            return
        if token is None:
            simulation.fifo_acks = True
            self._ack_oldest()
            return
        message = self.buffer.get(token)
        if message is not None and message.link == self.link:
            if simulation.fifo_acks is None:
                simulation.fifo_acks = False
            self._acked(message)
        else:
            self._heartbeat_answered(token)   # or an ack for nothing we know

    def _ack_oldest(self) -> None:
        first = next(iter(self.buffer.values()), None)
        if first is not None and first.link != self.link:
            first = None               # in-flight reports lead the buffer
        if self.heartbeats and (first is None or self.heartbeats[0][0] < first.tx_seq):
            self._heartbeat_answered(self.heartbeats[0][1])
        elif first is not None:
            self._acked(first)
        else:
            log.debug("device {imei}: an ack with nothing outstanding", imei=self.imei)

    def _acked(self, message: _Buffered) -> None:
        del self.buffer[message.serial]
        self.in_flight -= 1
        self.simulation.message_acked(self.imei, message, self.simulation.reactor.seconds())
        self._pump()

    def _heartbeat_answered(self, serial: int) -> None:
        for entry in self.heartbeats:
            if entry[1] == serial:
                self.heartbeats.remove(entry)
                break
        else:
            return
        self.simulation.heartbeat_replies = True
        if self.hold_call is not None:
            _cancel(self.hold_call)
            self.hold_call = None
            self._pump()

    def _logged_in(self) -> None:
        _cancel(self.login_call)
        self.login_call = None
        self.logged_in = True
        self.backoff_s = self.simulation.options.backoff_min_s
        self.simulation.logins += 1
        self._pump()

    # -- sending ---------------------------------------------------------------------------

    def _produced(self, message: _Buffered) -> None:
        if self.online:
            self.unsent.append(message.serial)
            self._pump()

    def _forget(self, message: _Buffered) -> None:
        if self.online and message.link == self.link:
            self.in_flight -= 1

    def _mark_sent(self, message: _Buffered, now: float) -> None:
        super()._mark_sent(message, now)
        if message.link != self.link:
            self.tx_seq += 1
            message.link, message.tries, message.tx_seq = self.link, 0, self.tx_seq
            self.in_flight += 1
        message.tries += 1

    def _pump(self) -> None:
        """Send what waits, in buffer order, as far as the window allows."""
        if not (self.online and self.logged_in) or self.hold_call is not None:
            return
        simulation = self.simulation
        acked = simulation.acks_reports
        window = self.WINDOW if acked else None
        now = simulation.reactor.seconds()
        sending: list[_Buffered] = []
        while self.unsent and (window is None or self.in_flight < window):
            message = self.buffer.get(self.unsent.popleft())
            if message is None or message.link == self.link:
                continue               # acked or dropped meanwhile, or already sent
            self._mark_sent(message, now)
            sending.append(message)
        if not sending:
            return
        self._write([cast(bytes, message.payload) for message in sending])
        if acked:
            self._sent_reports()
            return
        for message in sending:        # no acks: written is delivered
            del self.buffer[message.serial]
            self.in_flight -= 1
            simulation.message_delivered(self.imei, message)

    def _heartbeat(self) -> None:
        self.heartbeat_call = None
        if not (self.online and self.logged_in) or self.hold_call is not None:
            return
        simulation = self.simulation
        tracked = simulation.acks_reports and simulation.heartbeat_replies is not False
        isolate = (tracked and simulation.fifo_acks is not False
                   and simulation.heartbeat_replies is None)
        if isolate and (self.in_flight or self.heartbeats):
            return     # its reply could not be told from a report's ack: skip this one
        serial = self._next_serial()
        frame = self.side.heartbeat(self.imei, serial)
        if not frame:
            return
        self._write([frame])
        simulation.heartbeats += 1
        if tracked:
            self.tx_seq += 1
            self.heartbeats.append((self.tx_seq, serial))
        if isolate:
            self.hold_call = simulation.reactor.callLater(
                simulation.options.reply_wait_s, self._no_heartbeat_reply)

    def _no_heartbeat_reply(self) -> None:
        self.hold_call = None
        if self.heartbeats:
            self.heartbeats.pop()      # the held heartbeat was the newest entry
        if self.simulation.heartbeat_replies is None:
            self.simulation.heartbeat_replies = False
            log.info("the server does not answer heartbeats; not waiting any more")
        self._pump()

    # -- the link (subclasses) ------------------------------------------------------------

    def _write(self, frames: list[bytes]) -> None:
        raise NotImplementedError

    def _await_login(self) -> None:
        raise NotImplementedError

    def _drop_link(self) -> None:
        raise NotImplementedError

    def _sent_reports(self) -> None:
        """Reports were just transmitted (UDP arms its retransmission timer)."""


class _TcpDevice(_ByteDevice, protocol.ClientFactory):
    """A device on one TCP connection at a time; it is its own client factory:
    connections come and go (each a `_TcpConnection`), the device and its buffer
    stay."""

    noisy = False

    def __init__(self, simulation: Simulation, index: int, imei: str) -> None:
        super().__init__(simulation, index, imei)
        self.connector: Any = None                 # live while connecting or connected
        self.connection: _TcpConnection | None = None

    def connect(self) -> None:
        self.retry_call = None
        if self.simulation.closing:
            return
        options = self.simulation.options
        self.connector = self.simulation.reactor.connectTCP(
            self.simulation._host, options.port, self, timeout=options.connect_timeout_s)

    def has_link(self) -> bool:
        return self.connector is not None

    def close(self) -> None:
        self.connector.disconnect()

    def abort_connection(self) -> None:
        if self.connection is not None:
            self.connection.transport.abortConnection()

    def connection_made(self, connection: _TcpConnection) -> None:
        self.connection = connection
        self.link_up()

    def _write(self, frames: list[bytes]) -> None:
        assert self.connection is not None, "written only while connected"
        self.connection.transport.write(b"".join(frames))

    def _await_login(self) -> None:
        self.login_call = self.simulation.reactor.callLater(
            self.simulation.options.login_timeout_s, self._login_timed_out)

    def _login_timed_out(self) -> None:
        self.login_call = None
        self.simulation.warn_once(
            "login", "device {imei}: no login ack within {timeout} s; reconnecting",
            imei=self.imei, timeout=self.simulation.options.login_timeout_s)
        self._drop_link()

    def _drop_link(self) -> None:
        if self.connection is not None:
            self.connection.transport.loseConnection()

    # -- ClientFactory ---------------------------------------------------------------

    def buildProtocol(self, addr: Any) -> _TcpConnection:
        return _TcpConnection(self)

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
            log.debug("device {imei}: connection lost: {reason}; {n} reports unacked",
                      imei=self.imei, reason=reason.getErrorMessage(), n=len(self.buffer))
        self._ended()

    def _ended(self) -> None:
        self.connector = None
        self.connection = None
        self.link_down()
        if self.simulation.closing:
            self.simulation.device_closed()
            return
        self._reconnect_later()


class _TcpConnection(protocol.Protocol):
    """One TCP connection of a device: hands the server's bytes to the device."""

    transport: ITCPTransport   # set by Twisted before connectionMade

    def __init__(self, device: _TcpDevice) -> None:
        self.device = device

    def connectionMade(self) -> None:
        self.device.connection_made(self)

    def dataReceived(self, data: bytes) -> None:
        # `disconnecting`: every Twisted transport has it, no interface declares it
        if self.device.connection is self and \
                not self.transport.disconnecting:   # type: ignore[attr-defined]
            self.device.data_received(data)

    def connectionLost(self, reason: Any = None) -> None:
        pass    # the device learns it from clientConnectionLost


class _UdpDevice(_ByteDevice):
    """A device on one connected UDP socket at a time; every login, report and
    heartbeat is one datagram.  Unacked datagrams are sent again after
    `retry_timeout_s`; after `max_tries` on one socket the device opens a new one."""

    WINDOW = UDP_WINDOW

    def __init__(self, simulation: Simulation, index: int, imei: str) -> None:
        super().__init__(simulation, index, imei)
        self.port: Any = None                      # the listening UDP port
        self.socket: _UdpSocket | None = None
        self.check_call: Any = None
        self.login_sent_at = 0.0
        self.login_tries = 0

    def connect(self) -> None:
        self.retry_call = None
        simulation = self.simulation
        if simulation.closing:
            return
        self.socket = _UdpSocket(self)
        interface = "::" if abstract.isIPv6Address(simulation._host) else ""
        try:    # startProtocol (and so link_up) runs inside listenUDP
            self.port = simulation.reactor.listenUDP(0, self.socket, interface=interface)
        except error.CannotListenError as problem:
            simulation.warn_once("udp-listen", "device {imei}: no UDP socket ({error}); "
                                 "retrying with backoff", imei=self.imei, error=problem)
            self.socket = None
            self.link_down()
            self._reconnect_later()

    def socket_started(self, socket: _UdpSocket) -> None:
        options = self.simulation.options
        socket.transport.connect(self.simulation._host,
                                 cast(int, options.port))   # set by SimulationOptions
        self.link_up()

    def has_link(self) -> bool:
        return self.port is not None

    def close(self) -> None:
        d = self._close_socket()
        d.addBoth(lambda _: self.simulation.device_closed())

    def cancel_timers(self) -> None:
        super().cancel_timers()
        _cancel(self.check_call)
        self.check_call = None

    def link_down(self) -> None:
        super().link_down()
        _cancel(self.check_call)
        self.check_call = None

    def _close_socket(self) -> defer.Deferred:
        port, self.port, self.socket = self.port, None, None
        self.link_down()
        return defer.maybeDeferred(port.stopListening) if port is not None else defer.succeed(None)

    def _write(self, frames: list[bytes]) -> None:
        assert self.socket is not None, "written only while a socket is open"
        transport = self.socket.transport
        for frame in frames:
            transport.write(frame, None)   # a connected socket: to its peer

    def _await_login(self) -> None:
        self.login_sent_at = self.simulation.reactor.seconds()
        self.login_tries = 1
        self._arm_check()

    def _sent_reports(self) -> None:
        self._arm_check()

    def _drop_link(self) -> None:
        self._give_up("bad data from the server")

    def _arm_check(self) -> None:
        if self.check_call is None:
            self.check_call = self.simulation.reactor.callLater(
                self.simulation.options.retry_timeout_s, self._check)

    def _check(self) -> None:
        """Send again what stayed unacked for `retry_timeout_s`."""
        self.check_call = None
        if not self.online:
            return
        options = self.simulation.options
        now = self.simulation.reactor.seconds()
        due_s = now - options.retry_timeout_s + 1e-6
        earliest: float | None
        if not self.logged_in:
            if self.login_sent_at <= due_s:
                if self.login_tries >= options.max_tries:
                    self._give_up(f"no login ack after {self.login_tries} tries")
                    return
                self._write([self.login_frame])
                self.login_tries += 1
                self.login_sent_at = now
            earliest = self.login_sent_at
        else:
            due = []
            for message in self.buffer.values():
                if message.link != self.link:
                    break              # in-flight reports lead the buffer
                if message.sent_at <= due_s:
                    if message.tries >= options.max_tries:
                        self._give_up(f"no ack after {message.tries} tries")
                        return
                    due.append(message)
            for message in due:
                self._mark_sent(message, now)
            if due:
                self._write([cast(bytes, message.payload) for message in due])
            earliest = min((message.sent_at for message in self.buffer.values()
                            if message.link == self.link), default=None)
            if earliest is None:
                return
        self.check_call = self.simulation.reactor.callLater(
            max(0.001, earliest + options.retry_timeout_s - now), self._check)

    def _give_up(self, why: str) -> None:
        self.simulation.warn_once(
            "udp-silent", "device {imei}: {why} over UDP; opening a new socket after backoff",
            imei=self.imei, why=why)
        self._close_socket()
        if not self.simulation.closing:
            self._reconnect_later()


class _UdpSocket(protocol.DatagramProtocol):
    """One UDP socket of a device."""

    transport: IUDPTransport   # set by Twisted before startProtocol

    noisy = False

    def __init__(self, device: _UdpDevice) -> None:
        self.device = device

    def startProtocol(self) -> None:
        self.device.socket_started(self)

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        if self.device.socket is self:
            self.device.data_received(data)

    def connectionRefused(self) -> None:
        log.debug("device {imei}: ICMP port unreachable", imei=self.device.imei)


class _HttpDevice(_Device):
    """A device (a phone app) posting each report as an HTTP request over one
    persistent connection; one request at a time, oldest first; a 200 is the ack,
    anything else is retried after the backoff."""

    def __init__(self, simulation: Simulation, index: int, imei: str) -> None:
        super().__init__(simulation, index, imei)
        self.agent: Any = None
        self.pool: Any = None
        self.request_d: defer.Deferred | None = None
        host = simulation.options.host
        if abstract.isIPv6Address(host):
            host = f"[{host}]"
        self.base_url = f"http://{host}:{simulation.options.port}".encode("ascii")

    def connect(self) -> None:
        self.retry_call = None
        if self.simulation.closing:
            return
        if self.agent is None:
            reactor = self.simulation.reactor
            self.pool = HTTPConnectionPool(reactor, persistent=True)
            self.pool.maxPersistentPerHost = 1
            self.pool.retryAutomatically = False    # every transmission is counted here
            self.agent = Agent.usingEndpointFactory(reactor, _Endpoints(self), pool=self.pool)
        self._pump()

    def has_link(self) -> bool:
        return self.pool is not None

    def close(self) -> None:
        request_d, self.request_d = self.request_d, None
        if request_d is not None:
            request_d.cancel()
        pool, self.pool, self.agent = self.pool, None, None
        pool.closeCachedConnections().addBoth(lambda _: self.simulation.device_closed())

    def _produced(self, message: _Buffered) -> None:
        self._pump()

    def _pump(self) -> None:
        if (self.agent is None or self.request_d is not None or self.retry_call is not None
                or self.simulation.closing or not self.buffer):
            return
        message = next(iter(self.buffer.values()))
        request = cast(HttpRequest, message.payload)
        headers = Headers()
        for name, value in request.headers.items():
            if name.lower() not in _HOP_HEADERS:
                headers.addRawHeader(name, value)
        reactor = self.simulation.reactor
        self._mark_sent(message, reactor.seconds())
        d = self.agent.request(request.method.encode("ascii"),
                               self.base_url + request.url.encode("utf-8"), headers,
                               _Body(request.body) if request.body else None)
        d.addCallback(_status_after_body)
        d.addTimeout(self.simulation.options.request_timeout_s, reactor)
        self.request_d = d
        d.addCallbacks(self._answered, self._failed, callbackArgs=(d, message),
                       errbackArgs=(d, message))

    def _answered(self, status: int, d: defer.Deferred, message: _Buffered) -> None:
        if self.request_d is not d:
            return
        self.request_d = None
        if status == 200:
            self.backoff_s = self.simulation.options.backoff_min_s
            if self.buffer.get(message.serial) is message:
                del self.buffer[message.serial]
                self.simulation.message_acked(self.imei, message,
                                              self.simulation.reactor.seconds())
            self._pump()
            return
        self.simulation.warn_once("http-status", "device {imei}: HTTP status {status}; "
                                  "retrying with backoff", imei=self.imei, status=status)
        self._retry_later()

    def _failed(self, failure: Any, d: defer.Deferred, message: _Buffered) -> None:
        if self.request_d is not d:
            return                     # cancelled by close()
        self.request_d = None
        self.simulation.warn_once("http-failed", "device {imei}: request failed ({error}); "
                                  "retrying with backoff", imei=self.imei,
                                  error=failure.getErrorMessage() or failure.type.__name__)
        self._retry_later()

    def _retry_later(self) -> None:
        if not self.simulation.closing:
            self._reconnect_later()    # connect() pumps again


def _status_after_body(response: Any) -> defer.Deferred:
    """The response's status, once its body is read (so the connection is reusable).
    A status arrived, so a body cut short does not matter."""
    drain = _Drain()
    drain.done = defer.Deferred(drain.cancel)
    response.deliverBody(drain)
    return drain.done.addCallback(lambda _: response.code)


class _Drain(protocol.Protocol):
    """Reads and forgets a response body."""

    done: defer.Deferred

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Any = None) -> None:
        if not self.done.called:       # (it is when cancelled)
            self.done.callback(None)

    def cancel(self, _: defer.Deferred) -> None:
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        elif self.transport is not None:
            cast(IPushProducer, self.transport).stopProducing()


@implementer(IBodyProducer)
class _Body:
    """A request body that is all there at once."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer: Any) -> defer.Deferred:
        consumer.write(self.body)
        return defer.succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


@implementer(IAgentEndpointFactory)
class _Endpoints:
    """Connects an HTTP device's agent to the resolved server address and counts
    the connections it opens."""

    def __init__(self, device: _HttpDevice) -> None:
        self.device = device

    def endpointForURI(self, uri: Any) -> _CountingEndpoint:
        simulation = self.device.simulation
        host = simulation._host
        endpoint_class = TCP6ClientEndpoint if abstract.isIPv6Address(host) else TCP4ClientEndpoint
        return _CountingEndpoint(simulation, endpoint_class(
            simulation.reactor, host, cast(int, simulation.options.port),   # set by SimulationOptions
            timeout=simulation.options.connect_timeout_s))


@implementer(IStreamClientEndpoint)
class _CountingEndpoint:
    def __init__(self, simulation: Simulation, endpoint: Any) -> None:
        self.simulation = simulation
        self.endpoint = endpoint

    def connect(self, factory: Any) -> defer.Deferred:
        d = self.endpoint.connect(factory)
        d.addCallback(self._connected)
        return d

    def _connected(self, connection: Any) -> Any:
        self.simulation.connections += 1
        return connection


def _cancel(call: Any) -> None:
    if call is not None and call.active():
        call.cancel()


# -- command line ---------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `tracker simulate`."""
    parser.description = ("Simulate GPS trackers of any registered protocol against a running "
                          "server: one connection per device, a report every interval, acks "
                          "checked.")
    parser.add_argument("--protocol", choices=sorted(CODECS), default="gt06")
    parser.add_argument("--transport", choices=TRANSPORTS, default=None,
                        help="tcp or udp for a byte protocol (default: the protocol's device "
                             "transport; http protocols speak http only)")
    parser.add_argument("--devices", type=_positive_int, default=1, metavar="N",
                        help="simulated devices, one connection each (default 1)")
    parser.add_argument("--interval", type=_positive_float, default=10.0, metavar="S",
                        help="seconds between a device's reports (default 10)")
    parser.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=None,
                        help="server port (default: the protocol's first default port, "
                             "5023 for gt06)")
    parser.add_argument("--duration", type=_non_negative_float, default=None, metavar="S",
                        help="stop producing after S seconds, then drain (default: "
                             "until SIGINT/SIGTERM)")
    parser.add_argument("--drain-timeout", type=_non_negative_float, default=10.0, metavar="S",
                        help="after producing, wait up to S seconds for acks (default 10)")
    parser.add_argument("--first-imei", type=_imei, default=FIRST_IMEI, metavar="IMEI",
                        help=f"IMEI of the first device; the others count up (default {FIRST_IMEI})")
    parser.add_argument("--alarm-every", type=_non_negative_int, default=0, metavar="K",
                        help="make every Kth report an 'sos' alarm (default 0: never)")
    parser.add_argument("--heartbeat-every", type=_non_negative_int, default=10, metavar="H",
                        help="send a heartbeat after every Hth report (default 10; 0: never)")
    parser.add_argument("--buffer", type=_positive_int, default=1_000, metavar="N",
                        help="unacked reports a device keeps (default 1000)")
    parser.add_argument("--retry-timeout", type=_positive_float, default=3.0, metavar="S",
                        help="UDP: send an unacked datagram again after S seconds (default 3)")
    parser.add_argument("--tries", type=_positive_int, default=5, metavar="N",
                        help="UDP: transmissions on one socket before opening a new one "
                             "(default 5)")
    parser.add_argument("--acked-log", metavar="FILE",
                        help="append '<imei> <fix time> <position|alarm>' per acked report "
                             "(per report written, for protocols without report acks)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the routes (default 0)")
    parser.add_argument("--route", metavar="FILE",
                        help="every device follows this route, one point per report: lines "
                             "'LON LAT SPEED_KMH' (spaces or commas; # comments); production "
                             "ends with the route")
    parser.add_argument("--log-level", choices=("debug", "info", "warn", "error"),
                        default="warn", help="log to stderr from this level (default warn)")


def options_from_args(args: argparse.Namespace) -> SimulationOptions:
    """SimulationOptions from parsed `tracker simulate` arguments (ValueError if bad)."""
    return SimulationOptions(
        host=args.host, port=args.port, protocol=args.protocol,
        transport=getattr(args, "transport", None), devices=args.devices,
        interval_s=args.interval, duration_s=args.duration, first_imei=args.first_imei,
        alarm_every=args.alarm_every, heartbeat_every=args.heartbeat_every,
        acked_log=args.acked_log, seed=args.seed, drain_timeout_s=args.drain_timeout,
        buffer_limit=args.buffer, retry_timeout_s=getattr(args, "retry_timeout", 3.0),
        max_tries=getattr(args, "tries", 5),
        route=read_route(args.route) if getattr(args, "route", None) else (),
    )


def read_route(path: str) -> tuple[tuple[float, float, float], ...]:
    """The points of a route file: one 'LON LAT SPEED_KMH' per line (spaces or
    commas), blank lines and '#' comments ignored.  ValueError names the bad line."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError as problem:
        raise ValueError(f"cannot read route {path}: {problem}") from None
    points = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].replace(",", " ").split()
        if not text:
            continue
        try:
            lon, lat, speed_kmh = (float(value) for value in text)
        except ValueError:
            raise ValueError(f"route {path} line {number}: expected 'LON LAT SPEED_KMH', "
                             f"got {line.strip()!r}") from None
        if not (-180 <= lon <= 180 and -90 <= lat <= 90 and 0 <= speed_kmh <= 2000):
            raise ValueError(f"route {path} line {number}: out of range: {line.strip()!r}")
        points.append((lon, lat, speed_kmh))
    if not points:
        raise ValueError(f"route {path} has no points")
    return tuple(points)


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

    0: every report was acked (or, for protocols without report acks, written);
    1: some were not; 2: bad options or the server's name could not be resolved.
    """
    try:
        options = options_from_args(args)
    except ValueError as problem:
        print(f"tracker simulate: {problem}", file=sys.stderr)
        return 2
    _begin_logging(getattr(args, "log_level", "warn"))
    try:
        stats = run_blocking(options, reactor)
    except SimulationFailed as problem:
        print(f"tracker simulate: {problem}", file=sys.stderr)
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
