"""Reading practitioners and availability, requesting a booking, authorising with its token."""

from __future__ import annotations

from datetime import date, timedelta

import attrs
import pytest

from booking_core import usecases
from booking_core.errors import (
    BookingNotFound,
    OutsideAvailability,
    PaymentUnavailable,
    PractitionerNotFound,
    ServiceNotFound,
    SlotUnavailable,
    ValidationFailed,
)
from booking_core.model import BookingStatus, CalendarLink
from booking_core.policy import hash_token

from .support import CLIENT, MONDAY, App, at, therapist

TUESDAY = MONDAY + timedelta(days=1)
MONDAY_STARTS = [
    at(MONDAY, h) for h in ("09:00", "10:00", "11:00", "13:00", "14:00", "15:00", "16:00")
]


def link(app: App, *starts: str, day: date = MONDAY) -> None:
    """Link the practitioner to the fake external calendar, which offers ``starts``."""
    app.calendar.links[app.practitioner.id or 0] = CalendarLink(event_type="101")
    app.calendar.offered["101"] = [at(day, s) for s in starts]


# -- practitioners -------------------------------------------------------------------------------


def test_list_practitioners_shows_the_active_ones_with_their_services(app: App) -> None:
    second = therapist()
    second.name = "Jordan Lee"
    app.add_practitioner(second)
    retired = therapist()
    retired.active = False
    app.add_practitioner(retired)
    listed = usecases.list_practitioners(uow=app.uow())
    assert [p.name for p in listed] == ["Dr. Maya Okafor", "Jordan Lee"]
    assert [s.name for s in listed[0].services] == ["Consultation"]


def test_get_practitioner_hides_unknown_and_inactive_ones(app: App) -> None:
    retired = therapist()
    retired.active = False
    retired = app.add_practitioner(retired)
    assert usecases.get_practitioner(app.practitioner.id or 0, uow=app.uow()).name
    for missing in (retired.id or 0, 999):
        with pytest.raises(PractitionerNotFound):
            usecases.get_practitioner(missing, uow=app.uow())


# -- availability --------------------------------------------------------------------------------


def test_availability_from_the_schedule(app: App) -> None:
    result = app.availability(MONDAY)
    assert result.source == "schedule"
    assert result.timezone == "Europe/London"
    assert result.service_id == app.service.id
    assert [s.start for s in result.slots] == MONDAY_STARTS
    assert all(s.end - s.start == timedelta(minutes=50) for s in result.slots)


def test_availability_defaults_to_a_week_from_today(app: App) -> None:
    result = usecases.get_availability(
        usecases.AvailabilityQuery(practitioner_id=app.practitioner.id or 0),
        uow=app.uow(),
        **app.ports("calendar", "clock", "rules"),
    )
    assert (result.first_day, result.last_day) == (MONDAY, MONDAY + timedelta(days=6))
    assert len(result.slots) == 5 * 7  # Monday to Friday, seven a day


def test_availability_refuses_bad_windows_and_unknown_things(app: App) -> None:
    with pytest.raises(ValidationFailed):
        app.availability(TUESDAY, MONDAY)
    with pytest.raises(ValidationFailed):
        app.availability(MONDAY, MONDAY + timedelta(days=62))
    assert app.availability(MONDAY, MONDAY + timedelta(days=61)).slots  # 62 days is fine
    with pytest.raises(PractitionerNotFound):
        app.availability(MONDAY, practitioner_id=999)
    with pytest.raises(ServiceNotFound):
        usecases.get_availability(
            usecases.AvailabilityQuery(practitioner_id=app.practitioner.id or 0, service_id=999),
            uow=app.uow(),
            **app.ports("calendar", "clock", "rules"),
        )


def test_availability_from_the_external_calendar(app: App) -> None:
    link(app, "10:00", "12:00", "18:30")
    result = app.availability(MONDAY)
    assert result.source == "calcom"
    # The external calendar decides the hours; ours only subtracts.
    assert [s.start for s in result.slots] == [at(MONDAY, h) for h in ("10:00", "12:00", "18:30")]


def test_external_calendar_slots_minus_our_own_bookings(app: App) -> None:
    link(app, "10:00", "11:00", "12:00")
    app.request(at(MONDAY, "11:00"))  # a hold of ours Cal.com does not know about yet
    assert app.starts(MONDAY) == [at(MONDAY, "10:00"), at(MONDAY, "12:00")]


def test_fallback_to_the_schedule_when_the_calendar_fails(app: App) -> None:
    link(app, "10:00")
    app.calendar.failing = True
    result = app.availability(MONDAY)
    assert result.source == "schedule"
    assert [s.start for s in result.slots] == MONDAY_STARTS


def test_our_bookings_are_subtracted_from_the_schedule(app: App) -> None:
    app.request(at(MONDAY, "10:00"))
    app.confirmed(at(MONDAY, "14:00"))
    assert app.starts(MONDAY) == [s for s in MONDAY_STARTS if s.hour not in (10, 14)]


# -- requesting a booking ------------------------------------------------------------------------


def test_request_booking_holds_the_slot_and_opens_a_checkout(app: App) -> None:
    result = app.request(at(MONDAY, "10:00"))
    booking = app.booking(result.booking.id)
    assert booking.status is BookingStatus.PENDING
    assert (booking.start, booking.end) == (at(MONDAY, "10:00"), at(MONDAY, "10:50"))
    assert booking.buffer_after_minutes == 10
    assert booking.price == app.service.price
    assert booking.hold_expires_at == app.clock.now() + timedelta(minutes=31)
    assert booking.checkout_session_id is not None
    session = app.payments.sessions[booking.checkout_session_id]
    assert result.checkout_url == session.url
    assert session.amount == app.service.price
    assert session.expires_at == booking.hold_expires_at
    assert at(MONDAY, "10:00") not in app.starts(MONDAY)


def test_manage_token_is_shown_once_and_stored_hashed(app: App) -> None:
    result = app.request(at(MONDAY, "10:00"))
    token = result.manage_token
    stored = app.booking(result.booking.id)
    assert len(token) >= 40
    assert stored.manage_token_hash == hash_token(token)
    assert token not in repr(attrs.asdict(stored))
    assert token not in repr(result)  # not even in logs of the result object


def test_authorize_booking_with_the_right_token_only(app: App) -> None:
    result = app.request(at(MONDAY, "10:00"))
    booking_id = result.booking.id or 0
    found = usecases.authorize_booking(booking_id, result.manage_token, uow=app.uow())
    assert found.id == booking_id
    other = app.request(at(MONDAY, "11:00"))
    for booking, token in ((booking_id, other.manage_token), (booking_id, ""), (999, "x")):
        with pytest.raises(BookingNotFound):
            usecases.authorize_booking(booking, token, uow=app.uow())


@pytest.mark.parametrize(
    ("start", "why"),
    [
        (at(MONDAY, "09:30"), "off the hourly grid"),
        (at(MONDAY, "07:00"), "in the past"),
        (at(MONDAY, "12:00"), "lunch break"),
        (at(MONDAY, "17:00"), "after hours"),
        (at(date(2030, 1, 12), "10:00"), "a Saturday"),
        (at(MONDAY + timedelta(days=31), "10:00"), "beyond the maximum advance"),
    ],
)
def test_request_outside_availability(app: App, start: object, why: str) -> None:
    with pytest.raises(OutsideAvailability):
        app.request(start)  # type: ignore[arg-type]
    assert app.payments.sessions == {}, why
    assert app.availability(MONDAY).slots  # nothing was held


def test_request_inside_the_minimum_notice_is_outside_availability(app: App) -> None:
    app.clock.set(at(MONDAY, "08:30"))  # 09:00 is only 30 minutes away; notice is 60
    with pytest.raises(OutsideAvailability):
        app.request(at(MONDAY, "09:00"))
    assert app.request(at(MONDAY, "10:00")).booking.status is BookingStatus.PENDING


def test_a_taken_slot_is_unavailable(app: App) -> None:
    app.request(at(MONDAY, "10:00"))
    with pytest.raises(SlotUnavailable):
        app.request(at(MONDAY, "10:00"))
    assert len(app.payments.sessions) == 1


def test_unknown_practitioner_or_service(app: App) -> None:
    cmd = usecases.RequestBooking(
        practitioner_id=999, service_id=1, start=at(MONDAY, "10:00"), client=CLIENT
    )
    with pytest.raises(PractitionerNotFound):
        usecases.request_booking(
            cmd, uow=app.uow(), **app.ports("payments", "calendar", "clock", "rules")
        )
    with pytest.raises(ServiceNotFound):
        usecases.request_booking(
            attrs.evolve(cmd, practitioner_id=app.practitioner.id, service_id=999),
            uow=app.uow(),
            **app.ports("payments", "calendar", "clock", "rules"),
        )


def test_payment_failure_releases_the_hold_at_once(app: App) -> None:
    app.payments.fail_next()
    with pytest.raises(PaymentUnavailable):
        app.request(at(MONDAY, "10:00"))
    assert at(MONDAY, "10:00") in app.starts(MONDAY)  # offered again, no waiting for expiry
    released = app.store.bookings[max(app.store.bookings)]
    assert released.status is BookingStatus.EXPIRED
    assert released.hold_expires_at is None
    # and the next client can book it straight away
    assert app.request(at(MONDAY, "10:00")).booking.status is BookingStatus.PENDING


def test_request_through_the_external_calendar_checks_its_slots(app: App) -> None:
    link(app, "12:00")
    assert app.request(at(MONDAY, "12:00")).booking.status is BookingStatus.PENDING
    with pytest.raises(OutsideAvailability):
        app.request(at(MONDAY, "10:00"))  # our hours, but Cal.com does not offer it


def test_a_naive_start_is_refused_not_read_in_the_servers_time_zone(app: App) -> None:
    naive = at(MONDAY, "10:00").replace(tzinfo=None)
    with pytest.raises(ValidationFailed) as info:
        app.request(naive)
    assert "start" in info.value.errors
    assert app.store.bookings == {}
    booking = app.request(at(MONDAY, "10:00")).booking
    with pytest.raises(ValidationFailed):
        app.reschedule(booking.id, at(MONDAY, "11:00").replace(tzinfo=None))
    assert app.booking(booking.id).start == at(MONDAY, "10:00")
