"""Scheduling rules: slot alignment, booking windows and booking limits per service, booking
limits per practitioner, a shared service key (booking with any practitioner), the approval
step (a service that requires confirmation, the ``awaiting_approval`` status that occupies the
calendar, approved_at), and working hours past midnight.

Revision ID: 0007_scheduling_rules
Revises: 0006_notifications
Create Date: 2026-12-01

Written by hand; keep adapters/postgres/rows.py in step (tests/integration/test_migrations.py
compares the two).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_scheduling_rules"
down_revision: str | Sequence[str] | None = "0006_notifications"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# model.SERVICE_KEY_PATTERN when this was written (a migration never imports the model).
SERVICE_KEY = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
LIMITS = (
    "max_bookings_per_day",
    "max_bookings_per_week",
    "max_minutes_per_day",
    "max_minutes_per_week",
)
LIMITS_OK = " AND ".join(f"({c} IS NULL OR {c} BETWEEN 1 AND 100000)" for c in LIMITS)
OLD_MINUTES = "0 <= start_minute AND start_minute < end_minute AND end_minute <= 1440"
NEW_MINUTES = (
    "0 <= start_minute AND start_minute < 1440 AND start_minute < end_minute"
    " AND end_minute <= 2880 AND end_minute - start_minute <= 1440"
)
WINDOW_OK = (
    "(window_kind IN ('calendar_days', 'business_days')) = (window_days IS NOT NULL)"
    " AND (window_days IS NULL OR window_days BETWEEN 1 AND 730)"
    " AND (window_kind = 'date_range')"
    " = (window_first_day IS NOT NULL AND window_last_day IS NOT NULL)"
    " AND (window_kind = 'date_range' OR (window_first_day IS NULL AND window_last_day IS NULL))"
    " AND (window_last_day IS NULL OR window_last_day >= window_first_day)"
)


def _minutes_checks(new: str) -> None:
    op.drop_constraint(op.f("ck_working_hours_minutes"), "working_hours", type_="check")
    op.create_check_constraint(op.f("ck_working_hours_minutes"), "working_hours", new)
    op.drop_constraint(op.f("ck_date_overrides_minutes"), "date_overrides", type_="check")
    op.create_check_constraint(
        op.f("ck_date_overrides_minutes"),
        "date_overrides",
        f"(start_minute IS NULL AND end_minute IS NULL) OR ({new})",
    )


def _no_overlap(statuses: str, *, replace: bool = True) -> None:
    # The predicate is written exactly as rows.OCCUPYING_SQL (see 0001_initial_schema).
    if replace:
        op.execute("ALTER TABLE bookings DROP CONSTRAINT bookings_no_overlap")
    op.execute(
        "ALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap EXCLUDE USING gist ("
        " practitioner_id WITH =,"
        " tstzrange(occupied_start, occupied_end, '[)') WITH &&"
        f") WHERE (status IN ({statuses}))"
    )


STATUSES = "'pending', 'confirmed', 'completed', 'expired', 'cancelled', 'no_show'"


def _retype_status(values: str) -> None:
    """Rebuild booking_status with ``values``. Not ALTER TYPE ... ADD VALUE: a value added so
    cannot be used in the transaction that adds it (PostgreSQL: "unsafe use of new value"),
    and the migrations run in one transaction; nor can a value be dropped. The constraint and
    the partial index that compare statuses go while the column changes type."""
    op.execute("ALTER TABLE bookings DROP CONSTRAINT bookings_no_overlap")
    op.execute("DROP INDEX ix_bookings_pending_hold_expires_at")
    op.execute("ALTER TYPE booking_status RENAME TO booking_status_old")
    op.execute(f"CREATE TYPE booking_status AS ENUM ({values})")
    op.execute(
        "ALTER TABLE bookings ALTER COLUMN status TYPE booking_status"
        " USING status::text::booking_status"
    )
    op.execute("DROP TYPE booking_status_old")
    op.execute(
        "CREATE INDEX ix_bookings_pending_hold_expires_at ON bookings (hold_expires_at)"
        " WHERE status = 'pending'"
    )


def upgrade() -> None:
    _retype_status(f"'awaiting_approval', {STATUSES}")

    op.add_column(
        "services", sa.Column("alignment", sa.Text, nullable=False, server_default="grid")
    )
    op.add_column(
        "services", sa.Column("window_kind", sa.Text, nullable=False, server_default="rolling")
    )
    op.add_column("services", sa.Column("window_days", sa.Integer))
    op.add_column("services", sa.Column("window_first_day", sa.Date))
    op.add_column("services", sa.Column("window_last_day", sa.Date))
    op.add_column(
        "services",
        sa.Column("requires_confirmation", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column("bookings", sa.Column("approved_at", sa.DateTime(timezone=True)))
    op.add_column("services", sa.Column("key", sa.Text))
    op.create_index("ix_services_key", "services", ["key"])
    op.create_check_constraint(
        op.f("ck_services_key"), "services", f"key IS NULL OR key ~ '{SERVICE_KEY}'"
    )
    for table in ("services", "practitioners"):
        for column in LIMITS:
            op.add_column(table, sa.Column(column, sa.Integer))
        op.create_check_constraint(op.f(f"ck_{table}_limits"), table, LIMITS_OK)
    op.create_check_constraint(
        op.f("ck_services_alignment"), "services", "alignment IN ('grid', 'fill')"
    )
    op.create_check_constraint(
        op.f("ck_services_window_kind"),
        "services",
        "window_kind IN ('rolling', 'calendar_days', 'business_days', 'date_range')",
    )
    op.create_check_constraint(op.f("ck_services_booking_window"), "services", WINDOW_OK)
    _minutes_checks(NEW_MINUTES)
    _no_overlap("'pending', 'confirmed', 'awaiting_approval'", replace=False)


def downgrade() -> None:
    # Bookings still awaiting approval cannot be kept: the type loses their status.
    op.execute(
        "UPDATE bookings SET status = 'cancelled', hold_expires_at = NULL,"
        " cancel_reason = 'approval step removed' WHERE status = 'awaiting_approval'"
    )
    op.execute("DELETE FROM working_hours WHERE end_minute > 1440")
    op.execute("DELETE FROM date_overrides WHERE end_minute > 1440")
    _minutes_checks(OLD_MINUTES)
    op.drop_column("bookings", "approved_at")
    op.drop_constraint(op.f("ck_services_key"), "services", type_="check")
    op.drop_index("ix_services_key", table_name="services")
    op.drop_column("services", "key")
    for name in ("booking_window", "window_kind", "alignment"):
        op.drop_constraint(op.f(f"ck_services_{name}"), "services", type_="check")
    for table in ("services", "practitioners"):
        op.drop_constraint(op.f(f"ck_{table}_limits"), table, type_="check")
        for column in LIMITS:
            op.drop_column(table, column)
    for column in (
        "requires_confirmation",
        "window_last_day",
        "window_first_day",
        "window_days",
        "window_kind",
        "alignment",
    ):
        op.drop_column("services", column)
    _retype_status(STATUSES)
    _no_overlap("'pending', 'confirmed'", replace=False)
