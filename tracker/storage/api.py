"""The storage interface the rest of the server depends on.

Every method is blocking and is called from a thread, never the reactor thread
(the batch writer has its own; the web layer uses `deferToThreadPool`).  Methods
return the dataclasses of `tracker.models`.  Scoping: every read that takes a
`user` returns only what that user may see (administrators see everything; other
users see their organisation's devices).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from tracker.models import (
    Batch,
    Device,
    StoredCommand,
    StoredEvent,
    StoredPosition,
    UnknownDeviceAttempt,
    User,
)


class Store(Protocol):
    dialect: str   # "sqlite" or "postgresql"

    def migrate(self) -> None:
        """Apply pending Alembic migrations (idempotent)."""

    def ping(self) -> None:
        """Raise if the database cannot be reached."""

    # devices
    def add_device(self, unique_id: str, name: str, organisation_id: int | None = None) -> Device:
        """Register a device; raises `DuplicateError` if unique_id exists."""

    def device_by_unique_id(self, unique_id: str) -> Device | None: ...

    def devices(self, user: User | None = None) -> list[Device]:
        """All devices (user None: all, for the CLI) or those `user` may see."""

    def record_unknown_device(self, attempt: UnknownDeviceAttempt) -> None: ...

    def unknown_devices(self, limit: int = 1000) -> list[UnknownDeviceAttempt]:
        """Newest first."""

    # users and web sessions
    def add_user(self, email: str, password: str, administrator: bool = False,
                 name: str = "", organisation_id: int | None = None) -> User:
        """Create a user; the password is hashed with Argon2id. DuplicateError on email."""

    def authenticate(self, email: str, password: str) -> User | None:
        """The user if the password matches, else None (constant-ish time)."""

    def create_session(self, user_id: int, lifetime: dt.timedelta) -> str:
        """A new opaque session token (stored hashed)."""

    def user_for_session(self, token: str, now: dt.datetime) -> User | None: ...

    def delete_session(self, token: str) -> None: ...

    # positions and events
    def write_batch(self, batch: Batch) -> None:
        """Commit positions, events and status updates in one transaction.

        Idempotent: a position whose (device_id, fix_time) exists is skipped, an
        event whose (device_id, type, event_time, alarm) exists is skipped.  A
        "commandResult" event also marks the device's oldest "sent" command
        "answered" with attributes["result"].  Devices'
        `position_id` / `last_update` move forward only (an archive position never
        replaces a newer latest).  Raises on database errors; the caller retries.
        """

    def latest_positions(self, user: User) -> list[StoredPosition]:
        """The latest position of each device the user may see."""

    def positions(self, user: User, device_id: int, start: dt.datetime,
                  end: dt.datetime) -> list[StoredPosition]:
        """History of one device with start <= fix_time <= end, oldest first."""

    def positions_by_ids(self, user: User, ids: Sequence[int]) -> list[StoredPosition]: ...

    def events(self, user: User, device_id: int | None, start: dt.datetime,
               end: dt.datetime) -> list[StoredEvent]: ...

    # downlink commands
    def queue_command(self, device_id: int, type: str, attributes: Mapping[str, Any],
                      now: dt.datetime, user_id: int | None = None) -> StoredCommand:
        """Store a command with status "queued"."""

    def queued_commands(self, device_ids: Sequence[int]) -> list[StoredCommand]:
        """Commands still queued for these devices, oldest first."""

    def mark_command(self, command_id: int, status: str, now: dt.datetime,
                     result: str | None = None) -> None:
        """Move a command to "sent" (sets sent_time) or "failed" (result = why)."""

    def commands(self, user: User, device_id: int | None = None,
                 limit: int = 100) -> list[StoredCommand]:
        """Commands of the devices the user may see, newest first."""

    def count_positions(self, device_id: int | None = None) -> int:
        """For tests and benchmarks."""


class DuplicateError(Exception):
    """A unique value (device uniqueId, user email) is taken."""
