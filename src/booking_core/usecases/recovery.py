"""A client who lost their manage link asks for it again by email: the links go out by mail,
and the answer never says whether the address has bookings."""

from __future__ import annotations

import hashlib
from datetime import datetime

from booking_core.jobs import JobKind
from booking_core.model import BookingStatus
from booking_core.notifications import NotificationKind, enqueue_notification
from booking_core.ports import BookingFilter, Clock, UnitOfWork

MAX_LINKS = 20  # upcoming bookings mailed per request; more is not a client, it is a script


def _address_key(email: str) -> str:
    # The outbox key names no address: hashed, so a job list never shows one.
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def _hour(now: datetime) -> str:
    return now.strftime("%Y%m%d%H")


def request_manage_links(email: str, *, uow: UnitOfWork, clock: Clock) -> bool:
    """Queue the mailing of ``email``'s manage links; the same work whether or not it has
    bookings (one job, no lookup here), so neither the answer nor its timing tells.

    At most one request per address per clock hour is queued (a unique job): asking again
    within the hour mails nothing more. Returns whether this call queued it (for logs and
    tests; never for the answer).
    """
    now = clock.now()
    with uow:
        queued = uow.outbox.add(
            JobKind.MANAGE_LINKS,
            {"email": email.strip()},
            now,
            unique_key=f"links:{_address_key(email)}:{_hour(now)}",
        )
        uow.commit()
    return queued


def send_manage_links(email: str, *, uow: UnitOfWork, clock: Clock) -> int:
    """The worker's half: one mail job per upcoming booking (pending or confirmed, not yet
    started) of ``email``, ignoring case; returns how many were queued."""
    now = clock.now()
    with uow:
        upcoming = [
            booking
            for status in (BookingStatus.CONFIRMED, BookingStatus.PENDING)
            for booking in uow.bookings.list(
                BookingFilter(status=status, start_from=now, client_email=email, limit=MAX_LINKS)
            )
        ][:MAX_LINKS]
        for booking in upcoming:
            enqueue_notification(
                uow,
                NotificationKind.MANAGE_LINK,
                booking,
                now,
                unique_suffix=f"{_address_key(email)}:{_hour(now)}",
            )
        uow.commit()
    return len(upcoming)
