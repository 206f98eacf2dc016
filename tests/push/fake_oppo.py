"""A fake OPPO push server: ``/server/v1/auth`` and the notification unicast interface.

Auth takes a form with ``app_key``, ``timestamp`` (ms, within OPPO's 10 minutes of the
fake's clock) and ``sign = sha256_hex(app_key + timestamp + master_secret)``; wrong
ones get OPPO's common codes (14 Invalid App Key, 16 Invalid Signature, 19 Invalid
Timestamp, 40 Missing Required Arguments).  The unicast needs a live ``auth_token``
(header or form field; unknown or expired: code 11 "Invalid AuthToken") and a form
field ``message`` holding the JSON message (``target_type`` 2, ``target_value``, a
``notification`` with title <= 50 and content <= 200 characters, ``click_action_type``
an int, ``action_parameters`` a JSON string, ``off_line_ttl`` an int); a bad one gets
41 "Invalid Arguments".  ``invalid_tokens`` are registration ids OPPO does not know
(code 10000).  ``expire_auth_tokens()`` plays the server side of a token expiring.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Callable
from urllib.parse import parse_qs

from tests.push.fakegateway import Answer, FakeGateway, Request

UNICAST = "/server/v1/message/notification/unicast"


def oppo_answer(code: int, message: str, status: int = 200) -> Answer:
    return Answer(status, {"code": code, "message": message})


def daily_quota_exceeded() -> Answer:
    return oppo_answer(33, "The number of messages exceeds the daily limit")


def service_unavailable() -> Answer:
    return oppo_answer(-1, "Service Currently Unavailable")


def flow_control() -> Answer:
    return oppo_answer(-2, "Service in Flow Control")


class FakeOppo(FakeGateway):
    def __init__(self, *, app_key: str = "oppo-app-key-a1b2c3",
                 master_secret: str = "oppo-master-secret-9z8y",
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.app_key = app_key
        self.master_secret = master_secret
        self.clock = clock
        self.auth_tokens: set[str] = set()
        self.issued: list[str] = []
        self.invalid_tokens: set[str] = set()
        self._serial = itertools.count(1)

    def expire_auth_tokens(self) -> None:
        self.auth_tokens.clear()

    @property
    def sends(self) -> list[Request]:
        return [r for r in self.received if r.path == UNICAST]

    @property
    def auths(self) -> list[Request]:
        return [r for r in self.received if r.path == "/server/v1/auth"]

    @staticmethod
    def form(request: Request) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(request.body.decode(), keep_blank_values=True).items()}

    def handle(self, request: Request) -> Answer:
        if request.method != "POST":
            return oppo_answer(12, "Http Action Not Allowed")
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return oppo_answer(41, "Invalid Arguments")
        form = self.form(request)
        if request.path == "/server/v1/auth":
            return self._auth(form)
        if request.path == UNICAST:
            token = request.headers.get("auth_token") or form.get("auth_token")
            if not token:
                return oppo_answer(29, "Missing Auth Token")
            if token not in self.auth_tokens:
                return oppo_answer(11, "Invalid AuthToken")
            return self._unicast(form)
        return Answer(404, "Not Found")

    def _auth(self, form: dict[str, str]) -> Answer:
        for key in ("app_key", "timestamp", "sign"):
            if not form.get(key):
                return oppo_answer(40, "Missing Required Arguments")
        if form["app_key"] != self.app_key:
            return oppo_answer(14, "Invalid App Key")
        if not form["timestamp"].isdigit() or abs(int(form["timestamp"]) - self.clock() * 1000) > 600_000:
            return oppo_answer(19, "Invalid Timestamp")
        signed = f"{self.app_key}{form['timestamp']}{self.master_secret}"
        expected = hashlib.sha256(signed.encode()).hexdigest()
        if form["sign"] != expected:
            return oppo_answer(16, "Invalid Signature")
        token = f"oppo-auth-{next(self._serial):04d}-58ad47319e8d725350a5afd5"
        self.auth_tokens.add(token)
        self.issued.append(token)
        return Answer(200, {"code": 0, "message": "Success",
                            "data": {"auth_token": token, "create_time": int(self.clock() * 1000)}})

    def _unicast(self, form: dict[str, str]) -> Answer:
        if "message" not in form:
            return oppo_answer(40, "Missing Required Arguments")
        try:
            message = json.loads(form["message"])
        except ValueError:
            return oppo_answer(41, "Invalid Arguments")
        if not _valid(message):
            return oppo_answer(41, "Invalid Arguments")
        if message["target_value"] in self.invalid_tokens:
            return oppo_answer(10000, "Invalid RegistrationId")
        return Answer(200, {"code": 0, "message": "Success",
                            "data": {"messageId": f"5f3b4c5d6e7f8a9b{next(self._serial):08d}"}})


def _valid(message: object) -> bool:
    if not isinstance(message, dict) or message.get("target_type") != 2:
        return False
    if not isinstance(message.get("target_value"), str) or not message["target_value"]:
        return False
    n = message.get("notification")
    if not isinstance(n, dict):
        return False
    texts_ok = (isinstance(n.get("title"), str) and 0 < len(n["title"]) <= 50
                and isinstance(n.get("content"), str) and 0 < len(n["content"]) <= 200)
    ints_ok = all(isinstance(n.get(key, 0), int) and not isinstance(n.get(key, 0), bool)
                  for key in ("click_action_type", "off_line_ttl", "notify_level"))
    if not texts_ok or not ints_ok or not 0 < n.get("off_line_ttl", 3600) <= 864000:
        return False
    params = n.get("action_parameters")
    if params is not None:
        try:
            if not isinstance(json.loads(params), dict):
                return False
        except (TypeError, ValueError):
            return False
    return True
