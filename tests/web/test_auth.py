"""Authentication, sessions, login rate limiting and CSRF of the HTTP API."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

from tests.web.harness import (
    ADMIN,
    ALICE,
    BOB,
    PASSWORD,
    QueuedThreadPool,
    basic,
    make_world,
    parse_response,
)
from web.auth import (
    ACCOUNT_MAX_FAILURES,
    ACCOUNT_WINDOW_S,
    MAX_CLIENT_KEY_CHARS,
    MAX_FAILURES,
    TRUSTED_S,
    WINDOW_S,
    AuthenticationFailed,
    LoginRateLimiter,
    account_key,
    parse_basic,
    same_origin,
    session_cookie,
)


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path / "tracker.db")


def login(client, email="alice@example.com", password=PASSWORD, **kwargs):
    return client.request("POST", "/api/session", form={"email": email, "password": password},
                          **kwargs)


# -- Basic header parsing ----------------------------------------------------------

def test_parse_basic_reads_email_and_password():
    assert parse_basic(basic("a@b.c", "p:w d").encode()) == ("a@b.c", "p:w d")


def test_parse_basic_accepts_utf8_and_latin1():
    utf8 = b"Basic " + base64.b64encode("j\u00fcrgen@x.de:gr\u00fcn".encode())
    latin1 = b"Basic " + base64.b64encode("j\u00fcrgen@x.de:gr\u00fcn".encode("latin-1"))
    assert parse_basic(utf8) == parse_basic(latin1) == ("j\u00fcrgen@x.de", "gr\u00fcn")


def test_parse_basic_scheme_is_case_insensitive():
    assert parse_basic(b"basic " + base64.b64encode(b"a:b")) == ("a", "b")


@pytest.mark.parametrize("header", [
    b"", b"Basic", b"Basic ", b"Bearer abc", b"Basic !!!notbase64",
    b"Basic " + base64.b64encode(b"no-colon"), b"Basic " + base64.b64encode(b":pw"),
    b"Basic YWJj=", b"Digest username=a",
])
def test_parse_basic_refuses_malformed_headers(header):
    with pytest.raises(AuthenticationFailed):
        parse_basic(header)


@given(st.binary(max_size=200))
def test_parse_basic_random_bytes_give_credentials_or_authentication_failed(data):
    for header in (data, b"Basic " + data, b"Basic " + base64.b64encode(data)):
        try:
            email, password = parse_basic(header)
        except AuthenticationFailed:
            continue
        assert isinstance(email, str) and isinstance(password, str)


# -- Origin check ---------------------------------------------------------------------

@pytest.mark.parametrize("origin, host, expected", [
    (None, b"example.com", True),                       # non-browser client
    (b"http://example.com", b"example.com", True),
    (b"https://example.com", b"EXAMPLE.com", True),
    (b"http://example.com:8082", b"example.com:8082", True),
    (b"http://example.com:80", b"example.com", True),
    (b"https://example.com", b"example.com:443", True),
    (b"http://[::1]:8082", b"[::1]:8082", True),
    (b"http://evil.example", b"example.com", False),
    (b"http://example.com:8083", b"example.com:8082", False),
    (b"https://example.com", b"example.com:80", False),
    (b"http://example.com.evil.example", b"example.com", False),
    (b"null", b"example.com", False),
    (b"ftp://example.com", b"example.com", False),
    (b"http://example.com:99999", b"example.com", False),
    (b"http://example.com", None, False),
    (b"\xff\xfe", b"example.com", False),
    (b"http://example.com", b"example.com:notaport", False),
])
def test_same_origin(origin, host, expected):
    assert same_origin(origin, host) is expected


# -- rate limiter alone -------------------------------------------------------------

def test_limiter_blocks_after_five_failures_and_recovers_after_the_window():
    clock = Clock()
    limiter = LoginRateLimiter(clock)
    for _ in range(4):
        limiter.record_failure("a@x", "1.2.3.4")
        clock.advance(10)
    assert limiter.retry_after_s("a@x", "1.2.3.4") is None
    limiter.record_failure("a@x", "1.2.3.4")
    assert limiter.retry_after_s("a@x", "1.2.3.4") == 300 - 40
    assert limiter.retry_after_s("other@x", "1.2.3.4") == 260    # same client, other email
    # Changed with the per-(account, address) limit: the same email from another
    # address is no longer locked (it used to be, which let anyone lock any account).
    assert limiter.retry_after_s("A@X ", "9.9.9.9") is None
    assert limiter.retry_after_s("other@x", "9.9.9.9") is None
    clock.advance(259)
    assert limiter.retry_after_s("a@x", "1.2.3.4") == 1
    clock.advance(1)
    assert limiter.retry_after_s("a@x", "1.2.3.4") is None


def test_limiter_success_clears_the_pair_but_not_the_client():
    limiter = LoginRateLimiter(Clock())
    for _ in range(5):
        limiter.record_failure("a@x", "1.2.3.4")
    limiter.record_success("a@x", "5.5.5.5")
    assert limiter.retry_after_s("a@x", "5.5.5.5") is None
    assert limiter.retry_after_s("a@x", "1.2.3.4") == 300


def test_limiter_five_wrong_from_one_address_leave_the_account_open_elsewhere():
    clock = Clock()
    limiter = LoginRateLimiter(clock)
    for _ in range(MAX_FAILURES):
        limiter.record_failure("a@x", "198.51.100.1")
    assert limiter.retry_after_s("a@x", "198.51.100.1") == WINDOW_S
    assert limiter.retry_after_s("a@x", "198.51.100.2") is None
    assert limiter.has_slot("a@x", "198.51.100.2")
    assert not limiter.has_slot("a@x", "198.51.100.1")


def test_limiter_spraying_from_an_address_spares_accounts_that_logged_in_from_it():
    """An office NAT: someone guesses other accounts' passwords; colleagues who have
    logged in from that address before keep working, new logins from it do not."""
    limiter = LoginRateLimiter(Clock())
    limiter.record_success("colleague@x", "203.0.113.9")
    for n in range(MAX_FAILURES):
        limiter.record_failure(f"victim{n}@x", "203.0.113.9")
    assert limiter.retry_after_s("colleague@x", "203.0.113.9") is None
    assert limiter.retry_after_s("newcomer@x", "203.0.113.9") == WINDOW_S
    for _ in range(MAX_FAILURES):
        limiter.record_failure("colleague@x", "203.0.113.9")
    assert limiter.retry_after_s("colleague@x", "203.0.113.9") == WINDOW_S, \
        "the pair's own limit still holds"


def test_limiter_account_limit_across_addresses():
    """30 failures from 30 addresses in an hour lock the account for new addresses."""
    clock = Clock()
    limiter = LoginRateLimiter(clock)
    limiter.record_success("a@x", "203.0.113.200")          # the owner's address
    for n in range(ACCOUNT_MAX_FAILURES - 1):
        limiter.record_failure("a@x", f"198.51.100.{n}")
        clock.advance(60)
    assert limiter.retry_after_s("a@x", "192.0.2.1") is None
    limiter.record_failure("a@x", "198.51.100.250")
    # the oldest failure was (ACCOUNT_MAX_FAILURES - 1) * 60 s ago
    expected = ACCOUNT_WINDOW_S - (ACCOUNT_MAX_FAILURES - 1) * 60
    assert limiter.retry_after_s("a@x", "192.0.2.1") == expected
    assert limiter.retry_after_s("other@x", "192.0.2.1") is None    # other accounts unaffected
    # an address that logged in to the account before is exempt from the account limit
    assert limiter.retry_after_s("a@x", "203.0.113.200") is None
    clock.advance(expected)
    assert limiter.retry_after_s("a@x", "192.0.2.1") is None


def test_limiter_trust_expires():
    clock = Clock()
    limiter = LoginRateLimiter(clock, account_max_failures=3)
    limiter.record_success("a@x", "203.0.113.200")
    clock.advance(TRUSTED_S - 10)
    for n in range(3):
        limiter.record_failure("a@x", f"198.51.100.{n}")
    assert limiter.retry_after_s("a@x", "203.0.113.200") is None
    clock.advance(10)
    assert limiter.retry_after_s("a@x", "203.0.113.200") == ACCOUNT_WINDOW_S - 10


def test_limiter_trusted_address_failures_still_count_for_the_account():
    limiter = LoginRateLimiter(Clock(), account_max_failures=3, max_failures=10)
    limiter.record_success("a@x", "203.0.113.200")
    for _ in range(3):
        limiter.record_failure("a@x", "203.0.113.200")
    assert limiter.retry_after_s("a@x", "203.0.113.200") is None   # exempt itself
    assert limiter.retry_after_s("a@x", "192.0.2.1") is not None   # but the count is there


def test_limiter_memory_is_bounded():
    limiter = LoginRateLimiter(Clock(), max_keys=10)
    for n in range(100):
        limiter.record_failure(f"user{n}@x", f"10.0.0.{n}")
        limiter.record_success(f"user{n}@x", f"10.0.1.{n}")
    assert len(limiter) == 10
    assert len(limiter.tracked_keys()) == 20


def test_limiter_keys_are_bounded_for_huge_emails_and_clients():
    """A 64 KB email (and an absurd client string) is kept as a short hash, never whole."""
    limiter = LoginRateLimiter(Clock())
    email = "a" * 65_536 + "@example.com"
    client = "x" * 10_000
    for _ in range(3):
        limiter.record_failure(email, client)
    limiter.record_success(email, "192.0.2.9")
    keys = limiter.tracked_keys()
    assert len(keys) == 4               # pair, client, account; trusted pair
    assert all(len(key) < 2 * MAX_CLIENT_KEY_CHARS + 16 for key in keys)
    assert sum(len(key) for key in keys) < 1_000
    assert not any("aaaaaaaa" in key or "xxxxxxxx" in key for key in keys)
    assert len(account_key(email)) == 32
    assert account_key(" A@X ") == account_key("a@x") != account_key("b@x")
    assert limiter.retry_after_s(email.upper(), client) is None          # 3 < 5
    limiter.record_failure(email.upper(), client)
    limiter.record_failure(email, client)
    assert limiter.retry_after_s(email, client) == 300


def test_limiter_account_key_accepts_lone_surrogates():
    assert len(account_key("\udcff@x")) == 32


# -- login form --------------------------------------------------------------------

def test_login_form_sets_an_httponly_samesite_session_cookie(world):
    response = login(world.client)
    assert response.status == 200
    assert response.json()["email"] == "alice@example.com"
    assert "password" not in response.json()
    (cookie,) = response.header_all("Set-Cookie")
    token = world.client.cookies["JSESSIONID"]
    assert cookie == f"JSESSIONID={token}; HttpOnly; SameSite=Lax; Path=/"
    assert len(token) >= 32


def test_secure_cookies_adds_secure(tmp_path):
    world = make_world(tmp_path / "t.db", secure_cookies=True)
    (cookie,) = login(world.client).header_all("Set-Cookie")
    assert cookie.endswith("; HttpOnly; SameSite=Lax; Path=/; Secure")
    assert session_cookie("t", secure=False) == b"JSESSIONID=t; HttpOnly; SameSite=Lax; Path=/"


def test_login_with_wrong_password_is_401_without_browser_challenge(world):
    response = login(world.client, password="wrong")
    assert response.status == 401
    assert response.json()["message"] == "wrong email or password"
    assert response.header("WWW-Authenticate") is None
    assert response.header_all("Set-Cookie") == []


def test_login_with_unknown_email_looks_like_a_wrong_password(world):
    unknown = login(world.client, email="nobody@example.com")
    wrong = login(world.client, password="nope")
    assert (unknown.status, unknown.json()) == (wrong.status, wrong.json())


def test_login_email_is_case_insensitive(world):
    assert login(world.client, email="Alice@Example.COM").status == 200


@pytest.mark.parametrize("form", [{}, {"email": "alice@example.com"}, {"password": "x"},
                                  {"email": "", "password": "x"}])
def test_login_with_missing_fields_is_400(world, form):
    response = world.client.request("POST", "/api/session", form=form)
    assert response.status == 400
    assert "email and password" in response.json()["message"]


def test_login_takes_the_form_body_not_the_query(world):
    response = world.client.request(
        "POST", f"/api/session?email=alice@example.com&password={PASSWORD}", body=b"",
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 400


def test_login_needs_a_form_content_type(world):
    response = world.client.request(
        "POST", "/api/session", body=b'{"email": "alice@example.com"}',
        headers={"Content-Type": "application/json"})
    assert response.status == 415


@pytest.mark.parametrize("body", [
    b"\xff\xfe\x00garbage", b"email=%ff%fe&password=x", b"&&&===", b"%",
    b"email=a&" * 50, b"email=a&email=b&password=x",
])
def test_garbage_login_bodies_are_client_errors(world, body):
    response = world.client.request(
        "POST", "/api/session", body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert 400 <= response.status < 500
    assert response.header("Content-Type") == "application/json; charset=utf-8"


def test_new_login_ends_the_previous_session(world):
    """Session fixation: a login never keeps a token that existed before it."""
    login(world.client)
    old = world.client.cookies["JSESSIONID"]
    login(world.client, *BOB)
    assert world.client.cookies["JSESSIONID"] != old
    assert world.store.user_for_session(old, world.reactor.now()) is None


# -- session endpoint ---------------------------------------------------------------

def test_get_session_returns_the_logged_in_user(world):
    login(world.client)
    response = world.client.request("GET", "/api/session")
    assert response.status == 200
    body = response.json()
    assert (body["email"], body["name"], body["administrator"]) == (
        "alice@example.com", "Alice", False)
    assert response.header("Cache-Control") == "no-store"


def test_get_session_without_login_is_404(world):
    response = world.client.request("GET", "/api/session")
    assert response.status == 404
    assert response.json()["message"] == "not logged in"


def test_get_session_with_unknown_cookie_is_404(world):
    response = world.client.request("GET", "/api/session",
                                    headers={"Cookie": "JSESSIONID=not-a-real-token"})
    assert response.status == 404


def test_get_session_with_basic_auth(world):
    assert world.client.request("GET", "/api/session", auth=ADMIN).json()["administrator"]
    assert world.client.request("GET", "/api/session", auth=("admin@example.com", "x")
                                ).status == 401


def test_logout_deletes_the_session(world):
    login(world.client)
    token = world.client.cookies["JSESSIONID"]
    response = world.client.request("DELETE", "/api/session")
    assert response.status == 204
    assert response.body == b""
    assert response.header("Content-Length") is None
    (cookie,) = response.header_all("Set-Cookie")
    assert cookie.startswith("JSESSIONID=;") and "Max-Age=0" in cookie
    assert world.store.user_for_session(token, world.reactor.now()) is None
    stale = {"Cookie": f"JSESSIONID={token}"}
    assert world.client.request("GET", "/api/session", headers=stale).status == 404
    assert world.client.request("GET", "/api/devices", headers=stale).status == 401


def test_logout_without_session_is_still_204(world):
    assert world.client.request("DELETE", "/api/session").status == 204


def test_expired_session_is_refused(world):
    login(world.client)
    world.reactor.advance((dt.datetime.now(dt.UTC) + dt.timedelta(days=8)).timestamp()
                          - world.reactor.seconds())
    assert world.client.request("GET", "/api/devices").status == 401


# -- credentials on API endpoints ---------------------------------------------------

def test_cookie_authenticates_api_calls(world):
    login(world.client)
    assert world.client.request("GET", "/api/devices").status == 200


def test_basic_auth_authenticates_api_calls(world):
    response = world.client.request("GET", "/api/devices", auth=ALICE, use_cookies=False)
    assert response.status == 200
    assert response.header("Cache-Control") == "no-store"


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": basic("alice@example.com", "wrong")},
    {"Authorization": basic("nobody@example.com", PASSWORD)},
    {"Authorization": "Basic !!!"},
    {"Authorization": "Basic"},
    {"Authorization": "Bearer abc.def"},
    {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\x00").decode()},
    {"Cookie": "JSESSIONID=forged"},
    {"Cookie": "JSESSIONID=\x7f\x01;;;"},
])
def test_missing_or_bad_credentials_are_401_with_a_basic_challenge(world, headers):
    response = world.client.request("GET", "/api/devices", headers=headers)
    assert response.status == 401
    assert response.header("WWW-Authenticate") == 'Basic realm="tracker", charset="UTF-8"'
    assert response.header("Content-Type") == "application/json; charset=utf-8"
    assert response.json()["status"] == 401


def test_no_challenge_for_xhr(world):
    """As Traccar: a script's 401 must not make the browser show a password dialog."""
    response = world.client.request("GET", "/api/devices",
                                    headers={"X-Requested-With": "XMLHttpRequest"})
    assert response.status == 401
    assert response.header("WWW-Authenticate") is None


def test_basic_header_wins_over_the_cookie(world):
    login(world.client)
    response = world.client.request("GET", "/api/devices",
                                    auth=("alice@example.com", "wrong"))
    assert response.status == 401


# -- rate limiting through the site --------------------------------------------------

def test_five_failed_logins_lock_the_email_from_that_address_then_it_recovers(world):
    for _ in range(5):
        assert login(world.client, password="wrong").status == 401
    response = login(world.client)            # the right password, but too late
    assert response.status == 429
    assert response.header("Retry-After") == "300"
    assert response.json()["status"] == 429
    world.reactor.advance(299)
    assert login(world.client).header("Retry-After") == "1"
    world.reactor.advance(1)
    assert login(world.client).status == 200


def test_wrong_passwords_from_one_address_do_not_lock_the_account_elsewhere(world):
    """Finding 8: five wrong passwords from A used to lock the account for everyone.
    (This replaces the old assertion that another address got 429 as well.)"""
    for _ in range(5):
        assert login(world.client, password="wrong", peer="198.51.100.1").status == 401
    assert login(world.client, peer="198.51.100.1").status == 429
    assert login(world.client, peer="198.51.100.2").status == 200
    # Basic from a third address works too
    response = world.client.request("GET", "/api/devices", auth=ALICE, use_cookies=False,
                                    peer="198.51.100.3")
    assert response.status == 200


def test_many_addresses_guessing_one_account_hit_the_account_limit(world):
    """30 failures in an hour from 10 addresses: new addresses get 429 for an hour,
    the owner's address that logged in before does not."""
    assert login(world.client, peer="203.0.113.200").status == 200
    for n in range(30):
        assert login(world.client, password="wrong", peer=f"198.51.100.{n // 3}").status == 401
    response = login(world.client, peer="192.0.2.77")
    assert response.status == 429
    assert response.header("Retry-After") == "3600"
    assert login(world.client, *BOB, peer="192.0.2.77").status == 200   # other accounts
    assert login(world.client, peer="203.0.113.200").status == 200     # trusted address
    world.reactor.advance(3600)
    assert login(world.client, peer="192.0.2.77").status == 200


def test_five_failures_from_one_address_lock_that_address(world):
    for n in range(5):
        login(world.client, email=f"guess{n}@example.com", peer="192.0.2.1")
    assert login(world.client, *BOB, peer="192.0.2.1").status == 429
    assert login(world.client, *BOB, peer="192.0.2.2").status == 200


def test_ipv6_clients_are_limited_by_their_slash_64(world):
    for n in range(5):
        login(world.client, email=f"guess{n}@example.com", peer=f"2001:db8::{n + 1}")
    assert login(world.client, *BOB, peer="2001:db8::ffff").status == 429
    assert login(world.client, *BOB, peer="2001:db8:0:1::1").status == 200


def test_basic_auth_failures_count_towards_the_limit(world):
    for _ in range(5):
        response = world.client.request("GET", "/api/devices",
                                        auth=("alice@example.com", "wrong"))
        assert response.status == 401
    response = world.client.request("GET", "/api/devices", auth=ALICE)
    assert response.status == 429
    assert int(response.header("Retry-After")) == 300
    world.reactor.advance(300)
    assert world.client.request("GET", "/api/devices", auth=ALICE).status == 200


def concurrent(world, requests):
    """Start every request before any store call returns, then let them run."""
    connections = []
    for raw in requests:
        protocol, transport = world.client.connect()
        protocol.dataReceived(raw)
        connections.append((protocol, transport))
    assert all(transport.value() == b"" for _, transport in connections)
    world.threadpool.run_all()
    return [parse_response(transport.value()).status for _, transport in connections]


def basic_request(credentials):
    return (b"GET /api/devices HTTP/1.1\r\nHost: x\r\nAuthorization: "
            + basic(*credentials).encode() + b"\r\n\r\n")


def test_parallel_guesses_get_no_more_tries_than_sequential_ones(tmp_path):
    world = make_world(tmp_path / "t.db", threadpool=QueuedThreadPool())
    statuses = concurrent(world, [basic_request(("alice@example.com", f"guess{n}"))
                                  for n in range(12)])
    assert sorted(statuses) == [401] * 5 + [429] * 7


def test_parallel_right_credentials_all_pass(tmp_path):
    """Home Assistant polls several endpoints at once: they queue, none is refused."""
    world = make_world(tmp_path / "t.db", threadpool=QueuedThreadPool())
    assert concurrent(world, [basic_request(ALICE)] * 12) == [200] * 12


def test_a_successful_login_resets_the_email_count(world):
    for _ in range(4):
        login(world.client, password="wrong", peer="192.0.2.1")
    assert login(world.client, peer="192.0.2.2").status == 200
    for _ in range(4):
        login(world.client, password="wrong", peer="192.0.2.3")
    assert login(world.client, peer="192.0.2.4").status == 200


# -- CSRF ---------------------------------------------------------------------------

def test_cross_origin_logout_is_refused_and_the_session_survives(world):
    login(world.client)
    response = world.client.request("DELETE", "/api/session",
                                    headers={"Origin": "http://evil.example"})
    assert response.status == 403
    assert "Origin" in response.json()["message"]
    assert world.client.request("GET", "/api/session").status == 200


def test_same_origin_logout_is_allowed(world):
    login(world.client)
    response = world.client.request("DELETE", "/api/session",
                                    headers={"Origin": "http://localhost:8082"})
    assert response.status == 204


def test_cross_origin_login_is_refused(world):
    response = login(world.client, headers={"Origin": "https://evil.example"})
    assert response.status == 403
    assert response.header_all("Set-Cookie") == []


def test_cross_origin_safe_requests_pass(world):
    login(world.client)
    response = world.client.request("GET", "/api/devices",
                                    headers={"Origin": "http://evil.example"})
    assert response.status == 200


def test_origin_null_is_refused_on_unsafe_requests(world):
    login(world.client)
    assert world.client.request("DELETE", "/api/session",
                                headers={"Origin": "null"}).status == 403


# -- verified Basic credentials are cached ---------------------------------------------

def counting_authenticate(world, monkeypatch):
    calls = []
    real = world.store.authenticate

    def authenticate(email, password):
        calls.append(email)
        return real(email, password)
    monkeypatch.setattr(world.store, "authenticate", authenticate)
    return calls


def test_a_basic_poll_runs_argon2_once_per_ttl(world, monkeypatch):
    from web.auth import CREDENTIAL_TTL_S
    calls = counting_authenticate(world, monkeypatch)
    for _ in range(5):
        assert world.client.request("GET", "/api/devices", auth=ALICE).status == 200
    assert len(calls) == 1
    world.reactor.advance(CREDENTIAL_TTL_S)
    assert world.client.request("GET", "/api/devices", auth=ALICE).status == 200
    assert len(calls) == 2, "an expired entry is checked again"


def test_a_cached_right_password_lets_no_wrong_one_through(world, monkeypatch):
    calls = counting_authenticate(world, monkeypatch)
    assert world.client.request("GET", "/api/devices", auth=ALICE).status == 200
    assert world.client.request("GET", "/api/devices", auth=(ALICE[0], "wrong")).status == 401
    assert world.client.request("GET", "/api/devices",
                                auth=(ALICE[0].upper(), PASSWORD)).status == 200
    assert len(calls) == 3, "wrong and differently spelt credentials are never cache hits"


def test_a_deleted_user_is_not_served_from_the_cache(world, monkeypatch):
    assert world.client.request("GET", "/api/devices", auth=ALICE).status == 200
    monkeypatch.setattr(world.store, "user_by_email", lambda email: None)
    monkeypatch.setattr(world.store, "authenticate", lambda email, password: None)
    assert world.client.request("GET", "/api/devices", auth=ALICE).status == 401


def test_the_rate_limiter_still_refuses_a_cached_credential(world):
    assert world.client.request("GET", "/api/devices", auth=ALICE).status == 200
    for _ in range(MAX_FAILURES):
        world.client.request("GET", "/api/devices", auth=(ALICE[0], "wrong"))
    assert world.client.request("GET", "/api/devices", auth=ALICE).status == 429


def test_credential_cache_is_bounded_and_forgets_a_user():
    from web.auth import CredentialCache
    clock = Clock()
    cache = CredentialCache(clock, ttl_s=60, max_entries=3)
    keys = [cache.key(f"u{i}@example.com", "pw") for i in range(4)]
    for i, key in enumerate(keys):
        cache.remember(key, i)
    assert len(cache) == 3 and cache.user_id(keys[0]) is None
    assert cache.user_id(keys[3]) == 3
    cache.forget_user(3)
    assert cache.user_id(keys[3]) is None
    assert cache.key("a@example.com", "pw") != cache.key("a@example.com", "pW")
    assert b"pw" not in cache.key("a@example.com", "pw")
