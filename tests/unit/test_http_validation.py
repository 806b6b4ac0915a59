"""HTTP: every bad booking request is a 4xx problem that writes nothing; bugs are bare 500s."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .http_support import ADMIN, SLOT, Web, assert_problem, booking_body


@pytest.fixture
def web() -> Web:
    return Web()


def _client(**fields: Any) -> dict[str, Any]:
    return {"name": "Ada Lovelace", "email": "ada@example.com", **fields}


# (label, body) pairs that must be 422 validation_error, with the field named in ``errors``.
INVALID_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    (
        "missing practitioner",
        {k: v for k, v in booking_body().items() if k != "practitioner_id"},
        "practitioner_id",
    ),
    (
        "missing service",
        {k: v for k, v in booking_body().items() if k != "service_id"},
        "service_id",
    ),
    ("missing start", {k: v for k, v in booking_body().items() if k != "start"}, "start"),
    ("missing client", {k: v for k, v in booking_body().items() if k != "client"}, "client"),
    ("null start", booking_body(start=None), "start"),
    ("unknown top-level field", booking_body(price=1), "price"),
    ("unknown client field", booking_body(client=_client(age=30)), "client.age"),
    ("missing client name", booking_body(client={"email": "a@example.com"}), "client.name"),
    ("missing client email", booking_body(client={"name": "Ada"}), "client.email"),
    ("empty client name", booking_body(client=_client(name="  ")), "client.name"),
    ("bad email", booking_body(client=_client(email="ada")), "client.email"),
    ("two @ email", booking_body(client=_client(email="a@b@example.com")), "client.email"),
    ("bad phone", booking_body(client=_client(phone="call me")), "client.phone"),
    ("control chars in name", booking_body(client=_client(name="Ada\x00")), "client.name"),
    ("long name", booking_body(client=_client(name="A" * 121)), "client.name"),
    ("long notes", booking_body(notes="n" * 2001), "notes"),
    ("client is a string", booking_body(client="Ada <ada@example.com>"), "client"),
    ("client is a list", booking_body(client=["Ada"]), "client"),
    ("practitioner as string", booking_body(practitioner_id="1"), "practitioner_id"),
    ("practitioner as float", booking_body(practitioner_id=1.0), "practitioner_id"),
    ("practitioner as bool", booking_body(practitioner_id=True), "practitioner_id"),
    ("service as bool", booking_body(service_id=False), "service_id"),
    ("practitioner as list", booking_body(practitioner_id=[1]), "practitioner_id"),
    ("practitioner zero", booking_body(practitioner_id=0), "practitioner_id"),
    ("practitioner negative", booking_body(practitioner_id=-1), "practitioner_id"),
    ("practitioner beyond bigint", booking_body(practitioner_id=2**63), "practitioner_id"),
    ("practitioner huge", booking_body(practitioner_id=10**30), "practitioner_id"),
    ("service huge", booking_body(service_id=10**19), "service_id"),
    ("start as number", booking_body(start=1893488400), "start"),
    ("start as object", booking_body(start={"date": "2030-01-08"}), "start"),
    ("naive start", booking_body(start="2030-01-08T09:00:00"), "start"),
    ("date only", booking_body(start="2030-01-08"), "start"),
    ("no seconds", booking_body(start="2030-01-08T09:00Z"), "start"),
    ("offset without colon", booking_body(start="2030-01-08T09:00:00+0000"), "start"),
    ("human date", booking_body(start="Tue, 08 Jan 2030 09:00:00 GMT"), "start"),
    ("slashes", booking_body(start="2030/01/08T09:00:00Z"), "start"),
    ("week date", booking_body(start="2030-W02-2T09:00:00Z"), "start"),
    ("month 13", booking_body(start="2030-13-08T09:00:00Z"), "start"),
    ("day 32", booking_body(start="2030-01-32T09:00:00Z"), "start"),
    ("hour 24", booking_body(start="2030-01-08T24:00:00Z"), "start"),
    ("leap second", booking_body(start="2030-01-08T09:00:60Z"), "start"),
    ("offset 99 hours", booking_body(start="2030-01-08T09:00:00+99:00"), "start"),
    ("start in the past", booking_body(start="2029-12-31T09:00:00Z"), "start"),
    ("start now", booking_body(start="2030-01-07T08:00:00Z"), "start"),
    ("year 0001", booking_body(start="0001-01-01T00:00:00Z"), "start"),
    ("year 9999", booking_body(start="9999-12-31T23:00:00Z"), "start"),
    ("year 9999 with offset", booking_body(start="9999-12-31T23:59:59-23:59"), "start"),
    ("five years ahead", booking_body(start="2035-01-08T09:00:00Z"), "start"),
    ("notes as number", booking_body(notes=5), "notes"),
]


@pytest.mark.parametrize(
    ("body", "field"), [(b, f) for _, b, f in INVALID_FIELDS], ids=[x[0] for x in INVALID_FIELDS]
)
def test_invalid_fields_are_422_with_errors_per_field(
    web: Web, body: dict[str, Any], field: str
) -> None:
    before = web.snapshot()
    problem = assert_problem(web.book(body), 422, "validation_error")
    assert field in problem["errors"], problem["errors"]
    assert all(isinstance(m, list) and m for m in problem["errors"].values())
    assert web.snapshot() == before
    assert web.bookings() == []


def test_every_invalid_field_is_reported_at_once(web: Web) -> None:
    body = {"practitioner_id": "x", "start": "soon", "client": {"email": "nope"}, "extra": 1}
    problem = assert_problem(web.book(body), 422, "validation_error")
    assert {
        "practitioner_id",
        "service_id",
        "start",
        "client.name",
        "client.email",
        "extra",
    } <= set(problem["errors"])


BAD_BODIES: list[tuple[str, bytes, str | None, int, str]] = [
    ("malformed JSON", b'{"practitioner_id": 1,', "application/json", 400, "bad_request"),
    ("empty body", b"", "application/json", 400, "bad_request"),
    ("JSON null", b"null", "application/json", 400, "bad_request"),
    ("JSON array", json.dumps([booking_body()]).encode(), "application/json", 400, "bad_request"),
    ("JSON string", b'"book me"', "application/json", 400, "bad_request"),
    ("JSON number", b"42", "application/json", 400, "bad_request"),
    ("invalid UTF-8", b'{"notes": "\xff\xfe"}', "application/json", 400, "bad_request"),
    (
        "NaN",
        json.dumps(booking_body())
        .replace('"practitioner_id": 1', '"practitioner_id": NaN')
        .encode(),
        "application/json",
        422,
        "validation_error",
    ),
    (
        "1e400",
        json.dumps(booking_body())
        .replace('"practitioner_id": 1', '"practitioner_id": 1e400')
        .encode(),
        "application/json",
        422,
        "validation_error",
    ),
    (
        "5000-digit integer",
        json.dumps(booking_body())
        .replace('"practitioner_id": 1', '"practitioner_id": ' + "9" * 5000)
        .encode(),
        "application/json",
        400,
        "bad_request",
    ),
    (
        "form body",
        b"practitioner_id=1&service_id=1",
        "application/x-www-form-urlencoded",
        415,
        "unsupported_media_type",
    ),
    (
        "JSON sent as text/plain",
        json.dumps(booking_body()).encode(),
        "text/plain",
        415,
        "unsupported_media_type",
    ),
    (
        "JSON without content type",
        json.dumps(booking_body()).encode(),
        None,
        415,
        "unsupported_media_type",
    ),
    ("multipart", b"--x--", "multipart/form-data; boundary=x", 415, "unsupported_media_type"),
    ("XML", b"<booking/>", "application/xml", 415, "unsupported_media_type"),
    (
        "17 KiB of JSON",
        json.dumps(booking_body(notes="n" * 17 * 1024)).encode(),
        "application/json",
        413,
        "payload_too_large",
    ),
    (
        "300 KiB of JSON",
        json.dumps(booking_body(notes="n" * 300 * 1024)).encode(),
        "application/json",
        413,
        "payload_too_large",
    ),
    (
        "300 KiB of form",
        b"a=" + b"n" * 300 * 1024,
        "application/x-www-form-urlencoded",
        413,
        "payload_too_large",
    ),
    ("deeply nested", b"[" * 20000 + b"]" * 20000, "application/json", 413, "payload_too_large"),
    ("nested within 16 KiB", b"[" * 5000 + b"]" * 5000, "application/json", 400, "bad_request"),
]


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
def test_bad_bodies_are_4xx_problems_and_write_nothing(
    web: Web, data: bytes, content_type: str | None, status: int, code: str
) -> None:
    before = web.snapshot()
    response = web.post_raw(data, content_type)
    assert_problem(response, status, code)
    assert web.snapshot() == before
    assert web.bookings() == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (booking_body(practitioner_id=99), 404, "not_found"),
        (booking_body(practitioner_id=2**31 - 1), 404, "not_found"),
        (booking_body(practitioner_id=2**31), 404, "not_found"),  # ids are BIGINT
        (booking_body(practitioner_id=2**63 - 1), 404, "not_found"),
        (booking_body(service_id=99), 404, "not_found"),
        (booking_body(service_id=3), 404, "not_found"),  # another practitioner's service
        (booking_body(start="2030-01-08T09:15:00Z"), 422, "outside_availability"),  # off grid
        (booking_body(start="2030-01-08T09:00:30Z"), 422, "outside_availability"),
        (booking_body(start="2030-01-08T09:00:00.5Z"), 422, "outside_availability"),
        (booking_body(start="2030-01-08T18:00:00Z"), 422, "outside_availability"),
        (booking_body(start="2030-06-04T09:00:00Z"), 422, "outside_availability"),  # too far
        (booking_body(start="2031-01-07T09:00:00Z"), 422, "outside_availability"),
    ],
)
def test_unknown_ids_and_unoffered_starts_write_nothing(
    web: Web, body: dict[str, Any], status: int, code: str
) -> None:
    before = web.snapshot()
    assert_problem(web.book(body), status, code)
    assert web.snapshot() == before


def test_bad_requests_with_an_idempotency_key_store_no_key(web: Web) -> None:
    for body in (
        booking_body(start="nope"),
        booking_body(practitioner_id=99),
        booking_body(start="2030-01-08T09:15:00Z"),
    ):
        response = web.book(body, headers={"Idempotency-Key": "bad-request-key"})
        assert 400 <= response.status_code < 500
    assert web.post_raw(b"{", headers={"Idempotency-Key": "k2"}).status_code == 400
    assert web.store.idempotency == {}
    assert web.bookings() == []


def test_the_fractional_second_form_of_an_offered_start_is_accepted(web: Web) -> None:
    assert web.book(start="2030-01-08T09:00:00.000Z").status_code == 201


def test_lower_case_t_and_z_are_rfc_3339_too(web: Web) -> None:
    assert web.book(start="2030-01-08t09:00:00z").status_code == 201


# -- unexpected errors ----------------------------------------------------------------------------


class _Broken:
    def __call__(self) -> Any:
        raise RuntimeError("psycopg.OperationalError: password=hunter2 host=db.internal")


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("get", "/api/practitioners", {}),
        ("get", "/api/practitioners/1", {}),
        ("get", "/api/practitioners/1/availability", {}),
        ("post", "/api/bookings", {"json": booking_body()}),
    ],
)
def test_an_unexpected_exception_is_a_500_problem_without_internals(
    method: str, path: str, kwargs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    web = Web(uow_factory=_Broken())
    response = getattr(web.client, method)(path, **kwargs)
    body = assert_problem(response, 500, "internal_error")
    text = response.get_data(as_text=True)
    for leak in ("hunter2", "db.internal", "RuntimeError", "psycopg", "Traceback", "File "):
        assert leak not in text
    assert set(body) <= {"type", "title", "status", "detail", "code", "request_id"}
    assert body["request_id"] == response.headers["X-Request-ID"]
    # ...and it is logged, for us.
    assert any(r.levelname == "ERROR" and r.exc_info for r in caplog.records)


def test_no_bad_input_on_any_route_is_a_5xx(web: Web) -> None:
    """A sweep of odd inputs over every route: anything may be refused, nothing may crash."""
    created = web.booked()
    token = created["manage_token"]
    booking_id = created["booking"]["id"]
    auth = {"Authorization": f"Bearer {token}"}
    odd_values: list[Any] = [
        None,
        True,
        0,
        -1,
        2**31,
        10**40,
        1.5,
        "",
        "x" * 300,
        [],
        {},
        "2030-01-08T09:00:00",
        "9999-12-31T23:59:59Z",
        "\u0000",
        "é",
    ]
    odd_bodies = [b"", b"{", b"[]", b"null", b"\xff", b'{"a":' * 50]
    for value in odd_values:
        for field in ("practitioner_id", "service_id", "start", "client", "notes"):
            response = web.book({**booking_body(start=SLOT), field: value})
            assert response.status_code < 500, (field, value, response.get_data(as_text=True))
        for field in ("start", "reason"):
            response = web.client.post(
                f"/api/bookings/{booking_id}/reschedule", json={field: value}, headers=auth
            )
            assert response.status_code < 500, (field, value)
        for field in ("reason", "refund"):
            response = web.client.post(
                f"/api/bookings/{booking_id + 1}/cancel", json={field: value}, headers=auth
            )
            assert response.status_code < 500, (field, value)
    for raw in odd_bodies:
        for path in (
            "/api/bookings",
            f"/api/bookings/{booking_id}/cancel",
            f"/api/bookings/{booking_id}/reschedule",
            "/api/webhooks/stripe",
        ):
            response = web.post_raw(raw, path=path, headers=auth)
            assert response.status_code < 500, (path, raw)
    for query in (
        "?from=%00",
        "?to=%ff",
        "?service_id=%00",
        "?from=2030-01-07&to=9999-12-31",
        "?service_id=1e3",
        "?service_id=%20%201",
    ):
        assert web.client.get(f"/api/practitioners/1/availability{query}").status_code < 500
    for query in (
        "?status=%00",
        "?from=%ff",
        "?limit=1e3",
        "?email=%00",
        "?offset=99999999999",
        "?from=9999-12-31T23:59:59Z",
        "?from=0001-01-01T00:00:00Z",
    ):
        response = web.client.get(f"/api/admin/bookings{query}", headers=ADMIN)
        assert response.status_code < 500, query
