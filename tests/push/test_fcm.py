"""FCM channel (firebase-admin) against a fake Google OAuth + FCM v1 over real loopback HTTP."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.push import fake_fcm
from tests.push.fake_fcm import FakeFcm
from tests.push.support import FakeClock, closed_url, logged_text
from tracker.push.base import FAILED, INVALID_TOKEN, RETRY, SENT, ChannelConfigError, PushMessage, PushTarget
from tracker.push.fcm import NOTIFIER, TOKEN_MARGIN_S, FcmNotifier

pytestmark = pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning")

PROJECT = "tracker-test"
EMAIL = "fcm-sender@tracker-test.iam.gserviceaccount.com"
TOKEN = "dGVzdC1yZWdpc3RyYXRpb24tdG9rZW4:APA91bF-full-registration-token-0123456789abcdef"
TARGET = PushTarget("fcm", TOKEN)
MESSAGE = PushMessage(event_id=7, title="Geofence", body="Truck 12 left Depot",
                      data={"eventId": "7", "deviceId": "12", "type": "geofenceExit"})
ALARM = PushMessage(event_id=8, title="SOS", body="Truck 12: SOS", data={"alarm": "sos"},
                    critical=True, collapse_key="sos-12", ttl_s=600)


def _key_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def server(rsa_key):
    public = rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    with FakeFcm(PROJECT, EMAIL, public) as fake:   # one server for the module: `gateway` resets it
        yield fake


@pytest.fixture
def gateway(server):
    server.reset()
    return server


def write_account(tmp_path, gateway, key, **overrides) -> str:
    info = {"type": "service_account", "project_id": PROJECT, "private_key_id": "k1",
            "private_key": _key_pem(key), "client_email": EMAIL, "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": gateway.token_uri}
    info.update(overrides)
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(info))
    return str(path)


@pytest.fixture
def clock():
    return FakeClock(time.time())   # the fake checks token times against time.time()


@pytest.fixture
def make(tmp_path, gateway, rsa_key, clock):
    made = []

    def make(**settings):
        base = {"credentials": write_account(tmp_path, gateway, rsa_key), "base_url": gateway.url}
        notifier = FcmNotifier({**base, **settings}, clock=clock)
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        notifier.close()


@pytest.fixture
def notifier(make):
    return make()


# -- success and request shape --------------------------------------------------------------


def test_send_posts_the_v1_message_with_a_bearer_token_from_the_jwt_grant(notifier, gateway):
    assert notifier.send(TARGET, MESSAGE).status == SENT
    grant, send = gateway.received
    form = {k: v[0] for k, v in parse_qs(grant.body.decode()).items()}
    assert grant.path == "/token"
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    claims = jwt.decode(form["assertion"], options={"verify_signature": False})
    assert claims["iss"] == EMAIL and claims["aud"] == "https://oauth2.googleapis.com/token"
    assert "https://www.googleapis.com/auth/firebase.messaging" in claims["scope"].split()
    # base_url honoured through firebase-admin's private _fcm_url
    assert send.method == "POST" and send.path == f"/v1/projects/{PROJECT}/messages:send"
    assert send.headers["authorization"] == "Bearer " + next(iter(gateway.issued))
    message = send.json["message"]
    assert message["token"] == TOKEN
    assert message["notification"] == {"title": "Geofence", "body": "Truck 12 left Depot"}
    assert message["data"] == {"eventId": "7", "deviceId": "12", "type": "geofenceExit"}
    assert message["android"] == {"priority": "normal", "ttl": "86400s"}
    assert "apns" not in message and "validate_only" not in send.json


def test_critical_android_message_is_high_priority_on_the_alarm_channel(notifier, gateway):
    assert notifier.send(TARGET, ALARM).status == SENT
    android = gateway.sends[-1].json["message"]["android"]
    assert android == {"priority": "high", "ttl": "600s", "collapse_key": "sos-12",
                       "notification": {"channel_id": "alarms"}}


def test_alarm_and_ordinary_channel_ids_come_from_settings(make, gateway):
    notifier = make(alarm_channel_id="sos_channel", channel_id="events")
    notifier.send(TARGET, ALARM)
    notifier.send(TARGET, MESSAGE)
    channels = [r.json["message"]["android"]["notification"]["channel_id"] for r in gateway.sends]
    assert channels == ["sos_channel", "events"]


def test_critical_ios_message_has_apns_priority_10_and_collapse_id(notifier, gateway, clock):
    assert notifier.send(PushTarget("fcm", TOKEN, "ios"), ALARM).status == SENT
    message = gateway.sends[-1].json["message"]
    assert "android" not in message
    assert message["apns"]["headers"] == {"apns-priority": "10", "apns-collapse-id": "sos-12",
                                          "apns-expiration": str(int(clock.now) + 600)}
    assert message["apns"]["payload"]["aps"] == {"sound": "default", "interruption-level": "time-sensitive"}


def test_ordinary_ios_message_has_apns_priority_5(notifier, gateway):
    notifier.send(PushTarget("fcm", TOKEN, "ios"), MESSAGE)
    assert gateway.sends[-1].json["message"]["apns"]["headers"]["apns-priority"] == "5"


def test_send_many_uses_one_result_per_message_in_order(notifier, gateway):
    gateway.unregistered.add("dead-token")
    pairs = [(TARGET, MESSAGE), (PushTarget("fcm", "dead-token"), MESSAGE), (TARGET, ALARM)]
    results = notifier.send_many(pairs)
    assert [r.status for r in results] == [SENT, INVALID_TOKEN, SENT]
    assert results[1].error == "UNREGISTERED"
    assert len(gateway.sends) == 3
    assert gateway.token_requests == 1   # the parallel sends share one token fetch


def test_send_many_chunks_by_pool_size(make, gateway):
    notifier = make(pool_size=2)
    results = notifier.send_many([(TARGET, MESSAGE)] * 5)
    assert [r.status for r in results] == [SENT] * 5
    assert len(gateway.sends) == 5


# -- error mapping --------------------------------------------------------------------------


def warm(notifier, gateway):
    """Fetch and cache an access token so scripted answers hit messages:send."""
    assert notifier.send(TARGET, MESSAGE).status == SENT
    gateway.received.clear()


@pytest.mark.parametrize(("answer", "expected"), [
    (fake_fcm.unregistered(), (INVALID_TOKEN, "UNREGISTERED", None)),
    (fake_fcm.sender_id_mismatch(), (INVALID_TOKEN, "SENDER_ID_MISMATCH", None)),
    (fake_fcm.invalid_registration_token(), (INVALID_TOKEN, "INVALID_ARGUMENT", None)),
    (fake_fcm.invalid_argument("Invalid value at 'message.data[0].value'"),
     (FAILED, "INVALID_ARGUMENT", None)),
    (fake_fcm.quota_exceeded(120), (RETRY, "QUOTA_EXCEEDED", 120.0)),
    (fake_fcm.unavailable(30), (RETRY, "UNAVAILABLE", 30.0)),
    (fake_fcm.unavailable(), (RETRY, "UNAVAILABLE", None)),
    (fake_fcm.internal(), (RETRY, "INTERNAL", None)),
], ids=["unregistered", "sender-mismatch", "bad-token", "bad-request", "quota", "503-retry-after",
        "503", "500"])
def test_gateway_errors_map_to_results(notifier, gateway, answer, expected):
    warm(notifier, gateway)
    gateway.script.append(answer)
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error, result.retry_after_s) == expected
    assert len(gateway.received) == 1   # no SDK-internal retry of 500/503: the dispatcher retries


def test_third_party_auth_error_is_failed_after_one_token_refresh(notifier, gateway):
    """FCM answers THIRD_PARTY_AUTH_ERROR with HTTP 401, so google-auth refreshes once first."""
    warm(notifier, gateway)
    gateway.answers_for[TOKEN] = fake_fcm.third_party_auth_error()
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (FAILED, "THIRD_PARTY_AUTH_ERROR")
    assert len(gateway.sends) == 2 and gateway.token_requests == 2   # warm-up + refresh


def test_unreadable_5xx_body_is_retry(notifier, gateway):
    warm(notifier, gateway)
    gateway.script.append(fake_fcm.Answer(502, "<html>Bad Gateway</html>"))
    assert notifier.send(TARGET, MESSAGE).status == RETRY


def test_connection_refused_is_retry(make):
    notifier = make(base_url=closed_url())
    result = notifier.send(TARGET, MESSAGE)
    assert result.status == RETRY and result.error == "UNAVAILABLE"


def test_timeout_is_retry(make, gateway):
    notifier = make(timeout_s=0.3)
    warm(notifier, gateway)
    gateway.stall(":send", max_s=1.0)
    result = notifier.send(TARGET, MESSAGE)
    assert result.status == RETRY and result.error == "DEADLINE_EXCEEDED"


# -- OAuth token cache ----------------------------------------------------------------------


def test_access_token_is_cached_until_shortly_before_expiry(notifier, gateway, clock):
    notifier.send(TARGET, MESSAGE)
    clock.now += 3599 - TOKEN_MARGIN_S - 1
    notifier.send(TARGET, MESSAGE)
    assert gateway.token_requests == 1
    clock.now += 2
    notifier.send(TARGET, MESSAGE)
    assert gateway.token_requests == 2
    tokens = [r.headers["authorization"] for r in gateway.sends]
    assert tokens[0] == tokens[1] != tokens[2]


def test_401_with_cached_token_refreshes_and_sends_once_more(notifier, gateway):
    warm(notifier, gateway)
    gateway.expire_tokens()
    assert notifier.send(TARGET, MESSAGE).status == SENT
    assert [r.path for r in gateway.received] == [
        f"/v1/projects/{PROJECT}/messages:send", "/token", f"/v1/projects/{PROJECT}/messages:send"]


def test_401_again_after_the_refresh_is_failed_without_a_third_try(notifier, gateway):
    warm(notifier, gateway)
    gateway.reject_bearer = True
    result = notifier.send(TARGET, MESSAGE)
    assert (result.status, result.error) == (FAILED, "UNAUTHENTICATED")
    assert len(gateway.sends) == 2 and gateway.token_requests == 2


def test_token_endpoint_refusing_the_key_is_failed(tmp_path, gateway, clock):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    notifier = FcmNotifier({"credentials": write_account(tmp_path, gateway, other),
                            "base_url": gateway.url}, clock=clock)
    try:
        result = notifier.send(TARGET, MESSAGE)
    finally:
        notifier.close()
    assert (result.status, result.error) == (FAILED, "OAUTH_invalid_grant")
    assert gateway.sends == []


def test_token_endpoint_unreachable_is_retry(tmp_path, gateway, rsa_key, clock):
    path = write_account(tmp_path, gateway, rsa_key, token_uri=f"{closed_url()}/token")
    notifier = FcmNotifier({"credentials": path, "base_url": gateway.url}, clock=clock)
    try:
        result = notifier.send(TARGET, MESSAGE)
    finally:
        notifier.close()
    assert (result.status, result.error) == (RETRY, "OAUTH_TRANSPORT")


# -- logging ----------------------------------------------------------------------------------


def test_tokens_never_appear_in_full_in_the_log(notifier, gateway):
    with logged_text() as log:
        notifier.send(TARGET, MESSAGE)
        gateway.script.append(fake_fcm.unregistered())
        notifier.send(TARGET, MESSAGE)
    text = log.text
    assert "UNREGISTERED" in text and TOKEN[:6] in text
    assert TOKEN not in text
    assert not any(token in text for token in gateway.issued)


# -- settings ---------------------------------------------------------------------------------


def test_project_id_defaults_to_the_credentials_and_can_be_overridden(make, gateway):
    assert make().project_id == PROJECT
    other = make(project_id="other-project")
    other.send(TARGET, MESSAGE)
    assert gateway.sends[-1].path == "/v1/projects/other-project/messages:send"


@pytest.mark.parametrize(("settings", "key"), [
    ({}, "credentials"),
    ({"credentials": "/nonexistent/sa.json"}, "credentials"),
    ({"pool_size": 0}, "pool_size"),
    ({"pool_size": "many"}, "pool_size"),
    ({"timeout_s": -1}, "timeout_s"),
    ({"base_url": "ftp://fcm"}, "base_url"),
    ({"alarm_channel_id": ""}, "alarm_channel_id"),
])
def test_bad_settings_name_the_key(tmp_path, gateway, rsa_key, settings, key):
    base = {"credentials": write_account(tmp_path, gateway, rsa_key)}
    with pytest.raises(ChannelConfigError, match=key):
        FcmNotifier({**base, **settings} if settings else {})


@pytest.mark.parametrize("overrides", [{"type": "authorized_user"}, {"private_key": ""},
                                       {"project_id": None}, {"private_key": "not a key"}])
def test_unusable_credentials_files_are_config_errors(tmp_path, gateway, rsa_key, overrides):
    path = write_account(tmp_path, gateway, rsa_key, **overrides)
    with pytest.raises(ChannelConfigError, match="credentials|project_id"):
        FcmNotifier({"credentials": path})


def test_module_exports_the_notifier():
    assert NOTIFIER is FcmNotifier and FcmNotifier.channel == "fcm"
