"""Push benchmark: notifications per second, and ingest with and without pushing.

Run from the repository root::

    python3 benchmarks/push.py [--events 2000] [--devices 500] [--duration 30]

1. Dispatcher throughput: `--events` alarm events (one per device of 100) written
   to a fresh SQLite store, one subscribed user with a Huawei token; the real
   `Dispatcher` cycles until every delivery is sent to the fake Huawei gateway
   (tests/push/fake_huawei.py, real HTTP on loopback, OAuth token cached).  Prints
   notifications per second.
2. Ingest while pushing: `benchmarks/ingest.py` twice on PostGIS, `--devices`
   devices every second with an SOS in every 2nd report: once with no channel
   configured, once with the Huawei channel pointed at the fake gateway and an
   administrator subscribed.  Prints both stored-per-second figures and the pushes
   the gateway received.  Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.push.fake_huawei import FakeHuawei  # noqa: E402
from tracker.models import Batch, NewEvent  # noqa: E402
from tracker.push.dispatcher import Dispatcher  # noqa: E402
from tracker.push.huawei import HuaweiNotifier  # noqa: E402
from tracker.storage import SqlStore  # noqa: E402

T0 = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def throughput(events: int, workdir: Path) -> None:
    store = SqlStore(f"sqlite:///{workdir / 'push.db'}")
    store.migrate()
    devices = [store.add_device(f"86{i:013d}", f"unit {i}") for i in range(100)]
    user = store.add_user("bench@example.com", "pw12345678", administrator=True)
    store.add_push_token(user.id, "huawei", "android", "hw-token-bench", T0)
    store.write_batch(Batch(events=tuple(
        NewEvent(devices[i % 100].id, "alarm", T0 + dt.timedelta(seconds=i), {"alarm": "sos"})
        for i in range(events))))
    with FakeHuawei() as gateway:
        notifier = HuaweiNotifier({"app_id": gateway.app_id, "client_secret": gateway.client_secret,
                                   "base_url": gateway.url, "auth_url": gateway.url})
        dispatcher = Dispatcher(store, None, None, {"huawei": notifier}, coalesce_s=0,
                                batch=500, clock=lambda: T0 + dt.timedelta(days=1))
        started = time.perf_counter()
        while len(gateway.sends) < events:
            dispatcher.run_cycle()
        elapsed = time.perf_counter() - started
        notifier.close()
        sent = sum(1 for d in store.deliveries_of(limit=events) if d.status == "sent")
    print(f"dispatcher:        {events:,} alarms -> {sent:,} pushes to the fake Huawei gateway "
          f"in {elapsed:.2f} s")
    print(f"notifications/s:   {events / elapsed:,.0f} (SQLite store, one gateway connection)")


def ingest(devices: int, duration: float, push: bool, workdir: Path) -> str:
    command = [sys.executable, str(REPO / "benchmarks" / "ingest.py"), "--devices", str(devices),
               "--interval", "1", "--duration", str(duration), "--alarm-every", "2"]
    gateway = FakeHuawei().start() if push else None
    try:
        if gateway is not None:
            config = workdir / "push.toml"
            config.write_text(f'[push]\ncoalesce_window = 0\n[push.huawei]\napp_id = "{gateway.app_id}"\n'
                              f'client_secret = "{gateway.client_secret}"\n'
                              f'base_url = "{gateway.url}"\nauth_url = "{gateway.url}"\n')
            command += ["--push-config", str(config), "--subscribe", "huawei=hw-token-bench"]
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=900,
                                check=False)
        lines = [line for line in result.stdout.splitlines()
                 if line.startswith(("stored per second", "ack latency", "server CPU", "check"))]
        if gateway is not None:
            time.sleep(3)   # the dispatcher's last cycles
            lines.append(f"pushes received by the fake gateway: {len(gateway.sends):,}")
        return "\n".join(lines) if lines else result.stdout + result.stderr
    finally:
        if gateway is not None:
            gateway.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--duration", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tracker-push-") as name:
        workdir = Path(name)
        throughput(args.events, workdir)
        print(f"\ningest without pushing ({args.devices} devices/s, SOS in every 2nd report):")
        print(ingest(args.devices, args.duration, False, workdir))
        print("\ningest while pushing every SOS to the fake Huawei gateway:")
        print(ingest(args.devices, args.duration, True, workdir))


if __name__ == "__main__":
    main()
