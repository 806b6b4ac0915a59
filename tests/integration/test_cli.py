"""The real ``booking`` command, run as a process from an unrelated working directory."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from adapters.postgres import Database, migrate
from booking_core.model import Role, User

HEAD = migrate.head()  # the newest migration shipped

if TYPE_CHECKING:
    from conftest import PgServer


def _command() -> list[str]:
    installed = shutil.which("booking", path=str(Path(sys.executable).parent))
    if installed:
        return [installed]
    return [sys.executable, "-c", "import sys; from entrypoints.cli import main; sys.exit(main())"]


def booking(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "BOOKING_DATA_DIR", "BOOKING_TEST_DATABASE_URL")
    }
    environment.update(env)
    return subprocess.run(
        [*_command(), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def elsewhere() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="booking-cli-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fresh_url(pg_server: PgServer) -> Iterator[str]:
    url = pg_server.new_database("booking_cli")
    try:
        yield url
    finally:
        pg_server.drop_database(url)


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_migrate_seed_and_downgrade(elsewhere: Path, fresh_url: str) -> None:
    result = booking("db", "current", cwd=elsewhere, DATABASE_URL=fresh_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("none")

    error = _one_error_line(booking("seed", cwd=elsewhere, DATABASE_URL=fresh_url))
    assert "booking db upgrade" in error

    result = booking("db", "upgrade", cwd=elsewhere, DATABASE_URL=fresh_url)
    assert result.returncode == 0, result.stderr
    assert "applied 0001" in result.stderr  # progress goes to stderr
    assert result.stdout.strip() == f"database at revision {HEAD}"
    assert booking("db", "current", cwd=elsewhere, DATABASE_URL=fresh_url).stdout.strip() == (
        f"{HEAD} (head)"
    )

    first = booking("seed", cwd=elsewhere, DATABASE_URL=fresh_url)
    again = booking("seed", cwd=elsewhere, DATABASE_URL=fresh_url)
    assert (first.returncode, again.returncode) == (0, 0)
    assert first.stdout.strip() == "added 2 sample practitioners"
    assert again.stdout.strip() == "practitioners exist already; nothing added"
    database = Database.connect(fresh_url)
    try:
        uow = database.unit_of_work()
        with uow:
            practitioners = uow.practitioners.list()
    finally:
        database.dispose()
    assert len(practitioners) == 2
    assert len({p.timezone for p in practitioners}) == 2
    assert all(p.services and p.weekly_hours.days != ((),) * 7 for p in practitioners)

    result = booking("db", "downgrade", cwd=elsewhere, DATABASE_URL=fresh_url)  # one step
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() != f"database at revision {HEAD}"
    result = booking("db", "downgrade", "base", cwd=elsewhere, DATABASE_URL=fresh_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "database at revision base (empty)"


def test_users_promote_makes_a_signed_in_user_admin(elsewhere: Path, fresh_url: str) -> None:
    assert booking("db", "upgrade", cwd=elsewhere, DATABASE_URL=fresh_url).returncode == 0
    error = _one_error_line(
        booking("users", "promote", "grace@example.com", cwd=elsewhere, DATABASE_URL=fresh_url)
    )
    assert "no user with the email 'grace@example.com'" in error
    database = Database.connect(fresh_url)
    try:
        uow = database.unit_of_work()
        with uow:
            stored = uow.users.upsert(User(open_id="sub-g", email="Grace@Example.com"))
            uow.users.upsert(User(open_id="sub-h", email="h@example.com"))
            uow.commit()
        result = booking(
            "users", "promote", "grace@example.com", cwd=elsewhere, DATABASE_URL=fresh_url
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"user {stored.id} (Grace@Example.com) is now an admin"
        with uow:
            roles = {u: uow.users.get_by_open_id(u).role for u in ("sub-g", "sub-h")}  # type: ignore[union-attr]
    finally:
        database.dispose()
    assert roles == {"sub-g": Role.ADMIN, "sub-h": Role.USER}


def test_tokens_create_prints_an_admin_token_once(elsewhere: Path, fresh_url: str) -> None:
    from booking_core import usecases as uc
    from booking_core.access import AuditFilter

    assert booking("db", "upgrade", cwd=elsewhere, DATABASE_URL=fresh_url).returncode == 0
    result = booking("tokens", "create", "first admin", cwd=elsewhere, DATABASE_URL=fresh_url)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("bkt_")
    assert "shown once" in result.stderr
    assert token not in result.stderr
    error = _one_error_line(booking("tokens", "create", " ", cwd=elsewhere, DATABASE_URL=fresh_url))
    assert "name" in error
    database = Database.connect(fresh_url)
    try:
        actor = uc.actor_for_bearer(token, admin_token=None, uow=database.unit_of_work())
        assert actor is not None
        assert actor.is_admin
        assert actor.name == "first admin"
        uow = database.unit_of_work()
        with uow:
            (stored,) = uow.api_tokens.list()
            (entry,) = uow.audit.list(AuditFilter())
    finally:
        database.dispose()
    assert stored.token_hash != token
    assert (entry.action, entry.actor_type, entry.actor_id) == ("api_token.create", "system", "cli")
    assert token not in repr(entry)


def test_an_unreachable_database_is_one_clear_line(elsewhere: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://booking:hunter2@127.0.0.1:{port}/booking"
    for args in (("db", "upgrade"), ("seed",)):
        error = _one_error_line(booking(*args, cwd=elsewhere, DATABASE_URL=url))
        assert f"127.0.0.1:{port}" in error
        assert "DATABASE_URL" in error
        assert "hunter2" not in error


def test_a_malformed_database_url_is_one_clear_line(elsewhere: Path) -> None:
    error = _one_error_line(
        booking("db", "upgrade", cwd=elsewhere, DATABASE_URL="mysql://u:hunter2@h/db")
    )
    assert "postgresql://" in error
    assert "hunter2" not in error


def test_an_unknown_revision_is_one_clear_line(elsewhere: Path, fresh_url: str) -> None:
    error = _one_error_line(booking("db", "upgrade", "nope", cwd=elsewhere, DATABASE_URL=fresh_url))
    assert "nope" in error


@pytest.mark.slow
def test_without_database_url_the_embedded_server_is_used(elsewhere: Path) -> None:
    data = elsewhere / "data"
    result = booking("db", "upgrade", cwd=elsewhere, BOOKING_DATA_DIR=str(data))
    assert result.returncode == 0, result.stderr
    assert "embedded PostgreSQL" in result.stderr
    result = booking("db", "current", cwd=elsewhere, BOOKING_DATA_DIR=str(data))
    assert result.stdout.strip() == f"{HEAD} (head)"
    assert (data / "embedded.json").read_text() == '{"pids": []}'  # stopped on the way out
