"""vivo push channel: notification-bar messages through the vivo Push server API.

Followed: "vivo 消息推送服务端 API 接口文档" (PUSH-UPS-API, version 2.9.x, on
dev.vivo.com.cn): the auth interface ``/message/auth`` and the single-push interface
``/message/send``.

Authentication
    ``POST {base_url}/message/auth`` JSON ``{"appId", "appKey", "timestamp" (ms),
    "sign": md5_hex(appId + appKey + timestamp + appSecret)}`` (lower-case hex); the
    answer is ``{"result": 0, "desc", "authToken"}``.  An authToken lives 24 h; vivo
    asks callers to keep it in a cache and renew it every 1-2 hours, so it is cached
    for ``TOKEN_MAX_AGE_S`` (judged with the injected ``clock``).  A send refused for
    its authToken (HTTP 401 or result ``CODES_AUTH``) while a *cached* token was used
    drops the cache, fetches a new token and sends once more.  The auth interface's own
    refusals (non-zero ``result``: 10200.. bad appId/appKey/sign/timestamp) mean the
    credentials are wrong: ``failed`` with ``AUTH_<result>``; its 5xx or network
    errors: ``retry``.

Sending
    ``POST {base_url}/message/send`` with the header ``authToken: <token>`` and JSON::

        {"regId": <token>, "notifyType": 4, "title", "content", "timeToLive": <s>,
         "skipType": 1, "networkType": -1, "classification": 1 | 0,
         "requestId": "<event id>-<16 hex of the token's sha256>",
         "clientCustomMap": <data>}

    ``notifyType`` 4 rings and vibrates, ``skipType`` 1 opens the app, ``networkType``
    -1 delivers on any network.  ``classification`` 1 (system message: alarm, higher
    daily quota and delivery priority) for ``critical`` messages, 0 (operational)
    otherwise.  ``requestId`` is vivo's idempotency key: the same event to the same
    token is never delivered twice, however often the dispatcher retries.
    ``timeToLive`` is clamped to vivo's 900 s .. 7 days; the title to 40 and the body to
    100 width units (a CJK character counts 2), vivo's limits.  vivo has no collapse key.

Success is judged by the body ``result`` (``0`` with a ``taskId``), never by HTTP:

    ===============================  ================================================
    result / HTTP                    SendResult
    ===============================  ================================================
    0                                sent
    10302 (regId invalid)            invalid_token
    10000 (auth failed), HTTP 401    refresh the authToken and send once more, then
                                     failed
    10070 (daily total exceeded)     retry, ``retry_after_s`` until the next midnight
                                     in China (UTC+8), when vivo's quota resets
    HTTP 429 / 5xx                   retry (Retry-After when given)
    any other result                 failed (the result as error)
    timeouts, connection errors,     retry
    an unreadable 2xx body
    ===============================  ================================================

Settings (``[push.vivo]``):
    ``app_id``      required; the numeric appId.
    ``app_key``     required; the appKey.
    ``app_secret``  required; the appSecret (used only in the auth signature).
    ``base_url``    default ``https://api-push.vivo.com.cn``.
    ``timeout_s``   HTTP timeout in seconds; default 10.
"""

from __future__ import annotations

import hashlib
import time
import unicodedata
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
    ChannelConfigError,
    PushMessage,
    PushTarget,
    SendResult,
    log_result,
    mask,
    overloaded,
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

CHANNEL = "vivo"
DEFAULT_BASE_URL = "https://api-push.vivo.com.cn"
TOKEN_MAX_AGE_S = 3600.0          # vivo: authToken lives 24 h, renew every 1-2 h
MIN_TTL_S, MAX_TTL_S = 900, 7 * 86_400
TITLE_UNITS, CONTENT_UNITS = 40, 100

RESULT_OK = 0
CODES_INVALID_TOKEN = (10302,)
CODES_AUTH = (10000,)
CODES_DAILY_QUOTA = (10070,)



def clip(text: str, units: int) -> str:
    """`text` cut to `units` width units (wide CJK characters count 2), "…" marking a cut."""
    def width(char: str) -> int:
        return 2 if unicodedata.east_asian_width(char) in ("W", "F") and ord(char) < 0x1F000 else 1

    if sum(width(c) for c in text) <= units:
        return text
    out, used = [], 0
    for char in text:
        if used + width(char) > units - 1:
            break
        out.append(char)
        used += width(char)
    return "".join(out) + "…"



class VivoNotifier:
    """vivo push over its server API; see the module docstring."""

    channel = CHANNEL
    log = Logger()

    def __init__(self, settings: Mapping[str, Any], *, clock: Callable[[], float] = time.time,
                 transport: httpx.BaseTransport | None = None) -> None:
        app_id = settings.get("app_id")
        if isinstance(app_id, int) and not isinstance(app_id, bool):
            app_id = str(app_id)
        self._app_id = setting({"app_id": app_id}, "app_id", CHANNEL)
        if not self._app_id.isdigit():
            raise ChannelConfigError(f"[push.{CHANNEL}] app_id must be vivo's numeric appId")
        self._app_key = setting(settings, "app_key", CHANNEL)
        self._app_secret = setting(settings, "app_secret", CHANNEL)
        self._base_url = url_setting(settings, "base_url", CHANNEL, DEFAULT_BASE_URL)
        timeout_s = timeout_setting(settings, CHANNEL)
        self._clock = clock
        self._client = httpx.Client(timeout=float(timeout_s), transport=transport)
        self._token: str | None = None
        self._token_expiry = 0.0

    # -- auth ----------------------------------------------------------------------------

    def _auth_token(self) -> tuple[str, bool] | SendResult:
        """(authToken, came_from_cache), or the SendResult when none could be had."""
        now = self._clock()
        if self._token is not None and now < self._token_expiry:
            return self._token, True
        timestamp = int(now * 1000)
        sign = hashlib.md5(f"{self._app_id}{self._app_key}{timestamp}{self._app_secret}".encode(),
                           usedforsecurity=False).hexdigest()
        login = {"appId": int(self._app_id), "appKey": self._app_key, "timestamp": timestamp,
                 "sign": sign}
        response = post(self._client, f"{self._base_url}/message/auth", json=login,
                        reason_prefix="AUTH ")
        if isinstance(response, SendResult):
            return response
        busy = overloaded(response, "AUTH ")
        if busy:
            return busy
        body = response_json(response)
        token = body.get("authToken") if isinstance(body, dict) else None
        result = body.get("result") if isinstance(body, dict) else None
        if result != RESULT_OK or not isinstance(token, str) or not token:
            reason = f"AUTH_{result}" if result is not None else f"AUTH HTTP {response.status_code}"
            self.log.error("vivo: auth refused: {reason} {desc}", reason=reason,
                           desc=body.get("desc") if isinstance(body, dict) else None)
            return SendResult(FAILED, reason)
        self._token = token
        self._token_expiry = now + TOKEN_MAX_AGE_S
        self.log.debug("vivo: new authToken {token}", token=mask(token))
        return token, False

    # -- sending -------------------------------------------------------------------------

    def build(self, target: PushTarget, message: PushMessage) -> dict[str, Any]:
        """The JSON body of ``/message/send`` for one regId."""
        body: dict[str, Any] = {
            "regId": target.token,
            "notifyType": 4,
            "title": clip(message.title, TITLE_UNITS),
            "content": clip(message.body, CONTENT_UNITS),
            "timeToLive": max(MIN_TTL_S, min(int(message.ttl_s), MAX_TTL_S)),
            "skipType": 1,
            "networkType": -1,
            "classification": 1 if message.critical else 0,
            "requestId": f"{message.event_id}-{token_hash(target.token)[:16]}",
        }
        if message.data:
            body["clientCustomMap"] = dict(message.data)
        return body

    def send(self, target: PushTarget, message: PushMessage) -> SendResult:
        payload = self.build(target, message)
        result = send_with_auth_token(self._auth_token, lambda token: self._post(token, payload),
                                      self._forget_token, self.log, CHANNEL)
        return log_result(self.log, CHANNEL, result, target, message)

    def _forget_token(self) -> None:
        self._token = None

    def _post(self, token: str, payload: dict[str, Any]) -> SendResult:
        response = post(self._client, f"{self._base_url}/message/send", json=payload,
                        headers={"authToken": token})
        if isinstance(response, SendResult):
            return response
        status = response.status_code
        body = response_json(response)
        result = body.get("result") if isinstance(body, dict) else None
        if status == 401 or result in CODES_AUTH:
            raise AuthRefused(str(result) if result is not None else "HTTP 401")
        if result == RESULT_OK and 200 <= status < 300:
            return SendResult(SENT)
        if result in CODES_INVALID_TOKEN:
            return SendResult(INVALID_TOKEN, str(result))
        if result in CODES_DAILY_QUOTA:
            return SendResult(RETRY, str(result), seconds_to_china_midnight(self._clock()))
        if status == 429 or status >= 500:
            return SendResult(RETRY, str(result) if result is not None else f"HTTP {status}",
                              retry_after(response.headers.get("Retry-After")))
        if result is None:
            return SendResult(RETRY if 200 <= status < 300 else FAILED, f"HTTP {status}")
        return SendResult(FAILED, str(result))


    def close(self) -> None:
        self._client.close()



NOTIFIER = VivoNotifier
