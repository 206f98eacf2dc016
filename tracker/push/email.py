"""E-mail channel: one plain-text message per notification over SMTP (``smtplib``).

Followed: RFC 5321 (SMTP: reply codes, 421 closing the session), RFC 3207
(STARTTLS), RFC 4954 (AUTH; 535 bad credentials, 454 temporary failure), RFC 3463
(enhanced status codes such as 5.1.1) and RFC 5322 (the message format).

Transport
    ``smtplib.SMTP(host, port)`` (submission, default port 587), EHLO, then STARTTLS
    with a verifying ``ssl.create_default_context()`` and EHLO again (setting
    ``starttls``, default true; a server that does not offer STARTTLS is then a
    configuration error: failed), AUTH when ``username`` is set, MAIL FROM / RCPT TO /
    DATA, QUIT.  One session per notification: alarms are rare, and a fresh session
    never trips over a server's idle timeout.  ``send`` blocks (the dispatcher's
    thread pool runs it).

The message
    ``target.token`` is the recipient address; one that does not look like an address
    (or carries CR/LF) is ``failed`` with ``bad address`` and never reaches the
    server.  Subject = title (line breaks flattened), From = ``from_address``, To, Date
    (from the injected ``clock``), Message-ID, ``X-Tracker-Event-Id`` = the event id;
    a plain-text UTF-8 body = body, plus a blank line and the link when ``data`` has a
    ``url``.  ``critical`` -> ``Importance: high`` and ``X-Priority: 1`` (the mail
    clients' "important" flag).  E-mail has no collapse key or TTL: both are ignored.

Other mail
    ``send_text(address, subject, text)`` sends one plain-text message that is not
    a notification (the confirmation code of a new e-mail target, see
    `tracker.push.confirm`) through the same session, with the same outcomes.

Outcomes (``error`` is "SMTP <code> [<enhanced code>]", never the address):

    ==============================================  =================================
    what happened                                   SendResult
    ==============================================  =================================
    the server accepted the message (250 to DATA)   sent
    RCPT refused with 550 / 551 / 553               invalid_token (mailbox unknown,
                                                    not local, name not allowed)
    any 4xx reply (421 at connect or any command,   retry
    450/451/452 at RCPT or DATA, 454 at AUTH ...)
    connection refused, timeout, disconnect         retry
    any other 5xx (552/554 at RCPT, 5xx at MAIL     failed
    FROM or DATA, 535 at AUTH ...)
    STARTTLS / AUTH not offered, TLS certificate    failed (configuration)
    not trusted
    ==============================================  =================================

Settings (``[push.email]``):
    ``host``          required; the SMTP server.
    ``port``          default 587.
    ``username``      optional; with ``password`` (both or neither): AUTH.
    ``password``      optional; see ``username``.
    ``starttls``      default true; false only for a local relay (and tests).
    ``from_address``  required; the envelope sender and From address.
    ``timeout_s``     socket timeout in seconds; default 10.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from twisted.logger import Logger

from tracker.push.base import (
    FAILED,
    INVALID_TOKEN,
    RETRY,
    SENT,
    ChannelConfigError,
    PushMessage,
    PushTarget,
    SendResult,
    log_result,
    mask,
    setting,
    timeout_setting,
)

CHANNEL = "email"
DEFAULT_PORT = 587
DEAD_MAILBOX_CODES = (550, 551, 553)
_ATOM = r"[^\s@<>(),;:\"\[\]\\]"
ADDRESS = re.compile(rf"{_ATOM}+@(?:[^\s@<>(),;:\"\[\]\\.]+\.)+[^\s@<>(),;:\"\[\]\\.]+")
ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")


def looks_like_address(value: str) -> bool:
    """True for ``local@domain.tld`` without spaces, brackets or line breaks (<= 254 chars)."""
    return len(value) <= 254 and ADDRESS.fullmatch(value) is not None


def _flag(settings: Mapping[str, Any], key: str, default: bool) -> bool:
    value = settings.get(key, default)
    if not isinstance(value, bool):
        raise ChannelConfigError(f"[push.{CHANNEL}] {key} must be true or false")
    return value


def _optional_str(settings: Mapping[str, Any], key: str) -> str | None:
    value = settings.get(key)
    if value is not None and not isinstance(value, str):
        raise ChannelConfigError(f"[push.{CHANNEL}] {key} must be a string")
    return value or None


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _Refused(Exception):
    """An SMTP reply that ends the attempt: its code and text."""

    def __init__(self, code: int, text: bytes | str) -> None:
        super().__init__(code)
        self.code = code
        self.text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


class EmailNotifier:
    """E-mail over SMTP; see the module docstring."""

    channel = CHANNEL
    log = Logger()

    def __init__(self, settings: Mapping[str, Any], *, clock: Callable[[], float] = time.time,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._host = setting(settings, "host", CHANNEL)
        port = settings.get("port", DEFAULT_PORT)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ChannelConfigError(f"[push.{CHANNEL}] port must be a TCP port number")
        self._port = port
        self._username = _optional_str(settings, "username")
        self._password = _optional_str(settings, "password")
        if (self._username is None) != (self._password is None):
            raise ChannelConfigError(f"[push.{CHANNEL}] username and password go together")
        self._starttls = _flag(settings, "starttls", True)
        self._from_address = setting(settings, "from_address", CHANNEL)
        if not looks_like_address(self._from_address):
            raise ChannelConfigError(f"[push.{CHANNEL}] from_address must be an e-mail address")
        timeout_s = timeout_setting(settings, CHANNEL)
        self._timeout_s = float(timeout_s)
        self._clock = clock
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._domain = self._from_address.rpartition("@")[2]

    def build(self, target: PushTarget, message: PushMessage) -> EmailMessage:
        """The RFC 5322 message of one notification."""
        mail = EmailMessage()
        mail["Subject"] = _one_line(message.title)
        mail["From"] = self._from_address
        mail["To"] = target.token
        mail["Date"] = formatdate(self._clock(), usegmt=True)
        mail["Message-ID"] = make_msgid("tracker", domain=self._domain)
        mail["X-Tracker-Event-Id"] = str(message.event_id)
        if message.critical:
            mail["Importance"] = "high"
            mail["X-Priority"] = "1"
        text = message.body
        url = message.data.get("url")
        if url:
            text = f"{text}\n\n{url}"
        mail.set_content(text + "\n", charset="utf-8")
        return mail

    def send(self, target: PushTarget, message: PushMessage) -> SendResult:
        if not looks_like_address(target.token):
            return log_result(self.log, CHANNEL, SendResult(FAILED, "bad address"), target, message)
        result = self._submit(self.build(target, message), target.token, f"event {message.event_id}")
        return log_result(self.log, CHANNEL, result, target, message)

    def send_text(self, address: str, subject: str, text: str, *,
                  purpose: str = "confirmation") -> SendResult:
        """One plain-text message that is not a notification (the confirmation code
        of a new e-mail target, `tracker.push.confirm`): the same session and
        outcomes as `send`, no ``X-Tracker-Event-Id``; `purpose` names it in the log
        (the address is masked there, as always).  Blocking."""
        if not looks_like_address(address):
            result = SendResult(FAILED, "bad address")
        else:
            mail = EmailMessage()
            mail["Subject"] = _one_line(subject)
            mail["From"] = self._from_address
            mail["To"] = address
            mail["Date"] = formatdate(self._clock(), usegmt=True)
            mail["Message-ID"] = make_msgid("tracker", domain=self._domain)
            mail.set_content(text.rstrip("\n") + "\n", charset="utf-8")
            result = self._submit(mail, address, purpose)
        if result.status == SENT:
            self.log.debug("email: {purpose} to {token} sent", purpose=purpose, token=mask(address))
        else:
            self.log.warn("email: {purpose} to {token}: {status} {error}", purpose=purpose,
                          token=mask(address), status=result.status, error=result.error)
        return result

    def _submit(self, mail: EmailMessage, address: str, what: str) -> SendResult:
        """One SMTP session delivering `mail` to `address`; `what` ("event 42",
        "confirmation") names it in the log."""
        smtp: smtplib.SMTP | None = None
        try:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout_s)
            smtp.ehlo()
            if self._starttls:
                smtp.starttls(context=self._ssl_context)
                smtp.ehlo()
            if self._username is not None:
                smtp.login(self._username, self._password or "")
            smtp.send_message(mail, from_addr=self._from_address, to_addrs=[address])
        except OSError as exc:           # smtplib.SMTPException is an OSError too
            return self._outcome(exc, address, what)
        else:
            return SendResult(SENT)
        finally:
            if smtp is not None:
                _quit(smtp)

    def _outcome(self, exc: OSError, address: str, what: str) -> SendResult:
        """The SendResult of a failed session."""
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            code, text = exc.recipients.get(address, (0, b""))
            return self._judge(_Refused(code, text), address, dead_mailbox=True)
        if isinstance(exc, smtplib.SMTPResponseException):     # connect, HELO, AUTH, MAIL, DATA
            return self._judge(_Refused(exc.smtp_code, exc.smtp_error), address)
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            # smtplib turns a read timeout into "Connection unexpectedly closed".
            timed_out = isinstance(exc.__context__, TimeoutError)
            return SendResult(RETRY, "timeout" if timed_out else "disconnected")
        if isinstance(exc, smtplib.SMTPNotSupportedError):     # STARTTLS / AUTH / SMTPUTF8 not offered
            self._log_reason(address, what, str(exc))
            return SendResult(FAILED, "not supported")
        if isinstance(exc, smtplib.SMTPException):             # e.g. no usable AUTH mechanism
            self._log_reason(address, what, str(exc))
            return SendResult(FAILED, type(exc).__name__)
        if isinstance(exc, ssl.SSLCertVerificationError):
            self._log_reason(address, what, str(exc))
            return SendResult(FAILED, "TLS certificate")
        if isinstance(exc, TimeoutError):
            return SendResult(RETRY, "timeout")
        return SendResult(RETRY, type(exc).__name__)           # refused, reset, DNS, TLS handshake

    def _judge(self, refused: _Refused, address: str, *, dead_mailbox: bool = False) -> SendResult:
        enhanced = ENHANCED.search(refused.text)
        error = f"SMTP {refused.code}" + (f" {enhanced.group(0)}" if enhanced else "")
        text = refused.text.replace(address, mask(address))
        self.log.info("email: server said {code} {text}", code=refused.code, text=text)
        if dead_mailbox and refused.code in DEAD_MAILBOX_CODES:
            return SendResult(INVALID_TOKEN, error)
        if 400 <= refused.code < 500:
            return SendResult(RETRY, error)
        return SendResult(FAILED, error)

    def _log_reason(self, address: str, what: str, reason: str) -> None:
        self.log.info("email: {what} to {token}: {reason}", what=what, token=mask(address),
                      reason=reason.replace(address, mask(address)))

    def close(self) -> None:
        """Nothing to release: every notification has its own SMTP session."""


def _quit(smtp: smtplib.SMTP) -> None:
    """End a session politely if it is still up; never raise."""
    try:
        if smtp.sock is not None:
            smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        smtp.close()


NOTIFIER = EmailNotifier
