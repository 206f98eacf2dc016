"""The batch writer on a real database (SQLite and PostGIS): a value the database
refuses for good is split out and quarantined, every other frame is stored, and
the writer goes on (hardening, finding 1)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy.exc import DBAPIError

from tests.tracker.doubles import FakeReactor
from tracker.models import Batch, NewPosition, Origin
from tracker.storage.errors import is_transient
from tracker.writer import BatchWriter, Quarantined

T0 = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


def position(device_id: int, second: int, **fields) -> NewPosition:
    values = dict(device_id=device_id, protocol="gt06", server_time=T0, device_time=T0,
                  fix_time=T0 + dt.timedelta(seconds=second), valid=True, latitude=52.5,
                  longitude=13.4)
    values.update(fields)
    return NewPosition(**values)


def run(writer: BatchWriter, batches: list[Batch]) -> list:
    """Submit `batches` together, wait for all; each one's outcome."""
    results: list = [None] * len(batches)
    done = threading.Event()
    deferreds = [writer.submit(b) for b in batches]
    writer.start()

    def record(result, i):
        results[i] = "stored" if result is None else result.type
        if None not in results:
            done.set()
    for i, d in enumerate(deferreds):
        d.addBoth(record, i)
    assert done.wait(30), f"not every batch was settled: {results}"
    return results


def check_refused_row_is_quarantined(store, bad_fields: dict) -> None:
    devices = [store.add_device(f"86000000000000{i}", f"unit {i}") for i in range(6)]
    writer = BatchWriter(store, FakeReactor(), max_delay_s=0.2)
    batches = [Batch(positions=(position(d.id, 0),),
                     origin=Origin("gt06", d.unique_id, "127.0.0.1:4000", bytes([0x78, 0x78, i])))
               for i, d in enumerate(devices)]
    batches[3] = Batch(positions=(position(devices[3].id, 0, **bad_fields),),
                       origin=Origin("gt06", devices[3].unique_id, "127.0.0.1:4000", b"\x78\x78bad"))
    results = run(writer, batches)
    assert results == ["stored"] * 3 + [Quarantined] + ["stored"] * 2
    assert [store.count_positions(d.id) for d in devices] == [1, 1, 1, 0, 1, 1]
    [entry] = store.quarantined()
    assert entry.entry.unique_id == devices[3].unique_id
    assert entry.entry.device_id == devices[3].id
    assert bytes.fromhex(entry.entry.frame_hex) == b"\x78\x78bad"
    assert entry.entry.error
    assert store.quarantine_count() == 1


def test_a_lone_surrogate_in_a_text_column_is_quarantined_and_the_rest_stored(store):
    """No UTF-8 exists for a lone surrogate: both databases refuse it at bind time."""
    check_refused_row_is_quarantined(store, {"protocol": "gt\ud80006"})


@pytest.mark.postgis
def test_a_nul_in_jsonb_is_quarantined_and_the_rest_stored(fresh_postgis_url):
    """PostgreSQL's jsonb refuses \\u0000 (SQLSTATE 22P05), the finding's case."""
    from tracker.storage import SqlStore

    store = SqlStore(fresh_postgis_url)
    store.migrate()
    try:
        check_refused_row_is_quarantined(store, {"attributes": {"note": "a\x00b"}})
        assert "22P05" in store.quarantined()[0].entry.error
    finally:
        store.close()


def test_quarantine_is_listed_newest_first_paged_and_purged(store):
    from tracker.models import QuarantineEntry

    entries = [QuarantineEntry.of(Origin("osmand", f"id{i}", "10.0.0.1:1", b"GET /"),
                                  f"error {i} \ud800", T0 + dt.timedelta(days=i)) for i in range(5)]
    store.write_quarantine(entries)
    listed = store.quarantined(limit=3)
    assert [e.entry.unique_id for e in listed] == ["id4", "id3", "id2"]
    assert "\\ud800" in listed[0].entry.error, "the error text is stored ASCII-safe"
    more = store.quarantined(limit=3, before_id=listed[-1].id)
    assert [e.entry.unique_id for e in more] == ["id1", "id0"]
    assert store.quarantine_entry(listed[0].id).entry.frame_hex == b"GET /".hex()
    assert store.purge_quarantine(received_before=T0 + dt.timedelta(days=2)) == 2
    assert store.purge_quarantine(ids=[listed[0].id]) == 1
    assert store.purge_quarantine() == 2 and store.quarantine_count() == 0


def test_a_stopped_database_is_a_transient_failure(store, tmp_path):
    """What the writer keeps retrying: the server gone (PostGIS) or the file
    unreadable (SQLite) is transient; the data errors above are not."""
    from tracker.storage import SqlStore

    if store.dialect == "postgresql":
        url = store.url.set(port=1)        # nothing listens there
    else:
        (tmp_path / "dir.db").mkdir()      # a directory cannot be opened as a database
        url = f"sqlite:///{tmp_path / 'dir.db'}"
    broken = SqlStore(str(url) if store.dialect != "postgresql" else url.render_as_string(
        hide_password=False))
    with pytest.raises(DBAPIError) as failed:
        broken.write_batch(Batch(positions=(position(1, 0),)))
    assert is_transient(failed.value)
