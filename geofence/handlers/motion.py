"""deviceMoving / deviceStopped {since}.

A fix is moving when ``speed_kn > motion_speed_kn``.  The first fix of a fresh state
sets the motion state silently.  Stopped -> moving when every fix since the first
moving one was moving and either the geodesic distance from the last stopped fix
reaches ``moving_min_distance_m`` or ``moving_min_duration_s`` has passed since that
first moving fix.  Moving -> stopped after ``stopped_min_duration_s`` of non-moving
fixes.  A contrary fix cancels a candidate.  ``since`` is the first fix of the change;
the event is at the confirming fix.  Geodesic distances only for motion candidates.

Slice ``"motion"``: ``{"moving": bool | null, "since": iso, "stop": [lon, lat] | null}``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from geofence.chain import (
    Handler,
    Report,
    Slice,
    as_mapping,
    iso,
    parse_flag,
    parse_float,
    parse_time,
    seconds,
)
from geofence.events import EventType
from geofence.records import Happening
from geofence.zones import GEOD

__all__ = ["Motion", "MotionHandler"]


@dataclass(slots=True)
class Motion(Slice):
    moving: bool | None = None
    since: dt.datetime | None = None      # first fix of a candidate motion change
    stop_lon: float | None = None         # the last stopped fix
    stop_lat: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"moving": self.moving, "since": iso(self.since),
                "stop": None if self.stop_lon is None else [self.stop_lon, self.stop_lat]}

    @classmethod
    def from_json(cls, obj: Any) -> Motion:
        data = as_mapping(obj)
        motion = cls(parse_flag(data.get("moving"), None), parse_time(data.get("since")))
        stop = data.get("stop")
        if isinstance(stop, list) and len(stop) == 2:
            lon, lat = parse_float(stop[0]), parse_float(stop[1])
            if lon is not None and lat is not None:
                motion.stop_lon, motion.stop_lat = lon, lat
        return motion


class MotionHandler(Handler[Motion]):
    name = "motion"
    slice_type = Motion
    settings = ("motion_speed_kn", "moving_min_distance_m", "moving_min_duration_s",
                "stopped_min_duration_s")
    events = (EventType.DEVICE_MOVING, EventType.DEVICE_STOPPED)

    def on_fix(self, step: Report, mine: Motion) -> list[Happening]:
        assert step.fix is not None
        profile, fix = step.ctx.profile, step.fix
        moving = fix.speed_kn > profile.motion_speed_kn
        if step.fresh or mine.moving is None:
            mine.moving, mine.since = moving, None
            mine.stop_lon, mine.stop_lat = (None, None) if moving else (fix.lon, fix.lat)
            return []
        if moving == mine.moving:  # a contrary candidate, if any, is cancelled
            mine.since = None
            if not moving:
                mine.stop_lon, mine.stop_lat = fix.lon, fix.lat
            return []
        if mine.since is None:
            mine.since = fix.time
        since = mine.since
        elapsed = seconds(fix.time, since)
        if not moving:
            if elapsed < profile.stopped_min_duration_s:
                return []
            mine.moving, mine.since = False, None
            mine.stop_lon, mine.stop_lat = fix.lon, fix.lat
            return [Happening(EventType.DEVICE_STOPPED, fix.time, {"since": iso(since)})]
        confirmed = elapsed >= profile.moving_min_duration_s or (
            mine.stop_lon is not None and mine.stop_lat is not None
            and GEOD.inv(mine.stop_lon, mine.stop_lat, fix.lon, fix.lat)[2] >= profile.moving_min_distance_m)
        if not confirmed:
            return []
        mine.moving, mine.since = True, None
        mine.stop_lon = mine.stop_lat = None
        return [Happening(EventType.DEVICE_MOVING, fix.time, {"since": iso(since)})]
