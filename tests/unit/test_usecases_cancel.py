"""Cancelling with the policy's refund, rescheduling, and releasing stale holds."""

from __future__ import annotations

from datetime import timedelta

import pytest

from booking_core.errors import (
    BookingNotFound,
    InvalidTransition,
    OutsideAvailability,
    SlotUnavailable,
    ValidationFailed,
)
from booking_core.jobs import JobStatus
from booking_core.model import BookingStatus, RefundStatus
from booking_core.ports import CheckoutState
from booking_core.usecases import JOB_EMAIL, JOB_EXPIRE_CHECKOUT, JOB_REFUND

from .support import MONDAY, App, at

THURSDAY = MONDAY + timedelta(days=3)
START = at(THURSDAY, "10:00")  # 74 hours after "now"


def test_cancel_well_before_the_start_refunds_in_full(app: App) -> None:
    booking = app.confirmed(START)
    result = app.cancel(booking.id, reason="cannot make it")
    assert result.booking.status is BookingStatus.CANCELLED
    assert result.booking.cancel_reason == "cannot make it"
    assert result.refund is not None
    assert (result.refund.amount, result.refund.status) == (booking.price, RefundStatus.SUCCEEDED)
    assert app.payments.refunded == {booking.payment_intent_id: 9000}
    assert START in app.starts(THURSDAY)
    assert (JOB_EMAIL, "cancelled") in [(j.kind, j.payload.get("template")) for j in app.jobs()]


def test_cancel_exactly_at_the_window_still_refunds(app: App) -> None:
    booking = app.confirmed(START)
    app.clock.set(START - timedelta(hours=24))
    result = app.cancel(booking.id)
    assert result.refund is not None
    assert result.refund.amount == booking.price


def test_cancel_inside_the_window_refunds_nothing(app: App) -> None:
    booking = app.confirmed(START)
    app.clock.set(START - timedelta(hours=23, minutes=59))
    result = app.cancel(booking.id)
    assert result.booking.status is BookingStatus.CANCELLED
    assert result.refund is None
    assert app.payments.refunded == {}
    assert JOB_REFUND not in [j.kind for j in app.jobs()]


def test_admin_can_override_the_policy_both_ways(app: App) -> None:
    late = app.confirmed(START)
    early = app.confirmed(START + timedelta(hours=1))
    app.clock.set(START - timedelta(hours=2))
    forced = app.cancel(late.id, by_admin=True, refund_override=True)
    assert forced.refund is not None
    assert forced.refund.amount == late.price
    app.clock.set(START - timedelta(days=2, hours=1))
    withheld = app.cancel(early.id, by_admin=True, refund_override=False)
    assert withheld.refund is None
    assert app.payments.refunded == {late.payment_intent_id: 9000}


def test_only_admins_override_the_policy(app: App) -> None:
    booking = app.confirmed(START)
    with pytest.raises(ValidationFailed):
        app.cancel(booking.id, refund_override=True)
    assert app.status(booking) is BookingStatus.CONFIRMED


def test_refund_failure_leaves_the_booking_cancelled_and_the_worker_retries(app: App) -> None:
    booking = app.confirmed(START)
    app.payments.fail_next()
    result = app.cancel(booking.id)
    assert result.booking.status is BookingStatus.CANCELLED
    assert result.refund is not None
    assert (result.refund.status, result.refund.attempts) == (RefundStatus.PENDING, 1)
    assert app.payments.refunded == {}
    assert START in app.starts(THURSDAY)  # the time is free whatever happens to the money
    app.clock.advance(timedelta(minutes=2))
    counts = app.run_jobs()
    assert counts["done"] >= 1
    refund = app.booking(booking.id).refund
    assert refund is not None
    assert (refund.status, refund.attempts) == (RefundStatus.SUCCEEDED, 2)
    assert refund.provider_id is not None
    assert app.payments.refunded == {booking.payment_intent_id: 9000}
    app.clock.advance(timedelta(hours=1))
    app.run_jobs()
    assert app.payments.refunded == {booking.payment_intent_id: 9000}  # never twice


def test_refund_outage_retries_until_the_provider_answers(app: App) -> None:
    booking = app.confirmed(START)
    app.payments.failing = True
    app.cancel(booking.id)
    app.clock.advance(timedelta(minutes=2))
    assert app.run_jobs()["retried"] >= 1
    refund_job = next(j for j in app.jobs() if j.kind == JOB_REFUND)
    assert (refund_job.status, refund_job.attempts) == (JobStatus.PENDING, 1)
    assert "PaymentUnavailable" in refund_job.last_error
    app.payments.failing = False
    app.clock.advance(timedelta(hours=2))
    app.run_jobs()
    refund = app.booking(booking.id).refund
    assert refund is not None
    assert refund.status is RefundStatus.SUCCEEDED


def test_cancel_a_pending_booking_expires_its_checkout(app: App) -> None:
    booking = app.request(START).booking
    result = app.cancel(booking.id)
    assert result.booking.status is BookingStatus.CANCELLED
    assert result.refund is None
    assert [j.kind for j in app.jobs()] == [JOB_EXPIRE_CHECKOUT]
    app.run_jobs()
    assert booking.checkout_session_id is not None
    assert app.payments.sessions[booking.checkout_session_id].state is CheckoutState.EXPIRED
    assert START in app.starts(THURSDAY)


def test_cancel_twice_or_unknown(app: App) -> None:
    booking = app.confirmed(START)
    app.cancel(booking.id)
    with pytest.raises(InvalidTransition):
        app.cancel(booking.id)
    with pytest.raises(BookingNotFound):
        app.cancel(999)
    assert app.payments.refunded == {booking.payment_intent_id: 9000}


# -- rescheduling --------------------------------------------------------------------------------


def test_reschedule_moves_the_booking_to_another_offered_start(app: App) -> None:
    booking = app.confirmed(START)
    new_start = at(THURSDAY, "14:00")
    moved = app.reschedule(booking.id, new_start)
    assert (moved.start, moved.end) == (new_start, new_start + timedelta(minutes=50))
    stored = app.booking(booking.id)
    assert (stored.start, stored.status) == (new_start, BookingStatus.CONFIRMED)
    slots = app.starts(THURSDAY)
    assert START in slots
    assert new_start not in slots
    assert (JOB_EMAIL, "rescheduled") in [(j.kind, j.payload.get("template")) for j in app.jobs()]


def test_reschedule_refuses_taken_and_unoffered_times(app: App) -> None:
    booking = app.confirmed(START)
    app.request(at(THURSDAY, "11:00"))
    with pytest.raises(SlotUnavailable):
        app.reschedule(booking.id, at(THURSDAY, "11:00"))
    with pytest.raises(OutsideAvailability):
        app.reschedule(booking.id, at(THURSDAY, "12:00"))
    assert app.booking(booking.id).start == START


def test_reschedule_to_a_neighbouring_slot_ignores_its_own_old_span(app: App) -> None:
    booking = app.confirmed(START)
    moved = app.reschedule(booking.id, at(THURSDAY, "11:00"))
    assert moved.start == at(THURSDAY, "11:00")


def test_only_open_future_bookings_can_be_rescheduled(app: App) -> None:
    cancelled = app.confirmed(START)
    app.cancel(cancelled.id)
    with pytest.raises(InvalidTransition):
        app.reschedule(cancelled.id, at(THURSDAY, "14:00"))
    started = app.confirmed(at(THURSDAY, "15:00"))
    app.clock.set(at(THURSDAY, "15:10"))
    with pytest.raises(InvalidTransition):
        app.reschedule(started.id, at(THURSDAY + timedelta(days=1), "15:00"))
    assert app.booking(started.id).start == at(THURSDAY, "15:00")


# -- stale holds ----------------------------------------------------------------------------------


def test_expire_stale_holds_releases_them_and_expires_the_checkout(app: App) -> None:
    booking = app.request(START).booking
    app.clock.advance(timedelta(minutes=30))
    assert app.expire_holds() == 0  # not yet: 31 minutes
    app.clock.advance(timedelta(minutes=2))
    assert app.expire_holds() == 1
    assert app.status(booking) is BookingStatus.EXPIRED
    assert booking.checkout_session_id is not None
    assert app.payments.sessions[booking.checkout_session_id].state is CheckoutState.EXPIRED
    assert START in app.starts(THURSDAY)
    assert app.expire_holds() == 0


def test_a_hold_whose_checkout_was_paid_meanwhile_is_confirmed_without_the_webhook(
    app: App,
) -> None:
    booking = app.request(START).booking
    assert booking.checkout_session_id is not None
    app.payments.complete(booking.checkout_session_id)  # paid; the webhook is late
    app.clock.advance(timedelta(hours=1))
    assert app.expire_holds() == 0
    assert app.status(booking) is BookingStatus.CONFIRMED
    late = app.deliver(app.event(booking, "checkout.session.completed"))
    assert late == "already_confirmed"
    assert app.status(booking) is BookingStatus.CONFIRMED


def test_a_hold_is_kept_while_the_provider_cannot_expire_its_checkout(app: App) -> None:
    booking = app.request(START).booking
    app.clock.advance(timedelta(hours=1))
    app.payments.fail_next()
    assert app.expire_holds() == 0
    assert app.status(booking) is BookingStatus.PENDING
    assert app.expire_holds() == 1
    assert app.status(booking) is BookingStatus.EXPIRED
