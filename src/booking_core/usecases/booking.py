"""Booking use cases: hold a slot and open its checkout; read bookings."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from attrs import field, frozen

from booking_core.errors import (
    BookingError,
    BookingNotFound,
    ConcurrentUpdate,
    DuplicateRequest,
    LimitReached,
    OutsideAvailability,
    PaymentFailed,
    PaymentUnavailable,
    RequestInProgress,
)
from booking_core.jobs import JobKind
from booking_core.model import (
    Booking,
    BookingStatus,
    Client,
    Practitioner,
    Service,
)
from booking_core.notifications import NotificationKind, enqueue_notification, link_token_matches
from booking_core.policy import BookingRules, new_manage_token, token_matches
from booking_core.ports import (
    BookingFilter,
    CalendarGateway,
    CheckoutRequest,
    CheckoutSession,
    Clock,
    IdempotencyRecord,
    PaymentGateway,
    UnitOfWork,
)
from booking_core.usecases._shared import _aware_utc, _get, _id, _practitioner_and_service
from booking_core.usecases.availability import (
    _fill_busy,
    _is_offered,
    _within_limits,
)

log = logging.getLogger(__name__)


@frozen
class RequestBooking:
    practitioner_id: int
    service_id: int
    start: datetime
    client: Client
    notes: str = ""


@frozen
class BookingRequested:
    """A held booking; ``checkout_url`` is None while it awaits the practitioner's approval."""

    booking: Booking
    checkout_url: str | None
    manage_token: str = field(repr=False)


# How long an unfinished request holds its Idempotency-Key: past it, a retry starts again.
IDEMPOTENCY_LEASE = timedelta(seconds=30)


@frozen
class IdempotencyClaim:
    """A request_booking run under an Idempotency-Key its caller claimed (claim_idempotency_key).

    ``answer`` turns the result into the stored answer (response body, sealed one-time secret);
    it is stored in the transaction that stores the checkout, so the two never part.
    """

    key: str
    answer: Callable[[BookingRequested], tuple[Mapping[str, Any], str | None]] = field(repr=False)
    fingerprint: str = ""  # of the request: the same key with another request is refused


def claim_idempotency_key(
    key: str, fingerprint: str, *, uow: UnitOfWork, calendar: CalendarGateway, clock: Clock
) -> IdempotencyRecord | None:
    """Claim ``key`` for a booking request; None when the caller may run it now.

    A key whose first request died (unfinished, its lease run out) is taken over: the hold that
    request left without a checkout is released in the same transaction (its checkout, if the
    provider made one, is expired by a job), so the retry finds the slot free. Returns the
    stored record when the first request finished (to answer the same again). Raises
    DuplicateRequest (same key, other request), RequestInProgress (first one still running).
    """
    with uow:
        existing, released = _claim(uow, key, fingerprint, clock.now())
        uow.commit()
    if released is not None:
        calendar.invalidate(released)
    return existing


def _claim(
    uow: UnitOfWork, key: str, fingerprint: str, now: datetime
) -> tuple[IdempotencyRecord | None, int | None]:
    """claim_idempotency_key inside the caller's transaction; also returns the practitioner of
    a hold it released (for the calendar cache)."""
    existing = uow.idempotency.reserve(
        IdempotencyRecord(
            key=key,
            fingerprint=fingerprint,
            created_at=now,
            lease_expires_at=now + IDEMPOTENCY_LEASE,
        )
    )
    if existing is None:
        return None, None
    if existing.fingerprint != fingerprint:
        raise DuplicateRequest("this Idempotency-Key was used for a different request")
    if existing.status_code is not None and existing.response is not None:
        return existing, None
    lease = existing.lease_expires_at or existing.created_at + IDEMPOTENCY_LEASE
    if lease > now or not uow.idempotency.take_over(key, now, now + IDEMPOTENCY_LEASE):
        raise RequestInProgress("the first request with this key is still running")
    if existing.booking_id is None:
        return None, None
    return None, _abandon_hold(uow, existing.booking_id, now)


def _abandon_hold(uow: UnitOfWork, booking_id: int, now: datetime) -> int | None:
    orphan = uow.bookings.get(booking_id)
    if (
        orphan is None
        or orphan.status is not BookingStatus.PENDING
        or orphan.checkout_session_id is not None
    ):
        return None
    orphan.expire("its request died before the checkout; the client retried", at=now)
    uow.bookings.save(orphan)
    uow.outbox.add(JobKind.ABANDON_CHECKOUT, {"booking_id": booking_id}, now)
    return orphan.practitioner_id


def release_idempotency_key(key: str, *, uow: UnitOfWork) -> None:
    """Give up a claimed key whose request failed, so that the client may retry it."""
    with uow:
        uow.idempotency.release(key)
        uow.commit()


def request_booking(
    cmd: RequestBooking,
    *,
    uow: UnitOfWork,
    payments: PaymentGateway,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules,
    idempotency: IdempotencyClaim | None = None,
) -> BookingRequested:
    """Hold the slot as a pending booking, then open a checkout for it.

    For a service that requires confirmation the booking is held as awaiting_approval, with no
    checkout (``checkout_url`` None), until the practitioner approves (approve_booking) or
    declines it, or the approval deadline passes (BookingRules.approval_deadline).

    With ``idempotency`` (a key claimed by claim_idempotency_key) the hold is noted on the key's
    record and the answer is stored with the checkout, in the same transactions.

    The hold is committed before the payment provider is called, so the slot is taken at once;
    if the provider fails the hold is released (status expired) and PaymentUnavailable raised.
    Raises ValidationFailed (a start without a UTC offset), PractitionerNotFound,
    ServiceNotFound, OutsideAvailability (not an offered start), SlotUnavailable (someone holds
    it), LimitReached (a daily or weekly booking limit is full), PaymentUnavailable.
    """
    result = _request(cmd, uow, payments, calendar, clock, rules, idempotency, claim=False)
    assert isinstance(result, BookingRequested)
    return result


def request_booking_once(
    cmd: RequestBooking,
    claim: IdempotencyClaim,
    *,
    uow: UnitOfWork,
    payments: PaymentGateway,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules,
) -> BookingRequested | IdempotencyRecord:
    """request_booking under an Idempotency-Key, claimed in the same transaction that reads the
    practitioner: the stored record when the key's first request finished (answer it again),
    else the new booking. Three transactions in all: claim and read; hold; checkout stored with
    the answer. Raises as request_booking and claim_idempotency_key; the key is released (the
    client may retry) when the booking fails.
    """
    try:
        return _request(cmd, uow, payments, calendar, clock, rules, claim, claim=True)
    except (DuplicateRequest, RequestInProgress):
        raise  # the key is another request's: leave it alone
    except BookingError:
        release_idempotency_key(claim.key, uow=uow)
        raise


def _request(
    cmd: RequestBooking,
    uow: UnitOfWork,
    payments: PaymentGateway,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules,
    idempotency: IdempotencyClaim | None,
    *,
    claim: bool,
) -> BookingRequested | IdempotencyRecord:
    now = clock.now()
    start = _aware_utc(cmd.start, "start")
    released: int | None = None
    with uow:
        if claim and idempotency is not None:
            answered, released = _claim(uow, idempotency.key, idempotency.fingerprint, now)
            if answered is not None:
                return answered
        try:
            practitioner, service = _practitioner_and_service(
                uow, cmd.practitioner_id, cmd.service_id, max_age=rules.schedule_cache_seconds
            )
            busy = _fill_busy(uow, practitioner, service, start)
        finally:
            uow.commit()  # the claim stands even when the request is refused (then released)
    if released is not None:
        calendar.invalidate(released)
    if not _is_offered(practitioner, service, start, now, calendar, busy):
        raise OutsideAvailability(f"{start.isoformat()} is not an offered start for this service")

    token, token_hash = new_manage_token()
    # The hold (and the checkout's expires_at, the same instant) counts from now, just before
    # the checkout call, not from the start of the request: Stripe refuses an expires_at less
    # than 30 minutes ahead, and the checks above may have waited on the calendar.
    held_at = clock.now()
    approval = service.requires_confirmation
    booking = Booking.hold(
        practitioner_id=cmd.practitioner_id,
        service=service,
        client=cmd.client,
        start=start,
        at=held_at,
        hold_until=(
            rules.approval_deadline(held_at, start) if approval else rules.hold_expiry(held_at)
        ),
        manage_token_hash=token_hash,
        notes=cmd.notes,
        awaiting_approval=approval,
    )
    with uow:
        if practitioner.limits.any or service.limits.any:
            # Counted under the practitioner's lock: concurrent holds count one after another.
            uow.practitioners.lock(cmd.practitioner_id)
            if not _within_limits(uow, practitioner, service, start):
                raise LimitReached("the practitioner takes no more bookings that day or week")
        # SlotUnavailable if someone was faster; the hold is the unit's last write unless the
        # idempotency key's record notes it.
        booking = uow.bookings.add(booking, commit=idempotency is None)
        if idempotency is not None:
            uow.idempotency.attach(idempotency.key, _id(booking))
            uow.commit()
    calendar.invalidate(cmd.practitioner_id)
    booking_id = _id(booking)
    if approval:
        # No charge until the practitioner approves (approve_booking opens the checkout then).
        return _store_awaiting(booking_id, token, uow, clock, idempotency)

    try:
        session = payments.create_checkout(checkout_request(booking, practitioner, service, rules))
    except PaymentFailed:
        _release_hold(booking_id, uow=uow, clock=clock, reason="payment provider unavailable")
        calendar.invalidate(cmd.practitioner_id)
        raise

    try:
        return _store_checkout(booking, session, token, uow, clock, idempotency)
    except Exception:
        # Storing failed (the database): give the slot back now if the database lets us; else
        # the reconciler does within a minute, and expires the session.
        try:
            _release_hold(booking_id, uow=uow, clock=clock, reason="the checkout was not stored")
        except Exception as exc:  # the first error is the one to report
            log.warning("hold %s left for the reconciler: %s", booking_id, exc)
        calendar.invalidate(cmd.practitioner_id)
        raise


def _store_checkout(
    held: Booking,
    session: CheckoutSession,
    token: str,
    uow: UnitOfWork,
    clock: Clock,
    idempotency: IdempotencyClaim | None,
) -> BookingRequested:
    """Note the checkout on the hold: one write at the version the hold was stored with; only
    when something changed the booking meanwhile is it read again."""
    booking_id = _id(held)
    last_write = idempotency is None  # else the key's record stores the answer after it
    with uow:
        held.attach_checkout(session.id, at=clock.now())
        try:
            uow.bookings.save(held, commit=last_write)
            stored = held
        except ConcurrentUpdate:
            stored = _get(uow, booking_id)
            if stored.status is not BookingStatus.PENDING:
                # The reconciler released the hold while the provider kept us waiting: the
                # session must not stay payable, and the client gets a clean failure to retry.
                uow.outbox.add(
                    JobKind.EXPIRE_CHECKOUT,
                    {"booking_id": booking_id, "session_id": session.id},
                    clock.now(),
                )
                uow.commit()
                raise PaymentUnavailable(
                    "the payment provider answered too late; please try again"
                ) from None
            stored.attach_checkout(session.id, at=clock.now())
            uow.bookings.save(stored, commit=last_write)
        result = BookingRequested(booking=stored, checkout_url=session.url, manage_token=token)
        if idempotency is not None:
            response, sealed = idempotency.answer(result)
            uow.idempotency.complete(idempotency.key, 201, response, sealed)
            uow.commit()
    return result


def _store_awaiting(
    booking_id: int,
    token: str,
    uow: UnitOfWork,
    clock: Clock,
    idempotency: IdempotencyClaim | None,
) -> BookingRequested:
    with uow:
        stored = _get(uow, booking_id)
        result = BookingRequested(booking=stored, checkout_url=None, manage_token=token)
        if idempotency is not None:
            response, sealed = idempotency.answer(result)
            uow.idempotency.complete(idempotency.key, 201, response, sealed)
        enqueue_notification(uow, NotificationKind.AWAITING_APPROVAL, stored, clock.now())
        uow.commit()
    return result


def checkout_request(
    booking: Booking, practitioner: Practitioner, service: Service, rules: BookingRules
) -> CheckoutRequest:
    """The checkout a hold asks for, built from what the hold stores only (its expiry counts
    from its creation, or its approval, which survive its release), so that asking again (the
    reconciler, after a crash) replays the provider's first answer for the same key."""
    booking_id = _id(booking)
    held_at = booking.approved_at or booking.created_at
    return CheckoutRequest(
        booking_id=booking_id,
        amount=booking.price,
        description=f"{service.name} with {practitioner.name}",
        customer_email=booking.client.email,
        expires_at=rules.hold_expiry(held_at),
        # Ids restart after a database reset and Stripe keeps keys for 24 h: the creation
        # instant keeps a reused id from replaying another booking's session.
        idempotency_key=f"checkout:{booking_id}:{int(held_at.timestamp() * 1e6)}",
    )


def _release_hold(booking_id: int, *, uow: UnitOfWork, clock: Clock, reason: str) -> None:
    with uow:
        booking = _get(uow, booking_id)
        if booking.status is BookingStatus.PENDING:
            booking.expire(reason, at=clock.now())
            uow.bookings.save(booking)
            # A call that failed (a timeout) may still have made a session: expire it later.
            uow.outbox.add(JobKind.ABANDON_CHECKOUT, {"booking_id": booking_id}, clock.now())
            uow.commit()


def authorize_booking(
    booking_id: int, token: str, *, uow: UnitOfWork, rules: BookingRules | None = None
) -> Booking:
    """The booking if ``token`` is its manage token, or the token of the manage link its mails
    carry (signed with ``rules.link_secret``); BookingNotFound otherwise (no probing ids)."""
    with uow:
        booking = uow.bookings.get(booking_id)
    if booking is None or not (
        token_matches(token, booking.manage_token_hash)
        or (rules is not None and link_token_matches(rules.link_secret, booking, token))
    ):
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
