"""The worker's jobs: emails, calendar sync, retries with backoff, parking."""

from __future__ import annotations

import random
from datetime import timedelta

from booking_core.jobs import Job, JobStatus, RetryPolicy
from booking_core.model import CalendarLink, Client
from booking_core.ports import CalendarBookingRequest
from booking_core.usecases import JOB_CALENDAR_CREATE, JOB_EMAIL

from .support import CLIENT, MONDAY, App, at

THURSDAY = MONDAY + timedelta(days=3)
START = at(THURSDAY, "10:00")


def link(app: App) -> CalendarLink:
    link = CalendarLink(event_type="101")
    app.calendar.links[app.practitioner.id or 0] = link
    return link


def job(app: App, kind: str, template: str | None = None) -> Job:
    return next(
        j
        for j in app.jobs()
        if j.kind == kind and (template is None or j.payload.get("template") == template)
    )


def test_confirmation_and_reminder_emails_are_sent(app: App) -> None:
    app.confirmed(START)
    counts = app.run_jobs()
    # calendar (unlinked) + the confirmation to the client + the one to the practitioner
    assert counts == {"done": 3, "retried": 0, "parked": 0}
    client, practitioner = sorted(app.notifier.sent, key=lambda n: n.recipients[0].role)
    assert client.kind == "confirmed"
    assert client.recipients[0].email == CLIENT.email
    assert client.recipients[0].timezone == "Europe/London"  # none given: the practitioner's
    assert client.manage_token
    assert client.service_name == "Consultation"
    assert practitioner.recipients[0].email == app.practitioner.email
    assert practitioner.manage_token is None  # the client's key goes to the client only
    app.clock.set(START - timedelta(hours=24))
    app.run_jobs()
    assert app.notifier.told("client") == ["confirmed", "reminder"]
    assert app.notifier.told("practitioner") == ["confirmed", "reminder"]


def test_cancellation_email_mentions_the_refund_and_no_stale_confirmation(app: App) -> None:
    booking = app.confirmed(START)
    app.cancel(booking.id)
    app.run_jobs()
    # The confirmation is not sent late.
    assert app.notifier.told("client") == app.notifier.told("practitioner") == ["cancelled"]
    assert app.notifier.sent[0].refund == app.booking(booking.id).price


def test_calendar_create_stores_the_uid(app: App) -> None:
    booking = app.confirmed(START)
    link(app)
    app.run_jobs()
    uid = app.booking(booking.id).calendar_uid
    assert uid is not None
    synced = app.calendar.bookings[uid]
    assert (synced.start, synced.booking_id, synced.cancelled) == (START, booking.id, False)
    # Cancelling ours cancels theirs, through the outbox.
    app.cancel(booking.id)
    app.run_jobs()
    assert app.calendar.bookings[uid].cancelled


def test_reschedule_moves_the_external_booking_and_stores_the_new_uid(app: App) -> None:
    booking = app.confirmed(START)
    link(app)
    app.run_jobs()
    old_uid = app.booking(booking.id).calendar_uid
    app.calendar.links.clear()  # availability from our hours again, sync still by uid
    app.reschedule(booking.id, at(THURSDAY, "14:00"))
    app.run_jobs()
    new_uid = app.booking(booking.id).calendar_uid
    assert new_uid not in (None, old_uid)
    assert app.calendar.bookings[new_uid or ""].start == at(THURSDAY, "14:00")
    assert app.calendar.bookings[old_uid or ""].cancelled


def test_a_failing_job_is_retried_with_backoff(app: App) -> None:
    app.confirmed(START)
    app.notifier.failing = True
    now = app.clock.now()
    counts = app.run_jobs()
    assert counts == {"done": 1, "retried": 2, "parked": 0}  # both recipients' mails
    mail = job(app, JOB_EMAIL, "confirmed")
    assert mail.status is JobStatus.PENDING
    assert mail.attempts == 1
    assert "mail server unavailable" in mail.last_error
    assert now + timedelta(seconds=1) <= mail.run_at <= now + timedelta(seconds=30)
    assert app.run_jobs() == {"done": 0, "retried": 0, "parked": 0}  # not due yet
    app.notifier.failing = False
    app.clock.advance(timedelta(seconds=30))
    assert app.run_jobs()["done"] == 2
    assert app.notifier.told("client") == app.notifier.told("practitioner") == ["confirmed"]


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(base=timedelta(seconds=30), cap=timedelta(minutes=10))
    rng = random.Random(7)
    now = at(MONDAY, "08:00")
    for attempts, ceiling in [(1, 30), (2, 60), (3, 120), (5, 480), (6, 600), (20, 600)]:
        waits = [(policy.next_run(now, attempts, rng) - now).total_seconds() for _ in range(200)]
        assert min(waits) >= 1
        assert max(waits) <= ceiling
        assert max(waits) > ceiling / 2  # full jitter reaches up towards the ceiling


def test_a_job_is_parked_after_max_attempts(app: App) -> None:
    app.confirmed(START)
    app.notifier.failing = True
    policy = RetryPolicy(max_attempts=4)
    for _ in range(6):
        app.run_jobs(policy)
        app.clock.advance(timedelta(hours=2))
    mail = job(app, JOB_EMAIL, "confirmed")
    assert mail.status is JobStatus.PARKED
    assert mail.attempts == 4
    assert "mail server unavailable" in mail.last_error
    app.notifier.failing = False
    app.run_jobs(policy)
    assert app.notifier.sent == []  # parked jobs stay parked until an admin acts


def test_a_permanent_error_parks_at_once(app: App) -> None:
    """Cal.com already has someone at that time: retrying cannot help, an admin must."""
    booking = app.confirmed(START)
    taken = link(app)
    app.calendar.create_booking(
        CalendarBookingRequest(
            link=taken,
            booking_id=0,
            start=START,
            end=START + timedelta(minutes=30),
            client=Client(name="Walk-in", email="walkin@example.com"),
            timezone="Europe/London",
        )
    )
    counts = app.run_jobs()
    assert counts["parked"] == 1
    sync = job(app, JOB_CALENDAR_CREATE)
    assert sync.status is JobStatus.PARKED
    assert sync.attempts == 1
    assert "an admin must resolve it" in sync.last_error
    assert app.booking(booking.id).calendar_uid is None


def test_an_unknown_job_kind_is_parked_at_once(app: App) -> None:
    with app.uow() as uow:
        uow.outbox.add("nonsense", {}, app.clock.now())
        uow.commit()
    assert app.run_jobs() == {"done": 0, "retried": 0, "parked": 1}
    [parked] = app.jobs(JobStatus.PARKED)
    assert "unknown job kind" in parked.last_error
