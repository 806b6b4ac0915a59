"""The race: many clients book the same slot (or overlapping slots) at the same moment.

40 threads, each with its own unit of work (so its own database connection), released together
by a barrier, call the real use case. Exactly one must win and every other must get
SlotUnavailable, with no other error, round after round. On PostgreSQL the exclusion constraint
decides; the memory adapter must agree.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters.memory import FakeCalendarGateway, FakePaymentGateway, FixedClock, InMemoryStore
from adapters.postgres import Database
from booking_core.errors import SlotUnavailable
from booking_core.model import (
    BookingStatus,
    Client,
    Interval,
    Money,
    Practitioner,
)
from booking_core.policy import BookingRules
from booking_core.ports import UnitOfWork
from booking_core.usecases import BookingRequested, RequestBooking, request_booking
from entrypoints.dev.sample_data import sample_practitioner, sample_service

THREADS = 40
ROUNDS = 4
NOW = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)

UowFactory = Callable[[], UnitOfWork]


@pytest.fixture(params=["postgres", "memory"])
def new_uow(request: pytest.FixtureRequest) -> Iterator[UowFactory]:
    if request.param == "memory":
        yield InMemoryStore().unit_of_work
        return
    request.getfixturevalue("clean_database")
    # A pool as large as the crowd, so every thread holds its own connection at once.
    database = Database.connect(
        request.getfixturevalue("database_url"), pool_size=THREADS + 5, max_overflow=0
    )
    try:
        yield database.unit_of_work
    finally:
        database.dispose()


def _practitioner(new_uow: UowFactory) -> Practitioner:
    """Open every day, all day; one-hour sessions every half hour with 15-minute buffers."""
    uow = new_uow()
    with uow:
        practitioner = uow.practitioners.add(
            sample_practitioner(
                name="Popular Practitioner",
                timezone="UTC",
                hours={d: ["00:00-24:00"] for d in range(7)},
                services=[
                    sample_service(
                        duration_minutes=60,
                        price=Money(8000, "usd"),
                        buffer_before_minutes=15,
                        buffer_after_minutes=15,
                        slot_interval_minutes=30,
                        max_advance_days=60,
                    )
                ],
            )
        )
        uow.commit()
    return practitioner


def _round(
    new_uow: UowFactory,
    practitioner: Practitioner,
    starts: list[datetime],
    payments: FakePaymentGateway,
) -> tuple[list[BookingRequested], list[BaseException]]:
    calendar = FakeCalendarGateway()
    clock = FixedClock(NOW)
    rules = BookingRules()
    barrier = threading.Barrier(THREADS)
    won: list[BookingRequested] = []
    lost: list[BaseException] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        command = RequestBooking(
            practitioner_id=practitioner.id or 0,
            service_id=practitioner.services[0].id or 0,
            start=starts[n % len(starts)],
            client=Client(f"Client {n}", f"client{n}@example.com"),
        )
        uow = new_uow()  # one unit of work, hence one connection, per client
        barrier.wait(timeout=30)
        try:
            result = request_booking(
                command, uow=uow, payments=payments, calendar=calendar, clock=clock, rules=rules
            )
        except BaseException as exc:
            with lock:
                lost.append(exc)
        else:
            with lock:
                won.append(result)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads), "a client never finished"
    return won, lost


def _occupying(new_uow: UowFactory, practitioner: Practitioner, day: datetime) -> int:
    uow = new_uow()
    with uow:
        window = Interval(day, day + timedelta(days=1))
        return len(uow.bookings.list_occupying(practitioner.id or 0, window))


@pytest.mark.parametrize("shape", ["same slot", "overlapping slots"])
def test_exactly_one_client_wins_every_round(
    new_uow: UowFactory, shape: str, request: pytest.FixtureRequest
) -> None:
    practitioner = _practitioner(new_uow)
    payments = FakePaymentGateway()  # one for the test: its session ids never repeat
    began = time.monotonic()
    refused_on_write = 0
    for round_number in range(ROUNDS):
        day = (NOW + timedelta(days=round_number + 1)).replace(hour=0)
        ten = day.replace(hour=10)
        starts = (
            [ten]
            if shape == "same slot"
            # Pairwise overlapping once the 15-minute buffers are counted (10:00 and 11:00 too).
            else [ten, ten + timedelta(minutes=30), ten + timedelta(minutes=60)]
        )
        won, lost = _round(new_uow, practitioner, starts, payments)
        others = [e for e in lost if not isinstance(e, SlotUnavailable)]
        assert others == [], f"round {round_number}: unexpected errors {others!r}"
        assert len(won) == 1, f"round {round_number}: {len(won)} winners"
        assert len(lost) == THREADS - 1
        assert won[0].booking.status is BookingStatus.PENDING
        assert won[0].booking.checkout_session_id is not None
        assert _occupying(new_uow, practitioner, day) == 1
        # Losers are stopped by the adapter's write (on PostgreSQL, by the exclusion constraint
        # as the arbiter of the INSERT's ON CONFLICT DO NOTHING); none may be refused otherwise.
        refused_on_write += sum(1 for e in lost if "already taken" not in str(e))
    if request.node.callspec.params["new_uow"] == "postgres":
        assert refused_on_write > 0, "no client reached the insert: the race never happened"
    assert time.monotonic() - began < 60
