"""Downlink commands: queued per device, sent on connection, answered by the device.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

Self-contained (plain SQLAlchemy types), like 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "commands",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False,
                  autoincrement=True),
        sa.Column("device_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("attributes", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.String(2000), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_commands"),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE",
                                name="fk_commands_device_id_devices"),
    )
    op.create_index("ix_commands_device_id_status", "commands", ["device_id", "status"])


def downgrade() -> None:
    op.drop_table("commands")
