"""Sample practitioners for development and demos (``booking seed``, ``booking serve``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from booking_core.model import Money, Practitioner, Service, WeeklyHours
from booking_core.ports import UnitOfWork

_WEEKDAYS = ["09:00-12:00", "13:00-17:00"]


def sample_service(**changes: Any) -> Service:
    """A 50-minute session at 90 GBP with Service's own defaults; ``changes`` set any field."""
    fields: dict[str, Any] = {
        "name": "Session",
        "duration_minutes": 50,
        "price": Money(9000, "gbp"),
    }
    return Service(**(fields | changes))


def sample_practitioner(
    *,
    hours: Mapping[int, list[str]] | None = None,
    services: list[Service] | None = None,
    **changes: Any,
) -> Practitioner:
    """Dr. Maya Okafor: Europe/London, Mon-Fri 09:00-12:00 and 13:00-17:00, one
    ``sample_service()``. ``hours`` (weekday -> ranges), ``services`` and ``changes`` (any other
    field) replace those; the one factory for sample data, tests and benches."""
    fields: dict[str, Any] = {
        "name": "Dr. Maya Okafor",
        "title": "Clinical psychologist",
        "bio": "Cognitive behavioural therapy for anxiety and sleep.",
        "email": "maya.okafor@example.com",
        "timezone": "Europe/London",
        "weekly_hours": WeeklyHours.from_mapping(
            dict(hours) if hours is not None else {d: _WEEKDAYS for d in range(5)}
        ),
        "services": services if services is not None else [sample_service()],
    }
    return Practitioner(**(fields | changes))


def sample_practitioners() -> list[Practitioner]:
    """Two practitioners in two time zones; number 1 is the one ``CALCOM_USER_ID_1`` maps to."""
    return [
        sample_practitioner(
            services=[
                sample_service(
                    name="Initial consultation",
                    buffer_after_minutes=10,
                    min_notice_minutes=12 * 60,
                    slot_interval_minutes=60,
                ),
                sample_service(
                    name="Follow-up session",
                    duration_minutes=30,
                    price=Money(5500, "gbp"),
                    min_notice_minutes=2 * 60,
                ),
            ],
        ),
        sample_practitioner(
            name="Jordan Lee",
            title="Performance coach",
            bio="Career and leadership coaching.",
            email="jordan.lee@example.com",
            timezone="America/New_York",
            hours={
                0: ["08:00-12:00"],
                1: ["08:00-12:00", "14:00-18:00"],
                2: ["10:00-16:00"],
                3: ["08:00-12:00", "14:00-18:00"],
                5: ["09:00-13:00"],
            },
            services=[
                sample_service(
                    name="Coaching session",
                    duration_minutes=60,
                    price=Money(8000, "usd"),
                    buffer_before_minutes=15,
                    buffer_after_minutes=15,
                    min_notice_minutes=60,
                    slot_interval_minutes=30,
                ),
            ],
        ),
    ]


def seed(uow: UnitOfWork) -> int:
    """Add the sample practitioners if there are none yet; returns how many were added.

    Idempotent: a database that already has practitioners is left as it is.
    """
    with uow:
        if uow.practitioners.list(active_only=False):
            return 0
        added = [uow.practitioners.add(p) for p in sample_practitioners()]
        uow.commit()
    return len(added)
