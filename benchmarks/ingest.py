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
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVER_START_TIMEOUT_S = 120.0


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
    parser.add_argument("--push-config", metavar="FILE",
                        help="TOML appended to the server's configuration ([push] tables)")
    parser.add_argument("--subscribe", metavar="CHANNEL=TOKEN",
                        help="an administrator with this push token (every alarm notified)")
    parser.add_argument("--keep-log", metavar="FILE",
                        help="copy the server's log here (it is printed on failure anyway)")
    args = parser.parse_args(argv)

    if str(REPO) not in sys.path:       # `tests` is not an installed package
        sys.path.insert(0, str(REPO))
    from tests.pgcluster import PgCluster, PgUnavailable

    raise_open_files_limit(2 * args.devices + 256)
    with tempfile.TemporaryDirectory(prefix="tracker-bench-") as workdir_name:
        workdir = Path(workdir_name)
        try:
            with PgCluster() as cluster:
                print(f"PostGIS cluster up in {cluster.startup_s:.1f} s", flush=True)
                return benchmark(args, cluster.url, workdir)
        except PgUnavailable as error:
            print(f"cannot run: {error}", file=sys.stderr)
            return 2


def benchmark(args: argparse.Namespace, database_url: str, workdir: Path) -> int:
    from tests.serverproc import ServerProcess, acked_records, stored_counts
    from tracker.simulator import SimulationOptions, run_blocking

    extra = Path(args.push_config).read_text() if args.push_config else ""
    # Every simulated device comes from 127.0.0.1 and registers on first contact: lift
    # the unknown-device rate limits (5/s per source, 50/s in all), which would
    # otherwise make the first minute a registration queue.
    server = ServerProcess(workdir, database_url, unknown="register", extra_config=extra,
                           devices={"unknown_rate_per_source": 1_000_000,
                                    "unknown_rate_global": 1_000_000})
    if args.subscribe:
        channel, _, token = args.subscribe.partition("=")
        server.cli("user", "add", "--email", "bench@example.com", "--password", "pw12345678", "--admin")
        server.cli("notification", "token-add", "--email", "bench@example.com", "--channel", channel,
                   "--token", token)
    acked_log = workdir / "acked.log"
    try:
        started = time.monotonic()
        server.start(SERVER_START_TIMEOUT_S)
        pid = server.process.pid
        print(f"server up in {time.monotonic() - started:.1f} s (pid {pid}, "
              f"gt06 port {server.device_port})", flush=True)
        cpu_before_s = cpu_seconds(pid)
        options = SimulationOptions(
            port=server.device_port, devices=args.devices, interval_s=args.interval,
            duration_s=args.duration, drain_timeout_s=args.drain_timeout,
            alarm_every=args.alarm_every, seed=args.seed, acked_log=str(acked_log))
        print(f"simulating {args.devices} devices, a location every {args.interval:g} s, "
              f"for {args.duration:g} s ...", flush=True)
        stats = run_blocking(options)
        memory = proc_status(pid)
        cpu_s = cpu_seconds(pid) - cpu_before_s
        if not server.alive():
            print(f"the server exited during the run:\n{server.log()[-4000:]}", file=sys.stderr)
            return 2
    finally:
        server.stop()
        if args.keep_log:
            Path(args.keep_log).write_text(server.log())
    counts = stored_counts(database_url)
    stored = sum(counts.values())
    duplicates = sum(1 for count in counts.values() if count > 1)
    missing = [record for record in acked_records(acked_log) if record not in counts]

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
        print(f"FAIL: {len(missing)} acked positions are not in the database, e.g. {missing[:3]}")
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
