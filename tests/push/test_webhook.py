"""Webhook channel against a fake signature-checking receiver over real loopback HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from tests.push.fake_webhook import FakeWebhook
from tests.push.fakegateway import Answer
from tests.push.support import FakeClock, closed_url, logged_text
from tracker.push.base import FAILED, INVALID_TOKEN, RETRY, SENT, ChannelConfigError, PushMessage, PushTarget
from tracker.push.webhook import NOTIFIER, WebhookNotifier, signature

SECRET = "s3cret-shared-with-the-receiver"
MESSAGE = PushMessage(event_id=7, title="Geofence", body="Truck 12 left Depot ✓",
                      data={"deviceId": "12", "type": "geofenceExit"})
ALARM = PushMessage(event_id=8, title="SOS", body="Truck 12: SOS", critical=True)


@pytest.fixture(scope="module")
def server():
    with FakeWebhook(SECRET) as fake:   # one server for the module: `receiver` resets it
        yield fake


@pytest.fixture
def receiver(server):
    server.received.clear()
    server.script.clear()
    server.gone.clear()
    server.release()
    return server


@pytest.fixture
def clock():
    return FakeClock(float(int(time.time())) + 0.25)   # the receiver checks skew against time.time()


@pytest.fixture
def make(clock):
    made = []

    def make(**settings):
        notifier = WebhookNotifier({"secret": SECRET, **settings}, clock=clock)
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        notifier.close()


@pytest.fixture
def notifier(make):
    return make()


def hook(receiver, path="/hooks/fleet?team=3") -> PushTarget:
    return PushTarget("webhook", receiver.url + path, "web")


def test_post_is_signed_json_that_the_receiver_accepts(notifier, receiver, clock):
    assert notifier.send(hook(receiver), MESSAGE).status == SENT
    request = receiver.received[-1]
    assert request.method == "POST" and request.path == "/hooks/fleet?team=3"
    timestamp = str(int(clock.now))
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-tracker-timestamp"] == timestamp
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256)
    assert request.headers["x-tracker-signature"] == "sha256=" + expected.hexdigest()
    sent_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock.now))
    assert request.json == {"eventId": 7, "title": "Geofence", "body": "Truck 12 left Depot ✓",
                            "critical": False, "data": {"deviceId": "12", "type": "geofenceExit"},
                            "sentAt": sent_at}


def test_critical_flag_is_in_the_body(notifier, receiver):
    assert notifier.send(hook(receiver), ALARM).status == SENT
    assert receiver.received[-1].json["critical"] is True


def test_signature_helper_matches_the_documented_formula():
    body = json.dumps({"a": 1}).encode()
    digest = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(b"k", "1700000000", body) == f"sha256={digest}"


def test_receiver_rejects_a_wrong_secret_which_is_failed(make, receiver):
    result = make(secret="another-secret").send(hook(receiver), MESSAGE)
    assert (result.status, result.error) == (FAILED, "HTTP 401")


def test_receiver_rejects_a_stale_timestamp(notifier, receiver, clock):
    clock.now -= 600
    assert notifier.send(hook(receiver), MESSAGE).error == "HTTP 401"


def test_410_gone_is_invalid_token(notifier, receiver):
    receiver.gone.add("/hooks/old")
    result = notifier.send(hook(receiver, "/hooks/old"), MESSAGE)
    assert (result.status, result.error) == (INVALID_TOKEN, "HTTP 410")


@pytest.mark.parametrize(("answer", "expected"), [
    (Answer(429, {"error": "slow down"}, {"Retry-After": "30"}), (RETRY, "HTTP 429", 30.0)),
    (Answer(503, "maintenance", {"Retry-After": "120"}), (RETRY, "HTTP 503", 120.0)),
    (Answer(500, "boom"), (RETRY, "HTTP 500", None)),
    (Answer(404, "no such hook"), (FAILED, "HTTP 404", None)),
    (Answer(400, {"error": "bad"}), (FAILED, "HTTP 400", None)),
    (Answer(302, "", {"Location": "http://127.0.0.1:1/elsewhere"}), (FAILED, "HTTP 302", None)),
    (Answer(200, {"ok": True}), (SENT, None, None)),
], ids=["429", "503", "500", "404", "400", "redirect-not-followed", "200"])
def test_receiver_answers_map_to_results(notifier, receiver, answer, expected):
    receiver.script.append(answer)
    result = notifier.send(hook(receiver), MESSAGE)
    assert (result.status, result.error, result.retry_after_s) == expected
    assert len(receiver.received) == 1


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "file:///etc/passwd", "not a url", "http://",
                                 "javascript:alert(1)", ""])
def test_only_http_urls_are_accepted(notifier, url):
    result = notifier.send(PushTarget("webhook", url), MESSAGE)
    assert (result.status, result.error) == (FAILED, "bad webhook URL")


def test_connection_refused_is_retry(notifier):
    result = notifier.send(PushTarget("webhook", f"{closed_url()}/hook"), MESSAGE)
    assert (result.status, result.error) == (RETRY, "CONNECT_ERROR")


def test_timeout_is_retry(make, receiver):
    receiver.stall(max_s=0.5)
    result = make(timeout_s=0.1).send(hook(receiver), MESSAGE)
    assert (result.status, result.error) == (RETRY, "TIMEOUT")


def test_urls_never_appear_in_full_in_the_log(notifier, receiver):
    secret_url = receiver.url + "/hooks/fleet?key=very-secret-hook-key"
    with logged_text() as log:
        receiver.script.append(Answer(500, "boom"))
        notifier.send(PushTarget("webhook", secret_url), MESSAGE)
        notifier.send(PushTarget("webhook", "ftp://host/?key=very-secret-hook-key"), MESSAGE)
    text = log.text
    assert "HTTP 500" in text
    assert "ftp://" in text   # the refused URL is logged, masked
    assert "very-secret-hook-key" not in text


@pytest.mark.parametrize(("settings", "key"), [
    ({}, "secret"),
    ({"secret": ""}, "secret"),
    ({"secret": SECRET, "timeout_s": 0}, "timeout_s"),
    ({"secret": SECRET, "timeout_s": "10"}, "timeout_s"),
])
def test_bad_settings_name_the_key(settings, key):
    with pytest.raises(ChannelConfigError, match=key):
        WebhookNotifier(settings)


def test_module_exports_the_notifier():
    assert NOTIFIER is WebhookNotifier and WebhookNotifier.channel == "webhook"
