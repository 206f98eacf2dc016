"""Unknown-device bookkeeping in SqlStore: batched inserts, the table bound (oldest
dropped), on SQLite and PostGIS through the `store` fixture."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from tracker.models import UnknownDeviceAttempt
from tracker.storage.schema import unknown_devices

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)


def attempts(start: int, count: int) -> list[UnknownDeviceAttempt]:
    """Attempt number i has unique id "imei<i>" and happens i seconds after T0."""
    return [UnknownDeviceAttempt(f"imei{i}", "gt06", f"10.0.0.1:{1000 + i % 50000}",
                                 T0 + dt.timedelta(seconds=i))
            for i in range(start, start + count)]


def row_count(store) -> int:
    with store.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(unknown_devices)).scalar_one()


def stored_ids(store) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.execute(select(unknown_devices.c.unique_id)).scalars())


def test_a_batch_over_the_bound_keeps_the_newest_rows(store):
    store.record_unknown_devices(attempts(0, 10_050), max_rows=10_000)
    assert row_count(store) == 10_000
    assert stored_ids(store) == {f"imei{i}" for i in range(50, 10_050)}


def test_later_batches_drop_the_oldest_rows(store):
    store.record_unknown_devices(attempts(0, 10_000), max_rows=10_000)
    assert row_count(store) == 10_000
    store.record_unknown_devices(attempts(10_000, 50), max_rows=10_000)
    assert row_count(store) == 10_000
    ids = stored_ids(store)
    assert "imei49" not in ids and "imei50" in ids and "imei10049" in ids
    newest = store.unknown_devices(limit=3)
    assert [a.unique_id for a in newest] == ["imei10049", "imei10048", "imei10047"]


def test_a_lowered_bound_trims_at_the_next_write_even_an_empty_one(store):
    store.record_unknown_devices(attempts(0, 30), max_rows=100)
    store.record_unknown_devices([], max_rows=10)
    assert stored_ids(store) == {f"imei{i}" for i in range(20, 30)}


def test_batched_attempts_round_trip_and_long_texts_are_cut(store):
    long = UnknownDeviceAttempt("9" * 300, "p" * 300, "r" * 300, T0 - dt.timedelta(seconds=1))
    store.record_unknown_devices([*attempts(0, 2), long], max_rows=10)
    listed = store.unknown_devices()
    assert [a.unique_id for a in listed] == ["imei1", "imei0", "9" * 128]
    assert listed[0] == attempts(1, 1)[0]
    assert (listed[2].protocol, listed[2].remote_address) == ("p" * 64, "r" * 128)


def test_garbage_text_is_escaped_not_fatal_to_the_batch(store):
    """PostgreSQL takes no NUL in text: escaped, so the other attempts are kept too."""
    garbage = UnknownDeviceAttempt("86\x00\ud800", "gt06", "10.0.0.1:1", T0)
    store.record_unknown_devices([garbage, *attempts(1, 1)], max_rows=10)
    assert stored_ids(store) == {"86\\x00\\ud800", "imei1"}


def test_the_bound_must_be_positive(store):
    with pytest.raises(ValueError, match="max_rows must be >= 1"):
        store.record_unknown_devices(attempts(0, 1), max_rows=0)
    assert row_count(store) == 0
