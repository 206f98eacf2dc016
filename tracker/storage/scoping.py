"""Who may see what, for the repository modules of `SqlStore`.

Configuration rows carry an `organisation_id`; a member sees their own
organisation's, an administrator and the CLI (user None) see everything.  An
object that exists but may not be seen is reported as not found.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, Table, select, true
from sqlalchemy.engine import Connection

from tracker.models import User
from tracker.ports import NotFoundError


def owned(table: Table, user: User | None) -> Any:
    """WHERE clause (on a table with organisation_id) for what `user` may see."""
    if user is None or user.administrator:
        return true()
    return table.c.organisation_id == user.organisation_id


def find(conn: Connection, table: Table, object_id: int, user: User | None,
         what: str) -> Row[Any]:
    """The row if it exists and `user` may see it; else NotFoundError."""
    row = conn.execute(select(table).where(table.c.id == object_id, owned(table, user))
                       ).one_or_none()
    if row is None:
        raise NotFoundError(f"{what} {object_id} not found")
    return row


def link_target(device_id: int | None, group_id: int | None, device_links: Table,
                group_links: Table, what: str) -> tuple[Table, str, int]:
    """For a link to exactly one of a device or a group: the link table, its owner
    column ("device_id" / "group_id") and the owner's id.  ValueError for both or
    neither (`what` names the linked object in the message)."""
    if (device_id is None) == (group_id is None):
        raise ValueError(f"link a {what} to exactly one of device_id and group_id")
    if device_id is not None:
        return device_links, "device_id", device_id
    return group_links, "group_id", group_id   # type: ignore[return-value]
