"""Faults of our own processes and of PostgreSQL: a database outage under load, a web worker
killed mid-booking, a background worker killed mid-job."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from reliability_harness import (
    WEBHOOK_SECRET,
    FakeStripe,
    Gunicorn,
    OwnPostgres,
    book,
    fake_stripe,
    first_slots,
    own_pg,
    report,
    seed,
    service_env,
    wait_for,
)

from booking_core import usecases as uc
from booking_core.usecases.housekeeping import UNATTACHED_GRACE
from entrypoints.bootstrap import bootstrap
from entrypoints.settings import Settings

__all__ = ["fake_stripe", "own_pg"]

pytestmark = pytest.mark.slow


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def _session_of(url: str, booking_id: int) -> str:
    ((session,),) = _rows(url, f"SELECT checkout_session_id FROM bookings WHERE id = {booking_id}")
    assert session
    return str(session)


def _deliver(base: str, body: bytes, timeout: float = 10) -> requests.Response:
    signature = FakeStripe.sign(body, WEBHOOK_SECRET)
    return requests.post(
        f"{base}/api/webhooks/stripe",
        data=body,
        headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
        timeout=timeout,
    )


def _paid_event(stripe: FakeStripe, url: str, booking_id: int) -> bytes:
    session = _session_of(url, booking_id)
    stripe.pay(session)
    return stripe.session_event(session, "checkout.session.completed")


class Load:
    """Clients that keep asking for availability and booking while a fault happens."""

    def __init__(self, base: str, starts: list[str]) -> None:
        self.base = base
        self.starts = list(starts)
        self.results: list[tuple[float, float, str, int, str]] = []  # began, took, what, status
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.count = 0
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(4)]
        for t in self.threads:
            t.start()

    def _run(self, n: int) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                if n % 2 == 0:
                    what = "availability"
                    answer = requests.get(
                        f"{self.base}/api/practitioners/1/availability?service_id=2", timeout=10
                    )
                else:
                    with self._lock:  # new starts first, then taken ones again (409)
                        self.count += 1
                        start = self.starts[-(self.count % len(self.starts)) - 1]
                    what = "booking"
                    answer = book(self.base, start, timeout=10)
                status, mimetype = answer.status_code, answer.headers.get("Content-Type", "")
            except requests.RequestException as exc:
                status, mimetype = 0, type(exc).__name__
            self.results.append((began, time.monotonic() - began, what, status, mimetype))
            time.sleep(0.02)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def test_postgresql_stopped_and_restarted_under_load(
    own_pg: OwnPostgres, fake_stripe: FakeStripe, tmp_path: Path
) -> None:
    url = own_pg.new_database("outage")
    env = service_env(url, fake_stripe)
    seed(env, tmp_path)
    web = Gunicorn(env, tmp_path)
    try:
        starts = first_slots(web.base, 40)
        confirmed = []
        for start in starts[:3]:
            answer = book(web.base, start)
            assert answer.status_code == 201, answer.text
            booking_id = answer.json()["booking"]["id"]
            assert _deliver(web.base, _paid_event(fake_stripe, url, booking_id)).status_code == 200
            confirmed.append(booking_id)
        late = book(web.base, starts[3])
        assert late.status_code == 201
        late_id = late.json()["booking"]["id"]
        late_event = _paid_event(fake_stripe, url, late_id)  # paid; its webhook comes mid-outage

        load = Load(web.base, starts[4:])
        time.sleep(1.0)
        stop_took = own_pg.stop()
        down_at = time.monotonic()
        during = _deliver(web.base, late_event)
        time.sleep(3.0)
        up_at = time.monotonic()
        start_took = own_pg.start()
        recovered_in = wait_for(
            lambda: requests.get(web.base + "/readyz", timeout=2).status_code == 200 or None,
            30,
            "the service did not recover without a restart",
        ) and (time.monotonic() - up_at)
        time.sleep(1.0)
        load.finish()
        after = _deliver(web.base, late_event)

        outage = [r for r in load.results if r[0] >= down_at and r[0] + r[1] <= up_at]
        after_up = [r for r in load.results if r[0] >= up_at + start_took + recovered_in]
        statuses = sorted({(r[2], r[3]) for r in outage})
        slowest = max((r[1] for r in outage), default=0.0)
        rows = dict(_rows(url, "SELECT id, status::text FROM bookings"))
        booked = [r for r in load.results if r[2] == "booking" and r[3] == 201]
        report(
            "PostgreSQL stopped and restarted under load",
            f"pg_ctl stop -m fast ({stop_took:.1f} s) under 4 clients, down {up_at - down_at:.1f} s"
            f", then pg_ctl start on the same port ({start_took:.1f} s); gunicorn not restarted",
            [
                f"{len(outage)} requests during the outage: {statuses}, slowest {slowest:.2f} s",
                f"the webhook during the outage: {during.status_code}; redelivered after: "
                f"{after.status_code}",
                f"ready again {recovered_in:.2f} s after the server was back; "
                f"{len(after_up)} requests after recovery, statuses "
                f"{sorted({r[3] for r in after_up})}",
                f"confirmed before the outage still confirmed: "
                f"{[rows.get(i) for i in confirmed]}; the late payment: {rows.get(late_id)}",
            ],
        )
        assert outage, "no request was made during the outage"
        assert {"availability", "booking"} <= {r[2] for r in outage}
        assert all(r[3] == 503 and "problem+json" in r[4] for r in outage), statuses
        assert slowest < 2.0
        assert during.status_code == 503  # Stripe retries a delivery that got a 5xx
        assert after.status_code == 200
        assert all(r[3] in (200, 201, 409) for r in after_up), sorted({r[3] for r in after_up})
        assert [rows.get(i) for i in confirmed] == ["confirmed"] * 3
        assert rows.get(late_id) == "confirmed"
        assert all(r[3] != 500 for r in load.results)
        assert len({r for r in booked}) + 4 <= len(rows)  # every 201 answered is a row
    finally:
        web.stop()


def test_a_web_worker_killed_with_sigkill_mid_booking(
    own_pg: OwnPostgres, fake_stripe: FakeStripe, tmp_path: Path
) -> None:
    url = own_pg.new_database("sigkill")
    env = service_env(url, fake_stripe)
    seed(env, tmp_path)
    web = Gunicorn(env, tmp_path)
    try:
        starts = first_slots(web.base, 8)
        # Stripe is slow: each request sits between its committed hold and its checkout.
        fake_stripe.hang_next(100, seconds=3, path="/v1/checkout/sessions")
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(book, web.base, s, 2, 20) for s in starts]
            wait_for(
                # At most STRIPE_MAX_CONCURRENT_CALLS (4) wait on Stripe; the rest get 503 at once.
                lambda: len(fake_stripe.requests_to("POST", "/v1/checkout/sessions")) >= 4,
                20,
                "the bookings never reached Stripe",
            )
            (worker,) = web.worker_pids()
            os.kill(worker, signal.SIGKILL)
            answers = []
            for f in futures:
                try:
                    answers.append(f.result().status_code)
                except requests.RequestException as exc:
                    answers.append(type(exc).__name__)
        fake_stripe.heal()
        columns = (
            "id, status::text, checkout_session_id, starts_at, ends_at, client_email, price_amount"
        )
        before = _rows(url, f"SELECT {columns} FROM bookings ORDER BY id")
        incomplete = [r for r in before if any(v is None for v in (r[3], r[4], r[5], r[6]))]
        unattached = [r for r in before if r[1] == "pending" and r[2] is None]

        # The reconciler (one worker pass) once the grace for half-written holds has passed.
        later = datetime.now(UTC) + UNATTACHED_GRACE + timedelta(seconds=10)

        class Later:
            def now(self) -> datetime:
                return later

        settings = Settings.from_mapping(env)
        deps = bootstrap(settings, clock=Later())
        try:
            settled = uc.reconcile_payments(
                uow=deps.uow(), payments=deps.payments, calendar=deps.calendar,
                clock=deps.clock, rules=deps.rules,
            )  # fmt: skip
        finally:
            deps.close()
        after = _rows(url, f"SELECT {columns} FROM bookings ORDER BY id")
        dangling = [r for r in after if r[1] == "pending" and r[2] is None]
        web.wait_ready()  # the master started a new worker
        report(
            "a web worker killed with SIGKILL mid-booking",
            f"8 concurrent POST /api/bookings with Stripe hanging 3 s; SIGKILL on worker {worker}",
            [
                f"clients got {answers}",
                f"{len(before)} booking rows, {len(incomplete)} incomplete, "
                f"{len(unattached)} holds without a checkout",
                f"after the reconciler ({settled}): {len(dangling)} holds without a checkout; "
                f"statuses {sorted({r[1] for r in after})}",
            ],
        )
        assert before, "the kill came before any hold was written: the test proved nothing"
        assert incomplete == []
        assert dangling == []
        assert all(r[1] in ("pending", "expired") for r in after)
        assert all(r[2] is not None for r in after if r[1] == "pending")
    finally:
        web.stop()


def _booking_command() -> list[str]:
    found = shutil.which("booking", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-c", "from entrypoints.cli import main; main()"]


def test_a_worker_killed_mid_job_is_redone_and_its_effect_happens_once(
    own_pg: OwnPostgres, fake_stripe: FakeStripe, tmp_path: Path
) -> None:
    url = own_pg.new_database("worker_kill")
    env = service_env(url, fake_stripe, WORKER_JOB_LEASE_SECONDS="2")
    seed(env, tmp_path)
    settings = Settings.from_mapping(env)
    deps = bootstrap(settings)
    try:
        slots = uc.get_availability(
            uc.AvailabilityQuery(practitioner_id=1, service_id=2, first_day=None, last_day=None),
            uow=deps.uow(), calendar=deps.calendar, clock=deps.clock, rules=deps.rules,
        ).slots  # fmt: skip
        from booking_core.model import Client

        made = uc.request_booking(
            uc.RequestBooking(
                practitioner_id=1,
                service_id=2,
                start=slots[-1].start,  # days ahead: a full refund on cancellation
                client=Client(name="Worker Kill", email="wk@example.com"),
            ),
            uow=deps.uow(), payments=deps.payments, calendar=deps.calendar, clock=deps.clock,
            rules=deps.rules,
        )  # fmt: skip
        booking_id = made.booking.id or 0
        session = _session_of(url, booking_id)
        fake_stripe.pay(session)
        body = fake_stripe.session_event(session, "checkout.session.completed")
        event = deps.payments.parse_event(body, FakeStripe.sign(body, WEBHOOK_SECRET))
        assert (
            uc.handle_payment_event(
                event, uow=deps.uow(), calendar=deps.calendar, clock=deps.clock, rules=deps.rules
            )
            == uc.PaymentOutcome.CONFIRMED
        )
        # The cancellation's own refund call fails: the refund is left to the worker's job.
        fake_stripe.fail_always(status=500, path="/v1/refunds")
        cancelled = uc.cancel_booking(
            uc.CancelBooking(booking_id=booking_id),
            uow=deps.uow(), payments=deps.payments, calendar=deps.calendar, clock=deps.clock,
            rules=deps.rules,
        )  # fmt: skip
        assert cancelled.refund is not None
        fake_stripe.heal()
    finally:
        deps.close()
    intent = fake_stripe.session(session)["payment_intent"]
    assert fake_stripe.refunded(intent) == 0
    # The deferred refund is due a minute later; let that minute pass.
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE outbox_jobs SET run_at = now() WHERE kind = 'payment.refund'")
    refunds_before = len(fake_stripe.requests_to("POST", "/v1/refunds"))
    # The worker's refund reaches Stripe, which does it and answers only after 4 s: the worker
    # is killed before the answer, so nothing records the job as done.
    fake_stripe.hang_next(1, seconds=4, path="/v1/refunds")
    workers: list[subprocess.Popen[bytes]] = []
    try:
        with (tmp_path / "worker-1.log").open("wb") as log:
            workers.append(
                subprocess.Popen(
                    [*_booking_command(), "worker", "--interval", "0.2"],
                    env=env,
                    cwd=tmp_path,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        wait_for(
            lambda: len(fake_stripe.requests_to("POST", "/v1/refunds")) > refunds_before,
            30,
            "the worker never asked Stripe for the refund",
        )
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(timeout=10)
        wait_for(lambda: fake_stripe.refunded(intent) > 0 or None, 10, "Stripe never refunded")
        with (tmp_path / "worker-2.log").open("wb") as log:
            workers.append(
                subprocess.Popen(
                    [*_booking_command(), "worker", "--interval", "0.2"],
                    env=env,
                    cwd=tmp_path,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        redone = wait_for(
            lambda: (
                _rows(
                    url,
                    "SELECT status::text, attempts FROM outbox_jobs WHERE kind = 'payment.refund'",
                )
                if _rows(
                    url,
                    "SELECT 1 FROM outbox_jobs WHERE kind = 'payment.refund' AND status = 'done'",
                )
                else None
            ),
            30,
            "the killed worker's refund job was never redone",
        )
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait(timeout=10)
    ((refund_status, refund_amount),) = _rows(
        url, f"SELECT refund_status::text, refund_amount FROM bookings WHERE id = {booking_id}"
    )
    asked = len(fake_stripe.requests_to("POST", "/v1/refunds")) - refunds_before
    report(
        "a worker killed mid-job",
        "SIGKILL on `booking worker` while Stripe held its refund call (answered after 4 s)",
        [
            f"refund job rows {redone}; Stripe asked {asked} times with one idempotency key",
            f"Stripe refunded {fake_stripe.refunded(intent)} of {cancelled.refund.amount.amount}; "
            f"booking refund {refund_status} {refund_amount}",
            f"refund objects at Stripe: {len(fake_stripe.refunds)}",
        ],
    )
    assert fake_stripe.refunded(intent) == cancelled.refund.amount.amount  # once, not twice
    assert len(fake_stripe.refunds) == 1
    assert refund_status == "succeeded"
    assert asked >= 2
