"""Huawei Push Kit channel against a fake Push Kit over real loopback HTTP."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest

from tests.push.fake_huawei import (
    FakeHuawei,
    body_too_big,
    internal_error,
    too_many_requests,
    traffic_control,
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
)
from tracker.push.huawei import NOTIFIER, TOKEN_MARGIN_S, HuaweiNotifier

TOKEN = "IQAAAACy0kYhAADx2yK1dev1ce-t0ken-for-huawei-push-kit-0123456789"
TARGET = PushTarget("huawei", TOKEN)
MESSAGE = PushMessage(event_id=7, title="Geofence", body="Truck 12 left Depot",
                      data={"eventId": "7", "deviceId": "12", "type": "geofenceExit"})


@pytest.fixture
def gateway():
    with FakeHuawei() as fake:
        yield fake


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def notifier(gateway, clock):
    n = HuaweiNotifier(settings(gateway), clock=clock)
    yield n
    n.close()


def settings(gateway: FakeHuawei, **extra) -> dict:
    return {"app_id": gateway.app_id, "client_secret": gateway.client_secret,
            "base_url": gateway.url, "auth_url": gateway.url, **extra}


def test_success_sends_the_documented_request(notifier, gateway):
    """One token request (form, client credentials) then one send with Bearer and the body."""
    result = notifier.send(TARGET, MESSAGE)
    assert result.status == SENT and result.error is None
    token_request, send = gateway.received
    assert token_request.path == "/oauth2/v3/token"
    assert token_request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert parse_qs(token_request.body.decode()) == {
        "grant_type": ["client_credentials"], "client_id": [gateway.app_id],
        "client_secret": [gateway.client_secret]}
    assert send.method == "POST" and send.path == f"/v1/{gateway.app_id}/messages:send"
    assert send.headers["authorization"] == f"Bearer {gateway.issued[0]}"
    body = send.json
    assert body["validate_only"] is False
    message = body["message"]
    assert message["token"] == [TOKEN]
    assert json.loads(message["data"]) == dict(MESSAGE.data)
    android = message["android"]
    assert android["urgency"] == "NORMAL" and android["ttl"] == "86400s"
    assert "category" not in android
    assert android["notification"] == {"title": "Geofence", "body": "Truck 12 left Depot",
                                       "click_action": {"type": 3}, "importance": "NORMAL"}


def test_client_id_setting_is_used_for_oauth(clock):
    with FakeHuawei(client_id="oauth-client-9") as gateway:
        n = HuaweiNotifier(settings(gateway, client_id="oauth-client-9"), clock=clock)
        assert n.send(TARGET, MESSAGE).status == SENT
        assert parse_qs(gateway.token_requests[0].body.decode())["client_id"] == ["oauth-client-9"]
        n.close()


def test_critical_uses_high_urgency_alarm_category_importance_and_channel(gateway, clock):
    n = HuaweiNotifier(settings(gateway, channel_id="events", alarm_channel_id="alarms"), clock=clock)
    sos = PushMessage(event_id=8, title="SOS", body="Driver pressed SOS", critical=True,
                      collapse_key="sos-12", ttl_s=600)
    assert n.send(TARGET, sos).status == SENT
    android = gateway.sends[-1].json["message"]["android"]
    assert android["urgency"] == "HIGH"
    assert android["category"] == "DEVICE_REMINDER"
    assert android["ttl"] == "600s"
    assert android["notification"]["importance"] == "HIGH"
    assert android["notification"]["channel_id"] == "alarms"
    assert android["notification"]["tag"] == "sos-12"
    assert "data" not in gateway.sends[-1].json["message"]
    n.send(TARGET, MESSAGE)
    assert gateway.sends[-1].json["message"]["android"]["notification"]["channel_id"] == "events"
    n.close()


def test_alarm_category_and_importance_are_configurable(gateway, clock):
    n = HuaweiNotifier(settings(gateway, alarm_category="", alarm_importance="NORMAL"), clock=clock)
    assert n.send(TARGET, PushMessage(1, "SOS", "!", critical=True)).status == SENT
    android = gateway.sends[-1].json["message"]["android"]
    assert "category" not in android and android["notification"]["importance"] == "NORMAL"
    assert android["urgency"] == "HIGH"
    n.close()


def test_all_tokens_invalid_is_invalid_token(notifier, gateway):
    gateway.invalid_tokens.add(TOKEN)
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (INVALID_TOKEN, "80300007")


def test_partial_success_listing_our_token_is_invalid_token(notifier, gateway):
    notifier.send(TARGET, MESSAGE)              # an access token first
    gateway.script.append(Answer(200, {"code": "80100000", "requestId": "1",
                                       "msg": json.dumps({"success": 0, "failure": 1,
                                                          "illegal_tokens": [TOKEN]})}))
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (INVALID_TOKEN, "80100000")


def test_partial_success_not_listing_our_token_is_sent(notifier, gateway):
    notifier.send(TARGET, MESSAGE)              # an access token first
    gateway.script.append(Answer(200, {"code": "80100000", "requestId": "1",
                                       "msg": json.dumps({"success": 1, "failure": 1,
                                                          "illegal_tokens": ["someone-else"]})}))
    assert notifier.send(TARGET, MESSAGE).status == SENT


def test_http_200_with_an_error_code_is_not_success(notifier, gateway):
    """Success is judged by the body code, not the HTTP status."""
    notifier.send(TARGET, MESSAGE)
    gateway.script.append(Answer(200, {"code": "80300002", "msg": "no permission", "requestId": "1"}))
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (FAILED, "80300002")


def test_internal_error_is_retry(notifier, gateway):
    notifier.send(TARGET, MESSAGE)              # get a token first so the script hits the send
    gateway.script.append(internal_error())
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (RETRY, "81000001")


def test_body_too_big_is_failed(notifier, gateway):
    huge = PushMessage(1, "t", "x" * 5000)
    result = notifier.send(TARGET, huge)
    assert (result.status, result.error) == (FAILED, "80300008")
    gateway.script.append(body_too_big())
    assert notifier.send(TARGET, MESSAGE).error == "80300008"


def test_bad_request_is_failed(notifier, gateway):
    notifier.send(TARGET, MESSAGE)              # an access token first
    gateway.script.append(Answer(400, {"code": "80100003", "msg": "Illegal message structure",
                                       "requestId": "1"}))
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (FAILED, "80100003")


@pytest.mark.parametrize("answer, expected", [
    (traffic_control(30), (RETRY, "HTTP 503", 30.0)),
    (too_many_requests(12), (RETRY, "HTTP 429", 12.0)),
    (Answer(502, "Bad Gateway"), (RETRY, "HTTP 502", None)),
])
def test_rate_limits_and_5xx_are_retry_with_retry_after(notifier, gateway, answer, expected):
    notifier.send(TARGET, MESSAGE)
    gateway.script.append(answer)
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error, result.retry_after_s) == expected


def test_unreadable_success_body_is_retry(notifier, gateway):
    notifier.send(TARGET, MESSAGE)
    gateway.script.append(Answer(200, "<html>proxy</html>"))
    assert notifier.send(TARGET, MESSAGE).status == RETRY


def test_access_token_is_cached_until_shortly_before_expiry(notifier, gateway, clock):
    notifier.send(TARGET, MESSAGE)
    clock.now += 3600 - TOKEN_MARGIN_S - 1
    notifier.send(TARGET, MESSAGE)
    assert len(gateway.token_requests) == 1
    clock.now += 2                               # now inside the margin: refresh
    notifier.send(TARGET, MESSAGE)
    assert len(gateway.token_requests) == 2
    assert gateway.sends[-1].headers["authorization"] == f"Bearer {gateway.issued[1]}"


def test_expired_cached_token_is_refreshed_and_the_send_retried_once(notifier, gateway):
    notifier.send(TARGET, MESSAGE)
    gateway.expire_access_tokens()               # the server forgets it: 401 / 80200003
    result = notifier.send(TARGET, MESSAGE)
    assert result.status == SENT
    assert len(gateway.token_requests) == 2
    assert [r.headers["authorization"] for r in gateway.sends[-2:]] == [
        f"Bearer {gateway.issued[0]}", f"Bearer {gateway.issued[1]}"]


def test_auth_refused_for_a_fresh_token_is_failed_after_one_refresh(notifier, gateway):
    notifier.send(TARGET, MESSAGE)
    gateway.accept_access_tokens = False         # every token is refused, new ones too
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (FAILED, "80200003")
    assert len(gateway.token_requests) == 2      # one refresh, no loop
    assert len(gateway.sends) == 3


def test_wrong_client_secret_is_failed_without_a_send(gateway, clock):
    n = HuaweiNotifier({**settings(gateway), "client_secret": "wrong"}, clock=clock)
    result = n.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (FAILED, "OAUTH_1101")
    assert gateway.sends == []
    n.close()


def test_oauth_server_error_is_retry(notifier, gateway):
    gateway.script.append(Answer(503, "busy", {"Retry-After": "5"}))
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error, result.retry_after_s) == (RETRY, "OAUTH HTTP 503", 5.0)


def test_connection_refused_is_retry(clock):
    url = closed_url()
    n = HuaweiNotifier({"app_id": "1", "client_secret": "x", "base_url": url, "auth_url": url},
                       clock=clock)
    result = n.send(TARGET, MESSAGE)
    assert result.status == RETRY and result.error.startswith("OAUTH")
    n.close()


def test_send_timeout_is_retry(gateway, clock):
    gateway.stall(":send")                       # the OAuth token request still answers
    n = HuaweiNotifier(settings(gateway, timeout_s=0.3), clock=clock)
    result = n.send(TARGET, MESSAGE)
    gateway.release()
    assert (result.status, result.error) == (RETRY, "timeout")
    n.close()


def test_tokens_never_appear_in_full_in_the_log(notifier, gateway):
    with logged_text() as log:
        notifier.send(TARGET, MESSAGE)
        gateway.expire_access_tokens()
        gateway.invalid_tokens.add(TOKEN)
        notifier.send(TARGET, MESSAGE)
    text = log.text
    assert mask(TOKEN) in text
    assert TOKEN not in text
    for access_token in gateway.issued:
        assert access_token not in text
    assert gateway.client_secret not in text


@pytest.mark.parametrize("bad, key", [
    ({"client_secret": "x"}, "app_id"),
    ({"app_id": "1"}, "client_secret"),
    ({"app_id": "1", "client_secret": "x", "base_url": "ftp://x"}, "base_url"),
    ({"app_id": "1", "client_secret": "x", "auth_url": 5}, "auth_url"),
    ({"app_id": "1", "client_secret": "x", "alarm_importance": "URGENT"}, "alarm_importance"),
    ({"app_id": "1", "client_secret": "x", "timeout_s": 0}, "timeout_s"),
])
def test_settings_validation_names_the_key(bad, key):
    with pytest.raises(ChannelConfigError, match=key):
        HuaweiNotifier(bad)


def test_defaults_point_at_the_real_service():
    n = NOTIFIER({"app_id": "1", "client_secret": "x"})
    assert n._base_url == "https://push-api.cloud.huawei.com"
    assert n._auth_url == "https://oauth-login.cloud.huawei.com"
    assert n._client_id == "1" and n.channel == "huawei"
    n.close()
