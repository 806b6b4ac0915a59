"""Alembic environment: migrate on the connection ``adapters.postgres.migrate`` hands over.

Run through the plain ``alembic`` command (``alembic -c migrations/alembic.ini upgrade head``)
it connects to ``sqlalchemy.url`` from the ini file, or to ``DATABASE_URL``.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from adapters.postgres.database import normalize_url
from adapters.postgres.rows import RowBase

# Concurrent migrators (several processes starting at once) queue on this advisory lock, taken
# inside the migration transaction; the second one then finds nothing left to do.
MIGRATION_LOCK_KEY = 7_241_003_001

config = context.config
target_metadata = RowBase.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        transaction_per_migration=False,
        on_version_apply=config.attributes.get("on_version_apply"),
    )
    with context.begin_transaction():
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
        )
        context.run_migrations()


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("set sqlalchemy.url in alembic.ini or DATABASE_URL")
    return url


def run_migrations_offline() -> None:
    context.configure(
        url=normalize_url(_url()),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    engine = sa.create_engine(normalize_url(_url()), poolclass=NullPool)
    try:
        with engine.connect() as own:
            _run(own)
            own.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
