"""`tracker serve` with port 0 everywhere: the `listening:` line names the ports
bound, and they accept connections (a real subprocess on loopback)."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from protocols import CODECS

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def read_listening_line(process: subprocess.Popen, log: Path, timeout_s: float) -> str:
    """The first stdout line (the server logs to stderr), within the timeout."""
    deadline = time.monotonic() + timeout_s
    while (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([process.stdout], [], [], remaining)
        if not readable:
            break
        line = process.stdout.readline()
        if line.startswith("listening:"):
            return line
        if not line:    # end of output: the server exited
            break
    raise AssertionError(f"no listening line (exit {process.poll()}):\n{log.read_text()}")


def test_serve_on_port_zero_prints_the_bound_ports(tmp_path):
    others = "\n".join(f"{name} = []" for name in sorted(CODECS) if name not in ("gt06", "osmand"))
    config = tmp_path / "tracker.toml"
    config.write_text(f"""
[database]
url = {json.dumps(f"sqlite:///{tmp_path / 'tracker.db'}")}
[web]
port = 0
interface = "127.0.0.1"
[protocols]
gt06 = ["tcp:port=0:interface=127.0.0.1", "udp:0:interface=127.0.0.1"]
osmand = ["http:0:interface=127.0.0.1"]
{others}
""")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                                      os.environ.get("PYTHONPATH")]))}
    with open(tmp_path / "server.log", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "tracker", "serve", "--config", str(config)],
                                   cwd=tmp_path, stdout=subprocess.PIPE, stderr=log, text=True,
                                   env=env)
    try:
        line = read_listening_line(process, tmp_path / "server.log", 60)
        words = line.split()
        assert words[0] == "listening:"
        ports = dict(word.split("=") for word in words[1:])
        assert list(ports) == ["web", "gt06/tcp", "gt06/udp", "osmand/http"]
        numbers = {name: int(port) for name, port in ports.items()}
        assert all(0 < port < 65536 for port in numbers.values())
        for name in ("gt06/tcp", "osmand/http"):
            with socket.create_connection(("127.0.0.1", numbers[name]), timeout=5):
                pass
        with urllib.request.urlopen(f"http://127.0.0.1:{numbers['web']}/api/server",
                                    timeout=10) as response:
            assert response.status == 200
        log_text = (tmp_path / "server.log").read_text()
        assert f"gt06 listening on tcp:{numbers['gt06/tcp']}:interface=127.0.0.1" in log_text
    finally:
        process.terminate()
        process.wait(30)
    assert process.returncode == 0
