"""The local-schedule calendar: no external calendar, availability comes from working hours."""

from __future__ import annotations

from datetime import datetime

from booking_core.errors import CalendarUnavailable
from booking_core.model import CalendarLink, Interval, Practitioner, Service
from booking_core.ports import CalendarBookingRequest


class ScheduleCalendarGateway:
    """A CalendarGateway that links nobody, so every practitioner's slots come from the schedule.

    Used when no Cal.com key is configured. Calls that need a link never happen (the core asks
    ``link_for`` first); if they do, they fail loudly rather than pretend to sync.
    """

    def link_for(self, practitioner: Practitioner) -> CalendarLink | None:
        return None

    def free_slots(
        self, link: CalendarLink, service: Service, window: Interval, timezone: str
    ) -> list[Interval]:
        raise CalendarUnavailable("no external calendar is configured")

    def create_booking(self, request: CalendarBookingRequest) -> str:
        raise CalendarUnavailable("no external calendar is configured")

    def cancel_booking(self, uid: str, reason: str) -> None:
        raise CalendarUnavailable("no external calendar is configured")

    def reschedule_booking(self, uid: str, new_start: datetime, reason: str) -> str:
        raise CalendarUnavailable("no external calendar is configured")

    def invalidate(self, practitioner_id: int) -> None:
        """Nothing is cached."""
