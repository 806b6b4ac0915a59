"""Confirmed bookings become completed once they have ended; nothing else does."""

from __future__ import annotations

from datetime import timedelta

from adapters.memory import FixedClock
from booking_core import usecases
from booking_core.model import BookingStatus

from .support import MONDAY, App, at


def test_only_confirmed_bookings_that_have_ended_are_completed(app: App, clock: FixedClock) -> None:
    tuesday = MONDAY + timedelta(days=1)
    ended = app.confirmed(at(tuesday, "09:00"))
    running = app.confirmed(at(tuesday, "10:00"))
    pending = app.request(at(tuesday, "11:00")).booking
    cancelled = app.confirmed(at(tuesday, "13:00"))
    app.cancel(cancelled.id)

    clock.set(at(tuesday, "10:30"))  # 09:00-09:50 is over, 10:00-10:50 is not
    done = usecases.complete_finished_bookings(uow=app.uow(), clock=clock)

    assert done == 1
    assert app.booking(ended.id).status is BookingStatus.COMPLETED
    assert app.booking(running.id).status is BookingStatus.CONFIRMED
    assert app.booking(pending.id).status is not BookingStatus.COMPLETED
    assert app.booking(cancelled.id).status is BookingStatus.CANCELLED
    assert usecases.complete_finished_bookings(uow=app.uow(), clock=clock) == 0  # idempotent

    clock.set(at(tuesday, "11:00"))
    assert usecases.complete_finished_bookings(uow=app.uow(), clock=clock) == 1
    assert app.booking(running.id).status is BookingStatus.COMPLETED
