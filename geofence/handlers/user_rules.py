"""User rules (`geofence.rules.Rule`): always the last handler of the chain.

The `Engine` appends `UserRulesHandler` after the registry, so user rules see every
built-in happening of the call and their own happenings trigger no other rule.

User rules apply to devices of their organisation that they target, by rule id.  An
attribute condition is evaluated on every fix and status report that carries the
attribute (a report without it changes nothing: no evidence); it fires once per
episode, when it has held on every such report for ``for`` seconds (for 0: on the
report where it becomes true; a fresh state counts as false); dropsBy / risesBy
compare with the last numeric value of the attribute and are episodes too
(consecutive drops fire once).  The rule's ``zone`` holds when the device is inside it
by membership after this report's zone processing; for a zone not assigned to the
device the fix position is tested directly (a status report then counts as outside).
The ``calendar`` (looked up in the engine's calendars; an unknown id never holds) must
be active at the report time.  A failing zone or calendar filter makes the condition
false (ending an episode).  An event condition matches the built-in happenings of the
same call (`fix`, `status`, `connected`, `disconnected`, `tick`) and fires once per
call, at the first match's time.  The result is ``Happening(then.type, time,
{"ruleId", "message", ...})`` with ``attribute`` and ``value`` for attribute
conditions, ``event`` for event conditions and ``alarm`` for type alarm; its
geofence_id is the rule's zone, else the matched event's zone.

Slice ``"rules"``: ``{rule id: {"since": iso, "fired": bool, "last": number}}``; the
memory of a rule no longer in the configuration is dropped.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import shapely

from geofence.chain import (
    Handler,
    Report,
    Slice,
    Step,
    as_mapping,
    by_id,
    iso,
    parse_flag,
    parse_float,
    parse_time,
    seconds,
)
from geofence.events import EventType
from geofence.handlers.geofences import GeofenceHandler
from geofence.records import DeviceContext, Fix, Happening
from geofence.rules import AttributeCondition, EventCondition, Rule

__all__ = ["RuleMemories", "RuleMemory", "UserRulesHandler"]


@dataclass(slots=True)
class RuleMemory:
    """A user rule's episode: true since `since`, fired or not; `last` numeric value."""

    since: dt.datetime | None = None
    fired: bool = False
    last: float | None = None


@dataclass(slots=True)
class RuleMemories(Slice):
    by_rule: dict[int, RuleMemory] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {str(rule_id): {"since": iso(memory.since), "fired": memory.fired, "last": memory.last}
                for rule_id, memory in self.by_rule.items()}

    @classmethod
    def from_json(cls, obj: Any) -> RuleMemories:
        memories = cls()
        for rule_id, raw in by_id(obj):
            memory = as_mapping(raw)
            memories.by_rule[rule_id] = RuleMemory(parse_time(memory.get("since")),
                                                   bool(parse_flag(memory.get("fired"))),
                                                   parse_float(memory.get("last")))
        return memories


@dataclass(frozen=True, slots=True)
class _Trigger:
    """Why a user rule fires: placeholder values and the happening's details."""

    time: dt.datetime
    at_fix: bool
    attribute: str
    value: Any
    threshold: Any
    geofence_id: int | None
    extra: dict[str, Any]


class UserRulesHandler(Handler[RuleMemories]):
    name = "rules"
    slice_type = RuleMemories

    def on_fix(self, step: Report, mine: RuleMemories) -> list[Happening]:
        return self._rules(step, mine, step)

    on_status = on_fix

    def on_connected(self, step: Step, mine: RuleMemories) -> list[Happening]:
        return self._rules(step, mine, None)

    on_disconnected = on_tick = on_connected

    def _rules(self, step: Step, mine: RuleMemories, report: Report | None) -> list[Happening]:
        """Happenings of the organisation's rules targeting the device, by rule id.

        Without a `report` (connect, disconnect, tick) only event conditions apply."""
        ctx = step.ctx
        organisation = ctx.organisation_id
        rules = self.config.rules.get(organisation, ())
        memories = mine.by_rule
        if memories:
            known = self.config.rule_ids.get(organisation, frozenset())
            for rule_id in [rule_id for rule_id in memories if rule_id not in known]:
                del memories[rule_id]
        if not rules:
            return []
        inside = step.state.slice(GeofenceHandler).visits
        builtins = list(step.happenings)
        out: list[Happening] = []
        for rule in rules:
            if not rule.targets(ctx.device_id, ctx.group_id):
                continue
            condition = rule.when
            if isinstance(condition, EventCondition):
                happening = self._event_rule(ctx, inside, rule, condition=condition, builtins=builtins,
                                             report=report)
            elif report is not None:
                happening = self._attribute_rule(ctx, inside, mine, rule=rule, condition=condition,
                                                 report=report)
            else:
                continue
            if happening is not None:
                out.append(happening)
        return out

    def _filters(self, ctx: DeviceContext, inside: Mapping[int, Any], rule: Rule, fix: Fix | None,
                 time: dt.datetime) -> bool:
        if rule.calendar is not None:
            calendar = self.config.calendars.get(rule.calendar)
            if calendar is None or not calendar.active(time, ctx.timezone):
                return False
        zone_id = rule.zone
        if zone_id is None or zone_id in inside:
            return True
        if zone_id in ctx.zone_ids or zone_id not in self.config.zones or fix is None:
            return False  # assigned: membership decides; else test the fix itself
        return bool(self.config.geometry[zone_id].covers(shapely.Point(fix.lon, fix.lat)))

    def _happening(self, ctx: DeviceContext, rule: Rule, trigger: _Trigger) -> Happening:
        zone_rule = self.config.zones.get(trigger.geofence_id) if trigger.geofence_id is not None else None
        values = {"device": ctx.name, "rule": rule.name, "zone": zone_rule.zone.name if zone_rule else "",
                  "attribute": trigger.attribute, "value": trigger.value, "threshold": trigger.threshold}
        attributes: dict[str, Any] = {"ruleId": rule.id, "message": rule.render(values), **trigger.extra}
        if rule.then.alarm is not None:
            attributes["alarm"] = rule.then.alarm
        return Happening(rule.then.type, trigger.time, attributes, trigger.geofence_id, trigger.at_fix)

    def _event_rule(self, ctx: DeviceContext, inside: Mapping[int, Any], rule: Rule, *,
                    condition: EventCondition, builtins: Sequence[Happening],
                    report: Report | None) -> Happening | None:
        match = next((happening for happening in builtins if condition.matches(happening)), None)
        fix = report.fix if report is not None else None
        if match is None or not self._filters(ctx, inside, rule, fix, match.time):
            return None
        value = match.attributes.get("alarm") if match.type == EventType.ALARM else match.geofence_id
        return self._happening(ctx, rule, _Trigger(
            time=match.time, at_fix=match.at_fix, attribute=match.type, value=value,
            threshold=condition.value, extra={"event": match.type},
            geofence_id=rule.zone if rule.zone is not None else match.geofence_id))

    def _attribute_rule(self, ctx: DeviceContext, inside: Mapping[int, Any], mine: RuleMemories, *,
                        rule: Rule, condition: AttributeCondition, report: Report) -> Happening | None:
        present, observed = condition.observe(report.fix, report.attributes)
        if not present:
            return None  # no evidence: the episode goes on unchanged
        memory = mine.by_rule.get(rule.id) or RuleMemory()
        previous = memory.last
        memory.last = condition.remember(observed, previous)
        holds = (condition.holds(observed, previous)
                 and self._filters(ctx, inside, rule, report.fix, report.time))
        fired = None
        if not holds:
            memory.since, memory.fired = None, False
        else:
            if memory.since is None:
                memory.since = report.time
            if not memory.fired and seconds(report.time, memory.since) >= condition.for_s:
                memory.fired = True
                fired = self._happening(ctx, rule, _Trigger(
                    time=report.time, at_fix=report.at_fix, attribute=condition.attribute, value=observed,
                    threshold=condition.value, geofence_id=rule.zone,
                    extra={"attribute": condition.attribute, "value": _json_safe(observed)}))
        if memory.since is None and memory.last is None:
            mine.by_rule.pop(rule.id, None)  # nothing to remember
        else:
            mine.by_rule[rule.id] = memory
        return fired


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)
