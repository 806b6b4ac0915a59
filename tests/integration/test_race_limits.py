"""The limits race: many clients book different free slots of one day at the same moment.

40 threads, each with its own unit of work (its own database connection), released together by
a barrier, each ask for another slot of a practitioner who takes at most 3 bookings a day (or
120 minutes a week). Counted without a lock every thread would see room and all would win;
the practitioner's row lock taken in the hold's transaction makes them count one after another,
so exactly the limit wins and every other client gets LimitReached, round after round.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters.memory import FakeCalendarGateway, FakePaymentGateway, FixedClock, InMemoryStore
from adapters.postgres import Database
from booking_core.errors import LimitReached
from booking_core.model import BookingLimits, Client, Interval, Money, Practitioner
from booking_core.policy import BookingRules
from booking_core.ports import UnitOfWork
from booking_core.usecases import RequestBooking, request_booking
from entrypoints.dev.sample_data import sample_practitioner, sample_service

THREADS = 40
ROUNDS = 3
NOW = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)  # a Monday

UowFactory = Callable[[], UnitOfWork]


@pytest.fixture(params=["postgres", "memory"])
def new_uow(request: pytest.FixtureRequest) -> Iterator[UowFactory]:
    if request.param == "memory":
        yield InMemoryStore().unit_of_work
        return
    request.getfixturevalue("clean_database")
    database = Database.connect(
        request.getfixturevalue("database_url"), pool_size=THREADS + 5, max_overflow=0
    )
    try:
        yield database.unit_of_work
    finally:
        database.dispose()


def _practitioner(new_uow: UowFactory, limits: BookingLimits) -> Practitioner:
    """Open every day, all day; 30-minute sessions on the half hour, no buffers."""
    uow = new_uow()
    with uow:
        practitioner = sample_practitioner(
            name="Limited Practitioner",
            timezone="UTC",
            hours={d: ["00:00-24:00"] for d in range(7)},
            services=[
                sample_service(
                    duration_minutes=30,
                    price=Money(8000, "usd"),
                    slot_interval_minutes=30,
                    max_advance_days=60,
                )
            ],
        )
        practitioner.limits = limits
        stored = uow.practitioners.add(practitioner)
        uow.commit()
    return stored


def _round(
    new_uow: UowFactory, practitioner: Practitioner, day: datetime, payments: FakePaymentGateway
) -> tuple[int, list[BaseException]]:
    calendar = FakeCalendarGateway()
    clock = FixedClock(NOW)
    rules = BookingRules()
    barrier = threading.Barrier(THREADS)
    won: list[int] = []
    lost: list[BaseException] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        command = RequestBooking(
            practitioner_id=practitioner.id or 0,
            service_id=practitioner.services[0].id or 0,
            start=day + timedelta(minutes=30 * n),  # every client another free slot
            client=Client(f"Client {n}", f"client{n}@example.com"),
        )
        uow = new_uow()
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
                won.append(result.booking.id or 0)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads), "a client never finished"
    return len(won), lost


def _occupying(new_uow: UowFactory, practitioner: Practitioner, span: Interval) -> int:
    uow = new_uow()
    with uow:
        return len(uow.bookings.list_occupying(practitioner.id or 0, span))


def test_a_daily_limit_holds_under_a_crowd(new_uow: UowFactory) -> None:
    practitioner = _practitioner(new_uow, BookingLimits(bookings_per_day=3))
    payments = FakePaymentGateway()
    for round_number in range(ROUNDS):
        day = (NOW + timedelta(days=round_number + 1)).replace(hour=0)
        won, lost = _round(new_uow, practitioner, day, payments)
        others = [e for e in lost if not isinstance(e, LimitReached)]
        assert others == [], f"round {round_number}: unexpected errors {others!r}"
        assert won == 3, f"round {round_number}: {won} winners"
        assert _occupying(new_uow, practitioner, Interval(day, day + timedelta(days=1))) == 3


def test_a_weekly_minutes_limit_holds_under_a_crowd(new_uow: UowFactory) -> None:
    practitioner = _practitioner(new_uow, BookingLimits(minutes_per_week=120))
    payments = FakePaymentGateway()
    monday = (NOW + timedelta(days=7)).replace(hour=0)
    won, lost = _round(new_uow, practitioner, monday, payments)
    assert [e for e in lost if not isinstance(e, LimitReached)] == []
    assert won == 4  # 4 x 30 minutes
    tuesday = monday + timedelta(days=1)
    won, lost = _round(new_uow, practitioner, tuesday, payments)
    assert won == 0
    assert len(lost) == THREADS
    assert _occupying(new_uow, practitioner, Interval(monday, monday + timedelta(days=7))) == 4


def test_any_practitioner_gives_each_one_slot_once(new_uow: UowFactory) -> None:
    """40 clients ask for "any" practitioner at one start; three practitioners offer it: three
    win, each with another practitioner, and the rest hear that nobody is free."""
    from booking_core.errors import SlotUnavailable
    from booking_core.usecases import BookingRequested, request_booking_any

    team = []
    for n in range(3):
        uow = new_uow()
        with uow:
            p = sample_practitioner(
                name=f"Team {n}",
                timezone="UTC",
                hours={d: ["00:00-24:00"] for d in range(7)},
                services=[
                    sample_service(
                        duration_minutes=30,
                        price=Money(8000, "usd"),
                        slot_interval_minutes=30,
                        max_advance_days=60,
                        key="intake",
                    )
                ],
            )
            team.append(uow.practitioners.add(p))
            uow.commit()
    start = (NOW + timedelta(days=2)).replace(hour=10)
    payments, calendar, clock, rules = (
        FakePaymentGateway(),
        FakeCalendarGateway(),
        FixedClock(NOW),
        BookingRules(),
    )
    barrier = threading.Barrier(THREADS)
    won: list[int] = []
    lost: list[BaseException] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        command = RequestBooking(
            practitioner_id=0,
            service_id=team[n % 3].services[0].id or 0,
            start=start,
            client=Client(f"Client {n}", f"client{n}@example.com"),
        )
        uow = new_uow()
        barrier.wait(timeout=30)
        try:
            result = request_booking_any(
                command, uow=uow, payments=payments, calendar=calendar, clock=clock, rules=rules
            )
        except BaseException as exc:
            with lock:
                lost.append(exc)
        else:
            assert isinstance(result, BookingRequested)
            with lock:
                won.append(result.booking.practitioner_id)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [e for e in lost if not isinstance(e, SlotUnavailable)] == []
    assert sorted(won) == sorted(p.id for p in team)
