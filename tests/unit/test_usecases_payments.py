"""handle_payment_event: confirmation, replays, expiry, late and wrong payments, refund events."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from booking_core.jobs import JobStatus
from booking_core.model import Booking, BookingStatus, Money, RefundStatus
from booking_core.ports import PaymentEventType
from booking_core.usecases import JOB_CALENDAR_CREATE, JOB_EMAIL, JOB_REFUND, PaymentOutcome

from .support import MONDAY, App, at

E = PaymentEventType
O = PaymentOutcome  # noqa: E741
TEN = at(MONDAY, "10:00")


def body_for(app: App, booking: Booking, event_type: str, **changes: Any) -> bytes:
    """A Stripe-shaped event for the booking's session, with fields of data.object changed."""
    body = json.loads(app.event(booking, event_type))
    body["data"]["object"].update(changes)
    return json.dumps(body).encode()


def refund_event(app: App, event_type: str, intent: str, status: str, event_id: str) -> str:
    body = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": 1893916800,
        "data": {
            "object": {
                "id": "re_123",
                "object": "refund",
                "payment_intent": intent,
                "status": status,
            }
        },
    }
    return app.deliver(json.dumps(body).encode())


def kinds(app: App) -> list[tuple[str, str]]:
    """(kind, template) of the jobs, client mails only (each has a practitioner twin)."""
    return [
        (j.kind, str(j.payload.get("template", "")))
        for j in app.jobs()
        if j.payload.get("to", "client") == "client"
    ]


def test_paid_checkout_confirms_the_booking(app: App) -> None:
    booking = app.request(TEN).booking
    assert app.pay(booking) == O.CONFIRMED
    stored = app.booking(booking.id)
    assert stored.status is BookingStatus.CONFIRMED
    assert stored.hold_expires_at is None
    assert stored.payment_intent_id is not None
    assert stored.payment_intent_id.startswith("pi_")
    # Calendar sync and the confirmation mail; no reminder: it is less than a day away.
    assert kinds(app) == [(JOB_CALENDAR_CREATE, ""), (JOB_EMAIL, "confirmed")]
    assert TEN not in app.starts(MONDAY)


def test_confirmation_schedules_a_reminder_a_day_ahead(app: App) -> None:
    thursday = at(MONDAY + timedelta(days=3), "10:00")
    app.confirmed(thursday)
    reminders = [j for j in app.jobs() if j.payload.get("template") == "reminder"]
    assert [j.run_at for j in reminders] == [thursday - timedelta(hours=24)] * 2
    assert sorted(j.payload["to"] for j in reminders) == ["client", "practitioner"]


def test_a_replayed_event_changes_nothing(app: App) -> None:
    booking = app.request(TEN).booking
    assert app.pay(booking, event_id="evt_once") == O.CONFIRMED
    before = app.booking(booking.id)
    jobs_before = app.jobs()
    replay = app.event(booking, E.CHECKOUT_COMPLETED, event_id="evt_once")
    assert app.deliver(replay) == O.DUPLICATE
    after = app.booking(booking.id)
    assert (after.status, after.version, after.updated_at) == (
        before.status,
        before.version,
        before.updated_at,
    )
    assert app.jobs() == jobs_before


def test_a_second_success_event_for_a_paid_booking_is_harmless(app: App) -> None:
    booking = app.request(TEN).booking
    app.pay(booking)
    jobs_before = len(app.jobs())
    assert app.deliver(app.event(booking, E.ASYNC_PAYMENT_SUCCEEDED)) == O.ALREADY_CONFIRMED
    assert app.status(booking) is BookingStatus.CONFIRMED
    assert len(app.jobs()) == jobs_before


def test_an_expired_checkout_releases_the_hold(app: App) -> None:
    booking = app.request(TEN).booking
    assert TEN not in app.starts(MONDAY)
    assert app.deliver(app.event(booking, E.CHECKOUT_EXPIRED)) == O.EXPIRED
    assert app.status(booking) is BookingStatus.EXPIRED
    assert TEN in app.starts(MONDAY)


def test_failed_async_payment_releases_the_hold(app: App) -> None:
    booking = app.request(TEN).booking
    assert app.deliver(app.event(booking, E.CHECKOUT_COMPLETED)) == O.AWAITING_PAYMENT  # unpaid
    assert app.status(booking) is BookingStatus.PENDING
    assert app.deliver(app.event(booking, E.ASYNC_PAYMENT_FAILED)) == O.EXPIRED
    assert app.status(booking) is BookingStatus.EXPIRED


def test_an_expiry_arriving_after_the_payment_is_ignored(app: App) -> None:
    booking = app.request(TEN).booking
    app.pay(booking)
    assert app.deliver(app.event(booking, E.CHECKOUT_EXPIRED)) == O.IGNORED
    assert app.status(booking) is BookingStatus.CONFIRMED


def test_late_payment_is_confirmed_when_the_slot_is_still_free(app: App) -> None:
    booking = app.request(TEN).booking
    app.deliver(app.event(booking, E.CHECKOUT_EXPIRED))
    assert app.status(booking) is BookingStatus.EXPIRED
    assert app.pay(booking) == O.LATE_CONFIRMED
    stored = app.booking(booking.id)
    assert stored.status is BookingStatus.CONFIRMED
    assert stored.refund is None
    assert (JOB_EMAIL, "confirmed") in kinds(app)


def test_late_payment_is_refunded_in_full_when_the_slot_was_taken(app: App) -> None:
    booking = app.request(TEN).booking
    app.deliver(app.event(booking, E.CHECKOUT_EXPIRED))
    rival = app.request(TEN).booking  # someone else holds the time now
    assert app.pay(booking) == O.LATE_REFUNDED
    stored = app.booking(booking.id)
    assert stored.status is BookingStatus.EXPIRED
    assert stored.refund is not None
    assert (stored.refund.amount, stored.refund.status) == (booking.price, RefundStatus.PENDING)
    assert app.status(rival) is BookingStatus.PENDING
    assert app.run_jobs()["done"] >= 1
    refunded = app.booking(booking.id).refund
    assert refunded is not None
    assert refunded.status is RefundStatus.SUCCEEDED
    assert app.payments.refunded == {stored.payment_intent_id: 9000}


def test_payment_after_a_cancellation_is_refunded(app: App) -> None:
    booking = app.request(TEN).booking
    app.cancel(booking.id, reason="changed my mind")
    assert app.pay(booking) == O.LATE_REFUNDED  # paid before the checkout was expired
    stored = app.booking(booking.id)
    assert stored.status is BookingStatus.CANCELLED
    assert stored.refund is not None
    assert stored.refund.amount == booking.price
    app.run_jobs()
    refunded = app.booking(booking.id).refund
    assert refunded is not None
    assert refunded.status is RefundStatus.SUCCEEDED


def test_a_payment_of_the_wrong_amount_is_refunded_not_confirmed(app: App) -> None:
    booking = app.request(TEN).booking
    assert booking.checkout_session_id is not None
    app.payments.complete(booking.checkout_session_id)
    wrong = body_for(app, booking, E.CHECKOUT_COMPLETED, amount_total=5000)
    assert app.deliver(wrong) == O.AMOUNT_MISMATCH
    stored = app.booking(booking.id)
    assert stored.status is BookingStatus.EXPIRED
    assert TEN in app.starts(MONDAY)
    assert stored.refund is not None
    assert (stored.refund.amount, stored.refund.status) == (
        Money(5000, "gbp"),
        RefundStatus.PENDING,
    )
    assert (JOB_REFUND, "") in kinds(app)
    assert (JOB_EMAIL, "confirmed") not in kinds(app)


def test_a_wrong_payment_does_not_hold_the_slot_for_ever(app: App) -> None:
    """The checkout is complete, so no right payment can follow; the time must come free."""
    booking = app.request(TEN).booking
    assert booking.checkout_session_id is not None
    app.payments.complete(booking.checkout_session_id)
    app.deliver(body_for(app, booking, E.CHECKOUT_COMPLETED, currency="usd"))
    app.clock.advance(timedelta(hours=1))
    app.expire_holds()
    assert app.status(booking) is BookingStatus.EXPIRED
    assert TEN in app.starts(MONDAY)


def test_events_for_unknown_bookings_and_types(app: App) -> None:
    booking = app.request(TEN).booking
    foreign = body_for(
        app, booking, E.CHECKOUT_COMPLETED, id="cs_other", metadata={}, client_reference_id=None
    )
    assert app.deliver(foreign) == O.UNKNOWN_BOOKING
    assert app.deliver(app.event(booking, "customer.created")) == O.IGNORED
    assert app.status(booking) is BookingStatus.PENDING


def test_refund_events_update_the_refund(app: App) -> None:
    booking = app.request(TEN).booking
    app.deliver(app.event(booking, E.CHECKOUT_EXPIRED))
    app.request(TEN)
    app.pay(booking)  # late and refunded
    intent = app.booking(booking.id).payment_intent_id
    assert intent is not None
    assert refund_event(app, E.REFUND_UPDATED, intent, "succeeded", "evt_r1") == O.REFUND_UPDATED
    refund = app.booking(booking.id).refund
    assert refund is not None
    assert (refund.status, refund.provider_id) == (RefundStatus.SUCCEEDED, "re_123")
    assert refund_event(app, E.REFUND_UPDATED, intent, "succeeded", "evt_r2") == O.IGNORED
    assert refund_event(app, E.REFUND_FAILED, intent, "failed", "evt_r3") == O.REFUND_UPDATED
    failed = app.booking(booking.id).refund
    assert failed is not None
    assert failed.status is RefundStatus.FAILED
    assert refund_event(app, E.REFUND_UPDATED, "pi_unknown", "succeeded", "evt_r4") == O.IGNORED


def test_the_worker_does_not_mail_a_confirmation_twice_for_replays(app: App) -> None:
    booking = app.request(TEN).booking
    app.pay(booking, event_id="evt_a")
    app.deliver(app.event(booking, E.CHECKOUT_COMPLETED, event_id="evt_a"))
    app.run_jobs()
    assert app.notifier.told("client") == ["confirmed"]
    assert app.notifier.told("practitioner") == ["confirmed"]
    assert all(j.status is JobStatus.DONE for j in app.jobs() if j.run_at <= app.clock.now())
