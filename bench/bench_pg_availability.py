"""Benchmark: the availability query on PostgreSQL with 1 000, then 1 000 000 bookings.

What is timed is what GET /availability costs a practitioner's calendar: ``occupied_spans`` (the
occupying bookings' buffered spans, the statement availability runs) for a 60-day window
(through the real repository, one unit of work per call) plus the core's
``free_slots`` over those bookings. The measured practitioner's own calendar is the same at both
sizes (about 4 bookings a working day in the window, some cancelled); the extra rows belong to
500 other practitioners (whose calendars cover the same weeks) and to the same practitioner's
past and future, with every status, as a table that grew for years would hold. So the figures
show how the query scales with the size of the table, which is what the GiST index behind the
exclusion constraint (practitioner id and buffered range) is for. Goal: the time at 1 000 000
rows at most 1.5x the time at 1 000. The plan printed is PostgreSQL's for ``list_occupying``'s
statement, whose predicate ``occupied_spans`` shares.

Run ``python bench/bench_pg_availability.py`` (``--repeat N``, ``--rows 1000 1000000``). It uses
``BENCH_DATABASE_URL`` or ``DATABASE_URL`` (a fresh database is created on that server and
dropped afterwards), else an embedded server in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from adapters.postgres import Database, migrate, normalize_url
from adapters.postgres.repositories import occupying_statement
from booking_core.availability import free_slots, local_day_window, occupied_window
from booking_core.model import Money, Practitioner, Service
from entrypoints.dev.embedded_postgres import start_embedded
from entrypoints.dev.sample_data import sample_practitioner, sample_service

FIRST_DAY = date(2030, 3, 1)
DAYS = 60
OTHERS = 500  # practitioners besides the measured one
TARGET = 1  # the measured practitioner's id


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def bench_database() -> Iterator[str]:
    """A fresh, migrated database URL; dropped (and the embedded server stopped) at the end."""
    configured = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL")
    server = None
    data_dir = None
    if configured:
        admin = normalize_url(configured)
    else:
        data_dir = tempfile.mkdtemp(prefix="booking-bench-pg-")
        server = start_embedded(data_dir, progress=log)
        admin = normalize_url(server.url_for("postgres"))
    name = f"booking_bench_{secrets.token_hex(4)}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = admin.set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
        if server is not None:
            server.stop()
        if data_dir is not None:
            shutil.rmtree(data_dir, ignore_errors=True)


def add_practitioners(database: Database) -> tuple[Practitioner, Service]:
    uow = database.unit_of_work()
    with uow:
        target = uow.practitioners.add(
            sample_practitioner(
                name="Measured practitioner",
                hours={d: ["09:00-17:00"] for d in range(5)},
                services=[
                    sample_service(
                        price=Money(8000, "gbp"),
                        buffer_after_minutes=10,
                        max_advance_days=365,
                        slot_interval_minutes=30,
                    )
                ],
            )
        )
        uow.commit()
    with database.engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO practitioners (name, timezone)"
                " SELECT 'Practitioner ' || g, 'America/New_York' FROM generate_series(1, :n) g"
            ),
            {"n": OTHERS},
        )
        connection.execute(
            sa.text(
                "INSERT INTO services (practitioner_id, name, duration_minutes, price_amount,"
                " price_currency) SELECT id, 'Session', 50, 8000, 'usd' FROM practitioners"
                " WHERE id <> :target"
            ),
            {"target": TARGET},
        )
    return target, target.services[0]


def _insert(database: Database, select_sql: str, **params: object) -> int:
    columns = (
        "practitioner_id, service_id, client_name, client_email, starts_at, ends_at,"
        " buffer_after_minutes, occupied_start, occupied_end, price_amount, price_currency,"
        " status, created_at, updated_at, version"
    )
    with database.engine.begin() as connection:
        result = connection.execute(
            sa.text(f"INSERT INTO bookings ({columns}) {select_sql}"), params
        )
        return result.rowcount


# One row per (practitioner, k): a 50-minute booking starting every ``step`` from ``base``,
# occupied with its 10-minute buffer, so occupying rows of one practitioner never overlap.
_ROWS = """
SELECT p, s, 'Client ' || k, 'client' || k || '@example.com',
       t, t + interval '50 minutes', 10, t, t + interval '60 minutes', 8000, 'usd',
       (CASE WHEN k % 10 < 4 THEN 'confirmed' WHEN k % 10 < 6 THEN 'completed'
             WHEN k % 10 < 8 THEN 'cancelled' WHEN k % 10 < 9 THEN 'expired'
             ELSE 'pending' END)::booking_status,
       now(), now(), 1
FROM (
    SELECT sv.practitioner_id AS p, sv.id AS s, k,
           CAST(:base AS timestamptz) + k * CAST(:step AS interval) AS t
    FROM services sv CROSS JOIN generate_series(CAST(:k_from AS integer), CAST(:k_to AS integer)) k
    WHERE sv.practitioner_id BETWEEN :p_from AND :p_to
) x
"""


def fill_target_window(database: Database, service: Service) -> int:
    """The measured calendar: 4 bookings a working day in the window, 1 in 5 then cancelled."""
    added = 0
    for day in range(DAYS):
        current = FIRST_DAY + timedelta(days=day)
        if current.weekday() >= 5:
            continue
        base = datetime(current.year, current.month, current.day, 9, tzinfo=UTC)
        added += _insert(
            database,
            """
            SELECT :p, :s, 'Client', 'client@example.com', t, t + interval '50 minutes', 10, t,
                   t + interval '60 minutes', 8000, 'gbp',
                   (CASE WHEN k % 5 = 4 THEN 'cancelled' WHEN k % 2 = 0 THEN 'confirmed'
                         ELSE 'pending' END)::booking_status,
                   now(), now(), 1
            FROM (SELECT k, CAST(:base AS timestamptz) + k * interval '2 hours' AS t
                  FROM generate_series(0, 3) k) x
            """,
            p=TARGET,
            s=service.id,
            base=base,
        )
    return added


def grow_to(database: Database, rows: int, current: int, next_k: dict[str, int]) -> int:
    """Add rows for the other practitioners, then for the measured one outside the window.

    ``next_k`` remembers where each series stopped, so a later stage never overlaps an earlier.
    """
    per_practitioner = (rows - current) // (OTHERS + 1)
    if per_practitioner <= 0:
        return current
    started = time.monotonic()
    chunk = 50
    k_from = next_k.get("others", 0)
    for first in range(2, OTHERS + 2, chunk):
        current += _insert(
            database,
            _ROWS,
            # From November 2029 on, every 3 hours: at full size the other practitioners'
            # calendars cover the measured window too, as real neighbours' calendars would.
            base=datetime(2029, 11, 1, tzinfo=UTC),
            step="3 hours",
            k_from=k_from,
            k_to=k_from + per_practitioner - 1,
            p_from=first,
            p_to=min(first + chunk - 1, OTHERS + 1),
        )
        log(f"  {current:>9,} rows ({time.monotonic() - started:.0f} s)")
    next_k["others"] = k_from + per_practitioner
    # The measured practitioner's past (from 2024 on) and future (after the window).
    for series, base, count in (
        ("past", datetime(2024, 1, 1, tzinfo=UTC), (rows - current) // 2),
        ("future", datetime(2030, 6, 1, tzinfo=UTC), (rows - current) - (rows - current) // 2),
    ):
        k_from = next_k.get(series, 0)
        current += _insert(
            database,
            _ROWS,
            base=base,
            step="4 hours",
            k_from=k_from,
            k_to=k_from + count - 1,
            p_from=TARGET,
            p_to=TARGET,
        )
        next_k[series] = k_from + count
    log(f"  {current:>9,} rows ({time.monotonic() - started:.0f} s)")
    return current


def measure(
    database: Database, practitioner: Practitioner, service: Service, repeat: int
) -> dict[str, float | int | str]:
    now = datetime(2030, 2, 28, 12, tzinfo=UTC)
    window = occupied_window(
        local_day_window(practitioner.zone, FIRST_DAY, FIRST_DAY + timedelta(days=DAYS - 1)),
        service,
    )

    def once() -> tuple[float, float, int, int]:
        began = time.perf_counter()
        uow = database.unit_of_work()
        with uow:
            spans = uow.bookings.occupied_spans(practitioner.id or 0, window)
        queried = time.perf_counter()
        slots = free_slots(
            practitioner,
            service,
            first_day=FIRST_DAY,
            last_day=FIRST_DAY + timedelta(days=DAYS - 1),
            now=now,
            occupied=spans,
        )
        done = time.perf_counter()
        return (queried - began) * 1000, (done - began) * 1000, len(spans), len(slots)

    for _ in range(5):  # warm the pool, the caches and psycopg's prepared statements
        once()
    runs = [once() for _ in range(repeat)]
    query_ms = sorted(r[0] for r in runs)
    total_ms = sorted(r[1] for r in runs)
    statement = occupying_statement(practitioner.id or 0, window)  # what list_occupying runs
    with database.engine.connect() as connection:
        compiled = statement.compile(dialect=connection.dialect)
        plan = connection.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params).scalars()
        nodes = [line.strip().removeprefix("-> ").split("  (")[0] for line in plan]
        top = " <- ".join(n for n in nodes if "Scan" in n or "Cond" in n)
        server_ms = sorted(
            float(
                connection.exec_driver_sql(
                    f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled}", compiled.params
                ).scalar_one()[0]["Execution Time"]
            )
            for _ in range(21)
        )
    return {
        "server_median": statistics.median(server_ms),
        "query_median": statistics.median(query_ms),
        "query_p95": query_ms[int(0.95 * (len(query_ms) - 1))],
        "total_median": statistics.median(total_ms),
        "total_p95": total_ms[int(0.95 * (len(total_ms) - 1))],
        "bookings": runs[0][2],
        "slots": runs[0][3],
        "plan": top,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000, 1_000_000])
    args = parser.parse_args(argv)
    results: list[tuple[int, dict[str, float | int | str]]] = []
    with bench_database() as url:
        database = Database.connect(url, pool_size=2)
        try:
            target, service = add_practitioners(database)
            count = fill_target_window(database, service)
            next_k: dict[str, int] = {}
            for rows in sorted(args.rows):
                log(f"filling bookings to {rows:,} rows")
                count = grow_to(database, rows, count, next_k)
                with database.engine.begin() as connection:
                    connection.execute(sa.text("ANALYZE bookings"))
                    count = connection.execute(
                        sa.text("SELECT count(*) FROM bookings")
                    ).scalar_one()
                    server = connection.execute(sa.text("SHOW server_version")).scalar_one()
                figures = measure(database, target, service, args.repeat)
                results.append((count, figures))
                print(
                    f"{count:>9,} rows: executing the query {figures['server_median']:.3f} ms;"
                    f" occupied_spans median {figures['query_median']:.2f} ms"
                    f" (p95 {figures['query_p95']:.2f}); with free_slots median"
                    f" {figures['total_median']:.2f} ms (p95 {figures['total_p95']:.2f});"
                    f" {figures['bookings']} occupying bookings, {figures['slots']} free slots"
                    f" over {DAYS} days; plan: {figures['plan']}",
                    flush=True,
                )
        finally:
            database.dispose()
    (small, first), (large, last) = results[0], results[-1]
    query_growth = float(last["query_median"]) / float(first["query_median"])
    total_growth = float(last["total_median"]) / float(first["total_median"])
    server_growth = float(last["server_median"]) / float(first["server_median"])
    print(
        f"PostgreSQL {server}: {small:,} -> {large:,} rows: query execution x{server_growth:.2f},"
        f" occupied_spans x{query_growth:.2f},"
        f" availability (query + free_slots) x{total_growth:.2f} (goal: at most x1.5)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
