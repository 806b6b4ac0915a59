"""Helpers for the admin API tests: signed-in users of each role, and the state a request may
change (to prove a refused one changed nothing)."""

from __future__ import annotations

from typing import Any

from booking_core.jobs import JobKind
from booking_core.model import Role, User

from .http_support import NOW, Web

CSRF = "csrf-token-of-the-test-session"


def add_user(web: Web, open_id: str, role: Role, practitioner_id: int | None = None) -> User:
    uow = web.store.unit_of_work()
    with uow:
        user = uow.users.upsert(User(open_id=open_id, name=open_id, email=f"{open_id}@example.com"))
        user = uow.users.set_role(user.id or 0, role, practitioner_id)
        uow.commit()
    return user


def sign_in(web: Web, user: User) -> None:
    """A session cookie for ``user`` as /auth/callback sets it (with a known CSRF token)."""
    stamp = web.clock.now().timestamp()
    with web.client.session_transaction() as session:
        session.clear()
        session.permanent = True
        session.update(uid=user.id, csrf=CSRF, auth_at=stamp, seen_at=stamp)


def sign_out(web: Web) -> None:
    with web.client.session_transaction() as session:
        session.clear()


def parked_job(web: Web) -> int:
    uow = web.store.unit_of_work()
    with uow:
        uow.outbox.add(JobKind.EMAIL, {"booking_id": 1, "template": "confirmed"}, NOW)
        job = uow.outbox.list()[-1]
        uow.outbox.park(job.id or 0, error="smtp said no")
        uow.commit()
    return job.id or 0


def state(web: Web) -> tuple[Any, ...]:
    """Everything an admin request could change."""
    store = web.store
    with store.lock:
        return (
            {k: repr(_practitioner_state(p)) for k, p in store.practitioners.items()},
            {k: (b.status, b.start, b.version, b.refund) for k, b in store.bookings.items()},
            {k: (j.status, j.attempts, j.run_at) for k, j in store.jobs.items()},
            {k: (u.role, u.practitioner_id) for k, u in store.users.items()},
            dict(store.api_tokens),
            list(store.audit),
            dict(store.payments),
        )


def _practitioner_state(p: Any) -> Any:
    return (
        p.name,
        p.title,
        p.email,
        p.timezone,
        p.active,
        [(s.id, s.name, s.duration_minutes, s.price, s.active) for s in p.services],
        p.weekly_hours,
        [(t.id, t.period, t.reason) for t in p.time_off],
        p.calendar_link,
    )
