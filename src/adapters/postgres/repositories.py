"""The repositories of booking_core.ports on a SQLAlchemy session (one session per unit of work).

Every public method translates database exceptions into core errors (see ``errors``). Reads use
``populate_existing`` so a repeated read inside one unit of work sees what the database holds
now, as the memory adapter does, rather than the session's cached copy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from adapters.postgres.database_events import in_transaction
from adapters.postgres.driver import DriverStatement
from adapters.postgres.errors import (
    CHECK_VIOLATION,
    DEADLOCK_DETECTED,
    constraint_name,
    sqlstate,
    translate,
    translated,
)
from adapters.postgres.mapping import (
    api_token_from_row,
    audit_from_row,
    booking_from_row,
    booking_values,
    idempotency_from_row,
    job_from_row,
    payment_from_row,
    practitioner_fields_to_row,
    practitioner_from_row,
    service_to_row,
    user_from_row,
    user_values,
)
from adapters.postgres.practitioner_cache import PractitionerCache
from adapters.postgres.rows import (
    NO_OVERLAP,
    OCCUPYING_SQL,
    REFUND_WITHIN_CAPTURE,
    ApiTokenRow,
    AuditRow,
    BookingRow,
    IdempotencyRecordRow,
    OutboxJobRow,
    PaymentRow,
    PractitionerRow,
    ProcessedPaymentEventRow,
    ServiceRow,
    SyncCursorRow,
    TimeOffRow,
    UserRow,
)
from booking_core.access import ApiToken, AuditEntry, AuditFilter
from booking_core.errors import (
    ConcurrentUpdate,
    PractitionerNotFound,
    RefundExceedsCapture,
    ServiceNotFound,
    SlotUnavailable,
    UserNotFound,
)
from booking_core.jobs import Job, JobStatus
from booking_core.model import (
    Booking,
    BookingStatus,
    Interval,
    Money,
    Payment,
    Practitioner,
    Role,
    User,
)
from booking_core.ports import BookingFilter, IdempotencyRecord

SessionSource = Callable[[], Session]
T = TypeVar("T")


class Statements:
    """Where a unit of work's Core statements run: its session, when it has one (the changes
    waiting in it count as written), else its bare connection (no session is made for them)."""

    def __init__(self, target: Session | sa.Connection) -> None:
        self._target = target

    def connection(self) -> sa.Connection:
        target = self._target
        return target.connection() if isinstance(target, Session) else target

    def pending(self) -> bool:
        """Whether ORM changes wait in the session, to be written at the next flush."""
        target = self._target
        return isinstance(target, Session) and bool(target.new or target.dirty or target.deleted)

    def flush(self) -> None:
        if isinstance(self._target, Session):
            self._target.flush()

    def begin_nested(self) -> Any:
        return self._target.begin_nested()

    def commit(self) -> None:
        self._target.commit()

    def rollback(self) -> None:
        self._target.rollback()


StatementsSource = Callable[[], Statements]

_BOOKINGS = cast(sa.Table, BookingRow.__table__)
# Built once: a statement object is compiled and cached by SQLAlchemy on first use; building
# one per call (insert().values({...}) with thirty columns) cost more than running it.
# An overlap is answered by the exclusion constraint as the arbiter of ON CONFLICT DO NOTHING:
# no row comes back, no error aborts the transaction, and PostgreSQL's speculative insertion
# never leaves a refused row in the index for others to wait on. With a plain INSERT, 39 losers
# of a race for one slot each left an uncommitted row there until they rolled back, and the
# winner's next write (attaching its checkout re-checks the constraint) could deadlock with
# them: the winner was then refused too, and nobody got the slot.
_INSERT_BOOKING = DriverStatement(
    pg_insert(_BOOKINGS).on_conflict_do_nothing(constraint=NO_OVERLAP).returning(_BOOKINGS.c.id)
)
_UPDATE_BOOKING = DriverStatement(
    sa.update(_BOOKINGS).where(
        _BOOKINGS.c.id == sa.bindparam("b_id"), _BOOKINGS.c.version == sa.bindparam("b_version")
    )
)

_FRESH = {"populate_existing": True}

# Two transactions writing overlapping bookings at the same moment (a reschedule moving onto a
# span another one is taking, say) can each find the other's uncommitted row while checking the
# exclusion constraint and wait for each other; PostgreSQL then aborts one with 40P01
# (deadlock_detected) after deadlock_timeout (1 s by default). The loser's write is rolled back
# and tried once more: usually it now just waits for the other transaction and gets a definite
# answer. If the cycle persists, the slot is contended: SlotUnavailable. (A new booking's INSERT
# takes no part: ON CONFLICT DO NOTHING inserts speculatively, see _INSERT_BOOKING.)
_DEADLOCK_ATTEMPTS = 2


def _in_savepoint(target: Statements, apply: Callable[[bool], T], *, commit: bool = False) -> T:
    """Run ``apply`` (changes to the session, or statements on its connection) and flush, so
    that a refused write leaves the transaction usable (ports.BookingRepository.save promises
    it); returns what ``apply`` returned. ``apply`` is told whether its statement runs on its
    own, outside a transaction (then ``_write`` sends it through the driver).

    The write runs inside a SAVEPOINT when the transaction has something to lose: a write or a
    lock before it, or changes waiting in the session. When none is open yet (only plain reads
    ran, outside a transaction: database_events; the first write of a hold or of a checkout),
    rolling back what the write began leaves exactly what rolling back to a savepoint would,
    and saves the SAVEPOINT and RELEASE round trips.

    ``commit``: the unit of work is committed with this write. When none is open, the write is
    then a statement that commits itself: no BEGIN, no COMMIT round trip.
    """
    for attempt in range(1, _DEADLOCK_ATTEMPTS + 1):
        protect = in_transaction(target.connection()) or target.pending()
        try:
            if protect:
                with target.begin_nested():
                    result = apply(False)
                    target.flush()
            else:
                try:
                    result = apply(commit)
                    target.flush()
                except BaseException:
                    target.rollback()  # nothing was done before: the same as a savepoint's
                    raise
            if commit:
                target.commit()
            return result
        except DBAPIError as exc:
            if sqlstate(exc) != DEADLOCK_DETECTED:
                raise
            if attempt == _DEADLOCK_ATTEMPTS:
                # Only overlapping writers of one practitioner wait on each other here.
                raise SlotUnavailable("the time is being booked by someone else") from exc
    raise AssertionError("unreachable")


def _write(
    target: Statements, statement: DriverStatement, values: Mapping[str, Any], *, on_its_own: bool
) -> tuple[int, Any]:
    """Run a Core write; returns its row count and the first row it returned (or None). On its
    own (no transaction open, nothing to write after it) it goes straight through psycopg and
    commits itself; else through SQLAlchemy, in the unit's transaction."""
    connection = target.connection()
    if on_its_own:
        cursor = statement.send(connection, values)
        return cursor.rowcount, cursor.fetchone() if cursor.description else None
    result = connection.execute(statement.core, values)
    return result.rowcount, result.first() if result.returns_rows else None


# Same predicate as occupying_statement, so the exclusion constraint's GiST index serves it. The
# casts matter: psycopg sends a small id as smallint, which btree_gist's bigint operator class
# cannot search by, so PostgreSQL filtered the window's rows of every practitioner instead
# (x12 slower at 1 000 000 rows).
_OCCUPIED_SPANS = sa.text(
    "SELECT occupied_start, occupied_end FROM bookings "  # noqa: S608 - constants, no input
    f"WHERE practitioner_id = CAST(:practitioner_id AS bigint) AND {OCCUPYING_SQL} "
    "AND tstzrange(occupied_start, occupied_end, '[)') "
    "&& tstzrange(CAST(:start AS timestamptz), CAST(:end AS timestamptz), '[)') "
    "ORDER BY occupied_start"
)


def occupying_statement(practitioner_id: int, window: Interval) -> sa.Select[Any]:
    """The availability query: occupying bookings of one practitioner overlapping ``window``.

    Written to match the exclusion constraint's GiST index: the same columns and range
    expression, and the same literal predicate (see rows.OCCUPYING_SQL); SQLAlchemy casts the id
    to BIGINT, so btree_gist can use it too.
    """
    occupied = sa.func.tstzrange(
        BookingRow.occupied_start, BookingRow.occupied_end, sa.literal_column("'[)'")
    )
    wanted = sa.func.tstzrange(window.start, window.end, sa.literal_column("'[)'"))
    return (
        sa.select(BookingRow)
        .where(
            BookingRow.practitioner_id == practitioner_id,
            sa.text(OCCUPYING_SQL),
            occupied.op("&&")(wanted),
        )
        .order_by(BookingRow.starts_at, BookingRow.id)
    )


class SqlAlchemyPractitionerRepository:
    def __init__(
        self, session: SessionSource, where: str, cache: PractitionerCache | None = None
    ) -> None:
        self._session = session
        self._where = where
        self._cache = cache or PractitionerCache()

    def _row(self, practitioner_id: int) -> PractitionerRow | None:
        stmt = sa.select(PractitionerRow).where(PractitionerRow.id == practitioner_id)
        return self._session().scalars(stmt, execution_options=_FRESH).one_or_none()

    def get(self, practitioner_id: int, *, max_age: float = 0.0) -> Practitioner | None:
        generation = None
        if max_age > 0:
            cached = self._cache.get(practitioner_id, max_age)
            if cached is not None:
                return cached
            generation = self._cache.generation(practitioner_id)  # before the read
        with translated(self._where):
            row = self._row(practitioner_id)
            found = practitioner_from_row(row) if row is not None else None
        if found is not None and max_age > 0:
            self._cache.put(found, generation)
        return found

    def lock(self, practitioner_id: int) -> None:
        # A row lock, not an advisory one: it ends with the transaction whatever happens, and
        # the web workers on other machines take the same one.
        stmt = (
            sa.select(PractitionerRow.id)
            .where(PractitionerRow.id == practitioner_id)
            .with_for_update()
        )
        with translated(self._where):
            self._session().execute(stmt)

    def owner_of_service(self, service_id: int) -> int | None:
        with translated(self._where):
            stmt = sa.select(ServiceRow.practitioner_id).where(
                ServiceRow.id == service_id, ServiceRow.retired.is_(False)
            )
            return self._session().execute(stmt).scalar_one_or_none()

    def owner_of_time_off(self, time_off_id: int) -> int | None:
        with translated(self._where):
            stmt = sa.select(TimeOffRow.practitioner_id).where(TimeOffRow.id == time_off_id)
            return self._session().execute(stmt).scalar_one_or_none()

    def list(self, *, active_only: bool = True) -> list[Practitioner]:
        with translated(self._where):
            stmt = sa.select(PractitionerRow).order_by(PractitionerRow.id)
            if active_only:
                stmt = stmt.where(PractitionerRow.active.is_(True))
            rows = self._session().scalars(stmt, execution_options=_FRESH).all()
            return [practitioner_from_row(row) for row in rows]

    def add(self, practitioner: Practitioner) -> Practitioner:
        """Insert; ids given on the practitioner or its services are ignored (identity columns)."""
        with translated(self._where):
            session = self._session()
            row = PractitionerRow()
            practitioner_fields_to_row(practitioner, row)
            for position, service in enumerate(practitioner.services):
                service_row = ServiceRow()
                service_to_row(service, service_row, position=position)
                row.services.append(service_row)
            _in_savepoint(Statements(session), lambda _on_its_own: session.add(row))
            return practitioner_from_row(row)

    def save(self, practitioner: Practitioner) -> None:
        """Replace the stored practitioner; a service left out of the list is retired.

        Retired services stay in the table (bookings refer to them) but are never read back.
        Raises PractitionerNotFound, ServiceNotFound (a service id of another practitioner).
        """
        with translated(self._where):
            session = self._session()
            row = self._row(practitioner.id) if practitioner.id is not None else None
            if row is None:
                raise PractitionerNotFound(f"no practitioner with id {practitioner.id}")
            existing = {service.id: service for service in row.services}
            unknown = [
                s.id for s in practitioner.services if s.id is not None and s.id not in existing
            ]
            if unknown:
                raise ServiceNotFound(
                    f"practitioner {practitioner.id} has no service with id {unknown[0]}"
                )

            def apply(_on_its_own: bool) -> None:
                practitioner_fields_to_row(practitioner, row)
                kept: set[int] = set()
                for position, service in enumerate(practitioner.services):
                    if service.id is None:
                        service_row = ServiceRow()
                        row.services.append(service_row)
                    else:
                        service_row = existing[service.id]
                        kept.add(service.id)
                    service_to_row(service, service_row, position=position)
                for service_id, service_row in existing.items():
                    if service_id not in kept and not service_row.retired:
                        service_row.retired = True
                        service_row.active = False

            _in_savepoint(Statements(session), apply)
            # Other processes drop theirs when the transaction commits (the tables' triggers
            # send the notification); this one at once.
            self._cache.drop(practitioner.id)


class SqlAlchemyBookingRepository:
    def __init__(self, session: SessionSource, where: str, statements: StatementsSource) -> None:
        self._session = session
        self._where = where
        self._statements = statements

    def add(self, booking: Booking, *, commit: bool = False) -> Booking:
        # Core, not the ORM: one INSERT ... RETURNING id, no row object to build and flush.
        values = {**booking_values(booking), "version": 1}
        with translated(self._where):
            target = self._statements()
            _, row = _in_savepoint(
                target,
                lambda on_its_own: _write(target, _INSERT_BOOKING, values, on_its_own=on_its_own),
                commit=commit,
            )
        if row is None:
            raise SlotUnavailable("the time overlaps another booking")
        added = booking.copy()
        added.id, added.version = row[0], 1
        return added

    def _one(self, *where: sa.ColumnElement[bool]) -> Booking | None:
        with translated(self._where):
            stmt = sa.select(BookingRow).where(*where).order_by(BookingRow.id).limit(1)
            row = self._session().scalars(stmt, execution_options=_FRESH).one_or_none()
            return booking_from_row(row) if row is not None else None

    def get(self, booking_id: int) -> Booking | None:
        return self._one(BookingRow.id == booking_id)

    def get_by_checkout_session(self, session_id: str) -> Booking | None:
        return self._one(BookingRow.checkout_session_id == session_id)

    def get_by_payment_intent(self, payment_intent_id: str) -> Booking | None:
        return self._one(BookingRow.payment_intent_id == payment_intent_id)

    def get_by_calendar_uid(self, uid: str) -> Booking | None:
        return self._one(BookingRow.calendar_uid == uid)

    def save(self, booking: Booking, *, commit: bool = False) -> None:
        """One UPDATE of the row at the booking's version (optimistic locking), no read first:
        a row changed (or deleted) since the booking was read raises ConcurrentUpdate."""
        if booking.id is None:
            raise ValueError("save() needs a booking that was added")
        values = {
            **booking_values(booking),
            "version": booking.version + 1,
            "b_id": booking.id,
            "b_version": booking.version,
        }
        with translated(self._where):
            target = self._statements()

            def apply(on_its_own: bool) -> None:
                written, _ = _write(target, _UPDATE_BOOKING, values, on_its_own=on_its_own)
                if written != 1:
                    raise ConcurrentUpdate(f"booking {booking.id} was changed concurrently")

            _in_savepoint(target, apply, commit=commit)
        booking.version += 1  # as the memory adapter does after a save

    def _many(self, stmt: sa.Select[Any]) -> list[Booking]:
        with translated(self._where):
            rows = self._session().scalars(stmt, execution_options=_FRESH).all()
            return [booking_from_row(row) for row in rows]

    def list_occupying(self, practitioner_id: int, window: Interval) -> list[Booking]:
        return self._many(occupying_statement(practitioner_id, window))

    def occupied_spans(self, practitioner_id: int, window: Interval) -> list[Interval]:
        # The hot path of availability: one prepared text statement (building a Select per
        # request cost more than running it), two columns, no ORM objects.
        params = {"practitioner_id": practitioner_id, "start": window.start, "end": window.end}
        with translated(self._where):
            rows = self._statements().connection().execute(_OCCUPIED_SPANS, params).all()
        return [Interval(start, end) for start, end in rows]

    def list_expired_holds(
        self,
        now: datetime,
        limit: int = 100,
        *,
        after: tuple[datetime, int] | None = None,
        status: BookingStatus = BookingStatus.PENDING,
    ) -> list[Booking]:
        # Pending as a literal, so the partial index ix_bookings_pending_hold_expires_at serves.
        which = (
            sa.text("status = 'pending'")
            if status is BookingStatus.PENDING
            else BookingRow.status == status
        )
        stmt = sa.select(BookingRow).where(which, BookingRow.hold_expires_at < now)
        if after is not None:
            stmt = stmt.where(
                sa.tuple_(BookingRow.hold_expires_at, BookingRow.id) > sa.tuple_(*after)
            )
        stmt = stmt.order_by(BookingRow.hold_expires_at, BookingRow.id).limit(limit)
        return self._many(stmt)

    def list_unattached_holds(self, created_before: datetime, limit: int = 100) -> list[Booking]:
        stmt = (
            sa.select(BookingRow)
            .where(
                sa.text("status = 'pending'"),
                BookingRow.checkout_session_id.is_(None),
                BookingRow.created_at < created_before,
            )
            .order_by(BookingRow.created_at, BookingRow.id)
            .limit(limit)
        )
        return self._many(stmt)

    def list_refunds_due(self, limit: int = 100) -> list[Booking]:
        stmt = (
            sa.select(BookingRow)
            .where(sa.text("refund_status = 'pending'"))
            .order_by(BookingRow.updated_at, BookingRow.id)
            .limit(limit)
        )
        return self._many(stmt)

    def list(self, filters: BookingFilter) -> list[Booking]:
        f = filters
        stmt = sa.select(BookingRow)
        if f.practitioner_id is not None:
            stmt = stmt.where(BookingRow.practitioner_id == f.practitioner_id)
        if f.status is not None:
            stmt = stmt.where(BookingRow.status == f.status)
        if f.start_from is not None:
            stmt = stmt.where(BookingRow.starts_at >= f.start_from)
        if f.start_to is not None:
            stmt = stmt.where(BookingRow.starts_at < f.start_to)
        if f.client_email:
            stmt = stmt.where(sa.func.lower(BookingRow.client_email) == f.client_email.lower())
        if f.after is not None or f.oldest_first:
            if f.after is not None:
                stmt = stmt.where(
                    sa.tuple_(BookingRow.starts_at, BookingRow.id) > sa.tuple_(*f.after)
                )
            stmt = stmt.order_by(BookingRow.starts_at, BookingRow.id).limit(f.limit)
            return self._many(stmt)
        stmt = (
            stmt.order_by(BookingRow.starts_at.desc(), BookingRow.id.desc())
            .offset(f.offset)
            .limit(f.limit)
        )
        return self._many(stmt)

    def count_by_status(self) -> dict[BookingStatus, int]:
        with translated(self._where):
            stmt = sa.select(BookingRow.status, sa.func.count()).group_by(BookingRow.status)
            rows = self._session().execute(stmt).all()
        return {BookingStatus(status): count for status, count in rows}


class SqlAlchemyUserRepository:
    def __init__(self, session: SessionSource, where: str) -> None:
        self._session = session
        self._where = where

    def upsert(self, user: User) -> User:
        """One INSERT ... ON CONFLICT (open_id) DO UPDATE ... RETURNING (see the port)."""
        with translated(self._where):
            insert = pg_insert(UserRow).values(**user_values(user))
            changes: dict[str, Any] = {
                "name": insert.excluded.name,
                "email": insert.excluded.email,
                "last_signed_in": insert.excluded.last_signed_in,
                "updated_at": sa.func.now(),
            }
            # Only the owner's sign-in changes a stored role (to admin); a promoted admin or a
            # practitioner keeps theirs when they sign in again.
            if user.role is Role.ADMIN:
                changes["role"] = insert.excluded.role
            stmt = insert.on_conflict_do_update(
                index_elements=[UserRow.open_id], set_=changes
            ).returning(UserRow)
            row = self._session().scalars(stmt, execution_options=_FRESH).one()
            return user_from_row(row)

    def _one(self, stmt: sa.Select[UserRow]) -> User | None:
        with translated(self._where):
            row = self._session().scalars(stmt, execution_options=_FRESH).one_or_none()
            return user_from_row(row) if row is not None else None

    def get(self, user_id: int) -> User | None:
        return self._one(sa.select(UserRow).where(UserRow.id == user_id))

    def get_by_open_id(self, open_id: str) -> User | None:
        return self._one(sa.select(UserRow).where(UserRow.open_id == open_id))

    def find_by_email(self, email: str) -> list[User]:
        with translated(self._where):
            stmt = (
                sa.select(UserRow)
                .where(sa.func.lower(UserRow.email) == email.lower())
                .order_by(UserRow.id)
            )
            rows = self._session().scalars(stmt, execution_options=_FRESH).all()
            return [user_from_row(row) for row in rows]

    def set_role(self, user_id: int, role: Role, practitioner_id: int | None) -> User:
        with translated(self._where):
            stmt = (
                sa.update(UserRow)
                .where(UserRow.id == user_id)
                .values(role=role, practitioner_id=practitioner_id, updated_at=sa.func.now())
                .returning(UserRow)
            )
            row = self._session().scalars(stmt, execution_options=_FRESH).one_or_none()
            if row is None:
                raise UserNotFound(f"no user with id {user_id}")
            return user_from_row(row)

    def list(self, limit: int = 500) -> list[User]:
        with translated(self._where):
            stmt = sa.select(UserRow).order_by(UserRow.id).limit(limit)
            rows = self._session().scalars(stmt, execution_options=_FRESH).all()
            return [user_from_row(row) for row in rows]


class SqlAlchemyPaymentEventLog:
    def __init__(self, session: SessionSource, where: str) -> None:
        self._session = session
        self._where = where

    def record(self, event_id: str, event_type: str, received_at: datetime) -> bool:
        """INSERT ... ON CONFLICT DO NOTHING: True when this call inserted the id.

        A concurrent transaction that inserted the same id first makes this wait until it ends:
        False if it committed, True if it rolled back.
        """
        with translated(self._where):
            stmt = (
                pg_insert(ProcessedPaymentEventRow)
                .values(event_id=event_id, event_type=event_type, received_at=received_at)
                .on_conflict_do_nothing(index_elements=[ProcessedPaymentEventRow.event_id])
                .returning(ProcessedPaymentEventRow.event_id)
            )
            return self._session().execute(stmt).scalar_one_or_none() is not None


class SqlAlchemyPaymentLedger:
    """ports.PaymentLedger on the ``payments`` table (its CHECK bounds the refunds)."""

    def __init__(self, session: SessionSource, where: str) -> None:
        self._session = session
        self._where = where

    def capture(self, payment: Payment, at: datetime) -> bool:
        """INSERT ... ON CONFLICT DO NOTHING on the intent: True when this call inserted it.

        A concurrent capture of the same intent waits for that transaction to end.
        """
        with translated(self._where):
            stmt = (
                pg_insert(PaymentRow)
                .values(
                    payment_intent_id=payment.payment_intent_id,
                    booking_id=payment.booking_id,
                    currency=payment.captured.currency,
                    captured_amount=payment.captured.amount,
                    refunded_amount=0,
                    created_at=at,
                    updated_at=at,
                )
                .on_conflict_do_nothing(index_elements=[PaymentRow.payment_intent_id])
                .returning(PaymentRow.payment_intent_id)
            )
            return self._session().execute(stmt).scalar_one_or_none() is not None

    def add_refund(self, payment_intent_id: str, amount: Money, at: datetime) -> Payment:
        refused = RefundExceedsCapture(
            f"a refund of {amount.amount} {amount.currency} exceeds what payment "
            f"{payment_intent_id} has left"
        )
        session = self._session()
        stmt = (
            sa.update(PaymentRow)
            .where(
                PaymentRow.payment_intent_id == payment_intent_id,
                PaymentRow.currency == amount.currency,
            )
            .values(refunded_amount=PaymentRow.refunded_amount + amount.amount, updated_at=at)
            .returning(PaymentRow)
        )
        try:
            with session.begin_nested():  # the unit of work stays usable after a refusal
                row = session.scalars(stmt, execution_options=_FRESH).one_or_none()
        except DBAPIError as exc:
            if sqlstate(exc) == CHECK_VIOLATION and constraint_name(exc) == REFUND_WITHIN_CAPTURE:
                raise refused from exc
            raise translate(exc, where=self._where) from exc
        except SQLAlchemyError as exc:
            raise translate(exc, where=self._where) from exc
        if row is None:
            raise refused
        return payment_from_row(row)

    def get(self, payment_intent_id: str) -> Payment | None:
        with translated(self._where):
            row = self._session().get(PaymentRow, payment_intent_id, populate_existing=True)
            return payment_from_row(row) if row is not None else None

    def for_booking(self, booking_id: int) -> list[Payment]:
        with translated(self._where):
            stmt = (
                sa.select(PaymentRow)
                .where(PaymentRow.booking_id == booking_id)
                .order_by(PaymentRow.created_at, PaymentRow.payment_intent_id)
            )
            rows = self._session().scalars(stmt, execution_options=_FRESH).all()
            return [payment_from_row(row) for row in rows]


class SqlAlchemyCursorStore:
    """ports.CursorStore on ``sync_cursors`` (an upsert per set)."""

    def __init__(self, session: SessionSource, where: str) -> None:
        self._session = session
        self._where = where

    def get(self, name: str) -> str | None:
        with translated(self._where):
            stmt = sa.select(SyncCursorRow.value).where(SyncCursorRow.name == name)
            return self._session().execute(stmt).scalar_one_or_none()

    def set(self, name: str, value: str) -> None:
        with translated(self._where):
            insert = pg_insert(SyncCursorRow).values(name=name, value=value)
            self._session().execute(
                insert.on_conflict_do_update(
                    index_elements=[SyncCursorRow.name],
                    set_={"value": insert.excluded.value, "updated_at": sa.func.now()},
                )
            )


class SqlAlchemyOutbox:
    def __init__(self, session: SessionSource, where: str) -> None:
        self._session = session
        self._where = where

    def add(
        self,
        kind: str,
        payload: Mapping[str, Any],
        run_at: datetime,
        *,
        unique_key: str | None = None,
    ) -> bool:
        with translated(self._where):
            session = self._session()
            if unique_key is None:
                session.add(
                    OutboxJobRow(
                        kind=kind,
                        payload=dict(payload),
                        run_at=run_at,
                        attempts=0,
                        status=JobStatus.PENDING,
                        last_error="",
                    )
                )
                session.flush()
                return True
            # A concurrent insert of the same key makes this wait for that transaction.
            stmt = (
                pg_insert(OutboxJobRow)
                .values(
                    kind=kind,
                    payload=dict(payload),
                    run_at=run_at,
                    attempts=0,
                    status=JobStatus.PENDING,
                    last_error="",
                    unique_key=unique_key,
                )
                .on_conflict_do_nothing(index_elements=[OutboxJobRow.unique_key])
                .returning(OutboxJobRow.id)
            )
            return session.execute(stmt).scalar_one_or_none() is not None

    def claim_due(self, now: datetime, limit: int = 10, lease_seconds: int = 300) -> list[Job]:
        """SELECT ... FOR UPDATE SKIP LOCKED, then move run_at ``lease_seconds`` ahead.

        Returns the jobs as they were before the lease (as the memory adapter does).
        """
        with translated(self._where):
            session = self._session()
            stmt = (
                sa.select(OutboxJobRow)
                .where(sa.text("status = 'pending'"), OutboxJobRow.run_at <= now)
                .order_by(OutboxJobRow.run_at, OutboxJobRow.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            rows = session.scalars(stmt, execution_options=_FRESH).all()
            jobs = [job_from_row(row) for row in rows]
            lease = now + timedelta(seconds=lease_seconds)
            for row in rows:
                row.run_at = lease
            session.flush()
            return jobs

    def _update(self, job_id: int, **values: Any) -> None:
        with translated(self._where):
            stmt = (
                sa.update(OutboxJobRow)
                .where(OutboxJobRow.id == job_id)
                .values(**values)
                .returning(OutboxJobRow.id)
            )
            if self._session().execute(stmt).scalar_one_or_none() is None:
                raise KeyError(f"no job {job_id}")

    def renew(self, job_id: int, *, leased_until: datetime, until: datetime) -> bool:
        with translated(self._where):
            stmt = (
                sa.update(OutboxJobRow)
                .where(
                    OutboxJobRow.id == job_id,
                    OutboxJobRow.status == JobStatus.PENDING,
                    OutboxJobRow.run_at == leased_until,
                )
                .values(run_at=until)
                .returning(OutboxJobRow.id)
            )
            return self._session().execute(stmt).scalar_one_or_none() is not None

    def complete(self, job_id: int) -> None:
        self._update(job_id, status=JobStatus.DONE)

    def retry(self, job_id: int, *, error: str, run_at: datetime) -> None:
        self._update(job_id, attempts=OutboxJobRow.attempts + 1, last_error=error, run_at=run_at)

    def park(self, job_id: int, *, error: str) -> None:
        self._update(
            job_id,
            attempts=OutboxJobRow.attempts + 1,
            last_error=error,
            status=JobStatus.PARKED,
        )

    def list(self, status: JobStatus | None = None, limit: int = 100) -> list[Job]:
        with translated(self._where):
            stmt = sa.select(OutboxJobRow).order_by(OutboxJobRow.id).limit(limit)
            if status is not None:
                stmt = stmt.where(OutboxJobRow.status == status)
            rows = self._session().scalars(stmt, execution_options=_FRESH).all()
            return [job_from_row(row) for row in rows]

    def count_by_status(self) -> dict[JobStatus, int]:
        with translated(self._where):
            stmt = sa.select(OutboxJobRow.status, sa.func.count()).group_by(OutboxJobRow.status)
            rows = self._session().execute(stmt).all()
        return {JobStatus(status): count for status, count in rows}

    def oldest_due(self, now: datetime) -> datetime | None:
        with translated(self._where):
            stmt = sa.select(sa.func.min(OutboxJobRow.run_at)).where(
                sa.text("status = 'pending'"), OutboxJobRow.run_at <= now
            )
            found: datetime | None = self._session().execute(stmt).scalar_one()
        return found

    def get(self, job_id: int) -> Job | None:
        with translated(self._where):
            stmt = sa.select(OutboxJobRow).where(OutboxJobRow.id == job_id)
            row = self._session().scalars(stmt, execution_options=_FRESH).one_or_none()
            return job_from_row(row) if row is not None else None

    def requeue(self, job_id: int, run_at: datetime) -> Job | None:
        with translated(self._where):
            stmt = (
                sa.update(OutboxJobRow)
                .where(OutboxJobRow.id == job_id, OutboxJobRow.status == JobStatus.PARKED)
                .values(status=JobStatus.PENDING, attempts=0, run_at=run_at)
                .returning(OutboxJobRow)
            )
            row = self._session().scalars(stmt, execution_options=_FRESH).one_or_none()
            return job_from_row(row) if row is not None else None


class SqlAlchemyAuditLog:
    def __init__(self, session: SessionSource, where: str) -> None:
        self._session = session
        self._where = where

    def add(self, entry: AuditEntry) -> AuditEntry:
        with translated(self._where):
            row = AuditRow(
                at=entry.at,
                actor_type=entry.actor_type,
                actor_id=entry.actor_id,
                actor_name=entry.actor_name,
                action=entry.action,
                object_type=entry.object_type,
                object_id=entry.object_id,
                before=dict(entry.before) if entry.before is not None else None,
                after=dict(entry.after) if entry.after is not None else None,
                request_id=entry.request_id,
            )
            session = self._session()
            session.add(row)
            session.flush()
            return attrs.evolve(entry, id=row.id)

    def list(self, filters: AuditFilter) -> list[AuditEntry]:
        f = filters
        stmt = sa.select(AuditRow)
        if f.actor is not None:
            kind, _, ident = f.actor.partition(":")
            if ident:
                stmt = stmt.where(AuditRow.actor_type == kind, AuditRow.actor_id == ident)
            else:
                stmt = stmt.where(AuditRow.actor_id == f.actor)
        if f.object_type is not None:
            stmt = stmt.where(AuditRow.object_type == f.object_type)
        if f.object_id is not None:
            stmt = stmt.where(AuditRow.object_id == f.object_id)
        if f.since is not None:
            stmt = stmt.where(AuditRow.at >= f.since)
        if f.before_id is not None:
            stmt = stmt.where(AuditRow.id < f.before_id)
        stmt = stmt.order_by(AuditRow.id.desc()).limit(f.limit)
        with translated(self._where):
            rows = self._session().scalars(stmt, execution_options=_FRESH).all()
            return [audit_from_row(row) for row in rows]


class SqlAlchemyApiTokenRepository:
    def __init__(self, session: SessionSource, where: str) -> None:
        self._session = session
        self._where = where

    def add(self, token: ApiToken) -> ApiToken:
        with translated(self._where):
            row = ApiTokenRow(
                name=token.name,
                token_hash=token.token_hash,
                created_by=token.created_by,
                created_at=token.created_at,
                revoked_at=token.revoked_at,
            )
            session = self._session()
            session.add(row)
            session.flush()
            return api_token_from_row(row)

    def _one(self, *where: sa.ColumnElement[bool]) -> ApiToken | None:
        with translated(self._where):
            stmt = sa.select(ApiTokenRow).where(*where)
            row = self._session().scalars(stmt, execution_options=_FRESH).one_or_none()
            return api_token_from_row(row) if row is not None else None

    def get_by_hash(self, token_hash: str) -> ApiToken | None:
        return self._one(ApiTokenRow.token_hash == token_hash)

    def get(self, token_id: int) -> ApiToken | None:
        return self._one(ApiTokenRow.id == token_id)

    def list(self) -> list[ApiToken]:
        with translated(self._where):
            stmt = sa.select(ApiTokenRow).order_by(ApiTokenRow.id)
            rows = self._session().scalars(stmt, execution_options=_FRESH).all()
            return [api_token_from_row(row) for row in rows]

    def revoke(self, token_id: int, at: datetime) -> ApiToken | None:
        with translated(self._where):
            stmt = (
                sa.update(ApiTokenRow)
                .where(ApiTokenRow.id == token_id)
                .values(revoked_at=sa.func.coalesce(ApiTokenRow.revoked_at, at))
                .returning(ApiTokenRow)
            )
            row = self._session().scalars(stmt, execution_options=_FRESH).one_or_none()
            return api_token_from_row(row) if row is not None else None


class SqlAlchemyIdempotencyStore:
    """Idempotency keys in ``idempotency_records`` (the unique key does the claiming)."""

    def __init__(self, session: SessionSource, where: str) -> None:
        self._session = session
        self._where = where

    def reserve(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        """INSERT ... ON CONFLICT DO NOTHING; None when inserted, else the stored record.

        A concurrent reservation of the same key makes this wait until that transaction ends
        (the web layer commits a reservation at once, so the wait is short).
        """
        with translated(self._where):
            session = self._session()
            stmt = (
                pg_insert(IdempotencyRecordRow)
                .values(
                    key=record.key,
                    request_fingerprint=record.fingerprint,
                    created_at=record.created_at,
                    response_status=record.status_code,
                    response_body=dict(record.response) if record.response is not None else None,
                    sealed_secret=record.sealed_secret,
                    lease_expires_at=record.lease_expires_at,
                    booking_id=record.booking_id,
                )
                .on_conflict_do_nothing(index_elements=[IdempotencyRecordRow.key])
                .returning(IdempotencyRecordRow.id)
            )
            if session.execute(stmt).scalar_one_or_none() is not None:
                return None
            existing = session.scalars(
                sa.select(IdempotencyRecordRow).where(IdempotencyRecordRow.key == record.key),
                execution_options=_FRESH,
            ).one()
            return idempotency_from_row(existing)

    def take_over(self, key: str, now: datetime, lease_expires_at: datetime) -> bool:
        """A conditional UPDATE: of two retries taking over at once, one wins."""
        row = IdempotencyRecordRow
        with translated(self._where):
            stmt = (
                sa.update(row)
                .where(
                    row.key == key,
                    row.response_status.is_(None),
                    sa.func.coalesce(row.lease_expires_at, row.created_at) <= now,
                )
                .values(lease_expires_at=lease_expires_at, booking_id=None)
                .returning(row.id)
            )
            return self._session().execute(stmt).scalar_one_or_none() is not None

    def attach(self, key: str, booking_id: int) -> None:
        with translated(self._where):
            self._session().execute(
                sa.update(IdempotencyRecordRow)
                .where(IdempotencyRecordRow.key == key)
                .values(booking_id=booking_id)
            )

    def complete(
        self, key: str, status_code: int, response: Mapping[str, Any], sealed_secret: str | None
    ) -> None:
        with translated(self._where):
            self._session().execute(
                sa.update(IdempotencyRecordRow)
                .where(IdempotencyRecordRow.key == key)
                .values(
                    response_status=status_code,
                    response_body=dict(response),
                    sealed_secret=sealed_secret,
                )
            )

    def release(self, key: str) -> None:
        with translated(self._where):
            self._session().execute(
                sa.delete(IdempotencyRecordRow).where(IdempotencyRecordRow.key == key)
            )

    def purge(self, older_than: datetime) -> int:
        with translated(self._where):
            deleted = self._session().execute(
                sa.delete(IdempotencyRecordRow)
                .where(IdempotencyRecordRow.created_at < older_than)
                .returning(IdempotencyRecordRow.id)
            )
            return len(deleted.all())
