"""Device data the database refused for good (`tracker.ports.QuarantineRepository`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select

from tracker.models import QuarantineEntry, StoredQuarantine
from tracker.storage.base import SqlBase
from tracker.storage.schema import quarantine


class QuarantineMixin(SqlBase):
    """`tracker.ports.QuarantineRepository` on SQL."""

    def write_quarantine(self, entries: Sequence[QuarantineEntry]) -> None:
        """Store `entries` in a transaction of their own."""
        with self._write() as conn:
            insert_quarantine(conn, entries)

    def quarantined(self, limit: int = 100, before_id: int | None = None
                    ) -> list[StoredQuarantine]:
        """Newest first; `before_id` pages on (entries with a smaller id)."""
        query = select(quarantine).order_by(quarantine.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(quarantine.c.id < before_id)
        with self._read() as conn:
            return [_quarantined(row) for row in conn.execute(query)]

    def quarantine_entry(self, entry_id: int) -> StoredQuarantine | None:
        with self._read() as conn:
            row = conn.execute(select(quarantine).where(quarantine.c.id == entry_id)
                               ).one_or_none()
        return _quarantined(row) if row is not None else None

    def quarantine_count(self) -> int:
        with self._read() as conn:
            return conn.execute(select(func.count()).select_from(quarantine)).scalar_one()

    def purge_quarantine(self, *, received_before: dt.datetime | None = None,
                         ids: Sequence[int] | None = None) -> int:
        """Delete entries received before `received_before`, or those of `ids`, or
        (neither given) all; returns how many were deleted."""
        statement = delete(quarantine)
        if received_before is not None:
            statement = statement.where(quarantine.c.received < received_before)
        if ids is not None:
            statement = statement.where(quarantine.c.id.in_(list(ids)))
        with self._write() as conn:
            return conn.execute(statement).rowcount


def insert_quarantine(conn: Connection, entries: Sequence[QuarantineEntry]) -> None:
    if entries:
        conn.execute(insert(quarantine), [dataclasses.asdict(entry) for entry in entries])


def _quarantined(row: Row[Any]) -> StoredQuarantine:
    return StoredQuarantine(row.id, QuarantineEntry(
        received=row.received, protocol=row.protocol, error=row.error,
        frame_hex=row.frame_hex, device_id=row.device_id, unique_id=row.unique_id,
        remote_address=row.remote_address))

