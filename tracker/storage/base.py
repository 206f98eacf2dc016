"""What every repository of `SqlStore` shares: the engine, transactions, scoping of
devices, the configuration revision, and small helpers.

Each concern is a mixin of its own module (`devices`, `users`, `positions`,
`events`, `commands`, `quarantine`, `configuration`, `notifications`), all
subclasses of `SqlBase`; `tracker.storage.sql.SqlStore` combines them and sets up
the engine.  Transactions: every public method is one (`_write` / `_read`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, select, true, update

from tracker.models import User
from tracker.storage.passwords import Passwords
from tracker.storage.schema import CONFIG_REVISION_ROW, config_revision, devices

MAX_BIND_PARAMS = 30_000          # per statement; SQLite's limit is 32766

T = TypeVar("T")


class SqlBase:
    """The state and transactions the repository mixins share (set by `SqlStore`)."""

    engine: Engine
    dialect: str
    # The dialect's INSERT construct (both offer ON CONFLICT DO NOTHING / DO UPDATE).
    _insert: Callable[[Table], Any]
    _passwords: Passwords

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A connection in a write transaction, committed on success."""
        with self.engine.connect() as conn:
            conn.execution_options(tracker_write=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def _read(self, snapshot: bool = False) -> Iterator[Connection]:
        """A connection in a transaction that is rolled back at the end (on SQLite its
        statements share one snapshot; PostgreSQL reads are READ COMMITTED, or
        REPEATABLE READ, one snapshot, with `snapshot`)."""
        with self.engine.connect() as conn:
            if snapshot and self.dialect == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            yield conn


def visible_to(user: User | None) -> Any:
    """WHERE clause (on `devices`) for what `user` may see; None means everything."""
    if user is None or user.administrator:
        return true()
    return devices.c.organisation_id == user.organisation_id


def bump_revision(conn: Connection) -> None:
    """Every configuration write calls this in its own transaction."""
    conn.execute(update(config_revision)
                 .where(config_revision.c.id == CONFIG_REVISION_ROW)
                 .values(revision=config_revision.c.revision + 1))


def current_revision(conn: Connection) -> int:
    revision: int = conn.execute(select(config_revision.c.revision)
                                 .where(config_revision.c.id == CONFIG_REVISION_ROW)).scalar_one()
    return revision


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), max(size, 1)):
        yield items[start:start + size]
