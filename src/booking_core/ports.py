"""Ports: what the core needs from the outside world, as typing.Protocols.

Adapters implement them (memory fakes, PostgreSQL, Stripe, Cal.com, SMTP). Every method documents
what it returns and which core errors it raises; no vendor exception may cross a port. One port
joins two adapters (``SlotCache``, the Cal.com gateway's cache), so they never import each other.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, Self

from attrs import frozen

from booking_core.model import (
    Booking,
    BookingStatus,
    CalendarLink,
    Client,
    Interval,
    Money,
    Payment,
    Practitioner,
    Role,
    Service,
    User,
)

if TYPE_CHECKING:
    from booking_core.access import ApiToken, AuditEntry, AuditFilter
    from booking_core.jobs import Job, JobStatus
    from booking_core.notifications import Notification

# -- repositories --------------------------------------------------------------------------------


class PractitionerRepository(Protocol):
    def get(self, practitioner_id: int, *, max_age: float = 0.0) -> Practitioner | None:
        """The practitioner with its services, hours and time off, or None.

        ``max_age`` > 0 lets the adapter answer from a copy read at most that many seconds ago
        (displays such as availability), as long as no change to the practitioner has been
        committed since, by any process (PostgreSQL: a notification sent by ``save`` drops every
        process's copy); 0 reads the current state. Decisions (booking, rescheduling) always
        read with 0.
        """

    def list(self, *, active_only: bool = True) -> list[Practitioner]:
        """All (active) practitioners, ordered by id."""

    def add(self, practitioner: Practitioner) -> Practitioner:
        """Insert; returns the stored practitioner with ids assigned (services too)."""

    def lock(self, practitioner_id: int) -> None:
        """Serialise, until this unit of work ends, the holds of this practitioner: a second
        unit of work that locks the same practitioner waits for this one to commit or roll
        back, so what it counts (booking limits) includes this one's booking."""
        ...

    def save(self, practitioner: Practitioner) -> None:
        """Replace the stored practitioner (services, hours, overrides, time off).

        Time off and services keep their ids; new ones get ids. Every process's cached copy
        (``get(max_age=...)``) is dropped when this unit of work commits. Raises
        PractitionerNotFound if it does not exist.
        """

    def owner_of_service(self, service_id: int) -> int | None:
        """The id of the practitioner offering service ``service_id`` (not retired), or None."""

    def owner_of_time_off(self, time_off_id: int) -> int | None:
        """The id of the practitioner whose time off this is, or None."""


@frozen
class BookingFilter:
    """Filters for the admin list; None means no filter on that field."""

    practitioner_id: int | None = None
    status: BookingStatus | None = None
    start_from: datetime | None = None
    start_to: datetime | None = None
    client_email: str | None = None
    limit: int = 50
    offset: int = 0
    # Oldest start first, then id, after this (start, id) key: pages that list each booking
    # once whatever is inserted between them. Without it (and oldest_first False): newest first.
    after: tuple[datetime, int] | None = None
    oldest_first: bool = False


class BookingRepository(Protocol):
    def add(self, booking: Booking, *, commit: bool = False) -> Booking:
        """Insert a new booking; returns it with its id set.

        Raises SlotUnavailable if it occupies the calendar and overlaps (buffers included) another
        occupying booking of the same practitioner, whether or not that one is committed yet.
        ``commit=True``: this is the unit of work's last write, committed with it (the same as
        UnitOfWork.commit() after it; PostgreSQL: when nothing was written before it, one
        statement that commits itself).
        """

    def get(self, booking_id: int) -> Booking | None:
        """A detached copy of the booking, or None."""

    def get_by_checkout_session(self, session_id: str) -> Booking | None:
        """The booking whose Checkout Session this is, or None."""

    def get_by_payment_intent(self, payment_intent_id: str) -> Booking | None:
        """The booking paid by this payment intent, or None."""

    def get_by_calendar_uid(self, uid: str) -> Booking | None:
        """The booking synced to this external calendar booking uid, or None."""

    def save(self, booking: Booking, *, commit: bool = False) -> None:
        """Write back a booking read in this unit of work; bumps its version.

        Raises ConcurrentUpdate if someone else saved it since it was read, SlotUnavailable if it
        now occupies a span another occupying booking holds (a late payment, a reschedule). After
        either error the unit of work is still usable (PostgreSQL: the save runs in a savepoint).
        ``commit=True`` commits the unit of work with this write, as for add.
        """

    def list_occupying(self, practitioner_id: int, window: Interval) -> list[Booking]:
        """Pending and confirmed bookings whose buffered span overlaps ``window``, by start."""

    def occupied_spans(self, practitioner_id: int, window: Interval) -> list[Interval]:
        """The buffered spans of list_occupying's bookings, sorted: all availability needs."""

    def list_expired_holds(
        self,
        now: datetime,
        limit: int = 100,
        *,
        after: tuple[datetime, int] | None = None,
        status: BookingStatus = BookingStatus.PENDING,
    ) -> list[Booking]:
        """Pending bookings (or ``status`` ones: awaiting_approval) whose hold (approval
        deadline) ran out before ``now``, by (hold expiry, id).

        ``after`` is the (hold_expires_at, id) of the last one of the previous page, so a caller
        pages through all of them, none starved behind others it cannot settle yet.
        """

    def list_unattached_holds(self, created_before: datetime, limit: int = 100) -> list[Booking]:
        """Pending bookings with no checkout session created before ``created_before``, oldest
        first: holds whose request died between the hold and the checkout."""

    def list_refunds_due(self, limit: int = 100) -> list[Booking]:
        """Bookings with a refund still PENDING (to be asked of the payment provider)."""

    def list(self, filters: BookingFilter) -> list[Booking]:
        """Bookings matching ``filters``: newest start first (then id), skipping ``offset``;
        or, with ``oldest_first`` or ``after``, by (start, id) ascending after ``after``."""

    def count_by_status(self) -> dict[BookingStatus, int]:
        """How many bookings are in each status (statuses with none may be left out)."""


class UserRepository(Protocol):
    """Users who signed in; ``open_id`` is unique. Reads see this unit of work's own writes."""

    def upsert(self, user: User) -> User:
        """Insert ``user``, or update the one with its ``open_id``, in one step; returns it stored.

        An update sets name, email and last_signed_in. The stored role and practitioner_id are
        kept, except that a ``user.role`` of ADMIN makes the stored user an admin (the owner).
        A new user gets ``user.role`` and ``user.practitioner_id``. Two concurrent upserts of
        one open_id leave one user.
        """

    def get(self, user_id: int) -> User | None: ...

    def get_by_open_id(self, open_id: str) -> User | None: ...

    def find_by_email(self, email: str) -> list[User]:
        """Users whose email equals ``email`` ignoring case, by id."""

    def set_role(self, user_id: int, role: Role, practitioner_id: int | None) -> User:
        """Change a user's role; raises UserNotFound when there is no such user."""

    def list(self, limit: int = 500) -> list[User]:
        """Users by id."""


class AuditLog(Protocol):
    """What admins and practitioners changed; written in the unit of work of the change."""

    def add(self, entry: AuditEntry) -> AuditEntry:
        """Record ``entry`` (it commits or rolls back with the change); returns it with its id."""

    def list(self, filters: AuditFilter) -> list[AuditEntry]:
        """Entries matching ``filters``, newest first (by id), below ``before_id``."""


class ApiTokenRepository(Protocol):
    """Named admin API tokens, stored by the hash of the token (never the token)."""

    def add(self, token: ApiToken) -> ApiToken:
        """Insert; returns it with its id."""

    def get_by_hash(self, token_hash: str) -> ApiToken | None: ...

    def get(self, token_id: int) -> ApiToken | None: ...

    def list(self) -> list[ApiToken]:
        """All tokens, revoked ones too, by id."""

    def revoke(self, token_id: int, at: datetime) -> ApiToken | None:
        """Mark revoked (once: a second revoke keeps the first time); None if unknown."""


class PaymentEventLog(Protocol):
    def record(self, event_id: str, event_type: str, received_at: datetime) -> bool:
        """Remember that ``event_id`` is processed in this unit of work.

        True the first time; False if it was already recorded (committed by someone else): the
        caller then changes nothing. The record commits or rolls back with the state change.
        """


class PaymentLedger(Protocol):
    """The payments ledger: per payment intent, what was captured and what refunds gave back.

    Written in the same unit of work as the booking change a payment causes, so a payment is
    applied once per intent whatever event delivers it, and refunds never exceed the capture
    (PostgreSQL: a CHECK on the row; the memory adapter checks the same at commit).
    """

    def capture(self, payment: Payment, at: datetime) -> bool:
        """Record a captured payment: True the first time for its intent, False if that intent
        was already applied (committed by someone else, or earlier in this unit)."""

    def add_refund(self, payment_intent_id: str, amount: Money, at: datetime) -> Payment:
        """Count a refund decision against the payment; returns the updated entry.

        Raises RefundExceedsCapture if the refunds would exceed the capture (or there is no
        capture, or the currency differs). The unit of work stays usable afterwards.
        """

    def get(self, payment_intent_id: str) -> Payment | None: ...

    def for_booking(self, booking_id: int) -> list[Payment]:
        """The booking's payments, oldest first."""


class CursorStore(Protocol):
    """Named positions of background readers (e.g. the newest provider event seen)."""

    def get(self, name: str) -> str | None: ...

    def set(self, name: str, value: str) -> None:
        """Insert or replace; visible to others when this unit of work commits."""


class Outbox(Protocol):
    def add(
        self,
        kind: str,
        payload: Mapping[str, Any],
        run_at: datetime,
        *,
        unique_key: str | None = None,
    ) -> bool:
        """Enqueue a job; it becomes visible to workers when this unit of work commits.

        With ``unique_key``, at most one job with that key ever exists: False (and nothing
        enqueued) when one does already. True otherwise.
        """

    def claim_due(self, now: datetime, limit: int = 10, lease_seconds: int = 300) -> list[Job]:
        """Take up to ``limit`` due pending jobs: their run_at moves ``lease_seconds`` ahead.

        Once this unit of work commits, other workers skip them until the lease ends, so a job
        runs once even with many workers, and again only if its worker died mid-job.
        (PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED, then UPDATE run_at.)
        """

    def renew(self, job_id: int, *, leased_until: datetime, until: datetime) -> bool:
        """Extend a running job's lease from ``leased_until`` to ``until`` (a heartbeat).

        True when renewed; False when the job is no longer pending under that lease (finished,
        parked, or its lease lapsed and another worker took it): the caller stops renewing.
        """

    def complete(self, job_id: int) -> None: ...

    def retry(self, job_id: int, *, error: str, run_at: datetime) -> None:
        """Count a failed attempt and schedule the next one."""

    def park(self, job_id: int, *, error: str) -> None:
        """Give up retrying; the job stays visible with its last error."""

    def list(self, status: JobStatus | None = None, limit: int = 100) -> list[Job]: ...

    def count_by_status(self) -> dict[JobStatus, int]:
        """How many jobs are in each status (statuses with none may be left out)."""

    def oldest_due(self, now: datetime) -> datetime | None:
        """The earliest ``run_at`` of a pending job due at ``now`` (None when none is due).

        A claimed job's lease moves its run_at ahead, so a running job is not "due"; a job whose
        worker died becomes due again when its lease ends.
        """

    def get(self, job_id: int) -> Job | None: ...

    def requeue(self, job_id: int, run_at: datetime) -> Job | None:
        """Make a parked job pending again, due at ``run_at``, its attempts counted from zero
        (its last error stays for reference). None when there is no such parked job."""


@frozen
class IdempotencyRecord:
    """A client's Idempotency-Key and what the first request with it answered.

    ``status_code`` is None while the first request is still running; it holds the key until
    ``lease_expires_at`` (seconds, not a day: a request that died gives the key up soon).
    ``booking_id`` is the hold that request made. ``sealed_secret`` holds a one-time secret of
    the answer (the manage token) sealed by the entrypoint, never in clear.
    """

    key: str
    fingerprint: str
    created_at: datetime
    status_code: int | None = None
    response: Mapping[str, Any] | None = None
    sealed_secret: str | None = None
    lease_expires_at: datetime | None = None
    booking_id: int | None = None


class IdempotencyStore(Protocol):
    def reserve(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        """Claim ``record.key``: None if it was free (now ours), else the existing record."""

    def take_over(self, key: str, now: datetime, lease_expires_at: datetime) -> bool:
        """Claim a key whose first request is unfinished and whose lease ran out before
        ``now``; True if this unit now holds it (with a new lease, no hold attached)."""

    def attach(self, key: str, booking_id: int) -> None:
        """Note the hold the request holding ``key`` made (in the hold's transaction)."""

    def complete(
        self, key: str, status_code: int, response: Mapping[str, Any], sealed_secret: str | None
    ) -> None:
        """Store the answer for a key this unit reserved earlier."""

    def release(self, key: str) -> None:
        """Forget a reservation whose request failed, so the client can retry it."""

    def purge(self, older_than: datetime) -> int:
        """Delete records created before ``older_than``; returns how many."""


class UnitOfWork(Protocol):
    """One transaction. ``with uow:`` begins; leaving without ``commit()`` rolls back.

    A UnitOfWork object may be entered again after it exits: each ``with`` is a new transaction.
    Never share one between threads or requests; build one per use from the factory.
    """

    practitioners: PractitionerRepository
    bookings: BookingRepository
    users: UserRepository
    payment_events: PaymentEventLog
    ledger: PaymentLedger
    cursors: CursorStore
    outbox: Outbox
    idempotency: IdempotencyStore
    audit: AuditLog
    api_tokens: ApiTokenRepository

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None:
        """Make the writes durable; translates constraint violations to core errors."""

    def rollback(self) -> None: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]


# -- payments ------------------------------------------------------------------------------------


@frozen
class CheckoutRequest:
    booking_id: int
    amount: Money
    description: str
    customer_email: str
    expires_at: datetime
    idempotency_key: str


@frozen
class CheckoutSession:
    id: str
    url: str
    expires_at: datetime


class CheckoutState(enum.StrEnum):
    OPEN = "open"
    COMPLETE = "complete"
    EXPIRED = "expired"


@frozen
class CheckoutInfo:
    """A checkout session as the provider reports it now."""

    id: str
    state: CheckoutState
    booking_id: int | None = None
    payment_status: str | None = None  # paid | unpaid | no_payment_required
    amount: Money | None = None
    payment_intent_id: str | None = None


@frozen
class RefundRequest:
    booking_id: int
    payment_intent_id: str
    amount: Money
    idempotency_key: str
    reason: str = "requested_by_customer"


@frozen
class RefundResult:
    id: str
    amount: Money
    status: str  # pending | succeeded | failed | canceled | requires_action, as Stripe says


class PaymentEventType(enum.StrEnum):
    CHECKOUT_COMPLETED = "checkout.session.completed"
    ASYNC_PAYMENT_SUCCEEDED = "checkout.session.async_payment_succeeded"
    CHECKOUT_EXPIRED = "checkout.session.expired"
    ASYNC_PAYMENT_FAILED = "checkout.session.async_payment_failed"
    REFUND_UPDATED = "refund.updated"
    REFUND_CREATED = "refund.created"
    REFUND_FAILED = "refund.failed"
    CHARGE_REFUNDED = "charge.refunded"


@frozen
class PaymentEvent:
    """A verified provider event, reduced to what the core needs.

    ``type`` is the provider's type string (unknown types are kept and ignored by the use case).
    """

    id: str
    type: str
    created: datetime
    session_id: str | None = None
    booking_id: int | None = None
    payment_status: str | None = None  # paid | unpaid | no_payment_required
    amount: Money | None = None
    payment_intent_id: str | None = None
    refund_id: str | None = None
    refund_status: str | None = None
    # charge.refunded: the total refunded on the charge so far (a partial refund is less than
    # what was captured).
    refunded: Money | None = None
    livemode: bool = False


class PaymentGateway(Protocol):
    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        """Create a hosted checkout; the same idempotency key returns the same session.

        Raises PaymentUnavailable when the provider fails or times out.
        """

    def expire_checkout(self, session_id: str) -> CheckoutState:
        """End an open checkout so it can no longer be paid; returns its final state.

        An already complete session is not an error: returns COMPLETE (the caller confirms
        instead). Raises CheckoutNotFound for a session the provider does not know,
        PaymentUnavailable on provider failure.
        """

    def retrieve_checkout(self, session_id: str) -> CheckoutInfo:
        """The session as the provider has it now.

        Raises CheckoutNotFound (unknown session), PaymentUnavailable (provider failure).
        """

    def recent_events(self, created_after: datetime, *, limit: int = 1000) -> list[PaymentEvent]:
        """Events the provider created after ``created_after`` (all pages, up to ``limit``),
        oldest first: what the webhook may have missed. Raises PaymentUnavailable.
        """

    def refund(self, request: RefundRequest) -> RefundResult:
        """Refund (part of) a payment; idempotent per key.

        Raises RefundFailed / PaymentUnavailable.
        """

    def parse_event(self, payload: bytes, signature: str | None) -> PaymentEvent:
        """Verify and parse a webhook body. Raises InvalidSignature or InvalidPayload."""


# -- calendar ------------------------------------------------------------------------------------


@frozen
class CalendarBookingRequest:
    link: CalendarLink
    booking_id: int
    start: datetime
    end: datetime
    client: Client
    timezone: str


class CalendarGateway(Protocol):
    """An external calendar (Cal.com) holding a practitioner's availability and bookings."""

    def link_for(self, practitioner: Practitioner) -> CalendarLink | None:
        """The practitioner's link (stored link first, then configuration), or None if unlinked."""

    def free_slots(
        self, link: CalendarLink, service: Service, window: Interval, timezone: str
    ) -> list[Interval]:
        """Bookable starts in ``window``, each one service long. Raises CalendarUnavailable."""

    def create_booking(self, request: CalendarBookingRequest) -> str:
        """Create the booking there; returns its uid.

        Raises CalendarSlotTaken / CalendarUnavailable.
        """

    def cancel_booking(self, uid: str, reason: str) -> None:
        """Cancel there; an already cancelled booking is not an error.

        Raises CalendarUnavailable.
        """

    def reschedule_booking(self, uid: str, new_start: datetime, reason: str) -> str:
        """Move it there; returns the new uid (Cal.com makes a new booking). Raises as create."""

    def invalidate(self, practitioner_id: int) -> None:
        """Forget cached slots of this practitioner (we booked or cancelled)."""


class SlotLookup(NamedTuple):
    """What a slot cache lookup found: the slots (None on a miss) and the owners' current stamp
    (their generations, in the order asked; empty when the cache could not answer)."""

    slots: list[Interval] | None
    stamp: tuple[int, ...]


class SlotCache(Protocol):
    """Calendar slots per key, each entry owned by practitioner ids, with a time to live.

    A port between adapters: the Cal.com gateway consumes it and the slot cache adapters
    (in-process, Redis, PostgreSQL) implement it, so neither imports the other. Never raises: a
    cache that cannot answer is a miss, a cache that cannot store forgets.
    """

    def get(self, key: str, owners: Sequence[int]) -> SlotLookup:
        """The slots stored under ``key`` if still fresh and no owner was invalidated since.

        The returned stamp is passed back to ``put`` for a value fetched after this lookup.
        """

    def put(
        self,
        key: str,
        owners: Sequence[int],
        stamp: tuple[int, ...],
        slots: Sequence[Interval],
        ttl: float,
    ) -> None:
        """Store ``slots`` for ``ttl`` seconds, while the owners' generations equal ``stamp``."""

    def invalidate(self, owner: int) -> None:
        """Make every entry owned by practitioner ``owner`` a miss, in every process sharing it."""


# -- notifications, time -------------------------------------------------------------------------


class Notifier(Protocol):
    def notify(self, notification: Notification) -> None:
        """Tell each of the notification's recipients, or raise ExternalServiceError (the
        outbox retries the job; a job carries one recipient, so nobody is told twice)."""


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
