"""JPush (Aurora / Jiguang push) channel: notifications through JPush's REST Push API v3.

Followed: JPush REST API v3 "Push API" (``POST /v3/push``) and its "HTTP status code"
and error-code tables, as published on docs.jiguang.cn (2023/2024 editions).

Authentication
    HTTP Basic on every request: ``Authorization: Basic base64(app_key:master_secret)``.
    There is no token to cache; a 401 (body code 1004) means the key pair is wrong:
    ``failed``.

Sending
    ``POST {base_url}/v3/push`` with the JSON push object::

        {"platform": ["android"] | ["ios"] | "all",
         "audience": {"registration_id": [<token>]},
         "notification": {
             "android": {"alert": body, "title": title, "priority": 2 | 0,
                         "channel_id": <channel_id / alarm_channel_id>, "extras": data},
             "ios": {"alert": {"title": title, "body": body}, "sound": "default",
                     "extras": data}},
         "options": {"time_to_live": <ttl_s, at most 10 days>,
                     "apns_production": <apns_production>,
                     "apns_collapse_id": <collapse key>}}

    ``platform`` follows ``PushTarget.platform`` (android / ios, anything else "all",
    with both notification blocks).  ``critical`` sets the Android ``priority`` to 2
    (JPush's highest, -2..2) and the alarm channel.

Success is judged by a 200 answer carrying ``msg_id`` (``{"sendno", "msg_id"}``);
errors come as ``{"error": {"code", "message"}}``:

    ==================================  ============================================
    answer                              SendResult
    ==================================  ============================================
    200 with ``msg_id``                 sent
    1011 (cannot find user by this      invalid_token (the registration id is
    audience / inactive > 255 days)     unknown or was dropped by JPush)
    2002 / 2003 (rate / API limits),    retry, ``retry_after_s`` from
    HTTP 429                            ``X-Rate-Limit-Reset`` (seconds to the
                                        window's reset), else Retry-After
    1000 (internal error), any 5xx      retry
    1004 (auth failed), 1008 (bad       failed (the code as error)
    app key), 1002/1003 (missing /
    bad parameter), other codes
    timeouts, connection errors,        retry
    unreadable 2xx body
    ==================================  ============================================

Settings (``[push.jpush]``):
    ``app_key``           required; the app's AppKey.
    ``master_secret``     required; the app's Master Secret.
    ``base_url``          default ``https://api.jpush.cn`` (apps in the Beijing
                          data centre use ``https://bjapi.push.jiguang.cn``).
    ``apns_production``   bool, default true: APNs production (false: sandbox).
    ``channel_id``        optional Android notification channel of ordinary messages.
    ``alarm_channel_id``  optional Android channel of critical messages; default
                          ``channel_id``.
    ``timeout_s``         HTTP timeout in seconds; default 10.
"""

from __future__ import annotations

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
    ChannelConfigError,
    PushMessage,
    PushTarget,
    SendResult,
    log_result,
    optional_setting,
    post,
    response_json,
    retry_after,
    setting,
    timeout_setting,
    url_setting,
)

CHANNEL = "jpush"
DEFAULT_BASE_URL = "https://api.jpush.cn"
MAX_TTL_S = 10 * 86_400           # JPush keeps offline messages at most 10 days
PRIORITY_HIGH, PRIORITY_DEFAULT = 2, 0

CODE_INVALID_AUDIENCE = 1011
CODES_RETRY = (1000, 2002, 2003)



class JPushNotifier:
    """JPush over its REST API v3; see the module docstring."""

    channel = CHANNEL
    log = Logger()

    def __init__(self, settings: Mapping[str, Any], *, clock: Callable[[], float] = time.time,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._app_key = setting(settings, "app_key", CHANNEL)
        master_secret = setting(settings, "master_secret", CHANNEL)
        self._base_url = url_setting(settings, "base_url", CHANNEL, DEFAULT_BASE_URL)
        apns_production = settings.get("apns_production", True)
        if not isinstance(apns_production, bool):
            raise ChannelConfigError(f"[push.{CHANNEL}] apns_production must be true or false")
        self._apns_production = apns_production
        self._channel_id = optional_setting(settings, "channel_id", CHANNEL)
        self._alarm_channel_id = (optional_setting(settings, "alarm_channel_id", CHANNEL)
                                  or self._channel_id)
        self._clock = clock
        self._client = httpx.Client(timeout=timeout_setting(settings, CHANNEL), transport=transport,
                                    auth=httpx.BasicAuth(self._app_key, master_secret))

    def build(self, target: PushTarget, message: PushMessage) -> dict[str, Any]:
        """The JSON push object of ``/v3/push`` for one registration id."""
        extras = dict(message.data)
        android: dict[str, Any] = {
            "alert": message.body,
            "title": message.title,
            "priority": PRIORITY_HIGH if message.critical else PRIORITY_DEFAULT,
        }
        channel_id = self._alarm_channel_id if message.critical else self._channel_id
        if channel_id:
            android["channel_id"] = channel_id
        ios: dict[str, Any] = {"alert": {"title": message.title, "body": message.body},
                               "sound": "default"}
        if extras:
            android["extras"] = extras
            ios["extras"] = extras
        platform: Any
        if target.platform == "android":
            platform, notification = ["android"], {"android": android}
        elif target.platform == "ios":
            platform, notification = ["ios"], {"ios": ios}
        else:
            platform, notification = "all", {"android": android, "ios": ios}
        options: dict[str, Any] = {
            "time_to_live": max(0, min(int(message.ttl_s), MAX_TTL_S)),
            "apns_production": self._apns_production,
        }
        if message.collapse_key:
            options["apns_collapse_id"] = message.collapse_key
        return {"platform": platform, "audience": {"registration_id": [target.token]},
                "notification": notification, "options": options}

    def send(self, target: PushTarget, message: PushMessage) -> SendResult:
        response = post(self._client, f"{self._base_url}/v3/push", json=self.build(target, message))
        result = response if isinstance(response, SendResult) else self._judge(response)
        return log_result(self.log, CHANNEL, result, target, message)

    @staticmethod
    def _judge(response: httpx.Response) -> SendResult:
        status = response.status_code
        body = response_json(response)
        if status == 200 and isinstance(body, dict) and body.get("msg_id") not in (None, "") \
                and "error" not in body:
            return SendResult(SENT)
        error = body.get("error") if isinstance(body, dict) else None
        code = error.get("code") if isinstance(error, dict) else None
        if isinstance(code, str) and code.isdigit():
            code = int(code)
        if code == CODE_INVALID_AUDIENCE:
            return SendResult(INVALID_TOKEN, str(code))
        if status == 429 or status >= 500 or code in CODES_RETRY:
            wait_s = retry_after(response.headers.get("X-Rate-Limit-Reset"))
            if wait_s is None:
                wait_s = retry_after(response.headers.get("Retry-After"))
            return SendResult(RETRY, str(code) if code is not None else f"HTTP {status}", wait_s)
        if code is not None:
            return SendResult(FAILED, str(code))
        # No error object: a 2xx we cannot read may have been sent; anything else is refused.
        return SendResult(RETRY if 200 <= status < 300 else FAILED, f"HTTP {status}")


    def close(self) -> None:
        self._client.close()



NOTIFIER = JPushNotifier
