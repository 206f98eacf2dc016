"""A fake vivo push server: ``/message/auth`` and ``/message/send``.

Auth checks ``sign = md5_hex(appId + appKey + timestamp + appSecret)`` and that the
timestamp is within vivo's 10 minutes of the fake's clock; the wrong field gets a
non-zero ``result`` (102xx) as vivo answers.  Sends need a live ``authToken`` header
(unknown or expired: result 10000), the required fields with the right types and
ranges (a bad one: a 10xxx result naming it) and answer ``{"result": 0, "desc",
"taskId"}``.  ``invalid_tokens`` are regIds vivo does not know (result 10302).
``expire_auth_tokens()`` plays the server side of an authToken expiring.
"""

from __future__ import annotations

import hashlib
import itertools
import time
import unicodedata
from collections.abc import Callable

from tests.push.fakegateway import Answer, FakeGateway, Request


def vivo_answer(result: int, desc: str, status: int = 200) -> Answer:
    return Answer(status, {"result": result, "desc": desc})


def daily_quota_exceeded() -> Answer:
    return vivo_answer(10070, "发送总量超出限制")


def server_error() -> Answer:
    return Answer(500, "Internet server error!")


class FakeVivo(FakeGateway):
    def __init__(self, *, app_id: int = 10004, app_key: str = "25509283-3767-4b9e-83fe-b6e55ac6243e",
                 app_secret: str = "vivo-app-secret-0123", clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.app_id = app_id
        self.app_key = app_key
        self.app_secret = app_secret
        self.clock = clock
        self.auth_tokens: set[str] = set()
        self.issued: list[str] = []
        self.invalid_tokens: set[str] = set()
        self._serial = itertools.count(1)
        self._tasks = itertools.count(12_139_732)

    def expire_auth_tokens(self) -> None:
        self.auth_tokens.clear()

    @property
    def sends(self) -> list[Request]:
        return [r for r in self.received if r.path == "/message/send"]

    @property
    def auths(self) -> list[Request]:
        return [r for r in self.received if r.path == "/message/auth"]

    def handle(self, request: Request) -> Answer:
        if request.method != "POST":
            return Answer(405, "Method Not Allowed")
        if not request.headers.get("content-type", "").startswith("application/json"):
            return Answer(415, "Unsupported Media Type")
        try:
            body = request.json
        except ValueError:
            return vivo_answer(10001, "请求参数不合法")
        if not isinstance(body, dict):
            return vivo_answer(10001, "请求参数不合法")
        if request.path == "/message/auth":
            return self._auth(body)
        if request.path == "/message/send":
            if request.headers.get("authtoken") not in self.auth_tokens:
                return vivo_answer(10000, "权限认证失败")
            return self._send(body)
        return Answer(404, "Not Found")

    def _auth(self, body: dict) -> Answer:
        if not isinstance(body.get("appId"), int):
            return vivo_answer(10200, "appId不能为空")
        if not isinstance(body.get("appKey"), str) or not body["appKey"]:
            return vivo_answer(10201, "appKey不能为空")
        if not isinstance(body.get("timestamp"), int):
            return vivo_answer(10203, "timestamp不能为空")
        if not isinstance(body.get("sign"), str) or not body["sign"]:
            return vivo_answer(10204, "sign不能为空")
        if body["appId"] != self.app_id or body["appKey"] != self.app_key:
            return vivo_answer(10202, "appKey不合法")
        if abs(body["timestamp"] - self.clock() * 1000) > 600_000:
            return vivo_answer(10207, "timestamp不合法")
        expected = hashlib.md5(f"{self.app_id}{self.app_key}{body['timestamp']}{self.app_secret}".encode(),
                               usedforsecurity=False).hexdigest()
        if body["sign"] != expected:
            return vivo_answer(10206, "sign不正确")
        token = f"vivo-auth-token-{next(self._serial):04d}-24ojds98fu3jqrioeu982134jieds9fq43u09uaf"
        self.auth_tokens.add(token)
        self.issued.append(token)
        return Answer(200, {"result": 0, "desc": "请求成功", "authToken": token})

    def _send(self, body: dict) -> Answer:
        checks = [
            ("regId", lambda v: isinstance(v, str) and v, 10300, "regId不能为空"),
            ("notifyType", lambda v: v in (1, 2, 3, 4), 10301, "notifyType不合法"),
            ("title", lambda v: isinstance(v, str) and v and _units(v) <= 40, 10303, "title不合法"),
            ("content", lambda v: isinstance(v, str) and v and _units(v) <= 100, 10304, "content不合法"),
            ("skipType", lambda v: v in (1, 2, 3, 4), 10305, "skipType不合法"),
            ("requestId", lambda v: isinstance(v, str) and 0 < len(v) <= 64, 10306, "requestId不合法"),
        ]
        for key, valid, code, desc in checks:
            if not valid(body.get(key)):
                return vivo_answer(code, desc)
        ttl = body.get("timeToLive", 86400)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 900 <= ttl <= 604800:
            return vivo_answer(10307, "timeToLive不合法")
        if body.get("classification", 0) not in (0, 1):
            return vivo_answer(10308, "classification不合法")
        custom = body.get("clientCustomMap", {})
        if not isinstance(custom, dict) or not all(isinstance(v, str) for v in custom.values()):
            return vivo_answer(10309, "clientCustomMap不合法")
        if body["regId"] in self.invalid_tokens:
            return vivo_answer(10302, "regId不合法")
        return Answer(200, {"result": 0, "desc": "请求成功", "taskId": str(next(self._tasks))})


def _units(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") and ord(c) < 0x1F000 else 1 for c in text)
