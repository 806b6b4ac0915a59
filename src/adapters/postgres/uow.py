"""The PostgreSQL unit of work: one SQLAlchemy session, hence one transaction, per ``with``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import Self

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from adapters.postgres.errors import translate, translated
from adapters.postgres.repositories import (
    PractitionerCache,
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
)

log = logging.getLogger(__name__)


class SqlAlchemyUnitOfWork:
    """booking_core.ports.UnitOfWork on PostgreSQL.

    ``with uow:`` opens a new session (its connection is taken from the pool at the first
    statement); leaving the block rolls back whatever was not committed and closes the session.
    The object may be entered again afterwards, but never by two threads at once: build one per
    request or job from ``Database.unit_of_work``.
    """

    def __init__(
        self,
        session_factory: Callable[[], Session],
        *,
        where: str = "the database",
        practitioner_cache: PractitionerCache | None = None,
    ):
        self._session_factory = session_factory
        self._where = where
        self._session: Session | None = None
        self.practitioners = SqlAlchemyPractitionerRepository(
            self._current, where, practitioner_cache
        )
        self.bookings = SqlAlchemyBookingRepository(self._current, where)
        self.users = SqlAlchemyUserRepository(self._current, where)
        self.payment_events = SqlAlchemyPaymentEventLog(self._current, where)
        self.ledger = SqlAlchemyPaymentLedger(self._current, where)
        self.cursors = SqlAlchemyCursorStore(self._current, where)
        self.outbox = SqlAlchemyOutbox(self._current, where)
        self.idempotency = SqlAlchemyIdempotencyStore(self._current, where)
        self.audit = SqlAlchemyAuditLog(self._current, where)
        self.api_tokens = SqlAlchemyApiTokenRepository(self._current, where)

    def _current(self) -> Session:
        if self._session is None:
            raise RuntimeError("use the unit of work inside a 'with' block")
        return self._session

    def __enter__(self) -> Self:
        if self._session is not None:
            raise RuntimeError("unit of work is already open; build one per use")
        self._session = self._session_factory()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            session.close()  # rolls back anything not committed, returns the connection
        except SQLAlchemyError as close_error:
            if exc is not None:
                # Keep the error that ended the block; a dead connection often causes both.
                log.warning("could not close the database session cleanly: %s", close_error)
                return
            raise translate(close_error, where=self._where) from close_error

    def commit(self) -> None:
        with translated(self._where):
            self._current().commit()

    def rollback(self) -> None:
        with translated(self._where):
            self._current().rollback()
