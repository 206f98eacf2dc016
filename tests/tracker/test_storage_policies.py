"""The domain decisions storage applies (`tracker.policies`): pure functions, and
the store applying them inside `write_batch` / rule writes (SQLite and PostGIS)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from tests.tracker.test_storage import at, new_device
from tracker import policies
from tracker.models import Batch, NewEvent
from tracker.policies import CommandAnswer, CommandResult, RuleReferences
from tracker.ports import InUseError
from tracker.storage.schema import notification_outbox

T = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


# -- outbox ------------------------------------------------------------------------------


def test_every_event_but_command_results_is_notified():
    assert policies.notifies("alarm") and policies.notifies("geofenceEnter")
    assert policies.notifies("sensorThreshold")
    assert not policies.notifies("commandResult")


def test_write_batch_puts_notified_events_in_the_outbox(store):
    device = new_device(store)
    store.write_batch(Batch(events=(NewEvent(device.id, "alarm", at(1), {"alarm": "sos"}),
                                    NewEvent(device.id, "commandResult", at(2), {"result": "OK"}),
                                    NewEvent(device.id, "deviceMoving", at(3)))))
    with store.engine.connect() as conn:
        rows = conn.execute(select(notification_outbox.c.event_id)).scalars().all()
    stored = {e.id: e.type for e in store.events(None, device.id, at(0), at(4))}
    assert sorted(stored[event_id] for event_id in rows) == ["alarm", "deviceMoving"]


# -- command answers -----------------------------------------------------------------------


def test_each_result_answers_its_devices_oldest_sent_command():
    results = [CommandResult(1, T, {"result": "A"}), CommandResult(2, T, {"result": "B"}),
               CommandResult(1, T, {"result": "C"}), CommandResult(1, T, {"result": "D"})]
    answers = policies.answer_commands(results, {1: [30, 10], 2: [5]})
    assert answers == [CommandAnswer(10, T, "A"), CommandAnswer(5, T, "B"),
                       CommandAnswer(30, T, "C")], "D finds no sent command left"


def test_a_result_without_a_sent_command_answers_nothing():
    assert policies.answer_commands([CommandResult(7, T, {"result": "x"})], {}) == []
    assert policies.answer_commands([CommandResult(7, T, {"result": "x"})], {7: []}) == []


def test_result_text_is_stringified_and_cut():
    (answer,) = policies.answer_commands([CommandResult(1, T, {"result": "x" * 5000})], {1: [1]})
    assert answer.result == "x" * policies.MAX_RESULT_CHARS
    (answer,) = policies.answer_commands([CommandResult(1, T, {})], {1: [1]})
    assert answer.result == ""
    (answer,) = policies.answer_commands([CommandResult(1, T, {"result": 42})], {1: [1]})
    assert answer.result == "42"


def test_two_results_in_one_batch_answer_the_two_oldest_in_order(store):
    device = new_device(store)
    first, second, third = (store.queue_command(device.id, "custom", {"data": n}, T)
                            for n in "abc")
    for command in (first, second, third):
        store.mark_command(command.id, "sent", T)
    store.write_batch(Batch(events=(
        NewEvent(device.id, "commandResult", at(1), {"result": "one"}),
        NewEvent(device.id, "commandResult", at(2), {"result": "two"}))))
    by_id = {c.id: c for c in store.commands(None, device.id)}
    assert [(by_id[c.id].status, by_id[c.id].result) for c in (first, second, third)] == [
        ("answered", "one"), ("answered", "two"), ("sent", None)]
    assert by_id[first.id].result_time == at(1)


# -- rule references --------------------------------------------------------------------------


@pytest.mark.parametrize(("definition", "expected"), [
    ({"when": {"event": "geofenceEnter"}, "zone": 3, "calendar": 4},
     RuleReferences(frozenset({3}), frozenset({4}))),
    ({"when": {"event": "geofenceExit", "value": 8}}, RuleReferences(frozenset({8}))),
    ({"when": {"event": "geofenceDwell", "value": 8}, "zone": 9},
     RuleReferences(frozenset({8, 9}))),
    ({"when": {"event": "alarm", "value": "sos"}}, RuleReferences()),
    ({"when": {"attribute": "fuel", "operator": "<", "value": 5}, "calendar": 2},
     RuleReferences(calendars=frozenset({2}))),
])
def test_references_of_valid_definitions(definition, expected):
    assert policies.rule_references(definition) == expected
    assert policies._lenient_references(definition) == expected, "both readings agree"


@pytest.mark.parametrize(("definition", "expected"), [
    ({}, RuleReferences()),
    ({"zone": [1, 2, True], "extra": {"calendar": 5}},
     RuleReferences(frozenset({1, 2}), frozenset({5}))),
    ({"when": {"event": "geofenceEnter", "value": [6, 7]}}, RuleReferences(frozenset({6, 7}))),
    ({"when": {"event": "geofenceEnter"}, "zone": 0}, RuleReferences(frozenset({0}))),
])
def test_references_of_definitions_that_do_not_parse_err_towards_referenced(definition,
                                                                            expected):
    assert policies.rule_references(definition) == expected


def test_a_zone_named_by_an_unparseable_rule_cannot_be_deleted(store):
    zone = store.add_geofence(None, "Yard", {"type": "Feature", "properties": {},
                                             "geometry": {"type": "Point",
                                                          "coordinates": [13.4, 52.5]}})
    store.add_rule(None, "legacy", {"zone": [zone.id], "when": "not an object"})
    with pytest.raises(InUseError, match=f"geofence {zone.id} is used by rule"):
        store.delete_geofence(None, zone.id)
