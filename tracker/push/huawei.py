"""Huawei Push Kit (HMS Core) channel: downlink messages to Android devices without Google services.

Followed: HMS Core Push Kit server API, "Sending Downlink Messages" (REST API v1,
``messages:send``) and the OAuth 2.0 client-credentials flow of the Huawei account
server (``/oauth2/v3/token``), as published on developer.huawei.com.

Authentication (OAuth 2.0 client credentials)
    ``POST {auth_url}/oauth2/v3/token`` form-encoded ``grant_type=client_credentials``,
    ``client_id``, ``client_secret``; the answer is ``{"access_token", "expires_in": 3600,
    "token_type": "Bearer"}``.  The token is cached until ``TOKEN_MARGIN_S`` seconds
    before it expires (judged with the injected ``clock``).  A send answered with
    HTTP 401 or the body codes 80200001 (OAuth authentication error) / 80200003 (OAuth
    token expired) while a *cached* token was used drops the cache, fetches a new token
    and sends once more.  The token endpoint's own refusals (HTTP 4xx, ``{"error":
    1101, "error_description": ...}``) mean the credentials are wrong: ``failed`` with
    ``OAUTH_<error>``; its 5xx or network errors: ``retry``.

Sending
    ``POST {base_url}/v1/{app_id}/messages:send`` with ``Authorization: Bearer <token>``
    and the JSON body::

        {"validate_only": false,
         "message": {"token": [<token>], "data": "<JSON of PushMessage.data>",
                     "android": {"urgency": "HIGH"|"NORMAL", "ttl": "86400s",
                                 "category": <alarm_category, critical only>,
                                 "notification": {"title", "body", "click_action": {"type": 3},
                                                  "importance": "NORMAL"|<alarm_importance>,
                                                  "channel_id": <channel_id / alarm_channel_id>,
                                                  "tag": <collapse key>}}}}

    ``click_action.type`` 3 opens the app.  The collapse key goes to
    ``android.notification.tag`` (a newer notification with the same tag replaces the
    older one); Push Kit's ``android.collapse_key`` is an integer cache group (-1..100),
    not a string key, so it is not used.

Success is judged by the body ``code`` (a string), never by the HTTP status alone:

    ============================  ===================================================
    body code / HTTP              SendResult
    ============================  ===================================================
    80000000                      sent
    80100000 (partial success)    invalid_token if our token is among ``msg``'s
                                  ``illegal_tokens``, else sent
    80300007 (all tokens invalid) invalid_token
    80200001 / 80200003, HTTP 401 refresh the OAuth token and retry once, then failed
    81000001 (internal error)     retry
    HTTP 429, HTTP 503 (traffic   retry, ``retry_after_s`` from Retry-After
    control), any other 5xx
    80300008 (body too big),      failed (the code as error)
    80100001/80100003 (bad
    parameters), 80300002 (no
    permission), 80300010 (token
    count), any other code
    timeouts, connection errors,  retry
    an unreadable 2xx body
    ============================  ===================================================

Settings (``[push.huawei]``):
    ``app_id``            required; the app's ID in AppGallery Connect (in the send URL).
    ``client_id``         OAuth client ID; default ``app_id`` (Push Kit uses the app ID).
    ``client_secret``     required; the app secret (OAuth client secret).
    ``base_url``          default ``https://push-api.cloud.huawei.com``.
    ``auth_url``          default ``https://oauth-login.cloud.huawei.com``.
    ``channel_id``        optional Android notification channel of ordinary messages.
    ``alarm_channel_id``  optional channel of critical messages (an app channel with
                          alarm sound); default ``channel_id``.
    ``alarm_category``    ``android.category`` of critical messages, the message
                          self-classification Push Kit requires for high-priority
                          delivery; default ``DEVICE_REMINDER``; "" sends none.
    ``alarm_importance``  ``android.notification.importance`` of critical messages:
                          LOW, NORMAL or HIGH (default HIGH; HIGH needs the category
                          approved for the app, else Huawei downgrades it).
    ``timeout_s``         HTTP timeout in seconds; default 10.
"""

from __future__ import annotations

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
    ChannelConfigError,
    PushMessage,
    PushTarget,
    SendResult,
    log_result,
    mask,
    optional_setting,
    overloaded,
    post,
    response_json,
    retry_after,
    send_with_auth_token,
    setting,
    timeout_setting,
    url_setting,
)

CHANNEL = "huawei"
DEFAULT_BASE_URL = "https://push-api.cloud.huawei.com"
DEFAULT_AUTH_URL = "https://oauth-login.cloud.huawei.com"
TOKEN_MARGIN_S = 300.0          # refresh this long before the access token expires
IMPORTANCES = ("LOW", "NORMAL", "HIGH")

CODE_SUCCESS = "80000000"
CODE_PARTIAL = "80100000"
CODE_ALL_TOKENS_INVALID = "80300007"
CODES_AUTH = ("80200001", "80200003")
CODES_RETRY = ("81000001",)



class HuaweiNotifier:
    """Huawei Push Kit over its REST API; see the module docstring."""

    channel = CHANNEL
    log = Logger()

    def __init__(self, settings: Mapping[str, Any], *, clock: Callable[[], float] = time.time,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._app_id = setting(settings, "app_id", CHANNEL)
        self._client_id = optional_setting(settings, "client_id", CHANNEL) or self._app_id
        self._client_secret = setting(settings, "client_secret", CHANNEL)
        self._base_url = url_setting(settings, "base_url", CHANNEL, DEFAULT_BASE_URL)
        self._auth_url = url_setting(settings, "auth_url", CHANNEL, DEFAULT_AUTH_URL)
        self._channel_id = optional_setting(settings, "channel_id", CHANNEL)
        self._alarm_channel_id = (optional_setting(settings, "alarm_channel_id", CHANNEL)
                                  or self._channel_id)
        self._alarm_category = optional_setting(settings, "alarm_category", CHANNEL, "DEVICE_REMINDER")
        importance = optional_setting(settings, "alarm_importance", CHANNEL, "HIGH") or "HIGH"
        if importance not in IMPORTANCES:
            raise ChannelConfigError(f"[push.{CHANNEL}] alarm_importance must be one of {IMPORTANCES}")
        self._alarm_importance = importance
        timeout_s = timeout_setting(settings, CHANNEL)
        self._clock = clock
        self._client = httpx.Client(timeout=float(timeout_s), transport=transport)
        self._token: str | None = None
        self._token_expiry = 0.0

    # -- OAuth ---------------------------------------------------------------------------

    def _access_token(self) -> tuple[str, bool] | SendResult:
        """(token, came_from_cache), or the SendResult when no token could be had."""
        if self._token is not None and self._clock() < self._token_expiry:
            return self._token, True
        form = {"grant_type": "client_credentials", "client_id": self._client_id,
                "client_secret": self._client_secret}
        response = post(self._client, f"{self._auth_url}/oauth2/v3/token", data=form,
                        reason_prefix="OAUTH ")
        if isinstance(response, SendResult):
            return response
        busy = overloaded(response, "OAUTH ")
        if busy:
            return busy
        body = response_json(response)
        token = body.get("access_token") if isinstance(body, dict) else None
        if response.status_code != 200 or not isinstance(token, str) or not token:
            error = body.get("error") if isinstance(body, dict) else None
            reason = f"OAUTH_{error}" if error is not None else f"OAUTH HTTP {response.status_code}"
            self.log.error("huawei: OAuth token request refused: {reason} {description}", reason=reason,
                           description=body.get("error_description") if isinstance(body, dict) else None)
            return SendResult(FAILED, reason)
        expires_in = body.get("expires_in", 3600)
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            expires_in = 3600
        self._token = token
        self._token_expiry = self._clock() + max(0.0, float(expires_in) - TOKEN_MARGIN_S)
        self.log.debug("huawei: new OAuth token {token}, expires in {expires_in} s",
                       token=mask(token), expires_in=expires_in)
        return token, False

    # -- sending -------------------------------------------------------------------------

    def build(self, target: PushTarget, message: PushMessage) -> dict[str, Any]:
        """The JSON body of ``messages:send`` for one token."""
        notification: dict[str, Any] = {
            "title": message.title,
            "body": message.body,
            "click_action": {"type": 3},
            "importance": self._alarm_importance if message.critical else "NORMAL",
        }
        channel_id = self._alarm_channel_id if message.critical else self._channel_id
        if channel_id:
            notification["channel_id"] = channel_id
        if message.collapse_key:
            notification["tag"] = message.collapse_key
        android: dict[str, Any] = {
            "urgency": "HIGH" if message.critical else "NORMAL",
            "ttl": f"{int(message.ttl_s)}s",
            "notification": notification,
        }
        if message.critical and self._alarm_category:
            android["category"] = self._alarm_category
        body: dict[str, Any] = {"token": [target.token], "android": android}
        if message.data:
            body["data"] = json.dumps(dict(message.data), separators=(",", ":"), ensure_ascii=False)
        return {"validate_only": False, "message": body}

    def send(self, target: PushTarget, message: PushMessage) -> SendResult:
        payload = self.build(target, message)
        result = send_with_auth_token(self._access_token, lambda token: self._post(token, payload, target),
                                      self._forget_token, self.log, CHANNEL)
        return log_result(self.log, CHANNEL, result, target, message)

    def _forget_token(self) -> None:
        self._token = None

    def _post(self, token: str, payload: dict[str, Any], target: PushTarget) -> SendResult:
        response = post(self._client, f"{self._base_url}/v1/{self._app_id}/messages:send",
                        json=payload, headers={"Authorization": f"Bearer {token}"})
        if isinstance(response, SendResult):
            return response
        body = response_json(response)
        code = str(body.get("code")) if isinstance(body, dict) and "code" in body else None
        if response.status_code == 401 or code in CODES_AUTH:
            raise AuthRefused(code or "HTTP 401")
        return self._judge(response, code, body, target)

    def _judge(self, response: httpx.Response, code: str | None, body: Any,
               target: PushTarget) -> SendResult:
        status = response.status_code
        if code == CODE_SUCCESS:
            return SendResult(SENT)
        if code == CODE_PARTIAL:
            return self._partial(body.get("msg"), target)
        if code == CODE_ALL_TOKENS_INVALID:
            return SendResult(INVALID_TOKEN, code)
        if status == 429 or status >= 500 or code in CODES_RETRY:
            return SendResult(RETRY, code or f"HTTP {status}",
                              retry_after(response.headers.get("Retry-After")))
        if code is None:
            # 2xx without a readable code: we cannot know whether it was sent.
            return SendResult(RETRY if 200 <= status < 300 else FAILED, f"HTTP {status}")
        return SendResult(FAILED, code)

    @staticmethod
    def _partial(msg: Any, target: PushTarget) -> SendResult:
        """80100000: ``msg`` is a JSON string with ``illegal_tokens``."""
        details: Any = msg
        if isinstance(msg, str):
            try:
                details = json.loads(msg)
            except ValueError:
                details = {}
        illegal = details.get("illegal_tokens", []) if isinstance(details, dict) else []
        if isinstance(illegal, list) and target.token in illegal:
            return SendResult(INVALID_TOKEN, CODE_PARTIAL)
        return SendResult(SENT)


    def close(self) -> None:
        self._client.close()



NOTIFIER = HuaweiNotifier
