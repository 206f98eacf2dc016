"""DeviceState: one slice per handler, JSON-safe to_json, exact round trip, from_json never raises
(versions 1 and 2); geofence stays pure."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geofence.chain import Handler, Slice
from geofence.engine import STATE_VERSION, DeviceContext, DeviceState, Engine, Fix, Profile, ZoneRule
from geofence.handlers import (
    AlarmHandler,
    GeofenceHandler,
    IgnitionHandler,
    MotionHandler,
    OverspeedHandler,
    StatusHandler,
    UserRulesHandler,
)
from geofence.handlers.alarms import ActiveAlarms
from geofence.handlers.geofences import Membership, Visit
from geofence.handlers.idle import Idle
from geofence.handlers.ignition import Ignition
from geofence.handlers.inactive import Inactivity
from geofence.handlers.motion import Motion
from geofence.handlers.overspeed import Overspeed
from geofence.handlers.status import Presence
from geofence.handlers.user_rules import RuleMemories, RuleMemory
from geofence.rules import parse_rule
from geofence.state import chain_of
from geofence.zones import circle

T0 = dt.datetime(2024, 5, 6, 6, 0, 0, 123456, tzinfo=dt.UTC)


def populated() -> DeviceState:
    state = DeviceState(fix_time=T0, fix_lon=13.4, fix_lat=52.5)
    state.slices.update({
        "status": Presence("online", T0), "inactive": Inactivity(True),
        "alarms": ActiveAlarms({"sos", "lowBattery"}), "ignition": Ignition(True),
        "geofences": Membership({3: Visit(T0, True), 12: Visit(T0 - dt.timedelta(hours=1))}, {5: 1}, {3: 2}),
        "overspeed": Overspeed(T0, True), "motion": Motion(False, T0, 13.39, 52.49), "idle": Idle(T0, True),
        "rules": RuleMemories({7: RuleMemory(T0, True, 0.1 + 0.2), 8: RuleMemory(None, False, -3.5)})})
    return state


def json_types(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and json_types(v) for k, v in value.items())
    if isinstance(value, list):
        return all(json_types(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


def test_to_json_holds_only_json_types_and_iso_times_one_key_per_handler():
    data = populated().to_json()
    assert json_types(data)
    assert data["version"] == STATE_VERSION == 2
    assert data["fix"] == {"time": "2024-05-06T06:00:00.123456+00:00", "lon": 13.4, "lat": 52.5}
    assert data["alarms"] == {"active": ["lowBattery", "sos"]}
    assert set(data) == {"version", "fix"} | {handler.name for handler in chain_of()}
    json.dumps(data, allow_nan=False)


def test_fresh_slices_are_not_stored_and_do_not_count_for_equality():
    state = DeviceState()
    state.slice(OverspeedHandler)
    state.slice(StatusHandler).status = "online"
    assert state.to_json() == {"version": STATE_VERSION, "fix": None,
                               "status": {"status": "online", "last_seen": None}}
    state.slice(StatusHandler).status = "unknown"
    assert state == DeviceState() and state.to_json() == DeviceState().to_json()
    state.slice(IgnitionHandler).on = False
    assert state != DeviceState()


def test_round_trip_through_json_text_is_exact():
    state = populated()
    again = DeviceState.from_json(json.loads(json.dumps(state.to_json())))
    assert again == state
    assert again.slice(UserRulesHandler).by_rule[7].last == 0.1 + 0.2
    assert DeviceState.from_json(DeviceState().to_json()) == DeviceState()


def test_times_in_other_zones_are_stored_as_utc():
    state = DeviceState()
    state.slice(StatusHandler).last_seen = dt.datetime(2024, 5, 6, 8, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert state.to_json()["status"]["last_seen"] == "2024-05-06T06:00:00+00:00"


def test_garbage_and_other_versions_give_a_fresh_state():
    for garbage in (None, [], "state", 5, {}, {"version": 3, "status": {"status": "online"}},
                    {"version": 2, "status": "online"}, {"version": "1"}, {"version": True},
                    {"version": 1.0, "status": "online"}):
        assert DeviceState.from_json(garbage) == DeviceState(), garbage


def test_missing_and_malformed_fields_take_their_defaults_and_the_rest_is_kept():
    state = DeviceState.from_json({
        "version": STATE_VERSION, "status": {"status": "sleeping", "last_seen": "2024-05-06T06:00:00+00:00"},
        "fix": {"time": "yesterday", "lon": 1, "lat": 2},
        "geofences": {"visits": {"x": {}, "4": {"since": "2024-05-06T06:00:00"},
                                 "5": {"since": "2024-05-06T06:00:00+00:00"}},
                      "enter_counts": {"1": -1, "2": 2, "3": True}},
        "alarms": {"active": ["sos", 5]}, "ignition": {"on": "on"},
        "motion": {"moving": True, "stop": [1]}, "rules": {"7": {"last": "NaN"}, "8": "x"},
        "someone_else": {"x": 1}})
    assert state.slice(StatusHandler) == Presence("unknown", dt.datetime(2024, 5, 6, 6, 0, tzinfo=dt.UTC))
    assert state.fix_time is None and state.fix_lon is None
    membership = state.slice(GeofenceHandler)
    assert set(membership.visits) == {5}                  # naive and missing times dropped
    assert membership.enter_counts == {2: 2}
    assert state.slice(AlarmHandler).active == {"sos"} and state.slice(IgnitionHandler).on is None
    assert state.slice(MotionHandler) == Motion(moving=True)
    assert state.slice(UserRulesHandler).by_rule == {7: RuleMemory(), 8: RuleMemory()}
    assert "someone_else" not in state.slices and "someone_else" not in state.to_json()


def test_version_1_fields_are_read_as_before():
    """The old flat layout, damaged as in the version-1 test: the same defaults."""
    state = DeviceState.from_json({
        "version": 1, "status": "sleeping", "last_seen": "2024-05-06T06:00:00+00:00",
        "fix": {"time": "yesterday", "lon": 1, "lat": 2},
        "zones": {"x": {}, "4": {"since": "2024-05-06T06:00:00"},
                  "5": {"since": "2024-05-06T06:00:00+00:00"}},
        "enter_counts": {"1": -1, "2": 2, "3": True}, "alarms": ["sos", 5], "ignition": "on",
        "motion": {"moving": True, "stop": [1]}, "rules": {"7": {"last": "NaN"}, "8": "x"}})
    assert state.slice(StatusHandler) == Presence("unknown", dt.datetime(2024, 5, 6, 6, 0, tzinfo=dt.UTC))
    assert state.fix_time is None
    assert set(state.slice(GeofenceHandler).visits) == {5}
    assert state.slice(GeofenceHandler).enter_counts == {2: 2}
    assert state.slice(AlarmHandler).active == {"sos"} and state.slice(IgnitionHandler).on is None
    assert state.slice(MotionHandler) == Motion(moving=True)
    assert state.slice(UserRulesHandler).by_rule == {7: RuleMemory(), 8: RuleMemory()}


def test_a_slice_reader_that_raises_gives_that_slice_its_default():
    class Broken(Slice):
        @classmethod
        def from_json(cls, obj):
            raise ValueError("boom")

    class BrokenHandler(Handler[Broken]):
        name, slice_type = "broken", Broken

    state = DeviceState.from_json({"version": STATE_VERSION, "broken": {}, "ignition": {"on": True}},
                                  handlers=(IgnitionHandler, BrokenHandler))
    assert "broken" not in state.slices and state.slice(IgnitionHandler).on is True


V1_KEYS = ["fix", "zones", "enter_counts", "exit_counts", "overspeed", "alarms", "ignition", "motion", "idle",
           "status", "last_seen", "inactive_fired", "rules"]
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=20)
KEYS = st.sampled_from(sorted({"fix", *V1_KEYS, *(handler.name for handler in chain_of())}))


@settings(max_examples=200, deadline=None)
@given(st.one_of(JSON, st.tuples(st.sampled_from([1, STATE_VERSION]), st.dictionaries(KEYS, JSON)).map(
    lambda pair: {**pair[1], "version": pair[0]})))
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
