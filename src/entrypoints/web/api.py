"""The public JSON API: practitioners, availability, bookings; health and readiness."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request

from booking_core import usecases as uc
from booking_core.errors import (
    BookingError,
    BookingNotFound,
    PractitionerNotFound,
    Unauthorized,
    ValidationFailed,
)
from booking_core.model import Booking
from booking_core.ports import IdempotencyRecord
from entrypoints.web import idempotency
from entrypoints.web.common import bearer_token, deps, is_admin_token, json_body
from entrypoints.web.problems import problem
from entrypoints.web.schemas import (
    Fields,
    availability_json,
    booking_json,
    check_date_range,
    parse_client,
    parse_date,
    practitioner_json,
    refund_json,
)

bp = Blueprint("api", __name__)
log = logging.getLogger(__name__)

_MAX_ID = 2**31 - 1


# -- health --------------------------------------------------------------------------------------


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Response:
    try:
        deps().check_database()
    except Exception:  # any failure means "not ready"; the reason goes to the log only
        log.warning("readiness check failed", exc_info=True)
        return problem(503, "database_unavailable", "Database unavailable",
                       "the database does not answer")
    return jsonify(status="ready")


# -- practitioners and availability --------------------------------------------------------------


def _known_id(value: int, error: type[BookingError]) -> int:
    if not 1 <= value <= _MAX_ID:
        raise error(f"no such id {value}")
    return value


@bp.get("/api/practitioners")
def list_practitioners() -> Response:
    d = deps()
    items = uc.list_practitioners(uow=d.uow())
    return jsonify(items=[practitioner_json(p) for p in items])


@bp.get("/api/practitioners/<int:practitioner_id>")
def get_practitioner(practitioner_id: int) -> Response:
    d = deps()
    practitioner = uc.get_practitioner(
        _known_id(practitioner_id, PractitionerNotFound), uow=d.uow()
    )
    return jsonify(practitioner_json(practitioner))


def _availability(practitioner_id: int, params: dict[str, Any]) -> dict[str, Any]:
    d = deps()
    fields = Fields(params)
    fields.reject_unknown({"service_id", "from", "to"})
    service_id: int | None = None
    raw_service = params.get("service_id")
    if raw_service is not None:
        if isinstance(raw_service, bool):
            fields.error("service_id", "must be an integer")
        else:
            try:
                service_id = int(raw_service)
            except (TypeError, ValueError):
                fields.error("service_id", "must be an integer")
            else:
                if not 1 <= service_id <= _MAX_ID:
                    fields.error("service_id", "must be a positive id")
                    service_id = None
    first = parse_date("from", _str_or_error(fields, "from", params.get("from")), fields)
    last = parse_date("to", _str_or_error(fields, "to", params.get("to")), fields)
    check_date_range(fields, d.clock.now().date(), ("from", first), ("to", last))
    fields.raise_if_any("invalid availability query")
    result = uc.get_availability(
        uc.AvailabilityQuery(
            practitioner_id=_known_id(practitioner_id, PractitionerNotFound),
            service_id=service_id,
            first_day=first,
            last_day=last,
        ),
        uow=d.uow(),
        calendar=d.calendar,
        clock=d.clock,
        rules=d.rules,
    )
    return availability_json(result)


def _str_or_error(fields: Fields, name: str, value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    fields.error(name, "must be a date string like 2030-01-07")
    return None


@bp.get("/api/practitioners/<int:practitioner_id>/availability")
def availability(practitioner_id: int) -> Response:
    params: dict[str, Any] = {}
    for key in request.args:
        values = request.args.getlist(key)
        if len(values) > 1:
            raise ValidationFailed(f"{key} given twice", errors={key: ["must be given once"]})
        params[key] = values[0]
    return jsonify(_availability(practitioner_id, params))


@bp.get("/api/trpc/bookings.getAvailability")
def trpc_availability() -> Response:
    """The seed's documented tRPC call.

    ``?input={"practitionerId":1}`` answers ``{"result":{"data":…}}``.
    """
    raw = request.args.get("input")
    if raw is None:
        raise ValidationFailed("input is required", errors={"input": ["is required"]})
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValidationFailed("input is not JSON", errors={"input": ["must be JSON"]}) from exc
    if isinstance(data, dict) and isinstance(data.get("json"), dict):
        data = data["json"]  # tRPC clients with a superjson transformer wrap the input
    if not isinstance(data, dict):
        raise ValidationFailed("input must be an object", errors={"input": ["must be an object"]})
    fields = Fields(data)
    fields.reject_unknown({"practitionerId", "serviceId", "from", "to"})
    practitioner_id = fields.integer("practitionerId")
    fields.raise_if_any("invalid input")
    params = {
        k: v
        for k, v in {
            "service_id": data.get("serviceId"),
            "from": data.get("from"),
            "to": data.get("to"),
        }.items()
        if v is not None
    }
    if params.get("service_id") is not None and not isinstance(params["service_id"], int):
        raise ValidationFailed("serviceId must be an integer",
                               errors={"serviceId": ["must be an integer"]})
    return jsonify(result={"data": _availability(practitioner_id or 0, params)})


# -- bookings ------------------------------------------------------------------------------------


def _check_start(fields: Fields, start: datetime | None, now: datetime) -> None:
    """A start in the future and within the dates any booking can have (no overflow games)."""
    if start is None:
        return
    if start <= now:
        fields.error("start", "must be in the future")
    else:
        check_date_range(fields, now.date(), ("start", start.date()))


def _parse_booking_request(data: dict[str, Any]) -> uc.RequestBooking:
    d = deps()
    fields = Fields(data)
    fields.reject_unknown({"practitioner_id", "service_id", "start", "client", "notes"})
    practitioner_id = fields.integer("practitioner_id")
    service_id = fields.integer("service_id")
    start = fields.datetime("start")
    client = parse_client(data.get("client"), fields)
    notes = fields.string("notes", required=False, max_length=2000, min_length=0) or ""
    _check_start(fields, start, d.clock.now())
    fields.raise_if_any("the booking request has invalid fields")
    # guaranteed by raise_if_any:
    assert practitioner_id is not None
    assert service_id is not None
    assert start is not None
    assert client is not None
    return uc.RequestBooking(
        practitioner_id=practitioner_id,
        service_id=service_id,
        start=start,
        client=client,
        notes=notes,
    )


@bp.post("/api/bookings")
def create_booking() -> Response:
    data = json_body()
    cmd = _parse_booking_request(data)
    key = request.headers.get("Idempotency-Key")
    d = deps()

    def respond(result: uc.BookingRequested) -> dict[str, Any]:
        return {"booking": booking_json(result.booking), "checkout_url": result.checkout_url}

    if key is None:
        result = uc.request_booking(
            cmd, uow=d.uow(), payments=d.payments, calendar=d.calendar, clock=d.clock,
            rules=d.rules,
        )
        return _created({**respond(result), "manage_token": result.manage_token})

    def book(claim: uc.IdempotencyClaim) -> uc.BookingRequested | IdempotencyRecord:
        return uc.request_booking_once(
            cmd, claim, uow=d.uow(), payments=d.payments, calendar=d.calendar, clock=d.clock,
            rules=d.rules,
        )

    body = idempotency.run_once(key, data, book, respond, deps=d)
    return _created(body)


def _created(body: dict[str, Any]) -> Response:
    response = jsonify(body)
    response.status_code = 201
    booking_id = body["booking"]["id"]
    response.headers["Location"] = f"/api/bookings/{booking_id}"
    response.headers["Cache-Control"] = "no-store"  # the body carries the manage token
    return response


def _authorized_booking(booking_id: int) -> tuple[Booking, bool]:
    """The booking and whether the caller is an admin; 401 without a token, 404 for a wrong one."""
    token = bearer_token()
    if token is None:
        raise Unauthorized("send Authorization: Bearer <manage token>")
    d = deps()
    booking_id = _known_id(booking_id, BookingNotFound)
    if is_admin_token(token):
        return uc.get_booking(booking_id, uow=d.uow()), True
    return uc.authorize_booking(booking_id, token, uow=d.uow()), False


@bp.get("/api/bookings/<int:booking_id>")
def get_booking(booking_id: int) -> Response:
    booking, _ = _authorized_booking(booking_id)
    return jsonify(booking_json(booking))


@bp.post("/api/bookings/<int:booking_id>/cancel")
def cancel_booking(booking_id: int) -> Response:
    booking, admin = _authorized_booking(booking_id)
    data = json_body(optional=True)
    fields = Fields(data)
    fields.reject_unknown({"reason", "refund"} if admin else {"reason"})
    reason = fields.string("reason", required=False, max_length=500, min_length=0) or ""
    override = fields.boolean("refund") if admin else None
    fields.raise_if_any()
    d = deps()
    result = uc.cancel_booking(
        uc.CancelBooking(
            booking_id=booking.id or 0, reason=reason, by_admin=admin, refund_override=override
        ),
        uow=d.uow(), payments=d.payments, calendar=d.calendar, clock=d.clock, rules=d.rules,
    )
    return jsonify(booking=booking_json(result.booking), refund=refund_json(result.refund))


@bp.post("/api/bookings/<int:booking_id>/reschedule")
def reschedule_booking(booking_id: int) -> Response:
    booking, _ = _authorized_booking(booking_id)
    data = json_body()
    fields = Fields(data)
    fields.reject_unknown({"start", "reason"})
    start = fields.datetime("start")
    reason = fields.string("reason", required=False, max_length=500, min_length=0) or ""
    d = deps()
    _check_start(fields, start, d.clock.now())
    fields.raise_if_any()
    assert start is not None
    moved = uc.reschedule_booking(
        uc.RescheduleBooking(booking_id=booking.id or 0, new_start=start, reason=reason),
        uow=d.uow(), calendar=d.calendar, clock=d.clock, rules=d.rules,
    )
    return jsonify(booking=booking_json(moved))

