"""The initial schema: organisations, users, web sessions, devices, positions,
events, unknown devices; on PostgreSQL also PostGIS and `positions.geom`.

Revision ID: 0001
Revises:
Create Date: 2024-06-01

Self-contained on purpose (plain SQLAlchemy types, explicit constraint names), so
later changes to `schema.py` cannot change what this revision does.
`UTCDateTime` columns are `DateTime(timezone=True)` here: the decorator only
converts values in Python.

PostgreSQL only: `positions.geom geography(Point,4326)` is GENERATED from longitude
and latitude and indexed with GiST.  Coordinates outside [-180, 180] x [-90, 90]
(or NaN) give NULL instead of the point PostGIS would silently wrap them to, so a
bad fix never lands somewhere plausible in the spatial index.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geography
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

GEOM_SRID = 4326
GEOM_EXPRESSION = (
    "CASE WHEN latitude BETWEEN -90 AND 90 AND longitude BETWEEN -180 AND 180 "
    f"THEN ST_SetSRID(ST_MakePoint(longitude, latitude), {GEOM_SRID})::geography END")


def _json(none_as_null: bool = False) -> sa.types.TypeEngine:
    return sa.JSON(none_as_null=none_as_null).with_variant(
        JSONB(none_as_null=none_as_null), "postgresql")


def _big_id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    organisations = op.create_table(
        "organisations",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        _time("created"),
        sa.PrimaryKeyConstraint("id", name="pk_organisations"),
    )
    op.bulk_insert(organisations, [
        {"id": 1, "name": "Default", "created": dt.datetime.now(dt.UTC)}])
    if postgres:   # the explicit id did not advance the sequence
        op.execute("SELECT setval(pg_get_serial_sequence('organisations', 'id'), "
                   "(SELECT max(id) FROM organisations))")

    op.create_table(
        "users",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("administrator", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("organisation_id", sa.Integer, nullable=False),
        _time("created"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"],
                                name="fk_users_organisation_id_organisations"),
    )

    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        _time("expires"),
        sa.PrimaryKeyConstraint("token_hash", name="pk_web_sessions"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_web_sessions_user_id_users"),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_index("ix_web_sessions_expires", "web_sessions", ["expires"])

    op.create_table(
        "devices",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("unique_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("organisation_id", sa.Integer, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        _time("last_update", nullable=True),
        sa.Column("position_id", _big_id(), nullable=True),
        sa.Column("attributes", _json(), nullable=False, server_default=sa.text("'{}'")),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        sa.UniqueConstraint("unique_id", name="uq_devices_unique_id"),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisations.id"],
                                name="fk_devices_organisation_id_organisations"),
    )
    op.create_index("ix_devices_organisation_id", "devices", ["organisation_id"])

    op.create_table(
        "positions",
        sa.Column("id", _big_id(), nullable=False, autoincrement=True),
        sa.Column("device_id", sa.Integer, nullable=False),
        sa.Column("protocol", sa.String(64), nullable=False),
        _time("server_time"),
        _time("device_time"),
        _time("fix_time"),
        sa.Column("valid", sa.Boolean, nullable=False),
        sa.Column("latitude", sa.Double, nullable=False),
        sa.Column("longitude", sa.Double, nullable=False),
        sa.Column("altitude", sa.Double, nullable=False, server_default="0"),
        sa.Column("speed", sa.Double, nullable=False, server_default="0"),
        sa.Column("course", sa.Double, nullable=False, server_default="0"),
        sa.Column("accuracy", sa.Double, nullable=False, server_default="0"),
        sa.Column("attributes", _json(), nullable=False),
        sa.Column("network", _json(none_as_null=True), nullable=True),
        sa.Column("archive", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("id", name="pk_positions"),
        # Also the (device_id, fix_time) index used by history queries.
        sa.UniqueConstraint("device_id", "fix_time", name="uq_positions_device_id_fix_time"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE",
                                name="fk_positions_device_id_devices"),
    )
    if postgres:
        op.add_column("positions", sa.Column(
            "geom", Geography(geometry_type="POINT", srid=GEOM_SRID, spatial_index=False),
            sa.Computed(GEOM_EXPRESSION, persisted=True), nullable=True))
        op.create_index("ix_positions_geom", "positions", ["geom"], postgresql_using="gist")

    op.create_table(
        "events",
        sa.Column("id", _big_id(), nullable=False, autoincrement=True),
        sa.Column("device_id", sa.Integer, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        _time("event_time"),
        sa.Column("position_id", _big_id(), nullable=True),
        sa.Column("attributes", _json(), nullable=False),
        sa.Column("alarm", sa.String(128), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("device_id", "type", "event_time", "alarm",
                            name="uq_events_device_id_type_event_time_alarm"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE",
                                name="fk_events_device_id_devices"),
    )
    op.create_index("ix_events_device_id_event_time", "events", ["device_id", "event_time"])

    op.create_table(
        "unknown_devices",
        sa.Column("id", _big_id(), nullable=False, autoincrement=True),
        sa.Column("unique_id", sa.String(128), nullable=False),
        sa.Column("protocol", sa.String(64), nullable=False),
        sa.Column("remote_address", sa.String(128), nullable=False),
        _time("attempt_time"),
        sa.PrimaryKeyConstraint("id", name="pk_unknown_devices"),
    )
    op.create_index("ix_unknown_devices_attempt_time", "unknown_devices", ["attempt_time"])


def downgrade() -> None:
    for table in ("unknown_devices", "events", "positions", "devices", "web_sessions",
                  "users", "organisations"):
        op.drop_table(table)
