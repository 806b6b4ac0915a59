"""What the fault-injection tests share: their own PostgreSQL (which they stop), the app under
gunicorn, the fake Stripe and Cal.com servers of the integration suite, and the report each test
prints (what was injected, what was found).

Never the machine's shared PostgreSQL: this server lives in a temporary folder, on its own port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from adapters.postgres import migrate
from entrypoints.dev import embedded_postgres as ep

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from fake_calcom import FakeCalcom
from fake_stripe import FakeStripe

API_KEY = "sk_test_reliability_key"
WEBHOOK_SECRET = "whsec_reliability_secret"

__all__ = ["API_KEY", "WEBHOOK_SECRET", "FakeCalcom", "FakeStripe"]


def report(test: str, injected: str, found: list[str]) -> None:
    """One block per test: printed (run with -s to see it) and, when BOOKING_RELIABILITY_REPORT
    names a file, appended to it (CI prints that file after the suite, xdist workers included)."""
    block = f"\n== {test}\n   injected: {injected}\n" + "".join(
        f"   found:    {line}\n" for line in found
    )
    print(block, end="")
    target = os.environ.get("BOOKING_RELIABILITY_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(block)


class OwnPostgres:
    """An embedded PostgreSQL of this suite that tests may stop and start again (same port)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="booking-reliability-pg-"))
        self.server = ep.start_embedded(self.root, database="reliability")
        self.port = self.server.port
        self.pgdata = self.root / "pgdata"
        self.account = ep._service_account()
        self._n = 0

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str) -> str:
        self._n += 1
        name = f"{prefix}_{self._n}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = self.url(name)
        migrate.upgrade(url)
        return url

    def stop(self) -> float:
        """``pg_ctl stop -m fast``: connections are closed, the port refuses. Returns seconds."""
        started = time.monotonic()
        ep._stop_server(self.pgdata, self.account)
        return time.monotonic() - started

    def start(self) -> float:
        started = time.monotonic()
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories=''"
        ep._run_checked(
            [ep._exe("pg_ctl"), "start", "-D", str(self.pgdata), "-l",
             str(self.pgdata / "server.log"), "-w", "-t", "60", "-o", options],
            self.account,
            "starting the reliability PostgreSQL again",
        )  # fmt: skip
        return time.monotonic() - started

    def close(self) -> None:
        try:
            self.server.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def own_pg() -> Iterator[OwnPostgres]:
    pg = OwnPostgres()
    try:
        yield pg
    finally:
        pg.close()


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    with FakeStripe(api_key=API_KEY) as server:
        yield server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def service_env(database_url: str, stripe: FakeStripe, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "BOOKING_ENV": "development",
        "STRIPE_SECRET_KEY": API_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": stripe.url,
        "RATELIMIT_BOOKINGS_PER_IP": "0",
        "RATELIMIT_BOOKINGS_PER_EMAIL": "0",
        "LOG_LEVEL": "WARNING",
        **extra,
    }
    for name in ("CALCOM_API_KEY", "SMTP_URL", "REDIS_URL", "SENTRY_DSN", "METRICS_TOKEN"):
        if name not in extra:
            env.pop(name, None)
    return env


def seed(env: dict[str, str], cwd: Path) -> None:
    code = (
        "from entrypoints.bootstrap import bootstrap; from entrypoints.dev.sample_data import seed;"
        " d = bootstrap(); seed(d.uow()); d.close()"
    )
    subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, check=True, timeout=120)


class Gunicorn:
    """``gunicorn entrypoints.flask_app:create_app()``: one worker, threads, on a free port."""

    def __init__(self, env: dict[str, str], cwd: Path, *, threads: int = 8) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**env, "BASE_URL": self.base}
        self.log = cwd / f"gunicorn-{self.port}.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-w", "1", "-k", "gthread", "--threads",
                 str(threads), "--timeout", "60", "-b", f"127.0.0.1:{self.port}",
                 "entrypoints.flask_app:create_app()"],
                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
            )  # fmt: skip
        self.wait_ready()

    def wait_ready(self, limit: float = 60.0) -> float:
        started = time.monotonic()
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"gunicorn exited:\n{self.log.read_text()}", pytrace=False)
            try:
                if requests.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            if time.monotonic() - started > limit:
                pytest.fail(f"gunicorn did not get ready:\n{self.log.read_text()}", pytrace=False)
            time.sleep(0.1)

    def worker_pids(self) -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    found.append(int(entry.name))
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def wait_for(condition: Callable[[], Any], limit: float, what: str) -> Any:
    deadline = time.monotonic() + limit
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def first_slots(base: str, count: int, service_id: int = 2) -> list[str]:
    """The first ``count`` open starts of practitioner 1's service over the next weeks."""
    answer = requests.get(
        f"{base}/api/practitioners/1/availability",
        params={"service_id": service_id},
        timeout=10,
    )
    answer.raise_for_status()
    starts = [s["start"] for s in answer.json()["slots"]]
    assert len(starts) >= count, f"only {len(starts)} slots"
    return starts[:count]


def book(base: str, start: str, service_id: int = 2, timeout: float = 30) -> requests.Response:
    body = {
        "practitioner_id": 1,
        "service_id": service_id,
        "start": start,
        "client": {"name": "Reliability Client", "email": "rel@example.com"},
    }
    return requests.post(f"{base}/api/bookings", json=body, timeout=timeout)
