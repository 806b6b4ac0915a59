"""Deadlines on every database call: server timeouts, and a frozen server gives 503s, not hangs.

The frozen server is a PostgreSQL this module starts itself (never the shared one): SIGSTOP on
its postmaster and every backend, which is what a stalled VM or disk looks like to a client (the
kernel still accepts and ACKs, nothing answers).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.memory import FakePaymentGateway, RecordingNotifier
from adapters.postgres import Database, DatabaseUnavailable, migrate
from adapters.postgres.errors import translated
from adapters.schedule import ScheduleCalendarGateway
from entrypoints.bootstrap import Deps, bootstrap
from entrypoints.dev.embedded_postgres import EmbeddedServer, start_embedded
from entrypoints.dev.sample_data import seed
from entrypoints.flask_app import create_app
from entrypoints.settings import Settings


def test_server_side_timeouts_are_set_on_every_connection(database: Database) -> None:
    with database.engine.connect() as connection:
        statement = connection.execute(sa.text("SHOW statement_timeout")).scalar_one()
        idle = connection.execute(sa.text("SHOW idle_in_transaction_session_timeout")).scalar_one()
    assert (statement, idle) == ("5s", "30s")


def test_a_statement_over_the_timeout_is_database_unavailable(database_url: str) -> None:
    db = Database.connect(database_url, statement_timeout_ms=200)
    try:
        started = time.monotonic()
        with (
            pytest.raises(DatabaseUnavailable),
            translated(db.describe()),
            db.engine.connect() as connection,
        ):
            connection.execute(sa.text("SELECT pg_sleep(3)"))
        assert time.monotonic() - started < 2
    finally:
        db.dispose()


def test_options_in_the_url_win(database_url: str) -> None:
    url = sa.engine.make_url(database_url).update_query_dict(
        {"options": "-c statement_timeout=1234"}
    )
    db = Database.connect(url)
    try:
        with db.engine.connect() as connection:
            assert connection.execute(sa.text("SHOW statement_timeout")).scalar_one() == "1234ms"
            idle = connection.execute(sa.text("SHOW idle_in_transaction_session_timeout"))
            assert idle.scalar_one() == "30s"
    finally:
        db.dispose()


# -- a frozen server ------------------------------------------------------------------------------


def _server_pids(root: Path) -> list[int]:
    """The postmaster of ``root`` and every process it started (backends, checkpointer...)."""
    postmaster = int((root / "pgdata" / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == postmaster:
            pids.append(int(entry.name))
    return pids


class Frozen:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.stopped: list[int] = []

    def freeze(self) -> None:
        self.stopped = _server_pids(self.root)
        for pid in self.stopped:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self.stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.stopped = []


@pytest.fixture(scope="module")
def own_server() -> Iterator[tuple[EmbeddedServer, Path]]:
    root = Path(tempfile.mkdtemp(prefix="booking-frozen-pg-"))
    server = start_embedded(root, database="frozen")
    try:
        migrate.upgrade(server.url)
        yield server, root
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def frozen_app(own_server: tuple[EmbeddedServer, Path]) -> Iterator[tuple[Any, Frozen, Deps]]:
    server, root = own_server
    settings = Settings(
        env="test",
        database_url=server.url,
        db_statement_timeout_ms=1000,
        db_connect_timeout=2,
        db_pool_timeout=2,
        ratelimit_bookings_per_ip="0",
        ratelimit_bookings_per_email="0",
    )
    deps = bootstrap(
        settings,
        payments=FakePaymentGateway(checkout_base_url="http://booking.test"),
        calendar=ScheduleCalendarGateway(),
        notifier=RecordingNotifier(),
    )
    seed(deps.uow())
    frozen = Frozen(root)
    try:
        yield create_app(deps).test_client(), frozen, deps
    finally:
        frozen.thaw()
        deps.close()


def _within(limit: float, call: Callable[[], Any]) -> tuple[Any, float]:
    """Run ``call`` on a thread; fail (instead of hanging the suite) if it takes over ``limit``."""
    result: list[Any] = []
    started = time.monotonic()
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(limit)
    elapsed = time.monotonic() - started
    assert not thread.is_alive(), f"no answer within {limit} s: the request hangs"
    return result[0], elapsed


def _slot(client: Any) -> str:
    day = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    to = (datetime.now(UTC) + timedelta(days=10)).date().isoformat()
    body = client.get(
        "/api/practitioners/2/availability",
        query_string={"service_id": 3, "from": day, "to": to},
    ).get_json()
    return str(body["slots"][0]["start"])


def _book(client: Any, start: str) -> Any:
    return client.post(
        "/api/bookings",
        json={
            "practitioner_id": 2,
            "service_id": 3,
            "start": start,
            "client": {"name": "Ada", "email": "ada@example.com"},
        },
    )


@pytest.mark.slow
def test_a_frozen_database_gives_503_with_retry_after_in_time_and_recovers(
    frozen_app: tuple[Any, Frozen, Deps],
) -> None:
    client, frozen, _deps = frozen_app
    assert client.get("/readyz").status_code == 200
    assert client.get("/api/practitioners").status_code == 200
    start = _slot(client)

    frozen.freeze()
    try:
        ready, took = _within(10, lambda: client.get("/readyz"))
        assert ready.status_code == 503, ready.get_data(as_text=True)
        assert took < 2.0
        assert int(ready.headers["Retry-After"]) > 0

        for call in (lambda: client.get("/api/practitioners"), lambda: _book(client, start)):
            response, took = _within(15, call)
            assert response.status_code == 503, response.get_data(as_text=True)
            assert response.get_json()["code"] == "database_unavailable"
            assert int(response.headers["Retry-After"]) > 0
            assert took < 6.0  # one wait (statement timeout + 1 s) and one connect (2 s)
            assert "127.0.0.1" not in response.get_data(as_text=True)
    finally:
        frozen.thaw()

    # Back without a restart: the pool dropped the broken connections.
    deadline = time.monotonic() + 15
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "not ready again after SIGCONT"
        time.sleep(0.2)
    assert client.get("/api/practitioners").status_code == 200
    assert _book(client, start).status_code == 201
