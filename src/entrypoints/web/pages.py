"""HTML pages: where Stripe sends the client after checkout (success and cancel)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import Blueprint, render_template_string

from booking_core import usecases as uc
from booking_core.errors import ValidationFailed
from booking_core.model import Booking, BookingStatus
from entrypoints.web import schemas as sc
from entrypoints.web.common import deps, query_args
from entrypoints.web.openapi import HTML, operation

bp = Blueprint("pages", __name__)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ heading }}</title>
{% if refresh %}<meta http-equiv="refresh" content="3">{% endif %}
<link rel="stylesheet" href="{{ url_for('static', filename='pages.css') }}"></head>
<body><h1>{{ heading }}</h1>
<p>{{ message }}</p>
{% if booking %}
<p>Booking <strong>#{{ booking.id }}</strong>:
<span class="status" id="status">{{ booking.status.value }}</span></p>
<p>{{ when }}</p>
{% endif %}
</body></html>"""

_MESSAGES = {
    BookingStatus.CONFIRMED: ("Booking confirmed", "Thank you: your appointment is confirmed."),
    BookingStatus.COMPLETED: ("Booking completed", "This appointment has taken place."),
    BookingStatus.PENDING: (
        "Confirming your payment",
        "We are waiting for the payment confirmation; this page refreshes by itself.",
    ),
    BookingStatus.EXPIRED: (
        "Booking not confirmed",
        "The time held for payment ran out. If you were charged, the payment is refunded.",
    ),
    BookingStatus.CANCELLED: ("Booking cancelled", "This booking was cancelled."),
    BookingStatus.NO_SHOW: ("Booking missed", "This appointment was marked as missed."),
}


def _when(booking: Booking) -> str:
    """The start in the practitioner's own time zone, as the client booked it."""
    with deps().uow() as uow:
        practitioner = uow.practitioners.get(booking.practitioner_id, max_age=60)
    zone = practitioner.zone if practitioner is not None else ZoneInfo("UTC")
    local = booking.start.astimezone(zone)
    return f"{local:%A %d %B %Y, %H:%M} ({zone.key})"


def _find() -> Booking | None:
    """The booking of the checkout named by ``?session_id=``, or None (absent or malformed)."""
    try:
        session_id = sc.parse(sc.PageQuery, query_args()).session_id
    except ValidationFailed:
        return None
    if not session_id or len(session_id) > 255:  # no checkout has such an id
        return None
    return uc.find_booking_by_checkout(session_id, uow=deps().uow())


@bp.get("/booking/success")
@operation(
    "Where Checkout sends the client after paying",
    query=sc.PageQuery,
    responses={200: ("the booking's state", HTML), 404: ("no booking for this checkout", HTML)},
)
def success() -> tuple[str, int]:
    booking = _find()
    if booking is None:
        return render_template_string(
            _PAGE,
            heading="Booking not found",
            message="We could not find a booking for this checkout.",
            booking=None,
            refresh=False,
        ), 404
    heading, message = _MESSAGES[booking.status]
    return render_template_string(
        _PAGE,
        heading=heading,
        message=message,
        booking=booking,
        when=_when(booking),
        refresh=booking.status is BookingStatus.PENDING,
    ), 200


@bp.get("/booking/cancel")
@operation(
    "Where Checkout sends the client who cancels",
    query=sc.PageQuery,
    responses={200: ("the checkout was left", HTML)},
)
def cancel() -> tuple[str, int]:
    booking = _find()
    if booking is not None and not booking.occupies_calendar:
        message = "You left the checkout without paying; the time was released."
    else:
        message = (
            "You left the checkout without paying. The time stays held for a short while; "
            "after that it is offered to others again."
        )
    return render_template_string(
        _PAGE,
        heading="Checkout cancelled",
        message=message,
        booking=booking,
        when=_when(booking) if booking is not None else "",
        refresh=False,
    ), 200
