"""Engine properties (Hypothesis): membership agrees with brute force, restarts are invisible,
retransmissions fire nothing."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geofence.calendar import Calendar
from geofence.engine import DeviceContext, DeviceState, Engine, Fix, Profile, ZoneRule
from geofence.handlers import GeofenceHandler
from geofence.rules import parse_rule
from geofence.zones import circle, from_geojson, from_wkt

BERLIN = ZoneInfo("Europe/Berlin")
T0 = dt.datetime(2024, 5, 6, 5, 0, tzinfo=dt.UTC)   # Monday 07:00 in Berlin
LON0, LAT0, STEP = 13.40, 52.50, 0.0025             # a grid whose lines are zone edges


def _square(zone_id: int, i0: int, j0: int, i1: int, j1: int):
    x0, y0, x1, y1 = LON0 + i0 * STEP, LAT0 + j0 * STEP, LON0 + i1 * STEP, LAT0 + j1 * STEP
    return from_wkt(f"POLYGON (({x0} {y0}, {x1} {y0}, {x1} {y1}, {x0} {y1}, {x0} {y0}))", zone_id)


ZONES = [
    _square(1, 0, 0, 4, 4),
    _square(2, 2, 2, 8, 6),
    _square(3, 6, 0, 7, 1),                                   # small, easy to jump over
    circle(4, "", LON0 + 10 * STEP, LAT0 + 4 * STEP, 300),
    circle(5, "", LON0 + 12 * STEP, LAT0 + 2 * STEP, 20),      # tiny
    from_geojson({"type": "Polygon", "coordinates": [          # with a hole
        [[LON0 + 12 * STEP, LAT0 + 4 * STEP], [LON0 + 16 * STEP, LAT0 + 4 * STEP],
         [LON0 + 16 * STEP, LAT0 + 8 * STEP], [LON0 + 12 * STEP, LAT0 + 8 * STEP],
         [LON0 + 12 * STEP, LAT0 + 4 * STEP]],
        [[LON0 + 13 * STEP, LAT0 + 5 * STEP], [LON0 + 15 * STEP, LAT0 + 5 * STEP],
         [LON0 + 15 * STEP, LAT0 + 7 * STEP], [LON0 + 13 * STEP, LAT0 + 7 * STEP],
         [LON0 + 13 * STEP, LAT0 + 5 * STEP]]]}, 6),
]
ZONE_IDS = [zone.id for zone in ZONES]

# grid points (often exactly on an edge) and points between grid lines
POINTS = st.tuples(st.integers(-1, 17), st.integers(-1, 9), st.sampled_from([0.0, 0.3, 0.5, 0.999])).map(
    lambda p: (LON0 + (p[0] + p[2]) * STEP, LAT0 + (p[1] + p[2] / 2) * STEP))
GAPS = st.integers(1, 1200)


def _context(zone_ids, profile: Profile | None = None) -> DeviceContext:
    return DeviceContext(7, 1, "Van 7", 4, frozenset(zone_ids), profile or Profile(), BERLIN)


# --- (1) membership ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(walk=st.lists(st.tuples(POINTS, GAPS), min_size=1, max_size=30),
       assigned=st.sets(st.sampled_from(ZONE_IDS), min_size=1))
def test_enter_and_exit_alternate_and_membership_matches_brute_force(walk, assigned):
    engine = Engine([ZoneRule(zone) for zone in ZONES])
    ctx, state = _context(assigned), DeviceState()
    events: dict[int, list[str]] = {}
    time = T0
    for (lon, lat), gap in walk:
        time += dt.timedelta(seconds=gap)
        for happening in engine.fix(ctx, state, Fix(time, lon, lat), time):
            if happening.type in ("geofenceEnter", "geofenceExit"):
                events.setdefault(happening.geofence_id, []).append(happening.type)
    for zone_id, kinds in events.items():
        assert zone_id in assigned
        assert kinds[::2] == ["geofenceEnter"] * len(kinds[::2])
        assert kinds[1::2] == ["geofenceExit"] * len(kinds[1::2])
    last = shapely.Point(*walk[-1][0])
    brute_force = {zone.id for zone in ZONES if zone.geometry.covers(last)} & assigned
    assert set(state.slice(GeofenceHandler).visits) == brute_force
    assert {z for z, kinds in events.items() if kinds[-1] == "geofenceEnter"} == brute_force


# --- a busy configuration for the restart and retransmission properties --------------------------

OFFICE = Calendar.from_json({"intervals": [{"days": ["mon", "tue", "wed", "thu", "fri"],
                                            "from": "08:00", "to": "17:00"}]})
BUSY_ZONES = [ZoneRule(ZONES[0], dwell_s=600, speed_limit_kn=20),
              ZoneRule(ZONES[1], calendar=OFFICE, hysteresis_m=30, hysteresis_fixes=1),
              ZoneRule(ZONES[2]), ZoneRule(ZONES[3], dwell_s=120, calendar=OFFICE),
              ZoneRule(ZONES[4], speed_limit_kn=5), ZoneRule(ZONES[5])]
BUSY_RULES = [parse_rule(definition, rule_id=rule_id, organisation_id=1, name=f"rule {rule_id}") for
              rule_id, definition in [
                  (1, {"when": {"attribute": "temp", "operator": ">", "value": 8, "for": 120}, "zone": 2}),
                  (2, {"when": {"attribute": "fuel", "operator": "dropsBy", "value": 10}}),
                  (3, {"when": {"event": "alarm", "value": "sos"},
                       "then": {"type": "alarm", "alarm": "panic"}}),
                  (4, {"when": {"event": "geofenceEnter"}, "calendar": 9, "then": {"message": "{zone}"}}),
                  (5, {"when": {"attribute": "speed", "operator": ">=", "value": 25}, "groups": [4]}),
                  (6, {"when": {"event": "deviceUnknown"}}),
                  (7, {"when": {"attribute": "door", "operator": "==", "value": "open"}, "zone": 5})]]
BUSY_PROFILE = Profile(speed_limit_kn=30, overspeed_min_duration_s=30, moving_min_distance_m=150,
                       moving_min_duration_s=90, stopped_min_duration_s=120, idle_after_s=300,
                       inactive_after_s=1800, status_timeout_s=600, hysteresis_m=15, hysteresis_fixes=2)
ATTRIBUTES = st.fixed_dictionaries({}, optional={
    "alarm": st.sampled_from(["sos", "lowBattery", "sos,lowBattery"]), "ignition": st.booleans(),
    "temp": st.sampled_from([5, 9, 12.5, "9"]), "fuel": st.integers(0, 100),
    "door": st.sampled_from(["open", "closed"])})
SPEEDS = st.sampled_from([0.0, 0.5, 3.0, 24.0, 40.0])
AGES = st.sampled_from([0, 0, 0, 30, 600])          # seconds the fix is older than `now`
FIX = st.tuples(st.just("fix"), st.one_of(st.integers(1, 90), GAPS), POINTS, SPEEDS, ATTRIBUTES, AGES)
OTHER = st.one_of(
    st.tuples(st.just("status"), GAPS, ATTRIBUTES),
    st.tuples(st.just("tick"), st.integers(1, 3000)),
    st.tuples(st.just("connected"), GAPS), st.tuples(st.just("disconnected"), GAPS))
OPERATIONS = st.lists(st.one_of(FIX, FIX, FIX, OTHER), min_size=10, max_size=40)


class Replay:
    """Applies operations like the server does (late fixes are archived, not evaluated)."""

    def __init__(self) -> None:
        self.engine = Engine(BUSY_ZONES, BUSY_RULES, {9: OFFICE})
        self.ctx = _context(ZONE_IDS, BUSY_PROFILE)
        self.now = T0

    def apply(self, state: DeviceState, operation) -> list:
        kind, gap = operation[0], operation[1]
        self.now += dt.timedelta(seconds=gap)
        if kind == "fix":
            (lon, lat), speed_kn, attributes, age_s = operation[2:]
            fix_time = self.now - dt.timedelta(seconds=age_s)
            fix = Fix(fix_time, lon, lat, speed_kn=speed_kn, attributes=attributes)
            if state.is_late(fix.time):
                return []
            return self.engine.fix(self.ctx, state, fix, self.now)
        if kind == "status":
            return self.engine.status(self.ctx, state, operation[2], self.now, self.now)
        return getattr(self.engine, kind)(self.ctx, state, self.now)


def _restored(state: DeviceState) -> DeviceState:
    return DeviceState.from_json(json.loads(json.dumps(state.to_json())))


# --- (2) restart ----------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(operations=OPERATIONS, data=st.data())
def test_a_restart_anywhere_gives_exactly_the_same_happenings(operations, data):
    split = data.draw(st.integers(0, len(operations)))
    uninterrupted, state = Replay(), DeviceState()
    expected = [h for operation in operations for h in uninterrupted.apply(state, operation)]
    restarted, before = Replay(), DeviceState()
    got = [h for operation in operations[:split] for h in restarted.apply(before, operation)]
    after = _restored(before)
    assert after == before
    got += [h for operation in operations[split:] for h in restarted.apply(after, operation)]
    assert got == expected
    assert after.to_json() == state.to_json()


# --- (3) retransmission ----------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(operations=st.lists(FIX, max_size=30))
def test_a_retransmitted_fix_adds_no_happenings(operations):
    once, state = Replay(), DeviceState()
    expected = [h for operation in operations for h in once.apply(state, operation)]
    twice, other = Replay(), DeviceState()
    got = []
    for operation in operations:
        got += twice.apply(other, operation)
        repeat = ("fix", 0, *operation[2:])                      # the same fix again, at the same time
        assert twice.apply(other, repeat) == []
    assert got == expected
