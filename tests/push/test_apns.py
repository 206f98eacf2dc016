"""ApnsNotifier against a fake APNs that speaks real HTTP/2 (h2c) on loopback."""

from __future__ import annotations

import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.push import fake_apns
from tests.push.fake_apns import FakeApns
from tests.push.support import T0, FakeClock, closed_url, logged_text
from tracker.push.apns import TOKEN_REFRESH_S, ApnsNotifier, collapse_id
from tracker.push.base import (
    FAILED,
    INVALID_TOKEN,
    RETRY,
    SENT,
    ChannelConfigError,
    PushMessage,
    PushTarget,
)

TEAM_ID = "TEAM123456"
KEY_ID = "KEY1234567"
TOPIC = "com.example.tracker"
DEVICE = "a1" * 32


@pytest.fixture(scope="module")
def private_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def pem(private_key) -> str:
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gateway(private_key, clock):
    with FakeApns(private_key.public_key(), team_id=TEAM_ID, key_id=KEY_ID, topic=TOPIC,
                  clock=clock) as fake:
        yield fake


def settings(pem: str, base_url: str, **extra) -> dict:
    return {"team_id": TEAM_ID, "key_id": KEY_ID, "key": pem, "topic": TOPIC, "base_url": base_url,
            **extra}


@pytest.fixture
def notifier(pem, gateway, clock):
    n = ApnsNotifier(settings(pem, gateway.url, timeout_s=2), clock=clock)
    yield n
    n.close()


def target(token: str = DEVICE) -> PushTarget:
    return PushTarget("apns", token, "ios")


def message(**kw) -> PushMessage:
    fields = {"event_id": 42, "title": "Overspeed", "body": "Truck 7 at 112 km/h",
              "data": {"eventId": "42", "deviceId": "7"}, **kw}
    return PushMessage(**fields)


def test_success_sends_the_documented_request(notifier, gateway):
    """200 -> sent; URL, bearer JWT, apns-* headers and aps payload exactly as documented."""
    result = notifier.send(target(), message(collapse_key="dev7-speed", ttl_s=600))
    assert result.status == SENT and result.error is None
    request = gateway.received[-1]
    assert request.method == "POST" and request.path == f"/3/device/{DEVICE}"
    assert request.headers["apns-topic"] == TOPIC
    assert request.headers["apns-push-type"] == "alert"
    assert request.headers["apns-priority"] == "5"
    assert request.headers["apns-expiration"] == str(int(T0) + 600)
    assert request.headers["apns-collapse-id"] == "dev7-speed"
    scheme, token = request.headers["authorization"].split(" ", 1)
    assert scheme == "bearer"
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    assert jwt.get_unverified_header(token)["kid"] == KEY_ID
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims == {"iss": TEAM_ID, "iat": int(T0)}
    assert request.json == {"aps": {"alert": {"title": "Overspeed", "body": "Truck 7 at 112 km/h"},
                                    "sound": "default"},
                            "eventId": "42", "deviceId": "7"}


def test_the_client_really_speaks_http2(notifier, gateway):
    """The fake only speaks h2: a send reaching it proves HTTP/2; an HTTP/1.1 client is refused."""
    assert notifier.send(target(), message()).status == SENT
    assert gateway.connections == 1 and gateway.protocol_errors == 0
    with httpx.Client(timeout=2) as http1, pytest.raises(httpx.HTTPError):
        http1.post(f"{gateway.url}/3/device/{DEVICE}", json={"aps": {}})
    deadline = time.monotonic() + 5   # the fake's thread counts the error after the client saw it
    while gateway.protocol_errors == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gateway.protocol_errors == 1
    assert len(gateway.received) == 1


def test_one_connection_is_reused_for_many_messages(notifier, gateway):
    for _ in range(3):
        assert notifier.send(target(), message()).status == SENT
    assert gateway.connections == 1


def test_critical_is_high_priority_and_time_sensitive(notifier, gateway):
    assert notifier.send(target(), message(critical=True)).status == SENT
    request = gateway.received[-1]
    assert request.headers["apns-priority"] == "10"
    assert request.json["aps"]["interruption-level"] == "time-sensitive"
    assert request.json["aps"]["sound"] == "default"


def test_critical_alerts_entitlement_uses_the_critical_sound(pem, gateway, clock):
    n = ApnsNotifier(settings(pem, gateway.url, critical_alerts=True), clock=clock)
    try:
        assert n.send(target(), message(critical=True)).status == SENT
        assert n.send(target(), message()).status == SENT
    finally:
        n.close()
    critical, ordinary = (r.json["aps"] for r in gateway.received)
    assert critical["sound"] == {"critical": 1, "name": "default", "volume": 1.0}
    assert critical["interruption-level"] == "critical"
    assert ordinary["sound"] == "default" and "interruption-level" not in ordinary


def test_long_collapse_key_is_hashed_to_64_bytes(notifier, gateway):
    key = "geofence-" + "x" * 100
    assert notifier.send(target(), message(collapse_key=key)).status == SENT
    sent = gateway.received[-1].headers["apns-collapse-id"]
    assert sent == collapse_id(key) and len(sent.encode()) == 64


def test_data_cannot_override_aps(notifier, gateway):
    assert notifier.send(target(), message(data={"aps": "evil", "url": "https://x"})).status == SENT
    body = gateway.received[-1].json
    assert body["aps"]["alert"]["title"] == "Overspeed" and body["url"] == "https://x"


def test_provider_token_is_cached_then_refreshed_after_50_minutes(notifier, gateway, clock):
    notifier.send(target(), message())
    clock.now += 20 * 60
    notifier.send(target(), message())
    first, second = (r.headers["authorization"] for r in gateway.received)
    assert first == second, "the provider token must not be re-signed per message"
    clock.now = T0 + TOKEN_REFRESH_S + 1
    assert notifier.send(target(), message()).status == SENT
    third = gateway.received[-1].headers["authorization"]
    assert third != first
    assert jwt.decode(third.split(" ")[1], options={"verify_signature": False})["iat"] == int(clock.now)


def test_a_token_older_than_an_hour_is_refused_by_the_fake(pem, gateway, clock):
    """The fake enforces Apple's 1 h limit: a notifier with a slow clock gets ExpiredProviderToken."""
    slow = FakeClock(T0 - 2 * 3600)
    n = ApnsNotifier(settings(pem, gateway.url), clock=slow)
    try:
        result = n.send(target(), message())
    finally:
        n.close()
    assert result == result.__class__(FAILED, "ExpiredProviderToken")
    assert len(gateway.received) == 2, "re-signed and retried exactly once"


def test_expired_provider_token_re_signs_and_retries_once(notifier, gateway):
    gateway.script.append(fake_apns.expired_provider_token())
    result = notifier.send(target(), message())
    assert result.status == SENT
    assert len(gateway.received) == 2
    first, second = (r.headers["authorization"] for r in gateway.received)
    assert first != second
    assert notifier.send(target(), message()).status == SENT
    assert gateway.received[-1].headers["authorization"] == second, "the new token is cached"


def test_invalid_provider_token_is_failed(notifier, gateway):
    gateway.script.append(fake_apns.invalid_provider_token())
    result = notifier.send(target(), message())
    assert (result.status, result.error) == (FAILED, "InvalidProviderToken")
    assert len(gateway.received) == 1


def test_wrong_signing_key_is_refused_by_the_fake(gateway, clock):
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    n = ApnsNotifier(settings(other, gateway.url), clock=clock)
    try:
        result = n.send(target(), message())
    finally:
        n.close()
    assert (result.status, result.error) == (FAILED, "InvalidProviderToken")


@pytest.mark.parametrize("answer, error", [
    (fake_apns.unregistered(), "Unregistered"),
    (fake_apns.bad_device_token(), "BadDeviceToken"),
    (fake_apns.device_token_not_for_topic(), "DeviceTokenNotForTopic"),
])
def test_dead_tokens_are_invalid_token(notifier, gateway, answer, error):
    result = notifier.send(target(), message())
    assert result.status == SENT
    gateway.script.append(answer)
    result = notifier.send(target(), message())
    assert (result.status, result.error) == (INVALID_TOKEN, error)


def test_unregistered_device_from_the_fake_state(notifier, gateway):
    gateway.unregistered.add(DEVICE)
    result = notifier.send(target(), message())
    assert (result.status, result.error) == (INVALID_TOKEN, "Unregistered")


def test_non_hex_token_is_invalid_locally_and_never_sent(notifier, gateway):
    result = notifier.send(target("../../admin"), message())
    assert (result.status, result.error) == (INVALID_TOKEN, "BadDeviceToken")
    assert gateway.received == []


@pytest.mark.parametrize("answer, error, after", [
    (fake_apns.too_many_requests(), "TooManyRequests", None),
    (fake_apns.too_many_requests(retry_after_s=30), "TooManyRequests", 30.0),
    (fake_apns.server_error(500), "InternalServerError", None),
    (fake_apns.server_error(503, retry_after_s=120), "ServiceUnavailable", 120.0),
])
def test_rate_limits_and_server_errors_are_retry(notifier, gateway, answer, error, after):
    gateway.script.append(answer)
    result = notifier.send(target(), message())
    assert (result.status, result.error, result.retry_after_s) == (RETRY, error, after)


@pytest.mark.parametrize("answer, error", [
    (fake_apns.reason(400, "BadTopic"), "BadTopic"),
    (fake_apns.reason(413, "PayloadTooLarge"), "PayloadTooLarge"),
    (fake_apns.reason(405, "MethodNotAllowed"), "MethodNotAllowed"),
])
def test_other_client_errors_are_failed_with_the_reason(notifier, gateway, answer, error):
    gateway.script.append(answer)
    result = notifier.send(target(), message())
    assert (result.status, result.error) == (FAILED, error)


def test_wrong_topic_is_answered_by_the_fake(pem, gateway, clock):
    n = ApnsNotifier(settings(pem, gateway.url, topic="com.other.app"), clock=clock)
    try:
        result = n.send(target(), message())
    finally:
        n.close()
    assert (result.status, result.error) == (INVALID_TOKEN, "DeviceTokenNotForTopic")


def test_oversized_payload_is_refused_locally(notifier, gateway):
    result = notifier.send(target(), message(body="x" * 5000))
    assert (result.status, result.error) == (FAILED, "PayloadTooLarge")
    assert gateway.received == []


def test_error_without_json_body_uses_the_status(notifier, gateway):
    gateway.script.append(fake_apns.Answer(502, "bad gateway"))
    result = notifier.send(target(), message())
    assert (result.status, result.error) == (RETRY, "HTTP 502")


def test_connection_refused_is_retry(pem, clock):
    n = ApnsNotifier(settings(pem, closed_url()), clock=clock)
    try:
        result = n.send(target(), message())
    finally:
        n.close()
    assert (result.status, result.error) == (RETRY, "ConnectError")


def test_timeout_is_retry(pem, gateway, clock):
    gateway.delay_s = 1.0
    n = ApnsNotifier(settings(pem, gateway.url, timeout_s=0.2), clock=clock)
    try:
        result = n.send(target(), message())
    finally:
        n.close()
    assert (result.status, result.error) == (RETRY, "timeout")


def test_tokens_never_appear_in_full_in_the_log(notifier, gateway):
    with logged_text() as log:
        gateway.script.append(fake_apns.expired_provider_token())
        notifier.send(target(), message())
        gateway.script.append(fake_apns.unregistered())
        notifier.send(target(), message())
    provider_tokens = {r.headers["authorization"].split(" ")[1] for r in gateway.received}
    text = log.text
    assert "apns: event 42" in text
    assert DEVICE not in text
    assert DEVICE[:6] in text, "the masked token is logged"
    for token in provider_tokens:
        assert token not in text


def test_settings_are_validated(pem, tmp_path):
    base = settings(pem, "http://127.0.0.1:1")
    for key in ("team_id", "key_id", "topic"):
        with pytest.raises(ChannelConfigError, match=key):
            ApnsNotifier({k: v for k, v in base.items() if k != key})
    with pytest.raises(ChannelConfigError, match="team_id"):
        ApnsNotifier({**base, "team_id": "short"})
    with pytest.raises(ChannelConfigError, match="key_file and key"):
        ApnsNotifier({k: v for k, v in base.items() if k != "key"})
    with pytest.raises(ChannelConfigError, match="key_file and key"):
        ApnsNotifier({**base, "key_file": str(tmp_path / "k.p8")})
    with pytest.raises(ChannelConfigError, match="key_file"):
        ApnsNotifier({k: v for k, v in base.items() if k != "key"} | {"key_file": str(tmp_path / "no.p8")})
    with pytest.raises(ChannelConfigError, match="PEM"):
        ApnsNotifier({**base, "key": "not a key"})
    rsa_like = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    with pytest.raises(ChannelConfigError, match="P-256"):
        ApnsNotifier({**base, "key": rsa_like})
    with pytest.raises(ChannelConfigError, match="sandbox"):
        ApnsNotifier({**base, "sandbox": "yes"})
    with pytest.raises(ChannelConfigError, match="base_url"):
        ApnsNotifier({**base, "base_url": "api.push.apple.com"})
    with pytest.raises(ChannelConfigError, match="timeout_s"):
        ApnsNotifier({**base, "timeout_s": 0})


def test_key_file_and_sandbox_url(pem, tmp_path, gateway, clock):
    key_file = tmp_path / f"AuthKey_{KEY_ID}.p8"
    key_file.write_text(pem)
    n = ApnsNotifier({"team_id": TEAM_ID, "key_id": KEY_ID, "key_file": str(key_file), "topic": TOPIC,
                      "sandbox": True}, clock=clock)
    try:
        assert n._base_url == "https://api.sandbox.push.apple.com"
    finally:
        n.close()
    n = ApnsNotifier({"team_id": TEAM_ID, "key_id": KEY_ID, "key_file": str(key_file), "topic": TOPIC,
                      "base_url": gateway.url}, clock=clock)
    try:
        assert n.send(target(), message()).status == SENT
    finally:
        n.close()


def test_payload_is_compact_json(notifier, gateway):
    notifier.send(target(), message(title="Ünïcode"))
    body = gateway.received[-1].body
    assert json.loads(body)["aps"]["alert"]["title"] == "Ünïcode"
    assert b": " not in body
