"""A bulkhead and a breaker around Stripe: a hanging or failing Stripe cannot take the service.

The main test runs the real app under gunicorn (one process, 16 threads, as in production)
against a fake Stripe that hangs: 16 bookings at once must not starve /healthz or availability,
and the bookings beyond STRIPE_MAX_CONCURRENT_CALLS get 503 payment_unavailable at once with
their holds released.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
import stripe_fixtures
from conftest import PgServer

from adapters.resilience import Bulkhead, CircuitBreaker
from booking_core.errors import PaymentUnavailable
from booking_core.model import Money
from booking_core.ports import RefundRequest

try:
    from fake_stripe import FakeStripe
except ModuleNotFoundError:  # tests/integration imported as a package
    from tests.integration.fake_stripe import FakeStripe

fake_stripe = stripe_fixtures.fake_stripe
make_stripe_gateway = stripe_fixtures.make_stripe_gateway

LIMIT = 4
THREADS = 16


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def gunicorn_app(
    pg_server: PgServer, fake_stripe: FakeStripe, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    from adapters.postgres import migrate

    url = pg_server.new_database("booking_bulkhead")
    migrate.upgrade(url)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "BASE_URL": base,
        "BOOKING_ENV": "development",
        "STRIPE_SECRET_KEY": stripe_fixtures.API_KEY,
        "STRIPE_WEBHOOK_SECRET": stripe_fixtures.WEBHOOK_SECRET,
        "STRIPE_API_BASE": fake_stripe.url,
        "STRIPE_MAX_CONCURRENT_CALLS": str(LIMIT),
        "RATELIMIT_BOOKINGS_PER_IP": "0",
        "RATELIMIT_BOOKINGS_PER_EMAIL": "0",
        "DB_POOL_SIZE": "10",
        "LOG_LEVEL": "WARNING",
    }
    for name in ("CALCOM_API_KEY", "SMTP_URL", "REDIS_URL", "SENTRY_DSN"):
        env.pop(name, None)
    seed = (
        "from entrypoints.bootstrap import bootstrap; from entrypoints.dev.sample_data import seed"
    )
    subprocess.run(
        [sys.executable, "-c", f"{seed}; d = bootstrap(); seed(d.uow()); d.close()"],
        env=env, cwd=tmp_path, check=True, timeout=60,
    )  # fmt: skip
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "1", "-k", "gthread", "--threads",
             str(THREADS), "--timeout", "60", "-b", f"127.0.0.1:{port}",
             "entrypoints.flask_app:create_app()"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited early:\n{log.read_text()}", pytrace=False)
            try:
                if requests.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not get ready:\n{log.read_text()}", pytrace=False)
            time.sleep(0.2)
        yield base, url
    finally:
        fake_stripe.heal()
        process.kill()
        process.wait(timeout=10)
        pg_server.drop_database(url)


def _availability(base: str) -> requests.Response:
    first = date.today() + timedelta(days=2)
    return requests.get(
        f"{base}/api/practitioners/2/availability",
        params={"service_id": 3, "from": first.isoformat(),
                "to": (first + timedelta(days=14)).isoformat()},
        timeout=3,
    )  # fmt: skip


@pytest.mark.slow
def test_sixteen_slow_checkouts_leave_health_and_availability_answering(
    gunicorn_app: tuple[str, str], fake_stripe: FakeStripe
) -> None:
    base, url = gunicorn_app
    slots: list[dict[str, str]] = []
    for slot in _availability(base).json()["slots"]:  # apart enough that buffers never touch
        if not slots or datetime.fromisoformat(slot["start"]) >= datetime.fromisoformat(
            slots[-1]["end"]
        ) + timedelta(hours=2):
            slots.append(slot)
    slots = slots[:THREADS]
    assert len(slots) == THREADS
    fake_stripe.hang_next(1000, seconds=30, path="/v1/checkout/sessions")

    def book(n: int) -> tuple[int, str, float]:
        started = time.monotonic()
        response = requests.post(
            f"{base}/api/bookings",
            json={"practitioner_id": 2, "service_id": 3, "start": slots[n]["start"],
                  "client": {"name": "Ada", "email": f"ada{n}@example.com"}},
            timeout=60,
        )  # fmt: skip
        code = response.json().get("code", "") if response.status_code >= 400 else ""
        assert response.status_code < 500 or response.headers.get("Retry-After")
        return response.status_code, code, time.monotonic() - started

    pool = ThreadPoolExecutor(THREADS)
    try:
        futures = [pool.submit(book, n) for n in range(THREADS)]
        deadline = time.monotonic() + 5  # all but LIMIT are refused at once; LIMIT wait on Stripe
        while sum(f.done() for f in futures) < THREADS - LIMIT and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(3):
            started = time.monotonic()
            assert requests.get(f"{base}/healthz", timeout=2).status_code == 200
            assert _availability(base).status_code == 200
            assert requests.get(f"{base}/booking/cancel", timeout=2).status_code == 200  # a page
            assert time.monotonic() - started < 1.5
        refused = [f.result() for f in futures if f.done()]
        assert len(refused) == THREADS - LIMIT
        assert all(r[:2] == (503, "payment_unavailable") for r in refused), refused
        assert all(took < 2.0 for _, _, took in refused), refused
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as connection:
                rows = connection.execute(
                    sa.text("SELECT status, count(*) FROM bookings GROUP BY 1")
                )
                counts = {status: count for status, count in rows}
        finally:
            engine.dispose()
        # Refused bookings released their holds at once; only the waiting ones hold a slot.
        assert counts.get("pending", 0) <= LIMIT
        assert counts.get("expired", 0) >= THREADS - LIMIT
    finally:
        fake_stripe.stop()  # ends the hanging answers; the waiting bookings finish
        pool.shutdown(wait=True, cancel_futures=True)


def test_an_open_breaker_refuses_without_calling_stripe(
    make_stripe_gateway: stripe_fixtures.GatewayFactory, fake_stripe: FakeStripe
) -> None:
    gateway = make_stripe_gateway(breaker=CircuitBreaker(threshold=2, cooldown=60))
    fake_stripe.fail_always(status=500)
    request = RefundRequest(
        booking_id=1, payment_intent_id="pi_1", amount=Money(100, "usd"),
        idempotency_key="refund-1", reason="requested_by_customer",
    )  # fmt: skip
    for _ in range(2):
        with pytest.raises(PaymentUnavailable):
            gateway.refund(request)
    calls = len(fake_stripe.requests)
    started = time.monotonic()
    with pytest.raises(PaymentUnavailable, match="paused"):
        gateway.refund(request)
    assert time.monotonic() - started < 0.5
    assert len(fake_stripe.requests) == calls


def test_a_full_bulkhead_refuses_at_once(
    make_stripe_gateway: stripe_fixtures.GatewayFactory, fake_stripe: FakeStripe
) -> None:
    bulkhead = Bulkhead(1)
    gateway = make_stripe_gateway(bulkhead=bulkhead)
    request = RefundRequest(
        booking_id=1, payment_intent_id="pi_1", amount=Money(100, "usd"),
        idempotency_key="refund-1", reason="requested_by_customer",
    )  # fmt: skip
    with bulkhead.slot(), pytest.raises(PaymentUnavailable, match="waiting already"):
        gateway.refund(request)
    assert fake_stripe.requests == []
