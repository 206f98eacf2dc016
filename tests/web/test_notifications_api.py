"""/api/notifications: push tokens, preferences and the delivery log."""

from __future__ import annotations

import json

import pytest

from tests.web.harness import ADMIN, ALICE, BOB, T0, make_world
from tracker.models import Batch, NewEvent
from tracker.push.base import SENT, SendResult
from tracker.push.dispatcher import Dispatcher


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path / "tracker.db")


def call(world, method, path, body=None, *, auth=ALICE):
    raw = b"" if body is None else json.dumps(body).encode()
    return world.client.request(method, path, auth=auth, body=raw,
                                headers={"Content-Type": "application/json"})


def test_a_token_is_registered_listed_masked_and_deleted(world):
    created = call(world, "POST", "/api/notifications/tokens",
                   {"channel": "fcm", "platform": "android", "token": "secret-fcm-token-123"})
    assert created.status == 200, created.body
    token = created.json()
    assert token["channel"] == "fcm" and token["tokenHint"].startswith("secret")
    assert b"secret-fcm-token-123" not in created.body
    listed = call(world, "GET", "/api/notifications/tokens").json()
    assert [t["id"] for t in listed] == [token["id"]]
    assert call(world, "GET", "/api/notifications/tokens", auth=BOB).json() == []
    assert call(world, "DELETE", f"/api/notifications/tokens/{token['id']}", auth=BOB).status == 404
    assert call(world, "DELETE", f"/api/notifications/tokens/{token['id']}").status == 204
    assert call(world, "GET", "/api/notifications/tokens").json() == []


@pytest.mark.parametrize("body, field", [
    ({"channel": "pigeon", "token": "x"}, "channel"),
    ({"channel": "fcm", "platform": "toaster", "token": "x"}, "platform"),
    ({"channel": "fcm", "token": ""}, "token"),
    ({"channel": "fcm", "token": "x" * 5000}, "token"),
])
def test_bad_tokens_are_refused_naming_the_field(world, body, field):
    response = call(world, "POST", "/api/notifications/tokens", body)
    assert response.status == 400 and response.json()["message"].startswith(field)


def test_preferences_default_then_replace_and_validate(world):
    assert call(world, "GET", "/api/notifications/preferences").json()["types"] == ["alarm"]
    wanted = {"types": ["alarm", "geofenceEnter"], "alarms": ["sos"], "language": "zh",
              "timezone": "Asia/Shanghai", "quietHours": {"from": "22:00", "to": "07:00"}}
    stored = call(world, "PUT", "/api/notifications/preferences", wanted)
    assert stored.status == 200, stored.body
    again = call(world, "GET", "/api/notifications/preferences").json()
    assert again["quietHours"] == {"from": "22:00", "to": "07:00"} and again["language"] == "zh"
    bad = call(world, "PUT", "/api/notifications/preferences",
               {"quietHours": {"from": "25:00", "to": "07:00"}})
    assert bad.status == 400 and "quietHours.from" in bad.json()["message"]
    assert call(world, "PUT", "/api/notifications/preferences", {"colour": "red"}).status == 400


class Sink:
    channel = "fcm"

    def send(self, target, message):
        return SendResult(SENT)

    def close(self):
        pass


def test_deliveries_show_each_attempt_of_the_users_own_notifications(world):
    store = world.store
    call(world, "POST", "/api/notifications/tokens", {"channel": "fcm", "token": "tok-1"})
    device = world.devices["d1"]
    store.write_batch(Batch(events=(NewEvent(device.id, "alarm", T0, {"alarm": "sos"}),)))
    Dispatcher(store, None, None, {"fcm": Sink()}, clock=lambda: T0).run_cycle()
    (delivery,) = call(world, "GET", "/api/notifications/deliveries").json()
    assert delivery["status"] == "sent" and delivery["channel"] == "fcm"
    assert [a["status"] for a in delivery["attempts"]] == ["sent"]
    assert len(delivery["tokenHash"]) == 64
    assert call(world, "GET", "/api/notifications/deliveries", auth=BOB).json() == []


def test_traccar_notifications_crud_and_types(world):
    created = call(world, "POST", "/api/notifications",
                   {"type": "alarm", "always": True, "notificators": "firebase,mail",
                    "attributes": {"alarms": "sos,powerCut"}})
    assert created.status == 200, created.body
    notification = created.json()
    assert notification["type"] == "alarm" and notification["notificators"] == "firebase,mail"
    assert [n["id"] for n in call(world, "GET", "/api/notifications").json()] == [notification["id"]]
    assert call(world, "GET", "/api/notifications", auth=BOB).json() == []
    path = f"/api/notifications/{notification['id']}"
    updated = call(world, "PUT", path, {**notification, "type": "geofenceEnter"})
    assert updated.status == 200 and updated.json()["type"] == "geofenceEnter"
    assert call(world, "PUT", path, {**notification}, auth=BOB).status == 404
    refused = call(world, "POST", "/api/notifications", {"type": "alarm", "notificators": "pigeon"})
    assert refused.status == 400
    assert {"type": "geofenceExit"} in call(world, "GET", "/api/notifications/types").json()
    assert call(world, "DELETE", path).status == 204
    assert call(world, "DELETE", path).status == 404


def test_a_traccar_notification_subscribes_its_owner(world):
    store = world.store
    call(world, "POST", "/api/notifications/tokens", {"channel": "fcm", "token": "tok-1"})
    call(world, "PUT", "/api/notifications/preferences", {"types": []})   # nothing by default
    call(world, "POST", "/api/notifications",
         {"type": "geofenceEnter", "always": True, "notificators": "firebase"})
    device = world.devices["d1"]
    store.write_batch(Batch(events=(
        NewEvent(device.id, "alarm", T0, {"alarm": "sos"}),
        NewEvent(device.id, "geofenceEnter", T0, {"geofenceId": 4}, geofence_id=4))))
    sink = Recorder()
    Dispatcher(store, None, None, {"fcm": sink}, clock=lambda: T0).run_cycle()
    assert [m.data["type"] for _, m in sink.sent] == ["geofenceEnter"]


class Recorder(Sink):
    def __init__(self):
        self.sent = []

    def send(self, target, message):
        self.sent.append((target, message))
        return SendResult(SENT)


def test_only_administrators_register_webhooks(world):
    hook = {"channel": "webhook", "platform": "other", "token": "http://10.0.0.5/hook"}
    assert call(world, "POST", "/api/notifications/tokens", hook).status == 403
    assert call(world, "POST", "/api/notifications/tokens", hook, auth=ADMIN).status == 200
