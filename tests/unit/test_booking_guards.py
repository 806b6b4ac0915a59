"""A Booking that guards its own state changes (issue 11, item 2)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import booking_core
from booking_core.errors import InvalidTransition
from booking_core.model import Booking, BookingStatus, Client, Money, RefundStatus, Service

T0 = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)
SERVICE = Service(
    id=3, name="Session", duration_minutes=50, price=Money(9000, "gbp"), buffer_after_minutes=10
)


def _hold() -> Booking:
    return Booking.hold(
        practitioner_id=1,
        service=SERVICE,
        client=Client(name="Ada", email="ada@example.com"),
        start=T0 + timedelta(days=2),
        at=T0,
        hold_until=T0 + timedelta(minutes=31),
        manage_token_hash="h",
    )


def test_a_hold_copies_the_service_and_starts_pending() -> None:
    hold = _hold()
    assert (hold.status, hold.service_id, hold.price) == (BookingStatus.PENDING, 3, SERVICE.price)
    assert hold.end - hold.start == timedelta(minutes=50)
    assert hold.occupied.end == hold.end + timedelta(minutes=10)
    assert hold.created_at == hold.updated_at == T0


def test_each_change_checks_the_transition_and_records_the_time() -> None:
    booking = _hold()
    booking.attach_checkout("cs_1", at=T0 + timedelta(seconds=1))
    assert booking.updated_at == T0 + timedelta(seconds=1)
    booking.attach_checkout("cs_1", at=T0 + timedelta(seconds=9))  # the same again: no change
    assert booking.updated_at == T0 + timedelta(seconds=1)
    with pytest.raises(InvalidTransition):
        booking.attach_checkout("cs_2", at=T0)
    booking.confirm(at=T0 + timedelta(minutes=1))
    assert (booking.status, booking.hold_expires_at) == (BookingStatus.CONFIRMED, None)
    with pytest.raises(InvalidTransition):
        booking.expire("too late", at=T0)
    booking.reschedule(booking.start + timedelta(hours=1), at=T0 + timedelta(minutes=2))
    assert booking.end - booking.start == timedelta(minutes=50)
    booking.cancel("ill", at=T0 + timedelta(minutes=3))
    assert (booking.status, booking.cancel_reason) == (BookingStatus.CANCELLED, "ill")
    with pytest.raises(InvalidTransition):
        booking.reschedule(booking.start, at=T0)
    with pytest.raises(InvalidTransition):
        booking.complete(at=T0)


def test_one_refund_decision_that_never_goes_back_to_pending() -> None:
    booking = _hold()
    booking.confirm(at=T0)
    booking.cancel("", at=T0)
    with pytest.raises(InvalidTransition):
        booking.update_refund(at=T0, status=RefundStatus.SUCCEEDED)
    booking.decide_refund(Money(9000, "gbp"), "cancelled", at=T0 + timedelta(seconds=1))
    with pytest.raises(InvalidTransition):
        booking.decide_refund(Money(1, "gbp"), "again", at=T0)
    booking.update_refund(at=T0, status=RefundStatus.SUCCEEDED, provider_id="re_1", attempt=True)
    booking.update_refund(at=T0, status=RefundStatus.PENDING)
    assert booking.refund is not None
    assert (booking.refund.status, booking.refund.provider_id, booking.refund.attempts) == (
        RefundStatus.SUCCEEDED,
        "re_1",
        1,
    )


def test_a_started_booking_cannot_move() -> None:
    booking = _hold()
    with pytest.raises(InvalidTransition):
        booking.reschedule(booking.start + timedelta(hours=1), at=booking.start)


def test_the_use_cases_assign_no_attribute_of_a_booking() -> None:
    """State changes go through Booking's methods: no use case writes an attribute itself."""
    package = Path(booking_core.__file__).parent
    offenders = []
    for path in [*sorted((package / "usecases").glob("*.py")), package / "jobs.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            else:
                continue
            offenders += [
                f"{path.name}:{node.lineno} {ast.unparse(target)}"
                for target in targets
                if isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id not in ("self", "_throttle")  # the warning throttle's own
            ]
        text = path.read_text()
        offenders += [f"{path.name}: touch()" for _ in range(text.count(".touch("))]
    assert offenders == []
