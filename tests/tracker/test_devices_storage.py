"""Devices in the store: create with group and settings, delete with what is theirs,
the filtered / paged list done in SQL, accumulators on the latest position.  On
SQLite and on PostGIS (the `store` fixture)."""

from __future__ import annotations

import pytest

from tests.tracker.test_storage import ADMIN, member_of, position
from tests.tracker.test_storage_queries import statements
from tracker.models import Batch, NewEvent
from tracker.ports import DuplicateError, NoPositionError, NotFoundError
from tracker.storage import SqlStore


@pytest.fixture
def fleet(store: SqlStore):
    """Organisation 1: "Truck 1" (a), "truck 2" (b), "Van_%" (c); another: "Truck 9" (d)."""
    other = store.add_organisation("other")
    a = store.add_device("100001", "Truck 1")
    b = store.add_device("100002", "truck 2")
    c = store.add_device("200003", "Van_%")
    d = store.add_device("900004", "Truck 9", other)
    return other, a, b, c, d


def ids(devices) -> list[int]:
    return [device.id for device in devices]


def test_add_device_with_group_and_settings(store):
    group = store.add_group(None, "Vans")
    device = store.add_device("42", "Van", None, group_id=group.id,
                              attributes={"speedLimit": 40.0})
    assert (device.group_id, dict(device.attributes)) == (group.id, {"speedLimit": 40.0})
    assert store.visible_device(None, device.id) == device


def test_add_device_refuses_a_group_of_another_organisation_and_stores_nothing(store):
    other = store.add_organisation("other")
    foreign = store.add_group(None, "Theirs", organisation_id=other)
    revision = store.config_revision()
    with pytest.raises(NotFoundError):
        store.add_device("42", "Van", None, group_id=foreign.id)
    assert store.device_by_unique_id("42") is None
    assert store.config_revision() == revision


def test_add_device_duplicate_unique_id(store):
    store.add_device("42", "Van")
    with pytest.raises(DuplicateError):
        store.add_device("42", "Other van", store.add_organisation("other"))


def test_keyword_matches_name_or_unique_id_case_insensitively(store, fleet):
    other, a, b, c, d = fleet
    assert ids(store.devices(None, keyword="TRUCK")) == [a.id, b.id, d.id]
    assert ids(store.devices(None, keyword="0000")) == [a.id, b.id, c.id, d.id]
    assert ids(store.devices(None, keyword="20000")) == [c.id]
    assert ids(store.devices(member_of(other), keyword="truck")) == [d.id]


def test_keyword_wildcards_are_literal(store, fleet):
    _, _, _, c, _ = fleet
    assert ids(store.devices(None, keyword="_%")) == [c.id]
    assert ids(store.devices(None, keyword="%")) == [c.id]
    assert store.devices(None, keyword="k_1") == []


def test_limit_and_offset_page_by_id_after_the_filters(store, fleet):
    other, a, b, c, d = fleet
    assert ids(store.devices(None, limit=2)) == [a.id, b.id]
    assert ids(store.devices(None, limit=2, offset=2)) == [c.id, d.id]
    assert ids(store.devices(None, offset=3)) == [d.id]
    assert store.devices(None, offset=4) == []
    assert ids(store.devices(None, keyword="truck", limit=1, offset=1)) == [b.id]
    member = member_of(1)
    assert ids(store.devices(member, limit=10)) == [a.id, b.id, c.id]
    assert ids(store.devices(member, offset=2, limit=5)) == [c.id]


def test_ids_and_unique_ids_are_a_union_within_what_is_visible(store, fleet):
    other, a, b, c, d = fleet
    member = member_of(1)
    assert ids(store.devices(member, ids=[a.id, d.id], unique_ids=["200003", "900004"])) == [
        a.id, c.id]
    assert ids(store.devices(None, ids=[d.id], unique_ids=["100002"], keyword="truck")) == [
        b.id, d.id]
    assert ids(store.devices(None, ids=[a.id, b.id, c.id], limit=1, offset=1)) == [b.id]


def test_filters_and_paging_are_sql_not_a_full_read(store, fleet):
    parameters: list[list] = []
    with statements(store, parameters) as sent:
        store.devices(None, keyword="truck", limit=1, offset=1)
    (statement,) = sent
    assert "LIMIT" in statement.upper() and "OFFSET" in statement.upper()
    assert "LIKE" in statement.upper()


def test_delete_device_removes_it_and_what_is_its(store, fleet):
    other, a, b, c, d = fleet
    store.write_batch(Batch(positions=(position(a.id, 1), position(b.id, 1)),
                            events=(NewEvent(a.id, "deviceOnline", position(a.id, 1).fix_time),)))
    store.queue_command(a.id, "engineStop", {}, position(a.id, 1).fix_time)
    revision = store.config_revision()
    store.delete_device(member_of(1), a.id)
    assert store.visible_device(None, a.id) is None
    assert store.count_positions(a.id) == 0 and store.count_positions(b.id) == 1
    assert store.commands(None, a.id) == []
    assert a.id not in ids(store.rule_config().devices)
    assert store.config_revision() > revision


def test_delete_device_of_another_organisation_is_not_found_and_keeps_it(store, fleet):
    other, a, b, c, d = fleet
    with pytest.raises(NotFoundError):
        store.delete_device(member_of(1), d.id)
    with pytest.raises(NotFoundError):
        store.delete_device(ADMIN, 10 ** 9)
    assert store.visible_device(None, d.id) == d
    store.delete_device(ADMIN, d.id)
    assert store.visible_device(None, d.id) is None


def test_accumulators_are_set_on_the_latest_position(store, fleet):
    _, a, _, _, _ = fleet
    store.write_batch(Batch(positions=(position(a.id, 1, attributes={"hours": 5, "sat": 7}),
                                       position(a.id, 2, attributes={"sat": 8}))))
    latest = store.visible_device(None, a.id).position_id
    store.set_accumulators(member_of(1), a.id, total_distance_m=12345.5, hours_ms=3_600_000)
    (stored,) = store.positions_by_ids(ADMIN, [latest])
    assert dict(stored.attributes) == {"sat": 8, "totalDistance": 12345.5, "hours": 3_600_000}
    store.set_accumulators(None, a.id, hours_ms=7_200_000)   # the other stays
    (stored,) = store.positions_by_ids(ADMIN, [latest])
    assert (stored.attributes["totalDistance"], stored.attributes["hours"]) == (12345.5, 7_200_000)
    (first,) = [p for p in store.positions(ADMIN, a.id, position(a.id, 0).fix_time,
                                           position(a.id, 3).fix_time) if p.id != latest]
    assert dict(first.attributes) == {"hours": 5, "sat": 7}   # history untouched


def test_accumulators_need_a_visible_device_with_a_position(store, fleet):
    _, a, _, _, d = fleet
    with pytest.raises(NoPositionError):
        store.set_accumulators(None, a.id, total_distance_m=1.0)
    store.write_batch(Batch(positions=(position(d.id, 1),)))
    with pytest.raises(NotFoundError):
        store.set_accumulators(member_of(1), d.id, total_distance_m=1.0)
    (stored,) = store.positions_by_ids(ADMIN, [store.visible_device(None, d.id).position_id])
    assert "totalDistance" not in stored.attributes
