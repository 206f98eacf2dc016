"""Hostile-load benchmark: honest devices and an honest API user while the server is attacked.

Run from the repository root::

    python3 benchmarks/hostile.py                      # PostGIS, 20 s phases
    python3 benchmarks/hostile.py --database sqlite --phase-seconds 5

It starts a throwaway PostgreSQL + PostGIS cluster (`tests.pgcluster`; with
``--database sqlite`` a SQLite file instead), registers 200 honest GT06 devices, a
victim device and one spray device per protocol, an administrator and an honest
(non-administrator) API user, then starts the real server (`python -m tracker
serve`) with every protocol on its own free port on 127.0.0.1 and unknown devices
refused.  Honest load runs the whole time, in this process:

- 200 GT06 devices over TCP (the simulator, `tracker.simulator`), a report every
  5 s, each waiting for its ack; the ack latency is the simulator's (last
  transmission to ack);
- the API probe: ``GET /api/devices`` as the honest user, 4 times a second, with
  HTTP Basic (what pytraccar and Home Assistant send; ``--api-auth cookie`` uses a
  session cookie instead, which the login limiter never sees).

After a warm-up the phases run one after the other, each ``--phase-seconds`` long,
the attack in a child process (this script with ``--attack``) so that its CPU use
does not distort the honest side's measurements:

1. ``baseline``: honest load only;
2. ``udp-flood``: GT06 login datagrams with a fresh random IMEI each (none
   registered), ``--flood-rate`` per second (1,500) to the GT06 UDP port, half from
   one socket and half spread over three more source ports;
3. ``slow-drip``: ``--drip-connections`` (1,000) TCP connections spread over every
   TCP device port (and the OsmAnd port), each sending one byte of a plausible
   first frame every ``--drip-interval`` s (10), plus ``--drip-web`` (50) to the web
   port sending a request header one byte at a time; a connection the server closes
   is opened again a second later, as an attacker would;
4. ``malformed-spray``: random and mutated frames (flipped bytes, truncated,
   oversized, bad lengths; half of the TCP connections first log in as a
   registered spray device) to every TCP and UDP device port, and garbage HTTP
   (bad request lines, huge or NUL-laden headers, bad lengths and chunking) to the
   web and OsmAnd ports, at most ``--spray-rate`` operations per second;
5. ``hostile-requests``: the OsmAnd request with ``%00`` in a parameter (and a
   UTF-8-encoded surrogate, NaN/huge numbers), and, as the administrator with a
   session cookie, JSON bodies with lone surrogates, NUL, deep nesting and huge
   integers to the API, NUL in query parameters, repeated (afterwards the victim
   device's name and attributes are reset in the database, so that what these
   requests managed to store does not spoil the next phase);
6. ``login-brute-force``: wrong passwords for the administrator from 127.0.0.1 (the
   login form and Basic alternately) as fast as the server answers, at most
   ``--brute-max-rate`` per second, while the API probe keeps using the honest
   user's right password from the same address.  Run it last: failed logins are
   remembered for the limiter's window (minutes), longer than a phase.

After each phase the attack stops and the benchmark waits up to ``--settle`` s for
the phase's honest reports to be acked; then it prints one line: honest reports
acked/sent (a report counts in the phase in which it was produced, however late
its ack), ack p50/p99, reconnections of honest devices, API probes with p50/p99
(time to the full response, or to the failure) and every answer other than 200,
the server's RSS at the end of the phase and its peak (VmRSS from /proc, sampled
every second), its CPU time during the phase (% of one core) and open file
descriptors, rows in ``quarantine`` and
``unknown_devices`` ("n/a" when the table does not exist), and whether the server
process is alive; then a line describing what the attacker did, what it got
back and the CPU time it used itself (on a small machine the attacker competes
with the server for the same cores).  At the end a summary table, PASS/FAIL against the targets (every honest
report acked; API p99 below 500 ms; every probe answered 200, so the honest user
was never locked out) and the machine (CPUs, memory, CPU model, Python, database,
load average at the start).  ``--report FILE`` also writes all of it as Markdown.

It is a benchmark: the exit status is 0 whether the targets are met or not, 2 when
it could not run.  All traffic goes to 127.0.0.1; every loop is bounded by the
phase's end.  The server, the attacker, the cluster and the temporary directory
are removed on the way out, on errors and Ctrl-C too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import dataclasses
import datetime as dt
import errno
import importlib.util
import io
import json
import math
import os
import platform
import random
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:          # `tests` is not an installed package
    sys.path.insert(0, str(REPO))

from protocols import CODECS, DeviceReport, get_device_side  # noqa: E402
from tests.serverproc import ServerProcess  # noqa: E402
from tracker.simulator import FIRST_IMEI, Simulation, SimulationOptions  # noqa: E402

HOST = "127.0.0.1"
PHASES = ("baseline", "udp-flood", "slow-drip", "malformed-spray", "hostile-requests",
          "login-brute-force")
ADMIN = ("admin@hostile.test", "admin-password-1")
HONEST_USER = ("probe@hostile.test", "probe-password-1")
VICTIM_UNIQUE_ID = "870000000000001"       # the OsmAnd and API requests' target
SPRAY_FIRST_ID = 871_000_000_000_000       # + k: one registered device per protocol
FLOOD_IMEIS = (350_000_000_000_000, 359_999_999_999_999)   # never registered
SERVER_START_TIMEOUT_S = 120.0
LOGIN_WAIT_S = 30.0             # warm-up: for every honest device to be logged in
ACK_TARGET_PERCENT = 100.0
API_P99_TARGET_MS = 500.0
API_TIMEOUT_S = 10.0
API_MAX_IN_FLIGHT = 8
ATTACK_EXIT_GRACE_S = 20.0      # after the phase, before the attacker is killed
CONNECT_TIMEOUT_S = 5.0
RECONNECT_PAUSE_S = 1.0
DRIP_RAMP_S = 3.0               # drip connections are opened over this long
FLOOD_TICK_S = 0.005
FLOOD_EXTRA_SOCKETS = 3
SPRAY_OP_TIMEOUT_S = 2.0
SPRAY_READ_S = 0.3
HTTP_READ_LIMIT = 256 * 1024
UDP_MAX_DATAGRAM = 60_000


# ==================================================================================
# Entry point
# ==================================================================================

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.attack:
        return attack_main(args.attack)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        print(f"unknown phases {unknown}; known: {', '.join(PHASES)}", file=sys.stderr)
        return 2
    ingest = _load_ingest_helpers()
    ingest.raise_open_files_limit(args.devices + args.drip_connections + args.drip_web + 2048)
    report = Report()
    report.emit(f"hostile benchmark: {args.database}, {args.devices} honest devices every "
                f"{args.interval:g} s, phases of {args.phase_seconds:g} s: {', '.join(phases)}")
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tracker-hostile-") as workdir_name:
        workdir = Path(workdir_name)
        if args.database == "sqlite":
            url = f"sqlite:///{workdir / 'tracker.db'}"
            status = run(args, phases, url, workdir, report=report, ingest=ingest)
            report.machine(machine_rows(url, load_at_start))
        else:
            from tests.pgcluster import PgCluster, PgUnavailable
            try:
                with PgCluster() as cluster:
                    report.emit(f"PostGIS cluster up in {cluster.startup_s:.1f} s")
                    status = run(args, phases, cluster.url, workdir, report=report, ingest=ingest)
                    report.machine(machine_rows(cluster.url, load_at_start))
            except PgUnavailable as error:
                print(f"cannot run: {error}", file=sys.stderr)
                return 2
    if args.report:
        report.write_markdown(Path(args.report), sys.argv if argv is None else argv)
    return status


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--database", choices=("postgis", "sqlite"), default="postgis")
    add("--devices", type=int, default=200, help="honest GT06 devices (default 200)")
    add("--interval", type=float, default=5.0, help="seconds between an honest device's reports")
    add("--phase-seconds", type=float, default=20.0, help="length of each phase (default 20)")
    add("--phases", default=",".join(PHASES), help="comma-separated phases to run, in order")
    add("--warmup", type=float, default=10.0, help="seconds of honest load before the first phase")
    add("--settle", type=float, default=5.0,
        help="after a phase, seconds to wait for its honest reports' acks (default 5)")
    add("--drain-timeout", type=float, default=10.0, help="at the end, for outstanding acks")
    add("--flood-rate", type=int, default=1500, help="unknown-IMEI UDP datagrams per second")
    add("--drip-connections", type=int, default=1000, help="slow-drip connections to device ports")
    add("--drip-web", type=int, default=50, help="slow-drip connections to the web port")
    add("--drip-interval", type=float, default=10.0, help="seconds between a drip's bytes")
    add("--spray-rate", type=float, default=400.0, help="spray operations per second at most")
    add("--spray-workers", type=int, default=32)
    add("--hostile-workers", type=int, default=4)
    add("--brute-workers", type=int, default=4)
    add("--brute-max-rate", type=float, default=200.0, help="login attempts per second at most")
    add("--api-rate", type=float, default=4.0, help="honest API probes per second")
    add("--api-auth", choices=("basic", "cookie"), default="basic")
    add("--seed", type=int, default=0)
    add("--extra-config", metavar="FILE", help="TOML appended to the server's configuration")
    add("--keep-log", metavar="FILE", help="copy the server's log here")
    add("--report", metavar="FILE", help="also write the output as Markdown to FILE")
    add("--attack", metavar="SPEC", help=argparse.SUPPRESS)   # internal: the attacker process
    return parser.parse_args(argv)


def _load_ingest_helpers() -> Any:
    """benchmarks/ingest.py as a module (proc_status, raise_open_files_limit).  Not via
    sys.path: benchmarks/geofence.py would shadow the geofence package."""
    spec = importlib.util.spec_from_file_location("_bench_ingest", REPO / "benchmarks" / "ingest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ==================================================================================
# Set-up: database contents and the server with every protocol
# ==================================================================================

@dataclasses.dataclass(frozen=True, slots=True)
class Fixture:
    """What `seed_database` registered: device ids by unique id."""

    victim_id: int
    spray_ids: dict[str, str]      # protocol -> unique id of its spray device


def seed_database(url: str, devices: int) -> Fixture:
    """Migrate and fill the database: users, honest devices, victim, spray devices."""
    from tracker.storage.sql import open_store

    store = open_store(url)
    try:
        store.add_user(*ADMIN, administrator=True, name="admin")
        store.add_user(*HONEST_USER, name="honest API user")
        for index in range(devices):
            store.add_device(str(FIRST_IMEI + index), f"honest {index}")
        victim = store.add_device(VICTIM_UNIQUE_ID, "victim of hostile requests")
        spray_ids = {}
        for k, name in enumerate(sorted(CODECS)):
            spray_ids[name] = str(SPRAY_FIRST_ID + k)
            store.add_device(spray_ids[name], f"spray {name}")
    finally:
        store.close()
    return Fixture(victim_id=victim.id, spray_ids=spray_ids)


class HostileServer(ServerProcess):
    """The server with every protocol enabled, each on its own free port (`ports`;
    GT06 on `device_port`), unknown devices refused."""

    def __init__(self, workdir: Path, database_url: str, extra_config: str = "") -> None:
        self.transports = {name: [a.split(":")[0] for a in codec.default_listen]
                           for name, codec in sorted(CODECS.items())}
        super().__init__(workdir, database_url, unknown="refuse", protocol="gt06",
                         extra_config=extra_config,
                         also=tuple(name for name in self.transports if name != "gt06"))

    def ports_by_transport(self, transport: str) -> dict[str, int]:
        return {name: self.ports[name] for name, transports in self.transports.items()
                if transport in transports}


# ==================================================================================
# The run
# ==================================================================================

def run(args: argparse.Namespace, phases: list[str], url: str, workdir: Path, *,
        report: Report, ingest: Any) -> int:
    """Seed, start the server, run the phases in a reactor, report; always stop the
    server and any attacker."""
    fixture = seed_database(url, args.devices)
    extra = Path(args.extra_config).read_text() if args.extra_config else ""
    server = HostileServer(workdir, url, extra)
    context = RunContext(args=args, server=server, url=url, workdir=workdir, fixture=fixture,
                         report=report, ingest=ingest)
    try:
        try:
            started = time.monotonic()
            server.start(SERVER_START_TIMEOUT_S)
        except RuntimeError as error:
            print(f"cannot run: the server did not start: {error}", file=sys.stderr)
            return 2
        report.emit(f"server up in {time.monotonic() - started:.1f} s (pid {server.process.pid}; "
                    f"gt06 tcp+udp {server.device_port}, web {server.web_port}, "
                    f"osmand {server.ports['osmand']})")
        outcome = run_reactor(lambda reactor: drive(reactor, context, phases))
    finally:
        for attacker in list(context.attackers):
            attacker.kill()
        alive_at_end = server.alive()
        server.stop()
        if args.keep_log:
            Path(args.keep_log).write_text(server.log())
        context.dispose()
    if "error" in outcome:
        report.emit(f"the run stopped early: {outcome['error']}")
    if not alive_at_end or any(not r.alive for r in context.results):
        report.emit("server log (tail):\n" + server.log()[-4000:])
    report.summary(context.results, outcome.get("stats"), args, planned=len(phases))
    return 0


def run_reactor(body: Callable[[Any], Any]) -> dict[str, Any]:
    """Run the global reactor until the coroutine `body(reactor)` ends; {"result": ...}
    or {"error": text}.  Ctrl-C stops the reactor (then the result is missing)."""
    from twisted.internet import defer, reactor

    outcome: dict[str, Any] = {}

    def started() -> None:
        d = defer.ensureDeferred(body(reactor))
        d.addCallbacks(lambda result: outcome.update(stats=result),
                       lambda failure: outcome.update(error=failure.getTraceback()))
        d.addBoth(lambda _: reactor.stop())

    _begin_logging()
    reactor.callWhenRunning(started)
    reactor.run()
    if not outcome:
        outcome["error"] = "interrupted"
    return outcome


def _begin_logging() -> None:
    """Warnings of the simulator and the probe to stderr (the server logs to its file)."""
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    # Twisted's own readBody warns about its pooled transports; not ours to fix.
    warnings.filterwarnings("ignore", message="Using readBody with a transport",
                            category=DeprecationWarning)
    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(textFileLogObserver(sys.stderr), [predicate])],
        redirectStandardIO=False)


@dataclasses.dataclass
class RunContext:
    args: argparse.Namespace
    server: HostileServer
    url: str
    workdir: Path
    fixture: Fixture
    report: Report
    ingest: Any
    results: list[PhaseResult] = dataclasses.field(default_factory=list)
    attackers: list[Attacker] = dataclasses.field(default_factory=list)
    _engine: Any = None

    @property
    def engine(self) -> Any:
        if self._engine is None:
            import sqlalchemy as sa
            self._engine = sa.create_engine(self.url)
        return self._engine

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


async def drive(reactor: Any, context: RunContext, phases: list[str]) -> Any:
    """Honest load, warm-up, the phases; returns the simulator's final `Stats`."""
    args = context.args
    ledger = PhaseLedger()
    options = SimulationOptions(
        port=context.server.device_port, devices=args.devices, interval_s=args.interval,
        duration_s=None, drain_timeout_s=args.drain_timeout, seed=args.seed)
    simulation = LedgerSimulation(reactor, options, ledger)
    finished = simulation.run()
    probe = ApiProbe(reactor, context.server.web_port, *HONEST_USER, rate_per_s=args.api_rate,
                     use_cookie=args.api_auth == "cookie")
    try:
        await probe.start()
        await warm_up(reactor, context, simulation)
        for name in phases:
            result = await run_phase(reactor, context, name, simulation=simulation, ledger=ledger,
                                     probe=probe)
            context.results.append(result)
            context.report.phase(result)
            if not result.alive:
                context.report.emit("the server is dead: remaining phases skipped")
                break
    finally:
        await probe.stop()
        simulation.stop()
    return await finished


async def warm_up(reactor: Any, context: RunContext, simulation: LedgerSimulation) -> None:
    deadline = time.monotonic() + LOGIN_WAIT_S
    while simulation.logins < simulation.options.devices and time.monotonic() < deadline:
        await sleep(reactor, 0.2)
    context.report.emit(f"warm-up: {simulation.logins}/{simulation.options.devices} honest devices "
                        f"logged in; {context.args.warmup:g} s of honest load")
    await sleep(reactor, context.args.warmup)


async def run_phase(reactor: Any, context: RunContext, name: str, *, simulation: LedgerSimulation,
                    ledger: PhaseLedger, probe: ApiProbe) -> PhaseResult:
    args, server = context.args, context.server
    pid = server.process.pid
    connections_before, resent_before = simulation.connections, simulation.resent
    cpu_before_s = context.ingest.cpu_seconds(pid)
    ledger.phase = probe.phase = name
    stop_epoch = time.time() + args.phase_seconds
    attacker = None
    if name != "baseline":
        attacker = Attacker.start(context, name, stop_epoch)
    peak_rss_kb = 0
    while (left := stop_epoch - time.time()) > 0 and server.alive():
        await sleep(reactor, min(1.0, left))
        peak_rss_kb = max(peak_rss_kb, _rss_kb(context.ingest, pid))
    ledger.phase = probe.phase = None
    cpu_percent = 100.0 * (context.ingest.cpu_seconds(pid) - cpu_before_s) / args.phase_seconds
    attack_summary = "none (honest load only)"
    if attacker is not None:
        attack_summary = await attacker.finish(reactor)
    deadline = time.monotonic() + args.settle
    while ledger.outstanding(name) and time.monotonic() < deadline and server.alive():
        await sleep(reactor, 0.2)
    from twisted.internet.threads import deferToThread
    rows = await deferToThread(count_rows, context.engine)
    if name == "hostile-requests":   # what its PUTs stored must not spoil the next phase
        await deferToThread(reset_victim, context.engine, context.fixture.victim_id)
        attack_summary += " | afterwards the victim device's name and attributes were reset"
    rss_kb = _rss_kb(context.ingest, pid)
    latencies = ledger.latencies_ms[name]
    return PhaseResult(
        name=name, sent=ledger.sent[name], acked=ledger.acked[name],
        ack_p50_ms=percentile(latencies, 50), ack_p99_ms=percentile(latencies, 99),
        reconnects=simulation.connections - connections_before,
        resent=simulation.resent - resent_before,
        api_count=len(probe.latencies_ms[name]),
        api_p50_ms=percentile(probe.latencies_ms[name], 50),
        api_p99_ms=percentile(probe.latencies_ms[name], 99),
        api_outcomes=dict(probe.outcomes[name]),
        rss_mb=rss_kb / 1024, peak_rss_mb=max(peak_rss_kb, rss_kb) / 1024,
        cpu_percent=cpu_percent, fds=_open_fds(pid), quarantine=rows.get("quarantine"),
        unknown_devices=rows.get("unknown_devices"), alive=server.alive(),
        attack=attack_summary)


def count_rows(engine: Any) -> dict[str, int | None]:
    """Rows in quarantine and unknown_devices; None for a table that is not there."""
    import sqlalchemy as sa

    counts: dict[str, int | None] = {}
    for table in ("quarantine", "unknown_devices"):
        try:
            with engine.connect() as connection:
                counts[table] = connection.execute(
                    sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
        except sa.exc.SQLAlchemyError:
            counts[table] = None
    return counts


def reset_victim(engine: Any, victim_id: int) -> None:
    """Put the victim device's name, settings and status attributes back (directly
    in the database, as the hostile requests may have stored anything there)."""
    import sqlalchemy as sa

    from tracker.storage.schema import devices

    with engine.begin() as connection:
        connection.execute(sa.update(devices).where(devices.c.id == victim_id).values(
            name="victim of hostile requests", settings={}, attributes={}))


def sleep(reactor: Any, seconds: float) -> Any:
    from twisted.internet import task

    return task.deferLater(reactor, max(0.0, seconds), lambda: None)


def _rss_kb(ingest: Any, pid: int) -> int:
    value = ingest.proc_status(pid).get("VmRSS", "0 kB")
    return int(value.split()[0])


def _open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def percentile(values: Iterable[float], percent: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(1, math.ceil(percent / 100.0 * len(ordered))) - 1]


# ==================================================================================
# Honest side: devices with per-phase accounting, and the API probe
# ==================================================================================

class PhaseLedger:
    """Which phase each honest report was produced in, and whether it was acked.

    A report belongs to the phase current when the simulator produced it (None:
    between phases, not counted); its ack counts for that phase whenever it comes.
    Reports are keyed by (unique id, fix time in whole seconds), unique per device.
    """

    def __init__(self) -> None:
        self.phase: str | None = None
        self._pending: dict[tuple[str, int], str] = {}
        self.sent: collections.Counter[str] = collections.Counter()
        self.acked: collections.Counter[str] = collections.Counter()
        self.latencies_ms: dict[str, list[float]] = collections.defaultdict(list)

    def produced(self, unique_id: str, fix_time_s: int) -> None:
        if self.phase is not None:
            self._pending[(unique_id, fix_time_s)] = self.phase
            self.sent[self.phase] += 1

    def acknowledged(self, unique_id: str, fix_time_s: int, latency_s: float) -> None:
        phase = self._pending.pop((unique_id, fix_time_s), None)
        if phase is not None:
            self.acked[phase] += 1
            self.latencies_ms[phase].append(latency_s * 1000.0)

    def outstanding(self, phase: str) -> int:
        return self.sent[phase] - self.acked[phase]


class _TaggedDeviceSide:
    """A protocol's device side that tells the ledger about every report produced
    (the simulator builds each report's bytes once, when it produces it)."""

    def __init__(self, inner: Any, ledger: PhaseLedger) -> None:
        self._inner = inner
        self._ledger = ledger

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def report(self, unique_id: str, serial: int, report: DeviceReport) -> Any:
        self._ledger.produced(unique_id, int(report.fix_time.timestamp()))
        return self._inner.report(unique_id, serial, report)


class LedgerSimulation(Simulation):
    """The device simulator, reporting every ack to a `PhaseLedger` too."""

    def __init__(self, reactor: Any, options: SimulationOptions, ledger: PhaseLedger) -> None:
        side = _TaggedDeviceSide(get_device_side(options.protocol), ledger)
        super().__init__(reactor, options, device=side)
        self.ledger = ledger

    def message_acked(self, imei: str, message: Any, now: float) -> None:
        super().message_acked(imei, message, now)
        self.ledger.acknowledged(imei, message.fix_time_s, now - message.sent_at)


class ApiProbe:
    """``GET /api/devices`` as an honest user, `rate_per_s` times a second, over a
    persistent connection pool; at most API_MAX_IN_FLIGHT at once (a tick finding
    that many is counted as "skipped").  Each probe's latency (to the whole body, or
    to its failure or API_TIMEOUT_S) and outcome (the status, "timeout", or the
    exception's name) are recorded under the phase current when it started."""

    def __init__(self, reactor: Any, port: int, email: str, password: str, *,
                 rate_per_s: float, use_cookie: bool) -> None:
        from twisted.web.client import Agent, HTTPConnectionPool

        self._reactor = reactor
        self._base = f"http://{HOST}:{port}"
        self._email, self._password = email, password
        self._rate_per_s = rate_per_s
        self._use_cookie = use_cookie
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = API_MAX_IN_FLIGHT
        self._pool.retryAutomatically = False
        self._agent = Agent(reactor, pool=self._pool, connectTimeout=CONNECT_TIMEOUT_S)
        self._headers: dict[bytes, list[bytes]] = {}
        self._loop: Any = None
        self._in_flight = 0
        self.phase: str | None = None
        self.latencies_ms: dict[str, list[float]] = collections.defaultdict(list)
        self.outcomes: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter)

    async def start(self) -> None:
        from twisted.internet import task

        if self._use_cookie:
            self._headers[b"Cookie"] = [await self._login()]
        else:
            token = base64.b64encode(f"{self._email}:{self._password}".encode()).decode()
            self._headers[b"Authorization"] = [f"Basic {token}".encode()]
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = self._reactor
        self._loop.start(1.0 / self._rate_per_s, now=False)

    async def _login(self) -> bytes:
        """A session cookie for the honest user (POST /api/session)."""
        from twisted.web.client import FileBodyProducer, readBody
        from twisted.web.http_headers import Headers

        form = urllib.parse.urlencode({"email": self._email, "password": self._password})
        response = await self._agent.request(
            b"POST", f"{self._base}/api/session".encode(),
            Headers({b"Content-Type": [b"application/x-www-form-urlencoded"]}),
            FileBodyProducer(io.BytesIO(form.encode())))
        await readBody(response)
        for value in response.headers.getRawHeaders(b"set-cookie", []):
            if value.startswith(b"JSESSIONID="):
                return value.split(b";", 1)[0]
        raise RuntimeError(f"the honest user's login got {response.code} and no session cookie")

    def _tick(self) -> None:
        from twisted.internet import defer

        if self._in_flight >= API_MAX_IN_FLIGHT:
            if self.phase is not None:
                self.outcomes[self.phase][f"skipped ({API_MAX_IN_FLIGHT} in flight)"] += 1
            return
        defer.ensureDeferred(self._probe(self.phase))

    async def _probe(self, phase: str | None) -> None:
        from twisted.internet import defer
        from twisted.internet import error as net_error
        from twisted.web.client import readBody
        from twisted.web.http_headers import Headers

        self._in_flight += 1
        began = time.monotonic()
        try:
            request = self._agent.request(b"GET", f"{self._base}/api/devices".encode(),
                                          Headers(self._headers))
            request.addTimeout(API_TIMEOUT_S, self._reactor)
            response = await request
            body = readBody(response)
            body.addTimeout(max(0.1, API_TIMEOUT_S - (time.monotonic() - began)), self._reactor)
            await body
            outcome = str(response.code)
        except (defer.CancelledError, defer.TimeoutError, net_error.TimeoutError):
            outcome = "timeout"
        except Exception as problem:      # recorded, by kind: that is the measurement
            timed_out = time.monotonic() - began >= API_TIMEOUT_S - 0.05
            outcome = "timeout" if timed_out else type(problem).__name__
        finally:
            self._in_flight -= 1
        if phase is not None:
            self.latencies_ms[phase].append((time.monotonic() - began) * 1000.0)
            self.outcomes[phase][outcome] += 1

    async def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        deadline = time.monotonic() + API_TIMEOUT_S + 1
        while self._in_flight and time.monotonic() < deadline:
            await sleep(self._reactor, 0.1)
        await self._pool.closeCachedConnections()


# ==================================================================================
# The attacker process, seen from the benchmark
# ==================================================================================

class Attacker:
    """This script with ``--attack SPEC`` in a child process, for one phase."""

    def __init__(self, context: RunContext, name: str, process: subprocess.Popen, *,
                 result_path: Path, log_path: Path, stop_epoch: float) -> None:
        self.context, self.name, self.process = context, name, process
        self.result_path, self.log_path, self.stop_epoch = result_path, log_path, stop_epoch

    @classmethod
    def start(cls, context: RunContext, name: str, stop_epoch: float) -> Attacker:
        args, server, fixture = context.args, context.server, context.fixture
        result_path = context.workdir / f"attack-{name}.result.json"
        spec = {
            "phase": name, "stop_epoch": stop_epoch, "seed": args.seed,
            "result_path": str(result_path),
            "gt06_port": server.device_port, "web_port": server.web_port,
            "osmand_port": server.ports["osmand"],
            "tcp_ports": server.ports_by_transport("tcp"),
            "udp_ports": server.ports_by_transport("udp"),
            "flood_rate": args.flood_rate, "drip_connections": args.drip_connections,
            "drip_web": args.drip_web, "drip_interval_s": args.drip_interval,
            "spray_rate": args.spray_rate, "spray_workers": args.spray_workers,
            "spray_ids": fixture.spray_ids, "hostile_workers": args.hostile_workers,
            "victim_id": fixture.victim_id, "victim_unique_id": VICTIM_UNIQUE_ID,
            "admin": list(ADMIN), "brute_workers": args.brute_workers,
            "brute_max_rate": args.brute_max_rate,
        }
        spec_path = context.workdir / f"attack-{name}.json"
        spec_path.write_text(json.dumps(spec))
        log_path = context.workdir / f"attack-{name}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--attack", str(spec_path)],
                cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=ServerProcess.env())
        attacker = cls(context, name, process, result_path=result_path, log_path=log_path,
                       stop_epoch=stop_epoch)
        context.attackers.append(attacker)
        return attacker

    async def finish(self, reactor: Any) -> str:
        """Wait for the attacker to end (killing it after a grace period); its summary."""
        deadline = time.monotonic() + max(0.0, self.stop_epoch - time.time()) + ATTACK_EXIT_GRACE_S
        while self.process.poll() is None and time.monotonic() < deadline:
            await sleep(reactor, 0.1)
        killed = self.process.poll() is None
        self.kill()
        try:
            result = json.loads(self.result_path.read_text())
            summary = result["summary"]
        except (OSError, ValueError, KeyError):
            log = self.log_path.read_text(errors="replace")[-1500:] if self.log_path.exists() else ""
            summary = f"attacker failed (exit {self.process.returncode}): {log.strip()}"
        return summary + (" [attacker killed after the grace period]" if killed else "")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self in self.context.attackers:
            self.context.attackers.remove(self)


# ==================================================================================
# The attacker process itself (asyncio, no Twisted)
# ==================================================================================

def attack_main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    attack = ATTACKS[spec["phase"]]
    try:
        result = asyncio.run(attack(spec))
    except KeyboardInterrupt:
        return 130
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["summary"] += f" [attacker CPU {usage.ru_utime + usage.ru_stime:.1f} s]"
    Path(spec["result_path"]).write_text(json.dumps(result))
    return 0


def _stop_at(spec: dict[str, Any]) -> float:
    """The phase's end (an epoch time in the spec) on this process's monotonic clock."""
    return time.monotonic() + (spec["stop_epoch"] - time.time())


def _error_name(error: BaseException) -> str:
    if isinstance(error, OSError) and error.errno in errno.errorcode:
        return errno.errorcode[error.errno]
    return type(error).__name__


def _counts(counter: collections.Counter[str]) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(counter.items())) or "nothing"


# -- phase 2: unknown-identifier UDP flood ---------------------------------------------

async def attack_udp_flood(spec: dict[str, Any]) -> dict[str, Any]:
    """GT06 logins with a fresh random unregistered IMEI each, at `flood_rate`/s."""
    rng = random.Random(spec["seed"])
    gt06 = get_device_side("gt06")
    target = (HOST, spec["gt06_port"])
    rate = spec["flood_rate"]
    sockets = []
    for _ in range(1 + FLOOD_EXTRA_SOCKETS):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind((HOST, 0))
        sockets.append(sock)
    counters: collections.Counter[str] = collections.Counter()
    started, stop_at = time.monotonic(), _stop_at(spec)
    attempted = 0
    try:
        while (now := time.monotonic()) < stop_at:
            due = int((now - started) * rate)
            while attempted < due:
                sock = (sockets[0] if attempted % 2 == 0
                        else sockets[1 + (attempted // 2) % FLOOD_EXTRA_SOCKETS])
                imei = str(rng.randint(*FLOOD_IMEIS))
                try:
                    sock.sendto(gt06.login(imei, attempted % 0xFFFF + 1), target)
                    counters["sent"] += 1
                except OSError as error:
                    counters["send " + _error_name(error)] += 1
                attempted += 1
            _drain_udp(sockets, counters)
            await asyncio.sleep(FLOOD_TICK_S)
        await asyncio.sleep(0.2)
        _drain_udp(sockets, counters)
    finally:
        for sock in sockets:
            sock.close()
    elapsed_s = max(time.monotonic() - started, 1e-9)
    sent = counters.pop("sent", 0)
    return {"summary": f"{sent} GT06 login datagrams with random unknown IMEIs "
                       f"({sent / elapsed_s:.0f}/s) from {len(sockets)} source ports; "
                       f"{_counts(counters)}",
            "sent": sent, "counters": dict(counters)}


def _drain_udp(sockets: list[socket.socket], counters: collections.Counter[str]) -> None:
    for sock in sockets:
        for _ in range(10_000):
            try:
                sock.recv(65_536)
            except BlockingIOError:
                break
            except OSError as error:
                counters["recv " + _error_name(error)] += 1
                break
            counters["replies"] += 1


# -- phase 3: slow drip -----------------------------------------------------------------

HTTP_DRIP = b"GET /api/devices HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: " + b"a" * 4000


class _DripState:
    def __init__(self) -> None:
        self.counters: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter)
        self.open: collections.Counter[str] = collections.Counter()
        self.peak: collections.Counter[str] = collections.Counter()
        self.lifetimes_s: dict[str, list[float]] = collections.defaultdict(list)

    def opened(self, kind: str) -> None:
        self.counters[kind]["opened"] += 1
        self.open[kind] += 1
        self.peak[kind] = max(self.peak[kind], self.open[kind])

    def ended(self, kind: str, how: str, lifetime_s: float) -> None:
        self.open[kind] -= 1
        self.counters[kind][how] += 1
        if how != "closed by us at the end":
            self.lifetimes_s[kind].append(lifetime_s)

    def summary(self, wanted: dict[str, int]) -> str:
        parts = []
        for kind, count in wanted.items():
            counters = self.counters[kind]
            lifetimes = self.lifetimes_s[kind]
            lifetime = (f", median life of those {percentile(lifetimes, 50):.1f} s"
                        if lifetimes else "")
            parts.append(f"{kind}: {count} wanted, peak open {self.peak[kind]}; "
                         f"{_counts(counters)}{lifetime}")
        return "; ".join(parts)


async def attack_slow_drip(spec: dict[str, Any]) -> dict[str, Any]:
    """Connections that send one byte every `drip_interval_s`, reopened when closed."""
    rng = random.Random(spec["seed"])
    stop_at = _stop_at(spec)
    device_targets = [(port, _first_frame(name, str(rng.randint(*FLOOD_IMEIS))))
                      for name, port in sorted(spec["tcp_ports"].items())]
    device_targets.append((spec["osmand_port"], HTTP_DRIP))
    targets = [("device ports", *device_targets[i % len(device_targets)])
               for i in range(spec["drip_connections"])]
    targets += [("web port", spec["web_port"], HTTP_DRIP)] * spec["drip_web"]
    state = _DripState()
    ramp_s = min(DRIP_RAMP_S, max(0.0, stop_at - time.monotonic()) / 4)
    tasks = [asyncio.create_task(_drip(state, kind, port, payload, delay_s=i * ramp_s / len(targets),
                                       interval_s=spec["drip_interval_s"], stop_at=stop_at))
             for i, (kind, port, payload) in enumerate(targets)]
    await asyncio.gather(*tasks)
    summary = state.summary({"device ports": spec["drip_connections"],
                             "web port": spec["drip_web"]})
    return {"summary": f"one byte every {spec['drip_interval_s']:g} s; {summary}",
            "counters": {kind: dict(c) for kind, c in state.counters.items()}}


def _first_frame(protocol: str, unique_id: str) -> bytes:
    """What a device of `protocol` sends first: its login, else a report."""
    side = get_device_side(protocol)
    login = side.login(unique_id, 1)
    return login or side.report(unique_id, 1, _sample_report())


def _sample_report() -> DeviceReport:
    return DeviceReport(fix_time=dt.datetime.now(dt.UTC).replace(microsecond=0),
                        latitude=52.52, longitude=13.405, speed_kn=10.0, course_deg=90.0,
                        valid=True, alarm=None)


async def _drip(state: _DripState, kind: str, port: int, payload: bytes, *, delay_s: float,
                interval_s: float, stop_at: float) -> None:
    await asyncio.sleep(delay_s)
    while time.monotonic() < stop_at:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port),
                                                    CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as error:
            state.counters[kind]["connect " + _error_name(error)] += 1
            await asyncio.sleep(min(RECONNECT_PAUSE_S, max(0.0, stop_at - time.monotonic())))
            continue
        state.opened(kind)
        opened_at = time.monotonic()
        how = await _dribble(reader, writer, payload, interval_s, stop_at)
        writer.close()
        state.ended(kind, how, time.monotonic() - opened_at)
        await asyncio.sleep(min(RECONNECT_PAUSE_S, max(0.0, stop_at - time.monotonic())))


async def _dribble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes,
                   interval_s: float, stop_at: float) -> str:
    """Send `payload` a byte at a time until the end or the server hangs up; how it ended."""
    position = 0
    replied = False
    while (remaining := stop_at - time.monotonic()) > 0:
        if writer.is_closing():
            return "closed by server"
        writer.write(payload[position:position + 1])
        position = (position + 1) % len(payload)
        try:
            data = await asyncio.wait_for(reader.read(4096), min(interval_s, remaining))
        except TimeoutError:
            continue
        except OSError as error:
            return "ended by server: " + _error_name(error)
        if not data:
            return "closed by server" + (" after a reply" if replied else "")
        replied = True
    return "closed by us at the end"


# -- phase 4: malformed-frame spray -------------------------------------------------------

def mutate(frame: bytes, rng: random.Random) -> bytes:
    """A damaged copy of `frame`: flipped bits, truncation, inserted or appended junk,
    a maximal length field, an oversize body, a broken tail, or random bytes."""
    data = bytearray(frame or b"\x00")
    how = rng.randrange(8)
    if how == 0:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif how == 1:
        del data[rng.randrange(1, len(data) + 1):]
    elif how == 2:
        at = rng.randrange(len(data) + 1)
        data[at:at] = rng.randbytes(rng.randint(1, 64))
    elif how == 3:
        data[2:4] = b"\xff\xff"
    elif how == 4:
        data += rng.randbytes(rng.randint(1, 4096))
    elif how == 5:
        data = data[:2] + bytes([data[0]]) * rng.randint(100, 70_000)
    elif how == 6:
        data[-4:] = rng.randbytes(4)
    else:
        return rng.randbytes(rng.randint(1, 512))
    return bytes(data) or b"\x00"


def _corpus(spec: dict[str, Any]) -> dict[str, list[bytes]]:
    """Valid frames of every byte protocol (its spray device's login and report)."""
    corpus = {}
    for name, unique_id in spec["spray_ids"].items():
        side = get_device_side(name)
        if side.transport == "http":
            continue
        frames = [side.login(unique_id, 1), side.report(unique_id, 2, _sample_report()),
                  side.heartbeat(unique_id, 3)]
        corpus[name] = [frame for frame in frames if frame]
    return corpus


def _http(method: str, path: str, port: int, headers: Iterable[str] = (), *, body: bytes = b"",
          content_type: str | None = None) -> bytes:
    """A raw HTTP/1.1 request with ``Connection: close`` (path sent as written)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close", *headers]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def http_garbage(port: int, rng: random.Random) -> bytes:
    """One malformed HTTP request for `port` (a web or OsmAnd port)."""
    head = f"Host: {HOST}:{port}\r\n".encode()
    choices: list[Callable[[], bytes]] = [
        lambda: rng.randbytes(rng.randint(1, 2000)),
        lambda: b"GET /" + rng.randbytes(40) + b" HTTP/1.1\r\n" + head + b"\r\n",
        lambda: b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n" + head + b"\r\n",
        lambda: b"GET / HTTP/1.1\r\n" + head + b"".join(b"X-%d: b\r\n" % i for i in range(2000))
        + b"\r\n",
        lambda: b"GET / HTTP/1.1\r\n" + head + b"X-Big: " + b"b" * 70_000 + b"\r\n\r\n",
        lambda: b"POST /api/session HTTP/1.1\r\n" + head + b"Content-Length: -1\r\n\r\nxx",
        lambda: b"POST / HTTP/1.1\r\n" + head + b"Content-Length: abc\r\n\r\n",
        lambda: b"POST / HTTP/1.1\r\n" + head + b"Content-Length: 99999999999999999999\r\n\r\n",
        lambda: b"POST / HTTP/1.1\r\n" + head + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n",
        lambda: b"POST / HTTP/1.1\r\n" + head
        + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        lambda: b"GET / HTTP/9.9\r\n" + head + b"\r\n",
        lambda: b"\xff\xfe / HTTP/1.1\r\n" + head + b"\r\n",
        lambda: b"GET /?a=\x00 HTTP/1.1\r\nHost: a\x00b\r\nX-\xc3\x28: \xed\xa0\x80\r\n\r\n",
        lambda: (b"GET /api/server HTTP/1.1\r\n" + head + b"\r\n") * 50,
        lambda: b"\r\n" * 1000,
        lambda: b"POST /api/session HTTP/1.1\r\n" + head + b"Content-Length: 70000\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\n" + b"e" * 70_000,
        lambda: b"GET /api/devices HTTP/1.1\r\n" + head + b"Authorization: Basic !!!*&\r\n\r\n",
        lambda: mutate(_http("GET", "/api/devices?id=1", port), rng),
        lambda: mutate(_http("GET", f"/?id=1&lat=1&lon=2&timestamp={int(time.time())}", port), rng),
    ]
    return rng.choice(choices)()


async def exchange(port: int, raw: bytes, timeout_s: float) -> tuple[bytes, str | None]:
    """Send `raw` on a new connection and read until the server closes (or `timeout_s`,
    or HTTP_READ_LIMIT bytes); (what came back, None or how it failed)."""
    writer = None
    data = b""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(raw)
            await writer.drain()
            while len(data) < HTTP_READ_LIMIT:
                chunk = await reader.read(65_536)
                if not chunk:
                    return data, None
                data += chunk
            return data, None
    except TimeoutError:
        return data, "no close within the time limit"
    except OSError as error:
        return data, _error_name(error)
    finally:
        if writer is not None:
            writer.close()


def http_status(data: bytes) -> str | None:
    match = re.match(rb"HTTP/\d\.\d (\d{3})", data)
    return match.group(1).decode() if match else None


def _outcome(data: bytes, failure: str | None) -> str:
    """"200", "400" ... or what happened instead of a response."""
    status = http_status(data)
    if status is not None:
        return status
    if failure is not None:
        return failure if not data else f"{len(data)} bytes, then {failure}"
    return "closed without a response" if not data else f"{len(data)} bytes of no HTTP"


async def attack_spray(spec: dict[str, Any]) -> dict[str, Any]:
    """Malformed frames to every device port and garbage HTTP to web and OsmAnd."""
    stop_at = _stop_at(spec)
    corpus = _corpus(spec)
    jobs = ([("tcp", name, port) for name, port in sorted(spec["tcp_ports"].items())
             if name in corpus]
            + [("udp", name, port) for name, port in sorted(spec["udp_ports"].items())
               if name in corpus]
            + [("http", "web", spec["web_port"]), ("http", "osmand", spec["osmand_port"])])
    workers = spec["spray_workers"]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setblocking(False)
    plan = _SprayPlan(jobs=jobs, corpus=corpus, udp=udp, pace_s=workers / spec["spray_rate"],
                      stop_at=stop_at)
    started = time.monotonic()
    try:
        await asyncio.gather(*(_spray_worker(random.Random(spec["seed"] * 1000 + i), plan)
                               for i in range(workers)))
    finally:
        udp.close()
    elapsed_s = max(time.monotonic() - started, 1e-9)
    counters = plan.counters
    total = sum(c["operations"] for c in counters.values())
    parts = [f"{kind}: {_counts(c)}" for kind, c in sorted(counters.items())]
    return {"summary": f"{total} operations ({total / elapsed_s:.0f}/s) over {len(jobs)} "
                       f"ports; " + "; ".join(parts),
            "counters": {kind: dict(c) for kind, c in counters.items()}}


@dataclasses.dataclass
class _SprayPlan:
    """What the spray workers share: targets (transport, protocol or "web", port),
    valid frames by protocol, one UDP socket, the pause per worker, the end, counters."""

    jobs: list[tuple[str, str, int]]
    corpus: dict[str, list[bytes]]
    udp: socket.socket
    pace_s: float
    stop_at: float
    counters: dict[str, collections.Counter[str]] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(collections.Counter))


async def _spray_worker(rng: random.Random, plan: _SprayPlan) -> None:
    while time.monotonic() < plan.stop_at:
        began = time.monotonic()
        kind, name, port = rng.choice(plan.jobs)
        counter = plan.counters[f"{kind} device ports" if kind != "http" else f"http {name}"]
        counter["operations"] += 1
        if kind == "udp":
            _spray_udp(rng, plan.corpus[name], port, plan.udp, counter)
        elif kind == "tcp":
            await _spray_tcp(rng, plan.corpus[name], port, counter)
        else:
            data, failure = await exchange(port, http_garbage(port, rng), SPRAY_OP_TIMEOUT_S)
            counter[_outcome(data, failure)] += 1
        pause_s = plan.pace_s - (time.monotonic() - began)
        await asyncio.sleep(max(0.0, min(pause_s, plan.stop_at - time.monotonic())))


def _spray_udp(rng: random.Random, frames: list[bytes], port: int, udp: socket.socket,
               counter: collections.Counter[str]) -> None:
    for _ in range(rng.randint(1, 3)):
        datagram = mutate(rng.choice(frames), rng)[:UDP_MAX_DATAGRAM]
        try:
            udp.sendto(datagram, (HOST, port))
            counter["datagrams"] += 1
        except OSError as error:
            counter["send " + _error_name(error)] += 1
    counted: collections.Counter[str] = collections.Counter()
    _drain_udp([udp], counted)
    counter["replies"] += counted["replies"]


async def _spray_tcp(rng: random.Random, frames: list[bytes], port: int,
                     counter: collections.Counter[str]) -> None:
    """One connection: maybe a valid first frame of the spray device, then damaged ones."""
    payload = b""
    if rng.random() < 0.5:
        payload += frames[0]
        counter["after a valid first frame"] += 1
    payload += b"".join(mutate(rng.choice(frames), rng) for _ in range(rng.randint(1, 3)))
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port),
                                                CONNECT_TIMEOUT_S)
        writer.write(payload)
        await asyncio.wait_for(writer.drain(), SPRAY_OP_TIMEOUT_S)
        try:
            data = await asyncio.wait_for(reader.read(65_536), SPRAY_READ_S)
        except TimeoutError:
            counter["no answer, we closed"] += 1
            return
        counter["answered" if data else "closed by server"] += 1
    except (OSError, TimeoutError) as error:
        counter[_error_name(error)] += 1
    finally:
        if writer is not None:
            writer.close()


# -- phase 5: hostile requests ----------------------------------------------------------------

def hostile_requests(spec: dict[str, Any], cookie: str | None) -> list[tuple[str, int, bytes]]:
    """(what, port, raw request): NUL and surrogates for OsmAnd, bad JSON for the API."""
    osmand, web = spec["osmand_port"], spec["web_port"]
    victim, victim_id = spec["victim_unique_id"], spec["victim_id"]
    now = int(time.time())
    auth = [f"Cookie: {cookie}"] if cookie else [
        "Authorization: Basic " + base64.b64encode(":".join(spec["admin"]).encode()).decode()]
    json_type = "application/json"

    def put_device(body: str) -> bytes:
        return _http("PUT", f"/api/devices/{victim_id}", web, auth, body=body.encode(),
                     content_type=json_type)

    def send_command(body: str) -> bytes:
        return _http("POST", "/api/commands/send", web, auth, body=body.encode(),
                     content_type=json_type)

    device = f'"id": {victim_id}, "uniqueId": "{victim}"'
    return [
        ("osmand note=a%00b", osmand, _http(
            "GET", f"/?id={victim}&lat=1&lon=2&timestamp={now}&note=a%00b", osmand)),
        ("osmand id=a%00b", osmand, _http("GET", f"/?id=a%00b&lat=1&lon=2&timestamp={now}", osmand)),
        ("osmand note=utf8 surrogate", osmand, _http(
            "GET", f"/?id={victim}&lat=1&lon=2&timestamp={now}&note=%ED%A0%80", osmand)),
        ("osmand lat=1e999 lon=nan", osmand, _http(
            "GET", f"/?id={victim}&lat=1e999&lon=nan&timestamp={now}", osmand)),
        ("osmand huge timestamp", osmand, _http(
            "GET", f"/?id={victim}&lat=1&lon=2&timestamp={'9' * 40}", osmand)),
        ("osmand POST form %00", osmand, _http(
            "POST", "/", osmand, body=f"id={victim}&lat=1&lon=2&timestamp={now}&x=%00".encode(),
            content_type="application/x-www-form-urlencoded")),
        ("PUT device name lone surrogate", web, put_device(f'{{{device}, "name": "\\ud800"}}')),
        ("PUT device name NUL", web, put_device(f'{{{device}, "name": "a\\u0000b"}}')),
        ("PUT device attribute key surrogate", web, put_device(
            f'{{{device}, "name": "victim", "attributes": {{"\\udfff": 1}}}}')),
        ("PUT device huge int id", web, put_device('{"id": 1' + "0" * 5000 + "}")),
        ("PUT device nested arrays", web, put_device("[" * 30_000 + "]" * 30_000)),
        ("PUT device nested objects", web, put_device('{"a":' * 10_000 + "1" + "}" * 10_000)),
        ("PUT device invalid UTF-8", web, _http(
            "PUT", f"/api/devices/{victim_id}", web, auth, body=b'{"name": "\xed\xa0\x80\xff"}',
            content_type=json_type)),
        ("POST command deviceId 1e400", web, send_command(
            '{"deviceId": 1e400, "type": "custom", "attributes": {"data": "\\udfff"}}')),
        ("POST command huge deviceId", web, send_command(
            '{"deviceId": 1' + "0" * 5000 + ', "type": "custom"}')),
        ("GET devices uniqueId=a%00b", web, _http("GET", "/api/devices?uniqueId=a%00b", web, auth)),
        ("GET devices id=huge", web, _http("GET", "/api/devices?id=" + "9" * 40, web, auth)),
        ("GET positions from=%00", web, _http(
            "GET", f"/api/positions?deviceId={victim_id}&from=2024-01-01T00:00:00Z%00"
                   "&to=2024-01-02T00:00:00Z", web, auth)),
    ]


async def _admin_cookie(spec: dict[str, Any]) -> str | None:
    """A session cookie for the administrator, or None (then Basic is used)."""
    email, password = spec["admin"]
    form = urllib.parse.urlencode({"email": email, "password": password}).encode()
    data, _failure = await exchange(spec["web_port"], _http(
        "POST", "/api/session", spec["web_port"], body=form,
        content_type="application/x-www-form-urlencoded"),
        API_TIMEOUT_S)
    match = re.search(rb"(?im)^set-cookie:\s*(JSESSIONID=[^;\r\n]+)", data)
    return match.group(1).decode() if match else None


async def attack_hostile_requests(spec: dict[str, Any]) -> dict[str, Any]:
    stop_at = _stop_at(spec)
    cookie = await _admin_cookie(spec)
    outcomes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)

    built: dict[int, list[tuple[str, int, bytes]]] = {}

    def requests() -> list[tuple[str, int, bytes]]:
        """The request list, rebuilt once a second (it carries the current time)."""
        second = int(time.time())
        if second not in built:
            built.clear()
            built[second] = hostile_requests(spec, cookie)
        return built[second]

    async def worker(index: int) -> None:
        k = index
        while time.monotonic() < stop_at:
            current = requests()
            what, port, raw = current[k % len(current)]
            k += 1
            timeout_s = max(0.1, min(API_TIMEOUT_S, stop_at - time.monotonic() + 1))
            data, failure = await exchange(port, raw, timeout_s)
            outcomes[what][_outcome(data, failure)] += 1

    await asyncio.gather(*(worker(i) for i in range(spec["hostile_workers"])))
    total = sum(sum(c.values()) for c in outcomes.values())
    by_status: collections.Counter[str] = collections.Counter()
    for counter in outcomes.values():
        by_status.update(counter)
    server_errors = sorted(what for what, c in outcomes.items()
                           if any(key.startswith("5") or not key[:1].isdigit() for key in c))
    detail = "; ".join(f"{what}: {_counts(c)}" for what, c in outcomes.items())
    return {"summary": f"{total} requests as {'admin (session)' if cookie else 'admin (Basic)'}: "
                       f"{_counts(by_status)}; 5xx or no answer for: "
                       f"{', '.join(server_errors) or 'none'} | {detail}",
            "outcomes": {what: dict(c) for what, c in outcomes.items()}}


# -- phase 6: login brute force -------------------------------------------------------------

async def attack_brute_force(spec: dict[str, Any]) -> dict[str, Any]:
    """Wrong admin passwords, login form and Basic alternately, as fast as answered."""
    stop_at = _stop_at(spec)
    started = time.monotonic()
    email = spec["admin"][0]
    web = spec["web_port"]
    workers = spec["brute_workers"]
    pace_s = workers / spec["brute_max_rate"]
    outcomes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    first_429: list[tuple[float, int]] = []
    attempts = 0

    async def worker(index: int) -> None:
        nonlocal attempts
        n = index
        while time.monotonic() < stop_at:
            began = time.monotonic()
            password = f"wrong-password-{n}"
            if n % 2:
                kind = "form"
                form = urllib.parse.urlencode({"email": email, "password": password}).encode()
                raw = _http("POST", "/api/session", web, body=form,
                            content_type="application/x-www-form-urlencoded")
            else:
                kind = "basic"
                token = base64.b64encode(f"{email}:{password}".encode()).decode()
                raw = _http("GET", "/api/devices", web, [f"Authorization: Basic {token}"])
            n += workers
            attempts += 1
            data, failure = await exchange(web, raw, max(0.1, min(API_TIMEOUT_S,
                                                              stop_at - time.monotonic() + 1)))
            outcome = _outcome(data, failure)
            outcomes[kind][outcome] += 1
            if outcome == "429" and not first_429:
                first_429.append((time.monotonic() - started, attempts))
            await asyncio.sleep(max(0.0, min(pace_s - (time.monotonic() - began),
                                             stop_at - time.monotonic())))

    await asyncio.gather(*(worker(i) for i in range(workers)))
    elapsed_s = max(time.monotonic() - started, 1e-9)
    limited = (f"first 429 after {first_429[0][0]:.1f} s ({first_429[0][1]} attempts)"
               if first_429 else "never limited (no 429)")
    return {"summary": f"{attempts} wrong admin passwords ({attempts / elapsed_s:.0f}/s) from "
                       f"{HOST}: " + "; ".join(f"{kind} {_counts(c)}" for kind, c in
                                               sorted(outcomes.items())) + f"; {limited}",
            "outcomes": {kind: dict(c) for kind, c in outcomes.items()}}


ATTACKS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "udp-flood": attack_udp_flood,
    "slow-drip": attack_slow_drip,
    "malformed-spray": attack_spray,
    "hostile-requests": attack_hostile_requests,
    "login-brute-force": attack_brute_force,
}


# ==================================================================================
# Reporting
# ==================================================================================

@dataclasses.dataclass(frozen=True, slots=True)
class PhaseResult:
    """One phase's numbers (latencies in ms, memory in MB; None: not measurable)."""

    name: str
    sent: int
    acked: int
    ack_p50_ms: float
    ack_p99_ms: float
    reconnects: int
    resent: int
    api_count: int
    api_p50_ms: float
    api_p99_ms: float
    api_outcomes: dict[str, int]
    rss_mb: float
    peak_rss_mb: float
    cpu_percent: float      # server CPU during the phase, % of one core
    fds: int | None
    quarantine: int | None
    unknown_devices: int | None
    alive: bool
    attack: str

    @property
    def ack_percent(self) -> float:
        return 100.0 * self.acked / self.sent if self.sent else math.nan

    @property
    def api_errors(self) -> dict[str, int]:
        return {k: v for k, v in self.api_outcomes.items() if k != "200"}

    @property
    def ack_ok(self) -> bool:
        return self.sent > 0 and self.acked == self.sent

    @property
    def api_ok(self) -> bool:
        return self.api_count > 0 and self.api_p99_ms < API_P99_TARGET_MS

    @property
    def api_answered(self) -> bool:
        return self.api_count > 0 and not self.api_errors


def _n(value: int | None) -> str:
    return "n/a" if value is None else str(value)


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "0"


class Report:
    """Prints as it goes and keeps every line for the Markdown report."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.machine_lines: list[str] = []

    def emit(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def phase(self, r: PhaseResult) -> None:
        self.emit(f"{r.name:<17} honest {r.acked}/{r.sent} acked ({r.ack_percent:.2f}%), "
                  f"ack p50/p99 {r.ack_p50_ms:.0f}/{r.ack_p99_ms:.0f} ms, reconnects {r.reconnects}"
                  f" | API {r.api_count} p50/p99 {r.api_p50_ms:.0f}/{r.api_p99_ms:.0f} ms, errors "
                  f"{_errors(r.api_errors)} | RSS {r.rss_mb:.0f} MB (peak {r.peak_rss_mb:.0f}), "
                  f"CPU {r.cpu_percent:.0f}%, fds {_n(r.fds)} | quarantine {_n(r.quarantine)}, "
                  f"unknown_devices {_n(r.unknown_devices)} | server {'alive' if r.alive else 'DEAD'}")
        self.emit(f"    attack: {r.attack}")

    def summary(self, results: list[PhaseResult], stats: Any, args: argparse.Namespace, *,
                planned: int) -> None:
        self.emit()
        header = (f"{'phase':<17} {'acked':>11} {'ack %':>7} {'ack p99':>8} {'API p99':>8} "
                  f"{'API non-200':>11} {'RSS MB':>7} {'quarant.':>8} {'unknown':>8}  server")
        self.emit(header)
        self.emit("-" * len(header))
        for r in results:
            self.emit(f"{r.name:<17} {f'{r.acked}/{r.sent}':>11} {r.ack_percent:>7.2f} "
                      f"{r.ack_p99_ms:>8.0f} {r.api_p99_ms:>8.0f} {sum(r.api_errors.values()):>11} "
                      f"{r.rss_mb:>7.0f} {_n(r.quarantine):>8} {_n(r.unknown_devices):>8}  "
                      f"{'alive' if r.alive else 'DEAD'}")
        if stats is not None and hasattr(stats, "summary"):
            self.emit(f"honest devices over the whole run (after a {args.drain_timeout:g} s drain): "
                      f"{stats.summary()}")
        self.emit()
        self._checks(results, planned)

    def _checks(self, results: list[PhaseResult], planned: int) -> None:
        def verdict(ok: bool, failing: list[str]) -> str:
            return "PASS" if ok else f"FAIL ({'; '.join(failing) or 'no phase ran'})"

        ran = bool(results)
        ack_failing = [f"{r.name} {r.ack_percent:.2f}%" for r in results if not r.ack_ok]
        api_failing = [f"{r.name} {r.api_p99_ms:.0f} ms" for r in results if not r.api_ok]
        answered_failing = [f"{r.name}: {_errors(r.api_errors)}" for r in results
                            if not r.api_answered]
        dead = [r.name for r in results if not r.alive]
        checks = [
            ("honest ack rate 100% in every phase", ran and not ack_failing, ack_failing),
            (f"API p99 < {API_P99_TARGET_MS:.0f} ms in every phase", ran and not api_failing,
             api_failing),
            ("every API probe answered 200 (honest user never locked out)",
             ran and not answered_failing, answered_failing),
            ("server alive after every phase", ran and not dead, dead),
        ]
        for name, ok, failing in checks:
            self.emit(f"{name}: {verdict(ok, failing)}")
        brute = next((r for r in results if r.name == "login-brute-force"), None)
        if brute is not None and brute.api_outcomes.get("429"):
            self.emit(f"NOTE: the honest API user was locked out during the brute force: "
                      f"{brute.api_outcomes['429']} of {brute.api_count} probes got 429")
        overall = "PASS" if ran and not (ack_failing or api_failing or answered_failing
                                         or dead) else "FAIL"
        if overall == "PASS" and len(results) < planned:
            overall = f"INCOMPLETE ({len(results)} of {planned} phases ran)"
        self.emit(f"overall: {overall} (a benchmark: exit status 0 either way)")

    def machine(self, rows: list[tuple[str, str]]) -> None:
        self.emit()
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            line = f"{name:<{width}}  {value}"
            self.machine_lines.append(line)
            print(line, flush=True)     # in the Markdown report under its own heading

    def write_markdown(self, path: Path, argv: list[str]) -> None:
        command = " ".join(["python3 benchmarks/hostile.py", *argv[1:]]) if argv and \
            argv[0].endswith("hostile.py") else " ".join(["python3 benchmarks/hostile.py", *argv])
        text = ["# Hostile-load benchmark", "",
                f"`{command}`, run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.", "",
                "## Machine", "", "```", *self.machine_lines, "```", "",
                "## Output", "", "```", *self.lines, "```", ""]
        path.write_text("\n".join(text))
        print(f"report written to {path}")


def machine_rows(url: str, load_at_start: tuple[float, float, float]) -> list[tuple[str, str]]:
    """What the numbers depend on: CPUs, memory, CPU model, Python, database, load."""
    meminfo = _proc_fields("/proc/meminfo")
    cpuinfo = _proc_fields("/proc/cpuinfo")
    memory_kb = int(meminfo.get("MemTotal", "0 kB").split()[0])
    return [
        ("machine", f"{platform.node()}, Linux {platform.release()}"),
        ("CPUs", f"{os.cpu_count()} (usable here: {len(os.sched_getaffinity(0))})"),
        ("CPU model", cpuinfo.get("model name", "?")),
        ("memory", f"{memory_kb / 1024 / 1024:.1f} GiB"),
        ("python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("database", _database_version(url)),
        ("load average at start", " ".join(f"{x:.2f}" for x in load_at_start)
         + " (the machine may be shared)"),
        ("source", _git_revision()),
    ]


def _proc_fields(path: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        for line in Path(path).read_text().splitlines():
            key, colon, value = line.partition(":")
            if colon:
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def _database_version(url: str) -> str:
    import sqlalchemy as sa

    if url.startswith("sqlite"):
        import sqlite3
        return f"SQLite {sqlite3.sqlite_version} (file in a temporary directory)"
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            version = connection.execute(sa.text("SHOW server_version")).scalar_one()
            postgis = connection.execute(sa.text("SELECT postgis_lib_version()")).scalar_one()
        return f"PostgreSQL {version}, PostGIS {postgis} (throwaway cluster, fsync on)"
    except sa.exc.SQLAlchemyError as error:
        return f"PostgreSQL (version unknown: {error})"
    finally:
        engine.dispose()


def _git_revision() -> str:
    """HEAD's commit (read-only git commands) and whether the tree differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                              capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        clean = subprocess.run(["git", "diff-index", "--quiet", "HEAD", "--"], cwd=REPO,
                               capture_output=True, timeout=10, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return f"commit {head}" + ("" if clean else " plus uncommitted changes")


if __name__ == "__main__":
    sys.exit(main())
