"""Availability use cases: open slots, and whether a start is offered or taken."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from attrs import frozen

from booking_core import availability as av
from booking_core.errors import (
    CalendarUnavailable,
    PractitionerNotFound,
    ServiceNotFound,
    ValidationFailed,
)
from booking_core.model import (
    Interval,
    Practitioner,
    Service,
    SlotAlignment,
)
from booking_core.policy import BookingRules
from booking_core.ports import (
    CalendarGateway,
    Clock,
    UnitOfWork,
)

log = logging.getLogger(__name__)


@frozen
class AvailabilityQuery:
    """Dates are local to ``timezone`` (an IANA zone, the client's), or to the practitioner
    when it is None; ``last_day`` is inclusive; None means the default."""

    practitioner_id: int
    service_id: int | None = None
    first_day: date | None = None
    last_day: date | None = None
    timezone: str | None = None


@frozen
class Availability:
    """Open slots starting on ``first_day``..``last_day``, local dates of ``answer_zone`` (the
    query's ``timezone``, else the practitioner's ``timezone``)."""

    practitioner_id: int
    service_id: int
    timezone: str
    source: str  # "calcom" | "schedule"
    slots: list[Interval]
    first_day: date
    last_day: date
    client_timezone: str | None = None
    interval_minutes: int = 0  # the service's step between starts

    @property
    def answer_zone(self) -> ZoneInfo:
        return ZoneInfo(self.client_timezone or self.timezone)

    def by_day(self) -> list[tuple[date, list[Interval]]]:
        """The slots bucketed by the local date (answer_zone) they start on, every date of the
        answer listed, in order."""
        return av.bucket_by_day(self.slots, self.answer_zone, self.first_day, self.last_day)

    def ranges(self) -> list[Interval]:
        """The free ranges: runs of consecutive slots (see availability.free_ranges)."""
        return av.free_ranges(self.slots, timedelta(minutes=self.interval_minutes))


def get_availability(
    query: AvailabilityQuery,
    *,
    uow: UnitOfWork,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules,
) -> Availability:
    """Open slots from the external calendar when linked (else the working hours).

    Our own occupying bookings are always subtracted. If the calendar fails the local schedule
    answers and ``source`` says "schedule". Raises PractitionerNotFound, ServiceNotFound,
    ValidationFailed (bad or too wide a date range).
    """
    now = clock.now()
    client_zone = _client_zone(query.timezone)
    with uow:
        practitioner = uow.practitioners.get(
            query.practitioner_id, max_age=rules.schedule_cache_seconds
        )
        if practitioner is None or not practitioner.active:
            raise PractitionerNotFound(f"no practitioner with id {query.practitioner_id}")
        service = _pick_service(practitioner, query.service_id)
        answer_zone = client_zone or practitioner.zone
        first, last = _window_days(query, answer_zone, now, rules)
        window = av.local_day_window(answer_zone, first, last)
        # The practitioner's local dates that the window touches.
        p_first = window.start.astimezone(practitioner.zone).date()
        p_last = (window.end - _TICK).astimezone(practitioner.zone).date()
        p_window = av.local_day_window(practitioner.zone, p_first, p_last)
        occupied = uow.bookings.occupied_spans(
            practitioner.id or 0, av.occupied_window(p_window, service)
        )
        limits = _limit_check(uow, practitioner, service, p_first, p_last)
    slots, source = _slots(
        practitioner, service, p_first, p_last, p_window, now, occupied, calendar, limits
    )
    if client_zone is not None:
        slots = [s for s in slots if window.start <= s.start < window.end]
    return Availability(
        practitioner_id=query.practitioner_id,
        service_id=service.id or 0,
        timezone=practitioner.timezone,
        source=source,
        slots=slots,
        first_day=first,
        last_day=last,
        client_timezone=query.timezone if client_zone is not None else None,
        interval_minutes=int(service.interval.total_seconds()) // 60,
    )


_TICK = timedelta(microseconds=1)


def _client_zone(name: str | None) -> ZoneInfo | None:
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(
            "unknown time zone",
            errors={"timezone": ["must be an IANA time zone like Europe/Paris"]},
        ) from exc


def _pick_service(practitioner: Practitioner, service_id: int | None) -> Service:
    if service_id is None:
        active = [s for s in practitioner.services if s.active]
        if not active:
            raise ServiceNotFound(f"practitioner {practitioner.id} offers no services")
        return active[0]
    service = practitioner.service(service_id)
    if service is None or not service.active:
        raise ServiceNotFound(f"practitioner {practitioner.id} offers no service {service_id}")
    return service


def _window_days(
    query: AvailabilityQuery, zone: ZoneInfo, now: datetime, rules: BookingRules
) -> tuple[date, date]:
    today = now.astimezone(zone).date()
    first = query.first_day or today
    last = query.last_day or first + timedelta(days=rules.default_window_days - 1)
    if last < first:
        raise ValidationFailed("'to' is before 'from'", errors={"to": ["must not be before from"]})
    if (last - first).days + 1 > rules.max_window_days:
        raise ValidationFailed(
            f"at most {rules.max_window_days} days at a time",
            errors={"to": [f"window is longer than {rules.max_window_days} days"]},
        )
    return first, last


def _slots(
    practitioner: Practitioner,
    service: Service,
    first: date,
    last: date,
    window: Interval,
    now: datetime,
    occupied: list[Interval],
    calendar: CalendarGateway,
    limits: av.LimitCheck | None = None,
) -> tuple[list[Interval], str]:
    link = calendar.link_for(practitioner)
    if link is not None:
        try:
            offered = calendar.free_slots(link, service, window, practitioner.timezone)
        except CalendarUnavailable as exc:
            log.debug("calendar unavailable for practitioner %s: %s", practitioner.id, exc)
        else:
            starts = (s.start for s in offered if window.start <= s.start < window.end)
            slots = av.filter_slots(
                starts, practitioner, service, now=now, occupied=occupied, limits=limits
            )
            return slots, "calcom"
    slots = av.free_slots(
        practitioner,
        service,
        first_day=first,
        last_day=last,
        now=now,
        occupied=occupied,
        limits=limits,
    )
    return slots, "schedule"


def _limit_check(
    uow: UnitOfWork,
    practitioner: Practitioner,
    service: Service,
    first: date,
    last: date,
    ignore: int | None = None,
) -> av.LimitCheck | None:
    """The practitioner's and the service's booking limits with the occupying bookings they
    count on the local weeks of ``first``..``last``; None when neither sets a limit."""
    if not (practitioner.limits.any or service.limits.any):
        return None
    weeks = av.limit_weeks(practitioner.zone, first, last)
    bookings = [
        b
        for b in uow.bookings.list_occupying(practitioner.id or 0, weeks)
        if b.id != ignore and weeks.start <= b.start < weeks.end
    ]

    def counted(service_id: int | None) -> tuple[tuple[datetime, int], ...]:
        return tuple(
            (b.start, int((b.end - b.start).total_seconds()) // 60)
            for b in bookings
            if service_id is None or b.service_id == service_id
        )

    return av.LimitCheck(
        zone=practitioner.zone,
        minutes=service.duration_minutes,
        rules=(
            (practitioner.limits, counted(None)),
            (service.limits, counted(service.id)),
        ),
    )


def _within_limits(
    uow: UnitOfWork,
    practitioner: Practitioner,
    service: Service,
    start: datetime,
    ignore: int | None = None,
) -> bool:
    """Whether the limits let a booking of ``service`` at ``start`` in, counting what is
    committed; the caller holds the practitioner's lock (PractitionerRepository.lock) so that
    no other hold can slip in between this count and its insert."""
    day = start.astimezone(practitioner.zone).date()
    check = _limit_check(uow, practitioner, service, day, day, ignore)
    return check is None or check.allows(start)


def _is_offered(
    practitioner: Practitioner,
    service: Service,
    start: datetime,
    now: datetime,
    calendar: CalendarGateway,
    occupied: list[Interval] | None = None,
) -> bool:
    """Whether ``start`` is on the day's offer, ignoring who holds it (see _is_taken).

    A ``fill`` service also restarts after busy blocks: ``occupied`` (the spans around the
    start) lets those restarts count as offered.
    """
    _, end = av.bookable_span(service, practitioner.zone, now)
    if not now <= start < end:
        return False  # also keeps dates like 9999-12-31 away from date arithmetic
    if calendar.link_for(practitioner) is None:
        # The working hours: check the one start rather than list the day.
        busy = occupied or []
        return av.offers_start(practitioner, service, start, now=now, occupied=[]) or (
            service.alignment is SlotAlignment.FILL
            and bool(busy)
            and av.offers_start(practitioner, service, start, now=now, occupied=busy)
        )
    day = start.astimezone(practitioner.zone).date()
    window = av.local_day_window(practitioner.zone, day, day)
    slots, _ = _slots(practitioner, service, day, day, window, now, [], calendar)
    if any(s.start == start for s in slots):
        return True
    if service.alignment is SlotAlignment.FILL and occupied:
        slots, _ = _slots(practitioner, service, day, day, window, now, occupied, calendar)
        return any(s.start == start for s in slots)
    return False


def _fill_busy(
    uow: UnitOfWork,
    practitioner: Practitioner,
    service: Service,
    start: datetime,
    ignore: int | None = None,
) -> list[Interval] | None:
    """The occupied spans _is_offered needs for a ``fill`` service (None for ``grid``)."""
    if service.alignment is not SlotAlignment.FILL:
        return None
    return _occupied_around(uow, practitioner, service, start, ignore)


def _is_taken(service: Service, start: datetime, occupied: list[Interval]) -> bool:
    """Whether the buffered span of a booking at ``start`` overlaps an occupied span."""
    span = service.buffered_span(start)
    return any(span.overlaps(other) for other in occupied)


def _occupied_around(
    uow: UnitOfWork,
    practitioner: Practitioner,
    service: Service,
    start: datetime,
    ignore: int | None = None,
) -> list[Interval]:
    day = start.astimezone(practitioner.zone).date()
    window = av.occupied_window(av.local_day_window(practitioner.zone, day, day), service)
    return [
        b.occupied
        for b in uow.bookings.list_occupying(practitioner.id or 0, window)
        if b.id != ignore
    ]
