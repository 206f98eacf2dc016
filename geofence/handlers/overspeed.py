"""deviceOverspeed {speed, speedLimit[, geofenceId]} (knots).

The limit is the lowest ``speed_limit_kn`` of the zones the device is inside (zone
membership, read from the geofence handler's slice) whose calendar is active (a school
zone's limit holds in school hours only; that zone becomes the geofenceId), else
``profile.speed_limit_kn``.  Fires once when the speed exceeds the limit on every fix
for at least ``overspeed_min_duration_s`` (0: the first fix over); a fix at or below
the limit (or with no limit) re-arms it.

Slice ``"overspeed"``: ``{"since": iso, "fired": bool}``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from geofence.chain import Handler, Report, Slice, as_mapping, iso, parse_flag, parse_time, seconds
from geofence.events import EventType
from geofence.handlers.geofences import GeofenceHandler
from geofence.records import Happening

__all__ = ["Overspeed", "OverspeedHandler"]


@dataclass(slots=True)
class Overspeed(Slice):
    since: dt.datetime | None = None    # first fix of the episode over the limit
    fired: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"since": iso(self.since), "fired": self.fired}

    @classmethod
    def from_json(cls, obj: Any) -> Overspeed:
        data = as_mapping(obj)
        return cls(parse_time(data.get("since")), bool(parse_flag(data.get("fired"))))


class OverspeedHandler(Handler[Overspeed]):
    name = "overspeed"
    slice_type = Overspeed
    settings = ("speed_limit_kn", "overspeed_min_duration_s")
    events = (EventType.DEVICE_OVERSPEED,)

    def on_fix(self, step: Report, mine: Overspeed) -> list[Happening]:
        assert step.fix is not None
        ctx, fix = step.ctx, step.fix
        limit, limit_zone = ctx.profile.speed_limit_kn, None
        zones = self.config.zones
        for zone_id in step.state.slice(GeofenceHandler).visits:
            zone_rule = zones[zone_id]
            zone_limit = zone_rule.speed_limit_kn
            if zone_limit is None or not self.config.zone_active(zone_rule, fix.time, ctx):
                continue
            if limit is None or limit_zone is None or (zone_limit, zone_id) < (limit, limit_zone):
                limit, limit_zone = zone_limit, zone_id
        if limit is None or fix.speed_kn <= limit:
            mine.since, mine.fired = None, False
            return []
        if mine.since is None:
            mine.since = fix.time
        if mine.fired or seconds(fix.time, mine.since) < ctx.profile.overspeed_min_duration_s:
            return []
        mine.fired = True
        attributes: dict[str, Any] = {"speed": fix.speed_kn, "speedLimit": limit}
        if limit_zone is not None:
            attributes["geofenceId"] = limit_zone
        return [Happening(EventType.DEVICE_OVERSPEED, fix.time, attributes, limit_zone)]
