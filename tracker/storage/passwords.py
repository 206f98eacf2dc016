"""Password hashing with Argon2id (argon2-cffi).

Hashes are PHC strings (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`) that carry their
own parameters, so the defaults can be raised later: `needs_rehash` tells the caller
to store a fresh hash after the next successful login.  The default hasher uses
argon2-cffi's defaults (RFC 9106 "low memory" profile: t=3, m=64 MiB, p=4).

`verify_dummy` spends the same time as a real verification; `authenticate` calls it
for unknown e-mail addresses, so the response time does not reveal which exist.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

DEFAULT_HASHER = PasswordHasher()   # Argon2id


class Passwords:
    """Hash and verify passwords with one `PasswordHasher` (Argon2id by default)."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or DEFAULT_HASHER
        self._dummy_hash: str | None = None

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """True if `password` matches; False on mismatch or an unreadable hash."""
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def verify_dummy(self, password: str) -> None:
        """Verify against a hash nobody knows the password of (timing equaliser)."""
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(24))
        self.verify(self._dummy_hash, password)
