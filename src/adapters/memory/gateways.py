"""Fake payment gateway, calendar, notifier and clock: real behaviour, no network, told to fail."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs
from attrs import define, field

from adapters.stripe.events import (
    checkout_session_event,
    parse_stripe_event,
    sign_payload,
    verify_signature,
)
from booking_core.errors import (
    CalendarSlotTaken,
    CalendarUnavailable,
    CheckoutNotFound,
    DuplicateRequest,
    ExternalServiceError,
    InvalidPayload,
    PaymentUnavailable,
    RefundFailed,
)
from booking_core.model import CalendarLink, Interval, Money, Practitioner, Service
from booking_core.notifications import Notification
from booking_core.ports import (
    CalendarBookingRequest,
    CheckoutInfo,
    CheckoutRequest,
    CheckoutSession,
    CheckoutState,
    PaymentEvent,
    RefundRequest,
    RefundResult,
)

# -- clock ---------------------------------------------------------------------------------------


class FixedClock:
    """A clock that stands still until told to move."""

    def __init__(self, now: datetime | None = None) -> None:
        self._now = now or datetime(2030, 1, 7, 8, 0, tzinfo=UTC)  # a Monday
        if self._now.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")

    def now(self) -> datetime:
        return self._now

    def set(self, now: datetime) -> None:
        self._now = now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


# -- payments ------------------------------------------------------------------------------------


@define
class FakeSession:
    id: str
    booking_id: int
    amount: Money
    url: str
    expires_at: datetime
    customer_email: str
    description: str
    state: CheckoutState = CheckoutState.OPEN
    payment_intent_id: str | None = None


def sign_fake_event(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A ``t=...,v1=...`` header computed as Stripe does, for the fake gateway's webhooks."""
    return sign_payload(payload, secret, timestamp)


class FakePaymentGateway:
    """A payment provider kept in memory, with Stripe's semantics where the core relies on them.

    - the same idempotency key returns the same session (a different request with it is refused);
    - only an open session can be expired; a completed one reports COMPLETE;
    - refunds are idempotent per key and cannot exceed what was paid;
    - ``fail_next(n)`` / ``failing = True`` make calls raise PaymentUnavailable, as an outage would;
    - webhook bodies are verified with the same HMAC scheme as Stripe's, 300 s either way;
    - every event body made by ``event_for`` is also listed by ``recent_events`` (as Stripe's
      ``GET /v1/events``), dated by ``now`` (set it to the test clock);
    - ``forget(session_id)`` makes a session unknown (404), as a key or account change does.

    ``checkout_base_url`` prefixes the checkout URLs it hands out (``/dev/checkout/<id>``); this
    fake serves no page: the development stand-in is entrypoints.dev.offline_checkout.
    """

    def __init__(
        self,
        *,
        checkout_base_url: str = "http://localhost:3000",
        webhook_secret: str = "whsec_fake",  # noqa: S107 - a test fixture, not a secret
        tolerance: int = 300,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.now = now or (lambda: datetime.now(UTC))
        self.events: list[PaymentEvent] = []
        self.checkout_base_url = checkout_base_url.rstrip("/")
        self.webhook_secret = webhook_secret
        self.tolerance = tolerance
        self.sessions: dict[str, FakeSession] = {}
        self.refunds: dict[str, RefundResult] = {}
        self.refunded: dict[str, int] = {}
        self.calls: list[tuple[str, object]] = []
        self.failing = False
        self._fail_next = 0
        self._keys: dict[str, tuple[object, object]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def fail_next(self, times: int = 1) -> None:
        self._fail_next = times

    def _maybe_fail(self, what: str) -> None:
        if self.failing or self._fail_next > 0:
            self._fail_next = max(0, self._fail_next - 1)
            raise PaymentUnavailable(f"payment provider unavailable ({what})")

    def _idempotent(self, key: str, request: object) -> object | None:
        seen = self._keys.get(key)
        if seen is None:
            return None
        if seen[0] != request:
            raise DuplicateRequest(f"idempotency key {key!r} reused with other parameters")
        return seen[1]

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        with self._lock:
            self.calls.append(("create_checkout", request))
            self._maybe_fail("create checkout")
            previous = self._idempotent(request.idempotency_key, request)
            if isinstance(previous, CheckoutSession):
                return previous
            session_id = f"cs_test_fake{next(self._ids):06d}"
            self.sessions[session_id] = FakeSession(
                id=session_id,
                booking_id=request.booking_id,
                amount=request.amount,
                url=f"{self.checkout_base_url}/dev/checkout/{session_id}",
                expires_at=request.expires_at,
                customer_email=request.customer_email,
                description=request.description,
            )
            result = CheckoutSession(
                id=session_id, url=self.sessions[session_id].url, expires_at=request.expires_at
            )
            self._keys[request.idempotency_key] = (request, result)
            return result

    def expire_checkout(self, session_id: str) -> CheckoutState:
        with self._lock:
            self.calls.append(("expire_checkout", session_id))
            self._maybe_fail("expire checkout")
            session = self.sessions.get(session_id)
            if session is None:
                raise CheckoutNotFound(f"no such checkout session {session_id}")
            if session.state is CheckoutState.OPEN:
                session.state = CheckoutState.EXPIRED
            return session.state

    def retrieve_checkout(self, session_id: str) -> CheckoutInfo:
        with self._lock:
            self.calls.append(("retrieve_checkout", session_id))
            self._maybe_fail("retrieve checkout")
            session = self.sessions.get(session_id)
            if session is None:
                raise CheckoutNotFound(f"no such checkout session {session_id}")
            paid = session.state is CheckoutState.COMPLETE
            return CheckoutInfo(
                id=session.id,
                state=session.state,
                booking_id=session.booking_id,
                payment_status="paid" if paid else "unpaid",
                amount=session.amount,
                payment_intent_id=session.payment_intent_id,
            )

    def forget(self, session_id: str) -> None:
        """The provider no longer knows the session (another key or account): 404 from now."""
        with self._lock:
            del self.sessions[session_id]

    def recent_events(self, created_after: datetime, *, limit: int = 1000) -> list[PaymentEvent]:
        with self._lock:
            self.calls.append(("recent_events", created_after))
            self._maybe_fail("list events")
            found = [e for e in self.events if e.created > created_after]
        return sorted(found, key=lambda e: e.created)[:limit]

    def complete(self, session_id: str) -> FakeSession:
        """The customer pays (what Stripe's hosted page does); the caller then sends the event."""
        with self._lock:
            session = self.sessions[session_id]
            if session.state is not CheckoutState.OPEN:
                raise PaymentUnavailable(f"checkout session {session_id} is {session.state.value}")
            session.state = CheckoutState.COMPLETE
            session.payment_intent_id = f"pi_fake{next(self._ids):06d}"
            return session

    def refund(self, request: RefundRequest) -> RefundResult:
        with self._lock:
            self.calls.append(("refund", request))
            self._maybe_fail("refund")
            previous = self._idempotent(request.idempotency_key, request)
            if isinstance(previous, RefundResult):
                return previous
            paid = next(
                (
                    s.amount.amount
                    for s in self.sessions.values()
                    if s.payment_intent_id == request.payment_intent_id
                ),
                None,
            )
            already = self.refunded.get(request.payment_intent_id, 0)
            if paid is not None and already + request.amount.amount > paid:
                raise RefundFailed("refund exceeds the amount paid")
            self.refunded[request.payment_intent_id] = already + request.amount.amount
            result = RefundResult(
                id=f"re_fake{next(self._ids):06d}", amount=request.amount, status="succeeded"
            )
            self.refunds[result.id] = result
            self._keys[request.idempotency_key] = (request, result)
            return result

    def event_for(self, session_id: str, event_type: str, *, event_id: str | None = None) -> bytes:
        """A Stripe-shaped event body for a session (what Stripe would POST to the webhook)."""
        session = self.sessions[session_id]
        body = checkout_session_event(
            event_id=event_id or f"evt_fake{next(self._ids):06d}",
            event_type=event_type,
            session_id=session.id,
            booking_id=session.booking_id,
            amount=session.amount,
            status=session.state.value,
            payment_intent_id=session.payment_intent_id,
            created=int(self.now().timestamp()),
        )
        with self._lock:
            self.events.append(parse_stripe_event(json.loads(body)))
        return body

    def parse_event(self, payload: bytes, signature: str | None) -> PaymentEvent:
        self._verify(payload, signature)
        try:
            body = json.loads(payload)
            return parse_stripe_event(body)
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidPayload("webhook body is not a valid event") from exc

    def _verify(self, payload: bytes, signature: str | None) -> None:
        verify_signature(payload, signature, self.webhook_secret, tolerance=self.tolerance)


# -- calendar ------------------------------------------------------------------------------------


@define
class FakeCalendarBooking:
    uid: str
    event_type: str
    start: datetime
    end: datetime
    email: str
    booking_id: int
    cancelled: bool = False


@define
class FakeCalendarGateway:
    """An external calendar in memory: links per practitioner, offered starts per link.

    Booked times are no longer offered, and booking a taken time raises CalendarSlotTaken, as
    Cal.com does. ``failing = True`` makes every call raise CalendarUnavailable.
    """

    links: dict[int, CalendarLink] = field(factory=dict)
    offered: dict[str, list[datetime]] = field(factory=dict)
    bookings: dict[str, FakeCalendarBooking] = field(factory=dict)
    failing: bool = False
    invalidated: list[int] = field(factory=list)
    calls: int = 0
    _ids: itertools.count[int] = field(factory=lambda: itertools.count(1))

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.failing:
            raise CalendarUnavailable("fake calendar is down")

    def link_for(self, practitioner: Practitioner) -> CalendarLink | None:
        return practitioner.calendar_link or self.links.get(practitioner.id or 0)

    def free_slots(
        self, link: CalendarLink, service: Service, window: Interval, timezone: str
    ) -> list[Interval]:
        self._maybe_fail()
        taken = [
            Interval(b.start, b.end)
            for b in self.bookings.values()
            if b.event_type == link.event_type and not b.cancelled
        ]
        slots = []
        for start in self.offered.get(link.event_type, []):
            slot = Interval(start, start + service.duration)
            if window.contains(slot) and not any(t.overlaps(slot) for t in taken):
                slots.append(slot)
        return slots

    def create_booking(self, request: CalendarBookingRequest) -> str:
        self._maybe_fail()
        span = Interval(request.start, request.end)
        for b in self.bookings.values():
            if (
                b.event_type == request.link.event_type
                and not b.cancelled
                and Interval(b.start, b.end).overlaps(span)
            ):
                raise CalendarSlotTaken("User either already has booking at this time")
        uid = f"cal_fake_{next(self._ids)}"
        self.bookings[uid] = FakeCalendarBooking(
            uid=uid,
            event_type=request.link.event_type,
            start=request.start,
            end=request.end,
            email=request.client.email,
            booking_id=request.booking_id,
        )
        return uid

    def cancel_booking(self, uid: str, reason: str) -> None:
        self._maybe_fail()
        if uid in self.bookings:
            self.bookings[uid].cancelled = True

    def reschedule_booking(self, uid: str, new_start: datetime, reason: str) -> str:
        self._maybe_fail()
        old = self.bookings[uid]
        old.cancelled = True
        new_uid = f"cal_fake_{next(self._ids)}"
        self.bookings[new_uid] = FakeCalendarBooking(
            uid=new_uid,
            event_type=old.event_type,
            start=new_start,
            end=new_start + (old.end - old.start),
            email=old.email,
            booking_id=old.booking_id,
        )
        return new_uid

    def invalidate(self, practitioner_id: int) -> None:
        self.invalidated.append(practitioner_id)


# -- notifications -------------------------------------------------------------------------------


class RecordingNotifier:
    """Keeps what it was told, one entry per recipient (as a mailer sends one mail each);
    ``failing = True`` makes it raise like a dead SMTP server."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []
        self.failing = False

    def notify(self, notification: Notification) -> None:
        if self.failing:
            raise ExternalServiceError("mail server unavailable")
        self.sent.extend(
            attrs.evolve(notification, recipients=(recipient,))
            for recipient in notification.recipients
        )

    def told(self, role: str = "client") -> list[str]:
        """The kinds told to ``role``, in order."""
        return [n.kind.value for n in self.sent if n.recipients[0].role.value == role]
