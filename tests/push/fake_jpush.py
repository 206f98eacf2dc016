"""A fake JPush REST API v3: ``POST /v3/push``.

It checks HTTP Basic ``base64(app_key:master_secret)`` (anything else: 401 with body
code 1004, as JPush answers), the push object's shape (``platform``, ``audience.
registration_id`` a list of strings, ``notification`` with an android or ios block of
the right types, ``options.time_to_live`` an int, ``apns_production`` a bool; a bad
field: 400 code 1003, a missing one: 400 code 1002) and answers ``{"sendno",
"msg_id"}``.  ``invalid_tokens`` holds registration ids JPush no longer knows (400
code 1011).
"""

from __future__ import annotations

import base64
import itertools

from tests.push.fakegateway import Answer, FakeGateway, Request

MSG_1011 = "cannot find user by this audience or has been inactive for more than 255 days"


def jpush_error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, {"error": {"code": code, "message": message}, "msg_id": "0"}, headers or {})


def internal_error() -> Answer:
    return jpush_error(500, 1000, "Server error")


def rate_limited(reset_s: int = 42) -> Answer:
    """2002: the app's API rate limit, with JPush's X-Rate-Limit-* headers."""
    return jpush_error(429, 2002, "Request times is out of limit",
                       {"X-Rate-Limit-Limit": "600", "X-Rate-Limit-Remaining": "0",
                        "X-Rate-Limit-Reset": str(reset_s)})


def bad_gateway() -> Answer:
    return Answer(502, "<html>502 Bad Gateway</html>")


def appkey_invalid() -> Answer:
    return jpush_error(400, 1008, "app_key is invalid")


class FakeJPush(FakeGateway):
    def __init__(self, *, app_key: str = "7d431e42dfa6a6d693ac2d04",
                 master_secret: str = "5e987ac6d2e04d95a9d8f0d1") -> None:
        super().__init__()
        self.app_key = app_key
        self.master_secret = master_secret
        self.invalid_tokens: set[str] = set()
        self._msg_ids = itertools.count(18_100_000_000)

    @property
    def authorization(self) -> str:
        pair = f"{self.app_key}:{self.master_secret}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def handle(self, request: Request) -> Answer:
        if request.method != "POST":
            return jpush_error(405, 1001, "Only support HTTP Post method")
        if request.path != "/v3/push":
            return Answer(404, "Not Found")
        if request.headers.get("authorization") != self.authorization:
            return jpush_error(401, 1004, "Authen failed")
        if not request.headers.get("content-type", "").startswith("application/json"):
            return jpush_error(400, 1003, "Content-Type must be application/json")
        try:
            push = request.json
        except ValueError:
            return jpush_error(400, 1003, "Request body is not valid json")
        problem = self._problem(push)
        if problem is not None:
            return jpush_error(400, *problem)
        tokens = push["audience"]["registration_id"]
        if all(token in self.invalid_tokens for token in tokens):
            return jpush_error(400, 1011, MSG_1011)
        return Answer(200, {"sendno": "0", "msg_id": str(next(self._msg_ids))})

    @staticmethod
    def _problem(push: object) -> tuple[int, str] | None:
        """(code, message) of the first thing wrong with the push object, or None."""
        if not isinstance(push, dict):
            return 1003, "push payload must be a json object"
        for key in ("platform", "audience", "notification"):
            if key not in push:
                return 1002, f"{key} is required"
        platform = push["platform"]
        if platform != "all" and not (isinstance(platform, list) and platform
                                      and set(platform) <= {"android", "ios", "quickapp", "hmos"}):
            return 1003, "platform is invalid"
        audience = push["audience"]
        ids = audience.get("registration_id") if isinstance(audience, dict) else None
        if not isinstance(ids, list) or not ids or len(ids) > 1000 \
                or not all(isinstance(t, str) and t for t in ids):
            return 1003, "audience registration_id is invalid"
        problem = FakeJPush._notification_problem(push["notification"])
        if problem is not None:
            return problem
        options = push.get("options", {})
        if not isinstance(options, dict):
            return 1003, "options is invalid"
        ttl = options.get("time_to_live", 86400)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= 864000:
            return 1003, "options time_to_live is invalid"
        if not isinstance(options.get("apns_production", False), bool):
            return 1003, "options apns_production must be a boolean"
        return None

    @staticmethod
    def _notification_problem(notification: object) -> tuple[int, str] | None:
        if not isinstance(notification, dict) or not ({"android", "ios", "alert"} & notification.keys()):
            return 1003, "notification is invalid"
        android = notification.get("android")
        if android is not None:
            if not isinstance(android, dict) or not isinstance(android.get("alert"), str):
                return 1003, "notification android alert is invalid"
            if not isinstance(android.get("priority", 0), int) or not -2 <= android.get("priority", 0) <= 2:
                return 1003, "notification android priority is invalid"
            extras = android.get("extras", {})
            if not isinstance(extras, dict):
                return 1003, "notification android extras must be a json object"
        ios = notification.get("ios")
        if ios is not None and (not isinstance(ios, dict) or not isinstance(ios.get("alert"), str | dict)):
            return 1003, "notification ios alert is invalid"
        return None
