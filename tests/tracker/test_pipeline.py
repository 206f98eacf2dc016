"""The pipeline: positions, statuses, alarms, archive flag, plausibility."""

import datetime as dt

from protocols import Position
from tracker.models import Device
from tracker.pipeline import DeviceTrack, build_batch

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)
DEVICE = Device(id=7, unique_id="123456789012345", name="truck", organisation_id=1)


def fix(minutes_ago=0, **attributes):
    return Position(fix_time=NOW - dt.timedelta(minutes=minutes_ago), valid=True,
                    latitude=52.5, longitude=13.4, speed_kn=10.0, attributes=attributes)


def test_a_fix_becomes_a_position_and_a_status_update():
    batch = build_batch(DEVICE, "gt06", [fix()], DeviceTrack(), NOW)
    assert len(batch.positions) == 1
    stored = batch.positions[0]
    assert (stored.device_id, stored.protocol, stored.server_time) == (7, "gt06", NOW)
    assert stored.device_time == stored.fix_time == NOW
    assert not stored.archive
    assert [s.device_id for s in batch.statuses] == [7]
    assert batch.events == ()


def test_an_alarm_becomes_an_event_tied_to_its_fix():
    batch = build_batch(DEVICE, "gt06", [fix(alarm="sos")], DeviceTrack(), NOW)
    (event,) = batch.events
    assert (event.type, event.attributes, event.fix_time) == ("alarm", {"alarm": "sos"}, NOW)


def test_a_late_fix_is_archived_and_fires_no_alarm():
    track = DeviceTrack()
    build_batch(DEVICE, "gt06", [fix(0)], track, NOW)
    batch = build_batch(DEVICE, "gt06", [fix(30, alarm="sos")], track, NOW)
    assert batch.positions[0].archive
    assert batch.events == ()
    assert track.latest_fix == NOW


def test_an_outdated_record_updates_status_only():
    status = Position(fix_time=NOW, valid=False, latitude=0.0, longitude=0.0, outdated=True,
                      attributes={"batteryLevel": 80, "alarm": "lowBattery"})
    batch = build_batch(DEVICE, "gt06", [status], DeviceTrack(), NOW)
    assert batch.positions == ()
    assert batch.statuses[0].attributes == {"batteryLevel": 80, "alarm": "lowBattery"}
    assert batch.events[0].attributes == {"alarm": "lowBattery"}
    assert batch.events[0].fix_time is None


def test_implausible_fixes_are_dropped():
    future = Position(fix_time=NOW + dt.timedelta(hours=26), valid=True, latitude=1, longitude=1)
    off_planet = Position(fix_time=NOW, valid=True, latitude=91.0, longitude=1)
    batch = build_batch(DEVICE, "gt06", [future, off_planet], DeviceTrack(), NOW)
    assert batch.positions == () and batch.statuses == ()


def test_a_command_answer_becomes_a_command_result_event():
    from protocols import CommandResult, Login
    batch = build_batch(DEVICE, "gt06", [Login("x"), CommandResult("RELAY:OK")], DeviceTrack(), NOW)
    (event,) = batch.events
    assert (event.type, event.attributes, event.event_time) == ("commandResult", {"result": "RELAY:OK"}, NOW)
    assert batch.positions == ()
