"""Apple Push Notification service (APNs) channel: alerts to iOS devices.

Followed: Apple's "Sending notification requests to APNs", "Establishing a token-based
connection to APNs", "Generating a remote notification" (the ``aps`` dictionary) and
"Handling notification responses from APNs" (developer.apple.com, User Notifications).

Transport
    HTTP/2 only (APNs refuses HTTP/1.1).  One ``httpx.Client(http2=True)`` is built in
    ``__init__`` and reused, so one TCP+TLS connection carries every notification.
    A plain ``http://`` base URL (tests) uses HTTP/2 with prior knowledge (h2c).

Authentication (token-based, JWT ES256)
    ``authorization: bearer <JWT>``; JWT header ``{"alg": "ES256", "kid": key_id}``,
    claims ``{"iss": team_id, "iat": <now>}``, signed with the ``.p8`` key (a P-256
    private key).  Apple rejects a token older than one hour (403
    ExpiredProviderToken) and refreshing more often than once per 20 minutes (429
    TooManyProviderTokenUpdates), so the token is signed once and reused until
    ``TOKEN_REFRESH_S`` (50 minutes, judged with the injected ``clock``) -- never per
    message.  A 403 ExpiredProviderToken drops the cache, signs a new token and sends
    once more; a second one is ``failed`` (the host clock is wrong).

Sending
    ``POST {base_url}/3/device/{device token}`` with the headers ``apns-topic`` (the
    bundle id), ``apns-push-type: alert``, ``apns-priority`` (10 when critical, else 5:
    power-friendly delivery), ``apns-expiration`` (now + ``ttl_s``, UNIX seconds; 0 when
    ttl_s is 0: deliver now or never) and ``apns-collapse-id`` (the collapse key; one
    longer than 64 bytes is replaced by its sha256 hex, exactly 64 bytes).  Body::

        {"aps": {"alert": {"title", "body"},
                 "sound": "default" | {"critical": 1, "name": "default", "volume": 1.0},
                 "interruption-level": "time-sensitive" | "critical"},   # critical only
         ...PushMessage.data}

    A critical message is ``time-sensitive`` (breaks through Focus); with the setting
    ``critical_alerts`` (the app holds Apple's critical-alert entitlement) it is a
    critical alert: the critical sound dictionary and interruption level
    ``critical`` (plays even when muted).  Data keys named ``aps`` are dropped.  A
    payload over 4096 bytes is refused locally (failed, PayloadTooLarge); a device
    token that is not hex is dead locally (invalid_token, BadDeviceToken) and never
    reaches the URL.

Success is HTTP 200 (the ``apns-id`` response header names the notification); an
error has a JSON body ``{"reason": ...}`` (410 adds ``timestamp``):

    ===========================================  ====================================
    HTTP / reason                                SendResult
    ===========================================  ====================================
    200                                          sent
    410 Unregistered, 410 ExpiredToken           invalid_token (the reason as error)
    400 BadDeviceToken, DeviceTokenNotForTopic   invalid_token
    403 ExpiredProviderToken                     re-sign, send once more, then failed
    403 InvalidProviderToken, MissingProvider-   failed
    Token, other 403
    429 TooManyRequests / TooManyProvider-       retry, ``retry_after_s`` from
    TokenUpdates                                 Retry-After when given
    500 InternalServerError, 503 Service-        retry (Retry-After when given)
    Unavailable / Shutdown, any 5xx
    other 400, 404, 405, 413                     failed (the reason as error)
    timeouts, connection / protocol errors       retry
    ===========================================  ====================================

    Beware: BadDeviceToken is also APNs' answer to a production token sent to the
    sandbox (or back), so ``sandbox`` must match the app build or tokens get pruned.

Settings (``[push.apns]``):
    ``team_id``          required; the 10-character Team ID (JWT ``iss``).
    ``key_id``           required; the 10-character key ID of the .p8 key (JWT ``kid``).
    ``key_file``         path of the AuthKey_<key_id>.p8 file, or
    ``key``              the PEM text itself; exactly one of the two is required.
    ``topic``            required; the app's bundle id (``apns-topic``).
    ``sandbox``          true: the development server; default false.
    ``base_url``         default ``https://api.push.apple.com`` (sandbox:
                         ``https://api.sandbox.push.apple.com``); tests point it at a fake.
    ``critical_alerts``  true when the app has the critical-alert entitlement; default false.
    ``timeout_s``        HTTP timeout in seconds; default 10.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
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
    response_json,
    retry_after,
    setting,
    timeout_setting,
)

CHANNEL = "apns"
PRODUCTION_URL = "https://api.push.apple.com"
SANDBOX_URL = "https://api.sandbox.push.apple.com"
TOKEN_REFRESH_S = 50 * 60        # Apple: older than 1 h is refused, newer than 20 min too often
MAX_PAYLOAD_BYTES = 4096
MAX_COLLAPSE_ID_BYTES = 64
DEVICE_TOKEN = re.compile(r"[0-9A-Fa-f]{16,400}")

INVALID_TOKEN_REASONS = frozenset({"BadDeviceToken", "DeviceTokenNotForTopic", "Unregistered",
                                   "ExpiredToken"})
EXPIRED_PROVIDER_TOKEN = "ExpiredProviderToken"


def _optional_str(settings: Mapping[str, Any], key: str) -> str | None:
    value = settings.get(key)
    if value is not None and not isinstance(value, str):
        raise ChannelConfigError(f"[push.{CHANNEL}] {key} must be a string")
    return value or None


def _flag(settings: Mapping[str, Any], key: str) -> bool:
    value = settings.get(key, False)
    if not isinstance(value, bool):
        raise ChannelConfigError(f"[push.{CHANNEL}] {key} must be true or false")
    return value


def _ten_chars(settings: Mapping[str, Any], key: str) -> str:
    value = setting(settings, key, CHANNEL)
    if not re.fullmatch(r"[A-Z0-9]{10}", value):
        raise ChannelConfigError(f"[push.{CHANNEL}] {key} must be Apple's 10-character identifier")
    return value


def _signing_key(settings: Mapping[str, Any]) -> ec.EllipticCurvePrivateKey:
    key_file = _optional_str(settings, "key_file")
    key_text = _optional_str(settings, "key")
    if (key_file is None) == (key_text is None):
        raise ChannelConfigError(f"[push.{CHANNEL}] exactly one of key_file and key is required")
    source = "key"
    if key_file is not None:
        source = "key_file"
        try:
            with open(key_file, "rb") as handle:
                pem = handle.read()
        except OSError as exc:
            raise ChannelConfigError(f"[push.{CHANNEL}] key_file {key_file!r}: {exc.strerror}") from exc
    else:
        assert key_text is not None   # exactly one of the two is given (checked above)
        pem = key_text.encode("ascii", "replace")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ChannelConfigError(f"[push.{CHANNEL}] {source} is not a PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ChannelConfigError(f"[push.{CHANNEL}] {source} must be a P-256 (ES256) key")
    return key


def collapse_id(key: str) -> str:
    """``apns-collapse-id``: the key itself, or its sha256 hex when over 64 bytes."""
    if len(key.encode("utf-8")) <= MAX_COLLAPSE_ID_BYTES:
        return key
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApnsNotifier:
    """APNs over its HTTP/2 provider API; see the module docstring."""

    channel = CHANNEL
    log = Logger()

    def __init__(self, settings: Mapping[str, Any], *, clock: Callable[[], float] = time.time,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._team_id = _ten_chars(settings, "team_id")
        self._key_id = _ten_chars(settings, "key_id")
        self._key = _signing_key(settings)
        self._topic = setting(settings, "topic", CHANNEL)
        sandbox = _flag(settings, "sandbox")
        self._critical_alerts = _flag(settings, "critical_alerts")
        base_url = _optional_str(settings, "base_url") or (SANDBOX_URL if sandbox else PRODUCTION_URL)
        if not base_url.startswith(("http://", "https://")):
            raise ChannelConfigError(f"[push.{CHANNEL}] base_url must be an http(s) URL")
        self._base_url = base_url.rstrip("/")
        timeout_s = timeout_setting(settings, CHANNEL)
        self._clock = clock
        if self._base_url.startswith("http://"):
            # No TLS, so no ALPN: HTTP/2 with prior knowledge (h2c), as a local fake speaks.
            self._client = httpx.Client(http1=False, http2=True, timeout=float(timeout_s),
                                        transport=transport)
        else:
            self._client = httpx.Client(http2=True, timeout=float(timeout_s), transport=transport)
        self._token: str | None = None
        self._token_time = 0.0

    # -- provider token ------------------------------------------------------------------

    def _provider_token(self) -> str:
        now = self._clock()
        if self._token is None or now - self._token_time >= TOKEN_REFRESH_S:
            self._token = jwt.encode({"iss": self._team_id, "iat": int(now)}, self._key,
                                     algorithm="ES256", headers={"kid": self._key_id})
            self._token_time = now
            self.log.debug("apns: signed a new provider token (kid {key_id}, iat {iat})",
                           key_id=self._key_id, iat=int(now))
        return self._token

    # -- sending -------------------------------------------------------------------------

    def build(self, message: PushMessage) -> dict[str, Any]:
        """The JSON payload of one notification."""
        aps: dict[str, Any] = {"alert": {"title": message.title, "body": message.body},
                               "sound": "default"}
        if message.critical:
            if self._critical_alerts:
                aps["sound"] = {"critical": 1, "name": "default", "volume": 1.0}
                aps["interruption-level"] = "critical"
            else:
                aps["interruption-level"] = "time-sensitive"
        payload: dict[str, Any] = {key: value for key, value in message.data.items() if key != "aps"}
        payload["aps"] = aps
        return payload

    def headers(self, message: PushMessage) -> dict[str, str]:
        """The APNs request headers of one notification (without authorization)."""
        expiration = 0 if message.ttl_s <= 0 else int(self._clock()) + int(message.ttl_s)
        headers = {
            "apns-topic": self._topic,
            "apns-push-type": "alert",
            "apns-priority": "10" if message.critical else "5",
            "apns-expiration": str(expiration),
        }
        if message.collapse_key:
            headers["apns-collapse-id"] = collapse_id(message.collapse_key)
        return headers

    def send(self, target: PushTarget, message: PushMessage) -> SendResult:
        if not DEVICE_TOKEN.fullmatch(target.token):
            return log_result(self.log, CHANNEL, SendResult(INVALID_TOKEN, "BadDeviceToken"), target, message)
        body = json.dumps(self.build(message), separators=(",", ":"), ensure_ascii=False).encode()
        if len(body) > MAX_PAYLOAD_BYTES:
            return log_result(self.log, CHANNEL, SendResult(FAILED, "PayloadTooLarge"), target, message)
        headers = self.headers(message)
        headers["content-type"] = "application/json"
        for attempt in (1, 2):
            headers["authorization"] = f"bearer {self._provider_token()}"
            try:
                response = self._client.post(f"{self._base_url}/3/device/{target.token}",
                                             content=body, headers=headers)
            except httpx.TimeoutException:
                return log_result(self.log, CHANNEL, SendResult(RETRY, "timeout"), target, message)
            except httpx.HTTPError as exc:
                return log_result(self.log, CHANNEL, SendResult(RETRY, type(exc).__name__), target, message)
            reason = _reason(response)
            if response.status_code == 403 and reason == EXPIRED_PROVIDER_TOKEN and attempt == 1:
                self.log.info("apns: provider token expired; signing a new one")
                self._token = None
                continue
            return log_result(self.log, CHANNEL, self._judge(response, reason), target, message)
        raise AssertionError("unreachable")   # pragma: no cover

    @staticmethod
    def _judge(response: httpx.Response, reason: str | None) -> SendResult:
        status = response.status_code
        if status == 200:
            return SendResult(SENT)
        error = reason or f"HTTP {status}"
        if status == 410 or reason in INVALID_TOKEN_REASONS:
            return SendResult(INVALID_TOKEN, error)
        if status == 429 or status >= 500:
            return SendResult(RETRY, error, retry_after(response.headers.get("retry-after")))
        return SendResult(FAILED, error)


    def close(self) -> None:
        self._client.close()


def _reason(response: httpx.Response) -> str | None:
    """The ``reason`` of an APNs error body, or None."""
    body = response_json(response) if response.content else None
    reason = body.get("reason") if isinstance(body, dict) else None
    return reason if isinstance(reason, str) and reason else None


NOTIFIER = ApnsNotifier
