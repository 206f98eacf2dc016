"""geofenceExit, geofenceEnter, geofenceCrossed, geofenceDwell: zone membership.

In this order within one fix:

1. geofenceExit {geofenceId}, then geofenceEnter {geofenceId}, each by zone id.
   Membership is kept for the zones assigned to the device (``ctx.zone_ids``) that
   this engine knows; a zone no longer assigned or known is forgotten without an exit
   (on every fix, status report and tick).  A zone covers a fix when
   `ZoneIndex.containing` says so (a point on the edge is inside).  Hysteresis (per
   zone: `ZoneRule`, else `Profile`): an enter needs ``hysteresis_fixes`` consecutive
   covering fixes; an exit needs ``hysteresis_fixes`` consecutive fixes more than
   ``hysteresis_m`` metres outside the zone (`distance_m`).  A fix outside but within
   ``hysteresis_m`` neither exits nor counts, and breaks the streak (a covering fix
   breaks an exit streak, a non-covering one an enter streak).  The very first fix of
   a fresh state enters every zone covering it at once (no streak needed): a device
   switched on inside a zone has entered it.
2. geofenceCrossed {geofenceId}: the straight segment from the previous live fix to
   this one touches an assigned zone that neither fix is inside (nor the device, by
   membership), when the two fixes are at most ``crossing_max_gap_s`` apart.  A fast
   mover jumping over a small zone is still seen.
3. geofenceDwell {geofenceId, dwellMinutes}: inside a zone with ``dwell_s`` for at
   least that long since the enter; once per visit.  From `on_tick` the event time is
   the due time ``since + dwell_s`` (or ``now`` when the zone's calendar was inactive
   then but is active now), ``at_fix=False``; by zone id.

Calendars: membership is always tracked, but enter, exit, dwell and crossed events of a
zone with a calendar are only emitted while it is active (at the fix time, in
``ctx.timezone``); an enter in inactive hours is never emitted later.

Performance: one `ZoneIndex` query per fix (``crossed`` from the previous fix, whose
candidates are then tested against this fix, or ``containing``), none for a device
with no zones; geodesic distances only for hysteresis exits.

Slice ``"geofences"``: ``{"visits": {id: {"since": iso, "dwell_fired": bool}},
"enter_counts": {id: n}, "exit_counts": {id: n}}``.  Later handlers read ``visits``
(deviceOverspeed's zone limits, user rules' ``zone``).
"""

from __future__ import annotations

import datetime as dt
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
    parse_time,
    seconds,
)
from geofence.events import EventType
from geofence.records import DeviceContext, Fix, Happening, Profile, ZoneRule
from geofence.zones import distance_m

__all__ = ["GeofenceHandler", "Membership", "Visit"]

Ids = set[int] | frozenset[int]


@dataclass(slots=True)
class Visit:
    """The device is inside a zone since `since` (the confirming fix)."""

    since: dt.datetime
    dwell_fired: bool = False


@dataclass(slots=True)
class Membership(Slice):
    visits: dict[int, Visit] = field(default_factory=dict)     # the zones the device is inside
    enter_counts: dict[int, int] = field(default_factory=dict)  # hysteresis streaks
    exit_counts: dict[int, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"visits": {str(zone_id): {"since": iso(visit.since), "dwell_fired": visit.dwell_fired}
                           for zone_id, visit in self.visits.items()},
                "enter_counts": {str(zone_id): count for zone_id, count in self.enter_counts.items()},
                "exit_counts": {str(zone_id): count for zone_id, count in self.exit_counts.items()}}

    @classmethod
    def from_json(cls, obj: Any) -> Membership:
        data = as_mapping(obj)
        membership = cls()
        for zone_id, raw in by_id(data.get("visits")):
            visit = as_mapping(raw)
            since = parse_time(visit.get("since"))
            if since is not None:
                membership.visits[zone_id] = Visit(since, bool(parse_flag(visit.get("dwell_fired"))))
        for counts, key in ((membership.enter_counts, "enter_counts"),
                            (membership.exit_counts, "exit_counts")):
            for zone_id, count in by_id(data.get(key)):
                if isinstance(count, int) and not isinstance(count, bool) and count > 0:
                    counts[zone_id] = count
        return membership


class GeofenceHandler(Handler[Membership]):
    name = "geofences"
    slice_type = Membership
    settings = ("hysteresis_m", "hysteresis_fixes", "crossing_max_gap_s")
    events = (EventType.GEOFENCE_EXIT, EventType.GEOFENCE_ENTER, EventType.GEOFENCE_CROSSED,
              EventType.GEOFENCE_DWELL)

    def on_fix(self, step: Report, mine: Membership) -> list[Happening]:
        assert step.fix is not None
        ctx, fix = step.ctx, step.fix
        assigned = self._forget_unassigned(ctx, mine)
        if not assigned:
            return []
        zones = self.config.zones
        members = set(mine.visits)
        covering, crossed = self._covering_and_crossed(step, fix, assigned, members)
        exits, enters = self._membership(ctx, mine, fix, fresh=step.fresh, members=members,
                                         covering=covering)
        out = []
        for kind, zone_ids in ((EventType.GEOFENCE_EXIT, exits), (EventType.GEOFENCE_ENTER, enters),
                               (EventType.GEOFENCE_CROSSED, sorted(crossed))):
            for zone_id in zone_ids:
                if self.config.zone_active(zones[zone_id], fix.time, ctx):
                    out.append(Happening(kind, fix.time, {"geofenceId": zone_id}, zone_id))
        for zone_id in sorted(mine.visits):
            visit, zone_rule = mine.visits[zone_id], zones[zone_id]
            if (zone_rule.dwell_s is not None and not visit.dwell_fired
                    and seconds(fix.time, visit.since) >= zone_rule.dwell_s
                    and self.config.zone_active(zone_rule, fix.time, ctx)):
                visit.dwell_fired = True
                out.append(_dwell_happening(zone_id, zone_rule.dwell_s, fix.time, at_fix=True))
        return out

    def on_status(self, step: Report, mine: Membership) -> tuple[Happening, ...]:
        self._forget_unassigned(step.ctx, mine)
        return ()

    def on_tick(self, step: Step, mine: Membership) -> list[Happening]:
        ctx, now = step.ctx, step.now
        self._forget_unassigned(ctx, mine)
        out = []
        for zone_id in sorted(mine.visits):
            visit, zone_rule = mine.visits[zone_id], self.config.zones[zone_id]
            dwell_s = zone_rule.dwell_s
            if dwell_s is None or visit.dwell_fired:
                continue
            due = visit.since + dt.timedelta(seconds=dwell_s)
            if now < due:
                continue
            if self.config.zone_active(zone_rule, due, ctx):
                time = due
            elif self.config.zone_active(zone_rule, now, ctx):
                time = now
            else:
                continue
            visit.dwell_fired = True
            out.append(_dwell_happening(zone_id, dwell_s, time, at_fix=False))
        return out

    def _forget_unassigned(self, ctx: DeviceContext, mine: Membership) -> Ids:
        """Drop zones no longer assigned or known from the slice; the assigned ids.

        The assigned ids are returned as given (not intersected with the known zones:
        that costs O(zones) per fix); every id they are matched with comes from the
        index, which holds known zones only."""
        assigned = ctx.zone_ids
        known = self.config.zone_ids
        tables: tuple[dict[int, Any], ...] = (mine.visits, mine.enter_counts, mine.exit_counts)
        for table in tables:
            for zone_id in [z for z in table if z not in assigned or z not in known]:
                del table[zone_id]
        return assigned

    def _covering_and_crossed(self, step: Report, fix: Fix, assigned: Ids,
                              members: set[int]) -> tuple[Ids, set[int]]:
        """Assigned zones covering the fix, and those crossed since the previous fix."""
        index, geometry = self.config.index, self.config.geometry
        state = step.state
        prev_time, prev_lon, prev_lat = state.fix_time, state.fix_lon, state.fix_lat
        if (prev_time is None or prev_lon is None or prev_lat is None
                or (prev_lon, prev_lat) == (fix.lon, fix.lat)
                or seconds(fix.time, prev_time) > step.ctx.profile.crossing_max_gap_s):
            return _ints(index.containing(fix.lon, fix.lat)) & assigned, set()
        hits = _ints(index.crossed(fix.lon, fix.lat, prev_lon, prev_lat)) & assigned
        covering: Ids
        if abs(fix.lon - prev_lon) > 180.0:  # a segment split at the antimeridian: test the fix itself
            covering = _ints(index.containing(fix.lon, fix.lat)) & assigned
        elif not hits:
            return set(), set()
        else:
            point = shapely.Point(fix.lon, fix.lat)
            covering = {zone_id for zone_id in hits if geometry[zone_id].covers(point)}
        rest = hits - covering - members
        if not rest:
            return covering, set()
        start = shapely.Point(prev_lon, prev_lat)
        return covering, {zone_id for zone_id in rest if not geometry[zone_id].covers(start)}

    def _membership(self, ctx: DeviceContext, mine: Membership, fix: Fix, *, fresh: bool,
                    members: set[int], covering: Ids) -> tuple[list[int], list[int]]:
        """Update membership and hysteresis streaks; the zones exited and entered."""
        zones = self.config.zones
        exits: list[int] = []
        enters: list[int] = []
        for zone_id in sorted(members):
            if zone_id in covering:
                mine.exit_counts.pop(zone_id, None)
                continue
            zone_rule = zones[zone_id]
            metres, fixes = _hysteresis(zone_rule, ctx.profile)
            if metres > 0 and distance_m(zone_rule.zone, fix.lon, fix.lat) <= metres:
                mine.exit_counts.pop(zone_id, None)  # in the band: no exit, streak broken
                continue
            count = mine.exit_counts.get(zone_id, 0) + 1
            if count >= fixes:
                del mine.visits[zone_id]
                mine.exit_counts.pop(zone_id, None)
                exits.append(zone_id)
            else:
                mine.exit_counts[zone_id] = count
        for zone_id in [zone_id for zone_id in mine.enter_counts if zone_id not in covering]:
            del mine.enter_counts[zone_id]
        for zone_id in sorted(covering - members):
            _, fixes = _hysteresis(zones[zone_id], ctx.profile)
            count = mine.enter_counts.get(zone_id, 0) + 1
            if fresh or count >= fixes:
                mine.visits[zone_id] = Visit(fix.time)
                mine.enter_counts.pop(zone_id, None)
                enters.append(zone_id)
            else:
                mine.enter_counts[zone_id] = count
        return exits, enters


def _ints(ids: frozenset[Any]) -> frozenset[int]:
    """The index's ids, which the engine's `Configuration` checked to be ints."""
    return ids


def _hysteresis(zone_rule: ZoneRule, profile: Profile) -> tuple[float, int]:
    metres = profile.hysteresis_m if zone_rule.hysteresis_m is None else zone_rule.hysteresis_m
    fixes = profile.hysteresis_fixes if zone_rule.hysteresis_fixes is None else zone_rule.hysteresis_fixes
    return metres, max(1, int(fixes))


def _dwell_happening(zone_id: int, dwell_s: float, time: dt.datetime, at_fix: bool) -> Happening:
    minutes = dwell_s / 60.0
    dwell_minutes = int(minutes) if minutes.is_integer() else minutes
    attributes = {"geofenceId": zone_id, "dwellMinutes": dwell_minutes}
    return Happening(EventType.GEOFENCE_DWELL, time, attributes, zone_id, at_fix)
