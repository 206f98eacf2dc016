"""Who is calling: HTTP Basic credentials, API tokens, session cookies, login rate
limiting, CSRF.

Authentication (every /api endpoint that needs a user):

- A request carrying an ``Authorization`` header is judged by it alone: HTTP Basic
  with ``email:password`` (RFC 7617; UTF-8, Latin-1 accepted as a fallback), or
  ``Bearer <token>`` with an API token from ``POST /api/session/token`` (Traccar's
  ``ApiKey`` scheme, RFC 6750).  A malformed header, another scheme, wrong
  credentials or an unknown, expired or revoked token are a 401.  Basic is what
  `pytraccar` sends on every call.
- Otherwise the ``JSESSIONID`` cookie set by ``POST /api/session`` (Traccar's name,
  so browser front ends written for Traccar keep working).  The token is opaque;
  the store keeps only its hash and its expiry.

Login rate limiting: a failed password check (form login or Basic) counts
against three keys, each with a sliding window (a refused API token counts
against the client address alone, see below):

- the pair (account, client address): `MAX_FAILURES` in `WINDOW_S` (5 in 5 min);
- the client address across all accounts (password spraying): `MAX_FAILURES` in
  `WINDOW_S` as well;
- the account from all addresses together: `ACCOUNT_MAX_FAILURES` in
  `ACCOUNT_WINDOW_S` (30 in an hour), a slow limit on guessing from many
  addresses (a botnet gets 30 guesses an hour per account, not 5 per address).

IPv6 clients count by their /64, which one subscriber usually holds whole.  Once
any of the three keys of an attempt has reached its limit, the attempt is
refused with 429 and ``Retry-After`` *without checking the password* (so
guessing stops, and no Argon2 work is spent on it) until the oldest failure of
that key leaves its window.  So wrong passwords from one address lock that
address out (for that account, and after the spray limit for every account),
but the right password from another address still works.

Trade-off of the account limit: whoever sends 30 wrong passwords for an account
within an hour, from any addresses, locks it for every address that has not
logged in to it before, for up to an hour.  Addresses that have logged in to the
account successfully within `TRUSTED_S` (7 days, a session's lifetime) are exempt,
for that account, from the account limit and from the address limit (not from the
pair's), so the owner's browser, phone app and Basic-auth integrations keep
working during such an attack, and so do the other users behind the same address
(an office NAT, a reverse proxy) while someone there guesses passwords.  A success
clears the pair's count; it does not clear the address's or the account's (with
Basic every API call is a login, and clearing the account's count on each would
make its limit void).

Attempts still being checked count as well, so a burst of parallel guesses gets
no more tries than a sequence (the excess waits its turn).  The table is in
memory (one process), bounded to `MAX_TRACKED_KEYS` failure keys and as many
trusted pairs, and its clock is the reactor's, so tests drive it with
`twisted.internet.task.Clock`.  Keys are bounded too: an account is keyed by a
truncated SHA-256 of its casefolded, stripped e-mail (never the raw string, which
may be 64 KB), a client address longer than `MAX_CLIENT_KEY_CHARS` by its hash.
The client address is the TCP peer: behind a reverse proxy every client shares
the proxy's address, so per-address limiting then acts on the proxy (forwarded
headers are not trusted, because any client can send them).

API tokens (``Authorization: Bearer`` and ``GET /api/session?token=``) go through
the same limiter with no account: an unknown, expired, revoked or malformed token
is a failure of the client address (the spray key, `MAX_FAILURES` in `WINDOW_S`,
shared with password failures from that address), and once that key is full every
token attempt from the address is a 429, a valid token included, until it drains.
Trust from earlier password logins does not exempt token attempts (they name no
account).  Tokens are 256-bit random (``secrets.token_urlsafe(32)``), so the limit
is there to stop scanners, not because guessing could succeed.

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
import hashlib
import ipaddress
import math
import re
import secrets
import urllib.parse

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from tracker.models import User
from tracker.ports import Store

log = Logger()

COOKIE_NAME = b"JSESSIONID"
REALM = "tracker"
SESSION_LIFETIME = dt.timedelta(days=7)

MAX_FAILURES = 5                 # per (account, address) and per address, in WINDOW_S
WINDOW_S = 300.0
ACCOUNT_MAX_FAILURES = 30        # per account from all addresses, in ACCOUNT_WINDOW_S
ACCOUNT_WINDOW_S = 3_600.0
TRUSTED_S = 7 * 86_400.0         # a successful pair is exempt from the address and account limits
MAX_TRACKED_KEYS = 100_000
CREDENTIAL_TTL_S = 60.0          # a verified Basic credential is trusted this long
MAX_CACHED_CREDENTIALS = 10_000
MAX_CLIENT_KEY_CHARS = 64
KEY_HASH_CHARS = 32              # hex digits of SHA-256 kept (128 bits)

UNSAFE_METHODS = frozenset({b"POST", b"PUT", b"PATCH", b"DELETE"})

_TOKEN_RE = re.compile(rb"[A-Za-z0-9._~+/=-]{1,512}")
_API_TOKEN_RE = re.compile(r"[A-Za-z0-9._~+/=-]{1,512}", re.ASCII)
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
        raise AuthenticationFailed("unsupported authorization scheme (use Basic or Bearer)")
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


def bearer_token(value: bytes) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value (scheme
    case-insensitive, RFC 6750); None when the scheme is another one.  The token is
    returned as sent (Latin-1), shaped or not: a malformed one is judged, and
    counted, as an unknown token."""
    scheme, _, param = value.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return param.strip().decode("latin-1")


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

@dataclasses.dataclass(frozen=True, slots=True)
class _Key:
    """One limiter key and its limit."""

    name: str
    max_failures: int
    window_s: float


def account_key(email: str) -> str:
    """A bounded key for an account: truncated SHA-256 of the casefolded, stripped e-mail."""
    normal = email.strip().casefold().encode("utf-8", "surrogatepass")
    return hashlib.sha256(normal).hexdigest()[:KEY_HASH_CHARS]


def _client_part(client: str) -> str:
    if len(client) <= MAX_CLIENT_KEY_CHARS:
        return client
    return "#" + hashlib.sha256(client.encode("utf-8", "surrogatepass")).hexdigest()[
        :KEY_HASH_CHARS]


class LoginRateLimiter:
    """Failed logins per key in sliding windows; see the module docstring.

    `max_failures` in `window_s` applies to each (account, client) pair,
    `client_max_failures` (default: `max_failures`) in `window_s` to each client
    across accounts, `account_max_failures` in `account_window_s` to each account
    across clients.  Clients that logged in to an account within `trusted_s`
    are exempt, for that account, from the client and the account limits (their
    failures still count against both).

    Attempts still being checked count against the limits too, so that a burst
    of parallel guesses cannot all pass the check before the first failure is
    recorded: when a key's recent failures plus its attempts in flight reach the
    limit, a further attempt waits (`wait_for_slot`) until one finishes and is
    then judged again.  Legitimate parallel requests (Home Assistant polls
    several endpoints at once with Basic) therefore queue briefly, never fail.
    """

    def __init__(self, clock: IReactorTime, *, max_failures: int = MAX_FAILURES,
                 window_s: float = WINDOW_S, client_max_failures: int | None = None,
                 account_max_failures: int = ACCOUNT_MAX_FAILURES,
                 account_window_s: float = ACCOUNT_WINDOW_S, trusted_s: float = TRUSTED_S,
                 max_keys: int = MAX_TRACKED_KEYS):
        self._clock = clock
        self._max_failures = max_failures
        self._window_s = window_s
        self._client_max_failures = (max_failures if client_max_failures is None
                                     else client_max_failures)
        self._account_max_failures = account_max_failures
        self._account_window_s = account_window_s
        self._trusted_s = trusted_s
        self._max_keys = max_keys
        # key -> times of its latest failures (at most its limit), oldest first;
        # keys ordered by their latest failure, so the stalest are evicted first.
        self._failures: collections.OrderedDict[str, collections.deque[float]] = (
            collections.OrderedDict())
        # pair key -> time of its latest success, oldest first.
        self._trusted: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._in_flight: collections.Counter[str] = collections.Counter()
        self._waiters: list[Deferred[None]] = []

    @staticmethod
    def _pair(account: str, client: str) -> str:
        return f"pair:{account}|{client}"

    def _keys(self, email: str | None, client: str, *, all_keys: bool = False) -> list[_Key]:
        """The keys an attempt counts against (`all_keys`: the account's too, even
        when the client is trusted for it).  `email` None: an API token attempt,
        which names no account and counts against the client alone."""
        client = _client_part(client)
        address = _Key("client:" + client, self._client_max_failures, self._window_s)
        if email is None:
            return [address]
        account = account_key(email)
        pair = self._pair(account, client)
        keys = [_Key(pair, self._max_failures, self._window_s)]
        if all_keys or not self._is_trusted(pair):
            keys += [address, _Key("account:" + account, self._account_max_failures,
                                   self._account_window_s)]
        return keys

    def _is_trusted(self, pair: str) -> bool:
        since = self._trusted.get(pair)
        if since is None:
            return False
        if since <= self._clock.seconds() - self._trusted_s:
            del self._trusted[pair]
            return False
        return True

    def _recent(self, key: _Key, now: float) -> collections.deque[float]:
        """The key's failures inside its window (older ones are dropped)."""
        times = self._failures.get(key.name)
        if times is None:
            return collections.deque()
        while times and times[0] <= now - key.window_s:
            times.popleft()
        if not times:
            del self._failures[key.name]
        return times

    def retry_after_s(self, email: str | None, client: str) -> int | None:
        """Seconds until an attempt is allowed again, or None if it is allowed now."""
        now = self._clock.seconds()
        waits = []
        for key in self._keys(email, client):
            times = self._recent(key, now)
            if len(times) >= key.max_failures:
                waits.append(times[0] + key.window_s - now)
        if not waits:
            return None
        return max(1, math.ceil(max(waits)))

    def has_slot(self, email: str | None, client: str) -> bool:
        """Whether an attempt may start now (failures + attempts in flight < limit)."""
        now = self._clock.seconds()
        return all(len(self._recent(key, now)) + self._in_flight[key.name] < key.max_failures
                   for key in self._keys(email, client))

    def wait_for_slot(self) -> Deferred[None]:
        """Fires when some attempt in flight finishes."""
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        return waiter

    def start_attempt(self, email: str | None, client: str) -> None:
        for key in self._keys(email, client, all_keys=True):
            self._in_flight[key.name] += 1

    def finish_attempt(self, email: str | None, client: str, *,
                       succeeded: bool | None) -> None:
        """End an attempt: True success, False wrong password, None not judged (error)."""
        for key in self._keys(email, client, all_keys=True):
            self._in_flight[key.name] -= 1
            if self._in_flight[key.name] <= 0:
                del self._in_flight[key.name]
        if succeeded is True:
            self.record_success(email, client)
        elif succeeded is False:
            self.record_failure(email, client)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def record_failure(self, email: str | None, client: str) -> None:
        """Count a wrong password against the pair, the client and the account (a
        refused token, `email` None, against the client)."""
        now = self._clock.seconds()
        for key in self._keys(email, client, all_keys=True):
            times = self._failures.get(key.name)
            if times is None:
                times = self._failures[key.name] = collections.deque(maxlen=key.max_failures)
            times.append(now)
            self._failures.move_to_end(key.name)
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def record_success(self, email: str | None, client: str) -> None:
        """Clear the pair's count and trust the client for this account (nothing
        for a token, `email` None: it names no account)."""
        if email is None:
            return
        pair = self._pair(account_key(email), _client_part(client))
        self._failures.pop(pair, None)
        self._trusted[pair] = self._clock.seconds()
        self._trusted.move_to_end(pair)
        while len(self._trusted) > self._max_keys:
            self._trusted.popitem(last=False)

    def tracked_keys(self) -> list[str]:
        """Every key the limiter holds (failure keys, then trusted pairs)."""
        return [*self._failures, *self._trusted]

    def __len__(self) -> int:
        """The number of keys with failures."""
        return len(self._failures)


# -- the authenticator ---------------------------------------------------------------

class CredentialCache:
    """Basic credentials that passed the Argon2 check recently, so that a client
    polling with Basic auth (pytraccar, Home Assistant) costs one user lookup per
    request instead of ~100 ms of Argon2.

    Entries are keyed by a BLAKE2b MAC of (e-mail, password) under a random key
    made at start, so the table never holds a password or anything that can be
    checked against one offline; they expire `ttl_s` after the check (the clock is
    the reactor's) and at most `max_entries` are kept (least recently used dropped).
    `forget_user` drops a user's entries at once (password change, user disabled or
    deleted); the TTL bounds what another process's change can miss.  Only
    successes are kept: a wrong password always goes to the rate limiter and Argon2.
    """

    def __init__(self, clock: IReactorTime, *, ttl_s: float = CREDENTIAL_TTL_S,
                 max_entries: int = MAX_CACHED_CREDENTIALS) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._mac_key = secrets.token_bytes(32)
        self._entries: collections.OrderedDict[bytes, tuple[int, float]] = collections.OrderedDict()

    def key(self, email: str, password: str) -> bytes:
        data = email.encode("utf-8", "surrogatepass") + b"\0" + password.encode("utf-8", "surrogatepass")
        return hashlib.blake2b(data, key=self._mac_key, digest_size=32).digest()

    def user_id(self, key: bytes) -> int | None:
        """The user these credentials were verified for, while the entry is fresh."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        user_id, expires = entry
        if self._clock.seconds() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return user_id

    def remember(self, key: bytes, user_id: int) -> None:
        self._entries[key] = (user_id, self._clock.seconds() + self._ttl_s)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def forget(self, key: bytes) -> None:
        self._entries.pop(key, None)

    def forget_user(self, user_id: int) -> None:
        for key in [k for k, (uid, _) in self._entries.items() if uid == user_id]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


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
        self.credentials = CredentialCache(reactor)

    def _call(self, fn, *args):
        return deferToThreadPool(self._reactor, self._threadpool, fn, *args)

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._reactor.seconds(), dt.UTC)

    async def check_password(self, email: str, password: str, client: str, *,
                             basic_challenge: bool) -> User:
        """The user for these credentials, through the rate limiter.

        Credentials verified within `CREDENTIAL_TTL_S` skip Argon2 (see
        `CredentialCache`): the user is read again (so a deleted user or a changed
        e-mail is noticed at once), and a refusal by the rate limiter still wins.
        """
        limiter = self.limiter
        key = self.credentials.key(email, password)
        while True:
            retry_after_s = limiter.retry_after_s(email, client)
            if retry_after_s is not None:
                log.info("login refused by rate limit for client {client}", client=client)
                raise TooManyAttempts(retry_after_s)
            cached_id = self.credentials.user_id(key)
            if cached_id is not None:
                cached = await self._call(self._store.user_by_email, email)
                if cached is not None and cached.id == cached_id:
                    return cached
                self.credentials.forget(key)
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
        self.credentials.remember(key, user.id)
        return user

    async def require_user(self, request: IRequest) -> User:
        """The caller, by the Authorization header if there is one, else the cookie.

        Raises `AuthenticationFailed` when there are no credentials, bad Basic
        credentials or an unknown or expired session; `TooManyAttempts` when the
        rate limiter refuses.
        """
        if request.getHeader(b"authorization") is not None:
            return await self.header_user(request)
        user = await self.cookie_user(request)
        if user is None:
            raise AuthenticationFailed("authentication required")
        return user

    async def header_user(self, request: IRequest) -> User:
        """The user of the ``Authorization`` header: ``Bearer`` (an API token) or Basic."""
        token = bearer_token(request.getHeader(b"authorization") or b"")
        if token is not None:
            return await self.check_token(token, client_key(request))
        return await self.basic_user(request)

    async def check_token(self, token: str, client: str) -> User:
        """The user of an API token, through the rate limiter (the client's key
        only, see the module docstring).  An unknown, expired, revoked or malformed
        token is `AuthenticationFailed` and a failure of `client`."""
        limiter = self.limiter
        while True:
            retry_after_s = limiter.retry_after_s(None, client)
            if retry_after_s is not None:
                log.info("token refused by rate limit for client {client}", client=client)
                raise TooManyAttempts(retry_after_s)
            if limiter.has_slot(None, client):
                break
            await limiter.wait_for_slot()
        limiter.start_attempt(None, client)
        succeeded = None
        try:
            user = None
            if _API_TOKEN_RE.fullmatch(token):
                user = await self._call(self._store.user_for_api_token, token, self.now())
            succeeded = user is not None
        finally:
            limiter.finish_attempt(None, client, succeeded=succeeded)
        if user is None:
            log.info("unknown, expired or revoked API token from client {client}", client=client)
            raise AuthenticationFailed("unknown, expired or revoked token")
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
        return await self._start_session(request, user)

    async def token_login(self, request: IRequest, token: str) -> Login:
        """``GET /api/session?token=``: log in with an API token (`check_token`);
        on success a new session replaces the old one, as a form login does."""
        user = await self.check_token(token, client_key(request))
        return await self._start_session(request, user)

    async def _start_session(self, request: IRequest, user: User) -> Login:
        old_token = session_token(request)
        if old_token is not None:
            await self._call(self._store.delete_session, old_token)
        token = await self._call(self._store.create_session, user.id, self._session_lifetime)
        request.cookies.append(  # type: ignore[attr-defined]
            session_cookie(token, secure=self.secure_cookies))
        return Login(user, token)

    async def logout(self, request: IRequest) -> None:
        token = session_token(request)
        if token is not None:
            await self._call(self._store.delete_session, token)
        request.cookies.append(  # type: ignore[attr-defined]
            expired_session_cookie(secure=self.secure_cookies))


__all__ = [
    "AuthenticationFailed", "Authenticator", "COOKIE_NAME", "CredentialCache", "LoginRateLimiter",
    "TooManyAttempts", "UNSAFE_METHODS", "account_key", "bearer_token", "client_key", "parse_basic",
    "same_origin",
    "session_cookie", "session_token",
]
