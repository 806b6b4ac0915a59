"""Mails over real SMTP (a local aiosmtpd server) from the outbox on PostgreSQL: both sides
told, text and HTML, the invitation's METHOD, UID, SEQUENCE and DTSTART, the manage link
working against the app, reminders once with two workers, retries sent once, JPY amounts."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from icalendar import Calendar

from adapters.memory import FakePaymentGateway, FixedClock, sign_fake_event
from adapters.postgres.database import Database
from adapters.schedule import ScheduleCalendarGateway
from booking_core import jobs
from booking_core.model import BookingStatus, Money
from booking_core.notifications import enqueue_reminder
from booking_core.ports import PaymentEventType
from entrypoints.bootstrap import Deps, bootstrap
from entrypoints.dev.sample_data import sample_practitioner, sample_service, seed
from entrypoints.flask_app import create_app
from entrypoints.settings import Settings

try:
    import smtp_fixtures
except ModuleNotFoundError:  # tests/integration imported as a package
    from tests.integration import smtp_fixtures

smtp_server = smtp_fixtures.smtp_server
Inbox = smtp_fixtures.Inbox

NOW = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)  # Monday; London on GMT
SLOT = "2030-01-08T09:00:00Z"  # Tuesday 09:00 London: service 1's first offered start
LATER = "2030-01-09T10:00:00Z"
WEBHOOK_SECRET = "whsec_mailTestSecret0123456789"
CLIENT = "ada.lovelace@example.com"
PRACTITIONER = "maya.okafor@example.com"
BASE_URL = "http://booking.test"


class World:
    """The app on PostgreSQL, with the real SMTP notifier pointed at the local server."""

    def __init__(self, database: Database, smtp_url: str, inbox: Inbox) -> None:
        self.inbox = inbox
        self.clock = FixedClock(NOW)
        self.payments = FakePaymentGateway(webhook_secret=WEBHOOK_SECRET)
        self.deps: Deps = bootstrap(
            Settings(
                env="test",
                secret_key="mail-test-secret",
                base_url=BASE_URL,
                smtp_url=smtp_url,
                mail_from="bookings@booking.test",
                ratelimit_bookings_per_ip="0",
                ratelimit_bookings_per_email="0",
                ratelimit_recover_per_ip="0",
            ),
            uow_factory=database.unit_of_work,
            clock=self.clock,
            payments=self.payments,
            calendar=ScheduleCalendarGateway(),
        )
        seed(self.deps.uow())
        self.client: FlaskClient = create_app(self.deps).test_client()

    def book(self, start: str = SLOT, **fields: Any) -> dict[str, Any]:
        body = {
            "practitioner_id": 1,
            "service_id": 1,
            "start": start,
            "client": {"name": "Ada Lovelace", "email": CLIENT, "timezone": "America/New_York"},
            **fields,
        }
        response = self.client.post("/api/bookings", json=body)
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()  # type: ignore[no-any-return]

    def pay(self, booking_id: int) -> None:
        uow = self.deps.uow()
        with uow:
            booking = uow.bookings.get(booking_id)
        assert booking is not None
        assert booking.checkout_session_id is not None
        self.payments.complete(booking.checkout_session_id)
        event = self.payments.event_for(
            booking.checkout_session_id, PaymentEventType.CHECKOUT_COMPLETED
        )
        response = self.client.post(
            "/api/webhooks/stripe",
            data=event,
            content_type="application/json",
            headers={"Stripe-Signature": sign_fake_event(event, WEBHOOK_SECRET)},
        )
        assert response.status_code == 200, response.get_data(as_text=True)

    def confirmed(self, start: str = SLOT, **fields: Any) -> int:
        booking_id = int(self.book(start, **fields)["booking"]["id"])
        self.pay(booking_id)
        return booking_id

    def context(self) -> jobs.JobContext:
        d = self.deps
        return jobs.JobContext(
            uow=d.uow(),
            payments=d.payments,
            calendar=d.calendar,
            notifier=d.notifier,
            clock=d.clock,
            rules=d.rules,
        )

    def run_jobs(self) -> dict[str, int]:
        return jobs.run_due_jobs(self.context(), limit=100)


@pytest.fixture
def world(clean_database: Database, smtp_server: tuple[Inbox, str]) -> Iterator[World]:
    inbox, url = smtp_server
    w = World(clean_database, url, inbox)
    yield w
    w.deps.close()


def parts(message: EmailMessage) -> tuple[str, str, Calendar | None]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    invitation = None
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            invitation = Calendar.from_ical(part.get_payload(decode=True))
    return str(text.get_content()), str(html.get_content()), invitation


def event(invitation: Calendar | None) -> Any:
    assert invitation is not None
    [vevent] = invitation.walk("VEVENT")
    return vevent


def manage_link(text: str) -> tuple[int, str]:
    found = re.search(re.escape(BASE_URL) + r"/manage/(\d+)\?token=([A-Za-z0-9._~%-]+)", text)
    assert found, text
    return int(found.group(1)), found.group(2)


def test_a_confirmation_reaches_both_sides_with_an_invitation_and_a_working_link(
    world: World,
) -> None:
    booking_id = world.confirmed()
    assert world.run_jobs()["parked"] == 0
    [to_client] = world.inbox.to(CLIENT)
    [to_practitioner] = world.inbox.to(PRACTITIONER)
    assert len(world.inbox.messages) == 2

    assert to_client["Subject"] == "Your appointment is confirmed"
    assert to_client["From"] == "bookings@booking.test"
    assert to_client["Message-ID"].endswith("@booking.test>")
    assert to_client["Date"]
    assert to_practitioner["Subject"].startswith("New booking: Ada Lovelace on ")
    text, html, invitation = parts(to_client)
    # The client's own zone (New York: 04:00 EST), the practitioner's for the practitioner.
    assert "Tuesday 8 January 2030, 04:00 (America/New_York)" in text
    assert "<strong>Tuesday 8 January 2030, 04:00</strong>" in html
    p_text, _, p_invitation = parts(to_practitioner)
    assert "Tuesday 8 January 2030, 09:00 (Europe/London)" in p_text
    assert "£90.00" in p_text
    assert "/manage/" not in p_text  # the client's key goes to the client only

    assert invitation is not None
    assert invitation["METHOD"] == "REQUEST"
    vevent = event(invitation)
    assert str(vevent["UID"]) == f"booking-{booking_id}@booking.test"
    assert int(vevent["SEQUENCE"]) == 0
    start = vevent.decoded("DTSTART")
    assert start.tzinfo == ZoneInfo("Europe/London")
    assert vevent["DTSTART"].params["TZID"] == "Europe/London"
    assert start == datetime(2030, 1, 8, 9, 0, tzinfo=UTC)  # the same instant
    assert vevent.decoded("DTEND") - start == timedelta(minutes=50)
    assert [tz["TZID"] for tz in invitation.walk("VTIMEZONE")] == ["Europe/London"]
    assert str(vevent["ORGANIZER"]) == f"mailto:{PRACTITIONER}"
    assert str(vevent["ATTENDEE"]) == f"mailto:{CLIENT}"
    assert str(event(p_invitation)["UID"]) == str(vevent["UID"])

    linked_id, token = manage_link(text)
    assert linked_id == booking_id
    assert f'href="{BASE_URL}/manage/{booking_id}?token=' in html
    seen = world.client.get(f"/api/bookings/{booking_id}", headers=_bearer(token))
    assert seen.status_code == 200, seen.get_data(as_text=True)
    assert seen.get_json()["client"]["timezone"] == "America/New_York"
    wrong = world.client.get(f"/api/bookings/{booking_id}", headers=_bearer(token[:-2] + "xx"))
    assert wrong.status_code == 404


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_move_keeps_the_uid_and_raises_the_sequence_and_a_cancel_says_cancel(
    world: World,
) -> None:
    booking_id = world.confirmed()
    world.run_jobs()
    _, token = manage_link(parts(world.inbox.to(CLIENT)[0])[0])
    world.inbox.clear()

    moved = world.client.post(
        f"/api/bookings/{booking_id}/reschedule", json={"start": LATER}, headers=_bearer(token)
    )
    assert moved.status_code == 200, moved.get_data(as_text=True)
    world.run_jobs()
    [to_client] = world.inbox.to(CLIENT)
    assert to_client["Subject"] == "Your appointment has moved"
    text, _, invitation = parts(to_client)
    assert invitation is not None
    assert invitation["METHOD"] == "REQUEST"
    vevent = event(invitation)
    assert str(vevent["UID"]) == f"booking-{booking_id}@booking.test"
    assert int(vevent["SEQUENCE"]) == 1
    assert vevent.decoded("DTSTART") == datetime(2030, 1, 9, 10, 0, tzinfo=UTC)
    assert "Wednesday 9 January 2030, 05:00" in text
    assert len(world.inbox.to(PRACTITIONER)) == 1
    world.inbox.clear()

    # The link of the first mail still works after the move.
    cancelled = world.client.post(f"/api/bookings/{booking_id}/cancel", headers=_bearer(token))
    assert cancelled.status_code == 200, cancelled.get_data(as_text=True)
    world.run_jobs()
    [to_client] = world.inbox.to(CLIENT)
    [to_practitioner] = world.inbox.to(PRACTITIONER)
    assert to_client["Subject"] == "Your appointment is cancelled"
    text, _, invitation = parts(to_client)
    assert "A refund of £90.00 is on its way" in text
    assert manage_link(text) == (booking_id, token)  # every client mail carries the link
    assert "Refunded to the client: £90.00." in parts(to_practitioner)[0]
    assert invitation is not None
    assert invitation["METHOD"] == "CANCEL"
    vevent = event(invitation)
    assert str(vevent["UID"]) == f"booking-{booking_id}@booking.test"
    assert int(vevent["SEQUENCE"]) == 2
    assert str(vevent["STATUS"]) == "CANCELLED"


def test_a_yen_amount_has_no_decimals(world: World) -> None:
    uow = world.deps.uow()
    with uow:
        tokyo = uow.practitioners.add(
            sample_practitioner(
                name="Haruki Sato",
                email="haruki@example.com",
                timezone="Asia/Tokyo",
                services=[
                    sample_service(
                        name="Shiatsu", price=Money(12000, "jpy"), slot_interval_minutes=60
                    )
                ],
            )
        )
        uow.commit()
    service_id = tokyo.services[0].id
    # Thursday 10:00 in Tokyo (01:00 UTC), far enough ahead for a full refund.
    booking_id = world.confirmed(
        "2030-01-10T01:00:00Z", practitioner_id=tokyo.id, service_id=service_id
    )
    world.run_jobs()
    p_text, p_html, _ = parts(world.inbox.to("haruki@example.com")[0])
    assert "paid JP¥12,000." in p_text  # en_GB names the yen apart from the yuan
    assert "Thursday 10 January 2030, 10:00 (Asia/Tokyo)" in p_text
    _, token = manage_link(parts(world.inbox.to(CLIENT)[0])[0])
    world.inbox.clear()
    response = world.client.post(f"/api/bookings/{booking_id}/cancel", headers=_bearer(token))
    assert response.status_code == 200
    world.run_jobs()
    text, html, _ = parts(world.inbox.to(CLIENT)[0])
    assert "A refund of JP¥12,000 is on its way" in text
    assert "¥12,000" in html
    assert "12,000.00" not in text + html + p_text + p_html
    assert "120.00" not in text + html  # not amount / 100 either


def test_a_mail_refused_twice_then_accepted_is_delivered_once(world: World) -> None:
    world.inbox.refuse[CLIENT] = 2
    world.confirmed()
    for _ in range(5):
        world.run_jobs()
        world.clock.advance(timedelta(minutes=5))  # past any backoff of the first attempts
    assert world.inbox.refused == 2
    assert [m["Subject"] for m in world.inbox.to(CLIENT)] == ["Your appointment is confirmed"]
    # The practitioner's mail is its own job: the client's retries never resent it.
    assert len(world.inbox.to(PRACTITIONER)) == 1
    uow = world.deps.uow()
    with uow:
        done = uow.outbox.list(jobs.JobStatus.DONE)
    [client_job] = [j for j in done if j.payload.get("to") == "client"]
    assert client_job.attempts == 2


def test_a_reminder_is_sent_once_with_two_workers_running(world: World) -> None:
    booking_id = world.confirmed("2030-01-09T10:00:00Z")
    world.run_jobs()
    world.inbox.clear()
    uow = world.deps.uow()
    with uow:  # queued again, as a replayed confirmation would: the unique key keeps one
        booking = uow.bookings.get(booking_id)
        assert booking is not None
        enqueue_reminder(uow, booking, world.clock.now(), world.deps.rules.reminder_hours_before)
        uow.commit()
    world.clock.set(datetime(2030, 1, 8, 10, 0, tzinfo=UTC))  # 24 h before
    barrier = threading.Barrier(2)
    results: list[dict[str, int]] = []

    def worker() -> None:
        ctx = world.context()  # its own units of work
        barrier.wait()
        for _ in range(3):
            results.append(jobs.run_due_jobs(ctx, limit=100))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(r["done"] for r in results) == 2  # one per recipient
    assert [m["Subject"] for m in world.inbox.to(CLIENT)] == [
        "Reminder: your appointment is coming up"
    ]
    assert len(world.inbox.to(PRACTITIONER)) == 1
    assert "Wednesday 9 January 2030, 05:00" in parts(world.inbox.to(CLIENT)[0])[0]


def test_a_moved_or_cancelled_booking_is_reminded_at_its_new_time_or_not_at_all(
    world: World,
) -> None:
    moved_id = world.confirmed("2030-01-09T10:00:00Z")
    cancelled_id = world.confirmed("2030-01-09T14:00:00Z")
    world.run_jobs()
    tokens = [manage_link(parts(m)[0]) for m in world.inbox.to(CLIENT)]
    token = dict(tokens)
    response = world.client.post(
        f"/api/bookings/{moved_id}/reschedule",
        json={"start": "2030-01-10T11:00:00Z"},
        headers=_bearer(token[moved_id]),
    )
    assert response.status_code == 200
    response = world.client.post(
        f"/api/bookings/{cancelled_id}/cancel", headers=_bearer(token[cancelled_id])
    )
    assert response.status_code == 200
    world.run_jobs()
    world.inbox.clear()
    world.clock.set(datetime(2030, 1, 8, 15, 0, tzinfo=UTC))  # both old reminders are due
    world.run_jobs()
    assert world.inbox.messages == []
    world.clock.set(datetime(2030, 1, 9, 11, 0, tzinfo=UTC))  # the moved one's new reminder
    world.run_jobs()
    [reminder] = world.inbox.to(CLIENT)
    assert reminder["Subject"] == "Reminder: your appointment is coming up"
    assert "Thursday 10 January 2030, 06:00" in parts(reminder)[0]


def test_recovery_mails_the_links_of_upcoming_bookings_and_reveals_nothing(
    world: World,
) -> None:
    booking_id = world.confirmed()
    world.run_jobs()
    world.inbox.clear()
    known = world.client.post("/api/bookings/recover", json={"email": CLIENT.upper()})
    unknown = world.client.post("/api/bookings/recover", json={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.get_json() == unknown.get_json() == {"accepted": True}
    world.run_jobs()
    [mail] = world.inbox.to(CLIENT)
    assert len(world.inbox.messages) == 1
    assert mail["Subject"] == "Your booking link"
    assert parts(mail)[2] is None  # no invitation: nothing changed
    linked_id, token = manage_link(parts(mail)[0])
    assert linked_id == booking_id
    response = world.client.get(f"/api/bookings/{booking_id}", headers=_bearer(token))
    assert response.status_code == 200
    # Asking again within the hour mails nothing more.
    again = world.client.post("/api/bookings/recover", json={"email": CLIENT})
    assert again.status_code == 202
    world.run_jobs()
    assert len(world.inbox.messages) == 1
    uow = world.deps.uow()
    with uow:
        status = uow.bookings.get(booking_id)
    assert status is not None
    assert status.status is BookingStatus.CONFIRMED


def test_recovery_refuses_a_malformed_address_naming_the_field(world: World) -> None:
    response = world.client.post("/api/bookings/recover", json={"email": "not an address"})
    assert response.status_code == 422
    body = response.get_json()
    assert body["code"] == "validation_error"
    assert "email" in body["errors"]
