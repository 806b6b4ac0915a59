"""Approval use cases: a booking of a service that requires confirmation waits, unpaid, for the
practitioner to approve it (then it is paid as usual) or decline it; nobody acting in time
expires it."""

from __future__ import annotations

import logging

from attrs import frozen

from booking_core.access import Actor
from booking_core.errors import InvalidTransition
from booking_core.jobs import JobKind
from booking_core.model import Booking, BookingStatus
from booking_core.notifications import NotificationKind, enqueue_notification
from booking_core.policy import BookingRules
from booking_core.ports import CalendarGateway, Clock, PaymentGateway, UnitOfWork
from booking_core.usecases._shared import _get, _id, _practitioner_and_service
from booking_core.usecases.admin import _booking, booking_snapshot, record
from booking_core.usecases.booking import checkout_request

log = logging.getLogger(__name__)


@frozen
class Approved:
    booking: Booking
    checkout_url: str


def approve_booking(
    booking_id: int,
    *,
    actor: Actor,
    uow: UnitOfWork,
    payments: PaymentGateway,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules,
    request_id: str | None = None,
) -> Approved:
    """The practitioner approves: the booking becomes a pending hold with a checkout, and the
    client is sent the checkout link (an outbox email, template ``approved``).

    The checkout is made first, for a hold counted from now; the approval and the checkout are
    then stored together, so a provider failure leaves the booking awaiting approval (approve
    again). An admin, or the booking's practitioner, may approve (``actor``); the change is
    audited. Raises Forbidden, BookingNotFound (also another practitioner's), InvalidTransition
    (not awaiting approval, or it changed meanwhile: the checkout made is then expired by a
    job), PaymentUnavailable.
    """
    now = clock.now()
    with uow:
        booking = _booking(uow, actor, booking_id)
        if booking.status is not BookingStatus.AWAITING_APPROVAL:
            raise InvalidTransition(
                f"booking {booking_id} is {booking.status.value}, not awaiting approval"
            )
        practitioner, service = _practitioner_and_service(
            uow, booking.practitioner_id, booking.service_id
        )
    booking.approve(at=now, hold_until=rules.hold_expiry(now))
    session = payments.create_checkout(checkout_request(booking, practitioner, service, rules))
    with uow:
        stored = _get(uow, booking_id)
        if stored.status is not BookingStatus.AWAITING_APPROVAL:
            uow.outbox.add(
                JobKind.EXPIRE_CHECKOUT, {"booking_id": booking_id, "session_id": session.id}, now
            )
            uow.commit()
            raise InvalidTransition(
                f"booking {booking_id} is {stored.status.value}, not awaiting approval"
            )
        before = booking_snapshot(stored)
        stored.approve(at=now, hold_until=rules.hold_expiry(now))
        stored.attach_checkout(session.id, at=now)
        uow.bookings.save(stored)
        record(
            uow,
            actor=actor,
            at=now,
            action="booking.approve",
            object_type="booking",
            object_id=booking_id,
            before=before,
            after=booking_snapshot(stored),
            request_id=request_id,
        )
        enqueue_notification(
            uow, NotificationKind.APPROVED, stored, now, extra={"checkout_url": session.url}
        )
        uow.commit()
    calendar.invalidate(stored.practitioner_id)
    return Approved(booking=stored, checkout_url=session.url)


def decline_booking(
    booking_id: int,
    reason: str = "",
    *,
    actor: Actor,
    uow: UnitOfWork,
    calendar: CalendarGateway,
    clock: Clock,
    request_id: str | None = None,
) -> Booking:
    """The practitioner (or an admin) declines: the booking is cancelled (nothing was paid,
    nothing is refunded), its slot is free, and the client is told (an outbox email, template
    ``declined``); the change is audited. Raises Forbidden, BookingNotFound (also another
    practitioner's), InvalidTransition (not awaiting approval)."""
    now = clock.now()
    with uow:
        booking = _booking(uow, actor, booking_id)
        before = booking_snapshot(booking)
        booking.decline(reason or "declined by the practitioner", at=now)
        uow.bookings.save(booking)
        record(
            uow,
            actor=actor,
            at=now,
            action="booking.decline",
            object_type="booking",
            object_id=booking_id,
            before=before,
            after=booking_snapshot(booking),
            request_id=request_id,
        )
        enqueue_notification(uow, NotificationKind.DECLINED, booking, now)
        uow.commit()
    calendar.invalidate(booking.practitioner_id)
    return booking


def expire_unapproved(
    *, uow: UnitOfWork, calendar: CalendarGateway, clock: Clock, limit: int = 100
) -> int:
    """Expire the bookings nobody approved or declined by their deadline, telling each client
    (an outbox email, template ``approval_expired``); returns how many."""
    now = clock.now()
    with uow:
        due = uow.bookings.list_expired_holds(now, limit, status=BookingStatus.AWAITING_APPROVAL)
    expired = 0
    for found in due:
        with uow:
            booking = _get(uow, _id(found))
            if booking.status is not BookingStatus.AWAITING_APPROVAL:
                continue  # approved or declined meanwhile
            booking.expire("nobody approved it in time", at=now)
            uow.bookings.save(booking)
            enqueue_notification(uow, NotificationKind.APPROVAL_EXPIRED, booking, now)
            uow.commit()
        expired += 1
        calendar.invalidate(booking.practitioner_id)
    return expired
