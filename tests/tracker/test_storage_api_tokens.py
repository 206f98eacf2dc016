"""API tokens (Traccar's session tokens) in the store, on SQLite and on PostGIS."""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import delete, select

from tracker.storage.schema import api_tokens, users

NOW = dt.datetime.now(dt.UTC)
HOUR = dt.timedelta(hours=1)


def test_a_token_without_expiry_finds_its_user_and_nothing_else_does(store):
    ann = store.add_user("ann@example.com", "pw")
    token = store.create_api_token(ann.id, None)
    assert len(token) >= 43
    assert store.user_for_api_token(token, NOW) == ann
    assert store.user_for_api_token(token, NOW + dt.timedelta(days=3650)) == ann
    assert store.user_for_api_token(token + "x", NOW) is None
    assert store.user_for_api_token("", NOW) is None


def test_a_token_is_refused_from_its_expiry_on(store):
    ann = store.add_user("ann@example.com", "pw")
    expires = NOW + HOUR
    token = store.create_api_token(ann.id, expires)
    assert store.user_for_api_token(token, expires - dt.timedelta(seconds=1)) == ann
    assert store.user_for_api_token(token, expires) is None
    assert store.user_for_api_token(token, expires + HOUR) is None


def test_tokens_are_distinct_and_per_user(store):
    ann = store.add_user("ann@example.com", "pw")
    bob = store.add_user("bob@example.com", "pw")
    first, second = store.create_api_token(ann.id, None), store.create_api_token(ann.id, None)
    bobs = store.create_api_token(bob.id, None)
    assert len({first, second, bobs}) == 3
    assert store.user_for_api_token(second, NOW) == ann
    assert store.user_for_api_token(bobs, NOW) == bob


def test_revoking_ends_only_that_token(store):
    ann = store.add_user("ann@example.com", "pw")
    first, second = store.create_api_token(ann.id, None), store.create_api_token(ann.id, None)
    assert store.revoke_api_token(ann.id, first) is True
    assert store.user_for_api_token(first, NOW) is None
    assert store.user_for_api_token(second, NOW) == ann
    assert store.revoke_api_token(ann.id, first) is True      # again: still theirs, no error


def test_another_users_token_cannot_be_revoked(store):
    ann = store.add_user("ann@example.com", "pw")
    bob = store.add_user("bob@example.com", "pw")
    token = store.create_api_token(ann.id, None)
    assert store.revoke_api_token(bob.id, token) is False
    assert store.revoke_api_token(ann.id, "no such token") is False
    assert store.user_for_api_token(token, NOW) == ann
    with store.engine.connect() as conn:
        assert conn.execute(select(api_tokens.c.revoked)).scalar_one() is None


def test_only_the_sha256_of_a_token_is_stored(store):
    ann = store.add_user("ann@example.com", "pw")
    expires = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    token = store.create_api_token(ann.id, expires)
    with store.engine.connect() as conn:
        row = conn.execute(select(api_tokens)).one()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(tuple(row))
    assert row.user_id == ann.id and row.expires == expires and row.revoked is None
    assert row.created.tzinfo is not None


def test_expired_tokens_are_purged_when_a_new_one_is_made(store):
    ann = store.add_user("ann@example.com", "pw")
    store.create_api_token(ann.id, NOW - HOUR)          # already expired
    live = store.create_api_token(ann.id, NOW + HOUR)
    store.create_api_token(ann.id, None)
    with store.engine.connect() as conn:
        hashes = set(conn.execute(select(api_tokens.c.token_hash)).scalars())
    assert len(hashes) == 2
    assert hashlib.sha256(live.encode()).hexdigest() in hashes


def test_deleting_a_user_deletes_their_tokens(store):
    ann = store.add_user("ann@example.com", "pw")
    store.create_api_token(ann.id, None)
    with store.engine.begin() as conn:
        conn.execute(delete(users).where(users.c.id == ann.id))
    with store.engine.connect() as conn:
        assert conn.execute(select(api_tokens)).all() == []
