"""Run the Alembic migrations shipped in this package, from code (the CLI and tests use these).

They need no alembic.ini and no particular working directory: the script location is this
package's ``migrations`` folder, so an installed (non-editable) package migrates as well.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection
from sqlalchemy.pool import NullPool

from adapters.postgres.database import describe_url, normalize_url
from adapters.postgres.errors import DatabaseError, DatabaseUnavailable, translate

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

Progress = Callable[[str], None]

# Alembic keeps the running migration in module globals (alembic.context, alembic.op), so two
# threads of one process must not migrate at once; other processes queue on the advisory lock
# env.py takes.
_ALEMBIC = threading.Lock()


class MigrationError(DatabaseError):
    """A migration command could not run (unknown revision, a failing step)."""

    code = "migration_error"
    title = "Migration failed"


def _config(connection: Connection | None = None, progress: Progress | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    if progress is not None:

        def report(*, step: MigrationInfo, **_: Any) -> None:
            verb = "applied" if step.is_upgrade else "reverted"
            doc = getattr(step.up_revision, "doc", "") or ""
            progress(f"{verb} {step.up_revision_id}: {doc}")

        config.attributes["on_version_apply"] = report
    return config


@contextmanager
def _connection(url: str | URL, *, migrating: bool = False) -> Iterator[Connection]:
    """One transaction on a throwaway engine; DDL commits or rolls back as a whole.

    While ``migrating``, a statement the database refuses is a MigrationError (a constraint
    violation in DDL is not the caller's Conflict); connection trouble stays
    DatabaseUnavailable.
    """
    parsed = normalize_url(url)
    where = describe_url(parsed)
    try:
        engine = sa.create_engine(parsed, poolclass=NullPool, connect_args={"connect_timeout": 5})
        try:
            with engine.begin() as connection:
                yield connection
        finally:
            engine.dispose()
    except (sa_exc.SQLAlchemyError, psycopg.Error) as exc:
        error = translate(exc, where=where)
        if migrating and not isinstance(error, DatabaseUnavailable):
            raise MigrationError(f"migrating {where} failed: {error}") from exc
        raise error from exc
    except (CommandError, RevisionError) as exc:
        raise MigrationError(str(exc)) from exc


def head() -> str:
    """The newest revision shipped with the package."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    if revision is None:
        raise MigrationError("no migrations are shipped with the package")
    return revision


def upgrade(url: str | URL, revision: str = "head", *, progress: Progress | None = None) -> None:
    """Apply migrations up to ``revision``. Raises DatabaseUnavailable, MigrationError."""
    with _ALEMBIC, _connection(url, migrating=True) as connection:
        command.upgrade(_config(connection, progress), revision)


def downgrade(url: str | URL, revision: str, *, progress: Progress | None = None) -> None:
    """Revert migrations down to ``revision`` (``base`` empties the schema, ``-1`` one step)."""
    with _ALEMBIC, _connection(url, migrating=True) as connection:
        command.downgrade(_config(connection, progress), revision)


def current(url: str | URL) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    with _connection(url) as connection:
        return MigrationContext.configure(connection).get_current_revision()
