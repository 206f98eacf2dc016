"""Who is calling: HTTP Basic credentials, session cookies, login rate limiting, CSRF.

Authentication (every /api endpoint that needs a user):

- A request carrying an ``Authorization`` header is judged by it alone: HTTP Basic
  with ``email:password`` (RFC 7617; UTF-8, Latin-1 accepted as a fallback).  A
  malformed header, another scheme or wrong credentials are a 401.  This is what
  `pytraccar` sends on every call.
- Otherwise the ``JSESSIONID`` cookie set by ``POST /api/session`` (Traccar's name,
  so browser front ends written for Traccar keep working).  The token is opaque;
  the store keeps only its hash and its expiry.

Login rate limiting: a failed password check (form login or Basic) counts against
the email address and against the client address (IPv6 clients by their /64,
which one subscriber usually holds whole).  Once either has `MAX_FAILURES`
failures within `WINDOW_S` seconds, further attempts for it are refused with 429
and ``Retry-After`` *without checking the password* (so guessing stops, and no
Argon2 work is spent on it) until the oldest of those failures leaves the
window.  Attempts still being checked count as well, so a burst of parallel
guesses gets no more tries than a sequence (the excess waits its turn).  A
successful login clears the email's count, not the address's.  The table is in
memory (one process), bounded to `MAX_TRACKED_KEYS` entries, and its clock is
the reactor's, so tests drive it with `twisted.internet.task.Clock`.
The client address is the TCP peer: behind a reverse proxy every client shares
the proxy's address, so per-address limiting then acts on the proxy (forwarded
headers are not trusted, because any client can send them).

CSRF: browsers attach cookies (and remembered Basic credentials) to cross-site
requests.  Every unsafe request (POST, PUT, PATCH, DELETE) that carries an
``Origin`` header is refused with 403 unless that origin's host and port are the
request's ``Host``; this also covers the login form (login CSRF) and requests
authenticated by Basic, which a browser may replay from its credential cache.
Requests without ``Origin`` (curl, pytraccar, other non-browser clients) pass: a
browser always sends ``Origin`` on cross-origin unsafe requests.  The session
cookie is also ``SameSite=Lax``, which already keeps it off cross-site POSTs in
current browsers; the Origin check is the second wall.  A reverse proxy in front
must pass the original ``Host`` through.
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import datetime as dt
import ipaddress
import math
import re
import urllib.parse

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from tracker.models import User
from tracker.storage.api import Store

log = Logger()

COOKIE_NAME = b"JSESSIONID"
REALM = "tracker"
SESSION_LIFETIME = dt.timedelta(days=7)

MAX_FAILURES = 5
WINDOW_S = 300.0
MAX_TRACKED_KEYS = 100_000

UNSAFE_METHODS = frozenset({b"POST", b"PUT", b"PATCH", b"DELETE"})

_TOKEN_RE = re.compile(rb"[A-Za-z0-9._~+/=-]{1,512}")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class AuthenticationFailed(Exception):
    """Missing, malformed or wrong credentials (HTTP 401).

    `basic_challenge` says whether the 401 should carry a ``WWW-Authenticate:
    Basic`` challenge (API authentication, not the login form).
    """

    def __init__(self, message: str, *, basic_challenge: bool = True):
        super().__init__(message)
        self.message = message
        self.basic_challenge = basic_challenge


class TooManyAttempts(Exception):
    """Login refused by the rate limiter (HTTP 429)."""

    def __init__(self, retry_after_s: int):
        super().__init__(f"too many failed logins; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


# -- parsing ---------------------------------------------------------------------

def parse_basic(value: bytes) -> tuple[str, str]:
    """(email, password) from an ``Authorization: Basic ...`` header value.

    Raises `AuthenticationFailed` for another scheme or a malformed value.
    """
    scheme, _, param = value.strip().partition(b" ")
    if scheme.lower() != b"basic":
        raise AuthenticationFailed("unsupported authorization scheme (use Basic)")
    try:
        raw = base64.b64decode(param.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise AuthenticationFailed("malformed Basic credentials") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    email, colon, password = text.partition(":")
    if not colon or not email:
        raise AuthenticationFailed("malformed Basic credentials")
    return email, password


def session_token(request: IRequest) -> str | None:
    """The session token from the cookie, or None when absent or not token-shaped."""
    raw = request.getCookie(COOKIE_NAME)
    if not raw or not _TOKEN_RE.fullmatch(raw):
        return None
    return raw.decode("ascii")


def client_key(request: IRequest) -> str:
    """The client's address for rate limiting (IPv6 reduced to its /64)."""
    host = getattr(request.getClientAddress(), "host", None)
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return str(host)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def same_origin(origin: bytes | None, host: bytes | None) -> bool:
    """Whether an ``Origin`` header names the ``Host`` the request was sent to.

    No Origin at all counts as same origin (non-browser client); ``Origin: null``
    (sandboxed frames, some redirects) does not.  Ports are compared with the
    scheme's default filled in, hosts case-insensitively.
    """
    if origin is None:
        return True
    if host is None:
        return False
    try:
        parts = urllib.parse.urlsplit(origin.decode("ascii").strip())
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            return False
        origin_port = parts.port or _DEFAULT_PORTS[parts.scheme]
        host_parts = urllib.parse.urlsplit("//" + host.decode("ascii").strip())
        if not host_parts.hostname:
            return False
        host_port = host_parts.port or _DEFAULT_PORTS[parts.scheme]
    except (UnicodeDecodeError, ValueError):
        return False
    return (parts.hostname.lower(), origin_port) == (host_parts.hostname.lower(), host_port)


def session_cookie(token: str, *, secure: bool) -> bytes:
    cookie = f"{COOKIE_NAME.decode()}={token}; HttpOnly; SameSite=Lax; Path=/"
    return (cookie + ("; Secure" if secure else "")).encode("ascii")


def expired_session_cookie(*, secure: bool) -> bytes:
    cookie = f"{COOKIE_NAME.decode()}=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"
    return (cookie + ("; Secure" if secure else "")).encode("ascii")


# -- rate limiting -----------------------------------------------------------------

class LoginRateLimiter:
    """Failed logins per key in a sliding window; see the module docstring.

    Attempts still being checked count against the limit too, so that a burst
    of parallel guesses cannot all pass the check before the first failure is
    recorded: when a key's recent failures plus its attempts in flight reach the
    limit, a further attempt waits (`wait_for_slot`) until one finishes and is
    then judged again.  Legitimate parallel requests (Home Assistant polls
    several endpoints at once with Basic) therefore queue briefly, never fail.
    """

    def __init__(self, clock: IReactorTime, *, max_failures: int = MAX_FAILURES,
                 window_s: float = WINDOW_S, max_keys: int = MAX_TRACKED_KEYS):
        self._clock = clock
        self._max_failures = max_failures
        self._window_s = window_s
        self._max_keys = max_keys
        # key -> times of its latest failures (at most max_failures), oldest first;
        # keys ordered by their latest failure, so the stalest are evicted first.
        self._failures: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict())
        self._in_flight: collections.Counter[str] = collections.Counter()
        self._waiters: list[Deferred[None]] = []

    @staticmethod
    def _keys(email: str, client: str) -> tuple[str, str]:
        return "email:" + email.strip().casefold(), "client:" + client

    def _recent(self, key: str, now: float) -> collections.deque[float]:
        """The key's failures inside the window (older ones are dropped)."""
        times = self._failures.get(key)
        if times is None:
            return collections.deque()
        while times and times[0] <= now - self._window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after_s(self, email: str, client: str) -> int | None:
        """Seconds until an attempt is allowed again, or None if it is allowed now."""
        now = self._clock.seconds()
        waits = []
        for key in self._keys(email, client):
            times = self._recent(key, now)
            if len(times) >= self._max_failures:
                waits.append(times[0] + self._window_s - now)
        if not waits:
            return None
        return max(1, math.ceil(max(waits)))

    def has_slot(self, email: str, client: str) -> bool:
        """Whether an attempt may start now (failures + attempts in flight < limit)."""
        now = self._clock.seconds()
        return all(len(self._recent(key, now)) + self._in_flight[key] < self._max_failures
                   for key in self._keys(email, client))

    def wait_for_slot(self) -> Deferred[None]:
        """Fires when some attempt in flight finishes."""
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        return waiter

    def start_attempt(self, email: str, client: str) -> None:
        for key in self._keys(email, client):
            self._in_flight[key] += 1

    def finish_attempt(self, email: str, client: str, *, succeeded: bool | None) -> None:
        """End an attempt: True success, False wrong password, None not judged (error)."""
        for key in self._keys(email, client):
            self._in_flight[key] -= 1
            if self._in_flight[key] <= 0:
                del self._in_flight[key]
        if succeeded is True:
            self.record_success(email)
        elif succeeded is False:
            self.record_failure(email, client)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def record_failure(self, email: str, client: str) -> None:
        now = self._clock.seconds()
        for key in self._keys(email, client):
            times = self._failures.get(key)
            if times is None:
                times = self._failures[key] = collections.deque(maxlen=self._max_failures)
            times.append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def record_success(self, email: str) -> None:
        self._failures.pop(self._keys(email, "")[0], None)

    def __len__(self) -> int:
        return len(self._failures)


# -- the authenticator ---------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class Login:
    user: User
    token: str


class Authenticator:
    """Turns requests into users; every store call runs on the thread pool."""

    def __init__(self, store: Store, threadpool, reactor, *, secure_cookies: bool = False,
                 session_lifetime: dt.timedelta = SESSION_LIFETIME,
                 limiter: LoginRateLimiter | None = None):
        self._store = store
        self._threadpool = threadpool
        self._reactor = reactor
        self.secure_cookies = secure_cookies
        self._session_lifetime = session_lifetime
        self.limiter = limiter if limiter is not None else LoginRateLimiter(reactor)

    def _call(self, fn, *args):
        return deferToThreadPool(self._reactor, self._threadpool, fn, *args)

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._reactor.seconds(), dt.UTC)

    async def check_password(self, email: str, password: str, client: str, *,
                             basic_challenge: bool) -> User:
        """The user for these credentials, through the rate limiter."""
        limiter = self.limiter
        while True:
            retry_after_s = limiter.retry_after_s(email, client)
            if retry_after_s is not None:
                log.info("login refused by rate limit for client {client}", client=client)
                raise TooManyAttempts(retry_after_s)
            if limiter.has_slot(email, client):
                break
            await limiter.wait_for_slot()
        limiter.start_attempt(email, client)
        succeeded = None
        try:
            user = await self._call(self._store.authenticate, email, password)
            succeeded = user is not None
        finally:
            limiter.finish_attempt(email, client, succeeded=succeeded)
        if user is None:
            log.info("failed login from client {client}", client=client)
            raise AuthenticationFailed("wrong email or password",
                                       basic_challenge=basic_challenge)
        return user

    async def require_user(self, request: IRequest) -> User:
        """The caller, by the Authorization header if there is one, else the cookie.

        Raises `AuthenticationFailed` when there are no credentials, bad Basic
        credentials or an unknown or expired session; `TooManyAttempts` when the
        rate limiter refuses.
        """
        if request.getHeader(b"authorization") is not None:
            return await self.basic_user(request)
        user = await self.cookie_user(request)
        if user is None:
            raise AuthenticationFailed("authentication required")
        return user

    async def basic_user(self, request: IRequest) -> User:
        email, password = parse_basic(request.getHeader(b"authorization") or b"")
        return await self.check_password(email, password, client_key(request),
                                         basic_challenge=True)

    async def cookie_user(self, request: IRequest) -> User | None:
        """The user of the session cookie; None without a live session."""
        token = session_token(request)
        if token is None:
            return None
        return await self._call(self._store.user_for_session, token, self.now())

    async def login(self, request: IRequest, email: str, password: str) -> Login:
        """Check a login form; on success a new session replaces the old one."""
        user = await self.check_password(email, password, client_key(request),
                                         basic_challenge=False)
        old_token = session_token(request)
        if old_token is not None:
            await self._call(self._store.delete_session, old_token)
        token = await self._call(self._store.create_session, user.id, self._session_lifetime)
        request.cookies.append(session_cookie(token, secure=self.secure_cookies))
        return Login(user, token)

    async def logout(self, request: IRequest) -> None:
        token = session_token(request)
        if token is not None:
            await self._call(self._store.delete_session, token)
        request.cookies.append(expired_session_cookie(secure=self.secure_cookies))


__all__ = [
    "AuthenticationFailed", "Authenticator", "COOKIE_NAME", "LoginRateLimiter",
    "TooManyAttempts", "UNSAFE_METHODS", "client_key", "parse_basic", "same_origin",
    "session_cookie", "session_token",
]
