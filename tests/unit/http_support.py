"""Helpers for the HTTP tests: the Flask app on memory adapters, a fixed clock and sample data.

The clock stands at Monday 7 January 2030, 08:00 UTC (London is on GMT, so local = UTC there).
The seeded practitioners (entrypoints.dev.sample_data) are:

- 1, Dr. Maya Okafor, Europe/London, Mon-Fri 09:00-12:00 and 13:00-17:00;
  service 1 "Initial consultation": 50 min on the hour, 12 h notice, 10 min buffer after, 90 GBP;
  service 2 "Follow-up session": 30 min every 30 min, 2 h notice, 55 GBP.
- 2, Jordan Lee, America/New_York; service 3 "Coaching session": 60 min every 30 min.

So the first offered start of service 1 is Tuesday 8 January 09:00 UTC (``SLOT``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from adapters.memory import (
    FakePaymentGateway,
    FixedClock,
    InMemoryStore,
    InMemoryUnitOfWork,
    RecordingNotifier,
    sign_fake_event,
)
from adapters.schedule import ScheduleCalendarGateway
from booking_core.model import Booking
from booking_core.ports import PaymentEventType
from entrypoints.bootstrap import Deps, bootstrap
from entrypoints.dev.sample_data import seed
from entrypoints.flask_app import create_app
from entrypoints.settings import Settings

from .contract import ContractClient

NOW = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)
ADMIN_TOKEN = "adm_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
WEBHOOK_SECRET = "whsec_httpUnitTestSecret0123456789"
SECRET_KEY = "secret-key-for-http-unit-tests"

SLOT = "2030-01-08T09:00:00Z"  # Tuesday 09:00 London, service 1's first offered start
SLOT_2 = "2030-01-08T10:00:00Z"
SLOT_3 = "2030-01-08T11:00:00Z"
CLIENT_EMAIL = "ada.lovelace@example.com"

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def booking_body(start: str = SLOT, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "practitioner_id": 1,
        "service_id": 1,
        "start": start,
        "client": {"name": "Ada Lovelace", "email": CLIENT_EMAIL, "phone": "+44 20 7946 0000"},
    }
    body.update(overrides)
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ADMIN = bearer(ADMIN_TOKEN)


def assert_problem(response: TestResponse, status: int, code: str | None = None) -> dict[str, Any]:
    """An RFC 9457 body with our ``code``; returns it."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert isinstance(body, dict)
    assert set(body) >= PROBLEM_KEYS, body
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["type"].endswith("/" + body["code"])
    if code is not None:
        assert body["code"] == code, body
    return body  # type: ignore[no-any-return]


class Int8Store(InMemoryStore):
    """A store whose ids are PostgreSQL ``bigint`` columns: an id beyond int8 is an error.

    Views must refuse such ids (404 in a path, 422 in a field) without asking a repository.
    """

    def unit_of_work(self) -> InMemoryUnitOfWork:
        uow = super().unit_of_work()
        for repo in (uow.bookings, uow.practitioners):
            repo.get = _int8_guard(repo.get)  # type: ignore[method-assign]
        return uow


def _int8_guard(get: Any) -> Any:
    def guarded(record_id: int, **options: Any) -> Any:
        if not -(2**63) <= record_id < 2**63:
            raise OverflowError("integer out of range")
        return get(record_id, **options)

    return guarded


class Web:
    """The app, its client and the memory adapters behind it (ids behave as bigint columns)."""

    def __init__(
        self,
        *,
        settings: dict[str, Any] | None = None,
        offline_checkout: bool = False,
        **overrides: Any,
    ) -> None:
        """``offline_checkout``: let bootstrap build the development offline checkout (on
        memory sessions) instead of the Stripe-like fake."""
        self.store: InMemoryStore = overrides.pop("store", None) or Int8Store()
        self.clock = FixedClock(NOW)
        self.payments: Any = overrides.pop("payments", None) or FakePaymentGateway(
            webhook_secret=WEBHOOK_SECRET
        )
        self.notifier = RecordingNotifier()
        options: dict[str, Any] = {
            "env": "test",  # production (the default) refuses the fakes
            "admin_api_token": ADMIN_TOKEN,
            "secret_key": SECRET_KEY,
            "stripe_webhook_secret": WEBHOOK_SECRET,
            "ratelimit_bookings_per_ip": "0",
            "ratelimit_bookings_per_email": "0",
            "ratelimit_recover_per_ip": "0",
        }
        options.update(settings or {})
        self.settings = Settings(**options)
        seed(self.store.unit_of_work())
        wiring: dict[str, Any] = {
            "uow_factory": self.store.unit_of_work,
            "clock": self.clock,
            "payments": self.payments,
            "calendar": ScheduleCalendarGateway(),
            "notifier": self.notifier,
        }
        if offline_checkout:
            del wiring["payments"]
        wiring.update(overrides)
        self.deps: Deps = bootstrap(self.settings, **wiring)
        self.payments = self.deps.payments
        self.app: Flask = create_app(self.deps)
        # Every answer a test gets is checked against the app's own OpenAPI document.
        self.app.test_client_class = ContractClient
        self.client: FlaskClient = self.app.test_client()

    # -- requests ----------------------------------------------------------------------------

    def book(
        self, body: Any = None, *, headers: dict[str, str] | None = None, **fields: Any
    ) -> TestResponse:
        return self.client.post(
            "/api/bookings",
            json=booking_body(**fields) if body is None else body,
            headers=headers or {},
        )

    def booked(self, **fields: Any) -> dict[str, Any]:
        """A 201 booking answer (asserted)."""
        response = self.book(**fields)
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()  # type: ignore[no-any-return]

    def post_raw(
        self,
        data: bytes | str,
        content_type: str | None = "application/json",
        path: str = "/api/bookings",
        headers: dict[str, str] | None = None,
    ) -> TestResponse:
        return self.client.post(path, data=data, content_type=content_type, headers=headers or {})

    def webhook(self, payload: bytes, signature: str | None = "sign") -> TestResponse:
        headers = {}
        if signature == "sign":
            signature = sign_fake_event(payload, WEBHOOK_SECRET)
        if signature is not None:
            headers["Stripe-Signature"] = signature
        return self.client.post(
            "/api/webhooks/stripe", data=payload, content_type="application/json", headers=headers
        )

    def pay(self, session_id: str) -> TestResponse:
        """The customer pays at Stripe and Stripe tells the webhook (signed)."""
        assert isinstance(self.payments, FakePaymentGateway)
        self.payments.complete(session_id)
        event = self.payments.event_for(session_id, PaymentEventType.CHECKOUT_COMPLETED)
        return self.webhook(event)

    def confirmed(self, **fields: Any) -> dict[str, Any]:
        """A booked-and-paid booking's 201 answer (booking as it was at 201)."""
        answer = self.booked(**fields)
        response = self.pay(self.session_of(answer["booking"]["id"]))
        assert response.status_code == 200, response.get_data(as_text=True)
        assert self.stored(answer["booking"]["id"]).status.value == "confirmed"
        return answer

    # -- state -------------------------------------------------------------------------------

    def bookings(self) -> list[Booking]:
        with self.store.lock:
            return list(self.store.bookings.values())

    def stored(self, booking_id: int) -> Booking:
        return self.store.bookings[booking_id]

    def session_of(self, booking_id: int) -> str:
        session = self.stored(booking_id).checkout_session_id
        assert session is not None
        return session

    def snapshot(self) -> tuple[Any, ...]:
        """Everything a request could write, to compare before and after."""
        with self.store.lock:
            return (
                {k: (b.status, b.start, b.version) for k, b in self.store.bookings.items()},
                dict(self.store.idempotency),
                set(self.store.events),
                set(self.store.jobs),
                len(self.payments.sessions)
                if isinstance(self.payments, FakePaymentGateway)
                else None,
            )

    def slots(self, query: str = "") -> list[str]:
        response = self.client.get(f"/api/practitioners/1/availability{query}")
        assert response.status_code == 200, response.get_data(as_text=True)
        return [s["start"] for s in response.get_json()["slots"]]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
