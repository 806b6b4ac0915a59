"""Outbox jobs are claimed one at a time, each under its own short lease (booking_core.jobs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from adapters.memory import FakePaymentGateway, FixedClock, InMemoryStore, RecordingNotifier
from adapters.schedule import ScheduleCalendarGateway
from booking_core import jobs
from booking_core.jobs import Job, JobStatus
from booking_core.policy import BookingRules


def test_each_job_is_leased_alone_just_before_it_runs() -> None:
    store, clock = InMemoryStore(), FixedClock()
    now = clock.now()
    uow = store.unit_of_work()
    with uow:
        for n in range(3):
            uow.outbox.add("no.such.kind", {"n": n}, now)
        uow.commit()
    seen: list[tuple[int | None, datetime, list[datetime]]] = []

    @contextmanager
    def keep_alive(job: Job, leased_until: datetime) -> Iterator[None]:
        look = store.unit_of_work()
        with look:
            others = [j.run_at for j in look.outbox.list(JobStatus.PENDING) if j.id != job.id]
        seen.append((job.id, leased_until, others))
        yield

    ctx = jobs.JobContext(
        uow=store.unit_of_work(), payments=FakePaymentGateway(), calendar=ScheduleCalendarGateway(),
        notifier=RecordingNotifier(), clock=clock, rules=BookingRules(),
    )  # fmt: skip
    counts = jobs.run_due_jobs(ctx, limit=20, lease_seconds=30, keep_alive=keep_alive)
    assert counts["parked"] == 3  # unknown kinds are parked at once
    assert [job_id for job_id, _, _ in seen] == sorted(job_id for job_id, _, _ in seen)
    for _, leased_until, others in seen:
        assert leased_until == now + timedelta(seconds=30)
        # The jobs not yet running are not leased: another worker may take them meanwhile.
        assert all(run_at <= now for run_at in others)
