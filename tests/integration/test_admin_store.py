"""The admin ports on both adapters (memory and PostgreSQL): keyset pages of bookings, the audit
log, API tokens, time off ids, parked jobs; and an audit entry that rolls back with its change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.memory import FixedClock, InMemoryStore
from booking_core import usecases as uc
from booking_core.access import Actor, ApiToken, AuditEntry, AuditFilter
from booking_core.jobs import JobKind, JobStatus
from booking_core.model import (
    Booking,
    BookingStatus,
    Client,
    Interval,
    Money,
    Practitioner,
    Service,
    TimeOff,
    TimeRange,
    WeeklyHours,
)
from booking_core.ports import BookingFilter, UnitOfWork

T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
ADMIN = Actor.admin_token()


@pytest.fixture(params=["memory", "postgres"])
def new_uow(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return InMemoryStore().unit_of_work
    return request.getfixturevalue("clean_database").unit_of_work


def _practitioner(new_uow: Any) -> Practitioner:
    uow = new_uow()
    with uow:
        p = uow.practitioners.add(
            Practitioner(
                name="Ada",
                timezone="Europe/London",
                services=[Service(name="S", duration_minutes=50, price=Money(9000, "gbp"))],
            )
        )
        uow.commit()
    return p  # type: ignore[no-any-return]


def _booking(p: Practitioner, start: datetime) -> Booking:
    return Booking(
        practitioner_id=p.id or 0,
        service_id=p.services[0].id or 0,
        client=Client("C", "c@example.com"),
        start=start,
        end=start + timedelta(minutes=50),
        price=Money(9000, "gbp"),
        status=BookingStatus.CONFIRMED,
        created_at=T0,
        updated_at=T0,
    )


def test_keyset_pages_by_start_then_id(new_uow: Any) -> None:
    p = _practitioner(new_uow)
    uow = new_uow()
    with uow:
        ids = [uow.bookings.add(_booking(p, T0 + timedelta(hours=h))).id for h in (3, 1, 2)]
        uow.commit()
    with uow:
        first = uow.bookings.list(BookingFilter(oldest_first=True, limit=2))
        assert [b.id for b in first] == [ids[1], ids[2]]
        last = first[-1]
        rest = uow.bookings.list(BookingFilter(after=(last.start, last.id or 0), limit=2))
        assert [b.id for b in rest] == [ids[0]]
        # the newest-first listing (the worker's) is unchanged
        assert [b.id for b in uow.bookings.list(BookingFilter())] == [ids[0], ids[2], ids[1]]


def test_time_off_keeps_its_id_across_saves(new_uow: Any) -> None:
    p = _practitioner(new_uow)
    uow = new_uow()
    with uow:
        stored = uow.practitioners.get(p.id or 0)
        assert stored is not None
        stored.time_off.append(TimeOff(Interval(T0, T0 + timedelta(days=1)), "holiday"))
        uow.practitioners.save(stored)
        uow.commit()
    with uow:
        stored = uow.practitioners.get(p.id or 0)
        assert stored is not None
        (off,) = stored.time_off
        assert off.id is not None
        assert uow.practitioners.owner_of_time_off(off.id) == p.id
        assert uow.practitioners.owner_of_service(p.services[0].id or 0) == p.id
        assert uow.practitioners.owner_of_time_off(off.id + 100) is None
        stored.weekly_hours = WeeklyHours(((TimeRange(540, 600),),) + ((),) * 6)
        uow.practitioners.save(stored)
        uow.commit()
    with uow:
        again = uow.practitioners.get(p.id or 0)
        assert again is not None
        assert [t.id for t in again.time_off] == [off.id]


def test_audit_entries_newest_first_with_filters(new_uow: Any) -> None:
    uow = new_uow()
    with uow:
        for n in range(3):
            uow.audit.add(
                AuditEntry(
                    at=T0 + timedelta(minutes=n),
                    actor_type="user",
                    actor_id=str(n % 2),
                    action="x",
                    object_type="booking" if n else "service",
                    object_id=str(n),
                    before={"n": n},
                    after=None,
                )
            )
        uow.commit()
    with uow:
        everything = uow.audit.list(AuditFilter())
        assert [e.object_id for e in everything] == ["2", "1", "0"]
        assert everything[0].before == {"n": 2}
        assert everything[0].at == T0 + timedelta(minutes=2)
        older = uow.audit.list(AuditFilter(before_id=everything[0].id))
        assert [e.object_id for e in older] == ["1", "0"]
        assert [e.object_id for e in uow.audit.list(AuditFilter(actor="user:0"))] == ["2", "0"]
        assert [e.object_id for e in uow.audit.list(AuditFilter(object_type="service"))] == ["0"]
        since = uow.audit.list(AuditFilter(since=T0 + timedelta(minutes=1)))
        assert [e.object_id for e in since] == ["2", "1"]


def test_api_tokens_by_hash_and_revoked_once(new_uow: Any) -> None:
    uow = new_uow()
    with uow:
        token = uow.api_tokens.add(ApiToken(name="ci", token_hash="h" * 64, created_at=T0))
        uow.commit()
    with uow:
        found = uow.api_tokens.get_by_hash("h" * 64)
        assert found is not None
        assert (found.id, found.name, found.active) == (token.id, "ci", True)
        revoked = uow.api_tokens.revoke(token.id or 0, T0 + timedelta(hours=1))
        assert revoked is not None
        assert revoked.revoked_at == T0 + timedelta(hours=1)
        again = uow.api_tokens.revoke(token.id or 0, T0 + timedelta(hours=2))
        assert again is not None
        assert again.revoked_at == T0 + timedelta(hours=1)
        assert uow.api_tokens.revoke(999, T0) is None
        uow.commit()
    with uow:
        assert [t.active for t in uow.api_tokens.list()] == [False]


def test_a_parked_job_is_requeued_once(new_uow: Any) -> None:
    uow = new_uow()
    with uow:
        uow.outbox.add(JobKind.EMAIL, {"booking_id": 1}, T0)
        (job,) = uow.outbox.list()
        uow.outbox.park(job.id or 0, error="down")
        uow.commit()
    with uow:
        requeued = uow.outbox.requeue(job.id or 0, T0 + timedelta(hours=1))
        assert requeued is not None
        assert (requeued.status, requeued.attempts) == (JobStatus.PENDING, 0)
        assert requeued.last_error == "down"
        assert uow.outbox.requeue(job.id or 0, T0) is None  # pending now, not parked
        uow.commit()
    with uow:
        assert uow.outbox.get(job.id or 0) == requeued
        assert uow.outbox.get(999) is None


class _FailAfterAudit:
    """A unit of work whose audit write succeeds and is followed by a failure."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        original = uow.audit.add

        def add(entry: AuditEntry) -> AuditEntry:
            original(entry)
            raise RuntimeError("the process died after the audit write")

        uow.audit.add = add  # type: ignore[method-assign]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._uow, name)

    def __enter__(self) -> Any:
        self._uow.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._uow.__exit__(*exc)


def test_an_audit_entry_rolls_back_with_its_change(new_uow: Any) -> None:
    clock = FixedClock(T0)
    p = _practitioner(new_uow)
    hours = WeeklyHours(((TimeRange(540, 600),),) + ((),) * 6)
    with pytest.raises(RuntimeError, match="audit write"):
        uc.set_working_hours(
            p.id or 0, hours, actor=ADMIN, uow=_FailAfterAudit(new_uow()), clock=clock
        )  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="audit write"):
        uc.create_practitioner(
            uc.NewPractitioner(name="B", email="b@example.com", timezone="UTC"),
            actor=ADMIN,
            uow=_FailAfterAudit(new_uow()),  # type: ignore[arg-type]
            clock=clock,
        )
    uow = new_uow()
    with uow:
        assert uow.audit.list(AuditFilter()) == []
        assert [x.name for x in uow.practitioners.list(active_only=False)] == ["Ada"]
        stored = uow.practitioners.get(p.id or 0)
        assert stored is not None
        assert stored.weekly_hours == WeeklyHours()
    # The same change without the failure commits both.
    uc.set_working_hours(
        p.id or 0, hours, actor=ADMIN, uow=new_uow(), clock=clock, request_id="r-1"
    )
    with uow:
        (entry,) = uow.audit.list(AuditFilter())
        assert (entry.action, entry.object_id, entry.request_id) == (
            "practitioner.working_hours",
            str(p.id),
            "r-1",
        )
        assert entry.after == {"working_hours": uc.admin.hours_json(hours)}
