"""Housekeeping use cases run by the worker: the payment reconciler (expired and half-written
holds, completed checkouts, missed webhooks) and completing past bookings."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

from attrs import frozen

from booking_core.errors import (
    CheckoutNotFound,
    ConcurrentUpdate,
    PaymentFailed,
)
from booking_core.model import Booking, BookingStatus
from booking_core.policy import BookingRules
from booking_core.ports import (
    BookingFilter,
    CalendarGateway,
    CheckoutInfo,
    CheckoutState,
    Clock,
    PaymentEvent,
    PaymentEventType,
    PaymentGateway,
    UnitOfWork,
)
from booking_core.usecases._shared import _get, _id, _practitioner_and_service
from booking_core.usecases.booking import checkout_request
from booking_core.usecases.payments import PaymentOutcome, handle_payment_event

log = logging.getLogger(__name__)

# A hold with no checkout session this long after it was written lost its request (a crash or a
# database failure between the hold and storing the session): longer than any checkout call
# takes (the Stripe adapter's timeouts and retries stay well below it).
UNATTACHED_GRACE = timedelta(seconds=50)
# Provider events are re-read from a little before the newest one seen (same-second events,
# clock skew); the event log makes the overlap harmless.
EVENT_OVERLAP = timedelta(minutes=2)
EVENT_LOOKBACK = timedelta(hours=24)  # on the first run
EVENTS_CURSOR = "payments.events"
MAX_HOLDS_PER_PASS = 1000


class WarningThrottle:
    """Log a repeated warning about one thing at most once per cool-down (per process)."""

    def __init__(self, cooldown: timedelta = timedelta(minutes=10)) -> None:
        self._cooldown = cooldown
        self._last: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now: datetime) -> bool:
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._cooldown:
                return False
            if len(self._last) > 10_000:
                self._last.clear()
            self._last[key] = now
            return True


_WARNINGS = WarningThrottle()  # per process: the worker's passes share it
_throttle = threading.local()


def _warn(key: str, now: datetime, message: str, *args: object) -> None:
    throttle: WarningThrottle = getattr(_throttle, "current", None) or _WARNINGS
    if throttle.allow(key, now):
        log.warning(message, *args)


@frozen
class Reconciled:
    """What one reconciler pass did."""

    released: int = 0  # holds given back to the calendar
    confirmed: int = 0  # bookings confirmed from what the provider reported
    recovered_events: int = 0  # missed provider events applied

    @property
    def total(self) -> int:
        return self.released + self.confirmed + self.recovered_events


def reconcile_payments(
    *,
    uow: UnitOfWork,
    payments: PaymentGateway,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules | None = None,
    limit: int = 100,
    warnings: WarningThrottle | None = None,
) -> Reconciled:
    """Heal what crashes and lost webhooks left: one worker pass.

    1. Missed webhooks: the provider's events since the newest one seen are applied through
       handle_payment_event, as the webhook would have (each event id once).
    2. Half-written holds (pending, no checkout session, older than UNATTACHED_GRACE): the
       checkout is asked for again with the same idempotency key, which returns the original
       session if the provider made one; a paid one confirms the booking, any other is expired
       and the hold released, so the slot is free for the client's retry.
    3. Expired holds, every one of them page by page: the checkout is expired first; one the
       provider reports complete is confirmed at once (no waiting for the webhook); one it does
       not know (a retrieve confirms the 404) is released like an unpaid one.

    Provider failures are logged at most once per cool-down per object (``warnings``, by
    default one throttle per process).
    """
    rules = rules or BookingRules()
    _throttle.current = warnings
    try:
        recovered = _recover_events(uow, payments, calendar, clock, rules)
        released, confirmed = _settle_unattached(uow, payments, calendar, clock, rules, limit)
        more_released, more_confirmed = _settle_expired(
            uow, payments, calendar, clock, rules, limit
        )
    finally:
        _throttle.current = None
    return Reconciled(
        released=released + more_released,
        confirmed=confirmed + more_confirmed,
        recovered_events=recovered,
    )


def expire_stale_holds(
    *,
    uow: UnitOfWork,
    payments: PaymentGateway,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules | None = None,
    limit: int = 100,
) -> int:
    """Release (or confirm, when paid) every pending booking whose hold ran out; returns how
    many were released. See reconcile_payments, step 3."""
    released, _ = _settle_expired(uow, payments, calendar, clock, rules or BookingRules(), limit)
    return released


def _recover_events(
    uow: UnitOfWork,
    payments: PaymentGateway,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules,
) -> int:
    now = clock.now()
    with uow:
        stored = uow.cursors.get(EVENTS_CURSOR)
    since = datetime.fromisoformat(stored) if stored else now - EVENT_LOOKBACK
    try:
        events = payments.recent_events(since - EVENT_OVERLAP)
    except PaymentFailed as exc:
        _warn("events", now, "could not list recent payment events yet: %s", exc)
        return 0
    applied = 0
    newest = since
    for event in events:
        outcome = handle_payment_event(event, uow=uow, calendar=calendar, clock=clock, rules=rules)
        if outcome != PaymentOutcome.DUPLICATE:
            applied += 1
            log.info("recovered a missed payment event %s (%s): %s", event.id, event.type, outcome)
        newest = max(newest, event.created)
    if newest > since or stored is None:
        with uow:
            uow.cursors.set(EVENTS_CURSOR, max(newest, since).astimezone(UTC).isoformat())
            uow.commit()
    return applied


def _settle_unattached(
    uow: UnitOfWork,
    payments: PaymentGateway,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules,
    limit: int,
) -> tuple[int, int]:
    now = clock.now()
    with uow:
        holds = uow.bookings.list_unattached_holds(now - UNATTACHED_GRACE, limit)
    released = confirmed = 0
    for hold in holds:
        info = _find_checkout(hold, uow, payments, rules, now)
        if info is not None and _confirm_if_paid(hold, info, uow, calendar, clock, rules):
            confirmed += 1
            continue
        if info is not None and info.state is CheckoutState.OPEN:
            try:
                state = payments.expire_checkout(info.id)
            except PaymentFailed as exc:
                # Released anyway: the slot must not stay blocked. A payment on the session
                # still arrives as a late payment (confirmed if free, else refunded).
                _warn(f"expire:{info.id}", now, "could not expire checkout %s: %s", info.id, exc)
                state = CheckoutState.OPEN
            if state is CheckoutState.COMPLETE:
                info = _retrieve(payments, info.id, now)
                if info is not None and _confirm_if_paid(hold, info, uow, calendar, clock, rules):
                    confirmed += 1
                    continue
        if _release(uow, calendar, clock, _id(hold), "the checkout was never attached"):
            released += 1
    return released, confirmed


def _find_checkout(
    hold: Booking, uow: UnitOfWork, payments: PaymentGateway, rules: BookingRules, now: datetime
) -> CheckoutInfo | None:
    """The provider's session for a hold whose request died, if it made one.

    Asking for the checkout again with the same key and parameters returns the first answer
    (the provider keeps keys for 24 h); if the first request never reached the provider this
    makes the session now, and the caller expires it. None when it cannot be asked (the hold
    has run out, so the provider would refuse the expiry; or the provider fails).
    """
    if rules.hold_expiry(hold.created_at) <= now:
        return None  # run out: a session made for it has expired at the provider too
    with uow:
        practitioner, service = _practitioner_and_service(
            uow, hold.practitioner_id, hold.service_id
        )
    try:
        session = payments.create_checkout(checkout_request(hold, practitioner, service, rules))
    except PaymentFailed as exc:
        _warn(f"find:{hold.id}", now, "could not look up the checkout of hold %s: %s", hold.id, exc)
        return None
    return _retrieve(payments, session.id, now)


def _retrieve(payments: PaymentGateway, session_id: str, now: datetime) -> CheckoutInfo | None:
    try:
        return payments.retrieve_checkout(session_id)
    except PaymentFailed as exc:
        _warn(f"retrieve:{session_id}", now, "could not retrieve checkout %s: %s", session_id, exc)
        return None


def _confirm_if_paid(
    hold: Booking,
    info: CheckoutInfo,
    uow: UnitOfWork,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules,
) -> bool:
    """Apply a complete, paid session through the webhook's own path (ledger and event log
    included), so the webhook arriving later changes nothing."""
    if info.state is not CheckoutState.COMPLETE or info.payment_status != "paid":
        return False
    if hold.checkout_session_id is None:
        with uow:
            booking = _get(uow, _id(hold))
            if booking.checkout_session_id is None:
                booking.attach_checkout(info.id, at=clock.now())
                uow.bookings.save(booking)
                uow.commit()
    event = PaymentEvent(
        id=f"reconciled:{info.id}:paid",
        type=PaymentEventType.CHECKOUT_COMPLETED,
        created=clock.now(),
        session_id=info.id,
        booking_id=info.booking_id,
        payment_status=info.payment_status,
        amount=info.amount,
        payment_intent_id=info.payment_intent_id,
    )
    outcome = handle_payment_event(event, uow=uow, calendar=calendar, clock=clock, rules=rules)
    log.info("booking %s: checkout %s reported paid: %s", hold.id, info.id, outcome)
    return True


def abandon_checkout(
    booking_id: int,
    *,
    uow: UnitOfWork,
    payments: PaymentGateway,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules,
) -> None:
    """End the checkout a released hold may have at the provider (its request died or failed
    before storing it): found by asking again with the same key, then expired; one that was
    paid goes through the payment path (confirmed if the slot is still free, else refunded).

    Raises PaymentFailed while the provider cannot be asked (the outbox retries).
    """
    now = clock.now()
    with uow:
        hold = _get(uow, booking_id)
    if hold.checkout_session_id is not None:
        session_id = hold.checkout_session_id
    else:
        if rules.hold_expiry(hold.created_at) <= now:
            return  # a session made for it has expired at the provider already
        with uow:
            practitioner, service = _practitioner_and_service(
                uow, hold.practitioner_id, hold.service_id
            )
        session_id = payments.create_checkout(
            checkout_request(hold, practitioner, service, rules)
        ).id
    try:
        state = payments.expire_checkout(session_id)
    except CheckoutNotFound:
        return
    if state is CheckoutState.COMPLETE:
        _confirm_if_paid(hold, payments.retrieve_checkout(session_id), uow, calendar, clock, rules)


def _settle_expired(
    uow: UnitOfWork,
    payments: PaymentGateway,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules,
    limit: int,
) -> tuple[int, int]:
    now = clock.now()
    released = confirmed = seen = 0
    after: tuple[datetime, int] | None = None
    while seen < MAX_HOLDS_PER_PASS:
        with uow:
            page = uow.bookings.list_expired_holds(now, limit, after=after)
        if not page:
            break
        for hold in page:
            seen += 1
            outcome = _settle_one_expired(hold, uow, payments, calendar, clock, rules, now)
            released += outcome == "released"
            confirmed += outcome == "confirmed"
        last = page[-1]
        after = (last.hold_expires_at or now, _id(last))
        if len(page) < limit:
            break
    return released, confirmed


def _settle_one_expired(
    hold: Booking,
    uow: UnitOfWork,
    payments: PaymentGateway,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules,
    now: datetime,
) -> str:
    session_id = hold.checkout_session_id
    if session_id:
        if _awaiting_until(uow, hold) > now:
            return "skipped"  # a delayed payment method: its async event is awaited, not polled
        try:
            state = payments.expire_checkout(session_id)
        except CheckoutNotFound:
            # The provider does not know the session (another key or account, a reset offline
            # gateway). Released only once a retrieve says the same: nothing can be paid there.
            try:
                payments.retrieve_checkout(session_id)
            except CheckoutNotFound:
                log.warning(
                    "booking %s: checkout %s is unknown to the payment provider; releasing",
                    hold.id,
                    session_id,
                )
                state = CheckoutState.EXPIRED
            except PaymentFailed as exc:
                _warn(f"expire:{hold.id}", now, "could not check checkout %s: %s", session_id, exc)
                return "skipped"
            else:
                return "skipped"
        except PaymentFailed as exc:
            _warn(
                f"expire:{hold.id}",
                now,
                "could not expire checkout of booking %s yet: %s",
                hold.id,
                exc,
            )
            return "skipped"
        if state is CheckoutState.COMPLETE:
            info = _retrieve(payments, session_id, now)
            if info is not None and _confirm_if_paid(hold, info, uow, calendar, clock, rules):
                return "confirmed"
            if info is not None:
                _await_async_payment(uow, hold, now)
            return "skipped"  # complete but not paid yet: async_payment_* decides
    return "released" if _release(uow, calendar, clock, _id(hold), "hold expired") else "skipped"


# A checkout completed with a delayed payment method (a bank debit: days, not minutes) is
# looked at again after these waits, doubling, until async_payment_succeeded/failed arrives
# (the webhook, or the missed-event recovery above) settles it.
AWAIT_FIRST = timedelta(minutes=5)
AWAIT_CAP = timedelta(hours=6)


def _awaiting_key(hold: Booking) -> str:
    return f"payments.awaiting:{hold.id}"


def _awaiting_until(uow: UnitOfWork, hold: Booking) -> datetime:
    """When the reconciler may ask the provider about this hold again (the distant past when
    it has never found it waiting). Shared by every worker: kept in the cursor store."""
    with uow:
        stored = uow.cursors.get(_awaiting_key(hold))
    if not stored:
        return datetime.min.replace(tzinfo=UTC)
    return datetime.fromisoformat(stored.split("|", 1)[1])


def _await_async_payment(uow: UnitOfWork, hold: Booking, now: datetime) -> None:
    with uow:
        stored = uow.cursors.get(_awaiting_key(hold))
        checks = int(stored.split("|", 1)[0]) + 1 if stored else 1
        wait = min(AWAIT_CAP, AWAIT_FIRST * 2 ** (checks - 1))
        uow.cursors.set(_awaiting_key(hold), f"{checks}|{(now + wait).isoformat()}")
        uow.commit()
    log.info("booking %s: payment is on its way (delayed method); next look in %s", hold.id, wait)


def _release(
    uow: UnitOfWork, calendar: CalendarGateway, clock: Clock, booking_id: int, reason: str
) -> bool:
    with uow:
        booking = _get(uow, booking_id)
        if booking.status is not BookingStatus.PENDING:
            return False
        booking.expire(reason, at=clock.now())
        try:
            uow.bookings.save(booking)
            uow.commit()
        except ConcurrentUpdate:
            return False  # changed meanwhile (paid, cancelled): the next pass looks again
    calendar.invalidate(booking.practitioner_id)
    return True


def complete_finished_bookings(*, uow: UnitOfWork, clock: Clock, limit: int = 100) -> int:
    """Mark confirmed bookings whose end has passed as completed; returns how many.

    A booking that changed meanwhile (ConcurrentUpdate) is left for the next pass.
    """
    now = clock.now()
    with uow:
        candidates = uow.bookings.list(
            BookingFilter(status=BookingStatus.CONFIRMED, start_to=now, limit=limit)
        )
    done = 0
    for candidate in candidates:
        if candidate.end > now:
            continue
        with uow:
            booking = _get(uow, _id(candidate))
            if booking.status is not BookingStatus.CONFIRMED:
                continue
            booking.complete(at=now)
            try:
                uow.bookings.save(booking)
                uow.commit()
            except ConcurrentUpdate:
                continue
        done += 1
    return done
