"""The pipeline: positions, statuses, rule events, rule state, archive flag, plausibility."""

import datetime as dt

from protocols import Position
from tests.tracker.doubles import rule_service
from tracker.models import Device
from tracker.pipeline import build_batch

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
DEVICE = Device(id=7, unique_id="123456789012345", name="truck", organisation_id=1)


def reported(batch):
    """The batch's events except deviceOnline (a fresh state's first report is one)."""
    return tuple(e for e in batch.events if e.type != "deviceOnline")


def fix(minutes_ago=0, **attributes):
    return Position(fix_time=NOW - dt.timedelta(minutes=minutes_ago), valid=True,
                    latitude=52.5, longitude=13.4, speed_kn=10.0, attributes=attributes)


def test_a_fix_becomes_a_position_and_a_status_update():
    batch = build_batch(DEVICE, "gt06", [fix()], rule_service(), NOW)
    assert len(batch.positions) == 1
    stored = batch.positions[0]
    assert (stored.device_id, stored.protocol, stored.server_time) == (7, "gt06", NOW)
    assert stored.device_time == stored.fix_time == NOW
    assert not stored.archive
    assert [s.device_id for s in batch.statuses] == [7]
    assert reported(batch) == ()


def test_an_alarm_becomes_an_event_tied_to_its_fix():
    batch = build_batch(DEVICE, "gt06", [fix(alarm="sos")], rule_service(), NOW)
    (event,) = reported(batch)
    assert (event.type, event.attributes, event.fix_time) == ("alarm", {"alarm": "sos"}, NOW)


def test_a_late_fix_is_archived_and_fires_no_alarm():
    rules = rule_service()
    build_batch(DEVICE, "gt06", [fix(0)], rules, NOW)
    batch = build_batch(DEVICE, "gt06", [fix(30, alarm="sos")], rules, NOW)
    assert batch.positions[0].archive
    assert reported(batch) == ()
    assert rules.is_late(DEVICE, NOW - dt.timedelta(seconds=1))
    assert not rules.is_late(DEVICE, NOW)


def test_the_rule_state_after_the_frame_goes_into_the_batch():
    rules = rule_service()
    batch = build_batch(DEVICE, "gt06", [fix(1), fix(0)], rules, NOW)
    (state,) = batch.states
    assert state.device_id == DEVICE.id
    assert state.state == rules.state(DEVICE).to_json()


def test_a_persisting_alarm_fires_once():
    rules = rule_service()
    first = build_batch(DEVICE, "gt06", [fix(2, alarm="sos")], rules, NOW)
    again = build_batch(DEVICE, "gt06", [fix(1, alarm="sos")], rules, NOW)
    assert [e.type for e in reported(first)] == ["alarm"]
    assert [e.type for e in reported(again)] == []


def test_an_invalid_fix_is_stored_but_moves_no_zone_state():
    rules = rule_service()
    invalid = Position(fix_time=NOW, valid=False, latitude=52.5, longitude=13.4,
                       attributes={"alarm": "sos"})
    batch = build_batch(DEVICE, "gt06", [invalid], rules, NOW)
    assert len(batch.positions) == 1
    assert [e.type for e in reported(batch)] == ["alarm"]
    assert not rules.is_late(DEVICE, NOW - dt.timedelta(hours=1))   # no live fix yet


def test_an_outdated_record_updates_status_only():
    status = Position(fix_time=NOW, valid=False, latitude=0.0, longitude=0.0, outdated=True,
                      attributes={"batteryLevel": 80, "alarm": "lowBattery"})
    batch = build_batch(DEVICE, "gt06", [status], rule_service(), NOW)
    assert batch.positions == ()
    assert batch.statuses[0].attributes == {"batteryLevel": 80, "alarm": "lowBattery"}
    (event,) = reported(batch)
    assert event.attributes == {"alarm": "lowBattery"}
    assert event.fix_time is None


def test_implausible_fixes_are_dropped():
    future = Position(fix_time=NOW + dt.timedelta(hours=26), valid=True, latitude=1, longitude=1)
    off_planet = Position(fix_time=NOW, valid=True, latitude=91.0, longitude=1)
    batch = build_batch(DEVICE, "gt06", [future, off_planet], rule_service(), NOW)
    assert batch.positions == () and batch.statuses == ()


def test_a_command_answer_becomes_a_command_result_event():
    from protocols import CommandResult, Login
    batch = build_batch(DEVICE, "gt06", [Login("x"), CommandResult("RELAY:OK")], rule_service(), NOW)
    (event,) = reported(batch)
    assert (event.type, event.attributes, event.event_time) == ("commandResult", {"result": "RELAY:OK"}, NOW)
    assert batch.positions == ()
