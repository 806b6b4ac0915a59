"""The offline checkout's sessions and refunds (the development stand-in for Stripe Checkout).

Revision ID: 0003_offline_checkout
Revises: 0002_users_roles
Create Date: 2026-12-01

Written by hand; keep adapters/postgres/rows.py in step. The tables stay empty when real Stripe
is configured. Kept in the database (not in a process's memory) so that offline checkouts
survive a restart and work across several worker processes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_offline_checkout"
down_revision: str | Sequence[str] | None = "0002_users_roles"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _created_at() -> sa.Column[object]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    op.create_table(
        "offline_checkout_sessions",
        sa.Column("id", sa.Text, nullable=False),  # random, unguessable (cs_offline_<hex>)
        sa.Column("form_secret", sa.Text, nullable=False),  # posted back by Pay / Cancel
        sa.Column("idempotency_key", sa.Text, nullable=False),
        sa.Column("booking_id", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.Integer, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("customer_email", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default="open"),
        sa.Column("payment_intent_id", sa.Text),
        sa.Column("refunded_amount", sa.Integer, nullable=False, server_default="0"),
        _created_at(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offline_checkout_sessions")),
        sa.UniqueConstraint(
            "idempotency_key", name=op.f("uq_offline_checkout_sessions_idempotency_key")
        ),
        sa.UniqueConstraint(
            "payment_intent_id", name=op.f("uq_offline_checkout_sessions_payment_intent_id")
        ),
    )
    op.create_table(
        "offline_checkout_refunds",
        sa.Column("idempotency_key", sa.Text, nullable=False),
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("payment_intent_id", sa.Text, nullable=False),
        sa.Column("amount", sa.Integer, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        _created_at(),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_offline_checkout_refunds")),
        sa.UniqueConstraint("id", name=op.f("uq_offline_checkout_refunds_id")),
    )


def downgrade() -> None:
    op.drop_table("offline_checkout_refunds")
    op.drop_table("offline_checkout_sessions")
