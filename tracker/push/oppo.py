"""OPPO push (OPUSH) channel: notification-bar messages through the OPPO Push server API v1.

Followed: "OPPO PUSH 服务端 API" (server API v1, open.oppomobile.com): the auth
interface ``/server/v1/auth`` and the single-push interface
``/server/v1/message/notification/unicast``, with its common return codes.

Authentication
    ``POST {base_url}/server/v1/auth`` form-encoded ``app_key``, ``timestamp`` (ms) and
    ``sign = sha256_hex(app_key + timestamp + master_secret)``; the answer is
    ``{"code": 0, "message", "data": {"auth_token", "create_time"}}``.  An auth_token
    is valid 24 h; it is cached until ``TOKEN_MARGIN_S`` before that (judged with the
    injected ``clock``).  A send refused for its token (HTTP 401 or code 11, "Invalid
    AuthToken") while a *cached* token was used drops the cache, fetches a new token
    and sends once more.  Refusals of the auth interface itself (codes 14 invalid app
    key, 16 invalid signature ...) mean the credentials are wrong: ``failed`` with
    ``AUTH_<code>``; its 5xx / -1 / -2 or network errors: ``retry``.

Sending
    ``POST {base_url}/server/v1/message/notification/unicast`` form-encoded, the token
    given both as the ``auth_token`` header and the ``auth_token`` form field (the
    API's common request parameter), and ``message`` the JSON::

        {"target_type": 2, "target_value": <regId>,
         "notification": {"title", "content", "click_action_type": 0,
                          "action_parameters": "<JSON of PushMessage.data>",
                          "channel_id": <channel_id / alarm_channel_id>,
                          "off_line_ttl": <ttl_s, at most 10 days>,
                          "app_message_id": "<event id>-<16 hex of the token's sha256>",
                          "category": <alarm_category>, "notify_level": 16}}

    ``target_type`` 2 addresses a registration id; ``click_action_type`` 0 opens the
    app.  ``app_message_id`` lets OPPO drop duplicates when the dispatcher retries.
    Critical messages go to ``alarm_channel_id`` with OPPO's message category (a
    service/communication category, default DEVICE_REMINDER) and ``notify_level`` 16
    (notification bar, lock screen, banner, vibration and ring).  Title and content
    are cut to OPPO's 50 and 200 characters.

Success is judged by the body ``code`` (``0`` with ``data.messageId``):

    ===============================  ================================================
    code / HTTP                      SendResult
    ===============================  ================================================
    0                                sent
    10000 (invalid registration id)  invalid_token
    11 (invalid auth token),         refresh the token and send once more, then
    HTTP 401                         failed
    33 (daily push quota exceeded)   retry, ``retry_after_s`` until the next midnight
                                     in China (UTC+8), when the quota resets
    -1 (service unavailable), -2     retry (Retry-After when given)
    (flow control), 13 (call rate
    limited), HTTP 429 / 5xx
    any other code (40/41 bad        failed (the code as error)
    arguments, 14 bad app key ...)
    timeouts, connection errors,     retry
    an unreadable 2xx body
    ===============================  ================================================

Settings (``[push.oppo]``):
    ``app_key``           required; the app's AppKey.
    ``master_secret``     required; the app's MasterSecret (only in the auth sign).
    ``base_url``          default ``https://api.push.oppomobile.com``.
    ``channel_id``        optional notification channel of ordinary messages (apps
                          targeting Android 8+ should set one registered with OPPO).
    ``alarm_channel_id``  optional channel of critical messages; default ``channel_id``.
    ``alarm_category``    ``category`` of critical messages; default ``DEVICE_REMINDER``;
                          "" sends neither category nor notify_level.
    ``timeout_s``         HTTP timeout in seconds; default 10.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from twisted.logger import Logger

from tracker.push.base import (
    FAILED,
    INVALID_TOKEN,
    RETRY,
    SENT,
    AuthRefused,
    PushMessage,
    PushTarget,
    SendResult,
    log_result,
    mask,
    optional_setting,
    post,
    response_json,
    retry_after,
    seconds_to_china_midnight,
    send_with_auth_token,
    setting,
    timeout_setting,
    token_hash,
    url_setting,
)

CHANNEL = "oppo"
DEFAULT_BASE_URL = "https://api.push.oppomobile.com"
TOKEN_LIFETIME_S = 86_400.0
TOKEN_MARGIN_S = 600.0            # refresh this long before the auth_token expires
MAX_TTL_S = 10 * 86_400
TITLE_CHARS, CONTENT_CHARS = 50, 200
NOTIFY_LEVEL_ALARM = 16

CODE_OK = 0
CODES_INVALID_TOKEN = (10000,)
CODES_AUTH = (11,)
CODES_DAILY_QUOTA = (33,)
CODES_RETRY = (-1, -2, 13)



def _cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:chars - 1] + "…"



class OppoNotifier:
    """OPPO push over its server API v1; see the module docstring."""

    channel = CHANNEL
    log = Logger()

    def __init__(self, settings: Mapping[str, Any], *, clock: Callable[[], float] = time.time,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._app_key = setting(settings, "app_key", CHANNEL)
        self._master_secret = setting(settings, "master_secret", CHANNEL)
        self._base_url = url_setting(settings, "base_url", CHANNEL, DEFAULT_BASE_URL)
        self._channel_id = optional_setting(settings, "channel_id", CHANNEL)
        self._alarm_channel_id = (optional_setting(settings, "alarm_channel_id", CHANNEL)
                                  or self._channel_id)
        self._alarm_category = optional_setting(settings, "alarm_category", CHANNEL, "DEVICE_REMINDER")
        timeout_s = timeout_setting(settings, CHANNEL)
        self._clock = clock
        self._client = httpx.Client(timeout=float(timeout_s), transport=transport)
        self._token: str | None = None
        self._token_expiry = 0.0

    # -- auth ----------------------------------------------------------------------------

    def _auth_token(self) -> tuple[str, bool] | SendResult:
        """(auth_token, came_from_cache), or the SendResult when none could be had."""
        now = self._clock()
        if self._token is not None and now < self._token_expiry:
            return self._token, True
        timestamp = str(int(now * 1000))
        sign = hashlib.sha256(f"{self._app_key}{timestamp}{self._master_secret}".encode()).hexdigest()
        response = post(self._client, f"{self._base_url}/server/v1/auth", reason_prefix="AUTH ",
                        data={"app_key": self._app_key, "timestamp": timestamp, "sign": sign})
        if isinstance(response, SendResult):
            return response
        body = response_json(response)
        code = body.get("code") if isinstance(body, dict) else None
        if response.status_code >= 500 or response.status_code == 429 or code in CODES_RETRY:
            reason = f"AUTH_{code}" if code is not None else f"AUTH HTTP {response.status_code}"
            return SendResult(RETRY, reason, retry_after(response.headers.get("Retry-After")))
        data = body.get("data") if isinstance(body, dict) else None
        token = data.get("auth_token") if isinstance(data, dict) else None
        if code != CODE_OK or not isinstance(token, str) or not token:
            reason = f"AUTH_{code}" if code is not None else f"AUTH HTTP {response.status_code}"
            self.log.error("oppo: auth refused: {reason} {message}", reason=reason,
                           message=body.get("message") if isinstance(body, dict) else None)
            return SendResult(FAILED, reason)
        self._token = token
        self._token_expiry = now + TOKEN_LIFETIME_S - TOKEN_MARGIN_S
        self.log.debug("oppo: new auth_token {token}", token=mask(token))
        return token, False

    # -- sending -------------------------------------------------------------------------

    def build(self, target: PushTarget, message: PushMessage) -> dict[str, Any]:
        """The ``message`` object of the unicast interface for one registration id."""
        notification: dict[str, Any] = {
            "title": _cut(message.title, TITLE_CHARS),
            "content": _cut(message.body, CONTENT_CHARS),
            "click_action_type": 0,
            "off_line_ttl": max(1, min(int(message.ttl_s), MAX_TTL_S)),
            "app_message_id": f"{message.event_id}-{token_hash(target.token)[:16]}",
        }
        if message.data:
            notification["action_parameters"] = json.dumps(dict(message.data), separators=(",", ":"),
                                                           ensure_ascii=False)
        channel_id = self._alarm_channel_id if message.critical else self._channel_id
        if channel_id:
            notification["channel_id"] = channel_id
        if message.critical and self._alarm_category:
            notification["category"] = self._alarm_category
            notification["notify_level"] = NOTIFY_LEVEL_ALARM
        return {"target_type": 2, "target_value": target.token, "notification": notification}

    def send(self, target: PushTarget, message: PushMessage) -> SendResult:
        payload = json.dumps(self.build(target, message), separators=(",", ":"), ensure_ascii=False)
        result = send_with_auth_token(self._auth_token, lambda token: self._post(token, payload),
                                      self._forget_token, self.log, CHANNEL)
        return log_result(self.log, CHANNEL, result, target, message)

    def _forget_token(self) -> None:
        self._token = None

    def _post(self, token: str, payload: str) -> SendResult:
        response = post(self._client, f"{self._base_url}/server/v1/message/notification/unicast",
                        data={"auth_token": token, "message": payload},
                        headers={"auth_token": token})
        if isinstance(response, SendResult):
            return response
        status = response.status_code
        body = response_json(response)
        code = body.get("code") if isinstance(body, dict) else None
        if status == 401 or code in CODES_AUTH:
            raise AuthRefused(str(code) if code is not None else "HTTP 401")
        if code == CODE_OK and 200 <= status < 300:
            return SendResult(SENT)
        if code in CODES_INVALID_TOKEN:
            return SendResult(INVALID_TOKEN, str(code))
        if code in CODES_DAILY_QUOTA:
            return SendResult(RETRY, str(code), seconds_to_china_midnight(self._clock()))
        if status == 429 or status >= 500 or code in CODES_RETRY:
            return SendResult(RETRY, str(code) if code is not None else f"HTTP {status}",
                              retry_after(response.headers.get("Retry-After")))
        if code is None:
            return SendResult(RETRY if 200 <= status < 300 else FAILED, f"HTTP {status}")
        return SendResult(FAILED, str(code))


    def close(self) -> None:
        self._client.close()



NOTIFIER = OppoNotifier
