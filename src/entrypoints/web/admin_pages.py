"""The admin dashboard (``/admin``): bookings per day and practitioner, a booking's detail with
cancel, refund override and no-show, practitioners with their services, weekly hours and time
off (the resulting slots previewed), parked jobs with retry, and the audit log.

Behind sign-in: a visitor who is not signed in goes to ``/auth/login?next=...``. Every view calls
the admin use cases with the signed-in user's ``Actor``, so who may do what is decided in
booking_core, as for the admin API: a practitioner sees only their own (another's is a 404), an
admin-only page answers 403. Forms post the session's CSRF token.
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
from booking_core.access import Actor, AuditFilter
from booking_core.errors import BookingError, Forbidden, NotFound, Unauthorized, ValidationFailed
from booking_core.jobs import JobStatus
from booking_core.model import Booking, BookingStatus, Practitioner
from booking_core.ports import BookingFilter
from entrypoints.web import admin_schemas as asc
from entrypoints.web import schemas as sc
from entrypoints.web.common import deps, query_args, request_id
from entrypoints.web.openapi import HTML, HTML_OR_PROBLEM, operation, problem
from entrypoints.web.pages import group_by_day, money_text, visitor_zone, when, zone_options
from entrypoints.web.problems import status_for
from entrypoints.web.session import cookie_user, csrf_token

bp = Blueprint("admin_pages", __name__, template_folder="templates", url_prefix="/admin")

PAGE_SIZE = 100
_SIGN_IN = "Pages for a browser signed in with the session cookie; without one, a 302 to sign in."
_SIGNED_IN = {
    302: ("not signed in: to /auth/login?next=...", None),
    403: ("signed in without admin access", HTML),
}
_CSRF_ONLY = {
    "type": "object",
    "required": ["csrf_token"],
    "properties": {"csrf_token": {"type": "string"}},
}


def _form(**fields: Any) -> dict[str, Any]:
    """A form body's schema: the CSRF token plus ``fields`` (all strings, as forms send)."""
    return {
        "type": "object",
        "required": ["csrf_token"],
        "properties": {"csrf_token": {"type": "string"}, **fields},
    }


_TEXT = {"type": "string", "maxLength": 2000}
_CANCEL_FORM = _form(
    reason={"type": "string", "maxLength": 500},
    refund={"type": "string", "enum": ["policy", "full", "none"]},
)
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS_FORM = _form(**{day: {"type": "string", "maxLength": 400} for day in _DAYS})
_TIME_OFF_FORM = _form(start=_TEXT, end=_TEXT, reason=_TEXT)
_PROFILE_FORM = _form(name=_TEXT, email=_TEXT, timezone=_TEXT, title=_TEXT, bio=_TEXT, active=_TEXT)
_SERVICE_FIELDS = (
    "name",
    "duration_minutes",
    "price_amount",
    "currency",
    "buffer_before_minutes",
    "buffer_after_minutes",
    "min_notice_minutes",
    "max_advance_days",
    "slot_interval_minutes",
    "active",
)
_SERVICE_FORM = _form(**{name: _TEXT for name in _SERVICE_FIELDS})
_CHANGED = {
    303: ("back to the page, changed", None),
    401: problem("unauthorized: not signed in"),
    403: problem("csrf_failed / forbidden"),
    404: ("unknown, or another practitioner's", HTML_OR_PROBLEM),
    409: ("refused: the page says why", HTML),
    422: ("refused: the page names the field", HTML_OR_PROBLEM),
    503: problem("a service we depend on is down"),
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


class PreviewQuery(sc.Request):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    service: sc.QueryId | None = None
    done: Annotated[
        str | None,
        Field(strict=True, max_length=20),
        WithJsonSchema({"type": "string", "maxLength": 20, "pattern": sc.PARAMETER_PATTERN}),
    ] = None


class AuditPageQuery(sc.Request):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    object_type: Annotated[
        sc.Line | None, BeforeValidator(_blank), Field(description="booking, practitioner, ...")
    ] = None
    object_id: Annotated[sc.Line | None, BeforeValidator(_blank)] = None
    before: Annotated[sc.QueryId | None, Field(description="older than this entry id")] = None


def _page(template: str, status: int = 200, **context: Any) -> Response:
    return Response(
        render_template(template, admin_csrf=csrf_token() or "", **context),
        status=status,
        mimetype="text/html",
    )


class _NotAllowed(Exception):
    """Signed in, but the use case refused the actor (Forbidden)."""


def _who() -> Actor | WerkzeugResponse:
    """The signed-in user's Actor; a redirect to sign in for a visitor (GET), 401 for a post."""
    user = cookie_user()  # checks the CSRF token on a POST
    if user is None:
        if request.method != "GET":  # a form post is not a navigation to send elsewhere
            raise Unauthorized("sign in at /auth/login")
        target = request.full_path.rstrip("?")
        return redirect("/auth/login?" + urlencode({"next": target}), code=302)
    actor = Actor.for_user(user)
    try:
        actor.require_staff()
    except Forbidden as exc:
        if request.method != "GET":  # a form post answers a problem, as the API does
            raise
        raise _NotAllowed from exc
    return actor


def _uc(**extra: Any) -> dict[str, Any]:
    d = deps()
    return {"uow": d.uow(), "clock": d.clock, "request_id": request_id(), **extra}


@bp.errorhandler(_NotAllowed)
def _forbidden(_error: _NotAllowed) -> Response:
    return _page(
        "message.html",
        403,
        heading="No admin access",
        message="Your account has no access to this page. Ask an admin to give you a role.",
        zone=None,
    )


def _not_found(what: str = "Booking") -> Response:
    return _page(
        "message.html",
        404,
        heading=f"{what} not found",
        message=f"No such {what.lower()}.",
        zone=None,
    )


def _common(actor: Actor) -> dict[str, Any]:
    return {"actor": actor, "zone": None}


def _practitioners(actor: Actor) -> dict[int, Practitioner]:
    return {p.id or 0: p for p in uc.list_admin_practitioners(actor=actor, uow=deps().uow())}


# -- bookings ------------------------------------------------------------------------------------


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
    actor = _who()
    if not isinstance(actor, Actor):
        return actor
    practitioners = _practitioners(actor)
    chosen = query.practitioner_id if actor.is_admin else actor.practitioner_id
    zone = practitioners[chosen].zone if chosen in practitioners else ZoneInfo("UTC")
    today = d.clock.now().astimezone(zone).date()
    first = query.from_ or today
    start_from = datetime.combine(first, time(), zone)
    start_to = datetime.combine(query.to + timedelta(days=1), time(), zone) if query.to else None
    page = uc.list_admin_bookings(
        BookingFilter(
            practitioner_id=chosen,
            status=query.status,
            start_from=start_from,
            start_to=start_to,
            client_email=query.email,
            limit=PAGE_SIZE,
        ),
        actor=actor,
        uow=d.uow(),
    )
    days: dict[str, list[dict[str, Any]]] = {}
    for booking in page.items:
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
    return _page(
        "admin_bookings.html",
        days=days,
        practitioners=list(practitioners.values()),
        query=query,
        chosen=chosen,
        first=first,
        statuses=[s.value for s in BookingStatus],
        full=page.next_after is not None,
        **_common(actor),
    )


@bp.get("/bookings/<id:booking_id>")
@operation(
    "Admin dashboard: one booking, with cancel, refund override and no-show (page)",
    description=_SIGN_IN,
    responses={
        200: ("the booking", HTML),
        404: ("unknown booking, or another practitioner's", HTML_OR_PROBLEM),
        **_SIGNED_IN,
    },
)
def booking_detail(booking_id: int) -> Response | WerkzeugResponse:
    actor = _who()
    if not isinstance(actor, Actor):
        return actor
    try:
        booking = uc.get_admin_booking(booking_id, actor=actor, uow=deps().uow())
    except NotFound:
        return _not_found()
    return _detail(booking, actor)


def _detail(
    booking: Booking, actor: Actor, *, status: int = 200, error: str | None = None
) -> Response:
    d = deps()
    practitioner = _practitioners(actor).get(booking.practitioner_id)
    own = practitioner.zone if practitioner else ZoneInfo("UTC")
    zone, _ = visitor_zone(own)
    service = practitioner.service(booking.service_id) if practitioner else None
    quote = uc.quote_cancellation(booking, clock=d.clock, rules=d.rules)
    return _page(
        "admin_booking.html",
        status,
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
        may_no_show=booking.status is BookingStatus.CONFIRMED and booking.start <= d.clock.now(),
        error=error,
        done=request.args.get("done"),
        **_common(actor),
    )


def _refused(error: BookingError, render: Any) -> Response:
    """The page again, saying why the use case refused (outages stay problems)."""
    status = status_for(error)
    if status >= 500:
        raise error
    message = error.detail
    if isinstance(error, ValidationFailed) and error.errors:
        message += ": " + "; ".join(f"{k} {', '.join(v)}" for k, v in error.errors.items())
    return render(status, message)  # type: ignore[no-any-return]


_REFUND = {"policy": None, "full": True, "none": False}


@bp.post("/bookings/<id:booking_id>/cancel")
@operation(
    "Admin dashboard: cancel a booking; refund per the policy, in full or none (form)",
    form=_CANCEL_FORM,
    responses=_CHANGED,
)
def cancel_booking(booking_id: int) -> Response | WerkzeugResponse:
    actor = _who()
    if not isinstance(actor, Actor):
        return actor
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
            actor=actor,
            request_id=request_id(),
        )
    except NotFound:
        return _not_found()
    except BookingError as exc:
        return _refused(exc, lambda status, message: _again(booking_id, actor, status, message))
    return redirect(f"/admin/bookings/{booking_id}?done=cancelled", code=303)


def _again(booking_id: int, actor: Actor, status: int, message: str) -> Response:
    booking = uc.get_admin_booking(booking_id, actor=actor, uow=deps().uow())
    return _detail(booking, actor, status=status, error=message)


@bp.post("/bookings/<id:booking_id>/no-show")
@operation("Admin dashboard: the client did not come (form)", form=_CSRF_ONLY, responses=_CHANGED)
def no_show(booking_id: int) -> Response | WerkzeugResponse:
    actor = _who()
    if not isinstance(actor, Actor):
        return actor
    try:
        uc.mark_no_show(booking_id, actor=actor, **_uc())
    except NotFound:
        return _not_found()
    except BookingError as exc:
        return _refused(exc, lambda status, message: _again(booking_id, actor, status, message))
    return redirect(f"/admin/bookings/{booking_id}?done=no_show", code=303)


# -- practitioners, services, hours, time off ------------------------------------------------------


@bp.get("/practitioners")
@operation(
    "Admin dashboard: practitioners (page)",
    description=_SIGN_IN,
    responses={200: ("the practitioners", HTML), **_SIGNED_IN},
)
def practitioners() -> Response | WerkzeugResponse:
    actor = _who()
    if not isinstance(actor, Actor):
        return actor
    return _practitioners_page(actor)


def _practitioners_page(actor: Actor, status: int = 200, error: str | None = None) -> Response:
    return _page(
        "admin_practitioners.html",
        status,
        practitioners=list(_practitioners(actor).values()),
        zone_options=zone_options(""),
        error=error,
        **_common(actor),
    )


@bp.post("/practitioners")
@operation("Admin dashboard: add a practitioner (form)", form=_PROFILE_FORM, responses=_CHANGED)
def create_practitioner() -> Response | WerkzeugResponse:
    actor = _who()
    if not isinstance(actor, Actor):
        return actor
    form = request.form
    data = {k: form.get(k, "") for k in ("name", "email", "timezone", "title", "bio")}
    try:
        body = sc.parse(asc.PractitionerCreate, data, detail="the practitioner has invalid fields")
        added = uc.create_practitioner(body.to_command(), actor=actor, **_uc())
    except BookingError as exc:
        return _refused(exc, lambda status, message: _practitioners_page(actor, status, message))
    return redirect(f"/admin/practitioners/{added.id}?done=created", code=303)


@bp.get("/practitioners/<id:practitioner_id>")
@operation(
    "Admin dashboard: a practitioner's profile, services, weekly hours and time off, with the "
    "resulting slots (page)",
    description=_SIGN_IN,
    query=PreviewQuery,
    responses={
        200: ("the editor", HTML),
        404: ("unknown practitioner, or another's", HTML_OR_PROBLEM),
        **_SIGNED_IN,
    },
)
def practitioner_detail(practitioner_id: int) -> Response | WerkzeugResponse:
    query = sc.parse(PreviewQuery, query_args(), detail="invalid page query")
    actor = _who()
    if not isinstance(actor, Actor):
        return actor
    try:
        return _editor(practitioner_id, actor, service_id=query.service)
    except NotFound:
        return _not_found("Practitioner")


def _hours_text(practitioner: Practitioner) -> dict[str, str]:
    out = {}
    for day, ranges in zip(_DAYS, practitioner.weekly_hours.days, strict=True):
        out[day] = ", ".join(
            f"{r.start_minute // 60:02d}:{r.start_minute % 60:02d}-"
            f"{r.end_minute // 60:02d}:{r.end_minute % 60:02d}"
            for r in ranges
        )
    return out


def _editor(
    practitioner_id: int,
    actor: Actor,
    *,
    service_id: int | None = None,
    status: int = 200,
    error: str | None = None,
) -> Response:
    d = deps()
    practitioner = uc.get_admin_practitioner(practitioner_id, actor=actor, uow=d.uow())
    active = [s for s in practitioner.services if s.active]
    service = next((s for s in active if s.id == service_id), active[0] if active else None)
    days: list[tuple[Any, list[Any]]] = []
    if service is not None and practitioner.active:
        today = d.clock.now().astimezone(practitioner.zone).date()
        result = uc.get_availability(
            uc.AvailabilityQuery(
                practitioner_id=practitioner_id,
                service_id=service.id,
                first_day=today,
                last_day=today + timedelta(days=6),
            ),
            uow=d.uow(),
            calendar=d.calendar,
            clock=d.clock,
            rules=d.rules,
        )
        days = group_by_day(result.slots, practitioner.zone, today, today + timedelta(days=6))
    return _page(
        "admin_practitioner.html",
        status,
        practitioner=practitioner,
        hours=_hours_text(practitioner),
        day_names=dict(zip(_DAYS, _DAY_NAMES, strict=True)),
        preview_service=service,
        preview=days,
        local=lambda moment: f"{moment.astimezone(practitioner.zone):%a %d %b %Y %H:%M}",
        zone_options=zone_options(practitioner.timezone),
        money=money_text,
        error=error,
        done=request.args.get("done"),
        **_common(actor),
    )


_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _editor_refused(practitioner_id: int, actor: Actor) -> Any:
    return lambda status, message: _editor(practitioner_id, actor, status=status, error=message)


def _changed(practitioner_id: int, what: str) -> WerkzeugResponse:
    return redirect(f"/admin/practitioners/{practitioner_id}?done={what}", code=303)


# Its own path: a POST rule on the GET page's path answers an out-of-range id with 405 (Werkzeug
# checks the method before the id converter refuses the id).
@bp.post("/practitioners/<id:practitioner_id>/profile")
@operation(
    "Admin dashboard: change a practitioner's profile (form)",
    form=_PROFILE_FORM,
    responses=_CHANGED,
)
def update_practitioner(practitioner_id: int) -> Response | WerkzeugResponse:
    actor = _who()
    if not isinstance(actor, Actor):
        return actor
    form = request.form
    data: dict[str, Any] = {
        k: form.get(k, "") for k in ("name", "email", "timezone", "title", "bio")
    }
    data["active"] = form.get("active") == "on"
    try:
        body = sc.parse(asc.PractitionerPatch, data, detail="the profile has invalid fields")
        uc.update_practitioner(practitioner_id, body.changes(), actor=actor, **_uc())
    except NotFound:
        return _not_found("Practitioner")
    except BookingError as exc:
        return _refused(exc, _editor_refused(practitioner_id, actor))
    return _changed(practitioner_id, "profile")


def _ranges(day: str, text: str) -> list[dict[str, str]]:
    """``09:00-12:00, 13:00-17:00`` as the API's ranges; ValidationFailed naming the day."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        start, dash, end = part.partition("-")
        if not dash:
            raise ValidationFailed(
                "write hours like 09:00-12:00, 13:00-17:00",
                errors={day: ["write hours like 09:00-12:00, 13:00-17:00"]},
            )
        out.append({"start": start.strip(), "end": end.strip()})
    return out


@bp.post("/practitioners/<id:practitioner_id>/hours")
@operation("Admin dashboard: replace the weekly hours (form)", form=_HOURS_FORM, responses=_CHANGED)
def set_hours(practitioner_id: int) -> Response | WerkzeugResponse:
    actor = _who()
    if not isinstance(actor, Actor):
        return actor
    try:
        week = {day: _ranges(day, request.form.get(day, "")) for day in _DAYS}
        body = sc.parse(asc.WorkingHoursIn, week, detail="the hours are not valid")
        uc.set_working_hours(practitioner_id, body.to_domain(), actor=actor, **_uc())
    except NotFound:
        return _not_found("Practitioner")
    except BookingError as exc:
        return _refused(exc, _editor_refused(practitioner_id, actor))
    return _changed(practitioner_id, "hours")


def _local(text: str, zone: ZoneInfo) -> str:
    """A ``datetime-local`` value (the practitioner's wall clock) as RFC 3339, or as given."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.isoformat()


@bp.post("/practitioners/<id:practitioner_id>/time-off")
@operation(
    "Admin dashboard: add time off (form; local times)", form=_TIME_OFF_FORM, responses=_CHANGED
)
def add_time_off(practitioner_id: int) -> Response | WerkzeugResponse:
    actor = _who()
    if not isinstance(actor, Actor):
        return actor
    d = deps()
    try:
        zone = uc.get_admin_practitioner(practitioner_id, actor=actor, uow=d.uow()).zone
        data: dict[str, Any] = {
            "start": _local(request.form.get("start", ""), zone),
            "end": _local(request.form.get("end", ""), zone),
        }
        if request.form.get("reason"):
            data["reason"] = request.form["reason"]
        body = sc.parse(asc.TimeOffIn, data, detail="the time off is not valid")
        uc.add_time_off(practitioner_id, body.period(), body.reason or "", actor=actor, **_uc())
    except NotFound:
        return _not_found("Practitioner")
    except BookingError as exc:
        return _refused(exc, _editor_refused(practitioner_id, actor))
    return _changed(practitioner_id, "time_off")


@bp.post("/practitioners/<id:practitioner_id>/time-off/<id:time_off_id>/delete")
@operation("Admin dashboard: remove a time off (form)", form=_CSRF_ONLY, responses=_CHANGED)
def remove_time_off(practitioner_id: int, time_off_id: int) -> Response | WerkzeugResponse:
    actor = _who()
    if not isinstance(actor, Actor):
        return actor
    try:
        uc.remove_time_off(time_off_id, actor=actor, **_uc())
    except NotFound:
        return _not_found("Time off")
    except BookingError as exc:
        return _refused(exc, _editor_refused(practitioner_id, actor))
    return _changed(practitioner_id, "time_off")


def _service_data(partial: bool) -> dict[str, Any]:
    """The service form as the API's body: numbers from their text, "" as absent."""
    form = request.form
    data: dict[str, Any] = {}
    for name in _SERVICE_FIELDS:
        text = form.get(name, "").strip()
        if name in ("active", "currency", "price_amount") or (not text and partial):
            continue
        if name == "name":
            data[name] = text
        elif text:
            data[name] = int(text) if text.isdigit() else text
    amount, currency = form.get("price_amount", "").strip(), form.get("currency", "").strip()
    if amount or currency or not partial:
        data["price"] = {
            "amount": int(amount) if amount.isdigit() else amount,
            "currency": currency.lower(),
        }
    data["active"] = form.get("active") == "on"
    return data


@bp.post("/practitioners/<id:practitioner_id>/services")
@operation("Admin dashboard: add a service (form)", form=_SERVICE_FORM, responses=_CHANGED)
def add_service(practitioner_id: int) -> Response | WerkzeugResponse:
    actor = _who()
    if not isinstance(actor, Actor):
        return actor
    try:
        body = sc.parse(
            asc.ServiceCreate, _service_data(False), detail="the service has invalid fields"
        )
        uc.add_service(practitioner_id, body.to_domain(), actor=actor, **_uc())
    except NotFound:
        return _not_found("Practitioner")
    except BookingError as exc:
        return _refused(exc, _editor_refused(practitioner_id, actor))
    return _changed(practitioner_id, "service")


@bp.post("/practitioners/<id:practitioner_id>/services/<id:service_id>")
@operation("Admin dashboard: change a service (form)", form=_SERVICE_FORM, responses=_CHANGED)
def update_service(practitioner_id: int, service_id: int) -> Response | WerkzeugResponse:
    actor = _who()
    if not isinstance(actor, Actor):
        return actor
    try:
        body = sc.parse(
            asc.ServicePatch, _service_data(True), detail="the service has invalid fields"
        )
        uc.update_service(service_id, body.changes(), actor=actor, **_uc())
    except NotFound:
        return _not_found("Service")
    except BookingError as exc:
        return _refused(exc, _editor_refused(practitioner_id, actor))
    return _changed(practitioner_id, "service")


# -- jobs and audit --------------------------------------------------------------------------------


@bp.get("/jobs")
@operation(
    "Admin dashboard: parked background jobs, with retry (page; admins only)",
    description=_SIGN_IN,
    responses={200: ("the parked jobs", HTML), **_SIGNED_IN},
)
def jobs() -> Response | WerkzeugResponse:
    actor = _who()
    if not isinstance(actor, Actor):
        return actor
    return _jobs_page(actor)


def _jobs_page(actor: Actor, status: int = 200, error: str | None = None) -> Response:
    try:
        parked = uc.list_jobs(JobStatus.PARKED, actor=actor, uow=deps().uow())
    except Forbidden as exc:
        raise _NotAllowed from exc
    return _page(
        "admin_jobs.html",
        status,
        jobs=parked,
        error=error,
        done=request.args.get("done"),
        **_common(actor),
    )


@bp.post("/jobs/<id:job_id>/retry")
@operation(
    "Admin dashboard: queue a parked job again (form; admins only)",
    form=_CSRF_ONLY,
    responses=_CHANGED,
)
def retry_job(job_id: int) -> Response | WerkzeugResponse:
    actor = _who()
    if not isinstance(actor, Actor):
        return actor
    try:
        uc.retry_job(job_id, actor=actor, **_uc())
    except NotFound:
        return _not_found("Job")
    return redirect(f"/admin/jobs?done={job_id}", code=303)


@bp.get("/audit")
@operation(
    "Admin dashboard: the audit log, newest first (page; admins only)",
    description=_SIGN_IN,
    query=AuditPageQuery,
    responses={200: ("the audit log", HTML), **_SIGNED_IN},
)
def audit() -> Response | WerkzeugResponse:
    query = sc.parse(AuditPageQuery, query_args(), detail="invalid filters")
    actor = _who()
    if not isinstance(actor, Actor):
        return actor
    try:
        page = uc.list_audit(
            AuditFilter(
                object_type=query.object_type,
                object_id=query.object_id,
                before_id=query.before,
                limit=50,
            ),
            actor=actor,
            uow=deps().uow(),
        )
    except Forbidden as exc:
        raise _NotAllowed from exc
    return _page(
        "admin_audit.html",
        entries=page.items,
        next_before=page.next_before_id,
        query=query,
        **_common(actor),
    )
