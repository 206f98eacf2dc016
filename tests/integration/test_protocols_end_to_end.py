"""Every registered protocol end to end: the real server on loopback, the real
simulator speaking that protocol, data stored once and visible in the API."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from protocols import CODECS, get_device_side
from tests.serverproc import ServerProcess, acked_records, stored_counts
from tracker.storage.schema import events

EMAIL, PASSWORD = "fleet@example.com", "correct horse battery"
FIRST_ID = 860000000000000
DEVICES = 3

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("protocol", sorted(CODECS))
def test_protocol_positions_are_stored_once_and_visible(protocol, database_url, tmp_path):
    server = ServerProcess(tmp_path, database_url, unknown="register", protocol=protocol)
    server.cli("user", "add", "--email", EMAIL, "--password", PASSWORD, "--admin")
    server.start()
    try:
        acked_log = tmp_path / "acked.log"
        result = server.simulate("--devices", str(DEVICES), "--interval", "1", "--duration", "4",
                                 "--first-imei", str(FIRST_ID), "--alarm-every", "3",
                                 "--acked-log", str(acked_log))
        assert result.returncode == 0, result.stdout + result.stderr + server.log()[-3000:]
        delivered = acked_records(acked_log)
        assert len({unique_id for unique_id, _ in delivered}) == DEVICES

        counts = _wait_until_stored(database_url, delivered,
                                    acknowledged=get_device_side(protocol).acks_reports)
        assert max(counts.values()) == 1, "a position is stored twice"
        latest = server.api("/api/positions", EMAIL, PASSWORD)
        assert len(latest) == DEVICES and {p["protocol"] for p in latest} == {protocol}
        assert _alarm_count(database_url) >= 1, "the simulated sos alarms left no event"
    finally:
        server.stop()
    assert "Traceback" not in server.log(), server.log()[-3000:]


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


def _alarm_count(database_url: str) -> int:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(events)
                                      .where(events.c.type == "alarm")).scalar_one()
    finally:
        engine.dispose()


@pytest.mark.parametrize("protocol", sorted(CODECS))
def test_garbage_on_a_protocol_port_drops_that_connection_only(protocol, tmp_path):
    """Random bytes, more than twice the protocol's frame cap: that connection is
    closed (or, for HTTP, refused), the server logs it and keeps serving."""
    import random
    import socket

    server = ServerProcess(tmp_path, f"sqlite:///{tmp_path / 'tracker.db'}", protocol=protocol)
    server.start()
    try:
        size = max(64 * 1024, 2 * CODECS[protocol].max_frame_bytes + 1024)
        garbage = random.Random(protocol).randbytes(size)
        with socket.create_connection(("127.0.0.1", server.device_port), timeout=10) as peer:
            try:
                peer.sendall(garbage)
                while peer.recv(65536):
                    pass   # an HTTP 400 page, or nothing: then the server closes
            except ConnectionResetError:
                pass       # closed with our bytes unread: also a drop
        assert server.alive()
        assert server.api("/api/server", EMAIL, PASSWORD)["version"]
    finally:
        server.stop()
    log = server.log()
    assert "Traceback" not in log, log[-3000:]
    if get_device_side(protocol).transport != "http":
        assert f"{protocol} bad frame from 127.0.0.1" in log, log[-2000:]
