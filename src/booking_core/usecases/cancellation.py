"""Cancellation and rescheduling: by the client, an admin or the external calendar."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from attrs import frozen

from booking_core.access import Actor
from booking_core.errors import (
    InvalidTransition,
    LimitReached,
    OutsideAvailability,
    PaymentFailed,
    RefundExceedsCapture,
    SlotUnavailable,
    ValidationFailed,
)
from booking_core.jobs import JobKind
from booking_core.model import (
    Booking,
    BookingStatus,
    Money,
    Refund,
    RefundStatus,
)
from booking_core.notifications import NotificationKind, enqueue_notification, enqueue_reminder
from booking_core.policy import BookingRules
from booking_core.ports import (
    CalendarGateway,
    Clock,
    PaymentGateway,
    UnitOfWork,
)
from booking_core.usecases import admin
from booking_core.usecases._shared import _aware_utc, _get, _id, _practitioner_and_service
from booking_core.usecases.availability import (
    _fill_busy,
    _is_offered,
    _is_taken,
    _occupied_around,
    _within_limits,
)
from booking_core.usecases.booking import get_booking
from booking_core.usecases.payments import PaymentOutcome, decide_refund, issue_refund

log = logging.getLogger(__name__)


def handle_calendar_cancellation(
    event_id: str,
    calendar_uid: str,
    *,
    uow: UnitOfWork,
    calendar: CalendarGateway,
    clock: Clock,
) -> str:
    """The practitioner cancelled in the external calendar: cancel ours, refund in full.

    The client is not at fault, so the refund is full whatever the window; it goes to the
    outbox (no outbound call here). Processed once per ``event_id``; returns a PaymentOutcome
    value (CONFIRMED is never returned; "cancelled" is).
    """
    now = clock.now()
    with uow:
        if not uow.payment_events.record(f"calendar:{event_id}", "calendar.cancelled", now):
            return PaymentOutcome.DUPLICATE
        booking = uow.bookings.get_by_calendar_uid(calendar_uid)
        if booking is None or not booking.occupies_calendar:
            uow.commit()
            return PaymentOutcome.UNKNOWN_BOOKING if booking is None else PaymentOutcome.IGNORED
        was = booking.status
        booking.cancel("cancelled by the practitioner in the external calendar", at=now)
        payload = {"booking_id": booking.id}
        if was is BookingStatus.CONFIRMED and booking.payment_intent_id:
            decide_refund(booking, booking.price, uow, now, reason="practitioner_cancelled")
            enqueue_notification(uow, NotificationKind.CANCELLED, booking, now)
        if was is BookingStatus.PENDING and booking.checkout_session_id:
            uow.outbox.add(
                JobKind.EXPIRE_CHECKOUT, {**payload, "session_id": booking.checkout_session_id}, now
            )
        uow.bookings.save(booking)
        uow.commit()
    calendar.invalidate(booking.practitioner_id)
    return PaymentOutcome.CANCELLED


def handle_calendar_reschedule(
    event_id: str,
    old_uid: str,
    new_uid: str,
    new_start: datetime,
    *,
    uow: UnitOfWork,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules,
) -> str:
    """The booking was moved in the external calendar (Cal.com BOOKING_RESCHEDULED): move ours.

    ``old_uid`` is the calendar booking we knew, ``new_uid`` the one the move made. A move we
    asked for ourselves (our start already equal) only records the new uid. When the new time
    is taken here (the no-overlap rule) or the booking has started, nothing moves: a job is
    queued that parks itself with the reason, for an admin to resolve (its retry tries the move
    again). Processed once per ``event_id`` (recorded with the move, or with the parked job);
    returns "rescheduled", "parked" or a PaymentOutcome value (DUPLICATE, UNKNOWN_BOOKING,
    IGNORED).
    """
    now = clock.now()
    new_start = _aware_utc(new_start, "start")
    key = f"calendar:{event_id}"
    with uow:
        booking = uow.bookings.get_by_calendar_uid(old_uid) or uow.bookings.get_by_calendar_uid(
            new_uid
        )
        if booking is None or not booking.occupies_calendar:
            if not uow.payment_events.record(key, "calendar.rescheduled", now):
                return PaymentOutcome.DUPLICATE
            uow.commit()
            return PaymentOutcome.UNKNOWN_BOOKING if booking is None else PaymentOutcome.IGNORED
    booking_id = _id(booking)
    try:
        applied = apply_calendar_move(
            booking_id,
            new_uid,
            new_start,
            uow=uow,
            calendar=calendar,
            clock=clock,
            rules=rules,
            event_id=key,
        )
    except (SlotUnavailable, InvalidTransition) as exc:
        with uow:
            if not uow.payment_events.record(key, "calendar.rescheduled", now):
                return PaymentOutcome.DUPLICATE
            uow.outbox.add(
                JobKind.CALENDAR_MOVED,
                {"booking_id": booking_id, "uid": new_uid, "start": new_start.isoformat()},
                now,
                unique_key=f"calendar-moved:{booking_id}:{new_uid}",
            )
            uow.commit()
        log.warning("booking %s moved in Cal.com to a time not free here: %s", booking_id, exc)
        return "parked"
    return "rescheduled" if applied else PaymentOutcome.DUPLICATE


def apply_calendar_move(
    booking_id: int,
    new_uid: str,
    new_start: datetime,
    *,
    uow: UnitOfWork,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules,
    event_id: str | None = None,
) -> bool:
    """Move booking ``booking_id`` to ``new_start`` as the external calendar did (same length),
    record ``new_uid``, and tell both sides; with ``event_id``, record that event in the same
    transaction (False, and nothing done, when it was recorded before).

    Raises SlotUnavailable (the time is taken here), InvalidTransition (it has started).
    """
    now = clock.now()
    with uow:
        if event_id is not None and not uow.payment_events.record(
            event_id, "calendar.rescheduled", now
        ):
            return False
        booking = _get(uow, booking_id)
        if not booking.occupies_calendar:
            uow.commit()
            return True  # cancelled or expired meanwhile: nothing to move
        moved = booking.start != new_start
        if moved:
            booking.reschedule(new_start, at=now)
        if booking.calendar_uid != new_uid:
            booking.sync_calendar(new_uid, at=now)
        uow.bookings.save(booking)  # the no-overlap rule has the last word
        if moved and booking.status is BookingStatus.CONFIRMED:
            enqueue_notification(uow, NotificationKind.RESCHEDULED, booking, now)
            enqueue_reminder(uow, booking, now, rules.reminder_hours_before)
        uow.commit()
    calendar.invalidate(booking.practitioner_id)
    return True


@frozen
class CancelBooking:
    booking_id: int
    reason: str = ""
    by_admin: bool = False
    refund_override: bool | None = None  # admins only: force a full refund or none
    # admins only: refund this many minor units of the booking's currency (at most what was
    # captured and not yet refunded: RefundExceedsCapture otherwise)
    refund_amount: int | None = None


@frozen
class Cancelled:
    booking: Booking
    refund: Refund | None


def cancel_booking(
    cmd: CancelBooking,
    *,
    uow: UnitOfWork,
    payments: PaymentGateway,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules,
    actor: Actor | None = None,
    request_id: str | None = None,
) -> Cancelled:
    """Cancel a pending or confirmed booking and refund per the policy.

    The cancellation commits first (with the refund marked PENDING), then the refund is asked
    for; if the provider fails the booking stays cancelled and the worker retries the refund.
    With an ``actor`` (the admin API) the actor must be allowed to manage the booking, and an
    audit entry is written in the cancellation's transaction. Raises BookingNotFound,
    InvalidTransition, Forbidden, RefundExceedsCapture (a refund amount beyond the payment),
    ValidationFailed (a refund override or amount from a client).
    """
    overriding = cmd.refund_override is not None or cmd.refund_amount is not None
    if overriding and not cmd.by_admin:
        raise ValidationFailed("only admins can override the refund policy")
    if cmd.refund_override is False and cmd.refund_amount:
        raise ValidationFailed(
            "refund false and a refund amount contradict each other",
            errors={"refund_amount": ["must be absent when refund is false"]},
        )
    now = clock.now()
    with uow:
        if actor is not None:
            booking = admin._booking(uow, actor, cmd.booking_id)
        else:
            booking = _get(uow, cmd.booking_id)
        before = admin.booking_snapshot(booking)
        was = booking.status
        booking.cancel(cmd.reason, at=now)
        payload = {"booking_id": booking.id}
        paid = was is BookingStatus.CONFIRMED and booking.payment_intent_id
        if cmd.refund_amount and not paid:
            raise RefundExceedsCapture(f"booking {booking.id} has no captured payment to refund")
        if paid:
            captured = uow.ledger.get(booking.payment_intent_id or "")
            refundable = captured.refundable if captured is not None else booking.price.amount
            if cmd.refund_amount is not None:
                if cmd.refund_amount > refundable:
                    raise RefundExceedsCapture(
                        f"booking {booking.id}: at most {refundable} can still be refunded"
                    )
                amount = Money(cmd.refund_amount, booking.price.currency)
            else:
                amount = rules.refund_for_cancellation(booking, now, override=cmd.refund_override)
                if refundable < amount.amount:
                    # Part was refunded at the provider already (charge.refunded): the rest only.
                    amount = Money(max(refundable, 0), amount.currency)
            if amount.amount > 0:
                decide_refund(
                    booking, amount, uow, now, reason="cancelled", run_at=now + timedelta(minutes=1)
                )
        if was is BookingStatus.PENDING and booking.checkout_session_id:
            uow.outbox.add(
                JobKind.EXPIRE_CHECKOUT, {**payload, "session_id": booking.checkout_session_id}, now
            )
        if booking.calendar_uid:
            uow.outbox.add(JobKind.CALENDAR_CANCEL, {**payload, "uid": booking.calendar_uid}, now)
        if was is BookingStatus.CONFIRMED:
            enqueue_notification(uow, NotificationKind.CANCELLED, booking, now)
        uow.bookings.save(booking)
        if actor is not None:
            admin.record(
                uow,
                actor=actor,
                at=now,
                action="booking.cancel",
                object_type="booking",
                object_id=booking.id,
                before=before,
                after={**admin.booking_snapshot(booking), "reason": cmd.reason},
                request_id=request_id,
            )
        uow.commit()
    calendar.invalidate(booking.practitioner_id)
    refund = booking.refund
    if refund is not None and refund.status is RefundStatus.PENDING:
        try:
            refund = issue_refund(_id(booking), uow=uow, payments=payments, clock=clock)
        except PaymentFailed as exc:
            log.warning("refund for booking %s deferred to the worker: %s", booking.id, exc)
    booking = get_booking(_id(booking), uow=uow)
    return Cancelled(booking=booking, refund=booking.refund if refund is not None else None)


@frozen
class RescheduleBooking:
    booking_id: int
    new_start: datetime
    reason: str = ""


def reschedule_booking(
    cmd: RescheduleBooking,
    *,
    uow: UnitOfWork,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules,
) -> Booking:
    """Move a pending or confirmed, not yet started booking to another offered start.

    Raises ValidationFailed (a start without a UTC offset), BookingNotFound, InvalidTransition
    (wrong state or already started), OutsideAvailability, SlotUnavailable, LimitReached (the
    new day or week is full).
    """
    now = clock.now()
    new_start = _aware_utc(cmd.new_start, "start")
    with uow:
        booking = _get(uow, cmd.booking_id)
        if not booking.occupies_calendar:
            raise InvalidTransition(f"a {booking.status.value} booking cannot be rescheduled")
        if booking.start <= now:
            raise InvalidTransition("a booking that has started cannot be rescheduled")
        practitioner, service = _practitioner_and_service(
            uow, booking.practitioner_id, booking.service_id
        )
        busy = _fill_busy(uow, practitioner, service, new_start, ignore=booking.id)
    if not _is_offered(practitioner, service, new_start, now, calendar, busy):
        raise OutsideAvailability(f"{new_start.isoformat()} is not an offered start")
    with uow:
        occupied = _occupied_around(uow, practitioner, service, new_start, ignore=booking.id)
    if _is_taken(service, new_start, occupied):
        raise SlotUnavailable(f"{new_start.isoformat()} is already taken")
    with uow:
        booking = _get(uow, cmd.booking_id)
        if not booking.occupies_calendar:
            raise InvalidTransition(f"a {booking.status.value} booking cannot be rescheduled")
        if practitioner.limits.any or service.limits.any:
            # Counted under the practitioner's lock, without the booking being moved.
            uow.practitioners.lock(booking.practitioner_id)
            if not _within_limits(uow, practitioner, service, new_start, ignore=booking.id):
                raise LimitReached("the practitioner takes no more bookings that day or week")
        booking.reschedule(new_start, at=now)
        uow.bookings.save(booking)  # the no-overlap rule has the last word
        if booking.calendar_uid:
            uow.outbox.add(
                JobKind.CALENDAR_RESCHEDULE,
                {"booking_id": booking.id, "uid": booking.calendar_uid, "reason": cmd.reason},
                now,
            )
        if booking.status is BookingStatus.CONFIRMED:
            enqueue_notification(uow, NotificationKind.RESCHEDULED, booking, now)
            enqueue_reminder(uow, booking, now, rules.reminder_hours_before)
        uow.commit()
    calendar.invalidate(booking.practitioner_id)
    return booking


@frozen
class CancellationQuote:
    """What cancelling a booking now would do, shown to the client before they confirm.

    ``refund`` is None when nothing was paid (a pending hold is simply released), else the
    amount the policy gives back (zero inside the cancellation window).
    """

    cancellable: bool
    refund: Money | None
    window_hours: int


def quote_cancellation(booking: Booking, *, clock: Clock, rules: BookingRules) -> CancellationQuote:
    """The client's cancellation of ``booking`` priced by the same rule ``cancel_booking`` uses."""
    window = rules.cancellation_window_hours
    if not booking.occupies_calendar:
        return CancellationQuote(cancellable=False, refund=None, window_hours=window)
    if booking.status is not BookingStatus.CONFIRMED or not booking.payment_intent_id:
        return CancellationQuote(cancellable=True, refund=None, window_hours=window)
    refund = rules.refund_for_cancellation(booking, clock.now())
    return CancellationQuote(cancellable=True, refund=refund, window_hours=window)
