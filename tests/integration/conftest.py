"""Fixtures for the integration suite: a real PostgreSQL, never skipped.

The server is ``BOOKING_TEST_DATABASE_URL`` (or ``DATABASE_URL``) when set, otherwise an embedded
PostgreSQL started in a temporary folder (shared by pytest-xdist workers of one run). Either
way each session works in its own freshly created database, migrated to head and dropped at the
end, so a developer's data is never touched. A server that cannot be reached fails the tests
with a message saying which one and what to do.

- ``pg_server``: create and drop databases on the server (``new_database()``).
- ``database_url`` / ``database``: the session's migrated database and its ``Database``.
- ``clean_database``: the same, with every table emptied (identities restarted) first.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from adapters.postgres import Database, DatabaseUnavailable, migrate, normalize_url
from adapters.postgres.rows import RowBase
from entrypoints.dev.embedded_postgres import EmbeddedServer, start_embedded


class PgServer:
    """A PostgreSQL server the tests may create databases on."""

    def __init__(self, admin_url: URL, origin: str) -> None:
        self.admin_url = admin_url
        self.origin = origin  # where the server came from, for failure messages
        self._engine = sa.create_engine(
            admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )

    def check(self) -> None:
        try:
            with self._engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            pytest.fail(
                f"the integration tests need PostgreSQL, and {self.origin} does not answer: "
                f"{str(exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc).strip()}. "
                "Start that server, fix the URL, or unset it to use the embedded server.",
                pytrace=False,
            )

    def new_database(self, prefix: str = "booking_test") -> str:
        """Create an empty database with a unique name; returns its URL."""
        name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
        with self._engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def drop_database(self, url: str) -> None:
        name = sa.engine.make_url(url).database
        with self._engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def dispose(self) -> None:
        self._engine.dispose()


def _shared_data_dir() -> tuple[Path, bool]:
    """The embedded server's folder: one per test run, shared by xdist workers."""
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run_id:
        path = Path(tempfile.gettempdir()) / f"booking-test-pg-{run_id}"
        path.mkdir(mode=0o755, exist_ok=True)
        return path, True
    return Path(tempfile.mkdtemp(prefix="booking-test-pg-")), False


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    configured = os.environ.get("BOOKING_TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    embedded: EmbeddedServer | None = None
    data_dir: Path | None = None
    if configured:
        variable = (
            "BOOKING_TEST_DATABASE_URL"
            if os.environ.get("BOOKING_TEST_DATABASE_URL")
            else "DATABASE_URL"
        )
        admin_url = normalize_url(configured)
        origin = f"the server in {variable} ({admin_url.host}:{admin_url.port or 5432})"
    else:
        data_dir, _shared = _shared_data_dir()
        try:
            embedded = start_embedded(data_dir)
        except DatabaseUnavailable as exc:
            pytest.fail(
                f"the integration tests need PostgreSQL: no BOOKING_TEST_DATABASE_URL is set and "
                f"the embedded server did not start: {exc}",
                pytrace=False,
            )
        admin_url = normalize_url(embedded.url_for("postgres"))
        origin = f"the embedded server ({embedded.describe()})"
    server = PgServer(admin_url, origin)
    try:
        server.check()
        yield server
    finally:
        server.dispose()
        if embedded is not None and embedded.stop() and data_dir is not None:
            shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh database migrated to head, for the whole session."""
    url = pg_server.new_database()
    try:
        migrate.upgrade(url)
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture(scope="session")
def database(database_url: str) -> Iterator[Database]:
    db = Database.connect(database_url, pool_size=5)
    try:
        yield db
    finally:
        db.dispose()


_TABLES = ", ".join(f'"{table.name}"' for table in RowBase.metadata.sorted_tables)


@pytest.fixture
def clean_database(database: Database) -> Database:
    """The session database with every table emptied and identities back at 1."""
    with database.engine.begin() as connection:
        connection.execute(sa.text(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE"))
    # The TRUNCATE's notification ('*') drops the cached practitioners on its way; a test that
    # starts at once must not race it (ids restart, so a stale copy would pass for a new one).
    database._practitioners.drop_all()
    return database


def _redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis for the shared-cache and rate-limit tests; never skipped.

    ``TEST_REDIS_URL`` / ``REDIS_URL`` when set, else the machine's Redis on 127.0.0.1:6379 when
    it answers, else a ``redis-server`` started on a free port when the binary is installed,
    else fakeredis's TCP server (a RESP server in Python: enough for a fresh machine with pip).
    """
    import subprocess
    import threading
    import time

    configured = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL")
    if configured:
        if not _redis_answers(configured):
            pytest.fail(f"Redis at {configured} does not answer", pytrace=False)
        yield configured
        return
    if _redis_answers("redis://127.0.0.1:6379"):
        yield "redis://127.0.0.1:6379"
        return
    port = _free_port()
    url = f"redis://127.0.0.1:{port}"
    binary = shutil.which("redis-server")
    if binary:
        folder = tmp_path_factory.mktemp("redis")
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while not _redis_answers(url):
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("redis-server did not start", pytrace=False)
                time.sleep(0.05)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)
        return
    from fakeredis import TcpFakeServer

    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
