"""The PostgreSQL unit of work: one connection, hence one transaction, per ``with``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cached_property
from types import TracebackType
from typing import Self

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from adapters.postgres.errors import translate, translated
from adapters.postgres.practitioner_cache import PractitionerCache
from adapters.postgres.repositories import (
    SqlAlchemyApiTokenRepository,
    SqlAlchemyAuditLog,
    SqlAlchemyBookingRepository,
    SqlAlchemyCursorStore,
    SqlAlchemyIdempotencyStore,
    SqlAlchemyOutbox,
    SqlAlchemyPaymentEventLog,
    SqlAlchemyPaymentLedger,
    SqlAlchemyPractitionerRepository,
    SqlAlchemyUserRepository,
    Statements,
)

log = logging.getLogger(__name__)


class SqlAlchemyUnitOfWork:
    """booking_core.ports.UnitOfWork on PostgreSQL.

    ``with uow:`` opens a unit of work; its connection is taken from the pool at the first
    statement, and leaving the block rolls back whatever was not committed and returns it.
    The repositories' Core statements (a hold, the checkout noted on it, the availability's
    spans) run on that connection directly; a SQLAlchemy session, for the ORM reads and
    writes, is made only when one is needed, and then owns the same connection and its
    transaction. The object may be entered again afterwards, but never by two threads at
    once: build one per request or job from ``Database.unit_of_work``.
    """

    def __init__(
        self,
        session_factory: Callable[..., Session],
        *,
        engine: Engine,
        where: str = "the database",
        practitioner_cache: PractitionerCache | None = None,
    ):
        self._session_factory = session_factory
        self._engine = engine
        self._where = where
        self._open = False
        self._connection: Connection | None = None
        self._session: Session | None = None
        self._practitioner_cache = practitioner_cache

    # The repositories, each made at its first use: a request touches two or three of them.
    practitioners = cached_property(
        lambda self: SqlAlchemyPractitionerRepository(
            self._current, self._where, self._practitioner_cache
        )
    )
    bookings = cached_property(
        lambda self: SqlAlchemyBookingRepository(self._current, self._where, self._statements)
    )
    users = cached_property(lambda self: SqlAlchemyUserRepository(self._current, self._where))
    payment_events = cached_property(
        lambda self: SqlAlchemyPaymentEventLog(self._current, self._where)
    )
    ledger = cached_property(lambda self: SqlAlchemyPaymentLedger(self._current, self._where))
    cursors = cached_property(lambda self: SqlAlchemyCursorStore(self._current, self._where))
    outbox = cached_property(lambda self: SqlAlchemyOutbox(self._current, self._where))
    idempotency = cached_property(
        lambda self: SqlAlchemyIdempotencyStore(self._current, self._where)
    )
    audit = cached_property(lambda self: SqlAlchemyAuditLog(self._current, self._where))
    api_tokens = cached_property(
        lambda self: SqlAlchemyApiTokenRepository(self._current, self._where)
    )

    def _connected(self) -> Connection:
        if not self._open:
            raise RuntimeError("use the unit of work inside a 'with' block")
        if self._connection is None:
            self._connection = self._engine.connect()
        return self._connection

    def _current(self) -> Session:
        """The unit's session (made at the first ORM use), owning its connection."""
        if self._session is None:
            # control_fully: the session's commit, rollback and close act on the connection's
            # transaction, begun or not by the Core statements before it.
            self._session = self._session_factory(
                bind=self._connected(), join_transaction_mode="control_fully"
            )
        return self._session

    def _statements(self) -> Statements:
        """Where a Core statement runs: the session, once there is one, else the connection."""
        return Statements(self._session if self._session is not None else self._connected())

    def __enter__(self) -> Self:
        if self._open:
            raise RuntimeError("unit of work is already open; build one per use")
        self._open = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, connection = self._session, self._connection
        self._session, self._connection, self._open = None, None, False
        failed: SQLAlchemyError | None = None
        # The session rolls back anything not committed; the connection too when no session
        # was made, and goes back to the pool.
        for closing in (session, connection):
            if closing is not None:
                try:
                    closing.close()
                except SQLAlchemyError as close_error:
                    failed = failed or close_error
        if failed is None:
            return
        if exc is not None:
            # Keep the error that ended the block; a dead connection often causes both.
            log.warning("could not close the database session cleanly: %s", failed)
            return
        raise translate(failed, where=self._where) from failed

    def _owner(self) -> Session | Connection | None:
        """What holds the unit's transaction: its session, else its connection (None before
        the first statement)."""
        if not self._open:
            raise RuntimeError("use the unit of work inside a 'with' block")
        return self._session if self._session is not None else self._connection

    def commit(self) -> None:
        with translated(self._where):
            owner = self._owner()
            if owner is not None:
                owner.commit()

    def rollback(self) -> None:
        with translated(self._where):
            owner = self._owner()
            if owner is not None:
                owner.rollback()
