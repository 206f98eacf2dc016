"""Configuration for the rule engine: organisation time zones, groups, device settings,
geofences and their links, calendars, user rules, per-device rule state, the
configuration revision; events get a subject and a geofence id.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Self-contained (plain SQLAlchemy types, explicit constraint names), like 0001.

Changes to existing tables:
- organisations: + timezone (IANA name, default 'UTC');
- devices: + group_id (foreign key to groups, ON DELETE SET NULL), + settings (the
  configuration users set: Traccar's device "attributes"; the existing `attributes`
  stay the merged status attributes);
- events: `alarm` is renamed `subject` (every stored alarm value becomes its
  subject), + geofence_id (no foreign key: events outlive zones), and the unique key
  becomes (device_id, type, event_time, subject).

SQLite rebuilds `devices` and `events` (batch copy-and-move: a foreign key cannot be
added, nor a UNIQUE constraint dropped, in place).  That is only safe because
`SqlStore.migrate` switches `PRAGMA foreign_keys` off while migrating: with it on, the
DROP TABLE of the old `devices` would delete every position, event, command and
rule state through their ON DELETE CASCADE.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def _empty_json() -> sa.TextClause:
    return sa.text("'{}'")


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"],
                                   name=f"fk_{table}_organisation_id_organisations")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"

    # -- organisations: a time zone (plain ADD COLUMN, no rebuild) -------------------
    with op.batch_alter_table("organisations", recreate="never") as batch:
        batch.add_column(sa.Column("timezone", sa.String(64), nullable=False,
                                   server_default="UTC"))

    # -- new tables ----------------------------------------------------------------
    op.create_table(
        "groups",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("organisation_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("attributes", _json(), nullable=False, server_default=_empty_json()),
        sa.PrimaryKeyConstraint("id", name="pk_groups"),
        _org_fk("groups"),
    )

    op.create_table(
        "calendars",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("organisation_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("data", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_calendars"),
        _org_fk("calendars"),
    )

    op.create_table(
        "geofences",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("organisation_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.String(2000), nullable=False, server_default=""),
        sa.Column("geometry", _json(), nullable=False),
        sa.Column("calendar_id", sa.Integer, nullable=True),
        sa.Column("attributes", _json(), nullable=False, server_default=_empty_json()),
        sa.PrimaryKeyConstraint("id", name="pk_geofences"),
        _org_fk("geofences"),
        sa.ForeignKeyConstraint(["calendar_id"], ["calendars.id"], ondelete="SET NULL",
                                name="fk_geofences_calendar_id_calendars"),
    )

    op.create_table(
        "rules",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("organisation_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("definition", _json(), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rules"),
        _org_fk("rules"),
    )

    # -- devices: group and settings (a copy-and-move on SQLite, see the docstring) ----
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("group_id", sa.Integer, nullable=True))
        batch.add_column(sa.Column("settings", _json(), nullable=False,
                                   server_default=_empty_json()))
        batch.create_foreign_key("fk_devices_group_id_groups", "groups", ["group_id"], ["id"],
                                 ondelete="SET NULL")
        batch.create_index("ix_devices_group_id", ["group_id"])

    # -- links and rule state ------------------------------------------------------------
    for owner, table in (("device", "devices"), ("group", "groups")):
        name = f"{owner}_geofences"
        op.create_table(
            name,
            sa.Column(f"{owner}_id", sa.Integer, nullable=False),
            sa.Column("geofence_id", sa.Integer, nullable=False),
            sa.PrimaryKeyConstraint(f"{owner}_id", "geofence_id", name=f"pk_{name}"),
            sa.ForeignKeyConstraint([f"{owner}_id"], [f"{table}.id"], ondelete="CASCADE",
                                    name=f"fk_{name}_{owner}_id_{table}"),
            sa.ForeignKeyConstraint(["geofence_id"], ["geofences.id"], ondelete="CASCADE",
                                    name=f"fk_{name}_geofence_id_geofences"),
        )
        op.create_index(f"ix_{name}_geofence_id", name, ["geofence_id"])

    op.create_table(
        "rule_states",
        sa.Column("device_id", sa.Integer, nullable=False),
        sa.Column("state", _json(), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("device_id", name="pk_rule_states"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE",
                                name="fk_rule_states_device_id_devices"),
    )

    config_revision = op.create_table(
        "config_revision",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_config_revision"),
    )
    op.bulk_insert(config_revision, [{"id": 1, "revision": 0}])

    # -- events: subject (was alarm), geofence id, the new unique key ---------------------
    # The rename carries every stored alarm value over as the subject; SQLite then
    # copies the table (a UNIQUE constraint cannot be dropped otherwise).
    op.alter_column("events", "alarm", new_column_name="subject",
                    existing_type=sa.String(128), existing_nullable=False,
                    existing_server_default="")
    with op.batch_alter_table("events", recreate="always" if sqlite else "never") as batch:
        batch.drop_constraint("uq_events_device_id_type_event_time_alarm", type_="unique")
        batch.add_column(sa.Column("geofence_id", sa.Integer, nullable=True))
        batch.create_unique_constraint("uq_events_device_id_type_event_time_subject",
                                       ["device_id", "type", "event_time", "subject"])


def downgrade() -> None:
    """Geofence events of one device at one instant that differ only in their zone
    collide in the old key: all but the oldest are deleted."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute("DELETE FROM events WHERE id NOT IN (SELECT min(id) FROM events "
               "GROUP BY device_id, type, event_time, subject)")
    with op.batch_alter_table("events", recreate="always" if sqlite else "never") as batch:
        batch.drop_constraint("uq_events_device_id_type_event_time_subject", type_="unique")
        batch.drop_column("geofence_id")
    op.alter_column("events", "subject", new_column_name="alarm",
                    existing_type=sa.String(128), existing_nullable=False,
                    existing_server_default="")
    with op.batch_alter_table("events", recreate="always" if sqlite else "never") as batch:
        batch.create_unique_constraint("uq_events_device_id_type_event_time_alarm",
                                       ["device_id", "type", "event_time", "alarm"])
    for table in ("config_revision", "rule_states", "group_geofences", "device_geofences"):
        op.drop_table(table)
    with op.batch_alter_table("devices") as batch:
        batch.drop_index("ix_devices_group_id")
        batch.drop_constraint("fk_devices_group_id_groups", type_="foreignkey")
        batch.drop_column("group_id")
        batch.drop_column("settings")
    for table in ("rules", "geofences", "calendars", "groups"):
        op.drop_table(table)
    with op.batch_alter_table("organisations") as batch:
        batch.drop_column("timezone")
