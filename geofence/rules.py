"""User rules: a fleet manager's condition -> event, stored as JSON and validated here.

Stored definition (`parse_rule` reads it, `Rule.to_json` writes the canonical form)::

    {"when": {"attribute": "temperature1", "operator": ">", "value": 8, "for": 300},
     "devices": [1, 2], "groups": [5], "zone": 12, "calendar": 3,
     "then": {"type": "sensorThreshold", "message": "Fridge {device}: {attribute} is {value}"}}

    {"when": {"event": "alarm", "value": "sos"}, "then": {"type": "alarm", "alarm": "panic"}}

when (exactly one kind):

- Attribute condition: ``attribute`` matches ``[A-Za-z][A-Za-z0-9_.]{0,63}`` (a flat
  key: dots are part of the name, not a path).  The position fields `POSITION_FIELDS`
  (speed in knots, course, altitude, accuracy, valid, latitude, longitude) come from the
  fix; every other name from the report's attributes.  ``operator``:

  - ``<  <=  >  >=``: ``value`` a finite number;
  - ``==  !=``: ``value`` a number, a string (<= 256 chars) or a boolean;
  - ``dropsBy  risesBy``: ``value`` a positive number: the attribute fell (rose) by at
    least ``value`` since the previous report that had it as a number; ``for`` is not
    allowed.

  ``for``: seconds the condition must hold on every report, 0..604800, default 0.
  Comparison never evaluates anything: numbers compare as floats (attribute values
  that are bool, int, float or numeric strings convert; anything else makes a numeric
  condition false, for ``!=`` too); a string ``value`` matches only string attributes;
  a boolean ``value`` matches booleans, ``"true"``/``"false"`` and 1/0.
- Event condition: ``event`` one of the engine's event types (`EventType`); optional
  ``value``: the alarm (identifier string) for ``alarm``, the geofence id for the
  geofence events; no other event takes a value, and ``for`` is not allowed.

devices / groups: lists of ids; both empty or missing means every device of the rule's
organisation.  zone: a geofence id or null (the rule holds only while the device is
inside it).  calendar: a calendar id or null (only while it is active).  When
`parse_rule` is given the ids that exist (``*_ids``), references must be among them.

then: ``type`` matches ``[A-Za-z][A-Za-z0-9_]{0,63}``; default ``sensorThreshold`` for
attribute conditions and ``ruleTriggered`` for event conditions (so a rule needs no
``then`` at all).  ``alarm`` (same pattern) is required with type ``alarm`` and not
allowed otherwise.  ``message`` (<= 500 characters) is a template with the
placeholders `PLACEHOLDERS`; ``{{`` and ``}}`` are literal braces; any other
placeholder or a lone brace is an error.  Without a message the engine uses
`DEFAULT_MESSAGES`.  Rendering is a regex substitution of the pre-parsed template:
user text is never handed to ``str.format``, so ``{device.__class__}`` cannot reach
an attribute.

Unknown keys are rejected at every level (typos must not silently disable a rule).
Errors raise `RuleError` (a `ValueError`) whose message starts with the path of the
field: ``when.operator: must be one of <, <=, >, >=, ==, !=, dropsBy, risesBy``.

Canonical form (`Rule.to_json`): every key present (``devices``/``groups`` sorted, ``zone``
and ``calendar`` possibly null), ``then.type`` explicit, ``for`` only for comparison
operators, event ``value`` and ``then.message``/``then.alarm`` only when set.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from geofence.events import GEOFENCE_EVENTS, EventType

__all__ = [
    "DEFAULT_MESSAGES",
    "MAX_FOR_S",
    "MAX_MESSAGE_CHARS",
    "OPERATORS",
    "PLACEHOLDERS",
    "POSITION_FIELDS",
    "Action",
    "AttributeCondition",
    "EventCondition",
    "Rule",
    "RuleError",
    "parse_rule",
    "text_of",
    "to_number",
]

OPERATORS = ("<", "<=", ">", ">=", "==", "!=", "dropsBy", "risesBy")
_CHANGE_OPERATORS = ("dropsBy", "risesBy")
# attribute name -> Fix field
POSITION_FIELDS: Mapping[str, str] = {
    "speed": "speed_kn", "course": "course_deg", "altitude": "altitude_m", "accuracy": "accuracy_m",
    "valid": "valid", "latitude": "lat", "longitude": "lon",
}
PLACEHOLDERS = ("device", "attribute", "value", "threshold", "zone", "rule")
DEFAULT_MESSAGES = {"attribute": "{rule}: {device} {attribute} is {value}",
                    "event": "{rule}: {device} {attribute}"}
MAX_FOR_S = 604_800
MAX_MESSAGE_CHARS = 500
MAX_STRING_VALUE = 256
_ATTRIBUTE = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,63}")
_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_TOP_KEYS = ("when", "devices", "groups", "zone", "calendar", "then")
_ATTRIBUTE_KEYS = ("attribute", "operator", "value", "for")
_EVENT_KEYS = ("event", "value")
_THEN_KEYS = ("type", "message", "alarm")


class RuleError(ValueError):
    """A rule definition that is not valid; the message starts with the field's path."""


# --- values ------------------------------------------------------------------------


def to_number(value: Any) -> float | None:
    """`value` as a finite float (bool, int, float, numeric string), else None."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _to_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    return None


def text_of(value: Any) -> str:
    """How a value appears in a rendered message."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, int | str):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


# --- records -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttributeCondition:
    """``attribute operator value`` held for `for_s` seconds."""

    kind: ClassVar[str] = "attribute"
    attribute: str
    operator: str
    value: float | int | str | bool
    for_s: float | int = 0

    @property
    def uses_previous(self) -> bool:
        """dropsBy / risesBy compare with the previous numeric value."""
        return self.operator in _CHANGE_OPERATORS

    def observe(self, fix: Any, attributes: Mapping[str, Any]) -> tuple[bool, Any]:
        """(present, value) of the attribute in a report: a position field of `fix`
        (a `geofence.engine.Fix`, or None for a status report), else `attributes`."""
        field_name = POSITION_FIELDS.get(self.attribute)
        if fix is not None and field_name is not None:
            return True, getattr(fix, field_name)
        if self.attribute in attributes:
            return True, attributes[self.attribute]
        return False, None

    def remember(self, observed: Any, previous: float | None) -> float | None:
        """The value to compare the next report with (dropsBy / risesBy only)."""
        if not self.uses_previous:
            return None
        number = to_number(observed)
        return previous if number is None else number

    def holds(self, observed: Any, previous: float | None) -> bool:
        """Whether the condition holds for the `observed` value (`previous`: the last
        numeric value of the attribute, for dropsBy / risesBy)."""
        operator, threshold = self.operator, self.value
        if operator in _CHANGE_OPERATORS:
            number = to_number(observed)
            if number is None or previous is None:
                return False
            change = previous - number if operator == "dropsBy" else number - previous
            return isinstance(threshold, int | float) and change >= threshold   # numeric: validated
        if isinstance(threshold, bool):
            flag = _to_bool(observed)
            return flag is not None and (flag == threshold) == (operator == "==")
        if isinstance(threshold, str):
            return isinstance(observed, str) and (observed == threshold) == (operator == "==")
        number = to_number(observed)
        if number is None:
            return False
        return {"<": number < threshold, "<=": number <= threshold, ">": number > threshold,
                ">=": number >= threshold, "==": number == threshold, "!=": number != threshold}[operator]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"attribute": self.attribute, "operator": self.operator, "value": self.value}
        if not self.uses_previous:
            out["for"] = self.for_s
        return out


@dataclass(frozen=True, slots=True)
class EventCondition:
    """A built-in event of the same evaluation, optionally only for one alarm / zone."""

    kind: ClassVar[str] = "event"
    event: str
    value: str | int | None = None

    def matches(self, happening: Any) -> bool:
        """Whether the built-in `happening` (a `geofence.engine.Happening`) matches."""
        if happening.type != self.event:
            return False
        if self.value is None:
            return True
        if self.event == EventType.ALARM:
            return happening.attributes.get("alarm") == self.value
        return happening.geofence_id == self.value

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.event}
        if self.value is not None:
            out["value"] = self.value
        return out


@dataclass(frozen=True, slots=True)
class Action:
    """What a rule emits: an event of `type` with a rendered `message`."""

    type: str
    message: str | None = None
    alarm: str | None = None
    # the message template, parsed: (placeholder name or "", literal text) pieces
    pieces: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.message is not None:
            out["message"] = self.message
        if self.alarm is not None:
            out["alarm"] = self.alarm
        return out


@dataclass(frozen=True, slots=True)
class Rule:
    """A validated user rule; see the module docstring."""

    id: int
    organisation_id: int
    name: str
    when: AttributeCondition | EventCondition
    then: Action
    devices: frozenset[int] = frozenset()
    groups: frozenset[int] = frozenset()
    zone: int | None = None
    calendar: int | None = None

    def targets(self, device_id: int, group_id: int | None) -> bool:
        """Whether the rule applies to this device (organisation checked by the caller)."""
        if not self.devices and not self.groups:
            return True
        return device_id in self.devices or (group_id is not None and group_id in self.groups)

    def render(self, values: Mapping[str, Any]) -> str:
        """The message with the placeholders replaced by `values` (name -> value)."""
        pieces = self.then.pieces
        if self.then.message is None:
            pieces = _DEFAULT_PIECES["event" if isinstance(self.when, EventCondition) else "attribute"]
        return "".join(text_of(values.get(name)) if name else text for name, text in pieces)

    def to_json(self) -> dict[str, Any]:
        """The canonical stored definition."""
        return {"when": self.when.to_json(), "devices": sorted(self.devices), "groups": sorted(self.groups),
                "zone": self.zone, "calendar": self.calendar, "then": self.then.to_json()}


# --- parsing -----------------------------------------------------------------------


def parse_rule(definition: Mapping[str, Any], *, rule_id: int, organisation_id: int, name: str,
               zone_ids: Collection[int] | None = None, calendar_ids: Collection[int] | None = None,
               device_ids: Collection[int] | None = None,
               group_ids: Collection[int] | None = None) -> Rule:
    """The `Rule` of a stored definition; `RuleError` names the first bad field.

    With `zone_ids`, `calendar_ids`, `device_ids` or `group_ids` given, references
    (including a geofence event's value) must be among them.
    """
    if not isinstance(definition, Mapping):
        raise RuleError(f"rule: expected an object, got {_describe(definition)}")
    _no_unknown_keys(definition, _TOP_KEYS, "")
    if "when" not in definition:
        raise RuleError("when: required")
    when = _when(definition["when"], zone_ids)
    devices = _ids(definition.get("devices"), "devices", "device", device_ids)
    groups = _ids(definition.get("groups"), "groups", "group", group_ids)
    zone = _reference(definition.get("zone"), "zone", "geofence", zone_ids)
    calendar = _reference(definition.get("calendar"), "calendar", "calendar", calendar_ids)
    then = _then(definition.get("then"), when)
    return Rule(id=rule_id, organisation_id=organisation_id, name=name, when=when, then=then,
                devices=devices, groups=groups, zone=zone, calendar=calendar)


def _describe(value: Any) -> str:
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return repr(value[:40])
    return type(value).__name__


def _no_unknown_keys(data: Mapping[str, Any], known: Sequence[str], path: str) -> None:
    for key in data:
        if key not in known:
            where = f"{path}.{key}" if path else str(key)
            raise RuleError(f"{where}: unknown key; expected {', '.join(known)}")


def _when(raw: Any, zone_ids: Collection[int] | None) -> AttributeCondition | EventCondition:
    if not isinstance(raw, Mapping):
        raise RuleError(f"when: expected an object, got {_describe(raw)}")
    if "attribute" in raw and "event" in raw:
        raise RuleError("when: give either attribute or event, not both")
    if "event" in raw:
        return _event_condition(raw, zone_ids)
    if "attribute" in raw:
        return _attribute_condition(raw)
    raise RuleError("when: needs an attribute condition (attribute, operator, value) "
                    "or an event condition (event)")


def _attribute_condition(raw: Mapping[str, Any]) -> AttributeCondition:
    _no_unknown_keys(raw, _ATTRIBUTE_KEYS, "when")
    attribute = raw["attribute"]
    if not isinstance(attribute, str) or not _ATTRIBUTE.fullmatch(attribute):
        raise RuleError(f"when.attribute: must match {_ATTRIBUTE.pattern}, got {_describe(attribute)}")
    operator = raw.get("operator")
    if operator not in OPERATORS:
        raise RuleError(f"when.operator: must be one of {', '.join(OPERATORS)}")
    if "value" not in raw:
        raise RuleError("when.value: required")
    value = _condition_value(operator, raw["value"])
    for_s: float | int = 0
    if "for" in raw:
        if operator in _CHANGE_OPERATORS:
            raise RuleError(f"when.for: not allowed with {operator} (it compares two reports)")
        for_s = _finite(raw["for"], "when.for: must be a number of seconds")
        if not 0 <= for_s <= MAX_FOR_S:
            raise RuleError(f"when.for: must be between 0 and {MAX_FOR_S} seconds, got {_describe(for_s)}")
    return AttributeCondition(attribute, operator, value, for_s)


def _condition_value(operator: str, value: Any) -> float | int | str | bool:
    if operator in ("==", "!="):
        if isinstance(value, str):
            if len(value) > MAX_STRING_VALUE:
                raise RuleError(f"when.value: at most {MAX_STRING_VALUE} characters")
            return value
        if isinstance(value, bool):
            return value
        return _finite(value, f"when.value: must be a number, string or boolean for {operator}")
    if operator in _CHANGE_OPERATORS:
        value = _finite(value, f"when.value: must be a positive number for {operator}")
        if value <= 0:
            raise RuleError(f"when.value: must be a positive number for {operator}, got {_describe(value)}")
        return value
    return _finite(value, f"when.value: must be a finite number for {operator}")


def _finite(value: Any, message: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RuleError(f"{message}, got {_describe(value)}")
    return value


def _event_condition(raw: Mapping[str, Any], zone_ids: Collection[int] | None) -> EventCondition:
    for key in ("for", "operator"):
        if key in raw:
            raise RuleError(f"when.{key}: not allowed with event conditions")
    _no_unknown_keys(raw, _EVENT_KEYS, "when")
    event = raw["event"]
    if not isinstance(event, str) or event not in _EVENT_NAMES:
        raise RuleError(f"when.event: must be one of {', '.join(EventType)}, got {_describe(event)}")
    value = raw.get("value")
    if value is None:
        return EventCondition(event)
    if event == EventType.ALARM:
        if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
            raise RuleError(f"when.value: an alarm name matching {_IDENTIFIER.pattern}, "
                            f"got {_describe(value)}")
    elif event in GEOFENCE_EVENTS:
        value = _reference(value, "when.value", "geofence", zone_ids)
    else:
        raise RuleError(f"when.value: only alarm and geofence events take a value, not {event}")
    return EventCondition(event, value)


def _id(value: Any, path: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RuleError(f"{path}: expected a {what} id (a positive integer), got {_describe(value)}")
    return value


def _reference(value: Any, path: str, what: str, known: Collection[int] | None) -> int | None:
    if value is None:
        return None
    value = _id(value, path, what)
    if known is not None and value not in known:
        raise RuleError(f"{path}: {what} {value} does not exist")
    return value


def _ids(raw: Any, path: str, what: str, known: Collection[int] | None) -> frozenset[int]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise RuleError(f"{path}: expected a list of {what} ids, got {_describe(raw)}")
    ids = (_reference(item, f"{path}[{number}]", what, known) for number, item in enumerate(raw))
    return frozenset(cast(int, value) for value in ids)   # a null item is kept as None (as before)


def _then(raw: Any, when: AttributeCondition | EventCondition) -> Action:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise RuleError(f"then: expected an object, got {_describe(raw)}")
    _no_unknown_keys(raw, _THEN_KEYS, "then")
    default = "ruleTriggered" if isinstance(when, EventCondition) else "sensorThreshold"
    kind = raw.get("type", default)
    if not isinstance(kind, str) or not _IDENTIFIER.fullmatch(kind):
        raise RuleError(f"then.type: must match {_IDENTIFIER.pattern}, got {_describe(kind)}")
    alarm = raw.get("alarm")
    if kind == EventType.ALARM:
        if not isinstance(alarm, str) or not _IDENTIFIER.fullmatch(alarm):
            raise RuleError(f"then.alarm: required with type alarm: an alarm name matching "
                            f"{_IDENTIFIER.pattern}, got {_describe(alarm)}")
    elif alarm is not None:
        raise RuleError(f"then.alarm: only allowed with type alarm, not {kind}")
    message = raw.get("message")
    pieces: tuple[tuple[str, str], ...] = ()
    if message is not None:
        if not isinstance(message, str):
            raise RuleError(f"then.message: expected a string, got {_describe(message)}")
        if len(message) > MAX_MESSAGE_CHARS:
            raise RuleError(f"then.message: at most {MAX_MESSAGE_CHARS} characters, got {len(message)}")
        pieces = _parse_template(message, "then.message")
    return Action(kind, message, alarm, pieces)


def _parse_template(text: str, path: str) -> tuple[tuple[str, str], ...]:
    """'Fridge {device}: {{x}}' -> (("", "Fridge "), ("device", ""), ("", ": {x}"))."""
    pieces: list[tuple[str, str]] = []
    literal: list[str] = []
    position = 0
    for match in _TOKEN.finditer(text):
        literal.append(text[position:match.start()])
        token = match.group(0)
        if token in ("{{", "}}"):
            literal.append(token[0])
        elif match.group(1) is not None:
            name = match.group(1)
            if name not in PLACEHOLDERS:
                raise RuleError(f"{path}: unknown placeholder {{{name}}}; use "
                                + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS) + " (or {{ }} for braces)")
            pieces.append(("", "".join(literal)))
            literal = []
            pieces.append((name, ""))
        else:
            raise RuleError(f"{path}: unbalanced {token!r} at position {match.start()} "
                            "(write {{ or }} for a literal brace)")
        position = match.end()
    literal.append(text[position:])
    pieces.append(("", "".join(literal)))
    return tuple(piece for piece in pieces if piece != ("", ""))


_DEFAULT_PIECES = {kind: _parse_template(text, "") for kind, text in DEFAULT_MESSAGES.items()}
_EVENT_NAMES = frozenset(event.value for event in EventType)
