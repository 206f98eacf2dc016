"""Domain decisions that storage applies inside its transactions (pure: no SQL).

The SQL code (`tracker.storage`) reads the rows, asks these functions what to do,
and writes what they answer, so the decisions are stated (and tested) once, here:

- `notifies`: which new events get a notification outbox row (all but
  ``commandResult``, which answers a command instead);
- `answer_commands`: which sent command a device's ``commandResult`` answers (its
  oldest command still "sent"), and the stored result text;
- `rule_references`: the geofences and calendars a stored rule definition names
  (so a rule's references are checked, and a zone a rule names is not deleted).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Final

from geofence.events import GEOFENCE_EVENTS
from geofence.rules import EventCondition, RuleError, parse_rule

NOT_NOTIFIED: Final = frozenset({"commandResult"})
"""Event types that never go to the notification outbox."""

MAX_RESULT_CHARS: Final = 2000
"""A command's stored result (answer or failure reason) is cut to this length."""


def notifies(event_type: str) -> bool:
    """Whether a newly stored event of this type is put in the notification outbox."""
    return event_type not in NOT_NOTIFIED


def result_text(result: Any) -> str:
    """A command result as stored: text, at most `MAX_RESULT_CHARS` characters."""
    return str(result)[:MAX_RESULT_CHARS]


# -- commands: which sent command a device's answer answers ---------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CommandResult:
    """A newly stored ``commandResult`` event of a device."""

    device_id: int
    result_time: dt.datetime
    attributes: Mapping[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class CommandAnswer:
    """Mark command `command_id` "answered" at `result_time` with `result`."""

    command_id: int
    result_time: dt.datetime
    result: str


def answer_commands(results: Sequence[CommandResult],
                    sent: Mapping[int, Sequence[int]]) -> list[CommandAnswer]:
    """The commands the `results` answer, given the ids of each device's commands
    still "sent" (`sent`: device_id -> ids, any order).

    Devices answer in the order they were sent commands and the answer does not
    say which command it is for, so each result, in order, answers its device's
    oldest command still sent (the smallest id) and that command is then no
    longer "sent"; a result with no sent command left answers nothing.  The
    result text is ``attributes["result"]`` (empty if absent), cut to
    `MAX_RESULT_CHARS`.
    """
    waiting = {device_id: sorted(ids, reverse=True) for device_id, ids in sent.items()}
    answers: list[CommandAnswer] = []
    for result in results:
        queue = waiting.get(result.device_id)
        if queue:
            answers.append(CommandAnswer(queue.pop(), result.result_time,
                                         result_text(result.attributes.get("result", ""))))
    return answers


# -- rules: what a definition refers to -------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class RuleReferences:
    zones: frozenset[int] = frozenset()
    calendars: frozenset[int] = frozenset()


def rule_references(definition: Mapping[str, Any]) -> RuleReferences:
    """The geofences (``zone``, and the ``when.value`` of a geofence event condition)
    and calendars (``calendar``) a stored rule definition names.

    A definition that `geofence.rules.parse_rule` accepts is read by it, the one
    place that knows the format.  Storage does not refuse definitions that do not
    parse (callers validate; older rows may predate a rule of the format), so for
    those the ids are collected leniently, erring towards "referenced": an int (or
    list of ints) under a ``zone`` / ``calendar`` key at any depth, and a geofence
    event's ``when.value``.  For every valid definition both readings agree.
    """
    try:
        rule = parse_rule(definition, rule_id=0, organisation_id=0, name="")
    except RuleError:
        return _lenient_references(definition)
    zones = {rule.zone} if rule.zone is not None else set()
    if isinstance(rule.when, EventCondition) and rule.when.event in GEOFENCE_EVENTS \
            and isinstance(rule.when.value, int):
        zones.add(rule.when.value)
    return RuleReferences(frozenset(zones),
                          frozenset({rule.calendar} if rule.calendar is not None else ()))


def _lenient_references(definition: Any) -> RuleReferences:
    zones = _ids_under(definition, "zone")
    when = definition.get("when") if isinstance(definition, Mapping) else None
    if isinstance(when, Mapping) and isinstance(when.get("event"), str) \
            and when["event"].startswith("geofence"):
        zones |= _ids(when.get("value"))
    return RuleReferences(frozenset(zones), frozenset(_ids_under(definition, "calendar")))


def _ids_under(value: Any, key: str) -> set[int]:
    found: set[int] = set()
    if isinstance(value, Mapping):
        for name, item in value.items():
            if name == key:
                found |= _ids(item)
            found |= _ids_under(item, key)
    elif isinstance(value, list):
        for item in value:
            found |= _ids_under(item, key)
    return found


def _ids(value: Any) -> set[int]:
    items = value if isinstance(value, list) else [value]
    return {item for item in items if isinstance(item, int) and not isinstance(item, bool)}
