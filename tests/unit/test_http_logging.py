"""HTTP: one JSON log line per request, request ids, and no secret in any log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from booking_core.ports import PaymentEventType
from entrypoints.logs import JsonFormatter, configure_logging, scrub

from .http_support import (
    ADMIN,
    ADMIN_TOKEN,
    CLIENT_EMAIL,
    SECRET_KEY,
    SLOT_2,
    WEBHOOK_SECRET,
    Web,
    assert_problem,
    bearer,
)

Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def log_stream(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """Everything logged at DEBUG and above, formatted by the production JsonFormatter."""
    caplog.set_level(logging.DEBUG)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


@pytest.fixture
def lines(log_stream: io.StringIO) -> Lines:
    def parse() -> list[dict[str, Any]]:
        return [json.loads(line) for line in log_stream.getvalue().splitlines()]

    return parse


def _requests(lines: Lines) -> list[dict[str, Any]]:
    return [line for line in lines() if line["logger"] == "booking.http"]


@pytest.fixture
def web() -> Web:
    return Web()


# -- request lines --------------------------------------------------------------------------------


def test_one_json_line_per_request(web: Web, lines: Lines) -> None:
    response = web.client.get("/healthz?probe=1")
    web.client.get("/api/practitioners/99")
    records = _requests(lines)
    assert len(records) == 2
    first = records[0]
    assert first["method"] == "GET"
    assert first["path"] == "/healthz"  # no query string: it may carry an email
    assert first["status"] == 200
    assert isinstance(first["duration_ms"], float | int)
    assert first["duration_ms"] >= 0
    assert first["request_id"] == response.headers["X-Request-ID"]
    assert first["level"] == "info"
    assert "ts" in first
    assert records[1]["status"] == 404


def test_a_request_id_is_generated_when_absent(web: Web) -> None:
    a = web.client.get("/healthz").headers["X-Request-ID"]
    b = web.client.get("/healthz").headers["X-Request-ID"]
    assert len(a) >= 16
    assert a != b


def test_a_good_request_id_is_echoed(web: Web, lines: Lines) -> None:
    response = web.client.get("/healthz", headers={"X-Request-ID": "lb-1234abcd.5678"})
    assert response.headers["X-Request-ID"] == "lb-1234abcd.5678"
    assert _requests(lines)[-1]["request_id"] == "lb-1234abcd.5678"


@pytest.mark.parametrize(
    "incoming", ["short", "x" * 65, "has space 12345", 'quote"12345678', "<script>alert(1)"]
)
def test_a_bad_request_id_is_replaced(web: Web, incoming: str) -> None:
    response = web.client.get("/healthz", headers={"X-Request-ID": incoming})
    echoed = response.headers["X-Request-ID"]
    assert echoed != incoming
    assert len(echoed) >= 16


def test_problem_bodies_carry_the_request_id(web: Web) -> None:
    response = web.client.get("/api/practitioners/99", headers={"X-Request-ID": "trace-0001"})
    assert assert_problem(response, 404)["request_id"] == "trace-0001"


def test_error_responses_are_logged_with_their_status(web: Web, lines: Lines) -> None:
    web.book(start="soon")
    web.post_raw(b"x=1", "application/x-www-form-urlencoded")
    statuses = [(r["method"], r["path"], r["status"]) for r in _requests(lines)]
    assert statuses == [("POST", "/api/bookings", 422), ("POST", "/api/bookings", 415)]


# -- secrets --------------------------------------------------------------------------------------


def test_no_secret_reaches_a_log_line_during_a_booking_flow(
    web: Web, log_stream: io.StringIO, lines: Lines
) -> None:
    created = web.book(headers={"Idempotency-Key": "flow-key-1"}).get_json()
    token = created["manage_token"]
    booking_id = created["booking"]["id"]
    session = web.session_of(booking_id)
    web.client.get(f"/api/bookings/{booking_id}", headers=bearer(token))
    web.client.get(f"/api/bookings/{booking_id}", headers=bearer(token + "wrong"))
    web.client.get(f"/api/admin/bookings?email={CLIENT_EMAIL}", headers=ADMIN)
    web.client.get("/api/admin/bookings", headers=bearer(ADMIN_TOKEN + "x"))
    web.client.get(f"/dev/checkout/{session}")
    web.client.post(f"/dev/checkout/{session}/pay")
    web.client.get(f"/booking/success?session_id={session}")
    web.client.post(
        f"/api/bookings/{booking_id}/reschedule", json={"start": SLOT_2}, headers=bearer(token)
    )
    web.client.post(
        f"/api/bookings/{booking_id}/cancel", json={"reason": "r"}, headers=bearer(token)
    )
    # A second booking: webhook replays, a bad signature and a payment outage.
    second = web.booked(start="2030-01-09T09:00:00Z")
    other_session = web.session_of(second["booking"]["id"])
    web.payments.complete(other_session)
    event = web.payments.event_for(other_session, PaymentEventType.CHECKOUT_COMPLETED)
    web.webhook(event)
    web.webhook(event)
    web.webhook(event, signature="t=1,v1=" + "0" * 64)
    web.payments.fail_next()
    web.book(start="2030-01-10T09:00:00Z")
    text = log_stream.getvalue()
    assert len(_requests(lines)) >= 15
    for secret in (
        token,
        second["manage_token"],
        ADMIN_TOKEN,
        WEBHOOK_SECRET,
        SECRET_KEY,
        CLIENT_EMAIL,
    ):
        assert secret not in text, f"{secret[:6]}... was logged"


def test_secrets_in_an_unexpected_exception_are_scrubbed(
    log_stream: io.StringIO, lines: Lines
) -> None:
    def broken() -> Any:
        raise RuntimeError(
            "connect postgresql://booking:pa55w0rd@db:5432/app failed; "
            "stripe key sk_live_4eC39HqLyjWDarjtT1zdp7dc, secret whsec_abcDEF123"
        )

    web = Web(uow_factory=broken)
    assert_problem(web.client.get("/api/practitioners"), 500, "internal_error")
    text = log_stream.getvalue()
    assert "RuntimeError" in text  # the traceback is logged, for us...
    for secret in ("pa55w0rd", "4eC39HqLyjWDarjtT1zdp7dc", "abcDEF123"):
        assert secret not in text  # ...scrubbed
    errors = [line for line in lines() if line["level"] == "error"]
    assert errors
    assert "exc" in errors[0]


def test_a_readiness_failure_is_logged_without_the_password(log_stream: io.StringIO) -> None:
    def down() -> None:
        raise ConnectionError("could not connect to postgresql://app:topsecret@10.0.0.5/db")

    web = Web(check_database=down)
    assert web.client.get("/readyz").status_code == 503
    text = log_stream.getvalue()
    assert "readiness" in text
    assert "topsecret" not in text


# -- scrub and the formatter ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("key sk_live_4eC39HqLyjWDarjtT1zdp7dc used", "4eC39HqLyjWDarjtT1zdp7dc"),
        ("key sk_test_51HxYz used", "51HxYz"),
        ("restricted rk_live_abcdef123", "abcdef123"),
        ("webhook whsec_1234567890abcdef", "1234567890abcdef"),
        ("Authorization: Bearer abc.DEF-123_456~xyz", "abc.DEF-123_456~xyz"),
        ("authorization: bearer tOkEn123", "tOkEn123"),
        ("postgresql://booking:hunter2@db.internal:5432/booking", "hunter2"),
        ("redis://default:r3d1s@cache:6379/0", "r3d1s"),
        ("redis://:r3d1s-only-password@cache:6379/0", "r3d1s-only-password"),
        ("smtp://mailer:m41l@smtp.example.com:587", "m41l"),
        ("password=hunter2 user=x", "hunter2"),
        ('{"api_key": "cal_live_0123456789abcdef"}', "0123456789abcdef"),
        ("token: abcdef123456", "abcdef123456"),
        ("CALCOM key cal_live_abcdefgh12345678", "abcdefgh12345678"),
    ],
)
def test_scrub_masks_secrets(text: str, secret: str) -> None:
    scrubbed = scrub(text)
    assert secret not in scrubbed
    assert "***" in scrubbed


def test_scrub_leaves_ordinary_text_alone() -> None:
    text = "GET /api/practitioners/1/availability 200 in 3.2 ms (https://b.example/docs)"
    assert scrub(text) == text


def test_the_formatter_scrubs_the_message_and_string_extras() -> None:
    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "calling with %s", ("sk_live_abc123",), None
    )
    record.url = "postgresql://u:pw123@h/db"
    record.attempt = 3
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "calling with sk_live_***"
    assert "pw123" not in line["url"]
    assert line["attempt"] == 3
    assert line["level"] == "warning"


def test_configure_logging_installs_one_json_handler() -> None:
    root = logging.getLogger()
    level = root.level
    noisy = {
        name: logging.getLogger(name).level for name in ("werkzeug", "urllib3", "stripe", "alembic")
    }
    stream = io.StringIO()
    try:
        configure_logging("DEBUG", stream=stream)
        configure_logging("INFO", stream=stream)  # idempotent
        ours = [h for h in root.handlers if getattr(h, "_booking_json", False)]
        assert len(ours) == 1
        logging.getLogger("booking.test").info("hello %s", "Bearer abcdef")
        line = json.loads(stream.getvalue().splitlines()[-1])
        assert line["msg"] == "hello Bearer ***"
        assert logging.getLogger("werkzeug").level >= logging.WARNING
    finally:
        for handler in [h for h in root.handlers if getattr(h, "_booking_json", False)]:
            root.removeHandler(handler)
        root.setLevel(level)
        for name, old_level in noisy.items():
            logging.getLogger(name).setLevel(old_level)
