"""A fake Huawei Push Kit: the OAuth token endpoint and ``/v1/{app_id}/messages:send``.

It issues access tokens for the one registered client (``client_id`` / ``client_secret``),
checks ``Authorization: Bearer`` on every send (unknown or expired tokens get the 401
and body code 80200003 Push Kit answers; a missing header 80200001), checks the body's
shape (``message.token`` a list of 1..1000 strings, ``android.notification`` title
and body, ``ttl`` as "<n>s", ``data`` a string, the 4096-byte size limit) and answers
with Push Kit's body codes.  ``invalid_tokens`` holds device tokens the gateway
treats as dead (80300007 when all are, 80100000 with ``illegal_tokens`` when some
are).  ``expire_access_tokens()`` plays the server side of an OAuth token expiring.
"""

from __future__ import annotations

import itertools
import json
import re
from urllib.parse import parse_qs

from tests.push.fakegateway import Answer, FakeGateway, Request

MAX_BODY_BYTES = 4096


def push_answer(status: int, code: str, msg: str) -> Answer:
    return Answer(status, {"code": code, "msg": msg, "requestId": "167000000000000000001"})


def internal_error() -> Answer:
    """81000001: Push Kit's internal error (HTTP 500)."""
    return push_answer(500, "81000001", "System inner error")


def traffic_control(retry_after_s: int | None = 30) -> Answer:
    """HTTP 503: Push Kit's flow control."""
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else {}
    return Answer(503, "Service Unavailable", headers)


def too_many_requests(retry_after_s: int = 12) -> Answer:
    return Answer(429, "Too Many Requests", {"Retry-After": str(retry_after_s)})


def body_too_big() -> Answer:
    return push_answer(400, "80300008", "The message body size exceeds the default value")


class FakeHuawei(FakeGateway):
    def __init__(self, *, app_id: str = "10123456", client_id: str | None = None,
                 client_secret: str = "s3cr3t-app-secret", expires_in_s: int = 3600) -> None:
        super().__init__()
        self.app_id = app_id
        self.client_id = client_id or app_id
        self.client_secret = client_secret
        self.expires_in_s = expires_in_s
        self.access_tokens: set[str] = set()
        self.issued: list[str] = []
        self.invalid_tokens: set[str] = set()
        self.accept_access_tokens = True           # False: every Bearer token is refused
        self._serial = itertools.count(1)

    # -- helpers for tests ------------------------------------------------------------

    def expire_access_tokens(self) -> None:
        self.access_tokens.clear()

    @property
    def sends(self) -> list[Request]:
        return [r for r in self.received if r.path.endswith(":send")]

    @property
    def token_requests(self) -> list[Request]:
        return [r for r in self.received if r.path == "/oauth2/v3/token"]

    # -- the service ------------------------------------------------------------------

    def handle(self, request: Request) -> Answer:
        if request.method == "POST" and request.path == "/oauth2/v3/token":
            return self._token(request)
        if request.method == "POST" and request.path == f"/v1/{self.app_id}/messages:send":
            return self._send(request)
        if request.method == "POST" and request.path.endswith("/messages:send"):
            return push_answer(401, "80200001", "Oauth authentication error")  # token of another app
        return Answer(404, "Not Found")

    def _token(self, request: Request) -> Answer:
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return Answer(400, {"error": 1102, "sub_error": 20001,
                                "error_description": "missing required parameter: grant_type"})
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return Answer(400, {"error": 1102, "sub_error": 20001,
                                "error_description": "missing required parameter: grant_type"})
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return Answer(400, {"error": 1101, "sub_error": 20003,
                                "error_description": "invalid client secret"})
        token = f"CgB6e3x9{next(self._serial):04d}AccessTokenValue+/="
        self.access_tokens.add(token)
        self.issued.append(token)
        return Answer(200, {"access_token": token, "expires_in": self.expires_in_s,
                            "token_type": "Bearer"})

    def _send(self, request: Request) -> Answer:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return push_answer(401, "80200001", "Oauth authentication error")
        if not self.accept_access_tokens or auth[len("Bearer "):] not in self.access_tokens:
            return push_answer(401, "80200003", "Oauth Token expired")
        if not request.headers.get("content-type", "").startswith("application/json"):
            return push_answer(400, "80100001", "Some request parameters are incorrect")
        try:
            body = request.json
        except ValueError:
            return push_answer(400, "80100003", "Illegal message structure")
        problem = _shape_problem(body)
        if problem:
            return push_answer(400, *problem)
        if len(json.dumps(body["message"]).encode()) > MAX_BODY_BYTES:
            return body_too_big()
        tokens = body["message"]["token"]
        illegal = [t for t in tokens if t in self.invalid_tokens]
        if illegal and len(illegal) == len(tokens):
            return push_answer(400, "80300007", "All the tokens are invalid")
        if illegal:
            details = {"success": len(tokens) - len(illegal), "failure": len(illegal),
                       "illegal_tokens": illegal}
            return push_answer(200, "80100000", json.dumps(details))
        return push_answer(200, "80000000", "Success")


def _shape_problem(body: object) -> tuple[str, str] | None:
    """The code and message Push Kit answers for a malformed body, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
        return "80100003", "Illegal message structure"
    if "validate_only" in body and not isinstance(body["validate_only"], bool):
        return "80100001", "Some request parameters are incorrect: validate_only"
    message = body["message"]
    tokens = message.get("token")
    if (not isinstance(tokens, list) or not 1 <= len(tokens) <= 1000
            or not all(isinstance(t, str) and t for t in tokens)):
        return "80300010", "The number of tokens in the message body exceeds the default value"
    if "data" in message and not isinstance(message["data"], str):
        return "80100003", "Illegal message structure: data must be a string"
    android = message.get("android", {})
    if not isinstance(android, dict):
        return "80100003", "Illegal message structure: android"
    ttl = android.get("ttl", "86400s")
    if not (isinstance(ttl, str) and re.fullmatch(r"\d+(\.\d+)?s", ttl)):
        return "80100001", "Some request parameters are incorrect: ttl"
    if android.get("urgency", "NORMAL") not in ("HIGH", "NORMAL"):
        return "80100001", "Some request parameters are incorrect: urgency"
    notification = android.get("notification") or message.get("notification")
    if not isinstance(notification, dict):
        return "80100003", "Illegal message structure: notification"
    if not isinstance(notification.get("title"), str) or not isinstance(notification.get("body"), str):
        return "80100003", "Illegal message structure: title and body are required"
    if notification.get("importance", "NORMAL") not in ("LOW", "NORMAL", "HIGH"):
        return "80100001", "Some request parameters are incorrect: importance"
    click = notification.get("click_action")
    if click is not None and (not isinstance(click, dict) or click.get("type") not in (1, 2, 3, 4)):
        return "80100001", "Some request parameters are incorrect: click_action.type"
    return None
