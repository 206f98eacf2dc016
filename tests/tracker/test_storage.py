"""SqlStore behaviour, run on SQLite and on PostGIS through the `store` fixture."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from argon2 import PasswordHasher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError

from tracker.models import (
    Batch,
    NewEvent,
    NewPosition,
    StatusUpdate,
    UnknownDeviceAttempt,
    User,
)
from tracker.ports import STORE_PROTOCOLS, Lifecycle
from tracker.storage import DuplicateError, SqlStore, Store
from tracker.storage.schema import devices, metadata, users, web_sessions

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
CEST = dt.timezone(dt.timedelta(hours=2))
_unique_ids = itertools.count(1)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def position(device_id: int, minutes: float, *, archive: bool = False,
             lon: float = 13.4, lat: float = 52.5, **fields) -> NewPosition:
    """A position fixed `minutes` after T0 and received a second later."""
    fix_time = at(minutes)
    return NewPosition(device_id=device_id, protocol="osmand",
                       server_time=fix_time + dt.timedelta(seconds=1),
                       device_time=fix_time, fix_time=fix_time, valid=True,
                       latitude=lat, longitude=lon, archive=archive, **fields)


def new_device(store: SqlStore, organisation_id: int | None = None):
    return store.add_device(f"dev{next(_unique_ids)}", "Van", organisation_id)


ADMIN = User(id=0, email="admin@example.com", name="", organisation_id=1,
             administrator=True)


def member_of(organisation_id: int) -> User:
    return User(id=0, email="u@example.com", name="", organisation_id=organisation_id)


# -- schema and lifecycle -------------------------------------------------------------


def test_sql_store_satisfies_store_protocol(store):
    """SqlStore has every method of the Store interface: of each repository `Store`
    is made of (mypy checks the signatures: tracker/storage/sql.py)."""
    members = {name for protocol in STORE_PROTOCOLS for name in vars(protocol)
               if not name.startswith("_")} | set(Lifecycle.__annotations__)
    assert {"visible_device", "positions_page", "iter_positions", "pending_outbox",
            "register_push_token", "rule_config", "write_batch"} <= members
    assert all(protocol in Store.__mro__ for protocol in STORE_PROTOCOLS)
    missing = sorted(name for name in members if not hasattr(store, name))
    assert missing == []
    assert store.dialect in ("sqlite", "postgresql")


def test_migrate_is_idempotent(store):
    """Running migrate again on a migrated database changes nothing and keeps data."""
    device = new_device(store)
    store.migrate()
    store.migrate()
    assert store.device_by_unique_id(device.unique_id) == device
    with store.engine.connect() as conn:
        (version,) = conn.execute(text("SELECT version_num FROM alembic_version")).one()
    assert version == _latest_revision()


def _latest_revision() -> str:
    """The newest revision file's id (each file is named NNNN_*.py)."""
    import tracker.storage
    versions = Path(tracker.storage.__file__).parent / "migrations" / "versions"
    return max(path.name[:4] for path in versions.glob("[0-9][0-9][0-9][0-9]_*.py"))


def test_migration_creates_the_tables_schema_py_describes(store):
    """Alembic's autogenerate finds no difference between migration and schema.py."""
    def include(obj, name, type_, reflected, compare_to):
        if type_ == "table" and reflected and compare_to is None:
            return name in metadata.tables      # PostGIS's spatial_ref_sys etc.
        return name not in ("geom", "ix_positions_geom")   # PostgreSQL only

    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "include_object": include, "compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_ping_succeeds_on_a_live_database(store):
    store.ping()


def test_default_organisation_exists_and_new_ones_get_fresh_ids(store):
    """Organisation 1 comes from the migration; the id sequence continues after it."""
    device = new_device(store)
    assert device.organisation_id == 1
    assert store.add_organisation("Second") == 2
    assert store.add_organisation("Third") == 3


# -- devices -----------------------------------------------------------------------


def test_add_device_and_find_it_by_unique_id(store):
    device = store.add_device("123456789012345", "Truck 7")
    assert device.id > 0 and device.unique_id == "123456789012345"
    assert device.name == "Truck 7" and not device.disabled
    assert device.last_update is None and device.position_id is None
    assert store.device_by_unique_id("123456789012345") == device
    assert store.device_by_unique_id("nope") is None


def test_duplicate_device_unique_id_raises_duplicate_error(store):
    store.add_device("42", "first")
    with pytest.raises(DuplicateError, match="42"):
        store.add_device("42", "second")
    assert [d.name for d in store.devices()] == ["first"]


def test_device_in_unknown_organisation_is_not_reported_as_duplicate(store):
    with pytest.raises(Exception) as info:
        store.add_device("43", "lost", organisation_id=999)
    assert not isinstance(info.value, DuplicateError)


def test_devices_are_scoped_by_organisation(store):
    """Admins and the CLI (user None) see all devices; members only their own."""
    second = store.add_organisation("Second")
    mine = new_device(store, second)
    other = new_device(store)
    assert store.devices() == [mine, other]
    assert store.devices(ADMIN) == [mine, other]
    assert store.devices(member_of(second)) == [mine]
    assert store.devices(member_of(1)) == [other]


def test_unknown_devices_are_listed_newest_first(store):
    for minutes in (1, 3, 2):
        store.record_unknown_device(UnknownDeviceAttempt(
            unique_id=f"u{minutes}", protocol="gt06", remote_address="192.0.2.1:5023",
            attempt_time=at(minutes)))
    listed = store.unknown_devices()
    assert [a.unique_id for a in listed] == ["u3", "u2", "u1"]
    assert listed[0] == UnknownDeviceAttempt("u3", "gt06", "192.0.2.1:5023", at(3))
    assert [a.unique_id for a in store.unknown_devices(limit=2)] == ["u3", "u2"]


def test_overlong_unknown_device_id_is_truncated_not_refused(store):
    """A hostile device cannot make the attempt log fail with a huge identifier."""
    store.record_unknown_device(UnknownDeviceAttempt("9" * 5000, "gt06", "x", at(0)))
    assert store.unknown_devices()[0].unique_id == "9" * 128


# -- users and sessions ------------------------------------------------------------


def test_authenticate_right_wrong_and_unknown(store):
    user = store.add_user("Ann@Example.com", "correct horse", name="Ann")
    assert user == User(id=user.id, email="ann@example.com", name="Ann",
                        organisation_id=1, administrator=False)
    assert store.authenticate("ann@example.com", "correct horse") == user
    assert store.authenticate(" ANN@example.com ", "correct horse") == user
    assert store.authenticate("ann@example.com", "wrong horse") is None
    assert store.authenticate("bob@example.com", "correct horse") is None
    assert store.authenticate("", "correct horse") is None


class CountingHasher(PasswordHasher):
    """Argon2id with cheap parameters that counts verifications."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verified = 0

    def verify(self, hash, password):
        self.verified += 1
        return super().verify(hash, password)


def same_database(store: SqlStore, **options) -> SqlStore:
    return SqlStore(store.url.render_as_string(hide_password=False), **options)


def test_unknown_email_costs_a_password_verification_too(store):
    """Unknown addresses are verified against a dummy hash: timing does not tell."""
    hasher = CountingHasher()
    counted = same_database(store, password_hasher=hasher)
    counted.add_user("ann@example.com", "pw")
    assert counted.authenticate("ann@example.com", "wrong") is None
    assert hasher.verified == 1
    assert counted.authenticate("bob@example.com", "pw") is None
    assert hasher.verified == 2
    counted.close()


def test_weak_hash_is_upgraded_on_successful_login(store):
    weak = same_database(store, password_hasher=CountingHasher())
    weak.add_user("ann@example.com", "pw")
    weak.close()
    assert store.authenticate("ann@example.com", "pw") is not None
    with store.engine.connect() as conn:
        upgraded = conn.execute(select(users.c.password_hash)).scalar_one()
    assert not PasswordHasher().check_needs_rehash(upgraded)
    assert store.authenticate("ann@example.com", "pw") is not None


def test_password_is_stored_as_argon2id_hash(store):
    store.add_user("ann@example.com", "correct horse")
    with store.engine.connect() as conn:
        stored = conn.execute(select(users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored


def test_duplicate_email_raises_duplicate_error(store):
    store.add_user("ann@example.com", "x", administrator=True)
    with pytest.raises(DuplicateError):
        store.add_user("ANN@example.com", "y")


def test_session_lookup_expiry_and_delete(store):
    user = store.add_user("ann@example.com", "pw")
    token = store.create_session(user.id, dt.timedelta(hours=1))
    now = dt.datetime.now(dt.UTC)
    assert len(token) >= 43
    assert store.user_for_session(token, now) == user
    assert store.user_for_session(token, now + dt.timedelta(hours=2)) is None
    assert store.user_for_session(token + "x", now) is None
    store.delete_session(token)
    assert store.user_for_session(token, now) is None


def test_session_token_is_stored_only_as_sha256(store):
    user = store.add_user("ann@example.com", "pw")
    token = store.create_session(user.id, dt.timedelta(hours=1))
    with store.engine.connect() as conn:
        stored = conn.execute(select(web_sessions.c.token_hash)).scalars().all()
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]


def test_sessions_are_distinct_per_login(store):
    user = store.add_user("ann@example.com", "pw")
    first = store.create_session(user.id, dt.timedelta(hours=1))
    second = store.create_session(user.id, dt.timedelta(hours=1))
    assert first != second
    store.delete_session(first)
    assert store.user_for_session(second, dt.datetime.now(dt.UTC)) == user


# -- write_batch ---------------------------------------------------------------------


def test_retransmitted_batch_stores_positions_and_events_once(store):
    device = new_device(store)
    batch = Batch(
        positions=(position(device.id, 1), position(device.id, 2)),
        events=(NewEvent(device.id, "alarm", at(2), {"alarm": "sos"}, fix_time=at(2)),
                NewEvent(device.id, "deviceOnline", at(0))))
    store.write_batch(batch)
    store.write_batch(batch)
    assert store.count_positions() == 2
    assert store.count_positions(device.id) == 2
    stored = store.events(ADMIN, device.id, at(0), at(10))
    assert [(e.type, e.event_time) for e in stored] == [
        ("deviceOnline", at(0)), ("alarm", at(2))]


def test_duplicate_fix_within_one_batch_is_stored_once(store):
    device = new_device(store)
    store.write_batch(Batch(positions=(position(device.id, 1), position(device.id, 1))))
    assert store.count_positions(device.id) == 1


def test_event_is_linked_to_the_position_with_its_fix_time(store):
    """Also when the position was written in an earlier batch."""
    device = new_device(store)
    store.write_batch(Batch(positions=(position(device.id, 1),)))
    store.write_batch(Batch(
        positions=(position(device.id, 2),),
        events=(NewEvent(device.id, "alarm", at(1), {"alarm": "sos"},
                         fix_time=at(1).astimezone(CEST)),
                NewEvent(device.id, "alarm", at(2), {"alarm": "overspeed"}, fix_time=at(2)),
                NewEvent(device.id, "alarm", at(3), {"alarm": "x"}, fix_time=at(3)))))
    by_time = {p.fix_time: p.id for p in store.positions(ADMIN, device.id, at(0), at(9))}
    linked = {e.event_time: e.position_id for e in store.events(ADMIN, device.id, at(0), at(9))}
    assert linked == {at(1): by_time[at(1)], at(2): by_time[at(2)], at(3): None}


def test_different_alarms_at_the_same_instant_are_both_kept(store):
    device = new_device(store)
    store.write_batch(Batch(events=(
        NewEvent(device.id, "alarm", at(1), {"alarm": "sos"}),
        NewEvent(device.id, "alarm", at(1), {"alarm": "powerCut"}),
        NewEvent(device.id, "ignitionOn", at(1)))))
    stored = store.events(ADMIN, device.id, at(0), at(2))
    assert sorted(e.attributes.get("alarm", "") for e in stored) == ["", "powerCut", "sos"]


def test_latest_position_only_moves_forward(store):
    """Older fixes and archive positions are stored but never become the latest."""
    device = new_device(store)

    def latest_fix():
        current = store.device_by_unique_id(device.unique_id)
        [stored] = store.positions_by_ids(ADMIN, [current.position_id])
        return stored.fix_time

    store.write_batch(Batch(positions=(position(device.id, 10),)))
    assert latest_fix() == at(10)
    store.write_batch(Batch(positions=(position(device.id, 5),)))
    assert latest_fix() == at(10)
    store.write_batch(Batch(positions=(position(device.id, 20, archive=True),)))
    assert latest_fix() == at(10)
    store.write_batch(Batch(positions=(position(device.id, 30), position(device.id, 25))))
    assert latest_fix() == at(30)
    assert store.count_positions(device.id) == 5


def test_last_update_is_the_maximum_seen(store):
    device = new_device(store)
    store.write_batch(Batch(positions=(position(device.id, 10),)))
    assert store.device_by_unique_id(device.unique_id).last_update == at(10) + dt.timedelta(
        seconds=1)
    store.write_batch(Batch(statuses=(StatusUpdate(device.id, at(3)),)))
    assert store.device_by_unique_id(device.unique_id).last_update == at(10) + dt.timedelta(
        seconds=1)
    store.write_batch(Batch(statuses=(StatusUpdate(device.id, at(60)),)))
    assert store.device_by_unique_id(device.unique_id).last_update == at(60)


def test_status_attributes_are_merged(store):
    device = new_device(store)
    store.write_batch(Batch(statuses=(StatusUpdate(device.id, at(1), {"power_v": 12.5}),)))
    store.write_batch(Batch(statuses=(
        StatusUpdate(device.id, at(2), {"ignition": True}),
        StatusUpdate(device.id, at(3), {"power_v": 11.9}))))
    with store.engine.connect() as conn:
        attributes = conn.execute(select(devices.c.attributes)
                                  .where(devices.c.id == device.id)).scalar_one()
    assert attributes == {"power_v": 11.9, "ignition": True}


def test_records_of_unknown_devices_are_dropped_not_fatal(store):
    """A device deleted while its data was queued must not block the writer."""
    device = new_device(store)
    store.write_batch(Batch(
        positions=(position(device.id, 1), position(9999, 1)),
        events=(NewEvent(9999, "alarm", at(1)),),
        statuses=(StatusUpdate(9999, at(1)),)))
    assert store.count_positions() == 1


def test_empty_batch_is_a_no_op(store):
    store.write_batch(Batch())
    assert store.count_positions() == 0


def test_many_devices_in_one_batch(store):
    """A batch with many devices updates each device's latest position."""
    many = [new_device(store) for _ in range(50)]
    store.write_batch(Batch(positions=tuple(
        position(d.id, minutes) for d in many for minutes in (1, 2))))
    assert store.count_positions() == 100
    latest = store.latest_positions(ADMIN)
    assert [p.device_id for p in latest] == [d.id for d in many]
    assert {p.fix_time for p in latest} == {at(2)}


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(st.tuples(st.integers(0, 20), st.booleans()),
                                 max_size=8), min_size=1, max_size=5))
def test_latest_is_newest_non_archive_whatever_the_order(store, batches):
    """Property: after any sequence of batches (with repeats), each fix is stored once
    and the device's position is the newest non-archive fix."""
    device = new_device(store)
    written: dict[int, bool] = {}
    for batch in batches:
        store.write_batch(Batch(positions=tuple(
            position(device.id, minute, archive=archive) for minute, archive in batch)))
        for minute, archive in batch:
            written.setdefault(minute, archive)
    assert store.count_positions(device.id) == len(written)
    current = store.device_by_unique_id(device.unique_id)
    live = [minute for minute, archive in written.items() if not archive]
    if not live:
        assert current.position_id is None
    else:
        [latest] = store.positions_by_ids(ADMIN, [current.position_id])
        assert latest.fix_time == at(max(live))


# -- reading positions and events -----------------------------------------------------


def test_positions_in_range_oldest_first_inclusive(store):
    device = new_device(store)
    store.write_batch(Batch(positions=tuple(position(device.id, m) for m in (5, 1, 3, 9))))
    history = store.positions(ADMIN, device.id, at(1), at(5))
    assert [p.fix_time for p in history] == [at(1), at(3), at(5)]


def test_stored_position_round_trips_every_field(store):
    device = new_device(store)
    new = position(device.id, 1, altitude_m=35.5, speed_kn=12.25, course_deg=271.0,
                   accuracy_m=4.0, attributes={"sat": 7}, network={"radioType": "gsm"})
    store.write_batch(Batch(positions=(new,)))
    [stored] = store.positions(ADMIN, device.id, at(0), at(2))
    assert stored.id > 0
    assert (stored.device_id, stored.protocol, stored.valid, stored.archive) == (
        device.id, "osmand", True, False)
    assert (stored.server_time, stored.device_time, stored.fix_time) == (
        new.server_time, new.device_time, new.fix_time)
    assert (stored.latitude, stored.longitude, stored.altitude_m, stored.speed_kn,
            stored.course_deg, stored.accuracy_m) == (52.5, 13.4, 35.5, 12.25, 271.0, 4.0)
    assert stored.attributes == {"sat": 7} and stored.network == {"radioType": "gsm"}


def test_missing_network_stays_none(store):
    device = new_device(store)
    store.write_batch(Batch(positions=(position(device.id, 1),)))
    assert store.positions(ADMIN, device.id, at(0), at(2))[0].network is None


def test_datetimes_come_back_timezone_aware_utc(store):
    """A fix given in UTC+2 is the same instant read back, in UTC, with microseconds."""
    device = new_device(store)
    fix = dt.datetime(2024, 5, 1, 14, 30, 15, 123456, tzinfo=CEST)
    store.write_batch(Batch(positions=(NewPosition(
        device_id=device.id, protocol="osmand", server_time=fix, device_time=fix,
        fix_time=fix, valid=True, latitude=1.0, longitude=2.0),)))
    [stored] = store.positions(ADMIN, device.id, fix - dt.timedelta(seconds=1),
                               fix + dt.timedelta(seconds=1))
    for value in (stored.fix_time, stored.server_time, stored.device_time):
        assert value == fix
        assert value.utcoffset() == dt.timedelta(0)
        assert value.microsecond == 123456
    assert store.device_by_unique_id(device.unique_id).last_update.tzinfo is not None


def test_naive_datetime_is_refused(store):
    device = new_device(store)
    naive = dt.datetime(2024, 5, 1, 12, 0)
    with pytest.raises(StatementError, match="naive datetime"):
        store.write_batch(Batch(statuses=(StatusUpdate(device.id, naive),)))


def test_json_attributes_keep_their_types(store):
    device = new_device(store)
    attributes = {"int": 7, "float": 12.5, "whole_float": 2.0, "true": True,
                  "false": False, "text": "on", "none": None,
                  "nested": {"list": [1, 2.5, True, "x"]}, "big": 2**53 + 1}
    store.write_batch(Batch(
        positions=(position(device.id, 1, attributes=attributes),),
        events=(NewEvent(device.id, "alarm", at(1), attributes),)))
    [stored] = store.positions(ADMIN, device.id, at(0), at(2))
    [stored_event] = store.events(ADMIN, device.id, at(0), at(2))
    for got in (stored.attributes, stored_event.attributes):
        assert got == attributes
        assert [type(got[k]) for k in attributes] == [type(v) for v in attributes.values()]
        assert [type(v) for v in got["nested"]["list"]] == [int, float, bool, str]


def test_awkward_attribute_values_do_not_fail_the_batch(store):
    """NaN (refused by PostgreSQL's JSON), bytes and datetimes are stored as JSON."""
    device = new_device(store)
    store.write_batch(Batch(positions=(position(device.id, 1, attributes={
        "nan": float("nan"), "raw": b"\x01\xff", "when": at(0)}),)))
    [stored] = store.positions(ADMIN, device.id, at(0), at(2))
    assert stored.attributes == {"nan": None, "raw": "01ff",
                                 "when": "2024-05-01T12:00:00+00:00"}


def test_reads_are_scoped_to_the_users_organisation(store):
    """A member of organisation 2 sees nothing of organisation 1; an admin sees all."""
    second = store.add_organisation("Second")
    ours, theirs = new_device(store, 1), new_device(store, second)
    store.write_batch(Batch(
        positions=(position(ours.id, 1), position(theirs.id, 1)),
        events=(NewEvent(ours.id, "alarm", at(1), {"alarm": "sos"}),
                NewEvent(theirs.id, "alarm", at(1), {"alarm": "sos"}))))
    outsider, insider = member_of(second), member_of(1)
    our_ids = [p.id for p in store.positions(ADMIN, ours.id, at(0), at(2))]

    assert [p.device_id for p in store.latest_positions(outsider)] == [theirs.id]
    assert store.positions(outsider, ours.id, at(0), at(2)) == []
    assert store.positions_by_ids(outsider, our_ids) == []
    assert store.events(outsider, ours.id, at(0), at(2)) == []
    assert [e.device_id for e in store.events(outsider, None, at(0), at(2))] == [theirs.id]

    assert [p.device_id for p in store.latest_positions(insider)] == [ours.id]
    assert [p.id for p in store.positions_by_ids(insider, our_ids)] == our_ids

    assert [p.device_id for p in store.latest_positions(ADMIN)] == [ours.id, theirs.id]
    assert len(store.events(ADMIN, None, at(0), at(2))) == 2


def test_latest_positions_has_one_per_device(store):
    first, second = new_device(store), new_device(store)
    store.write_batch(Batch(positions=(
        position(first.id, 1), position(first.id, 3), position(second.id, 2))))
    latest = store.latest_positions(ADMIN)
    assert [(p.device_id, p.fix_time) for p in latest] == [(first.id, at(3)),
                                                           (second.id, at(2))]


def test_positions_by_ids_skips_unknown_ids_and_orders_by_id(store):
    device = new_device(store)
    store.write_batch(Batch(positions=(position(device.id, 1), position(device.id, 2))))
    ids = [p.id for p in store.positions(ADMIN, device.id, at(0), at(3))]
    got = store.positions_by_ids(ADMIN, [ids[1], 123456, ids[0], ids[1]])
    assert [p.id for p in got] == sorted(ids)
    assert store.positions_by_ids(ADMIN, []) == []


def test_events_in_range_oldest_first(store):
    device = new_device(store)
    store.write_batch(Batch(events=tuple(
        NewEvent(device.id, "deviceMoving", at(m)) for m in (4, 1, 9, 2))))
    assert [e.event_time for e in store.events(ADMIN, device.id, at(1), at(4))] == [
        at(1), at(2), at(4)]
