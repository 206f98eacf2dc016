"""Firebase Cloud Messaging channel (FCM HTTP v1) through the `firebase-admin` SDK.

Followed: Firebase documentation "Firebase Cloud Messaging HTTP v1 API" (REST reference
``projects.messages.send`` and the ``ErrorCode`` enum of ``FcmError``), "Authorize send
requests" (OAuth 2.0 service-account flow, RFC 7523 JWT bearer grant), and the
firebase-admin Python SDK 7.x ``messaging`` module (``send_each``, ``BatchResponse``).

Authentication
    A service account: the SDK signs an RS256 JWT (``iss`` = ``client_email``, ``aud`` =
    ``https://oauth2.googleapis.com/token``, ``scope`` = firebase.messaging) and posts it
    to the JSON file's ``token_uri`` (Google's ``https://oauth2.googleapis.com/token``) as
    ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``; the answer
    ``{"access_token", "expires_in": 3599, "token_type": "Bearer"}`` is sent as
    ``Authorization: Bearer <token>``.  The access token is cached until
    ``TOKEN_MARGIN_S`` seconds before it expires, judged with the injected ``clock``
    (google-auth's own expiry check is replaced by a subclass of its service-account
    credentials, `_ClockedServiceAccount`, which also serialises refreshes so the parallel
    threads of one ``send_each`` share one token fetch).  A send answered 401 makes google-auth's
    ``AuthorizedSession`` refresh the token and send once more; its refresh count is
    limited to one (``_max_refresh_attempts``, a private attribute, covered by a test).
    google-auth's background Regional Access Boundary lookup (a call to
    iamcredentials.googleapis.com after each refresh) is switched off: FCM does not use it.

Sending
    ``POST {base_url}/v1/projects/{project_id}/messages:send`` with ``{"message": {...}}``:
    ``token``, ``notification`` {title, body}, ``data`` (string map), and

    - Android targets: ``android`` {``priority`` "high" when critical else "normal",
      ``ttl`` "<ttl_s>s", ``collapse_key``, ``notification.channel_id`` =
      ``alarm_channel_id`` when critical else ``channel_id`` (if set)};
    - iOS targets: ``apns`` {headers ``apns-priority`` "10" when critical else "5",
      ``apns-expiration`` (now + ttl), ``apns-collapse-id``; ``aps.sound`` "default" and
      ``interruption-level`` "time-sensitive" when critical}.

    `firebase-admin` builds its send URL (``_MessagingService._fcm_url``) when the app's
    messaging service is created and has no option for another host; to honour
    ``base_url`` this module sets that private attribute after
    ``messaging._get_messaging_service(app)`` (a test asserts the URL the fake received,
    so an SDK change that breaks this is caught).  The SDK's own urllib3 retries of
    500/503 (up to 4, with back-off) are replaced for ``base_url`` by an adapter without
    status retries: the dispatcher owns retrying.

    Each notifier has its own ``firebase_admin.App`` (unique name).  `send_many` sends a
    batch with ``messaging.send_each`` (FCM batch semantics: one ``SendResponse`` per
    message, in order); firebase-admin runs one thread per message of a ``send_each``
    call, so batches are cut into chunks of ``pool_size`` messages (one ``send_each`` call
    each).

Success is a ``SendResponse.success`` (the service answered ``{"name":
"projects/<p>/messages/<id>"}``).  Errors (the FCM ``errorCode`` is the error text):

    ==========================================  =======================================
    firebase-admin exception (FCM errorCode)    SendResult
    ==========================================  =======================================
    UnregisteredError (404 UNREGISTERED)        invalid_token
    SenderIdMismatchError (403                  invalid_token
    SENDER_ID_MISMATCH)
    InvalidArgumentError (400                   invalid_token when the message names
    INVALID_ARGUMENT)                           the "registration token", else failed
    QuotaExceededError (429 QUOTA_EXCEEDED)     retry, ``retry_after_s`` = Retry-After
    UnavailableError (503 UNAVAILABLE,          retry (Retry-After when given)
    connection refused), InternalError (500
    INTERNAL), DeadlineExceededError (timeout)
    ThirdPartyAuthError (401                    failed (APNs / web push credentials
    THIRD_PARTY_AUTH_ERROR / APNS_AUTH_ERROR)   wrong in the Firebase project)
    UnauthenticatedError (401 after the         failed
    refresh), PermissionDeniedError, others
    token endpoint refused the service          failed ``OAUTH_<error>`` (retry when
    account (RefreshError)                      google-auth calls it retryable)
    token endpoint unreachable                  retry ``OAUTH_TRANSPORT``
    ==========================================  =======================================

Settings (``[push.fcm]``):
    ``credentials``       required; path of the service-account JSON file.
    ``project_id``        default: the ``project_id`` of the credentials file.
    ``base_url``          default ``https://fcm.googleapis.com``.  (The OAuth token URL is
                          the credentials file's ``token_uri``.)
    ``pool_size``         threads (and pooled connections) of one ``send_each`` call,
                          i.e. the chunk size of `send_many`; 1..500, default 10.
    ``channel_id``        optional Android notification channel of ordinary messages.
    ``alarm_channel_id``  Android notification channel of critical messages; default
                          "alarms".
    ``timeout_s``         HTTP timeout in seconds; default 10.
"""

from __future__ import annotations

import datetime
import itertools
import json
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import firebase_admin
import requests.adapters
from firebase_admin import credentials as fb_credentials
from firebase_admin import exceptions as fb_exceptions
from firebase_admin import messaging
from google.auth import _helpers as google_helpers
from google.auth import exceptions as google_exceptions
from google.oauth2 import service_account
from twisted.logger import Logger
from urllib3.util.retry import Retry

from tracker.push.base import (
    FAILED,
    INVALID_TOKEN,
    RETRY,
    SENT,
    ChannelConfigError,
    PushMessage,
    PushTarget,
    SendResult,
    mask,
    retry_after,
    setting,
)

CHANNEL = "fcm"
DEFAULT_BASE_URL = "https://fcm.googleapis.com"
TOKEN_MARGIN_S = 60.0          # refresh the access token this long before it expires
MAX_BATCH = 500                # firebase-admin's limit per send_each call
SCOPES = ["https://www.googleapis.com/auth/firebase.messaging"]

_app_numbers = itertools.count(1)

# firebase-admin 7.7 deprecates Message.token in favour of Firebase installation IDs
# (``fid``); our devices register FCM registration tokens, which the v1 API's
# ``message.token`` still takes.  Silence only that warning, once, at import.
warnings.filterwarnings("ignore", message=r"Message\.token is deprecated", category=DeprecationWarning)

# Exceptions whose FCM error code is more telling than the canonical one they carry.
_FCM_CODES: tuple[tuple[type[Exception], str], ...] = (
    (messaging.UnregisteredError, "UNREGISTERED"),
    (messaging.SenderIdMismatchError, "SENDER_ID_MISMATCH"),
    (messaging.QuotaExceededError, "QUOTA_EXCEEDED"),
    (messaging.ThirdPartyAuthError, "THIRD_PARTY_AUTH_ERROR"),
)
_TRANSIENT = (fb_exceptions.UnavailableError, fb_exceptions.InternalError,
              fb_exceptions.DeadlineExceededError)


class _ClockedServiceAccount(service_account.Credentials):
    """google-auth service-account credentials whose token expiry follows our clock."""

    clock: Callable[[], float] = time.time
    expires_at: float | None = None
    refresh_lock: threading.Lock

    def _blocking_refresh(self, request: Any) -> None:
        # send_each runs one thread per message: let only the first fetch a token.
        with self.refresh_lock:
            if not self.valid:
                self.refresh(request)

    def refresh(self, request: Any) -> None:
        super().refresh(request)
        lifetime_s = 3600.0
        if self.expiry is not None:
            lifetime_s = (self.expiry - google_helpers.utcnow()).total_seconds()
        self.expires_at = self.clock() + lifetime_s

    def _is_regional_access_boundary_lookup_required(self) -> bool:
        # FCM does not need Regional Access Boundaries; google-auth would look them up on
        # iamcredentials.googleapis.com after every token refresh.
        return False

    @property
    def expired(self) -> bool:
        return self.expires_at is None or self.clock() >= self.expires_at - TOKEN_MARGIN_S


class _Credential(fb_credentials.Base):
    """A firebase-admin credential around `_ClockedServiceAccount`."""

    def __init__(self, google_credential: _ClockedServiceAccount) -> None:
        self._google_credential = google_credential

    def get_credential(self) -> _ClockedServiceAccount:
        return self._google_credential


class FcmNotifier:
    """FCM HTTP v1 through firebase-admin; see the module docstring."""

    channel = CHANNEL
    log = Logger(namespace="tracker.push.fcm")

    def __init__(self, settings: Mapping[str, Any], *,
                 clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        path = setting(settings, "credentials", CHANNEL)
        info = _read_service_account(path)
        self.project_id = settings.get("project_id") or info.get("project_id")
        if not isinstance(self.project_id, str) or not self.project_id:
            raise ChannelConfigError(
                f"[push.{CHANNEL}] project_id is required (not in the credentials file {path})")
        self.base_url = _string(settings, "base_url", DEFAULT_BASE_URL).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ChannelConfigError(f"[push.{CHANNEL}] base_url must be an http(s) URL")
        self.pool_size = _number(settings, "pool_size", 10, int, low=1, high=MAX_BATCH)
        self.timeout_s = _number(settings, "timeout_s", 10.0, float, low=0.1, high=600.0)
        self.channel_id = settings.get("channel_id") or None
        self.alarm_channel_id = _string(settings, "alarm_channel_id", "alarms")

        try:
            google_credential = _ClockedServiceAccount.from_service_account_info(info, scopes=SCOPES)
        except (ValueError, TypeError) as error:
            raise ChannelConfigError(
                f"[push.{CHANNEL}] credentials {path}: not a usable service account ({error})"
            ) from error
        google_credential.clock = clock
        google_credential.refresh_lock = threading.Lock()
        self._app = firebase_admin.initialize_app(
            _Credential(google_credential),
            {"projectId": self.project_id, "httpTimeout": self.timeout_s},
            name=f"tracker-fcm-{next(_app_numbers)}")
        service = messaging._get_messaging_service(self._app)
        # Private attributes of firebase-admin / google-auth; see the module docstring.
        service._fcm_url = f"{self.base_url}/v1/projects/{self.project_id}/messages:send"
        session = service._client.session
        session._max_refresh_attempts = 1
        session.mount(self.base_url, requests.adapters.HTTPAdapter(
            pool_connections=1, pool_maxsize=self.pool_size,
            max_retries=Retry(total=0, connect=0, read=0, status=0, redirect=0,
                              raise_on_status=False)))
        self._service = service

    # -- sending -------------------------------------------------------------------------

    def send(self, target: PushTarget, message: PushMessage) -> SendResult:
        return self.send_many([(target, message)])[0]

    def send_many(self, batch: Iterable[tuple[PushTarget, PushMessage]]) -> list[SendResult]:
        """Send each (target, message) pair; one SendResult per pair, in order."""
        pairs = list(batch)
        results: list[SendResult] = []
        for start in range(0, len(pairs), self.pool_size):
            results.extend(self._send_chunk(pairs[start:start + self.pool_size]))
        return results

    def _send_chunk(self, pairs: list[tuple[PushTarget, PushMessage]]) -> list[SendResult]:
        built: list[messaging.Message | SendResult] = []
        for target, message in pairs:
            try:
                built.append(self.build_message(target, message))
            except (ValueError, TypeError) as error:   # the SDK refused the message locally
                self.log.warn("fcm: message {event_id} refused before sending: {error}",
                              event_id=message.event_id, error=str(error))
                built.append(SendResult(FAILED, f"INVALID_MESSAGE: {error}"))
        to_send = [item for item in built if isinstance(item, messaging.Message)]
        responses: list[Any] = []
        if to_send:
            try:
                responses = list(messaging.send_each(to_send, app=self._app).responses)
            except fb_exceptions.FirebaseError as error:
                # send_each raises only when a whole call broke (e.g. the OAuth token
                # could not be fetched); every message of the chunk shares that outcome.
                shared = self._batch_failure(error)
                responses = [shared] * len(to_send)
            except ValueError as error:
                responses = [SendResult(FAILED, f"INVALID_MESSAGE: {error}")] * len(to_send)
        answers = iter(responses)
        results = []
        for (target, message), item in zip(pairs, built, strict=True):
            if isinstance(item, SendResult):
                results.append(item)
                continue
            answer = next(answers)
            result = answer if isinstance(answer, SendResult) else self._result(answer)
            self._log_result(target, message, result)
            results.append(result)
        return results

    def build_message(self, target: PushTarget, message: PushMessage) -> messaging.Message:
        """The firebase-admin Message for one target (see the module docstring)."""
        critical = message.critical
        android = apns = None
        if target.platform == "ios":
            headers = {
                "apns-priority": "10" if critical else "5",
                "apns-expiration": str(int(self._clock()) + message.ttl_s),
            }
            if message.collapse_key:
                headers["apns-collapse-id"] = message.collapse_key
            aps = (messaging.Aps(sound="default", custom_data={"interruption-level": "time-sensitive"})
                   if critical else messaging.Aps())
            apns = messaging.APNSConfig(headers=headers, payload=messaging.APNSPayload(aps=aps))
        else:
            channel_id = self.alarm_channel_id if critical else self.channel_id
            android = messaging.AndroidConfig(
                collapse_key=message.collapse_key,
                priority="high" if critical else "normal",
                ttl=datetime.timedelta(seconds=message.ttl_s),
                notification=messaging.AndroidNotification(channel_id=channel_id) if channel_id else None)
        return messaging.Message(
            token=target.token,
            notification=messaging.Notification(title=message.title, body=message.body),
            data={str(key): str(value) for key, value in message.data.items()} or None,
            android=android,
            apns=apns)

    # -- outcomes ------------------------------------------------------------------------

    def _result(self, response: messaging.SendResponse) -> SendResult:
        if response.success:
            return SendResult(SENT)
        return _map_error(response.exception)

    def _batch_failure(self, error: fb_exceptions.FirebaseError) -> SendResult:
        cause = error.cause
        if isinstance(cause, google_exceptions.RefreshError):
            code = "OAUTH"
            if cause.args and isinstance(cause.args[-1], Mapping):
                code = f"OAUTH_{cause.args[-1].get('error', 'ERROR')}"
            self.log.error("fcm: the token endpoint refused the service account: {error}",
                           error=str(cause))
            return SendResult(RETRY if getattr(cause, "retryable", False) else FAILED, code)
        if isinstance(cause, google_exceptions.TransportError):
            self.log.warn("fcm: token endpoint unreachable: {error}", error=str(cause))
            return SendResult(RETRY, "OAUTH_TRANSPORT")
        return _map_error(error)

    def _log_result(self, target: PushTarget, message: PushMessage, result: SendResult) -> None:
        if result.status == SENT:
            self.log.debug("fcm: event {event_id} sent to {token}",
                           event_id=message.event_id, token=mask(target.token))
        else:
            self.log.info("fcm: event {event_id} to {token}: {status} {error}",
                          event_id=message.event_id, token=mask(target.token),
                          status=result.status, error=result.error)

    def close(self) -> None:
        try:
            self._service._client.close()
        finally:
            try:
                firebase_admin.delete_app(self._app)
            except (ValueError, RuntimeError) as error:   # deleted already / in an event loop
                self.log.debug("fcm: closing the app: {error}", error=str(error))


def _map_error(error: Exception | None) -> SendResult:
    if error is None:
        return SendResult(FAILED, "UNKNOWN")
    code = next((name for kind, name in _FCM_CODES if isinstance(error, kind)),
                getattr(error, "code", None) or type(error).__name__)
    if isinstance(error, messaging.UnregisteredError | messaging.SenderIdMismatchError):
        return SendResult(INVALID_TOKEN, code)
    if isinstance(error, fb_exceptions.InvalidArgumentError):
        status = INVALID_TOKEN if "registration token" in str(error).lower() else FAILED
        return SendResult(status, code)
    response = getattr(error, "http_response", None)
    status_code = response.status_code if response is not None else 0
    if isinstance(error, (messaging.QuotaExceededError, *_TRANSIENT)) or status_code in (429, 502, 504):
        return SendResult(RETRY, code if status_code != 502 else "HTTP 502", _retry_after_of(error))
    if status_code >= 500:
        return SendResult(RETRY, code, _retry_after_of(error))
    return SendResult(FAILED, code)


def _retry_after_of(error: Exception) -> float | None:
    response = getattr(error, "http_response", None)
    return retry_after(response.headers.get("Retry-After")) if response is not None else None


def _read_service_account(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as file:
            info = json.load(file)
    except (OSError, ValueError) as error:
        raise ChannelConfigError(f"[push.{CHANNEL}] credentials {path}: {error}") from error
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ChannelConfigError(f"[push.{CHANNEL}] credentials {path}: not a service-account JSON file")
    for key in ("client_email", "private_key", "token_uri"):
        if not isinstance(info.get(key), str) or not info[key]:
            raise ChannelConfigError(f"[push.{CHANNEL}] credentials {path}: {key} missing")
    return info


def _string(settings: Mapping[str, Any], key: str, default: str) -> str:
    value = settings.get(key, default)
    if not isinstance(value, str) or not value:
        raise ChannelConfigError(f"[push.{CHANNEL}] {key} must be a non-empty string")
    return value


def _number(settings: Mapping[str, Any], key: str, default: Any, kind: type, *, low: float,
            high: float) -> Any:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ChannelConfigError(f"[push.{CHANNEL}] {key} must be a number in {low}..{high}")
    if kind is int and value != int(value):
        raise ChannelConfigError(f"[push.{CHANNEL}] {key} must be an integer")
    return kind(value)


NOTIFIER = FcmNotifier
