"""DeviceState: JSON-safe to_json, exact round trip, from_json never raises; geofence stays pure."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geofence.engine import (
    STATE_VERSION,
    DeviceContext,
    DeviceState,
    Engine,
    Fix,
    Profile,
    RuleMemory,
    Visit,
    ZoneRule,
)
from geofence.rules import parse_rule
from geofence.zones import circle

T0 = dt.datetime(2024, 5, 6, 6, 0, 0, 123456, tzinfo=dt.UTC)


def populated() -> DeviceState:
    return DeviceState(
        fix_time=T0, fix_lon=13.4, fix_lat=52.5,
        zones={3: Visit(T0, True), 12: Visit(T0 - dt.timedelta(hours=1))},
        enter_counts={5: 1}, exit_counts={3: 2}, overspeed_since=T0, overspeed_fired=True,
        alarms={"sos", "lowBattery"}, ignition=True, moving=False, motion_since=T0, stop_lon=13.39,
        stop_lat=52.49, idle_since=T0, idle_fired=True, status="online", last_seen=T0, inactive_fired=True,
        rules={7: RuleMemory(T0, True, 0.1 + 0.2), 8: RuleMemory(None, False, -3.5)})


def json_types(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and json_types(v) for k, v in value.items())
    if isinstance(value, list):
        return all(json_types(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


def test_to_json_holds_only_json_types_and_iso_times():
    data = populated().to_json()
    assert json_types(data)
    assert data["version"] == STATE_VERSION
    assert data["fix"] == {"time": "2024-05-06T06:00:00.123456+00:00", "lon": 13.4, "lat": 52.5}
    assert data["alarms"] == ["lowBattery", "sos"]
    json.dumps(data, allow_nan=False)


def test_round_trip_through_json_text_is_exact():
    state = populated()
    again = DeviceState.from_json(json.loads(json.dumps(state.to_json())))
    assert again == state
    assert again.rules[7].last == 0.1 + 0.2
    assert DeviceState.from_json(DeviceState().to_json()) == DeviceState()


def test_times_in_other_zones_are_stored_as_utc():
    state = DeviceState(last_seen=dt.datetime(2024, 5, 6, 8, 0, tzinfo=ZoneInfo("Europe/Berlin")))
    assert state.to_json()["last_seen"] == "2024-05-06T06:00:00+00:00"


def test_garbage_and_other_versions_give_a_fresh_state():
    for garbage in (None, [], "state", 5, {}, {"version": 2, "status": "online"}, {"version": "1"},
                    {"version": True}):
        assert DeviceState.from_json(garbage) == DeviceState(), garbage


def test_missing_and_malformed_fields_take_their_defaults_and_the_rest_is_kept():
    state = DeviceState.from_json({
        "version": STATE_VERSION, "status": "sleeping", "last_seen": "2024-05-06T06:00:00+00:00",
        "fix": {"time": "yesterday", "lon": 1, "lat": 2},
        "zones": {"x": {}, "4": {"since": "2024-05-06T06:00:00"},
                  "5": {"since": "2024-05-06T06:00:00+00:00"}},
        "enter_counts": {"1": -1, "2": 2, "3": True}, "alarms": ["sos", 5], "ignition": "on",
        "motion": {"moving": True, "stop": [1]}, "rules": {"7": {"last": "NaN"}, "8": "x"}})
    assert state.status == "unknown"
    assert state.last_seen == dt.datetime(2024, 5, 6, 6, 0, tzinfo=dt.UTC)
    assert state.fix_time is None and state.fix_lon is None
    assert set(state.zones) == {5}                  # naive and missing times dropped
    assert state.enter_counts == {2: 2}
    assert state.alarms == {"sos"} and state.ignition is None
    assert state.moving is True and state.stop_lon is None
    assert state.rules == {7: RuleMemory(), 8: RuleMemory()}


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=20)
KEYS = st.sampled_from(["fix", "zones", "enter_counts", "exit_counts", "overspeed", "alarms", "ignition",
                        "motion", "idle", "status", "last_seen", "inactive_fired", "rules"])


@settings(max_examples=200, deadline=None)
@given(st.one_of(JSON, st.dictionaries(KEYS, JSON).map(lambda d: {**d, "version": STATE_VERSION})))
def test_from_json_never_raises_and_the_result_serialises(obj):
    state = DeviceState.from_json(obj)
    assert isinstance(state, DeviceState)
    json.dumps(state.to_json(), allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(KEYS, JSON))
def test_a_restored_damaged_state_can_still_be_driven(damage):
    data = {**populated().to_json(), **damage}
    state = DeviceState.from_json(data)
    engine = Engine([ZoneRule(circle(3, "", 13.4, 52.5, 100), dwell_s=60)],
                    [parse_rule({"when": {"attribute": "t", "operator": "dropsBy", "value": 1}}, rule_id=7,
                                organisation_id=1, name="t")])
    ctx = DeviceContext(1, 1, "d", None, frozenset({3, 12}), Profile(inactive_after_s=60), dt.UTC)
    later = T0 + dt.timedelta(hours=2)
    engine.tick(ctx, state, later)
    engine.fix(ctx, state, Fix(later, 13.4, 52.5, speed_kn=20, attributes={"t": 1}), later)
    engine.status(ctx, state, {"alarm": "sos"}, later, later)
    json.dumps(state.to_json(), allow_nan=False)


@pytest.mark.slow   # a fresh interpreter: the e2e env
def test_geofence_imports_only_the_stdlib_shapely_and_pyproj():
    code = ("import sys, geofence, geofence.engine, geofence.rules, geofence.formats, geofence.calendar\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('twisted', 'sqlalchemy', 'tracker', 'protocols', 'web'))\n"
            "print(','.join(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
