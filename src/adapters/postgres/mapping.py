"""Explicit mapping between ORM rows and domain objects, in both directions.

Domain objects are attrs classes (some frozen, with validators), so they are never mapped by the
ORM directly: reading builds fresh domain objects from rows, writing copies fields onto rows.
Datetimes leave the adapter in UTC whatever the session's TimeZone setting.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from adapters.postgres.rows import (
    ApiTokenRow,
    AuditRow,
    BookingRow,
    DateOverrideRow,
    IdempotencyRecordRow,
    OutboxJobRow,
    PaymentRow,
    PractitionerRow,
    ServiceRow,
    TimeOffRow,
    UserRow,
    WorkingHoursRow,
)
from booking_core.access import ApiToken, AuditEntry
from booking_core.jobs import Job
from booking_core.model import (
    Booking,
    BookingLimits,
    BookingWindow,
    CalendarLink,
    Client,
    DateOverride,
    Interval,
    Money,
    Payment,
    Practitioner,
    Refund,
    Service,
    SlotAlignment,
    TimeOff,
    TimeRange,
    User,
    WeeklyHours,
    WindowKind,
)
from booking_core.ports import IdempotencyRecord


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def utc_or_none(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


# -- practitioners and services ------------------------------------------------------------------


def service_from_row(row: ServiceRow) -> Service:
    return Service(
        id=row.id,
        name=row.name,
        duration_minutes=row.duration_minutes,
        price=Money(row.price_amount, row.price_currency),
        buffer_before_minutes=row.buffer_before_minutes,
        buffer_after_minutes=row.buffer_after_minutes,
        min_notice_minutes=row.min_notice_minutes,
        max_advance_days=row.max_advance_days,
        slot_interval_minutes=row.slot_interval_minutes,
        alignment=SlotAlignment(row.alignment),
        window=BookingWindow(
            kind=WindowKind(row.window_kind),
            days=row.window_days,
            first_day=row.window_first_day,
            last_day=row.window_last_day,
        ),
        limits=limits_from_row(row),
        requires_confirmation=row.requires_confirmation,
        key=row.key,
        active=row.active,
    )


def limits_from_row(row: ServiceRow | PractitionerRow) -> BookingLimits:
    return BookingLimits(
        bookings_per_day=row.max_bookings_per_day,
        bookings_per_week=row.max_bookings_per_week,
        minutes_per_day=row.max_minutes_per_day,
        minutes_per_week=row.max_minutes_per_week,
    )


def limits_to_row(limits: BookingLimits, row: ServiceRow | PractitionerRow) -> None:
    row.max_bookings_per_day = limits.bookings_per_day
    row.max_bookings_per_week = limits.bookings_per_week
    row.max_minutes_per_day = limits.minutes_per_day
    row.max_minutes_per_week = limits.minutes_per_week


def service_to_row(service: Service, row: ServiceRow, *, position: int) -> None:
    """Copy a service's fields onto ``row`` (new or loaded); its id is the row's business."""
    row.position = position
    row.name = service.name
    row.duration_minutes = service.duration_minutes
    row.price_amount = service.price.amount
    row.price_currency = service.price.currency
    row.buffer_before_minutes = service.buffer_before_minutes
    row.buffer_after_minutes = service.buffer_after_minutes
    row.min_notice_minutes = service.min_notice_minutes
    row.max_advance_days = service.max_advance_days
    row.slot_interval_minutes = service.slot_interval_minutes
    row.alignment = service.alignment.value
    row.window_kind = service.window.kind.value
    row.window_days = service.window.days
    row.window_first_day = service.window.first_day
    row.window_last_day = service.window.last_day
    row.requires_confirmation = service.requires_confirmation
    row.key = service.key
    limits_to_row(service.limits, row)
    row.active = service.active
    row.retired = False


def weekly_hours_from_rows(rows: list[WorkingHoursRow]) -> WeeklyHours:
    days: list[list[TimeRange]] = [[] for _ in range(7)]
    for row in rows:
        days[row.weekday].append(TimeRange(row.start_minute, row.end_minute))
    return WeeklyHours(
        tuple(tuple(sorted(ranges, key=lambda r: r.start_minute)) for ranges in days)
    )


def weekly_hours_to_rows(hours: WeeklyHours) -> list[WorkingHoursRow]:
    return [
        WorkingHoursRow(weekday=weekday, start_minute=r.start_minute, end_minute=r.end_minute)
        for weekday, ranges in enumerate(hours.days)
        for r in ranges
    ]


def overrides_from_rows(rows: list[DateOverrideRow]) -> list[DateOverride]:
    by_day: dict[date, list[TimeRange]] = defaultdict(list)
    for row in rows:
        ranges = by_day[row.day]  # a day off still gets its (empty) entry
        if row.start_minute is not None and row.end_minute is not None:
            ranges.append(TimeRange(row.start_minute, row.end_minute))
    return [
        DateOverride(day, tuple(sorted(ranges, key=lambda r: r.start_minute)))
        for day, ranges in sorted(by_day.items())
    ]


def overrides_to_rows(overrides: list[DateOverride]) -> list[DateOverrideRow]:
    rows: list[DateOverrideRow] = []
    for override in overrides:
        if not override.ranges:
            rows.append(DateOverrideRow(day=override.day, start_minute=None, end_minute=None))
        rows.extend(
            DateOverrideRow(day=override.day, start_minute=r.start_minute, end_minute=r.end_minute)
            for r in override.ranges
        )
    return rows


def time_off_from_row(row: TimeOffRow) -> TimeOff:
    return TimeOff(Interval(utc(row.starts_at), utc(row.ends_at)), row.reason, id=row.id)


def time_off_to_row(time_off: TimeOff, row: TimeOffRow | None = None) -> TimeOffRow:
    """``time_off`` on ``row`` (the stored one with its id) or on a new row."""
    row = row if row is not None else TimeOffRow()
    row.starts_at = time_off.period.start
    row.ends_at = time_off.period.end
    row.reason = time_off.reason
    return row


def practitioner_from_row(row: PractitionerRow) -> Practitioner:
    link = (
        CalendarLink(
            event_type=row.calcom_event_type, user=row.calcom_user, username=row.calcom_username
        )
        if row.calcom_event_type is not None
        else None
    )
    return Practitioner(
        id=row.id,
        name=row.name,
        title=row.title,
        bio=row.bio,
        email=row.email,
        timezone=row.timezone,
        active=row.active,
        services=[service_from_row(s) for s in row.services if not s.retired],
        weekly_hours=weekly_hours_from_rows(list(row.working_hours)),
        overrides=overrides_from_rows(list(row.date_overrides)),
        time_off=[time_off_from_row(t) for t in row.time_off],
        calendar_link=link,
        limits=limits_from_row(row),
    )


def practitioner_fields_to_row(practitioner: Practitioner, row: PractitionerRow) -> None:
    """Copy the practitioner's own columns and replace its hours, overrides and time off.

    Services are matched by id by the repository (they outlive their removal).
    """
    row.name = practitioner.name
    row.title = practitioner.title
    row.bio = practitioner.bio
    row.email = practitioner.email
    row.timezone = practitioner.timezone
    row.active = practitioner.active
    link = practitioner.calendar_link
    row.calcom_event_type = link.event_type if link else None
    row.calcom_user = link.user if link else None
    row.calcom_username = link.username if link else None
    limits_to_row(practitioner.limits, row)
    row.working_hours = weekly_hours_to_rows(practitioner.weekly_hours)
    row.date_overrides = overrides_to_rows(practitioner.overrides)
    # Time off keeps its rows (and ids: DELETE /api/admin/time-off/{id} names them).
    stored = {r.id: r for r in row.time_off}
    row.time_off = [time_off_to_row(t, stored.get(t.id or 0)) for t in practitioner.time_off]


# -- bookings ------------------------------------------------------------------------------------


def booking_from_row(row: BookingRow) -> Booking:
    refund = None
    if (
        row.refund_status is not None
        and row.refund_amount is not None
        and row.refund_currency is not None
    ):
        refund = Refund(
            amount=Money(row.refund_amount, row.refund_currency),
            status=row.refund_status,
            provider_id=row.refund_provider_id,
            attempts=row.refund_attempts,
            reason=row.refund_reason,
        )
    return Booking(
        id=row.id,
        practitioner_id=row.practitioner_id,
        service_id=row.service_id,
        client=Client(
            name=row.client_name,
            email=row.client_email,
            phone=row.client_phone,
            timezone=row.client_timezone,
        ),
        start=utc(row.starts_at),
        end=utc(row.ends_at),
        buffer_before_minutes=row.buffer_before_minutes,
        buffer_after_minutes=row.buffer_after_minutes,
        price=Money(row.price_amount, row.price_currency),
        status=row.status,
        hold_expires_at=utc_or_none(row.hold_expires_at),
        checkout_session_id=row.checkout_session_id,
        payment_intent_id=row.payment_intent_id,
        refund=refund,
        calendar_uid=row.calendar_uid,
        notes=row.notes,
        manage_token_hash=row.manage_token_hash,
        cancel_reason=row.cancel_reason,
        sequence=row.sequence,
        approved_at=utc_or_none(row.approved_at),
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
        version=row.version,
    )


def booking_values(booking: Booking) -> dict[str, Any]:
    """The column values of ``booking``: every field but id and version (the repository
    manages those)."""
    refund = booking.refund
    return {
        "practitioner_id": booking.practitioner_id,
        "service_id": booking.service_id,
        "client_name": booking.client.name,
        "client_email": booking.client.email,
        "client_phone": booking.client.phone,
        "client_timezone": booking.client.timezone,
        "starts_at": booking.start,
        "ends_at": booking.end,
        "buffer_before_minutes": booking.buffer_before_minutes,
        "buffer_after_minutes": booking.buffer_after_minutes,
        "occupied_start": booking.start - timedelta(minutes=booking.buffer_before_minutes),
        "occupied_end": booking.end + timedelta(minutes=booking.buffer_after_minutes),
        "price_amount": booking.price.amount,
        "price_currency": booking.price.currency,
        "status": booking.status,
        "hold_expires_at": booking.hold_expires_at,
        "checkout_session_id": booking.checkout_session_id,
        "payment_intent_id": booking.payment_intent_id,
        "refund_status": refund.status if refund else None,
        "refund_amount": refund.amount.amount if refund else None,
        "refund_currency": refund.amount.currency if refund else None,
        "refund_provider_id": refund.provider_id if refund else None,
        "refund_attempts": refund.attempts if refund else 0,
        "refund_reason": refund.reason if refund else "",
        "calendar_uid": booking.calendar_uid,
        "notes": booking.notes,
        "manage_token_hash": booking.manage_token_hash,
        "cancel_reason": booking.cancel_reason,
        "sequence": booking.sequence,
        "approved_at": booking.approved_at,
        "created_at": booking.created_at,
        "updated_at": booking.updated_at,
    }


# -- users, jobs ---------------------------------------------------------------------------------


def user_from_row(row: UserRow) -> User:
    return User(
        id=row.id,
        open_id=row.open_id,
        name=row.name,
        email=row.email,
        role=row.role,
        practitioner_id=row.practitioner_id,
        last_signed_in=utc_or_none(row.last_signed_in),
    )


def user_values(user: User) -> dict[str, Any]:
    """Column values for an upsert of ``user`` (everything but the id)."""
    return {
        "open_id": user.open_id,
        "name": user.name,
        "email": user.email,
        "role": user.role,
        "practitioner_id": user.practitioner_id,
        "last_signed_in": user.last_signed_in,
    }


def job_from_row(row: OutboxJobRow) -> Job:
    return Job(
        id=row.id,
        kind=row.kind,
        payload=dict(row.payload),
        run_at=utc(row.run_at),
        attempts=row.attempts,
        status=row.status,
        last_error=row.last_error,
        created_at=utc_or_none(row.created_at),
        unique_key=row.unique_key,
    )


def payment_from_row(row: PaymentRow) -> Payment:
    return Payment(
        payment_intent_id=row.payment_intent_id,
        booking_id=row.booking_id,
        captured=Money(row.captured_amount, row.currency),
        refunded=row.refunded_amount,
    )


def idempotency_from_row(row: IdempotencyRecordRow) -> IdempotencyRecord:
    return IdempotencyRecord(
        key=row.key,
        fingerprint=row.request_fingerprint,
        created_at=utc(row.created_at),
        status_code=row.response_status,
        response=dict(row.response_body) if row.response_body is not None else None,
        sealed_secret=row.sealed_secret,
        lease_expires_at=utc_or_none(row.lease_expires_at),
        booking_id=row.booking_id,
    )


# -- audit, API tokens ---------------------------------------------------------------------------


def audit_from_row(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=utc(row.at),
        actor_type=row.actor_type,
        actor_id=row.actor_id,
        actor_name=row.actor_name,
        action=row.action,
        object_type=row.object_type,
        object_id=row.object_id,
        before=row.before,
        after=row.after,
        request_id=row.request_id,
    )


def api_token_from_row(row: ApiTokenRow) -> ApiToken:
    return ApiToken(
        id=row.id,
        name=row.name,
        token_hash=row.token_hash,
        created_at=utc(row.created_at),
        created_by=row.created_by,
        revoked_at=utc(row.revoked_at) if row.revoked_at is not None else None,
    )
