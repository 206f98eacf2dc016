"""Downlink commands (`tracker.ports.CommandRepository`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select, update

from tracker import policies
from tracker.models import StoredCommand, User
from tracker.storage import records
from tracker.storage.base import MAX_BIND_PARAMS, SqlBase, chunks, visible_to
from tracker.storage.schema import commands, devices


class CommandsMixin(SqlBase):
    """`tracker.ports.CommandRepository` on SQL."""

    def queue_command(self, device_id: int, type: str, attributes: Mapping[str, Any],
                      now: dt.datetime, user_id: int | None = None) -> StoredCommand:
        values = {"device_id": device_id, "user_id": user_id, "type": type,
                  "attributes": dict(attributes), "status": "queued", "created": now}
        with self._write() as conn:
            row = conn.execute(insert(commands).values(**values).returning(commands)).one()
        return records.command(row)

    def queued_commands(self, device_ids: Sequence[int]) -> list[StoredCommand]:
        found: list[StoredCommand] = []
        with self._read() as conn:
            for chunk in chunks(sorted(set(device_ids)), MAX_BIND_PARAMS):
                rows = conn.execute(select(commands).where(
                    commands.c.status == "queued", commands.c.device_id.in_(chunk)))
                found.extend(records.command(row) for row in rows)
        return sorted(found, key=lambda c: c.id)

    def mark_command(self, command_id: int, status: str, now: dt.datetime,
                     result: str | None = None) -> None:
        if status == "sent":
            values: dict[str, Any] = {"status": status, "sent_time": now}
        elif status == "failed":
            values = {"status": status, "result_time": now,
                      "result": policies.result_text(result or "")}
        else:
            raise ValueError(f"a command can be marked sent or failed, not {status!r}")
        with self._write() as conn:
            conn.execute(update(commands).where(commands.c.id == command_id).values(**values))

    def commands(self, user: User | None, device_id: int | None = None,
                 limit: int = 100) -> list[StoredCommand]:
        query = (select(commands).join(devices, devices.c.id == commands.c.device_id)
                 .where(visible_to(user)).order_by(commands.c.id.desc()).limit(limit))
        if device_id is not None:
            query = query.where(commands.c.device_id == device_id)
        with self._read() as conn:
            return [records.command(row) for row in conn.execute(query)]
