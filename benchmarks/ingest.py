"""Ingest benchmark: N simulated GT06 devices against the real server on PostGIS.

Run from the repository root::

    python3 benchmarks/ingest.py --devices 2000 --interval 5 --duration 60

It starts a throwaway PostgreSQL + PostGIS cluster (`tests.pgcluster`), writes a
server configuration for it (free ports on 127.0.0.1, unknown devices registered on
first contact), starts `python3 -m tracker serve` as a child process, waits for the
GT06 port, runs the device simulator in this process, and then prints: devices,
duration, positions stored (counted in the database) and stored per second, ack
latency p50/p99, the server's resident memory (VmRSS at the end, VmHWM peak) and CPU
time.  It also checks store-then-ack from the outside: every position the simulator
saw acknowledged must be in the database, exactly once.

Not a pass/fail test, but the exit status is 1 when that check fails (or messages
stayed unacked), 2 when the benchmark could not run.  The server, the cluster and
the temporary directory are removed on the way out, on errors and Ctrl-C too.
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVER_START_TIMEOUT_S = 120.0
SERVER_STOP_TIMEOUT_S = 30.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between locations")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of sending")
    parser.add_argument("--drain-timeout", type=float, default=30.0,
                        help="seconds to wait for outstanding acks after sending")
    parser.add_argument("--alarm-every", type=int, default=0,
                        help="an alarm in place of every Kth location (default 0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-log", metavar="FILE",
                        help="copy the server's log here (it is printed on failure anyway)")
    args = parser.parse_args(argv)

    if str(REPO) not in sys.path:       # `tests` is not an installed package
        sys.path.insert(0, str(REPO))
    from tests.pgcluster import PgCluster, PgUnavailable

    raise_open_files_limit(2 * args.devices + 256)
    with tempfile.TemporaryDirectory(prefix="tracker-bench-") as workdir_name:
        workdir = Path(workdir_name)
        server_log = workdir / "server.log"
        try:
            with PgCluster() as cluster:
                print(f"PostGIS cluster up in {cluster.startup_s:.1f} s", flush=True)
                return benchmark(args, cluster.url, workdir, server_log)
        except PgUnavailable as error:
            print(f"cannot run: {error}", file=sys.stderr)
            return 2
        finally:
            if args.keep_log and server_log.exists():
                Path(args.keep_log).write_bytes(server_log.read_bytes())


def benchmark(args: argparse.Namespace, database_url: str, workdir: Path,
              server_log: Path) -> int:
    gt06_port, web_port = free_port(), free_port()
    config = workdir / "tracker.toml"
    config.write_text(server_config(database_url, gt06_port, web_port), encoding="utf-8")
    acked_log = workdir / "acked.log"

    with open(server_log, "wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "tracker", "--config", str(config), "serve"],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        started = time.monotonic()
        if not wait_for_port(gt06_port, server, SERVER_START_TIMEOUT_S):
            print(f"the server did not open port {gt06_port} "
                  f"(exit status {server.poll()}):\n{tail(server_log)}", file=sys.stderr)
            return 2
        print(f"server up in {time.monotonic() - started:.1f} s (pid {server.pid}, "
              f"gt06 port {gt06_port}, web port {web_port})", flush=True)
        cpu_before_s = cpu_seconds(server.pid)

        from tracker.simulator import SimulationOptions
        options = SimulationOptions(
            port=gt06_port, devices=args.devices, interval_s=args.interval,
            duration_s=args.duration, drain_timeout_s=args.drain_timeout,
            alarm_every=args.alarm_every, seed=args.seed, acked_log=str(acked_log))
        print(f"simulating {args.devices} devices, a location every {args.interval:g} s, "
              f"for {args.duration:g} s ...", flush=True)
        stats = simulate(options)

        memory = proc_status(server.pid)
        cpu_s = cpu_seconds(server.pid) - cpu_before_s
        if server.poll() is not None:
            print(f"the server exited during the run ({server.returncode}):\n{tail(server_log)}",
                  file=sys.stderr)
            return 2
        stored, duplicates, missing = check_database(database_url, acked_log)
    finally:
        stop(server)

    steady_rate = args.devices / args.interval
    rows = [
        ("devices", f"{args.devices}"),
        ("interval", f"{args.interval:g} s"),
        ("duration", f"{args.duration:g} s sending, {stats.elapsed_s:.1f} s with drain"),
        ("messages sent", f"{stats.sent} (acked {stats.acked}, unacked {stats.unacked}, "
                          f"resent {stats.resent}, dropped {stats.dropped})"),
        ("connections", f"{stats.connections} (logins {stats.logins})"),
        ("positions stored", f"{stored}"),
        ("stored per second", f"{stored / args.duration:.1f} (devices sent "
                              f"{stats.sent / args.duration:.1f}/s; steady state "
                              f"{steady_rate:.1f}/s)"),
        ("ack latency p50", f"{stats.ack_p50_ms:.1f} ms"),
        ("ack latency p99", f"{stats.ack_p99_ms:.1f} ms"),
        ("server RSS", f"{memory.get('VmRSS', '?')} (peak VmHWM {memory.get('VmHWM', '?')})"),
        ("server CPU", f"{cpu_s:.1f} s ({100 * cpu_s / max(stats.elapsed_s, 1e-9):.0f}% "
                       "of one core)"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")

    ok = True
    if stored < stats.acked:
        print(f"FAIL: {stored} positions stored < {stats.acked} acked")
        ok = False
    if missing:
        print(f"FAIL: {len(missing)} acked positions are not in the database, e.g. "
              f"{', '.join(' '.join(map(str, m)) for m in missing[:5])}")
        ok = False
    if duplicates:
        print(f"FAIL: {duplicates} (device, fix time) pairs are stored more than once")
        ok = False
    if stats.unacked:
        print(f"NOTE: {stats.unacked} messages were never acked (server overloaded?)")
        ok = False
    if ok:
        print("check: every acked position is stored exactly once")
    return 0 if ok else 1


def simulate(options):
    """Run the simulator on the global reactor (once per process) and return its Stats."""
    from twisted.internet import reactor

    from tracker.simulator import Simulation

    simulation = Simulation(reactor, options)
    outcome: dict = {}

    def start() -> None:
        d = simulation.run()
        d.addCallbacks(lambda stats: outcome.update(stats=stats),
                       lambda failure: outcome.update(failure=failure))
        d.addBoth(lambda _: reactor.stop())

    def on_signal(signum, frame) -> None:
        reactor.callFromThread(simulation.interrupt)

    previous = {number: signal.signal(number, on_signal)
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        reactor.callWhenRunning(start)
        reactor.run(installSignalHandlers=False)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if "stats" not in outcome:
        failure = outcome.get("failure")
        raise RuntimeError(f"the simulation failed: {failure}")
    return outcome["stats"]


def check_database(url: str, acked_log: Path) -> tuple[int, int, list[tuple[str, int]]]:
    """(positions stored, duplicate (device, fix time) pairs, acked but missing)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            stored = connection.execute(sqlalchemy.text("SELECT count(*) FROM positions")).scalar_one()
            rows = connection.execute(sqlalchemy.text(
                "SELECT d.unique_id, floor(extract(epoch FROM p.fix_time))::bigint "
                "FROM positions p JOIN devices d ON d.id = p.device_id")).all()
    finally:
        engine.dispose()
    in_database = Counter((unique_id, int(epoch)) for unique_id, epoch in rows)
    duplicates = sum(1 for count in in_database.values() if count > 1)
    missing = []
    for line in acked_log.read_text(encoding="utf-8").splitlines():
        imei, stamp, _kind = line.split()
        if (imei, _utc_epoch(stamp)) not in in_database:
            missing.append((imei, stamp))
    return stored, duplicates, missing


def _utc_epoch(stamp: str) -> int:
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))


def server_config(database_url: str, gt06_port: int, web_port: int) -> str:
    """TOML for the server: this cluster, loopback ports, only gt06 listening."""
    from protocols import CODECS

    lines = [
        "[database]", f"url = {json.dumps(database_url)}", "",
        "[web]", f"port = {web_port}", 'interface = "127.0.0.1"', "",
        "[devices]", 'unknown = "register"', "",
        "[protocols]",
    ]
    for name in sorted(CODECS):   # other protocols off: their ports may be taken
        listen = [f"tcp:{gt06_port}:interface=127.0.0.1"] if name == "gt06" else []
        lines.append(f"{name} = {json.dumps(listen)}")
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if the server does not exit in time."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(SERVER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print("the server ignored SIGTERM; killing it", file=sys.stderr)
        process.kill()
        process.wait()


def proc_status(pid: int) -> dict[str, str]:
    """VmRSS, VmHWM ... of a live process, as the kernel prints them ("123456 kB")."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    fields = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key: " ".join(value.split()) for key, value in fields if key.startswith("Vm")}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tail(path: Path, size: int = 4000) -> str:
    try:
        return path.read_bytes()[-size:].decode(errors="replace")
    except OSError:
        return "(no log)"


def raise_open_files_limit(wanted: int) -> None:
    """Room for the simulator's sockets here and the server's (inherited) there."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
        if new_soft < wanted:
            print(f"warning: open files limited to {new_soft}; {wanted} wanted",
                  file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
