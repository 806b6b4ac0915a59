"""The background worker: releases expired holds and runs outbox jobs (mail, Cal.com, refunds).

Run as many as you like (``booking worker``): jobs are claimed with row locks and leases, so each
runs once. ``booking serve`` runs one in a thread for development.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from booking_core import jobs, usecases
from booking_core.errors import ExternalServiceError, PaymentFailed
from booking_core.jobs import Job
from entrypoints.bootstrap import Deps

log = logging.getLogger("booking.worker")

IDEMPOTENCY_RETENTION = timedelta(hours=24)
OUTAGE_LOG_COOLDOWN = 60.0  # seconds between two log lines about the same outage


def heartbeat(deps: Deps, lease_seconds: int) -> jobs.KeepAlive:
    """A keep-alive for ``jobs.run_due_jobs``: renews a running job's lease every third of it.

    The renewal runs on its own thread with its own unit of work, so a handler that blocks on a
    slow provider keeps its job; when this process dies the renewals stop and the job is free
    again once the lease (seconds, not minutes) has run out.
    """

    @contextmanager
    def keep_alive(job: Job, leased_until: datetime) -> Iterator[object]:
        done = threading.Event()

        def renew() -> None:
            lease = leased_until
            while not done.wait(lease_seconds / 3):
                until = deps.clock.now() + timedelta(seconds=lease_seconds)
                try:
                    uow = deps.uow()
                    with uow:
                        renewed = uow.outbox.renew(job.id or 0, leased_until=lease, until=until)
                        uow.commit()
                except Exception as exc:  # the next beat tries again; the lease may lapse
                    log.warning("job %s: could not renew its lease: %s", job.id, _first_line(exc))
                    continue
                if not renewed:
                    log.warning("job %s: lease lost (taken over or finished)", job.id)
                    return
                lease = until

        beat = threading.Thread(target=renew, name=f"lease-{job.id}", daemon=True)
        beat.start()
        try:
            yield beat
        finally:
            done.set()
            beat.join()

    return keep_alive


def run_once(deps: Deps, *, batch: int = 20) -> dict[str, int]:
    """One pass: reconcile payments (expired and half-written holds, completed checkouts,
    missed webhooks), expire bookings nobody approved in time, run due jobs, complete past
    bookings, forget old idempotency answers;
    returns counts."""
    reconciled = usecases.reconcile_payments(
        uow=deps.uow(),
        payments=deps.payments,
        calendar=deps.calendar,
        clock=deps.clock,
        rules=deps.rules,
        limit=batch,
    )
    unapproved = usecases.expire_unapproved(
        uow=deps.uow(), calendar=deps.calendar, clock=deps.clock, limit=batch
    )
    ctx = jobs.JobContext(
        uow=deps.uow(),
        payments=deps.payments,
        calendar=deps.calendar,
        notifier=deps.notifier,
        clock=deps.clock,
        rules=deps.rules,
    )
    lease = deps.settings.worker_job_lease_seconds
    counts = jobs.run_due_jobs(
        ctx, limit=batch, lease_seconds=lease, keep_alive=heartbeat(deps, lease)
    )
    completed = usecases.complete_finished_bookings(uow=deps.uow(), clock=deps.clock, limit=batch)
    uow = deps.uow()
    with uow:
        purged = uow.idempotency.purge(deps.clock.now() - IDEMPOTENCY_RETENTION)
        uow.commit()
    counts = {
        "holds_released": reconciled.released,
        "checkouts_confirmed": reconciled.confirmed,
        "events_recovered": reconciled.recovered_events,
        "approvals_expired": unapproved,
        **counts,
        "bookings_completed": completed,
        "idempotency_purged": purged,
    }
    if any(counts.values()):
        log.info("worker pass: %s", counts, extra=counts)
    return counts


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


class OutageLog:
    """Says that passes fail once per ``cooldown`` seconds, and once that they work again.

    A database or provider outage makes every pass fail the same way: one WARNING line per
    cool-down (no traceback) instead of a traceback every few seconds. A failure that is not an
    outage (a bug) gets its traceback the first time of each cool-down.
    """

    def __init__(
        self, *, cooldown: float = OUTAGE_LOG_COOLDOWN, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.cooldown = cooldown
        self._clock = clock
        self._failed_passes = 0
        self._last_logged: float | None = None

    def failed(self, error: Exception, *, retry_in: float) -> None:
        self._failed_passes += 1
        now = self._clock()
        if self._last_logged is not None and now - self._last_logged < self.cooldown:
            return
        self._last_logged = now
        outage = isinstance(error, ExternalServiceError | PaymentFailed)
        log.warning(
            "worker pass failed (%d in a row): %s; retrying every %.0f s, next note in %.0f s",
            self._failed_passes, _first_line(error), retry_in, self.cooldown,
            exc_info=None if outage else error,
        )  # fmt: skip

    def succeeded(self) -> None:
        if self._failed_passes:
            log.info("worker passes work again after %d failed", self._failed_passes)
        self._failed_passes = 0
        self._last_logged = None


def run_forever(
    deps: Deps,
    stop: threading.Event,
    *,
    interval: float = 5.0,
    outage_cooldown: float = OUTAGE_LOG_COOLDOWN,
) -> None:
    """Loop until ``stop`` is set; a failing pass is noted (see OutageLog) and retried."""
    log.info("worker started (every %.0f s)", interval)
    outages = OutageLog(cooldown=outage_cooldown)
    while not stop.is_set():
        try:
            counts = run_once(deps)
        except Exception as exc:
            outages.failed(exc, retry_in=interval)
            counts = {}
        else:
            outages.succeeded()
        # Busy: go again at once; idle: wait (waking early on stop).
        if not any(counts.get(k) for k in ("holds_released", "checkouts_confirmed", "done")):
            stop.wait(interval)
    log.info("worker stopped")
