"""Engine: user rules - operators, for-durations, changes, zone and calendar filters, event conditions."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from geofence.calendar import Calendar
from geofence.engine import DeviceContext, DeviceState, Engine, Fix, Happening, Profile, ZoneRule
from geofence.handlers import UserRulesHandler
from geofence.rules import parse_rule
from geofence.zones import from_wkt

BERLIN = ZoneInfo("Europe/Berlin")
T0 = dt.datetime(2024, 5, 6, 6, 0, tzinfo=dt.UTC)   # Monday 08:00 in Berlin
DEPOT = from_wkt("POLYGON ((13.40 52.50, 13.41 52.50, 13.41 52.51, 13.40 52.51, 13.40 52.50))", 1, "Depot")
YARD = from_wkt("POLYGON ((13.50 52.50, 13.51 52.50, 13.51 52.51, 13.50 52.51, 13.50 52.50))", 2, "Yard")
IN_DEPOT, IN_YARD, ROAD = (13.405, 52.505), (13.505, 52.505), (13.45, 52.505)
OFFICE_HOURS = Calendar.from_json({"intervals": [{"days": ["mon", "tue", "wed", "thu", "fri"],
                                                  "from": "09:00", "to": "17:00"}]})


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def rule(definition, rule_id: int = 1, organisation_id: int = 1, name: str = "rule"):
    return parse_rule(definition, rule_id=rule_id, organisation_id=organisation_id, name=name)


class Device:
    """Device 7 ("Van 7", group 4, organisation 1) with DEPOT assigned; YARD exists but is not assigned."""

    def __init__(self, *rules, group_id: int | None = 4, **profile) -> None:
        self.engine = Engine([ZoneRule(DEPOT), ZoneRule(YARD)], rules, {3: OFFICE_HOURS})
        self.ctx = DeviceContext(7, 1, "Van 7", group_id, frozenset({1}), Profile(**profile), BERLIN)
        self.state = DeviceState()

    def fix(self, seconds: float, point=ROAD, **fields) -> list[Happening]:
        return self.engine.fix(self.ctx, self.state, Fix(at(seconds), *point, **fields), at(seconds))

    def fired(self, seconds: float, point=ROAD, **fields) -> list[Happening]:
        """The user-rule happenings of a fix (built-in types left out)."""
        return [h for h in self.fix(seconds, point, **fields) if "ruleId" in h.attributes]

    def status(self, seconds: float, attributes) -> list[Happening]:
        happenings = self.engine.status(self.ctx, self.state, attributes, at(seconds), at(seconds))
        return [h for h in happenings if "ruleId" in h.attributes]


@pytest.mark.parametrize(("operator", "value", "observed", "fires_at"), [
    (">", 8, [7, 9, 10, 8, 9], [1, 4]),
    (">=", 8, [8, 8, 7, 8], [0, 3]),
    ("<", 0, [1, -1, -2, 0, -5], [1, 4]),
    ("<=", 0, [1, 0, -1, 1], [1]),
    ("==", "open", ["closed", "open", "open", "closed", "open"], [1, 4]),
    ("==", True, [False, True, True, False], [1]),
    ("!=", 0, [0, 1, 2, 0, 3], [1, 4]),
    ("dropsBy", 10, [80, 79, 60, 59, 40, 45], [2, 4]),
    ("risesBy", 5, [10, 16, 17, 30], [1, 3]),
])
def test_each_operator_fires_when_the_condition_becomes_true(operator, value, observed, fires_at):
    device = Device(rule({"when": {"attribute": "x", "operator": operator, "value": value}}))
    fired = [i for i, v in enumerate(observed) if device.fired(i * 60, attributes={"x": v})]
    assert fired == fires_at


def test_fuel_drop_compares_with_the_previous_report_that_had_the_value():
    device = Device(rule({"when": {"attribute": "fuel", "operator": "dropsBy", "value": 10},
                          "then": {"type": "fuelDrop", "message": "{device}: fuel fell to {value}"}}))
    assert device.fired(0, attributes={"fuel": 80}) == []
    assert device.fired(60, attributes={}) == []
    assert device.fired(120, attributes={"fuel": "n/a"}) == []
    expected = {"ruleId": 1, "message": "Van 7: fuel fell to 65", "attribute": "fuel", "value": 65}
    assert device.fired(180, attributes={"fuel": 65}) == [Happening("fuelDrop", at(180), expected)]


def test_consecutive_drops_are_one_episode():
    device = Device(rule({"when": {"attribute": "fuel", "operator": "dropsBy", "value": 10}}))
    fired = [i for i, v in enumerate([80, 65, 50, 50, 35]) if device.fired(i * 60, attributes={"fuel": v})]
    assert fired == [1, 4]


def test_for_duration_needs_the_condition_on_every_report():
    device = Device(rule({"when": {"attribute": "temp", "operator": ">", "value": 8, "for": 300}}))
    sequence = [(0, 9), (200, 9), (300, 9), (400, 9), (500, 7), (600, 9), (899, 9), (900, 9), (960, 10)]
    fired = [t for t, v in sequence if device.fired(t, attributes={"temp": v})]
    assert fired == [300, 900]


def test_a_report_without_the_attribute_neither_counts_nor_breaks_the_episode():
    device = Device(rule({"when": {"attribute": "temp", "operator": ">", "value": 8, "for": 300}}))
    device.fix(0, attributes={"temp": 9})
    assert device.fired(200, attributes={}) == []
    assert len(device.fired(300, attributes={"temp": 9})) == 1


def test_a_fresh_state_counts_as_false():
    device = Device(rule({"when": {"attribute": "temp", "operator": ">", "value": 8}}))
    assert len(device.fired(0, attributes={"temp": 9})) == 1


def test_position_fields_come_from_the_fix_and_status_reports_do_not_have_them():
    device = Device(rule({"when": {"attribute": "speed", "operator": ">", "value": 50}}))
    assert device.fired(0, speed_kn=40) == []
    assert device.fired(10, speed_kn=60)[0].attributes["value"] == 60
    assert device.status(20, {}) == []
    device.fix(30, speed_kn=10)
    assert device.fired(40, speed_kn=60) != []
    valid = Device(rule({"when": {"attribute": "valid", "operator": "==", "value": False}}))
    assert valid.fired(0, valid=False) != []


def test_zone_filter_uses_membership_and_ends_the_episode_outside():
    device = Device(rule({"when": {"attribute": "temp", "operator": ">", "value": 8}, "zone": 1}))
    assert device.fired(0, ROAD, attributes={"temp": 9}) == []
    inside = device.fired(60, IN_DEPOT, attributes={"temp": 9})
    assert [(h.geofence_id, h.attributes["value"]) for h in inside] == [(1, 9)]
    assert device.fired(120, IN_DEPOT, attributes={"temp": 9}) == []
    assert device.fired(180, ROAD, attributes={"temp": 9}) == []          # outside: episode over
    assert len(device.fired(240, IN_DEPOT, attributes={"temp": 9})) == 1
    assert len(device.status(300, {"temp": 7})) == 0
    assert len(device.status(360, {"temp": 9})) == 1                      # state says inside


def test_zone_filter_on_an_unassigned_zone_tests_the_fix_position():
    device = Device(rule({"when": {"attribute": "temp", "operator": ">", "value": 8}, "zone": 2}))
    assert device.fired(0, ROAD, attributes={"temp": 9}) == []
    assert len(device.fired(60, IN_YARD, attributes={"temp": 9})) == 1
    assert device.status(120, {"temp": 7}) == [] and device.status(180, {"temp": 9}) == []


def test_calendar_filter_and_unknown_calendar():
    device = Device(rule({"when": {"attribute": "door", "operator": "==", "value": "open"}, "calendar": 3}))
    assert device.fired(0, attributes={"door": "open"}) == []             # 08:00 local
    assert len(device.fired(3600, attributes={"door": "open"})) == 1      # 09:00 local
    unknown = Device(rule({"when": {"attribute": "door", "operator": "==", "value": "open"}, "calendar": 99}))
    assert unknown.fired(3600, attributes={"door": "open"}) == []


def test_event_condition_with_alarm_value_and_alarm_action():
    device = Device(rule({"when": {"event": "alarm", "value": "sos"},
                          "then": {"type": "alarm", "alarm": "panic", "message": "{device}: {value}!"}},
                         rule_id=6))
    assert device.fired(0, attributes={"alarm": "lowBattery"}) == []
    fired = device.fired(60, attributes={"alarm": "lowBattery,sos"})
    assert fired == [Happening("alarm", at(60), {"ruleId": 6, "message": "Van 7: sos!", "event": "alarm",
                                                  "alarm": "panic"})]


def test_event_condition_on_a_geofence_and_its_name_in_the_message():
    device = Device(rule({"when": {"event": "geofenceEnter", "value": 1},
                          "then": {"message": "{device} entered {zone} ({rule})"}}, name="arrival"))
    assert device.fired(0, ROAD) == []
    fired = device.fired(60, IN_DEPOT)
    assert [(h.type, h.geofence_id, h.attributes["message"]) for h in fired] == \
        [("ruleTriggered", 1, "Van 7 entered Depot (arrival)")]
    other = Device(rule({"when": {"event": "geofenceEnter", "value": 2}}))
    assert other.fired(0, IN_DEPOT) == []


def test_event_conditions_also_see_connections_and_ticks():
    offline = rule({"when": {"event": "deviceOffline"}, "then": {"type": "lostContact"}}, rule_id=2)
    unknown = rule({"when": {"event": "deviceUnknown"}}, rule_id=3)
    device = Device(offline, unknown, status_timeout_s=60)
    device.engine.connected(device.ctx, device.state, at(0))
    happenings = device.engine.disconnected(device.ctx, device.state, at(10))
    assert [(h.type, h.at_fix) for h in happenings] == [("deviceOffline", False), ("lostContact", False)]
    device.engine.connected(device.ctx, device.state, at(20))   # then the link dies silently
    happenings = device.engine.tick(device.ctx, device.state, at(100))
    assert [(h.type, h.time) for h in happenings] == [("deviceUnknown", at(80)), ("ruleTriggered", at(80))]


def test_rules_apply_to_their_organisation_and_targets_only():
    rules = [rule({"when": {"attribute": "t", "operator": ">", "value": 0}}, rule_id=1, organisation_id=2),
             rule({"when": {"attribute": "t", "operator": ">", "value": 0}, "devices": [8]}, rule_id=2),
             rule({"when": {"attribute": "t", "operator": ">", "value": 0}, "groups": [4]}, rule_id=3),
             rule({"when": {"attribute": "t", "operator": ">", "value": 0}, "devices": [7]}, rule_id=4)]
    in_group, alone = Device(*rules), Device(*rules, group_id=None)
    assert [h.attributes["ruleId"] for h in in_group.fired(0, attributes={"t": 1})] == [3, 4]
    assert [h.attributes["ruleId"] for h in alone.fired(0, attributes={"t": 1})] == [4]


def test_status_reports_feed_attribute_rules_not_tied_to_a_fix():
    device = Device(rule({"when": {"attribute": "temp", "operator": ">", "value": 8}}))
    assert device.status(30, {"temp": 9}) == [Happening(
        "sensorThreshold", at(30), {"ruleId": 1, "message": "rule: Van 7 temp is 9", "attribute": "temp",
                                    "value": 9}, None, at_fix=False)]


def test_message_renders_values_without_format():
    device = Device(rule({"when": {"attribute": "note", "operator": "==", "value": "{device}"},
                          "then": {"message": "{{{value}}} vs {threshold}"}}))
    message = device.fired(0, attributes={"note": "{device}"})[0].attributes["message"]
    assert message == "{{device}} vs {device}"


def test_state_of_a_removed_rule_is_dropped():
    device = Device(rule({"when": {"attribute": "temp", "operator": ">", "value": 8, "for": 60}}, rule_id=5))
    device.fix(0, attributes={"temp": 9})
    assert set(device.state.slice(UserRulesHandler).by_rule) == {5}
    without = Engine([ZoneRule(DEPOT)])
    without.fix(device.ctx, device.state, Fix(at(60), *ROAD, attributes={"temp": 9}), at(60))
    assert device.state.slice(UserRulesHandler).by_rule == {}


def test_non_json_values_are_reported_as_text():
    device = Device(rule({"when": {"attribute": "x", "operator": "==", "value": 1}}))
    assert device.fired(0, attributes={"x": dt.date(2024, 1, 1)}) == []   # not a number: false
    device = Device(rule({"when": {"attribute": "x", "operator": ">", "value": 1}}))
    assert device.fired(0, attributes={"x": float("inf")}) == []           # not finite: false
