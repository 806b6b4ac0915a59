"""A booking process killed between the hold and the checkout (issue 10, reproduction 3).

A real subprocess books through the Flask app on PostgreSQL and the real Stripe SDK; the fake
Stripe keeps its checkout call waiting, and the test SIGKILLs the process there: the hold is
committed, the session is never stored. The slot must come free for the client's retry (with
the same Idempotency-Key at once after its short lease; without one through the reconciler
within a minute), and the session Stripe made is expired.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import stripe_fixtures

from adapters.memory import FixedClock, RecordingNotifier
from adapters.postgres import Database
from adapters.schedule import ScheduleCalendarGateway
from adapters.stripe import StripePaymentGateway
from booking_core.model import BookingStatus, Money, Practitioner, Service, WeeklyHours
from booking_core.usecases import reconcile_payments
from booking_core.usecases.housekeeping import WarningThrottle
from entrypoints.bootstrap import bootstrap
from entrypoints.flask_app import create_app
from entrypoints.settings import Settings

try:
    from fake_stripe import FakeStripe
except ModuleNotFoundError:  # tests/integration imported as a package
    from tests.integration.fake_stripe import FakeStripe

fake_stripe = stripe_fixtures.fake_stripe
SECRET_KEY = "test-secret-key-for-the-idempotency-seal"
TOMORROW = (datetime.now(UTC) + timedelta(days=1)).date()
START = datetime(TOMORROW.year, TOMORROW.month, TOMORROW.day, 10, 0, tzinfo=UTC)

# The booking process: the app on PostgreSQL and Stripe, one POST /api/bookings.
CHILD = """
import sys
from adapters.postgres import Database
from adapters.memory import RecordingNotifier
from adapters.schedule import ScheduleCalendarGateway
from adapters.stripe import StripePaymentGateway
from entrypoints.bootstrap import bootstrap
from entrypoints.flask_app import create_app
from entrypoints.settings import Settings

url, api_base, api_key, secret, body, key = sys.argv[1:7]
database = Database.connect(url)
gateway = StripePaymentGateway(
    api_key=api_key, webhook_secret="whsec_x", base_url="http://booking.test",
    api_base=api_base, timeout=(5.0, 60.0), max_network_retries=0,
)
deps = bootstrap(
    Settings(env="test", secret_key=secret, ratelimit_bookings_per_ip="0",
             ratelimit_bookings_per_email="0"),
    uow_factory=database.unit_of_work, payments=gateway, calendar=ScheduleCalendarGateway(),
    notifier=RecordingNotifier(),
)
headers = {"Idempotency-Key": key} if key else {}
print("booking", flush=True)
answer = create_app(deps).test_client().post(
    "/api/bookings", data=body, content_type="application/json", headers=headers
)
print(answer.status_code, answer.get_data(as_text=True), flush=True)
"""


@pytest.fixture
def world(
    clean_database: Database, database_url: str, fake_stripe: FakeStripe
) -> Iterator[dict[str, Any]]:
    with clean_database.unit_of_work() as uow:
        practitioner = uow.practitioners.add(
            Practitioner(
                name="Jordan Lee",
                timezone="UTC",
                weekly_hours=WeeklyHours.from_mapping({d: ["08:00-18:00"] for d in range(7)}),
                services=[Service(name="Coaching", duration_minutes=60, price=Money(8000, "usd"))],
            )
        )
        uow.commit()
    body = json.dumps(
        {
            "practitioner_id": practitioner.id,
            "service_id": practitioner.services[0].id,
            "start": START.isoformat(),
            "client": {"name": "Ada", "email": "ada@example.com"},
        }
    )
    gateway = StripePaymentGateway(
        api_key=stripe_fixtures.API_KEY,
        webhook_secret="whsec_x",
        base_url="http://booking.test",
        api_base=fake_stripe.url,
        timeout=(2.0, 5.0),
        max_network_retries=0,
    )
    yield {"db": clean_database, "url": database_url, "body": body, "gateway": gateway}
    gateway.close()


def _statuses(db: Database) -> list[tuple[str, str | None]]:
    with db.engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT status::text, checkout_session_id FROM bookings ORDER BY id")
        )
        return [(r[0], r[1]) for r in rows]


def _kill_between_hold_and_checkout(
    world: dict[str, Any], fake: FakeStripe, key: str | None
) -> None:
    """Run the booking process, SIGKILL it while its checkout call waits at Stripe."""
    fake.hang_next(seconds=2.0, path="/v1/checkout/sessions")
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            world["url"],
            fake.url,
            stripe_fixtures.API_KEY,
            SECRET_KEY,
            world["body"],
            key or "",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        deadline = time.monotonic() + 60
        while not fake.requests_to("POST", "/v1/checkout/sessions"):
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the booking process never called Stripe"
            time.sleep(0.02)
        assert _statuses(world["db"])[-1] == ("pending", None)  # the hold is committed
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL
    # Stripe finishes the call the dead process made: the session exists there, unknown here.
    deadline = time.monotonic() + 10
    while not fake.sessions:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _app(world: dict[str, Any], clock: FixedClock) -> Any:
    deps = bootstrap(
        Settings(
            env="test",
            secret_key=SECRET_KEY,
            ratelimit_bookings_per_ip="0",
            ratelimit_bookings_per_email="0",
        ),
        uow_factory=world["db"].unit_of_work,
        payments=world["gateway"],
        calendar=ScheduleCalendarGateway(),
        notifier=RecordingNotifier(),
        clock=clock,
    )
    return deps, create_app(deps).test_client()


def _book(client: Any, world: dict[str, Any], key: str | None) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(
        "/api/bookings", data=world["body"], content_type="application/json", headers=headers
    )


def test_a_retry_with_the_same_key_after_the_process_died_books_the_slot(
    world: dict[str, Any], fake_stripe: FakeStripe
) -> None:
    _kill_between_hold_and_checkout(world, fake_stripe, "retry-after-kill")
    (orphan_session,) = fake_stripe.sessions
    clock = FixedClock(datetime.now(UTC))
    fake_stripe.now = lambda: clock.now().timestamp()
    deps, client = _app(world, clock)

    early = _book(client, world, "retry-after-kill")  # within the lease: maybe still running
    assert early.status_code == 409, early.get_data(as_text=True)
    assert early.get_json()["code"] == "request_in_progress"

    clock.advance(timedelta(seconds=31))  # the lease (seconds, not a day) ran out
    retry = _book(client, world, "retry-after-kill")
    assert retry.status_code == 201, retry.get_data(as_text=True)
    assert [s for s, _ in _statuses(world["db"])] == ["expired", "pending"]
    again = _book(client, world, "retry-after-kill")  # and now it answers the same again
    assert again.status_code == 201
    assert again.get_json() == retry.get_json()

    # The dead request's session is expired by the worker, so it can never be paid.
    from entrypoints.worker import run_once

    counts = run_once(deps)
    assert counts["done"] == 1
    assert fake_stripe.sessions[orphan_session]["status"] == "expired"


def test_without_a_key_the_reconciler_frees_the_slot_within_a_minute(
    world: dict[str, Any], fake_stripe: FakeStripe
) -> None:
    _kill_between_hold_and_checkout(world, fake_stripe, None)
    (orphan_session,) = fake_stripe.sessions
    clock = FixedClock(datetime.now(UTC))
    fake_stripe.now = lambda: clock.now().timestamp()
    deps, client = _app(world, clock)
    assert _book(client, world, None).status_code == 409  # still held

    clock.advance(timedelta(seconds=55))
    reconciled = reconcile_payments(
        uow=deps.uow(),
        payments=deps.payments,
        calendar=deps.calendar,
        clock=clock,
        rules=deps.rules,
        warnings=WarningThrottle(),
    )
    assert reconciled.released == 1
    assert fake_stripe.sessions[orphan_session]["status"] == "expired"
    assert _statuses(world["db"]) == [("expired", None)]
    retry = _book(client, world, None)
    assert retry.status_code == 201, retry.get_data(as_text=True)
    assert BookingStatus(retry.get_json()["booking"]["status"]) is BookingStatus.PENDING
