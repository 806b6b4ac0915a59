"""The cancellation policy and manage tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from booking_core.model import Booking, BookingStatus, Money
from booking_core.policy import BookingRules, hash_token, new_manage_token, token_matches

from .support import CLIENT

START = datetime(2030, 1, 10, 10, 0, tzinfo=UTC)
PRICE = Money(9000, "gbp")


def confirmed() -> Booking:
    return Booking(
        id=1,
        practitioner_id=1,
        service_id=1,
        client=CLIENT,
        price=PRICE,
        start=START,
        end=START + timedelta(minutes=50),
        status=BookingStatus.CONFIRMED,
        created_at=START - timedelta(days=5),
        updated_at=START - timedelta(days=5),
    )


@pytest.mark.parametrize(
    ("before_start", "expected"),
    [
        (timedelta(days=3), PRICE),
        (timedelta(hours=24), PRICE),  # exactly at the window: full refund
        (timedelta(hours=24) - timedelta(seconds=1), Money(0, "gbp")),
        (timedelta(hours=1), Money(0, "gbp")),
        (-timedelta(hours=1), Money(0, "gbp")),  # after the start
    ],
)
def test_full_refund_at_least_the_window_before_the_start_none_after(
    before_start: timedelta, expected: Money
) -> None:
    rules = BookingRules(cancellation_window_hours=24)
    assert rules.refund_for_cancellation(confirmed(), START - before_start) == expected


def test_the_window_is_configurable() -> None:
    rules = BookingRules(cancellation_window_hours=48)
    assert rules.refund_for_cancellation(confirmed(), START - timedelta(hours=47)).amount == 0
    assert rules.refund_for_cancellation(confirmed(), START - timedelta(hours=48)) == PRICE


def test_admin_override_forces_a_full_refund_or_none() -> None:
    rules = BookingRules(cancellation_window_hours=24)
    late, early = START - timedelta(hours=1), START - timedelta(days=5)
    assert rules.refund_for_cancellation(confirmed(), late, override=True) == PRICE
    assert rules.refund_for_cancellation(confirmed(), early, override=False) == Money(0, "gbp")


def test_hold_expiry_leaves_a_grace_beyond_the_hold() -> None:
    now = START - timedelta(days=1)
    assert BookingRules(hold_minutes=30).hold_expiry(now) == now + timedelta(minutes=31)


def test_manage_tokens_are_random_and_stored_only_as_a_hash() -> None:
    token, stored = new_manage_token()
    other, _ = new_manage_token()
    assert token != other
    assert len(token) >= 40
    assert token not in stored
    assert stored == hash_token(token)
    assert token_matches(token, stored)
    assert not token_matches(other, stored)
    assert not token_matches(token, "")  # a booking without a token opens to nobody
