"""The client's pages: practitioners, a practitioner's week of slots, the booking form, the
pages Checkout returns to (success, cancel) and the manage page reached by the manage link.

Server-rendered with Jinja (templates/), styled and scripted by static files only (the CSP is
``default-src 'self'``). Times are shown in the visitor's time zone: ``?tz=`` when given, else
the ``booking_tz`` cookie (set by pages.js from the browser's zone, or by choosing a zone), else
the practitioner's. Every page calls the same use cases as the JSON API.
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, redirect, render_template, request
from markupsafe import Markup
from pydantic import ConfigDict, Field, WithJsonSchema
from werkzeug.wrappers import Response as WerkzeugResponse

from booking_core import usecases as uc
from booking_core.errors import BookingError, BookingNotFound, NotFound, ValidationFailed
from booking_core.model import Booking, BookingStatus, Interval, Money, Practitioner, Service
from entrypoints.web import schemas as sc
from entrypoints.web.common import deps, query_args
from entrypoints.web.openapi import HTML, HTML_OR_PROBLEM, operation, problem
from entrypoints.web.problems import status_for

bp = Blueprint("pages", __name__, template_folder="templates")

ZONE_COOKIE = "booking_tz"
# A week a page shows; the availability asked for is a day wider on each side, because the
# visitor's days and the practitioner's days need not line up.
WEEK = 7
# How far ahead the manage page offers other starts.
RESCHEDULE_DAYS = 14
_TEXT = Annotated[
    str,
    Field(strict=True, max_length=100),
    WithJsonSchema({"type": "string", "maxLength": 100, "pattern": sc.PARAMETER_PATTERN}),
]
_TOKEN = Annotated[
    str,
    Field(strict=True, min_length=1, max_length=200),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": 200, "pattern": sc.PARAMETER_PATTERN}
    ),
]


class PractitionerPageQuery(sc.Request):
    """The practitioner page: which service, which week (a local date), which zone."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    service: sc.QueryId | None = None
    week: Annotated[sc.DateIn | None, Field(description="the first day shown (default today)")] = (
        None
    )
    tz: Annotated[_TEXT | None, Field(description="an IANA time zone to show times in")] = None


class ManageQuery(sc.Request):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    token: _TOKEN | None = None
    tz: _TEXT | None = None


_TOKEN_FORM = {
    "type": "object",
    "required": ["token"],
    "properties": {"token": {"type": "string", "maxLength": 200}},
}
_RESCHEDULE_FORM = {
    "type": "object",
    "required": ["token", "start"],
    "properties": {
        "token": {"type": "string", "maxLength": 200},
        "start": {"type": "string", "maxLength": 40},
    },
}


# -- time zones ----------------------------------------------------------------------------------


@functools.cache
def known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@functools.cache
def zone_choices() -> tuple[str, ...]:
    return tuple(sorted(z for z in known_zones() if "/" in z or z == "UTC"))


@functools.lru_cache(maxsize=128)
def zone_options(selected: str) -> Markup:
    """The zone picker's ``<option>`` list, built once per selected zone (about 600 options:
    rendering them through the template on every request tripled the page's time)."""
    return Markup("\n").join(
        Markup('<option value="{0}"{1}>{0}</option>').format(
            zone, Markup(" selected") if zone == selected else ""
        )
        for zone in zone_choices()
    )


def _zone_named(name: str | None) -> ZoneInfo | None:
    if name and name in known_zones():
        return ZoneInfo(name)
    return None


def visitor_zone(default: ZoneInfo, asked: str | None = None) -> tuple[ZoneInfo, bool]:
    """The zone to show times in and whether the visitor chose it (``?tz=`` or the cookie)."""
    chosen = _zone_named(asked) or _zone_named(request.cookies.get(ZONE_COOKIE))
    return (chosen, True) if chosen is not None else (default, False)


def _remember_zone(response: Response, zone: ZoneInfo, asked: str | None) -> Response:
    if asked and _zone_named(asked) is not None:
        response.set_cookie(
            ZONE_COOKIE, zone.key, max_age=365 * 86400, samesite="Lax", httponly=False
        )
    return response


def when(moment: datetime, zone: ZoneInfo) -> str:
    """``Tuesday 08 January 2030, 09:00 (Europe/London)``."""
    return f"{moment.astimezone(zone):%A %d %B %Y, %H:%M} ({zone.key})"


def money_text(money: Money) -> str:
    """``90.00 GBP``: the amount in the currency's minor units (two decimals, ISO 4217 aside)."""
    digits, currency = money.minor_digits, money.currency.upper()
    if digits == 0:
        return f"{money.amount} {currency}"
    whole, fraction = divmod(money.amount, 10**digits)
    return f"{whole}.{fraction:0{digits}d} {currency}"


def _page(template: str, status: int = 200, **context: Any) -> Response:
    response = Response(render_template(template, **context), status=status, mimetype="text/html")
    return response


def _not_found(heading: str, message: str) -> Response:
    return _page("message.html", 404, heading=heading, message=message, zone=None)


# -- practitioners -------------------------------------------------------------------------------


@bp.get("/")
@operation("Practitioners (page)", responses={200: ("the practitioners", HTML)})
def index() -> Response:
    practitioners = uc.list_practitioners(uow=deps().uow())
    return _page("index.html", practitioners=practitioners, money=money_text, zone=None)


def group_by_day(
    slots: Iterable[Interval], zone: ZoneInfo, first: date, last: date
) -> list[tuple[date, list[Interval]]]:
    """The slots grouped by the visitor's local day, from ``first`` to ``last`` inclusive."""
    days: dict[date, list[Interval]] = {
        first + timedelta(days=n): [] for n in range((last - first).days + 1)
    }
    for slot in slots:
        day = slot.start.astimezone(zone).date()
        if day in days:
            days[day].append(slot)
    return list(days.items())


def _pick_service(practitioner: Practitioner, service_id: int | None) -> Service | None:
    services = [s for s in practitioner.services if s.active]
    if service_id is not None:
        return next((s for s in services if s.id == service_id), None)
    return services[0] if services else None


@bp.get("/p/<id:practitioner_id>")
@operation(
    "A practitioner, their services and a week of open slots (page)",
    query=PractitionerPageQuery,
    responses={
        200: ("the practitioner's page", HTML),
        404: ("no such practitioner or service", HTML_OR_PROBLEM),
    },
)
def practitioner_page(practitioner_id: int) -> Response:
    d = deps()
    now = d.clock.now()
    query = sc.parse(PractitionerPageQuery, query_args(), now=now, detail="invalid page query")
    try:
        # Read as availability reads the schedule: the page shows both side by side.
        practitioner = uc.get_practitioner(
            practitioner_id, uow=d.uow(), max_age=d.rules.schedule_cache_seconds
        )
    except NotFound:
        return _not_found("Practitioner not found", "There is no practitioner at this address.")
    service = _pick_service(practitioner, query.service)
    if service is None and query.service is not None:
        return _not_found("Service not found", "This practitioner offers no such service.")
    zone, chosen = visitor_zone(practitioner.zone, query.tz)
    today = now.astimezone(zone).date()
    first = max(query.week or today, today)
    last = first + timedelta(days=WEEK - 1)
    days: list[tuple[date, list[Interval]]] = []
    horizon = today
    if service is not None:
        horizon = today + timedelta(days=service.max_advance_days)
        local_today = now.astimezone(practitioner.zone).date()
        result = uc.get_availability(
            uc.AvailabilityQuery(
                practitioner_id=practitioner_id,
                service_id=service.id,
                first_day=max(first - timedelta(days=1), local_today),
                last_day=last + timedelta(days=1),
            ),
            uow=d.uow(),
            calendar=d.calendar,
            clock=d.clock,
            rules=d.rules,
        )
        days = group_by_day(result.slots, zone, first, last)

    def link(**changes: Any) -> str:
        params = {"service": service.id if service else None, "week": None, "tz": query.tz}
        params.update(changes)
        kept = {k: v for k, v in params.items() if v is not None}
        return f"/p/{practitioner_id}" + (f"?{urlencode(kept)}" if kept else "")

    previous = first - timedelta(days=WEEK)
    response = _page(
        "practitioner.html",
        practitioner=practitioner,
        services=[s for s in practitioner.services if s.active],
        service=service,
        days=days,
        zone=zone,
        zone_chosen=chosen,
        zone_options=zone_options(zone.key),
        money=money_text,
        first=first,
        last=last,
        previous_link=link(week=max(previous, today).isoformat()) if first > today else None,
        next_link=link(week=(first + timedelta(days=WEEK)).isoformat())
        if first + timedelta(days=WEEK) <= horizon
        else None,
        service_link=lambda s: link(service=s.id, week=query.week and first.isoformat()),
    )
    return _remember_zone(response, zone, query.tz)


# -- after the checkout --------------------------------------------------------------------------

_MESSAGES = {
    BookingStatus.CONFIRMED: ("Booking confirmed", "Thank you: your appointment is confirmed."),
    BookingStatus.COMPLETED: ("Booking completed", "This appointment has taken place."),
    BookingStatus.PENDING: (
        "Confirming your payment",
        "Payment received, confirming: we are waiting for the payment provider's "
        "confirmation. This page refreshes by itself.",
    ),
    BookingStatus.EXPIRED: (
        "Booking not confirmed",
        "The time held for payment ran out. If you were charged, the payment is refunded.",
    ),
    BookingStatus.CANCELLED: ("Booking cancelled", "This booking was cancelled."),
    BookingStatus.NO_SHOW: ("Booking missed", "This appointment was marked as missed."),
}


def _find() -> Booking | None:
    """The booking of the checkout named by ``?session_id=``, or None (absent or malformed)."""
    try:
        session_id = sc.parse(sc.PageQuery, query_args()).session_id
    except ValidationFailed:
        return None
    if not session_id or len(session_id) > 255:  # no checkout has such an id
        return None
    return uc.find_booking_by_checkout(session_id, uow=deps().uow())


def _described(booking: Booking) -> dict[str, Any]:
    """The practitioner, service and times of ``booking`` in the visitor's zone."""
    practitioner = uc.find_practitioner(booking.practitioner_id, uow=deps().uow(), max_age=60)
    own_zone = practitioner.zone if practitioner is not None else ZoneInfo("UTC")
    zone, chosen = visitor_zone(own_zone, request.args.get("tz"))
    service = practitioner.service(booking.service_id) if practitioner is not None else None
    return {
        "booking": booking,
        "practitioner": practitioner,
        "service": service,
        "zone": zone,
        "zone_chosen": chosen,
        "starts": when(booking.start, zone),
        "ends": when(booking.end, zone),
        "price": money_text(booking.price),
    }


@bp.get("/booking/success")
@operation(
    "Where Checkout sends the client after paying",
    query=sc.PageQuery,
    responses={200: ("the booking's state", HTML), 404: ("no booking for this checkout", HTML)},
)
def success() -> Response:
    booking = _find()
    if booking is None:
        return _not_found("Booking not found", "We could not find a booking for this checkout.")
    heading, message = _MESSAGES.get(
        booking.status, ("Your booking", f"This booking is {booking.status.value}.")
    )
    return _page(
        "success.html",
        heading=heading,
        message=message,
        refresh=booking.status is BookingStatus.PENDING,
        **_described(booking),
    )


@bp.get("/booking/cancel")
@operation(
    "Where Checkout sends the client who cancels",
    query=sc.PageQuery,
    responses={200: ("the checkout was left", HTML)},
)
def cancel() -> Response:
    booking = _find()
    if booking is not None and not booking.occupies_calendar:
        message = "You left the checkout without paying; the time was released."
    else:
        message = (
            "You left the checkout without paying. The time stays held for a short while; "
            "after that it is offered to others again."
        )
    context = _described(booking) if booking is not None else {"booking": None, "zone": None}
    return _page("cancel.html", message=message, **context)


# -- the manage page -----------------------------------------------------------------------------


def manage_url(booking_id: int, token: str, **extra: str) -> str:
    """The manage link: ``/manage/{booking_id}?token={manage token}``."""
    return f"/manage/{booking_id}?" + urlencode({"token": token, **extra})


def _authorised(booking_id: int, token: str | None) -> Booking | None:
    if not token:
        return None
    try:
        # The manage token of the booking answer, or the signed token of the link in its mails.
        d = deps()
        return uc.authorize_booking(booking_id, token, uow=d.uow(), rules=d.rules)
    except BookingNotFound:
        return None


def _manage_page(
    booking: Booking, token: str, *, status: int = 200, error: str | None = None
) -> Response:
    d = deps()
    context = _described(booking)
    quote = uc.quote_cancellation(booking, clock=d.clock, rules=d.rules)
    now = d.clock.now()
    options: list[tuple[date, list[Interval]]] = []
    if booking.occupies_calendar and booking.start > now:
        practitioner = context["practitioner"]
        local_today = now.astimezone(practitioner.zone).date() if practitioner else now.date()
        try:
            result = uc.get_availability(
                uc.AvailabilityQuery(
                    practitioner_id=booking.practitioner_id,
                    service_id=booking.service_id,
                    first_day=local_today,
                    last_day=local_today + timedelta(days=RESCHEDULE_DAYS),
                ),
                uow=d.uow(),
                calendar=d.calendar,
                clock=d.clock,
                rules=d.rules,
            )
        except BookingError:  # the service was withdrawn: nothing to move to
            result = None
        if result is not None:
            zone = context["zone"]
            slots = [s for s in result.slots if s.start != booking.start]
            first = now.astimezone(zone).date()
            options = [
                day
                for day in group_by_day(
                    slots, zone, first, first + timedelta(days=RESCHEDULE_DAYS + 1)
                )
                if day[1]
            ]
    refund = booking.refund
    return _page(
        "manage.html",
        status,
        token=token,
        quote=quote,
        quote_text=money_text(quote.refund) if quote.refund is not None else None,
        full_refund=quote.refund is not None and quote.refund == booking.price,
        options=options,
        error=error,
        refund_text=money_text(refund.amount) if refund is not None else None,
        refund_status=refund.status.value if refund is not None else None,
        done=request.args.get("done"),
        **context,
    )


def _refused(booking: Booking, token: str, error: BookingError) -> Response:
    """The manage page again, saying why the change was refused (outages stay problems)."""
    status = status_for(error)
    if status >= 500:
        raise error
    fresh = _authorised(booking.id or 0, token) or booking
    return _manage_page(fresh, token, status=status, error=error.detail)


_MANAGE_NOT_FOUND = ("Booking not found", "This manage link is not valid.")


@bp.get("/manage/<id:booking_id>")
@operation(
    "The manage page reached by the manage link: cancel or reschedule",
    query=ManageQuery,
    description="``/manage/{booking_id}?token={manage token}``; a wrong token is a 404.",
    responses={
        200: ("the booking", HTML),
        404: ("unknown booking or wrong token", HTML_OR_PROBLEM),
    },
)
def manage(booking_id: int) -> Response:
    query = sc.parse(ManageQuery, query_args(), detail="invalid page query")
    booking = _authorised(booking_id, query.token)
    if booking is None or query.token is None:
        return _not_found(*_MANAGE_NOT_FOUND)
    return _manage_page(booking, query.token)


def _form_token() -> str | None:
    token = request.form.get("token", "")
    return token if 0 < len(token) <= 200 else None


@bp.post("/manage/<id:booking_id>/cancel")
@operation(
    "Cancel from the manage page (the refund per the policy, shown on the page)",
    form=_TOKEN_FORM,
    responses={
        303: ("back to the manage page", None),
        404: ("unknown booking or wrong token", HTML_OR_PROBLEM),
        409: ("the booking can no longer be cancelled", HTML),
        503: problem("refund_failed / a service we depend on is down"),
    },
)
def manage_cancel(booking_id: int) -> Response | WerkzeugResponse:
    token = _form_token()
    booking = _authorised(booking_id, token)
    if booking is None or token is None:
        return _not_found(*_MANAGE_NOT_FOUND)
    d = deps()
    try:
        uc.cancel_booking(
            uc.CancelBooking(booking_id=booking_id, reason="cancelled from the manage page"),
            uow=d.uow(),
            payments=d.payments,
            calendar=d.calendar,
            clock=d.clock,
            rules=d.rules,
        )
    except BookingError as exc:
        return _refused(booking, token, exc)
    return redirect(manage_url(booking_id, token, done="cancelled"), code=303)


@bp.post("/manage/<id:booking_id>/reschedule")
@operation(
    "Move to another offered start from the manage page",
    form=_RESCHEDULE_FORM,
    responses={
        303: ("back to the manage page", None),
        404: ("unknown booking or wrong token", HTML_OR_PROBLEM),
        409: ("the booking cannot move, or the time was taken", HTML),
        422: ("not an offered start", HTML_OR_PROBLEM),
        503: problem("a service we depend on is down"),
    },
)
def manage_reschedule(booking_id: int) -> Response | WerkzeugResponse:
    token = _form_token()
    booking = _authorised(booking_id, token)
    if booking is None or token is None:
        return _not_found(*_MANAGE_NOT_FOUND)
    d = deps()
    try:
        body = sc.parse(
            sc.RescheduleRequest,
            {"start": request.form.get("start", "")},
            now=d.clock.now(),
            detail="choose one of the offered times",
        )
        uc.reschedule_booking(
            uc.RescheduleBooking(booking_id=booking_id, new_start=body.start),
            uow=d.uow(),
            calendar=d.calendar,
            clock=d.clock,
            rules=d.rules,
        )
    except BookingError as exc:
        return _refused(booking, token, exc)
    return redirect(manage_url(booking_id, token, done="rescheduled"), code=303)


@bp.get("/manage/<id:booking_id>/booking.ics")
@operation(
    "The booking as an iCalendar file (add to calendar)",
    query=ManageQuery,
    responses={
        200: ("an RFC 5545 calendar with the appointment", ("text/calendar", {"type": "string"})),
        404: ("unknown booking or wrong token", HTML_OR_PROBLEM),
    },
)
def manage_ics(booking_id: int) -> Response:
    query = sc.parse(ManageQuery, query_args(), detail="invalid page query")
    booking = _authorised(booking_id, query.token)
    if booking is None:
        return _not_found(*_MANAGE_NOT_FOUND)
    context = _described(booking)
    body = ics(booking, context["practitioner"], context["service"], deps().settings.base_url)
    response = Response(body, mimetype="text/calendar")
    response.headers["Content-Disposition"] = f'attachment; filename="booking-{booking_id}.ics"'
    return response


def _ics_text(value: str) -> str:
    """RFC 5545 section 3.3.11: backslash, semicolon, comma and newline escaped."""
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _fold(line: str) -> list[str]:
    """RFC 5545 section 3.1: lines longer than 75 octets continue on lines opened by a space."""
    out, current = [], ""
    for char in line:
        if len((current + char).encode()) > 75:
            out.append(current)
            current = " " + char
        else:
            current += char
    return [*out, current]


def ics(
    booking: Booking,
    practitioner: Practitioner | None,
    service: Service | None,
    base_url: str,
) -> str:
    """One VEVENT for the appointment, times in UTC, UID stable per booking."""

    def stamp(moment: datetime) -> str:
        return moment.astimezone(ZoneInfo("UTC")).strftime("%Y%m%dT%H%M%SZ")

    host = base_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0] or "booking"
    summary = " with ".join(
        part
        for part in ((service.name if service else ""), practitioner.name if practitioner else "")
        if part
    )
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//practitioner-booking//pages//EN",
        "CALSCALE:GREGORIAN",
        "BEGIN:VEVENT",
        f"UID:booking-{booking.id}@{host}",
        f"DTSTAMP:{stamp(booking.updated_at)}",
        f"DTSTART:{stamp(booking.start)}",
        f"DTEND:{stamp(booking.end)}",
        f"SUMMARY:{_ics_text(summary or 'Appointment')}",
        "STATUS:" + ("CANCELLED" if booking.status is BookingStatus.CANCELLED else "CONFIRMED"),
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "\r\n".join(folded for line in lines for folded in _fold(line)) + "\r\n"
