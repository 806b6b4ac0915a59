"""The offline checkout keeps a session only once it has moved (paid, or expired).

A session is now made without a write: its id carries its booking, amount and expiry, signed
by the gateway (entrypoints/dev/offline_checkout.py), as Stripe keeps its sessions on its side.
The table keeps what a session became (its state, its payment intent, what was refunded); the
columns only the making needed (its form secret, now derived from its id; its idempotency key;
the description and email, which the page takes from the booking) go.

Development data only: the table stays empty when real Stripe is configured. The downgrade puts
the columns back; a moved session gets its id as its idempotency key (unique, as it was) and
empty texts for the rest, which nobody reads once a session has moved.

Revision ID: 0009_offline_sessions_signed
Revises: 0008_practitioner_notify
Create Date: 2026-12-02

Written by hand; keep adapters/postgres/rows.py in step (tests/integration/test_migrations.py
compares the two).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_offline_sessions_signed"
down_revision: str | Sequence[str] | None = "0008_practitioner_notify"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "offline_checkout_sessions"
TEXTS = ("form_secret", "description", "customer_email")


def upgrade() -> None:
    op.drop_constraint(op.f("uq_offline_checkout_sessions_idempotency_key"), TABLE)
    for column in ("idempotency_key", *TEXTS):
        op.drop_column(TABLE, column)
    # Sessions open as they were made were kept before; they are not kept now.
    op.execute(f"DELETE FROM {TABLE} WHERE state = 'open'")  # noqa: S608 - a constant
    op.alter_column(TABLE, "state", server_default=None)


def downgrade() -> None:
    op.alter_column(TABLE, "state", server_default="open")
    for column in TEXTS:
        op.add_column(TABLE, sa.Column(column, sa.Text, nullable=False, server_default=""))
        op.alter_column(TABLE, column, server_default=None)
    op.add_column(TABLE, sa.Column("idempotency_key", sa.Text))
    op.execute(f"UPDATE {TABLE} SET idempotency_key = id")  # noqa: S608 - a constant
    op.alter_column(TABLE, "idempotency_key", nullable=False)
    op.create_unique_constraint(
        op.f("uq_offline_checkout_sessions_idempotency_key"), TABLE, ["idempotency_key"]
    )
