"""Engine: geofence enter / exit / crossed / dwell, hysteresis, calendars, odd places on Earth."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

from geofence.calendar import Calendar
from geofence.engine import DeviceContext, DeviceState, Engine, Fix, Happening, Profile, ZoneRule
from geofence.handlers import GeofenceHandler
from geofence.zones import GEOD, circle, distance_m, from_geojson, from_wkt

BERLIN = ZoneInfo("Europe/Berlin")
T0 = dt.datetime(2024, 5, 6, 6, 0, tzinfo=dt.UTC)   # Monday 08:00 in Berlin
GEOFENCE_TYPES = ("geofenceEnter", "geofenceExit", "geofenceCrossed", "geofenceDwell")


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def square(zone_id: int, lon0: float, lat0: float, lon1: float, lat1: float):
    return from_wkt(f"POLYGON (({lon0} {lat0}, {lon1} {lat0}, {lon1} {lat1}, {lon0} {lat1}, {lon0} {lat0}))",
                    zone_id, f"square {zone_id}")


def moved(lon: float, lat: float, azimuth: float, metres: float) -> tuple[float, float]:
    x, y, _ = GEOD.fwd(lon, lat, azimuth, metres)
    return x, y


BOX = square(1, 13.40, 52.50, 13.41, 52.51)
INSIDE = (13.405, 52.505)
OUTSIDE = (13.42, 52.505)


class Device:
    """One device driven through an engine; `seconds` are after T0, `now` = fix time."""

    def __init__(self, zones, zone_ids=None, state: DeviceState | None = None, **profile) -> None:
        zone_rules = [z if isinstance(z, ZoneRule) else ZoneRule(z) for z in zones]
        self.engine = Engine(zone_rules)
        ids = {rule.zone.id for rule in zone_rules} if zone_ids is None else zone_ids
        self.ctx = DeviceContext(7, 1, "Van 7", None, frozenset(ids), Profile(**profile), BERLIN)
        self.state = state or DeviceState()

    def fix(self, seconds: float, lon: float, lat: float, **fields) -> list[Happening]:
        return self.engine.fix(self.ctx, self.state, Fix(at(seconds), lon, lat, **fields), at(seconds))

    def zone_events(self, seconds: float, point: tuple[float, float]) -> list[tuple[str, int]]:
        return [(h.type, h.geofence_id) for h in self.fix(seconds, *point) if h.type in GEOFENCE_TYPES]

    def walk(self, points, step_s: float = 60.0, start_s: float = 0.0) -> list[list[tuple[str, int]]]:
        return [self.zone_events(start_s + i * step_s, point) for i, point in enumerate(points)]


def test_enter_and_exit_carry_the_geofence_id():
    device = Device([BOX])
    assert device.zone_events(0, OUTSIDE) == []
    happenings = device.fix(60, *INSIDE)
    enter = [h for h in happenings if h.type == "geofenceEnter"]
    assert enter == [Happening("geofenceEnter", at(60), {"geofenceId": 1}, 1, True)]
    assert device.zone_events(120, INSIDE) == []
    assert device.zone_events(180, OUTSIDE) == [("geofenceExit", 1)]
    assert device.state.slice(GeofenceHandler).visits == {}


def test_first_fix_of_a_fresh_state_enters_the_zones_it_is_in():
    device = Device([BOX, square(2, 13.0, 52.0, 14.0, 53.0)], hysteresis_fixes=3)
    assert device.zone_events(0, INSIDE) == [("geofenceEnter", 1), ("geofenceEnter", 2)]


def test_point_exactly_on_the_edge_or_a_vertex_is_inside():
    device = Device([BOX])
    assert device.zone_events(0, (13.41, 52.505)) == [("geofenceEnter", 1)]
    assert device.zone_events(60, (13.41, 52.51)) == []          # vertex: still inside
    assert device.zone_events(120, (13.4100001, 52.505)) == [("geofenceExit", 1)]


def test_only_assigned_zones_count():
    device = Device([BOX, square(2, 13.0, 52.0, 14.0, 53.0)], zone_ids={2})
    assert device.zone_events(0, INSIDE) == [("geofenceEnter", 2)]
    assert set(device.state.slice(GeofenceHandler).visits) == {2}


def test_a_zone_no_longer_assigned_is_forgotten_without_an_exit():
    device = Device([BOX])
    device.fix(0, *INSIDE)
    unassigned = DeviceContext(7, 1, "Van 7", None, frozenset(), Profile(), BERLIN)
    happenings = device.engine.fix(unassigned, device.state, Fix(at(60), *OUTSIDE), at(60))
    assert happenings == [] and device.state.slice(GeofenceHandler).visits == {}
    # and a zone the engine no longer knows (deleted) likewise
    device.fix(120, *INSIDE)
    other_engine = Engine([ZoneRule(square(2, 0, 0, 1, 1))])
    assert other_engine.fix(device.ctx, device.state, Fix(at(180), *OUTSIDE), at(180)) == []
    assert device.state.slice(GeofenceHandler).visits == {}


# --- hysteresis -------------------------------------------------------------------------

EDGE = (13.41, 52.505)
JITTER_IN = moved(*EDGE, 270, 3)
JITTER_OUT = moved(*EDGE, 90, 3)


def test_parked_on_the_boundary_with_3_m_jitter_does_not_flap_with_a_10_m_band():
    device = Device([BOX], hysteresis_m=10)
    events = [e for step in device.walk([JITTER_IN, JITTER_OUT] * 10) for e in step]
    assert events == [("geofenceEnter", 1)]
    assert device.zone_events(1200, moved(*EDGE, 90, 50)) == [("geofenceExit", 1)]   # really leaving


def test_the_same_jitter_flaps_without_hysteresis():
    device = Device([BOX])
    events = [e for step in device.walk([JITTER_IN, JITTER_OUT] * 10) for e in step]
    assert events == [("geofenceEnter", 1), ("geofenceExit", 1)] * 10


def test_zone_rule_hysteresis_overrides_the_profile():
    device = Device([ZoneRule(BOX, hysteresis_m=10)])
    events = [e for step in device.walk([JITTER_IN, JITTER_OUT] * 5) for e in step]
    assert events == [("geofenceEnter", 1)]


def test_exit_needs_consecutive_fixes_beyond_the_band():
    device = Device([BOX], hysteresis_m=10, hysteresis_fixes=2)
    far, band = moved(*EDGE, 90, 50), moved(*EDGE, 90, 5)
    assert device.walk([INSIDE, far, INSIDE, far]) == [[("geofenceEnter", 1)], [], [], []]
    assert device.walk([band, far], start_s=240) == [[], []]     # the band fix broke the streak
    assert device.walk([far], start_s=360) == [[("geofenceExit", 1)]]


def test_enter_needs_consecutive_covering_fixes():
    device = Device([BOX], hysteresis_fixes=3)
    steps = device.walk([OUTSIDE, INSIDE, INSIDE, OUTSIDE, INSIDE, INSIDE, INSIDE])
    assert steps == [[], [], [], [], [], [], [("geofenceEnter", 1)]]
    assert device.state.slice(GeofenceHandler).visits[1].since == at(6 * 60)


def test_distance_m_is_geodesic_metres_outside_and_zero_inside():
    assert distance_m(BOX, *INSIDE) == 0.0 and distance_m(BOX, *EDGE) == 0.0
    assert abs(distance_m(BOX, *moved(*EDGE, 90, 25)) - 25) < 0.05
    ring = circle(9, "", 13.3, 52.4, 100)
    assert abs(distance_m(ring, *moved(13.3, 52.4, 45, 130)) - 30) < 1e-6     # from the true circle
    assert distance_m(DATELINE, -178.9, 0) > 11_000                          # 0.1 deg east of the zone
    assert abs(distance_m(DATELINE, 178.99, 0) - GEOD.inv(178.99, 0, 179, 0)[2]) < 0.01


def test_hysteresis_band_is_measured_in_metres_near_the_pole():
    polar = square(3, 10.0, 80.0, 11.0, 80.1)
    device = Device([polar], hysteresis_m=10)
    near, far = moved(11.0, 80.05, 90, 5), moved(11.0, 80.05, 90, 20)
    assert 4.9 < distance_m(polar, *near) < 5.1 and 19.9 < distance_m(polar, *far) < 20.1
    assert device.walk([(10.5, 80.05), near, far]) == [[("geofenceEnter", 3)], [], [("geofenceExit", 3)]]


# --- odd places and sizes -----------------------------------------------------------------

DATELINE = from_geojson({"type": "Polygon", "coordinates": [[[179, -1], [-179, -1], [-179, 1], [179, 1],
                                                             [179, -1]]]}, 2, "dateline")


def test_antimeridian_zone_enter_and_exit():
    device = Device([DATELINE])
    steps = device.walk([(178.5, 0), (179.5, 0), (-179.5, 0), (-178.5, 0)])
    assert steps == [[], [("geofenceEnter", 2)], [], [("geofenceExit", 2)]]


def test_antimeridian_zone_jumped_over_is_crossed():
    device = Device([DATELINE])
    assert device.walk([(178.5, 0.5), (-178.5, 0.5)]) == [[], [("geofenceCrossed", 2)]]


def test_circle_near_the_pole():
    device = Device([circle(3, "polar", 10.0, 80.0, 5_000)])
    steps = device.walk([moved(10, 80, 0, 6_000), moved(10, 80, 90, 4_900), moved(10, 80, 180, 6_000)])
    assert steps == [[], [("geofenceEnter", 3)], [("geofenceExit", 3)]]


def test_one_metre_zone():
    device = Device([circle(4, "post", 13.3, 52.4, 1.0)])
    steps = device.walk([(13.3, 52.4), moved(13.3, 52.4, 90, 0.5), moved(13.3, 52.4, 90, 2.0)])
    assert steps == [[("geofenceEnter", 4)], [], [("geofenceExit", 4)]]


def test_nine_hundred_kilometre_zone():
    device = Device([circle(5, "region", 10.0, 50.0, 900_000)])
    steps = device.walk([moved(10, 50, 0, 850_000), moved(10, 50, 270, 890_000), moved(10, 50, 0, 950_000)],
                        step_s=3600)
    assert steps == [[("geofenceEnter", 5)], [], [("geofenceExit", 5)]]


# --- crossing -------------------------------------------------------------------------------

SMALL = circle(6, "toll gate", 13.50, 52.50, 50)


def test_fast_mover_jumping_over_a_small_zone_crosses_it():
    device = Device([SMALL])
    assert device.walk([(13.49, 52.50), (13.51, 52.50)]) == [[], [("geofenceCrossed", 6)]]
    assert device.state.slice(GeofenceHandler).visits == {}


def test_no_crossing_after_a_long_gap_or_for_an_unassigned_zone_or_a_miss():
    gap = Device([SMALL], crossing_max_gap_s=900)
    assert gap.walk([(13.49, 52.50), (13.51, 52.50)], step_s=901) == [[], []]
    unassigned = Device([SMALL, BOX], zone_ids={1})
    assert unassigned.walk([(13.49, 52.50), (13.51, 52.50)]) == [[], []]
    miss = Device([SMALL])
    assert miss.walk([(13.49, 52.501), (13.51, 52.501)]) == [[], []]   # ~110 m north of the centre


def test_a_segment_ending_inside_enters_instead_of_crossing():
    device = Device([SMALL])
    assert device.walk([(13.49, 52.50), (13.50, 52.50), (13.51, 52.50)]) == \
        [[], [("geofenceEnter", 6)], [("geofenceExit", 6)]]


def test_crossing_several_zones_is_reported_by_id():
    zones = [circle(9, "", 13.52, 52.5, 50), circle(8, "", 13.51, 52.5, 50)]
    device = Device(zones)
    steps = device.walk([(13.50, 52.50), (13.53, 52.50)])
    assert steps == [[], [("geofenceCrossed", 8), ("geofenceCrossed", 9)]]


# --- dwell ------------------------------------------------------------------------------------


def test_dwell_fires_once_per_visit_from_fixes():
    device = Device([ZoneRule(BOX, dwell_s=300)])
    assert device.zone_events(0, INSIDE) == [("geofenceEnter", 1)]
    assert device.zone_events(299, INSIDE) == []
    dwell = [h for h in device.fix(300, *INSIDE) if h.type == "geofenceDwell"]
    assert dwell == [Happening("geofenceDwell", at(300), {"geofenceId": 1, "dwellMinutes": 5}, 1, True)]
    assert device.zone_events(400, INSIDE) == []
    assert device.zone_events(500, OUTSIDE) == [("geofenceExit", 1)]
    assert device.zone_events(600, INSIDE) == [("geofenceEnter", 1)]
    assert device.zone_events(900, INSIDE) == [("geofenceDwell", 1)]


def test_dwell_fires_from_tick_for_a_silent_device_at_the_due_time():
    device = Device([ZoneRule(BOX, dwell_s=90)])
    device.fix(0, *INSIDE)
    assert device.engine.tick(device.ctx, device.state, at(89)) == []
    happenings = device.engine.tick(device.ctx, device.state, at(120))
    assert happenings == [Happening("geofenceDwell", at(90), {"geofenceId": 1, "dwellMinutes": 1.5},
                                    geofence_id=1, at_fix=False)]
    assert device.engine.tick(device.ctx, device.state, at(150)) == []
    assert device.zone_events(200, INSIDE) == []


# --- calendars on zones -----------------------------------------------------------------------

OFFICE_HOURS = Calendar.from_json({"intervals": [{"days": ["mon", "tue", "wed", "thu", "fri"],
                                                  "from": "09:00", "to": "17:00"}]})


def test_zone_calendar_gates_events_but_membership_is_always_tracked():
    device = Device([ZoneRule(BOX, calendar=OFFICE_HOURS)])
    minute = 60
    assert device.zone_events(0, OUTSIDE) == []                       # 08:00 local
    assert device.zone_events(10 * minute, INSIDE) == []              # 08:10: entered, calendar inactive
    assert set(device.state.slice(GeofenceHandler).visits) == {1}
    assert device.zone_events(90 * minute, INSIDE) == []              # 09:30: no late enter
    assert device.zone_events(120 * minute, OUTSIDE) == [("geofenceExit", 1)]   # 10:00
    assert device.zone_events(600 * minute, INSIDE) == []             # 18:00
    assert device.zone_events(630 * minute, OUTSIDE) == []            # 18:30
    next_morning = (24 + 1) * 60 + 10                                 # Tuesday 09:10
    assert device.zone_events(next_morning * minute, INSIDE) == [("geofenceEnter", 1)]


def test_zone_calendar_gates_crossings():
    device = Device([ZoneRule(SMALL, calendar=OFFICE_HOURS)])
    assert device.walk([(13.49, 52.50), (13.51, 52.50)]) == [[], []]                        # 08:00
    assert device.walk([(13.49, 52.50), (13.51, 52.50)], start_s=7200) == [[], [("geofenceCrossed", 6)]]


def dwell_times(device: Device, now: dt.datetime) -> list[dt.datetime]:
    return [h.time for h in device.engine.tick(device.ctx, device.state, now) if h.type == "geofenceDwell"]


def test_tick_dwell_waits_for_the_zone_calendar():
    device = Device([ZoneRule(BOX, dwell_s=600, calendar=OFFICE_HOURS)])
    device.fix(55 * 60, *INSIDE)                                 # 08:55: silent enter
    assert dwell_times(device, at(66 * 60)) == [at(65 * 60)]     # due 09:05, active then
    late = Device([ZoneRule(BOX, dwell_s=600, calendar=OFFICE_HOURS)])
    assert late.zone_events(535 * 60, INSIDE) == [("geofenceEnter", 1)]     # 16:55
    assert dwell_times(late, at(546 * 60)) == []                 # due 17:05: inactive
    next_day = at((24 * 60 + 60) * 60 + 30)                      # Tuesday 09:00:30
    assert dwell_times(late, next_day) == [next_day]


# --- cost -----------------------------------------------------------------------------------------


class CountingIndex:
    def __init__(self, index) -> None:
        self.index, self.calls = index, []

    def containing(self, *args):
        self.calls.append("containing")
        return self.index.containing(*args)

    def crossed(self, *args):
        self.calls.append("crossed")
        return self.index.crossed(*args)


def test_one_index_query_per_fix_and_none_without_zones():
    device = Device([BOX, SMALL])
    spy = CountingIndex(device.engine.config.index)
    for handler in device.engine.handlers:   # the configuration the handlers share
        handler.config = dataclasses.replace(handler.config, index=spy)
    device.fix(0, *OUTSIDE)
    device.fix(60, *INSIDE)
    device.fix(120, *INSIDE)                # same place: no segment
    assert spy.calls == ["containing", "crossed", "containing"]
    no_zones = DeviceContext(8, 1, "Van 8", None, frozenset(), Profile(), BERLIN)
    device.engine.fix(no_zones, DeviceState(), Fix(at(0), *INSIDE), at(0))
    assert len(spy.calls) == 3
