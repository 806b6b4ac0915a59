"""SQLAlchemy 2 ORM rows for the PostgreSQL schema (the migrations create it; keep both in step).

Rows are storage shapes only: ``mapping`` turns them into domain objects and back. Class names end
in ``Row`` and never reuse a domain name. Enum columns store the domain enums' values.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, ExcludeConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from booking_core.jobs import JobStatus
from booking_core.model import SERVICE_KEY_PATTERN, BookingStatus, RefundStatus, Role

# Occupying statuses as literal SQL. Kept literal (not bound parameters) on purpose: the planner
# can use the partial GiST index behind the exclusion constraint only when it can prove a query's
# WHERE implies the index predicate, and a bound parameter in a generic prepared plan (psycopg
# prepares a statement after five runs) proves nothing.
OCCUPYING_SQL = "status IN ('pending', 'confirmed', 'awaiting_approval')"
NO_OVERLAP = "bookings_no_overlap"
REFUND_WITHIN_CAPTURE = "ck_payments_refund_within_capture"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _values(enum_class: type[enum.Enum]) -> list[str]:
    return [str(member.value) for member in enum_class]


def pg_enum(enum_class: type[enum.Enum], name: str) -> sa.Enum:
    """A PostgreSQL enum storing the members' values (``pending``), not their names."""
    return sa.Enum(
        enum_class,
        name=name,
        values_callable=_values,
        validate_strings=True,
        create_type=False,  # the migration creates the types
    )


class RowBase(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: sa.DateTime(timezone=True),
        dict[str, Any]: JSONB,
        str: sa.Text(),
        int: sa.Integer(),
    }


def _created() -> Mapped[datetime]:
    return mapped_column(server_default=sa.func.now())


def _updated() -> Mapped[datetime]:
    # Set by the application on every UPDATE of the row (PostgreSQL has no ON UPDATE).
    return mapped_column(server_default=sa.func.now(), onupdate=sa.func.now())


_LIMIT_COLUMNS = (
    "max_bookings_per_day",
    "max_bookings_per_week",
    "max_minutes_per_day",
    "max_minutes_per_week",
)
LIMITS_OK = " AND ".join(f"({c} IS NULL OR {c} BETWEEN 1 AND 100000)" for c in _LIMIT_COLUMNS)


class UserRow(RowBase):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(always=True), primary_key=True)
    open_id: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str | None]
    email: Mapped[str | None]
    role: Mapped[Role] = mapped_column(pg_enum(Role, "user_role"), server_default="user")
    # The practitioner a ``practitioner`` user manages (migration 0002_users_roles).
    practitioner_id: Mapped[int | None] = mapped_column(
        sa.BigInteger, sa.ForeignKey("practitioners.id"), index=True
    )
    last_signed_in: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    __table_args__ = (
        sa.CheckConstraint(
            "role::text <> 'practitioner' OR practitioner_id IS NOT NULL",
            name="practitioner_linked",
        ),
    )


class PractitionerRow(RowBase):
    __tablename__ = "practitioners"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(always=True), primary_key=True)
    name: Mapped[str]
    title: Mapped[str] = mapped_column(server_default="")
    bio: Mapped[str] = mapped_column(server_default="")
    email: Mapped[str] = mapped_column(server_default="")
    timezone: Mapped[str] = mapped_column(server_default="UTC")
    active: Mapped[bool] = mapped_column(server_default=sa.true())
    calcom_event_type: Mapped[str | None]
    calcom_user: Mapped[str | None]
    calcom_username: Mapped[str | None]
    # Booking limits over all the practitioner's bookings (migration 0007_scheduling_rules).
    max_bookings_per_day: Mapped[int | None]
    max_bookings_per_week: Mapped[int | None]
    max_minutes_per_day: Mapped[int | None]
    max_minutes_per_week: Mapped[int | None]
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    __table_args__ = (sa.CheckConstraint(LIMITS_OK, name="limits"),)

    services: Mapped[list[ServiceRow]] = relationship(
        back_populates="practitioner",
        cascade="all, delete-orphan",
        order_by="(ServiceRow.position, ServiceRow.id)",
        lazy="selectin",
    )
    working_hours: Mapped[list[WorkingHoursRow]] = relationship(
        cascade="all, delete-orphan",
        order_by="(WorkingHoursRow.weekday, WorkingHoursRow.start_minute)",
        lazy="selectin",
    )
    date_overrides: Mapped[list[DateOverrideRow]] = relationship(
        cascade="all, delete-orphan",
        order_by="(DateOverrideRow.day, DateOverrideRow.start_minute)",
        lazy="selectin",
    )
    time_off: Mapped[list[TimeOffRow]] = relationship(
        cascade="all, delete-orphan",
        order_by="(TimeOffRow.starts_at, TimeOffRow.id)",
        lazy="selectin",
    )


class ServiceRow(RowBase):
    """A service; one removed from its practitioner is retired, not deleted (bookings keep it)."""

    __tablename__ = "services"
    __table_args__ = (
        sa.CheckConstraint("duration_minutes BETWEEN 5 AND 1440", name="duration"),
        sa.CheckConstraint("price_amount >= 0", name="price_amount"),
        sa.CheckConstraint("price_currency ~ '^[a-z]{3}$'", name="price_currency"),
        sa.CheckConstraint(
            "buffer_before_minutes >= 0 AND buffer_after_minutes >= 0 AND min_notice_minutes >= 0",
            name="non_negative",
        ),
        sa.CheckConstraint("max_advance_days BETWEEN 1 AND 730", name="max_advance"),
        sa.CheckConstraint(
            "slot_interval_minutes IS NULL OR slot_interval_minutes BETWEEN 5 AND 1440",
            name="slot_interval",
        ),
        sa.CheckConstraint(LIMITS_OK, name="limits"),
        sa.CheckConstraint("alignment IN ('grid', 'fill')", name="alignment"),
        sa.CheckConstraint(f"key IS NULL OR key ~ '{SERVICE_KEY_PATTERN}'", name="key"),
        sa.CheckConstraint(
            "window_kind IN ('rolling', 'calendar_days', 'business_days', 'date_range')",
            name="window_kind",
        ),
        sa.CheckConstraint(
            "(window_kind IN ('calendar_days', 'business_days')) = (window_days IS NOT NULL)"
            " AND (window_days IS NULL OR window_days BETWEEN 1 AND 730)"
            " AND (window_kind = 'date_range')"
            " = (window_first_day IS NOT NULL AND window_last_day IS NOT NULL)"
            " AND (window_kind = 'date_range'"
            " OR (window_first_day IS NULL AND window_last_day IS NULL))"
            " AND (window_last_day IS NULL OR window_last_day >= window_first_day)",
            name="booking_window",
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(always=True), primary_key=True)
    practitioner_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("practitioners.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(server_default="0")
    name: Mapped[str]
    duration_minutes: Mapped[int]
    price_amount: Mapped[int] = mapped_column(sa.BigInteger)
    price_currency: Mapped[str] = mapped_column(sa.String(3))
    buffer_before_minutes: Mapped[int] = mapped_column(server_default="0")
    buffer_after_minutes: Mapped[int] = mapped_column(server_default="0")
    min_notice_minutes: Mapped[int] = mapped_column(server_default="0")
    max_advance_days: Mapped[int] = mapped_column(server_default="60")
    slot_interval_minutes: Mapped[int | None]
    # Scheduling rules (migration 0007_scheduling_rules); values of model.SlotAlignment and
    # model.WindowKind.
    alignment: Mapped[str] = mapped_column(server_default="grid")
    window_kind: Mapped[str] = mapped_column(server_default="rolling")
    window_days: Mapped[int | None]
    window_first_day: Mapped[date | None] = mapped_column(sa.Date)
    window_last_day: Mapped[date | None] = mapped_column(sa.Date)
    requires_confirmation: Mapped[bool] = mapped_column(server_default=sa.false())
    # Equivalent services of several practitioners share a key ("any practitioner").
    key: Mapped[str | None] = mapped_column(index=True)
    max_bookings_per_day: Mapped[int | None]
    max_bookings_per_week: Mapped[int | None]
    max_minutes_per_day: Mapped[int | None]
    max_minutes_per_week: Mapped[int | None]
    active: Mapped[bool] = mapped_column(server_default=sa.true())
    retired: Mapped[bool] = mapped_column(server_default=sa.false())
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    practitioner: Mapped[PractitionerRow] = relationship(back_populates="services")


# A range may run past midnight (model.TimeRange), up to 48:00 and one day long at most.
_MINUTES_OK = (
    "0 <= start_minute AND start_minute < 1440 AND start_minute < end_minute"
    " AND end_minute <= 2880 AND end_minute - start_minute <= 1440"
)


class WorkingHoursRow(RowBase):
    """One range of weekly working hours, local time of the practitioner."""

    __tablename__ = "working_hours"
    __table_args__ = (
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
        sa.CheckConstraint(_MINUTES_OK, name="minutes"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(always=True), primary_key=True)
    practitioner_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("practitioners.id", ondelete="CASCADE"), index=True
    )
    weekday: Mapped[int] = mapped_column(sa.SmallInteger)
    start_minute: Mapped[int] = mapped_column(sa.SmallInteger)
    end_minute: Mapped[int] = mapped_column(sa.SmallInteger)


class DateOverrideRow(RowBase):
    """One range of a date override; a row without minutes marks the whole day off."""

    __tablename__ = "date_overrides"
    __table_args__ = (
        sa.CheckConstraint(
            f"(start_minute IS NULL AND end_minute IS NULL) OR ({_MINUTES_OK})", name="minutes"
        ),
        sa.Index(None, "practitioner_id", "day"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(always=True), primary_key=True)
    practitioner_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("practitioners.id", ondelete="CASCADE")
    )
    day: Mapped[date] = mapped_column(sa.Date)
    start_minute: Mapped[int | None] = mapped_column(sa.SmallInteger)
    end_minute: Mapped[int | None] = mapped_column(sa.SmallInteger)


class TimeOffRow(RowBase):
    __tablename__ = "time_off"
    __table_args__ = (sa.CheckConstraint("ends_at > starts_at", name="period"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(always=True), primary_key=True)
    practitioner_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("practitioners.id", ondelete="CASCADE"), index=True
    )
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(server_default="")


class BookingRow(RowBase):
    """A booking; ``occupied_*`` is the buffered span the exclusion constraint compares."""

    __tablename__ = "bookings"
    __table_args__ = (
        ExcludeConstraint(
            (sa.column("practitioner_id"), "="),
            (
                sa.func.tstzrange(
                    sa.column("occupied_start"),
                    sa.column("occupied_end"),
                    sa.literal_column("'[)'"),
                ),
                "&&",
            ),
            name=NO_OVERLAP,
            using="gist",
            where=sa.text(OCCUPYING_SQL),
        ),
        sa.CheckConstraint("ends_at > starts_at", name="period"),
        sa.CheckConstraint(
            "occupied_start <= starts_at AND occupied_end >= ends_at", name="occupied"
        ),
        sa.CheckConstraint(
            "buffer_before_minutes >= 0 AND buffer_after_minutes >= 0", name="buffers"
        ),
        sa.CheckConstraint("price_amount >= 0", name="price_amount"),
        sa.CheckConstraint("price_currency ~ '^[a-z]{3}$'", name="price_currency"),
        sa.CheckConstraint(
            "(refund_status IS NULL) = (refund_amount IS NULL)"
            " AND (refund_amount IS NULL) = (refund_currency IS NULL)",
            name="refund",
        ),
        sa.CheckConstraint("version >= 1", name="version"),
        sa.Index(None, "status", "starts_at"),
        sa.Index(None, "practitioner_id", "starts_at"),
        sa.Index(
            "ix_bookings_pending_hold_expires_at",
            "hold_expires_at",
            postgresql_where=sa.text("status = 'pending'"),
        ),
        sa.Index(
            "ix_bookings_refunds_due",
            "updated_at",
            postgresql_where=sa.text("refund_status = 'pending'"),
        ),
        sa.Index("ix_bookings_client_email_lower", sa.func.lower(sa.column("client_email"))),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(always=True), primary_key=True)
    practitioner_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("practitioners.id", ondelete="RESTRICT")
    )
    service_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("services.id", ondelete="RESTRICT"), index=True
    )
    client_name: Mapped[str]
    client_email: Mapped[str]
    client_phone: Mapped[str | None]
    client_timezone: Mapped[str | None]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    buffer_before_minutes: Mapped[int] = mapped_column(server_default="0")
    buffer_after_minutes: Mapped[int] = mapped_column(server_default="0")
    occupied_start: Mapped[datetime]
    occupied_end: Mapped[datetime]
    price_amount: Mapped[int] = mapped_column(sa.BigInteger)
    price_currency: Mapped[str] = mapped_column(sa.String(3))
    status: Mapped[BookingStatus] = mapped_column(pg_enum(BookingStatus, "booking_status"))
    hold_expires_at: Mapped[datetime | None]
    checkout_session_id: Mapped[str | None] = mapped_column(unique=True)
    payment_intent_id: Mapped[str | None] = mapped_column(index=True)
    refund_status: Mapped[RefundStatus | None] = mapped_column(
        pg_enum(RefundStatus, "refund_status")
    )
    refund_amount: Mapped[int | None] = mapped_column(sa.BigInteger)
    refund_currency: Mapped[str | None] = mapped_column(sa.String(3))
    refund_provider_id: Mapped[str | None]
    refund_attempts: Mapped[int] = mapped_column(server_default="0")
    refund_reason: Mapped[str] = mapped_column(server_default="")
    calendar_uid: Mapped[str | None] = mapped_column(index=True)
    notes: Mapped[str] = mapped_column(server_default="")
    manage_token_hash: Mapped[str] = mapped_column(server_default="")
    cancel_reason: Mapped[str] = mapped_column(server_default="")
    sequence: Mapped[int] = mapped_column(server_default="0")
    # When the practitioner approved it (a service that requires confirmation): its hold and
    # checkout count from then (migration 0007_scheduling_rules).
    approved_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column()

    # The application sets the next version itself (version_id_generator=False) so that every
    # save bumps it, changed columns or not, as the port promises; SQLAlchemy adds
    # "WHERE version = <loaded>" to the UPDATE and raises StaleDataError when nothing matched.
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class ProcessedPaymentEventRow(RowBase):
    """A payment provider event id we have applied; written with the state change it caused."""

    __tablename__ = "processed_payment_events"

    event_id: Mapped[str] = mapped_column(primary_key=True)
    event_type: Mapped[str]
    received_at: Mapped[datetime]


class PaymentRow(RowBase):
    """The payments ledger (ports.PaymentLedger): one row per payment intent applied.

    ``refunded_amount`` counts refund decisions (pending or paid out); the CHECK keeps it within
    what the payment captured, whatever code path decides a refund.
    """

    __tablename__ = "payments"
    __table_args__ = (
        sa.CheckConstraint("captured_amount >= 0", name="captured_amount"),
        sa.CheckConstraint(
            "refunded_amount >= 0 AND refunded_amount <= captured_amount",
            name="refund_within_capture",
        ),
        sa.CheckConstraint("currency ~ '^[a-z]{3}$'", name="currency"),
    )

    payment_intent_id: Mapped[str] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("bookings.id", ondelete="RESTRICT"), index=True
    )
    currency: Mapped[str] = mapped_column(sa.String(3))
    captured_amount: Mapped[int] = mapped_column(sa.BigInteger)
    refunded_amount: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class SyncCursorRow(RowBase):
    """Where a background reader got to (ports.CursorStore), e.g. the newest Stripe event seen."""

    __tablename__ = "sync_cursors"

    name: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[str]
    updated_at: Mapped[datetime] = _updated()


class OutboxJobRow(RowBase):
    __tablename__ = "outbox_jobs"
    __table_args__ = (
        sa.Index(
            "ix_outbox_jobs_due", "run_at", "id", postgresql_where=sa.text("status = 'pending'")
        ),
        sa.Index(None, "status", "id"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(always=True), primary_key=True)
    kind: Mapped[str]
    payload: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    run_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(server_default="0")
    status: Mapped[JobStatus] = mapped_column(
        pg_enum(JobStatus, "job_status"), server_default="pending"
    )
    last_error: Mapped[str] = mapped_column(server_default="")
    created_at: Mapped[datetime] = _created()
    # At most one job per key (one refund job per booking and reason); NULL for most jobs.
    unique_key: Mapped[str | None] = mapped_column(unique=True)


class IdempotencyRecordRow(RowBase):
    """The answer to a POST /api/bookings with an Idempotency-Key (ports.IdempotencyStore).

    ``response_status`` is NULL while the first request with the key is still being handled
    (until ``lease_expires_at``);
    ``sealed_secret`` is the manage token sealed by the web layer, never in clear.
    """

    __tablename__ = "idempotency_records"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(always=True), primary_key=True)
    key: Mapped[str] = mapped_column(unique=True)
    request_fingerprint: Mapped[str]
    response_status: Mapped[int | None]
    response_body: Mapped[dict[str, Any] | None]
    sealed_secret: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(server_default=sa.func.now(), index=True)
    # While response_status is NULL: the first request holds the key until then (seconds).
    lease_expires_at: Mapped[datetime | None]
    booking_id: Mapped[int | None] = mapped_column(sa.BigInteger)  # the hold it made


class CalendarCacheRow(RowBase):
    """A shared cache entry (the Cal.com adapter's slot cache when several processes run)."""

    __tablename__ = "calendar_cache"

    key: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[Any] = mapped_column(JSONB)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class OfflineCheckoutSessionRow(RowBase):
    """A session of the offline checkout (the development stand-in for Stripe Checkout) that
    has moved: paid or expired (0009: a session as made is no row, its id says what it is).

    ``state`` holds ports.CheckoutState values.
    """

    __tablename__ = "offline_checkout_sessions"

    id: Mapped[str] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(sa.BigInteger)
    amount: Mapped[int]
    currency: Mapped[str]
    expires_at: Mapped[datetime]
    state: Mapped[str]
    payment_intent_id: Mapped[str | None] = mapped_column(unique=True)
    refunded_amount: Mapped[int] = mapped_column(server_default="0")
    created_at: Mapped[datetime] = _created()


class OfflineCheckoutRefundRow(RowBase):
    """A refund the offline checkout granted, one per idempotency key (as Stripe keeps them)."""

    __tablename__ = "offline_checkout_refunds"

    idempotency_key: Mapped[str] = mapped_column(primary_key=True)
    id: Mapped[str] = mapped_column(unique=True)
    payment_intent_id: Mapped[str]
    amount: Mapped[int]
    currency: Mapped[str]
    created_at: Mapped[datetime] = _created()


class AuditRow(RowBase):
    """One admin or practitioner change, written in the transaction that made it (0005_admin)."""

    __tablename__ = "audit_log"
    __table_args__ = (sa.Index(None, "object_type", "object_id", "id"),)

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(always=True), primary_key=True)
    at: Mapped[datetime]
    actor_type: Mapped[str]
    actor_id: Mapped[str]
    actor_name: Mapped[str] = mapped_column(server_default="")
    action: Mapped[str]
    object_type: Mapped[str]
    object_id: Mapped[str]
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    request_id: Mapped[str | None]


class ApiTokenRow(RowBase):
    """A named admin API token; only the SHA-256 of the token is kept (0005_admin)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(always=True), primary_key=True)
    name: Mapped[str]
    token_hash: Mapped[str] = mapped_column(unique=True)
    created_by: Mapped[str] = mapped_column(server_default="")
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
