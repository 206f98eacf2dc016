"""`SqlStore`: the `Store` interface on SQLite or PostgreSQL/PostGIS (SQLAlchemy Core).

One code path serves both databases; the differences are confined to engine set-up
(`_create_engine`), the dialect's INSERT construct (both offer ON CONFLICT DO NOTHING)
and the PostGIS-only parts of the migration.  Each concern of `tracker.ports` is a
mixin of its own module, on the shared `tracker.storage.base.SqlBase`:

    devices.py        DeviceRepository         unknown device ids too
    users.py          UserRepository           passwords, web sessions, API tokens
    positions.py      PositionRepository       write_batch (its steps documented there)
    events.py         EventRepository
    commands.py       CommandRepository
    quarantine.py     QuarantineRepository
    configuration.py  ConfigurationRepository  revision, references
    notifications.py  NotificationRepository, OutboxRepository

Transactions: every public method is one transaction.  On SQLite, pysqlite's own
transaction handling is switched off and BEGIN is emitted here instead, so that reads
see one snapshot and writes take the write lock up front (BEGIN IMMEDIATE, which
waits for the busy timeout instead of failing when another connection wrote first).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from argon2 import PasswordHasher
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from tracker.ports import Store
from tracker.storage import errors
from tracker.storage.commands import CommandsMixin
from tracker.storage.configuration import ConfigurationMixin
from tracker.storage.devices import DevicesMixin
from tracker.storage.events import EventsMixin
from tracker.storage.notifications import NotificationsMixin
from tracker.storage.passwords import Passwords
from tracker.storage.positions import PositionsMixin
from tracker.storage.quarantine import QuarantineMixin
from tracker.storage.users import UsersMixin

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30.0
INSERT_PAGE_ROWS = 5_000          # rows per multi-row INSERT (SQLAlchemy also caps
                                  # a statement at 32700 parameters: ~2000 positions)
MIGRATION_LOCK_KEY = 0x7472_6163  # pg_advisory_xact_lock key while migrating ("trac")


class SqlStore(DevicesMixin, UsersMixin, PositionsMixin, EventsMixin, CommandsMixin,
               QuarantineMixin, ConfigurationMixin, NotificationsMixin):
    """The `Store` on a SQLAlchemy URL (`sqlite:///path.db` or `postgresql://...`)."""

    def __init__(self, url: str, *, password_hasher: PasswordHasher | None = None,
                 echo: bool = False) -> None:
        self.url = make_url(url)
        self.engine = _create_engine(url, echo=echo)
        self.dialect = self.engine.dialect.name
        self._insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        self._passwords = Passwords(password_hasher)

    def __repr__(self) -> str:
        return f"SqlStore({self.url!r})"   # the URL's repr hides the password

    # -- lifecycle -------------------------------------------------------------

    def migrate(self, revision: str = "head") -> None:
        """Apply pending Alembic migrations up to `revision` (idempotent; serialised on
        PostgreSQL).

        On SQLite foreign keys are off while migrating, as SQLite's own procedure for
        schema changes asks: a batch copy-and-move drops the old table, and with
        foreign keys on that DROP would cascade-delete the rows referring to it (all
        positions, when `devices` is rebuilt).  Instead `PRAGMA foreign_key_check` runs
        before the commit when a revision was applied, and refuses a migration that
        broke a reference.
        """
        config = Config()
        config.set_main_option("script_location",
                               str(MIGRATIONS_DIR).replace("%", "%%"))
        with self.engine.connect() as conn:
            sqlite_connection = (conn.connection.driver_connection
                                 if self.dialect == "sqlite" else None)
            if sqlite_connection is not None:   # outside a transaction, or it is ignored
                sqlite_connection.execute("PRAGMA foreign_keys=OFF")
            try:
                conn.execution_options(tracker_write=True)
                with conn.begin():
                    if self.dialect == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                     {"key": MIGRATION_LOCK_KEY})
                    config.attributes["connection"] = conn
                    before = MigrationContext.configure(conn).get_current_revision()
                    command.upgrade(config, revision)
                    after = MigrationContext.configure(conn).get_current_revision()
                    if sqlite_connection is not None and after != before:
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                        if broken:
                            raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")
            finally:
                if sqlite_connection is not None:
                    sqlite_connection.execute("PRAGMA foreign_keys=ON")

    def is_transient(self, error: BaseException) -> bool:
        return errors.is_transient(error)

    def describe(self, error: BaseException) -> str:
        return errors.describe(error)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1")).one()

    def close(self) -> None:
        """Close pooled connections (the store can still be used afterwards)."""
        self.engine.dispose()


def open_store(url: str) -> SqlStore:
    """A store on `url`, reachable and migrated to the newest schema revision."""
    store = SqlStore(url)
    store.ping()
    store.migrate()
    return store


# -- engine set-up -----------------------------------------------------------------


def _create_engine(url: str, echo: bool = False) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _create_sqlite_engine(url, echo)
    if parsed.get_backend_name() == "postgresql":
        options: dict[str, Any] = {}
        if parsed.get_driver_name() == "psycopg2":
            # UPDATE executemany in pages (psycopg2.extras.execute_batch), not row by row
            options.update(executemany_mode="values_plus_batch",
                           executemany_batch_page_size=INSERT_PAGE_ROWS)
        return create_engine(url, echo=echo, pool_pre_ping=True, json_serializer=json_dumps,
                             insertmanyvalues_page_size=INSERT_PAGE_ROWS, **options)
    raise ValueError(f"unsupported database {parsed.get_backend_name()!r} "
                     "(use sqlite:///path or postgresql://...)")


def _create_sqlite_engine(url: str, echo: bool) -> Engine:
    in_memory = make_url(url).database in (None, "", ":memory:")
    engine = create_engine(
        url, echo=echo, json_serializer=json_dumps, insertmanyvalues_page_size=INSERT_PAGE_ROWS,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
        # An in-memory database exists once per connection: share one (tests only).
        **({"poolclass": StaticPool} if in_memory else {}))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None   # we emit BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            cursor.execute("PRAGMA synchronous=FULL")   # a commit survives power loss
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("tracker_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


# -- values in and out ------------------------------------------------------------


def json_dumps(value: Any) -> str:
    """JSON for the attribute columns; never fails on what a decoder might produce.

    Non-finite floats become null (PostgreSQL rejects NaN in JSON); datetimes become
    ISO 8601 strings, bytes hex, Decimals floats, enums their value; anything else
    unknown its str().
    """
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"),
                          default=_json_default)
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False, separators=(",", ":"),
                          default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value



if TYPE_CHECKING:   # mypy proves that SqlStore implements every repository of the port
    def _implements_store(store: SqlStore) -> Store:
        return store
