"""alarm {alarm}: an alarm the device reports that was not active at its previous report.

``attributes["alarm"]`` may be comma-joined ("sos,lowBattery") or a list; one event per
value not active at the previous report (fix or status); a report without it clears
every alarm, so sos, sos, (none), sos gives two events.

Slice ``"alarms"``: ``{"active": [sorted names]}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from geofence.chain import Handler, Report, Slice, as_mapping
from geofence.events import EventType
from geofence.records import Happening

__all__ = ["ActiveAlarms", "AlarmHandler"]


@dataclass(slots=True)
class ActiveAlarms(Slice):
    active: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        return {"active": sorted(self.active)}

    @classmethod
    def from_json(cls, obj: Any) -> ActiveAlarms:
        active = as_mapping(obj).get("active")
        if not isinstance(active, list):
            return cls()
        return cls({alarm for alarm in active if isinstance(alarm, str)})


class AlarmHandler(Handler[ActiveAlarms]):
    name = "alarms"
    slice_type = ActiveAlarms
    events = (EventType.ALARM,)

    def on_fix(self, step: Report, mine: ActiveAlarms) -> list[Happening]:
        raw = step.attributes.get("alarm")
        if raw is None or raw is False:
            values: list[str] = []
        elif isinstance(raw, list | tuple):
            values = [str(item).strip() for item in raw]
        else:
            values = [item.strip() for item in str(raw).split(",")]
        current = list(dict.fromkeys(value for value in values if value))
        out = [Happening(EventType.ALARM, step.time, {"alarm": value}, at_fix=step.at_fix)
               for value in current if value not in mine.active]
        mine.active = set(current)
        return out

    on_status = on_fix
