"""The payment reconciler: expired and half-written holds, paid checkouts, missed webhooks."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from booking_core.model import Booking, BookingStatus
from booking_core.policy import new_manage_token
from booking_core.ports import CheckoutState, PaymentEventType
from booking_core.usecases import Reconciled, reconcile_payments
from booking_core.usecases.booking import checkout_request
from booking_core.usecases.housekeeping import WarningThrottle
from entrypoints import worker

from .support import CLIENT, MONDAY, App, at

DAYS = [MONDAY + timedelta(days=n) for n in range(1, 5)]  # Tuesday to Friday
HOURS = ["09:00", "10:00", "11:00", "13:00", "14:00", "15:00", "16:00"]
STARTS = [at(day, hhmm) for day in DAYS for hhmm in HOURS]


def reconcile(app: App, limit: int = 20, warnings: WarningThrottle | None = None) -> Reconciled:
    return reconcile_payments(
        uow=app.uow(),
        **app.ports("payments", "calendar", "clock", "rules"),
        limit=limit,
        warnings=warnings or WarningThrottle(),
    )


def calls(app: App, name: str) -> int:
    return sum(1 for call, _ in app.payments.calls if call == name)


def test_an_unpaid_expired_hold_is_released_behind_21_paid_ones_in_one_pass(app: App) -> None:
    paid = [app.request(start).booking for start in STARTS[:21]]
    for booking in paid:
        assert booking.checkout_session_id is not None
        app.payments.complete(booking.checkout_session_id)  # paid; the webhooks are late
    app.clock.advance(timedelta(minutes=1))
    unpaid = app.request(STARTS[21]).booking  # expires last of all
    app.clock.advance(timedelta(hours=1))
    counts = worker.run_once(app.deps, batch=20)
    assert app.status(unpaid) is BookingStatus.EXPIRED
    assert STARTS[21] in app.starts(DAYS[3])
    assert all(app.status(b) is BookingStatus.CONFIRMED for b in paid)
    assert (counts["holds_released"], counts["checkouts_confirmed"]) == (1, 21)
    assert calls(app, "expire_checkout") == 22
    # Nothing is left to do: the next pass asks the provider nothing about these holds.
    before = len(app.payments.calls)
    assert reconcile(app).released == 0
    assert [c for c, _ in app.payments.calls[before:]] == ["recent_events"]


def test_the_sweep_pages_past_holds_it_cannot_settle_yet(app: App) -> None:
    stuck = [app.request(start).booking for start in STARTS[:5]]
    app.clock.advance(timedelta(minutes=1))
    unpaid = app.request(STARTS[5]).booking
    app.clock.advance(timedelta(hours=1))
    app.payments.fail_next(6)  # list events, then the five oldest holds' expiry: provider errors
    assert reconcile(app, limit=2).released == 1
    assert app.status(unpaid) is BookingStatus.EXPIRED
    assert all(app.status(b) is BookingStatus.PENDING for b in stuck)
    assert reconcile(app, limit=2).released == 5


def test_a_hold_whose_checkout_the_provider_does_not_know_is_released(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    booking = app.request(STARTS[0]).booking
    assert booking.checkout_session_id is not None
    app.payments.forget(booking.checkout_session_id)  # a key or account change: 404 now
    app.clock.advance(timedelta(hours=1))
    with caplog.at_level(logging.WARNING):
        assert reconcile(app).released == 1
    assert app.status(booking) is BookingStatus.EXPIRED
    assert calls(app, "retrieve_checkout") == 1  # the 404 was confirmed before releasing
    assert STARTS[0] in app.starts(DAYS[0])
    assert "unknown to the payment provider" in caplog.text


def test_repeated_provider_failures_warn_once_per_cool_down(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    booking = app.request(STARTS[1]).booking
    app.clock.advance(timedelta(hours=1))
    app.payments.failing = True
    throttle = WarningThrottle()  # one per worker process
    with caplog.at_level(logging.WARNING, logger="booking_core.usecases.housekeeping"):
        for _ in range(5):
            app.clock.advance(timedelta(seconds=5))
            reconcile(app, warnings=throttle)
    about_the_hold = [r for r in caplog.records if f"booking {booking.id}" in r.getMessage()]
    assert len(about_the_hold) == 1
    assert app.status(booking) is BookingStatus.PENDING  # the provider may still say "paid"


def _half_written(app: App, start_index: int, *, at_provider: bool) -> Booking:
    """What a process that died between the hold and storing the session leaves behind."""
    service = app.service
    start = STARTS[start_index]
    now = app.clock.now()
    _, token_hash = new_manage_token()
    with app.uow() as uow:
        hold = uow.bookings.add(
            Booking(
                practitioner_id=app.practitioner.id or 0,
                service_id=service.id or 0,
                client=CLIENT,
                start=start,
                end=start + service.duration,
                buffer_after_minutes=service.buffer_after_minutes,
                price=service.price,
                hold_expires_at=app.rules.hold_expiry(now),
                manage_token_hash=token_hash,
                created_at=now,
                updated_at=now,
            )
        )
        uow.commit()
    if at_provider:
        app.payments.create_checkout(checkout_request(hold, app.practitioner, service, app.rules))
    return hold


@pytest.mark.parametrize("at_provider", [False, True])
def test_a_half_written_hold_is_released_within_a_minute(app: App, at_provider: bool) -> None:
    hold = _half_written(app, 2, at_provider=at_provider)
    assert reconcile(app).released == 0  # its request may still be running
    app.clock.advance(timedelta(seconds=55))
    assert reconcile(app).released == 1
    assert app.status(hold) is BookingStatus.EXPIRED
    # The one session the provider has for it (the replayed create found it) is expired.
    sessions = [s for s in app.payments.sessions.values() if s.booking_id == hold.id]
    assert [s.state for s in sessions] == [CheckoutState.EXPIRED]
    # The client's retry gets the slot.
    retry = app.request(STARTS[2]).booking
    assert retry.status is BookingStatus.PENDING


def test_a_half_written_hold_paid_at_the_provider_is_confirmed(app: App) -> None:
    hold = _half_written(app, 3, at_provider=True)
    (session,) = [s for s in app.payments.sessions.values() if s.booking_id == hold.id]
    app.payments.complete(session.id)
    app.clock.advance(timedelta(minutes=1))
    assert reconcile(app).confirmed == 1
    stored = app.booking(hold.id)
    assert (stored.status, stored.checkout_session_id) == (BookingStatus.CONFIRMED, session.id)


def test_missed_webhooks_are_recovered_from_the_event_list(app: App) -> None:
    app.payments.now = app.clock.now
    booking = app.request(STARTS[4]).booking
    assert booking.checkout_session_id is not None
    app.payments.complete(booking.checkout_session_id)
    app.clock.advance(timedelta(seconds=10))
    app.event(booking, PaymentEventType.CHECKOUT_COMPLETED)  # sent, never delivered
    assert reconcile(app).recovered_events == 1
    assert app.status(booking) is BookingStatus.CONFIRMED
    # Read again from the cursor: nothing new, nothing applied twice.
    app.clock.advance(timedelta(minutes=1))
    assert reconcile(app).recovered_events == 0
    confirmations = [j for j in app.jobs() if j.payload.get("template") == "confirmed"]
    assert sorted(j.payload["to"] for j in confirmations) == ["client", "practitioner"]
