"""The contract between the notification dispatcher and the push channels.

A channel is blocking code (HTTP clients, `firebase-admin`, SMTP) and runs on the
dispatcher's own thread pool, never on the reactor thread, so a slow gateway never
slows ingestion.  A channel never raises for what a gateway answers: every outcome
is a `SendResult`; an exception means a bug in the channel (the dispatcher logs it
and retries the delivery later like a transient failure).

Outcomes (`SendResult.status`):

- ``sent``: the gateway accepted the message (judged as each service documents it:
  Huawei's body ``code`` "80000000", JPush's ``msg_id``, Xiaomi's ``code`` 0 ...,
  not the HTTP status alone).
- ``retry``: transient: 5xx, timeouts, connection errors, rate limits and quota
  errors (429, QUOTA_EXCEEDED ...); ``retry_after_s`` carries the gateway's
  Retry-After when it gave one.
- ``invalid_token``: the token is dead (FCM UNREGISTERED / invalid argument on the
  token, APNs 410 Unregistered / BadDeviceToken, Huawei 80300007, ...): the
  dispatcher disables (prunes) it and never retries.
- ``failed``: permanent for this message (bad request, auth misconfigured, payload
  refused): not retried.

`error` is the gateway's own error code or reason (e.g. "UNREGISTERED",
"80300007", "QUOTA_EXCEEDED", "HTTP 503"), stored with every attempt.  Tokens are
secrets: a channel never logs a token in full (use `mask`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx

CHANNELS = ("fcm", "jpush", "huawei", "xiaomi", "oppo", "vivo", "apns", "webhook", "email")
SENT, RETRY, INVALID_TOKEN, FAILED = "sent", "retry", "invalid_token", "failed"


@dataclasses.dataclass(frozen=True, slots=True)
class PushTarget:
    """Where a message goes: a channel and its address on it."""

    channel: str       # one of CHANNELS
    token: str         # registration token / regId / device token / URL / e-mail address
    platform: str = "android"   # android, ios, web, ...


@dataclasses.dataclass(frozen=True, slots=True)
class PushMessage:
    """One notification, already localised for its user."""

    event_id: int
    title: str
    body: str
    # String values only (FCM and most vendors take a flat string map): eventId,
    # deviceId, type, alarm, url ...
    data: Mapping[str, str] = dataclasses.field(default_factory=dict)
    critical: bool = False         # sos, powerCut, fallDown: high priority, alarm channel
    collapse_key: str | None = None
    ttl_s: int = 86_400


@dataclasses.dataclass(frozen=True, slots=True)
class SendResult:
    status: str                    # SENT, RETRY, INVALID_TOKEN or FAILED
    error: str | None = None       # the gateway's error code or reason
    retry_after_s: float | None = None


class Notifier(Protocol):
    """One channel.  `send` is blocking; see the module docstring."""

    channel: str

    def send(self, target: PushTarget, message: PushMessage) -> SendResult: ...

    def close(self) -> None:
        """Release connections (called at shutdown)."""


class ChannelConfigError(ValueError):
    """A channel's settings are missing or wrong (the message names the key)."""


def mask(token: str) -> str:
    """A token as it may appear in logs: its first 6 characters and a short hash."""
    return f"{token[:6]}...#{token_hash(token)[:8]}"


def token_hash(token: str) -> str:
    """sha256 hex of a token: stored with every delivery attempt instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def setting(settings: Mapping[str, Any], key: str, channel: str) -> str:
    """A required string setting of `channel`, or ChannelConfigError."""
    value = settings.get(key)
    if not isinstance(value, str) or not value:
        raise ChannelConfigError(f"[push.{channel}] {key} is required")
    return value


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header given in seconds (HTTP dates: None)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


# -- helpers the channel modules share --------------------------------------------------

def post(client: httpx.Client, url: str, *, reason_prefix: str = "",
         **request: Any) -> httpx.Response | SendResult:
    """`client.post(url, **request)`: the response, or, when none came (timeout,
    connection refused or broken), the RETRY result with the reason
    ``<reason_prefix>timeout`` or ``<reason_prefix><exception class>`` (e.g.
    "AUTH ConnectError")."""
    try:
        return client.post(url, **request)
    except httpx.TimeoutException:
        return SendResult(RETRY, f"{reason_prefix}timeout")
    except httpx.HTTPError as exc:
        return SendResult(RETRY, f"{reason_prefix}{type(exc).__name__}")


def overloaded(response: httpx.Response, reason_prefix: str = "") -> SendResult | None:
    """RETRY ("<reason_prefix>HTTP 503", honouring Retry-After) when the gateway
    answered 429 or a 5xx; None otherwise."""
    status = response.status_code
    if status == 429 or status >= 500:
        return SendResult(RETRY, f"{reason_prefix}HTTP {status}",
                          retry_after(response.headers.get("Retry-After")))
    return None


CHINA_UTC_OFFSET_S = 8 * 3600


class AuthRefused(Exception):
    """A send was refused for its cached auth token (the caller refreshes it and
    retries once); `code` is the gateway's reason."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def optional_setting(settings: Mapping[str, Any], key: str, channel: str,
                     default: str | None = None) -> str | None:
    """An optional string setting ("" counts as unset), or ChannelConfigError."""
    value = settings.get(key, default)
    if value is not None and not isinstance(value, str):
        raise ChannelConfigError(f"[push.{channel}] {key} must be a string")
    return value or None


def url_setting(settings: Mapping[str, Any], key: str, channel: str, default: str) -> str:
    """An http(s) URL setting without its trailing slash, `default` when unset."""
    value = optional_setting(settings, key, channel, default) or default
    if not value.startswith(("http://", "https://")):
        raise ChannelConfigError(f"[push.{channel}] {key} must be an http(s) URL")
    return value.rstrip("/")


def timeout_setting(settings: Mapping[str, Any], channel: str, default_s: float = 10.0,
                    max_s: float = 600.0) -> float:
    """`timeout_s`: seconds in (0, max_s]."""
    value = settings.get("timeout_s", default_s)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= max_s:
        raise ChannelConfigError(f"[push.{channel}] timeout_s must be a number in (0, {max_s:g}]")
    return float(value)


def response_json(response: Any) -> Any:
    """The decoded JSON body of an HTTP response, None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def log_result(log: Any, channel: str, result: SendResult, target: PushTarget,
               message: PushMessage) -> SendResult:
    """Log an outcome (the token masked) and return it: debug when sent, warn otherwise."""
    if result.status == SENT:
        log.debug("{channel}: event {event_id} to {token} sent", channel=channel,
                  event_id=message.event_id, token=mask(target.token))
    else:
        log.warn("{channel}: event {event_id} to {token}: {status} {error}", channel=channel,
                 event_id=message.event_id, token=mask(target.token), status=result.status,
                 error=result.error)
    return result


def seconds_to_china_midnight(now: float) -> float:
    """Seconds from `now` (a UNIX time) to the next 00:00 in China (UTC+8), when
    Chinese vendors' daily quotas reset."""
    return 86_400 - (now + CHINA_UTC_OFFSET_S) % 86_400


def send_with_auth_token(fetch: Callable[[], tuple[str, bool] | SendResult],
                         post: Callable[[str], SendResult], forget: Callable[[], None],
                         log: Any, channel: str) -> SendResult:
    """Send with an auth token that is cached until its expiry.

    `fetch()` gives (token, came from the cache) or the SendResult of a failed
    login; `post(token)` sends and raises AuthRefused when the gateway refuses the
    token.  A refused cached token is dropped (`forget()`), a new one fetched and the
    message sent once more; a freshly fetched token that is refused is a failure.
    """
    for attempt in (1, 2):
        got = fetch()
        if isinstance(got, SendResult):
            return got
        token, cached = got
        try:
            return post(token)
        except AuthRefused as refused:
            forget()
            if cached and attempt == 1:
                log.info("{channel}: auth token {token} refused ({code}); fetching a new one",
                         channel=channel, token=mask(token), code=refused.code)
                continue
            return SendResult(FAILED, refused.code)
    raise AssertionError("unreachable")   # pragma: no cover
