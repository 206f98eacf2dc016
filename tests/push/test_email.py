"""EmailNotifier against a fake SMTP server on loopback (real sockets, real smtplib)."""

from __future__ import annotations

import pytest

from tests.push.fake_smtp import FakeSmtp
from tests.push.support import T0, closed_port, logged_text
from tracker.push.base import (
    FAILED,
    INVALID_TOKEN,
    RETRY,
    SENT,
    ChannelConfigError,
    PushMessage,
    PushTarget,
    SendResult,
)
from tracker.push.email import EmailNotifier, looks_like_address

RECIPIENT = "dispatcher@fleet.example"
SENDER = "alerts@tracker.example"


@pytest.fixture
def server():
    with FakeSmtp() as fake:
        yield fake


def settings(server: FakeSmtp, **extra) -> dict:
    return {"host": server.host, "port": server.port, "starttls": False, "from_address": SENDER,
            "timeout_s": 2, **extra}


@pytest.fixture
def notifier(server):
    n = EmailNotifier(settings(server), clock=lambda: T0)
    yield n
    n.close()


def target(address: str = RECIPIENT) -> PushTarget:
    return PushTarget("email", address, "email")


def message(**kw) -> PushMessage:
    fields = {"event_id": 42, "title": "Geofence exit", "body": "Truck 7 left Depot North",
              "data": {"eventId": "42", "url": "https://tracker.example/events/42"}, **kw}
    return PushMessage(**fields)


def test_success_delivers_the_documented_message(notifier, server):
    assert notifier.send(target(), message()) == SendResult(SENT)
    [mail] = server.messages
    assert mail.mail_from == SENDER and mail.rcpt_tos == [RECIPIENT] and mail.user is None
    msg = mail.message
    assert msg["Subject"] == "Geofence exit"
    assert msg["From"] == SENDER and msg["To"] == RECIPIENT
    assert msg["X-Tracker-Event-Id"] == "42"
    assert b"\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n" in mail.data, "the injected clock dates it"
    assert msg["Message-ID"].endswith("@tracker.example>")
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content() == "Truck 7 left Depot North\n\nhttps://tracker.example/events/42\n"
    assert "Importance" not in msg and "X-Priority" not in msg
    assert server.commands[-1].upper() == "QUIT", "the session is ended politely"


def test_body_without_url_and_unicode(notifier, server):
    notifier.send(target(), message(title="Überhitzung\nMotor", body="Temperatur 120 °C", data={}))
    msg = server.messages[-1].message
    assert msg["Subject"] == "Überhitzung Motor", "line breaks in the title never reach a header"
    assert msg.get_content() == "Temperatur 120 °C\n"


def test_critical_is_marked_important(notifier, server):
    assert notifier.send(target(), message(critical=True)).status == SENT
    msg = server.messages[-1].message
    assert msg["Importance"] == "high" and msg["X-Priority"] == "1"


def test_auth_plain_with_credentials(server):
    server.credentials = ("tracker", "s3cret")
    n = EmailNotifier(settings(server, username="tracker", password="s3cret"), clock=lambda: T0)
    assert n.send(target(), message()).status == SENT
    assert server.messages[-1].user == "tracker"


def test_bad_credentials_are_failed(server):
    server.credentials = ("tracker", "s3cret")
    n = EmailNotifier(settings(server, username="tracker", password="wrong"), clock=lambda: T0)
    assert n.send(target(), message()) == SendResult(FAILED, "SMTP 535 5.7.8")
    assert server.messages == []


def test_temporary_auth_failure_is_retry(server):
    server.credentials = ("tracker", "s3cret")
    server.fail_next("AUTH", 454, "4.7.0 Temporary authentication failure")
    n = EmailNotifier(settings(server, username="tracker", password="s3cret"), clock=lambda: T0)
    assert n.send(target(), message()) == SendResult(RETRY, "SMTP 454 4.7.0")


def test_server_requiring_auth_without_credentials_is_failed(notifier, server):
    server.credentials = ("tracker", "s3cret")
    assert notifier.send(target(), message()) == SendResult(FAILED, "SMTP 530 5.7.0")


@pytest.mark.parametrize("code", [550, 551, 553])
def test_dead_mailbox_is_invalid_token(notifier, server, code):
    server.refuse(RECIPIENT, code, "5.1.1 <{}>: Recipient address rejected")
    assert notifier.send(target(), message()) == SendResult(INVALID_TOKEN, f"SMTP {code} 5.1.1")
    assert server.messages == []


def test_other_permanent_recipient_refusal_is_failed(notifier, server):
    server.refuse(RECIPIENT, 554, "5.7.1 <{}>: Relay access denied")
    assert notifier.send(target(), message()) == SendResult(FAILED, "SMTP 554 5.7.1")


@pytest.mark.parametrize("case", [
    ("RCPT", 450, "4.2.0 <x>: Recipient address rejected: Greylisted", "SMTP 450 4.2.0"),
    ("RCPT", 421, "4.7.0 Too many errors, closing", "SMTP 421 4.7.0"),
    ("MAIL", 451, "4.3.0 Error: queue file write error", "SMTP 451 4.3.0"),
    ("DATA", 451, "4.3.0 Error: queue file write error", "SMTP 451 4.3.0"),
    ("DATA", 421, "4.4.2 Timeout exceeded", "SMTP 421 4.4.2"),
])
def test_temporary_replies_are_retry(notifier, server, case):
    command, code, text, error = case
    server.fail_next(command, code, text)
    assert notifier.send(target(), message()) == SendResult(RETRY, error)
    assert server.messages == []
    assert notifier.send(target(), message()).status == SENT, "the next session works again"


def test_greeting_421_is_retry(notifier, server):
    server.greeting = (421, "4.3.2 Service not available, closing transmission channel")
    assert notifier.send(target(), message()) == SendResult(RETRY, "SMTP 421 4.3.2")


@pytest.mark.parametrize("case", [
    ("MAIL", 553, "5.7.1 <alerts@tracker.example>: Sender address rejected", "SMTP 553 5.7.1"),
    ("DATA", 552, "5.3.4 Message size exceeds fixed limit", "SMTP 552 5.3.4"),
    ("DATA", 554, "5.7.1 Spam message rejected", "SMTP 554 5.7.1"),
])
def test_other_permanent_replies_are_failed(notifier, server, case):
    command, code, text, error = case
    server.fail_next(command, code, text)
    assert notifier.send(target(), message()) == SendResult(FAILED, error)


def test_starttls_required_but_not_offered_is_failed(server):
    n = EmailNotifier(settings(server, starttls=True), clock=lambda: T0)
    assert n.send(target(), message()) == SendResult(FAILED, "not supported")
    assert server.messages == []
    assert not any(c.upper().startswith("MAIL") for c in server.commands), "nothing is sent in clear"


def test_connection_refused_is_retry():
    n = EmailNotifier({"host": "127.0.0.1", "port": closed_port(), "starttls": False, "from_address": SENDER})
    assert n.send(target(), message()) == SendResult(RETRY, "ConnectionRefusedError")


def test_timeout_is_retry(server):
    server.delay_s = 1.0
    n = EmailNotifier(settings(server, timeout_s=0.2), clock=lambda: T0)
    assert n.send(target(), message()) == SendResult(RETRY, "timeout")


@pytest.mark.parametrize("address", ["not-an-address", "a@b", "two@@x.example", "a b@x.example",
                                     "x@example.com\r\nBcc: victim@example.com", "", "<a@x.example>"])
def test_bad_recipient_is_failed_and_never_sent(notifier, server, address):
    assert notifier.send(target(address), message()) == SendResult(FAILED, "bad address")
    assert server.commands == []


def test_address_check_accepts_ordinary_addresses():
    for good in ("a@x.example", "first.last+tag@sub.example.co.uk", "jörg@müller.example"):
        assert looks_like_address(good), good


def test_addresses_never_appear_in_full_in_the_log(notifier, server):
    with logged_text() as log:
        server.refuse(RECIPIENT)
        result = notifier.send(target(), message())
    assert result.status == INVALID_TOKEN and RECIPIENT not in (result.error or "")
    text = log.text
    assert "email: event 42" in text and "550" in text
    assert RECIPIENT not in text
    assert RECIPIENT[:6] in text


def test_settings_are_validated():
    base = {"host": "smtp.example", "from_address": SENDER}
    n = EmailNotifier(base)
    assert (n._port, n._starttls, n._timeout_s) == (587, True, 10.0)
    for key in ("host", "from_address"):
        with pytest.raises(ChannelConfigError, match=key):
            EmailNotifier({k: v for k, v in base.items() if k != key})
    bad = [("from_address", "alerts"), ("port", 0), ("port", "25"), ("port", True),
           ("starttls", "no"), ("timeout_s", -1), ("username", 5)]
    for key, value in bad:
        with pytest.raises(ChannelConfigError, match=key):
            EmailNotifier({**base, key: value})
    with pytest.raises(ChannelConfigError, match="username and password"):
        EmailNotifier({**base, "username": "tracker"})


def test_send_text_delivers_a_plain_message_and_masks_the_address_in_the_log(notifier, server):
    with logged_text() as log:
        assert notifier.send_text(RECIPIENT, "Confirm\nthis", "Code: 12345678") == SendResult(SENT)
        server.refuse("gone@fleet.example")
        refused = notifier.send_text("gone@fleet.example", "Confirm", "Code: 1")
    assert refused.status == INVALID_TOKEN
    [mail] = server.messages
    msg = mail.message
    assert mail.rcpt_tos == [RECIPIENT] and msg["Subject"] == "Confirm this"
    assert msg["X-Tracker-Event-Id"] is None and msg.get_content() == "Code: 12345678\n"
    assert "confirmation" in log.text and "gone@fleet.example" not in log.text
    assert notifier.send_text("not an address", "s", "t").status == FAILED
