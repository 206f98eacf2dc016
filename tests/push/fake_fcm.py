"""A fake of Google's OAuth 2.0 token endpoint and the FCM HTTP v1 send endpoint.

``POST /token`` (the service-account JSON's ``token_uri`` points here) takes the RFC 7523
JWT bearer grant as Google's ``oauth2.googleapis.com/token`` does: the RS256 signature is
verified with the test service account's public key, and ``iss`` (the client e-mail),
``aud`` (always Google's token URI), ``scope`` (FCM or cloud-platform) and ``exp`` are checked;
refusals are Google's ``{"error": "invalid_grant", "error_description": ...}``.

``POST /v1/projects/{project}/messages:send`` needs ``Authorization: Bearer`` with a token
this fake issued and has not expired (`expire_tokens` plays an expiry), validates the
``message`` as FCM does and answers ``{"name": "projects/<p>/messages/0:<n>"}`` or
Google's error format with the ``FcmError`` detail.  Tokens listed in `unregistered`
answer 404 UNREGISTERED.
"""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Any
from urllib.parse import parse_qs

import jwt

from tests.push.fakegateway import Answer, FakeGateway, Request

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Google: "When making an access token request this value is always
# https://oauth2.googleapis.com/token", whatever host the request goes to.
AUDIENCE = "https://oauth2.googleapis.com/token"
ACCEPTED_SCOPES = {"https://www.googleapis.com/auth/firebase.messaging",
                   "https://www.googleapis.com/auth/cloud-platform"}
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
UNAUTHENTICATED_MESSAGE = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie"
    " or other valid authentication credential. See"
    " https://developers.google.com/identity/sign-in/web/devconsole-project.")


def google_error(code: int, status: str, message: str, fcm_code: str | None = None, *,
                 headers: dict[str, str] | None = None, extra: list[Any] | None = None) -> Answer:
    """An answer in Google's API error format (with the FcmError detail when given)."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    details = ([{"@type": FCM_ERROR, "errorCode": fcm_code}] if fcm_code else []) + (extra or [])
    if details:
        error["details"] = details
    return Answer(code, {"error": error}, headers or {})


def unregistered() -> Answer:
    return google_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")


def invalid_registration_token() -> Answer:
    """As in Firebase's "FCM error codes" page, example 2."""
    text = "The registration token is not a valid FCM registration token"
    return google_error(400, "INVALID_ARGUMENT", text, "INVALID_ARGUMENT")


def invalid_argument(text: str) -> Answer:
    return google_error(400, "INVALID_ARGUMENT", text, "INVALID_ARGUMENT")


def sender_id_mismatch() -> Answer:
    return google_error(403, "PERMISSION_DENIED", "SenderId mismatch", "SENDER_ID_MISMATCH")


def quota_exceeded(retry_after_s: int = 60) -> Answer:
    return google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Send requests'.",
                        "QUOTA_EXCEEDED", headers={"Retry-After": str(retry_after_s)})


def unavailable(retry_after_s: int | None = None) -> Answer:
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else {}
    return google_error(503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE",
                        headers=headers)


def internal() -> Answer:
    return google_error(500, "INTERNAL", "Internal error encountered.", "INTERNAL")


def third_party_auth_error() -> Answer:
    return google_error(401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service",
                        "THIRD_PARTY_AUTH_ERROR")


def unauthenticated() -> Answer:
    return google_error(401, "UNAUTHENTICATED", UNAUTHENTICATED_MESSAGE)


class FakeFcm(FakeGateway):
    """Google OAuth token endpoint + FCM v1 messages:send; see the module docstring."""

    def __init__(self, project_id: str, client_email: str, public_key_pem: bytes) -> None:
        super().__init__()
        self.project_id = project_id
        self.client_email = client_email
        self.public_key_pem = public_key_pem
        self._ids = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        """Forget requests, tokens and scripted behaviour (to share one server between tests)."""
        self.received.clear()
        self.script.clear()
        self.token_lifetime_s = 3599
        self.issued: dict[str, float] = {}          # access token -> expiry (real time)
        self.token_requests = 0
        self.unregistered: set[str] = set()
        self.answers_for: dict[str, Answer] = {}    # registration token -> its lasting answer
        self.reject_bearer = False                  # refuse every access token (401)
        self.release()                              # end a stall (timeouts)

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def expire_tokens(self) -> None:
        """Every issued access token is expired from now on (the server's view)."""
        for token in self.issued:
            self.issued[token] = 0.0

    @property
    def sends(self) -> list[Request]:
        return [r for r in self.received if r.path.endswith("/messages:send")]

    def handle(self, request: Request) -> Answer:
        if request.method == "POST" and request.path == "/token":
            return self._token(request)
        prefix = f"/v1/projects/{self.project_id}/messages:send"
        if request.method == "POST" and request.path == prefix:
            return self._send(request)
        if request.path.endswith("/messages:send"):
            return google_error(404, "NOT_FOUND", "Requested entity was not found.")
        return Answer(404, "Not Found")

    # -- OAuth 2.0 -----------------------------------------------------------------------

    def _token(self, request: Request) -> Answer:
        self.token_requests += 1
        form = {key: values[0] for key, values in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != JWT_GRANT:
            return Answer(400, {"error": "unsupported_grant_type",
                                "error_description": "Invalid grant_type: " + form.get("grant_type", "")})
        try:
            claims = jwt.decode(form.get("assertion", ""), self.public_key_pem, algorithms=["RS256"],
                                audience=AUDIENCE, options={"require": ["iss", "aud", "exp", "iat"]})
        except jwt.InvalidSignatureError:
            return Answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        except jwt.ExpiredSignatureError:
            return Answer(400, {"error": "invalid_grant",
                                "error_description": "Invalid JWT: Token must be a short-lived token"})
        except jwt.PyJWTError as error:
            return Answer(400, {"error": "invalid_grant", "error_description": f"Invalid JWT: {error}"})
        if claims["iss"] != self.client_email:
            return Answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        if not ACCEPTED_SCOPES & set(str(claims.get("scope", "")).split()):
            return Answer(400, {"error": "invalid_scope",
                                "error_description": "Invalid OAuth scope or ID token audience provided."})
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        self.issued[token] = time.time() + self.token_lifetime_s
        return Answer(200, {"access_token": token, "expires_in": self.token_lifetime_s,
                            "token_type": "Bearer"})

    # -- messages:send -------------------------------------------------------------------

    def _send(self, request: Request) -> Answer:
        authorization = request.headers.get("authorization", "")
        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        if self.reject_bearer or self.issued.get(token, 0.0) <= time.time():
            return unauthenticated()
        try:
            body = request.json
        except ValueError:
            return invalid_argument("Invalid JSON payload received.")
        problem = _message_problem(body)
        if problem:
            return invalid_argument(problem)
        message = body["message"]
        if message["token"] in self.unregistered:
            return unregistered()
        if message["token"] in self.answers_for:
            return self.answers_for[message["token"]]
        return Answer(200, {"name": f"projects/{self.project_id}/messages/0:{int(time.time())}%"
                                    f"{next(self._ids):016x}"})


def _message_problem(body: Any) -> str | None:
    """FCM's INVALID_ARGUMENT reason for a bad send body, None when it is acceptable."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
        return "Invalid JSON payload received. Unknown name \"message\": required"
    message = body["message"]
    targets = [key for key in ("token", "topic", "condition") if key in message]
    if len(targets) != 1:
        return "Exactly one of token, topic or condition must be specified"
    if "token" not in message:
        return "This fake takes registration tokens only"
    if not isinstance(message["token"], str) or not message["token"]:
        return "The registration token is not a valid FCM registration token"
    notification = message.get("notification", {})
    if not isinstance(notification, dict) or any(
            key not in ("title", "body", "image") or not isinstance(value, str)
            for key, value in notification.items()):
        return "Invalid value at 'message.notification'"
    data = message.get("data", {})
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        return "Invalid value at 'message.data' (map<string, string>)"
    android = message.get("android", {})
    if android:
        if android.get("priority", "normal") not in ("normal", "high"):
            return "Invalid value at 'message.android.priority'"
        ttl = android.get("ttl", "0s")
        if not isinstance(ttl, str) or not ttl.endswith("s"):
            return "Invalid value at 'message.android.ttl' (type.googleapis.com/google.protobuf.Duration)"
    apns = message.get("apns", {})
    if apns and not all(isinstance(v, str) for v in apns.get("headers", {}).values()):
        return "Invalid value at 'message.apns.headers'"
    return None
