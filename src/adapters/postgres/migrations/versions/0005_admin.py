"""The admin API: an audit log, named API tokens, a schedule version per practitioner (so every
process sees a schedule edit at once) and the ``no_show`` booking status.

Revision ID: 0005_admin
Revises: 0004_payments_ledger
Create Date: 2026-12-01

Written by hand; keep adapters/postgres/rows.py in step (tests/integration/test_migrations.py
compares the two).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0005_admin"
down_revision: str | Sequence[str] | None = "0004_payments_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # PostgreSQL 12+ adds an enum value inside a transaction; nothing here uses it before the
    # commit (which PostgreSQL requires).
    op.execute("ALTER TYPE booking_status ADD VALUE IF NOT EXISTS 'no_show'")
    op.add_column(
        "practitioners",
        sa.Column("schedule_version", sa.BigInteger, nullable=False, server_default="1"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_type", sa.Text, nullable=False),
        sa.Column("actor_id", sa.Text, nullable=False),
        sa.Column("actor_name", sa.Text, nullable=False, server_default=""),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("object_type", sa.Text, nullable=False),
        sa.Column("object_id", sa.Text, nullable=False),
        sa.Column("before", JSONB, nullable=True),
        sa.Column("after", JSONB, nullable=True),
        sa.Column("request_id", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(
        "ix_audit_log_object_type_object_id_id", "audit_log", ["object_type", "object_id", "id"]
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("token_hash", sa.Text, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )


def downgrade() -> None:
    op.drop_table("api_tokens")
    op.drop_index("ix_audit_log_object_type_object_id_id", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_column("practitioners", "schedule_version")
    # PostgreSQL cannot drop an enum value: a missed booking goes back to completed (what the
    # worker made of it before) and the unused value stays in the type.
    op.execute("UPDATE bookings SET status = 'completed' WHERE status::text = 'no_show'")
