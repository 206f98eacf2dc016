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
   INSERT ... ON CONFLICT (device_id, type, event_time, alarm) DO NOTHING;
4. devices: one executemany UPDATE (psycopg2: execute_batch, one round trip per
   5000 rows) sets `last_update` to the maximum of stored and new, and, only for
   devices that got a new non-archive position, `position_id` to the device's
   newest non-archive position (a correlated subquery on the (device_id, fix_time)
   index): the latest position only moves forward, and a retransmission leaves it
   alone.  Status attributes are merged into `devices.attributes`.
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
from argon2 import PasswordHasher
from sqlalchemy import (
    Connection,
    Engine,
    Row,
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
    Device,
    NewEvent,
    NewPosition,
    StoredCommand,
    StoredEvent,
    StoredPosition,
    UnknownDeviceAttempt,
    User,
)
from tracker.storage.api import DuplicateError
from tracker.storage.passwords import Passwords
from tracker.storage.schema import (
    DEFAULT_ORGANISATION_ID,
    UTCDateTime,
    commands,
    devices,
    events,
    organisations,
    positions,
    unknown_devices,
    users,
    web_sessions,
)

log = Logger()

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30.0
MAX_BIND_PARAMS = 30_000          # per statement; SQLite's limit is 32766
INSERT_PAGE_ROWS = 5_000          # rows per multi-row INSERT (SQLAlchemy also caps
                                  # a statement at 32700 parameters: ~2000 positions)
MIGRATION_LOCK_KEY = 0x7472_6163  # pg_advisory_xact_lock key while migrating ("trac")
SHORT_TEXT = 128                  # length of the String(128) columns fed by devices


class SqlStore:
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

    def migrate(self) -> None:
        """Apply pending Alembic migrations (idempotent; serialised on PostgreSQL)."""
        config = Config()
        config.set_main_option("script_location",
                               str(MIGRATIONS_DIR).replace("%", "%%"))
        with self._write() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                             {"key": MIGRATION_LOCK_KEY})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

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
        except IntegrityError as exc:
            if self.device_by_unique_id(unique_id) is not None:
                raise DuplicateError(f"device unique id {unique_id!r} is taken") from exc
            raise
        return _device(row)

    def device_by_unique_id(self, unique_id: str) -> Device | None:
        with self._read() as conn:
            row = conn.execute(select(devices).where(devices.c.unique_id == unique_id)
                               ).one_or_none()
        return _device(row) if row is not None else None

    def devices(self, user: User | None = None) -> list[Device]:
        with self._read() as conn:
            rows = conn.execute(select(devices).where(_visible(user))
                                .order_by(devices.c.id)).all()
        return [_device(row) for row in rows]

    def record_unknown_device(self, attempt: UnknownDeviceAttempt) -> None:
        with self._write() as conn:
            conn.execute(insert(unknown_devices).values(
                unique_id=attempt.unique_id[:SHORT_TEXT],
                protocol=attempt.protocol[:SHORT_TEXT],
                remote_address=attempt.remote_address[:SHORT_TEXT],
                attempt_time=attempt.attempt_time))

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
        email = _normalise_email(email)
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
        return _user(row)

    def authenticate(self, email: str, password: str) -> User | None:
        with self._read() as conn:
            row = conn.execute(select(users).where(users.c.email == _normalise_email(email))
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
        return _user(row)

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
        return _user(row) if row is not None else None

    def delete_session(self, token: str) -> None:
        with self._write() as conn:
            conn.execute(delete(web_sessions)
                         .where(web_sessions.c.token_hash == _token_hash(token)))

    # -- positions and events --------------------------------------------------------

    def write_batch(self, batch: Batch) -> None:
        if not (batch.positions or batch.events or batch.statuses):
            return
        with self._write() as conn:
            batch = self._drop_unknown_devices(conn, batch)
            inserted = self._insert_positions(conn, batch.positions)
            self._insert_events(conn, batch.events, inserted)
            self._update_devices(conn, batch, inserted)

    def latest_positions(self, user: User) -> list[StoredPosition]:
        with self._read() as conn:
            rows = conn.execute(
                select(positions).join(devices, devices.c.position_id == positions.c.id)
                .where(_visible(user)).order_by(positions.c.device_id)).all()
        return [_position(row) for row in rows]

    def positions(self, user: User, device_id: int, start: dt.datetime,
                  end: dt.datetime) -> list[StoredPosition]:
        with self._read() as conn:
            rows = conn.execute(
                select(positions).join(devices, devices.c.id == positions.c.device_id)
                .where(positions.c.device_id == device_id,
                       positions.c.fix_time >= start, positions.c.fix_time <= end,
                       _visible(user))
                .order_by(positions.c.fix_time, positions.c.id)).all()
        return [_position(row) for row in rows]

    def positions_by_ids(self, user: User, ids: Sequence[int]) -> list[StoredPosition]:
        """The visible positions among `ids`, ordered by id; unknown ids are left out."""
        wanted = sorted(set(ids))
        rows: list[Row[Any]] = []
        with self._read() as conn:
            for chunk in _chunks(wanted, MAX_BIND_PARAMS):
                rows += conn.execute(
                    select(positions).join(devices, devices.c.id == positions.c.device_id)
                    .where(positions.c.id.in_(chunk), _visible(user))).all()
        return sorted((_position(row) for row in rows), key=lambda p: p.id)

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
        return [StoredEvent(id=r.id, device_id=r.device_id, type=r.type,
                            event_time=r.event_time, position_id=r.position_id,
                            attributes=r.attributes) for r in rows]

    def queue_command(self, device_id: int, type: str, attributes: Mapping[str, Any],
                      now: dt.datetime, user_id: int | None = None) -> StoredCommand:
        values = {"device_id": device_id, "user_id": user_id, "type": type,
                  "attributes": dict(attributes), "status": "queued", "created": now}
        with self._write() as conn:
            row = conn.execute(insert(commands).values(**values).returning(commands)).one()
        return _command(row)

    def queued_commands(self, device_ids: Sequence[int]) -> list[StoredCommand]:
        found: list[StoredCommand] = []
        with self._read() as conn:
            for chunk in _chunks(sorted(set(device_ids)), MAX_BIND_PARAMS):
                rows = conn.execute(select(commands).where(
                    commands.c.status == "queued", commands.c.device_id.in_(chunk)))
                found.extend(_command(row) for row in rows)
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
            return [_command(row) for row in conn.execute(query)]

    def count_positions(self, device_id: int | None = None) -> int:
        query = select(func.count()).select_from(positions)
        if device_id is not None:
            query = query.where(positions.c.device_id == device_id)
        with self._read() as conn:
            return conn.execute(query).scalar_one()

    # -- internals ----------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A connection in a write transaction, committed on success."""
        with self.engine.connect() as conn:
            conn.execution_options(tracker_write=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection in a transaction that is rolled back at the end (on SQLite its
        statements share one snapshot; PostgreSQL reads are READ COMMITTED)."""
        with self.engine.connect() as conn:
            yield conn

    def _drop_unknown_devices(self, conn: Connection, batch: Batch) -> Batch:
        wanted = ({p.device_id for p in batch.positions} | {e.device_id for e in batch.events}
                  | {s.device_id for s in batch.statuses})
        known: set[int] = set()
        for chunk in _chunks(sorted(wanted), MAX_BIND_PARAMS):
            known.update(conn.execute(select(devices.c.id).where(devices.c.id.in_(chunk))
                                      ).scalars())
        missing = wanted - known
        if not missing:
            return batch
        log.warn("write_batch: dropping records of {count} unknown device ids {ids}",
                 count=len(missing), ids=sorted(missing)[:20])
        return Batch(
            positions=tuple(p for p in batch.positions if p.device_id in known),
            events=tuple(e for e in batch.events if e.device_id in known),
            statuses=tuple(s for s in batch.statuses if s.device_id in known))

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
                         events.c.alarm])
                     .returning(events.c.device_id, events.c.type,
                                events.c.event_time, events.c.attributes))   # one multi-row INSERT
        inserted_events = conn.execute(statement, [{
            "device_id": e.device_id,
            "type": e.type,
            "event_time": e.event_time,
            "position_id": (position_ids.get((e.device_id, _utc(e.fix_time)))
                            if e.fix_time is not None else None),
            "attributes": dict(e.attributes),
            "alarm": _alarm_key(e.attributes),
        } for e in new]).all()
        self._answer_commands(conn, [e for e in inserted_events if e.type == "commandResult"])

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


def _position(row: Row[Any]) -> StoredPosition:
    return StoredPosition(
        id=row.id, device_id=row.device_id, protocol=row.protocol,
        server_time=row.server_time, device_time=row.device_time, fix_time=row.fix_time,
        valid=row.valid, latitude=row.latitude, longitude=row.longitude,
        altitude_m=row.altitude, speed_kn=row.speed, course_deg=row.course,
        accuracy_m=row.accuracy, attributes=row.attributes, network=row.network,
        archive=row.archive)


def _command(row: Row[Any]) -> StoredCommand:
    return StoredCommand(
        id=row.id, device_id=row.device_id, type=row.type, attributes=row.attributes,
        status=row.status, created=row.created, sent_time=row.sent_time,
        result_time=row.result_time, result=row.result, user_id=row.user_id)


def _device(row: Row[Any]) -> Device:
    return Device(id=row.id, unique_id=row.unique_id, name=row.name,
                  organisation_id=row.organisation_id, disabled=row.disabled,
                  last_update=row.last_update, position_id=row.position_id)


def _user(row: Row[Any]) -> User:
    return User(id=row.id, email=row.email, name=row.name,
                organisation_id=row.organisation_id, administrator=row.administrator)


def _visible(user: User | None) -> Any:
    """WHERE clause (on `devices`) for what `user` may see; None means everything."""
    if user is None or user.administrator:
        return true()
    return devices.c.organisation_id == user.organisation_id


def _alarm_key(attributes: Mapping[str, Any]) -> str:
    alarm = attributes.get("alarm")
    return "" if alarm is None else str(alarm)[:SHORT_TEXT]


def _normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not email:
        raise ValueError("empty e-mail address")
    return email


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} given; "
                         "storage takes timezone-aware UTC datetimes only")
    return value.astimezone(dt.UTC)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), max(size, 1)):
        yield items[start:start + size]
