"""The public JSON API: practitioners, availability, bookings; health and readiness."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from flask import Blueprint, Response, jsonify, request

from booking_core import usecases as uc
from booking_core.errors import Unauthorized, ValidationFailed
from booking_core.model import Booking
from booking_core.ports import IdempotencyRecord
from entrypoints.web import idempotency
from entrypoints.web import schemas as sc
from entrypoints.web.common import (
    UnsafeJson,
    bearer_token,
    deps,
    is_admin_token,
    json_body,
    load_json,
    query_args,
)
from entrypoints.web.openapi import Header, operation, problem
from entrypoints.web.problems import problem as problem_response

bp = Blueprint("api", __name__)
log = logging.getLogger(__name__)


# -- health --------------------------------------------------------------------------------------


@bp.get("/healthz")
@operation("Liveness", responses={200: ("alive", sc.Health)})
def healthz() -> Response:
    return jsonify(sc.Health(status="ok").body())


@bp.get("/readyz")
@operation(
    "Readiness: the database answers",
    responses={200: ("ready", sc.Health), 503: problem("database_unavailable")},
)
def readyz() -> Response:
    try:
        deps().check_database()
    except Exception:  # any failure means "not ready"; the reason goes to the log only
        log.warning("readiness check failed", exc_info=True)
        return problem_response(
            503, "database_unavailable", "Database unavailable", "the database does not answer"
        )
    return jsonify(sc.Health(status="ready").body())


# -- practitioners and availability --------------------------------------------------------------


@bp.get("/api/practitioners")
@operation("Active practitioners", responses={200: ("active practitioners", sc.PractitionerList)})
def list_practitioners() -> Response:
    d = deps()
    items = uc.list_practitioners(uow=d.uow())
    return jsonify(sc.PractitionerList(items=[sc.practitioner_out(p) for p in items]).body())


@bp.get("/api/practitioners/<id:practitioner_id>")
@operation(
    "One practitioner with services",
    responses={200: ("the practitioner", sc.PractitionerOut), 404: problem("not_found")},
)
def get_practitioner(practitioner_id: int) -> Response:
    practitioner = uc.get_practitioner(practitioner_id, uow=deps().uow())
    return jsonify(sc.practitioner_json(practitioner))


def _availability(
    practitioner_id: int, service_id: int | None, first: date | None, last: date | None
) -> sc.AvailabilityOut:
    d = deps()
    result = uc.get_availability(
        uc.AvailabilityQuery(
            practitioner_id=practitioner_id,
            service_id=service_id,
            first_day=first,
            last_day=last,
        ),
        uow=d.uow(),
        calendar=d.calendar,
        clock=d.clock,
        rules=d.rules,
    )
    return sc.availability_out(result)


@bp.get("/api/practitioners/<id:practitioner_id>/availability")
@operation(
    "Open slots (Cal.com when linked, else working hours)",
    query=sc.AvailabilityQuery,
    responses={
        200: ("open slots", sc.AvailabilityOut),
        404: problem("not_found: unknown practitioner or service"),
        422: problem("validation_error"),
    },
)
def availability(practitioner_id: int) -> Response:
    query = sc.parse(
        sc.AvailabilityQuery,
        query_args(),
        now=deps().clock.now(),
        detail="invalid availability query",
    )
    out = _availability(practitioner_id, query.service_id, query.from_, query.to)
    return jsonify(out.body())


@bp.get("/api/trpc/bookings.getAvailability")
@operation(
    "The seed's tRPC call",
    description='``?input={"practitionerId":1}`` answers ``{"result":{"data":...}}``; '
    'a superjson ``{"json": ...}`` wrapper is accepted.',
    query=sc.TrpcQuery,
    query_json={"input": sc.TrpcAvailabilityInput},
    responses={
        200: ("open slots", sc.TrpcAvailabilityOut),
        404: problem("not_found: unknown practitioner or service"),
        422: problem("validation_error"),
    },
)
def trpc_availability() -> Response:
    """The seed's documented tRPC call."""
    raw = sc.parse(sc.TrpcQuery, query_args(), detail="invalid input").input
    try:
        data = load_json(raw)
    except UnsafeJson as exc:
        raise ValidationFailed(
            "input is not JSON", errors={"input": [f"must be JSON ({exc})"]}
        ) from exc
    if isinstance(data, dict) and isinstance(data.get("json"), dict):
        data = data["json"]  # tRPC clients with a superjson transformer wrap the input
    if not isinstance(data, dict):
        raise ValidationFailed("input must be an object", errors={"input": ["must be an object"]})
    query = sc.parse(sc.TrpcAvailabilityInput, data, now=deps().clock.now(), detail="invalid input")
    out = _availability(query.practitionerId, query.serviceId, query.from_, query.to)
    return jsonify(sc.TrpcAvailabilityOut(result=sc.TrpcData(data=out)).body())


# -- bookings ------------------------------------------------------------------------------------

IDEMPOTENCY_KEY = Header(
    name="Idempotency-Key",
    description="a retry with the same key and body returns the first answer",
    schema={
        "type": "string",
        "minLength": 1,
        "maxLength": idempotency.MAX_KEY_LENGTH,
        "pattern": idempotency.KEY_PATTERN,
    },
)


def _parse_booking_request(data: dict[str, Any]) -> uc.RequestBooking:
    body = sc.parse(
        sc.BookingRequest,
        data,
        now=deps().clock.now(),
        detail="the booking request has invalid fields",
    )
    return uc.RequestBooking(
        practitioner_id=body.practitioner_id,
        service_id=body.service_id,
        start=body.start,
        client=body.client.to_domain(),
        notes=body.notes or "",
    )


@bp.post("/api/bookings")
@operation(
    "Hold a slot and open a checkout",
    body=sc.BookingRequest,
    headers=(IDEMPOTENCY_KEY,),
    links={
        201: {
            name: (endpoint, {"booking_id": "$response.body#/booking/id"})
            for name, endpoint in (
                ("GetBooking", "api.get_booking"),
                ("CancelBooking", "api.cancel_booking"),
                ("RescheduleBooking", "api.reschedule_booking"),
                ("GetBookingAsAdmin", "admin.get_booking"),
                ("CancelBookingAsAdmin", "admin.cancel_booking"),
            )
        }
    },
    responses={
        201: ("held; pay at checkout_url. The manage token is shown once.", sc.BookingCreated),
        400: problem("bad_request: malformed JSON or Idempotency-Key"),
        404: problem("not_found: unknown practitioner or service"),
        409: problem("slot_unavailable / request_in_progress"),
        422: problem("validation_error / outside_availability / duplicate_request"),
        429: problem("rate_limited"),
        503: problem("payment_unavailable"),
    },
)
def create_booking() -> Response:
    data = json_body()
    cmd = _parse_booking_request(data)
    key = request.headers.get("Idempotency-Key")
    d = deps()

    def respond(result: uc.BookingRequested) -> dict[str, Any]:
        return {"booking": sc.booking_json(result.booking), "checkout_url": result.checkout_url}

    if key is None:
        result = uc.request_booking(
            cmd,
            uow=d.uow(),
            payments=d.payments,
            calendar=d.calendar,
            clock=d.clock,
            rules=d.rules,
        )
        return _created({**respond(result), "manage_token": result.manage_token})

    def book(claim: uc.IdempotencyClaim) -> uc.BookingRequested | IdempotencyRecord:
        return uc.request_booking_once(
            cmd,
            claim,
            uow=d.uow(),
            payments=d.payments,
            calendar=d.calendar,
            clock=d.clock,
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


@bp.post("/api/bookings/recover")
@operation(
    "Mail me my booking links again",
    body=sc.RecoverRequest,
    description="Always 202, whether or not the address has bookings: the links of its upcoming "
    "bookings go out by mail (at most once an hour per address).",
    responses={
        202: ("accepted; mail follows if the address has upcoming bookings", sc.Accepted),
        400: problem("bad_request: malformed JSON"),
        422: problem("validation_error"),
        429: problem("rate_limited"),
    },
)
def recover_links() -> Response:
    body = sc.parse(sc.RecoverRequest, json_body(), detail="invalid recovery request")
    d = deps()
    uc.request_manage_links(body.email, uow=d.uow(), clock=d.clock)
    response = jsonify(sc.Accepted(accepted=True).body())
    response.status_code = 202
    response.headers["Cache-Control"] = "no-store"
    return response


def _authorized_booking(booking_id: int) -> tuple[Booking, bool]:
    """The booking and whether the caller is an admin; 401 without a token, 404 for a wrong one."""
    token = bearer_token()
    if token is None:
        raise Unauthorized("send Authorization: Bearer <manage token>")
    d = deps()
    if is_admin_token(token):
        return uc.get_booking(booking_id, uow=d.uow()), True
    return uc.authorize_booking(booking_id, token, uow=d.uow(), rules=d.rules), False


_BOOKING_ERRORS = {
    401: problem("unauthorized: no or a malformed token"),
    404: problem("not_found: unknown booking, or a token for another booking"),
}


@bp.get("/api/bookings/<id:booking_id>")
@operation(
    "A booking (manage token or admin token)",
    security=True,
    responses={200: ("the booking", sc.BookingOut), **_BOOKING_ERRORS},
)
def get_booking(booking_id: int) -> Response:
    booking, _ = _authorized_booking(booking_id)
    return jsonify(sc.booking_json(booking))


@bp.post("/api/bookings/<id:booking_id>/cancel")
@operation(
    "Cancel; refund per the policy (an admin token may pass refund true/false)",
    security=True,
    body=sc.AdminCancelRequest,
    body_required=False,
    description="With a manage token only ``reason`` is accepted; ``refund`` needs an admin.",
    responses={
        200: ("cancelled", sc.CancelResult),
        **_BOOKING_ERRORS,
        409: problem("invalid_transition"),
        422: problem("validation_error"),
        503: problem("refund_failed: the refund could not be asked for"),
    },
)
def cancel_booking(booking_id: int) -> Response:
    booking, admin = _authorized_booking(booking_id)
    data = json_body(optional=True)
    if admin:
        body = sc.parse(sc.AdminCancelRequest, data)
        reason, override = body.reason, body.refund
    else:
        reason, override = sc.parse(sc.CancelRequest, data).reason, None
    d = deps()
    result = uc.cancel_booking(
        uc.CancelBooking(
            booking_id=booking.id or 0,
            reason=reason or "",
            by_admin=admin,
            refund_override=override,
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


@bp.post("/api/bookings/<id:booking_id>/reschedule")
@operation(
    "Move to another offered start",
    security=True,
    body=sc.RescheduleRequest,
    responses={
        200: ("moved", sc.RescheduleResult),
        **_BOOKING_ERRORS,
        409: problem("invalid_transition / slot_unavailable"),
        422: problem("validation_error / outside_availability"),
    },
)
def reschedule_booking(booking_id: int) -> Response:
    booking, _ = _authorized_booking(booking_id)
    body = sc.parse(sc.RescheduleRequest, json_body(), now=deps().clock.now())
    d = deps()
    moved = uc.reschedule_booking(
        uc.RescheduleBooking(
            booking_id=booking.id or 0, new_start=body.start, reason=body.reason or ""
        ),
        uow=d.uow(),
        calendar=d.calendar,
        clock=d.clock,
        rules=d.rules,
    )
    return jsonify(sc.RescheduleResult(booking=sc.booking_out(moved)).body())
