"""Webhook channel: a signed JSON POST to a URL the user registered.

Protocol (our own; the receiver's documentation is this docstring)
    ``POST <target.token>`` (the target's token is the hook's URL; only ``http`` and
    ``https`` URLs with a host are accepted, anything else is ``failed`` "bad webhook
    URL" without a request) with the headers::

        Content-Type: application/json
        X-Tracker-Timestamp: <unix seconds, from the injected clock>
        X-Tracker-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

    and the body (UTF-8 JSON, the exact bytes that were signed)::

        {"eventId": 7, "title": "...", "body": "...", "critical": false,
         "data": {"deviceId": "12", ...}, "sentAt": "2024-05-01T12:00:00Z"}

    A receiver recomputes the HMAC over the raw body with the shared secret, compares in
    constant time and rejects timestamps older than a few minutes (replay protection).
    Redirects are not followed (a 3xx is ``failed``): the signature is meant for the URL
    the user registered.

Outcomes:

    ==================================  ===========================================
    receiver's answer                   SendResult
    ==================================  ===========================================
    2xx                                 sent
    410 Gone                            invalid_token ("HTTP 410": the hook is gone)
    429, 5xx                            retry, ``retry_after_s`` from Retry-After
    timeout                             retry "TIMEOUT"
    connection refused / reset, DNS     retry "CONNECT_ERROR" / "NETWORK_ERROR"
    other 4xx, 3xx                      failed ("HTTP <status>")
    not an http(s) URL                  failed "bad webhook URL"
    ==================================  ===========================================

Settings (``[push.webhook]``):
    ``secret``      required; the HMAC-SHA256 key shared with the receivers.
    ``timeout_s``   HTTP timeout in seconds; default 10.
    There is no ``base_url``: every target carries its own full URL.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from twisted.logger import Logger

from tracker.push.base import (
    FAILED,
    INVALID_TOKEN,
    RETRY,
    SENT,
    PushMessage,
    PushTarget,
    SendResult,
    mask,
    retry_after,
    setting,
    timeout_setting,
)

CHANNEL = "webhook"
TIMESTAMP_HEADER = "X-Tracker-Timestamp"
SIGNATURE_HEADER = "X-Tracker-Signature"
BAD_URL = "bad webhook URL"


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The X-Tracker-Signature value of a body sent at `timestamp` (unix seconds, text)."""
    digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookNotifier:
    """Signed JSON POSTs; see the module docstring."""

    channel = CHANNEL
    log = Logger(namespace="tracker.push.webhook")

    def __init__(self, settings: Mapping[str, Any], *, clock: Callable[[], float] = time.time,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._secret = setting(settings, "secret", CHANNEL).encode("utf-8")
        timeout_s = timeout_setting(settings, CHANNEL)
        self._clock = clock
        self._client = httpx.Client(timeout=float(timeout_s), follow_redirects=False, transport=transport,
                                    headers={"User-Agent": "Tracker-Webhook/1"})

    def send(self, target: PushTarget, message: PushMessage) -> SendResult:
        url = target.token
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.log.warn("webhook: event {event_id}: {url} is not an http(s) URL",
                          event_id=message.event_id, url=mask(url))
            return SendResult(FAILED, BAD_URL)
        now = self._clock()
        timestamp = str(int(now))
        body = self.body(message, now)
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: signature(self._secret, timestamp, body)}
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            result = SendResult(RETRY, "TIMEOUT")
        except httpx.ConnectError:
            result = SendResult(RETRY, "CONNECT_ERROR")
        except (httpx.InvalidURL, httpx.UnsupportedProtocol):
            result = SendResult(FAILED, BAD_URL)
        except httpx.TransportError as error:
            result = SendResult(RETRY, f"NETWORK_ERROR: {type(error).__name__}")
        else:
            result = _result(response)
        self._log(url, message, result)
        return result

    @staticmethod
    def body(message: PushMessage, now: float) -> bytes:
        """The JSON body (the signed bytes) of `message` sent at `now` (unix seconds)."""
        sent_time = datetime.datetime.fromtimestamp(now, datetime.UTC)
        return json.dumps({
            "eventId": message.event_id,
            "title": message.title,
            "body": message.body,
            "critical": message.critical,
            "data": dict(message.data),
            "sentAt": sent_time.isoformat(timespec="seconds").replace("+00:00", "Z"),
        }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def _log(self, url: str, message: PushMessage, result: SendResult) -> None:
        if result.status == SENT:
            self.log.debug("webhook: event {event_id} delivered to {url}",
                           event_id=message.event_id, url=mask(url))
        else:
            self.log.info("webhook: event {event_id} to {url}: {status} {error}",
                          event_id=message.event_id, url=mask(url), status=result.status,
                          error=result.error)

    def close(self) -> None:
        self._client.close()


def _result(response: httpx.Response) -> SendResult:
    status = response.status_code
    error = f"HTTP {status}"
    if 200 <= status < 300:
        return SendResult(SENT)
    if status == 410:
        return SendResult(INVALID_TOKEN, error)
    if status == 429 or status >= 500:
        return SendResult(RETRY, error, retry_after(response.headers.get("Retry-After")))
    return SendResult(FAILED, error)


NOTIFIER = WebhookNotifier
