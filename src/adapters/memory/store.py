"""In-memory repositories and unit of work with real transactional semantics."""

from __future__ import annotations

import copy
import itertools
import threading
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

import attrs

from booking_core.access import ApiToken, AuditEntry, AuditFilter
from booking_core.errors import (
    ConcurrentUpdate,
    PractitionerNotFound,
    RefundExceedsCapture,
    SlotUnavailable,
    UserNotFound,
)
from booking_core.jobs import Job, JobStatus
from booking_core.model import (
    Booking,
    BookingStatus,
    Interval,
    Money,
    Payment,
    Practitioner,
    RefundStatus,
    Role,
    User,
)
from booking_core.ports import BookingFilter, IdempotencyRecord


class InMemoryStore:
    """Committed state shared by every unit of work built on it (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.practitioners: dict[int, Practitioner] = {}
        self.bookings: dict[int, Booking] = {}
        self.users: dict[str, User] = {}
        self.events: dict[str, tuple[str, datetime]] = {}
        self.jobs: dict[int, Job] = {}
        self.payments: dict[str, Payment] = {}
        self.cursors: dict[str, str] = {}
        self.idempotency: dict[str, IdempotencyRecord] = {}
        self.audit: list[AuditEntry] = []
        self.api_tokens: dict[int, ApiToken] = {}
        # Uncommitted occupying bookings and event ids per open unit, seen by the others' checks.
        self.inflight_bookings: dict[int, dict[int, Booking]] = {}
        self.inflight_events: dict[int, set[str]] = {}
        self.inflight_payments: dict[int, set[str]] = {}
        self.inflight_job_keys: dict[int, set[str]] = {}
        self.inflight_idempotency: dict[int, dict[str, IdempotencyRecord]] = {}
        self._ids = {
            name: itertools.count(1) for name in ("p", "s", "b", "u", "j", "uow", "t", "a", "k")
        }
        # Practitioner locks (PractitionerRepository.lock), held until a unit of work ends.
        self.practitioner_locks: dict[int, threading.Lock] = {}

    def next_id(self, kind: str) -> int:
        with self.lock:
            return next(self._ids[kind])

    def unit_of_work(self) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self)


def _clashes(candidate: Booking, others: Mapping[int, Booking]) -> Booking | None:
    if not candidate.occupies_calendar:
        return None
    span = candidate.occupied
    for other in others.values():
        if (
            other.id != candidate.id
            and other.practitioner_id == candidate.practitioner_id
            and other.occupies_calendar
            and other.occupied.overlaps(span)
        ):
            return other
    return None


class InMemoryUnitOfWork:
    """See the module docstring; one per request or job, never shared between threads."""

    def __init__(self, store: InMemoryStore) -> None:
        self.store = store
        self._open = False
        self.practitioners = _Practitioners(self)
        self.bookings = _Bookings(self)
        self.users = _Users(self)
        self.payment_events = _Events(self)
        self.ledger = _Ledger(self)
        self.cursors = _Cursors(self)
        self.outbox = _Outbox(self)
        self.idempotency = _Idempotency(self)
        self.audit = _Audit(self)
        self.api_tokens = _ApiTokens(self)
        self._reset()

    def _reset(self) -> None:
        self.token = self.store.next_id("uow")
        self.staged_practitioners: dict[int, Practitioner] = {}
        self.staged_bookings: dict[int, Booking] = {}
        self.base_versions: dict[int, int | None] = {}
        self.staged_users: dict[str, User] = {}
        self.staged_events: dict[str, tuple[str, datetime]] = {}
        self.staged_jobs: dict[int, Job] = {}
        self.staged_idempotency: dict[str, IdempotencyRecord | None] = {}
        self.staged_captures: dict[str, Payment] = {}
        self.staged_refunds: dict[str, int] = {}
        self.staged_cursors: dict[str, str] = {}
        self.staged_audit: list[AuditEntry] = []
        self.staged_tokens: dict[int, ApiToken] = {}
        self.held_locks: list[threading.Lock] = []

    def __enter__(self) -> Self:
        if self._open:
            raise RuntimeError("unit of work is already open; build one per use")
        self._reset()
        self._open = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.rollback()
        self._open = False

    def _require_open(self) -> None:
        if not self._open:
            raise RuntimeError("use the unit of work inside a 'with' block")

    def commit(self) -> None:
        self._require_open()
        store = self.store
        with store.lock:
            for booking_id, base in self.base_versions.items():
                committed = store.bookings.get(booking_id)
                if base is not None and (committed is None or committed.version != base):
                    raise ConcurrentUpdate(f"booking {booking_id} was changed concurrently")
            merged = {**store.bookings, **self.staged_bookings}
            for booking in self.staged_bookings.values():
                if _clashes(booking, merged) is not None:
                    raise SlotUnavailable("the time overlaps another booking")
            for event_id in self.staged_events:
                if event_id in store.events:
                    raise ConcurrentUpdate(f"event {event_id} was processed concurrently")
            for intent in self.staged_captures:
                if intent in store.payments:
                    raise ConcurrentUpdate(f"payment {intent} was applied concurrently")
            keys = {j.unique_key for j in store.jobs.values() if j.unique_key}
            for job in self.staged_jobs.values():
                if job.unique_key and job.id not in store.jobs and job.unique_key in keys:
                    raise ConcurrentUpdate(f"job {job.unique_key} was added concurrently")
            # Refunds are increments, as an UPDATE ... SET refunded = refunded + x is; the
            # ledger's check (refunded <= captured) holds against what is committed now.
            payments = {**store.payments, **self.staged_captures}
            for intent, amount in self.staged_refunds.items():
                payment = payments[intent]
                if payment.refunded + amount > payment.captured.amount:
                    raise RefundExceedsCapture(f"refunds would exceed payment {intent}")
                payments[intent] = attrs.evolve(payment, refunded=payment.refunded + amount)
            store.payments.update(payments)
            store.cursors.update(self.staged_cursors)
            store.practitioners.update(self.staged_practitioners)
            store.bookings.update(self.staged_bookings)
            store.users.update(self.staged_users)
            store.events.update(self.staged_events)
            store.jobs.update(self.staged_jobs)
            store.audit.extend(self.staged_audit)
            store.api_tokens.update(self.staged_tokens)
            for key, record in self.staged_idempotency.items():
                if record is None:
                    store.idempotency.pop(key, None)
                else:
                    store.idempotency[key] = record
            self._drop_inflight()
            self._reset_staged()

    def _reset_staged(self) -> None:
        self.staged_practitioners = {}
        self.staged_bookings = {}
        self.base_versions = {}
        self.staged_users = {}
        self.staged_events = {}
        self.staged_jobs = {}
        self.staged_idempotency = {}
        self.staged_captures = {}
        self.staged_refunds = {}
        self.staged_cursors = {}
        self.staged_audit = []
        self.staged_tokens = {}

    def _drop_inflight(self) -> None:
        while self.held_locks:
            self.held_locks.pop().release()
        self.store.inflight_bookings.pop(self.token, None)
        self.store.inflight_events.pop(self.token, None)
        self.store.inflight_payments.pop(self.token, None)
        self.store.inflight_job_keys.pop(self.token, None)
        self.store.inflight_idempotency.pop(self.token, None)

    def rollback(self) -> None:
        with self.store.lock:
            self._drop_inflight()
        self._reset_staged()


class _Practitioners:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    def _current(self) -> dict[int, Practitioner]:
        with self._uow.store.lock:
            return {**self._uow.store.practitioners, **self._uow.staged_practitioners}

    def get(self, practitioner_id: int, *, max_age: float = 0.0) -> Practitioner | None:
        """Always current (a fresher answer than ``max_age`` allows is a valid one)."""
        self._uow._require_open()
        found = self._current().get(practitioner_id)
        return copy.deepcopy(found)

    def lock(self, practitioner_id: int) -> None:
        """Like SELECT ... FOR UPDATE: waits for another open unit of work holding it."""
        uow = self._uow
        uow._require_open()
        with uow.store.lock:
            lock = uow.store.practitioner_locks.setdefault(practitioner_id, threading.Lock())
        if lock in uow.held_locks:
            return
        lock.acquire()
        uow.held_locks.append(lock)

    def list(self, *, active_only: bool = True) -> list[Practitioner]:
        self._uow._require_open()
        rows = sorted(self._current().values(), key=lambda p: p.id or 0)
        return [copy.deepcopy(p) for p in rows if p.active or not active_only]

    def add(self, practitioner: Practitioner) -> Practitioner:
        self._uow._require_open()
        stored = copy.deepcopy(practitioner)
        store = self._uow.store
        stored.id = stored.id or store.next_id("p")
        self._assign_ids(stored)
        self._uow.staged_practitioners[stored.id] = stored
        return copy.deepcopy(stored)

    def _assign_ids(self, stored: Practitioner) -> None:
        store = self._uow.store
        for service in stored.services:
            service.id = service.id or store.next_id("s")
        stored.time_off = [
            t if t.id is not None else attrs.evolve(t, id=store.next_id("t"))
            for t in stored.time_off
        ]

    def save(self, practitioner: Practitioner) -> None:
        self._uow._require_open()
        if practitioner.id is None or practitioner.id not in self._current():
            raise PractitionerNotFound(f"no practitioner with id {practitioner.id}")
        stored = copy.deepcopy(practitioner)
        self._assign_ids(stored)
        self._uow.staged_practitioners[practitioner.id] = stored

    def owner_of_service(self, service_id: int) -> int | None:
        self._uow._require_open()
        for p in self._current().values():
            if p.service(service_id) is not None:
                return p.id
        return None

    def owner_of_time_off(self, time_off_id: int) -> int | None:
        self._uow._require_open()
        for p in self._current().values():
            if any(t.id == time_off_id for t in p.time_off):
                return p.id
        return None


class _Bookings:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    def _visible(self) -> dict[int, Booking]:
        with self._uow.store.lock:
            return {**self._uow.store.bookings, **self._uow.staged_bookings}

    def _check_no_overlap(self, booking: Booking) -> None:
        """Against committed bookings, our staged ones, and other units' uncommitted inserts."""
        store = self._uow.store
        others: dict[int, Booking] = dict(self._visible())
        for token, pending in store.inflight_bookings.items():
            if token != self._uow.token:
                others.update({k: v for k, v in pending.items() if k not in others})
        if _clashes(booking, others) is not None:
            raise SlotUnavailable("the time overlaps another booking")

    def add(self, booking: Booking, *, commit: bool = False) -> Booking:
        self._uow._require_open()
        store = self._uow.store
        with store.lock:
            stored = booking.copy()
            stored.id = store.next_id("b")  # like a sequence: used even if rolled back
            stored.version = 1
            self._check_no_overlap(stored)
            self._uow.staged_bookings[stored.id] = stored
            self._uow.base_versions[stored.id] = None
            store.inflight_bookings.setdefault(self._uow.token, {})[stored.id] = stored
        if commit:
            self._uow.commit()
        return stored.copy()

    def get(self, booking_id: int) -> Booking | None:
        self._uow._require_open()
        found = self._visible().get(booking_id)
        return found.copy() if found is not None else None

    def _find(self, predicate: Any) -> Booking | None:
        self._uow._require_open()
        for booking in self._visible().values():
            if predicate(booking):
                return booking.copy()
        return None

    def get_by_checkout_session(self, session_id: str) -> Booking | None:
        return self._find(lambda b: b.checkout_session_id == session_id)

    def get_by_payment_intent(self, payment_intent_id: str) -> Booking | None:
        return self._find(lambda b: b.payment_intent_id == payment_intent_id)

    def get_by_calendar_uid(self, uid: str) -> Booking | None:
        return self._find(lambda b: b.calendar_uid == uid)

    def save(self, booking: Booking, *, commit: bool = False) -> None:
        self._uow._require_open()
        if booking.id is None:
            raise ValueError("save() needs a booking that was added")
        store = self._uow.store
        with store.lock:
            current = self._visible().get(booking.id)
            if current is None or current.version != booking.version:
                raise ConcurrentUpdate(f"booking {booking.id} was changed concurrently")
            stored = booking.copy()
            stored.version = booking.version + 1
            self._check_no_overlap(stored)
            if booking.id not in self._uow.base_versions:
                self._uow.base_versions[booking.id] = booking.version
            self._uow.staged_bookings[booking.id] = stored
            if stored.occupies_calendar:
                store.inflight_bookings.setdefault(self._uow.token, {})[booking.id] = stored
        booking.version = stored.version  # as SQLAlchemy bumps version_id_col on flush
        if commit:
            self._uow.commit()

    def list_occupying(self, practitioner_id: int, window: Interval) -> list[Booking]:
        self._uow._require_open()
        found = [
            b.copy()
            for b in self._visible().values()
            if b.practitioner_id == practitioner_id
            and b.occupies_calendar
            and b.occupied.overlaps(window)
        ]
        return sorted(found, key=lambda b: b.start)

    def occupied_spans(self, practitioner_id: int, window: Interval) -> list[Interval]:
        return [b.occupied for b in self.list_occupying(practitioner_id, window)]

    def list_expired_holds(
        self,
        now: datetime,
        limit: int = 100,
        *,
        after: tuple[datetime, int] | None = None,
        status: BookingStatus = BookingStatus.PENDING,
    ) -> list[Booking]:
        self._uow._require_open()
        found = [
            b.copy()
            for b in self._visible().values()
            if b.status is status
            and b.hold_expires_at is not None
            and b.hold_expires_at < now
            and (after is None or (b.hold_expires_at, b.id or 0) > after)
        ]
        return sorted(found, key=lambda b: (b.hold_expires_at or now, b.id or 0))[:limit]

    def list_unattached_holds(self, created_before: datetime, limit: int = 100) -> list[Booking]:
        self._uow._require_open()
        found = [
            b.copy()
            for b in self._visible().values()
            if b.status.value == "pending"
            and b.checkout_session_id is None
            and b.created_at < created_before
        ]
        return sorted(found, key=lambda b: (b.created_at, b.id or 0))[:limit]

    def list_refunds_due(self, limit: int = 100) -> list[Booking]:
        self._uow._require_open()
        found = [
            b.copy()
            for b in self._visible().values()
            if b.refund is not None and b.refund.status is RefundStatus.PENDING
        ]
        return sorted(found, key=lambda b: b.updated_at)[:limit]

    def list(self, filters: BookingFilter) -> list[Booking]:
        self._uow._require_open()
        f = filters
        email = f.client_email.lower() if f.client_email else None
        found = [
            b.copy()
            for b in self._visible().values()
            if (f.practitioner_id is None or b.practitioner_id == f.practitioner_id)
            and (f.status is None or b.status is f.status)
            and (f.start_from is None or b.start >= f.start_from)
            and (f.start_to is None or b.start < f.start_to)
            and (email is None or b.client.email.lower() == email)
        ]
        if f.after is not None or f.oldest_first:
            found.sort(key=lambda b: (b.start, b.id or 0))
            if f.after is not None:
                after = f.after
                found = [b for b in found if (b.start, b.id or 0) > after]
            return found[: f.limit]
        found.sort(key=lambda b: (b.start, b.id or 0), reverse=True)
        return found[f.offset : f.offset + f.limit]

    def count_by_status(self) -> dict[BookingStatus, int]:
        self._uow._require_open()
        return dict(Counter(b.status for b in self._visible().values()))


class _Users:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    def upsert(self, user: User) -> User:
        self._uow._require_open()
        with self._uow.store.lock:
            existing = self._find(user.open_id)
            if existing is None:
                stored = attrs.evolve(user, id=self._uow.store.next_id("u"))
            else:
                stored = attrs.evolve(
                    existing,
                    name=user.name,
                    email=user.email,
                    last_signed_in=user.last_signed_in,
                    role=Role.ADMIN if user.role is Role.ADMIN else existing.role,
                )
            self._uow.staged_users[user.open_id] = stored
        return attrs.evolve(stored)

    def _find(self, open_id: str) -> User | None:
        return self._uow.staged_users.get(open_id) or self._uow.store.users.get(open_id)

    def _visible(self) -> list[User]:
        with self._uow.store.lock:
            return list({**self._uow.store.users, **self._uow.staged_users}.values())

    def get(self, user_id: int) -> User | None:
        self._uow._require_open()
        found = next((u for u in self._visible() if u.id == user_id), None)
        return attrs.evolve(found) if found is not None else None

    def get_by_open_id(self, open_id: str) -> User | None:
        self._uow._require_open()
        with self._uow.store.lock:
            found = self._find(open_id)
        return attrs.evolve(found) if found is not None else None

    def find_by_email(self, email: str) -> list[User]:
        self._uow._require_open()
        wanted = email.lower()
        found = [u for u in self._visible() if u.email is not None and u.email.lower() == wanted]
        return [attrs.evolve(u) for u in sorted(found, key=lambda u: u.id or 0)]

    def set_role(self, user_id: int, role: Role, practitioner_id: int | None) -> User:
        user = self.get(user_id)
        if user is None:
            raise UserNotFound(f"no user with id {user_id}")
        stored = attrs.evolve(user, role=role, practitioner_id=practitioner_id)
        self._uow.staged_users[stored.open_id] = stored
        return attrs.evolve(stored)

    def list(self, limit: int = 500) -> list[User]:
        self._uow._require_open()
        users = sorted(self._visible(), key=lambda u: u.id or 0)[:limit]
        return [attrs.evolve(u) for u in users]


class _Events:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    def record(self, event_id: str, event_type: str, received_at: datetime) -> bool:
        self._uow._require_open()
        store = self._uow.store
        with store.lock:
            if event_id in store.events or event_id in self._uow.staged_events:
                return False
            if any(
                event_id in ids
                for token, ids in store.inflight_events.items()
                if token != self._uow.token
            ):
                return False  # another delivery of the same event is being processed
            self._uow.staged_events[event_id] = (event_type, received_at)
            store.inflight_events.setdefault(self._uow.token, set()).add(event_id)
        return True


class _Ledger:
    """Captures behave like a primary key on the intent (another open unit's counts as taken);
    refunds are checked against the capture here and again at commit."""

    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    def _visible(self, intent: str) -> Payment | None:
        uow = self._uow
        payment = uow.staged_captures.get(intent) or uow.store.payments.get(intent)
        if payment is None:
            return None
        return attrs.evolve(payment, refunded=payment.refunded + uow.staged_refunds.get(intent, 0))

    def capture(self, payment: Payment, at: datetime) -> bool:
        self._uow._require_open()
        store = self._uow.store
        with store.lock:
            intent = payment.payment_intent_id
            if self._visible(intent) is not None:
                return False
            if any(
                intent in ids
                for token, ids in store.inflight_payments.items()
                if token != self._uow.token
            ):
                return False  # another unit is applying the same payment
            self._uow.staged_captures[intent] = attrs.evolve(payment, refunded=0)
            store.inflight_payments.setdefault(self._uow.token, set()).add(intent)
        return True

    def add_refund(self, payment_intent_id: str, amount: Money, at: datetime) -> Payment:
        self._uow._require_open()
        with self._uow.store.lock:
            payment = self._visible(payment_intent_id)
            if (
                payment is None
                or amount.currency != payment.captured.currency
                or amount.amount < 0
                or payment.refunded + amount.amount > payment.captured.amount
            ):
                raise RefundExceedsCapture(
                    f"a refund of {amount.amount} {amount.currency} exceeds what payment "
                    f"{payment_intent_id} has left"
                )
            staged = self._uow.staged_refunds
            staged[payment_intent_id] = staged.get(payment_intent_id, 0) + amount.amount
            return attrs.evolve(payment, refunded=payment.refunded + amount.amount)

    def get(self, payment_intent_id: str) -> Payment | None:
        self._uow._require_open()
        with self._uow.store.lock:
            return self._visible(payment_intent_id)

    def for_booking(self, booking_id: int) -> list[Payment]:
        self._uow._require_open()
        with self._uow.store.lock:
            intents = {*self._uow.store.payments, *self._uow.staged_captures}
            found = [self._visible(i) for i in intents]
        return [p for p in found if p is not None and p.booking_id == booking_id]


class _Cursors:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    def get(self, name: str) -> str | None:
        self._uow._require_open()
        with self._uow.store.lock:
            return self._uow.staged_cursors.get(name, self._uow.store.cursors.get(name))

    def set(self, name: str, value: str) -> None:
        self._uow._require_open()
        self._uow.staged_cursors[name] = value


class _Outbox:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    def _job(self, job_id: int) -> Job:
        with self._uow.store.lock:
            job = self._uow.staged_jobs.get(job_id) or self._uow.store.jobs.get(job_id)
        if job is None:
            raise KeyError(f"no job {job_id}")
        return job

    def add(
        self,
        kind: str,
        payload: Mapping[str, Any],
        run_at: datetime,
        *,
        unique_key: str | None = None,
    ) -> bool:
        self._uow._require_open()
        store = self._uow.store
        with store.lock:
            if unique_key is not None:
                jobs = {**store.jobs, **self._uow.staged_jobs}.values()
                if any(j.unique_key == unique_key for j in jobs) or any(
                    unique_key in keys
                    for token, keys in store.inflight_job_keys.items()
                    if token != self._uow.token
                ):
                    return False  # as INSERT ... ON CONFLICT (unique_key) DO NOTHING
                store.inflight_job_keys.setdefault(self._uow.token, set()).add(unique_key)
            job_id = store.next_id("j")
            self._uow.staged_jobs[job_id] = Job(
                id=job_id,
                kind=kind,
                payload=dict(payload),
                run_at=run_at,
                created_at=run_at,
                unique_key=unique_key,
            )
        return True

    def claim_due(self, now: datetime, limit: int = 10, lease_seconds: int = 300) -> list[Job]:
        self._uow._require_open()
        store = self._uow.store
        with store.lock:
            due = sorted(
                (
                    j
                    for j in {**store.jobs, **self._uow.staged_jobs}.values()
                    if j.status is JobStatus.PENDING and j.run_at <= now
                ),
                key=lambda j: (j.run_at, j.id or 0),
            )[:limit]
            lease = now + timedelta(seconds=lease_seconds)
            for job in due:
                leased = attrs.evolve(job, run_at=lease)
                self._uow.staged_jobs[job.id or 0] = leased
                # Claims take effect at once for everybody, as row locks do in PostgreSQL; a job
                # this unit added is not published by claiming it (it may still roll back).
                if job.id in store.jobs:
                    store.jobs[job.id] = leased
        return due

    def renew(self, job_id: int, *, leased_until: datetime, until: datetime) -> bool:
        self._uow._require_open()
        try:
            job = self._job(job_id)
        except KeyError:
            return False
        if job.status is not JobStatus.PENDING or job.run_at != leased_until:
            return False
        self._uow.staged_jobs[job_id] = attrs.evolve(job, run_at=until)
        return True

    def complete(self, job_id: int) -> None:
        self._uow.staged_jobs[job_id] = attrs.evolve(self._job(job_id), status=JobStatus.DONE)

    def retry(self, job_id: int, *, error: str, run_at: datetime) -> None:
        job = self._job(job_id)
        self._uow.staged_jobs[job_id] = attrs.evolve(
            job, attempts=job.attempts + 1, last_error=error, run_at=run_at
        )

    def park(self, job_id: int, *, error: str) -> None:
        job = self._job(job_id)
        self._uow.staged_jobs[job_id] = attrs.evolve(
            job, attempts=job.attempts + 1, last_error=error, status=JobStatus.PARKED
        )

    def list(self, status: JobStatus | None = None, limit: int = 100) -> list[Job]:
        self._uow._require_open()
        with self._uow.store.lock:
            jobs = {**self._uow.store.jobs, **self._uow.staged_jobs}.values()
            found = [j for j in jobs if status is None or j.status is status]
        return sorted(found, key=lambda j: j.id or 0)[:limit]

    def _all(self) -> tuple[Job, ...]:
        self._uow._require_open()
        with self._uow.store.lock:
            return tuple({**self._uow.store.jobs, **self._uow.staged_jobs}.values())

    def count_by_status(self) -> dict[JobStatus, int]:
        return dict(Counter(j.status for j in self._all()))

    def oldest_due(self, now: datetime) -> datetime | None:
        due = [j.run_at for j in self._all() if j.status is JobStatus.PENDING and j.run_at <= now]
        return min(due, default=None)

    def get(self, job_id: int) -> Job | None:
        self._uow._require_open()
        try:
            return self._job(job_id)
        except KeyError:
            return None

    def requeue(self, job_id: int, run_at: datetime) -> Job | None:
        job = self.get(job_id)
        if job is None or job.status is not JobStatus.PARKED:
            return None
        requeued = attrs.evolve(job, status=JobStatus.PENDING, attempts=0, run_at=run_at)
        self._uow.staged_jobs[job_id] = requeued
        return requeued


class _Audit:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    def add(self, entry: AuditEntry) -> AuditEntry:
        self._uow._require_open()
        stored = attrs.evolve(entry, id=self._uow.store.next_id("a"))
        self._uow.staged_audit.append(stored)
        return stored

    def list(self, filters: AuditFilter) -> list[AuditEntry]:
        self._uow._require_open()
        f = filters
        with self._uow.store.lock:
            entries = [*self._uow.store.audit, *self._uow.staged_audit]
        found = [
            e
            for e in entries
            if (f.actor is None or f.actor in (e.actor_id, f"{e.actor_type}:{e.actor_id}"))
            and (f.object_type is None or e.object_type == f.object_type)
            and (f.object_id is None or e.object_id == f.object_id)
            and (f.since is None or e.at >= f.since)
            and (f.before_id is None or (e.id or 0) < f.before_id)
        ]
        found.sort(key=lambda e: e.id or 0, reverse=True)
        return found[: f.limit]


class _ApiTokens:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    def _visible(self) -> dict[int, ApiToken]:
        with self._uow.store.lock:
            return {**self._uow.store.api_tokens, **self._uow.staged_tokens}

    def add(self, token: ApiToken) -> ApiToken:
        self._uow._require_open()
        if any(t.token_hash == token.token_hash for t in self._visible().values()):
            raise ConcurrentUpdate("that token exists already")  # as the unique index says
        stored = attrs.evolve(token, id=self._uow.store.next_id("k"))
        self._uow.staged_tokens[stored.id or 0] = stored
        return stored

    def get_by_hash(self, token_hash: str) -> ApiToken | None:
        self._uow._require_open()
        return next((t for t in self._visible().values() if t.token_hash == token_hash), None)

    def get(self, token_id: int) -> ApiToken | None:
        self._uow._require_open()
        return self._visible().get(token_id)

    def list(self) -> list[ApiToken]:
        self._uow._require_open()
        return sorted(self._visible().values(), key=lambda t: t.id or 0)

    def revoke(self, token_id: int, at: datetime) -> ApiToken | None:
        token = self.get(token_id)
        if token is None:
            return None
        if token.revoked_at is None:
            token = attrs.evolve(token, revoked_at=at)
            self._uow.staged_tokens[token_id] = token
        return token


class _Idempotency:
    """Keys behave like a unique index: a key another open unit reserved counts as taken."""

    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    def _visible(self, key: str) -> IdempotencyRecord | None:
        store = self._uow.store
        if key in self._uow.staged_idempotency:
            return self._uow.staged_idempotency[key]
        return store.idempotency.get(key)

    def reserve(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        self._uow._require_open()
        store = self._uow.store
        with store.lock:
            existing = self._visible(record.key)
            if existing is not None:
                return existing
            for token, records in store.inflight_idempotency.items():
                if token != self._uow.token and record.key in records:
                    return records[record.key]
            self._uow.staged_idempotency[record.key] = record
            store.inflight_idempotency.setdefault(self._uow.token, {})[record.key] = record
        return None

    def take_over(self, key: str, now: datetime, lease_expires_at: datetime) -> bool:
        self._uow._require_open()
        with self._uow.store.lock:
            record = self._visible(key)
            if record is None or record.status_code is not None:
                return False
            lease = record.lease_expires_at or record.created_at
            if lease > now:
                return False
            self._uow.staged_idempotency[key] = attrs.evolve(
                record, lease_expires_at=lease_expires_at, booking_id=None
            )
        return True

    def attach(self, key: str, booking_id: int) -> None:
        self._uow._require_open()
        with self._uow.store.lock:
            record = self._visible(key)
            if record is not None:
                self._uow.staged_idempotency[key] = attrs.evolve(record, booking_id=booking_id)

    def complete(
        self, key: str, status_code: int, response: Mapping[str, Any], sealed_secret: str | None
    ) -> None:
        self._uow._require_open()
        with self._uow.store.lock:
            record = self._visible(key)
            if record is not None:
                self._uow.staged_idempotency[key] = attrs.evolve(
                    record,
                    status_code=status_code,
                    response=dict(response),
                    sealed_secret=sealed_secret,
                )

    def release(self, key: str) -> None:
        self._uow._require_open()
        self._uow.staged_idempotency[key] = None

    def purge(self, older_than: datetime) -> int:
        self._uow._require_open()
        with self._uow.store.lock:
            old = [k for k, r in self._uow.store.idempotency.items() if r.created_at < older_than]
        for key in old:
            self._uow.staged_idempotency[key] = None
        return len(old)
