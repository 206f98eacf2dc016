"""deviceOnline / deviceOffline / deviceUnknown: whether the device is connected.

- `on_seen` (every fix and status report) and `on_connected`: deviceOnline unless
  online; both mark the device seen (``last_seen = now``), as Traccar does.  Time
  ``now``, ``at_fix=False``.
- `on_disconnected`: deviceOffline if online; marks the device seen.
- `on_tick`: deviceUnknown when online (no connection told us it went: UDP, HTTP, a
  dead TCP link) and last seen at least ``status_timeout_s`` ago; event time last
  seen + timeout.  An offline device stays offline.

Slice ``"status"``: ``{"status": "online" | "offline" | "unknown", "last_seen": iso}``;
later handlers read ``last_seen`` (deviceInactive).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from geofence.chain import Handler, Report, Slice, Step, as_mapping, iso, parse_time, seconds
from geofence.events import EventType
from geofence.records import Happening

__all__ = ["Presence", "StatusHandler"]

STATUSES = ("online", "offline", "unknown")


@dataclass(slots=True)
class Presence(Slice):
    status: str = "unknown"
    last_seen: dt.datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "last_seen": iso(self.last_seen)}

    @classmethod
    def from_json(cls, obj: Any) -> Presence:
        data = as_mapping(obj)
        status = data.get("status")
        return cls(status if status in STATUSES else "unknown", parse_time(data.get("last_seen")))


class StatusHandler(Handler[Presence]):
    name = "status"
    slice_type = Presence
    settings = ("status_timeout_s",)
    events = (EventType.DEVICE_ONLINE, EventType.DEVICE_OFFLINE, EventType.DEVICE_UNKNOWN)

    def on_seen(self, step: Report, mine: Presence) -> list[Happening]:
        return self._online(step.now, mine)

    def on_connected(self, step: Step, mine: Presence) -> list[Happening]:
        return self._online(step.now, mine)

    @staticmethod
    def _online(now: dt.datetime, mine: Presence) -> list[Happening]:
        mine.last_seen = now
        if mine.status == "online":
            return []
        mine.status = "online"
        return [Happening(EventType.DEVICE_ONLINE, now, {}, at_fix=False)]

    def on_disconnected(self, step: Step, mine: Presence) -> list[Happening]:
        mine.last_seen = step.now
        if mine.status != "online":
            return []
        mine.status = "offline"
        return [Happening(EventType.DEVICE_OFFLINE, step.now, {}, at_fix=False)]

    def on_tick(self, step: Step, mine: Presence) -> list[Happening]:
        timeout_s = step.ctx.profile.status_timeout_s
        seen = mine.last_seen
        if seen is None or mine.status != "online" or seconds(step.now, seen) < timeout_s:
            return []
        mine.status = "unknown"
        return [Happening(EventType.DEVICE_UNKNOWN, seen + dt.timedelta(seconds=timeout_s), {},
                          at_fix=False)]
