"""Unit-suite helpers: the core on the memory adapters, driven as the entrypoints drive it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from adapters.memory import (
    FakeCalendarGateway,
    FakePaymentGateway,
    FixedClock,
    InMemoryStore,
    RecordingNotifier,
    sign_fake_event,
)
from booking_core import jobs, usecases
from booking_core.jobs import Job
from booking_core.model import (
    Booking,
    BookingStatus,
    Client,
    Practitioner,
)
from booking_core.ports import PaymentEvent, PaymentEventType
from entrypoints.bootstrap import Deps
from entrypoints.dev.sample_data import sample_practitioner, sample_service

# Monday 7 January 2030, 08:00 UTC. London is on GMT (UTC+0) in January, so local = UTC here.
NOW = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)
MONDAY = date(2030, 1, 7)
CLIENT = Client(name="Ada Client", email="ada@example.com", phone="+44 20 7946 0000")


def at(day: date, hhmm: str) -> datetime:
    """A UTC instant on ``day`` (London in winter = UTC)."""
    hours, minutes = hhmm.split(":")
    return datetime(day.year, day.month, day.day, int(hours), int(minutes), tzinfo=UTC)


def therapist() -> Practitioner:
    """Europe/London, Mon-Fri 09:00-12:00 and 13:00-17:00, one 50-minute service on the hour."""
    return sample_practitioner(
        email="maya@example.com",
        services=[
            sample_service(
                name="Consultation",
                buffer_after_minutes=10,
                min_notice_minutes=60,
                max_advance_days=30,
                slot_interval_minutes=60,
            )
        ],
    )


class App:
    """The core on memory adapters, with helpers that drive it the way the entrypoints do."""

    def __init__(self, deps: Deps, store: InMemoryStore) -> None:
        self.deps = deps
        self.store = store
        self.clock: FixedClock = deps.clock  # type: ignore[assignment]
        self.payments: FakePaymentGateway = deps.payments  # type: ignore[assignment]
        self.calendar: FakeCalendarGateway = deps.calendar  # type: ignore[assignment]
        self.notifier: RecordingNotifier = deps.notifier  # type: ignore[assignment]
        self.rules = deps.rules
        self.practitioner = self.add_practitioner(therapist())
        self.service = self.practitioner.services[0]

    # -- wiring ------------------------------------------------------------------------------

    def uow(self) -> Any:
        return self.deps.uow()

    def ports(self, *names: str) -> dict[str, Any]:
        return {name: getattr(self.deps, name) for name in names}

    def add_practitioner(self, practitioner: Practitioner) -> Practitioner:
        with self.uow() as uow:
            stored: Practitioner = uow.practitioners.add(practitioner)
            uow.commit()
        return stored

    # -- reading -----------------------------------------------------------------------------

    def booking(self, booking_id: int | None) -> Booking:
        assert booking_id is not None
        return usecases.get_booking(booking_id, uow=self.uow())

    def availability(
        self, first: date = MONDAY, last: date | None = None, practitioner_id: int | None = None
    ) -> usecases.Availability:
        return usecases.get_availability(
            usecases.AvailabilityQuery(
                practitioner_id=practitioner_id or self.practitioner.id or 0,
                service_id=None,
                first_day=first,
                last_day=last or first,
            ),
            uow=self.uow(),
            **self.ports("calendar", "clock", "rules"),
        )

    def starts(self, first: date = MONDAY, last: date | None = None) -> list[datetime]:
        return [s.start for s in self.availability(first, last).slots]

    def jobs(self, status: Any = None) -> list[Job]:
        with self.uow() as uow:
            found: list[Job] = uow.outbox.list(status)
        return found

    # -- acting ------------------------------------------------------------------------------

    def request(
        self, start: datetime, *, practitioner: Practitioner | None = None
    ) -> usecases.BookingRequested:
        p = practitioner or self.practitioner
        return usecases.request_booking(
            usecases.RequestBooking(
                practitioner_id=p.id or 0,
                service_id=p.services[0].id or 0,
                start=start,
                client=CLIENT,
            ),
            uow=self.uow(),
            **self.ports("payments", "calendar", "clock", "rules"),
        )

    def event(self, booking: Booking, event_type: str, *, event_id: str | None = None) -> bytes:
        assert booking.checkout_session_id is not None
        return self.payments.event_for(booking.checkout_session_id, event_type, event_id=event_id)

    def deliver(self, body: bytes) -> str:
        """A webhook delivery: verify and parse like the real endpoint, then apply."""
        event = self.payments.parse_event(body, sign_fake_event(body, self.payments.webhook_secret))
        return self.apply(event)

    def apply(self, event: PaymentEvent) -> str:
        return usecases.handle_payment_event(
            event, uow=self.uow(), **self.ports("calendar", "clock", "rules")
        )

    def pay(self, booking: Booking, *, event_id: str | None = None) -> str:
        """The client pays on the hosted page; the provider sends checkout.session.completed."""
        assert booking.checkout_session_id is not None
        self.payments.complete(booking.checkout_session_id)
        return self.deliver(
            self.event(booking, PaymentEventType.CHECKOUT_COMPLETED, event_id=event_id)
        )

    def confirmed(self, start: datetime) -> Booking:
        booking = self.request(start).booking
        assert self.pay(booking) == usecases.PaymentOutcome.CONFIRMED
        return self.booking(booking.id)

    def cancel(self, booking_id: int | None, **kwargs: Any) -> usecases.Cancelled:
        return usecases.cancel_booking(
            usecases.CancelBooking(booking_id=booking_id or 0, **kwargs),
            uow=self.uow(),
            **self.ports("payments", "calendar", "clock", "rules"),
        )

    def reschedule(self, booking_id: int | None, new_start: datetime) -> Booking:
        return usecases.reschedule_booking(
            usecases.RescheduleBooking(booking_id=booking_id or 0, new_start=new_start),
            uow=self.uow(),
            **self.ports("calendar", "clock", "rules"),
        )

    def expire_holds(self) -> int:
        return usecases.expire_stale_holds(
            uow=self.uow(), **self.ports("payments", "calendar", "clock")
        )

    def run_jobs(self, retry: jobs.RetryPolicy | None = None) -> dict[str, int]:
        ctx = jobs.JobContext(
            uow=self.uow(), **self.ports("payments", "calendar", "notifier", "clock", "rules")
        )
        return jobs.run_due_jobs(ctx, retry=retry, limit=100)

    def status(self, booking: Booking) -> BookingStatus:
        return self.booking(booking.id).status
