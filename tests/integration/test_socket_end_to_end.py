"""The real server's ``/api/socket`` with real clients: pytraccar 2.1.1's ``subscribe``
(what Home Assistant runs: form login, then the WebSocket with the session cookie)
gets a GT06 device's position once it is stored; a plain aiohttp WebSocket with
Basic credentials gets it in its snapshot, another organisation's user never does,
and no credentials is a 401."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import socket

import aiohttp
import pytest
from pytraccar import ApiClient

from protocols.devices import gt06 as gt06_device
from tests.serverproc import ServerProcess
from tracker.storage import open_store

pytestmark = pytest.mark.slow

EMAIL, PASSWORD = "fleet@example.com", "correct horse battery"
OTHER_EMAIL = "other@example.com"
IMEI = "860000000000042"
LAT, LON = 52.516, 13.377


@pytest.fixture
def server(tmp_path, database_url):
    proc = ServerProcess(tmp_path, database_url)
    proc.cli("user", "add", "--email", EMAIL, "--password", PASSWORD)
    store = open_store(database_url)
    try:
        store.add_device(IMEI, "van")
        other = store.add_organisation("elsewhere")
        store.add_user(OTHER_EMAIL, PASSWORD, organisation_id=other)
    finally:
        store.close()
    proc.start()
    yield proc
    proc.stop()


def send_position(port: int, fix_time: dt.datetime) -> None:
    """A GT06 login and one location, waiting for both acks (so it is stored)."""
    reader = gt06_device.DeviceAckReader()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        acks: list = []
        sock.sendall(gt06_device.device_login(IMEI, 1))
        sock.sendall(gt06_device.device_location(2, fix_time, LAT, LON, 40.0, 90.0))
        while len(acks) < 2:
            data = sock.recv(4096)
            assert data, "the server closed the device connection"
            acks += reader.receive_data(data)


async def subscribe_and_drive(server: ServerProcess, fix_time: dt.datetime) -> list[dict]:
    received: list[dict] = []
    got_position = asyncio.Event()
    snapshot = asyncio.Event()

    async def callback(data):
        received.append(data)
        snapshot.set()
        if any(p["latitude"] == pytest.approx(LAT, abs=1e-4) for p in data["positions"] or []):
            got_position.set()

    async with aiohttp.ClientSession() as session:
        client = ApiClient(host="localhost", port=server.web_port, username=EMAIL,
                           password=PASSWORD, client_session=session)
        task = asyncio.create_task(client.subscribe(callback))
        await asyncio.wait_for(snapshot.wait(), 20)
        assert not got_position.is_set()       # nothing stored yet
        await asyncio.to_thread(send_position, server.ports["gt06"], fix_time)
        await asyncio.wait_for(got_position.wait(), 20)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return received


async def raw_snapshot(server: ServerProcess, email: str) -> dict:
    credentials = base64.b64encode(f"{email}:{PASSWORD}".encode()).decode("ascii")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{server.web_port}/api/socket",
                                      headers={"Authorization": f"Basic {credentials}"}) as ws:
            message = await ws.receive(timeout=20)
            assert message.type == aiohttp.WSMsgType.TEXT
            return message.json()


async def refused_status(server: ServerProcess) -> int:
    async with aiohttp.ClientSession() as session:
        try:
            await session.ws_connect(f"http://127.0.0.1:{server.web_port}/api/socket")
        except aiohttp.WSServerHandshakeError as error:
            return error.status
    raise AssertionError("the socket opened without credentials")


def test_pytraccar_subscribe_gets_the_stored_position_and_others_do_not(server, database_url):
    fix_time = dt.datetime.now(dt.UTC).replace(microsecond=0)
    received = asyncio.run(subscribe_and_drive(server, fix_time))

    first = received[0]
    assert [d["uniqueId"] for d in first["devices"]] == [IMEI]
    assert first["positions"] == []
    store = open_store(database_url)
    try:
        device = store.device_by_unique_id(IMEI)
        assert store.count_positions(device.id) == 1
        [stored] = store.latest_positions(store.user_by_email(EMAIL))
    finally:
        store.close()
    pushed = [p for data in received for p in data["positions"] or []]
    assert [p["id"] for p in pushed] == [stored.id]          # the stored one, once
    assert pushed[0]["deviceId"] == device.id
    assert pushed[0]["fixTime"].startswith(fix_time.strftime("%Y-%m-%dT%H:%M:%S"))
    devices = [d for data in received[1:] for d in data["devices"] or []]
    assert devices and devices[-1]["status"] == "online" and devices[-1]["positionId"] == stored.id

    # A reconnecting client gets the latest in its snapshot; another organisation nothing.
    again = asyncio.run(raw_snapshot(server, EMAIL))
    assert [p["id"] for p in again["positions"]] == [stored.id]
    other = asyncio.run(raw_snapshot(server, OTHER_EMAIL))
    assert other == {"devices": [], "positions": []}
    assert asyncio.run(refused_status(server)) == 401
