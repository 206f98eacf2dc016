"""Engine: overspeed, alarms, ignition, motion, idle, online/offline/unknown/inactive, order, late fixes."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from geofence.calendar import Calendar
from geofence.engine import DeviceContext, DeviceState, Engine, EventType, Fix, Happening, Profile, ZoneRule
from geofence.handlers import StatusHandler
from geofence.rules import parse_rule
from geofence.zones import GEOD, circle, from_wkt

BERLIN = ZoneInfo("Europe/Berlin")
T0 = dt.datetime(2024, 5, 6, 6, 0, tzinfo=dt.UTC)   # Monday 08:00 in Berlin
HOME = (13.405, 52.505)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def east(metres: float, origin: tuple[float, float] = HOME) -> tuple[float, float]:
    x, y, _ = GEOD.fwd(origin[0], origin[1], 90, metres)
    return x, y


def square(zone_id: int, lon0: float, lat0: float, lon1: float, lat1: float):
    return from_wkt(f"POLYGON (({lon0} {lat0}, {lon1} {lat0}, {lon1} {lat1}, {lon0} {lat1}, {lon0} {lat0}))",
                    zone_id, f"zone {zone_id}")


class Device:
    def __init__(self, zones=(), rules=(), **profile) -> None:
        zone_rules = [z if isinstance(z, ZoneRule) else ZoneRule(z) for z in zones]
        self.engine = Engine(zone_rules, rules)
        self.ctx = DeviceContext(7, 1, "Van 7", None, frozenset(r.zone.id for r in zone_rules),
                                 Profile(**profile), BERLIN)
        self.state = DeviceState()

    def fix(self, seconds: float, point: tuple[float, float] = HOME, **fields) -> list[Happening]:
        return self.engine.fix(self.ctx, self.state, Fix(at(seconds), *point, **fields), at(seconds))

    def status(self, seconds: float, attributes) -> list[Happening]:
        return self.engine.status(self.ctx, self.state, attributes, at(seconds), at(seconds))

    def types(self, seconds: float, point: tuple[float, float] = HOME, **fields) -> list[str]:
        return [h.type for h in self.fix(seconds, point, **fields) if h.type != "deviceOnline"]

    def tick(self, seconds: float) -> list[Happening]:
        return self.engine.tick(self.ctx, self.state, at(seconds))


# --- overspeed -----------------------------------------------------------------------------------


def test_overspeed_fires_once_per_episode_and_rearms_at_or_below_the_limit():
    device = Device(speed_limit_kn=50)
    assert device.types(0, speed_kn=40) == []
    over = [h for h in device.fix(10, speed_kn=60) if h.type == "deviceOverspeed"]
    assert over == [Happening("deviceOverspeed", at(10), {"speed": 60, "speedLimit": 50}, None, True)]
    assert "deviceOverspeed" not in device.types(20, speed_kn=70)
    assert "deviceOverspeed" not in device.types(30, speed_kn=50)        # at the limit: re-armed
    assert "deviceOverspeed" in device.types(40, speed_kn=55)


def test_overspeed_minimal_duration_needs_every_fix_over_the_limit():
    device = Device(speed_limit_kn=50, overspeed_min_duration_s=30)
    assert "deviceOverspeed" not in device.types(0, speed_kn=60)
    assert "deviceOverspeed" not in device.types(20, speed_kn=60)
    assert "deviceOverspeed" not in device.types(25, speed_kn=45)        # breaks the episode
    assert "deviceOverspeed" not in device.types(40, speed_kn=60)
    assert "deviceOverspeed" not in device.types(69, speed_kn=60)
    assert "deviceOverspeed" in device.types(70, speed_kn=60)


def test_zone_speed_limit_wins_and_names_the_zone_the_lowest_limit_first():
    town = ZoneRule(square(1, 13.40, 52.50, 13.41, 52.51), speed_limit_kn=27)
    school = ZoneRule(circle(2, "school", *HOME, 100), speed_limit_kn=16)
    device = Device([town, school], speed_limit_kn=50)
    over = [h for h in device.fix(0, east(300), speed_kn=30) if h.type == "deviceOverspeed"]
    assert over == [Happening("deviceOverspeed", at(0), {"speed": 30, "speedLimit": 27, "geofenceId": 1}, 1)]
    over = [h for h in device.fix(10, HOME, speed_kn=20) if h.type == "deviceOverspeed"]
    assert over == []   # still the same episode (20 > 16)
    device.fix(20, HOME, speed_kn=10)
    over = [h for h in device.fix(30, HOME, speed_kn=20) if h.type == "deviceOverspeed"]
    assert over[0].attributes == {"speed": 20, "speedLimit": 16, "geofenceId": 2}
    assert over[0].geofence_id == 2


def test_zone_limit_may_be_higher_than_the_device_limit_and_outside_zones_the_device_limit_holds():
    motorway = ZoneRule(square(1, 13.40, 52.50, 13.41, 52.51), speed_limit_kn=70)
    device = Device([motorway], speed_limit_kn=50)
    assert "deviceOverspeed" not in device.types(0, speed_kn=60)
    assert "deviceOverspeed" in device.types(10, (13.5, 52.5), speed_kn=60)


def test_zone_speed_limit_only_while_its_calendar_is_active():
    school_hours = Calendar.from_json({"intervals": [{"from": "07:00", "to": "08:00"}]})
    school = ZoneRule(circle(2, "school", *HOME, 100), speed_limit_kn=16, calendar=school_hours)
    device = Device([school], speed_limit_kn=50)
    assert "deviceOverspeed" not in device.types(0, speed_kn=20)        # 08:00 local: school is over
    early = Device([school], speed_limit_kn=50)
    assert "deviceOverspeed" in early.types(-1800, speed_kn=20)         # 07:30 local


def test_no_limit_no_overspeed():
    assert "deviceOverspeed" not in Device().types(0, speed_kn=500)


# --- alarms and ignition -------------------------------------------------------------------------


def alarms(happenings: list[Happening]) -> list[str]:
    return [h.attributes["alarm"] for h in happenings if h.type == "alarm"]


def test_alarm_persists_until_a_report_without_it():
    device = Device()
    fired = [alarms(device.fix(i * 10, attributes=a)) for i, a in
             enumerate([{"alarm": "sos"}, {"alarm": "sos"}, {}, {"alarm": "sos"}])]
    assert fired == [["sos"], [], [], ["sos"]]


def test_comma_joined_alarms_fire_per_new_value():
    device = Device()
    assert alarms(device.fix(0, attributes={"alarm": "sos,lowBattery"})) == ["sos", "lowBattery"]
    assert alarms(device.fix(10, attributes={"alarm": "lowBattery"})) == []
    assert alarms(device.fix(20, attributes={"alarm": "lowBattery, sos"})) == ["sos"]


def test_alarms_from_status_reports_share_the_state_and_are_not_tied_to_a_fix():
    device = Device()
    happenings = device.status(0, {"alarm": "sos"})
    assert [h for h in happenings if h.type == "alarm"] == [
        Happening("alarm", at(0), {"alarm": "sos"}, None, at_fix=False)]
    assert alarms(device.fix(10, attributes={"alarm": "sos"})) == []
    assert alarms(device.status(20, {})) == []
    assert alarms(device.status(30, {"alarm": "sos"})) == ["sos"]


def test_ignition_changes_fire_but_the_first_value_does_not():
    device = Device()
    assert device.types(0, attributes={"ignition": True}) == []
    assert device.types(10, attributes={}) == []                         # unknown: no change
    assert device.types(20, attributes={"ignition": False}) == ["ignitionOff"]
    assert device.types(30, attributes={"ignition": False}) == []
    assert [h.type for h in device.status(40, {"ignition": True})] == ["ignitionOn"]
    assert device.types(50, attributes={"ignition": "yes"}) == []        # not a boolean: ignored


# --- motion and idle --------------------------------------------------------------------------------


def test_first_fix_sets_motion_silently_then_moving_after_the_minimal_duration():
    device = Device(moving_min_duration_s=60, moving_min_distance_m=200)
    assert device.types(0, speed_kn=0) == []
    assert device.types(10, east(50), speed_kn=5) == []
    assert device.types(40, east(100), speed_kn=5) == []
    moving = [h for h in device.fix(70, east(150), speed_kn=5) if h.type == "deviceMoving"]
    assert moving == [Happening("deviceMoving", at(70), {"since": at(10).isoformat()})]


def test_moving_after_the_minimal_distance_from_the_last_stopped_fix():
    device = Device(moving_min_duration_s=600, moving_min_distance_m=200)
    device.fix(0, speed_kn=0)
    device.fix(10, east(20), speed_kn=0)                  # the last stopped fix
    assert device.types(20, east(200), speed_kn=20) == []   # 180 m from it
    assert device.types(30, east(221), speed_kn=20) == ["deviceMoving"]


def test_a_contrary_fix_cancels_the_candidate():
    device = Device(moving_min_duration_s=60, moving_min_distance_m=10_000)
    device.fix(0, speed_kn=0)
    device.fix(10, speed_kn=5)
    device.fix(40, speed_kn=0)
    assert device.types(70, speed_kn=5) == []      # a new candidate since 70
    assert device.types(129, speed_kn=5) == []
    assert device.types(130, speed_kn=5) == ["deviceMoving"]


def test_stopped_after_the_minimal_duration_of_non_moving_fixes():
    device = Device(stopped_min_duration_s=180, idle_after_s=None)
    assert device.types(0, speed_kn=30) == []      # first fix: moving, silently
    assert device.types(60, speed_kn=0.5) == []    # 0.5 kn is below the 1 kn motion threshold
    assert device.types(120, speed_kn=5) == []     # cancels
    assert device.types(200, speed_kn=0) == []
    stopped = [h for h in device.fix(380, speed_kn=0) if h.type == "deviceStopped"]
    assert stopped == [Happening("deviceStopped", at(380), {"since": at(200).isoformat()})]
    assert device.types(600, speed_kn=0) == []


def test_idle_needs_ignition_on_and_no_motion_for_the_period_once_per_episode():
    device = Device(idle_after_s=600)
    assert device.types(0, attributes={"ignition": True}) == []
    assert device.types(300, attributes={"ignition": True}) == []
    idle = [h for h in device.fix(600, attributes={"ignition": True}) if h.type == "deviceIdle"]
    assert idle == [Happening("deviceIdle", at(600), {"since": at(0).isoformat()})]
    assert "deviceIdle" not in device.types(1300, attributes={"ignition": True})
    device.fix(1310, speed_kn=10, attributes={"ignition": True})          # movement re-arms
    device.fix(1320, attributes={"ignition": True})
    assert "deviceIdle" in device.types(1920, attributes={"ignition": True})


def test_idle_is_rearmed_by_ignition_off_also_from_a_status_report():
    device = Device(idle_after_s=100)
    device.fix(0, attributes={"ignition": True})
    device.status(50, {"ignition": False})
    device.status(60, {"ignition": True})
    assert "deviceIdle" not in device.types(120)   # the episode restarted here, not at 0
    assert "deviceIdle" not in device.types(160)
    assert "deviceIdle" in device.types(220)


# --- status: online, offline, unknown, inactive ------------------------------------------------------


def test_connect_disconnect_and_data_drive_online_and_offline():
    device = Device()
    engine, ctx, state = device.engine, device.ctx, device.state
    assert engine.connected(ctx, state, at(0)) == [Happening("deviceOnline", at(0), {}, at_fix=False)]
    assert engine.connected(ctx, state, at(1)) == []
    assert engine.disconnected(ctx, state, at(2)) == [Happening("deviceOffline", at(2), {}, at_fix=False)]
    assert engine.disconnected(ctx, state, at(3)) == []
    assert [h for h in device.fix(4) if h.type == "deviceOnline"] == [
        Happening("deviceOnline", at(4), {}, at_fix=False)]
    assert device.fix(5) == []


def test_tick_marks_a_silent_device_unknown_once():
    device = Device(status_timeout_s=600)
    device.fix(0)
    assert device.tick(599) == []
    assert device.tick(700) == [Happening("deviceUnknown", at(600), {}, at_fix=False)]
    assert device.tick(800) == []
    assert device.state.slice(StatusHandler).status == "unknown"
    assert [h.type for h in device.status(900, {})] == ["deviceOnline"]


def test_an_offline_device_stays_offline_and_a_silent_online_one_becomes_unknown():
    device = Device(status_timeout_s=60)
    device.engine.connected(device.ctx, device.state, at(0))
    device.engine.disconnected(device.ctx, device.state, at(10))
    assert device.tick(80) == []
    device.engine.connected(device.ctx, device.state, at(100))   # a link that dies silently
    assert [h.type for h in device.tick(159)] == []
    assert [h.type for h in device.tick(160)] == ["deviceUnknown"]


def test_inactive_once_after_the_period_and_rearmed_by_data():
    device = Device(inactive_after_s=3600, status_timeout_s=10**9)
    assert device.tick(0) == []                              # never seen: nothing
    device.fix(0)
    assert device.tick(3599) == []
    inactive = Happening("deviceInactive", at(3600), {"inactiveSeconds": 3600}, at_fix=False)
    assert device.tick(4000) == [inactive]
    assert device.tick(9000) == []
    device.status(9000, {})
    assert [h.time for h in device.tick(12600)] == [at(12600)]


def test_no_inactivity_events_by_default():
    device = Device(status_timeout_s=10**9)
    device.fix(0)
    assert device.tick(10**6) == []


# --- late and retransmitted fixes -------------------------------------------------------------------


def test_is_late_compares_with_the_newest_live_fix():
    device = Device()
    assert not device.state.is_late(at(0))
    device.fix(100)
    assert device.state.is_late(at(50))
    assert not device.state.is_late(at(100))
    assert not device.state.is_late(at(150))


def test_a_late_or_repeated_fix_given_anyway_changes_nothing():
    zone = square(1, 13.40, 52.50, 13.41, 52.51)
    device = Device([zone], speed_limit_kn=10)
    device.fix(100, (13.5, 52.5))
    before = device.state.to_json()
    assert device.fix(50, attributes={"alarm": "sos"}, speed_kn=90) == []
    assert device.fix(100, attributes={"alarm": "sos"}, speed_kn=90) == []
    assert device.state.to_json() == before


# --- order --------------------------------------------------------------------------------------------


def test_documented_order_of_happenings_from_one_fix():
    zone_a = square(1, 13.40, 52.49, 13.41, 52.51)            # left by the fix
    zone_b = square(2, 13.43, 52.49, 13.44, 52.51)            # entered by the fix
    zone_c = circle(3, "gate", 13.42, 52.50, 50)              # jumped over
    zone_d = square(4, 13.39, 52.48, 13.45, 52.52)            # around everything: dwell
    rules = [parse_rule({"when": {"attribute": "temp", "operator": ">", "value": 5}}, rule_id=9,
                        organisation_id=1, name="warm"),
             parse_rule({"when": {"event": "alarm"}, "then": {"type": "panic"}}, rule_id=5,
                        organisation_id=1, name="sos")]
    device = Device([zone_a, zone_b, zone_c, ZoneRule(zone_d, dwell_s=450)], rules,
                    speed_limit_kn=0.5, overspeed_min_duration_s=300, stopped_min_duration_s=180,
                    idle_after_s=0)
    device.fix(0, (13.405, 52.50), speed_kn=20, attributes={"ignition": False})
    device.fix(200, (13.405, 52.50), speed_kn=0.8)
    device.engine.disconnected(device.ctx, device.state, at(300))
    happenings = device.fix(500, (13.435, 52.50), speed_kn=0.8,
                            attributes={"alarm": "sos", "ignition": True, "temp": 6})
    assert [(h.type, h.geofence_id) for h in happenings] == [
        ("deviceOnline", None), ("alarm", None), ("ignitionOn", None), ("geofenceExit", 1),
        ("geofenceEnter", 2), ("geofenceCrossed", 3), ("geofenceDwell", 4), ("deviceOverspeed", None),
        ("deviceStopped", None), ("deviceIdle", None), ("panic", None), ("sensorThreshold", None)]
    assert [h.at_fix for h in happenings] == [False] + [True] * 11
    assert {h.time for h in happenings[1:]} == {at(500)}
    assert happenings[-2].attributes["ruleId"] == 5 and happenings[-1].attributes["ruleId"] == 9


def test_event_types_are_strings_with_traccar_names():
    assert EventType.GEOFENCE_ENTER == "geofenceEnter" and isinstance(EventType.ALARM, str)
    assert {"geofenceEnter", "geofenceExit", "deviceOverspeed", "alarm", "ignitionOn", "ignitionOff",
            "deviceMoving", "deviceStopped", "deviceOnline", "deviceOffline", "deviceUnknown",
            "deviceInactive"} <= set(EventType)
