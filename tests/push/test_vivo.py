"""vivo push channel against a fake vivo push server over real loopback HTTP."""

from __future__ import annotations

import hashlib

import pytest

from tests.push.fake_vivo import FakeVivo, daily_quota_exceeded, server_error, vivo_answer
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
from tracker.push.vivo import NOTIFIER, TOKEN_MAX_AGE_S, VivoNotifier, clip, seconds_to_china_midnight

TOKEN = "15421795840011125630014-vivo-regid-0123456789"
TARGET = PushTarget("vivo", TOKEN)
MESSAGE = PushMessage(event_id=7, title="Geofence", body="Truck 12 left Depot",
                      data={"eventId": "7", "deviceId": "12", "type": "geofenceExit"})
ALARM = PushMessage(event_id=8, title="SOS", body="Truck 12: SOS", critical=True, ttl_s=60)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def gateway(clock):
    with FakeVivo(clock=clock) as fake:
        yield fake


@pytest.fixture
def notifier(gateway, clock):
    n = VivoNotifier(settings(gateway), clock=clock)
    yield n
    n.close()


def settings(gateway: FakeVivo, **extra) -> dict:
    return {"app_id": str(gateway.app_id), "app_key": gateway.app_key, "app_secret": gateway.app_secret,
            "base_url": gateway.url, **extra}


def test_success_sends_the_documented_requests(notifier, gateway, clock):
    """Auth with the md5 sign, then /message/send with the authToken header and the body."""
    result = notifier.send(TARGET, MESSAGE)
    assert result.status == SENT and result.error is None
    auth, send = gateway.received
    timestamp = int(clock.now * 1000)
    assert auth.path == "/message/auth" and auth.json == {
        "appId": gateway.app_id, "appKey": gateway.app_key, "timestamp": timestamp,
        "sign": hashlib.md5(f"{gateway.app_id}{gateway.app_key}{timestamp}{gateway.app_secret}".encode())
        .hexdigest()}
    assert send.method == "POST" and send.path == "/message/send"
    assert send.headers["authtoken"] == gateway.issued[0]
    assert send.json == {
        "regId": TOKEN, "notifyType": 4, "title": "Geofence", "content": "Truck 12 left Depot",
        "timeToLive": 86400, "skipType": 1, "networkType": -1, "classification": 0,
        "requestId": f"7-{token_hash(TOKEN)[:16]}",
        "clientCustomMap": {"eventId": "7", "deviceId": "12", "type": "geofenceExit"},
    }


def test_critical_is_a_system_message_and_ttl_is_clamped_to_vivos_range(notifier, gateway):
    assert notifier.send(TARGET, ALARM).status == SENT
    body = gateway.sends[-1].json
    assert body["classification"] == 1 and body["timeToLive"] == 900
    long_lived = PushMessage(event_id=9, title="t", body="b", ttl_s=30 * 86400)
    assert notifier.send(TARGET, long_lived).status == SENT
    assert gateway.sends[-1].json["timeToLive"] == 7 * 86400


def test_request_id_is_stable_per_event_and_token(notifier, gateway):
    """Retries of one event reuse vivo's idempotency key; other tokens get their own."""
    notifier.send(TARGET, MESSAGE)
    notifier.send(TARGET, MESSAGE)
    notifier.send(PushTarget("vivo", "other-regid"), MESSAGE)
    ids = [r.json["requestId"] for r in gateway.sends]
    assert ids[0] == ids[1] != ids[2]


def test_long_title_and_body_are_clipped_to_vivos_width_limits(notifier, gateway):
    message = PushMessage(event_id=1, title="超速报警" * 8, body="x" * 150)
    assert notifier.send(TARGET, message).status == SENT      # the fake refuses longer texts
    body = gateway.sends[-1].json
    assert body["title"].endswith("…") and body["content"] == "x" * 99 + "…"
    assert clip("short", 40) == "short"


def test_unknown_regid_is_invalid_token(notifier, gateway):
    gateway.invalid_tokens.add(TOKEN)
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (INVALID_TOKEN, "10302")


def test_daily_quota_is_retry_at_china_midnight(notifier, gateway, clock):
    clock.now = 1_700_000_000.0          # 2023-11-15 06:13:20 in China
    notifier.send(TARGET, MESSAGE)       # gets a token first
    gateway.script.append(daily_quota_exceeded())
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (RETRY, "10070")
    assert result.retry_after_s == seconds_to_china_midnight(clock.now) == 64_000


@pytest.mark.parametrize("answer, error, wait_s", [
    (server_error(), "HTTP 500", None),
    (Answer(503, "busy", {"Retry-After": "9"}), "HTTP 503", 9.0),
    (Answer(429, "slow down", {"Retry-After": "3"}), "HTTP 429", 3.0),
])
def test_server_errors_and_rate_limits_are_retry(notifier, gateway, answer, error, wait_s):
    notifier.send(TARGET, MESSAGE)
    gateway.script.append(answer)
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error, result.retry_after_s) == (RETRY, error, wait_s)


def test_bad_request_is_failed_with_the_result_code(notifier, gateway):
    notifier.send(TARGET, MESSAGE)
    gateway.script.append(vivo_answer(10303, "title不合法"))
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (FAILED, "10303")


def test_http_200_with_an_error_result_is_not_success(notifier, gateway):
    notifier.send(TARGET, MESSAGE)
    gateway.script.append(Answer(200, {"result": 10055, "desc": "参数不合法"}))
    assert notifier.send(TARGET, MESSAGE).status == FAILED


def test_auth_token_is_cached_until_its_max_age(notifier, gateway, clock):
    for _ in range(3):
        assert notifier.send(TARGET, MESSAGE).status == SENT
    assert len(gateway.auths) == 1
    clock.now += TOKEN_MAX_AGE_S - 1
    notifier.send(TARGET, MESSAGE)
    assert len(gateway.auths) == 1
    clock.now += 2
    assert notifier.send(TARGET, MESSAGE).status == SENT
    assert len(gateway.auths) == 2
    assert gateway.sends[-1].headers["authtoken"] == gateway.issued[1]


def test_refused_cached_token_is_refreshed_and_the_send_retried_once(notifier, gateway):
    notifier.send(TARGET, MESSAGE)
    gateway.expire_auth_tokens()
    assert notifier.send(TARGET, MESSAGE).status == SENT
    assert len(gateway.auths) == 2 and len(gateway.sends) == 3
    assert gateway.sends[-1].headers["authtoken"] == gateway.issued[1]


def test_refused_fresh_token_is_failed_without_a_loop(notifier, gateway):
    gateway.script.extend([Answer(200, {"result": 0, "desc": "ok", "authToken": "stale-token-xyz"})])
    notifier.send(TARGET, MESSAGE)       # the scripted, unknown token is refused: no retry
    assert (len(gateway.auths), len(gateway.sends)) == (1, 1)
    gateway.received.clear()
    notifier.send(TARGET, MESSAGE)       # a fresh token was fetched for the next send
    assert len(gateway.auths) == 1


def test_refused_fresh_token_result_is_failed(notifier, gateway):
    gateway.script.append(Answer(200, {"result": 0, "desc": "ok", "authToken": "stale-token-xyz"}))
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (FAILED, "10000")


def test_wrong_app_secret_is_failed_without_a_send(gateway, clock):
    n = VivoNotifier(settings(gateway, app_secret="wrong"), clock=clock)
    result = n.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (FAILED, "AUTH_10206")
    assert gateway.sends == []
    n.close()


def test_auth_server_error_is_retry(notifier, gateway):
    gateway.script.append(server_error())
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (RETRY, "AUTH HTTP 500")


def test_connection_refused_is_retry(clock):
    n = VivoNotifier({"app_id": "1", "app_key": "k", "app_secret": "s", "base_url": closed_url()},
                     clock=clock)
    result = n.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (RETRY, "AUTH ConnectError")
    n.close()


def test_send_timeout_is_retry(gateway, clock):
    gateway.stall("/message/send")               # the auth request still answers
    n = VivoNotifier(settings(gateway, timeout_s=0.3), clock=clock)
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
    assert gateway.app_secret not in text


@pytest.mark.parametrize("bad, key", [
    ({"app_key": "k", "app_secret": "s"}, "app_id"),
    ({"app_id": "abc", "app_key": "k", "app_secret": "s"}, "app_id"),
    ({"app_id": "1", "app_secret": "s"}, "app_key"),
    ({"app_id": "1", "app_key": "k"}, "app_secret"),
    ({"app_id": "1", "app_key": "k", "app_secret": "s", "base_url": "api-push.vivo.com.cn"}, "base_url"),
    ({"app_id": "1", "app_key": "k", "app_secret": "s", "timeout_s": "10"}, "timeout_s"),
])
def test_settings_validation_names_the_key(bad, key):
    with pytest.raises(ChannelConfigError, match=key):
        VivoNotifier(bad)


def test_defaults_point_at_the_real_service():
    n = NOTIFIER({"app_id": 10004, "app_key": "k", "app_secret": "s"})
    assert n._base_url == "https://api-push.vivo.com.cn" and n.channel == "vivo"
    n.close()
