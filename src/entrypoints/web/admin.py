"""Admin API (/api/admin): practitioners, services, hours, time off, the Cal.com link, bookings,
parked jobs, users, audit and API tokens.

Callers are a bearer token (ADMIN_API_TOKEN or an issued API token) or a signed-in admin or
practitioner (the session cookie, with X-CSRF-Token on changes). Views parse with the declared
models and call use cases with the ``Actor``; what the actor may do is decided in booking_core.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify

from booking_core import usecases as uc
from booking_core.access import AuditFilter, decode_cursor, encode_cursor
from booking_core.errors import ValidationFailed
from booking_core.model import Role
from booking_core.ports import BookingFilter
from entrypoints.web import admin_schemas as asc
from entrypoints.web import schemas as sc
from entrypoints.web.common import current_actor, deps, json_body, query_args, request_id
from entrypoints.web.openapi import Body, operation, problem

bp = Blueprint("admin", __name__, url_prefix="/api/admin")

_ERRORS: dict[int, tuple[str, Body]] = {
    401: problem("unauthorized: no or a wrong token, or not signed in"),
    403: problem("forbidden (not an admin or a practitioner) / csrf_failed"),
}
_ADMIN_ONLY: dict[int, tuple[str, Body]] = {
    401: problem("unauthorized: no or a wrong token, or not signed in"),
    403: problem("forbidden: admins only / csrf_failed"),
}
_NOT_FOUND = {404: problem("not_found (also another practitioner's)")}


@bp.before_request
def _signed_in() -> None:
    current_actor()  # 401 before anything else is read; the use cases decide the rest


def _who() -> dict[str, Any]:
    d = deps()
    return {"actor": current_actor(), "uow": d.uow(), "clock": d.clock, "request_id": request_id()}


def _practitioner_json(practitioner: Any) -> Response:
    return jsonify(asc.admin_practitioner_out(practitioner).body())


# -- practitioners --------------------------------------------------------------------------------


@bp.get("/practitioners")
@operation(
    "Practitioners, inactive ones too (a practitioner sees their own)",
    security=True,
    session=True,
    responses={200: ("practitioners", asc.AdminPractitionerList), **_ERRORS},
)
def list_practitioners() -> Response:
    found = uc.list_admin_practitioners(actor=current_actor(), uow=deps().uow())
    body = asc.AdminPractitionerList(items=[asc.admin_practitioner_out(p) for p in found])
    return jsonify(body.body())


@bp.post("/practitioners")
@operation(
    "Add a practitioner (active unless the body says otherwise; admins only)",
    security=True,
    session=True,
    body=asc.PractitionerCreate,
    responses={201: ("created", asc.AdminPractitionerOut), **_ADMIN_ONLY},
)
def create_practitioner() -> tuple[Response, int]:
    body = sc.parse(asc.PractitionerCreate, json_body())
    created = uc.create_practitioner(body.to_command(), **_who())
    return _practitioner_json(created), 201


@bp.get("/practitioners/<id:practitioner_id>")
@operation(
    "One practitioner with services, hours, time off and the Cal.com link",
    security=True,
    session=True,
    responses={200: ("the practitioner", asc.AdminPractitionerOut), **_ERRORS, **_NOT_FOUND},
)
def get_practitioner(practitioner_id: int) -> Response:
    found = uc.get_admin_practitioner(practitioner_id, actor=current_actor(), uow=deps().uow())
    return _practitioner_json(found)


@bp.patch("/practitioners/<id:practitioner_id>")
@operation(
    "Change a practitioner's fields (active false takes them off the public list)",
    security=True,
    session=True,
    body=asc.PractitionerPatch,
    responses={200: ("changed", asc.AdminPractitionerOut), **_ERRORS, **_NOT_FOUND},
)
def update_practitioner(practitioner_id: int) -> Response:
    body = sc.parse(asc.PractitionerPatch, json_body())
    changed = uc.update_practitioner(practitioner_id, body.changes(), **_who())
    return _practitioner_json(changed)


@bp.put("/practitioners/<id:practitioner_id>/working-hours")
@operation(
    "Replace the weekly working hours (local times; several ranges a day, no overlaps)",
    security=True,
    session=True,
    body=asc.WorkingHoursIn,
    responses={200: ("the practitioner", asc.AdminPractitionerOut), **_ERRORS, **_NOT_FOUND},
)
def set_working_hours(practitioner_id: int) -> Response:
    body = sc.parse(asc.WorkingHoursIn, json_body())
    changed = uc.set_working_hours(practitioner_id, body.to_domain(), **_who())
    return _practitioner_json(changed)


@bp.post("/practitioners/<id:practitioner_id>/time-off")
@operation(
    "Block a span (holiday, leave) on the practitioner's calendar",
    security=True,
    session=True,
    body=asc.TimeOffIn,
    responses={201: ("created", asc.TimeOffOut), **_ERRORS, **_NOT_FOUND},
)
def add_time_off(practitioner_id: int) -> tuple[Response, int]:
    body = sc.parse(asc.TimeOffIn, json_body())
    added = uc.add_time_off(practitioner_id, body.period(), body.reason or "", **_who())
    return jsonify(asc.time_off_out(added).body()), 201


@bp.delete("/time-off/<id:time_off_id>")
@operation(
    "Remove a time off",
    security=True,
    session=True,
    responses={204: ("removed", None), **_ERRORS, **_NOT_FOUND},
)
def remove_time_off(time_off_id: int) -> Response:
    uc.remove_time_off(time_off_id, **_who())
    return Response(status=204)


@bp.put("/practitioners/<id:practitioner_id>/calcom")
@operation(
    "Link the practitioner to a Cal.com user and event type (their availability comes from it)",
    security=True,
    session=True,
    body=asc.CalcomLinkIn,
    responses={200: ("the practitioner", asc.AdminPractitionerOut), **_ERRORS, **_NOT_FOUND},
)
def link_calcom(practitioner_id: int) -> Response:
    body = sc.parse(asc.CalcomLinkIn, json_body())
    changed = uc.link_calendar(
        practitioner_id, body.to_domain(), calendar=deps().calendar, **_who()
    )
    return _practitioner_json(changed)


@bp.delete("/practitioners/<id:practitioner_id>/calcom")
@operation(
    "Remove the Cal.com link (availability comes from the working hours again)",
    security=True,
    session=True,
    responses={204: ("unlinked", None), **_ERRORS, **_NOT_FOUND},
)
def unlink_calcom(practitioner_id: int) -> Response:
    uc.link_calendar(practitioner_id, None, calendar=deps().calendar, **_who())
    return Response(status=204)


# -- services -------------------------------------------------------------------------------------


@bp.post("/practitioners/<id:practitioner_id>/services")
@operation(
    "Add a service (active unless the body says otherwise)",
    security=True,
    session=True,
    body=asc.ServiceCreate,
    responses={201: ("created", asc.AdminServiceOut), **_ERRORS, **_NOT_FOUND},
)
def add_service(practitioner_id: int) -> tuple[Response, int]:
    body = sc.parse(asc.ServiceCreate, json_body())
    added = uc.add_service(practitioner_id, body.to_domain(), **_who())
    return jsonify(asc.admin_service_out(added).body()), 201


@bp.patch("/services/<id:service_id>")
@operation(
    "Change a service's fields (active false takes it off the public list)",
    security=True,
    session=True,
    body=asc.ServicePatch,
    responses={200: ("changed", asc.AdminServiceOut), **_ERRORS, **_NOT_FOUND},
)
def update_service(service_id: int) -> Response:
    body = sc.parse(asc.ServicePatch, json_body())
    changed = uc.update_service(service_id, body.changes(), **_who())
    return jsonify(asc.admin_service_out(changed).body())


# -- bookings -------------------------------------------------------------------------------------

_BOOKING_CURSOR = ("s", "i")


def _after(cursor: str | None) -> tuple[datetime, int] | None:
    if cursor is None:
        return None
    values = decode_cursor(cursor, _BOOKING_CURSOR)
    start = sc.parse_datetime(values["s"])
    ident = values["i"]
    if start is None or not isinstance(ident, int) or isinstance(ident, bool) or ident < 0:
        raise _invalid_cursor()
    return start, ident


def _invalid_cursor() -> ValidationFailed:
    return ValidationFailed("the cursor is not valid", errors={"cursor": ["is not a valid cursor"]})


@bp.get("/bookings")
@operation(
    "Bookings with filters, by start then id; follow next_cursor for the next page",
    security=True,
    session=True,
    query=asc.AdminBookingsQuery,
    responses={200: ("a page of bookings", asc.AdminBookingPage), **_ERRORS},
)
def list_bookings() -> Response:
    query = sc.parse(asc.AdminBookingsQuery, query_args(), detail="invalid filters")
    filters = BookingFilter(
        practitioner_id=query.practitioner_id,
        status=query.status,
        start_from=query.from_,
        start_to=query.to,
        client_email=query.email,
        limit=query.limit,
        after=_after(query.cursor),
    )
    page = uc.list_admin_bookings(filters, actor=current_actor(), uow=deps().uow())
    next_cursor = None
    if page.next_after is not None:
        start, ident = page.next_after
        next_cursor = encode_cursor({"s": sc.iso(start), "i": ident})
    body = asc.AdminBookingPage(
        items=[sc.booking_out(b) for b in page.items], next_cursor=next_cursor
    )
    return jsonify(body.body())


@bp.get("/bookings/<id:booking_id>")
@operation(
    "One booking",
    security=True,
    session=True,
    responses={200: ("the booking", sc.BookingOut), **_ERRORS, **_NOT_FOUND},
)
def get_booking(booking_id: int) -> Response:
    booking = uc.get_admin_booking(booking_id, actor=current_actor(), uow=deps().uow())
    return jsonify(sc.booking_json(booking))


@bp.post("/bookings/<id:booking_id>/cancel")
@operation(
    "Cancel; refund true/false overrides the policy, refund_amount refunds that much, "
    "null or absent follows the policy",
    security=True,
    session=True,
    body=sc.AdminCancelRequest,
    body_required=False,
    responses={
        200: ("cancelled", sc.CancelResult),
        **_ERRORS,
        **_NOT_FOUND,
        409: problem("invalid_transition / refund_exceeds_capture"),
        503: problem("refund_failed: the refund could not be asked for"),
    },
)
def cancel_booking(booking_id: int) -> Response:
    body = sc.parse(sc.AdminCancelRequest, json_body(optional=True))
    d = deps()
    result = uc.cancel_booking(
        uc.CancelBooking(
            booking_id=booking_id,
            reason=body.reason or "",
            by_admin=True,
            refund_override=body.refund,
            refund_amount=body.refund_amount,
        ),
        uow=d.uow(),
        payments=d.payments,
        calendar=d.calendar,
        clock=d.clock,
        rules=d.rules,
        actor=current_actor(),
        request_id=request_id(),
    )
    return jsonify(
        sc.CancelResult(
            booking=sc.booking_out(result.booking), refund=sc.refund_out(result.refund)
        ).body()
    )


@bp.post("/bookings/<id:booking_id>/no-show")
@operation(
    "The client did not come: a confirmed booking whose start has passed becomes no_show",
    security=True,
    session=True,
    responses={
        200: ("marked", sc.BookingOut),
        **_ERRORS,
        **_NOT_FOUND,
        409: problem("invalid_transition (not confirmed, or not started)"),
    },
)
def mark_no_show(booking_id: int) -> Response:
    return jsonify(sc.booking_json(uc.mark_no_show(booking_id, **_who())))


# -- jobs -----------------------------------------------------------------------------------------


@bp.get("/jobs")
@operation(
    "Background jobs; status=parked lists the ones that need a person (admins only)",
    security=True,
    session=True,
    query=sc.JobsQuery,
    responses={200: ("jobs", sc.JobList), **_ADMIN_ONLY},
)
def list_jobs() -> Response:
    query = sc.parse(sc.JobsQuery, query_args(), detail="invalid filters")
    jobs = uc.list_jobs(query.status, actor=current_actor(), uow=deps().uow())
    return jsonify(sc.JobList(items=[sc.job_out(j) for j in jobs]).body())


@bp.post("/jobs/<id:job_id>/retry")
@operation(
    "Queue a parked job again, due now (admins only)",
    security=True,
    session=True,
    responses={
        200: ("queued", sc.JobOut),
        **_ADMIN_ONLY,
        404: problem("not_found: no such parked job"),
    },
)
def retry_job(job_id: int) -> Response:
    return jsonify(sc.job_out(uc.retry_job(job_id, **_who())).body())


# -- users ----------------------------------------------------------------------------------------


@bp.get("/users")
@operation(
    "Users who signed in (admins only)",
    security=True,
    session=True,
    responses={200: ("users", asc.UserList), **_ADMIN_ONLY},
)
def list_users() -> Response:
    users = uc.list_users(actor=current_actor(), uow=deps().uow())
    return jsonify(asc.UserList(items=[asc.user_out(u) for u in users]).body())


@bp.patch("/users/<id:user_id>")
@operation(
    "Give a user a role; practitioner needs practitioner_id (admins only)",
    security=True,
    session=True,
    body=asc.UserPatch,
    responses={200: ("changed", asc.UserOut), **_ADMIN_ONLY, 404: problem("user_not_found")},
)
def change_role(user_id: int) -> Response:
    body = sc.parse(asc.UserPatch, json_body())
    user = uc.change_role(user_id, Role(body.role), body.practitioner_id, **_who())
    return jsonify(asc.user_out(user).body())


# -- audit ----------------------------------------------------------------------------------------


@bp.get("/audit")
@operation(
    "What admins and practitioners changed, newest first (admins only)",
    security=True,
    session=True,
    query=asc.AuditQuery,
    responses={200: ("a page of audit entries", asc.AuditPageOut), **_ADMIN_ONLY},
)
def list_audit() -> Response:
    query = sc.parse(asc.AuditQuery, query_args(), detail="invalid filters")
    before_id = None
    if query.cursor is not None:
        ident = decode_cursor(query.cursor, ("b",))["b"]
        if not isinstance(ident, int) or isinstance(ident, bool) or ident < 1:
            raise _invalid_cursor()
        before_id = ident
    page = uc.list_audit(
        AuditFilter(
            actor=query.actor,
            object_type=query.object_type,
            object_id=query.object_id,
            since=query.since,
            before_id=before_id,
            limit=query.limit,
        ),
        actor=current_actor(),
        uow=deps().uow(),
    )
    next_cursor = encode_cursor({"b": page.next_before_id}) if page.next_before_id else None
    body = asc.AuditPageOut(items=[asc.audit_out(e) for e in page.items], next_cursor=next_cursor)
    return jsonify(body.body())


# -- API tokens -----------------------------------------------------------------------------------


@bp.get("/tokens")
@operation(
    "Named API tokens (never the tokens themselves; admins only)",
    security=True,
    session=True,
    responses={200: ("tokens", asc.TokenList), **_ADMIN_ONLY},
)
def list_tokens() -> Response:
    tokens = uc.list_api_tokens(actor=current_actor(), uow=deps().uow())
    return jsonify(asc.TokenList(items=[asc.token_out(t) for t in tokens]).body())


@bp.post("/tokens")
@operation(
    "Issue a named API token that acts as an admin; the token is shown once (admins only)",
    security=True,
    session=True,
    body=asc.TokenCreate,
    responses={201: ("issued", asc.TokenCreated), **_ADMIN_ONLY},
)
def issue_token() -> tuple[Response, int]:
    body = sc.parse(asc.TokenCreate, json_body())
    issued = uc.issue_api_token(body.name, **_who())
    answer = asc.TokenCreated(token=issued.token, api_token=asc.token_out(issued.record))
    response = jsonify(answer.body())
    response.headers["Cache-Control"] = "no-store"
    return response, 201


@bp.delete("/tokens/<id:token_id>")
@operation(
    "Revoke an API token at once (admins only)",
    security=True,
    session=True,
    responses={200: ("revoked", asc.TokenOut), **_ADMIN_ONLY, 404: problem("not_found")},
)
def revoke_token(token_id: int) -> Response:
    return jsonify(asc.token_out(uc.revoke_api_token(token_id, **_who())).body())
