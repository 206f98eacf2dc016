"""The real server on loopback, driven by the real simulator: SQLite and PostGIS.

What is checked is the core promise: every position the simulator saw acknowledged
is in the database exactly once and visible through the API, also across a
kill -9 of the server in the middle of a run.
"""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import time

import pytest

from protocols.devices import gt06 as gt06_device
from tests.serverproc import ServerProcess, acked_records, stored_counts
from tracker.storage import open_store

EMAIL, PASSWORD = "fleet@example.com", "correct horse battery"
FIRST_IMEI = 860000000000000

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path, database_url):
    proc = ServerProcess(tmp_path, database_url)
    proc.cli("user", "add", "--email", EMAIL, "--password", PASSWORD, "--admin")
    yield proc
    proc.stop()


def register(database_url: str, count: int) -> None:
    """Register `count` devices directly in the store (the CLI is tested elsewhere)."""
    store = open_store(database_url)
    for i in range(count):
        store.add_device(str(FIRST_IMEI + i), f"unit {i}")
    store.close()


def assert_acked_stored_once(acked, counts):
    assert acked, "the simulator saw nothing acknowledged"
    missing = [record for record in acked if record not in counts]
    assert not missing, f"{len(missing)} acknowledged positions are not stored: {missing[:5]}"
    assert max(counts.values()) == 1, "a position is stored twice"


def test_twenty_devices_every_acked_position_stored_once_and_in_the_api(server, database_url, tmp_path):
    register(database_url, 20)
    server.start()
    acked_log = tmp_path / "acked.log"
    result = server.simulate("--devices", "20", "--interval", "1", "--duration", "6",
                             "--first-imei", str(FIRST_IMEI), "--alarm-every", "4",
                             "--acked-log", str(acked_log))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "acked=" in result.stdout
    acked = acked_records(acked_log)
    assert len({imei for imei, _ in acked}) == 20
    assert_acked_stored_once(acked, stored_counts(database_url))

    latest = server.api("/api/positions", EMAIL, PASSWORD)
    assert len(latest) == 20
    assert all(p["protocol"] == "gt06" and p["valid"] for p in latest)
    api_devices = {d["id"]: d for d in server.api("/api/devices", EMAIL, PASSWORD)}
    one = latest[0]
    device = api_devices[one["deviceId"]]
    assert device["positionId"] == one["id"]
    history = server.api(f"/api/positions?deviceId={one['deviceId']}"
                         "&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z", EMAIL, PASSWORD)
    acked_for_device = sorted(t for imei, t in acked if imei == device["uniqueId"])
    history_times = [dt.datetime.fromisoformat(p["fixTime"]) for p in history]
    assert set(acked_for_device) <= set(history_times)
    assert history_times == sorted(history_times)


def test_a_position_is_visible_in_the_api_within_two_seconds(server, database_url):
    register(database_url, 1)
    server.start()
    imei = str(FIRST_IMEI)
    with socket.create_connection(("127.0.0.1", server.device_port), timeout=5) as device:
        device.sendall(gt06_device.device_login(imei, 1))
        assert gt06_device.parse_ack(device.recv(64))[1] == 1
        fix_time = dt.datetime.now(dt.UTC).replace(microsecond=0)
        device.sendall(gt06_device.device_location(2, fix_time, 52.52, 13.405, 36.0, 90.0))
        sent = time.monotonic()
        assert gt06_device.parse_ack(device.recv(64))[1] == 2
        while True:
            latest = server.api("/api/positions", EMAIL, PASSWORD)
            if latest and dt.datetime.fromisoformat(latest[0]["fixTime"]) == fix_time:
                break
            assert time.monotonic() - sent < 2.0, "position not visible in the API within 2 s"
            time.sleep(0.05)
    assert latest[0]["latitude"] == pytest.approx(52.52, abs=1e-5)
    assert latest[0]["speed"] == pytest.approx(36.0 / 1.852, abs=0.01)


def test_kill_9_loses_no_acknowledged_position(server, database_url, tmp_path):
    register(database_url, 200)
    server.start()
    acked_log = tmp_path / "acked.log"
    simulator = subprocess.Popen(
        server.simulate_command("--devices", "200", "--interval", "1", "--duration", "14",
                                "--first-imei", str(FIRST_IMEI), "--acked-log", str(acked_log)),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=server.env())
    time.sleep(6)
    server.kill()
    assert acked_log.exists() and acked_log.read_text(), "nothing acked before the kill"
    time.sleep(1)
    server.start()
    output, _ = simulator.communicate(timeout=240)
    assert simulator.returncode == 0, output
    assert "resent=" in output
    assert_acked_stored_once(acked_records(acked_log), stored_counts(database_url))


def test_garbage_oversize_and_bad_crc_drop_only_that_connection(server, database_url):
    register(database_url, 2)
    server.start()
    good = socket.create_connection(("127.0.0.1", server.device_port), timeout=5)
    good.sendall(gt06_device.device_login(str(FIRST_IMEI), 1))
    assert gt06_device.parse_ack(good.recv(64))[1] == 1
    login = gt06_device.device_login(str(FIRST_IMEI + 1), 1)
    bad_crc = login[:-4] + bytes([login[-4] ^ 0xFF]) + login[-3:]
    oversized = b"\x79\x79\xff\xff" + b"\x00" * 70_000
    for payload in (b"\xde\xad\xbe\xef" * 600, oversized, bad_crc):
        with socket.create_connection(("127.0.0.1", server.device_port), timeout=5) as bad:
            bad.sendall(payload)
            bad.settimeout(5)
            try:
                assert bad.recv(64) == b"", "the bad connection got a reply"
            except ConnectionResetError:
                pass   # closed with unread data: also a drop
    fix_time = dt.datetime.now(dt.UTC).replace(microsecond=0)
    good.sendall(gt06_device.device_location(2, fix_time, 1.0, 2.0, 10.0, 0.0))
    assert gt06_device.parse_ack(good.recv(64))[1] == 2, "a good device was affected"
    good.close()
    assert server.alive()
    log = server.log()
    assert "bad frame" in log and "deadbeef" in log


def test_a_command_reaches_the_device_and_its_answer_is_recorded(server, database_url):
    """API command to a connected device; CLI command picked up by the poll."""
    register(database_url, 1)
    server.start()
    imei = str(FIRST_IMEI)
    with socket.create_connection(("127.0.0.1", server.device_port), timeout=5) as device:
        device.sendall(gt06_device.device_login(imei, 1))
        assert gt06_device.parse_ack(device.recv(64))[1] == 1
        device_id = server.api("/api/devices", EMAIL, PASSWORD)[0]["id"]
        status, command = server.api("/api/commands/send", EMAIL, PASSWORD,
                                     body={"deviceId": device_id, "type": "engineStop"})
        assert (status, command["status"]) == (200, "sent")
        frame = device.recv(256)
        assert frame[3] == 0x80 and b"RELAY,1#" in frame
        device.sendall(gt06_device.device_command_response(2, "RELAY:OK"))
        deadline = time.monotonic() + 5
        while (log := server.api(f"/api/commands/log?deviceId={device_id}", EMAIL, PASSWORD)
               )[0]["status"] != "answered":
            assert time.monotonic() < deadline, log
            time.sleep(0.1)
        assert log[0]["result"] == "RELAY:OK"

        server.cli("command", "send", "--unique-id", imei, "--type", "positionPeriodic",
                   "--attribute", "frequency=60")
        frame = device.recv(256)          # the server polls for commands every 2 s
        assert b"TIMER,60#" in frame


def test_an_offline_devices_command_waits_for_its_next_connection(server, database_url):
    register(database_url, 1)
    server.start()
    device_id = server.api("/api/devices", EMAIL, PASSWORD)[0]["id"]
    status, command = server.api("/api/commands/send", EMAIL, PASSWORD,
                                 body={"deviceId": device_id, "type": "rebootDevice"})
    assert (status, command["status"]) == (202, "queued")
    with socket.create_connection(("127.0.0.1", server.device_port), timeout=5) as device:
        device.sendall(gt06_device.device_login(str(FIRST_IMEI), 1))
        received = b""
        while b"RESET#" not in received:
            chunk = device.recv(256)
            assert chunk, "connection closed before the command came"
            received += chunk
