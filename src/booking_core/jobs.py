"""Background jobs from the outbox: emails, calendar sync, refunds, checkout expiry, retried.

The worker entrypoint calls ``run_due_jobs`` in a loop; several workers on several machines can
run it at once because claiming a job locks it (SKIP LOCKED in PostgreSQL).
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from attrs import frozen

from booking_core.errors import BookingError, CalendarSlotTaken
from booking_core.model import Booking, BookingStatus, Practitioner
from booking_core.notifications import (
    NotificationKind,
    RecipientRole,
    notification_for,
    still_relevant,
)
from booking_core.policy import BookingRules
from booking_core.ports import (
    CalendarBookingRequest,
    CalendarGateway,
    Clock,
    Notifier,
    PaymentGateway,
    UnitOfWork,
)

log = logging.getLogger(__name__)


class JobKind(enum.StrEnum):
    """What an outbox job does; each kind has its handler at the end of this module."""

    EMAIL = "email"
    CALENDAR_CREATE = "calendar.create"
    CALENDAR_CANCEL = "calendar.cancel"
    CALENDAR_RESCHEDULE = "calendar.reschedule"
    REFUND = "payment.refund"
    EXPIRE_CHECKOUT = "payment.expire_checkout"
    ABANDON_CHECKOUT = "payment.abandon_checkout"  # a released hold's checkout, if one was made
    CALENDAR_MOVED = "calendar.moved"  # moved in Cal.com to a time taken here: parks for an admin
    MANAGE_LINKS = "email.manage_links"  # a client asked for their links: one mail per booking


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    PARKED = "parked"  # failed too often; kept and shown to admins, never dropped


@frozen
class Job:
    """A background job from the transactional outbox (see ports.Outbox)."""

    id: int | None
    kind: str
    payload: Mapping[str, Any]
    run_at: datetime
    attempts: int = 0
    status: JobStatus = JobStatus.PENDING
    last_error: str = ""
    created_at: datetime | None = None
    unique_key: str | None = None  # at most one job per key (e.g. one refund per booking)


@frozen
class RetryPolicy:
    """Exponential backoff with full jitter: a random wait in [0, min(cap, base * 2**attempt)]."""

    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=1)
    max_attempts: int = 8

    def next_run(self, now: datetime, attempts: int, rng: random.Random | None = None) -> datetime:
        ceiling = min(self.cap, self.base * (2 ** max(attempts - 1, 0)))
        jitter = (rng or random).uniform(0, ceiling.total_seconds())
        # Never sooner than a second: a job that fails at once must not spin.
        return now + timedelta(seconds=max(1.0, jitter))


@frozen
class JobContext:
    uow: UnitOfWork
    payments: PaymentGateway
    calendar: CalendarGateway
    notifier: Notifier
    clock: Clock
    rules: BookingRules


class PermanentJobError(BookingError):
    """Retrying will not help (e.g. the calendar slot is taken): park the job at once."""

    code = "job_failed_permanently"
    title = "Background job failed permanently"


JOB_LEASE_SECONDS = 30

KeepAlive = Callable[[Job, datetime], AbstractContextManager[object]]
"""``keep_alive(job, leased_until)``: a context that renews the job's lease while it runs."""


def run_due_jobs(
    ctx: JobContext,
    *,
    retry: RetryPolicy | None = None,
    limit: int = 10,
    lease_seconds: int = JOB_LEASE_SECONDS,
    keep_alive: KeepAlive | None = None,
) -> dict[str, int]:
    """Claim and run up to ``limit`` due jobs, one at a time; returns counts of done, retried
    and parked jobs.

    Each job is claimed alone for ``lease_seconds`` just before it runs, and ``keep_alive``
    (the worker's heartbeat) renews that lease while it runs: a worker that dies delays only
    the job it was running, by at most the lease, and the jobs behind it stay free for others.
    A failing job is retried with backoff and parked after ``max_attempts``; a parked job keeps
    its last error for admins and is never dropped.
    """
    retry = retry or RetryPolicy()
    counts = {"done": 0, "retried": 0, "parked": 0}
    for _ in range(limit):
        now = ctx.clock.now()
        with ctx.uow:
            claimed = ctx.uow.outbox.claim_due(now, 1, lease_seconds)
            ctx.uow.commit()
        if not claimed:
            break
        job = claimed[0]
        job_id = job.id or 0
        try:
            if keep_alive is None:
                run_job(job, ctx)
            else:
                with keep_alive(job, now + timedelta(seconds=lease_seconds)):
                    run_job(job, ctx)
        except Exception as exc:  # any failure is recorded on the job, never lost
            error = f"{type(exc).__name__}: {exc}"[:1000]
            attempts = job.attempts + 1
            with ctx.uow:
                if isinstance(exc, PermanentJobError) or attempts >= retry.max_attempts:
                    ctx.uow.outbox.park(job_id, error=error)
                    counts["parked"] += 1
                    log.error("job %s (%s) parked: %s", job_id, job.kind, error)
                else:
                    ctx.uow.outbox.retry(
                        job_id, error=error, run_at=retry.next_run(ctx.clock.now(), attempts)
                    )
                    counts["retried"] += 1
                    log.warning("job %s (%s) failed, will retry: %s", job_id, job.kind, error)
                ctx.uow.commit()
            continue
        with ctx.uow:
            ctx.uow.outbox.complete(job_id)
            ctx.uow.commit()
        counts["done"] += 1
    return counts


def run_job(job: Job, ctx: JobContext) -> None:
    """Run one job; raises on failure (the caller decides between retry and park)."""
    handler = _HANDLERS.get(job.kind)
    if handler is None:
        raise PermanentJobError(f"unknown job kind {job.kind!r}")
    handler(job.payload, ctx)


def _load(ctx: JobContext, booking_id: int) -> tuple[Booking, Practitioner] | None:
    with ctx.uow:
        booking = ctx.uow.bookings.get(booking_id)
        practitioner = (
            ctx.uow.practitioners.get(booking.practitioner_id) if booking is not None else None
        )
    if booking is None or practitioner is None:
        return None
    return booking, practitioner


def _refund(payload: Mapping[str, Any], ctx: JobContext) -> None:
    # Imported here: the use cases import JobKind from this module.
    from booking_core.usecases.payments import issue_refund

    issue_refund(int(payload["booking_id"]), uow=ctx.uow, payments=ctx.payments, clock=ctx.clock)


def _abandon_checkout(payload: Mapping[str, Any], ctx: JobContext) -> None:
    from booking_core.usecases.housekeeping import abandon_checkout

    abandon_checkout(
        int(payload["booking_id"]),
        uow=ctx.uow,
        payments=ctx.payments,
        calendar=ctx.calendar,
        clock=ctx.clock,
        rules=ctx.rules,
    )


def _expire_checkout(payload: Mapping[str, Any], ctx: JobContext) -> None:
    ctx.payments.expire_checkout(str(payload["session_id"]))


def _calendar_create(payload: Mapping[str, Any], ctx: JobContext) -> None:
    loaded = _load(ctx, int(payload["booking_id"]))
    if loaded is None:
        return
    booking, practitioner = loaded
    if booking.status is not BookingStatus.CONFIRMED or booking.calendar_uid:
        return  # cancelled meanwhile, or already synced by an earlier attempt
    link = ctx.calendar.link_for(practitioner)
    if link is None:
        return
    try:
        uid = ctx.calendar.create_booking(
            CalendarBookingRequest(
                link=link,
                booking_id=booking.id or 0,
                start=booking.start,
                end=booking.end,
                client=booking.client,
                # The attendee's zone: the client's, captured at booking, else the practitioner's.
                timezone=booking.client.timezone or practitioner.timezone,
            )
        )
    except CalendarSlotTaken as exc:
        raise PermanentJobError(
            f"Cal.com refused paid booking {booking.id} at {booking.start.isoformat()}: "
            f"the time is taken there ({exc}); an admin must resolve it"
        ) from exc
    _store_uid(ctx, booking.id or 0, uid)


def _store_uid(ctx: JobContext, booking_id: int, uid: str) -> None:
    with ctx.uow:
        stored = ctx.uow.bookings.get(booking_id)
        if stored is None:
            return
        stored.sync_calendar(uid, at=ctx.clock.now())
        ctx.uow.bookings.save(stored)
        ctx.uow.commit()
    ctx.calendar.invalidate(stored.practitioner_id)


def _calendar_cancel(payload: Mapping[str, Any], ctx: JobContext) -> None:
    ctx.calendar.cancel_booking(str(payload["uid"]), "Cancelled through the booking service")


def _calendar_reschedule(payload: Mapping[str, Any], ctx: JobContext) -> None:
    loaded = _load(ctx, int(payload["booking_id"]))
    if loaded is None:
        return
    booking, _ = loaded
    if not booking.occupies_calendar or booking.calendar_uid != payload["uid"]:
        return
    try:
        uid = ctx.calendar.reschedule_booking(
            str(payload["uid"]), booking.start, str(payload.get("reason") or "Rescheduled")
        )
    except CalendarSlotTaken as exc:
        raise PermanentJobError(
            f"Cal.com refused to move booking {booking.id} to {booking.start.isoformat()}: {exc}"
        ) from exc
    _store_uid(ctx, booking.id or 0, uid)


def _email(payload: Mapping[str, Any], ctx: JobContext) -> None:
    loaded = _load(ctx, int(payload["booking_id"]))
    if loaded is None:
        return
    booking, practitioner = loaded
    try:
        kind = NotificationKind(str(payload["template"]))
        # Jobs queued before mails had one job per recipient went to the client only.
        role = RecipientRole(str(payload.get("to") or RecipientRole.CLIENT))
    except ValueError as exc:
        raise PermanentJobError(f"unknown email job {dict(payload)!r}") from exc
    start = payload.get("start")
    if not still_relevant(kind, booking, str(start) if start is not None else None):
        return  # cancelled or moved before the mail went out: say nothing stale
    note = notification_for(kind, booking, practitioner, (role,), link_secret=ctx.rules.link_secret)
    if not all(r.email for r in note.recipients):
        log.info("booking %s: no address to tell the %s; mail skipped", booking.id, role.value)
        return  # a practitioner without an email address: nobody to send to, nothing to retry
    ctx.notifier.notify(note)


def _calendar_moved(payload: Mapping[str, Any], ctx: JobContext) -> None:
    from booking_core.usecases.cancellation import apply_calendar_move

    booking_id = int(payload["booking_id"])
    start = datetime.fromisoformat(str(payload["start"]))
    try:
        apply_calendar_move(
            booking_id,
            str(payload["uid"]),
            start,
            uow=ctx.uow,
            calendar=ctx.calendar,
            clock=ctx.clock,
            rules=ctx.rules,
        )
    except BookingError as exc:
        raise PermanentJobError(
            f"booking {booking_id} was moved in Cal.com to {start.isoformat()}, which cannot be "
            f"taken here ({exc.code}: {exc}); an admin must move or cancel one of the bookings "
            "(retrying this job tries the move again)"
        ) from exc


def _manage_links(payload: Mapping[str, Any], ctx: JobContext) -> None:
    from booking_core.usecases.recovery import send_manage_links

    send_manage_links(str(payload["email"]), uow=ctx.uow, clock=ctx.clock)


_HANDLERS: dict[str, Callable[[Mapping[str, Any], JobContext], None]] = {
    JobKind.REFUND: _refund,
    JobKind.EXPIRE_CHECKOUT: _expire_checkout,
    JobKind.ABANDON_CHECKOUT: _abandon_checkout,
    JobKind.CALENDAR_CREATE: _calendar_create,
    JobKind.CALENDAR_CANCEL: _calendar_cancel,
    JobKind.CALENDAR_RESCHEDULE: _calendar_reschedule,
    JobKind.EMAIL: _email,
    JobKind.MANAGE_LINKS: _manage_links,
    JobKind.CALENDAR_MOVED: _calendar_moved,
}
