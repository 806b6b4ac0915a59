"""Initial schema: users, practitioners and their schedules, services, bookings, payments, jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Written and reviewed by hand. Autogenerate cannot produce the bookings exclusion constraint
(it does not reflect EXCLUDE, and renders range expressions wrongly), so none of this is
generated. Keep adapters/postgres/rows.py in step: tests/integration/test_migrations.py compares
the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENUMS = {
    "user_role": ("user", "admin"),
    "booking_status": ("pending", "confirmed", "completed", "expired", "cancelled"),
    "refund_status": ("none", "pending", "succeeded", "failed"),
    "job_status": ("pending", "done", "parked"),
}


def _enum(name: str) -> postgresql.ENUM:
    return postgresql.ENUM(*ENUMS[name], name=name, create_type=False)


# Every constraint is named explicitly (op.f marks a name as final), so this revision creates
# the same names whatever naming convention rows.py uses later.


def _id(table: str) -> list[sa.schema.SchemaItem]:
    return [
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    ]


def _fk(table: str, column: str, referred: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{referred}.id"],
        name=op.f(f"fk_{table}_{column}_{referred}"),
        ondelete=ondelete,
    )


def _owned_by_practitioner(table: str, ondelete: str = "CASCADE") -> list[sa.schema.SchemaItem]:
    return [
        sa.Column("practitioner_id", sa.BigInteger, nullable=False),
        _fk(table, "practitioner_id", "practitioners", ondelete),
    ]


def _check(table: str, name: str, sql: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(sql, name=op.f(f"ck_{table}_{name}"))


def _unique(table: str, column: str) -> sa.UniqueConstraint:
    return sa.UniqueConstraint(column, name=op.f(f"uq_{table}_{column}"))


MINUTES_OK = "0 <= start_minute AND start_minute < end_minute AND end_minute <= 1440"


def upgrade() -> None:
    # btree_gist lets one GiST index compare the practitioner id (=) and the time range (&&).
    # It is a trusted extension since PostgreSQL 13: a database owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    for name, values in ENUMS.items():
        labels = ", ".join(f"'{v}'" for v in values)
        op.execute(f"CREATE TYPE {name} AS ENUM ({labels})")

    op.create_table(
        "users",
        *_id("users"),
        sa.Column("open_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("email", sa.Text),
        sa.Column("role", _enum("user_role"), nullable=False, server_default="user"),
        sa.Column("last_signed_in", sa.DateTime(timezone=True)),
        *_timestamps(),
        _unique("users", "open_id"),
    )

    op.create_table(
        "practitioners",
        *_id("practitioners"),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("bio", sa.Text, nullable=False, server_default=""),
        sa.Column("email", sa.Text, nullable=False, server_default=""),
        sa.Column("timezone", sa.Text, nullable=False, server_default="UTC"),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        # Cal.com link: event type id (or slug), user id, username; NULL event type = unlinked.
        sa.Column("calcom_event_type", sa.Text),
        sa.Column("calcom_user", sa.Text),
        sa.Column("calcom_username", sa.Text),
        *_timestamps(),
    )

    op.create_table(
        "services",
        *_id("services"),
        *_owned_by_practitioner("services"),
        sa.Column("position", sa.Integer, nullable=False, server_default="0"),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("duration_minutes", sa.Integer, nullable=False),
        sa.Column("price_amount", sa.BigInteger, nullable=False),
        sa.Column("price_currency", sa.String(3), nullable=False),
        sa.Column("buffer_before_minutes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("buffer_after_minutes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("min_notice_minutes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_advance_days", sa.Integer, nullable=False, server_default="60"),
        sa.Column("slot_interval_minutes", sa.Integer),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        # Removed from the practitioner's list but kept: bookings refer to it.
        sa.Column("retired", sa.Boolean, nullable=False, server_default=sa.false()),
        *_timestamps(),
        _check("services", "duration", "duration_minutes BETWEEN 5 AND 1440"),
        _check("services", "price_amount", "price_amount >= 0"),
        _check("services", "price_currency", "price_currency ~ '^[a-z]{3}$'"),
        _check(
            "services",
            "non_negative",
            "buffer_before_minutes >= 0 AND buffer_after_minutes >= 0 AND min_notice_minutes >= 0",
        ),
        _check("services", "max_advance", "max_advance_days BETWEEN 1 AND 730"),
        _check(
            "services",
            "slot_interval",
            "slot_interval_minutes IS NULL OR slot_interval_minutes BETWEEN 5 AND 1440",
        ),
    )
    op.create_index("ix_services_practitioner_id", "services", ["practitioner_id"])

    op.create_table(
        "working_hours",
        *_id("working_hours"),
        *_owned_by_practitioner("working_hours"),
        sa.Column("weekday", sa.SmallInteger, nullable=False),  # ISO: 0 = Monday
        sa.Column("start_minute", sa.SmallInteger, nullable=False),  # local time, from midnight
        sa.Column("end_minute", sa.SmallInteger, nullable=False),
        _check("working_hours", "weekday", "weekday BETWEEN 0 AND 6"),
        _check("working_hours", "minutes", MINUTES_OK),
    )
    op.create_index("ix_working_hours_practitioner_id", "working_hours", ["practitioner_id"])

    op.create_table(
        "date_overrides",
        *_id("date_overrides"),
        *_owned_by_practitioner("date_overrides"),
        sa.Column("day", sa.Date, nullable=False),
        # One row per range; a row with both NULL marks the whole day off.
        sa.Column("start_minute", sa.SmallInteger),
        sa.Column("end_minute", sa.SmallInteger),
        _check(
            "date_overrides",
            "minutes",
            f"(start_minute IS NULL AND end_minute IS NULL) OR ({MINUTES_OK})",
        ),
    )
    op.create_index(
        "ix_date_overrides_practitioner_id_day", "date_overrides", ["practitioner_id", "day"]
    )

    op.create_table(
        "time_off",
        *_id("time_off"),
        *_owned_by_practitioner("time_off"),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        _check("time_off", "period", "ends_at > starts_at"),
    )
    op.create_index("ix_time_off_practitioner_id", "time_off", ["practitioner_id"])

    op.create_table(
        "bookings",
        *_id("bookings"),
        *_owned_by_practitioner("bookings", ondelete="RESTRICT"),
        sa.Column("service_id", sa.BigInteger, nullable=False),
        _fk("bookings", "service_id", "services", "RESTRICT"),
        sa.Column("client_name", sa.Text, nullable=False),
        sa.Column("client_email", sa.Text, nullable=False),
        sa.Column("client_phone", sa.Text),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("buffer_before_minutes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("buffer_after_minutes", sa.Integer, nullable=False, server_default="0"),
        # The span the booking blocks, buffers included: starts_at - buffer_before ..
        # ends_at + buffer_after. Stored (the application computes it) because a generated
        # column cannot use timestamptz arithmetic, which is only STABLE.
        sa.Column("occupied_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("occupied_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("price_amount", sa.BigInteger, nullable=False),
        sa.Column("price_currency", sa.String(3), nullable=False),
        sa.Column("status", _enum("booking_status"), nullable=False),
        sa.Column("hold_expires_at", sa.DateTime(timezone=True)),
        sa.Column("checkout_session_id", sa.Text),
        sa.Column("payment_intent_id", sa.Text),
        sa.Column("refund_status", _enum("refund_status")),
        sa.Column("refund_amount", sa.BigInteger),
        sa.Column("refund_currency", sa.String(3)),
        sa.Column("refund_provider_id", sa.Text),
        sa.Column("refund_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("refund_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("calendar_uid", sa.Text),
        sa.Column("notes", sa.Text, nullable=False, server_default=""),
        sa.Column("manage_token_hash", sa.Text, nullable=False, server_default=""),
        sa.Column("cancel_reason", sa.Text, nullable=False, server_default=""),
        # Set by the application (PostgreSQL has no ON UPDATE), from the core's clock.
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        # Optimistic concurrency: every UPDATE says WHERE version = <the version read>.
        sa.Column("version", sa.Integer, nullable=False),
        _unique("bookings", "checkout_session_id"),
        _check("bookings", "period", "ends_at > starts_at"),
        _check("bookings", "occupied", "occupied_start <= starts_at AND occupied_end >= ends_at"),
        _check("bookings", "buffers", "buffer_before_minutes >= 0 AND buffer_after_minutes >= 0"),
        _check("bookings", "price_amount", "price_amount >= 0"),
        _check("bookings", "price_currency", "price_currency ~ '^[a-z]{3}$'"),
        _check(
            "bookings",
            "refund",
            "(refund_status IS NULL) = (refund_amount IS NULL)"
            " AND (refund_amount IS NULL) = (refund_currency IS NULL)",
        ),
        _check("bookings", "version", "version >= 1"),
    )
    # The invariant: two bookings that occupy the calendar never overlap for one practitioner,
    # buffers included. '[)' makes back-to-back bookings legal. The predicate is written exactly
    # as rows.OCCUPYING_SQL so that list_occupying's query can use this constraint's index.
    op.execute(
        "ALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap EXCLUDE USING gist ("
        " practitioner_id WITH =,"
        " tstzrange(occupied_start, occupied_end, '[)') WITH &&"
        ") WHERE (status IN ('pending', 'confirmed'))"
    )
    op.create_index("ix_bookings_status_starts_at", "bookings", ["status", "starts_at"])
    op.create_index(
        "ix_bookings_practitioner_id_starts_at", "bookings", ["practitioner_id", "starts_at"]
    )
    op.create_index("ix_bookings_service_id", "bookings", ["service_id"])
    op.create_index("ix_bookings_payment_intent_id", "bookings", ["payment_intent_id"])
    op.create_index("ix_bookings_calendar_uid", "bookings", ["calendar_uid"])
    op.create_index(
        "ix_bookings_pending_hold_expires_at",
        "bookings",
        ["hold_expires_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_bookings_refunds_due",
        "bookings",
        ["updated_at"],
        postgresql_where=sa.text("refund_status = 'pending'"),
    )
    op.execute("CREATE INDEX ix_bookings_client_email_lower ON bookings (lower(client_email))")

    op.create_table(
        "processed_payment_events",
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_processed_payment_events")),
    )

    op.create_table(
        "outbox_jobs",
        *_id("outbox_jobs"),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column(
            "payload",
            postgresql.JSONB,
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("status", _enum("job_status"), nullable=False, server_default="pending"),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index(
        "ix_outbox_jobs_due",
        "outbox_jobs",
        ["run_at", "id"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_outbox_jobs_status_id", "outbox_jobs", ["status", "id"])

    op.create_table(
        "idempotency_records",
        *_id("idempotency_records"),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("request_fingerprint", sa.Text, nullable=False),
        sa.Column("response_status", sa.Integer),  # NULL while the first request is running
        sa.Column("response_body", postgresql.JSONB),
        sa.Column("sealed_secret", sa.Text),  # the manage token, sealed by the web layer
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        _unique("idempotency_records", "key"),
    )
    op.create_index("ix_idempotency_records_created_at", "idempotency_records", ["created_at"])

    op.create_table(
        "calendar_cache",
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("value", postgresql.JSONB, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_calendar_cache")),
    )
    op.create_index("ix_calendar_cache_expires_at", "calendar_cache", ["expires_at"])


def downgrade() -> None:
    for table in (
        "calendar_cache",
        "idempotency_records",
        "outbox_jobs",
        "processed_payment_events",
        "bookings",
        "time_off",
        "date_overrides",
        "working_hours",
        "services",
        "practitioners",
        "users",
    ):
        op.drop_table(table)
    for name in reversed(ENUMS):
        op.execute(f"DROP TYPE {name}")
    # btree_gist stays: other schemas in the database may use it, and dropping an extension
    # is not ours to decide.
