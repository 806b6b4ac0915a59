"""Payment use cases: provider events applied once, refunds asked of the provider."""

from __future__ import annotations

import logging
from datetime import datetime

from booking_core.errors import (
    PaymentFailed,
    RefundExceedsCapture,
    SlotUnavailable,
)
from booking_core.jobs import JobKind
from booking_core.model import (
    Booking,
    BookingStatus,
    Money,
    Payment,
    Refund,
    RefundStatus,
)
from booking_core.notifications import NotificationKind, enqueue_notification, enqueue_reminder
from booking_core.policy import BookingRules
from booking_core.ports import (
    CalendarGateway,
    Clock,
    PaymentEvent,
    PaymentEventType,
    PaymentGateway,
    RefundRequest,
    UnitOfWork,
)
from booking_core.usecases._shared import _get

log = logging.getLogger(__name__)


class PaymentOutcome:
    """What handle_payment_event did; logged and asserted on in tests."""

    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    UNKNOWN_BOOKING = "unknown_booking"
    CONFIRMED = "confirmed"
    ALREADY_CONFIRMED = "already_confirmed"
    ALREADY_APPLIED = "already_applied"  # this payment intent was applied by an earlier event
    LATE_CONFIRMED = "late_confirmed"
    LATE_REFUNDED = "late_refunded"
    AMOUNT_MISMATCH = "amount_mismatch"
    AWAITING_PAYMENT = "awaiting_payment"
    EXPIRED = "expired"
    REFUND_UPDATED = "refund_updated"
    CANCELLED = "cancelled"


_CONFIRMING = {PaymentEventType.CHECKOUT_COMPLETED, PaymentEventType.ASYNC_PAYMENT_SUCCEEDED}
_RELEASING = {PaymentEventType.CHECKOUT_EXPIRED, PaymentEventType.ASYNC_PAYMENT_FAILED}
_REFUNDS = {
    PaymentEventType.REFUND_CREATED,
    PaymentEventType.REFUND_UPDATED,
    PaymentEventType.REFUND_FAILED,
    PaymentEventType.CHARGE_REFUNDED,
}


def handle_payment_event(
    event: PaymentEvent,
    *,
    uow: UnitOfWork,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules,
) -> str:
    """Apply a verified provider event exactly once; returns a PaymentOutcome value.

    The event id is recorded in the same transaction as the change it causes, so a replay or a
    concurrent duplicate changes nothing. Makes no outbound call: refunds and calendar sync go to
    the outbox for the worker.
    """
    now = clock.now()
    with uow:
        if not uow.payment_events.record(event.id, event.type, now):
            return PaymentOutcome.DUPLICATE
        outcome, practitioner_id = _apply_event(event, uow, now, rules)
        uow.commit()
    if practitioner_id is not None:
        calendar.invalidate(practitioner_id)
    log.info(
        "payment event %s (%s) -> %s",
        event.id,
        event.type,
        outcome,
        extra={"event_id": event.id, "event_type": event.type, "outcome": outcome},
    )
    return outcome


def _find_booking_for(event: PaymentEvent, uow: UnitOfWork) -> Booking | None:
    booking = None
    if event.session_id:
        booking = uow.bookings.get_by_checkout_session(event.session_id)
    if booking is None and event.booking_id is not None:
        booking = uow.bookings.get(event.booking_id)
        if booking is not None and booking.checkout_session_id not in (None, event.session_id):
            return None  # metadata names a booking that belongs to another session
    return booking


def _apply_event(
    event: PaymentEvent, uow: UnitOfWork, now: datetime, rules: BookingRules
) -> tuple[str, int | None]:
    if event.type in _REFUNDS:
        return _apply_refund_event(event, uow, now), None
    if event.type not in _CONFIRMING and event.type not in _RELEASING:
        return PaymentOutcome.IGNORED, None
    booking = _find_booking_for(event, uow)
    if booking is None:
        log.warning("payment event %s names no booking we know", event.id)
        return PaymentOutcome.UNKNOWN_BOOKING, None
    if event.type in _RELEASING:
        if booking.status is not BookingStatus.PENDING:
            return PaymentOutcome.IGNORED, None  # confirmed already, or out-of-order delivery
        booking.expire(f"checkout {event.type.rsplit('.', 1)[-1]}", at=now)
        uow.bookings.save(booking)
        return PaymentOutcome.EXPIRED, booking.practitioner_id
    return _apply_payment(event, booking, uow, now, rules), booking.practitioner_id


def _apply_payment(
    event: PaymentEvent, booking: Booking, uow: UnitOfWork, now: datetime, rules: BookingRules
) -> str:
    if event.type == PaymentEventType.CHECKOUT_COMPLETED and event.payment_status != "paid":
        return PaymentOutcome.AWAITING_PAYMENT  # a delayed method; async_payment_* follows
    if booking.status in (BookingStatus.CONFIRMED, BookingStatus.COMPLETED, BookingStatus.NO_SHOW):
        return PaymentOutcome.ALREADY_CONFIRMED
    paid = event.amount or booking.price
    # One session has one payment intent: an event naming none, for a booking already paid,
    # is that same payment again.
    intent = (
        event.payment_intent_id
        or booking.payment_intent_id
        or f"checkout:{event.session_id or booking.checkout_session_id}"
    )
    # The ledger, not the event id, decides whether this payment was applied: Stripe sends
    # checkout.session.completed and async_payment_succeeded (and redeliveries under new ids)
    # for one payment, and a cancelled booking must not refund the money a second time.
    if not uow.ledger.capture(
        Payment(payment_intent_id=intent, booking_id=_booking_id(booking), captured=paid), now
    ):
        return PaymentOutcome.ALREADY_APPLIED
    booking.record_payment(event.payment_intent_id, event.session_id)
    if event.amount != booking.price:
        log.error(
            "booking %s: paid %s %s but the price is %s %s; refunding, not confirming",
            booking.id,
            paid.amount,
            paid.currency,
            booking.price.amount,
            booking.price.currency,
        )
        if booking.status is BookingStatus.PENDING:
            # The checkout is complete, so no right payment can follow on it; and
            # expire_stale_holds leaves a completed checkout's hold alone, so release it here.
            booking.expire("paid amount did not match the price", at=now)
        _refund_in_full(booking, intent, paid, uow, now, reason="amount_mismatch")
        return PaymentOutcome.AMOUNT_MISMATCH
    if booking.status is BookingStatus.PENDING:
        booking.confirm(at=now)
        uow.bookings.save(booking)
        _after_confirmation(booking, uow, now, rules)
        return PaymentOutcome.CONFIRMED
    if booking.status is BookingStatus.EXPIRED:
        late = booking.copy()
        late.confirm_late_payment(at=now)
        try:
            uow.bookings.save(late)
        except SlotUnavailable:
            _refund_in_full(booking, intent, paid, uow, now, reason="late_payment_slot_taken")
            return PaymentOutcome.LATE_REFUNDED
        _after_confirmation(late, uow, now, rules)
        return PaymentOutcome.LATE_CONFIRMED
    # Cancelled while the client was paying: the money goes back.
    _refund_in_full(booking, intent, paid, uow, now, reason="paid_after_cancellation")
    return PaymentOutcome.LATE_REFUNDED


def _booking_id(booking: Booking) -> int:
    if booking.id is None:
        raise ValueError("booking has no id; was it added through a repository?")
    return booking.id


def _refund_in_full(
    booking: Booking, intent: str, paid: Money, uow: UnitOfWork, now: datetime, *, reason: str
) -> None:
    try:
        decide_refund(booking, paid, uow, now, reason=reason, intent=intent)
    except RefundExceedsCapture as exc:
        # Acknowledge the event anyway (a redelivery cannot change the ledger); an admin sees it.
        log.error("booking %s: no refund decided: %s", booking.id, exc)
    uow.bookings.save(booking)


def decide_refund(
    booking: Booking,
    amount: Money,
    uow: UnitOfWork,
    now: datetime,
    *,
    reason: str,
    intent: str | None = None,
    run_at: datetime | None = None,
) -> bool:
    """Make the booking's one refund decision: counted in the ledger, marked PENDING on the
    booking, and one refund job (unique per booking and reason) for the worker.

    False when the booking already has a refund decision (it is never replaced, so a refund
    that succeeded never goes back to pending). Raises RefundExceedsCapture if the ledger
    refuses the amount. The caller saves the booking.
    """
    if booking.refund is not None:
        log.warning(
            "booking %s already has a %s refund (%s); not deciding another (%s)",
            booking.id,
            booking.refund.status.value,
            booking.refund.reason,
            reason,
        )
        return False
    intent = intent or booking.payment_intent_id
    if intent is None:
        raise RefundExceedsCapture(f"booking {booking.id} has no captured payment to refund")
    uow.ledger.add_refund(intent, amount, now)
    booking.decide_refund(amount, reason, at=now)
    uow.outbox.add(
        JobKind.REFUND,
        {"booking_id": booking.id},
        run_at or now,
        unique_key=f"refund:{booking.id}:{reason}",
    )
    return True


def _after_confirmation(
    booking: Booking, uow: UnitOfWork, now: datetime, rules: BookingRules
) -> None:
    payload = {"booking_id": booking.id}
    uow.outbox.add(JobKind.CALENDAR_CREATE, payload, now)
    enqueue_notification(uow, NotificationKind.CONFIRMED, booking, now)
    enqueue_reminder(uow, booking, now, rules.reminder_hours_before)


def _apply_charge_refunded(
    event: PaymentEvent, booking: Booking, uow: UnitOfWork, now: datetime
) -> str:
    """charge.refunded says how much of the charge is refunded in all (``event.refunded``),
    ours or made at the provider (its dashboard): the ledger counts what it did not know of, so
    a partial refund is recorded as partial; the booking's own refund decision is marked
    succeeded only once the charge's refunds cover it."""
    intent = event.payment_intent_id or ""
    total = event.refunded
    changed = False
    entry = uow.ledger.get(intent)
    if total is not None and entry is not None and total.amount > entry.refunded:
        extra = Money(total.amount - entry.refunded, total.currency)
        try:
            uow.ledger.add_refund(intent, extra, now)
            changed = True
            log.info(
                "booking %s: %s %s refunded at the provider",
                booking.id,
                extra.amount,
                extra.currency,
            )
        except RefundExceedsCapture as exc:
            log.error("booking %s: a refund at the provider is not counted: %s", booking.id, exc)
    refund = booking.refund
    covered = total is None or (refund is not None and total.amount >= refund.amount.amount)
    if refund is not None and covered and refund.status is not RefundStatus.SUCCEEDED:
        booking.update_refund(at=now, status=RefundStatus.SUCCEEDED, provider_id=event.refund_id)
        uow.bookings.save(booking)
        changed = True
    return PaymentOutcome.REFUND_UPDATED if changed else PaymentOutcome.IGNORED


def _apply_refund_event(event: PaymentEvent, uow: UnitOfWork, now: datetime) -> str:
    if not event.payment_intent_id:
        return PaymentOutcome.IGNORED
    booking = uow.bookings.get_by_payment_intent(event.payment_intent_id)
    if booking is not None and event.type == PaymentEventType.CHARGE_REFUNDED:
        return _apply_charge_refunded(event, booking, uow, now)
    if booking is None or booking.refund is None:
        return PaymentOutcome.IGNORED
    status = {
        "succeeded": RefundStatus.SUCCEEDED,
        "failed": RefundStatus.FAILED,
        "canceled": RefundStatus.FAILED,
    }.get(event.refund_status or "")
    if event.type == PaymentEventType.REFUND_FAILED:
        status = RefundStatus.FAILED
    if status is None or booking.refund.status is status:
        return PaymentOutcome.IGNORED
    if booking.refund.status is RefundStatus.SUCCEEDED and status is RefundStatus.FAILED:
        log.error("booking %s: a succeeded refund is now reported failed", booking.id)
    booking.update_refund(at=now, status=status, provider_id=event.refund_id)
    uow.bookings.save(booking)
    return PaymentOutcome.REFUND_UPDATED


def issue_refund(
    booking_id: int, *, uow: UnitOfWork, payments: PaymentGateway, clock: Clock
) -> Refund | None:
    """Ask the provider for the booking's PENDING refund; idempotent per booking and amount.

    On provider failure the refund stays PENDING (the worker retries) and the error is raised.
    Returns the refund as stored afterwards, or None when there is nothing to refund.
    """
    with uow:
        booking = _get(uow, booking_id)
    refund = booking.refund
    if refund is None or refund.status is not RefundStatus.PENDING:
        return refund
    if not booking.payment_intent_id or refund.amount.amount == 0:
        return refund
    try:
        result = payments.refund(
            RefundRequest(
                booking_id=booking_id,
                payment_intent_id=booking.payment_intent_id,
                amount=refund.amount,
                # One payment intent per paid booking: unique across database resets too.
                idempotency_key=f"refund:{booking.payment_intent_id}:{refund.amount.amount}",
                reason="requested_by_customer",
            )
        )
    except PaymentFailed:
        with uow:
            stored = _get(uow, booking_id)
            if stored.refund is not None:
                stored.update_refund(at=clock.now(), attempt=True)
                uow.bookings.save(stored)
                uow.commit()
        raise
    status = {
        "succeeded": RefundStatus.SUCCEEDED,
        "failed": RefundStatus.FAILED,
        "canceled": RefundStatus.FAILED,
    }.get(result.status, RefundStatus.PENDING)
    with uow:
        stored = _get(uow, booking_id)
        if stored.refund is None:
            return None
        # A webhook may have settled the refund while we waited: it never goes back to pending.
        stored.update_refund(at=clock.now(), status=status, provider_id=result.id, attempt=True)
        uow.bookings.save(stored)
        uow.commit()
    return stored.refund
