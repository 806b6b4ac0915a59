"""The background worker: releases expired holds and runs outbox jobs (mail, Cal.com, refunds).

Run as many as you like (``booking worker``): jobs are claimed with row locks and leases, so each
runs once. ``booking serve`` runs one in a thread for development.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from booking_core import jobs, usecases
from entrypoints.bootstrap import Deps

log = logging.getLogger("booking.worker")

IDEMPOTENCY_RETENTION = timedelta(hours=24)


def run_once(deps: Deps, *, batch: int = 20) -> dict[str, int]:
    """One pass: reconcile payments (expired and half-written holds, completed checkouts,
    missed webhooks), run due jobs, complete past bookings, forget old idempotency answers;
    returns counts."""
    reconciled = usecases.reconcile_payments(
        uow=deps.uow(), payments=deps.payments, calendar=deps.calendar, clock=deps.clock,
        rules=deps.rules, limit=batch,
    )
    ctx = jobs.JobContext(
        uow=deps.uow(), payments=deps.payments, calendar=deps.calendar, notifier=deps.notifier,
        clock=deps.clock, rules=deps.rules,
    )
    counts = jobs.run_due_jobs(ctx, limit=batch)
    completed = usecases.complete_finished_bookings(uow=deps.uow(), clock=deps.clock, limit=batch)
    uow = deps.uow()
    with uow:
        purged = uow.idempotency.purge(deps.clock.now() - IDEMPOTENCY_RETENTION)
        uow.commit()
    counts = {
        "holds_released": reconciled.released,
        "checkouts_confirmed": reconciled.confirmed,
        "events_recovered": reconciled.recovered_events,
        **counts,
        "bookings_completed": completed,
        "idempotency_purged": purged,
    }
    if any(counts.values()):
        log.info("worker pass: %s", counts, extra=counts)
    return counts


def run_forever(deps: Deps, stop: threading.Event, *, interval: float = 5.0) -> None:
    """Loop until ``stop`` is set; a failing pass is logged and retried, never fatal."""
    log.info("worker started (every %.0f s)", interval)
    while not stop.is_set():
        try:
            counts = run_once(deps)
        except Exception:
            log.exception("worker pass failed; retrying in %.0f s", interval)
            counts = {}
        # Busy: go again at once; idle: wait (waking early on stop).
        if not any(counts.get(k) for k in ("holds_released", "checkouts_confirmed", "done")):
            stop.wait(interval)
    log.info("worker stopped")
