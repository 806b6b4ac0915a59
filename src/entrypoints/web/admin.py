"""Admin API (Bearer ADMIN_API_TOKEN): bookings with filters, admin cancel, background jobs."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from booking_core import usecases as uc
from booking_core.ports import BookingFilter
from entrypoints.web import schemas as sc
from entrypoints.web.common import deps, json_body, query_args, require_admin
from entrypoints.web.openapi import operation, problem

bp = Blueprint("admin", __name__, url_prefix="/api/admin")

_ADMIN_ERRORS = {
    401: problem("unauthorized: no or a wrong admin token, or not signed in"),
    403: problem("forbidden (signed in, not an admin) / csrf_failed"),
}


@bp.before_request
def _admins_only() -> None:
    require_admin()


@bp.get("/bookings")
@operation(
    "Bookings with filters (admin)",
    security=True,
    session=True,
    query=sc.AdminBookingsQuery,
    responses={200: ("a page of bookings", sc.BookingPage), **_ADMIN_ERRORS},
)
def list_bookings() -> Response:
    query = sc.parse(sc.AdminBookingsQuery, query_args(), detail="invalid filters")
    filters = BookingFilter(
        practitioner_id=query.practitioner_id,
        status=query.status,
        start_from=query.from_,
        start_to=query.to,
        client_email=query.email,
        limit=query.limit,
        offset=query.offset,
    )
    items = uc.list_bookings(filters, uow=deps().uow())
    page = sc.BookingPage(
        items=[sc.booking_out(b) for b in items], limit=query.limit, offset=query.offset
    )
    return jsonify(page.body())


@bp.get("/jobs")
@operation(
    "Background jobs; status=parked lists the ones that need a person",
    security=True,
    session=True,
    query=sc.JobsQuery,
    responses={200: ("jobs", sc.JobList), **_ADMIN_ERRORS},
)
def list_jobs() -> Response:
    query = sc.parse(sc.JobsQuery, query_args(), detail="invalid filters")
    uow = deps().uow()
    with uow:
        jobs = uow.outbox.list(query.status)
    return jsonify(sc.JobList(items=[sc.job_out(j) for j in jobs]).body())


@bp.get("/bookings/<id:booking_id>")
@operation(
    "One booking (admin)",
    security=True,
    session=True,
    responses={200: ("the booking", sc.BookingOut), **_ADMIN_ERRORS, 404: problem("not_found")},
)
def get_booking(booking_id: int) -> Response:
    return jsonify(sc.booking_json(uc.get_booking(booking_id, uow=deps().uow())))


@bp.post("/bookings/<id:booking_id>/cancel")
@operation(
    "Admin cancel; refund true/false overrides the policy, null or absent follows it",
    security=True,
    session=True,
    body=sc.AdminCancelRequest,
    body_required=False,
    responses={
        200: ("cancelled", sc.CancelResult),
        **_ADMIN_ERRORS,
        404: problem("not_found"),
        409: problem("invalid_transition"),
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
        ),
        uow=d.uow(),
        payments=d.payments,
        calendar=d.calendar,
        clock=d.clock,
        rules=d.rules,
    )
    return jsonify(
        sc.CancelResult(
            booking=sc.booking_out(result.booking), refund=sc.refund_out(result.refund)
        ).body()
    )
