"""A fake webhook receiver that checks signatures the way the module docstring of
tracker/push/webhook.py tells receivers to.

Every POST must carry ``Content-Type: application/json``, a numeric
``X-Tracker-Timestamp`` within ``max_skew_s`` of the receiver's clock and an
``X-Tracker-Signature`` equal (constant-time compare) to ``sha256=HMAC(secret,
timestamp + "." + raw body)``; otherwise 401.  A body missing a field or with a wrong
type is 400.  Paths in `gone` answer 410; anything else 204.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable

from tests.push.fakegateway import Answer, FakeGateway, Request

FIELDS = {"eventId": int, "title": str, "body": str, "critical": bool, "data": dict, "sentAt": str}


class FakeWebhook(FakeGateway):
    def __init__(self, secret: str, *, max_skew_s: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.secret = secret.encode()
        self.max_skew_s = max_skew_s
        self.clock = clock
        self.gone: set[str] = set()

    def handle(self, request: Request) -> Answer:
        if request.method != "POST":
            return Answer(405, {"error": "method not allowed"})
        if request.path in self.gone:
            return Answer(410, {"error": "this hook was deleted"})
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return Answer(415, {"error": "expected application/json"})
        timestamp = request.headers.get("x-tracker-timestamp", "")
        if not timestamp.isdigit() or abs(self.clock() - int(timestamp)) > self.max_skew_s:
            return Answer(401, {"error": "stale or missing timestamp"})
        digest = hmac.new(self.secret, timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("x-tracker-signature", ""), f"sha256={digest}"):
            return Answer(401, {"error": "bad signature"})
        try:
            body = json.loads(request.body)
        except ValueError:
            return Answer(400, {"error": "body is not JSON"})
        if not isinstance(body, dict) or any(not isinstance(body.get(key), kind)
                                             for key, kind in FIELDS.items()):
            return Answer(400, {"error": "missing or mistyped field"})
        if not all(isinstance(value, str) for value in body["data"].values()):
            return Answer(400, {"error": "data values must be strings"})
        return Answer(204)
