"""Every registered protocol end to end: the real server on loopback, the real
simulator speaking that protocol, data stored once and visible in the API.

One server per database (and per test process) listens on every protocol at once,
as in production; each protocol's test uses devices of its own and checks only
them, and the server's log must hold no traceback when the module is done.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import sqlalchemy as sa

from protocols import CODECS, get_device_side
from tests.serverproc import ServerProcess, acked_records, stored_counts, tracker_command, wait_for
from tests.templates import migrated_sqlite_url
from tracker.storage.schema import devices, events

EMAIL, PASSWORD = "fleet@example.com", "correct horse battery"
FIRST_ID = 860000000000000
DEVICES = 3
PROTOCOLS = sorted(CODECS)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)])
def fleet(request, tmp_path_factory):
    """(server, database URL): every protocol on its own port, unknown devices registered."""
    workdir = tmp_path_factory.mktemp(f"fleet-{request.param}")
    drop = None
    if request.param == "sqlite":
        url = migrated_sqlite_url(workdir / "tracker.db")
    else:
        cluster = request.getfixturevalue("postgis_cluster")
        name = f"fleet_{os.getpid()}"
        url = cluster.create_database(name, template=request.getfixturevalue("postgis_template"))
        drop = lambda: cluster.drop_database(name)  # noqa: E731
    server = ServerProcess(workdir, url, unknown="register", protocol=PROTOCOLS[0],
                           also=tuple(PROTOCOLS[1:]))
    server.cli("user", "add", "--email", EMAIL, "--password", PASSWORD, "--admin")
    server.start()
    try:
        yield server, url
    finally:
        server.stop()
        if drop is not None:
            drop()
    assert "Traceback" not in server.log(), server.log()[-3000:]


def simulate(server: ServerProcess, protocol: str, *args: str) -> subprocess.CompletedProcess:
    command = tracker_command("simulate", "--protocol", protocol, "--host", "127.0.0.1",
                              "--port", str(server.ports[protocol]), *args)
    return subprocess.run(command, cwd=server.workdir, capture_output=True, text=True,
                          timeout=300, env=ServerProcess.env(), check=False)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_protocol_positions_are_stored_once_and_visible(protocol, fleet, tmp_path):
    server, database_url = fleet
    first_id = FIRST_ID + 100 * PROTOCOLS.index(protocol)
    acked_log = tmp_path / "acked.log"
    result = simulate(server, protocol, "--devices", str(DEVICES), "--interval", "1",
                      "--duration", "4", "--first-imei", str(first_id), "--alarm-every", "3",
                      "--acked-log", str(acked_log))
    assert result.returncode == 0, result.stdout + result.stderr + server.log()[-3000:]
    delivered = acked_records(acked_log)
    unique_ids = {unique_id for unique_id, _ in delivered}
    assert len(unique_ids) == DEVICES

    counts = _wait_until_stored(database_url, delivered,
                                acknowledged=get_device_side(protocol).acks_reports)
    assert max(counts[record] for record in delivered) == 1, "a position is stored twice"
    latest = [p for p in server.api("/api/positions", EMAIL, PASSWORD)
              if p["protocol"] == protocol]
    assert len(latest) == DEVICES
    assert _alarm_count(database_url, unique_ids) >= 1, "the simulated sos alarms left no event"


def _wait_until_stored(database_url, delivered, acknowledged: bool, timeout_s: float = 10.0):
    """Acknowledged reports must be stored already; unacknowledged ones (protocols
    without report acks) may still be on their way for a moment."""
    deadline = time.monotonic() + (0 if acknowledged else timeout_s)
    while True:
        counts = stored_counts(database_url)
        missing = [record for record in delivered if record not in counts]
        if not missing:
            return counts
        assert time.monotonic() < deadline, f"{len(missing)} reports not stored: {missing[:3]}"
        time.sleep(0.2)


def _alarm_count(database_url: str, unique_ids: set[str]) -> int:
    """Alarm events of the devices with these unique ids."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(
                sa.select(sa.func.count()).select_from(events.join(devices))
                .where(events.c.type == "alarm", devices.c.unique_id.in_(unique_ids))
            ).scalar_one()
    finally:
        engine.dispose()


@pytest.mark.parametrize("fleet", ["sqlite"], indirect=True)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_garbage_on_a_protocol_port_drops_that_connection_only(protocol, fleet):
    """Random bytes, more than twice the protocol's frame cap: that connection is
    closed (or, for HTTP, refused), the server logs it and keeps serving."""
    import random
    import socket

    server, _ = fleet
    size = max(64 * 1024, 2 * CODECS[protocol].max_frame_bytes + 1024)
    garbage = random.Random(protocol).randbytes(size)
    with socket.create_connection(("127.0.0.1", server.ports[protocol]), timeout=10) as peer:
        try:
            peer.sendall(garbage)
            while peer.recv(65536):
                pass   # an HTTP 400 page, or nothing: then the server closes
        except ConnectionResetError:
            pass       # closed with our bytes unread: also a drop
    assert server.alive()
    assert server.api("/api/server", EMAIL, PASSWORD)["version"]
    if get_device_side(protocol).transport != "http":
        assert wait_for(lambda: f"{protocol} bad frame from 127.0.0.1" in server.log()), \
            server.log()[-2000:]
