"""Migrations: up, down, up again on a fresh database; the result matches the ORM rows."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from importlib import resources
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from adapters.postgres import migrate, normalize_url
from adapters.postgres.migrate import MigrationError
from adapters.postgres.rows import NO_OVERLAP, RowBase

if TYPE_CHECKING:
    from conftest import PgServer

TABLES = {
    "users",
    "practitioners",
    "services",
    "working_hours",
    "date_overrides",
    "time_off",
    "bookings",
    "processed_payment_events",
    "outbox_jobs",
    "idempotency_records",
    "calendar_cache",
    "offline_checkout_sessions",
    "offline_checkout_refunds",
    "payments",
    "sync_cursors",
    "audit_log",
    "api_tokens",
}
HEAD = "0009_offline_sessions_signed"  # the newest migration shipped
ENUMS = {"user_role", "booking_status", "refund_status", "job_status"}


@pytest.fixture
def fresh_url(pg_server: PgServer) -> Iterator[str]:
    url = pg_server.new_database("booking_migrations")
    try:
        yield url
    finally:
        pg_server.drop_database(url)


def _inspect(url: str) -> tuple[set[str], set[str], str | None]:
    engine = sa.create_engine(normalize_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            tables = set(sa.inspect(connection).get_table_names())
            enums = set(
                connection.execute(
                    sa.text("SELECT typname FROM pg_type WHERE typtype = 'e'")
                ).scalars()
            )
            exclusion = connection.execute(
                sa.text(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conname = :name AND contype = 'x'"
                ),
                {"name": NO_OVERLAP},
            ).scalar_one_or_none()
        return tables - {"alembic_version"}, enums, exclusion
    finally:
        engine.dispose()


def _differences(url: str) -> list[object]:
    engine = sa.create_engine(normalize_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": True}
            )
            return list(compare_metadata(context, RowBase.metadata))
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(fresh_url: str) -> None:
    assert migrate.current(fresh_url) is None
    steps: list[str] = []

    migrate.upgrade(fresh_url, progress=steps.append)
    assert migrate.current(fresh_url) == migrate.head() == HEAD
    assert steps[0].startswith("applied 0001")
    assert steps[-1].startswith(f"applied {HEAD}")
    tables, enums, exclusion = _inspect(fresh_url)
    assert tables == TABLES
    assert enums == ENUMS
    assert exclusion is not None
    assert "EXCLUDE USING gist (practitioner_id WITH =" in exclusion
    assert "tstzrange(occupied_start, occupied_end, '[)'::text) WITH &&" in exclusion
    assert "WHERE ((status = ANY (ARRAY['pending'::booking_status" in exclusion
    # The hand-written migration and the ORM rows describe the same schema.
    assert _differences(fresh_url) == []

    migrate.downgrade(fresh_url, "base", progress=steps.append)
    assert steps[-1].startswith("reverted 0001")
    assert migrate.current(fresh_url) is None
    assert _inspect(fresh_url) == (set(), set(), None)

    migrate.upgrade(fresh_url)
    assert migrate.current(fresh_url) == HEAD
    assert _inspect(fresh_url)[0] == TABLES


def test_concurrent_upgrades_in_threads_and_processes(fresh_url: str) -> None:
    errors: list[BaseException] = []

    def upgrade() -> None:
        try:
            migrate.upgrade(fresh_url)
        except BaseException as exc:
            errors.append(exc)

    # Separate processes (several web workers starting at once) queue on the advisory lock.
    # They start migrating at the same instant, once their (slow) imports are done.
    script = (
        "import sys, time; from adapters.postgres import migrate; "
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); migrate.upgrade(sys.argv[1])"
    )
    start_at = str(time.time() + 2.0)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, fresh_url, start_at], stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    time.sleep(max(0.0, float(start_at) - time.time()))
    threads = [threading.Thread(target=upgrade) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for process in processes:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr.decode()
    assert errors == []
    assert migrate.current(fresh_url) == HEAD


def test_an_unknown_revision_is_a_clear_error(fresh_url: str) -> None:
    with pytest.raises(MigrationError, match="nope"):
        migrate.upgrade(fresh_url, "nope")


def test_the_migrations_ship_inside_the_package() -> None:
    package = resources.files("adapters.postgres")
    assert (package / "migrations" / "env.py").is_file()
    assert (package / "migrations" / "script.py.mako").is_file()
    assert (package / "migrations" / "versions" / "0001_initial_schema.py").is_file()
    assert migrate.MIGRATIONS_DIR.parent.name == "postgres"
