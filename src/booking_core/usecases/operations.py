"""What operators watch: bookings and outbox jobs by status, and how late the oldest due job is."""

from __future__ import annotations

from attrs import frozen

from booking_core.jobs import JobStatus
from booking_core.model import BookingStatus
from booking_core.ports import Clock, UnitOfWork


@frozen(kw_only=True)
class OperationalCounts:
    """Counts for every status (zero where there is none), and ``oldest_due_seconds``: how long
    the earliest due pending job has waited past its run time (0 when nothing is due)."""

    bookings: dict[BookingStatus, int]
    jobs: dict[JobStatus, int]
    oldest_due_seconds: float


def operational_counts(*, uow: UnitOfWork, clock: Clock) -> OperationalCounts:
    """Read the counts in one read-only transaction. Raises ExternalServiceError (database)."""
    now = clock.now()
    with uow:
        bookings = uow.bookings.count_by_status()
        jobs = uow.outbox.count_by_status()
        oldest = uow.outbox.oldest_due(now)
    return OperationalCounts(
        bookings={status: bookings.get(status, 0) for status in BookingStatus},
        jobs={status: jobs.get(status, 0) for status in JobStatus},
        oldest_due_seconds=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
    )
