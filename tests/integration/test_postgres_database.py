"""The Database object and the error boundary: no SQLAlchemy or psycopg exception gets out."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.postgres import (
    Database,
    DatabaseConfigError,
    DatabaseUnavailable,
    describe_url,
    normalize_url,
)
from booking_core.errors import ConcurrentUpdate, Conflict, NotFound, SlotUnavailable
from booking_core.jobs import JobKind
from booking_core.model import (
    Booking,
    BookingStatus,
    Client,
    Interval,
    Money,
    Practitioner,
    Service,
)

T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:secret@db.example:5433/booking",
        "postgres://u:secret@db.example:5433/booking",
        "postgresql+psycopg://u:secret@db.example:5433/booking",
    ],
)
def test_urls_are_rewritten_for_psycopg_3(url: str) -> None:
    parsed = normalize_url(url)
    assert parsed.drivername == "postgresql+psycopg"
    assert (parsed.host, parsed.port, parsed.database, parsed.password) == (
        "db.example",
        5433,
        "booking",
        "secret",
    )
    assert describe_url(parsed) == "PostgreSQL at db.example:5433/booking"


@pytest.mark.parametrize("url", ["mysql://u:secret@h/db", "not a url at all :secret@"])
def test_other_urls_are_refused_without_repeating_them(url: str) -> None:
    with pytest.raises(DatabaseConfigError) as caught:
        Database.connect(url)
    assert "secret" not in str(caught.value)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_an_unreachable_server_is_database_unavailable() -> None:
    port = _closed_port()
    database = Database.connect(f"postgresql://booking:secret@127.0.0.1:{port}/booking")
    try:
        assert database.describe() == f"PostgreSQL at 127.0.0.1:{port}/booking"
        with pytest.raises(DatabaseUnavailable) as caught:
            database.ping()
        assert f"127.0.0.1:{port}" in str(caught.value)
        assert "secret" not in str(caught.value)
        uow = database.unit_of_work()
        with pytest.raises(DatabaseUnavailable), uow:
            uow.practitioners.list()
        with pytest.raises(DatabaseUnavailable), uow:
            uow.outbox.add("email", {}, T0)
    finally:
        database.dispose()


def test_a_pool_with_no_free_connection_is_database_unavailable(database_url: str) -> None:
    database = Database.connect(database_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    try:
        holder = database.unit_of_work()
        waiter = database.unit_of_work()
        with holder:
            holder.practitioners.list()
            with pytest.raises(DatabaseUnavailable, match="no free connection"), waiter:
                waiter.practitioners.list()
    finally:
        database.dispose()


def _practitioner(database: Database) -> Practitioner:
    uow = database.unit_of_work()
    with uow:
        practitioner = uow.practitioners.add(
            Practitioner(
                name="P",
                services=[Service(name="S", duration_minutes=30, price=Money(100, "eur"))],
            )
        )
        uow.commit()
    return practitioner


def _booking(
    practitioner_id: int, service_id: int, start: datetime = T0, **changes: object
) -> Booking:
    """A 30-minute booking from ``start``."""
    fields: dict[str, object] = {
        "practitioner_id": practitioner_id,
        "service_id": service_id,
        "client": Client("C", "c@example.com"),
        "start": start,
        "end": start + timedelta(minutes=30),
        "price": Money(100, "eur"),
        "created_at": T0,
        "updated_at": T0,
    }
    return Booking(**(fields | changes))  # type: ignore[arg-type]


def test_constraint_violations_become_core_errors(clean_database: Database) -> None:
    practitioner = _practitioner(clean_database)
    service_id = practitioner.services[0].id or 0
    uow = clean_database.unit_of_work()
    with uow:
        with pytest.raises(NotFound):
            uow.bookings.add(_booking(999, service_id))
        first = uow.bookings.add(_booking(practitioner.id or 0, service_id))
        second = uow.bookings.add(
            _booking(practitioner.id or 0, service_id, T0 + timedelta(hours=1))
        )
        first.checkout_session_id = "cs_same"
        uow.bookings.save(first)
        second.checkout_session_id = "cs_same"
        with pytest.raises(Conflict):
            uow.bookings.save(second)
        uow.commit()  # the refused writes left the transaction usable


def test_writes_on_their_own_are_refused_as_in_a_transaction(clean_database: Database) -> None:
    """A last write with nothing before it goes straight through psycopg (adapters/postgres/
    driver.py): the same core errors as through SQLAlchemy, the values stored as the ORM reads
    them, and no value of the client's in the error."""
    practitioner = _practitioner(clean_database)
    pid, service_id = practitioner.id or 0, practitioner.services[0].id or 0
    uow = clean_database.unit_of_work()
    with uow, pytest.raises(NotFound) as refused:  # no practitioner 999: a foreign key
        uow.bookings.add(
            _booking(999, service_id, client=Client("C", "private@example.com")), commit=True
        )
    chain = [refused.value, refused.value.__cause__, refused.value.__cause__.__cause__]  # type: ignore[union-attr]
    assert not any("private@example.com" in str(error) for error in chain)
    with uow:
        held = uow.bookings.add(_booking(pid, service_id), commit=True)
    with uow, pytest.raises(SlotUnavailable):
        uow.bookings.add(_booking(pid, service_id, T0 + timedelta(minutes=15)), commit=True)
    stale = held.copy()
    with uow:
        held.checkout_session_id = "cs_1"
        uow.bookings.save(held, commit=True)
    stale.checkout_session_id = "cs_2"
    with uow, pytest.raises(ConcurrentUpdate):
        uow.bookings.save(stale, commit=True)
    with uow:
        other = uow.bookings.add(_booking(pid, service_id, T0 + timedelta(hours=1)), commit=True)
    other.checkout_session_id = "cs_1"
    with uow, pytest.raises(Conflict):  # checkout session ids are unique
        uow.bookings.save(other, commit=True)
    with uow:
        stored = uow.bookings.get(held.id or 0)
    assert stored is not None
    assert (stored.status, stored.checkout_session_id, stored.version) == (
        BookingStatus.PENDING,
        "cs_1",
        2,
    )
    assert clean_database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_a_write_on_its_own_sends_what_sqlalchemy_would_send(clean_database: Database) -> None:
    """The driver path's SQL text and values (enums as their values, None as NULL) are those
    Connection.execute sends for the same statement."""
    from adapters.postgres.mapping import booking_values
    from adapters.postgres.repositories import _INSERT_BOOKING, _UPDATE_BOOKING

    practitioner = _practitioner(clean_database)
    booking = _booking(practitioner.id or 0, practitioner.services[0].id or 0, notes="n")
    inserted = {**booking_values(booking), "version": 1}
    updated = {**inserted, "version": 2, "b_id": 1, "b_version": 1}
    engine = clean_database.engine
    for statement, values in ((_INSERT_BOOKING, inserted), (_UPDATE_BOOKING, updated)):
        sent: list[tuple[str, Any]] = []

        def record(*args: Any, into: list[tuple[str, Any]] = sent) -> None:
            into.append((args[2], args[3]))

        sa.event.listen(engine, "before_cursor_execute", record)
        try:
            with engine.connect() as connection:
                connection.execute(statement.core, values)
                connection.rollback()
        finally:
            sa.event.remove(engine, "before_cursor_execute", record)
        prepared = statement._for(engine.dialect, values)

        def typed(parameters: Any) -> dict[str, tuple[type, Any]]:
            return {name: (type(value), value) for name, value in parameters.items()}

        [(sql, parameters)] = sent
        assert prepared.sql == sql
        # by type too: a status enum is a str, and would compare equal to its value
        assert typed(prepared.parameters(values)) == typed(parameters)
        assert type(prepared.parameters(values)["status"]) is str


def test_a_connection_lost_under_a_write_on_its_own_is_not_pooled_again(
    clean_database: Database,
) -> None:
    practitioner = _practitioner(clean_database)
    pid, service_id = practitioner.id or 0, practitioner.services[0].id or 0
    uow = clean_database.unit_of_work()
    with uow:
        uow.bookings.occupied_spans(pid, Interval(T0, T0 + timedelta(days=1)))  # its connection
        connection = uow._connected()  # type: ignore[attr-defined]
        backend = connection.connection.driver_connection.info.backend_pid
        with clean_database.engine.connect() as other:
            other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        with pytest.raises(DatabaseUnavailable):
            uow.bookings.add(_booking(pid, service_id), commit=True)
        assert connection.invalidated
    with uow:  # a new connection, and the write goes through
        assert uow.bookings.add(_booking(pid, service_id), commit=True).id is not None


def test_units_of_work_in_threads_do_not_share_sessions(clean_database: Database) -> None:
    practitioner = _practitioner(clean_database)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(20):
                uow = clean_database.unit_of_work()
                with uow:
                    assert uow.practitioners.get(practitioner.id or 0) is not None
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []


def test_an_open_unit_of_work_cannot_be_entered_twice(clean_database: Database) -> None:
    uow = clean_database.unit_of_work()
    with uow, pytest.raises(RuntimeError, match="already open"), uow:
        pass
    with pytest.raises(RuntimeError, match="inside a 'with' block"):
        uow.bookings.get(1)


def test_pings_a_live_database(database: Database) -> None:
    database.ping()
    with database.engine.connect() as connection:
        assert connection.execute(sa.text("SHOW server_version")).scalar_one()


def test_practitioner_cache_expires_and_hands_out_detached_copies() -> None:
    from adapters.postgres.practitioner_cache import PractitionerCache
    from booking_core.model import Money, Practitioner, Service

    now = [100.0]
    cache = PractitionerCache(clock=lambda: now[0])
    practitioner = Practitioner(
        id=7,
        name="Ada",
        services=[Service(id=1, name="S", duration_minutes=30, price=Money(100, "usd"))],
    )
    assert cache.generation(7) is None  # not listening: nothing may be kept
    cache.put(practitioner, (0, 0))
    assert cache.get(7, max_age=30) is None
    cache._set_listening(True)  # as the listening thread does once LISTEN is in place
    generation = cache.generation(7)
    cache.put(practitioner, generation)
    practitioner.services[0].name = "changed after caching"
    hit = cache.get(7, max_age=30)
    assert hit is not None
    assert hit.services[0].name == "S"
    hit.services.append(Service(name="T", duration_minutes=30, price=Money(1, "usd")))
    assert len((cache.get(7, max_age=30) or practitioner).services) == 1
    now[0] += 31
    assert cache.get(7, max_age=30) is None  # older than the caller accepts
    # A change announced between the read and the put: the copy read before it is not kept.
    generation = cache.generation(7)
    cache.drop(7)
    cache.put(practitioner, generation)
    assert cache.get(7, max_age=30) is None
    cache.put(practitioner, cache.generation(7))
    cache._set_listening(False)  # the listening connection broke: no copy is trusted
    assert cache.get(7, max_age=30) is None


def _until(seen: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 2.0  # the notification is on its way (well under 1 ms)
    while not seen():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def test_a_schedule_edit_in_one_process_shows_at_once_in_another(
    clean_database: Database, database_url: str
) -> None:
    """Two Database objects are two processes' caches: the commit's notification drops the
    other's copy, so the next read there shows the change; no query is added while the copy
    is current."""
    from booking_core.model import TimeRange, WeeklyHours

    here, there = clean_database, Database.connect(database_url, pool_size=1)
    try:
        assert there._practitioners.wait_listening()
        uow = here.unit_of_work()
        with uow:
            p = uow.practitioners.add(Practitioner(name="Ada", timezone="Europe/London"))
            uow.commit()
        pid = p.id or 0
        reader = there.unit_of_work()
        statements: list[str] = []
        sa.event.listen(there.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

        def served_by_the_copy() -> bool:
            # The insert's own notification may drop the first copy read: read until one is
            # kept, then no query reaches the database while it is current.
            statements.clear()
            with reader:
                found = reader.practitioners.get(pid, max_age=3600)
            assert (found or p).weekly_hours == WeeklyHours()
            return not any("practitioners" in s for s in statements)

        _until(served_by_the_copy, "no copy was ever kept")
        with uow:
            stored = uow.practitioners.get(pid)
            assert stored is not None
            stored.weekly_hours = WeeklyHours(((TimeRange(540, 720),),) + ((),) * 6)
            uow.practitioners.save(stored)
            uow.commit()
        deadline = time.monotonic() + 2.0  # the notification is on its way (well under 1 ms)
        while True:
            with reader:
                seen = reader.practitioners.get(pid, max_age=3600)
            assert seen is not None
            if seen.weekly_hours.for_weekday(0) == (TimeRange(540, 720),):
                break
            assert time.monotonic() < deadline, "the edit never showed in the other process"
            time.sleep(0.005)
    finally:
        there.dispose()


def test_core_statements_need_no_session_and_share_the_transaction_with_one(
    clean_database: Database,
) -> None:
    """A hold and the availability's spans run on the unit's connection, no ORM session made;
    a session made later in the unit owns that same connection and transaction."""
    practitioner = _practitioner(clean_database)
    service_id = practitioner.services[0].id or 0
    window = Interval(T0 - timedelta(days=1), T0 + timedelta(days=1))
    uow = clean_database.unit_of_work()
    with uow:
        held = uow.bookings.add(_booking(practitioner.id or 0, service_id), commit=True)
        assert uow.bookings.occupied_spans(practitioner.id or 0, window) == [held.occupied]
        assert uow._session is None  # type: ignore[attr-defined]
    with uow:
        later = uow.bookings.add(
            _booking(practitioner.id or 0, service_id, T0 + timedelta(hours=1))
        )
        seen = uow.bookings.get(later.id or 0)  # an ORM read: the session joins the write
        assert seen is not None
        assert uow._session is not None  # type: ignore[attr-defined]
        uow.rollback()
        assert uow.bookings.get(later.id or 0) is None
        again = uow.bookings.add(
            _booking(practitioner.id or 0, service_id, T0 + timedelta(hours=2))
        )
        uow.outbox.add(JobKind.EXPIRE_CHECKOUT, {"booking_id": again.id}, T0)
        uow.commit()
    with clean_database.engine.connect() as connection:
        kept = connection.execute(sa.text("SELECT id FROM bookings ORDER BY id")).scalars().all()
        jobs = connection.execute(sa.text("SELECT count(*) FROM outbox_jobs")).scalar_one()
    assert kept == [held.id, again.id]
    assert jobs == 1


def _fail_after(uow: object, work: Callable[[], object]) -> None:
    with uow:  # type: ignore[attr-defined]
        work()
        raise RuntimeError("the request failed")


def test_every_unit_gives_its_connection_back_however_it_ends(clean_database: Database) -> None:
    """Committed, refused, raised through or left without a commit, with a session or with
    only Core statements: no unit of work keeps a pooled connection."""
    practitioner = _practitioner(clean_database)
    service_id = practitioner.services[0].id or 0
    uow = clean_database.unit_of_work()
    for n in range(12):
        start = T0 + timedelta(days=n)
        booking = _booking(practitioner.id or 0, service_id, start)
        with uow:
            uow.bookings.add(booking, commit=True)
        with uow, pytest.raises(Conflict):  # the slot is taken: SlotUnavailable
            uow.bookings.add(booking, commit=True)
        later = _booking(practitioner.id or 0, service_id, start + timedelta(hours=1))
        with pytest.raises(RuntimeError):
            _fail_after(uow, lambda later=later: uow.bookings.add(later))
        with uow:
            assert uow.bookings.get(0) is None  # a session this time
        assert clean_database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_a_last_write_with_nothing_before_it_is_one_statement(
    clean_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hold (add, commit=True) and the checkout noted on it (save, commit=True): each one
    self-committing statement, no BEGIN and no COMMIT round trips; after a lock, the same call
    commits the lock's transaction with the write."""
    import psycopg
    from psycopg.pq import TransactionStatus

    practitioner = _practitioner(clean_database)
    service_id = practitioner.services[0].id or 0
    sent: list[str] = []
    execute = psycopg.Cursor.execute

    def recording(self: psycopg.Cursor[object], query: object, *args: object, **kw: object) -> Any:
        sent.append(str(query).split()[0].upper())
        return execute(self, query, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(psycopg.Cursor, "execute", recording)

    def status(uow: object) -> TransactionStatus:
        session = uow._current()  # type: ignore[attr-defined]
        return session.connection().connection.driver_connection.info.transaction_status

    uow = clean_database.unit_of_work()
    with uow:
        held = uow.bookings.add(_booking(practitioner.id or 0, service_id), commit=True)
        assert status(uow) is TransactionStatus.IDLE  # committed: nothing open
        held.checkout_session_id = "cs_1"
        uow.bookings.save(held, commit=True)
        assert status(uow) is TransactionStatus.IDLE
    assert sent == ["INSERT", "UPDATE"]
    sent.clear()
    with uow:
        uow.practitioners.lock(practitioner.id or 0)
        uow.bookings.add(
            _booking(practitioner.id or 0, service_id, T0 + timedelta(hours=1)),
            commit=True,
        )
        assert status(uow) is TransactionStatus.IDLE
    assert sent[0] == "BEGIN"
    assert "SAVEPOINT" in sent
    with clean_database.engine.connect() as connection:
        noted = sa.text("SELECT checkout_session_id FROM bookings ORDER BY id")
        assert connection.execute(noted).scalars().all() == ["cs_1", None]


def test_a_transaction_begins_at_the_first_write_and_only_then(clean_database: Database) -> None:
    """Reads run outside a transaction (one round trip each, nothing to roll back); the first
    write opens one, which commits or rolls back as a whole."""
    from psycopg.pq import TransactionStatus

    practitioner = _practitioner(clean_database)
    service_id = practitioner.services[0].id or 0

    def status(uow: object) -> TransactionStatus:
        session = uow._current()  # type: ignore[attr-defined]
        return session.connection().connection.driver_connection.info.transaction_status

    uow = clean_database.unit_of_work()
    with uow:
        assert uow.practitioners.get(practitioner.id or 0) is not None
        assert status(uow) is TransactionStatus.IDLE  # no BEGIN for a read
        first = uow.bookings.add(_booking(practitioner.id or 0, service_id))
        assert status(uow) is TransactionStatus.INTRANS
        second = uow.bookings.add(
            _booking(practitioner.id or 0, service_id, T0 + timedelta(hours=1))
        )
        # Not committed: both go with the block.
    with uow:
        assert uow.bookings.get(first.id or 0) is None
        assert uow.bookings.get(second.id or 0) is None
        kept = uow.bookings.add(_booking(practitioner.id or 0, service_id))
        uow.commit()
        assert status(uow) is TransactionStatus.IDLE
    with uow:
        assert uow.bookings.get(kept.id or 0) is not None
    with clean_database.engine.connect() as connection:
        each = connection.execution_options(autocommit_each=True)
        each.execute(sa.text("UPDATE bookings SET notes = 'committed on its own'"))
    with uow:
        assert (uow.bookings.get(kept.id or 0) or kept).notes == "committed on its own"


def test_a_pooled_connection_whose_server_side_ended_is_replaced_before_use(
    clean_database: Database, database_url: str
) -> None:
    """No ``SELECT 1`` on every checkout any more: a pooled connection whose backend is gone
    (restart, pg_terminate_backend) has its socket readable, and is swapped for a new one
    before the unit of work uses it, so no request fails for it."""
    database = Database.connect(database_url, pool_size=1, max_overflow=0)
    try:
        with database.engine.connect() as connection:
            first = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        with clean_database.engine.begin() as connection:
            connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        time.sleep(0.2)  # the backend's termination message reaches the pooled socket
        uow = database.unit_of_work()
        with uow:
            assert uow.practitioners.list() == []
        with database.engine.connect() as connection:
            again = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        assert again != first
    finally:
        database.dispose()


def test_a_change_made_outside_the_service_reaches_every_cache(
    clean_database: Database, database_url: str
) -> None:
    """The practitioner tables' triggers announce any change, SQL by hand included: a price set
    in psql is what the next booking charges, and a TRUNCATE drops every copy (before 0008
    only the repository's save announced, and the old price stayed cached)."""
    cached = Database.connect(database_url, pool_size=1)
    try:
        assert cached._practitioners.wait_listening()
        pid = _practitioner(clean_database).id or 0  # its service costs 100
        reader = cached.unit_of_work()

        def price() -> int | None:
            with reader:
                found = reader.practitioners.get(pid, max_age=3600)
            return found.services[0].price.amount if found is not None else None

        assert price() == 100  # now a cached copy
        with clean_database.engine.begin() as connection:
            connection.execute(sa.text("UPDATE services SET price_amount = 250"))
        _until(lambda: price() == 250, "a price set in SQL never reached the cache")
        with clean_database.engine.begin() as connection:
            connection.execute(sa.text("TRUNCATE practitioners, services CASCADE"))
        _until(lambda: price() is None, "a TRUNCATE left the cached copy in place")
    finally:
        cached.dispose()


def test_the_availability_statement_can_use_the_exclusion_index(clean_database: Database) -> None:
    """The statement as psycopg prepares it (after a few runs) must be able to use the exclusion
    constraint's index for the practitioner id too; psycopg sends a small id as smallint, which
    the bigint operator class cannot search by, so PostgreSQL filtered every practitioner's rows
    in the window instead (x12 slower at 1 000 000 rows)."""
    from adapters.postgres.repositories import _OCCUPIED_SPANS

    start = datetime(2030, 1, 7, tzinfo=UTC)
    params = {"practitioner_id": 1, "start": start, "end": start + timedelta(days=60)}
    with clean_database.engine.connect() as connection:
        connection.execute(sa.text("SET plan_cache_mode = force_generic_plan"))
        connection.execute(sa.text("SET enable_seqscan = off"))
        for _ in range(8):  # psycopg prepares a statement on its fifth run
            connection.execute(_OCCUPIED_SPANS, params).all()
        name, types = connection.execute(
            sa.text(
                "SELECT name, parameter_types::text FROM pg_prepared_statements "
                "WHERE statement LIKE '%occupied_start, occupied_end FROM bookings%'"
            )
        ).one()
        # EXECUTE takes no bind parameters: literals (test data only).
        arguments = f"1, '{params['start'].isoformat()}', '{params['end'].isoformat()}'"
        plan = "\n".join(
            connection.execute(sa.text(f"EXPLAIN EXECUTE {name}({arguments})")).scalars()
        )
    conditions = [line for line in plan.splitlines() if "Index Cond" in line]
    assert "bookings_no_overlap" in plan, (types, plan)
    # The id must be part of the index search, not a filter over every practitioner's rows.
    assert any("practitioner_id" in line for line in conditions), (types, plan)
