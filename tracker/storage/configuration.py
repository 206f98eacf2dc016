"""Configuration: organisations, groups, device settings, geofences and their links,
calendars, rules, and the snapshot the rule engine reads
(`tracker.ports.ConfigurationRepository`).

Every write also increments the one row of `config_revision` in its transaction.
Scoping and references are checked inside the write transaction (what a rule
definition refers to is `tracker.policies.rule_references`); the deletes that the
foreign keys would cascade (links, a deleted group's devices, a deleted calendar's
geofences) are done explicitly as well, so they do not depend on SQLite's
`PRAGMA foreign_keys`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Table, delete, false, insert, select, true, update

from tracker import policies
from tracker.models import Calendar, Device, Geofence, Group, Organisation, Rule, RuleConfig, User
from tracker.ports import UNCHANGED, InUseError, NotFoundError, Unchanged
from tracker.storage import records
from tracker.storage.base import SqlBase, bump_revision, current_revision, utc_now, visible_to
from tracker.storage.schema import (
    DEFAULT_ORGANISATION_ID,
    calendars,
    device_geofences,
    devices,
    geofences,
    group_geofences,
    groups,
    notification_groups,
    organisations,
    rule_states,
    rules,
)
from tracker.storage.scoping import find, link_target, owned


class ConfigurationMixin(SqlBase):
    """`tracker.ports.ConfigurationRepository` on SQL (see the module docstring)."""

    def add_organisation(self, name: str) -> int:
        """Create an organisation; returns its id."""
        with self._write() as conn:
            return conn.execute(
                insert(organisations).values(name=name, created=utc_now())
                .returning(organisations.c.id)).scalar_one()

    def organisations(self) -> list[Organisation]:
        with self._read() as conn:
            rows = conn.execute(select(organisations).order_by(organisations.c.id)).all()
        return [records.organisation(row) for row in rows]

    def set_organisation_timezone(self, organisation_id: int, timezone: str) -> None:
        with self._write() as conn:
            changed = conn.execute(update(organisations)
                                   .where(organisations.c.id == organisation_id)
                                   .values(timezone=timezone)).rowcount
            if not changed:
                raise NotFoundError(f"organisation {organisation_id} not found")
            bump_revision(conn)

    # -- configuration: groups and device settings ------------------------------------

    def add_group(self, user: User | None, name: str, attributes: Mapping[str, Any] = {},
                  organisation_id: int | None = None) -> Group:
        with self._write() as conn:
            owner = _target_organisation(conn, user, organisation_id)
            row = conn.execute(insert(groups).values(
                organisation_id=owner, name=name, attributes=dict(attributes))
                .returning(*groups.c)).one()
            bump_revision(conn)
        return records.group(row)

    def groups(self, user: User | None) -> list[Group]:
        with self._read() as conn:
            rows = conn.execute(select(groups).where(owned(groups, user))
                                .order_by(groups.c.id)).all()
        return [records.group(row) for row in rows]

    def update_group(self, user: User | None, group_id: int, *, name: str | None = None,
                     attributes: Mapping[str, Any] | None = None) -> Group:
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = name
        if attributes is not None:
            values["attributes"] = dict(attributes)
        with self._write() as conn:
            row = find(conn, groups, group_id, user, "group")
            if values:
                row = conn.execute(update(groups).where(groups.c.id == group_id)
                                   .values(**values).returning(*groups.c)).one()
            bump_revision(conn)
        return records.group(row)

    def delete_group(self, user: User | None, group_id: int) -> None:
        with self._write() as conn:
            find(conn, groups, group_id, user, "group")
            conn.execute(update(devices).where(devices.c.group_id == group_id)
                         .values(group_id=None))
            conn.execute(delete(group_geofences).where(group_geofences.c.group_id == group_id))
            conn.execute(delete(notification_groups).where(notification_groups.c.group_id == group_id))
            conn.execute(delete(groups).where(groups.c.id == group_id))
            bump_revision(conn)

    def update_device(self, user: User | None, device_id: int, *, name: str | None = None,
                      group_id: int | None | Unchanged = UNCHANGED,
                      attributes: Mapping[str, Any] | None = None) -> Device:
        with self._write() as conn:
            row = conn.execute(select(devices).where(devices.c.id == device_id,
                                                     visible_to(user))).one_or_none()
            if row is None:
                raise NotFoundError(f"device {device_id} not found")
            values: dict[str, Any] = {}
            if name is not None:
                values["name"] = name
            if group_id is not UNCHANGED:
                if group_id is not None:
                    _require(conn, groups, group_id, row.organisation_id, "group")
                values["group_id"] = group_id
            if attributes is not None:
                values["settings"] = dict(attributes)
            if values:
                row = conn.execute(update(devices).where(devices.c.id == device_id)
                                   .values(**values).returning(*devices.c)).one()
            bump_revision(conn)
        return records.device(row)

    # -- configuration: geofences ---------------------------------------------------------

    def add_geofence(self, user: User | None, name: str, geometry: Mapping[str, Any], *,
                     description: str = "", calendar_id: int | None = None,
                     attributes: Mapping[str, Any] = {},
                     organisation_id: int | None = None) -> Geofence:
        with self._write() as conn:
            owner = _target_organisation(conn, user, organisation_id)
            if calendar_id is not None:
                _require(conn, calendars, calendar_id, owner, "calendar")
            row = conn.execute(insert(geofences).values(
                organisation_id=owner, name=name, description=description,
                geometry=dict(geometry), calendar_id=calendar_id,
                attributes=dict(attributes)).returning(*geofences.c)).one()
            bump_revision(conn)
        return records.geofence(row)

    def geofence(self, user: User | None, geofence_id: int) -> Geofence | None:
        with self._read() as conn:
            row = conn.execute(select(geofences).where(
                geofences.c.id == geofence_id, owned(geofences, user))).one_or_none()
        return records.geofence(row) if row is not None else None

    def geofences(self, user: User | None, *, device_id: int | None = None,
                  group_id: int | None = None) -> list[Geofence]:
        query = select(geofences).where(owned(geofences, user)).order_by(geofences.c.id)
        if device_id is not None:
            query = query.where(geofences.c.id.in_(
                select(device_geofences.c.geofence_id)
                .where(device_geofences.c.device_id == device_id)))
        if group_id is not None:
            query = query.where(geofences.c.id.in_(
                select(group_geofences.c.geofence_id)
                .where(group_geofences.c.group_id == group_id)))
        with self._read() as conn:
            return [records.geofence(row) for row in conn.execute(query)]

    def update_geofence(self, user: User | None, geofence_id: int, *, name: str,
                        geometry: Mapping[str, Any], description: str = "",
                        calendar_id: int | None = None,
                        attributes: Mapping[str, Any] = {}) -> Geofence:
        with self._write() as conn:
            current = find(conn, geofences, geofence_id, user, "geofence")
            if calendar_id is not None:
                _require(conn, calendars, calendar_id, current.organisation_id, "calendar")
            row = conn.execute(update(geofences).where(geofences.c.id == geofence_id).values(
                name=name, geometry=dict(geometry), description=description,
                calendar_id=calendar_id, attributes=dict(attributes))
                .returning(*geofences.c)).one()
            bump_revision(conn)
        return records.geofence(row)

    def delete_geofence(self, user: User | None, geofence_id: int) -> None:
        with self._write() as conn:
            current = find(conn, geofences, geofence_id, user, "geofence")
            _refuse_if_used(conn, current.organisation_id, "zone", geofence_id, "geofence")
            conn.execute(delete(device_geofences)
                         .where(device_geofences.c.geofence_id == geofence_id))
            conn.execute(delete(group_geofences)
                         .where(group_geofences.c.geofence_id == geofence_id))
            conn.execute(delete(geofences).where(geofences.c.id == geofence_id))
            bump_revision(conn)

    def link_geofence(self, user: User | None, geofence_id: int, *,
                      device_id: int | None = None, group_id: int | None = None) -> None:
        table, owner_column, owner_id = _geofence_link(device_id, group_id)
        with self._write() as conn:
            zone = find(conn, geofences, geofence_id, user, "geofence")
            owners = devices if table is device_geofences else groups
            _require(conn, owners, owner_id, zone.organisation_id, owner_column[:-3])
            conn.execute(self._insert(table).values(
                {owner_column: owner_id, "geofence_id": geofence_id}).on_conflict_do_nothing())
            bump_revision(conn)

    def unlink_geofence(self, user: User | None, geofence_id: int, *,
                        device_id: int | None = None, group_id: int | None = None) -> None:
        table, owner_column, owner_id = _geofence_link(device_id, group_id)
        with self._write() as conn:
            find(conn, geofences, geofence_id, user, "geofence")
            removed = conn.execute(delete(table).where(
                table.c[owner_column] == owner_id, table.c.geofence_id == geofence_id)).rowcount
            if not removed:
                raise NotFoundError(f"geofence {geofence_id} is not linked to "
                                    f"{owner_column[:-3]} {owner_id}")
            bump_revision(conn)

    # -- configuration: calendars ---------------------------------------------------------

    def add_calendar(self, user: User | None, name: str, data: Mapping[str, Any],
                     organisation_id: int | None = None) -> Calendar:
        with self._write() as conn:
            owner = _target_organisation(conn, user, organisation_id)
            row = conn.execute(insert(calendars).values(
                organisation_id=owner, name=name, data=dict(data))
                .returning(*calendars.c)).one()
            bump_revision(conn)
        return records.calendar(row)

    def calendars(self, user: User | None) -> list[Calendar]:
        with self._read() as conn:
            rows = conn.execute(select(calendars).where(owned(calendars, user))
                                .order_by(calendars.c.id)).all()
        return [records.calendar(row) for row in rows]

    def update_calendar(self, user: User | None, calendar_id: int, *, name: str,
                        data: Mapping[str, Any]) -> Calendar:
        with self._write() as conn:
            find(conn, calendars, calendar_id, user, "calendar")
            row = conn.execute(update(calendars).where(calendars.c.id == calendar_id)
                               .values(name=name, data=dict(data))
                               .returning(*calendars.c)).one()
            bump_revision(conn)
        return records.calendar(row)

    def delete_calendar(self, user: User | None, calendar_id: int) -> None:
        with self._write() as conn:
            current = find(conn, calendars, calendar_id, user, "calendar")
            _refuse_if_used(conn, current.organisation_id, "calendar", calendar_id, "calendar")
            conn.execute(update(geofences).where(geofences.c.calendar_id == calendar_id)
                         .values(calendar_id=None))
            conn.execute(delete(calendars).where(calendars.c.id == calendar_id))
            bump_revision(conn)

    # -- configuration: rules ---------------------------------------------------------------

    def add_rule(self, user: User | None, name: str, definition: Mapping[str, Any],
                 enabled: bool = True, organisation_id: int | None = None) -> Rule:
        """The geofences ("zone") and calendars ("calendar") the definition names must
        be in the rule's organisation (NotFoundError)."""
        with self._write() as conn:
            owner = _target_organisation(conn, user, organisation_id)
            _require_referenced(conn, owner, definition)
            row = conn.execute(insert(rules).values(
                organisation_id=owner, name=name, definition=dict(definition),
                enabled=enabled, created=utc_now()).returning(*rules.c)).one()
            bump_revision(conn)
        return records.rule(row)

    def rules(self, user: User | None) -> list[Rule]:
        """Enabled and disabled ones, by id."""
        with self._read() as conn:
            rows = conn.execute(select(rules).where(owned(rules, user))
                                .order_by(rules.c.id)).all()
        return [records.rule(row) for row in rows]

    def rule(self, user: User | None, rule_id: int) -> Rule | None:
        with self._read() as conn:
            row = conn.execute(select(rules).where(
                rules.c.id == rule_id, owned(rules, user))).one_or_none()
        return records.rule(row) if row is not None else None

    def update_rule(self, user: User | None, rule_id: int, *, name: str,
                    definition: Mapping[str, Any], enabled: bool = True) -> Rule:
        with self._write() as conn:
            current = find(conn, rules, rule_id, user, "rule")
            _require_referenced(conn, current.organisation_id, definition)
            row = conn.execute(update(rules).where(rules.c.id == rule_id).values(
                name=name, definition=dict(definition), enabled=enabled)
                .returning(*rules.c)).one()
            bump_revision(conn)
        return records.rule(row)

    def delete_rule(self, user: User | None, rule_id: int) -> None:
        with self._write() as conn:
            find(conn, rules, rule_id, user, "rule")
            conn.execute(delete(rules).where(rules.c.id == rule_id))
            bump_revision(conn)

    # -- configuration as the rule engine reads it -------------------------------------

    def rule_config(self) -> RuleConfig:
        """One snapshot (REPEATABLE READ on PostgreSQL; one SQLite read transaction):
        the revision always describes exactly the rows read with it."""
        with self._read(snapshot=True) as conn:
            revision = current_revision(conn)
            organisation_rows = conn.execute(
                select(organisations).order_by(organisations.c.id)).all()
            device_rows = conn.execute(select(devices).where(devices.c.disabled == false())
                                       .order_by(devices.c.id)).all()
            group_rows = conn.execute(select(groups).order_by(groups.c.id)).all()
            geofence_rows = conn.execute(select(geofences).order_by(geofences.c.id)).all()
            calendar_rows = conn.execute(select(calendars).order_by(calendars.c.id)).all()
            rule_rows = conn.execute(select(rules).where(rules.c.enabled == true())
                                     .order_by(rules.c.id)).all()
            device_links = conn.execute(
                select(device_geofences.c.device_id, device_geofences.c.geofence_id)
                .join(devices, devices.c.id == device_geofences.c.device_id)
                .where(devices.c.disabled == false())
                .order_by(device_geofences.c.device_id, device_geofences.c.geofence_id)).all()
            group_links = conn.execute(
                select(group_geofences.c.group_id, group_geofences.c.geofence_id)
                .order_by(group_geofences.c.group_id, group_geofences.c.geofence_id)).all()
        return RuleConfig(
            revision=revision,
            organisations=tuple(records.organisation(row) for row in organisation_rows),
            devices=tuple(records.device(row) for row in device_rows),
            groups=tuple(records.group(row) for row in group_rows),
            geofences=tuple(records.geofence(row) for row in geofence_rows),
            calendars=tuple(records.calendar(row) for row in calendar_rows),
            rules=tuple(records.rule(row) for row in rule_rows),
            device_geofences=tuple((row.device_id, row.geofence_id) for row in device_links),
            group_geofences=tuple((row.group_id, row.geofence_id) for row in group_links))

    def config_revision(self) -> int:
        with self._read() as conn:
            return current_revision(conn)

    def rule_states(self) -> dict[int, Mapping[str, Any]]:
        with self._read() as conn:
            return {row.device_id: row.state for row in conn.execute(
                select(rule_states.c.device_id, rule_states.c.state))}


def _require(conn: Connection, table: Table, object_id: int, organisation_id: int,
             what: str) -> None:
    """A referenced object must exist in the referring object's organisation."""
    found = conn.execute(select(table.c.id).where(
        table.c.id == object_id, table.c.organisation_id == organisation_id)).first()
    if found is None:
        raise NotFoundError(f"{what} {object_id} not found")


def _target_organisation(conn: Connection, user: User | None,
                         organisation_id: int | None) -> int:
    """Where a new object goes: a member's own organisation; for an administrator or
    the CLI (user None) `organisation_id` if given, else theirs / the default one."""
    if user is not None and not user.administrator:
        if organisation_id not in (None, user.organisation_id):
            raise NotFoundError(f"organisation {organisation_id} not found")
        return user.organisation_id
    if organisation_id is None:
        organisation_id = user.organisation_id if user is not None else DEFAULT_ORGANISATION_ID
    if conn.execute(select(organisations.c.id)
                    .where(organisations.c.id == organisation_id)).first() is None:
        raise NotFoundError(f"organisation {organisation_id} not found")
    return organisation_id


def _geofence_link(device_id: int | None, group_id: int | None) -> tuple[Table, str, int]:
    return link_target(device_id, group_id, device_geofences, group_geofences, "geofence")


def _require_referenced(conn: Connection, organisation_id: int,
                        definition: Mapping[str, Any]) -> None:
    """The geofences and calendars a rule definition names must be in its organisation."""
    references = policies.rule_references(definition)
    for ids, table, what in ((references.zones, geofences, "geofence"),
                             (references.calendars, calendars, "calendar")):
        for object_id in sorted(ids):
            _require(conn, table, object_id, organisation_id, what)


def _refuse_if_used(conn: Connection, organisation_id: int, kind: str, object_id: int,
                    what: str) -> None:
    """InUseError if a rule (enabled or not) of the organisation names the object
    (`kind` "zone": a geofence; "calendar": a calendar)."""
    for rule in conn.execute(select(rules.c.id, rules.c.name, rules.c.definition)
                             .where(rules.c.organisation_id == organisation_id)
                             .order_by(rules.c.id)):
        references = policies.rule_references(rule.definition)
        if object_id in (references.zones if kind == "zone" else references.calendars):
            raise InUseError(f"{what} {object_id} is used by rule {rule.id} ({rule.name})")
