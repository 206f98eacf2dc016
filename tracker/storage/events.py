"""Events as the API and reports read them (`tracker.ports.EventRepository`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import or_, select

from tracker.models import StoredEvent, User
from tracker.storage import records
from tracker.storage.base import SqlBase, visible_to
from tracker.storage.schema import devices, events


class EventsMixin(SqlBase):
    """`tracker.ports.EventRepository` on SQL."""

    def events(self, user: User, device_id: int | None, start: dt.datetime,
               end: dt.datetime) -> list[StoredEvent]:
        """Events with start <= event_time <= end, oldest first (device None: all)."""
        query = (select(events).join(devices, devices.c.id == events.c.device_id)
                 .where(events.c.event_time >= start, events.c.event_time <= end,
                        visible_to(user))
                 .order_by(events.c.event_time, events.c.id))
        if device_id is not None:
            query = query.where(events.c.device_id == device_id)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [records.event(row) for row in rows]

    def event(self, user: User, event_id: int) -> StoredEvent | None:
        with self._read() as conn:
            row = conn.execute(
                select(events).join(devices, devices.c.id == events.c.device_id)
                .where(events.c.id == event_id, visible_to(user))).one_or_none()
        return records.event(row) if row is not None else None

    def events_report(self, user: User, start: dt.datetime, end: dt.datetime, *,
                      device_ids: Sequence[int] = (), group_ids: Sequence[int] = (),
                      types: Sequence[str] = (), limit: int = 10_000) -> list[StoredEvent]:
        """Served by the (device_id, event_time) index; a group means the devices in it
        now, not those that were in it when the event happened."""
        query = (select(events).join(devices, devices.c.id == events.c.device_id)
                 .where(events.c.event_time >= start, events.c.event_time <= end,
                        visible_to(user))
                 .order_by(events.c.event_time, events.c.id).limit(limit))
        chosen = []
        if device_ids:
            chosen.append(events.c.device_id.in_(sorted(set(device_ids))))
        if group_ids:
            chosen.append(devices.c.group_id.in_(sorted(set(group_ids))))
        if chosen:
            query = query.where(or_(*chosen))
        if types:
            query = query.where(events.c.type.in_(sorted(set(types))))
        with self._read() as conn:
            return [records.event(row) for row in conn.execute(query)]
