"""Notifications: the outbox (written with the events), push tokens, per-user
preferences, Traccar-shaped notifications, deliveries (one per event and token) and
every delivery attempt.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

Self-contained (plain SQLAlchemy types, explicit constraint names), like 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def _big_id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "notification_outbox",
        sa.Column("id", _big_id(), nullable=False, autoincrement=True),
        sa.Column("event_id", _big_id(), nullable=False),
        sa.Column("device_id", sa.Integer, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notification_outbox"),
        sa.UniqueConstraint("event_id", name="uq_notification_outbox_event_id"),
    )
    op.create_table(
        "push_tokens",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("token", sa.String(4096), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_reason", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_push_tokens"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_push_tokens_user_id_users"),
        sa.UniqueConstraint("channel", "token_hash", name="uq_push_tokens_channel_token_hash"),
    )
    op.create_index("ix_push_tokens_user_id", "push_tokens", ["user_id"])
    op.create_table(
        "notification_preferences",
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("data", _json(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_notification_preferences"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_notification_preferences_user_id_users"),
    )
    op.create_table(
        "traccar_notifications",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("always", sa.Boolean, nullable=False),
        sa.Column("notificators", sa.String(200), nullable=False),
        sa.Column("attributes", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_traccar_notifications"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_traccar_notifications_user_id_users"),
    )
    op.create_index("ix_traccar_notifications_user_id", "traccar_notifications", ["user_id"])
    for owner, owner_table in (("device", "devices"), ("group", "groups")):
        table = f"notification_{owner}s"
        op.create_table(
            table,
            sa.Column("notification_id", sa.Integer, nullable=False),
            sa.Column(f"{owner}_id", sa.Integer, nullable=False),
            sa.PrimaryKeyConstraint("notification_id", f"{owner}_id", name=f"pk_{table}"),
            sa.ForeignKeyConstraint(["notification_id"], ["traccar_notifications.id"],
                                    ondelete="CASCADE",
                                    name=f"fk_{table}_notification_id_traccar_notifications"),
            sa.ForeignKeyConstraint([f"{owner}_id"], [f"{owner_table}.id"], ondelete="CASCADE",
                                    name=f"fk_{table}_{owner}_id_{owner_table}"),
        )
        op.create_index(f"ix_{table}_{owner}_id", table, [f"{owner}_id"])
    op.create_table(
        "deliveries",
        sa.Column("id", _big_id(), nullable=False, autoincrement=True),
        sa.Column("event_id", _big_id(), nullable=False),
        sa.Column("token_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.UniqueConstraint("event_id", "token_id", name="uq_deliveries_event_id_token_id"),
    )
    op.create_index("ix_deliveries_status_next_attempt", "deliveries", ["status", "next_attempt"])
    op.create_table(
        "delivery_attempts",
        sa.Column("id", _big_id(), nullable=False, autoincrement=True),
        sa.Column("delivery_id", _big_id(), nullable=False),
        sa.Column("attempt_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_attempts"),
    )
    op.create_index("ix_delivery_attempts_delivery_id", "delivery_attempts", ["delivery_id"])


def downgrade() -> None:
    for table in ("delivery_attempts", "deliveries", "notification_groups",
                  "notification_devices", "traccar_notifications",
                  "notification_preferences", "push_tokens", "notification_outbox"):
        op.drop_table(table)
