"""Scheduling rules through the use cases (issue 16): limits on holds and availability, the
approval step, booking windows, availability in the client's zone, the memory lock."""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta

import attrs
import pytest

from booking_core import usecases
from booking_core.access import Actor
from booking_core.errors import (
    InvalidTransition,
    LimitReached,
    OutsideAvailability,
    PaymentUnavailable,
    ServiceNotFound,
    SlotUnavailable,
    ValidationFailed,
)
from booking_core.jobs import JobKind
from booking_core.model import (
    BookingLimits,
    BookingStatus,
    BookingWindow,
    Practitioner,
    WindowKind,
)

from .support import CLIENT, MONDAY, App, at, therapist

ADMIN = Actor.admin_token()

TUESDAY = MONDAY + timedelta(days=1)


def practitioner_with(
    app: App, *, practitioner_limits: BookingLimits | None = None, **service: object
) -> Practitioner:
    p = therapist()
    if practitioner_limits is not None:
        p.limits = practitioner_limits
    p.services = [attrs.evolve(p.services[0], **service)]
    return app.add_practitioner(p)


def emails(app: App) -> list[tuple[int, str]]:
    return [
        (int(j.payload["booking_id"]), str(j.payload["template"]))
        for j in app.jobs()
        if j.kind == JobKind.EMAIL
    ]


def starts_of(app: App, p: Practitioner, first: date, last: date | None = None) -> list[object]:
    return [s.start for s in app.availability(first, last, practitioner_id=p.id).slots]


# -- limits --------------------------------------------------------------------------------------


def test_a_practitioner_limit_refuses_the_next_hold_and_hides_the_day(app: App) -> None:
    p = practitioner_with(app, practitioner_limits=BookingLimits(bookings_per_day=2))
    app.request(at(MONDAY, "09:00"), practitioner=p)
    app.request(at(MONDAY, "11:00"), practitioner=p)
    with pytest.raises(LimitReached) as caught:
        app.request(at(MONDAY, "14:00"), practitioner=p)
    assert caught.value.code == "limit_reached"
    assert starts_of(app, p, MONDAY) == []
    assert at(TUESDAY, "09:00") in starts_of(app, p, TUESDAY)
    app.request(at(TUESDAY, "09:00"), practitioner=p)


def test_a_released_hold_no_longer_counts(app: App) -> None:
    p = practitioner_with(app, practitioner_limits=BookingLimits(bookings_per_day=1))
    first = app.request(at(MONDAY, "09:00"), practitioner=p)
    usecases.cancel_booking(
        usecases.CancelBooking(booking_id=first.booking.id or 0),
        uow=app.uow(),
        **app.ports("payments", "calendar", "clock", "rules"),
    )
    app.request(at(MONDAY, "10:00"), practitioner=p)


def test_a_service_limit_counts_minutes_of_that_service_in_the_week(app: App) -> None:
    p = practitioner_with(app, limits=BookingLimits(minutes_per_week=100))
    app.request(at(MONDAY, "09:00"), practitioner=p)  # 50 minutes
    app.request(at(TUESDAY, "09:00"), practitioner=p)  # 100
    with pytest.raises(LimitReached):
        app.request(at(TUESDAY + timedelta(days=1), "09:00"), practitioner=p)
    next_monday = MONDAY + timedelta(days=7)
    assert starts_of(app, p, next_monday)  # a new week


def test_service_limits_count_only_that_service(app: App) -> None:
    p = therapist()
    base = p.services[0]
    p.services = [
        attrs.evolve(base, limits=BookingLimits(bookings_per_day=1)),
        attrs.evolve(base, name="Other", id=None),
    ]
    p = app.add_practitioner(p)
    limited, other = p.services
    assert limited.id != other.id

    def request(service_id: int, hhmm: str) -> object:
        return usecases.request_booking(
            usecases.RequestBooking(
                practitioner_id=p.id or 0,
                service_id=service_id,
                start=at(MONDAY, hhmm),
                client=CLIENT,
            ),
            uow=app.uow(),
            **app.ports("payments", "calendar", "clock", "rules"),
        )

    request(other.id or 0, "09:00")
    request(limited.id or 0, "10:00")  # the other service's booking does not count
    with pytest.raises(LimitReached):
        request(limited.id or 0, "11:00")
    request(other.id or 0, "13:00")


def test_the_memory_lock_makes_a_second_unit_of_work_wait(app: App) -> None:
    order: list[str] = []
    held = threading.Event()

    def first() -> None:
        with app.uow() as uow:
            uow.practitioners.lock(app.practitioner.id)
            held.set()
            time.sleep(0.2)
            order.append("first done")
            uow.commit()

    thread = threading.Thread(target=first)
    thread.start()
    held.wait(5)
    with app.uow() as uow:
        uow.practitioners.lock(app.practitioner.id)
        order.append("second locked")
    thread.join()
    assert order == ["first done", "second locked"]


# -- approval ------------------------------------------------------------------------------------


def test_a_booking_that_needs_approval_holds_the_slot_unpaid(app: App) -> None:
    p = practitioner_with(app, requires_confirmation=True)
    held = app.request(at(MONDAY, "10:00"), practitioner=p)
    booking = held.booking
    assert held.checkout_url is None
    assert booking.status is BookingStatus.AWAITING_APPROVAL
    # The deadline leaves a hold's length before the start for the client to pay.
    assert booking.hold_expires_at == at(MONDAY, "10:00") - timedelta(minutes=31)
    assert app.payments.sessions == {}
    assert at(MONDAY, "10:00") not in starts_of(app, p, MONDAY)
    with pytest.raises(SlotUnavailable):
        app.request(at(MONDAY, "10:00"), practitioner=p)
    assert (booking.id, "awaiting_approval") in emails(app)


def test_approval_opens_the_checkout_and_mails_its_link(app: App) -> None:
    p = practitioner_with(app, requires_confirmation=True)
    booking = app.request(at(MONDAY, "10:00"), practitioner=p).booking
    app.clock.advance(timedelta(hours=1))
    approved = usecases.approve_booking(
        booking.id or 0,
        actor=ADMIN,
        uow=app.uow(),
        **app.ports("payments", "calendar", "clock", "rules"),
    )
    assert approved.booking.status is BookingStatus.PENDING
    assert approved.booking.approved_at == app.clock.now()
    assert approved.booking.hold_expires_at == app.rules.hold_expiry(app.clock.now())
    session = app.payments.sessions[approved.booking.checkout_session_id or ""]
    assert session.url == approved.checkout_url
    assert session.expires_at == app.rules.hold_expiry(app.clock.now())
    mails = [j for j in app.jobs() if j.payload.get("template") == "approved"]
    assert [m.payload["checkout_url"] for m in mails] == [approved.checkout_url]
    assert app.pay(app.booking(booking.id)) == "confirmed"
    assert app.booking(booking.id).status is BookingStatus.CONFIRMED
    with pytest.raises(InvalidTransition):
        usecases.approve_booking(
            booking.id or 0,
            actor=ADMIN,
            uow=app.uow(),
            **app.ports("payments", "calendar", "clock", "rules"),
        )


def test_approval_during_a_provider_outage_changes_nothing(app: App) -> None:
    p = practitioner_with(app, requires_confirmation=True)
    booking = app.request(at(MONDAY, "10:00"), practitioner=p).booking
    app.payments.fail_next()
    with pytest.raises(PaymentUnavailable):
        usecases.approve_booking(
            booking.id or 0,
            actor=ADMIN,
            uow=app.uow(),
            **app.ports("payments", "calendar", "clock", "rules"),
        )
    stored = app.booking(booking.id)
    assert (stored.status, stored.checkout_session_id) == (BookingStatus.AWAITING_APPROVAL, None)
    usecases.approve_booking(
        booking.id or 0,
        actor=ADMIN,
        uow=app.uow(),
        **app.ports("payments", "calendar", "clock", "rules"),
    )
    assert app.booking(booking.id).status is BookingStatus.PENDING


def test_declining_frees_the_slot_and_tells_the_client(app: App) -> None:
    p = practitioner_with(app, requires_confirmation=True)
    booking = app.request(at(MONDAY, "10:00"), practitioner=p).booking
    declined = usecases.decline_booking(
        booking.id or 0,
        "away that day",
        actor=ADMIN,
        uow=app.uow(),
        **app.ports("calendar", "clock"),
    )
    assert (declined.status, declined.cancel_reason) == (BookingStatus.CANCELLED, "away that day")
    assert at(MONDAY, "10:00") in starts_of(app, p, MONDAY)
    assert (booking.id, "declined") in emails(app)
    with pytest.raises(InvalidTransition):
        usecases.decline_booking(
            booking.id or 0, actor=ADMIN, uow=app.uow(), **app.ports("calendar", "clock")
        )


def test_nobody_acting_in_time_expires_the_request(app: App) -> None:
    p = practitioner_with(app, requires_confirmation=True)
    booking = app.request(at(TUESDAY, "10:00"), practitioner=p).booking
    assert booking.hold_expires_at == app.clock.now() + timedelta(hours=24)  # approval_hours
    ports = app.ports("calendar", "clock")
    assert usecases.expire_unapproved(uow=app.uow(), **ports) == 0
    app.clock.set(booking.hold_expires_at + timedelta(seconds=1))
    assert usecases.expire_unapproved(uow=app.uow(), **ports) == 1
    assert app.booking(booking.id).status is BookingStatus.EXPIRED
    assert (booking.id, "approval_expired") in emails(app)
    assert usecases.expire_unapproved(uow=app.uow(), **ports) == 0


def test_the_worker_pass_expires_unapproved_requests(app: App) -> None:
    from entrypoints.worker import run_once

    p = practitioner_with(app, requires_confirmation=True)
    booking = app.request(at(TUESDAY, "10:00"), practitioner=p).booking
    app.clock.set(at(TUESDAY, "09:30"))
    counts = run_once(app.deps)
    assert counts["approvals_expired"] == 1
    assert app.booking(booking.id).status is BookingStatus.EXPIRED


# -- booking windows -----------------------------------------------------------------------------


def test_a_calendar_day_window_refuses_a_later_start(app: App) -> None:
    p = practitioner_with(app, window=BookingWindow(WindowKind.CALENDAR_DAYS, days=1))
    assert starts_of(app, p, MONDAY + timedelta(days=2)) == []
    assert starts_of(app, p, TUESDAY)
    with pytest.raises(OutsideAvailability):
        app.request(at(MONDAY + timedelta(days=2), "10:00"), practitioner=p)
    app.request(at(TUESDAY, "16:00"), practitioner=p)


# -- the client's zone ---------------------------------------------------------------------------


def in_zone(app: App, zone: str | None, first: date = MONDAY) -> usecases.Availability:
    return usecases.get_availability(
        usecases.AvailabilityQuery(
            practitioner_id=app.practitioner.id or 0,
            first_day=first,
            last_day=first,
            timezone=zone,
        ),
        uow=app.uow(),
        **app.ports("calendar", "clock", "rules"),
    )


def test_availability_in_the_clients_zone_buckets_by_their_dates(app: App) -> None:
    # Tokyo is UTC+9: its Monday runs from Sunday 15:00 to Monday 15:00 UTC, so London's
    # Monday afternoon falls on the client's Tuesday.
    monday = in_zone(app, "Asia/Tokyo")
    assert monday.client_timezone == "Asia/Tokyo"
    assert [s.start for s in monday.slots] == [
        at(MONDAY, h) for h in ("09:00", "10:00", "11:00", "13:00", "14:00")
    ]
    tuesday = in_zone(app, "Asia/Tokyo", TUESDAY)
    assert [s.start for s in tuesday.slots][:2] == [at(MONDAY, "15:00"), at(MONDAY, "16:00")]
    assert [(d, len(s)) for d, s in monday.by_day()] == [(MONDAY, 5)]
    assert in_zone(app, None).client_timezone is None
    assert len(in_zone(app, None).slots) == 7


def test_an_unknown_client_zone_is_refused_naming_the_field(app: App) -> None:
    with pytest.raises(ValidationFailed) as caught:
        in_zone(app, "Mars/Olympus")
    assert "timezone" in caught.value.errors


def test_free_ranges_join_consecutive_slots(app: App) -> None:
    p = practitioner_with(
        app, slot_interval_minutes=30, buffer_after_minutes=0, duration_minutes=30
    )
    app.request(at(MONDAY, "10:00"), practitioner=p)
    result = app.availability(MONDAY, practitioner_id=p.id)
    assert [(r.start, r.end) for r in result.ranges()] == [
        (at(MONDAY, "09:00"), at(MONDAY, "10:00")),
        (at(MONDAY, "10:30"), at(MONDAY, "12:00")),
        (at(MONDAY, "13:00"), at(MONDAY, "17:00")),
    ]


# -- any available practitioner ------------------------------------------------------------------


def keyed(app: App, name: str, key: str | None = "intake") -> Practitioner:
    p = therapist()
    p.name = name
    p.services = [attrs.evolve(p.services[0], key=key)]
    return app.add_practitioner(p)


def any_request(app: App, service_id: int, hhmm: str, day: date = MONDAY) -> object:
    result = usecases.request_booking_any(
        usecases.RequestBooking(
            practitioner_id=0, service_id=service_id, start=at(day, hhmm), client=CLIENT
        ),
        uow=app.uow(),
        **app.ports("payments", "calendar", "clock", "rules"),
    )
    assert isinstance(result, usecases.BookingRequested)
    return result.booking.practitioner_id


def test_service_availability_merges_every_practitioner_of_the_key(app: App) -> None:
    a, b = keyed(app, "A"), keyed(app, "B")
    keyed(app, "C", key=None)
    app.request(at(MONDAY, "10:00"), practitioner=a)
    result = usecases.get_service_availability(
        "intake",
        first_day=MONDAY,
        last_day=MONDAY,
        uow=app.uow(),
        **app.ports("calendar", "clock", "rules"),
    )
    offers = {s.start: [p for p, _, _ in s.offers] for s in result.slots}
    assert offers[at(MONDAY, "09:00")] == [a.id, b.id]
    assert offers[at(MONDAY, "10:00")] == [b.id]
    assert result.timezone == "UTC"
    with pytest.raises(ServiceNotFound):
        usecases.get_service_availability(
            "nobody", uow=app.uow(), **app.ports("calendar", "clock", "rules")
        )


def test_any_goes_to_the_least_booked_that_week_then_round_robin(app: App) -> None:
    a, b = keyed(app, "A"), keyed(app, "B")
    app.request(at(MONDAY, "09:00"), practitioner=a)
    service_id = a.services[0].id or 0
    app.clock.advance(timedelta(seconds=1))
    assert any_request(app, service_id, "11:00") == b.id  # A has one booking this week
    app.clock.advance(timedelta(seconds=1))
    assert any_request(app, service_id, "13:00") == a.id  # one each: A was booked longer ago
    app.clock.advance(timedelta(seconds=1))
    assert any_request(app, service_id, "14:00") == b.id


def test_any_passes_over_a_practitioner_who_is_not_free(app: App) -> None:
    a, b = keyed(app, "A"), keyed(app, "B")
    app.request(at(MONDAY, "10:00"), practitioner=b)
    app.request(at(MONDAY, "11:00"), practitioner=b)
    app.request(at(MONDAY, "10:00"), practitioner=a)  # B is the least booked, but not free
    service_id = b.services[0].id or 0
    with pytest.raises(SlotUnavailable):
        any_request(app, service_id, "10:00")
    assert any_request(app, service_id, "11:00") == a.id


def test_any_needs_a_keyed_service(app: App) -> None:
    with pytest.raises(ServiceNotFound):
        any_request(app, app.service.id or 0, "10:00")


# -- fill starts can be booked, limits hold on reschedule ----------------------------------------


def test_a_fill_restart_after_a_booking_can_be_booked(app: App) -> None:
    from booking_core.model import SlotAlignment

    p = therapist()
    base = attrs.evolve(p.services[0], buffer_after_minutes=0)
    p.services = [
        attrs.evolve(
            base, alignment=SlotAlignment.FILL, duration_minutes=45, slot_interval_minutes=None
        ),
        attrs.evolve(base, name="Short", duration_minutes=15, slot_interval_minutes=15),
    ]
    p = app.add_practitioner(p)
    fill, short = p.services

    def request(service_id: int, hhmm: str) -> object:
        return usecases.request_booking(
            usecases.RequestBooking(
                practitioner_id=p.id or 0,
                service_id=service_id,
                start=at(MONDAY, hhmm),
                client=CLIENT,
            ),
            uow=app.uow(),
            **app.ports("payments", "calendar", "clock", "rules"),
        )

    request(short.id or 0, "09:00")  # 09:00-09:15
    # 45-minute starts step 09:00, 09:45, ...; after the short booking fill restarts at 09:15.
    offered = usecases.get_availability(
        usecases.AvailabilityQuery(
            practitioner_id=p.id or 0, service_id=fill.id, first_day=MONDAY, last_day=MONDAY
        ),
        uow=app.uow(),
        **app.ports("calendar", "clock", "rules"),
    )
    assert [x.start for x in offered.slots][:2] == [at(MONDAY, "09:15"), at(MONDAY, "10:00")]
    request(fill.id or 0, "09:15")
    with pytest.raises(OutsideAvailability):
        request(fill.id or 0, "10:05")


def test_a_reschedule_into_a_full_day_is_refused(app: App) -> None:
    p = practitioner_with(app, practitioner_limits=BookingLimits(bookings_per_day=1))
    app.request(at(MONDAY, "09:00"), practitioner=p)
    tuesday = app.request(at(TUESDAY, "09:00"), practitioner=p).booking
    move = usecases.RescheduleBooking(booking_id=tuesday.id or 0, new_start=at(MONDAY, "13:00"))
    with pytest.raises(LimitReached):
        usecases.reschedule_booking(move, uow=app.uow(), **app.ports("calendar", "clock", "rules"))
    # Moving within its own day counts the booking once, not twice.
    same_day = usecases.RescheduleBooking(
        booking_id=tuesday.id or 0, new_start=at(TUESDAY, "13:00")
    )
    moved = usecases.reschedule_booking(
        same_day, uow=app.uow(), **app.ports("calendar", "clock", "rules")
    )
    assert moved.start == at(TUESDAY, "13:00")
