"""Payments ledger (one row per payment intent applied, refunds bounded by the capture), unique
outbox jobs (one refund job per booking and reason), sync cursors (the payment reconciler's
position in the provider's event list), and a short lease on unfinished idempotency records.

Revision ID: 0004_payments_ledger
Revises: 0003_offline_checkout
Create Date: 2026-12-01

Written by hand; keep adapters/postgres/rows.py in step (tests/integration/test_migrations.py
compares the two).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_payments_ledger"
down_revision: str | Sequence[str] | None = "0003_offline_checkout"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("payment_intent_id", sa.Text, nullable=False),
        sa.Column("booking_id", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("captured_amount", sa.BigInteger, nullable=False),
        sa.Column("refunded_amount", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("payment_intent_id", name=op.f("pk_payments")),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_payments_booking_id_bookings"),
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint("captured_amount >= 0", name=op.f("ck_payments_captured_amount")),
        sa.CheckConstraint(
            "refunded_amount >= 0 AND refunded_amount <= captured_amount",
            name=op.f("ck_payments_refund_within_capture"),
        ),
        sa.CheckConstraint("currency ~ '^[a-z]{3}$'", name=op.f("ck_payments_currency")),
    )
    op.create_index("ix_payments_booking_id", "payments", ["booking_id"])
    # Payments applied before the ledger: every booking that names a payment intent was paid its
    # price (or, after an amount mismatch, at least what was refunded).
    op.execute(
        """
        INSERT INTO payments (payment_intent_id, booking_id, currency, captured_amount,
                              refunded_amount, created_at, updated_at)
        SELECT DISTINCT ON (payment_intent_id)
               payment_intent_id, id, price_currency,
               GREATEST(price_amount, COALESCE(refund_amount, 0)),
               COALESCE(refund_amount, 0), updated_at, updated_at
          FROM bookings
         WHERE payment_intent_id IS NOT NULL
         ORDER BY payment_intent_id, id
        """
    )

    op.create_table(
        "sync_cursors",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sync_cursors")),
    )

    op.add_column("idempotency_records", sa.Column("lease_expires_at", sa.DateTime(timezone=True)))
    op.add_column("idempotency_records", sa.Column("booking_id", sa.BigInteger))

    op.add_column("outbox_jobs", sa.Column("unique_key", sa.Text))
    op.create_unique_constraint(op.f("uq_outbox_jobs_unique_key"), "outbox_jobs", ["unique_key"])


def downgrade() -> None:
    op.drop_constraint(op.f("uq_outbox_jobs_unique_key"), "outbox_jobs", type_="unique")
    op.drop_column("outbox_jobs", "unique_key")
    op.drop_table("sync_cursors")
    op.drop_column("idempotency_records", "booking_id")
    op.drop_column("idempotency_records", "lease_expires_at")
    op.drop_index("ix_payments_booking_id", table_name="payments")
    op.drop_table("payments")
