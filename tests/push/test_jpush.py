"""JPush channel against a fake JPush REST API v3 over real loopback HTTP."""

from __future__ import annotations

import base64
import json

import pytest

from tests.push.fake_jpush import (
    FakeJPush,
    appkey_invalid,
    bad_gateway,
    internal_error,
    rate_limited,
)
from tests.push.fakegateway import Answer, Request
from tests.push.support import closed_url, logged_text
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
from tracker.push.jpush import NOTIFIER, JPushNotifier

TOKEN = "1a0018970af2b4e1c6d-jpush-registration-id-0123456789"
TARGET = PushTarget("jpush", TOKEN)
MESSAGE = PushMessage(event_id=7, title="Geofence", body="Truck 12 left Depot",
                      data={"eventId": "7", "deviceId": "12", "type": "geofenceExit"})
ALARM = PushMessage(event_id=8, title="SOS", body="Truck 12: SOS", data={"alarm": "sos"},
                    critical=True, collapse_key="sos-12", ttl_s=600)


@pytest.fixture
def gateway():
    with FakeJPush() as fake:
        yield fake


@pytest.fixture
def notifier(gateway):
    n = JPushNotifier(settings(gateway, channel_id="events", alarm_channel_id="alarms"))
    yield n
    n.close()


def settings(gateway: FakeJPush, **extra) -> dict:
    return {"app_key": gateway.app_key, "master_secret": gateway.master_secret,
            "base_url": gateway.url, **extra}


def test_success_sends_the_documented_request(notifier, gateway):
    """One POST /v3/push with Basic base64(appKey:masterSecret) and the push object."""
    result = notifier.send(TARGET, MESSAGE)
    assert result.status == SENT and result.error is None
    (request,) = gateway.received
    assert request.method == "POST" and request.path == "/v3/push"
    pair = base64.b64decode(request.headers["authorization"].removeprefix("Basic ")).decode()
    assert pair == f"{gateway.app_key}:{gateway.master_secret}"
    assert request.json == {
        "platform": ["android"],
        "audience": {"registration_id": [TOKEN]},
        "notification": {"android": {"alert": "Truck 12 left Depot", "title": "Geofence", "priority": 0,
                                     "channel_id": "events",
                                     "extras": {"eventId": "7", "deviceId": "12", "type": "geofenceExit"}}},
        "options": {"time_to_live": 86400, "apns_production": True},
    }


def test_critical_uses_priority_2_alarm_channel_and_collapse_id(notifier, gateway):
    assert notifier.send(TARGET, ALARM).status == SENT
    push = gateway.received[-1].json
    android = push["notification"]["android"]
    assert (android["priority"], android["channel_id"]) == (2, "alarms")
    assert push["options"] == {"time_to_live": 600, "apns_production": True, "apns_collapse_id": "sos-12"}


def test_ios_target_gets_an_apns_alert_with_title_and_body(gateway):
    n = JPushNotifier(settings(gateway, apns_production=False))
    assert n.send(PushTarget("jpush", TOKEN, "ios"), MESSAGE).status == SENT
    push = gateway.received[-1].json
    assert push["platform"] == ["ios"]
    assert push["notification"] == {"ios": {"alert": {"title": "Geofence", "body": "Truck 12 left Depot"},
                                            "sound": "default", "extras": dict(MESSAGE.data)}}
    assert push["options"]["apns_production"] is False
    n.close()


def test_other_platforms_go_to_all_with_both_blocks(notifier, gateway):
    assert notifier.send(PushTarget("jpush", TOKEN, "web"), MESSAGE).status == SENT
    push = gateway.received[-1].json
    assert push["platform"] == "all" and set(push["notification"]) == {"android", "ios"}


def test_ttl_is_capped_at_ten_days(notifier, gateway):
    message = PushMessage(event_id=1, title="t", body="b", ttl_s=30 * 86400)
    assert notifier.send(TARGET, message).status == SENT
    assert gateway.received[-1].json["options"]["time_to_live"] == 864000


def test_unknown_registration_id_is_invalid_token(notifier, gateway):
    gateway.invalid_tokens.add(TOKEN)
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (INVALID_TOKEN, "1011")


def test_rate_limit_is_retry_after_the_rate_limit_reset(notifier, gateway):
    gateway.script.append(rate_limited(reset_s=42))
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error, result.retry_after_s) == (RETRY, "2002", 42.0)


@pytest.mark.parametrize("answer, error", [
    (internal_error(), "1000"),
    (bad_gateway(), "HTTP 502"),
    (Answer(503, "busy", {"Retry-After": "7"}), "HTTP 503"),
])
def test_server_errors_are_retry(notifier, gateway, answer, error):
    gateway.script.append(answer)
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (RETRY, error)
    if error == "HTTP 503":
        assert result.retry_after_s == 7.0


def test_wrong_master_secret_is_failed_1004(gateway):
    n = JPushNotifier(settings(gateway, master_secret="wrong"))
    result = n.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (FAILED, "1004")
    n.close()


def test_invalid_app_key_is_failed(notifier, gateway):
    gateway.script.append(appkey_invalid())
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (FAILED, "1008")


def test_bad_request_is_failed_with_the_gateway_code(notifier, gateway):
    """The fake refuses a priority outside -2..2 as JPush does (1003)."""
    payload = notifier.build(TARGET, MESSAGE)
    payload["notification"]["android"]["priority"] = 5
    answer = gateway.handle(Request("POST", "/v3/push", {"authorization": gateway.authorization,
                                                          "content-type": "application/json"},
                                    json.dumps(payload).encode()))
    gateway.script.append(answer)
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (FAILED, "1003")


def test_200_without_msg_id_is_not_success(notifier, gateway):
    gateway.script.append(Answer(200, {"sendno": "0"}))
    assert notifier.send(TARGET, MESSAGE).status == RETRY


def test_connection_refused_is_retry():
    n = JPushNotifier({"app_key": "k", "master_secret": "s", "base_url": closed_url()})
    result = n.send(TARGET, MESSAGE)
    assert result.status == RETRY and result.error == "ConnectError"
    n.close()


def test_send_timeout_is_retry(gateway):
    gateway.stall()
    n = JPushNotifier(settings(gateway, timeout_s=0.3))
    result = n.send(TARGET, MESSAGE)
    gateway.release()
    assert (result.status, result.error) == (RETRY, "timeout")
    n.close()


def test_tokens_and_secret_never_appear_in_full_in_the_log(notifier, gateway):
    with logged_text() as log:
        gateway.invalid_tokens.add(TOKEN)
        notifier.send(TARGET, MESSAGE)
        gateway.script.append(rate_limited())
        notifier.send(TARGET, MESSAGE)
    text = log.text
    assert mask(TOKEN) in text
    assert TOKEN not in text and gateway.master_secret not in text


@pytest.mark.parametrize("bad, key", [
    ({"master_secret": "s"}, "app_key"),
    ({"app_key": "k"}, "master_secret"),
    ({"app_key": "k", "master_secret": "s", "base_url": "ftp://x"}, "base_url"),
    ({"app_key": "k", "master_secret": "s", "apns_production": "yes"}, "apns_production"),
    ({"app_key": "k", "master_secret": "s", "alarm_channel_id": 3}, "alarm_channel_id"),
    ({"app_key": "k", "master_secret": "s", "timeout_s": -1}, "timeout_s"),
])
def test_settings_validation_names_the_key(bad, key):
    with pytest.raises(ChannelConfigError, match=key):
        JPushNotifier(bad)


def test_defaults_point_at_the_real_service():
    n = NOTIFIER({"app_key": "k", "master_secret": "s"})
    assert n._base_url == "https://api.jpush.cn" and n.channel == "jpush"
    assert n._apns_production is True
    n.close()
