"""The handler chain: what one built-in rule is made of.

A built-in rule is one `Handler` subclass (a module in `geofence/handlers/`) and one
line in the ordered registry `geofence.handlers.HANDLERS`.  The `Engine` runs the
registry in order on every call, then the user rules (always last); the `DeviceState`
keeps one `Slice` per handler under the handler's `name`.  Nothing else changes:
neither `Engine` nor `DeviceState` names a handler.  (This is Traccar's
position-handler chain, but pure: a handler is told the time, changes only its own
slice and returns its happenings; it never does I/O.)

A handler declares:

- ``name``: the stable key of its slice in ``DeviceState.to_json()``.  Renaming it
  forgets every device's stored slice, so never rename a released one.
- ``slice_type``: a `Slice`, usually a small slotted dataclass.  ``slice_type()`` is
  the fresh state; ``to_json()`` is JSON-safe (times as `iso` strings);
  ``slice_type.from_json(obj)`` reads it back and NEVER raises: garbage or a missing
  field gives the default (use the readers below).  A slice equal to the fresh one is
  not stored at all.
- ``settings``: the `Profile` fields it reads (a test checks each field is read by
  some handler), and ``events``: the event types it emits.
- hooks, each returning the happenings it adds (an empty tuple by default): `on_seen`
  (every fix, also a retransmitted one, and every status report, before the other
  hooks of the call), `on_fix` (a fix newer than the newest one), `on_status` (a
  report without a usable fix), `on_connected`, `on_disconnected`, `on_tick`.

A hook may read the slices of handlers EARLIER in the chain (``step.state.slice(
OtherHandler)``, after their hooks of this call ran) and ``step.happenings`` (what
was emitted so far in this call); it writes its own slice (``mine``) only.  The
engine-wide settings (zones, spatial index, calendars, user rules) are in
``self.config``, a `Configuration`.

Minimal example::

    @dataclass(slots=True)
    class Odometer(Slice):
        metres: float = 0.0
        def to_json(self): return {"metres": self.metres}
        @classmethod
        def from_json(cls, obj): return cls(parse_float(as_mapping(obj).get("metres")) or 0.0)

    class OdometerHandler(Handler[Odometer]):
        name, slice_type, events = "odometer", Odometer, ("odometer",)
        def on_fix(self, step, mine):
            ...
            return [Happening("odometer", step.time, {"metres": mine.metres})]
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

import shapely

from geofence.calendar import Calendar
from geofence.index import ZoneIndex
from geofence.records import DeviceContext, Fix, Happening, ZoneRule
from geofence.rules import Rule

__all__ = [
    "Configuration",
    "Handler",
    "Report",
    "Slice",
    "StateView",
    "Step",
    "as_mapping",
    "by_id",
    "iso",
    "parse_flag",
    "parse_float",
    "parse_time",
    "seconds",
]

EMPTY: Mapping[Any, Any] = MappingProxyType({})


# --- slices and handlers ---------------------------------------------------------------


class Slice:
    """One handler's part of a device's state; see the module docstring."""

    __slots__ = ()

    def to_json(self) -> Any:
        """JSON-safe form (str, int, float, bool, list, dict, None)."""
        raise NotImplementedError

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        """The slice of `to_json` output; never raises (garbage gives defaults)."""
        raise NotImplementedError


S = TypeVar("S", bound=Slice)


class StateView(Protocol):
    """What a handler sees of the device state: the newest live fix before this call
    (the engine moves it after the chain ran) and the other handlers' slices."""

    @property
    def fix_time(self) -> dt.datetime | None: ...

    @property
    def fix_lon(self) -> float | None: ...

    @property
    def fix_lat(self) -> float | None: ...

    def slice(self, handler: type[Handler[S]]) -> S: ...


@dataclass(frozen=True, slots=True)
class Step:
    """One engine call as a handler sees it (`Engine.connected`, `disconnected`, `tick`).

    `happenings`: what the handlers before this one emitted in this call (read only)."""

    ctx: DeviceContext
    state: StateView
    now: dt.datetime
    happenings: Sequence[Happening]


@dataclass(frozen=True, slots=True)
class Report(Step):
    """A fix (`Engine.fix`) or a status report (`Engine.status`, `fix` None).

    `time` is the fix time or the report time; `fresh`: no live fix was ever seen."""

    time: dt.datetime
    attributes: Mapping[str, Any]
    fix: Fix | None
    fresh: bool

    @property
    def at_fix(self) -> bool:
        """Whether happenings of this report are tied to a fix."""
        return self.fix is not None


class Handler(Generic[S]):
    """One built-in rule of the chain; see the module docstring."""

    name: ClassVar[str]
    slice_type: ClassVar[type[Slice]]
    settings: ClassVar[tuple[str, ...]] = ()
    events: ClassVar[tuple[str, ...]] = ()

    __slots__ = ("config",)

    def __init__(self, config: Configuration) -> None:
        self.config = config

    def on_seen(self, step: Report, mine: S) -> Iterable[Happening]:
        """Every fix (also retransmitted) and status report, before the other hooks."""
        return ()

    def on_fix(self, step: Report, mine: S) -> Iterable[Happening]:
        """A live fix newer than the newest one (``step.fix`` is set)."""
        return ()

    def on_status(self, step: Report, mine: S) -> Iterable[Happening]:
        """A report without a usable fix (heartbeat, invalid fix)."""
        return ()

    def on_connected(self, step: Step, mine: S) -> Iterable[Happening]:
        return ()

    def on_disconnected(self, step: Step, mine: S) -> Iterable[Happening]:
        return ()

    def on_tick(self, step: Step, mine: S) -> Iterable[Happening]:
        """About every 30 s per known device (``step.now``), also when it sends nothing."""
        return ()


HOOKS = ("on_seen", "on_fix", "on_status", "on_connected", "on_disconnected", "on_tick")


# --- the engine-wide configuration ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Configuration:
    """Zones, user rules and calendars of one engine, shared by its handlers.

    `zones`: id -> ZoneRule of every organisation (``ctx.zone_ids`` selects a
    device's); `rules`: organisation id -> its user rules by id; `calendars`: id ->
    `Calendar` for the rules' ``calendar`` (zone calendars are in `ZoneRule`).
    """

    zones: Mapping[int, ZoneRule]
    zone_ids: frozenset[int]
    index: ZoneIndex
    geometry: Mapping[int, shapely.Geometry]
    rules: Mapping[int, tuple[Rule, ...]]
    rule_ids: Mapping[int, frozenset[int]]
    calendars: Mapping[int, Calendar]

    @classmethod
    def build(cls, zones: Iterable[ZoneRule], rules: Iterable[Rule] = (),
              calendars: Mapping[int, Calendar] = EMPTY) -> Configuration:
        """Checks zone ids (unique ints) and prepares the spatial index."""
        by_id: dict[int, ZoneRule] = {}
        for zone_rule in zones:
            zone_id = zone_rule.zone.id
            if isinstance(zone_id, bool) or not isinstance(zone_id, int):
                raise ValueError(f"engine zone ids must be ints, got {zone_id!r}")
            if zone_id in by_id:
                raise ValueError(f"zone id {zone_id} given twice")
            by_id[zone_id] = zone_rule
        by_organisation: dict[int, list[Rule]] = {}
        for rule in rules:
            by_organisation.setdefault(rule.organisation_id, []).append(rule)
        ordered = {organisation: tuple(sorted(group, key=lambda rule: rule.id))
                   for organisation, group in by_organisation.items()}
        return cls(zones=by_id, zone_ids=frozenset(by_id),
                   index=ZoneIndex(zone_rule.zone for zone_rule in by_id.values()),
                   geometry={zone_id: zone_rule.zone.geometry for zone_id, zone_rule in by_id.items()},
                   rules=ordered,
                   rule_ids={organisation: frozenset(rule.id for rule in group)
                             for organisation, group in ordered.items()},
                   calendars=dict(calendars))

    @staticmethod
    def zone_active(zone_rule: ZoneRule, time: dt.datetime, ctx: DeviceContext) -> bool:
        """Whether the zone's calendar (if any) is active at `time` in the device's zone."""
        return zone_rule.calendar is None or zone_rule.calendar.active(time, ctx.timezone)


# --- helpers for slices -----------------------------------------------------------------


def seconds(later: dt.datetime, earlier: dt.datetime) -> float:
    return (later - earlier).total_seconds()


def iso(time: dt.datetime | None) -> str | None:
    """A time as stored: ISO 8601 in UTC (None stays None)."""
    return None if time is None else time.astimezone(dt.UTC).isoformat()


def parse_time(value: Any) -> dt.datetime | None:
    """An aware ISO 8601 string as a UTC datetime, else None."""
    if not isinstance(value, str):
        return None
    try:
        time = dt.datetime.fromisoformat(value)
        return time.astimezone(dt.UTC) if time.utcoffset() is not None else None
    except (ValueError, OverflowError):
        return None


def parse_float(value: Any) -> float | None:
    """A finite int or float as a float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def parse_flag(value: Any, default: bool | None = False) -> bool | None:
    """A bool, else `default`."""
    return value if isinstance(value, bool) else default


def as_mapping(value: Any) -> Mapping[str, Any]:
    """A mapping, else an empty one."""
    return value if isinstance(value, Mapping) else EMPTY


def by_id(value: Any) -> Iterable[tuple[int, Any]]:
    """(int key, item) of a JSON object keyed by ids; other keys are skipped."""
    for key, item in as_mapping(value).items():
        try:
            number = int(key)
        except (TypeError, ValueError):
            continue
        yield number, item
