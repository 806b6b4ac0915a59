"""The scheduling rules of issue 16 survive a save and a load, on the memory and the PostgreSQL
adapters alike; awaiting_approval occupies the calendar on both (the no-overlap rule)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

from adapters.memory import InMemoryStore
from booking_core.errors import SlotUnavailable
from booking_core.model import (
    Booking,
    BookingLimits,
    BookingStatus,
    BookingWindow,
    Client,
    DateOverride,
    Interval,
    Money,
    Practitioner,
    Service,
    SlotAlignment,
    TimeRange,
    WeeklyHours,
    WindowKind,
)
from booking_core.ports import UnitOfWork

UowFactory = Callable[[], UnitOfWork]
T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
PRICE = Money(8000, "usd")


@pytest.fixture(params=["memory", "postgres"])
def new_uow(request: pytest.FixtureRequest) -> UowFactory:
    if request.param == "memory":
        return InMemoryStore().unit_of_work
    database = request.getfixturevalue("clean_database")
    return database.unit_of_work  # type: ignore[no-any-return]


def _practitioner() -> Practitioner:
    return Practitioner(
        name="Night owl",
        timezone="Europe/London",
        weekly_hours=WeeklyHours.from_mapping({4: ["20:00-02:00"], 5: ["03:00-05:00"]}),
        overrides=[DateOverride(date(2030, 1, 9), (TimeRange.parse("22:00-26:00"),))],
        limits=BookingLimits(bookings_per_day=4, minutes_per_week=600),
        services=[
            Service(
                name="Fill",
                duration_minutes=45,
                price=PRICE,
                alignment=SlotAlignment.FILL,
                window=BookingWindow(WindowKind.BUSINESS_DAYS, days=10),
                limits=BookingLimits(bookings_per_week=3, minutes_per_day=90),
                requires_confirmation=True,
            ),
            Service(
                name="Range",
                duration_minutes=30,
                price=PRICE,
                window=BookingWindow(
                    WindowKind.DATE_RANGE, first_day=date(2030, 2, 1), last_day=date(2030, 2, 28)
                ),
            ),
            Service(name="Plain", duration_minutes=30, price=PRICE),
        ],
    )


def test_rules_round_trip(new_uow: UowFactory) -> None:
    uow = new_uow()
    with uow:
        added = uow.practitioners.add(_practitioner())
        uow.commit()
    uow = new_uow()
    with uow:
        loaded = uow.practitioners.get(added.id or 0)
    assert loaded is not None
    want = _practitioner()
    assert loaded.limits == want.limits
    assert loaded.weekly_hours == want.weekly_hours
    assert loaded.weekly_hours.for_weekday(4) == (TimeRange(20 * 60, 26 * 60),)
    assert loaded.overrides == want.overrides
    for got, expected in zip(loaded.services, want.services, strict=True):
        assert (got.alignment, got.window, got.limits, got.requires_confirmation) == (
            expected.alignment,
            expected.window,
            expected.limits,
            expected.requires_confirmation,
        )


def _booking(p: Practitioner, status: BookingStatus, start: datetime = T0) -> Booking:
    return Booking(
        practitioner_id=p.id or 0,
        service_id=p.services[0].id or 0,
        client=Client("Client", "client@example.com"),
        start=start,
        end=start + timedelta(minutes=45),
        price=PRICE,
        status=status,
        hold_expires_at=start - timedelta(hours=1),
        created_at=T0 - timedelta(days=1),
        updated_at=T0 - timedelta(days=1),
    )


def test_awaiting_approval_occupies_the_calendar(new_uow: UowFactory) -> None:
    uow = new_uow()
    with uow:
        p = uow.practitioners.add(_practitioner())
        uow.commit()
    uow = new_uow()
    with uow:
        waiting = uow.bookings.add(_booking(p, BookingStatus.AWAITING_APPROVAL))
        uow.commit()

    def add(booking: Booking) -> None:
        # The PostgreSQL adapter refuses at the insert, the memory one at the commit.
        uow = new_uow()
        with uow:
            uow.bookings.add(booking)
            uow.commit()

    for status in (BookingStatus.PENDING, BookingStatus.AWAITING_APPROVAL):
        with pytest.raises(SlotUnavailable):
            add(_booking(p, status, T0 + timedelta(minutes=30)))
    uow = new_uow()
    with uow:
        spans = uow.bookings.occupied_spans(p.id or 0, Interval(T0, T0 + timedelta(hours=1)))
        due = uow.bookings.list_expired_holds(T0, status=BookingStatus.AWAITING_APPROVAL)
        pending_due = uow.bookings.list_expired_holds(T0)
    assert spans == [Interval(T0, T0 + timedelta(minutes=45))]
    assert [b.id for b in due] == [waiting.id]
    assert pending_due == []
    # Approved, it keeps its slot; approved_at survives a load.
    uow = new_uow()
    with uow:
        booking = uow.bookings.get(waiting.id or 0)
        assert booking is not None
        booking.approve(at=T0 - timedelta(minutes=90), hold_until=T0 - timedelta(minutes=30))
        uow.bookings.save(booking)
        uow.commit()
    uow = new_uow()
    with uow:
        again = uow.bookings.get(waiting.id or 0)
    assert again is not None
    assert (again.status, again.approved_at) == (BookingStatus.PENDING, T0 - timedelta(minutes=90))


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE working_hours SET end_minute = start_minute + 1441",
        "UPDATE working_hours SET start_minute = 1440, end_minute = 1500",
        "UPDATE services SET window_kind = 'calendar_days', window_days = NULL",
        "UPDATE services SET window_days = 5",  # a rolling window has no days
        "UPDATE services SET max_bookings_per_day = 0",
        "UPDATE practitioners SET max_minutes_per_week = -5",
        "UPDATE services SET alignment = 'snap'",
    ],
)
def test_the_database_refuses_what_the_domain_refuses(
    request: pytest.FixtureRequest, statement: str
) -> None:
    import sqlalchemy as sa

    database = request.getfixturevalue("clean_database")
    uow = database.unit_of_work()
    with uow:
        uow.practitioners.add(_practitioner())
        uow.commit()
    with pytest.raises(sa.exc.IntegrityError), database.engine.begin() as connection:
        connection.execute(sa.text(statement))
