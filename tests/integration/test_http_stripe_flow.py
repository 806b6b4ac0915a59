"""The booking flow over HTTP with the real Stripe SDK talking to a local fake Stripe.

booking -> checkout -> signed webhook -> confirmed -> cancel -> refund, through the Flask app.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import stripe_fixtures
from flask.testing import FlaskClient

from adapters.memory import FixedClock, InMemoryStore, RecordingNotifier
from adapters.schedule import ScheduleCalendarGateway
from adapters.stripe import StripePaymentGateway
from entrypoints.bootstrap import bootstrap
from entrypoints.dev.sample_data import seed
from entrypoints.flask_app import create_app
from entrypoints.settings import Settings
from entrypoints.worker import run_once

try:
    from fake_stripe import FakeStripe
except ModuleNotFoundError:  # tests/integration imported as a package
    from tests.integration.fake_stripe import FakeStripe

fake_stripe = stripe_fixtures.fake_stripe
WEBHOOK_SECRET = stripe_fixtures.WEBHOOK_SECRET
ADMIN = "admin-token-for-tests"


class App:
    def __init__(self, fake: FakeStripe) -> None:
        self.fake = fake
        # Now, when the test starts (not at import): the fake Stripe checks expires_at against
        # the real clock, and a long suite can start this test minutes after collecting it.
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.clock = FixedClock(self.now)
        self.store = InMemoryStore()
        self.gateway = StripePaymentGateway(
            api_key=stripe_fixtures.API_KEY,
            webhook_secret=WEBHOOK_SECRET,
            base_url="http://booking.test",
            api_base=fake.url,
            timeout=(1.0, 1.0),
            max_network_retries=0,
        )
        self.deps = bootstrap(
            Settings(
                env="test",
                admin_api_token=ADMIN,
                ratelimit_bookings_per_ip="0",
                ratelimit_bookings_per_email="0",
                base_url="http://booking.test",
            ),
            uow_factory=self.store.unit_of_work,
            clock=self.clock,
            payments=self.gateway,
            calendar=ScheduleCalendarGateway(),
            notifier=RecordingNotifier(),
        )
        seed(self.deps.uow())
        self.client: FlaskClient = create_app(self.deps).test_client()

    def first_slot(self, practitioner_id: int = 2, service_id: int = 3) -> str:
        day = (self.now + timedelta(days=3)).date().isoformat()
        to = (self.now + timedelta(days=10)).date().isoformat()
        body = self.client.get(
            f"/api/practitioners/{practitioner_id}/availability",
            query_string={"service_id": service_id, "from": day, "to": to},
        ).get_json()
        return str(body["slots"][0]["start"])

    def book(self, start: str) -> dict[str, object]:
        response = self.client.post(
            "/api/bookings",
            json={
                "practitioner_id": 2,
                "service_id": 3,
                "start": start,
                "client": {"name": "Ada Lovelace", "email": "ada@example.com"},
            },
        )
        assert response.status_code == 201, response.get_json()
        return response.get_json()  # type: ignore[no-any-return]

    def deliver(self, payload: bytes, *, signature: str | None = None) -> int:
        header = signature if signature is not None else self.fake.sign(payload, WEBHOOK_SECRET)
        response = self.client.post(
            "/api/webhooks/stripe",
            data=payload,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )
        return response.status_code

    def booking(self, booking_id: int, token: str) -> dict[str, object]:
        response = self.client.get(
            f"/api/bookings/{booking_id}", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200
        return response.get_json()  # type: ignore[no-any-return]


@pytest.fixture
def app(fake_stripe: FakeStripe) -> Iterator[App]:
    made = App(fake_stripe)
    yield made
    made.gateway.close()


def test_book_pay_confirm_cancel_refund_over_http(app: App) -> None:
    start = app.first_slot()
    created = app.book(start)
    booking = created["booking"]
    assert isinstance(booking, dict)
    booking_id, token = int(booking["id"]), str(created["manage_token"])
    [session] = app.fake.sessions.values()
    session_id = session["id"]
    assert created["checkout_url"] == session["url"]
    assert session["success_url"] == (
        "http://booking.test/booking/success?session_id={CHECKOUT_SESSION_ID}"
    )
    assert start not in [
        s["start"]
        for s in app.client.get(
            "/api/practitioners/2/availability",
            query_string={"service_id": 3, "from": start[:10], "to": start[:10]},
        ).get_json()["slots"]
    ]

    intent = app.fake.pay(session_id)["payment_intent"]
    event = app.fake.session_event(session_id, "checkout.session.completed")
    started = time.perf_counter()
    assert app.deliver(event) == 200
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert app.booking(booking_id, token)["status"] == "confirmed"
    # No outbound call happens inside the webhook: it only touches the database.
    assert len(app.fake.requests) == 1
    assert elapsed_ms < 200, f"webhook took {elapsed_ms:.1f} ms"
    for _ in range(3):
        assert app.deliver(event) == 200  # replays change nothing
    assert app.booking(booking_id, token)["status"] == "confirmed"

    page = app.client.get(f"/booking/success?session_id={session_id}")
    assert page.status_code == 200
    assert b"confirmed" in page.data

    app.clock.set(app.now + timedelta(hours=1))
    cancelled = app.client.post(
        f"/api/bookings/{booking_id}/cancel",
        json={"reason": "travel"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert cancelled.status_code == 200
    body = cancelled.get_json()
    assert body["booking"]["status"] == "cancelled"
    assert body["refund"] == {"amount": 8000, "currency": "usd", "status": "succeeded"}
    [refund] = app.fake.requests_to("POST", "/v1/refunds")
    assert refund.form["amount"] == "8000"
    assert refund.form["payment_intent"] == intent
    assert app.fake.refunded(intent) == 8000


def test_bad_signatures_change_nothing(app: App) -> None:
    created = app.book(app.first_slot())
    booking = created["booking"]
    assert isinstance(booking, dict)
    [session] = app.fake.sessions.values()
    app.fake.pay(session["id"])
    event = app.fake.session_event(session["id"], "checkout.session.completed")
    stale = app.fake.sign(event, WEBHOOK_SECRET, timestamp=int(time.time()) - 301)
    wrong = app.fake.sign(event, "whsec_someone_else")

    for signature in (stale, wrong, ""):
        response = app.client.post(
            "/api/webhooks/stripe",
            data=event,
            headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
        )
        assert response.status_code == 400
        assert response.get_json()["code"] == "invalid_signature"
    assert app.booking(int(booking["id"]), str(created["manage_token"]))["status"] == "pending"


def test_stripe_down_at_booking_is_503_and_the_slot_is_free_again(app: App) -> None:
    start = app.first_slot()
    app.fake.fail_always(status=500)
    response = app.client.post(
        "/api/bookings",
        json={
            "practitioner_id": 2,
            "service_id": 3,
            "start": start,
            "client": {"name": "Ada", "email": "ada@example.com"},
        },
    )
    assert response.status_code == 503
    assert response.get_json()["code"] == "payment_unavailable"
    assert app.first_slot() == start  # offered again at once
    app.fake.heal()
    assert app.book(start)["booking"]["status"] == "pending"  # type: ignore[index]


def test_refund_failure_is_retried_by_the_worker(app: App) -> None:
    created = app.book(app.first_slot())
    booking_id, token = int(created["booking"]["id"]), str(created["manage_token"])  # type: ignore[index]
    [session] = app.fake.sessions.values()
    app.fake.pay(session["id"])
    assert app.deliver(app.fake.session_event(session["id"], "checkout.session.completed")) == 200

    app.fake.fail_always(status=500, path="/v1/refunds")
    response = app.client.post(
        f"/api/bookings/{booking_id}/cancel", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert response.get_json()["booking"]["status"] == "cancelled"
    assert response.get_json()["refund"]["status"] == "pending"

    app.fake.heal()
    app.clock.advance(timedelta(minutes=5))
    run_once(app.deps)
    assert app.booking(booking_id, token)["refund"] == {
        "amount": 8000,
        "currency": "usd",
        "status": "succeeded",
    }
