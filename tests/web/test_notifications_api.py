"""/api/notifications: push tokens, preferences and the delivery log."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from sqlalchemy import select

from tests.push.fake_smtp import FakeSmtp
from tests.web.harness import ADMIN, ALICE, BOB, T0, Client, make_world
from tracker.models import Batch, NewEvent
from tracker.push.base import SENT, SendResult
from tracker.push.confirm import ConfirmationMailer
from tracker.push.dispatcher import Dispatcher
from tracker.push.email import EmailNotifier
from tracker.storage.schema import notification_devices
from web.site import build_site


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


# -- push targets: never moved, e-mail confirmed by a mailed code ------------------------

MAILER = "alerts@tracker.example"
ADDRESS = "dispatch@fleet.example"
PUBLIC_URL = "https://fleet.example.com"


@pytest.fixture
def smtp():
    with FakeSmtp() as fake:
        yield fake


@pytest.fixture
def mail_world(world, smtp):
    """`world` with an e-mail channel on the fake SMTP server: its site is built with
    the ConfirmationMailer as `tracker.app` passes it to `web.site.build_site` when
    [push.email] is configured (the mail goes out through the world's thread pool here)."""
    world.email = EmailNotifier({"host": smtp.host, "port": smtp.port, "starttls": False,
                                 "from_address": MAILER, "timeout_s": 5})
    world.mailer = ConfirmationMailer(world.email, world.reactor, world.threadpool,
                                      public_url=PUBLIC_URL)
    world.site = build_site(world.store, world.threadpool, world.reactor, commands=world.commands,
                            confirmations=world.mailer)
    world.client = Client(world.site)
    return world


def code_in(mail) -> str:
    """The code the confirmation mail carries (and check its link carries it too)."""
    text = mail.message.get_content()
    (code,) = re.findall(r"Confirmation code: ([0-9]{8})", text)
    assert re.search(rf"{re.escape(PUBLIC_URL)}/api/notifications/tokens/[0-9]+/confirm\?code={code}",
                     text)
    return code


def register_address(world, address=ADDRESS, auth=ALICE):
    return call(world, "POST", "/api/notifications/tokens",
                {"channel": "email", "platform": "web", "token": address}, auth=auth)


def alarm_at(world, minutes):
    time = T0 + dt.timedelta(minutes=minutes)
    world.store.write_batch(Batch(events=(
        NewEvent(world.devices["d1"].id, "alarm", time, {"alarm": "sos"}),)))
    return time


@pytest.mark.parametrize("thief", [ADMIN, BOB], ids=["same-organisation", "other-organisation"])
def test_a_token_someone_else_holds_is_refused_and_stays_theirs(world, thief):
    mine = call(world, "POST", "/api/notifications/tokens", {"channel": "fcm", "token": "alice-phone"})
    assert mine.status == 200
    taken = call(world, "POST", "/api/notifications/tokens",
                 {"channel": "fcm", "platform": "ios", "token": "alice-phone"}, auth=thief)
    assert taken.status == 409, taken.body
    message = taken.json()["message"]
    assert "already registered by another user" in message
    assert "alice" not in message.lower() and str(mine.json()["id"]) not in message
    assert call(world, "GET", "/api/notifications/tokens", auth=thief).json() == []
    assert call(world, "GET", "/api/notifications/tokens").json() == [mine.json()]
    alarm_at(world, 0)
    sink = Recorder()
    Dispatcher(world.store, None, None, {"fcm": sink}, clock=lambda: T0).run_cycle()
    alice = world.store.user_by_email(ALICE[0])
    assert [(t.token, t.platform) for t, _ in sink.sent] == [("alice-phone", "android")]
    assert [(d.user_id, d.status) for d in world.store.deliveries_of()] == [(alice.id, "sent")]


def test_registering_ones_own_token_again_is_idempotent(world):
    first = call(world, "POST", "/api/notifications/tokens", {"channel": "fcm", "token": "tok-1"})
    again = call(world, "POST", "/api/notifications/tokens", {"channel": "fcm", "token": "tok-1"})
    assert again.status == 200 and again.json() == first.json()
    assert first.json()["confirmed"] is True
    assert len(call(world, "GET", "/api/notifications/tokens").json()) == 1


def test_e_mail_targets_need_an_e_mail_channel(world):
    refused = register_address(world)
    assert refused.status == 400
    assert "no e-mail channel configured" in refused.json()["message"]
    assert call(world, "GET", "/api/notifications/tokens").json() == []


def test_an_e_mail_target_is_confirmed_with_the_mailed_code_then_gets_alarms(mail_world, smtp):
    world = mail_world
    created = register_address(world)
    assert created.status == 200, created.body
    target = created.json()
    assert target["confirmed"] is False and target["confirmationSent"] is True
    (mail,) = smtp.messages
    assert mail.rcpt_tos == [ADDRESS] and mail.mail_from == MAILER
    code = code_in(mail)
    assert f"/tokens/{target['id']}/confirm" in mail.message.get_content()

    run = Dispatcher(world.store, None, None, {"email": world.email}, clock=lambda: T0)
    alarm_at(world, 0)
    run.run_cycle()
    assert len(smtp.messages) == 1                      # unconfirmed: nothing sent
    assert call(world, "GET", "/api/notifications/tokens").json()[0]["confirmed"] is False

    path = f"/api/notifications/tokens/{target['id']}/confirm"
    done = call(world, "POST", path, {"code": code})
    assert done.status == 200, done.body
    assert done.json()["confirmed"] is True
    assert call(world, "GET", "/api/notifications/tokens").json()[0]["confirmed"] is True
    assert call(world, "POST", path, {"code": "whatever"}).status == 200   # already confirmed

    time = alarm_at(world, 10)
    Dispatcher(world.store, None, None, {"email": world.email}, clock=lambda: time).run_cycle()
    alarm = smtp.messages[-1]
    assert len(smtp.messages) == 2 and alarm.rcpt_tos == [ADDRESS]
    assert "SOS" in alarm.message["Subject"]


def test_the_link_in_the_mail_confirms_for_the_logged_in_owner(mail_world, smtp):
    world = mail_world
    target = register_address(world).json()
    code = code_in(smtp.messages[-1])
    path = f"/api/notifications/tokens/{target['id']}/confirm?code={code}"
    anonymous = world.client.request("GET", path)
    assert anonymous.status == 401
    assert world.client.request("GET", path, auth=BOB).status == 404
    opened = world.client.request("GET", path, auth=ALICE)
    assert opened.status == 200 and opened.json()["confirmed"] is True


def test_wrong_codes_are_counted_and_the_fifth_voids_the_code(mail_world, smtp):
    world = mail_world
    target = register_address(world).json()
    code = code_in(smtp.messages[-1])
    wrong = f"{(int(code) + 1) % 10 ** 8:08d}"
    path = f"/api/notifications/tokens/{target['id']}/confirm"
    for left in (4, 3, 2, 1):
        refused = call(world, "POST", path, {"code": wrong})
        assert refused.status == 400 and f"{left} tr" in refused.json()["message"]
    last = call(world, "POST", path, {"code": wrong})
    assert last.status == 410 and "register the address again" in last.json()["message"]
    assert call(world, "POST", path, {"code": code}).status == 410
    assert call(world, "GET", "/api/notifications/tokens").json()[0]["confirmed"] is False
    again = register_address(world)                     # a new code, a fresh count
    assert again.status == 200 and again.json()["id"] == target["id"]
    fresh = code_in(smtp.messages[-1])
    assert call(world, "POST", path, {"code": fresh}).status == 200


def test_an_expired_code_is_refused(mail_world, smtp):
    world = mail_world
    target = register_address(world).json()
    code = code_in(smtp.messages[-1])
    world.reactor.advance(24 * 3600)
    expired = call(world, "POST", f"/api/notifications/tokens/{target['id']}/confirm",
                   {"code": code})
    assert expired.status == 410 and "expired" in expired.json()["message"]


def test_someone_elses_target_id_is_a_404(mail_world, smtp):
    world = mail_world
    target = register_address(world).json()
    code = code_in(smtp.messages[-1])
    for path in (f"/api/notifications/tokens/{target['id']}/confirm",
                 f"/api/notifications/tokens/{target['id'] + 100}/confirm"):
        response = call(world, "POST", path, {"code": code}, auth=BOB)
        assert response.status == 404
    assert call(world, "POST", "/api/notifications/tokens/x/confirm", {"code": code}).status == 404
    assert call(world, "GET", "/api/notifications/tokens").json()[0]["confirmed"] is False


@pytest.mark.parametrize("body", [{}, {"code": ""}, {"code": 12345678}, {"code": "1" * 65}])
def test_a_confirmation_without_a_usable_code_is_a_400(mail_world, body):
    target = register_address(mail_world).json()
    response = call(mail_world, "POST", f"/api/notifications/tokens/{target['id']}/confirm", body)
    assert response.status == 400 and response.json()["message"].startswith("code")


def test_an_address_another_user_registered_is_refused(mail_world, smtp):
    world = mail_world
    assert register_address(world).status == 200
    taken = register_address(world, auth=BOB)
    assert taken.status == 409 and "alice" not in taken.json()["message"].lower()
    assert len(smtp.messages) == 1                      # no mail for the refused one


def test_an_address_the_mail_server_refuses_is_not_registered(mail_world, smtp):
    smtp.refuse(ADDRESS)
    refused = register_address(mail_world)
    assert refused.status == 400 and "refused this address" in refused.json()["message"]
    assert ADDRESS not in refused.json()["message"]
    assert call(mail_world, "GET", "/api/notifications/tokens").json() == []


def test_a_mail_server_that_is_down_is_a_502_and_nothing_is_registered(mail_world, smtp):
    smtp.fail_next("MAIL", 451, "4.3.0 try again later")
    response = register_address(mail_world)
    assert response.status == 502 and "SMTP 451" in response.json()["message"]
    assert call(mail_world, "GET", "/api/notifications/tokens").json() == []
    assert register_address(mail_world).status == 200     # the next try works


def test_not_an_address_is_a_400(mail_world, smtp):
    response = register_address(mail_world, address="not an address")
    assert response.status == 400 and response.json()["message"].startswith("token")
    assert smtp.messages == []


def test_confirmation_mails_per_user_are_limited(mail_world, smtp):
    world = mail_world
    for n in range(10):
        assert register_address(world, address=f"a{n}@fleet.example").status == 200
    limited = register_address(world, address="a10@fleet.example")
    assert limited.status == 429 and int(limited.header("Retry-After")) > 0
    assert len(smtp.messages) == 10
    assert register_address(world, address="b@fleet.example", auth=BOB).status == 200
    world.reactor.advance(3600)
    assert register_address(world, address="a10@fleet.example").status == 200
