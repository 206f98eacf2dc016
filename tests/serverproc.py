"""Run the real server (`python -m tracker serve`) as a subprocess on loopback.

Used by end-to-end tests and benchmarks: a TOML config (device ports picked free,
the web port 0: the server binds one and reports it), start and wait for the
server's ``listening: web=PORT name/transport=PORT ...`` line, kill (gracefully or
-9), restart on the same ports; and the check that matters most: which acknowledged positions
(from the simulator's acked log) are in the database, and how many times.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.ports import free_port

REPO = Path(__file__).resolve().parents[1]
LISTENING = "listening: "     # the line `tracker serve` prints once every port is bound


def tracker_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tracker", *args]


class ServerProcess:
    """The server in a subprocess, configured for one database URL, with one
    device protocol enabled (on a free port, over its usual transports)."""

    def __init__(self, workdir: Path, database_url: str, unknown: str = "refuse",
                 protocol: str = "gt06", extra_config: str = "", *,
                 also: tuple[str, ...] = (), devices: dict[str, int] | None = None) -> None:
        self.workdir = Path(workdir)
        self.protocol = protocol
        self.device_port = free_port()
        # `also`: more protocols enabled, each on a free port of its own
        self.ports = {protocol: self.device_port, **{name: free_port() for name in also}}
        self.web_port = 0          # bound by the server; known after start()
        self.bound: dict[str, int] = {}
        self.config_path = self.workdir / "tracker.toml"
        self.log_path = self.workdir / "server.log"
        self._database_url, self._unknown, self._extra = database_url, unknown, extra_config
        self._devices = devices or {}     # more [devices] keys, e.g. unknown_rate_per_source
        self._write_config()
        self.process: subprocess.Popen | None = None

    def _write_config(self) -> None:
        self.config_path.write_text(self._config(self._database_url, self._unknown) + self._extra)

    def _config(self, database_url: str, unknown: str) -> str:
        from protocols import CODECS

        lines = [f"[database]\nurl = {json.dumps(database_url)}",
                 f'[web]\nport = {self.web_port}\ninterface = "127.0.0.1"',
                 f'[devices]\nunknown = "{unknown}"'
                 + "".join(f"\n{key} = {value}" for key, value in self._devices.items()),
                 "[protocols]"]
        for name, codec in sorted(CODECS.items()):   # others off: their ports may be taken
            transports = [a.split(":")[0] for a in codec.default_listen]
            listen = [f"{transport}:{self.ports[name]}:interface=127.0.0.1"
                      for transport in transports] if name in self.ports else []
            lines.append(f"{name} = {json.dumps(listen)}")
        return "\n".join(lines) + "\n"

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """Run `tracker --config ... ARGS`; raises on a non-zero exit."""
        return subprocess.run(tracker_command("--config", str(self.config_path), *args),
                              cwd=self.workdir, capture_output=True, text=True, check=True,
                              timeout=120)

    def start(self, timeout_s: float = 60.0) -> None:
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            tracker_command("--config", str(self.config_path), "serve"),
            cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, env=_env())
        log.close()
        starts_before = self.log().count(LISTENING)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            lines = [line for line in self.log().splitlines() if line.startswith(LISTENING)]
            if len(lines) > starts_before:
                self._bound(lines[-1])
                return
            time.sleep(0.05)
        raise RuntimeError(f"server did not start in {timeout_s}s:\n{self.log()}")

    def _bound(self, line: str) -> None:
        """Take the ports from the server's listening line; later starts reuse them."""
        self.bound = {name: int(port) for name, _, port in
                      (pair.partition("=") for pair in line[len(LISTENING):].split())}
        if self.web_port == 0:
            self.web_port = self.bound["web"]
            self._write_config()

    def kill(self) -> None:
        """kill -9: no chance to flush anything."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode if self.process else 0

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, path: str, email: str, password: str, body=None, method: str | None = None):
        """GET (or, with `body`, POST or `method` as JSON) an API path with Basic auth;
        returns (with a body: status and) the decoded JSON (None when empty)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.web_port}{path}", data=data,
                                         method=method)
        token = base64.b64encode(f"{email}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            decoded = json.loads(raw) if raw else None
            return decoded if body is None else (response.status, decoded)

    def simulate_command(self, *args: str) -> list[str]:
        """The `tracker simulate` command line for this server's device port."""
        return tracker_command("simulate", "--protocol", self.protocol, "--host", "127.0.0.1",
                               "--port", str(self.device_port), *args)

    def simulate(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(self.simulate_command(*args), cwd=self.workdir,
                              capture_output=True, text=True, timeout=timeout_s, env=_env(),
                              check=False)

    @staticmethod
    def env() -> dict[str, str]:
        """The environment the server and simulator subprocesses run with."""
        return _env()


def acked_records(path: Path) -> list[tuple[str, dt.datetime]]:
    """(imei, fix time) of every acknowledged position or alarm in an acked log."""
    records = []
    for line in Path(path).read_text().splitlines():
        imei, fix_time, _kind = line.split()
        records.append((imei, dt.datetime.fromisoformat(fix_time.replace("Z", "+00:00"))))
    return records


def stored_counts(database_url: str) -> dict[tuple[str, dt.datetime], int]:
    """How many rows each (imei, fix time) has in the positions table."""
    import sqlalchemy as sa

    from tracker.storage.schema import devices, positions

    engine = sa.create_engine(database_url)
    query = (sa.select(devices.c.unique_id, positions.c.fix_time, sa.func.count())
             .join(devices, devices.c.id == positions.c.device_id)
             .group_by(devices.c.unique_id, positions.c.fix_time))
    try:
        with engine.connect() as connection:
            rows = connection.execute(query).all()
    finally:
        engine.dispose()
    return {(imei, fix_time): count for imei, fix_time, count in rows}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def wait_for(predicate, timeout_s: float = 15.0):
    """The predicate's first truthy value within the timeout (else its last value)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    return predicate()
