"""POST /api/commands/send, GET /api/commands/types and /api/commands/log."""

from __future__ import annotations

import json

import pytest

from protocols import gt06
from tests.web.harness import ALICE, BOB, make_world


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path / "tracker.db")


class Channel:
    """A connected GT06 device, as the dispatcher sees it."""

    def __init__(self):
        self.session = gt06.CODEC.new_session()
        self.ingest = type("Ingest", (), {"codec": gt06.CODEC})()
        self.closed = False
        self.sent = []

    def send_command(self, data):
        self.sent.append(data)


def send(world, body, auth=ALICE, content_type="application/json"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return world.client.request("POST", "/api/commands/send", auth=auth, body=raw,
                                headers={"Content-Type": content_type})


def test_command_to_a_connected_device_is_sent_200(world):
    channel = Channel()
    device = world.devices["d1"]
    world.commands.connected(device.id, channel)
    response = send(world, {"deviceId": device.id, "type": "engineStop"})
    assert response.status == 200, response.body
    body = response.json()
    assert (body["deviceId"], body["type"], body["status"]) == (device.id, "engineStop", "sent")
    assert b"RELAY,1#" in channel.sent[0]


def test_command_to_an_offline_device_is_queued_202(world):
    response = send(world, {"deviceId": world.devices["d1"].id, "type": "positionPeriodic",
                            "attributes": {"frequency": 30}})
    assert response.status == 202 and response.json()["status"] == "queued"
    log = world.client.request("GET", "/api/commands/log", auth=ALICE).json()
    assert [(c["type"], c["status"]) for c in log] == [("positionPeriodic", "queued")]


def test_another_organisations_device_is_404(world):
    response = send(world, {"deviceId": world.devices["d1"].id, "type": "engineStop"}, auth=BOB)
    assert response.status == 404


@pytest.mark.parametrize("body, message", [
    ({"deviceId": "1", "type": "engineStop"}, "deviceId must be an integer"),
    ({"deviceId": 1, "type": "selfDestruct"}, "type must be one of"),
    ({"deviceId": 1, "type": "positionPeriodic"}, "attributes.frequency"),
    ({"deviceId": 1, "type": "custom", "attributes": {"data": ""}}, "attributes.data"),
    ({"deviceId": 1, "type": "custom", "attributes": []}, "attributes must be an object"),
    (b"{not json", "malformed JSON"),
    (b"[1, 2]", "must be an object"),
])
def test_bad_commands_are_400_with_the_reason(world, body, message):
    response = send(world, body)
    assert response.status == 400 and message in response.json()["message"]


def test_json_is_required(world):
    response = send(world, b"deviceId=1", content_type="application/x-www-form-urlencoded")
    assert response.status == 415


def test_types_of_a_connected_device_are_its_protocols(world):
    device = world.devices["d1"]
    everything = world.client.request("GET", f"/api/commands/types?deviceId={device.id}",
                                      auth=ALICE).json()
    assert {"type": "custom"} in everything
    world.commands.connected(device.id, Channel())
    types = world.client.request("GET", f"/api/commands/types?deviceId={device.id}",
                                 auth=ALICE).json()
    assert {t["type"] for t in types} == gt06.CODEC.command_types
