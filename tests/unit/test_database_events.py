"""Which statements leave a transaction with nothing to lose (adapters.postgres.database_events).

A write guards itself with a SAVEPOINT only after something that a refusal must not undo; a
plain read is the only thing that may come before an unguarded write.
"""

from __future__ import annotations

import pytest

from adapters.postgres.database_events import is_plain_read


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT bookings.id FROM bookings WHERE bookings.id = %(id)s",
        "  select 1",
        "SELECT occupied_start, occupied_end FROM bookings\nWHERE practitioner_id = 1",
        "SELECT services.practitioner_id FROM services WHERE services.retired IS false",
    ],
)
def test_plain_reads_are_plain(statement: str) -> None:
    assert is_plain_read(statement)


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO bookings (practitioner_id) VALUES (%(p)s) RETURNING bookings.id",
        "UPDATE bookings SET status = 'expired'",
        "DELETE FROM idempotency_records",
        "SELECT practitioners.id FROM practitioners WHERE practitioners.id = 1 FOR UPDATE",
        "SELECT id FROM outbox_jobs\nORDER BY id LIMIT 10 FOR UPDATE SKIP LOCKED",
        "SELECT id FROM practitioners FOR NO KEY UPDATE",
        "SELECT id FROM practitioners FOR SHARE",
        "SELECT id FROM practitioners FOR KEY SHARE",
        "SELECT pg_notify(%(channel)s, %(id)s)",
        "SELECT pg_advisory_xact_lock(42)",
        "SELECT nextval('bookings_id_seq')",
        "WITH moved AS (UPDATE bookings SET status = 'expired' RETURNING id) SELECT * FROM moved",
        "SAVEPOINT sa_savepoint_1",
        "LOCK TABLE bookings",
    ],
)
def test_writes_locks_and_side_effects_are_not(statement: str) -> None:
    assert not is_plain_read(statement)
