"""The rule engine: one device's reports in, events ("happenings") out.

Pure: no I/O, no clock (``now`` is always passed in), no Twisted, no database.  The
caller keeps one mutable `DeviceState` per device, passes it with the device's
`DeviceContext` to `Engine.fix` / `status` / `connected` / `disconnected` / `tick`, and
stores the returned `Happening`s and ``state.to_json()`` together, so a restart
(``DeviceState.from_json``) resumes exactly where the committed data left off.

Entry points:

- `Engine.fix(ctx, state, fix, now)`: a live fix.  The caller stores a fix older than
  the newest live one (`DeviceState.is_late`) as archive and does not evaluate it.  A
  fix at the same time as the newest one is a retransmission: like any fix not newer
  than the newest it only marks the device seen, so a second delivery never fires
  anything twice.  Every fix given is taken as the device's position (the caller
  passes invalid fixes to `status`).
- `Engine.status(ctx, state, attributes, time, now)`: a report without a usable fix
  (heartbeat, invalid fix): alarms, ignition and attribute rules; marks the device seen.
- `Engine.connected` / `disconnected`: deviceOnline / deviceOffline.
- `Engine.tick(ctx, state, now)`: about every 30 s per known device: deviceUnknown,
  deviceInactive, and geofenceDwell for a device inside a zone that sends nothing.

Events (`EventType`, Traccar names where Traccar has them; attributes JSON-safe, times
as ISO 8601 strings; geofence events also set `Happening.geofence_id`), in this order
within one `fix`:

1. deviceOnline: the device was not "online" (HTTP devices have no connection).
   Time ``now``, ``at_fix=False`` (as from `connected`).
2. alarm {alarm}: ``attributes["alarm"]`` may be comma-joined ("sos,lowBattery"); one
   event per value not active at the previous report (fix or status); a report without
   it clears every alarm, so sos, sos, (none), sos gives two events.
3. ignitionOn / ignitionOff: boolean ``attributes["ignition"]`` differs from the last
   known value (the first value ever seen fires nothing; a report without it changes
   nothing).
4. geofenceExit {geofenceId}, then geofenceEnter {geofenceId}, each by zone id.
   Membership is kept for the zones assigned to the device (``ctx.zone_ids``) that this
   engine knows; a zone no longer assigned or known is forgotten without an exit.  A
   zone covers a fix when `ZoneIndex.containing` says so (a point on the edge is
   inside).  Hysteresis (per zone: `ZoneRule`, else `Profile`): an enter needs
   ``hysteresis_fixes`` consecutive covering fixes; an exit needs ``hysteresis_fixes``
   consecutive fixes more than ``hysteresis_m`` metres outside the zone (`distance_m`).
   A fix outside but within ``hysteresis_m`` neither exits nor counts, and breaks the
   streak (a covering fix breaks an exit streak, a non-covering one an enter streak).
   The very first fix of a fresh state enters every zone covering it at once (no
   streak needed): a device switched on inside a zone has entered it.
5. geofenceCrossed {geofenceId}: the straight segment from the previous live fix to
   this one touches an assigned zone that neither fix is inside (nor the device, by
   membership), when the two fixes are at most ``crossing_max_gap_s`` apart.  A fast
   mover jumping over a small zone is still seen.
6. geofenceDwell {geofenceId, dwellMinutes}: inside a zone with ``dwell_s`` for at least
   that long since the enter; once per visit.  From `tick` the event time is the due time
   ``since + dwell_s`` (or ``now`` when the zone's calendar was inactive then but is
   active now), ``at_fix=False``.
7. deviceOverspeed {speed, speedLimit[, geofenceId]} (knots): the limit is the lowest
   ``speed_limit_kn`` of the zones the device is inside whose calendar is active (a
   school zone's limit holds in school hours only; that zone becomes the geofenceId),
   else ``profile.speed_limit_kn``.  Fires once when the speed exceeds the limit on
   every fix for at least ``overspeed_min_duration_s`` (0: the first fix over); a fix at
   or below the limit (or with no limit) re-arms it.
8. deviceMoving / deviceStopped {since}: a fix is moving when ``speed_kn >
   motion_speed_kn``.  The first fix of a fresh state sets the motion state silently.
   Stopped -> moving when every fix since the first moving one was moving and either
   the geodesic distance from the last stopped fix reaches ``moving_min_distance_m`` or
   ``moving_min_duration_s`` has passed since that first moving fix.  Moving -> stopped
   after ``stopped_min_duration_s`` of non-moving fixes.  A contrary fix cancels a
   candidate.  ``since`` is the first fix of the change; the event is at the
   confirming fix.
9. deviceIdle {since}: ignition on and not moving for ``idle_after_s``; once per
   episode; movement or ignition not on re-arms it.
10. User rules (`geofence.rules.Rule`), by rule id: see below.

Calendars: zone membership is always tracked, but enter, exit, dwell and crossed events
of a zone with a calendar are only emitted while it is active (at the fix time, in
``ctx.timezone``); an enter in inactive hours is never emitted later.

Status events: `connected` -> deviceOnline unless online; `disconnected` ->
deviceOffline if online (both mark the device seen, as Traccar does); `fix`/`status`
-> deviceOnline unless online; `tick` -> deviceUnknown when online (no connection
told us it went: UDP, HTTP, a dead TCP link) and last seen at least ``status_timeout_s``
ago (event time last seen + timeout; an offline device stays offline), and
deviceInactive {inactiveSeconds} once when last seen at least ``inactive_after_s``
ago (event time last seen + period), re-armed by the next fix or status report.  These
are at ``now`` (or the computed time), ``at_fix=False``.  Order from `tick`:
deviceUnknown, deviceInactive, geofenceDwell by zone id, user rules.

User rules apply to devices of their organisation that they target.  An attribute
condition is evaluated on every fix and status report that carries the attribute (a
report without it changes nothing: no evidence); it fires once per episode, when it
has held on every such report for ``for`` seconds (for 0: on the report where it
becomes true; a fresh state counts as false); dropsBy / risesBy compare with the last
numeric value of the attribute and are episodes too (consecutive drops fire once).  The
rule's ``zone`` holds when the device is inside it by membership after this report's
zone processing; for a zone not assigned to the device the fix position is tested
directly (a status report then counts as outside).  The ``calendar`` (looked up in the
engine's calendars; an unknown id never holds) must be active at the report time.  A
failing zone or calendar filter makes the condition false (ending an episode).  An event
condition matches the built-in happenings of the same call (`fix`, `status`,
`connected`, `disconnected`, `tick`) and fires once per call, at the first match's
time; rule happenings never trigger other rules.  The result is
``Happening(then.type, time, {"ruleId", "message", ...})`` with ``attribute`` and
``value`` for attribute conditions, ``event`` for event conditions and ``alarm`` for
type alarm; its geofence_id is the rule's zone, else the matched event's zone.

State: `DeviceState.to_json` is JSON-safe (times as ISO 8601 strings) and versioned;
`DeviceState.from_json` never raises: a wrong version or garbage gives a fresh state,
missing or malformed fields their defaults.

Performance: one `ZoneIndex` query per fix (``crossed`` from the previous fix, whose
candidates are then tested against this fix, or ``containing``), none for a device
with no zones; geodesic distances only for hysteresis exits and motion candidates.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import shapely

from geofence.calendar import Calendar
from geofence.events import GEOFENCE_EVENTS, EventType
from geofence.index import ZoneIndex
from geofence.zones import GEOD, Zone, distance_m

if TYPE_CHECKING:
    from geofence.rules import Rule

__all__ = [
    "GEOFENCE_EVENTS",
    "STATE_VERSION",
    "DeviceContext",
    "DeviceState",
    "Engine",
    "EventType",
    "Fix",
    "Happening",
    "Profile",
    "RuleMemory",
    "Visit",
    "ZoneRule",
]

STATE_VERSION = 1
_EMPTY: Mapping[Any, Any] = MappingProxyType({})
_STATUSES = ("online", "offline", "unknown")


# --- records -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fix:
    """A live position: `time` is the aware UTC fix time, speed in knots."""

    time: dt.datetime
    lon: float
    lat: float
    speed_kn: float = 0.0
    course_deg: float = 0.0
    altitude_m: float = 0.0
    accuracy_m: float = 0.0
    valid: bool = True
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Profile:
    """Thresholds of one device (the caller resolves device settings > group > server).

    None disables a check.  `hysteresis_fixes` below 1 counts as 1 (records are not
    validated here: the caller's settings parser is).
    """

    speed_limit_kn: float | None = None       # deviceOverspeed above it; None: no limit
    overspeed_min_duration_s: float = 0.0     # over the limit this long on every fix
    motion_speed_kn: float = 1.0              # a fix is moving when faster (GPS drift is slower)
    moving_min_distance_m: float = 200.0      # stopped -> moving after this far from the last stop ...
    moving_min_duration_s: float = 60.0       # ... or this long moving
    stopped_min_duration_s: float = 180.0     # moving -> stopped after this long not moving
    idle_after_s: float | None = 600.0        # deviceIdle: ignition on, not moving this long
    inactive_after_s: float | None = None     # deviceInactive after this long without data
    status_timeout_s: float = 600.0           # deviceUnknown after this long unseen
    hysteresis_m: float = 0.0                 # exit only beyond this distance outside the zone
    hysteresis_fixes: int = 1                 # consecutive fixes to confirm an enter or exit
    crossing_max_gap_s: float = 900.0         # geofenceCrossed only between fixes this close


@dataclass(frozen=True, slots=True)
class ZoneRule:
    """A zone and its settings; None means the device profile's value."""

    zone: Zone
    speed_limit_kn: float | None = None
    dwell_s: float | None = None
    calendar: Calendar | None = None
    hysteresis_m: float | None = None
    hysteresis_fixes: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceContext:
    """What the engine needs to know about a device besides its state."""

    device_id: int
    organisation_id: int
    name: str
    group_id: int | None
    zone_ids: frozenset[int]  # zones assigned directly or through the group
    profile: Profile
    timezone: dt.tzinfo


@dataclass(frozen=True, slots=True)
class Happening:
    """An event to store; `at_fix`: tied to the fix being evaluated."""

    type: str
    time: dt.datetime
    attributes: Mapping[str, Any]
    geofence_id: int | None = None
    at_fix: bool = True


# --- state -------------------------------------------------------------------------


@dataclass(slots=True)
class Visit:
    """The device is inside a zone since `since` (the confirming fix)."""

    since: dt.datetime
    dwell_fired: bool = False


@dataclass(slots=True)
class RuleMemory:
    """A user rule's episode: true since `since`, fired or not; `last` numeric value."""

    since: dt.datetime | None = None
    fired: bool = False
    last: float | None = None


@dataclass(slots=True)
class DeviceState:
    """Mutable state of one device between reports; see the module docstring."""

    fix_time: dt.datetime | None = None     # newest live fix
    fix_lon: float | None = None
    fix_lat: float | None = None
    zones: dict[int, Visit] = field(default_factory=dict)
    enter_counts: dict[int, int] = field(default_factory=dict)
    exit_counts: dict[int, int] = field(default_factory=dict)
    overspeed_since: dt.datetime | None = None
    overspeed_fired: bool = False
    alarms: set[str] = field(default_factory=set)
    ignition: bool | None = None
    moving: bool | None = None
    motion_since: dt.datetime | None = None  # first fix of a candidate motion change
    stop_lon: float | None = None            # the last stopped fix
    stop_lat: float | None = None
    idle_since: dt.datetime | None = None
    idle_fired: bool = False
    status: str = "unknown"
    last_seen: dt.datetime | None = None
    inactive_fired: bool = False
    rules: dict[int, RuleMemory] = field(default_factory=dict)

    def is_late(self, fix_time: dt.datetime) -> bool:
        """Whether `fix_time` is older than the newest live fix (store it as archive)."""
        return self.fix_time is not None and fix_time < self.fix_time

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form (str, int, float, bool, list, dict, None)."""
        return {
            "version": STATE_VERSION,
            "fix": None if self.fix_time is None else {
                "time": _iso(self.fix_time), "lon": self.fix_lon, "lat": self.fix_lat},
            "zones": {str(zone_id): {"since": _iso(visit.since), "dwell_fired": visit.dwell_fired}
                      for zone_id, visit in self.zones.items()},
            "enter_counts": {str(zone_id): count for zone_id, count in self.enter_counts.items()},
            "exit_counts": {str(zone_id): count for zone_id, count in self.exit_counts.items()},
            "overspeed": {"since": _iso(self.overspeed_since), "fired": self.overspeed_fired},
            "alarms": sorted(self.alarms),
            "ignition": self.ignition,
            "motion": {"moving": self.moving, "since": _iso(self.motion_since),
                       "stop": None if self.stop_lon is None else [self.stop_lon, self.stop_lat]},
            "idle": {"since": _iso(self.idle_since), "fired": self.idle_fired},
            "status": self.status,
            "last_seen": _iso(self.last_seen),
            "inactive_fired": self.inactive_fired,
            "rules": {str(rule_id): {"since": _iso(memory.since), "fired": memory.fired, "last": memory.last}
                      for rule_id, memory in self.rules.items()},
        }

    @classmethod
    def from_json(cls, obj: Any) -> DeviceState:
        """The state of `to_json` output; never raises (see the module docstring)."""
        if not isinstance(obj, Mapping) or obj.get("version") != STATE_VERSION:
            return cls()
        try:
            return _state_from_json(obj)
        except (TypeError, ValueError, AttributeError, KeyError, OverflowError):
            return cls()


def _iso(time: dt.datetime | None) -> str | None:
    return None if time is None else time.astimezone(dt.UTC).isoformat()


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        time = dt.datetime.fromisoformat(value)
        return time.astimezone(dt.UTC) if time.utcoffset() is not None else None
    except (ValueError, OverflowError):
        return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _flag(value: Any, default: bool | None = False) -> bool | None:
    return value if isinstance(value, bool) else default


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else _EMPTY


def _by_id(value: Any) -> Iterable[tuple[int, Any]]:
    for key, item in _mapping(value).items():
        try:
            number = int(key)
        except (TypeError, ValueError):
            continue
        yield number, item


def _state_from_json(obj: Mapping[str, Any]) -> DeviceState:
    state = DeviceState()
    fix = _mapping(obj.get("fix"))
    fix_time, lon, lat = _time(fix.get("time")), _float(fix.get("lon")), _float(fix.get("lat"))
    if fix_time is not None and lon is not None and lat is not None:
        state.fix_time, state.fix_lon, state.fix_lat = fix_time, lon, lat
    for zone_id, visit in _by_id(obj.get("zones")):
        since = _time(_mapping(visit).get("since"))
        if since is not None:
            state.zones[zone_id] = Visit(since, bool(_flag(_mapping(visit).get("dwell_fired"))))
    for name in ("enter_counts", "exit_counts"):
        counts = getattr(state, name)
        for zone_id, count in _by_id(obj.get(name)):
            if isinstance(count, int) and not isinstance(count, bool) and count > 0:
                counts[zone_id] = count
    overspeed = _mapping(obj.get("overspeed"))
    state.overspeed_since = _time(overspeed.get("since"))
    state.overspeed_fired = bool(_flag(overspeed.get("fired")))
    alarms = obj.get("alarms")
    if isinstance(alarms, list):
        state.alarms = {alarm for alarm in alarms if isinstance(alarm, str)}
    state.ignition = _flag(obj.get("ignition"), None)
    motion = _mapping(obj.get("motion"))
    state.moving = _flag(motion.get("moving"), None)
    state.motion_since = _time(motion.get("since"))
    stop = motion.get("stop")
    if isinstance(stop, list) and len(stop) == 2 and None not in (_float(stop[0]), _float(stop[1])):
        state.stop_lon, state.stop_lat = _float(stop[0]), _float(stop[1])
    idle = _mapping(obj.get("idle"))
    state.idle_since = _time(idle.get("since"))
    state.idle_fired = bool(_flag(idle.get("fired")))
    status = obj.get("status")
    state.status = status if status in _STATUSES else "unknown"
    state.last_seen = _time(obj.get("last_seen"))
    state.inactive_fired = bool(_flag(obj.get("inactive_fired")))
    for rule_id, raw in _by_id(obj.get("rules")):
        memory = _mapping(raw)
        state.rules[rule_id] = RuleMemory(_time(memory.get("since")), bool(_flag(memory.get("fired"))),
                                          _float(memory.get("last")))
    return state


# --- the engine --------------------------------------------------------------------


def _seconds(later: dt.datetime, earlier: dt.datetime) -> float:
    return (later - earlier).total_seconds()


class Engine:
    """Zones, user rules and calendars of one configuration; evaluates device reports.

    `zones`: every organisation's zones (``ctx.zone_ids`` selects a device's); ids must
    be unique ints.  `rules`: user rules of every organisation.  `calendars`: calendar
    id -> `Calendar`, for the rules' ``calendar`` (zone calendars are in `ZoneRule`).
    """

    __slots__ = ("_calendars", "_geometry", "_index", "_rule_ids", "_rules", "_zone_ids", "_zones")

    def __init__(self, zones: Iterable[ZoneRule], rules: Iterable[Rule] = (),
                 calendars: Mapping[int, Calendar] = _EMPTY) -> None:
        self._zones: dict[int, ZoneRule] = {}
        for zone_rule in zones:
            zone_id = zone_rule.zone.id
            if isinstance(zone_id, bool) or not isinstance(zone_id, int):
                raise ValueError(f"engine zone ids must be ints, got {zone_id!r}")
            if zone_id in self._zones:
                raise ValueError(f"zone id {zone_id} given twice")
            self._zones[zone_id] = zone_rule
        self._zone_ids = frozenset(self._zones)
        self._index = ZoneIndex(zone_rule.zone for zone_rule in self._zones.values())
        self._geometry = {zone_id: zone_rule.zone.geometry for zone_id, zone_rule in self._zones.items()}
        by_organisation: dict[int, list[Rule]] = {}
        for rule in rules:
            by_organisation.setdefault(rule.organisation_id, []).append(rule)
        self._rules = {organisation: tuple(sorted(group, key=lambda rule: rule.id))
                       for organisation, group in by_organisation.items()}
        self._rule_ids = {organisation: frozenset(rule.id for rule in group)
                          for organisation, group in self._rules.items()}
        self._calendars = dict(calendars)

    # -- entry points -----------------------------------------------------------------

    def fix(self, ctx: DeviceContext, state: DeviceState, fix: Fix, now: dt.datetime) -> list[Happening]:
        """Happenings of a live fix, in the documented order; `state` updated in place."""
        out: list[Happening] = []
        self._seen(state, now, out)
        state.inactive_fired = False
        if state.fix_time is not None and fix.time <= state.fix_time:
            return out  # retransmitted (or late, which the caller should not pass)
        fresh = state.fix_time is None
        self._alarms(state, fix.attributes, fix.time, True, out)
        self._ignition(state, fix.attributes, fix.time, True, out)
        self._zones_of_fix(ctx, state, fix, fresh, out)
        self._overspeed(ctx, state, fix, out)
        self._motion(ctx.profile, state, fix, fresh, out)
        self._idle(ctx.profile, state, fix, out)
        state.fix_time, state.fix_lon, state.fix_lat = fix.time, fix.lon, fix.lat
        out.extend(self._user_rules(ctx, state, out, _Report(fix.attributes, fix, fix.time, True)))
        return out

    def status(self, ctx: DeviceContext, state: DeviceState, attributes: Mapping[str, Any],
               time: dt.datetime, now: dt.datetime) -> list[Happening]:
        """Happenings of a report without a fix (at `time`): alarms, ignition, rules."""
        out: list[Happening] = []
        self._seen(state, now, out)
        state.inactive_fired = False
        self._alarms(state, attributes, time, False, out)
        self._ignition(state, attributes, time, False, out)
        if state.ignition is not True:
            state.idle_since, state.idle_fired = None, False
        self._forget_unassigned(ctx, state)
        out.extend(self._user_rules(ctx, state, out, _Report(attributes, None, time, False)))
        return out

    def connected(self, ctx: DeviceContext, state: DeviceState, now: dt.datetime) -> list[Happening]:
        """deviceOnline unless the device is online already."""
        out: list[Happening] = []
        self._seen(state, now, out)
        out.extend(self._user_rules(ctx, state, out, None))
        return out

    def disconnected(self, ctx: DeviceContext, state: DeviceState, now: dt.datetime) -> list[Happening]:
        """deviceOffline if the device was online."""
        out: list[Happening] = []
        state.last_seen = now
        if state.status == "online":
            state.status = "offline"
            out.append(Happening(EventType.DEVICE_OFFLINE, now, {}, at_fix=False))
        out.extend(self._user_rules(ctx, state, out, None))
        return out

    def tick(self, ctx: DeviceContext, state: DeviceState, now: dt.datetime) -> list[Happening]:
        """Time-based happenings: deviceUnknown, deviceInactive, geofenceDwell."""
        out: list[Happening] = []
        profile = ctx.profile
        seen = state.last_seen
        if seen is not None:
            if state.status == "online" and _seconds(now, seen) >= profile.status_timeout_s:
                state.status = "unknown"
                out.append(Happening(EventType.DEVICE_UNKNOWN,
                                     seen + dt.timedelta(seconds=profile.status_timeout_s), {}, at_fix=False))
            inactive_s = profile.inactive_after_s
            if inactive_s is not None and not state.inactive_fired and _seconds(now, seen) >= inactive_s:
                state.inactive_fired = True
                out.append(Happening(EventType.DEVICE_INACTIVE, seen + dt.timedelta(seconds=inactive_s),
                                     {"inactiveSeconds": inactive_s}, at_fix=False))
        self._forget_unassigned(ctx, state)
        for zone_id in sorted(state.zones):
            visit, zone_rule = state.zones[zone_id], self._zones[zone_id]
            if zone_rule.dwell_s is None or visit.dwell_fired:
                continue
            due = visit.since + dt.timedelta(seconds=zone_rule.dwell_s)
            if now < due:
                continue
            if self._zone_active(zone_rule, due, ctx):
                time = due
            elif self._zone_active(zone_rule, now, ctx):
                time = now
            else:
                continue
            visit.dwell_fired = True
            out.append(self._dwell_happening(zone_rule, time, at_fix=False))
        out.extend(self._user_rules(ctx, state, out, None))
        return out

    # -- built-in events --------------------------------------------------------------

    @staticmethod
    def _seen(state: DeviceState, now: dt.datetime, out: list[Happening]) -> None:
        state.last_seen = now
        if state.status != "online":
            state.status = "online"
            out.append(Happening(EventType.DEVICE_ONLINE, now, {}, at_fix=False))

    @staticmethod
    def _alarms(state: DeviceState, attributes: Mapping[str, Any], time: dt.datetime, at_fix: bool,
                out: list[Happening]) -> None:
        raw = attributes.get("alarm")
        if raw is None or raw is False:
            values: list[str] = []
        elif isinstance(raw, list | tuple):
            values = [str(item).strip() for item in raw]
        else:
            values = [item.strip() for item in str(raw).split(",")]
        current = list(dict.fromkeys(value for value in values if value))
        for value in current:
            if value not in state.alarms:
                out.append(Happening(EventType.ALARM, time, {"alarm": value}, at_fix=at_fix))
        state.alarms = set(current)

    @staticmethod
    def _ignition(state: DeviceState, attributes: Mapping[str, Any], time: dt.datetime, at_fix: bool,
                  out: list[Happening]) -> None:
        value = attributes.get("ignition")
        if not isinstance(value, bool):
            return
        if state.ignition is not None and value != state.ignition:
            kind = EventType.IGNITION_ON if value else EventType.IGNITION_OFF
            out.append(Happening(kind, time, {}, at_fix=at_fix))
        state.ignition = value

    def _forget_unassigned(self, ctx: DeviceContext, state: DeviceState) -> set[int] | frozenset[int]:
        """Drop zones no longer assigned or known from the state; the assigned ids.

        The assigned ids are returned as given (not intersected with the known zones:
        that costs O(zones) per fix); every id they are matched with comes from the
        index, which holds known zones only."""
        assigned = ctx.zone_ids
        known = self._zone_ids
        for table in (state.zones, state.enter_counts, state.exit_counts):
            for zone_id in [z for z in table if z not in assigned or z not in known]:
                del table[zone_id]
        return assigned

    def _hysteresis(self, zone_rule: ZoneRule, profile: Profile) -> tuple[float, int]:
        metres = profile.hysteresis_m if zone_rule.hysteresis_m is None else zone_rule.hysteresis_m
        fixes = profile.hysteresis_fixes if zone_rule.hysteresis_fixes is None else zone_rule.hysteresis_fixes
        return metres, max(1, int(fixes))

    @staticmethod
    def _zone_active(zone_rule: ZoneRule, time: dt.datetime, ctx: DeviceContext) -> bool:
        return zone_rule.calendar is None or zone_rule.calendar.active(time, ctx.timezone)

    def _covering_and_crossed(self, ctx: DeviceContext, state: DeviceState, fix: Fix,
                              assigned: set[int] | frozenset[int],
                              members: set[int]) -> tuple[set[int] | frozenset[int], set[int]]:
        """Assigned zones covering the fix, and those crossed since the previous fix."""
        previous = (state.fix_lon, state.fix_lat)
        usable = (state.fix_time is not None and None not in previous and previous != (fix.lon, fix.lat)
                  and _seconds(fix.time, state.fix_time) <= ctx.profile.crossing_max_gap_s)
        if not usable:
            return self._index.containing(fix.lon, fix.lat) & assigned, set()
        prev_lon, prev_lat = previous
        hits = self._index.crossed(fix.lon, fix.lat, prev_lon, prev_lat) & assigned
        if abs(fix.lon - prev_lon) > 180.0:  # a segment split at the antimeridian: test the fix itself
            covering: set[int] | frozenset[int] = self._index.containing(fix.lon, fix.lat) & assigned
        elif not hits:
            return set(), set()
        else:
            point = shapely.Point(fix.lon, fix.lat)
            covering = {zone_id for zone_id in hits if self._geometry[zone_id].covers(point)}
        rest = hits - covering - members
        if not rest:
            return covering, set()
        start = shapely.Point(prev_lon, prev_lat)
        return covering, {zone_id for zone_id in rest if not self._geometry[zone_id].covers(start)}

    def _zones_of_fix(self, ctx: DeviceContext, state: DeviceState, fix: Fix, fresh: bool,
                      out: list[Happening]) -> None:
        assigned = self._forget_unassigned(ctx, state)
        if not assigned:
            return
        members = set(state.zones)
        covering, crossed = self._covering_and_crossed(ctx, state, fix, assigned, members)
        exits, enters = self._membership(ctx, state, fix, fresh=fresh, members=members, covering=covering)
        for kind, zone_ids in ((EventType.GEOFENCE_EXIT, exits), (EventType.GEOFENCE_ENTER, enters),
                               (EventType.GEOFENCE_CROSSED, sorted(crossed))):
            for zone_id in zone_ids:
                if self._zone_active(self._zones[zone_id], fix.time, ctx):
                    out.append(Happening(kind, fix.time, {"geofenceId": zone_id}, zone_id))
        for zone_id in sorted(state.zones):
            visit, zone_rule = state.zones[zone_id], self._zones[zone_id]
            if (zone_rule.dwell_s is not None and not visit.dwell_fired
                    and _seconds(fix.time, visit.since) >= zone_rule.dwell_s
                    and self._zone_active(zone_rule, fix.time, ctx)):
                visit.dwell_fired = True
                out.append(self._dwell_happening(zone_rule, fix.time, at_fix=True))

    def _membership(self, ctx: DeviceContext, state: DeviceState, fix: Fix, *, fresh: bool,
                    members: set[int], covering: set[int] | frozenset[int]) -> tuple[list[int], list[int]]:
        """Update membership and hysteresis streaks; the zones exited and entered."""
        exits: list[int] = []
        enters: list[int] = []
        for zone_id in sorted(members):
            if zone_id in covering:
                state.exit_counts.pop(zone_id, None)
                continue
            zone_rule = self._zones[zone_id]
            metres, fixes = self._hysteresis(zone_rule, ctx.profile)
            if metres > 0 and distance_m(zone_rule.zone, fix.lon, fix.lat) <= metres:
                state.exit_counts.pop(zone_id, None)  # in the band: no exit, streak broken
                continue
            count = state.exit_counts.get(zone_id, 0) + 1
            if count >= fixes:
                del state.zones[zone_id]
                state.exit_counts.pop(zone_id, None)
                exits.append(zone_id)
            else:
                state.exit_counts[zone_id] = count
        for zone_id in [zone_id for zone_id in state.enter_counts if zone_id not in covering]:
            del state.enter_counts[zone_id]
        for zone_id in sorted(covering - members):
            _, fixes = self._hysteresis(self._zones[zone_id], ctx.profile)
            count = state.enter_counts.get(zone_id, 0) + 1
            if fresh or count >= fixes:
                state.zones[zone_id] = Visit(fix.time)
                state.enter_counts.pop(zone_id, None)
                enters.append(zone_id)
            else:
                state.enter_counts[zone_id] = count
        return exits, enters

    @staticmethod
    def _dwell_happening(zone_rule: ZoneRule, time: dt.datetime, at_fix: bool) -> Happening:
        zone_id = zone_rule.zone.id
        minutes = zone_rule.dwell_s / 60.0
        dwell_minutes = int(minutes) if minutes.is_integer() else minutes
        attributes = {"geofenceId": zone_id, "dwellMinutes": dwell_minutes}
        return Happening(EventType.GEOFENCE_DWELL, time, attributes, zone_id, at_fix)

    def _overspeed(self, ctx: DeviceContext, state: DeviceState, fix: Fix, out: list[Happening]) -> None:
        limit, limit_zone = ctx.profile.speed_limit_kn, None
        for zone_id in state.zones:
            zone_rule = self._zones[zone_id]
            zone_limit = zone_rule.speed_limit_kn
            if zone_limit is None or not self._zone_active(zone_rule, fix.time, ctx):
                continue
            if limit_zone is None or (zone_limit, zone_id) < (limit, limit_zone):
                limit, limit_zone = zone_limit, zone_id
        if limit is None or fix.speed_kn <= limit:
            state.overspeed_since, state.overspeed_fired = None, False
            return
        if state.overspeed_since is None:
            state.overspeed_since = fix.time
        if (not state.overspeed_fired
                and _seconds(fix.time, state.overspeed_since) >= ctx.profile.overspeed_min_duration_s):
            state.overspeed_fired = True
            attributes: dict[str, Any] = {"speed": fix.speed_kn, "speedLimit": limit}
            if limit_zone is not None:
                attributes["geofenceId"] = limit_zone
            out.append(Happening(EventType.DEVICE_OVERSPEED, fix.time, attributes, limit_zone))

    @staticmethod
    def _motion(profile: Profile, state: DeviceState, fix: Fix, fresh: bool, out: list[Happening]) -> None:
        moving = fix.speed_kn > profile.motion_speed_kn
        if fresh or state.moving is None:
            state.moving, state.motion_since = moving, None
            state.stop_lon, state.stop_lat = (None, None) if moving else (fix.lon, fix.lat)
            return
        if moving == state.moving:  # a contrary candidate, if any, is cancelled
            state.motion_since = None
            if not moving:
                state.stop_lon, state.stop_lat = fix.lon, fix.lat
            return
        if state.motion_since is None:
            state.motion_since = fix.time
        since = state.motion_since
        elapsed = _seconds(fix.time, since)
        if not moving:
            if elapsed >= profile.stopped_min_duration_s:
                state.moving, state.motion_since = False, None
                state.stop_lon, state.stop_lat = fix.lon, fix.lat
                out.append(Happening(EventType.DEVICE_STOPPED, fix.time, {"since": _iso(since)}))
            return
        confirmed = elapsed >= profile.moving_min_duration_s or (
            state.stop_lon is not None and state.stop_lat is not None
            and GEOD.inv(state.stop_lon, state.stop_lat, fix.lon, fix.lat)[2]
            >= profile.moving_min_distance_m)
        if confirmed:
            state.moving, state.motion_since = True, None
            state.stop_lon = state.stop_lat = None
            out.append(Happening(EventType.DEVICE_MOVING, fix.time, {"since": _iso(since)}))

    @staticmethod
    def _idle(profile: Profile, state: DeviceState, fix: Fix, out: list[Happening]) -> None:
        moving = fix.speed_kn > profile.motion_speed_kn
        if profile.idle_after_s is None or state.ignition is not True or moving:
            state.idle_since, state.idle_fired = None, False
            return
        if state.idle_since is None:
            state.idle_since = fix.time
        if not state.idle_fired and _seconds(fix.time, state.idle_since) >= profile.idle_after_s:
            state.idle_fired = True
            out.append(Happening(EventType.DEVICE_IDLE, fix.time, {"since": _iso(state.idle_since)}))

    # -- user rules -------------------------------------------------------------------

    def _user_rules(self, ctx: DeviceContext, state: DeviceState, builtins: list[Happening],
                    report: _Report | None) -> list[Happening]:
        """Happenings of the organisation's rules targeting the device, by rule id.

        Without a `report` (connect, disconnect, tick) only event conditions apply.
        """
        rules = self._rules.get(ctx.organisation_id, ())
        if state.rules:
            known = self._rule_ids.get(ctx.organisation_id, frozenset())
            for rule_id in [rule_id for rule_id in state.rules if rule_id not in known]:
                del state.rules[rule_id]
        out: list[Happening] = []
        for rule in rules:
            if not rule.targets(ctx.device_id, ctx.group_id):
                continue
            if rule.when.kind == "event":
                happening = self._event_rule(ctx, state, rule, builtins, report)
            elif report is not None:
                happening = self._attribute_rule(ctx, state, rule, report)
            else:
                continue
            if happening is not None:
                out.append(happening)
        return out

    def _rule_filters(self, ctx: DeviceContext, state: DeviceState, rule: Rule, fix: Fix | None,
                      time: dt.datetime) -> bool:
        if rule.calendar is not None:
            calendar = self._calendars.get(rule.calendar)
            if calendar is None or not calendar.active(time, ctx.timezone):
                return False
        zone_id = rule.zone
        if zone_id is None or zone_id in state.zones:
            return True
        if zone_id in ctx.zone_ids or zone_id not in self._zones or fix is None:
            return False  # assigned: membership decides; else test the fix itself
        return self._geometry[zone_id].covers(shapely.Point(fix.lon, fix.lat))

    def _rule_happening(self, ctx: DeviceContext, rule: Rule, trigger: _Trigger) -> Happening:
        zone_rule = self._zones.get(trigger.geofence_id) if trigger.geofence_id is not None else None
        values = {"device": ctx.name, "rule": rule.name, "zone": zone_rule.zone.name if zone_rule else "",
                  "attribute": trigger.attribute, "value": trigger.value, "threshold": trigger.threshold}
        attributes: dict[str, Any] = {"ruleId": rule.id, "message": rule.render(values), **trigger.extra}
        if rule.then.alarm is not None:
            attributes["alarm"] = rule.then.alarm
        return Happening(rule.then.type, trigger.time, attributes, trigger.geofence_id, trigger.at_fix)

    def _event_rule(self, ctx: DeviceContext, state: DeviceState, rule: Rule, builtins: list[Happening],
                    report: _Report | None) -> Happening | None:
        condition = rule.when
        match = next((happening for happening in builtins if condition.matches(happening)), None)
        fix = report.fix if report is not None else None
        if match is None or not self._rule_filters(ctx, state, rule, fix, match.time):
            return None
        value = match.attributes.get("alarm") if match.type == EventType.ALARM else match.geofence_id
        return self._rule_happening(ctx, rule, _Trigger(
            time=match.time, at_fix=match.at_fix, attribute=match.type, value=value,
            threshold=condition.value, extra={"event": match.type},
            geofence_id=rule.zone if rule.zone is not None else match.geofence_id))

    def _attribute_rule(self, ctx: DeviceContext, state: DeviceState, rule: Rule,
                        report: _Report) -> Happening | None:
        condition = rule.when
        present, observed = condition.observe(report.fix, report.attributes)
        if not present:
            return None  # no evidence: the episode goes on unchanged
        memory = state.rules.get(rule.id) or RuleMemory()
        previous = memory.last
        memory.last = condition.remember(observed, previous)
        holds = (condition.holds(observed, previous)
                 and self._rule_filters(ctx, state, rule, report.fix, report.time))
        fired = None
        if not holds:
            memory.since, memory.fired = None, False
        else:
            if memory.since is None:
                memory.since = report.time
            if not memory.fired and _seconds(report.time, memory.since) >= condition.for_s:
                memory.fired = True
                fired = self._rule_happening(ctx, rule, _Trigger(
                    time=report.time, at_fix=report.at_fix, attribute=condition.attribute, value=observed,
                    threshold=condition.value, geofence_id=rule.zone,
                    extra={"attribute": condition.attribute, "value": _json_safe(observed)}))
        if memory.since is None and memory.last is None:
            state.rules.pop(rule.id, None)  # nothing to remember
        else:
            state.rules[rule.id] = memory
        return fired


@dataclass(frozen=True, slots=True)
class _Report:
    """A fix or status report as user rules see it."""

    attributes: Mapping[str, Any]
    fix: Fix | None
    time: dt.datetime
    at_fix: bool


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


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)

