"""A fake Mi Push: ``POST /v3/message/regid`` with ``Authorization: key=<app_secret>``.

It checks the app secret (a wrong or missing key gets code 21301, authentication
failed), the form encoding, the required fields (``registration_id``,
``restricted_package_name`` of the registered app, non-blank ``title`` < 50 and
``description`` < 128 characters, integer ``pass_through``, ``notify_type``,
``time_to_live``) and answers with Mi Push's bodies: ``{"result": "ok", "code": 0,
"data": {"id": ...}}`` or ``{"result": "error", "code": ..., "reason": ...}``.
``invalid_regids`` holds regIds the gateway treats as dead (20301 "No valid targets!").
"""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import parse_qs

from tests.push.fakegateway import Answer, FakeGateway, Request

CODE_MISSING_PARAMETER = 10016       # the brief's code for a bad request; not verified against the docs


def ok(message_id: str) -> Answer:
    return Answer(200, {"result": "ok", "trace_id": "Xlm00000000000000000001", "code": 0,
                        "data": {"id": message_id}, "description": "成功",
                        "info": "Received push messages for 1 REGID"})


def error(code: int, reason: str, status: int = 200) -> Answer:
    return Answer(status, {"result": "error", "reason": reason, "trace_id": "Xlm00000000000000000002",
                           "code": code, "description": "发送消息失败"})


def invalid_target() -> Answer:
    return error(20301, "No valid targets!")


def server_error(status: int = 503, retry_after_s: int | None = None) -> Answer:
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else {}
    return Answer(status, "Service Unavailable", headers)


class FakeXiaomi(FakeGateway):
    def __init__(self, *, app_secret: str = "t0pS3cretMiAppSecret==", package_name: str = "org.tracker.app"):
        super().__init__()
        self.app_secret = app_secret
        self.package_name = package_name
        self.invalid_regids: set[str] = set()
        self._serial = itertools.count(1)

    @staticmethod
    def form(request: Request) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(request.body.decode(), keep_blank_values=True).items()}

    def handle(self, request: Request) -> Answer:
        if request.method != "POST" or request.path != "/v3/message/regid":
            return Answer(404, "Not Found")
        if request.headers.get("authorization") != f"key={self.app_secret}":
            return error(21301, "Authentication failed")
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return error(CODE_MISSING_PARAMETER, "Missing required parameter: registration_id")
        form = self.form(request)
        problem = self._problem(form)
        if problem:
            return error(*problem)
        if form["registration_id"] in self.invalid_regids:
            return invalid_target()
        return ok(f"slm4{next(self._serial):010d}")

    def _problem(self, form: dict[str, Any]) -> tuple[int, str] | None:
        for key in ("registration_id", "restricted_package_name", "title", "description"):
            if not form.get(key, "").strip():
                return CODE_MISSING_PARAMETER, f"Missing required parameter: {key}"
        if form["restricted_package_name"] != self.package_name:
            return 22022, "Invalid restricted_package_name"
        if len(form["title"]) >= 50 or len(form["description"]) >= 128:
            return CODE_MISSING_PARAMETER + 1, "Invalid parameter: title or description too long"
        for key in ("pass_through", "notify_type", "time_to_live", "notify_id"):
            if key in form:
                try:
                    int(form[key])
                except ValueError:
                    return CODE_MISSING_PARAMETER + 1, f"Invalid parameter: {key}"
        return None
