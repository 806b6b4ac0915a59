"""HTTP: an unexpected error answers a generic problem with the request id; the log has the rest.

No database host, port or name, no PostgreSQL or vendor message reaches a body; the log line of
the failure carries the traceback, at ERROR, with the same request id.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import psycopg
import pytest
from sqlalchemy import exc as sa_exc

from adapters.memory import FakePaymentGateway
from adapters.postgres.errors import translate
from booking_core.errors import PaymentUnavailable
from entrypoints.logs import JsonFormatter

from .http_support import WEBHOOK_SECRET, Web, assert_problem

# What PostgreSQL and psycopg put in their messages: none of it may reach a body.
_PG_MESSAGE = (
    'connection to server at "db-primary.internal" (10.20.30.40), port 6543 failed: '
    'FATAL:  database "bookings_prod" does not exist'
)
_INTERNALS = ("db-primary.internal", "10.20.30.40", "6543", "bookings_prod", "FATAL", "SELECT")

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Iterator[Lines]:
    caplog.set_level(logging.DEBUG)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def _database_error() -> sa_exc.DatabaseError:
    return sa_exc.DatabaseError(
        "SELECT practitioners.id FROM practitioners", {}, psycopg.DatabaseError(_PG_MESSAGE)
    )


def _raw_database_error() -> NoReturn:
    raise _database_error()


def _translated_database_error() -> NoReturn:
    error = _database_error()
    raise translate(error, where="db-primary.internal:6543/bookings_prod") from error


def _check_body_and_log(body: dict[str, Any], headers: Any, lines: Lines, kind: str) -> None:
    text = json.dumps(body)
    for internal in _INTERNALS:
        assert internal not in text, f"{internal} reached the body: {text}"
    request_id = body["request_id"]
    assert request_id == headers["X-Request-ID"]
    errors = [line for line in lines() if line["level"] == "error"]
    assert len(errors) == 1, errors
    logged = errors[0]
    assert logged["request_id"] == request_id
    assert "Traceback" in logged["exc"]
    assert kind in logged["exc"]
    assert "bookings_prod" in logged["exc"]  # the details are ours to read, in the log


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        pytest.param(_raw_database_error, "sqlalchemy.exc.DatabaseError", id="raw-sqlalchemy"),
        pytest.param(_translated_database_error, "DatabaseError", id="translated"),
    ],
)
def test_a_database_error_is_a_generic_500_and_a_traceback_in_the_log(
    lines: Lines, failure: Callable[[], NoReturn], kind: str
) -> None:
    web = Web(uow_factory=failure)
    response = web.client.get("/api/practitioners", headers={"X-Request-ID": "req-db-failure-1"})
    body = assert_problem(response, 500, "internal_error")
    assert body["request_id"] == "req-db-failure-1"
    _check_body_and_log(body, response.headers, lines, kind)


def test_a_database_outage_is_a_generic_503(lines: Lines) -> None:
    def outage() -> NoReturn:
        error = sa_exc.OperationalError("SELECT 1", {}, psycopg.OperationalError(_PG_MESSAGE))
        raise translate(error, where="db-primary.internal:6543/bookings_prod") from error

    web = Web(uow_factory=outage)
    response = web.client.get("/api/practitioners")
    body = assert_problem(response, 503, "database_unavailable")
    _check_body_and_log(body, response.headers, lines, "OperationalError")


class _RefusingGateway:
    """A payment gateway whose provider refuses our key, worded as the Stripe adapter words it."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def create_checkout(self, request: Any) -> NoReturn:
        raise PaymentUnavailable(
            "could not create a checkout session: Stripe rejected the API key (HTTP 401)"
        )


def test_a_vendor_message_stays_out_of_a_503(lines: Lines) -> None:
    fake = FakePaymentGateway(webhook_secret=WEBHOOK_SECRET)
    refusing = Web(payments=_RefusingGateway(fake))
    response = refusing.book()
    body = assert_problem(response, 503, "payment_unavailable")
    assert "API key" not in json.dumps(body)
    assert "Stripe" not in json.dumps(body)
    errors = [line for line in lines() if line["level"] == "error"]
    assert "Stripe rejected the API key" in errors[0]["exc"]
    assert refusing.bookings()[0].status.value != "pending"  # the hold was released
