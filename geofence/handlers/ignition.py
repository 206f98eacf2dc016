"""ignitionOn / ignitionOff: boolean ``attributes["ignition"]`` differs from the last
known value.  The first value ever seen fires nothing; a report without it (or with a
non-boolean) changes nothing.

Slice ``"ignition"``: ``{"on": bool | null}`` (later handlers read it: deviceIdle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from geofence.chain import Handler, Report, Slice, as_mapping, parse_flag
from geofence.events import EventType
from geofence.records import Happening

__all__ = ["Ignition", "IgnitionHandler"]


@dataclass(slots=True)
class Ignition(Slice):
    on: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {"on": self.on}

    @classmethod
    def from_json(cls, obj: Any) -> Ignition:
        return cls(parse_flag(as_mapping(obj).get("on"), None))


class IgnitionHandler(Handler[Ignition]):
    name = "ignition"
    slice_type = Ignition
    events = (EventType.IGNITION_ON, EventType.IGNITION_OFF)

    def on_fix(self, step: Report, mine: Ignition) -> list[Happening]:
        value = step.attributes.get("ignition")
        if not isinstance(value, bool):
            return []
        out = []
        if mine.on is not None and value != mine.on:
            kind = EventType.IGNITION_ON if value else EventType.IGNITION_OFF
            out.append(Happening(kind, step.time, {}, at_fix=step.at_fix))
        mine.on = value
        return out

    on_status = on_fix
