"""Users, passwords (Argon2id, `passwords.py`), web sessions and API tokens
(`tracker.ports.UserRepository`).  Session and API tokens are stored only as their
SHA-256 (hex): a copy of the database gives no working token."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from tracker.models import User
from tracker.ports import DuplicateError
from tracker.storage import records
from tracker.storage.base import SqlBase, utc_now
from tracker.storage.schema import DEFAULT_ORGANISATION_ID, api_tokens, users, web_sessions


class UsersMixin(SqlBase):
    """`tracker.ports.UserRepository` on SQL."""

    def add_user(self, email: str, password: str, administrator: bool = False,
                 name: str = "", organisation_id: int | None = None) -> User:
        email = records.normalise_email(email)
        password_hash = self._passwords.hash(password)   # outside the transaction
        try:
            with self._write() as conn:
                row = conn.execute(insert(users).values(
                    email=email, name=name, password_hash=password_hash,
                    administrator=administrator,
                    organisation_id=organisation_id or DEFAULT_ORGANISATION_ID,
                    created=utc_now()).returning(*users.c)).one()
        except IntegrityError as exc:
            with self._read() as conn:
                taken = conn.execute(select(users.c.id).where(users.c.email == email)
                                     ).first() is not None
            if taken:
                raise DuplicateError(f"e-mail address {email!r} is taken") from exc
            raise
        return records.user(row)

    def authenticate(self, email: str, password: str) -> User | None:
        with self._read() as conn:
            row = conn.execute(select(users).where(users.c.email == records.normalise_email(email))
                               ).one_or_none() if email.strip() else None
        if row is None:
            self._passwords.verify_dummy(password)
            return None
        if not self._passwords.verify(row.password_hash, password):
            return None
        if self._passwords.needs_rehash(row.password_hash):
            with self._write() as conn:
                conn.execute(update(users).where(users.c.id == row.id)
                             .values(password_hash=self._passwords.hash(password)))
        return records.user(row)

    def user_by_email(self, email: str) -> User | None:
        with self._read() as conn:
            row = conn.execute(select(users).where(
                users.c.email == records.normalise_email(email))).first()
        return None if row is None else records.user(row)

    def create_session(self, user_id: int, lifetime: dt.timedelta) -> str:
        token = secrets.token_urlsafe(32)
        now = utc_now()
        with self._write() as conn:
            conn.execute(delete(web_sessions).where(web_sessions.c.expires <= now))
            conn.execute(insert(web_sessions).values(
                token_hash=_token_hash(token), user_id=user_id, expires=now + lifetime))
        return token

    def user_for_session(self, token: str, now: dt.datetime) -> User | None:
        """The session's user, or None if unknown or expired (expires <= now)."""
        with self._read() as conn:
            row = conn.execute(
                select(users).join(web_sessions, web_sessions.c.user_id == users.c.id)
                .where(web_sessions.c.token_hash == _token_hash(token),
                       web_sessions.c.expires > now)).one_or_none()
        return records.user(row) if row is not None else None

    def delete_session(self, token: str) -> None:
        with self._write() as conn:
            conn.execute(delete(web_sessions)
                         .where(web_sessions.c.token_hash == _token_hash(token)))

    def create_api_token(self, user_id: int, expires: dt.datetime | None) -> str:
        """A new API token for the user (None: it never expires); tokens that have
        expired are deleted on the way (revoked ones are kept, so a second revoke
        of the same token still finds it)."""
        token = secrets.token_urlsafe(32)
        now = utc_now()
        with self._write() as conn:
            conn.execute(delete(api_tokens).where(api_tokens.c.expires <= now))
            conn.execute(insert(api_tokens).values(
                user_id=user_id, token_hash=_token_hash(token), created=now, expires=expires))
        return token

    def user_for_api_token(self, token: str, now: dt.datetime) -> User | None:
        """The token's user, or None if unknown, expired (expires <= now) or revoked."""
        with self._read() as conn:
            row = conn.execute(
                select(users).join(api_tokens, api_tokens.c.user_id == users.c.id)
                .where(api_tokens.c.token_hash == _token_hash(token),
                       api_tokens.c.revoked.is_(None),
                       or_(api_tokens.c.expires.is_(None), api_tokens.c.expires > now))
            ).one_or_none()
        return records.user(row) if row is not None else None

    def revoke_api_token(self, user_id: int, token: str) -> bool:
        """Revoke one of the user's tokens: True if it is theirs (revoked now or
        before), False if it is unknown or another user's (nothing changes)."""
        match = (api_tokens.c.token_hash == _token_hash(token),
                 api_tokens.c.user_id == user_id)
        with self._write() as conn:
            conn.execute(update(api_tokens).where(*match, api_tokens.c.revoked.is_(None))
                         .values(revoked=utc_now()))
            found = conn.execute(select(api_tokens.c.id).where(*match)).first()
        return found is not None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()

