"""The memory adapters keep the semantics of the database: copies, transactions, no overlap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.memory import InMemoryStore
from booking_core.errors import ConcurrentUpdate, PractitionerNotFound, SlotUnavailable
from booking_core.jobs import JobStatus
from booking_core.model import Booking, BookingStatus, Interval, Money, Practitioner
from booking_core.ports import BookingFilter

from .support import CLIENT, therapist

T0 = datetime(2030, 1, 8, 9, 0, tzinfo=UTC)


def booking(
    start: datetime = T0,
    minutes: int = 50,
    *,
    practitioner_id: int = 1,
    status: BookingStatus = BookingStatus.PENDING,
    before: int = 0,
    after: int = 0,
) -> Booking:
    return Booking(
        practitioner_id=practitioner_id,
        service_id=1,
        client=CLIENT,
        price=Money(9000, "gbp"),
        start=start,
        end=start + timedelta(minutes=minutes),
        status=status,
        buffer_before_minutes=before,
        buffer_after_minutes=after,
        created_at=T0 - timedelta(days=1),
        updated_at=T0 - timedelta(days=1),
    )


def add(store: InMemoryStore, b: Booking) -> Booking:
    with store.unit_of_work() as uow:
        stored = uow.bookings.add(b)
        uow.commit()
    return stored


def get(store: InMemoryStore, booking_id: int | None) -> Booking | None:
    assert booking_id is not None
    with store.unit_of_work() as uow:
        return uow.bookings.get(booking_id)


# -- copies and transactions -------------------------------------------------------------------


def test_get_returns_a_copy(store: InMemoryStore) -> None:
    stored = add(store, booking())
    with store.unit_of_work() as uow:
        loaded = uow.bookings.get(stored.id or 0)
        assert loaded is not None
        loaded.notes = "changed without save"
        uow.commit()
    found = get(store, stored.id)
    assert found is not None
    assert found.notes == ""


def test_save_stores_a_copy(store: InMemoryStore) -> None:
    stored = add(store, booking())
    with store.unit_of_work() as uow:
        loaded = uow.bookings.get(stored.id or 0)
        assert loaded is not None
        loaded.notes = "saved"
        uow.bookings.save(loaded)
        loaded.notes = "changed after save"
        uow.commit()
    found = get(store, stored.id)
    assert found is not None
    assert found.notes == "saved"
    assert found.version == 2


def test_add_returns_a_copy_with_an_id(store: InMemoryStore) -> None:
    original = booking()
    with store.unit_of_work() as uow:
        stored = uow.bookings.add(original)
        stored.notes = "not saved"
        uow.commit()
    assert original.id is None
    assert stored.id is not None
    found = get(store, stored.id)
    assert found is not None
    assert found.notes == ""


def test_writes_are_visible_only_after_commit(store: InMemoryStore) -> None:
    writer, reader = store.unit_of_work(), store.unit_of_work()
    with writer:
        stored = writer.bookings.add(booking())
        assert writer.bookings.get(stored.id or 0) is not None  # our own write
        with reader:
            assert reader.bookings.get(stored.id or 0) is None
        writer.commit()
    with reader:
        assert reader.bookings.get(stored.id or 0) is not None


def test_leaving_without_commit_rolls_back(store: InMemoryStore) -> None:
    with store.unit_of_work() as uow:
        stored = uow.bookings.add(booking())
        uow.outbox.add("email", {"booking_id": 1}, T0)
    assert get(store, stored.id) is None
    with store.unit_of_work() as uow:
        assert uow.outbox.list() == []


def test_an_exception_rolls_back_and_frees_the_slot(store: InMemoryStore) -> None:
    def hold_then_fail() -> None:
        with store.unit_of_work() as uow:
            uow.bookings.add(booking())
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        hold_then_fail()
    # Nothing stored, and the uncommitted hold no longer blocks anybody.
    stored = add(store, booking())
    assert get(store, stored.id) is not None


def test_a_unit_of_work_is_reusable_and_refuses_use_outside_with(store: InMemoryStore) -> None:
    uow = store.unit_of_work()
    with pytest.raises(RuntimeError, match="with"):
        uow.bookings.get(1)
    with uow:
        uow.bookings.add(booking())
        uow.commit()
    with uow:
        assert len(uow.bookings.list(BookingFilter())) == 1


def test_practitioners_are_deep_copies_with_service_ids(store: InMemoryStore) -> None:
    with store.unit_of_work() as uow:
        added = uow.practitioners.add(therapist())
        uow.commit()
    assert added.id is not None
    assert added.services[0].id is not None
    added.services[0].name = "changed without save"
    with store.unit_of_work() as uow:
        loaded = uow.practitioners.get(added.id)
        assert loaded is not None
        assert loaded.services[0].name == "Consultation"
        loaded.active = False
        uow.practitioners.save(loaded)
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.practitioners.list() == []
        assert len(uow.practitioners.list(active_only=False)) == 1
        with pytest.raises(PractitionerNotFound):
            uow.practitioners.save(Practitioner(id=999, name="Nobody"))


# -- the no-overlap rule ------------------------------------------------------------------------


def test_overlapping_occupying_bookings_are_refused(store: InMemoryStore) -> None:
    add(store, booking(T0, 50))
    with store.unit_of_work() as uow, pytest.raises(SlotUnavailable):
        uow.bookings.add(booking(T0 + timedelta(minutes=49), 50))


def test_touching_bookings_do_not_overlap(store: InMemoryStore) -> None:
    add(store, booking(T0, 50))
    later = add(store, booking(T0 + timedelta(minutes=50), 50))
    earlier = add(store, booking(T0 - timedelta(minutes=30), 30))
    assert get(store, later.id) is not None
    assert get(store, earlier.id) is not None


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"after": 10}, {"start_offset": 55}),  # first's buffer after reaches 09:60
        ({}, {"start_offset": 55, "before": 10}),  # second's buffer before reaches back to 09:45
    ],
)
def test_buffers_count_in_the_overlap(
    store: InMemoryStore, first: dict[str, int], second: dict[str, int]
) -> None:
    add(store, booking(T0, 50, **first))
    start = T0 + timedelta(minutes=second.pop("start_offset"))
    with store.unit_of_work() as uow, pytest.raises(SlotUnavailable):
        uow.bookings.add(booking(start, 50, **second))


def test_only_pending_and_confirmed_bookings_occupy(store: InMemoryStore) -> None:
    add(store, booking(status=BookingStatus.EXPIRED))
    add(store, booking(status=BookingStatus.CANCELLED))
    add(store, booking(status=BookingStatus.COMPLETED))
    first = add(store, booking(status=BookingStatus.CONFIRMED))
    with store.unit_of_work() as uow, pytest.raises(SlotUnavailable):
        uow.bookings.add(booking(status=BookingStatus.PENDING))
    with store.unit_of_work() as uow:
        occupying = uow.bookings.list_occupying(1, Interval(T0, T0 + timedelta(hours=1)))
    assert [b.id for b in occupying] == [first.id]


def test_other_practitioners_do_not_clash(store: InMemoryStore) -> None:
    add(store, booking(practitioner_id=1))
    other = add(store, booking(practitioner_id=2))
    assert get(store, other.id) is not None


def test_overlap_with_another_units_uncommitted_insert(store: InMemoryStore) -> None:
    first, second = store.unit_of_work(), store.unit_of_work()
    with first:
        first.bookings.add(booking(T0))
        with second, pytest.raises(SlotUnavailable):
            second.bookings.add(booking(T0 + timedelta(minutes=10)))
        # first gives up: its hold disappears with it
    with second:
        stored = second.bookings.add(booking(T0 + timedelta(minutes=10)))
        second.commit()
    assert get(store, stored.id) is not None


def test_a_save_that_moves_onto_another_booking_is_refused(store: InMemoryStore) -> None:
    add(store, booking(T0))
    moving = add(store, booking(T0 + timedelta(hours=2)))
    with store.unit_of_work() as uow:
        loaded = uow.bookings.get(moving.id or 0)
        assert loaded is not None
        loaded.start, loaded.end = T0 + timedelta(minutes=30), T0 + timedelta(minutes=80)
        with pytest.raises(SlotUnavailable):
            uow.bookings.save(loaded)
        # the unit stays usable after the refusal, as a savepoint keeps PostgreSQL's
        loaded.start, loaded.end = T0 + timedelta(hours=3), T0 + timedelta(hours=3, minutes=50)
        uow.bookings.save(loaded)
        uow.commit()
    found = get(store, moving.id)
    assert found is not None
    assert found.start == T0 + timedelta(hours=3)


def test_reviving_an_expired_booking_onto_a_taken_slot_is_refused(store: InMemoryStore) -> None:
    expired = add(store, booking(T0, status=BookingStatus.EXPIRED))
    add(store, booking(T0 + timedelta(minutes=20)))
    with store.unit_of_work() as uow:
        loaded = uow.bookings.get(expired.id or 0)
        assert loaded is not None
        loaded.confirm_late_payment(at=T0)
        with pytest.raises(SlotUnavailable):
            uow.bookings.save(loaded)


def test_two_units_racing_for_one_slot_cannot_both_commit(store: InMemoryStore) -> None:
    """A late payment revives one booking while a reschedule moves another onto the same time:
    moves are checked at save and again at commit, so exactly one of them gets through."""
    a = add(store, booking(T0, status=BookingStatus.EXPIRED))
    b = add(store, booking(T0 + timedelta(hours=4), status=BookingStatus.CONFIRMED))
    first, second = store.unit_of_work(), store.unit_of_work()
    committed = 0
    with first, second:
        revived, moved = first.bookings.get(a.id or 0), second.bookings.get(b.id or 0)
        assert revived is not None
        assert moved is not None
        revived.confirm_late_payment(at=T0)
        moved.start, moved.end = T0 + timedelta(minutes=10), T0 + timedelta(minutes=60)
        for uow, changed in ((first, revived), (second, moved)):
            try:
                uow.bookings.save(changed)
            except SlotUnavailable:
                continue
        for uow in (second, first):
            try:
                uow.commit()
                committed += 1
            except SlotUnavailable:
                pass
    assert committed == 1
    with store.unit_of_work() as uow:
        day = Interval(T0 - timedelta(days=1), T0 + timedelta(days=1))
        spans = [x.occupied for x in uow.bookings.list_occupying(1, day)]
    assert spans  # the winner occupies the time ...
    assert not any(x.overlaps(y) for i, x in enumerate(spans) for y in spans[i + 1 :])  # alone


# -- versions -----------------------------------------------------------------------------------


def test_stale_save_raises_concurrent_update(store: InMemoryStore) -> None:
    stored = add(store, booking())
    first, second = store.unit_of_work(), store.unit_of_work()
    with first:
        mine = first.bookings.get(stored.id or 0)
        with second:
            theirs = second.bookings.get(stored.id or 0)
            assert theirs is not None
            theirs.notes = "theirs"
            second.bookings.save(theirs)
            second.commit()
        assert mine is not None
        mine.notes = "mine"
        with pytest.raises(ConcurrentUpdate):
            first.bookings.save(mine)
    found = get(store, stored.id)
    assert found is not None
    assert found.notes == "theirs"


def test_concurrent_update_is_also_caught_at_commit(store: InMemoryStore) -> None:
    stored = add(store, booking())
    first, second = store.unit_of_work(), store.unit_of_work()
    with first:
        mine = first.bookings.get(stored.id or 0)
        assert mine is not None
        mine.notes = "mine"
        first.bookings.save(mine)  # staged, not yet committed
        with second:
            theirs = second.bookings.get(stored.id or 0)
            assert theirs is not None
            theirs.notes = "theirs"
            second.bookings.save(theirs)
            second.commit()
        with pytest.raises(ConcurrentUpdate):
            first.commit()
    found = get(store, stored.id)
    assert found is not None
    assert (found.notes, found.version) == ("theirs", 2)


# -- events, outbox, users ----------------------------------------------------------------------


def test_payment_events_are_recorded_once_even_concurrently(store: InMemoryStore) -> None:
    first, second = store.unit_of_work(), store.unit_of_work()
    with first:
        assert first.payment_events.record("evt_1", "checkout.session.completed", T0)
        assert not first.payment_events.record("evt_1", "checkout.session.completed", T0)
        with second:
            assert not second.payment_events.record("evt_1", "checkout.session.completed", T0)
        first.commit()
    with store.unit_of_work() as uow:
        assert not uow.payment_events.record("evt_1", "checkout.session.completed", T0)
        assert uow.payment_events.record("evt_2", "checkout.session.completed", T0)
    with store.unit_of_work() as uow:  # evt_2 was rolled back, so it is new again
        assert uow.payment_events.record("evt_2", "checkout.session.completed", T0)


def test_outbox_claim_takes_a_lease(store: InMemoryStore) -> None:
    with store.unit_of_work() as uow:
        uow.outbox.add("email", {"booking_id": 1}, T0)
        uow.outbox.add("email", {"booking_id": 2}, T0 + timedelta(hours=1))  # not due yet
        uow.commit()
    with store.unit_of_work() as worker_a:
        claimed = worker_a.outbox.claim_due(T0, limit=10, lease_seconds=300)
        worker_a.commit()
    assert [j.payload["booking_id"] for j in claimed] == [1]
    with store.unit_of_work() as worker_b:
        assert worker_b.outbox.claim_due(T0 + timedelta(seconds=299)) == []
    # The worker died: after the lease the job is due again.
    with store.unit_of_work() as worker_b:
        again = worker_b.outbox.claim_due(T0 + timedelta(seconds=300))
        worker_b.outbox.complete(again[0].id or 0)
        worker_b.commit()
    with store.unit_of_work() as uow:
        jobs = uow.outbox.list()
    assert [j.status for j in jobs] == [JobStatus.DONE, JobStatus.PENDING]


def test_outbox_retry_and_park_keep_the_error(store: InMemoryStore) -> None:
    with store.unit_of_work() as uow:
        uow.outbox.add("email", {"booking_id": 1}, T0)
        uow.outbox.add("email", {"booking_id": 2}, T0)
        uow.commit()
    with store.unit_of_work() as uow:
        first, second = uow.outbox.claim_due(T0)
        uow.outbox.retry(first.id or 0, error="smtp down", run_at=T0 + timedelta(minutes=1))
        uow.outbox.park(second.id or 0, error="gave up")
        uow.commit()
    with store.unit_of_work() as uow:
        retried, parked = uow.outbox.list()
    assert (retried.status, retried.attempts, retried.last_error) == (
        JobStatus.PENDING,
        1,
        "smtp down",
    )
    assert retried.run_at == T0 + timedelta(minutes=1)
    assert (parked.status, parked.last_error) == (JobStatus.PARKED, "gave up")


def test_list_filters_and_orders_newest_first(store: InMemoryStore) -> None:
    a = add(store, booking(T0))
    b = add(store, booking(T0 + timedelta(days=1), status=BookingStatus.CONFIRMED))
    c = add(store, booking(T0 + timedelta(days=2), practitioner_id=2))
    with store.unit_of_work() as uow:
        assert [x.id for x in uow.bookings.list(BookingFilter())] == [c.id, b.id, a.id]
        assert [x.id for x in uow.bookings.list(BookingFilter(practitioner_id=1))] == [b.id, a.id]
        confirmed = BookingFilter(status=BookingStatus.CONFIRMED)
        assert [x.id for x in uow.bookings.list(confirmed)] == [b.id]
        assert [x.id for x in uow.bookings.list(BookingFilter(limit=1, offset=1))] == [b.id]
        by_mail = BookingFilter(client_email=CLIENT.email.upper())
        assert len(uow.bookings.list(by_mail)) == 3


def test_claiming_an_uncommitted_job_does_not_publish_it(store: InMemoryStore) -> None:
    with store.unit_of_work() as uow:
        uow.outbox.add("email", {"booking_id": 1}, T0)
        assert len(uow.outbox.claim_due(T0)) == 1
        # rolled back: the job was never committed, so nobody may ever run it
    with store.unit_of_work() as uow:
        assert uow.outbox.list() == []
        assert uow.outbox.claim_due(T0 + timedelta(days=1)) == []


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 2),  # practitioner
            st.integers(0, 40).map(lambda q: T0 + timedelta(minutes=15 * q)),
            st.sampled_from([15, 30, 50, 60]),
            st.sampled_from([0, 10]),
            st.sampled_from([0, 15]),
            st.sampled_from(list(BookingStatus)),
        ),
        max_size=15,
    )
)
def test_no_two_occupying_bookings_ever_overlap(
    rows: list[tuple[int, datetime, int, int, int, BookingStatus]],
) -> None:
    """Whatever is thrown at it, an insert is refused exactly when it would overlap."""
    store = InMemoryStore()
    accepted: list[Booking] = []
    for practitioner_id, start, minutes, before, after, status in rows:
        candidate = booking(
            start,
            minutes,
            practitioner_id=practitioner_id,
            status=status,
            before=before,
            after=after,
        )
        clash = status.occupies_calendar and any(
            b.practitioner_id == practitioner_id
            and b.occupies_calendar
            and b.occupied.overlaps(candidate.occupied)
            for b in accepted
        )
        try:
            accepted.append(add(store, candidate))
        except SlotUnavailable:
            assert clash
        else:
            assert not clash
    with store.unit_of_work() as uow:
        for practitioner_id in (1, 2):
            day = Interval(T0 - timedelta(days=1), T0 + timedelta(days=1))
            spans = [b.occupied for b in uow.bookings.list_occupying(practitioner_id, day)]
            assert not any(x.overlaps(y) for i, x in enumerate(spans) for y in spans[i + 1 :])
