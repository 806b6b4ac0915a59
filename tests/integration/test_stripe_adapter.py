"""The Stripe adapter (real SDK) against the local fake Stripe, then the core's payment flow on it.

First the adapter alone (wire format, idempotency, retries, timeouts, signatures, event parsing,
expiry, refunds), then booking_core's use cases with the adapter and the memory repositories:
booking, checkout, signed webhook, confirmation, cancellation and refund, with the replays,
reorderings and outages Stripe's documentation tells us to expect.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe

from adapters.memory import FixedClock, InMemoryStore, RecordingNotifier
from adapters.schedule import ScheduleCalendarGateway
from adapters.stripe import StripePaymentGateway
from booking_core.errors import (
    CheckoutNotFound,
    InvalidPayload,
    InvalidSignature,
    PaymentUnavailable,
    RefundFailed,
    SlotUnavailable,
)
from booking_core.jobs import Job, JobContext, run_due_jobs
from booking_core.model import (
    Booking,
    BookingStatus,
    Client,
    Money,
    RefundStatus,
)
from booking_core.policy import BookingRules
from booking_core.ports import (
    CheckoutRequest,
    CheckoutState,
    PaymentEvent,
    RefundRequest,
)
from booking_core.usecases import (
    JOB_REFUND,
    AvailabilityQuery,
    BookingRequested,
    CancelBooking,
    PaymentOutcome,
    RequestBooking,
    cancel_booking,
    get_availability,
    handle_payment_event,
    reconcile_payments,
    request_booking,
)
from booking_core.usecases.housekeeping import WarningThrottle
from entrypoints.dev.sample_data import sample_practitioner, sample_service

try:
    import stripe_fixtures
    from fake_stripe import FakeStripe
except ModuleNotFoundError:  # tests/integration imported as a package
    from tests.integration import stripe_fixtures
    from tests.integration.fake_stripe import FakeStripe

API_KEY = stripe_fixtures.API_KEY
BASE_URL = stripe_fixtures.BASE_URL
WEBHOOK_SECRET = stripe_fixtures.WEBHOOK_SECRET
GatewayFactory = stripe_fixtures.GatewayFactory

# pytest collects fixtures from a test module's globals: these bindings make them available here
# (and nowhere else) without registering a plugin.
fake_stripe = stripe_fixtures.fake_stripe
make_stripe_gateway = stripe_fixtures.make_stripe_gateway
stripe_gateway = stripe_fixtures.stripe_gateway

PRICE = Money(8000, "usd")


def checkout_request(
    booking_id: int = 42, *, amount: Money = PRICE, key: str | None = None, minutes: int = 31
) -> CheckoutRequest:
    return CheckoutRequest(
        booking_id=booking_id,
        amount=amount,
        description="Coaching session with Jordan Lee",
        customer_email="ada@example.com",
        expires_at=datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=minutes),
        idempotency_key=key or f"checkout:{booking_id}",
    )


def paid_session(fake: FakeStripe, gateway: StripePaymentGateway, booking_id: int = 42) -> str:
    """A checkout the customer has paid; returns its payment intent id."""
    session = gateway.create_checkout(checkout_request(booking_id))
    return str(fake.pay(session.id)["payment_intent"])


def signed(fake: FakeStripe, payload: bytes, **kwargs: Any) -> str:
    return fake.sign(payload, WEBHOOK_SECRET, **kwargs)


# -- checkout: what goes over the wire -------------------------------------------------------------


def test_checkout_sends_the_session_parameters_and_idempotency_key(
    fake_stripe: FakeStripe, stripe_gateway: StripePaymentGateway
) -> None:
    request = checkout_request(42)

    session = stripe_gateway.create_checkout(request)

    [sent] = fake_stripe.requests_to("POST", "/v1/checkout/sessions")
    assert sent.form == {
        "mode": "payment",
        "line_items": [
            {
                "quantity": "1",
                "price_data": {
                    "currency": "usd",
                    "unit_amount": "8000",
                    "product_data": {"name": "Coaching session with Jordan Lee"},
                },
            }
        ],
        "customer_email": "ada@example.com",
        "client_reference_id": "42",
        "metadata": {"booking_id": "42"},
        "payment_intent_data": {"metadata": {"booking_id": "42"}},
        "success_url": f"{BASE_URL}/booking/success?session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{BASE_URL}/booking/cancel",
        "expires_at": str(int(request.expires_at.timestamp())),
    }
    # The placeholder travels percent-encoded; Stripe fills it in on redirect.
    assert "session_id%3D%7BCHECKOUT_SESSION_ID%7D" in sent.body
    assert sent.idempotency_key == "checkout:42"
    assert sent.header("Authorization") == f"Bearer {API_KEY}"
    assert sent.header("Stripe-Version") == stripe.api_version
    assert (sent.header("User-Agent") or "").startswith("Stripe/v1 PythonBindings/16.")
    stored = fake_stripe.sessions[session.id]
    assert session.url == stored["url"]
    assert session.expires_at == request.expires_at
    assert (stored["status"], stored["amount_total"], stored["currency"]) == ("open", 8000, "usd")


def test_the_same_key_returns_the_same_session_and_telemetry_stays_off(
    fake_stripe: FakeStripe, stripe_gateway: StripePaymentGateway
) -> None:
    request = checkout_request(7)

    first = stripe_gateway.create_checkout(request)
    second = stripe_gateway.create_checkout(request)

    assert second == first
    assert list(fake_stripe.sessions) == [first.id]
    sent = fake_stripe.requests_to("POST", "/v1/checkout/sessions")
    assert [r.idempotency_key for r in sent] == ["checkout:7", "checkout:7"]
    # With telemetry on, the SDK reports the previous request's timing from the second one on.
    assert all(r.header("X-Stripe-Client-Telemetry") is None for r in fake_stripe.requests)
    assert stripe.enable_telemetry is False


def test_a_key_reused_with_other_parameters_is_refused_and_creates_nothing(
    fake_stripe: FakeStripe, stripe_gateway: StripePaymentGateway
) -> None:
    stripe_gateway.create_checkout(checkout_request(7))

    with pytest.raises(PaymentUnavailable, match="idempotency key"):
        stripe_gateway.create_checkout(checkout_request(7, amount=Money(9000, "usd")))

    assert len(fake_stripe.sessions) == 1


@pytest.mark.slow
def test_retries_after_500_reuse_the_same_idempotency_key(
    fake_stripe: FakeStripe, make_stripe_gateway: GatewayFactory
) -> None:
    gateway = make_stripe_gateway(max_network_retries=2)  # the production default
    fake_stripe.fail_next(2, status=500)

    session = gateway.create_checkout(checkout_request(9))

    attempts = fake_stripe.requests_to("POST", "/v1/checkout/sessions")
    assert [r.idempotency_key for r in attempts] == ["checkout:9"] * 3
    assert list(fake_stripe.sessions) == [session.id]

    intent = str(fake_stripe.pay(session.id)["payment_intent"])
    fake_stripe.fail_next(1, status=503, path="/v1/refunds")
    refund = gateway.refund(
        RefundRequest(booking_id=9, payment_intent_id=intent, amount=PRICE, idempotency_key="r:9")
    )
    assert [r.idempotency_key for r in fake_stripe.requests_to("POST", "/v1/refunds")] == [
        "r:9",
        "r:9",
    ]
    assert list(fake_stripe.refunds) == [refund.id]
    assert fake_stripe.refunded(intent) == 8000


def test_retries_are_bounded_then_payment_unavailable(
    fake_stripe: FakeStripe, make_stripe_gateway: GatewayFactory
) -> None:
    gateway = make_stripe_gateway(max_network_retries=1)
    fake_stripe.fail_always(status=500)

    with pytest.raises(PaymentUnavailable, match="server error"):
        gateway.create_checkout(checkout_request(5))

    assert len(fake_stripe.requests_to("POST", "/v1/checkout/sessions")) == 2
    assert fake_stripe.sessions == {}


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (500, "server error"),
        (502, "server error"),
        (429, "rate limiting"),
        (401, "API key"),
        (403, "may not"),
    ],
)
def test_stripe_errors_become_payment_unavailable(
    fake_stripe: FakeStripe, stripe_gateway: StripePaymentGateway, status: int, says: str
) -> None:
    fake_stripe.fail_next(status=status)

    with pytest.raises(PaymentUnavailable, match=says) as caught:
        stripe_gateway.create_checkout(checkout_request(3))

    assert isinstance(caught.value.__cause__, stripe.StripeError)


def test_a_rejected_api_key_is_never_logged_or_shown(
    fake_stripe: FakeStripe,
    make_stripe_gateway: GatewayFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret_key = "sk_test_wrong_key_that_must_not_leak"
    gateway = make_stripe_gateway(api_key=secret_key)

    with caplog.at_level(logging.DEBUG), pytest.raises(PaymentUnavailable) as caught:
        gateway.create_checkout(checkout_request(3))

    assert "rejected the API key" in str(caught.value)
    assert secret_key not in str(caught.value)
    assert secret_key not in caplog.text
    assert WEBHOOK_SECRET not in caplog.text
    assert secret_key not in repr(gateway)


def test_a_hanging_stripe_times_out_within_the_budget(
    fake_stripe: FakeStripe, make_stripe_gateway: GatewayFactory
) -> None:
    gateway = make_stripe_gateway(timeout=(1.0, 0.3))
    fake_stripe.hang_next(seconds=5)

    started = time.monotonic()
    with pytest.raises(PaymentUnavailable, match="did not answer in time"):
        gateway.create_checkout(checkout_request(4))

    assert time.monotonic() - started < 1.5


def test_an_unreachable_stripe_is_payment_unavailable(make_stripe_gateway: GatewayFactory) -> None:
    with FakeStripe() as gone:
        address = gone.url  # a port that nobody listens on once the server stops
    gateway = make_stripe_gateway(api_base=address)

    with pytest.raises(PaymentUnavailable, match="could not be reached"):
        gateway.create_checkout(checkout_request(4))


def test_without_an_api_key_the_gateway_is_not_built() -> None:
    with pytest.raises(ValueError, match="API key"):
        StripePaymentGateway(api_key="", webhook_secret="whsec_x", base_url=BASE_URL)


# -- webhooks: signatures and parsing --------------------------------------------------------------


def _completed_event(fake: FakeStripe, gateway: StripePaymentGateway) -> bytes:
    session = gateway.create_checkout(checkout_request(42))
    fake.pay(session.id)
    return fake.session_event(session.id, "checkout.session.completed", event_id="evt_1")


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda fake, body: fake.sign(body, "whsec_someone_else"), id="wrong-secret"),
        pytest.param(
            lambda fake, body: signed(fake, body, timestamp=int(time.time()) - 301), id="stale"
        ),
        pytest.param(lambda fake, body: signed(fake, body + b" "), id="body-changed"),
        pytest.param(lambda fake, body: None, id="missing"),
        pytest.param(lambda fake, body: "", id="empty"),
        pytest.param(lambda fake, body: "not a signature", id="malformed"),
        pytest.param(
            lambda fake, body: signed(fake, body).replace("v1=", "v0="), id="only-test-scheme"
        ),
    ],
)
def test_a_bad_stale_or_missing_signature_is_refused(
    fake_stripe: FakeStripe, stripe_gateway: StripePaymentGateway, forge: Any
) -> None:
    body = _completed_event(fake_stripe, stripe_gateway)

    with pytest.raises(InvalidSignature) as caught:
        stripe_gateway.parse_event(body, forge(fake_stripe, body))

    assert WEBHOOK_SECRET not in str(caught.value)


def test_a_signature_inside_the_tolerance_is_accepted(
    fake_stripe: FakeStripe, stripe_gateway: StripePaymentGateway
) -> None:
    body = _completed_event(fake_stripe, stripe_gateway)

    event = stripe_gateway.parse_event(
        body, signed(fake_stripe, body, timestamp=int(time.time()) - 240)
    )

    assert event.id == "evt_1"


@pytest.mark.parametrize(
    "body",
    [b"this is not json", b"[1, 2]", b'"text"', b"{}", b'{"id": "evt_1", "type": "x"}'],
    ids=["not-json", "array", "string", "empty-object", "no-data"],
)
def test_a_correctly_signed_body_that_is_not_an_event_is_invalid_payload(
    fake_stripe: FakeStripe, stripe_gateway: StripePaymentGateway, body: bytes
) -> None:
    with pytest.raises(InvalidPayload):
        stripe_gateway.parse_event(body, signed(fake_stripe, body))


def test_checkout_events_reduce_to_payment_events(
    fake_stripe: FakeStripe, stripe_gateway: StripePaymentGateway
) -> None:
    paid = stripe_gateway.create_checkout(checkout_request(42))
    intent = fake_stripe.pay(paid.id)["payment_intent"]
    delayed = stripe_gateway.create_checkout(checkout_request(43))
    fake_stripe.pay(delayed.id, delayed=True)
    abandoned = stripe_gateway.create_checkout(checkout_request(44))
    fake_stripe.expire_session(abandoned.id)

    def parse(session_id: str, kind: str) -> PaymentEvent:
        body = fake_stripe.session_event(session_id, kind)
        return stripe_gateway.parse_event(body, signed(fake_stripe, body))

    completed = parse(paid.id, "checkout.session.completed")
    assert completed.type == "checkout.session.completed"
    assert completed.id.startswith("evt_")
    assert (completed.session_id, completed.booking_id) == (paid.id, 42)
    assert (completed.payment_status, completed.amount) == ("paid", PRICE)
    assert completed.payment_intent_id == intent
    assert completed.livemode is False
    assert completed.created.tzinfo is not None

    waiting = parse(delayed.id, "checkout.session.completed")
    assert (waiting.booking_id, waiting.payment_status) == (43, "unpaid")
    fake_stripe.settle(delayed.id)
    settled = parse(delayed.id, "checkout.session.async_payment_succeeded")
    assert (settled.type, settled.payment_status) == (
        "checkout.session.async_payment_succeeded",
        "paid",
    )
    failed = parse(delayed.id, "checkout.session.async_payment_failed")
    assert (failed.type, failed.booking_id) == ("checkout.session.async_payment_failed", 43)

    expired = parse(abandoned.id, "checkout.session.expired")
    assert (expired.type, expired.session_id, expired.booking_id) == (
        "checkout.session.expired",
        abandoned.id,
        44,
    )
    assert expired.payment_intent_id is None


def test_refund_and_unknown_events_reduce_to_payment_events(
    fake_stripe: FakeStripe, stripe_gateway: StripePaymentGateway
) -> None:
    intent = paid_session(fake_stripe, stripe_gateway)
    fake_stripe.refund_status = "pending"
    refund = stripe_gateway.refund(
        RefundRequest(booking_id=42, payment_intent_id=intent, amount=PRICE, idempotency_key="r")
    )

    def parse(body: bytes) -> PaymentEvent:
        return stripe_gateway.parse_event(body, signed(fake_stripe, body))

    created = parse(fake_stripe.refund_event(refund.id, "refund.created"))
    assert (created.type, created.refund_id, created.refund_status) == (
        "refund.created",
        refund.id,
        "pending",
    )
    assert created.payment_intent_id == intent
    updated = parse(fake_stripe.refund_event(refund.id, "refund.updated", status="succeeded"))
    assert (updated.refund_id, updated.refund_status) == (refund.id, "succeeded")
    failed = parse(fake_stripe.refund_event(refund.id, "refund.failed", status="failed"))
    assert (failed.type, failed.refund_status) == ("refund.failed", "failed")
    charge = parse(
        fake_stripe.event(
            "charge.refunded",
            {"id": "ch_1", "object": "charge", "payment_intent": intent, "status": "succeeded"},
        )
    )
    assert (charge.type, charge.payment_intent_id, charge.refund_id) == (
        "charge.refunded",
        intent,
        None,
    )
    other = parse(fake_stripe.event("customer.created", {"id": "cus_1", "object": "customer"}))
    assert (other.type, other.session_id, other.booking_id) == ("customer.created", None, None)


def test_a_checkout_made_by_another_integration_is_parsed_not_refused(
    fake_stripe: FakeStripe, stripe_gateway: StripePaymentGateway
) -> None:
    # One Stripe account often serves several integrations, and the endpoint receives their
    # events too; refusing them (400) would make Stripe retry for days and disable the endpoint.
    body = fake_stripe.event(
        "checkout.session.completed",
        {
            "id": "cs_test_other_app",
            "object": "checkout.session",
            "client_reference_id": "order-2024-17",
            "metadata": {"order": "17"},
            "payment_status": "paid",
            "amount_total": 1500,
            "currency": "eur",
        },
    )

    event = stripe_gateway.parse_event(body, signed(fake_stripe, body))

    assert (event.session_id, event.booking_id) == ("cs_test_other_app", None)


# -- expiring a checkout ---------------------------------------------------------------------------


def test_expiring_an_open_session_ends_it(
    fake_stripe: FakeStripe, stripe_gateway: StripePaymentGateway
) -> None:
    session = stripe_gateway.create_checkout(checkout_request(1))

    assert stripe_gateway.expire_checkout(session.id) is CheckoutState.EXPIRED
    assert fake_stripe.sessions[session.id]["status"] == "expired"
    # Again: Stripe refuses to expire it twice; the adapter reports what it is.
    assert stripe_gateway.expire_checkout(session.id) is CheckoutState.EXPIRED


def test_expiring_a_paid_session_reports_complete(
    fake_stripe: FakeStripe, stripe_gateway: StripePaymentGateway
) -> None:
    session = stripe_gateway.create_checkout(checkout_request(1))
    fake_stripe.pay(session.id)

    assert stripe_gateway.expire_checkout(session.id) is CheckoutState.COMPLETE

    assert fake_stripe.sessions[session.id]["status"] == "complete"
    assert len(fake_stripe.requests_to("POST", f"/v1/checkout/sessions/{session.id}/expire")) == 1
    assert fake_stripe.requests[-1].method == "GET"  # the state came from a retrieve


def test_expiring_fails_as_payment_unavailable(
    fake_stripe: FakeStripe, stripe_gateway: StripePaymentGateway
) -> None:
    session = stripe_gateway.create_checkout(checkout_request(1))
    with pytest.raises(CheckoutNotFound):  # a PaymentFailed: Stripe answered 404
        stripe_gateway.expire_checkout("cs_test_unknown")
    fake_stripe.fail_next(status=500)
    with pytest.raises(PaymentUnavailable):
        stripe_gateway.expire_checkout(session.id)
    assert fake_stripe.sessions[session.id]["status"] == "open"


# -- refunds ---------------------------------------------------------------------------------------


def test_a_full_refund_sends_intent_amount_and_key(
    fake_stripe: FakeStripe, stripe_gateway: StripePaymentGateway
) -> None:
    intent = paid_session(fake_stripe, stripe_gateway)
    request = RefundRequest(
        booking_id=42, payment_intent_id=intent, amount=PRICE, idempotency_key="refund:42:8000"
    )

    result = stripe_gateway.refund(request)

    [sent] = fake_stripe.requests_to("POST", "/v1/refunds")
    assert sent.form == {
        "payment_intent": intent,
        "amount": "8000",
        "metadata": {"booking_id": "42"},
        "reason": "requested_by_customer",
    }
    assert sent.idempotency_key == "refund:42:8000"
    assert result.id in fake_stripe.refunds
    assert (result.amount, result.status) == (PRICE, "succeeded")
    assert fake_stripe.refunded(intent) == 8000
    # A replay (the worker retrying after a lost answer) refunds nothing more.
    assert stripe_gateway.refund(request) == result
    assert fake_stripe.refunded(intent) == 8000


def test_partial_refunds_until_nothing_is_left(
    fake_stripe: FakeStripe, stripe_gateway: StripePaymentGateway
) -> None:
    intent = paid_session(fake_stripe, stripe_gateway)

    def refund(amount: int, key: str) -> str:
        return stripe_gateway.refund(
            RefundRequest(
                booking_id=42,
                payment_intent_id=intent,
                amount=Money(amount, "usd"),
                idempotency_key=key,
            )
        ).status

    assert refund(3000, "a") == "succeeded"
    with pytest.raises(RefundFailed, match="amount_too_large"):
        refund(5001, "b")
    assert refund(5000, "c") == "succeeded"
    with pytest.raises(RefundFailed, match="already been refunded"):
        refund(1, "d")
    assert fake_stripe.refunded(intent) == 8000


def test_refund_refusals_and_outages(
    fake_stripe: FakeStripe, stripe_gateway: StripePaymentGateway
) -> None:
    intent = paid_session(fake_stripe, stripe_gateway)
    too_much = RefundRequest(
        booking_id=42, payment_intent_id=intent, amount=Money(9000, "usd"), idempotency_key="x"
    )
    with pytest.raises(RefundFailed, match="greater than") as caught:
        stripe_gateway.refund(too_much)
    assert isinstance(caught.value.__cause__, stripe.InvalidRequestError)
    with pytest.raises(RefundFailed, match="No such payment_intent"):
        stripe_gateway.refund(
            RefundRequest(
                booking_id=42, payment_intent_id="pi_nope", amount=PRICE, idempotency_key="y"
            )
        )
    fake_stripe.fail_next(status=500)
    with pytest.raises(PaymentUnavailable):
        stripe_gateway.refund(
            RefundRequest(
                booking_id=42, payment_intent_id=intent, amount=PRICE, idempotency_key="z"
            )
        )
    assert fake_stripe.refunded(intent) == 0


# -- the core's payment flow on the real adapter ---------------------------------------------------


START = datetime(2030, 1, 10, 10, 0, tzinfo=UTC)  # a Thursday, three days after the clock's now


class World:
    """booking_core on the Stripe adapter, memory repositories and the working-hours calendar."""

    def __init__(self, fake: FakeStripe, gateway: StripePaymentGateway) -> None:
        self.fake = fake
        self.payments = gateway
        self.clock = FixedClock(datetime(2030, 1, 7, 8, 0, tzinfo=UTC))
        # Stripe checks expires_at against its own clock: let it share the test's.
        fake.now = lambda: self.clock.now().timestamp()
        self.store = InMemoryStore()
        self.calendar = ScheduleCalendarGateway()
        self.rules = BookingRules()
        with self.uow() as uow:
            practitioner = uow.practitioners.add(
                sample_practitioner(
                    name="Jordan Lee",
                    timezone="UTC",
                    hours={d: ["09:00-17:00"] for d in range(7)},
                    services=[
                        sample_service(name="Coaching session", duration_minutes=60, price=PRICE)
                    ],
                )
            )
            uow.commit()
        self.practitioner_id = practitioner.id or 0
        self.service_id = practitioner.services[0].id or 0

    def uow(self) -> Any:
        return self.store.unit_of_work()

    def book(self, start: datetime = START, email: str = "ada@example.com") -> BookingRequested:
        return request_booking(
            RequestBooking(
                practitioner_id=self.practitioner_id,
                service_id=self.service_id,
                start=start,
                client=Client(name="Ada", email=email),
            ),
            uow=self.uow(),
            payments=self.payments,
            calendar=self.calendar,
            clock=self.clock,
            rules=self.rules,
        )

    def deliver(self, payload: bytes) -> str:
        """What the webhook route does: verify and parse the raw body, then apply the event."""
        event = self.payments.parse_event(payload, self.fake.sign(payload, WEBHOOK_SECRET))
        return handle_payment_event(
            event, uow=self.uow(), calendar=self.calendar, clock=self.clock, rules=self.rules
        )

    def cancel(self, booking_id: int) -> Any:
        return cancel_booking(
            CancelBooking(booking_id=booking_id, reason="cannot make it"),
            uow=self.uow(),
            payments=self.payments,
            calendar=self.calendar,
            clock=self.clock,
            rules=self.rules,
        )

    def booking(self, booking_id: int) -> Booking:
        with self.uow() as uow:
            found = uow.bookings.get(booking_id)
        assert found is not None
        return found

    def jobs(self, kind: str | None = None) -> list[Job]:
        with self.uow() as uow:
            return [j for j in uow.outbox.list() if kind is None or j.kind == kind]

    def run_worker(self) -> dict[str, int]:
        context = JobContext(
            uow=self.uow(),
            payments=self.payments,
            calendar=self.calendar,
            notifier=RecordingNotifier(),
            clock=self.clock,
            rules=self.rules,
        )
        return run_due_jobs(context)

    def offered(self, start: datetime = START) -> bool:
        found = get_availability(
            AvailabilityQuery(
                practitioner_id=self.practitioner_id,
                service_id=self.service_id,
                first_day=start.date(),
                last_day=start.date(),
            ),
            uow=self.uow(),
            calendar=self.calendar,
            clock=self.clock,
            rules=self.rules,
        )
        return any(slot.start == start for slot in found.slots)


@pytest.fixture
def world(fake_stripe: FakeStripe, stripe_gateway: StripePaymentGateway) -> World:
    return World(fake_stripe, stripe_gateway)


def _book_and_pay(world: World) -> tuple[int, str, bytes]:
    """Book START, pay in the fake; returns booking id, session id and the completed event."""
    requested = world.book()
    booking_id = requested.booking.id or 0
    session_id = requested.booking.checkout_session_id or ""
    world.fake.pay(session_id)
    return (
        booking_id,
        session_id,
        world.fake.session_event(session_id, "checkout.session.completed"),
    )


def test_booking_checkout_webhook_confirm_cancel_refund(world: World) -> None:
    requested = world.book()
    booking = requested.booking
    session_id = booking.checkout_session_id or ""
    assert booking.status is BookingStatus.PENDING
    assert requested.checkout_url == world.fake.sessions[session_id]["url"]
    [sent] = world.fake.requests_to("POST", "/v1/checkout/sessions")
    created_us = int(booking.created_at.timestamp() * 1e6)
    assert sent.idempotency_key == f"checkout:{booking.id}:{created_us}"
    assert sent.form["expires_at"] == str(int((booking.hold_expires_at or START).timestamp()))
    assert sent.form["metadata"] == {"booking_id": str(booking.id)}
    assert not world.offered()  # the hold occupies the slot

    intent = world.fake.pay(session_id)["payment_intent"]
    outcome = world.deliver(world.fake.session_event(session_id, "checkout.session.completed"))

    assert outcome == PaymentOutcome.CONFIRMED
    confirmed = world.booking(booking.id or 0)
    assert confirmed.status is BookingStatus.CONFIRMED
    assert confirmed.payment_intent_id == intent

    world.clock.set(START - timedelta(hours=24))  # exactly at the cancellation window: in time
    cancelled = world.cancel(booking.id or 0)

    assert cancelled.booking.status is BookingStatus.CANCELLED
    assert cancelled.refund is not None
    assert (cancelled.refund.amount, cancelled.refund.status) == (PRICE, RefundStatus.SUCCEEDED)
    [refund_call] = world.fake.requests_to("POST", "/v1/refunds")
    assert refund_call.idempotency_key == f"refund:{intent}:8000"
    assert refund_call.form["payment_intent"] == intent
    assert cancelled.refund.provider_id in world.fake.refunds
    assert world.fake.refunded(str(intent)) == 8000
    assert world.offered()


def test_cancelling_just_inside_the_window_refunds_nothing(world: World) -> None:
    booking_id, _, completed = _book_and_pay(world)
    assert world.deliver(completed) == PaymentOutcome.CONFIRMED

    world.clock.set(START - timedelta(hours=24) + timedelta(minutes=1))
    cancelled = world.cancel(booking_id)

    assert cancelled.booking.status is BookingStatus.CANCELLED
    assert cancelled.refund is None
    assert world.fake.requests_to("POST", "/v1/refunds") == []
    assert world.jobs(JOB_REFUND) == []


def test_replays_of_one_event_change_nothing_more(world: World) -> None:
    booking_id, _, completed = _book_and_pay(world)
    assert world.deliver(completed) == PaymentOutcome.CONFIRMED
    after_first = world.booking(booking_id)
    jobs = world.jobs()

    # Stripe re-signs each delivery attempt; the event id is what repeats.
    outcomes = [world.deliver(completed) for _ in range(5)]

    assert outcomes == [PaymentOutcome.DUPLICATE] * 5
    again = world.booking(booking_id)
    assert (again.status, again.version, again.updated_at) == (
        after_first.status,
        after_first.version,
        after_first.updated_at,
    )
    assert world.jobs() == jobs


def test_two_concurrent_deliveries_confirm_once(world: World) -> None:
    booking_id, _, completed = _book_and_pay(world)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            barrier.wait(5)
            outcomes.append(world.deliver(completed))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert errors == []
    assert sorted(outcomes) == sorted([PaymentOutcome.CONFIRMED, PaymentOutcome.DUPLICATE])
    assert world.booking(booking_id).status is BookingStatus.CONFIRMED
    assert len(world.jobs("calendar.create")) == 1


def test_expired_delivered_after_completed_changes_nothing(world: World) -> None:
    booking_id, session_id, completed = _book_and_pay(world)
    expired = world.fake.session_event(
        session_id, "checkout.session.expired", status="expired", payment_status="unpaid"
    )

    assert world.deliver(completed) == PaymentOutcome.CONFIRMED
    assert world.deliver(expired) == PaymentOutcome.IGNORED

    assert world.booking(booking_id).status is BookingStatus.CONFIRMED


def test_completed_delivered_after_expired_confirms_while_the_slot_is_free(world: World) -> None:
    requested = world.book()
    booking_id = requested.booking.id or 0
    session_id = requested.booking.checkout_session_id or ""
    expired = world.fake.session_event(session_id, "checkout.session.expired", status="expired")
    intent = world.fake.pay(session_id)["payment_intent"]
    completed = world.fake.session_event(session_id, "checkout.session.completed")

    assert world.deliver(expired) == PaymentOutcome.EXPIRED
    assert world.offered()
    assert world.deliver(completed) == PaymentOutcome.LATE_CONFIRMED

    booking = world.booking(booking_id)
    assert (booking.status, booking.payment_intent_id) == (BookingStatus.CONFIRMED, intent)
    assert booking.refund is None


def test_a_delayed_payment_confirms_on_success_and_frees_the_slot_on_failure(world: World) -> None:
    first = world.book()
    session_id = first.booking.checkout_session_id or ""
    world.fake.pay(session_id, delayed=True)
    waiting = world.fake.session_event(session_id, "checkout.session.completed")
    assert world.deliver(waiting) == PaymentOutcome.AWAITING_PAYMENT
    assert world.booking(first.booking.id or 0).status is BookingStatus.PENDING
    world.fake.settle(session_id)
    succeeded = world.fake.session_event(session_id, "checkout.session.async_payment_succeeded")
    assert world.deliver(succeeded) == PaymentOutcome.CONFIRMED
    assert world.booking(first.booking.id or 0).status is BookingStatus.CONFIRMED

    later = START + timedelta(hours=2)
    second = world.book(later, email="bo@example.com")
    other_session = second.booking.checkout_session_id or ""
    world.fake.pay(other_session, delayed=True)
    world.fake.settle(other_session, succeeded=False)
    failed = world.fake.session_event(other_session, "checkout.session.async_payment_failed")
    assert world.deliver(failed) == PaymentOutcome.EXPIRED
    assert world.booking(second.booking.id or 0).status is BookingStatus.EXPIRED
    assert world.offered(later)


def test_a_wrong_amount_is_not_confirmed(world: World) -> None:
    requested = world.book()
    booking_id = requested.booking.id or 0
    session_id = requested.booking.checkout_session_id or ""
    intent = world.fake.pay(session_id, amount_total=100)["payment_intent"]

    outcome = world.deliver(world.fake.session_event(session_id, "checkout.session.completed"))

    assert outcome == PaymentOutcome.AMOUNT_MISMATCH
    booking = world.booking(booking_id)
    assert booking.status is BookingStatus.EXPIRED  # not confirmed, and the hold is released
    assert world.offered()
    assert booking.refund is not None
    assert booking.refund.amount == Money(100, "usd")
    assert world.run_worker()["done"] >= 1
    assert world.fake.refunded(str(intent)) == 100


def test_a_late_payment_for_a_taken_slot_is_refunded_in_full(world: World) -> None:
    late = world.book()
    late_id = late.booking.id or 0
    late_session = late.booking.checkout_session_id or ""
    # Stripe guarantees neither order nor timeliness: here the hold was released (the expired
    # event came first), another client took the slot, and then the first client's payment lands.
    expired = world.fake.session_event(late_session, "checkout.session.expired", status="expired")
    assert world.deliver(expired) == PaymentOutcome.EXPIRED
    taker = world.book(email="bo@example.com")
    intent = str(world.fake.pay(late_session)["payment_intent"])

    outcome = world.deliver(world.fake.session_event(late_session, "checkout.session.completed"))

    assert outcome == PaymentOutcome.LATE_REFUNDED
    booking = world.booking(late_id)
    assert booking.status is BookingStatus.EXPIRED
    assert booking.refund is not None
    assert (booking.refund.amount, booking.refund.status) == (PRICE, RefundStatus.PENDING)
    assert [j.payload for j in world.jobs(JOB_REFUND)] == [{"booking_id": late_id}]
    assert world.booking(taker.booking.id or 0).status is BookingStatus.PENDING
    assert world.fake.requests_to("POST", "/v1/refunds") == []  # the webhook calls nobody

    counts = world.run_worker()

    assert counts["done"] == 1
    [sent] = world.fake.requests_to("POST", "/v1/refunds")
    assert sent.form["payment_intent"] == intent
    assert sent.form["amount"] == "8000"
    assert sent.idempotency_key == f"refund:{intent}:8000"
    refunded = world.booking(late_id).refund
    assert refunded is not None
    assert refunded.status is RefundStatus.SUCCEEDED
    assert refunded.provider_id in world.fake.refunds
    assert world.fake.refunded(intent) == 8000


def test_stripe_answering_500_at_booking_releases_the_slot_at_once(world: World) -> None:
    world.fake.fail_always(status=500, path="/v1/checkout/sessions")

    with pytest.raises(PaymentUnavailable):
        world.book()

    [released] = [b for b in world.store.bookings.values()]
    assert released.status is BookingStatus.EXPIRED
    assert world.offered()
    world.fake.heal()
    again = world.book()
    assert again.booking.status is BookingStatus.PENDING


def test_stripe_timing_out_at_booking_releases_the_slot_within_the_timeout(
    fake_stripe: FakeStripe, make_stripe_gateway: GatewayFactory
) -> None:
    world = World(fake_stripe, make_stripe_gateway(timeout=(1.0, 0.3)))
    fake_stripe.hang_next(seconds=5, path="/v1/checkout/sessions")

    started = time.monotonic()
    with pytest.raises(PaymentUnavailable):
        world.book()

    assert time.monotonic() - started < 1.5
    assert world.offered()
    # The slot is free for the next client at once, and the no-overlap rule still holds.
    assert world.book(email="bo@example.com").booking.status is BookingStatus.PENDING
    with pytest.raises(SlotUnavailable):
        world.book(email="cy@example.com")


# -- the reconciler on the real adapter ------------------------------------------------------------


def test_retrieving_a_checkout_reports_its_state_and_404s(
    fake_stripe: FakeStripe, stripe_gateway: StripePaymentGateway
) -> None:
    session = stripe_gateway.create_checkout(checkout_request(7))
    info = stripe_gateway.retrieve_checkout(session.id)
    assert (info.state, info.booking_id, info.payment_status) == (CheckoutState.OPEN, 7, "unpaid")
    intent = fake_stripe.pay(session.id)["payment_intent"]
    info = stripe_gateway.retrieve_checkout(session.id)
    assert (info.state, info.payment_status, info.payment_intent_id, info.amount) == (
        CheckoutState.COMPLETE,
        "paid",
        intent,
        PRICE,
    )
    fake_stripe.forget_session(session.id)
    with pytest.raises(CheckoutNotFound):
        stripe_gateway.retrieve_checkout(session.id)
    with pytest.raises(CheckoutNotFound):
        stripe_gateway.expire_checkout(session.id)


def test_recent_events_page_through_everything_after_a_time(
    fake_stripe: FakeStripe, stripe_gateway: StripePaymentGateway
) -> None:
    base = 1_900_000_000
    for n in range(230):
        fake_stripe.event("refund.updated", {"id": f"re_{n}", "object": "refund"}, created=base + n)
    events = stripe_gateway.recent_events(datetime.fromtimestamp(base + 9, UTC))
    assert [e.id for e in events] == [e["id"] for e in fake_stripe.events[10:]]
    assert [e.created for e in events] == sorted(e.created for e in events)
    pages = fake_stripe.requests_to("GET", "/v1/events")
    assert len(pages) == 3  # 100 + 100 + 20
    assert pages[1].query["starting_after"] == fake_stripe.events[130]["id"]
    assert "checkout.session.completed" in pages[0].query["types"]
    fake_stripe.event("customer.created", {"id": "cus_1", "object": "customer"}, created=base + 500)
    assert stripe_gateway.recent_events(datetime.fromtimestamp(base + 400, UTC)) == []


def _reconcile(world: World) -> Any:
    return reconcile_payments(
        uow=world.uow(),
        payments=world.payments,
        calendar=world.calendar,
        clock=world.clock,
        rules=world.rules,
        warnings=WarningThrottle(),
    )


def test_a_hold_whose_session_stripe_no_longer_knows_is_released(world: World) -> None:
    requested = world.book()
    world.fake.forget_session(requested.booking.checkout_session_id or "")
    world.clock.advance(timedelta(hours=1))
    assert _reconcile(world).released == 1
    assert world.booking(requested.booking.id or 0).status is BookingStatus.EXPIRED
    assert world.offered()
    session = requested.booking.checkout_session_id
    assert len(world.fake.requests_to("GET", f"/v1/checkout/sessions/{session}")) == 1


def test_a_missed_webhook_is_recovered_from_stripe_events(world: World) -> None:
    booking_id, _, _ = _book_and_pay(world)  # Stripe made the event; nobody delivered it
    assert _reconcile(world).recovered_events == 1
    assert world.booking(booking_id).status is BookingStatus.CONFIRMED
    assert _reconcile(world).recovered_events == 0


def test_a_paid_expired_hold_is_confirmed_without_the_webhook(world: World) -> None:
    requested = world.book()
    world.fake.pay(requested.booking.checkout_session_id or "")
    world.clock.advance(timedelta(hours=1))
    world.fake.events.clear()  # and the event list has nothing either
    assert _reconcile(world).confirmed == 1
    assert world.booking(requested.booking.id or 0).status is BookingStatus.CONFIRMED


# -- payment gaps: the key's mode, partial refunds at the provider, delayed methods ------------


def test_an_event_of_the_other_mode_is_refused_and_logged(
    fake_stripe: FakeStripe,
    stripe_gateway: StripePaymentGateway,
    make_stripe_gateway: GatewayFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="adapters.stripe")
    session = {"id": "cs_1", "object": "checkout.session", "metadata": {"booking_id": "42"}}
    live = fake_stripe.event("checkout.session.completed", session, livemode=True)
    with pytest.raises(InvalidPayload, match="live-mode event"):
        stripe_gateway.parse_event(live, signed(fake_stripe, live))  # a test key (sk_test_)
    assert "a live-mode event for a test-mode key" in caplog.text
    test_mode = fake_stripe.event("checkout.session.completed", session)
    live_gateway = make_stripe_gateway(api_key="sk_live_not_used_for_calls")
    with pytest.raises(InvalidPayload, match="test-mode event"):
        live_gateway.parse_event(test_mode, signed(fake_stripe, test_mode))
    assert stripe_gateway.parse_event(test_mode, signed(fake_stripe, test_mode)).id


def test_a_partial_refund_at_the_provider_is_recorded_as_partial(world: World) -> None:
    booking_id, _, completed = _book_and_pay(world)
    assert world.deliver(completed) == PaymentOutcome.CONFIRMED
    intent = world.booking(booking_id).payment_intent_id or ""

    first = world.fake.refund_in_dashboard(intent, 3000)
    assert world.deliver(first) == PaymentOutcome.REFUND_UPDATED
    with world.uow() as uow:
        entry = uow.ledger.get(intent)
    assert entry is not None
    assert (entry.captured.amount, entry.refunded) == (8000, 3000)  # partial, not full
    booking = world.booking(booking_id)
    assert booking.status is BookingStatus.CONFIRMED
    assert booking.refund is None  # nobody decided a refund here

    second = world.fake.refund_in_dashboard(intent, 1000)  # amount_refunded is cumulative
    assert world.deliver(second) == PaymentOutcome.REFUND_UPDATED
    assert world.deliver(second) == PaymentOutcome.DUPLICATE
    with world.uow() as uow:
        assert (uow.ledger.get(intent) or entry).refunded == 4000

    # The client cancels in time: only what is left goes back.
    cancelled = world.cancel(booking_id)
    assert cancelled.refund is not None
    assert cancelled.refund.amount == Money(4000, "usd")
    [call] = world.fake.requests_to("POST", "/v1/refunds")
    assert call.form["amount"] == "4000"
    assert world.fake.refunded(intent) == 8000


def test_a_delayed_payment_is_not_polled_on_every_pass(world: World) -> None:
    requested = world.book()
    booking_id = requested.booking.id or 0
    session_id = requested.booking.checkout_session_id or ""
    world.fake.pay(session_id, delayed=True)
    world.fake.events.clear()  # the completed (unpaid) event was delivered long ago
    expire_path = f"/v1/checkout/sessions/{session_id}/expire"
    world.clock.advance(timedelta(hours=1))  # the hold has run out; the money is on its way

    def calls() -> int:
        return len(world.fake.requests_to("POST", expire_path))

    assert _reconcile(world).released == 0
    assert calls() == 1
    for _ in range(5):  # worker passes every few seconds: none asks Stripe again
        world.clock.advance(timedelta(seconds=10))
        _reconcile(world)
    assert calls() == 1
    world.clock.advance(timedelta(minutes=5))
    _reconcile(world)
    assert calls() == 2  # looked again after the first wait ...
    world.clock.advance(timedelta(minutes=6))
    _reconcile(world)
    assert calls() == 2  # ... and the next wait is longer (10 minutes)
    assert world.booking(booking_id).status is BookingStatus.PENDING

    world.fake.settle(session_id)
    succeeded = world.fake.session_event(session_id, "checkout.session.async_payment_succeeded")
    assert world.deliver(succeeded) == PaymentOutcome.CONFIRMED
    assert world.booking(booking_id).status is BookingStatus.CONFIRMED
