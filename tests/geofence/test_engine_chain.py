"""The handler chain: version-1 documents stored before it still restore to the same behaviour;
a new handler needs one registry line and no change to Engine or DeviceState; the registry covers
every setting and event type."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import geofence.handlers
from geofence.chain import Handler, Report, Slice, Step, as_mapping, parse_flag
from geofence.engine import DeviceContext, DeviceState, Engine, EventType, Fix, Happening, Profile, ZoneRule
from geofence.handlers import (
    HANDLERS,
    AlarmHandler,
    GeofenceHandler,
    MotionHandler,
    OverspeedHandler,
    StatusHandler,
    UserRulesHandler,
)
from geofence.rules import parse_rule
from geofence.state import chain_of
from geofence.zones import circle, from_wkt

BERLIN = ZoneInfo("Europe/Berlin")
T0 = dt.datetime(2024, 5, 6, 6, 0, tzinfo=dt.UTC)
DEPOT = circle(1, "depot", 13.400, 52.500, 150)
YARD = from_wkt("POLYGON ((13.404 52.498, 13.408 52.498, 13.408 52.502, 13.404 52.502, 13.404 52.498))",
                2, "yard")
ZONES = [ZoneRule(DEPOT, dwell_s=600, speed_limit_kn=20), ZoneRule(YARD, hysteresis_m=20, hysteresis_fixes=2)]
RULES = [parse_rule(definition, rule_id=rule_id, organisation_id=1, name=f"rule {rule_id}")
         for rule_id, definition in [
             (1, {"when": {"attribute": "temp", "operator": ">", "value": 8, "for": 120}}),
             (2, {"when": {"attribute": "fuel", "operator": "dropsBy", "value": 10}}),
             (3, {"when": {"event": "alarm", "value": "sos"}, "then": {"type": "alarm", "alarm": "panic"}})]]
PROFILE = Profile(speed_limit_kn=40, overspeed_min_duration_s=30, moving_min_distance_m=150,
                  moving_min_duration_s=90, stopped_min_duration_s=120, idle_after_s=300,
                  inactive_after_s=1800, status_timeout_s=600, hysteresis_m=15, hysteresis_fixes=1)
CTX = DeviceContext(7, 1, "Van 7", None, frozenset({1, 2}), PROFILE, BERLIN)

# (kind, seconds after T0, ...): every built-in event and a non-fresh value in every slice
SCENARIO = [
    ("connected", 0),
    ("fix", 5, 13.4000, 52.5000, 0.0, {"ignition": True, "fuel": 80, "temp": 5}),
    ("fix", 60, 13.4001, 52.5001, 0.0, {"ignition": True, "temp": 9}),
    ("status", 90, {"alarm": "sos", "ignition": True, "fuel": 78}),
    ("fix", 120, 13.4003, 52.5002, 25.0, {"ignition": True, "alarm": "sos", "temp": 9.5}),
    ("fix", 130, 13.4006, 52.5003, 26.0, {"ignition": True, "alarm": "sos,lowBattery"}),
    ("fix", 140, 13.4050, 52.5000, 30.0, {"ignition": True}),
    ("fix", 150, 13.4055, 52.5001, 30.0, {"ignition": True, "fuel": 60}),
    ("fix", 170, 13.4060, 52.5002, 45.0, {"ignition": True}),
    ("fix", 230, 13.4100, 52.5002, 45.0, {"ignition": True, "temp": 12}),
    ("fix", 300, 13.4120, 52.5002, 0.0, {"ignition": True, "temp": 12}),
    ("tick", 400),
    ("fix", 500, 13.4120, 52.5002, 0.0, {"ignition": True}),
    ("fix", 900, 13.4120, 52.5002, 0.0, {"ignition": True}),
    ("disconnected", 950),
    ("tick", 3000),
    ("status", 3100, {"ignition": False}),
    ("fix", 3200, 13.4060, 52.5000, 5.0, {"ignition": True}),
    ("fix", 3300, 13.4061, 52.5001, 5.0, {}),
    ("fix", 3400, 13.4000, 52.5000, 5.0, {}),
    ("tick", 4100),
    ("tick", 5000),
]


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def apply(engine: Engine, state: DeviceState, operation, ctx: DeviceContext = CTX) -> list[Happening]:
    kind, seconds = operation[0], operation[1]
    if kind == "fix":
        lon, lat, speed_kn, attributes = operation[2:]
        return engine.fix(ctx, state, Fix(at(seconds), lon, lat, speed_kn=speed_kn, attributes=attributes),
                          at(seconds))
    if kind == "status":
        return engine.status(ctx, state, operation[2], at(seconds), at(seconds))
    return getattr(engine, kind)(ctx, state, at(seconds))


def plain(happening: Happening) -> tuple:
    return (str(happening.type), happening.time.isoformat(), dict(happening.attributes),
            happening.geofence_id, happening.at_fix)


# Version-1 documents written by the engine before the handler chain, at four points of
# SCENARIO, with the happenings the rest of SCENARIO gave from there and the final document.
V1_SPLITS = {
    6: (
        {'version': 1,
         'fix': {'time': '2024-05-06T06:02:10+00:00', 'lon': 13.4006, 'lat': 52.5003},
         'zones': {'1': {'since': '2024-05-06T06:00:05+00:00', 'dwell_fired': False}},
         'enter_counts': {},
         'exit_counts': {},
         'overspeed': {'since': '2024-05-06T06:02:00+00:00', 'fired': False},
         'alarms': ['lowBattery', 'sos'],
         'ignition': True,
         'motion': {'moving': False, 'since': '2024-05-06T06:02:00+00:00', 'stop': [13.4001, 52.5001]},
         'idle': {'since': None, 'fired': False},
         'status': 'online',
         'last_seen': '2024-05-06T06:02:10+00:00',
         'inactive_fired': False,
         'rules': {'2': {'since': None, 'fired': False, 'last': 78.0},
                   '1': {'since': '2024-05-06T06:01:00+00:00', 'fired': False, 'last': None}}},
        [('geofenceExit', '2024-05-06T06:02:20+00:00', {'geofenceId': 1}, 1, True),
         ('deviceMoving', '2024-05-06T06:02:20+00:00', {'since': '2024-05-06T06:02:00+00:00'}, None, True),
         ('geofenceEnter', '2024-05-06T06:02:30+00:00', {'geofenceId': 2}, 2, True),
         ('sensorThreshold', '2024-05-06T06:02:30+00:00',
          {'ruleId': 2, 'message': 'rule 2: Van 7 fuel is 60', 'attribute': 'fuel', 'value': 60}, None,
          True),
         ('deviceOverspeed', '2024-05-06T06:03:50+00:00', {'speed': 45.0, 'speedLimit': 40}, None, True),
         ('sensorThreshold', '2024-05-06T06:03:50+00:00',
          {'ruleId': 1, 'message': 'rule 1: Van 7 temp is 12', 'attribute': 'temp', 'value': 12}, None,
          True),
         ('geofenceExit', '2024-05-06T06:05:00+00:00', {'geofenceId': 2}, 2, True),
         ('deviceStopped', '2024-05-06T06:08:20+00:00', {'since': '2024-05-06T06:05:00+00:00'}, None, True),
         ('deviceIdle', '2024-05-06T06:15:00+00:00', {'since': '2024-05-06T06:05:00+00:00'}, None, True),
         ('deviceOffline', '2024-05-06T06:15:50+00:00', {}, None, False),
         ('deviceInactive', '2024-05-06T06:45:50+00:00', {'inactiveSeconds': 1800}, None, False),
         ('deviceOnline', '2024-05-06T06:51:40+00:00', {}, None, False),
         ('ignitionOff', '2024-05-06T06:51:40+00:00', {}, None, False),
         ('ignitionOn', '2024-05-06T06:53:20+00:00', {}, None, True),
         ('deviceMoving', '2024-05-06T06:53:20+00:00', {'since': '2024-05-06T06:53:20+00:00'}, None, True),
         ('geofenceEnter', '2024-05-06T06:55:00+00:00', {'geofenceId': 2}, 2, True),
         ('geofenceEnter', '2024-05-06T06:56:40+00:00', {'geofenceId': 1}, 1, True),
         ('deviceUnknown', '2024-05-06T07:06:40+00:00', {}, None, False),
         ('geofenceDwell', '2024-05-06T07:06:40+00:00', {'geofenceId': 1, 'dwellMinutes': 10}, 1, False)]),
    7: (
        {'version': 1,
         'fix': {'time': '2024-05-06T06:02:20+00:00', 'lon': 13.405, 'lat': 52.5},
         'zones': {},
         'enter_counts': {'2': 1},
         'exit_counts': {},
         'overspeed': {'since': None, 'fired': False},
         'alarms': [],
         'ignition': True,
         'motion': {'moving': True, 'since': None, 'stop': None},
         'idle': {'since': None, 'fired': False},
         'status': 'online',
         'last_seen': '2024-05-06T06:02:20+00:00',
         'inactive_fired': False,
         'rules': {'2': {'since': None, 'fired': False, 'last': 78.0},
                   '1': {'since': '2024-05-06T06:01:00+00:00', 'fired': False, 'last': None}}},
        [('geofenceEnter', '2024-05-06T06:02:30+00:00', {'geofenceId': 2}, 2, True),
         ('sensorThreshold', '2024-05-06T06:02:30+00:00',
          {'ruleId': 2, 'message': 'rule 2: Van 7 fuel is 60', 'attribute': 'fuel', 'value': 60}, None,
          True),
         ('deviceOverspeed', '2024-05-06T06:03:50+00:00', {'speed': 45.0, 'speedLimit': 40}, None, True),
         ('sensorThreshold', '2024-05-06T06:03:50+00:00',
          {'ruleId': 1, 'message': 'rule 1: Van 7 temp is 12', 'attribute': 'temp', 'value': 12}, None,
          True),
         ('geofenceExit', '2024-05-06T06:05:00+00:00', {'geofenceId': 2}, 2, True),
         ('deviceStopped', '2024-05-06T06:08:20+00:00', {'since': '2024-05-06T06:05:00+00:00'}, None, True),
         ('deviceIdle', '2024-05-06T06:15:00+00:00', {'since': '2024-05-06T06:05:00+00:00'}, None, True),
         ('deviceOffline', '2024-05-06T06:15:50+00:00', {}, None, False),
         ('deviceInactive', '2024-05-06T06:45:50+00:00', {'inactiveSeconds': 1800}, None, False),
         ('deviceOnline', '2024-05-06T06:51:40+00:00', {}, None, False),
         ('ignitionOff', '2024-05-06T06:51:40+00:00', {}, None, False),
         ('ignitionOn', '2024-05-06T06:53:20+00:00', {}, None, True),
         ('deviceMoving', '2024-05-06T06:53:20+00:00', {'since': '2024-05-06T06:53:20+00:00'}, None, True),
         ('geofenceEnter', '2024-05-06T06:55:00+00:00', {'geofenceId': 2}, 2, True),
         ('geofenceEnter', '2024-05-06T06:56:40+00:00', {'geofenceId': 1}, 1, True),
         ('deviceUnknown', '2024-05-06T07:06:40+00:00', {}, None, False),
         ('geofenceDwell', '2024-05-06T07:06:40+00:00', {'geofenceId': 1, 'dwellMinutes': 10}, 1, False)]),
    10: (
        {'version': 1,
         'fix': {'time': '2024-05-06T06:03:50+00:00', 'lon': 13.41, 'lat': 52.5002},
         'zones': {'2': {'since': '2024-05-06T06:02:30+00:00', 'dwell_fired': False}},
         'enter_counts': {},
         'exit_counts': {'2': 1},
         'overspeed': {'since': '2024-05-06T06:02:50+00:00', 'fired': True},
         'alarms': [],
         'ignition': True,
         'motion': {'moving': True, 'since': None, 'stop': None},
         'idle': {'since': None, 'fired': False},
         'status': 'online',
         'last_seen': '2024-05-06T06:03:50+00:00',
         'inactive_fired': False,
         'rules': {'2': {'since': '2024-05-06T06:02:30+00:00', 'fired': True, 'last': 60.0},
                   '1': {'since': '2024-05-06T06:01:00+00:00', 'fired': True, 'last': None}}},
        [('geofenceExit', '2024-05-06T06:05:00+00:00', {'geofenceId': 2}, 2, True),
         ('deviceStopped', '2024-05-06T06:08:20+00:00', {'since': '2024-05-06T06:05:00+00:00'}, None, True),
         ('deviceIdle', '2024-05-06T06:15:00+00:00', {'since': '2024-05-06T06:05:00+00:00'}, None, True),
         ('deviceOffline', '2024-05-06T06:15:50+00:00', {}, None, False),
         ('deviceInactive', '2024-05-06T06:45:50+00:00', {'inactiveSeconds': 1800}, None, False),
         ('deviceOnline', '2024-05-06T06:51:40+00:00', {}, None, False),
         ('ignitionOff', '2024-05-06T06:51:40+00:00', {}, None, False),
         ('ignitionOn', '2024-05-06T06:53:20+00:00', {}, None, True),
         ('deviceMoving', '2024-05-06T06:53:20+00:00', {'since': '2024-05-06T06:53:20+00:00'}, None, True),
         ('geofenceEnter', '2024-05-06T06:55:00+00:00', {'geofenceId': 2}, 2, True),
         ('geofenceEnter', '2024-05-06T06:56:40+00:00', {'geofenceId': 1}, 1, True),
         ('deviceUnknown', '2024-05-06T07:06:40+00:00', {}, None, False),
         ('geofenceDwell', '2024-05-06T07:06:40+00:00', {'geofenceId': 1, 'dwellMinutes': 10}, 1, False)]),
    16: (
        {'version': 1,
         'fix': {'time': '2024-05-06T06:15:00+00:00', 'lon': 13.412, 'lat': 52.5002},
         'zones': {},
         'enter_counts': {},
         'exit_counts': {},
         'overspeed': {'since': None, 'fired': False},
         'alarms': [],
         'ignition': True,
         'motion': {'moving': False, 'since': None, 'stop': [13.412, 52.5002]},
         'idle': {'since': '2024-05-06T06:05:00+00:00', 'fired': True},
         'status': 'offline',
         'last_seen': '2024-05-06T06:15:50+00:00',
         'inactive_fired': True,
         'rules': {'2': {'since': '2024-05-06T06:02:30+00:00', 'fired': True, 'last': 60.0},
                   '1': {'since': '2024-05-06T06:01:00+00:00', 'fired': True, 'last': None}}},
        [('deviceOnline', '2024-05-06T06:51:40+00:00', {}, None, False),
         ('ignitionOff', '2024-05-06T06:51:40+00:00', {}, None, False),
         ('ignitionOn', '2024-05-06T06:53:20+00:00', {}, None, True),
         ('deviceMoving', '2024-05-06T06:53:20+00:00', {'since': '2024-05-06T06:53:20+00:00'}, None, True),
         ('geofenceEnter', '2024-05-06T06:55:00+00:00', {'geofenceId': 2}, 2, True),
         ('geofenceEnter', '2024-05-06T06:56:40+00:00', {'geofenceId': 1}, 1, True),
         ('deviceUnknown', '2024-05-06T07:06:40+00:00', {}, None, False),
         ('geofenceDwell', '2024-05-06T07:06:40+00:00', {'geofenceId': 1, 'dwellMinutes': 10}, 1, False)]),
}
V1_FINAL = {'version': 1,
            'fix': {'time': '2024-05-06T06:56:40+00:00', 'lon': 13.4, 'lat': 52.5},
            'zones': {'2': {'since': '2024-05-06T06:55:00+00:00', 'dwell_fired': False},
                      '1': {'since': '2024-05-06T06:56:40+00:00', 'dwell_fired': True}},
            'enter_counts': {},
            'exit_counts': {'2': 1},
            'overspeed': {'since': None, 'fired': False},
            'alarms': [],
            'ignition': True,
            'motion': {'moving': True, 'since': None, 'stop': None},
            'idle': {'since': None, 'fired': False},
            'status': 'unknown',
            'last_seen': '2024-05-06T06:56:40+00:00',
            'inactive_fired': False,
            'rules': {'2': {'since': '2024-05-06T06:02:30+00:00', 'fired': True, 'last': 60.0},
                      '1': {'since': '2024-05-06T06:01:00+00:00', 'fired': True, 'last': None}}}


# --- version 1 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("split", sorted(V1_SPLITS))
def test_a_version_1_document_restores_to_the_same_behaviour(split):
    """The rest of the scenario from a restored version-1 document gives what the old engine gave."""
    document, expected = V1_SPLITS[split]
    engine = Engine(ZONES, RULES)
    state = DeviceState.from_json(json.loads(json.dumps(document)))
    got = [plain(h) for operation in SCENARIO[split:] for h in apply(engine, state, operation)]
    assert got == expected
    assert state == DeviceState.from_json(V1_FINAL)
    assert DeviceState.from_json(state.to_json()) == state      # and it is written as version 2


def test_a_version_1_document_fills_every_slice():
    state = DeviceState.from_json(V1_SPLITS[6][0])
    assert (state.fix_time, state.fix_lon, state.fix_lat) == (at(130), 13.4006, 52.5003)
    assert state.slice(StatusHandler).status == "online"
    assert state.slice(AlarmHandler).active == {"sos", "lowBattery"}
    assert state.slice(GeofenceHandler).visits[1].since == at(5)
    assert state.slice(OverspeedHandler).since == at(120)
    assert state.slice(MotionHandler).since == at(120) and state.slice(MotionHandler).stop_lon == 13.4001
    assert state.slice(UserRulesHandler).by_rule[2].last == 78.0
    assert DeviceState.from_json(V1_SPLITS[7][0]).slice(GeofenceHandler).enter_counts == {2: 1}
    offline = DeviceState.from_json(V1_SPLITS[16][0])
    assert offline.slice(StatusHandler).status == "offline"
    assert offline.to_json()["inactive"] == {"fired": True}
    assert offline.to_json()["idle"] == {"since": at(300).isoformat(), "fired": True}


def test_version_1_episodes_in_progress_carry_on():
    """Active alarms, a running overspeed episode and a fired deviceInactive survive the upgrade."""
    engine = Engine(ZONES, RULES)
    alarms = DeviceState.from_json(V1_SPLITS[6][0])
    assert engine.status(CTX, alarms, {"alarm": "lowBattery,sos"}, at(135), at(135)) == []
    speeding = DeviceState.from_json(V1_SPLITS[6][0])          # over the depot's 20 kn since 120 s
    over = [h for h in engine.fix(CTX, speeding, Fix(at(150), 13.4006, 52.5003, speed_kn=25), at(150))
            if h.type == "deviceOverspeed"]
    assert over == [Happening("deviceOverspeed", at(150), {"speed": 25, "speedLimit": 20, "geofenceId": 1},
                              1)]
    silent = DeviceState.from_json(V1_SPLITS[16][0])           # deviceInactive fired at 2750 s
    assert engine.tick(CTX, silent, at(9000)) == []


def test_the_current_engine_replays_the_recorded_scenario_unchanged():
    """The chain gives, from a fresh state, what the old engine gave from the recorded points on."""
    engine, state = Engine(ZONES, RULES), DeviceState()
    happenings = [[plain(h) for h in apply(engine, state, operation)] for operation in SCENARIO]
    for split, (_, expected) in V1_SPLITS.items():
        assert [h for batch in happenings[split:] for h in batch] == expected


# --- a new handler ------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class Stay(Slice):
    """Fixes in a row inside any zone; fired once per stay."""

    fixes: int = 0
    fired: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"fixes": self.fixes, "fired": self.fired}

    @classmethod
    def from_json(cls, obj: Any) -> Stay:
        data = as_mapping(obj)
        fixes = data.get("fixes")
        return cls(fixes if isinstance(fixes, int) and not isinstance(fixes, bool) and fixes > 0 else 0,
                   bool(parse_flag(data.get("fired"))))


class LongStayHandler(Handler[Stay]):
    """toyLongStay {fixes} on the third fix in a row inside a zone; deviceOffline resets it."""

    name = "toy_long_stay"
    slice_type = Stay
    events = ("toyLongStay",)

    def on_fix(self, step: Report, mine: Stay) -> list[Happening]:
        if not step.state.slice(GeofenceHandler).visits:     # an earlier handler's slice
            mine.fixes, mine.fired = 0, False
            return []
        mine.fixes += 1
        if mine.fired or mine.fixes < 3:
            return []
        mine.fired = True
        return [Happening("toyLongStay", step.time, {"fixes": mine.fixes})]

    def on_disconnected(self, step: Step, mine: Stay) -> list[Happening]:
        mine.fixes, mine.fired = 0, False
        return []


TOY_CHAIN = (*HANDLERS, LongStayHandler)
INSIDE = [("fix", 100 + 10 * n, 13.4000, 52.5000, 0.0, {}) for n in range(5)]     # 100 s .. 140 s
TOY_SCENARIO = [("connected", 0), ("fix", 5, 13.4000, 52.5000, 0.0, {}), *INSIDE[:2], ("tick", 115),
                ("disconnected", 116), *INSIDE[2:]]


def toy_run(engine: Engine, operations, state: DeviceState | None = None) -> tuple[list, DeviceState]:
    state = state if state is not None else DeviceState()
    ctx = dataclasses.replace(CTX, zone_ids=frozenset({1}))
    return [h for operation in operations for h in apply(engine, state, operation, ctx)], state


def test_a_new_handler_emits_its_happenings_before_the_user_rules():
    happenings, state = toy_run(Engine(ZONES, RULES, handlers=TOY_CHAIN),
                                [("fix", 1, 13.4000, 52.5000, 0.0, {}), *INSIDE[:3]])
    stays = [h for h in happenings if h.type == "toyLongStay"]
    assert stays == [Happening("toyLongStay", at(110), {"fixes": 3})]
    assert state.to_json()["toy_long_stay"] == {"fixes": 4, "fired": True}
    without, _ = toy_run(Engine(ZONES, RULES), [("fix", 1, 13.4000, 52.5000, 0.0, {}), *INSIDE[:3]])
    assert [h for h in happenings if h.type != "toyLongStay"] == without


@pytest.mark.parametrize("split", range(len(TOY_SCENARIO) + 1))
def test_a_new_handler_s_slice_is_persisted_and_restored(split):
    engine = Engine(ZONES, RULES, handlers=TOY_CHAIN)
    expected, _ = toy_run(engine, TOY_SCENARIO)
    assert [(h.time, h.attributes) for h in expected if h.type == "toyLongStay"] == [
        (at(110), {"fixes": 3}), (at(140), {"fixes": 3})]           # the disconnection reset it
    got, before = toy_run(engine, TOY_SCENARIO[:split])
    after = DeviceState.from_json(json.loads(json.dumps(before.to_json())), handlers=TOY_CHAIN)
    assert after == before
    rest, _ = toy_run(engine, TOY_SCENARIO[split:], after)
    assert got + rest == expected


def test_one_registry_line_is_all_a_new_handler_needs(monkeypatch):
    """With the handler in the registry, the plain Engine and DeviceState.from_json pick it up."""
    monkeypatch.setattr(geofence.handlers, "HANDLERS", TOY_CHAIN)
    engine = Engine(ZONES, RULES)
    _, before = toy_run(engine, TOY_SCENARIO[:5])
    document = before.to_json()
    assert document["toy_long_stay"] == {"fixes": 3, "fired": True}
    after = DeviceState.from_json(document)
    rest, _ = toy_run(engine, TOY_SCENARIO[5:], after)
    assert [h for h in rest if h.type == "toyLongStay"] == [Happening("toyLongStay", at(140), {"fixes": 3})]
    monkeypatch.setattr(geofence.handlers, "HANDLERS", HANDLERS)
    assert "toy_long_stay" not in DeviceState.from_json(document).slices    # unknown again: dropped


def test_handler_names_must_be_unique_and_not_reserved():
    class Clash(LongStayHandler):
        name = "status"

    class Fix_(LongStayHandler):
        name = "fix"

    for bad in (Clash, Fix_):
        with pytest.raises(ValueError, match=bad.name):
            Engine(ZONES, handlers=(*HANDLERS, bad))


# --- the registry -------------------------------------------------------------------------------


def test_user_rules_always_run_last_and_once():
    assert chain_of() == (*HANDLERS, UserRulesHandler)
    assert chain_of((UserRulesHandler, StatusHandler)) == (StatusHandler, UserRulesHandler)
    assert [type(h) for h in Engine(ZONES).handlers] == [*HANDLERS, UserRulesHandler]


def test_every_profile_setting_is_read_by_a_handler_and_every_event_type_emitted():
    read = {setting for handler in HANDLERS for setting in handler.settings}
    assert read == {field.name for field in dataclasses.fields(Profile)}
    emitted = [event for handler in HANDLERS for event in handler.events]
    assert sorted(emitted) == sorted(EventType) and len(set(emitted)) == len(emitted)


@pytest.mark.parametrize("handler", chain_of(), ids=lambda handler: handler.name)
def test_every_slice_round_trips_and_reads_garbage_as_fresh(handler):
    fresh = handler.slice_type()
    assert handler.slice_type.from_json(json.loads(json.dumps(fresh.to_json()))) == fresh
    for garbage in (None, 5, "x", [], {"x": 1}, [[1]]):
        assert handler.slice_type.from_json(garbage) == fresh, garbage
