"""Devices and unknown device ids (`tracker.ports.DeviceRepository`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, String, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from tracker.models import Device, UnknownDeviceAttempt, User
from tracker.ports import DuplicateError, NoPositionError, NotFoundError
from tracker.sanitize import safe_text
from tracker.storage import records
from tracker.storage.base import SqlBase, bump_revision, visible_to
from tracker.storage.schema import (
    DEFAULT_ORGANISATION_ID,
    devices,
    groups,
    positions,
    unknown_devices,
)

SHORT_TEXT = 128                  # length of the String(128) columns fed by devices


class DevicesMixin(SqlBase):
    """`tracker.ports.DeviceRepository` on SQL."""

    def add_device(self, unique_id: str, name: str, organisation_id: int | None = None, *,
                   group_id: int | None = None,
                   attributes: Mapping[str, Any] | None = None) -> Device:
        if not unique_id or len(unique_id) > SHORT_TEXT:
            raise ValueError(f"device unique id must have 1 to {SHORT_TEXT} characters: "
                             f"{unique_id!r}")
        owner = organisation_id or DEFAULT_ORGANISATION_ID
        values = {"unique_id": unique_id, "name": name, "organisation_id": owner,
                  "group_id": group_id, "settings": dict(attributes or {})}
        try:
            with self._write() as conn:
                if group_id is not None and conn.execute(select(groups.c.id).where(
                        groups.c.id == group_id, groups.c.organisation_id == owner)).first() is None:
                    raise NotFoundError(f"group {group_id} not found")
                row = conn.execute(insert(devices).values(**values)
                                   .returning(*devices.c)).one()
                bump_revision(conn)
        except IntegrityError as exc:
            if self.device_by_unique_id(unique_id) is not None:
                raise DuplicateError(f"device unique id {unique_id!r} is taken") from exc
            raise
        return records.device(row)

    def device_by_unique_id(self, unique_id: str) -> Device | None:
        with self._read() as conn:
            row = conn.execute(select(devices).where(devices.c.unique_id == unique_id)
                               ).one_or_none()
        return records.device(row) if row is not None else None

    def devices(self, user: User | None = None, *, ids: Collection[int] = (),
                unique_ids: Collection[str] = (), keyword: str | None = None,
                limit: int | None = None, offset: int = 0) -> list[Device]:
        query = select(devices).where(visible_to(user))
        if ids or unique_ids:
            query = query.where(or_(devices.c.id.in_(sorted(ids)),
                                    devices.c.unique_id.in_(sorted(unique_ids))))
        if keyword:
            query = query.where(or_(devices.c.name.icontains(keyword, autoescape=True),
                                    devices.c.unique_id.icontains(keyword, autoescape=True)))
        query = query.order_by(devices.c.id)
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [records.device(row) for row in rows]

    def delete_device(self, user: User | None, device_id: int) -> None:
        with self._write() as conn:
            deleted = conn.execute(delete(devices).where(devices.c.id == device_id,
                                                         visible_to(user))).rowcount
            if not deleted:
                raise NotFoundError(f"device {device_id} not found")
            bump_revision(conn)

    def set_accumulators(self, user: User | None, device_id: int, *,
                         total_distance_m: float | None = None,
                         hours_ms: int | None = None) -> None:
        changes: dict[str, Any] = {}
        if total_distance_m is not None:
            changes["totalDistance"] = total_distance_m
        if hours_ms is not None:
            changes["hours"] = hours_ms
        with self._write() as conn:
            device = conn.execute(select(devices.c.position_id).where(
                devices.c.id == device_id, visible_to(user)).with_for_update()).one_or_none()
            if device is None:
                raise NotFoundError(f"device {device_id} not found")
            latest = None if device.position_id is None else conn.execute(
                select(positions.c.id, positions.c.attributes).where(
                    positions.c.id == device.position_id,
                    positions.c.device_id == device_id).with_for_update()).one_or_none()
            if latest is None:
                raise NoPositionError(f"device {device_id} has no position yet")
            if changes:
                conn.execute(update(positions).where(positions.c.id == latest.id)
                             .values(attributes={**(latest.attributes or {}), **changes}))

    def visible_device(self, user: User | None, device_id: int) -> Device | None:
        with self._read() as conn:
            row = conn.execute(select(devices).where(devices.c.id == device_id,
                                                     visible_to(user))).one_or_none()
        return records.device(row) if row is not None else None

    def record_unknown_device(self, attempt: UnknownDeviceAttempt) -> None:
        with self._write() as conn:
            conn.execute(insert(unknown_devices).values(self._unknown_device_row(attempt)))

    def record_unknown_devices(self, attempts: Sequence[UnknownDeviceAttempt],
                               max_rows: int) -> None:
        """Insert `attempts` and keep only the newest `max_rows` rows (by insertion
        order, i.e. id), in one transaction; `attempts` may be empty (trim only).
        Texts longer than the columns are cut."""
        if max_rows < 1:
            raise ValueError(f"record_unknown_devices: max_rows must be >= 1, not {max_rows}")
        with self._write() as conn:
            if attempts:
                conn.execute(insert(unknown_devices),
                             [self._unknown_device_row(attempt) for attempt in attempts])
            newest_dropped = conn.execute(
                select(unknown_devices.c.id).order_by(unknown_devices.c.id.desc())
                .offset(max_rows).limit(1)).scalar_one_or_none()
            if newest_dropped is not None:
                conn.execute(delete(unknown_devices)
                             .where(unknown_devices.c.id <= newest_dropped))

    @staticmethod
    def _unknown_device_row(attempt: UnknownDeviceAttempt) -> dict[str, Any]:
        """The row of an attempt: texts escaped (NUL, lone surrogates) and cut to their
        columns, so that one garbage id cannot make a whole batch fail."""
        columns = unknown_devices.c
        return {"unique_id": safe_text(attempt.unique_id, _width(columns.unique_id)),
                "protocol": safe_text(attempt.protocol, _width(columns.protocol)),
                "remote_address": safe_text(attempt.remote_address,
                                            _width(columns.remote_address)),
                "attempt_time": attempt.attempt_time}

    def unknown_devices(self, limit: int = 1000) -> list[UnknownDeviceAttempt]:
        with self._read() as conn:
            rows = conn.execute(
                select(unknown_devices)
                .order_by(unknown_devices.c.attempt_time.desc(), unknown_devices.c.id.desc())
                .limit(limit)).all()
        return [UnknownDeviceAttempt(unique_id=r.unique_id, protocol=r.protocol,
                                     remote_address=r.remote_address,
                                     attempt_time=r.attempt_time) for r in rows]


def _width(column: ColumnElement[Any]) -> int:
    """The length of a String(n) column."""
    column_type = column.type
    if not isinstance(column_type, String) or column_type.length is None:
        raise TypeError(f"{column} is not a String(n) column")
    return column_type.length
