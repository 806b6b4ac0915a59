"""The worker under faults: a worker killed mid-job delays only that job, by at most its lease.

A real ``booking worker`` process runs an outbox job whose call to (a fake, hanging) Stripe
never returns; while it runs its lease is renewed past the lease length, the jobs behind it
stay free for other workers, and once the process is killed its job is free again within the
lease.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import stripe_fixtures
from conftest import PgServer

from adapters.postgres import Database
from booking_core.jobs import Job, JobStatus
from booking_core.usecases import JOB_EXPIRE_CHECKOUT

try:
    from fake_stripe import FakeStripe
except ModuleNotFoundError:  # tests/integration imported as a package
    from tests.integration.fake_stripe import FakeStripe

fake_stripe = stripe_fixtures.fake_stripe
LEASE = 2  # seconds (WORKER_JOB_LEASE_SECONDS); production uses 30


def _booking_command() -> list[str]:
    found = shutil.which("booking", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-c", "from entrypoints.cli import main; main()"]


def _jobs(db: Database) -> dict[int, Job]:
    uow = db.unit_of_work()
    with uow:
        return {job.id or 0: job for job in uow.outbox.list(JobStatus.PENDING)}


def _wait_for(condition: Callable[[], bool], limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.slow
def test_a_killed_worker_delays_only_its_own_job_and_only_by_the_lease(
    pg_server: PgServer, fake_stripe: FakeStripe, tmp_path: Path
) -> None:
    from adapters.postgres import migrate

    url = pg_server.new_database("booking_worker_lease")
    migrate.upgrade(url)
    db = Database.connect(url)
    process: subprocess.Popen[bytes] | None = None
    try:
        uow = db.unit_of_work()
        now = datetime.now(UTC)
        with uow:
            for n in range(3):
                uow.outbox.add(JOB_EXPIRE_CHECKOUT, {"booking_id": n, "session_id": f"cs_{n}"}, now)
            uow.commit()
        fake_stripe.hang_next(1000, seconds=60, path="/v1/checkout/sessions")
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "BOOKING_ENV": "development",
            "STRIPE_SECRET_KEY": stripe_fixtures.API_KEY,
            "STRIPE_WEBHOOK_SECRET": stripe_fixtures.WEBHOOK_SECRET,
            "STRIPE_API_BASE": fake_stripe.url,
            "WORKER_JOB_LEASE_SECONDS": str(LEASE),
            "LOG_LEVEL": "WARNING",
        }
        for name in ("CALCOM_API_KEY", "SMTP_URL", "REDIS_URL", "SENTRY_DSN"):
            env.pop(name, None)
        with (tmp_path / "worker.log").open("wb") as log:
            process = subprocess.Popen(
                [*_booking_command(), "worker", "--interval", "0.2"],
                env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

        # The reconciler lists events too: only the job's own call names the running job.
        def expiring() -> list[str]:
            return [r.path for r in fake_stripe.requests if r.path.endswith("/expire")]

        _wait_for(lambda: len(expiring()) >= 1, 30, "the worker never called Stripe")
        session = expiring()[0].split("/")[-2]  # /v1/checkout/sessions/<id>/expire
        (running,) = [i for i, job in _jobs(db).items() if job.payload["session_id"] == session]

        time.sleep(LEASE * 2)  # well past one lease: the heartbeat must have renewed it
        jobs = _jobs(db)
        now = datetime.now(UTC)
        assert jobs[running].run_at > now, "the running job's lease was not renewed"
        others = [job for job_id, job in jobs.items() if job_id != running]
        assert len(others) == 2
        assert all(job.run_at <= now for job in others), "jobs behind it were leased too"

        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        killed = datetime.now(UTC)
        # Free again within the lease: another worker can claim every job now.
        _wait_for(
            lambda: all(job.run_at <= datetime.now(UTC) for job in _jobs(db).values()),
            LEASE + 1.5,
            "the killed worker's job stayed leased longer than the lease",
        )
        assert datetime.now(UTC) - killed <= timedelta(seconds=LEASE + 1.5)
        claim = db.unit_of_work()
        with claim:
            claimed = claim.outbox.claim_due(datetime.now(UTC), limit=10)
            claim.commit()
        assert {job.id for job in claimed} == set(jobs)
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        fake_stripe.stop()
        db.dispose()
        pg_server.drop_database(url)
