"""One repository contract, run over the memory adapter and the PostgreSQL adapter.

The memory fakes stand in for PostgreSQL in every unit test; this suite keeps them honest by
asserting the same behaviour of both: copies, commit and rollback, the no-overlap rule with
buffers, optimistic versions, event and job semantics, upserts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

from adapters.memory import InMemoryStore
from adapters.postgres import Database
from booking_core.errors import (
    ConcurrentUpdate,
    PractitionerNotFound,
    RefundExceedsCapture,
    SlotUnavailable,
    UserNotFound,
)
from booking_core.jobs import JobStatus
from booking_core.model import (
    Booking,
    BookingStatus,
    CalendarLink,
    Client,
    DateOverride,
    Interval,
    Money,
    Payment,
    Practitioner,
    Refund,
    RefundStatus,
    Role,
    Service,
    TimeOff,
    TimeRange,
    User,
    WeeklyHours,
)
from booking_core.ports import BookingFilter, IdempotencyRecord, UnitOfWork

UowFactory = Callable[[], UnitOfWork]

T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)  # a Monday
PRICE = Money(8000, "usd")


@pytest.fixture(params=["memory", "postgres"])
def new_uow(request: pytest.FixtureRequest) -> UowFactory:
    if request.param == "memory":
        return InMemoryStore().unit_of_work
    database = request.getfixturevalue("clean_database")
    return database.unit_of_work  # type: ignore[no-any-return]


def _practitioner(name: str = "Dr. Ada", **changes: object) -> Practitioner:
    practitioner = Practitioner(
        name=name,
        title="Therapist",
        bio="Listens.",
        email="ada@example.com",
        timezone="Europe/London",
        weekly_hours=WeeklyHours.from_mapping(
            {0: ["09:00-12:00", "13:00-17:00"], 2: ["10:00-14:00"]}
        ),
        overrides=[
            DateOverride(date(2030, 1, 8)),
            DateOverride(date(2030, 1, 9), (TimeRange(600, 660), TimeRange(720, 780))),
        ],
        time_off=[TimeOff(Interval(T0 + timedelta(days=20), T0 + timedelta(days=21)), "holiday")],
        calendar_link=CalendarLink(event_type="42", user="7", username="ada"),
        services=[
            Service(name="Session", duration_minutes=50, price=PRICE, buffer_after_minutes=10),
            Service(
                name="Short",
                duration_minutes=30,
                price=Money(3000, "usd"),
                buffer_before_minutes=5,
                min_notice_minutes=60,
                max_advance_days=30,
                slot_interval_minutes=15,
            ),
        ],
    )
    return attrs.evolve(practitioner, **changes)


def _setup(new_uow: UowFactory, count: int = 1) -> list[Practitioner]:
    uow = new_uow()
    with uow:
        added = [uow.practitioners.add(_practitioner(f"P{i}")) for i in range(count)]
        uow.commit()
    return added


def _booking(
    practitioner: Practitioner,
    start: datetime = T0,
    minutes: int = 50,
    *,
    before: int = 0,
    after: int = 0,
    status: BookingStatus = BookingStatus.PENDING,
    email: str = "client@example.com",
    **changes: object,
) -> Booking:
    fields: dict[str, object] = {
        "practitioner_id": practitioner.id or 0,
        "service_id": practitioner.services[0].id or 0,
        "client": Client("Client", email, "+44 20 0000 0000"),
        "start": start,
        "end": start + timedelta(minutes=minutes),
        "buffer_before_minutes": before,
        "buffer_after_minutes": after,
        "price": PRICE,
        "status": status,
        "hold_expires_at": start + timedelta(days=1) if status is BookingStatus.PENDING else None,
        "created_at": T0 - timedelta(days=2),
        "updated_at": T0 - timedelta(days=2),
    }
    return Booking(**(fields | changes))  # type: ignore[arg-type]


def _add(new_uow: UowFactory, *bookings: Booking) -> list[Booking]:
    uow = new_uow()
    with uow:
        added = [uow.bookings.add(b) for b in bookings]
        uow.commit()
    return added


def _fields(obj: object) -> dict[str, object]:
    return attrs.asdict(obj, recurse=False)  # type: ignore[arg-type]


# -- practitioners --------------------------------------------------------------------------------


def test_practitioner_round_trip(new_uow: UowFactory) -> None:
    given = _practitioner()
    uow = new_uow()
    with uow:
        added = uow.practitioners.add(given)
        uow.commit()
    assert added.id is not None
    assert all(s.id is not None for s in added.services)
    with uow:
        loaded = uow.practitioners.get(added.id)
    assert loaded is not None
    for name in (
        "name",
        "title",
        "bio",
        "email",
        "timezone",
        "active",
        "weekly_hours",
        "overrides",
        "time_off",
        "calendar_link",
    ):
        assert getattr(loaded, name) == getattr(given, name), name
    assert [_fields(s) | {"id": None} for s in loaded.services] == [
        _fields(s) for s in given.services
    ]
    assert [s.id for s in loaded.services] == [s.id for s in added.services]


def test_practitioner_save_replaces_services_hours_and_link(new_uow: UowFactory) -> None:
    (added,) = _setup(new_uow)
    uow = new_uow()
    with uow:
        practitioner = uow.practitioners.get(added.id or 0)
        assert practitioner is not None
        kept = practitioner.services[1]
        kept.name = "Short and sweet"
        practitioner.services = [kept, Service(name="New", duration_minutes=90, price=PRICE)]
        practitioner.name = "Dr. Ada Lovelace"
        practitioner.weekly_hours = WeeklyHours.from_mapping({4: ["08:00-10:00"]})
        practitioner.overrides = []
        practitioner.time_off = []
        practitioner.calendar_link = None
        uow.practitioners.save(practitioner)
        uow.commit()
    with uow:
        loaded = uow.practitioners.get(added.id or 0)
    assert loaded is not None
    assert loaded.name == "Dr. Ada Lovelace"
    assert [s.name for s in loaded.services] == ["Short and sweet", "New"]
    assert loaded.services[0].id == kept.id
    assert loaded.services[1].id is not None
    assert loaded.weekly_hours == WeeklyHours.from_mapping({4: ["08:00-10:00"]})
    assert loaded.overrides == []
    assert loaded.time_off == []
    assert loaded.calendar_link is None


def test_practitioner_list_and_missing(new_uow: UowFactory) -> None:
    first, second = _setup(new_uow, 2)
    uow = new_uow()
    with uow:
        second.active = False
        uow.practitioners.save(second)
        uow.commit()
    with uow:
        assert [p.id for p in uow.practitioners.list()] == [first.id]
        assert [p.id for p in uow.practitioners.list(active_only=False)] == [first.id, second.id]
        assert uow.practitioners.get(999_999) is None
        with pytest.raises(PractitionerNotFound):
            uow.practitioners.save(_practitioner(id=999_999))


# -- bookings: copies, commit, rollback ---------------------------------------------------------


def test_add_get_and_copies(new_uow: UowFactory) -> None:
    (p,) = _setup(new_uow)
    given = _booking(p, after=10, notes="first visit")
    uow = new_uow()
    with uow:
        added = uow.bookings.add(given)
        assert added.id is not None
        assert added.version == 1
        added.notes = "changed without save"
        uow.commit()
    with uow:
        loaded = uow.bookings.get(added.id)
    assert loaded is not None
    assert _fields(loaded) == _fields(given) | {"id": added.id, "version": 1}
    assert uow is not None
    with uow:
        again = uow.bookings.get(added.id)
        assert again is not None
        assert again is not loaded
        assert uow.bookings.get(987_654) is None


def test_writes_are_visible_to_others_only_after_commit(new_uow: UowFactory) -> None:
    (p,) = _setup(new_uow)
    writer, reader = new_uow(), new_uow()
    with writer:
        booking = writer.bookings.add(_booking(p))
        with reader:
            assert reader.bookings.get(booking.id or 0) is None
        writer.commit()
    with reader:
        assert reader.bookings.get(booking.id or 0) is not None


def test_leaving_without_commit_or_with_an_error_rolls_back(new_uow: UowFactory) -> None:
    (p,) = _setup(new_uow)
    uow = new_uow()
    with uow:
        first = uow.bookings.add(_booking(p))
    added: list[Booking] = []

    def fail_inside() -> None:
        with uow:
            added.append(uow.bookings.add(_booking(p, T0 + timedelta(hours=2))))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_inside()
    with uow:
        assert uow.bookings.get(first.id or 0) is None
        assert uow.bookings.get(added[0].id or 0) is None
        third = uow.bookings.add(_booking(p, T0 + timedelta(hours=4)))
        uow.rollback()
        assert uow.bookings.get(third.id or 0) is None


def test_save_bumps_the_version_and_persists(new_uow: UowFactory) -> None:
    (p,) = _setup(new_uow)
    (booking,) = _add(new_uow, _booking(p))
    uow = new_uow()
    with uow:
        loaded = uow.bookings.get(booking.id or 0)
        assert loaded is not None
        loaded.transition_to(BookingStatus.CONFIRMED, at=T0 - timedelta(hours=1))
        loaded.payment_intent_id = "pi_1"
        loaded.refund = Refund(Money(100, "usd"), RefundStatus.PENDING, "re_1", 2, "why")
        uow.bookings.save(loaded)
        assert loaded.version == 2
        uow.bookings.save(loaded)  # a save without changes still counts
        assert loaded.version == 3
        uow.commit()
    with uow:
        stored = uow.bookings.get(booking.id or 0)
    assert stored is not None
    assert _fields(stored) == _fields(loaded)


def test_a_last_write_commits_the_unit_with_it(new_uow: UowFactory) -> None:
    """``add``/``save`` with commit=True: committed at once, as with commit() after them, and
    with whatever the unit wrote before."""
    (p,) = _setup(new_uow)
    uow, reader = new_uow(), new_uow()
    with uow:
        held = uow.bookings.add(_booking(p), commit=True)
        with reader:
            assert reader.bookings.get(held.id or 0) is not None
    with uow:
        first = uow.bookings.add(_booking(p, T0 + timedelta(hours=2)))
        second = uow.bookings.add(_booking(p, T0 + timedelta(hours=4)), commit=True)
        uow.rollback()  # nothing left to roll back
    with reader:
        assert reader.bookings.get(first.id or 0) is not None
        assert reader.bookings.get(second.id or 0) is not None
    with uow:
        loaded = uow.bookings.get(held.id or 0)
        assert loaded is not None
        loaded.notes = "noted"
        uow.bookings.save(loaded, commit=True)
        assert loaded.version == 2
    with reader:
        assert (reader.bookings.get(held.id or 0) or held).notes == "noted"


def test_a_refused_last_write_commits_nothing_and_leaves_the_unit_usable(
    new_uow: UowFactory,
) -> None:
    (p,) = _setup(new_uow)
    (taken,) = _add(new_uow, _booking(p))
    uow = new_uow()
    with uow:
        with pytest.raises(SlotUnavailable):
            uow.bookings.add(_booking(p, T0 + timedelta(minutes=10)), commit=True)
        stale = uow.bookings.get(taken.id or 0)
        assert stale is not None
        stale.version = 7
        with pytest.raises(ConcurrentUpdate):
            uow.bookings.save(stale, commit=True)
        later = uow.bookings.add(_booking(p, T0 + timedelta(hours=3)), commit=True)
    with uow:
        occupying = uow.bookings.list_occupying(p.id or 0, Interval(T0, T0 + timedelta(days=1)))
        assert [b.id for b in occupying] == [taken.id, later.id]
        stored = uow.bookings.get(taken.id or 0)
        assert stored is not None
        assert stored.version == 1


# -- bookings: the no-overlap rule ---------------------------------------------------------------


def test_overlapping_occupying_bookings_are_refused(new_uow: UowFactory) -> None:
    p, other = _setup(new_uow, 2)
    _add(new_uow, _booking(p, T0, 50, after=10))  # occupies 09:00-10:00
    uow = new_uow()
    with uow:
        for clash in (
            _booking(p, T0 + timedelta(minutes=30)),
            _booking(p, T0 - timedelta(minutes=30)),
            _booking(p, T0 + timedelta(minutes=55)),  # inside the 10 minutes after
            _booking(p, T0 + timedelta(minutes=60), before=5),  # its own buffer reaches back
            _booking(p, T0 - timedelta(minutes=60), after=11),  # 08:00-08:50, +11 minutes
        ):
            with pytest.raises(SlotUnavailable):
                uow.bookings.add(clash)
        # The unit of work stays usable after a refused write.
        uow.bookings.add(_booking(p, T0 + timedelta(minutes=60)))  # back to back: fine
        uow.bookings.add(_booking(p, T0 - timedelta(minutes=50)))  # ends at 09:00: fine
        uow.bookings.add(_booking(other, T0))  # another practitioner
        uow.commit()
    with uow:
        window = Interval(T0 - timedelta(hours=3), T0 + timedelta(hours=3))
        assert len(uow.bookings.list_occupying(p.id or 0, window)) == 3


@pytest.mark.parametrize(
    "status", [BookingStatus.CANCELLED, BookingStatus.EXPIRED, BookingStatus.COMPLETED]
)
def test_only_pending_and_confirmed_occupy(new_uow: UowFactory, status: BookingStatus) -> None:
    (p,) = _setup(new_uow)
    _add(new_uow, _booking(p, status=status), _booking(p, status=status))
    _add(new_uow, _booking(p, status=BookingStatus.CONFIRMED))
    with pytest.raises(SlotUnavailable):
        _add(new_uow, _booking(p))


def test_cancelling_frees_the_slot(new_uow: UowFactory) -> None:
    (p,) = _setup(new_uow)
    (held,) = _add(new_uow, _booking(p))
    uow = new_uow()
    with uow:
        booking = uow.bookings.get(held.id or 0)
        assert booking is not None
        booking.transition_to(BookingStatus.CANCELLED, at=T0 - timedelta(hours=1))
        uow.bookings.save(booking)
        uow.bookings.add(_booking(p))
        uow.commit()


def test_overlap_with_another_units_uncommitted_insert(new_uow: UowFactory) -> None:
    """PostgreSQL makes the second insert wait for the first transaction, then refuses it; the
    memory adapter refuses it at once. Either way the second writer gets SlotUnavailable."""
    (p,) = _setup(new_uow)
    first, second = new_uow(), new_uow()
    outcome: list[BaseException | None] = []
    started = threading.Event()

    def other_writer() -> None:
        with second:
            started.set()
            try:
                second.bookings.add(_booking(p, T0 + timedelta(minutes=20)))
                second.commit()
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

    with first:
        first.bookings.add(_booking(p))
        thread = threading.Thread(target=other_writer)
        thread.start()
        started.wait(5)
        thread.join(0.3)  # let it reach the insert (and block on PostgreSQL)
        first.commit()
    thread.join(10)
    assert not thread.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], SlotUnavailable)


def test_crossing_inserts_of_two_units_are_both_refused(new_uow: UowFactory) -> None:
    """Each unit holds a booking the other's second insert overlaps. PostgreSQL sees a deadlock
    and aborts one insert; the adapter turns that into SlotUnavailable, and the other insert,
    once the first unit commits, meets the constraint. The memory adapter refuses both at once.
    """
    (p,) = _setup(new_uow)
    barrier = threading.Barrier(2, timeout=30)
    outcomes: dict[str, BaseException | None] = {}

    def unit(name: str, mine: datetime, theirs: datetime) -> None:
        uow = new_uow()
        with uow:
            uow.bookings.add(_booking(p, mine))
            barrier.wait()
            try:
                uow.bookings.add(_booking(p, theirs + timedelta(minutes=10)))
                outcomes[name] = None
            except BaseException as exc:
                outcomes[name] = exc
            uow.commit()

    first, second = T0, T0 + timedelta(hours=2)
    threads = [
        threading.Thread(target=unit, args=("a", first, second)),
        threading.Thread(target=unit, args=("b", second, first)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert {name: type(error) for name, error in outcomes.items()} == {
        "a": SlotUnavailable,
        "b": SlotUnavailable,
    }
    uow = new_uow()
    with uow:
        window = Interval(T0 - timedelta(hours=1), T0 + timedelta(hours=4))
        assert [b.start for b in uow.bookings.list_occupying(p.id or 0, window)] == [first, second]


def test_a_refused_save_leaves_the_unit_usable_for_the_late_payment_path(
    new_uow: UowFactory,
) -> None:
    (p,) = _setup(new_uow)
    (expired,) = _add(new_uow, _booking(p, status=BookingStatus.EXPIRED))
    _add(new_uow, _booking(p, T0 + timedelta(minutes=10), status=BookingStatus.CONFIRMED))
    uow = new_uow()
    with uow:
        booking = uow.bookings.get(expired.id or 0)
        assert booking is not None
        late = booking.copy()
        late.confirm_late_payment(at=T0 - timedelta(hours=1))
        with pytest.raises(SlotUnavailable):
            uow.bookings.save(late)
        booking.refund = Refund(PRICE, RefundStatus.PENDING, reason="late_payment_slot_taken")
        uow.bookings.save(booking)
        uow.outbox.add("payment.refund", {"booking_id": booking.id}, T0)
        uow.commit()
    with uow:
        stored = uow.bookings.get(expired.id or 0)
        assert stored is not None
        assert stored.status is BookingStatus.EXPIRED
        assert stored.refund is not None
        assert stored.refund.status is RefundStatus.PENDING
        assert stored.version == 2
        assert [j.kind for j in uow.outbox.list()] == ["payment.refund"]


def test_rescheduling_onto_another_booking_is_refused(new_uow: UowFactory) -> None:
    (p,) = _setup(new_uow)
    first, _ = _add(new_uow, _booking(p), _booking(p, T0 + timedelta(hours=2)))
    uow = new_uow()
    with uow:
        moving = uow.bookings.get(first.id or 0)
        assert moving is not None
        moving.start, moving.end = T0 + timedelta(hours=2, minutes=30), T0 + timedelta(hours=3)
        with pytest.raises(SlotUnavailable):
            uow.bookings.save(moving)
        moving.start, moving.end = T0 + timedelta(hours=4), T0 + timedelta(hours=5)
        uow.bookings.save(moving)
        uow.commit()


# -- bookings: optimistic concurrency ------------------------------------------------------------


def test_stale_save_raises_concurrent_update(new_uow: UowFactory) -> None:
    (p,) = _setup(new_uow)
    (booking,) = _add(new_uow, _booking(p))
    mine, theirs = new_uow(), new_uow()
    with mine:
        my_copy = mine.bookings.get(booking.id or 0)
        with theirs:
            their_copy = theirs.bookings.get(booking.id or 0)
            assert their_copy is not None
            their_copy.notes = "theirs"
            theirs.bookings.save(their_copy)
            theirs.commit()
        assert my_copy is not None
        my_copy.notes = "mine"
        with pytest.raises(ConcurrentUpdate):
            mine.bookings.save(my_copy)
    with mine:
        stored = mine.bookings.get(booking.id or 0)
        assert stored is not None
        assert stored.notes == "theirs"
        assert stored.version == 2
        # A copy read in an earlier unit of work is just as stale.
        with pytest.raises(ConcurrentUpdate):
            mine.bookings.save(booking)


# -- bookings: queries ---------------------------------------------------------------------------


def test_list_occupying_uses_buffered_spans_and_half_open_windows(new_uow: UowFactory) -> None:
    p, other = _setup(new_uow, 2)
    late, early, _, _, _ = _add(
        new_uow,
        _booking(p, T0 + timedelta(hours=3), after=30),  # occupies 12:00-13:20
        _booking(p, T0, before=15),  # occupies 08:45-09:50
        _booking(p, T0 + timedelta(hours=5), status=BookingStatus.CANCELLED),
        _booking(other, T0),
        _booking(p, T0 + timedelta(days=3)),
    )
    uow = new_uow()
    with uow:

        def ids(start: datetime, end: datetime) -> list[int | None]:
            return [b.id for b in uow.bookings.list_occupying(p.id or 0, Interval(start, end))]

        day = T0.replace(hour=0)
        assert ids(day, day + timedelta(days=1)) == [early.id, late.id]
        assert ids(T0 - timedelta(minutes=15), T0) == [early.id]  # the buffer before counts
        assert ids(T0 - timedelta(hours=1), T0 - timedelta(minutes=15)) == []  # half open
        assert ids(T0 + timedelta(hours=4, minutes=19), T0 + timedelta(hours=5)) == [late.id]
        assert ids(T0 + timedelta(hours=4, minutes=20), T0 + timedelta(hours=6)) == []


def test_occupied_spans_are_the_buffered_spans_of_the_occupying_bookings(
    new_uow: UowFactory,
) -> None:
    p, other = _setup(new_uow, 2)
    _add(
        new_uow,
        _booking(p, T0 + timedelta(hours=3), after=30),  # occupies 12:00-13:20
        _booking(p, T0, before=15),  # occupies 08:45-09:50
        _booking(p, T0 + timedelta(hours=5), status=BookingStatus.EXPIRED),
        _booking(other, T0),
    )
    uow = new_uow()
    with uow:
        day = T0.replace(hour=0)
        spans = uow.bookings.occupied_spans(p.id or 0, Interval(day, day + timedelta(days=1)))
        late_only = uow.bookings.occupied_spans(
            p.id or 0, Interval(T0 + timedelta(hours=4, minutes=19), T0 + timedelta(hours=5))
        )
    assert spans == [
        Interval(T0 - timedelta(minutes=15), T0 + timedelta(minutes=50)),
        Interval(T0 + timedelta(hours=3), T0 + timedelta(hours=4, minutes=20)),
    ]
    assert late_only == [Interval(T0 + timedelta(hours=3), T0 + timedelta(hours=4, minutes=20))]


def test_a_stale_read_is_allowed_only_when_asked_for(new_uow: UowFactory) -> None:
    (p,) = _setup(new_uow)
    uow = new_uow()
    with uow:
        shown = uow.practitioners.get(p.id or 0, max_age=60)
        assert shown is not None
        shown.name = "changed on the copy only"
        assert (uow.practitioners.get(p.id or 0, max_age=60) or p).name == "P0"
    writer = new_uow()
    with writer:
        stored = writer.practitioners.get(p.id or 0)
        assert stored is not None
        stored.name = "Renamed"
        writer.practitioners.save(stored)
        writer.commit()
    with uow:
        # A write through this process is seen at once, cached or not.
        assert (uow.practitioners.get(p.id or 0, max_age=60) or p).name == "Renamed"
        assert (uow.practitioners.get(p.id or 0) or p).name == "Renamed"


def test_expired_holds_and_refunds_due(new_uow: UowFactory) -> None:
    (p,) = _setup(new_uow)
    now = T0 - timedelta(hours=1)
    b1, b2, _, _, b5 = _add(
        new_uow,
        _booking(p, T0, hold_expires_at=now - timedelta(minutes=1)),
        _booking(p, T0 + timedelta(hours=1), hold_expires_at=now - timedelta(minutes=5)),
        _booking(p, T0 + timedelta(hours=2), hold_expires_at=now + timedelta(minutes=5)),
        _booking(p, T0 + timedelta(hours=3), status=BookingStatus.CONFIRMED),
        _booking(
            p,
            T0 + timedelta(hours=4),
            status=BookingStatus.CANCELLED,
            refund=Refund(PRICE, RefundStatus.PENDING),
        ),
    )
    _add(
        new_uow,
        _booking(
            p,
            T0 + timedelta(hours=5),
            status=BookingStatus.CANCELLED,
            refund=Refund(PRICE, RefundStatus.SUCCEEDED),
        ),
    )
    uow = new_uow()
    with uow:
        assert [b.id for b in uow.bookings.list_expired_holds(now)] == [b2.id, b1.id]
        assert [b.id for b in uow.bookings.list_expired_holds(now, limit=1)] == [b2.id]
        assert [b.id for b in uow.bookings.list_refunds_due()] == [b5.id]


def test_lookups_by_payment_and_calendar_references(new_uow: UowFactory) -> None:
    (p,) = _setup(new_uow)
    (booking,) = _add(
        new_uow,
        _booking(p, checkout_session_id="cs_1", payment_intent_id="pi_1", calendar_uid="cal_1"),
    )
    uow = new_uow()
    with uow:
        for found in (
            uow.bookings.get_by_checkout_session("cs_1"),
            uow.bookings.get_by_payment_intent("pi_1"),
            uow.bookings.get_by_calendar_uid("cal_1"),
        ):
            assert found is not None
            assert found.id == booking.id
        assert uow.bookings.get_by_checkout_session("cs_2") is None
        assert uow.bookings.get_by_payment_intent("pi_2") is None
        assert uow.bookings.get_by_calendar_uid("cal_2") is None


def test_admin_list_filters_and_pages(new_uow: UowFactory) -> None:
    p, other = _setup(new_uow, 2)
    b = _add(
        new_uow,
        _booking(p, T0, email="Alice@Example.com"),
        _booking(p, T0 + timedelta(days=1), status=BookingStatus.CONFIRMED),
        _booking(p, T0 + timedelta(days=2), email="alice@example.com"),
        _booking(other, T0 + timedelta(days=1)),
    )
    uow = new_uow()
    with uow:

        def ids(**kwargs: object) -> list[int | None]:
            return [x.id for x in uow.bookings.list(BookingFilter(**kwargs))]  # type: ignore[arg-type]

        assert ids() == [b[2].id, b[3].id, b[1].id, b[0].id]  # newest start first, then id
        assert ids(practitioner_id=p.id) == [b[2].id, b[1].id, b[0].id]
        assert ids(status=BookingStatus.CONFIRMED) == [b[1].id]
        assert ids(client_email="ALICE@example.com") == [b[2].id, b[0].id]
        assert ids(
            practitioner_id=p.id, start_from=T0 + timedelta(days=1), start_to=T0 + timedelta(days=2)
        ) == [b[1].id]
        assert ids(practitioner_id=p.id, limit=1, offset=1) == [b[1].id]


# -- payment events, users, idempotency keys -----------------------------------------------------


def test_payment_event_is_recorded_once(new_uow: UowFactory) -> None:
    uow = new_uow()
    with uow:
        assert uow.payment_events.record("evt_1", "checkout.session.completed", T0) is True
        assert uow.payment_events.record("evt_1", "checkout.session.completed", T0) is False
    with uow:  # rolled back: not recorded
        assert uow.payment_events.record("evt_1", "checkout.session.completed", T0) is True
        uow.commit()
    other = new_uow()
    with other:
        assert other.payment_events.record("evt_1", "checkout.session.completed", T0) is False
        assert other.payment_events.record("evt_2", "checkout.session.expired", T0) is True


def test_user_upsert_by_open_id(new_uow: UowFactory) -> None:
    uow = new_uow()
    with uow:
        first = uow.users.upsert(User(open_id="sub-1", name="Ann", email="ann@example.com"))
        uow.commit()
    assert first.id is not None
    assert first.role is Role.USER
    signed_in = T0 + timedelta(hours=1)
    with uow:
        again = uow.users.upsert(
            User(
                open_id="sub-1",
                name="Ann B.",
                email="annb@example.com",
                role=Role.ADMIN,
                last_signed_in=signed_in,
            )
        )
        other = uow.users.upsert(User(open_id="sub-2"))
        uow.commit()
    assert again.id == first.id
    assert other.id != first.id
    with uow:
        stored = uow.users.get_by_open_id("sub-1")
        assert uow.users.get_by_open_id("nobody") is None
    assert stored is not None
    assert (stored.name, stored.email, stored.role, stored.last_signed_in) == (
        "Ann B.",
        "annb@example.com",
        Role.ADMIN,
        signed_in,
    )
    assert stored.is_admin


def test_a_user_keeps_a_granted_role_when_signing_in_again(new_uow: UowFactory) -> None:
    uow = new_uow()
    with uow:
        practitioner = uow.practitioners.add(_practitioner())
        promoted = uow.users.upsert(User(open_id="sub-a", email="A@Example.com"))
        linked = uow.users.upsert(User(open_id="sub-p", email="p@example.com"))
        uow.commit()
    assert practitioner.id is not None
    assert promoted.id is not None
    assert linked.id is not None
    with uow:
        uow.users.set_role(promoted.id, Role.ADMIN, None)
        changed = uow.users.set_role(linked.id, Role.PRACTITIONER, practitioner.id)
        uow.commit()
    assert (changed.role, changed.practitioner_id) == (Role.PRACTITIONER, practitioner.id)
    with uow:
        # A later sign-in (role USER in the upsert) updates the profile, never the role.
        again = uow.users.upsert(User(open_id="sub-a", name="Ann", last_signed_in=T0))
        still = uow.users.upsert(User(open_id="sub-p", name="Pat", last_signed_in=T0))
        uow.commit()
    assert (again.id, again.role, again.name, again.email) == (promoted.id, Role.ADMIN, "Ann", None)
    assert (still.role, still.practitioner_id, still.name) == (
        Role.PRACTITIONER,
        practitioner.id,
        "Pat",
    )
    with uow:
        by_id = uow.users.get(linked.id)
        assert uow.users.get(10**9) is None
    assert by_id is not None
    assert (by_id.open_id, by_id.role, by_id.last_signed_in) == ("sub-p", Role.PRACTITIONER, T0)


def test_users_found_by_email_ignoring_case(new_uow: UowFactory) -> None:
    uow = new_uow()
    with uow:
        first = uow.users.upsert(User(open_id="s1", email="Grace@Example.com"))
        uow.users.upsert(User(open_id="s2", email="other@example.com"))
        uow.users.upsert(User(open_id="s3"))
        # Visible to the unit of work that wrote it, before the commit ...
        assert [u.open_id for u in uow.users.find_by_email("grace@example.COM")] == ["s1"]
        uow.commit()
    with uow:
        second = uow.users.upsert(User(open_id="s4", email="grace@example.com"))
        uow.commit()
    with uow:
        found = uow.users.find_by_email("GRACE@example.com")
        assert uow.users.find_by_email("nobody@example.com") == []
    assert [u.id for u in found] == [first.id, second.id]


def test_user_writes_are_invisible_until_commit_and_gone_after_rollback(
    new_uow: UowFactory,
) -> None:
    writer, reader = new_uow(), new_uow()
    with writer:
        added = writer.users.upsert(User(open_id="s1", email="a@example.com"))
        assert added.id is not None
        with reader:
            assert reader.users.get_by_open_id("s1") is None
        # no commit: rolled back
    with reader:
        assert reader.users.get_by_open_id("s1") is None
        with pytest.raises(UserNotFound):
            reader.users.set_role(10**9, Role.ADMIN, None)


def test_concurrent_first_sign_ins_of_one_open_id_make_one_user(clean_database: Any) -> None:
    """PostgreSQL only: the memory store serialises everything, so it has no race to lose."""
    barrier = threading.Barrier(4)
    results: list[User] = []
    errors: list[BaseException] = []

    def sign_in(n: int) -> None:
        try:
            uow = clean_database.unit_of_work()
            barrier.wait(5)
            with uow:
                results.append(uow.users.upsert(User(open_id="same-sub", name=f"N{n}")))
                uow.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sign_in, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len({u.id for u in results}) == 1
    with clean_database.engine.connect() as connection:
        count = connection.exec_driver_sql("SELECT count(*) FROM users").scalar_one()
    assert count == 1


def test_idempotency_keys(new_uow: UowFactory) -> None:
    uow = new_uow()
    record = IdempotencyRecord(key="key-1", fingerprint="f1", created_at=T0)
    with uow:
        assert uow.idempotency.reserve(record) is None
        uow.commit()
    with uow:
        existing = uow.idempotency.reserve(attrs.evolve(record, fingerprint="f2"))
        assert existing is not None
        assert existing.fingerprint == "f1"
        assert existing.status_code is None
        uow.idempotency.complete("key-1", 201, {"booking": {"id": 1}}, "sealed")
        uow.commit()
    with uow:
        done = uow.idempotency.reserve(record)
        assert done is not None
        assert (done.status_code, dict(done.response or {}), done.sealed_secret) == (
            201,
            {"booking": {"id": 1}},
            "sealed",
        )
        uow.idempotency.release("key-1")
        uow.commit()
    with uow:
        assert uow.idempotency.reserve(record) is None
        assert (
            uow.idempotency.reserve(
                IdempotencyRecord(key="key-2", fingerprint="f", created_at=T0 + timedelta(days=2))
            )
            is None
        )
        uow.commit()
    with uow:
        assert uow.idempotency.purge(T0 + timedelta(days=1)) == 1
        uow.commit()
    with uow:
        assert uow.idempotency.reserve(record) is None
        assert uow.idempotency.reserve(attrs.evolve(record, key="key-2")) is not None


# -- outbox --------------------------------------------------------------------------------------


def test_outbox_claim_lease_retry_park_complete(new_uow: UowFactory) -> None:
    uow = new_uow()
    with uow:
        uow.outbox.add("email", {"booking_id": 1, "template": "confirmed"}, T0)
        uow.outbox.add("calendar.create", {"booking_id": 1}, T0 - timedelta(minutes=1))
        uow.outbox.add("email", {"booking_id": 1, "template": "reminder"}, T0 + timedelta(days=1))
        other = new_uow()
        with other:
            assert other.outbox.claim_due(T0) == []  # not committed yet
        uow.commit()

    worker = new_uow()
    with worker:
        claimed = worker.outbox.claim_due(T0, limit=10, lease_seconds=60)
        worker.commit()
    assert [j.kind for j in claimed] == ["calendar.create", "email"]
    assert claimed[1].payload == {"booking_id": 1, "template": "confirmed"}
    assert all(j.status is JobStatus.PENDING and j.attempts == 0 for j in claimed)
    create, email = claimed

    with worker:  # leased: nobody gets them until the lease ends
        assert worker.outbox.claim_due(T0 + timedelta(seconds=59)) == []
        again = worker.outbox.claim_due(T0 + timedelta(seconds=61), limit=1)
        assert [j.id for j in again] == [email.id]  # both leased to T0+60s; then by id
        again = worker.outbox.claim_due(T0 + timedelta(seconds=61), limit=5)
        assert [j.id for j in again] == [create.id]
        worker.outbox.retry(create.id or 0, error="Cal.com 503", run_at=T0 + timedelta(hours=1))
        worker.outbox.complete(email.id or 0)
        worker.commit()

    with worker:
        jobs = {j.id: j for j in worker.outbox.list()}
        assert jobs[create.id].attempts == 1
        assert jobs[create.id].last_error == "Cal.com 503"
        assert jobs[create.id].run_at == T0 + timedelta(hours=1)
        assert jobs[email.id].status is JobStatus.DONE
        assert worker.outbox.claim_due(T0 + timedelta(minutes=30)) == []
        (retried,) = worker.outbox.claim_due(T0 + timedelta(hours=1))
        worker.outbox.park(retried.id or 0, error="gave up")
        worker.commit()

    with worker:
        (parked,) = worker.outbox.list(JobStatus.PARKED)
        assert (parked.id, parked.attempts, parked.last_error) == (create.id, 2, "gave up")
        assert [j.kind for j in worker.outbox.list(JobStatus.PENDING)] == ["email"]
        due = worker.outbox.claim_due(T0 + timedelta(days=2))
        assert [j.payload["template"] for j in due] == ["reminder"]
        with pytest.raises(KeyError):
            worker.outbox.complete(987_654)


def test_claimed_jobs_are_skipped_by_a_concurrent_worker(new_uow: UowFactory) -> None:
    uow = new_uow()
    with uow:
        for n in range(3):
            uow.outbox.add("email", {"n": n}, T0)
        uow.commit()
    first, second = new_uow(), new_uow()
    with first:
        mine = first.outbox.claim_due(T0, limit=2)
        with second:  # SKIP LOCKED: no waiting, no double claim
            theirs = second.outbox.claim_due(T0, limit=10)
            second.commit()
        first.commit()
    assert len(mine) == 2
    assert len(theirs) == 1
    assert {j.id for j in mine}.isdisjoint({j.id for j in theirs})


def test_a_lease_is_renewed_only_by_its_holder(new_uow: UowFactory) -> None:
    uow = new_uow()
    with uow:
        uow.outbox.add("email", {"n": 1}, T0)
        uow.commit()
    lease = T0 + timedelta(seconds=30)
    with uow:
        (job,) = uow.outbox.claim_due(T0, limit=1, lease_seconds=30)
        uow.commit()
    job_id = job.id or 0
    with uow:
        assert uow.outbox.renew(job_id, leased_until=lease, until=lease + timedelta(seconds=30))
        uow.commit()
    with uow:
        assert uow.outbox.claim_due(T0 + timedelta(seconds=45)) == []  # renewed: still held
        # Another worker took it after a lapse: the old holder's renewal is refused.
        (taken,) = uow.outbox.claim_due(T0 + timedelta(seconds=61), limit=1, lease_seconds=30)
        uow.commit()
    with uow:
        assert not uow.outbox.renew(job_id, leased_until=lease + timedelta(seconds=30), until=T0)
        uow.outbox.complete(job_id)
        uow.commit()
    with uow:
        later = T0 + timedelta(seconds=91)
        assert not uow.outbox.renew(job_id, leased_until=later, until=later)
        assert not uow.outbox.renew(987_654, leased_until=later, until=later)
    assert taken.id == job_id


def _paid(new_uow: UowFactory) -> Booking:
    (p,) = _setup(new_uow)
    (booking,) = _add(new_uow, _booking(p, status=BookingStatus.CONFIRMED))
    uow = new_uow()
    with uow:
        payment = Payment(payment_intent_id="pi_1", booking_id=booking.id or 0, captured=PRICE)
        assert uow.ledger.capture(payment, T0)
        assert not uow.ledger.capture(payment, T0)  # once per intent, even in one unit
        uow.commit()
    return booking


def test_a_payment_is_captured_once_per_intent(new_uow: UowFactory) -> None:
    booking = _paid(new_uow)
    first, second = new_uow(), new_uow()
    with first:
        again = Payment(payment_intent_id="pi_1", booking_id=booking.id or 0, captured=PRICE)
        assert not first.ledger.capture(again, T0)
        other = Payment(payment_intent_id="pi_2", booking_id=booking.id or 0, captured=PRICE)
        assert first.ledger.capture(other, T0)
        with second:
            assert [p.payment_intent_id for p in second.ledger.for_booking(booking.id or 0)] == [
                "pi_1"
            ]
        first.commit()
    with second:
        assert {p.payment_intent_id for p in second.ledger.for_booking(booking.id or 0)} == {
            "pi_1",
            "pi_2",
        }
        assert second.ledger.get("pi_nope") is None


def test_refunds_never_exceed_the_capture(new_uow: UowFactory) -> None:
    _paid(new_uow)
    uow = new_uow()
    with uow:
        assert uow.ledger.add_refund("pi_1", Money(5000, "usd"), T0).refunded == 5000
        with pytest.raises(RefundExceedsCapture):
            uow.ledger.add_refund("pi_1", Money(3001, "usd"), T0)
        with pytest.raises(RefundExceedsCapture):
            uow.ledger.add_refund("pi_1", Money(100, "eur"), T0)
        with pytest.raises(RefundExceedsCapture):
            uow.ledger.add_refund("pi_unknown", Money(100, "usd"), T0)
        # The unit of work is still usable after the refusals.
        assert uow.ledger.add_refund("pi_1", Money(3000, "usd"), T0).refunded == 8000
        uow.commit()
    with uow:
        payment = uow.ledger.get("pi_1")
        assert payment is not None
        assert (payment.captured, payment.refunded, payment.refundable) == (PRICE, 8000, 0)


def test_concurrent_refunds_never_exceed_the_capture(new_uow: UowFactory) -> None:
    _paid(new_uow)
    first, second = new_uow(), new_uow()
    results: list[object] = []
    go = threading.Event()

    def refund_too() -> None:
        try:
            with second:
                # PostgreSQL: this UPDATE waits for the first transaction's row lock.
                second.ledger.add_refund("pi_1", Money(6000, "usd"), T0)
                go.wait(10)
                second.commit()  # memory: the check against what is committed now
            results.append("committed")
        except RefundExceedsCapture as exc:
            results.append(exc)

    thread = threading.Thread(target=refund_too)
    with first:
        first.ledger.add_refund("pi_1", Money(6000, "usd"), T0)
        thread.start()
        thread.join(0.5)
        first.commit()
    go.set()
    thread.join(10)
    assert len(results) == 1
    assert isinstance(results[0], RefundExceedsCapture)
    with first:
        payment = first.ledger.get("pi_1")
        assert payment is not None
        assert payment.refunded == 6000


def test_the_database_itself_bounds_the_refunds(clean_database: Database) -> None:
    _paid(clean_database.unit_of_work)
    refused = pytest.raises(sa.exc.IntegrityError, match="ck_payments_refund_within_capture")
    with refused, clean_database.engine.begin() as connection:
        connection.execute(sa.text("UPDATE payments SET refunded_amount = captured_amount + 1"))


def test_a_unique_job_is_added_once(new_uow: UowFactory) -> None:
    uow = new_uow()
    with uow:
        assert uow.outbox.add("payment.refund", {"booking_id": 1}, T0, unique_key="refund:1:x")
        assert not uow.outbox.add("payment.refund", {"booking_id": 1}, T0, unique_key="refund:1:x")
        assert uow.outbox.add("payment.refund", {"booking_id": 1}, T0, unique_key="refund:1:y")
        assert uow.outbox.add("email", {"booking_id": 1}, T0)
        assert uow.outbox.add("email", {"booking_id": 1}, T0)
        uow.commit()
    with uow:
        assert not uow.outbox.add("payment.refund", {"booking_id": 1}, T0, unique_key="refund:1:x")
        uow.commit()
    with uow:
        jobs = uow.outbox.list()
    assert [(j.kind, j.unique_key) for j in jobs] == [
        ("payment.refund", "refund:1:x"),
        ("payment.refund", "refund:1:y"),
        ("email", None),
        ("email", None),
    ]


def test_expired_and_unattached_holds_page_by_expiry_and_id(new_uow: UowFactory) -> None:
    (p,) = _setup(new_uow)
    expiry = T0 - timedelta(minutes=5)
    holds = _add(
        new_uow,
        *[
            _booking(
                p,
                T0 + timedelta(hours=2 * n),
                hold_expires_at=expiry + timedelta(minutes=n // 2),
                checkout_session_id=None if n == 3 else f"cs_{n}",
                created_at=T0 - timedelta(minutes=10 - n),
            )
            for n in range(5)
        ],
    )
    uow = new_uow()
    with uow:
        first = uow.bookings.list_expired_holds(T0, 2)
        last = first[-1]
        rest = uow.bookings.list_expired_holds(
            T0, 10, after=(last.hold_expires_at or T0, last.id or 0)
        )
        unattached = uow.bookings.list_unattached_holds(T0, 10)
        too_new = uow.bookings.list_unattached_holds(T0 - timedelta(minutes=8), 10)
    assert [b.id for b in first + rest] == [b.id for b in holds]
    assert [b.id for b in unattached] == [holds[3].id]
    assert too_new == []


def test_cursors_are_stored_with_the_unit_of_work(new_uow: UowFactory) -> None:
    uow = new_uow()
    with uow:
        assert uow.cursors.get("payments.events") is None
        uow.cursors.set("payments.events", "2030-01-07T09:00:00+00:00")
        assert uow.cursors.get("payments.events") == "2030-01-07T09:00:00+00:00"
    with uow:
        assert uow.cursors.get("payments.events") is None  # rolled back
        uow.cursors.set("payments.events", "a")
        uow.commit()
    with uow:
        uow.cursors.set("payments.events", "b")
        uow.commit()
    with uow:
        assert uow.cursors.get("payments.events") == "b"


def test_an_unfinished_key_is_taken_over_once_its_lease_ran_out(new_uow: UowFactory) -> None:
    lease = T0 + timedelta(seconds=30)
    record = IdempotencyRecord(
        key="k-lease", fingerprint="f", created_at=T0, lease_expires_at=lease
    )
    uow = new_uow()
    with uow:
        assert uow.idempotency.reserve(record) is None
        uow.idempotency.attach("k-lease", 41)
        uow.commit()
    with uow:
        existing = uow.idempotency.reserve(record)
        assert existing is not None
        assert (existing.lease_expires_at, existing.booking_id) == (lease, 41)
        assert not uow.idempotency.take_over("k-lease", lease - timedelta(seconds=1), lease)
        assert uow.idempotency.take_over("k-lease", lease, lease + timedelta(seconds=30))
        uow.commit()
    first, second = new_uow(), new_uow()
    later = lease + timedelta(minutes=5)
    with first:
        assert first.idempotency.take_over("k-lease", later, later + timedelta(seconds=30))
        first.commit()
    with second:  # the first retry holds it now
        assert not second.idempotency.take_over("k-lease", later, later + timedelta(seconds=30))
    with uow:
        uow.idempotency.complete("k-lease", 201, {"ok": True}, None)
        uow.commit()
    with uow:  # a finished key is never taken over
        assert not uow.idempotency.take_over("k-lease", later + timedelta(days=1), later)
        stored = uow.idempotency.reserve(record)
        assert stored is not None
        assert (stored.status_code, stored.booking_id) == (201, None)


def test_counts_by_status_and_the_oldest_due_job(new_uow: UowFactory) -> None:
    (p,) = _setup(new_uow)
    _add(
        new_uow,
        _booking(p),
        _booking(p, T0 + timedelta(hours=2)),
        _booking(p, T0 + timedelta(hours=4), status=BookingStatus.EXPIRED),
    )
    uow = new_uow()
    with uow:
        assert uow.outbox.oldest_due(T0) is None
        uow.outbox.add("email", {"n": 1}, T0 - timedelta(minutes=3))
        uow.outbox.add("email", {"n": 2}, T0 - timedelta(minutes=1))
        uow.outbox.add("email", {"n": 3}, T0 + timedelta(hours=1))  # not due yet
        uow.commit()
    with uow:
        assert uow.bookings.count_by_status() == {
            BookingStatus.PENDING: 2,
            BookingStatus.EXPIRED: 1,
        }
        assert uow.outbox.count_by_status() == {JobStatus.PENDING: 3}
        assert uow.outbox.oldest_due(T0) == T0 - timedelta(minutes=3)
        (claimed,) = uow.outbox.claim_due(T0, limit=1, lease_seconds=60)
        uow.commit()
    with uow:  # a claimed (running) job is not due; the next one is
        assert uow.outbox.oldest_due(T0) == T0 - timedelta(minutes=1)
        uow.outbox.park(claimed.id or 0, error="gave up")
        uow.commit()
    with uow:
        assert uow.outbox.count_by_status() == {JobStatus.PENDING: 2, JobStatus.PARKED: 1}
