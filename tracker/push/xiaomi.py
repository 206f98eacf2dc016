"""Xiaomi Mi Push (MiPush) channel: notifications to MIUI / HyperOS devices by regId.

Followed: Mi Push "Server API Address and Parameters" (dev.mi.com, Xiaomi HyperOS
developer documentation), the V3 interface ``/v3/message/regid`` (compatible with V2,
several package names allowed).

Request
    ``POST {base_url}/v3/message/regid`` with the header ``Authorization: key=<app_secret>``
    and a form-encoded (``application/x-www-form-urlencoded``) body:

    ``registration_id`` (the regId), ``restricted_package_name``, ``title``,
    ``description`` (the body), ``payload`` (JSON of ``PushMessage.data``; the form
    encoding URL-encodes it as the docs require), ``pass_through=0`` (a notification
    bar message), ``notify_type=-1`` (DEFAULT_ALL: sound, vibration, lights),
    ``time_to_live`` (milliseconds), ``extra.notify_effect=1`` (tap opens the app),
    ``extra.channel_id`` (``channel_id``, or ``alarm_channel_id`` for critical
    messages) and, with a collapse key, ``notify_id`` (a stable non-negative int from
    the key: a newer notification with the same id replaces the older one).

    Mi Push has no per-message priority field on this interface: "critical" is carried
    by the alarm channel (an Android notification channel the app created with alarm
    sound and high importance, registered with Xiaomi as a private-message channel).

Success is judged by the body: ``{"result": "ok", "code": 0, "data": {"id": ...}}``;
errors are ``{"result": "error", "code": <n>, "reason": ..., "description": ...}``:

    =================================  ==============================================
    answer                             SendResult
    =================================  ==============================================
    code 0                             sent
    code 20301 ("No valid targets!":   invalid_token
    bad or unregistered regId), and
    codes listed in
    ``invalid_token_codes``
    codes listed in ``retry_codes``    retry (quota / daily limit codes: empty by
                                       default, see below)
    HTTP 429 / 5xx                     retry, ``retry_after_s`` from Retry-After
    HTTP 401 / 403, code 21301         failed (the app secret is wrong)
    (authentication failed)
    any other code                     failed (the code as error)
    timeouts, connection errors, an    retry
    unreadable 2xx body
    =================================  ==============================================

Settings (``[push.xiaomi]``):
    ``app_secret``           required; the AppSecret from the Mi developer console.
    ``package_name``         required; the app's package (``restricted_package_name``).
    ``channel_id``           optional notification channel of ordinary messages.
    ``alarm_channel_id``     optional channel of critical messages; default ``channel_id``.
    ``base_url``             default ``https://api.xmpush.xiaomi.com`` (mainland China;
                             e.g. ``https://sgp-api.xmpush.global.xiaomi.com`` abroad).
    ``invalid_token_codes``  extra body codes meaning a dead regId (list of ints).
    ``retry_codes``          body codes to retry (quota/daily-limit codes; list of ints).
    ``timeout_s``            HTTP timeout in seconds; default 10.
"""

from __future__ import annotations

import json
import time
import zlib
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
    overloaded,
    post,
    response_json,
    retry_after,
    setting,
    timeout_setting,
    url_setting,
)

CHANNEL = "xiaomi"
DEFAULT_BASE_URL = "https://api.xmpush.xiaomi.com"
CODE_INVALID_TARGET = 20301
CODE_AUTH_FAILED = 21301



def _codes(settings: Mapping[str, Any], key: str) -> frozenset[int]:
    value = settings.get(key, ())
    if not isinstance(value, list | tuple) or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in value):
        raise ChannelConfigError(f"[push.{CHANNEL}] {key} must be a list of integer codes")
    return frozenset(value)


def notify_id(collapse_key: str) -> int:
    """A stable non-negative int for a collapse key (Mi Push ``notify_id``)."""
    return zlib.crc32(collapse_key.encode("utf-8")) & 0x7FFFFFFF


class XiaomiNotifier:
    """Mi Push over its REST API; see the module docstring."""

    channel = CHANNEL
    log = Logger()

    def __init__(self, settings: Mapping[str, Any], *, clock: Callable[[], float] = time.time,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._app_secret = setting(settings, "app_secret", CHANNEL)
        self._package_name = setting(settings, "package_name", CHANNEL)
        self._channel_id = optional_setting(settings, "channel_id", CHANNEL)
        self._alarm_channel_id = optional_setting(settings, "alarm_channel_id", CHANNEL) or self._channel_id
        self._base_url = url_setting(settings, "base_url", CHANNEL, DEFAULT_BASE_URL)
        self._invalid_token_codes = _codes(settings, "invalid_token_codes") | {CODE_INVALID_TARGET}
        self._retry_codes = _codes(settings, "retry_codes")
        timeout_s = timeout_setting(settings, CHANNEL)
        self._clock = clock               # no cached credentials: kept for the common signature
        self._client = httpx.Client(timeout=float(timeout_s), transport=transport)

    def build(self, target: PushTarget, message: PushMessage) -> dict[str, str]:
        """The form fields of ``/v3/message/regid`` for one regId."""
        form = {
            "registration_id": target.token,
            "restricted_package_name": self._package_name,
            "title": message.title,
            "description": message.body,
            "payload": json.dumps(dict(message.data), separators=(",", ":"), ensure_ascii=False),
            "pass_through": "0",
            "notify_type": "-1",
            "time_to_live": str(int(message.ttl_s) * 1000),
            "extra.notify_effect": "1",
        }
        channel_id = self._alarm_channel_id if message.critical else self._channel_id
        if channel_id:
            form["extra.channel_id"] = channel_id
        if message.collapse_key:
            form["notify_id"] = str(notify_id(message.collapse_key))
        return form

    def send(self, target: PushTarget, message: PushMessage) -> SendResult:
        response = post(self._client, f"{self._base_url}/v3/message/regid",
                        data=self.build(target, message),
                        headers={"Authorization": f"key={self._app_secret}"})
        result = response if isinstance(response, SendResult) else self._judge(response)
        return log_result(self.log, CHANNEL, result, target, message)

    def _judge(self, response: httpx.Response) -> SendResult:
        busy = overloaded(response)
        if busy:
            return busy
        status = response.status_code
        if status in (401, 403):
            return SendResult(FAILED, f"HTTP {status}")
        body = response_json(response)
        code = body.get("code") if isinstance(body, dict) else None
        if not isinstance(code, int) or isinstance(code, bool):
            return SendResult(RETRY if 200 <= status < 300 else FAILED, f"HTTP {status}")
        if code == 0 and body.get("result") == "ok":
            return SendResult(SENT)
        if code in self._invalid_token_codes:
            return SendResult(INVALID_TOKEN, str(code))
        if code in self._retry_codes:
            return SendResult(RETRY, str(code), retry_after(response.headers.get("Retry-After")))
        return SendResult(FAILED, str(code))


    def close(self) -> None:
        self._client.close()


NOTIFIER = XiaomiNotifier
