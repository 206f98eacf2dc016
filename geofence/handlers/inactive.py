"""deviceInactive {inactiveSeconds}: no data for ``inactive_after_s``.

`on_tick` fires it once when the device was last seen (deviceOnline's slice) at least
``inactive_after_s`` ago; event time last seen + period, ``at_fix=False``.  The next
fix or status report re-arms it (`on_seen`; a connection alone does not).

Slice ``"inactive"``: ``{"fired": bool}``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from geofence.chain import Handler, Report, Slice, Step, as_mapping, parse_flag, seconds
from geofence.events import EventType
from geofence.handlers.status import StatusHandler
from geofence.records import Happening

__all__ = ["Inactivity", "InactiveHandler"]


@dataclass(slots=True)
class Inactivity(Slice):
    fired: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"fired": self.fired}

    @classmethod
    def from_json(cls, obj: Any) -> Inactivity:
        return cls(bool(parse_flag(as_mapping(obj).get("fired"))))


class InactiveHandler(Handler[Inactivity]):
    name = "inactive"
    slice_type = Inactivity
    settings = ("inactive_after_s",)
    events = (EventType.DEVICE_INACTIVE,)

    def on_seen(self, step: Report, mine: Inactivity) -> tuple[Happening, ...]:
        mine.fired = False
        return ()

    def on_tick(self, step: Step, mine: Inactivity) -> list[Happening]:
        inactive_s = step.ctx.profile.inactive_after_s
        seen = step.state.slice(StatusHandler).last_seen
        if inactive_s is None or seen is None or mine.fired or seconds(step.now, seen) < inactive_s:
            return []
        mine.fired = True
        return [Happening(EventType.DEVICE_INACTIVE, seen + dt.timedelta(seconds=inactive_s),
                          {"inactiveSeconds": inactive_s}, at_fix=False)]
