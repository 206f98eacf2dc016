"""/api/notifications: push tokens, preferences and the delivery log."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from tests.web.harness import ADMIN, ALICE, BOB, T0, make_world
from tracker.models import Batch, NewEvent
from tracker.push.base import SENT, SendResult
from tracker.push.dispatcher import Dispatcher
from tracker.storage.schema import notification_devices


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


def test_a_notification_without_always_covers_only_its_linked_devices_and_groups(world):
    store = world.store
    call(world, "POST", "/api/notifications/tokens", {"channel": "fcm", "token": "tok-1"})
    call(world, "PUT", "/api/notifications/preferences", {"types": []})   # only the notification
    notification = call(world, "POST", "/api/notifications",
                        {"type": "alarm", "always": False, "notificators": "firebase"}).json()
    d1, d2 = world.devices["d1"], world.devices["d2"]
    link = {"deviceId": d1.id, "notificationId": notification["id"]}
    assert call(world, "POST", "/api/permissions", link).status == 204
    assert call(world, "POST", "/api/permissions", link).status == 204      # twice is one link
    listed = call(world, "GET", f"/api/notifications?deviceId={d1.id}").json()
    assert [n["id"] for n in listed] == [notification["id"]]
    assert call(world, "GET", f"/api/notifications?deviceId={d2.id}").json() == []

    def alarms_pushed(minutes):   # minutes apart: the same alarm again within 60 s is coalesced
        time = T0 + dt.timedelta(minutes=minutes)
        store.write_batch(Batch(events=(NewEvent(d1.id, "alarm", time, {"alarm": "sos"}),
                                        NewEvent(d2.id, "alarm", time, {"alarm": "sos"}))))
        sink = Recorder()
        Dispatcher(store, None, None, {"fcm": sink}, clock=lambda: time).run_cycle()
        return sorted(m.data["deviceId"] for _, m in sink.sent)

    assert alarms_pushed(0) == [str(d1.id)]
    vans = store.add_group(None, "Vans")
    store.update_device(None, d2.id, group_id=vans.id)
    group_link = {"groupId": vans.id, "notificationId": notification["id"]}
    assert call(world, "POST", "/api/permissions", group_link).status == 204
    assert alarms_pushed(5) == sorted([str(d1.id), str(d2.id)])
    assert call(world, "DELETE", "/api/permissions", link).status == 204
    assert call(world, "DELETE", "/api/permissions", link).status == 404    # no such link now
    assert call(world, "DELETE", "/api/permissions", group_link).status == 204
    assert alarms_pushed(10) == []


def test_notification_links_need_the_callers_notification_and_a_visible_device(world):
    mine = call(world, "POST", "/api/notifications", {"type": "alarm", "always": False}).json()
    bobs = call(world, "POST", "/api/notifications", {"type": "alarm", "always": False},
                auth=BOB).json()
    d1, d3 = world.devices["d1"], world.devices["d3"]            # d3 is in bob's organisation
    refused = call(world, "POST", "/api/permissions", {"deviceId": d1.id, "notificationId": bobs["id"]})
    assert refused.status == 404 and "notification" in refused.json()["message"]
    refused = call(world, "POST", "/api/permissions", {"deviceId": d3.id, "notificationId": mine["id"]})
    assert refused.status == 404 and "device" in refused.json()["message"]
    bad = call(world, "POST", "/api/permissions", {"deviceId": d1.id, "notificationId": "x"})
    assert bad.status == 400 and bad.json()["message"].startswith("notificationId:")
    assert call(world, "GET", "/api/notifications?deviceId=1&deviceId=2").status == 400


def test_deleting_a_group_or_the_notification_removes_its_links(world):
    store = world.store
    notification = call(world, "POST", "/api/notifications", {"type": "alarm", "always": False}).json()
    vans = store.add_group(None, "Vans")
    d1 = world.devices["d1"]
    for owner in ({"groupId": vans.id}, {"deviceId": d1.id}):
        assert call(world, "POST", "/api/permissions",
                    {**owner, "notificationId": notification["id"]}).status == 204
    user = store.user_by_email(ALICE[0])
    (stored,) = store.traccar_notifications(user.id)
    assert (stored.group_ids, stored.device_ids) == ({vans.id}, {d1.id})
    store.delete_group(None, vans.id)
    (stored,) = store.traccar_notifications(user.id)
    assert (stored.group_ids, stored.device_ids) == (frozenset(), {d1.id})
    assert call(world, "DELETE", f"/api/notifications/{notification['id']}").status == 204
    with store._read() as conn:
        assert conn.execute(select(notification_devices)).all() == []


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
