"""OPPO push channel against a fake OPPO push server over real loopback HTTP."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.push.fake_oppo import (
    FakeOppo,
    daily_quota_exceeded,
    flow_control,
    oppo_answer,
    service_unavailable,
)
from tests.push.fakegateway import Answer
from tests.push.support import FakeClock, closed_url, logged_text
from tracker.push.base import (
    FAILED,
    INVALID_TOKEN,
    RETRY,
    SENT,
    ChannelConfigError,
    PushMessage,
    PushTarget,
    mask,
    token_hash,
)
from tracker.push.oppo import NOTIFIER, TOKEN_LIFETIME_S, TOKEN_MARGIN_S, OppoNotifier

TOKEN = "OPPO_CN_3a5f0e1d2c4b6a798877665544332211-regid"
TARGET = PushTarget("oppo", TOKEN)
MESSAGE = PushMessage(event_id=7, title="Geofence", body="Truck 12 left Depot",
                      data={"eventId": "7", "deviceId": "12", "type": "geofenceExit"})
ALARM = PushMessage(event_id=8, title="SOS", body="Truck 12: SOS", critical=True, ttl_s=600)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def gateway(clock):
    with FakeOppo(clock=clock) as fake:
        yield fake


@pytest.fixture
def notifier(gateway, clock):
    n = OppoNotifier(settings(gateway, channel_id="events", alarm_channel_id="alarms"), clock=clock)
    yield n
    n.close()


def settings(gateway: FakeOppo, **extra) -> dict:
    return {"app_key": gateway.app_key, "master_secret": gateway.master_secret, "base_url": gateway.url,
            **extra}


def test_success_sends_the_documented_requests(notifier, gateway, clock):
    """Auth form with the sha256 sign, then the unicast form with auth_token and message JSON."""
    result = notifier.send(TARGET, MESSAGE)
    assert result.status == SENT and result.error is None
    auth, send = gateway.received
    timestamp = str(int(clock.now * 1000))
    assert auth.path == "/server/v1/auth" and FakeOppo.form(auth) == {
        "app_key": gateway.app_key, "timestamp": timestamp,
        "sign": hashlib.sha256(f"{gateway.app_key}{timestamp}{gateway.master_secret}".encode()).hexdigest()}
    assert send.path == "/server/v1/message/notification/unicast"
    form = FakeOppo.form(send)
    assert send.headers["auth_token"] == form["auth_token"] == gateway.issued[0]
    assert json.loads(form["message"]) == {
        "target_type": 2, "target_value": TOKEN,
        "notification": {"title": "Geofence", "content": "Truck 12 left Depot", "click_action_type": 0,
                         "off_line_ttl": 86400, "app_message_id": f"7-{token_hash(TOKEN)[:16]}",
                         "action_parameters": '{"eventId":"7","deviceId":"12","type":"geofenceExit"}',
                         "channel_id": "events"}}


def test_critical_uses_the_alarm_channel_category_and_notify_level(notifier, gateway):
    assert notifier.send(TARGET, ALARM).status == SENT
    notification = json.loads(FakeOppo.form(gateway.sends[-1])["message"])["notification"]
    assert (notification["channel_id"], notification["category"], notification["notify_level"]) == \
        ("alarms", "DEVICE_REMINDER", 16)
    assert notification["off_line_ttl"] == 600 and "action_parameters" not in notification


def test_empty_alarm_category_sends_no_category(gateway, clock):
    n = OppoNotifier(settings(gateway, alarm_category=""), clock=clock)
    assert n.send(TARGET, ALARM).status == SENT
    notification = json.loads(FakeOppo.form(gateway.sends[-1])["message"])["notification"]
    assert "category" not in notification and "notify_level" not in notification
    n.close()


def test_long_texts_and_ttl_are_cut_to_oppos_limits(notifier, gateway):
    message = PushMessage(event_id=1, title="T" * 80, body="B" * 300, ttl_s=30 * 86400)
    assert notifier.send(TARGET, message).status == SENT
    notification = json.loads(FakeOppo.form(gateway.sends[-1])["message"])["notification"]
    assert len(notification["title"]) == 50 and len(notification["content"]) == 200
    assert notification["off_line_ttl"] == 864000


def test_unknown_registration_id_is_invalid_token(notifier, gateway):
    gateway.invalid_tokens.add(TOKEN)
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (INVALID_TOKEN, "10000")


def test_daily_quota_is_retry_at_china_midnight(notifier, gateway):
    notifier.send(TARGET, MESSAGE)
    gateway.script.append(daily_quota_exceeded())
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error, result.retry_after_s) == (RETRY, "33", 64_000)


@pytest.mark.parametrize("answer, error, wait_s", [
    (service_unavailable(), "-1", None),
    (flow_control(), "-2", None),
    (oppo_answer(13, "App Call Limited"), "13", None),
    (Answer(502, "Bad Gateway"), "HTTP 502", None),
    (Answer(503, "busy", {"Retry-After": "8"}), "HTTP 503", 8.0),
])
def test_busy_and_server_errors_are_retry(notifier, gateway, answer, error, wait_s):
    notifier.send(TARGET, MESSAGE)
    gateway.script.append(answer)
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error, result.retry_after_s) == (RETRY, error, wait_s)


def test_invalid_arguments_are_failed(notifier, gateway):
    notifier.send(TARGET, MESSAGE)
    gateway.script.append(oppo_answer(41, "Invalid Arguments"))
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (FAILED, "41")


def test_auth_token_is_cached_until_shortly_before_24_hours(notifier, gateway, clock):
    for _ in range(3):
        assert notifier.send(TARGET, MESSAGE).status == SENT
    assert len(gateway.auths) == 1
    clock.now += TOKEN_LIFETIME_S - TOKEN_MARGIN_S - 1
    notifier.send(TARGET, MESSAGE)
    assert len(gateway.auths) == 1
    clock.now += 2
    assert notifier.send(TARGET, MESSAGE).status == SENT
    assert len(gateway.auths) == 2
    assert FakeOppo.form(gateway.sends[-1])["auth_token"] == gateway.issued[1]


def test_refused_cached_token_is_refreshed_and_the_send_retried_once(notifier, gateway):
    notifier.send(TARGET, MESSAGE)
    gateway.expire_auth_tokens()
    assert notifier.send(TARGET, MESSAGE).status == SENT
    assert (len(gateway.auths), len(gateway.sends)) == (2, 3)


def test_refused_fresh_token_is_failed_without_a_loop(notifier, gateway):
    gateway.script.append(Answer(200, {"code": 0, "message": "Success",
                                       "data": {"auth_token": "stale", "create_time": 0}}))
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (FAILED, "11")
    assert (len(gateway.auths), len(gateway.sends)) == (1, 1)


def test_wrong_master_secret_is_failed_without_a_send(gateway, clock):
    n = OppoNotifier(settings(gateway, master_secret="wrong"), clock=clock)
    result = n.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (FAILED, "AUTH_16")
    assert gateway.sends == []
    n.close()


def test_auth_service_unavailable_is_retry(notifier, gateway):
    gateway.script.append(service_unavailable())
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (RETRY, "AUTH_-1")


def test_connection_refused_is_retry(clock):
    n = OppoNotifier({"app_key": "k", "master_secret": "s", "base_url": closed_url()}, clock=clock)
    result = n.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (RETRY, "AUTH ConnectError")
    n.close()


def test_send_timeout_is_retry(gateway, clock):
    gateway.stall("/unicast")                    # the auth request still answers
    n = OppoNotifier(settings(gateway, timeout_s=0.3), clock=clock)
    result = n.send(TARGET, MESSAGE)
    gateway.release()
    assert (result.status, result.error) == (RETRY, "timeout")
    n.close()


def test_tokens_never_appear_in_full_in_the_log(notifier, gateway):
    with logged_text() as log:
        notifier.send(TARGET, MESSAGE)
        gateway.expire_auth_tokens()
        gateway.invalid_tokens.add(TOKEN)
        notifier.send(TARGET, MESSAGE)
    text = log.text
    assert mask(TOKEN) in text and TOKEN not in text
    for auth_token in gateway.issued:
        assert auth_token not in text
    assert gateway.master_secret not in text


@pytest.mark.parametrize("bad, key", [
    ({"master_secret": "s"}, "app_key"),
    ({"app_key": "k"}, "master_secret"),
    ({"app_key": "k", "master_secret": "s", "base_url": "ftp://x"}, "base_url"),
    ({"app_key": "k", "master_secret": "s", "channel_id": 1}, "channel_id"),
    ({"app_key": "k", "master_secret": "s", "alarm_category": False}, "alarm_category"),
    ({"app_key": "k", "master_secret": "s", "timeout_s": True}, "timeout_s"),
])
def test_settings_validation_names_the_key(bad, key):
    with pytest.raises(ChannelConfigError, match=key):
        OppoNotifier(bad)


def test_defaults_point_at_the_real_service():
    n = NOTIFIER({"app_key": "k", "master_secret": "s"})
    assert n._base_url == "https://api.push.oppomobile.com" and n.channel == "oppo"
    n.close()
