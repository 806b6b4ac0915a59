"""Each payment applied once per payment intent; one refund decision per booking (issue 10)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from adapters.memory import InMemoryStore
from booking_core.errors import RefundExceedsCapture
from booking_core.jobs import JobKind
from booking_core.model import BookingStatus, Money, Payment, RefundStatus
from booking_core.ports import PaymentEventType
from booking_core.usecases import PaymentOutcome

from .support import MONDAY, NOW, App, at

E = PaymentEventType
O = PaymentOutcome  # noqa: E741
TEN = at(MONDAY, "10:00")  # two hours ahead: inside the 24 h cancellation window
THURSDAY = at(MONDAY + timedelta(days=3), "10:00")  # outside it


def refund_jobs(app: App) -> list[object]:
    return [j.payload for j in app.jobs() if j.kind == JobKind.REFUND]


def refund_calls(app: App) -> int:
    return sum(1 for name, _ in app.payments.calls if name == "refund")


@pytest.mark.parametrize("second", [E.ASYNC_PAYMENT_SUCCEEDED, E.CHECKOUT_COMPLETED])
def test_a_new_event_for_a_payment_kept_by_the_policy_refunds_nothing(
    app: App, second: str
) -> None:
    booking = app.confirmed(TEN)
    cancelled = app.cancel(booking.id)
    assert cancelled.refund is None  # inside the window: the practitioner keeps the money
    # The same session's payment, delivered again under a new event id, signed.
    assert app.deliver(app.event(booking, second, event_id="evt_new_id")) == O.ALREADY_APPLIED
    app.run_jobs()
    stored = app.booking(booking.id)
    assert (stored.status, stored.refund) == (BookingStatus.CANCELLED, None)
    assert refund_jobs(app) == []
    assert refund_calls(app) == 0
    assert app.payments.refunded == {}


def test_a_new_event_after_an_admin_cancel_without_refund_refunds_nothing(app: App) -> None:
    booking = app.confirmed(THURSDAY)
    assert app.cancel(booking.id, by_admin=True, refund_override=False).refund is None
    for n in range(3):
        body = app.event(booking, E.ASYNC_PAYMENT_SUCCEEDED, event_id=f"evt_storm_{n}")
        assert app.deliver(body) == O.ALREADY_APPLIED
    app.run_jobs()
    assert app.booking(booking.id).refund is None
    assert refund_calls(app) == 0


def test_an_event_storm_after_a_refund_keeps_one_refund_that_stays_succeeded(app: App) -> None:
    booking = app.confirmed(THURSDAY)
    cancelled = app.cancel(booking.id)  # outside the window: a full refund, asked at once
    assert cancelled.refund is not None
    assert cancelled.refund.status is RefundStatus.SUCCEEDED
    intent = app.booking(booking.id).payment_intent_id
    assert intent is not None
    for n in range(4):
        for kind in (E.CHECKOUT_COMPLETED, E.ASYNC_PAYMENT_SUCCEEDED):
            body = app.event(booking, kind, event_id=f"evt_{kind}_{n}")
            assert app.deliver(body) == O.ALREADY_APPLIED
        refund = {
            "id": f"evt_refund_{n}",
            "object": "event",
            "type": E.REFUND_UPDATED,
            "created": 1893916800,
            "data": {
                "object": {
                    "id": "re_x",
                    "object": "refund",
                    "payment_intent": intent,
                    "status": "pending",
                }
            },
        }
        app.deliver(json.dumps(refund).encode())
        app.clock.advance(timedelta(minutes=2))
        app.run_jobs()
    stored = app.booking(booking.id)
    assert stored.refund is not None
    assert stored.refund.status is RefundStatus.SUCCEEDED
    assert refund_jobs(app) == [{"booking_id": booking.id}]
    assert refund_calls(app) == 1
    assert app.payments.refunded == {intent: booking.price.amount}


def test_paid_twice_after_cancellation_is_refunded_once(app: App) -> None:
    booking = app.request(TEN).booking
    # Cancelled while the client is on the payment page (the expire job has not run yet).
    app.cancel(booking.id)
    assert app.pay(booking) == O.LATE_REFUNDED
    again = app.event(booking, E.ASYNC_PAYMENT_SUCCEEDED, event_id="evt_again")
    assert app.deliver(again) == O.ALREADY_APPLIED
    app.clock.advance(timedelta(minutes=2))
    app.run_jobs()
    assert len(refund_jobs(app)) == 1
    assert sum(app.payments.refunded.values()) == booking.price.amount


def test_the_ledger_records_each_payment_and_its_refunds(app: App) -> None:
    booking = app.confirmed(THURSDAY)
    app.cancel(booking.id)
    with app.uow() as uow:
        (payment,) = uow.ledger.for_booking(booking.id)
    assert payment.captured == booking.price
    assert payment.refunded == booking.price.amount


def _captured(store: InMemoryStore, amount: int = 9000) -> None:
    uow = store.unit_of_work()
    with uow:
        assert uow.ledger.capture(
            Payment(payment_intent_id="pi_1", booking_id=1, captured=Money(amount, "gbp")), NOW
        )
        assert not uow.ledger.capture(
            Payment(payment_intent_id="pi_1", booking_id=1, captured=Money(amount, "gbp")), NOW
        )
        uow.commit()


def test_the_memory_ledger_refuses_refunds_beyond_the_capture() -> None:
    store = InMemoryStore()
    _captured(store)
    uow = store.unit_of_work()
    with uow:
        assert uow.ledger.add_refund("pi_1", Money(5000, "gbp"), NOW).refunded == 5000
        with pytest.raises(RefundExceedsCapture):
            uow.ledger.add_refund("pi_1", Money(4001, "gbp"), NOW)
        with pytest.raises(RefundExceedsCapture):
            uow.ledger.add_refund("pi_1", Money(10, "usd"), NOW)
        with pytest.raises(RefundExceedsCapture):
            uow.ledger.add_refund("pi_unknown", Money(10, "gbp"), NOW)
        uow.commit()
    with uow:
        assert uow.ledger.get("pi_1") == Payment(
            payment_intent_id="pi_1", booking_id=1, captured=Money(9000, "gbp"), refunded=5000
        )


def test_concurrent_refunds_cannot_exceed_the_capture_in_memory() -> None:
    store = InMemoryStore()
    _captured(store)
    first, second = store.unit_of_work(), store.unit_of_work()
    with first, second:
        first.ledger.add_refund("pi_1", Money(6000, "gbp"), NOW)
        second.ledger.add_refund("pi_1", Money(6000, "gbp"), NOW)
        first.commit()
        with pytest.raises(RefundExceedsCapture):
            second.commit()
    with first:
        payment = first.ledger.get("pi_1")
    assert payment is not None
    assert payment.refunded == 6000
