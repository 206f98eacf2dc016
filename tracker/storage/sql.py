"""`SqlStore`: the `Store` interface on SQLite or PostgreSQL/PostGIS (SQLAlchemy Core).

One code path serves both databases; the differences are confined to engine set-up
(`_create_engine`), the dialect's INSERT construct (both offer ON CONFLICT DO NOTHING)
and the PostGIS-only parts of the migration.

Transactions: every public method is one transaction.  On SQLite, pysqlite's own
transaction handling is switched off and BEGIN is emitted here instead, so that reads
see one snapshot and writes take the write lock up front (BEGIN IMMEDIATE, which
waits for the busy timeout instead of failing when another connection wrote first).

Writing a batch (`write_batch`), in one transaction:
1. drop records of devices that no longer exist (logged), so a device deleted while
   its data was queued cannot block the writer forever;
2. positions: INSERT ... ON CONFLICT (device_id, fix_time) DO NOTHING RETURNING id,
   executed with all rows at once; SQLAlchemy's "insertmanyvalues" sends that as ONE
   multi-row VALUES statement per 5000 rows / 32700 parameters (about 2000
   positions), on both databases.  The RETURNING clause is what enables it (for
   ON CONFLICT statements SQLAlchemy 2.1 batches only with RETURNING), and it
   yields exactly the rows that were new;
3. events: position ids come from those returned rows, the rest (positions of an
   earlier batch) from one (device_id, fix_time) IN query; then one multi-row
   INSERT ... ON CONFLICT (device_id, type, event_time, subject) DO NOTHING;
4. devices: one executemany UPDATE (psycopg2: execute_batch, one round trip per
   5000 rows) sets `last_update` to the maximum of stored and new, and, only for
   devices that got a new non-archive position, `position_id` to the device's
   newest non-archive position (a correlated subquery on the (device_id, fix_time)
   index): the latest position only moves forward, and a retransmission leaves it
   alone.  Status attributes are merged into `devices.attributes`;
5. rule states: INSERT ... ON CONFLICT (device_id) DO UPDATE, one row per device (the
   last state of a device in the batch), so the committed state always matches the
   committed positions and events.
Configuration (groups, device settings, geofences and their links, calendars, rules,
organisation time zones, new devices): every write also increments the one row of
`config_revision` in its transaction.  Scoping and references are checked inside the
write transaction; the deletes that the foreign keys would cascade (links, a deleted
group's devices, a deleted calendar's geofences) are done explicitly as well, so they
do not depend on SQLite's `PRAGMA foreign_keys`.

On this machine (2 cores) a batch of 1000 positions from 1000 devices takes about
0.19 s on PostGIS and 0.05 s on SQLite.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import json
import math
import secrets
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from argon2 import PasswordHasher
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Table,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    false,
    func,
    insert,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool
from twisted.logger import Logger

from tracker.models import (
    Batch,
    Calendar,
    Device,
    Geofence,
    Group,
    NewEvent,
    NewPosition,
    Organisation,
    QuarantineEntry,
    Rule,
    RuleConfig,
    RuleState,
    StoredCommand,
    StoredEvent,
    StoredPosition,
    StoredQuarantine,
    UnknownDeviceAttempt,
    User,
)
from tracker.ports import UNCHANGED, DuplicateError, InUseError, NotFoundError, Unchanged
from tracker.sanitize import safe_text
from tracker.storage import errors, records
from tracker.storage.notifications import NotificationsMixin
from tracker.storage.passwords import Passwords
from tracker.storage.schema import (
    CONFIG_REVISION_ROW,
    DEFAULT_ORGANISATION_ID,
    UTCDateTime,
    calendars,
    commands,
    config_revision,
    device_geofences,
    devices,
    events,
    geofences,
    group_geofences,
    groups,
    notification_groups,
    notification_outbox,
    organisations,
    positions,
    quarantine,
    rule_states,
    rules,
    unknown_devices,
    users,
    web_sessions,
)
from tracker.storage.scoping import find, link_target, owned

log = Logger()

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30.0
MAX_BIND_PARAMS = 30_000          # per statement; SQLite's limit is 32766
INSERT_PAGE_ROWS = 5_000          # rows per multi-row INSERT (SQLAlchemy also caps
                                  # a statement at 32700 parameters: ~2000 positions)
MIGRATION_LOCK_KEY = 0x7472_6163  # pg_advisory_xact_lock key while migrating ("trac")
NOT_NOTIFIED = frozenset({"commandResult"})   # event types that never go to the outbox
SHORT_TEXT = 128                  # length of the String(128) columns fed by devices


class SqlStore(NotificationsMixin):
    """The `Store` on a SQLAlchemy URL (`sqlite:///path.db` or `postgresql://...`)."""

    def __init__(self, url: str, *, password_hasher: PasswordHasher | None = None,
                 echo: bool = False) -> None:
        self.url = make_url(url)
        self.engine: Engine = _create_engine(url, echo=echo)
        self.dialect: str = self.engine.dialect.name
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

    # -- organisations (not part of `Store`: for the CLI and tests) -------------

    def add_organisation(self, name: str) -> int:
        """Create an organisation; returns its id."""
        with self._write() as conn:
            return conn.execute(
                insert(organisations).values(name=name, created=_now())
                .returning(organisations.c.id)).scalar_one()

    # -- devices -----------------------------------------------------------------

    def add_device(self, unique_id: str, name: str,
                   organisation_id: int | None = None) -> Device:
        if not unique_id or len(unique_id) > SHORT_TEXT:
            raise ValueError(f"device unique id must have 1 to {SHORT_TEXT} characters: "
                             f"{unique_id!r}")
        values = {"unique_id": unique_id, "name": name,
                  "organisation_id": organisation_id or DEFAULT_ORGANISATION_ID}
        try:
            with self._write() as conn:
                row = conn.execute(insert(devices).values(**values)
                                   .returning(*devices.c)).one()
                _bump_revision(conn)
        except IntegrityError as exc:
            if self.device_by_unique_id(unique_id) is not None:
                raise DuplicateError(f"device unique id {unique_id!r} is taken") from exc
            raise
        return records.device(row)

    def device_by_unique_id(self, unique_id: str) -> Device | None:
        with self._read() as conn:
            row = conn.execute(select(devices).where(devices.c.unique_id == unique_id)
                               ).one_or_none()
        return records.device(row) if row is not None else None

    def devices(self, user: User | None = None) -> list[Device]:
        with self._read() as conn:
            rows = conn.execute(select(devices).where(_visible(user))
                                .order_by(devices.c.id)).all()
        return [records.device(row) for row in rows]

    def record_unknown_device(self, attempt: UnknownDeviceAttempt) -> None:
        with self._write() as conn:
            conn.execute(insert(unknown_devices).values(self._unknown_device_row(attempt)))

    def record_unknown_devices(self, attempts: Sequence[UnknownDeviceAttempt],
                               max_rows: int) -> None:
        """Insert `attempts` and keep only the newest `max_rows` rows (by insertion
        order, i.e. id), in one transaction; `attempts` may be empty (trim only).
        Texts longer than the columns are cut."""
        if max_rows < 1:
            raise ValueError(f"record_unknown_devices: max_rows must be >= 1, not {max_rows}")
        with self._write() as conn:
            if attempts:
                conn.execute(insert(unknown_devices),
                             [self._unknown_device_row(attempt) for attempt in attempts])
            newest_dropped = conn.execute(
                select(unknown_devices.c.id).order_by(unknown_devices.c.id.desc())
                .offset(max_rows).limit(1)).scalar_one_or_none()
            if newest_dropped is not None:
                conn.execute(delete(unknown_devices)
                             .where(unknown_devices.c.id <= newest_dropped))

    @staticmethod
    def _unknown_device_row(attempt: UnknownDeviceAttempt) -> dict[str, Any]:
        """The row of an attempt: texts escaped (NUL, lone surrogates) and cut to their
        columns, so that one garbage id cannot make a whole batch fail."""
        columns = unknown_devices.c
        return {"unique_id": safe_text(attempt.unique_id, columns.unique_id.type.length),
                "protocol": safe_text(attempt.protocol, columns.protocol.type.length),
                "remote_address": safe_text(attempt.remote_address,
                                            columns.remote_address.type.length),
                "attempt_time": attempt.attempt_time}

    def unknown_devices(self, limit: int = 1000) -> list[UnknownDeviceAttempt]:
        with self._read() as conn:
            rows = conn.execute(
                select(unknown_devices)
                .order_by(unknown_devices.c.attempt_time.desc(), unknown_devices.c.id.desc())
                .limit(limit)).all()
        return [UnknownDeviceAttempt(unique_id=r.unique_id, protocol=r.protocol,
                                     remote_address=r.remote_address,
                                     attempt_time=r.attempt_time) for r in rows]

    # -- users and web sessions ----------------------------------------------------

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
                    created=_now()).returning(*users.c)).one()
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

    def create_session(self, user_id: int, lifetime: dt.timedelta) -> str:
        token = secrets.token_urlsafe(32)
        now = _now()
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

    # -- positions and events --------------------------------------------------------

    def write_batch(self, batch: Batch) -> None:
        if batch.is_empty():
            return
        with self._write() as conn:
            batch = self._drop_unknown_devices(conn, batch)
            inserted = self._insert_positions(conn, batch.positions)
            self._insert_events(conn, batch.events, inserted)
            self._update_devices(conn, batch, inserted)
            self._upsert_states(conn, batch.states)
            _insert_quarantine(conn, batch.quarantine)

    # -- quarantine: device data the database refused for good ------------------------

    def write_quarantine(self, entries: Sequence[QuarantineEntry]) -> None:
        """Store `entries` in a transaction of their own."""
        with self._write() as conn:
            _insert_quarantine(conn, entries)

    def quarantined(self, limit: int = 100, before_id: int | None = None
                    ) -> list[StoredQuarantine]:
        """Newest first; `before_id` pages on (entries with a smaller id)."""
        query = select(quarantine).order_by(quarantine.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(quarantine.c.id < before_id)
        with self._read() as conn:
            return [_quarantined(row) for row in conn.execute(query)]

    def quarantine_entry(self, entry_id: int) -> StoredQuarantine | None:
        with self._read() as conn:
            row = conn.execute(select(quarantine).where(quarantine.c.id == entry_id)
                               ).one_or_none()
        return _quarantined(row) if row is not None else None

    def quarantine_count(self) -> int:
        with self._read() as conn:
            return conn.execute(select(func.count()).select_from(quarantine)).scalar_one()

    def purge_quarantine(self, *, received_before: dt.datetime | None = None,
                         ids: Sequence[int] | None = None) -> int:
        """Delete entries received before `received_before`, or those of `ids`, or
        (neither given) all; returns how many were deleted."""
        statement = delete(quarantine)
        if received_before is not None:
            statement = statement.where(quarantine.c.received < received_before)
        if ids is not None:
            statement = statement.where(quarantine.c.id.in_(list(ids)))
        with self._write() as conn:
            return conn.execute(statement).rowcount

    def latest_positions(self, user: User) -> list[StoredPosition]:
        with self._read() as conn:
            rows = conn.execute(
                select(positions).join(devices, devices.c.position_id == positions.c.id)
                .where(_visible(user)).order_by(positions.c.device_id)).all()
        return [records.position(row) for row in rows]

    def positions(self, user: User, device_id: int, start: dt.datetime,
                  end: dt.datetime) -> list[StoredPosition]:
        with self._read() as conn:
            rows = conn.execute(
                select(positions).join(devices, devices.c.id == positions.c.device_id)
                .where(positions.c.device_id == device_id,
                       positions.c.fix_time >= start, positions.c.fix_time <= end,
                       _visible(user))
                .order_by(positions.c.fix_time, positions.c.id)).all()
        return [records.position(row) for row in rows]

    def positions_by_ids(self, user: User, ids: Sequence[int]) -> list[StoredPosition]:
        """The visible positions among `ids`, ordered by id; unknown ids are left out."""
        wanted = sorted(set(ids))
        rows: list[Row[Any]] = []
        with self._read() as conn:
            for chunk in _chunks(wanted, MAX_BIND_PARAMS):
                rows += conn.execute(
                    select(positions).join(devices, devices.c.id == positions.c.device_id)
                    .where(positions.c.id.in_(chunk), _visible(user))).all()
        return sorted((records.position(row) for row in rows), key=lambda p: p.id)

    def events(self, user: User, device_id: int | None, start: dt.datetime,
               end: dt.datetime) -> list[StoredEvent]:
        """Events with start <= event_time <= end, oldest first (device None: all)."""
        query = (select(events).join(devices, devices.c.id == events.c.device_id)
                 .where(events.c.event_time >= start, events.c.event_time <= end,
                        _visible(user))
                 .order_by(events.c.event_time, events.c.id))
        if device_id is not None:
            query = query.where(events.c.device_id == device_id)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [records.event(row) for row in rows]

    def queue_command(self, device_id: int, type: str, attributes: Mapping[str, Any],
                      now: dt.datetime, user_id: int | None = None) -> StoredCommand:
        values = {"device_id": device_id, "user_id": user_id, "type": type,
                  "attributes": dict(attributes), "status": "queued", "created": now}
        with self._write() as conn:
            row = conn.execute(insert(commands).values(**values).returning(commands)).one()
        return records.command(row)

    def queued_commands(self, device_ids: Sequence[int]) -> list[StoredCommand]:
        found: list[StoredCommand] = []
        with self._read() as conn:
            for chunk in _chunks(sorted(set(device_ids)), MAX_BIND_PARAMS):
                rows = conn.execute(select(commands).where(
                    commands.c.status == "queued", commands.c.device_id.in_(chunk)))
                found.extend(records.command(row) for row in rows)
        return sorted(found, key=lambda c: c.id)

    def mark_command(self, command_id: int, status: str, now: dt.datetime,
                     result: str | None = None) -> None:
        if status == "sent":
            values: dict[str, Any] = {"status": status, "sent_time": now}
        elif status == "failed":
            values = {"status": status, "result_time": now, "result": (result or "")[:2000]}
        else:
            raise ValueError(f"a command can be marked sent or failed, not {status!r}")
        with self._write() as conn:
            conn.execute(update(commands).where(commands.c.id == command_id).values(**values))

    def commands(self, user: User, device_id: int | None = None,
                 limit: int = 100) -> list[StoredCommand]:
        query = (select(commands).join(devices, devices.c.id == commands.c.device_id)
                 .where(_visible(user)).order_by(commands.c.id.desc()).limit(limit))
        if device_id is not None:
            query = query.where(commands.c.device_id == device_id)
        with self._read() as conn:
            return [records.command(row) for row in conn.execute(query)]

    def count_positions(self, device_id: int | None = None) -> int:
        query = select(func.count()).select_from(positions)
        if device_id is not None:
            query = query.where(positions.c.device_id == device_id)
        with self._read() as conn:
            return conn.execute(query).scalar_one()

    # -- events (reports) ----------------------------------------------------------------

    def event(self, user: User, event_id: int) -> StoredEvent | None:
        with self._read() as conn:
            row = conn.execute(
                select(events).join(devices, devices.c.id == events.c.device_id)
                .where(events.c.id == event_id, _visible(user))).one_or_none()
        return records.event(row) if row is not None else None

    def events_report(self, user: User, start: dt.datetime, end: dt.datetime, *,
                      device_ids: Sequence[int] = (), group_ids: Sequence[int] = (),
                      types: Sequence[str] = (), limit: int = 10_000) -> list[StoredEvent]:
        """Served by the (device_id, event_time) index; a group means the devices in it
        now, not those that were in it when the event happened."""
        query = (select(events).join(devices, devices.c.id == events.c.device_id)
                 .where(events.c.event_time >= start, events.c.event_time <= end,
                        _visible(user))
                 .order_by(events.c.event_time, events.c.id).limit(limit))
        chosen = []
        if device_ids:
            chosen.append(events.c.device_id.in_(sorted(set(device_ids))))
        if group_ids:
            chosen.append(devices.c.group_id.in_(sorted(set(group_ids))))
        if chosen:
            query = query.where(or_(*chosen))
        if types:
            query = query.where(events.c.type.in_(sorted(set(types))))
        with self._read() as conn:
            return [records.event(row) for row in conn.execute(query)]

    # -- configuration: organisations --------------------------------------------------

    def organisations(self) -> list[Organisation]:
        with self._read() as conn:
            rows = conn.execute(select(organisations).order_by(organisations.c.id)).all()
        return [records.organisation(row) for row in rows]

    def set_organisation_timezone(self, organisation_id: int, timezone: str) -> None:
        with self._write() as conn:
            changed = conn.execute(update(organisations)
                                   .where(organisations.c.id == organisation_id)
                                   .values(timezone=timezone)).rowcount
            if not changed:
                raise NotFoundError(f"organisation {organisation_id} not found")
            _bump_revision(conn)

    # -- configuration: groups and device settings ------------------------------------

    def add_group(self, user: User | None, name: str, attributes: Mapping[str, Any] = {},
                  organisation_id: int | None = None) -> Group:
        with self._write() as conn:
            owner = _target_organisation(conn, user, organisation_id)
            row = conn.execute(insert(groups).values(
                organisation_id=owner, name=name, attributes=dict(attributes))
                .returning(*groups.c)).one()
            _bump_revision(conn)
        return records.group(row)

    def groups(self, user: User | None) -> list[Group]:
        with self._read() as conn:
            rows = conn.execute(select(groups).where(owned(groups, user))
                                .order_by(groups.c.id)).all()
        return [records.group(row) for row in rows]

    def update_group(self, user: User | None, group_id: int, *, name: str | None = None,
                     attributes: Mapping[str, Any] | None = None) -> Group:
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = name
        if attributes is not None:
            values["attributes"] = dict(attributes)
        with self._write() as conn:
            row = find(conn, groups, group_id, user, "group")
            if values:
                row = conn.execute(update(groups).where(groups.c.id == group_id)
                                   .values(**values).returning(*groups.c)).one()
            _bump_revision(conn)
        return records.group(row)

    def delete_group(self, user: User | None, group_id: int) -> None:
        with self._write() as conn:
            find(conn, groups, group_id, user, "group")
            conn.execute(update(devices).where(devices.c.group_id == group_id)
                         .values(group_id=None))
            conn.execute(delete(group_geofences).where(group_geofences.c.group_id == group_id))
            conn.execute(delete(notification_groups).where(notification_groups.c.group_id == group_id))
            conn.execute(delete(groups).where(groups.c.id == group_id))
            _bump_revision(conn)

    def update_device(self, user: User | None, device_id: int, *, name: str | None = None,
                      group_id: int | None | Unchanged = UNCHANGED,
                      attributes: Mapping[str, Any] | None = None) -> Device:
        with self._write() as conn:
            row = conn.execute(select(devices).where(devices.c.id == device_id,
                                                     _visible(user))).one_or_none()
            if row is None:
                raise NotFoundError(f"device {device_id} not found")
            values: dict[str, Any] = {}
            if name is not None:
                values["name"] = name
            if group_id is not UNCHANGED:
                if group_id is not None:
                    _require(conn, groups, group_id, row.organisation_id, "group")
                values["group_id"] = group_id
            if attributes is not None:
                values["settings"] = dict(attributes)
            if values:
                row = conn.execute(update(devices).where(devices.c.id == device_id)
                                   .values(**values).returning(*devices.c)).one()
            _bump_revision(conn)
        return records.device(row)

    # -- configuration: geofences ---------------------------------------------------------

    def add_geofence(self, user: User | None, name: str, geometry: Mapping[str, Any], *,
                     description: str = "", calendar_id: int | None = None,
                     attributes: Mapping[str, Any] = {},
                     organisation_id: int | None = None) -> Geofence:
        with self._write() as conn:
            owner = _target_organisation(conn, user, organisation_id)
            if calendar_id is not None:
                _require(conn, calendars, calendar_id, owner, "calendar")
            row = conn.execute(insert(geofences).values(
                organisation_id=owner, name=name, description=description,
                geometry=dict(geometry), calendar_id=calendar_id,
                attributes=dict(attributes)).returning(*geofences.c)).one()
            _bump_revision(conn)
        return records.geofence(row)

    def geofence(self, user: User | None, geofence_id: int) -> Geofence | None:
        with self._read() as conn:
            row = conn.execute(select(geofences).where(
                geofences.c.id == geofence_id, owned(geofences, user))).one_or_none()
        return records.geofence(row) if row is not None else None

    def geofences(self, user: User | None, *, device_id: int | None = None,
                  group_id: int | None = None) -> list[Geofence]:
        query = select(geofences).where(owned(geofences, user)).order_by(geofences.c.id)
        if device_id is not None:
            query = query.where(geofences.c.id.in_(
                select(device_geofences.c.geofence_id)
                .where(device_geofences.c.device_id == device_id)))
        if group_id is not None:
            query = query.where(geofences.c.id.in_(
                select(group_geofences.c.geofence_id)
                .where(group_geofences.c.group_id == group_id)))
        with self._read() as conn:
            return [records.geofence(row) for row in conn.execute(query)]

    def update_geofence(self, user: User | None, geofence_id: int, *, name: str,
                        geometry: Mapping[str, Any], description: str = "",
                        calendar_id: int | None = None,
                        attributes: Mapping[str, Any] = {}) -> Geofence:
        with self._write() as conn:
            current = find(conn, geofences, geofence_id, user, "geofence")
            if calendar_id is not None:
                _require(conn, calendars, calendar_id, current.organisation_id, "calendar")
            row = conn.execute(update(geofences).where(geofences.c.id == geofence_id).values(
                name=name, geometry=dict(geometry), description=description,
                calendar_id=calendar_id, attributes=dict(attributes))
                .returning(*geofences.c)).one()
            _bump_revision(conn)
        return records.geofence(row)

    def delete_geofence(self, user: User | None, geofence_id: int) -> None:
        with self._write() as conn:
            current = find(conn, geofences, geofence_id, user, "geofence")
            _refuse_if_used(conn, current.organisation_id, "zone", geofence_id, "geofence")
            conn.execute(delete(device_geofences)
                         .where(device_geofences.c.geofence_id == geofence_id))
            conn.execute(delete(group_geofences)
                         .where(group_geofences.c.geofence_id == geofence_id))
            conn.execute(delete(geofences).where(geofences.c.id == geofence_id))
            _bump_revision(conn)

    def link_geofence(self, user: User | None, geofence_id: int, *,
                      device_id: int | None = None, group_id: int | None = None) -> None:
        table, owner_column, owner_id = _geofence_link(device_id, group_id)
        with self._write() as conn:
            zone = find(conn, geofences, geofence_id, user, "geofence")
            owners = devices if table is device_geofences else groups
            _require(conn, owners, owner_id, zone.organisation_id, owner_column[:-3])
            conn.execute(self._insert(table).values(
                {owner_column: owner_id, "geofence_id": geofence_id}).on_conflict_do_nothing())
            _bump_revision(conn)

    def unlink_geofence(self, user: User | None, geofence_id: int, *,
                        device_id: int | None = None, group_id: int | None = None) -> None:
        table, owner_column, owner_id = _geofence_link(device_id, group_id)
        with self._write() as conn:
            find(conn, geofences, geofence_id, user, "geofence")
            removed = conn.execute(delete(table).where(
                table.c[owner_column] == owner_id, table.c.geofence_id == geofence_id)).rowcount
            if not removed:
                raise NotFoundError(f"geofence {geofence_id} is not linked to "
                                    f"{owner_column[:-3]} {owner_id}")
            _bump_revision(conn)

    # -- configuration: calendars ---------------------------------------------------------

    def add_calendar(self, user: User | None, name: str, data: Mapping[str, Any],
                     organisation_id: int | None = None) -> Calendar:
        with self._write() as conn:
            owner = _target_organisation(conn, user, organisation_id)
            row = conn.execute(insert(calendars).values(
                organisation_id=owner, name=name, data=dict(data))
                .returning(*calendars.c)).one()
            _bump_revision(conn)
        return records.calendar(row)

    def calendars(self, user: User | None) -> list[Calendar]:
        with self._read() as conn:
            rows = conn.execute(select(calendars).where(owned(calendars, user))
                                .order_by(calendars.c.id)).all()
        return [records.calendar(row) for row in rows]

    def update_calendar(self, user: User | None, calendar_id: int, *, name: str,
                        data: Mapping[str, Any]) -> Calendar:
        with self._write() as conn:
            find(conn, calendars, calendar_id, user, "calendar")
            row = conn.execute(update(calendars).where(calendars.c.id == calendar_id)
                               .values(name=name, data=dict(data))
                               .returning(*calendars.c)).one()
            _bump_revision(conn)
        return records.calendar(row)

    def delete_calendar(self, user: User | None, calendar_id: int) -> None:
        with self._write() as conn:
            current = find(conn, calendars, calendar_id, user, "calendar")
            _refuse_if_used(conn, current.organisation_id, "calendar", calendar_id, "calendar")
            conn.execute(update(geofences).where(geofences.c.calendar_id == calendar_id)
                         .values(calendar_id=None))
            conn.execute(delete(calendars).where(calendars.c.id == calendar_id))
            _bump_revision(conn)

    # -- configuration: rules ---------------------------------------------------------------

    def add_rule(self, user: User | None, name: str, definition: Mapping[str, Any],
                 enabled: bool = True, organisation_id: int | None = None) -> Rule:
        """The geofences ("zone") and calendars ("calendar") the definition names must
        be in the rule's organisation (NotFoundError)."""
        with self._write() as conn:
            owner = _target_organisation(conn, user, organisation_id)
            _require_referenced(conn, owner, definition)
            row = conn.execute(insert(rules).values(
                organisation_id=owner, name=name, definition=dict(definition),
                enabled=enabled, created=_now()).returning(*rules.c)).one()
            _bump_revision(conn)
        return records.rule(row)

    def rules(self, user: User | None) -> list[Rule]:
        """Enabled and disabled ones, by id."""
        with self._read() as conn:
            rows = conn.execute(select(rules).where(owned(rules, user))
                                .order_by(rules.c.id)).all()
        return [records.rule(row) for row in rows]

    def rule(self, user: User | None, rule_id: int) -> Rule | None:
        with self._read() as conn:
            row = conn.execute(select(rules).where(
                rules.c.id == rule_id, owned(rules, user))).one_or_none()
        return records.rule(row) if row is not None else None

    def update_rule(self, user: User | None, rule_id: int, *, name: str,
                    definition: Mapping[str, Any], enabled: bool = True) -> Rule:
        with self._write() as conn:
            current = find(conn, rules, rule_id, user, "rule")
            _require_referenced(conn, current.organisation_id, definition)
            row = conn.execute(update(rules).where(rules.c.id == rule_id).values(
                name=name, definition=dict(definition), enabled=enabled)
                .returning(*rules.c)).one()
            _bump_revision(conn)
        return records.rule(row)

    def delete_rule(self, user: User | None, rule_id: int) -> None:
        with self._write() as conn:
            find(conn, rules, rule_id, user, "rule")
            conn.execute(delete(rules).where(rules.c.id == rule_id))
            _bump_revision(conn)

    # -- configuration as the rule engine reads it -------------------------------------

    def rule_config(self) -> RuleConfig:
        """One snapshot (REPEATABLE READ on PostgreSQL; one SQLite read transaction):
        the revision always describes exactly the rows read with it."""
        with self._read(snapshot=True) as conn:
            revision = _revision(conn)
            organisation_rows = conn.execute(
                select(organisations).order_by(organisations.c.id)).all()
            device_rows = conn.execute(select(devices).where(devices.c.disabled == false())
                                       .order_by(devices.c.id)).all()
            group_rows = conn.execute(select(groups).order_by(groups.c.id)).all()
            geofence_rows = conn.execute(select(geofences).order_by(geofences.c.id)).all()
            calendar_rows = conn.execute(select(calendars).order_by(calendars.c.id)).all()
            rule_rows = conn.execute(select(rules).where(rules.c.enabled == true())
                                     .order_by(rules.c.id)).all()
            device_links = conn.execute(
                select(device_geofences.c.device_id, device_geofences.c.geofence_id)
                .join(devices, devices.c.id == device_geofences.c.device_id)
                .where(devices.c.disabled == false())
                .order_by(device_geofences.c.device_id, device_geofences.c.geofence_id)).all()
            group_links = conn.execute(
                select(group_geofences.c.group_id, group_geofences.c.geofence_id)
                .order_by(group_geofences.c.group_id, group_geofences.c.geofence_id)).all()
        return RuleConfig(
            revision=revision,
            organisations=tuple(records.organisation(row) for row in organisation_rows),
            devices=tuple(records.device(row) for row in device_rows),
            groups=tuple(records.group(row) for row in group_rows),
            geofences=tuple(records.geofence(row) for row in geofence_rows),
            calendars=tuple(records.calendar(row) for row in calendar_rows),
            rules=tuple(records.rule(row) for row in rule_rows),
            device_geofences=tuple((row.device_id, row.geofence_id) for row in device_links),
            group_geofences=tuple((row.group_id, row.geofence_id) for row in group_links))

    def config_revision(self) -> int:
        with self._read() as conn:
            return _revision(conn)

    def rule_states(self) -> dict[int, Mapping[str, Any]]:
        with self._read() as conn:
            return {row.device_id: row.state for row in conn.execute(
                select(rule_states.c.device_id, rule_states.c.state))}

    # -- internals ----------------------------------------------------------------

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

    def _drop_unknown_devices(self, conn: Connection, batch: Batch) -> Batch:
        wanted = ({p.device_id for p in batch.positions} | {e.device_id for e in batch.events}
                  | {s.device_id for s in batch.statuses} | {s.device_id for s in batch.states})
        known: set[int] = set()
        for chunk in _chunks(sorted(wanted), MAX_BIND_PARAMS):
            known.update(conn.execute(select(devices.c.id).where(devices.c.id.in_(chunk))
                                      ).scalars())
        missing = wanted - known
        if not missing:
            return batch
        log.warn("write_batch: dropping records of {count} unknown device ids {ids}",
                 count=len(missing), ids=sorted(missing)[:20])
        return dataclasses.replace(
            batch,
            positions=tuple(p for p in batch.positions if p.device_id in known),
            events=tuple(e for e in batch.events if e.device_id in known),
            statuses=tuple(s for s in batch.statuses if s.device_id in known),
            states=tuple(s for s in batch.states if s.device_id in known))

    def _insert_positions(self, conn: Connection,
                          new: Sequence[NewPosition]) -> list[Row[Any]]:
        """Insert what is not stored yet; returns (id, device_id, fix_time, archive)
        of the rows actually inserted."""
        if not new:
            return []
        statement = (self._insert(positions)
                     .on_conflict_do_nothing(index_elements=[positions.c.device_id,
                                                             positions.c.fix_time])
                     .returning(positions.c.id, positions.c.device_id,
                                positions.c.fix_time, positions.c.archive))
        return list(conn.execute(statement, [_position_row(p) for p in new]))

    def _insert_events(self, conn: Connection, new: Sequence[NewEvent],
                       inserted: Sequence[Row[Any]]) -> None:
        if not new:
            return
        position_ids = {(row.device_id, row.fix_time): row.id for row in inserted}
        wanted = {(e.device_id, _utc(e.fix_time)) for e in new if e.fix_time is not None}
        # Positions written earlier (or retransmitted now) are looked up in one query.
        missing = sorted(wanted - position_ids.keys())
        for chunk in _chunks(missing, MAX_BIND_PARAMS // 2):
            for row in conn.execute(
                    select(positions.c.id, positions.c.device_id, positions.c.fix_time)
                    .where(tuple_(positions.c.device_id, positions.c.fix_time).in_(chunk))):
                position_ids[(row.device_id, row.fix_time)] = row.id
        statement = (self._insert(events)
                     .on_conflict_do_nothing(index_elements=[
                         events.c.device_id, events.c.type, events.c.event_time,
                         events.c.subject])
                     .returning(events.c.id, events.c.device_id, events.c.type,
                                events.c.event_time, events.c.attributes))   # one multi-row INSERT
        inserted_events = conn.execute(statement, [{
            "device_id": e.device_id,
            "type": e.type,
            "event_time": e.event_time,
            "position_id": (position_ids.get((e.device_id, _utc(e.fix_time)))
                            if e.fix_time is not None else None),
            "attributes": dict(e.attributes),
            "subject": e.subject,
            "geofence_id": e.geofence_id,
        } for e in new]).all()
        self._answer_commands(conn, [e for e in inserted_events if e.type == "commandResult"])
        notify = [e for e in inserted_events if e.type not in NOT_NOTIFIED]
        if notify:   # the notification outbox, in the events' transaction
            now = _now()
            conn.execute(insert(notification_outbox), [
                {"event_id": e.id, "device_id": e.device_id, "created": now} for e in notify])

    @staticmethod
    def _answer_commands(conn: Connection, results: Sequence[Row[Any]]) -> None:
        """Each new commandResult answers its device's oldest command still "sent"."""
        for result in results:
            oldest = conn.execute(
                select(func.min(commands.c.id)).where(
                    commands.c.device_id == result.device_id, commands.c.status == "sent")
            ).scalar_one()
            if oldest is not None:
                conn.execute(update(commands).where(commands.c.id == oldest).values(
                    status="answered", result_time=result.event_time,
                    result=str(result.attributes.get("result", ""))[:2000]))

    def _update_devices(self, conn: Connection, batch: Batch,
                        inserted: Sequence[Row[Any]]) -> None:
        last_update: dict[int, dt.datetime] = {}
        for device_id, time in ([(p.device_id, p.server_time) for p in batch.positions]
                                + [(s.device_id, s.last_update) for s in batch.statuses]):
            if device_id not in last_update or time > last_update[device_id]:
                last_update[device_id] = time
        # Only a newly stored, non-archive fix can become a device's latest position.
        moved_devices = {row.device_id for row in inserted if not row.archive}

        b_time = bindparam("b_time", type_=UTCDateTime())
        newer_time = case(
            (or_(devices.c.last_update.is_(None), devices.c.last_update < b_time), b_time),
            else_=devices.c.last_update)
        newest_position = (
            select(positions.c.id)
            .where(positions.c.device_id == devices.c.id, positions.c.archive == false())
            .order_by(positions.c.fix_time.desc(), positions.c.id.desc())
            .limit(1).scalar_subquery())
        by_id = devices.c.id == bindparam("b_id")
        params = [{"b_id": device_id, "b_time": time}
                  for device_id, time in sorted(last_update.items())]
        moved = [p for p in params if p["b_id"] in moved_devices]
        if moved:
            conn.execute(update(devices).where(by_id)
                         .values(last_update=newer_time, position_id=newest_position), moved)
        seen = [p for p in params if p["b_id"] not in moved_devices]
        if seen:
            conn.execute(update(devices).where(by_id).values(last_update=newer_time), seen)

        merged: dict[int, dict[str, Any]] = {}
        for status in batch.statuses:
            if status.attributes:
                merged.setdefault(status.device_id, {}).update(status.attributes)
        if merged:
            current: dict[int, Any] = {
                row.id: row.attributes for row in conn.execute(
                    select(devices.c.id, devices.c.attributes)
                    .where(devices.c.id.in_(sorted(merged))).with_for_update())}
            conn.execute(update(devices).where(by_id).values(
                attributes=bindparam("b_attrs", type_=devices.c.attributes.type)),
                         [{"b_id": device_id, "b_attrs": {**(current.get(device_id) or {}),
                                                          **attributes}}
                          for device_id, attributes in sorted(merged.items())])


    def _upsert_states(self, conn: Connection, states: Sequence[RuleState]) -> None:
        """One row per device: the last state of the device in the batch (a multi-row
        ON CONFLICT DO UPDATE may not touch one row twice)."""
        if not states:
            return
        latest = {state.device_id: state.state for state in states}
        now = _now()
        statement = self._insert(rule_states)
        statement = statement.on_conflict_do_update(
            index_elements=[rule_states.c.device_id],
            set_={"state": statement.excluded.state, "updated": statement.excluded.updated})
        conn.execute(statement, [{"device_id": device_id, "state": dict(state), "updated": now}
                                 for device_id, state in sorted(latest.items())])


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


def _position_row(p: NewPosition) -> dict[str, Any]:
    return {
        "device_id": p.device_id,
        "protocol": p.protocol,
        "server_time": p.server_time,
        "device_time": p.device_time,
        "fix_time": p.fix_time,
        "valid": p.valid,
        "latitude": p.latitude,
        "longitude": p.longitude,
        "altitude": p.altitude_m,
        "speed": p.speed_kn,
        "course": p.course_deg,
        "accuracy": p.accuracy_m,
        "attributes": dict(p.attributes),
        "network": dict(p.network) if p.network is not None else None,
        "archive": p.archive,
    }


def _visible(user: User | None) -> Any:
    """WHERE clause (on `devices`) for what `user` may see; None means everything."""
    if user is None or user.administrator:
        return true()
    return devices.c.organisation_id == user.organisation_id


def _require(conn: Connection, table: Table, object_id: int, organisation_id: int,
             what: str) -> None:
    """A referenced object must exist in the referring object's organisation."""
    found = conn.execute(select(table.c.id).where(
        table.c.id == object_id, table.c.organisation_id == organisation_id)).first()
    if found is None:
        raise NotFoundError(f"{what} {object_id} not found")


def _target_organisation(conn: Connection, user: User | None,
                         organisation_id: int | None) -> int:
    """Where a new object goes: a member's own organisation; for an administrator or
    the CLI (user None) `organisation_id` if given, else theirs / the default one."""
    if user is not None and not user.administrator:
        if organisation_id not in (None, user.organisation_id):
            raise NotFoundError(f"organisation {organisation_id} not found")
        return user.organisation_id
    if organisation_id is None:
        organisation_id = user.organisation_id if user is not None else DEFAULT_ORGANISATION_ID
    if conn.execute(select(organisations.c.id)
                    .where(organisations.c.id == organisation_id)).first() is None:
        raise NotFoundError(f"organisation {organisation_id} not found")
    return organisation_id


def _geofence_link(device_id: int | None, group_id: int | None) -> tuple[Table, str, int]:
    return link_target(device_id, group_id, device_geofences, group_geofences, "geofence")


# What a rule definition (`geofence.rules`) names: its "zone" (and the geofence of a
# geofence event condition, `when.value`) and its "calendar".
RULE_REFERENCES = (("zone", geofences, "geofence"), ("calendar", calendars, "calendar"))


def _referenced_ids(definition: Mapping[str, Any], key: str) -> set[int]:
    """Ids under `key` anywhere in a rule definition (a number or a list of them); for
    "zone" also the `when.value` of a geofence event condition."""
    found = _ids_under(definition, key)
    when = definition.get("when")
    if key == "zone" and isinstance(when, Mapping) and isinstance(when.get("event"), str) \
            and when["event"].startswith("geofence"):
        found |= _ids(when.get("value"))
    return found


def _ids_under(value: Any, key: str) -> set[int]:
    found: set[int] = set()
    if isinstance(value, Mapping):
        for name, item in value.items():
            if name == key:
                found |= _ids(item)
            found |= _ids_under(item, key)
    elif isinstance(value, list):
        for item in value:
            found |= _ids_under(item, key)
    return found


def _ids(value: Any) -> set[int]:
    items = value if isinstance(value, list) else [value]
    return {item for item in items if isinstance(item, int) and not isinstance(item, bool)}


def _require_referenced(conn: Connection, organisation_id: int,
                        definition: Mapping[str, Any]) -> None:
    for key, table, what in RULE_REFERENCES:
        for object_id in sorted(_referenced_ids(definition, key)):
            _require(conn, table, object_id, organisation_id, what)


def _refuse_if_used(conn: Connection, organisation_id: int, key: str, object_id: int,
                    what: str) -> None:
    """InUseError if a rule (enabled or not) of the organisation names the object."""
    for rule in conn.execute(select(rules.c.id, rules.c.name, rules.c.definition)
                             .where(rules.c.organisation_id == organisation_id)
                             .order_by(rules.c.id)):
        if object_id in _referenced_ids(rule.definition, key):
            raise InUseError(f"{what} {object_id} is used by rule {rule.id} ({rule.name})")


def _bump_revision(conn: Connection) -> None:
    """Every configuration write calls this in its own transaction."""
    conn.execute(update(config_revision)
                 .where(config_revision.c.id == CONFIG_REVISION_ROW)
                 .values(revision=config_revision.c.revision + 1))


def _revision(conn: Connection) -> int:
    return conn.execute(select(config_revision.c.revision)
                        .where(config_revision.c.id == CONFIG_REVISION_ROW)).scalar_one()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} given; "
                         "storage takes timezone-aware UTC datetimes only")
    return value.astimezone(dt.UTC)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _insert_quarantine(conn: Connection, entries: Sequence[QuarantineEntry]) -> None:
    if entries:
        conn.execute(insert(quarantine), [dataclasses.asdict(entry) for entry in entries])


def _quarantined(row: Row[Any]) -> StoredQuarantine:
    return StoredQuarantine(row.id, QuarantineEntry(
        received=row.received, protocol=row.protocol, error=row.error,
        frame_hex=row.frame_hex, device_id=row.device_id, unique_id=row.unique_id,
        remote_address=row.remote_address))


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), max(size, 1)):
        yield items[start:start + size]
