"""RFC 9457 problem details: handlers for the core's errors, for HTTP errors and for bugs."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, json
from werkzeug.exceptions import HTTPException

from booking_core.errors import (
    BadRequest,
    BookingError,
    Conflict,
    ExternalServiceError,
    Forbidden,
    NotFound,
    PaymentFailed,
    RuleViolation,
    Unauthorized,
    ValidationFailed,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

# Every 503 says when to come back (RFC 9110 section 10.2.3): database and provider deadlines
# and the breakers' cool-downs are a few seconds, so clients retry soon, not in a tight loop.
RETRY_AFTER_SECONDS = 5

# Category -> status; the first match in this order wins (leaves inherit their category).
_STATUS: list[tuple[type[BookingError], int]] = [
    (BadRequest, 400),
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (RuleViolation, 422),
    (PaymentFailed, 503),
    (ExternalServiceError, 503),
]

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def problem(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    *,
    errors: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """A problem+json response with the stable ``code`` clients switch on."""
    body: dict[str, Any] = {
        "type": f"https://booking.example/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail or title,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    request_id = g.get("request_id")
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    if status == 503 and "Retry-After" not in response.headers:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def status_for(error: BookingError) -> int:
    """The category's status; web-layer errors may name a more precise one (413, 415)."""
    explicit = getattr(error, "http_status", None)
    if isinstance(explicit, int):
        return explicit
    for category, status in _STATUS:
        if isinstance(error, category):
            return status
    return 500


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(BookingError)
    def _booking_error(error: BookingError) -> Response:
        status = status_for(error)
        if status >= 500:
            return _server_side(error, status)
        errors = error.errors if isinstance(error, ValidationFailed) else None
        return problem(status, error.code, error.title, error.detail, errors=errors)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        headers = {}
        if status == 429:
            retry_after = getattr(error, "retry_after", None)
            if error.response is not None and "Retry-After" in error.response.headers:
                headers["Retry-After"] = error.response.headers["Retry-After"]
            elif retry_after:
                headers["Retry-After"] = str(retry_after)
        if status == 405 and error.get_response().headers.get("Allow"):
            headers["Allow"] = error.get_response().headers["Allow"]
        return problem(status, code, error.name, error.description, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        return _server_side(error, 500)


# What a 5xx body says, whatever went wrong: the details (a database host, a constraint, a
# vendor's message) are in the log line that carries the same request id, never in the answer.
_INTERNAL_DETAIL = "Something went wrong on our side; the request id helps us find it."
_OUTAGE_DETAIL = (
    "A service we depend on is not answering right now; try again in a moment. "
    "The request id helps us find what happened."
)


def _server_side(error: Exception, status: int) -> Response:
    """Log ``error`` with its traceback at ERROR; answer a generic problem with the request id.

    An outage the adapters recognised (database, Stripe, Cal.com: a 503) keeps its stable code
    and fixed title; anything else is a 500 ``internal_error``.
    """
    code = error.code if isinstance(error, BookingError) else type(error).__name__
    extra = {"request_id": g.get("request_id"), "error_code": code}
    if isinstance(error, BookingError) and error.public_detail and status != 500:
        # A state we described ourselves (sign-in not configured): one line, no traceback.
        log.warning("request answered %s: %s: %s", status, code, error.detail, extra=extra)
    else:
        log.error("request failed with %s: %s", status, code, exc_info=error, extra=extra)
    if status == 500 or not isinstance(error, BookingError):
        return problem(500, "internal_error", "Internal server error", _INTERNAL_DETAIL)
    detail = error.detail if error.public_detail else _OUTAGE_DETAIL
    return problem(status, error.code, error.title, detail)
