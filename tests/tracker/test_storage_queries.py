"""Targeted reads: one visible device, capped / paged / streamed history.  On SQLite
and on PostGIS (the `store` fixture)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from sqlalchemy import event

from tests.tracker.test_storage import ADMIN, at, member_of, new_device, position
from tracker.models import Batch
from tracker.ports import DEFAULT_HISTORY_LIMIT, PositionCursor
from tracker.storage import SqlStore


@contextlib.contextmanager
def statements(store: SqlStore, parameters: list[list] | None = None) -> Iterator[list[str]]:
    """The SELECT statements the store sends while the block runs (and, into
    `parameters`, their bound values)."""
    sent: list[str] = []

    def record(conn, cursor, statement, bound, *_context) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append(statement)
            if parameters is not None:
                parameters.append(list(bound.values() if isinstance(bound, dict) else bound))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


def history(store: SqlStore, minutes) -> int:
    device = new_device(store)
    store.write_batch(Batch(positions=tuple(position(device.id, m) for m in minutes)))
    return device.id


# -- visible_device ---------------------------------------------------------------------


def test_visible_device_is_scoped_like_devices(store):
    """Own organisation's device: found; another organisation's or a missing id: None;
    administrators and the CLI (None) see every device."""
    second = store.add_organisation("Second")
    ours, theirs = new_device(store, 1), new_device(store, second)
    insider = member_of(1)
    assert store.visible_device(insider, ours.id) == ours
    assert store.visible_device(insider, theirs.id) is None
    assert store.visible_device(member_of(second), theirs.id) == theirs
    assert store.visible_device(ADMIN, theirs.id) == theirs
    assert store.visible_device(None, theirs.id) == theirs
    assert store.visible_device(ADMIN, theirs.id + 1000) is None
    # The same answers as filtering the full list (what callers did before).
    for user in (insider, member_of(second), ADMIN):
        for device in (ours, theirs):
            expected = next((d for d in store.devices(user) if d.id == device.id), None)
            assert store.visible_device(user, device.id) == expected


def test_visible_device_reads_one_row_not_the_fleet(store):
    """One SELECT that names the device id, however many devices the user sees."""
    devices = [new_device(store) for _ in range(20)]
    with statements(store) as sent:
        found = store.visible_device(member_of(1), devices[7].id)
    assert found == devices[7]
    assert len(sent) == 1
    assert "devices.id =" in sent[0]


# -- positions: the cap ------------------------------------------------------------------


def test_positions_with_limit_returns_the_oldest_that_many(store):
    device_id = history(store, [5, 1, 3, 9, 7])
    capped = store.positions(ADMIN, device_id, at(0), at(10), limit=3)
    assert [p.fix_time for p in capped] == [at(1), at(3), at(5)]
    assert len(store.positions(ADMIN, device_id, at(0), at(10))) == 5


def test_positions_default_cap_is_applied_in_the_query(store):
    """Without `limit` at most DEFAULT_HISTORY_LIMIT rows are asked for (the cap is the
    statement's LIMIT, not applied after reading everything)."""
    device_id = history(store, [1, 2])
    bound: list[list] = []
    with statements(store, bound) as sent:
        assert len(store.positions(ADMIN, device_id, at(0), at(3))) == 2
    assert len(sent) == 1 and "LIMIT" in sent[0].upper()
    assert DEFAULT_HISTORY_LIMIT + 1 in bound[0]   # one more: is there a next page?
    assert DEFAULT_HISTORY_LIMIT >= 10_000


# -- positions_page: keyset pagination ----------------------------------------------------


def test_pages_cover_the_range_once_in_order(store):
    minutes = [9, 1, 4, 2, 7, 3, 8]
    device_id = history(store, minutes)
    seen, cursor, pages = [], None, 0
    while True:
        page = store.positions_page(ADMIN, device_id, at(2), at(8), limit=2, after=cursor)
        pages += 1
        assert len(page.positions) <= 2
        seen += page.positions
        if page.next is None:
            break
        assert page.next == PositionCursor(page.positions[-1].fix_time, page.positions[-1].id)
        cursor = page.next
    assert [p.fix_time for p in seen] == [at(m) for m in (2, 3, 4, 7, 8)]
    assert pages == 3
    assert [p.id for p in seen] == [p.id for p in store.positions(ADMIN, device_id, at(2), at(8))]


def test_a_full_last_page_says_there_is_no_next(store):
    """Exactly `limit` rows left: that page is the last (no empty page after it)."""
    device_id = history(store, [1, 2, 3, 4])
    first = store.positions_page(ADMIN, device_id, at(0), at(5), limit=2)
    second = store.positions_page(ADMIN, device_id, at(0), at(5), limit=2, after=first.next)
    assert first.next is not None and len(second.positions) == 2
    assert second.next is None
    assert store.positions_page(ADMIN, device_id, at(6), at(7)).positions == []


def test_a_page_after_the_cursor_is_stable_under_inserts(store):
    """Rows inserted before the cursor meanwhile do not shift the next page (no
    OFFSET); rows after it appear."""
    device_id = history(store, [1, 2, 3, 4])
    first = store.positions_page(ADMIN, device_id, at(0), at(10), limit=2)
    store.write_batch(Batch(positions=(position(device_id, 1.5), position(device_id, 5))))
    rest = store.positions_page(ADMIN, device_id, at(0), at(10), limit=10, after=first.next)
    assert [p.fix_time for p in rest.positions] == [at(3), at(4), at(5)]


def test_pages_are_scoped_and_limit_is_checked(store):
    second = store.add_organisation("Second")
    device = new_device(store, 1)
    store.write_batch(Batch(positions=(position(device.id, 1),)))
    page = store.positions_page(member_of(second), device.id, at(0), at(2))
    assert page.positions == [] and page.next is None
    assert list(store.iter_positions(member_of(second), device.id, at(0), at(2))) == []
    with pytest.raises(ValueError):
        store.positions_page(ADMIN, device.id, at(0), at(2), limit=0)


# -- iter_positions: streaming ---------------------------------------------------------------


def test_iter_positions_streams_every_position_in_pages(store):
    """All positions, oldest first, read `page_size` rows per query: memory stays
    bounded by the page, not the history."""
    minutes = list(range(11))
    device_id = history(store, minutes)
    with statements(store) as sent:
        stream = store.iter_positions(ADMIN, device_id, at(0), at(20), page_size=3)
        first = next(stream)
        assert len(sent) == 1, "the first page is read lazily, alone"
        rest = list(stream)
    assert [p.fix_time for p in [first, *rest]] == [at(m) for m in minutes]
    assert len(sent) == 4   # 3 + 3 + 3 + 2 rows
    assert all("LIMIT" in s.upper() for s in sent)
