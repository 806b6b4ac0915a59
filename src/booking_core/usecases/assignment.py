"""Any available practitioner: availability over every practitioner offering a service of one
key, and a booking assigned to the free practitioner least booked that week."""

from __future__ import annotations

from datetime import UTC, date, datetime

import attrs
from attrs import frozen

from booking_core import availability as av
from booking_core.errors import (
    LimitReached,
    OutsideAvailability,
    ServiceNotFound,
    SlotUnavailable,
)
from booking_core.model import Practitioner, Service
from booking_core.policy import BookingRules
from booking_core.ports import (
    CalendarGateway,
    Clock,
    IdempotencyRecord,
    PaymentGateway,
    UnitOfWork,
)
from booking_core.usecases._shared import _aware_utc
from booking_core.usecases.availability import (
    AvailabilityQuery,
    _is_offered,
    _is_taken,
    _occupied_around,
    _within_limits,
    get_availability,
)
from booking_core.usecases.booking import (
    BookingRequested,
    IdempotencyClaim,
    RequestBooking,
    request_booking,
    request_booking_once,
)


def offering(uow: UnitOfWork, key: str) -> list[tuple[Practitioner, Service]]:
    """Active practitioners with an active service of ``key``, by practitioner id (in the
    caller's transaction)."""
    found = []
    for practitioner in uow.practitioners.list(active_only=True):
        service = next((s for s in practitioner.services if s.active and s.key == key), None)
        if service is not None:
            found.append((practitioner, service))
    return found


@frozen
class SharedSlot:
    """A start that one or more practitioners offer for a service key (equivalent services
    may differ in length: each offer says when its slot ends)."""

    start: datetime
    offers: tuple[tuple[int, int, datetime], ...]  # (practitioner id, service id, end)


@frozen
class ServiceAvailability:
    key: str
    timezone: str  # the zone of first_day/last_day: the client's, else UTC
    first_day: date
    last_day: date
    slots: list[SharedSlot]


def get_service_availability(
    key: str,
    *,
    first_day: date | None = None,
    last_day: date | None = None,
    timezone: str | None = None,
    uow: UnitOfWork,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules,
) -> ServiceAvailability:
    """Open slots of every practitioner offering a service of ``key``, merged: each start once,
    with who offers it (and until when). Dates are local to ``timezone`` (default UTC, as the
    practitioners' zones may differ). Raises ServiceNotFound (no active service has the key),
    ValidationFailed (bad zone or dates)."""
    zone = timezone or "UTC"
    with uow:
        found = offering(uow, key)
    if not found:
        raise ServiceNotFound(f"no practitioner offers a service {key!r}")
    offers: dict[datetime, list[tuple[int, int, datetime]]] = {}
    first = last = None
    for practitioner, service in found:
        result = get_availability(
            AvailabilityQuery(
                practitioner_id=practitioner.id or 0,
                service_id=service.id,
                first_day=first_day,
                last_day=last_day,
                timezone=zone,
            ),
            uow=uow,
            calendar=calendar,
            clock=clock,
            rules=rules,
        )
        first, last = result.first_day, result.last_day
        for slot in result.slots:
            offers.setdefault(slot.start, []).append(
                (practitioner.id or 0, service.id or 0, slot.end)
            )
    assert first is not None
    assert last is not None
    slots = [
        SharedSlot(start=start, offers=tuple(sorted(who))) for start, who in sorted(offers.items())
    ]
    return ServiceAvailability(key=key, timezone=zone, first_day=first, last_day=last, slots=slots)


def _key_of(uow: UnitOfWork, service_id: int) -> str:
    for practitioner in uow.practitioners.list(active_only=True):
        service = practitioner.service(service_id)
        if service is not None and service.active:
            if service.key is None:
                raise ServiceNotFound(
                    f"service {service_id} has no key: book it with its own practitioner"
                )
            return service.key
    raise ServiceNotFound(f"no service with id {service_id}")


def rank_candidates(
    cmd: RequestBooking, *, uow: UnitOfWork, calendar: CalendarGateway, clock: Clock
) -> list[tuple[Practitioner, Service]]:
    """Who could take ``cmd`` (its ``service_id`` names any service of the shared key; its
    ``practitioner_id`` is ignored): practitioners whose equivalent service offers the start,
    free and within their limits, least booked first in the start's local week (Monday to
    Sunday, the practitioner's zone), then the one booked least recently, then by id."""
    now = clock.now()
    start = _aware_utc(cmd.start, "start")
    with uow:
        found = offering(uow, _key_of(uow, cmd.service_id))
    ranked: list[tuple[tuple[int, datetime, int], Practitioner, Service]] = []
    for practitioner, service in found:
        if not _is_offered(practitioner, service, start, now, calendar):
            continue
        with uow:
            if _is_taken(service, start, _occupied_around(uow, practitioner, service, start)):
                continue
            if not _within_limits(uow, practitioner, service, start):
                continue
            day = start.astimezone(practitioner.zone).date()
            week = av.limit_weeks(practitioner.zone, day, day)
            booked = [
                b
                for b in uow.bookings.list_occupying(practitioner.id or 0, week)
                if week.start <= b.start < week.end
            ]
        latest = max((b.created_at for b in booked), default=_NEVER)
        ranked.append(((len(booked), latest, practitioner.id or 0), practitioner, service))
    ranked.sort(key=lambda item: item[0])
    return [(p, s) for _, p, s in ranked]


_NEVER = datetime(1970, 1, 1, tzinfo=UTC)  # "never booked" sorts first among equals


def request_booking_any(
    cmd: RequestBooking,
    *,
    uow: UnitOfWork,
    payments: PaymentGateway,
    calendar: CalendarGateway,
    clock: Clock,
    rules: BookingRules,
    idempotency: IdempotencyClaim | None = None,
) -> BookingRequested | IdempotencyRecord:
    """request_booking with any available practitioner (rank_candidates): the best-ranked is
    tried first; one that another client took meanwhile (or whose limit filled) is passed
    over for the next, each hold decided by the same transaction and constraint as any other,
    so two clients never get one practitioner's slot. With ``idempotency`` each try runs under
    the key (request_booking_once; a failed try releases it for the next). Raises
    ServiceNotFound (no such service, or one without a key), SlotUnavailable (nobody is free
    then), and as request_booking."""
    candidates = rank_candidates(cmd, uow=uow, calendar=calendar, clock=clock)
    for practitioner, service in candidates:
        attempt = attrs.evolve(
            cmd, practitioner_id=practitioner.id or 0, service_id=service.id or 0
        )
        try:
            if idempotency is None:
                return request_booking(
                    attempt,
                    uow=uow,
                    payments=payments,
                    calendar=calendar,
                    clock=clock,
                    rules=rules,
                )
            return request_booking_once(
                attempt,
                idempotency,
                uow=uow,
                payments=payments,
                calendar=calendar,
                clock=clock,
                rules=rules,
            )
        except (SlotUnavailable, LimitReached, OutsideAvailability):
            continue
    raise SlotUnavailable(f"no practitioner is free at {cmd.start.isoformat()}")
