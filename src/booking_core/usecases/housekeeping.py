"""Housekeeping use cases run by the worker: expire stale holds, complete past bookings."""

from __future__ import annotations

import logging

from booking_core.errors import (
    ConcurrentUpdate,
    PaymentFailed,
)
from booking_core.model import (
    BookingStatus,
)
from booking_core.ports import (
    BookingFilter,
    CalendarGateway,
    CheckoutState,
    Clock,
    PaymentGateway,
    UnitOfWork,
)
from booking_core.usecases._shared import _get, _id

log = logging.getLogger(__name__)


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
