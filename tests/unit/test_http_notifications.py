"""The HTTP edge of notifications: the client's time zone on a booking request, and link
recovery (always 202, limited, documented)."""

from __future__ import annotations

from .http_support import CLIENT_EMAIL, Web, assert_problem, booking_body


def test_the_clients_time_zone_is_stored_and_shown() -> None:
    web = Web()
    body = booking_body()
    body["client"]["timezone"] = "America/New_York"
    answer = web.booked(body=body)
    assert answer["booking"]["client"]["timezone"] == "America/New_York"
    assert web.stored(answer["booking"]["id"]).client.timezone == "America/New_York"


def test_an_unknown_time_zone_is_refused_naming_the_field() -> None:
    web = Web()
    for zone in ("Mars/Olympus", "../etc/passwd", "", "Europe/London" * 10, 5):
        body = booking_body()
        body["client"]["timezone"] = zone
        problem = assert_problem(web.book(body=body), 422, "validation_error")
        assert "client.timezone" in problem["errors"], problem
    assert web.bookings() == []


def test_recovery_answers_202_alike_and_queues_without_looking_up() -> None:
    web = Web()
    web.booked()
    before = web.snapshot()
    known = web.client.post("/api/bookings/recover", json={"email": CLIENT_EMAIL})
    unknown = web.client.post("/api/bookings/recover", json={"email": "x@example.org"})
    assert known.status_code == unknown.status_code == 202
    assert known.get_data() == unknown.get_data()
    assert known.headers["Cache-Control"] == "no-store"
    after = web.snapshot()
    assert len(after[3]) == len(before[3]) + 2  # one job each, nothing else written
    assert after[0] == before[0]


def test_recovery_refuses_unknown_fields_and_is_rate_limited_per_ip() -> None:
    web = Web(settings={"ratelimit_recover_per_ip": "3 per hour"})
    problem = assert_problem(
        web.client.post("/api/bookings/recover", json={"email": CLIENT_EMAIL, "id": 1}),
        422,
        "validation_error",
    )
    assert "id" in problem["errors"]
    # Every request counts, refused ones too (each costs us work).
    for address in ("a@example.com", "b@example.com"):
        response = web.client.post("/api/bookings/recover", json={"email": address})
        assert response.status_code == 202
    limited = web.client.post("/api/bookings/recover", json={"email": "c@example.com"})
    assert_problem(limited, 429, "rate_limited")
