"""The booking state machine: every allowed and every forbidden move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from booking_core.errors import Conflict, InvalidTransition
from booking_core.model import Booking, BookingStatus, Money

from .support import CLIENT

S = BookingStatus
T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=5)

# Written out from the design rather than read from the code under test.
ALLOWED = {
    (S.PENDING, S.CONFIRMED),
    (S.CONFIRMED, S.COMPLETED),
    (S.PENDING, S.EXPIRED),
    (S.PENDING, S.CANCELLED),
    (S.CONFIRMED, S.CANCELLED),
    (S.CONFIRMED, S.NO_SHOW),  # section 10: the client did not come
}


def booking(status: BookingStatus) -> Booking:
    return Booking(
        id=7,
        practitioner_id=1,
        service_id=1,
        client=CLIENT,
        price=Money(9000, "gbp"),
        start=T0 + timedelta(days=2),
        end=T0 + timedelta(days=2, minutes=50),
        status=status,
        hold_expires_at=T0 + timedelta(minutes=31) if status is S.PENDING else None,
        created_at=T0,
        updated_at=T0,
    )


@given(st.sampled_from(list(S)), st.sampled_from(list(S)))
def test_every_pair_of_states_is_allowed_exactly_when_the_design_says(
    old: BookingStatus, new: BookingStatus
) -> None:
    b = booking(old)
    if (old, new) in ALLOWED:
        b.transition_to(new, at=LATER)
        assert b.status is new
        assert b.updated_at == LATER
        assert b.hold_expires_at is None  # nothing but pending holds a slot on a timer
    else:
        with pytest.raises(InvalidTransition):
            b.transition_to(new, at=LATER)
        assert b.status is old
        assert b.updated_at == T0


@pytest.mark.parametrize(("old", "new"), sorted(ALLOWED))
def test_each_allowed_transition(old: BookingStatus, new: BookingStatus) -> None:
    b = booking(old)
    b.transition_to(new, at=LATER)
    assert b.status is new


def test_invalid_transition_is_a_conflict_with_a_stable_code() -> None:
    b = booking(S.EXPIRED)
    with pytest.raises(Conflict) as info:
        b.transition_to(S.CONFIRMED, at=LATER)
    assert info.value.code == "invalid_transition"


def test_only_pending_and_confirmed_occupy_the_calendar() -> None:
    assert {s for s in S if s.occupies_calendar} == {S.PENDING, S.CONFIRMED}


@pytest.mark.parametrize("status", list(S))
def test_late_payment_is_the_only_way_out_of_expired(status: BookingStatus) -> None:
    b = booking(status)
    if status is S.EXPIRED:
        b.confirm_late_payment(at=LATER)
        assert b.status is S.CONFIRMED
        assert b.updated_at == LATER
    else:
        with pytest.raises(InvalidTransition):
            b.confirm_late_payment(at=LATER)
        assert b.status is status


@given(st.lists(st.sampled_from(list(S)), max_size=6))
def test_terminal_states_stay_terminal(path: list[BookingStatus]) -> None:
    """Walk any sequence of requested moves; once terminal, nothing changes the status."""
    b = booking(S.PENDING)
    for new in path:
        before = b.status
        try:
            b.transition_to(new, at=LATER)
        except InvalidTransition:
            assert b.status is before
        else:
            assert (before, new) in ALLOWED
    if b.status in (S.COMPLETED, S.EXPIRED, S.CANCELLED, S.NO_SHOW):
        for new in S:
            with pytest.raises(InvalidTransition):
                b.transition_to(new, at=LATER)
