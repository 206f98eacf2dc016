"""Hostile device data against the real server (hardening, finding 1): one request
the database could never store must not stop ingestion for anyone.

The OsmAnd request carries a NUL in a parameter (PostgreSQL's jsonb refuses
``\\u0000`` for good; before the fix the writer retried that batch forever and no
device of any organisation was acknowledged again).  It is refused (400) and kept
in quarantine; a GT06 device reporting right after it is acknowledged within 1 s
and stored.  SQLite and PostGIS.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from protocols.devices import gt06 as gt06_device
from tests.serverproc import ServerProcess
from tracker.storage import open_store

pytestmark = pytest.mark.slow

PHONE, VAN = "359710049095095", "860000000000042"
ADMIN, PASSWORD = "admin@example.com", "a long password"


@pytest.fixture
def server(tmp_path, database_url):
    proc = ServerProcess(tmp_path, database_url, protocol="osmand", also=("gt06",))
    store = open_store(database_url)
    store.add_device(PHONE, "phone")
    store.add_device(VAN, "van")
    store.add_user(ADMIN, PASSWORD, administrator=True)
    store.close()
    proc.start()
    yield proc
    assert proc.stop() == 0, "the server did not stop cleanly on SIGTERM"


def test_a_nul_request_is_quarantined_and_the_next_device_is_acked_within_a_second(
        server, database_url):
    fix_time = int(time.time()) - 60
    url = (f"http://127.0.0.1:{server.ports['osmand']}/?id={PHONE}&lat=1&lon=2"
           f"&timestamp={fix_time}&note=a%00b")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 400
    assert b"NUL" in refused.value.read()

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with socket.create_connection(("127.0.0.1", server.ports["gt06"]), timeout=5) as sock:
        reader = gt06_device.DeviceAckReader()
        sock.sendall(gt06_device.device_login(VAN, 1))
        _read_acks(sock, reader, 1)
        started = time.monotonic()
        sock.sendall(gt06_device.device_location(2, now, 52.5, 13.4, 30.0, 90.0))
        assert _read_acks(sock, reader, 1) == [2]
        assert time.monotonic() - started < 1.0, "the position was not acked within 1 s"

    store = open_store(database_url)
    try:
        van = store.device_by_unique_id(VAN)
        phone = store.device_by_unique_id(PHONE)
        assert store.count_positions(van.id) == 1
        assert store.count_positions(phone.id) == 0
        [entry] = store.quarantined()
        assert entry.entry.protocol == "osmand" and entry.entry.unique_id == PHONE
        assert entry.entry.device_id == phone.id
        assert "NUL" in entry.entry.error and "note" in entry.entry.error
        assert b"note=a%00b" in bytes.fromhex(entry.entry.frame_hex)
    finally:
        store.close()
    listed = subprocess.run([sys.executable, "-m", "tracker", "--config", str(server.config_path),
                             "quarantine", "list", "--json"], capture_output=True, text=True,
                            timeout=60, check=True)
    assert json.loads(listed.stdout)[0]["uniqueId"] == PHONE
    health = server.api("/api/server/health", ADMIN, PASSWORD)
    assert health["quarantine"] == {"rows": 1}
    assert health["counters"]["writer.quarantined"] == 1
    assert health["counters"]["writer.committedBatches"] >= 1
    assert "connections.gt06.tcp" in health["counters"]


def _read_acks(sock: socket.socket, reader, count: int) -> list:
    acks: list = []
    while len(acks) < count:
        data = sock.recv(4096)
        assert data, "the server closed the connection"
        acks += reader.receive_data(data)
    return acks
