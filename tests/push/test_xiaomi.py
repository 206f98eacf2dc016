"""Mi Push channel against a fake Mi Push over real loopback HTTP."""

from __future__ import annotations

import json

import pytest

from tests.push.fake_xiaomi import FakeXiaomi, error, invalid_target, server_error
from tests.push.fakegateway import Answer
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
from tracker.push.xiaomi import NOTIFIER, XiaomiNotifier, notify_id

REGID = "hX3k9mR0s/egM9lKDdWotd+QAAtO0njRu/+O/905Xvqpm+sXo064FAgV4A1kwABC"
TARGET = PushTarget("xiaomi", REGID)
MESSAGE = PushMessage(event_id=7, title="Geofence", body="Truck 12 left Depot",
                      data={"eventId": "7", "deviceId": "12"})


@pytest.fixture
def gateway():
    with FakeXiaomi() as fake:
        yield fake


@pytest.fixture
def notifier(gateway):
    n = XiaomiNotifier(settings(gateway))
    yield n
    n.close()


def settings(gateway: FakeXiaomi, **extra) -> dict:
    return {"app_secret": gateway.app_secret, "package_name": gateway.package_name,
            "base_url": gateway.url, "channel_id": "events", "alarm_channel_id": "alarms", **extra}


def test_success_sends_the_documented_form(notifier, gateway):
    result = notifier.send(TARGET, MESSAGE)
    assert result.status == SENT and result.error is None
    (request,) = gateway.received
    assert request.method == "POST" and request.path == "/v3/message/regid"
    assert request.headers["authorization"] == f"key={gateway.app_secret}"
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    form = gateway.form(request)
    assert json.loads(form.pop("payload")) == dict(MESSAGE.data)
    assert form == {"registration_id": REGID, "restricted_package_name": gateway.package_name,
                    "title": "Geofence", "description": "Truck 12 left Depot", "pass_through": "0",
                    "notify_type": "-1", "time_to_live": "86400000", "extra.notify_effect": "1",
                    "extra.channel_id": "events"}


def test_critical_goes_to_the_alarm_channel_and_collapse_key_to_notify_id(notifier, gateway):
    sos = PushMessage(8, "SOS", "Driver pressed SOS", critical=True, collapse_key="sos-12", ttl_s=60)
    assert notifier.send(TARGET, sos).status == SENT
    form = gateway.form(gateway.received[-1])
    assert form["extra.channel_id"] == "alarms"
    assert form["notify_id"] == str(notify_id("sos-12")) and int(form["notify_id"]) >= 0
    assert form["time_to_live"] == "60000"
    assert notify_id("sos-12") == notify_id("sos-12") != notify_id("sos-13")


def test_without_channel_settings_no_channel_is_sent(gateway):
    n = XiaomiNotifier({"app_secret": gateway.app_secret, "package_name": gateway.package_name,
                        "base_url": gateway.url})
    assert n.send(TARGET, PushMessage(1, "SOS", "!", critical=True)).status == SENT
    assert "extra.channel_id" not in gateway.form(gateway.received[-1])
    n.close()


def test_invalid_regid_is_invalid_token(notifier, gateway):
    gateway.invalid_regids.add(REGID)
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (INVALID_TOKEN, "20301")


def test_configured_invalid_token_and_retry_codes(gateway):
    n = XiaomiNotifier(settings(gateway, invalid_token_codes=[20302], retry_codes=[22000]))
    gateway.script.extend([error(20302, "Invalid regId"), error(22000, "daily limit exceeded"),
                           invalid_target()])
    assert (n.send(TARGET, MESSAGE).status, n.send(TARGET, MESSAGE).status,
            n.send(TARGET, MESSAGE).status) == (INVALID_TOKEN, RETRY, INVALID_TOKEN)
    n.close()


def test_wrong_app_secret_is_failed(gateway):
    n = XiaomiNotifier(settings(gateway, app_secret="wrong"))
    result = n.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (FAILED, "21301")
    n.close()


@pytest.mark.parametrize("status", [401, 403])
def test_http_auth_refusal_is_failed(notifier, gateway, status):
    gateway.script.append(Answer(status, "Unauthorized"))
    assert (notifier.send(TARGET, MESSAGE).status, notifier.send(TARGET, MESSAGE).status) == (FAILED, SENT)


def test_bad_request_is_failed(notifier, gateway):
    too_long = PushMessage(1, "T" * 60, "body")
    result = notifier.send(TARGET, too_long)
    assert (result.status, result.error) == (FAILED, "10017")


def test_unknown_code_is_failed_not_success(notifier, gateway):
    gateway.script.append(Answer(200, {"result": "error", "code": 22022, "reason": "Invalid package"}))
    assert (notifier.send(TARGET, MESSAGE).status, notifier.send(TARGET, MESSAGE).status) == (FAILED, SENT)


@pytest.mark.parametrize("answer, expected", [
    (server_error(503, 20), (RETRY, "HTTP 503", 20.0)),
    (server_error(500), (RETRY, "HTTP 500", None)),
    (Answer(429, "slow down", {"Retry-After": "7"}), (RETRY, "HTTP 429", 7.0)),
])
def test_5xx_and_429_are_retry_with_retry_after(notifier, gateway, answer, expected):
    gateway.script.append(answer)
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error, result.retry_after_s) == expected


def test_unreadable_success_body_is_retry(notifier, gateway):
    gateway.script.append(Answer(200, "<html>gateway</html>"))
    assert notifier.send(TARGET, MESSAGE).status == RETRY


def test_connection_refused_is_retry():
    n = XiaomiNotifier({"app_secret": "x", "package_name": "p", "base_url": closed_url()})
    result = n.send(TARGET, MESSAGE)
    assert result.status == RETRY and result.error == "ConnectError"
    n.close()


def test_timeout_is_retry(gateway):
    gateway.stall()
    n = XiaomiNotifier(settings(gateway, timeout_s=0.3))
    result = n.send(TARGET, MESSAGE)
    gateway.release()
    assert (result.status, result.error) == (RETRY, "timeout")
    n.close()


def test_regid_and_secret_never_appear_in_full_in_the_log(notifier, gateway):
    with logged_text() as log:
        gateway.invalid_regids.add(REGID)
        notifier.send(TARGET, MESSAGE)
    text = log.text
    assert mask(REGID) in text
    assert REGID not in text and gateway.app_secret not in text


@pytest.mark.parametrize("bad, key", [
    ({"package_name": "p"}, "app_secret"),
    ({"app_secret": "s"}, "package_name"),
    ({"app_secret": "s", "package_name": "p", "base_url": "api.xmpush.xiaomi.com"}, "base_url"),
    ({"app_secret": "s", "package_name": "p", "channel_id": 3}, "channel_id"),
    ({"app_secret": "s", "package_name": "p", "retry_codes": "22000"}, "retry_codes"),
    ({"app_secret": "s", "package_name": "p", "timeout_s": -1}, "timeout_s"),
])
def test_settings_validation_names_the_key(bad, key):
    with pytest.raises(ChannelConfigError, match=key):
        XiaomiNotifier(bad)


def test_defaults_point_at_the_real_service():
    n = NOTIFIER({"app_secret": "s", "package_name": "p"})
    assert n._base_url == "https://api.xmpush.xiaomi.com" and n.channel == "xiaomi"
    n.close()
