"""Translate SQLAlchemy and psycopg exceptions into core errors at the adapter's boundary.

Nothing from ``sqlalchemy.exc`` or ``psycopg.errors`` leaves the adapter: a constraint violation
becomes the matching core error, a lost or refused connection becomes DatabaseUnavailable, and
anything else becomes DatabaseError (a bug or a schema mismatch, not the caller's fault).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import exc as orm_exc

from adapters.postgres.rows import NO_OVERLAP
from booking_core.errors import (
    BookingError,
    ConcurrentUpdate,
    Conflict,
    ExternalServiceError,
    NotFound,
    SlotUnavailable,
    ValidationFailed,
)

log = logging.getLogger(__name__)

EXCLUSION_VIOLATION = "23P01"
UNIQUE_VIOLATION = "23505"
FOREIGN_KEY_VIOLATION = "23503"
CHECK_VIOLATION = "23514"
NOT_NULL_VIOLATION = "23502"
SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
# SQLAlchemy's code for "Can't reconnect until invalid transaction is rolled back".
_INVALIDATED_IN_TRANSACTION = "8s2b"
QUERY_CANCELED = "57014"  # statement_timeout (or a cancel): the server is too slow right now


class DatabaseUnavailable(ExternalServiceError):
    """The database could not be reached, or the connection broke; retrying later may work."""

    code = "database_unavailable"
    title = "The database is unavailable"


class DatabaseError(BookingError):
    """The database refused a statement for a reason that is not the caller's input."""

    code = "database_error"
    title = "Database error"


class DatabaseConfigError(ValueError):
    """A database URL the adapter cannot use; the message never contains the password."""


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a psycopg error, bare or wrapped by SQLAlchemy."""
    orig = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    return orig.sqlstate if isinstance(orig, psycopg.Error) else None


def constraint_name(error: sa_exc.DBAPIError) -> str:
    """The name of the constraint a psycopg error reports, or ""."""
    return _constraint(error)


def _constraint(error: sa_exc.DBAPIError) -> str:
    orig = error.orig
    if isinstance(orig, psycopg.Error):
        return orig.diag.constraint_name or ""
    return ""


# Integrity refusals: the caller's values met one of our constraints.
_INTEGRITY = (
    EXCLUSION_VIOLATION,
    UNIQUE_VIOLATION,
    FOREIGN_KEY_VIOLATION,
    CHECK_VIOLATION,
    NOT_NULL_VIOLATION,
)


def translate(error: Exception, *, where: str = "the database") -> Exception:
    """The core error for a SQLAlchemy/psycopg exception (others are returned unchanged)."""
    if isinstance(error, orm_exc.StaleDataError):
        return ConcurrentUpdate("the booking was changed by someone else; read it again")
    if isinstance(error, sa_exc.DBAPIError):
        state = sqlstate(error) or ""
        constraint = _constraint(error)
        if state == EXCLUSION_VIOLATION and constraint in (NO_OVERLAP, ""):
            return SlotUnavailable("the time overlaps another booking")
        if state in _INTEGRITY:
            # The constraint's name is ours to know (it names tables and columns): the log
            # gets it, the error the caller may see gets a fixed description.
            log.info("%s refused a statement: SQLSTATE %s, constraint %s", where, state, constraint)
        if state == EXCLUSION_VIOLATION:
            return Conflict("the record conflicts with another one")
        if state == UNIQUE_VIOLATION:
            return Conflict("a record with the same unique value exists")
        if state == FOREIGN_KEY_VIOLATION:
            return NotFound("a record this one refers to does not exist")
        if state in (CHECK_VIOLATION, NOT_NULL_VIOLATION):
            return ValidationFailed("the database refused the values")
        if state in (SERIALIZATION_FAILURE, DEADLOCK_DETECTED):
            return ConcurrentUpdate("a concurrent transaction got in the way; try again")
        if (
            isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError)
            or error.connection_invalidated
            or state.startswith("08")  # connection exception class
            or state.startswith("57P")  # admin shutdown, crash shutdown, cannot connect now
            or state == QUERY_CANCELED
            or state == "53300"  # too many connections
        ):
            return DatabaseUnavailable(f"{where} is unavailable: {_first_line(error)}")
        return DatabaseError(f"{where} refused a statement: {_first_line(error)}")
    if isinstance(error, sa_exc.TimeoutError):
        return DatabaseUnavailable(f"{where}: no free connection in the pool in time")
    if isinstance(error, sa_exc.PendingRollbackError) and error.code == _INVALIDATED_IN_TRANSACTION:
        # The server went away inside a transaction (a restart, a failover): SQLAlchemy refuses
        # the unit's next statement instead of reconnecting. An outage, not a bug.
        return DatabaseUnavailable(
            f"{where} is unavailable: the connection was lost mid-transaction"
        )
    if isinstance(error, sa_exc.SQLAlchemyError | psycopg.Error):
        return DatabaseError(f"{where}: {_first_line(error)}")
    return error


def _first_line(error: BaseException) -> str:
    orig = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


@contextmanager
def translated(where: str = "the database") -> Iterator[None]:
    """Run a block, re-raising any SQLAlchemy/psycopg exception as a core error ``from`` it."""
    try:
        yield
    except (sa_exc.SQLAlchemyError, psycopg.Error) as exc:
        raise translate(exc, where=where) from exc
