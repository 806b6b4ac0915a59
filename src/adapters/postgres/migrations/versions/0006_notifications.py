"""Notifications: the client's time zone captured at booking (their mails tell their time) and
the invitation's RFC 5545 SEQUENCE (one more on each move, so calendars replace the event).

Revision ID: 0006_notifications
Revises: 0005_admin
Create Date: 2026-12-01

Written by hand; keep adapters/postgres/rows.py in step (tests/integration/test_migrations.py
compares the two).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_notifications"
down_revision: str | Sequence[str] | None = "0005_admin"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("bookings", sa.Column("client_timezone", sa.Text, nullable=True))
    op.add_column("bookings", sa.Column("sequence", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("bookings", "sequence")
    op.drop_column("bookings", "client_timezone")
