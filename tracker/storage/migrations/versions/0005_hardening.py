"""Hardening: the quarantine table for device data the database refused, and
confirmation of notification targets (push_tokens.confirmed, confirm_code_hash).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

Existing targets count as confirmed from their creation, so nobody stops getting
alarms by this upgrade.  Self-contained, like 0001.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _big_id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "quarantine",
        sa.Column("id", _big_id(), nullable=False, autoincrement=True),
        sa.Column("received", sa.DateTime(timezone=True), nullable=False),
        sa.Column("protocol", sa.String(64), nullable=False),
        sa.Column("device_id", sa.Integer, nullable=True),
        sa.Column("unique_id", sa.String(128), nullable=True),
        sa.Column("remote_address", sa.String(128), nullable=True),
        sa.Column("frame_hex", sa.String(8192), nullable=False),
        sa.Column("error", sa.String(1000), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_quarantine"),
    )
    op.create_index("ix_quarantine_received", "quarantine", ["received"])
    with op.batch_alter_table("push_tokens", recreate="never") as batch:
        batch.add_column(sa.Column("confirmed", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("confirm_code_hash", sa.String(64), nullable=True))
    op.execute("UPDATE push_tokens SET confirmed = created")


def downgrade() -> None:
    with op.batch_alter_table("push_tokens") as batch:
        batch.drop_column("confirm_code_hash")
        batch.drop_column("confirmed")
    op.drop_index("ix_quarantine_received", table_name="quarantine")
    op.drop_table("quarantine")
