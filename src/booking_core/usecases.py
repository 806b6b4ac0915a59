"""Use cases: what clients, admins, webhooks and the worker can do, each a function.

Each takes a command (or plain ids) and the ports it needs by keyword. A ``uow`` is a fresh
UnitOfWork (one per request or job); every ``with uow:`` is one transaction. No outbound call
(payment provider, calendar) is made while a transaction is open.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import attrs
from attrs import field, frozen

from booking_core import availability as av
from booking_core.errors import (
    BookingNotFound,
    CalendarUnavailable,
    ConcurrentUpdate,
    InvalidTransition,
    OutsideAvailability,
    PaymentFailed,
    PractitionerNotFound,
    ServiceNotFound,
    SlotUnavailable,
    ValidationFailed,
)
from booking_core.model import (
    Booking,
    BookingStatus,
    Client,
    Interval,
    Money,
    Practitioner,
    Refund,
    RefundStatus,
    Service,
)
from booking_core.policy import BookingRules, new_manage_token, token_matches
from booking_core.ports import (
    BookingFilter,
    CalendarGateway,
    CheckoutRequest,
    CheckoutState,
    Clock,
    PaymentEvent,
    PaymentEventType,
    PaymentGateway,
    RefundRequest,
    UnitOfWork,
)

log = logging.getLogger(__name__)

# Job kinds written to the outbox and run by the worker (see booking_core.jobs).
JOB_EMAIL = "email"
JOB_CALENDAR_CREATE = "calendar.create"
JOB_CALENDAR_CANCEL = "calendar.cancel"
JOB_CALENDAR_RESCHEDULE = "calendar.reschedule"
JOB_REFUND = "payment.refund"
JOB_EXPIRE_CHECKOUT = "payment.expire_checkout"


# -- reading -------------------------------------------------------------------------------------


def list_practitioners(*, uow: UnitOfWork) -> list[Practitioner]:
    """Active practitioners with their services, by id."""
    with uow:
        return uow.practitioners.list(active_only=True)


def get_practitioner(practitioner_id: int, *, uow: UnitOfWork) -> Practitioner:
    """Raises PractitionerNotFound for an unknown or inactive practitioner."""
    with uow:
        practitioner = uow.practitioners.get(practitioner_id)
    if practitioner is None or not practitioner.active:
        raise PractitionerNotFound(f"no practitioner with id {practitioner_id}")
    return practitioner


def _practitioner_and_service(
    uow: UnitOfWork, practitioner_id: int, service_id: int
) -> tuple[Practitioner, Service]:
    practitioner = uow.practitioners.get(practitioner_id)
    if practitioner is None or not practitioner.active:
        raise PractitionerNotFound(f"no practitioner with id {practitioner_id}")
    service = practitioner.service(service_id)
    if service is None or not service.active:
        raise ServiceNotFound(f"practitioner {practitioner_id} offers no service {service_id}")
    return practitioner, service


# -- availability --------------------------------------------------------------------------------


@frozen
class AvailabilityQuery:
    """Dates are local to the practitioner; ``last_day`` is inclusive; None means the default."""

    practitioner_id: int
    service_id: int | None = None
    first_day: date | None = None
    last_day: date | None = None


@frozen
class Availability:
    practitioner_id: int
    service_id: int
    timezone: str
    source: str  # "calcom" | "schedule"
    slots: list[Interval]
    first_day: date
    last_day: date


def get_availability(
    query: AvailabilityQuery,
    *,
    uow: UnitOfWork,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules,
) -> Availability:
    """Open slots from the external calendar when linked (else the working hours).

    Our own occupying bookings are always subtracted. If the calendar fails the local schedule
    answers and ``source`` says "schedule". Raises PractitionerNotFound, ServiceNotFound,
    ValidationFailed (bad or too wide a date range).
    """
    now = clock.now()
    with uow:
        practitioner = uow.practitioners.get(
            query.practitioner_id, max_age=rules.schedule_cache_seconds
        )
        if practitioner is None or not practitioner.active:
            raise PractitionerNotFound(f"no practitioner with id {query.practitioner_id}")
        service = _pick_service(practitioner, query.service_id)
        first, last = _window_days(query, practitioner, now, rules)
        window = av.local_day_window(practitioner.zone, first, last)
        occupied = uow.bookings.occupied_spans(
            practitioner.id or 0, av.occupied_window(window, service)
        )
    slots, source = _slots(practitioner, service, first, last, window, now, occupied, calendar)
    return Availability(
        practitioner_id=query.practitioner_id,
        service_id=service.id or 0,
        timezone=practitioner.timezone,
        source=source,
        slots=slots,
        first_day=first,
        last_day=last,
    )


def _pick_service(practitioner: Practitioner, service_id: int | None) -> Service:
    if service_id is None:
        active = [s for s in practitioner.services if s.active]
        if not active:
            raise ServiceNotFound(f"practitioner {practitioner.id} offers no services")
        return active[0]
    service = practitioner.service(service_id)
    if service is None or not service.active:
        raise ServiceNotFound(f"practitioner {practitioner.id} offers no service {service_id}")
    return service


def _window_days(
    query: AvailabilityQuery, practitioner: Practitioner, now: datetime, rules: BookingRules
) -> tuple[date, date]:
    today = now.astimezone(practitioner.zone).date()
    first = query.first_day or today
    last = query.last_day or first + timedelta(days=rules.default_window_days - 1)
    if last < first:
        raise ValidationFailed("'to' is before 'from'", errors={"to": ["must not be before from"]})
    if (last - first).days + 1 > rules.max_window_days:
        raise ValidationFailed(
            f"at most {rules.max_window_days} days at a time",
            errors={"to": [f"window is longer than {rules.max_window_days} days"]},
        )
    return first, last


def _slots(
    practitioner: Practitioner,
    service: Service,
    first: date,
    last: date,
    window: Interval,
    now: datetime,
    occupied: list[Interval],
    calendar: CalendarGateway,
) -> tuple[list[Interval], str]:
    link = calendar.link_for(practitioner)
    if link is not None:
        try:
            offered = calendar.free_slots(link, service, window, practitioner.timezone)
        except CalendarUnavailable as exc:
            log.debug("calendar unavailable for practitioner %s: %s", practitioner.id, exc)
        else:
            starts = (s.start for s in offered if window.start <= s.start < window.end)
            slots = av.filter_slots(starts, practitioner, service, now=now, occupied=occupied)
            return slots, "calcom"
    slots = av.free_slots(
        practitioner, service, first_day=first, last_day=last, now=now, occupied=occupied
    )
    return slots, "schedule"


def _is_offered(
    practitioner: Practitioner,
    service: Service,
    start: datetime,
    now: datetime,
    calendar: CalendarGateway,
) -> bool:
    """Whether ``start`` is on the day's offer, ignoring who holds it (see _is_taken)."""
    if not now <= start <= now + timedelta(days=service.max_advance_days):
        return False  # also keeps dates like 9999-12-31 away from date arithmetic
    day = start.astimezone(practitioner.zone).date()
    window = av.local_day_window(practitioner.zone, day, day)
    slots, _ = _slots(practitioner, service, day, day, window, now, [], calendar)
    return any(s.start == start for s in slots)


def _is_taken(service: Service, start: datetime, occupied: list[Interval]) -> bool:
    """Whether the buffered span of a booking at ``start`` overlaps an occupied span."""
    span = Interval(start - service.buffer_before, start + service.duration + service.buffer_after)
    return any(span.overlaps(other) for other in occupied)


def _occupied_around(
    uow: UnitOfWork,
    practitioner: Practitioner,
    service: Service,
    start: datetime,
    ignore: int | None = None,
) -> list[Interval]:
    day = start.astimezone(practitioner.zone).date()
    window = av.occupied_window(av.local_day_window(practitioner.zone, day, day), service)
    return [
        b.occupied
        for b in uow.bookings.list_occupying(practitioner.id or 0, window)
        if b.id != ignore
    ]


# -- booking -------------------------------------------------------------------------------------


@frozen
class RequestBooking:
    practitioner_id: int
    service_id: int
    start: datetime
    client: Client
    notes: str = ""


@frozen
class BookingRequested:
    booking: Booking
    checkout_url: str
    manage_token: str = field(repr=False)


def request_booking(
    cmd: RequestBooking,
    *,
    uow: UnitOfWork,
    payments: PaymentGateway,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules,
) -> BookingRequested:
    """Hold the slot as a pending booking, then open a checkout for it.

    The hold is committed before the payment provider is called, so the slot is taken at once;
    if the provider fails the hold is released (status expired) and PaymentUnavailable raised.
    Raises ValidationFailed (a start without a UTC offset), PractitionerNotFound,
    ServiceNotFound, OutsideAvailability (not an offered start), SlotUnavailable (someone holds
    it), PaymentUnavailable.
    """
    now = clock.now()
    start = _aware_utc(cmd.start, "start")
    with uow:
        practitioner, service = _practitioner_and_service(
            uow, cmd.practitioner_id, cmd.service_id
        )
    if not _is_offered(practitioner, service, start, now, calendar):
        raise OutsideAvailability(f"{start.isoformat()} is not an offered start for this service")
    with uow:
        occupied = _occupied_around(uow, practitioner, service, start)
    if _is_taken(service, start, occupied):
        raise SlotUnavailable(f"{start.isoformat()} is already taken")

    token, token_hash = new_manage_token()
    booking = Booking(
        practitioner_id=cmd.practitioner_id,
        service_id=cmd.service_id,
        client=cmd.client,
        start=start,
        end=start + service.duration,
        buffer_before_minutes=service.buffer_before_minutes,
        buffer_after_minutes=service.buffer_after_minutes,
        price=service.price,
        status=BookingStatus.PENDING,
        hold_expires_at=rules.hold_expiry(now),
        notes=cmd.notes,
        manage_token_hash=token_hash,
        created_at=now,
        updated_at=now,
    )
    with uow:
        booking = uow.bookings.add(booking)  # SlotUnavailable if someone was faster
        uow.commit()
    calendar.invalidate(cmd.practitioner_id)
    booking_id = _id(booking)
    # Ids restart after a database reset and Stripe keeps keys for 24 h: the creation instant
    # keeps a reused id from replaying another booking's session.
    checkout_key = f"checkout:{booking_id}:{int(booking.created_at.timestamp() * 1e6)}"

    try:
        session = payments.create_checkout(
            CheckoutRequest(
                booking_id=booking_id,
                amount=booking.price,
                description=f"{service.name} with {practitioner.name}",
                customer_email=booking.client.email,
                expires_at=booking.hold_expires_at or rules.hold_expiry(now),
                idempotency_key=checkout_key,
            )
        )
    except PaymentFailed:
        _release_hold(booking_id, uow=uow, clock=clock, reason="payment provider unavailable")
        calendar.invalidate(cmd.practitioner_id)
        raise

    with uow:
        stored = _get(uow, booking_id)
        stored.checkout_session_id = session.id
        stored.touch(clock.now())
        uow.bookings.save(stored)
        uow.commit()
    return BookingRequested(booking=stored, checkout_url=session.url, manage_token=token)


def _release_hold(booking_id: int, *, uow: UnitOfWork, clock: Clock, reason: str) -> None:
    with uow:
        booking = _get(uow, booking_id)
        if booking.status is BookingStatus.PENDING:
            booking.transition_to(BookingStatus.EXPIRED, at=clock.now())
            booking.cancel_reason = reason
            uow.bookings.save(booking)
            uow.commit()


def _aware_utc(value: datetime, field_name: str) -> datetime:
    """``value`` in UTC; a naive datetime is refused (astimezone would read it as server time)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationFailed(
            f"{field_name} needs a UTC offset", errors={field_name: ["must include a UTC offset"]}
        )
    return value.astimezone(UTC)


def _id(booking: Booking) -> int:
    if booking.id is None:
        raise ValueError("booking has no id; was it added through a repository?")
    return booking.id


def _get(uow: UnitOfWork, booking_id: int) -> Booking:
    booking = uow.bookings.get(booking_id)
    if booking is None:
        raise BookingNotFound(f"no booking with id {booking_id}")
    return booking


def authorize_booking(booking_id: int, token: str, *, uow: UnitOfWork) -> Booking:
    """The booking if ``token`` is its manage token; BookingNotFound otherwise (no probing ids)."""
    with uow:
        booking = uow.bookings.get(booking_id)
    if booking is None or not token_matches(token, booking.manage_token_hash):
        raise BookingNotFound(f"no booking with id {booking_id}")
    return booking


def get_booking(booking_id: int, *, uow: UnitOfWork) -> Booking:
    """For admins and internal callers. Raises BookingNotFound."""
    with uow:
        return _get(uow, booking_id)


def find_booking_by_checkout(session_id: str, *, uow: UnitOfWork) -> Booking | None:
    """The booking a checkout session belongs to (for the success page), or None."""
    with uow:
        return uow.bookings.get_by_checkout_session(session_id)


def list_bookings(filters: BookingFilter, *, uow: UnitOfWork) -> list[Booking]:
    with uow:
        return uow.bookings.list(filters)


# -- payment events ------------------------------------------------------------------------------


class PaymentOutcome:
    """What handle_payment_event did; logged and asserted on in tests."""

    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    UNKNOWN_BOOKING = "unknown_booking"
    CONFIRMED = "confirmed"
    ALREADY_CONFIRMED = "already_confirmed"
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
        "payment event %s (%s) -> %s", event.id, event.type, outcome,
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
        booking.transition_to(BookingStatus.EXPIRED, at=now)
        booking.cancel_reason = f"checkout {event.type.rsplit('.', 1)[-1]}"
        uow.bookings.save(booking)
        return PaymentOutcome.EXPIRED, booking.practitioner_id
    return _apply_payment(event, booking, uow, now, rules), booking.practitioner_id


def _apply_payment(
    event: PaymentEvent, booking: Booking, uow: UnitOfWork, now: datetime, rules: BookingRules
) -> str:
    if event.type == PaymentEventType.CHECKOUT_COMPLETED and event.payment_status != "paid":
        return PaymentOutcome.AWAITING_PAYMENT  # a delayed method; async_payment_* follows
    if booking.status in (BookingStatus.CONFIRMED, BookingStatus.COMPLETED):
        return PaymentOutcome.ALREADY_CONFIRMED
    booking.payment_intent_id = event.payment_intent_id or booking.payment_intent_id
    booking.checkout_session_id = booking.checkout_session_id or event.session_id
    paid = event.amount or booking.price
    if event.amount != booking.price:
        log.error(
            "booking %s: paid %s %s but the price is %s %s; refunding, not confirming",
            booking.id, paid.amount, paid.currency, booking.price.amount, booking.price.currency,
        )
        if booking.status is BookingStatus.PENDING:
            # The checkout is complete, so no right payment can follow on it; and
            # expire_stale_holds leaves a completed checkout's hold alone, so release it here.
            booking.transition_to(BookingStatus.EXPIRED, at=now)
            booking.cancel_reason = "paid amount did not match the price"
        _refund_in_full(booking, paid, uow, now, reason="amount_mismatch")
        return PaymentOutcome.AMOUNT_MISMATCH
    if booking.status is BookingStatus.PENDING:
        booking.transition_to(BookingStatus.CONFIRMED, at=now)
        uow.bookings.save(booking)
        _after_confirmation(booking, uow, now, rules)
        return PaymentOutcome.CONFIRMED
    if booking.status is BookingStatus.EXPIRED:
        late = booking.copy()
        late.confirm_late_payment(at=now)
        try:
            uow.bookings.save(late)
        except SlotUnavailable:
            _refund_in_full(booking, paid, uow, now, reason="late_payment_slot_taken")
            return PaymentOutcome.LATE_REFUNDED
        _after_confirmation(late, uow, now, rules)
        return PaymentOutcome.LATE_CONFIRMED
    # Cancelled while the client was paying: the money goes back.
    _refund_in_full(booking, paid, uow, now, reason="paid_after_cancellation")
    return PaymentOutcome.LATE_REFUNDED


def _refund_in_full(
    booking: Booking, paid: Money, uow: UnitOfWork, now: datetime, *, reason: str
) -> None:
    booking.refund = Refund(amount=paid, status=RefundStatus.PENDING, reason=reason)
    booking.touch(now)
    uow.bookings.save(booking)
    uow.outbox.add(JOB_REFUND, {"booking_id": booking.id}, now)


def _after_confirmation(
    booking: Booking, uow: UnitOfWork, now: datetime, rules: BookingRules
) -> None:
    payload = {"booking_id": booking.id}
    uow.outbox.add(JOB_CALENDAR_CREATE, payload, now)
    uow.outbox.add(JOB_EMAIL, {**payload, "template": "confirmed"}, now)
    remind_at = booking.start - timedelta(hours=rules.reminder_hours_before)
    if remind_at > now:
        uow.outbox.add(JOB_EMAIL, {**payload, "template": "reminder"}, remind_at)


def _apply_refund_event(event: PaymentEvent, uow: UnitOfWork, now: datetime) -> str:
    if not event.payment_intent_id:
        return PaymentOutcome.IGNORED
    booking = uow.bookings.get_by_payment_intent(event.payment_intent_id)
    if booking is None or booking.refund is None:
        return PaymentOutcome.IGNORED
    status = {
        "succeeded": RefundStatus.SUCCEEDED,
        "failed": RefundStatus.FAILED,
        "canceled": RefundStatus.FAILED,
    }.get(event.refund_status or "")
    if event.type == PaymentEventType.CHARGE_REFUNDED:
        status = RefundStatus.SUCCEEDED
    if event.type == PaymentEventType.REFUND_FAILED:
        status = RefundStatus.FAILED
    if status is None or booking.refund.status is status:
        return PaymentOutcome.IGNORED
    booking.refund = attrs.evolve(
        booking.refund, status=status, provider_id=event.refund_id or booking.refund.provider_id
    )
    booking.touch(now)
    uow.bookings.save(booking)
    return PaymentOutcome.REFUND_UPDATED


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
        booking.transition_to(BookingStatus.CANCELLED, at=now)
        booking.cancel_reason = "cancelled by the practitioner in the external calendar"
        payload = {"booking_id": booking.id}
        if was is BookingStatus.CONFIRMED and booking.payment_intent_id:
            booking.refund = Refund(
                amount=booking.price, status=RefundStatus.PENDING, reason="practitioner_cancelled"
            )
            uow.outbox.add(JOB_REFUND, payload, now)
            uow.outbox.add(JOB_EMAIL, {**payload, "template": "cancelled"}, now)
        if was is BookingStatus.PENDING and booking.checkout_session_id:
            uow.outbox.add(
                JOB_EXPIRE_CHECKOUT, {**payload, "session_id": booking.checkout_session_id}, now
            )
        uow.bookings.save(booking)
        uow.commit()
    calendar.invalidate(booking.practitioner_id)
    return PaymentOutcome.CANCELLED


# -- refunds, cancellation, rescheduling ---------------------------------------------------------


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
                stored.refund = attrs.evolve(stored.refund, attempts=stored.refund.attempts + 1)
                stored.touch(clock.now())
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
        stored.refund = attrs.evolve(
            refund, status=status, provider_id=result.id, attempts=refund.attempts + 1
        )
        stored.touch(clock.now())
        uow.bookings.save(stored)
        uow.commit()
    return stored.refund


@frozen
class CancelBooking:
    booking_id: int
    reason: str = ""
    by_admin: bool = False
    refund_override: bool | None = None  # admins only: force a full refund or none


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
) -> Cancelled:
    """Cancel a pending or confirmed booking and refund per the policy.

    The cancellation commits first (with the refund marked PENDING), then the refund is asked
    for; if the provider fails the booking stays cancelled and the worker retries the refund.
    Raises BookingNotFound, InvalidTransition.
    """
    if cmd.refund_override is not None and not cmd.by_admin:
        raise ValidationFailed("only admins can override the refund policy")
    now = clock.now()
    with uow:
        booking = _get(uow, cmd.booking_id)
        was = booking.status
        booking.transition_to(BookingStatus.CANCELLED, at=now)
        booking.cancel_reason = cmd.reason
        payload = {"booking_id": booking.id}
        if was is BookingStatus.CONFIRMED and booking.payment_intent_id:
            amount = rules.refund_for_cancellation(booking, now, override=cmd.refund_override)
            if amount.amount > 0:
                booking.refund = Refund(
                    amount=amount, status=RefundStatus.PENDING, reason="cancelled"
                )
                uow.outbox.add(JOB_REFUND, payload, now + timedelta(minutes=1))
        if was is BookingStatus.PENDING and booking.checkout_session_id:
            uow.outbox.add(
                JOB_EXPIRE_CHECKOUT, {**payload, "session_id": booking.checkout_session_id}, now
            )
        if booking.calendar_uid:
            uow.outbox.add(JOB_CALENDAR_CANCEL, {**payload, "uid": booking.calendar_uid}, now)
        if was is BookingStatus.CONFIRMED:
            uow.outbox.add(JOB_EMAIL, {**payload, "template": "cancelled"}, now)
        uow.bookings.save(booking)
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
    (wrong state or already started), OutsideAvailability, SlotUnavailable.
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
    if not _is_offered(practitioner, service, new_start, now, calendar):
        raise OutsideAvailability(f"{new_start.isoformat()} is not an offered start")
    with uow:
        occupied = _occupied_around(uow, practitioner, service, new_start, ignore=booking.id)
    if _is_taken(service, new_start, occupied):
        raise SlotUnavailable(f"{new_start.isoformat()} is already taken")
    with uow:
        booking = _get(uow, cmd.booking_id)
        if not booking.occupies_calendar:
            raise InvalidTransition(f"a {booking.status.value} booking cannot be rescheduled")
        booking.start, booking.end = new_start, new_start + (booking.end - booking.start)
        booking.touch(now)
        uow.bookings.save(booking)  # the no-overlap rule has the last word
        if booking.calendar_uid:
            uow.outbox.add(
                JOB_CALENDAR_RESCHEDULE,
                {"booking_id": booking.id, "uid": booking.calendar_uid, "reason": cmd.reason},
                now,
            )
        if booking.status is BookingStatus.CONFIRMED:
            uow.outbox.add(JOB_EMAIL, {"booking_id": booking.id, "template": "rescheduled"}, now)
        uow.commit()
    calendar.invalidate(booking.practitioner_id)
    return booking


# -- housekeeping --------------------------------------------------------------------------------


def expire_stale_holds(
    *,
    uow: UnitOfWork,
    payments: PaymentGateway,
    calendar: CalendarGateway,
    clock: Clock,
    limit: int = 100,
) -> int:
    """Release pending bookings whose hold ran out; returns how many were released.

    The checkout is expired first so it can no longer be paid; if the provider says it was
    completed meanwhile, the booking is left for the payment webhook to confirm.
    """
    now = clock.now()
    with uow:
        holds = uow.bookings.list_expired_holds(now, limit)
    released = 0
    for hold in holds:
        if hold.checkout_session_id:
            try:
                state = payments.expire_checkout(hold.checkout_session_id)
            except PaymentFailed as exc:
                log.warning("could not expire checkout of booking %s yet: %s", hold.id, exc)
                continue
            if state is CheckoutState.COMPLETE:
                continue
        with uow:
            booking = _get(uow, _id(hold))
            if booking.status is not BookingStatus.PENDING:
                continue
            booking.transition_to(BookingStatus.EXPIRED, at=now)
            booking.cancel_reason = "hold expired"
            uow.bookings.save(booking)
            uow.commit()
        calendar.invalidate(booking.practitioner_id)
        released += 1
    return released


def complete_finished_bookings(*, uow: UnitOfWork, clock: Clock, limit: int = 100) -> int:
    """Mark confirmed bookings whose end has passed as completed; returns how many.

    A booking that changed meanwhile (ConcurrentUpdate) is left for the next pass.
    """
    now = clock.now()
    with uow:
        candidates = uow.bookings.list(
            BookingFilter(status=BookingStatus.CONFIRMED, start_to=now, limit=limit)
        )
    done = 0
    for candidate in candidates:
        if candidate.end > now:
            continue
        with uow:
            booking = _get(uow, _id(candidate))
            if booking.status is not BookingStatus.CONFIRMED:
                continue
            booking.transition_to(BookingStatus.COMPLETED, at=now)
            try:
                uow.bookings.save(booking)
                uow.commit()
            except ConcurrentUpdate:
                continue
        done += 1
    return done
