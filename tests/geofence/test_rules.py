"""User rules: parsing, canonical form, validation messages, comparisons, message templates."""

from __future__ import annotations

import datetime as dt

import pytest

from geofence.engine import EventType, Happening
from geofence.rules import (
    AttributeCondition,
    EventCondition,
    Rule,
    RuleError,
    parse_rule,
    text_of,
    to_number,
)

FRIDGE = {"when": {"attribute": "temperature1", "operator": ">", "value": 8, "for": 300},
          "devices": [3, 1], "groups": [], "zone": 12, "calendar": None,
          "then": {"type": "sensorThreshold", "message": "Fridge {device}: {attribute} is {value}"}}


def parse(definition, **known) -> Rule:
    return parse_rule(definition, rule_id=4, organisation_id=2, name="fridge", **known)


def test_attribute_rule_is_parsed_into_a_frozen_rule():
    rule = parse(FRIDGE)
    assert rule.when == AttributeCondition("temperature1", ">", 8, 300)
    assert (rule.id, rule.organisation_id, rule.name) == (4, 2, "fridge")
    assert rule.devices == {1, 3} and rule.groups == frozenset() and rule.zone == 12 and rule.calendar is None
    assert rule.then.type == "sensorThreshold"
    with pytest.raises(AttributeError):
        rule.name = "other"  # type: ignore[misc]


def test_to_json_is_canonical_and_parses_back_to_the_same_rule():
    rule = parse({"when": {"attribute": "fuel", "operator": "dropsBy", "value": 10}})
    assert rule.to_json() == {"when": {"attribute": "fuel", "operator": "dropsBy", "value": 10},
                              "devices": [], "groups": [], "zone": None, "calendar": None,
                              "then": {"type": "sensorThreshold"}}
    fridge = parse(FRIDGE)
    assert fridge.to_json() == {**FRIDGE, "devices": [1, 3]}
    assert parse(fridge.to_json()) == fridge
    event = parse({"when": {"event": "alarm"}})
    assert event.to_json()["when"] == {"event": "alarm"}
    assert event.to_json()["then"] == {"type": "ruleTriggered"}     # the documented default
    assert parse(event.to_json()) == event


def test_event_rule_with_value_and_alarm_action():
    rule = parse({"when": {"event": "geofenceEnter", "value": 12},
                  "then": {"type": "alarm", "alarm": "zoneAlarm"}}, zone_ids={12})
    assert rule.when == EventCondition("geofenceEnter", 12)
    assert rule.then.alarm == "zoneAlarm"
    assert parse({"when": {"event": "alarm", "value": "sos"}}).when == EventCondition("alarm", "sos")


def test_known_ids_are_checked_only_when_given():
    definition = {"when": {"event": "alarm"}, "devices": [5], "groups": [6], "zone": 7, "calendar": 8}
    assert parse(definition).zone == 7
    rule = parse(definition, device_ids={5}, group_ids=[6], zone_ids={7}, calendar_ids={8})
    assert (rule.devices, rule.groups, rule.calendar) == ({5}, {6}, 8)


def test_targets_every_device_without_lists_else_listed_devices_and_groups():
    everyone = parse({"when": {"event": "alarm"}})
    assert everyone.targets(1, None) and everyone.targets(99, 5)
    listed = parse({"when": {"event": "alarm"}, "devices": [1], "groups": [5]})
    assert listed.targets(1, None) and listed.targets(2, 5)
    assert not listed.targets(2, None) and not listed.targets(2, 6)


ATTR = {"attribute": "t", "operator": ">", "value": 1}


def w(**when):
    return {"when": when}


@pytest.mark.parametrize(("definition", "known", "message"), [
    ([], {}, "rule: expected an object"),
    ({}, {}, "when: required"),
    ({"when": {"event": "alarm"}, "tehn": {}}, {}, "tehn: unknown key; expected when, devices, groups"),
    ({"when": "t > 1"}, {}, "when: expected an object, got 't > 1'"),
    (w(operator=">", value=1), {}, "when: needs an attribute condition"),
    ({"when": {**ATTR, "event": "alarm"}}, {}, "when: give either attribute or event, not both"),
    ({"when": {**ATTR, "fro": 3}}, {}, "when.fro: unknown key; expected attribute, operator, value, for"),
    (w(attribute="1abc", operator=">", value=1), {}, "when.attribute: must match"),
    (w(attribute="a b", operator=">", value=1), {}, "when.attribute: must match"),
    (w(attribute="x" * 65, operator=">", value=1), {}, "when.attribute: must match"),
    (w(attribute=5, operator=">", value=1), {}, "when.attribute: must match"),
    (w(attribute="t", operator="=>", value=1), {},
     "when.operator: must be one of <, <=, >, >=, ==, !=, dropsBy, risesBy"),
    (w(attribute="t", value=1), {}, "when.operator: must be one of"),
    (w(attribute="t", operator=">"), {}, "when.value: required"),
    (w(attribute="t", operator=">", value="8"), {}, "when.value: must be a finite number for >, got '8'"),
    (w(attribute="t", operator="<=", value=True), {}, "when.value: must be a finite number for <="),
    (w(attribute="t", operator=">", value=float("nan")), {}, "when.value: must be a finite number"),
    (w(attribute="t", operator="==", value=[1]), {}, "when.value: must be a number, string or boolean"),
    (w(attribute="t", operator="!=", value=None), {}, "when.value: must be a number, string or boolean"),
    (w(attribute="t", operator="==", value="x" * 257), {}, "when.value: at most 256 characters"),
    (w(attribute="fuel", operator="dropsBy", value=0), {},
     "when.value: must be a positive number for dropsBy"),
    (w(attribute="fuel", operator="risesBy", value="5"), {}, "when.value: must be a positive number"),
    (w(attribute="fuel", operator="dropsBy", value=5, **{"for": 60}), {},
     "when.for: not allowed with dropsBy"),
    ({"when": {**ATTR, "for": -1}}, {}, "when.for: must be between 0 and 604800 seconds"),
    ({"when": {**ATTR, "for": 604801}}, {}, "when.for: must be between 0 and 604800 seconds"),
    ({"when": {**ATTR, "for": "300"}}, {}, "when.for: must be a number of seconds"),
    (w(event="alarm", **{"for": 60}), {}, "when.for: not allowed with event conditions"),
    (w(event="alarm", operator="=="), {}, "when.operator: not allowed with event conditions"),
    (w(event="geofenceEntry"), {}, "when.event: must be one of deviceOnline"),
    (w(event=["alarm"]), {}, "when.event: must be one of"),
    (w(event="alarm", value=5), {}, "when.value: an alarm name"),
    (w(event="alarm", value="sos,fall"), {}, "when.value: an alarm name"),
    (w(event="geofenceExit", value="depot"), {}, "when.value: expected a geofence id"),
    (w(event="geofenceExit", value=9), {"zone_ids": {1}}, "when.value: geofence 9 does not exist"),
    (w(event="deviceOnline", value=1), {}, "when.value: only alarm and geofence events take a value"),
    (w(event="alarm", extra=1), {}, "when.extra: unknown key; expected event, value"),
    ({"when": ATTR, "devices": 5}, {}, "devices: expected a list of device ids, got 5"),
    ({"when": ATTR, "devices": [1, "2"]}, {},
     "devices[1]: expected a device id (a positive integer), got '2'"),
    ({"when": ATTR, "devices": [True]}, {}, "devices[0]: expected a device id"),
    ({"when": ATTR, "devices": [1, 2]}, {"device_ids": {1}}, "devices[1]: device 2 does not exist"),
    ({"when": ATTR, "groups": [0]}, {}, "groups[0]: expected a group id (a positive integer), got 0"),
    ({"when": ATTR, "groups": [4]}, {"group_ids": set()}, "groups[0]: group 4 does not exist"),
    ({"when": ATTR, "zone": "depot"}, {}, "zone: expected a geofence id"),
    ({"when": ATTR, "zone": 3}, {"zone_ids": {1, 2}}, "zone: geofence 3 does not exist"),
    ({"when": ATTR, "calendar": 2.5}, {}, "calendar: expected a calendar id"),
    ({"when": ATTR, "calendar": 3}, {"calendar_ids": []}, "calendar: calendar 3 does not exist"),
    ({"when": ATTR, "then": "notify"}, {}, "then: expected an object"),
    ({"when": ATTR, "then": {"typ": "x"}}, {}, "then.typ: unknown key; expected type, message, alarm"),
    ({"when": ATTR, "then": {"type": "my event"}}, {}, "then.type: must match"),
    ({"when": ATTR, "then": {"type": ""}}, {}, "then.type: must match"),
    ({"when": ATTR, "then": {"type": "alarm"}}, {}, "then.alarm: required with type alarm"),
    ({"when": ATTR, "then": {"type": "custom", "alarm": "sos"}}, {},
     "then.alarm: only allowed with type alarm"),
    ({"when": ATTR, "then": {"message": 5}}, {}, "then.message: expected a string"),
    ({"when": ATTR, "then": {"message": "x" * 501}}, {}, "then.message: at most 500 characters"),
    ({"when": ATTR, "then": {"message": "{__class__}"}}, {}, "then.message: unknown placeholder {__class__}"),
    ({"when": ATTR, "then": {"message": "{device.__class__}"}}, {}, "then.message: unknown placeholder"),
    ({"when": ATTR, "then": {"message": "{0}"}}, {}, "then.message: unknown placeholder {0}"),
    ({"when": ATTR, "then": {"message": "{}"}}, {}, "then.message: unknown placeholder {}"),
    ({"when": ATTR, "then": {"message": "{value!r}"}}, {}, "then.message: unknown placeholder {value!r}"),
    ({"when": ATTR, "then": {"message": "hot {"}}, {}, "then.message: unbalanced '{' at position 4"),
    ({"when": ATTR, "then": {"message": "hot } now"}}, {}, "then.message: unbalanced '}' at position 4"),
    ({"when": ATTR, "then": {"message": "{value"}}, {}, "then.message: unbalanced '{' at position 0"),
])
def test_invalid_definitions_name_the_path(definition, known, message):
    with pytest.raises(RuleError) as caught:
        parse(definition, **known)
    assert message in str(caught.value)


def test_rule_error_is_a_value_error():
    assert issubclass(RuleError, ValueError)


def render(message: str, **values) -> str:
    return parse({"when": ATTR, "then": {"message": message}}).render(values)


def test_message_placeholders_and_literal_braces():
    assert render("{value}", value=9.5) == "9.5"
    assert render("Fridge {device}: {attribute} is {value} (> {threshold}) in {zone} by {rule}",
                  device="Van 1", attribute="temp", value=9, threshold=8, zone="Depot", rule="cold") == \
        "Fridge Van 1: temp is 9 (> 8) in Depot by cold"
    assert render("{{value}} is {value}", value=True) == "{value} is true"
    assert render("}}{{", value=1) == "}{"
    assert render("no placeholders") == "no placeholders"
    assert render("") == ""


def test_rendering_substitutes_once_and_never_evaluates():
    # a value that looks like a placeholder or a format field stays as it is
    rendered = render("{device} / {value}", device="{rule}", value="{0.__class__}", rule="x")
    assert rendered == "{rule} / {0.__class__}"


def test_missing_message_uses_the_documented_default():
    rule = parse({"when": ATTR})
    assert rule.render({"rule": "hot", "device": "Van", "attribute": "t", "value": 3}) == "hot: Van t is 3"
    event = parse({"when": {"event": "alarm"}})
    assert event.render({"rule": "panic", "device": "Van", "attribute": "alarm"}) == "panic: Van alarm"


def test_text_of_values():
    assert [text_of(v) for v in (None, True, False, 8.0, 8.25, 12, "x", [1, 2])] == \
        ["", "true", "false", "8", "8.25", "12", "x", "[1, 2]"]


def test_to_number_accepts_bool_int_float_and_numeric_strings_only():
    assert [to_number(v) for v in (True, 3, 2.5, " 7.5 ", "1e3")] == [1.0, 3.0, 2.5, 7.5, 1000.0]
    assert [to_number(v) for v in ("abc", "", None, [1], float("nan"), "inf", float("inf"))] == [None] * 7


@pytest.mark.parametrize(("operator", "threshold", "observed", "expected"), [
    (">", 8, 9, True), (">", 8, 8, False), (">", 8, "9.5", True), (">", 8, "warm", False),
    (">", 8, None, False),
    (">=", 8, 8, True), (">=", 8, 7.99, False),
    ("<", 0, -1, True), ("<", 0, 0, False), ("<", 1, False, True),
    ("<=", 0, 0, True), ("<=", 0, 0.01, False),
    ("==", 5, 5.0, True), ("==", 5, "5", True), ("==", 5, 6, False), ("==", 5, "five", False),
    ("!=", 5, 6, True), ("!=", 5, 5, False), ("!=", 5, "five", False),     # non-numeric: false, for != too
    ("==", "open", "open", True), ("==", "open", "closed", False), ("==", "1", 1, False),
    ("!=", "open", "closed", True), ("!=", "open", "open", False), ("!=", "1", 1, False),
    ("==", True, True, True), ("==", True, "true", True), ("==", True, 1, True), ("==", True, False, False),
    ("!=", True, False, True), ("!=", False, "maybe", False), ("==", False, 0, True),
])
def test_comparisons(operator, threshold, observed, expected):
    assert AttributeCondition("x", operator, threshold).holds(observed, None) is expected


@pytest.mark.parametrize(("operator", "previous", "observed", "expected"), [
    ("dropsBy", 80.0, 70, True), ("dropsBy", 80.0, 71, False), ("dropsBy", 80.0, 90, False),
    ("dropsBy", None, 10, False), ("dropsBy", 80.0, "n/a", False),
    ("risesBy", 10.0, 20, True), ("risesBy", 10.0, 19.5, False), ("risesBy", 10.0, 0, False),
])
def test_changes_compare_with_the_previous_value(operator, previous, observed, expected):
    assert AttributeCondition("fuel", operator, 10).holds(observed, previous) is expected


def test_remember_keeps_the_last_numeric_value_for_changes_only():
    drops = AttributeCondition("fuel", "dropsBy", 10)
    assert drops.remember("55", 60.0) == 55.0
    assert drops.remember("n/a", 60.0) == 60.0
    assert AttributeCondition("fuel", ">", 10).remember(55, None) is None


def test_event_condition_matches_type_and_value():
    time = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    sos = Happening(EventType.ALARM, time, {"alarm": "sos"})
    enter = Happening(EventType.GEOFENCE_ENTER, time, {"geofenceId": 3}, geofence_id=3)
    assert EventCondition("alarm").matches(sos)
    assert EventCondition("alarm", "sos").matches(sos)
    assert not EventCondition("alarm", "fall").matches(sos)
    assert EventCondition("geofenceEnter", 3).matches(enter)
    assert not EventCondition("geofenceEnter", 4).matches(enter)
    assert not EventCondition("geofenceExit").matches(enter)
