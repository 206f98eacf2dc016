"""deviceIdle {since}: ignition on and not moving for ``idle_after_s``.

Once per episode; a moving fix (``speed_kn > motion_speed_kn``) or ignition not on
(read from the ignition handler's slice, after this report's value) re-arms it.

Slice ``"idle"``: ``{"since": iso, "fired": bool}``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from geofence.chain import Handler, Report, Slice, as_mapping, iso, parse_flag, parse_time, seconds
from geofence.events import EventType
from geofence.handlers.ignition import IgnitionHandler
from geofence.records import Happening

__all__ = ["Idle", "IdleHandler"]


@dataclass(slots=True)
class Idle(Slice):
    since: dt.datetime | None = None
    fired: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"since": iso(self.since), "fired": self.fired}

    @classmethod
    def from_json(cls, obj: Any) -> Idle:
        data = as_mapping(obj)
        return cls(parse_time(data.get("since")), bool(parse_flag(data.get("fired"))))


class IdleHandler(Handler[Idle]):
    name = "idle"
    slice_type = Idle
    settings = ("idle_after_s", "motion_speed_kn")
    events = (EventType.DEVICE_IDLE,)

    def on_fix(self, step: Report, mine: Idle) -> list[Happening]:
        assert step.fix is not None
        profile, fix = step.ctx.profile, step.fix
        moving = fix.speed_kn > profile.motion_speed_kn
        if profile.idle_after_s is None or step.state.slice(IgnitionHandler).on is not True or moving:
            mine.since, mine.fired = None, False
            return []
        if mine.since is None:
            mine.since = fix.time
        if mine.fired or seconds(fix.time, mine.since) < profile.idle_after_s:
            return []
        mine.fired = True
        return [Happening(EventType.DEVICE_IDLE, fix.time, {"since": iso(mine.since)})]

    def on_status(self, step: Report, mine: Idle) -> tuple[Happening, ...]:
        if step.state.slice(IgnitionHandler).on is not True:
            mine.since, mine.fired = None, False
        return ()
