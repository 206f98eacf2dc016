"""Store-then-ack across a database outage, on a real PostGIS cluster of its own.

While the database is down nothing is acknowledged and the server keeps serving;
when it returns, ingestion resumes by itself and the held position is stored once.
"""

from __future__ import annotations

import datetime as dt
import socket

import pytest

from protocols.devices import gt06 as gt06_device
from tests.integration.test_end_to_end import FIRST_IMEI, register
from tests.pgcluster import PgCluster, PgUnavailable
from tests.serverproc import ServerProcess, stored_counts

pytestmark = [pytest.mark.postgis, pytest.mark.slow]


@pytest.fixture
def cluster():
    pg = PgCluster()
    try:
        pg.start()
    except PgUnavailable as error:
        pytest.fail(f"PostGIS unavailable: {error}")
    yield pg
    pg.stop()


def test_nothing_is_acked_while_the_database_is_down_and_ingest_resumes(cluster, tmp_path):
    register(cluster.url, 1)
    server = ServerProcess(tmp_path, cluster.url)
    server.start()
    try:
        device = socket.create_connection(("127.0.0.1", server.device_port), timeout=5)
        device.sendall(gt06_device.device_login(str(FIRST_IMEI), 1))
        assert gt06_device.parse_ack(device.recv(64))[1] == 1

        cluster.pause()
        fix_time = dt.datetime.now(dt.UTC).replace(microsecond=0)
        device.sendall(gt06_device.device_location(2, fix_time, 10.0, 20.0, 30.0, 40.0))
        device.settimeout(3)
        with pytest.raises(TimeoutError):
            device.recv(64)            # no ack while the data is not durable
        assert server.alive()

        cluster.resume()
        device.settimeout(30)          # the writer retries with backoff up to 10 s
        assert gt06_device.parse_ack(device.recv(64))[1] == 2
        device.close()
    finally:
        server.stop()
    assert stored_counts(cluster.url) == {(str(FIRST_IMEI), fix_time): 1}
    assert "retrying" in server.log()
