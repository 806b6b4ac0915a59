"""Faults of the services we call: Stripe and Cal.com answering 500 or hanging. Latency stays
bounded and the answer is a clear problem (Stripe) or the local schedule (Cal.com)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from reliability_harness import (
    FakeCalcom,
    FakeStripe,
    OwnPostgres,
    fake_stripe,
    own_pg,
    report,
    service_env,
)

from entrypoints.bootstrap import bootstrap
from entrypoints.dev.sample_data import seed
from entrypoints.flask_app import create_app
from entrypoints.settings import Settings

__all__ = ["fake_stripe", "own_pg"]

pytestmark = pytest.mark.slow

EVENT_TYPE = 4242
CAL_KEY = "cal_test_reliability_0123456789"


@pytest.fixture
def fake_calcom() -> Iterator[FakeCalcom]:
    server = FakeCalcom(api_key=CAL_KEY).start()
    server.add_event_type(EVENT_TYPE, slug="consultation", username="dr-ada", length=30)
    tomorrow = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    server.offer(EVENT_TYPE, [tomorrow + timedelta(hours=h) for h in range(0, 48, 2)])
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def client(
    own_pg: OwnPostgres, fake_stripe: FakeStripe, fake_calcom: FakeCalcom, tmp_path: Path
) -> Iterator[FlaskClient]:
    url = own_pg.new_database("providers")
    env = service_env(
        url,
        fake_stripe,
        CALCOM_API_KEY=CAL_KEY,
        CALCOM_API_URL=fake_calcom.url,
        CALCOM_EVENT_TYPE_1=str(EVENT_TYPE),
        CALCOM_USERNAME_1="dr-ada",
        CALCOM_CACHE_SECONDS="0",
    )
    deps = bootstrap(Settings.from_mapping(env))
    seed(deps.uow())
    try:
        yield create_app(deps).test_client()
    finally:
        deps.close()


def _timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def _schedule_start(client: FlaskClient) -> str:
    answer = client.get("/api/practitioners/2/availability?service_id=3")
    assert answer.status_code == 200
    return str(answer.get_json()["slots"][0]["start"])


def test_stripe_answering_500_gives_a_clear_503_quickly_and_releases_the_hold(
    client: FlaskClient, fake_stripe: FakeStripe
) -> None:
    start = _schedule_start(client)
    fake_stripe.fail_always(status=500, path="/v1/checkout/sessions")
    body = {
        "practitioner_id": 2,
        "service_id": 3,
        "start": start,
        "client": {"name": "Provider Faults", "email": "pf@example.com"},
    }
    answer, took = _timed(lambda: client.post("/api/bookings", json=body))
    fake_stripe.heal()
    again = client.post("/api/bookings", json=body)
    problem = answer.get_json()
    report(
        "Stripe answering 500",
        "every POST /v1/checkout/sessions answers 500",
        [
            f"POST /api/bookings: {answer.status_code} {problem.get('code')} in {took:.2f} s, "
            f"Retry-After {answer.headers.get('Retry-After')}",
            f"the same slot once Stripe is back: {again.status_code}",
        ],
    )
    assert answer.status_code == 503
    assert answer.mimetype == "application/problem+json"
    assert problem["code"] == "payment_unavailable"
    assert "500" not in problem["detail"]
    assert took < 10
    assert again.status_code == 201  # the hold was released


def test_stripe_hanging_gives_a_503_within_the_deadlines(
    client: FlaskClient, fake_stripe: FakeStripe
) -> None:
    start = _schedule_start(client)
    fake_stripe.hang_next(10, seconds=30, path="/v1/checkout/sessions")
    body = {
        "practitioner_id": 2,
        "service_id": 3,
        "start": start,
        "client": {"name": "Provider Faults", "email": "pf@example.com"},
    }
    answer, took = _timed(lambda: client.post("/api/bookings", json=body))
    report(
        "Stripe hanging",
        "POST /v1/checkout/sessions waits 30 s before answering",
        [f"POST /api/bookings: {answer.status_code} {answer.get_json()['code']} in {took:.1f} s"],
    )
    assert answer.status_code == 503
    assert answer.get_json()["code"] == "payment_unavailable"
    assert took < 25  # inside gunicorn's 30 s worker timeout


@pytest.mark.parametrize("fault", ["500", "hang"])
def test_calcom_failing_falls_back_to_the_schedule_with_bounded_latency(
    client: FlaskClient, fake_calcom: FakeCalcom, fault: str
) -> None:
    healthy, healthy_took = _timed(lambda: client.get("/api/practitioners/1/availability"))
    assert healthy.status_code == 200
    assert healthy.get_json()["source"] == "calcom"
    if fault == "500":
        fake_calcom.fail_next(100, status=500)
    else:
        fake_calcom.hang_next(100, seconds=20)
    timings = []
    sources = []
    for _ in range(7):
        answer, took = _timed(lambda: client.get("/api/practitioners/1/availability"))
        assert answer.status_code == 200
        timings.append(took)
        sources.append(answer.get_json()["source"])
    metrics = client.get("/metrics").get_data(as_text=True)
    breaker = [line for line in metrics.splitlines() if line.startswith("booking_calcom_breaker")]
    report(
        f"Cal.com {'answering 500' if fault == '500' else 'hanging 20 s'}",
        f"every Cal.com call {'answers 500' if fault == '500' else 'waits 20 s'}",
        [
            f"healthy availability {healthy_took:.2f} s from {healthy.get_json()['source']}",
            f"7 availability calls: {[f'{t:.2f}' for t in timings]} s, sources {set(sources)}",
            f"metrics: {breaker}",
        ],
    )
    assert set(sources) == {"schedule"}
    assert max(timings) < 5.5  # the Cal.com call budget (4 s) plus our own work
    assert timings[-1] < 0.5  # the breaker is open: no waiting on Cal.com at all
    assert "booking_calcom_breaker_open 1.0" in breaker
