"""Confirmation of e-mail targets: the code, its rules, and the mail that carries it.

An e-mail target is an address someone typed in, so before the first alarm goes
there the mailbox has to prove it wants them: registration stores the target
unconfirmed with the sha256 of a fresh code (`new_code`, 8 decimal digits from
`secrets`), and `ConfirmationMailer.send` mails the code to the address through the
configured e-mail channel (`tracker.push.email.EmailNotifier.send_text`), on the
push thread pool (SMTP blocks; the reactor never waits on it).  The owner then
confirms with ``POST /api/notifications/tokens/{id}/confirm {"code": ...}`` or by
opening the link in the mail (``GET`` of the same path with ``?code=``; logged in as
the owner): see `web.notifications_api` and
`tracker.storage.notifications.NotificationsMixin.confirm_push_token`.

The rules (the store enforces them; the numbers are these module constants):

- a code is valid for `CODE_TTL_S` (24 h) from its issue;
- `MAX_WRONG_CODES` (5) wrong codes void it; the only way on is a new code, which
  registering the address again (the same ``POST /api/notifications/tokens``) issues,
  resetting the count;
- codes are compared in constant time (`hmac.compare_digest` on their digests), and
  only the digest is stored;
- one user gets at most `MAX_MAILS_PER_HOUR` (10) confirmation mails in any hour
  (`ConfirmationMailer.allow`, in memory: a restart forgets it), so the server is no
  tool for mailing strangers.

Unconfirmed targets get nothing: the store leaves them out of the recipients and the
dispatcher skips them (`tracker.push.dispatcher`).  App tokens (fcm, apns, ...) and
webhooks are confirmed when registered: a token string is itself proof enough that
the caller has the app install (or, for webhooks, is an administrator).
"""

from __future__ import annotations

import collections
import hashlib
import secrets
from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool

CODE_DIGITS = 8
CODE_TTL_S = 24 * 3600
MAX_WRONG_CODES = 5
MAX_MAILS_PER_HOUR = 10
MAX_CODE_CHARS = 64          # what a confirmation request may send as "code"
CONFIRMED_BY_CODE = frozenset({"email"})   # every other channel: confirmed when registered


def new_code() -> str:
    """A fresh confirmation code: `CODE_DIGITS` decimal digits (leading zeros kept)."""
    return f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"


def code_digest(code: str) -> str:
    """sha256 hex of a code as the user sends it (surrounding spaces ignored)."""
    return hashlib.sha256(code.strip().encode("utf-8")).hexdigest()


def needs_confirmation(channel: str) -> bool:
    """True for channels whose targets wait for a code (e-mail)."""
    return channel in CONFIRMED_BY_CODE


def confirm_path(token_id: int) -> str:
    return f"/api/notifications/tokens/{token_id}/confirm"


class PushTargetTaken(Exception):
    """Another user holds this (channel, token); the message does not say who."""


class ConfirmationRefused(Exception):
    """A confirmation code was refused; `reason` is "wrong", "expired" or "void"
    (no valid code: a new one comes from registering the address again)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def is_confirmed(token: Any) -> bool:
    """Whether a target may receive anything: its ``confirmed`` time is set.  A
    token that does not say (a plain `tracker.models.PushToken`) counts as
    unconfirmed."""
    return getattr(token, "confirmed", None) is not None


class TooManyMails(Exception):
    """The user asked for more confirmation mails than `MAX_MAILS_PER_HOUR` (HTTP 429)."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many confirmation mails; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class ConfirmationMailer:
    """Mails confirmation codes through the e-mail channel; see the module docstring.

    `notifier` is the configured `EmailNotifier` (anything with its ``send_text``);
    `threadpool` runs the blocking SMTP session (the push thread pool, so a slow
    mail server never holds up store calls); `reactor` provides ``seconds()`` for
    the per-user limit.  `public_url` (``[push] public_url``, e.g.
    ``https://fleet.example.com``) makes the link; without it the mail carries the
    code only.
    """

    def __init__(self, notifier: Any, reactor: Any, threadpool: Any, *, public_url: str = "",
                 max_per_hour: int = MAX_MAILS_PER_HOUR) -> None:
        self._notifier = notifier
        self._reactor = reactor
        self._threadpool = threadpool
        self._public_url = public_url.rstrip("/")
        self._max_per_hour = max_per_hour
        self._sent: dict[int, collections.deque[float]] = {}   # user id -> send times (s)

    def link(self, token_id: int, code: str) -> str | None:
        """The confirmation link, or None without a public URL."""
        if not self._public_url:
            return None
        return f"{self._public_url}{confirm_path(token_id)}?code={code}"

    def text(self, token_id: int, code: str) -> tuple[str, str]:
        """(subject, body) of the confirmation mail."""
        link = self.link(token_id, code)
        lines = ["Someone asked for the alarms of a fleet tracking account to be sent to",
                 "this address.  Nothing is sent here until the address is confirmed.",
                 "",
                 f"Confirmation code: {code}",
                 ""]
        if link:
            lines += ["To confirm, open this link (you will be asked to log in as the",
                      "account that registered the address):", "", link, "",
                      "or enter the code where the address was registered."]
        else:
            lines += ["To confirm, enter the code where the address was registered."]
        hours = CODE_TTL_S // 3600
        lines += [f"The code is valid for {hours} hours.", "",
                  "If you did not ask for this, ignore this message."]
        return "Confirm this address for tracker alarms", "\n".join(lines)

    def allow(self, user_id: int) -> None:
        """Count one mail for the user, or raise TooManyMails (nothing counted)."""
        now = self._reactor.seconds()
        times = self._sent.setdefault(user_id, collections.deque())
        while times and times[0] <= now - 3600:
            times.popleft()
        if len(times) >= self._max_per_hour:
            raise TooManyMails(max(1, int(times[0] + 3600 - now) + 1))
        times.append(now)

    def refund(self, user_id: int) -> None:
        """Give back the last counted mail (it was not needed after all)."""
        times = self._sent.get(user_id)
        if times:
            times.pop()

    def send(self, address: str, token_id: int, code: str) -> Deferred:
        """Mail the code on the thread pool; fires with the `SendResult`."""
        subject, body = self.text(token_id, code)
        return deferToThreadPool(self._reactor, self._threadpool, self._notifier.send_text,
                                 address, subject, body)


def confirmation_mailer(notifiers: Mapping[str, Any], reactor: Any, threadpool: Any, *,
                        public_url: str = "") -> ConfirmationMailer | None:
    """The mailer over the configured e-mail notifier (``notifiers["email"]``, as
    `tracker.push.build_notifiers` makes them), or None when there is none: then
    e-mail targets cannot be registered through the API."""
    notifier = notifiers.get("email")
    if notifier is None:
        return None
    return ConfirmationMailer(notifier, reactor, threadpool, public_url=public_url)


__all__ = ["CODE_TTL_S", "MAX_CODE_CHARS", "MAX_MAILS_PER_HOUR", "MAX_WRONG_CODES",
           "ConfirmationMailer", "ConfirmationRefused", "PushTargetTaken", "TooManyMails", "code_digest",
           "confirm_path", "confirmation_mailer", "is_confirmed", "needs_confirmation", "new_code"]
