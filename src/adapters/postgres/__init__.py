"""PostgreSQL adapter: SQLAlchemy 2 rows, repositories and unit of work on psycopg 3.

- ``Database.connect(url, pool_size=...)`` configures the engine; ``database.unit_of_work`` is
  the UnitOfWorkFactory the core needs; ``ping``, ``describe``, ``dispose`` serve health checks,
  start-up lines and shutdown.
- ``adapters.postgres.migrate`` runs the Alembic migrations shipped in this package.
- The embedded server for development (no URL configured) lives in ``entrypoints.dev``.

No SQLAlchemy or psycopg exception leaves this package: constraint violations become core errors
(SlotUnavailable, ConcurrentUpdate, ...), connection trouble becomes DatabaseUnavailable.
"""

from adapters.postgres.database import Database, describe_url, normalize_url
from adapters.postgres.errors import DatabaseConfigError, DatabaseError, DatabaseUnavailable
from adapters.postgres.repositories import (
    SqlAlchemyBookingRepository,
    SqlAlchemyIdempotencyStore,
    SqlAlchemyOutbox,
    SqlAlchemyPaymentEventLog,
    SqlAlchemyPractitionerRepository,
    SqlAlchemyUserRepository,
)
from adapters.postgres.uow import SqlAlchemyUnitOfWork

__all__ = [
    "Database",
    "DatabaseConfigError",
    "DatabaseError",
    "DatabaseUnavailable",
    "SqlAlchemyBookingRepository",
    "SqlAlchemyIdempotencyStore",
    "SqlAlchemyOutbox",
    "SqlAlchemyPaymentEventLog",
    "SqlAlchemyPractitionerRepository",
    "SqlAlchemyUnitOfWork",
    "SqlAlchemyUserRepository",
    "describe_url",
    "normalize_url",
]
