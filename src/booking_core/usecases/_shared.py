"""Helpers the use case modules share: loading a booking, its id, aware times."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from booking_core.errors import (
    BookingNotFound,
    PractitionerNotFound,
    ServiceNotFound,
    ValidationFailed,
)
from booking_core.model import (
    Booking,
    Practitioner,
    Service,
)
from booking_core.ports import (
    UnitOfWork,
)

log = logging.getLogger(__name__)


def _practitioner_and_service(
    uow: UnitOfWork, practitioner_id: int, service_id: int, *, max_age: float = 0.0
) -> tuple[Practitioner, Service]:
    practitioner = uow.practitioners.get(practitioner_id, max_age=max_age)
    if practitioner is None or not practitioner.active:
        raise PractitionerNotFound(f"no practitioner with id {practitioner_id}")
    service = practitioner.service(service_id)
    if service is None or not service.active:
        raise ServiceNotFound(f"practitioner {practitioner_id} offers no service {service_id}")
    return practitioner, service


def _aware_utc(value: datetime, field_name: str) -> datetime:
    """``value`` in UTC; a naive datetime is refused (astimezone would read it as server time)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationFailed(
            f"{field_name} needs a UTC offset", errors={field_name: ["must include a UTC offset"]}
        )
    return value.astimezone(UTC)


def _id(booking: Booking) -> int:
    if booking.id is None:
        raise ValueError("booking has no id; was it added through a repository?")
    return booking.id


def _get(uow: UnitOfWork, booking_id: int) -> Booking:
    booking = uow.bookings.get(booking_id)
    if booking is None:
        raise BookingNotFound(f"no booking with id {booking_id}")
    return booking
