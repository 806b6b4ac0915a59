"""Admin API (Bearer ADMIN_API_TOKEN): bookings with filters, admin cancel, background jobs."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from booking_core import usecases as uc
from booking_core.errors import BookingNotFound, ValidationFailed
from booking_core.jobs import Job, JobStatus
from booking_core.model import BookingStatus
from booking_core.ports import BookingFilter
from entrypoints.web.common import deps, json_body, require_admin
from entrypoints.web.schemas import Fields, booking_json, iso, parse_datetime, refund_json

bp = Blueprint("admin", __name__, url_prefix="/api/admin")


@bp.before_request
def _admins_only() -> None:
    require_admin()


def _int_arg(fields: Fields, name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        fields.error(name, "must be an integer")
        return default
    if not low <= value <= high:
        fields.error(name, f"must be between {low} and {high}")
        return default
    return value


@bp.get("/bookings")
def list_bookings() -> Response:
    fields = Fields(dict(request.args))
    fields.reject_unknown({"practitioner_id", "status", "from", "to", "email", "limit", "offset"})
    practitioner_id = (
        _int_arg(fields, "practitioner_id", 0, 1, 2**31 - 1)
        if "practitioner_id" in request.args
        else None
    )
    status = None
    if "status" in request.args:
        try:
            status = BookingStatus(request.args["status"])
        except ValueError:
            fields.error("status", "must be one of " + ", ".join(s.value for s in BookingStatus))
    start_from = start_to = None
    for name in ("from", "to"):
        if name in request.args:
            parsed = parse_datetime(request.args[name])
            if parsed is None:
                fields.error(name, "must be an RFC 3339 date-time with an offset")
            elif name == "from":
                start_from = parsed
            else:
                start_to = parsed
    limit = _int_arg(fields, "limit", 50, 1, 500)
    offset = _int_arg(fields, "offset", 0, 0, 10**6)
    fields.raise_if_any("invalid filters")
    filters = BookingFilter(
        practitioner_id=practitioner_id,
        status=status,
        start_from=start_from,
        start_to=start_to,
        client_email=request.args.get("email"),
        limit=limit,
        offset=offset,
    )
    items = uc.list_bookings(filters, uow=deps().uow())
    return jsonify(items=[booking_json(b) for b in items], limit=limit, offset=offset)


def _job_json(job: Job) -> dict[str, object]:
    return {
        "id": job.id,
        "kind": job.kind,
        "payload": dict(job.payload),
        "status": job.status.value,
        "attempts": job.attempts,
        "last_error": job.last_error,
        "run_at": iso(job.run_at),
        "created_at": iso(job.created_at),
    }


@bp.get("/jobs")
def list_jobs() -> Response:
    """Background jobs; ``?status=parked`` shows what failed for good and needs a person."""
    raw = request.args.get("status")
    try:
        status = JobStatus(raw) if raw else None
    except ValueError as exc:
        raise ValidationFailed(
            "unknown status",
            errors={"status": ["must be one of " + ", ".join(s.value for s in JobStatus)]},
        ) from exc
    uow = deps().uow()
    with uow:
        jobs = uow.outbox.list(status)
    return jsonify(items=[_job_json(j) for j in jobs])


def _booking_id(value: int) -> int:
    """Ids beyond the database's integer range name no booking (404, never a query)."""
    if not 1 <= value <= 2**31 - 1:
        raise BookingNotFound(f"no booking with id {value}")
    return value


@bp.get("/bookings/<int:booking_id>")
def get_booking(booking_id: int) -> Response:
    booking_id = _booking_id(booking_id)
    return jsonify(booking_json(uc.get_booking(booking_id, uow=deps().uow())))


@bp.post("/bookings/<int:booking_id>/cancel")
def cancel_booking(booking_id: int) -> Response:
    """Cancel as an admin; ``refund`` true/false overrides the policy, null or absent follows it."""
    booking_id = _booking_id(booking_id)
    data = json_body(optional=True)
    fields = Fields(data)
    fields.reject_unknown({"reason", "refund"})
    reason = fields.string("reason", required=False, max_length=500, min_length=0) or ""
    override = fields.boolean("refund")
    fields.raise_if_any()
    d = deps()
    result = uc.cancel_booking(
        uc.CancelBooking(booking_id=booking_id, reason=reason, by_admin=True,
                         refund_override=override),
        uow=d.uow(), payments=d.payments, calendar=d.calendar, clock=d.clock, rules=d.rules,
    )
    return jsonify(booking=booking_json(result.booking), refund=refund_json(result.refund))
