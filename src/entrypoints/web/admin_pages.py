"""The admin dashboard (``/admin``): bookings per day and practitioner, a booking's detail with
cancel and refund override, and the parked background jobs.

Behind sign-in: a visitor who is not signed in goes to ``/auth/login?next=...``; a signed-in
user without admin access sees a 403 page. A practitioner sees only their own practitioner's
bookings (another's booking is a 404). Forms post the session's CSRF token.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, redirect, render_template, request
from pydantic import BeforeValidator, ConfigDict, Field, WithJsonSchema
from werkzeug.wrappers import Response as WerkzeugResponse

from booking_core import usecases as uc
from booking_core.errors import BookingError, Forbidden, NotFound, Unauthorized, ValidationFailed
from booking_core.jobs import JobStatus
from booking_core.model import Booking, BookingStatus, Practitioner, Role, User
from booking_core.ports import BookingFilter
from entrypoints.web import schemas as sc
from entrypoints.web.common import deps, query_args
from entrypoints.web.openapi import HTML, HTML_OR_PROBLEM, operation, problem
from entrypoints.web.pages import money_text, visitor_zone, when
from entrypoints.web.problems import status_for
from entrypoints.web.session import cookie_user, csrf_token

bp = Blueprint("admin_pages", __name__, template_folder="templates", url_prefix="/admin")

PAGE_SIZE = 100
_SIGN_IN = "Pages for a browser signed in with the session cookie; without one, a 302 to sign in."
_SIGNED_IN = {
    302: ("not signed in: to /auth/login?next=...", None),
    403: ("signed in without admin access", HTML),
}
_CANCEL_FORM = {
    "type": "object",
    "required": ["csrf_token"],
    "properties": {
        "csrf_token": {"type": "string"},
        "reason": {"type": "string", "maxLength": 500},
        "refund": {"type": "string", "enum": ["policy", "full", "none"]},
    },
}


def _blank(value: object) -> object:
    """A field the filter form sent empty filters nothing."""
    return None if value == "" else value


_BLANK = {"type": "string", "maxLength": 0}
_DATE = {"type": "string", "pattern": sc.DATE_PATTERN}


class AdminBookingsPageQuery(sc.Request):
    """Filters of the bookings list; dates are the practitioner's local days; "" is no filter."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    practitioner_id: Annotated[
        sc.QueryId | None,
        BeforeValidator(_blank),
        WithJsonSchema({"anyOf": [_BLANK, {**sc.ID_SCHEMA}]}),
    ] = None
    status: Annotated[
        BookingStatus | None,
        Field(strict=False),
        BeforeValidator(_blank),
        WithJsonSchema({"anyOf": [_BLANK, {"enum": [s.value for s in BookingStatus]}]}),
    ] = None
    from_: Annotated[
        sc.DateIn | None,
        Field(alias="from"),
        BeforeValidator(_blank),
        WithJsonSchema({"anyOf": [_BLANK, _DATE]}),
    ] = None
    to: Annotated[
        sc.DateIn | None, BeforeValidator(_blank), WithJsonSchema({"anyOf": [_BLANK, _DATE]})
    ] = None
    email: Annotated[
        sc.Line | None,
        Field(description="the client's email, exactly"),
        BeforeValidator(_blank),
    ] = None


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return Response(
        render_template(template, admin_csrf=csrf_token() or "", **context),
        status=status,
        mimetype="text/html",
    )


class _NotAllowed(Exception):
    """Signed in, but without access to the dashboard."""


def _who() -> User | WerkzeugResponse:
    """The signed-in admin or practitioner; a redirect to sign in for a visitor."""
    user = cookie_user()  # checks the CSRF token on a POST
    if user is None:
        if request.method != "GET":  # a form post is not a navigation to send elsewhere
            raise Unauthorized("sign in at /auth/login")
        target = request.full_path.rstrip("?")
        return redirect("/auth/login?" + urlencode({"next": target}), code=302)
    if not _has_access(user):
        if request.method != "GET":  # a form post answers a problem, as the API does
            raise Forbidden("this needs an admin or a practitioner")
        raise _NotAllowed
    return user


def _has_access(user: User) -> bool:
    return user.is_admin or (user.role is Role.PRACTITIONER and user.practitioner_id is not None)


def _scope(user: User) -> int | None:
    """The one practitioner a practitioner user may see (None: an admin sees all)."""
    return None if user.is_admin else user.practitioner_id


@bp.errorhandler(_NotAllowed)
def _forbidden(_error: _NotAllowed) -> Response:
    return _page(
        "message.html",
        403,
        heading="No admin access",
        message="Your account has no access to the dashboard. Ask an admin to give you a role.",
        zone=None,
    )


def _practitioners() -> dict[int, Practitioner]:
    with deps().uow() as uow:
        return {p.id or 0: p for p in uow.practitioners.list(active_only=False)}


def _booking_for(user: User, booking_id: int) -> Booking:
    booking = uc.get_booking(booking_id, uow=deps().uow())
    scope = _scope(user)
    if scope is not None and booking.practitioner_id != scope:
        raise NotFound(f"no booking with id {booking_id}")  # another's: as if absent
    return booking


@bp.get("")
@operation(
    "Admin dashboard: bookings per day and practitioner (page)",
    description=_SIGN_IN,
    query=AdminBookingsPageQuery,
    responses={200: ("the bookings", HTML), **_SIGNED_IN},
)
def bookings() -> Response | WerkzeugResponse:
    d = deps()
    query = sc.parse(
        AdminBookingsPageQuery, query_args(), now=d.clock.now(), detail="invalid filters"
    )
    user = _who()
    if not isinstance(user, User):
        return user
    practitioners = _practitioners()
    scope = _scope(user)
    chosen = scope if scope is not None else query.practitioner_id
    zone = practitioners[chosen].zone if chosen in practitioners else ZoneInfo("UTC")
    today = d.clock.now().astimezone(zone).date()
    first = query.from_ or today
    start_from = datetime.combine(first, time(), zone)
    start_to = datetime.combine(query.to + timedelta(days=1), time(), zone) if query.to else None
    items = uc.list_bookings(
        BookingFilter(
            practitioner_id=chosen,
            status=query.status,
            start_from=start_from,
            start_to=start_to,
            client_email=query.email,
            limit=PAGE_SIZE,
        ),
        uow=d.uow(),
    )
    days: dict[str, list[dict[str, Any]]] = {}
    for booking in sorted(items, key=lambda b: (b.start, b.id or 0)):
        practitioner = practitioners.get(booking.practitioner_id)
        own = practitioner.zone if practitioner else ZoneInfo("UTC")
        local = booking.start.astimezone(own)
        service = practitioner.service(booking.service_id) if practitioner else None
        days.setdefault(f"{local:%A %d %B %Y}", []).append(
            {
                "booking": booking,
                "time": f"{local:%H:%M}",
                "zone": own.key,
                "practitioner": practitioner.name if practitioner else "",
                "service": service.name if service else "",
            }
        )
    visible = [p for pid, p in practitioners.items() if scope is None or pid == scope]
    return _page(
        "admin_bookings.html",
        user=user,
        days=days,
        practitioners=visible,
        query=query,
        chosen=chosen,
        first=first,
        statuses=[s.value for s in BookingStatus],
        zone=None,
        full=len(items) >= PAGE_SIZE,
    )


@bp.get("/bookings/<id:booking_id>")
@operation(
    "Admin dashboard: one booking, with cancel and refund override (page)",
    description=_SIGN_IN,
    responses={
        200: ("the booking", HTML),
        404: ("unknown booking, or another practitioner's", HTML_OR_PROBLEM),
        **_SIGNED_IN,
    },
)
def booking_detail(booking_id: int) -> Response | WerkzeugResponse:
    user = _who()
    if not isinstance(user, User):
        return user
    try:
        booking = _booking_for(user, booking_id)
    except NotFound:
        return _not_found()
    return _detail(booking, user)


def _not_found() -> Response:
    return _page(
        "message.html", 404, heading="Booking not found", message="No such booking.", zone=None
    )


def _detail(
    booking: Booking, user: User, *, status: int = 200, error: str | None = None
) -> Response:
    d = deps()
    practitioner = _practitioners().get(booking.practitioner_id)
    own = practitioner.zone if practitioner else ZoneInfo("UTC")
    zone, _ = visitor_zone(own)
    service = practitioner.service(booking.service_id) if practitioner else None
    quote = uc.quote_cancellation(booking, clock=d.clock, rules=d.rules)
    return _page(
        "admin_booking.html",
        status,
        user=user,
        booking=booking,
        practitioner=practitioner,
        service=service,
        starts=when(booking.start, zone),
        ends=when(booking.end, zone),
        price=money_text(booking.price),
        quote=quote,
        quote_text=money_text(quote.refund) if quote.refund is not None else None,
        refund_text=money_text(booking.refund.amount) if booking.refund else None,
        refund_status=booking.refund.status.value if booking.refund else None,
        error=error,
        done=request.args.get("done"),
        zone=None,
    )


_REFUND = {"policy": None, "full": True, "none": False}


@bp.post("/bookings/<id:booking_id>/cancel")
@operation(
    "Admin dashboard: cancel a booking; refund per the policy, in full or none (form)",
    session=True,
    form=_CANCEL_FORM,
    responses={
        303: ("back to the booking", None),
        401: problem("unauthorized: not signed in"),
        403: problem("csrf_failed / forbidden: no admin access"),
        404: ("unknown booking, or another practitioner's", HTML_OR_PROBLEM),
        409: ("the booking can no longer be cancelled", HTML),
        422: ("refund or reason refused", HTML),
        503: problem("a service we depend on is down"),
    },
)
def cancel_booking(booking_id: int) -> Response | WerkzeugResponse:
    user = _who()
    if not isinstance(user, User):
        return user
    try:
        booking = _booking_for(user, booking_id)
    except NotFound:
        return _not_found()
    d = deps()
    refund = request.form.get("refund", "policy")
    reason = request.form.get("reason", "")
    try:
        if refund not in _REFUND:
            raise ValidationFailed("refund must be policy, full or none")
        body = sc.parse(sc.CancelRequest, {"reason": reason} if reason else {})
        uc.cancel_booking(
            uc.CancelBooking(
                booking_id=booking_id,
                reason=body.reason or "cancelled from the dashboard",
                by_admin=True,
                refund_override=_REFUND[refund],
            ),
            uow=d.uow(),
            payments=d.payments,
            calendar=d.calendar,
            clock=d.clock,
            rules=d.rules,
        )
    except BookingError as exc:
        status = status_for(exc)
        if status >= 500:
            raise
        return _detail(_booking_for(user, booking_id), user, status=status, error=exc.detail)
    return redirect(f"/admin/bookings/{booking.id}?done=cancelled", code=303)


@bp.get("/jobs")
@operation(
    "Admin dashboard: parked background jobs (page)",
    description=_SIGN_IN,
    responses={200: ("the parked jobs", HTML), **_SIGNED_IN},
)
def jobs() -> Response | WerkzeugResponse:
    user = _who()
    if not isinstance(user, User):
        return user
    if not user.is_admin:
        raise _NotAllowed
    with deps().uow() as uow:
        parked = uow.outbox.list(JobStatus.PARKED)
    return _page("admin_jobs.html", user=user, jobs=parked, zone=None)
