"""API tokens (Traccar's session tokens): POST /api/session/token, revoke,
``Authorization: Bearer`` and ``GET /api/session?token=``."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.web.harness import ALICE, BOB, make_world
from tracker.storage.schema import api_tokens
from web.auth import MAX_FAILURES, WINDOW_S, bearer_token


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path / "tracker.db")


def new_token(world, credentials=ALICE, **form) -> str:
    response = world.client.request("POST", "/api/session/token", form=form, auth=credentials,
                                    use_cookies=False)
    assert response.status == 200, response.body
    assert response.header("Content-Type") == "text/plain; charset=utf-8"
    return response.body.decode("ascii")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def devices(world, token: str, peer: str = "127.0.0.1"):
    return world.client.request("GET", "/api/devices", headers=bearer(token), peer=peer,
                                use_cookies=False)


def iso(time: dt.datetime) -> str:
    return time.isoformat().replace("+00:00", "Z")


def test_bearer_header_parsing():
    assert bearer_token(b"Bearer abc") == "abc"
    assert bearer_token(b"  bearer   abc  ") == "abc"
    assert bearer_token(b"Basic abc") is None
    assert bearer_token(b"Bearer") == ""


def test_a_new_token_authenticates_api_calls_as_its_user(world):
    token = new_token(world)
    assert len(token) >= 43
    response = devices(world, token)
    assert response.status == 200
    assert {d["name"] for d in response.json()} == {"Truck 1", "Truck 2"}   # alice's organisation
    bobs = new_token(world, BOB)
    assert [d["name"] for d in devices(world, bobs).json()] == ["Bob's car"]


def test_a_token_can_be_made_by_a_cookie_session_and_with_no_body(world):
    """Traccar's form is optional: a POST with no body and no Content-Type works."""
    world.client.request("POST", "/api/session", form={"email": ALICE[0], "password": ALICE[1]})
    response = world.client.request("POST", "/api/session/token")
    assert response.status == 200
    assert devices(world, response.body.decode()).status == 200


def test_making_a_token_needs_authentication(world):
    response = world.client.request("POST", "/api/session/token", form={})
    assert response.status == 401


def test_get_session_with_token_logs_in_and_sets_the_cookie(world):
    token = new_token(world)
    client = world.new_client()
    response = client.request("GET", f"/api/session?token={token}")
    assert response.status == 200
    assert response.json()["email"] == ALICE[0]
    cookie = response.header("Set-Cookie")
    assert cookie.startswith("JSESSIONID=") and "HttpOnly" in cookie
    assert client.cookies["JSESSIONID"] != token      # a session of its own, not the token
    # the cookie alone now authenticates
    assert client.request("GET", "/api/devices").status == 200
    assert client.request("GET", "/api/session").json()["email"] == ALICE[0]


def test_get_session_with_a_bad_token_is_401_and_sets_no_cookie(world):
    client = world.new_client()
    response = client.request("GET", "/api/session?token=forged")
    assert response.status == 401
    assert response.header("Set-Cookie") is None
    assert client.request("GET", "/api/session").status == 404


def test_get_session_with_bearer_header(world):
    token = new_token(world, BOB)
    response = world.client.request("GET", "/api/session", headers=bearer(token))
    assert response.status == 200 and response.json()["email"] == BOB[0]


def test_expiration_is_honoured(world):
    expires = world.reactor.now() + dt.timedelta(hours=1)
    token = new_token(world, expiration=iso(expires))
    assert devices(world, token).status == 200
    world.reactor.advance(3599)
    assert devices(world, token).status == 200
    world.reactor.advance(1)
    response = devices(world, token)
    assert response.status == 401
    assert response.json()["message"] == "unknown, expired or revoked token"
    assert world.new_client().request("GET", f"/api/session?token={token}").status == 401


def test_expiration_with_an_offset_and_milliseconds_is_stored_as_utc(world):
    token = new_token(world, expiration="2030-01-01T02:00:00.000+02:00")
    with world.store.engine.connect() as conn:
        (expires,) = conn.execute(select(api_tokens.c.expires)).one()
    assert expires == dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert devices(world, token).status == 200


def test_no_expiration_means_the_token_never_expires(world):
    token = new_token(world)
    with world.store.engine.connect() as conn:
        assert conn.execute(select(api_tokens.c.expires)).scalar_one() is None
    world.reactor.advance(10 * 365 * 86_400)
    assert devices(world, token).status == 200


@pytest.mark.parametrize("expiration, message", [
    ("2024-06-01T11:00:00Z", "expiration must be in the future"),   # the harness's now is 12:00
    ("2024-06-01T12:00:00Z", "expiration must be in the future"),
    ("tomorrow", "expiration is not an ISO 8601 time"),
    ("2030-01-01T00:00:00", "expiration needs a UTC offset"),
])
def test_bad_expirations_are_400_and_make_no_token(world, expiration, message):
    response = world.client.request("POST", "/api/session/token", form={"expiration": expiration},
                                    auth=ALICE)
    assert response.status == 400
    assert response.json()["message"].startswith(message)
    with world.store.engine.connect() as conn:
        assert conn.execute(select(api_tokens)).all() == []


def test_a_revoked_token_is_refused(world):
    token, other = new_token(world), new_token(world)
    response = world.client.request("POST", "/api/session/token/revoke", form={"token": token},
                                    auth=ALICE)
    assert response.status == 204 and response.body == b""
    assert devices(world, token).status == 401
    assert world.new_client().request("GET", f"/api/session?token={token}").status == 401
    assert devices(world, other).status == 200
    # revoking it again is still a 204
    again = world.client.request("POST", "/api/session/token/revoke", form={"token": token},
                                 auth=ALICE)
    assert again.status == 204


def test_a_token_can_revoke_itself(world):
    token = new_token(world)
    response = world.client.request("POST", "/api/session/token/revoke", form={"token": token},
                                    headers=bearer(token), use_cookies=False)
    assert response.status == 204
    assert devices(world, token).status == 401


def test_another_users_token_cannot_be_revoked(world):
    alices = new_token(world)
    response = world.client.request("POST", "/api/session/token/revoke", form={"token": alices},
                                    auth=BOB)
    assert response.status == 400
    unknown = world.client.request("POST", "/api/session/token/revoke",
                                   form={"token": "no-such-token"}, auth=BOB)
    assert unknown.status == 400
    assert unknown.json()["message"] == response.json()["message"]   # one answer for both
    assert devices(world, alices).status == 200


def test_revoke_needs_the_token_field_and_a_user(world):
    missing = world.client.request("POST", "/api/session/token/revoke", form={}, auth=ALICE)
    assert missing.status == 400 and "token" in missing.json()["message"]
    anonymous = world.client.request("POST", "/api/session/token/revoke", form={"token": "x"})
    assert anonymous.status == 401


def test_the_token_is_never_stored_in_clear(world):
    token = new_token(world)
    with world.store.engine.connect() as conn:
        rows = conn.execute(select(api_tokens)).all()
    assert len(rows) == 1
    assert rows[0].token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert all(token not in str(value) for value in rows[0])
    database = Path(world.store.engine.url.database)
    for file in database.parent.glob(database.name + "*"):     # the WAL as well
        assert token.encode() not in file.read_bytes()


@pytest.mark.parametrize("header", [
    "Bearer forged", "Bearer ", "bearer \u00e9\u00e9", "Bearer a b", "Bearer " + "x" * 600,
])
def test_bad_tokens_are_401_with_the_challenge(world, header):
    response = world.client.request("GET", "/api/devices",
                                    headers={"Authorization": header})
    assert response.status == 401
    assert response.header("WWW-Authenticate") == 'Basic realm="tracker", charset="UTF-8"'


def test_bad_tokens_are_rate_limited_per_address(world):
    token = new_token(world)
    for n in range(MAX_FAILURES):
        assert devices(world, f"forged{n}", peer="192.0.2.1").status == 401
    refused = devices(world, token, peer="192.0.2.1")       # even a good one, from there
    assert refused.status == 429
    assert refused.header("Retry-After") == str(int(WINDOW_S))
    via_query = world.new_client().request("GET", f"/api/session?token={token}", peer="192.0.2.1")
    assert via_query.status == 429
    assert devices(world, token, peer="192.0.2.2").status == 200   # other addresses unaffected
    world.reactor.advance(WINDOW_S)
    assert devices(world, token, peer="192.0.2.1").status == 200


def test_bad_tokens_through_the_query_count_too(world):
    client = world.new_client()
    for n in range(MAX_FAILURES):
        assert client.request("GET", f"/api/session?token=forged{n}", peer="192.0.2.9").status == 401
    assert client.request("GET", "/api/session?token=x", peer="192.0.2.9").status == 429


def test_bad_tokens_and_wrong_passwords_share_the_address_budget(world):
    """A refused token counts as a failure of the client address, so scanning
    tokens also stops password spraying from that address (and back)."""
    for n in range(MAX_FAILURES):
        devices(world, f"forged{n}", peer="198.51.100.7")
    login = world.client.request("POST", "/api/session", form={"email": BOB[0], "password": BOB[1]},
                                 peer="198.51.100.7")
    assert login.status == 429


def test_good_tokens_do_not_use_up_the_limit(world):
    token = new_token(world)
    for _ in range(3 * MAX_FAILURES):
        assert devices(world, token, peer="192.0.2.5").status == 200


def test_the_openapi_document_declares_the_bearer_scheme_and_the_token_routes(world):
    document = world.client.request("GET", "/api/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"] == {"type": "http",
                                                                   "scheme": "bearer"}
    token_op = document["paths"]["/api/session/token"]["post"]
    assert "text/plain" in token_op["responses"]["200"]["content"]
    assert {"bearer": []} in token_op["security"]
    assert "/api/session/token/revoke" in document["paths"]
    params = document["paths"]["/api/session"]["get"]["parameters"]
    assert any(p["name"] == "token" and p["in"] == "query" for p in params)
