"""Admin use cases: practitioners, services, hours, time off, the Cal.com link and bookings.

Every function takes the ``Actor`` asking and decides what it may do (booking_core.access): an
admin anything, a practitioner only their own practitioner's things (another's answer as not
found), anyone else Forbidden. Every change writes an audit entry in the same transaction as
the change, so both commit or neither does; a refused request changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

import attrs
from attrs import frozen

from booking_core.access import Actor, AuditEntry
from booking_core.errors import (
    BookingNotFound,
    NotFound,
    PractitionerNotFound,
    ServiceNotFound,
    ValidationFailed,
)
from booking_core.model import (
    Booking,
    CalendarLink,
    Interval,
    Practitioner,
    Service,
    TimeOff,
    WeeklyHours,
)
from booking_core.ports import BookingFilter, CalendarGateway, Clock, UnitOfWork
from booking_core.usecases._shared import _get

log = logging.getLogger(__name__)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# What a practitioner's own fields are; ``update_practitioner`` changes only these.
PRACTITIONER_FIELDS = frozenset({"name", "email", "timezone", "title", "bio", "active", "limits"})
# A service's fields an admin sets; new Service fields are picked up by adding them here.
SERVICE_FIELDS = frozenset(
    {
        "name",
        "duration_minutes",
        "price",
        "buffer_before_minutes",
        "buffer_after_minutes",
        "min_notice_minutes",
        "max_advance_days",
        "slot_interval_minutes",
        "alignment",
        "window",
        "limits",
        "requires_confirmation",
        "key",
        "active",
    }
)


class TimeOffNotFound(NotFound):
    title = "Time off not found"


# -- snapshots for the audit log (plain JSON values, never a secret) ------------------------------


def _iso(value: datetime) -> str:
    return value.isoformat()


def hours_json(hours: WeeklyHours) -> dict[str, list[dict[str, str]]]:
    """The weekly hours as ``{"mon": [{"start": "09:00", "end": "12:00"}], ...}``."""
    return {
        day: [{"start": str(r).split("-")[0], "end": str(r).split("-")[1]} for r in ranges]
        for day, ranges in zip(WEEKDAYS, hours.days, strict=True)
    }


def practitioner_snapshot(p: Practitioner) -> dict[str, Any]:
    link = p.calendar_link
    return {
        "id": p.id,
        "name": p.name,
        "email": p.email,
        "timezone": p.timezone,
        "title": p.title,
        "bio": p.bio,
        "active": p.active,
        "calcom": {"user": link.user, "event_type": link.event_type} if link else None,
        "limits": attrs.asdict(p.limits),
    }


def service_snapshot(s: Service) -> dict[str, Any]:
    values: dict[str, Any] = {"id": s.id}
    for name in sorted(SERVICE_FIELDS):
        value = getattr(s, name)
        if name == "price":
            value = {"amount": value.amount, "currency": value.currency}
        elif name == "window":
            value = {
                "kind": value.kind.value,
                "days": value.days,
                "first_day": value.first_day.isoformat() if value.first_day else None,
                "last_day": value.last_day.isoformat() if value.last_day else None,
            }
        elif name == "limits":
            value = attrs.asdict(value)
        elif name == "alignment":
            value = value.value
        values[name] = value
    return values


def time_off_snapshot(t: TimeOff) -> dict[str, Any]:
    return {
        "id": t.id,
        "start": _iso(t.period.start),
        "end": _iso(t.period.end),
        "reason": t.reason,
    }


def booking_snapshot(b: Booking) -> dict[str, Any]:
    refund = b.refund
    return {
        "id": b.id,
        "status": b.status.value,
        "practitioner_id": b.practitioner_id,
        "service_id": b.service_id,
        "start": _iso(b.start),
        "end": _iso(b.end),
        "refund": (
            {
                "amount": refund.amount.amount,
                "currency": refund.amount.currency,
                "status": refund.status.value,
            }
            if refund
            else None
        ),
    }


def record(
    uow: UnitOfWork,
    *,
    actor: Actor,
    at: datetime,
    action: str,
    object_type: str,
    object_id: object,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    request_id: str | None,
) -> AuditEntry:
    """Write one audit entry in ``uow`` (the caller's open transaction, before its commit)."""
    return uow.audit.add(
        AuditEntry(
            at=at,
            actor_type=actor.type,
            actor_id=actor.id,
            actor_name=actor.name,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            before=before,
            after=after,
            request_id=request_id,
        )
    )


# -- practitioners --------------------------------------------------------------------------------


def _practitioner(uow: UnitOfWork, actor: Actor, practitioner_id: int) -> Practitioner:
    missing = PractitionerNotFound(f"no practitioner with id {practitioner_id}")
    actor.require_practitioner(practitioner_id, missing)
    practitioner = uow.practitioners.get(practitioner_id)
    if practitioner is None:
        raise missing
    return practitioner


def list_admin_practitioners(*, actor: Actor, uow: UnitOfWork) -> list[Practitioner]:
    """Every practitioner, inactive ones too, by id (a practitioner sees only their own).

    Raises Forbidden for anyone but an admin or a practitioner.
    """
    actor.require_staff()
    with uow:
        if actor.is_admin:
            return uow.practitioners.list(active_only=False)
        found = uow.practitioners.get(actor.practitioner_id or 0)
    return [found] if found is not None else []


def get_admin_practitioner(practitioner_id: int, *, actor: Actor, uow: UnitOfWork) -> Practitioner:
    """Raises Forbidden (not staff), PractitionerNotFound (unknown, or another's)."""
    with uow:
        return _practitioner(uow, actor, practitioner_id)


@frozen(kw_only=True)
class NewPractitioner:
    name: str
    email: str
    timezone: str
    title: str = ""
    bio: str = ""
    active: bool = True


def _invalid(exc: ValueError, field: str) -> ValidationFailed:
    return ValidationFailed(str(exc), errors={field: [str(exc)]})


def create_practitioner(
    cmd: NewPractitioner,
    *,
    actor: Actor,
    uow: UnitOfWork,
    clock: Clock,
    request_id: str | None = None,
) -> Practitioner:
    """Add a practitioner (active unless ``cmd.active`` is False). Admins only (Forbidden).

    Raises ValidationFailed for an unknown time zone.
    """
    actor.require_admin()
    try:
        candidate = Practitioner(
            name=cmd.name,
            email=cmd.email,
            timezone=cmd.timezone,
            title=cmd.title,
            bio=cmd.bio,
            active=cmd.active,
        )
    except ValueError as exc:
        raise _invalid(exc, "timezone") from exc
    with uow:
        stored = uow.practitioners.add(candidate)
        record(
            uow,
            actor=actor,
            at=clock.now(),
            action="practitioner.create",
            object_type="practitioner",
            object_id=stored.id,
            before=None,
            after=practitioner_snapshot(stored),
            request_id=request_id,
        )
        uow.commit()
    return stored


def _change(
    practitioner_id: int,
    change: Any,
    *,
    action: str,
    actor: Actor,
    uow: UnitOfWork,
    clock: Clock,
    request_id: str | None,
    snapshot: Any = practitioner_snapshot,
) -> Practitioner:
    """Load, apply ``change(practitioner) -> practitioner``, save, audit, commit."""
    with uow:
        before = _practitioner(uow, actor, practitioner_id)
        snapshot_before = snapshot(before)
        after = change(before.copy())
        uow.practitioners.save(after)
        record(
            uow,
            actor=actor,
            at=clock.now(),
            action=action,
            object_type="practitioner",
            object_id=practitioner_id,
            before=snapshot_before,
            after=snapshot(after),
            request_id=request_id,
        )
        uow.commit()
        stored = uow.practitioners.get(practitioner_id)
    if stored is None:  # pragma: no cover - saved in this very transaction
        raise PractitionerNotFound(f"no practitioner with id {practitioner_id}")
    return stored


def update_practitioner(
    practitioner_id: int,
    changes: Mapping[str, Any],
    *,
    actor: Actor,
    uow: UnitOfWork,
    clock: Clock,
    request_id: str | None = None,
) -> Practitioner:
    """Change any of PRACTITIONER_FIELDS. Raises Forbidden, PractitionerNotFound,
    ValidationFailed (an unknown field or time zone)."""
    unknown = set(changes) - PRACTITIONER_FIELDS
    if unknown:
        raise ValidationFailed(
            "unknown fields", errors={name: ["unknown field"] for name in sorted(unknown)}
        )

    def change(p: Practitioner) -> Practitioner:
        try:
            return attrs.evolve(p, **changes)
        except ValueError as exc:
            raise _invalid(exc, "timezone") from exc

    return _change(
        practitioner_id,
        change,
        action="practitioner.update",
        actor=actor,
        uow=uow,
        clock=clock,
        request_id=request_id,
    )


def set_working_hours(
    practitioner_id: int,
    hours: WeeklyHours,
    *,
    actor: Actor,
    uow: UnitOfWork,
    clock: Clock,
    request_id: str | None = None,
) -> Practitioner:
    """Replace the practitioner's weekly hours. Raises Forbidden, PractitionerNotFound."""
    return _change(
        practitioner_id,
        lambda p: attrs.evolve(p, weekly_hours=hours),
        action="practitioner.working_hours",
        actor=actor,
        uow=uow,
        clock=clock,
        request_id=request_id,
        snapshot=lambda p: {"working_hours": hours_json(p.weekly_hours)},
    )


def link_calendar(
    practitioner_id: int,
    link: CalendarLink | None,
    *,
    actor: Actor,
    uow: UnitOfWork,
    clock: Clock,
    calendar: CalendarGateway,
    request_id: str | None = None,
) -> Practitioner:
    """Store (or, with None, remove) the practitioner's Cal.com link; cached slots are dropped
    in every process. Raises Forbidden, PractitionerNotFound."""
    stored = _change(
        practitioner_id,
        lambda p: attrs.evolve(p, calendar_link=link),
        action="practitioner.calcom" if link is not None else "practitioner.calcom_unlink",
        actor=actor,
        uow=uow,
        clock=clock,
        request_id=request_id,
    )
    calendar.invalidate(practitioner_id)
    return stored


# -- services -------------------------------------------------------------------------------------


class _HasId(Protocol):
    @property
    def id(self) -> int | None: ...


_Child = TypeVar("_Child", bound=_HasId)


def _saved_new(
    uow: UnitOfWork,
    practitioner: Practitioner,
    children: Callable[[Practitioner], Sequence[_Child]],
    known: set[int | None],
) -> _Child:
    """Save ``practitioner`` with one child added (a service, a time off) and return that child
    as stored, with the id the repository gave it."""
    uow.practitioners.save(practitioner)
    stored = uow.practitioners.get(practitioner.id or 0)
    return next(c for c in (children(stored) if stored else []) if c.id not in known)


def add_service(
    practitioner_id: int,
    service: Service,
    *,
    actor: Actor,
    uow: UnitOfWork,
    clock: Clock,
    request_id: str | None = None,
) -> Service:
    """Add ``service`` (its id is assigned) to the practitioner. Raises Forbidden,
    PractitionerNotFound."""
    with uow:
        practitioner = _practitioner(uow, actor, practitioner_id)
        known = {s.id for s in practitioner.services}
        practitioner.services.append(attrs.evolve(service, id=None))
        added = _saved_new(uow, practitioner, lambda p: p.services, known)
        record(
            uow,
            actor=actor,
            at=clock.now(),
            action="service.create",
            object_type="service",
            object_id=added.id,
            before=None,
            after={"practitioner_id": practitioner_id, **service_snapshot(added)},
            request_id=request_id,
        )
        uow.commit()
    return added


def update_service(
    service_id: int,
    changes: Mapping[str, Any],
    *,
    actor: Actor,
    uow: UnitOfWork,
    clock: Clock,
    request_id: str | None = None,
) -> Service:
    """Change any of SERVICE_FIELDS (``active`` False takes it off the public list; existing
    bookings keep their price and buffers). Raises Forbidden, ServiceNotFound (unknown, or
    another practitioner's), ValidationFailed."""
    unknown = set(changes) - SERVICE_FIELDS
    if unknown:
        raise ValidationFailed(
            "unknown fields", errors={name: ["unknown field"] for name in sorted(unknown)}
        )
    actor.require_staff()
    missing = ServiceNotFound(f"no service with id {service_id}")
    with uow:
        owner = uow.practitioners.owner_of_service(service_id)
        if owner is None:
            raise missing
        actor.require_practitioner(owner, missing)
        practitioner = _practitioner(uow, actor, owner)
        index, current = next(
            (i, s) for i, s in enumerate(practitioner.services) if s.id == service_id
        )
        changed = attrs.evolve(current, **changes)  # validates (ValidationFailed)
        practitioner.services[index] = changed
        uow.practitioners.save(practitioner)
        record(
            uow,
            actor=actor,
            at=clock.now(),
            action="service.update",
            object_type="service",
            object_id=service_id,
            before={"practitioner_id": owner, **service_snapshot(current)},
            after={"practitioner_id": owner, **service_snapshot(changed)},
            request_id=request_id,
        )
        uow.commit()
    return changed


# -- time off -------------------------------------------------------------------------------------


def add_time_off(
    practitioner_id: int,
    period: Interval,
    reason: str = "",
    *,
    actor: Actor,
    uow: UnitOfWork,
    clock: Clock,
    request_id: str | None = None,
) -> TimeOff:
    """Block ``period`` on the practitioner's calendar; returns it with its id. Raises
    Forbidden, PractitionerNotFound."""
    with uow:
        practitioner = _practitioner(uow, actor, practitioner_id)
        known = {t.id for t in practitioner.time_off}
        practitioner.time_off.append(TimeOff(period, reason))
        added = _saved_new(uow, practitioner, lambda p: p.time_off, known)
        record(
            uow,
            actor=actor,
            at=clock.now(),
            action="time_off.create",
            object_type="time_off",
            object_id=added.id,
            before=None,
            after={"practitioner_id": practitioner_id, **time_off_snapshot(added)},
            request_id=request_id,
        )
        uow.commit()
    return added


def remove_time_off(
    time_off_id: int,
    *,
    actor: Actor,
    uow: UnitOfWork,
    clock: Clock,
    request_id: str | None = None,
) -> None:
    """Delete a time off. Raises Forbidden, TimeOffNotFound (unknown, or another's)."""
    actor.require_staff()
    missing = TimeOffNotFound(f"no time off with id {time_off_id}")
    with uow:
        owner = uow.practitioners.owner_of_time_off(time_off_id)
        if owner is None:
            raise missing
        actor.require_practitioner(owner, missing)
        practitioner = _practitioner(uow, actor, owner)
        gone = practitioner.remove_time_off(time_off_id)
        if gone is None:
            raise missing
        uow.practitioners.save(practitioner)
        record(
            uow,
            actor=actor,
            at=clock.now(),
            action="time_off.delete",
            object_type="time_off",
            object_id=time_off_id,
            before={"practitioner_id": owner, **time_off_snapshot(gone)},
            after=None,
            request_id=request_id,
        )
        uow.commit()


# -- bookings -------------------------------------------------------------------------------------


@frozen
class BookingPage:
    """One page of bookings by (start, id); ``next_after`` is the key to pass for the next
    page, None on the last."""

    items: list[Booking]
    next_after: tuple[datetime, int] | None


def list_admin_bookings(filters: BookingFilter, *, actor: Actor, uow: UnitOfWork) -> BookingPage:
    """Bookings matching ``filters`` by start then id, ``filters.limit`` at a time after
    ``filters.after``. A practitioner sees only their own (a filter on another practitioner
    finds nothing). Raises Forbidden for anyone but an admin or a practitioner."""
    actor.require_staff()
    if not actor.is_admin:
        if filters.practitioner_id not in (None, actor.practitioner_id):
            return BookingPage(items=[], next_after=None)
        filters = attrs.evolve(filters, practitioner_id=actor.practitioner_id)
    wanted = attrs.evolve(filters, oldest_first=True, limit=filters.limit + 1)
    with uow:
        found = uow.bookings.list(wanted)
    items = found[: filters.limit]
    more = len(found) > filters.limit
    last = items[-1] if items else None
    next_after = (last.start, last.id or 0) if more and last is not None else None
    return BookingPage(items=items, next_after=next_after)


def _booking(uow: UnitOfWork, actor: Actor, booking_id: int) -> Booking:
    actor.require_staff()
    booking = uow.bookings.get(booking_id)
    missing = BookingNotFound(f"no booking with id {booking_id}")
    if booking is None:
        raise missing
    actor.require_practitioner(booking.practitioner_id, missing)
    return booking


def get_admin_booking(booking_id: int, *, actor: Actor, uow: UnitOfWork) -> Booking:
    """Raises Forbidden (not staff), BookingNotFound (unknown, or another practitioner's)."""
    with uow:
        return _booking(uow, actor, booking_id)


def mark_no_show(
    booking_id: int,
    *,
    actor: Actor,
    uow: UnitOfWork,
    clock: Clock,
    request_id: str | None = None,
) -> Booking:
    """The client did not come: a confirmed booking whose start has passed becomes
    ``no_show``. Raises Forbidden, BookingNotFound, InvalidTransition."""
    now = clock.now()
    with uow:
        booking = _booking(uow, actor, booking_id)
        before = booking_snapshot(booking)
        booking.mark_no_show(at=now)
        uow.bookings.save(booking)
        record(
            uow,
            actor=actor,
            at=now,
            action="booking.no_show",
            object_type="booking",
            object_id=booking_id,
            before=before,
            after=booking_snapshot(booking),
            request_id=request_id,
        )
        uow.commit()
    return _stored(uow, booking_id)


def _stored(uow: UnitOfWork, booking_id: int) -> Booking:
    with uow:
        return _get(uow, booking_id)
