"""Scheduling rules over HTTP (issue 16): availability in the client's zone and as free ranges,
the services' new fields, a held request awaiting approval, a full day's limit."""

from __future__ import annotations

import attrs
import pytest

from booking_core.model import BookingLimits

from .http_support import SLOT, SLOT_2, Web, assert_problem


@pytest.fixture
def web() -> Web:
    return Web()


def change_service(web: Web, service_id: int, **changes: object) -> None:
    with web.store.lock:
        for practitioner in web.store.practitioners.values():
            practitioner.services = [
                attrs.evolve(s, **changes) if s.id == service_id else s
                for s in practitioner.services
            ]


def test_availability_in_the_clients_zone(web: Web) -> None:
    # Tokyo (UTC+9): London's Tuesday 09:00-11:00 falls on the client's Tuesday evening.
    body = web.client.get(
        "/api/practitioners/1/availability?from=2030-01-08&to=2030-01-08&timezone=Asia/Tokyo"
    ).get_json()
    assert body["client_timezone"] == "Asia/Tokyo"
    assert body["timezone"] == "Europe/London"
    assert (body["from"], body["to"]) == ("2030-01-08", "2030-01-08")
    assert [s["start"] for s in body["slots"]] == [
        "2030-01-08T09:00:00Z",
        "2030-01-08T10:00:00Z",
        "2030-01-08T11:00:00Z",
        "2030-01-08T13:00:00Z",
        "2030-01-08T14:00:00Z",
    ]
    assert body["slots"][0]["local_start"] == "2030-01-08T18:00:00+09:00"
    assert [d["date"] for d in body["days"]] == ["2030-01-08"]
    assert body["days"][0]["slots"] == body["slots"]
    # The client's Wednesday begins with London's Tuesday 15:00.
    wednesday = web.client.get(
        "/api/practitioners/1/availability?from=2030-01-09&to=2030-01-09&timezone=Asia/Tokyo"
    ).get_json()
    assert wednesday["slots"][0]["start"] == "2030-01-08T15:00:00Z"


def test_availability_without_a_zone_answers_in_the_practitioners(web: Web) -> None:
    body = web.client.get(
        "/api/practitioners/1/availability?from=2030-01-08&to=2030-01-09"
    ).get_json()
    assert body["client_timezone"] is None
    assert body["format"] == "slots"
    assert body["ranges"] == []
    assert [d["date"] for d in body["days"]] == ["2030-01-08", "2030-01-09"]
    assert body["slots"][0]["local_start"] == "2030-01-08T09:00:00+00:00"


def test_availability_as_free_ranges(web: Web) -> None:
    web.booked(start=SLOT_2)
    body = web.client.get(
        "/api/practitioners/1/availability?service_id=1&from=2030-01-08&to=2030-01-08&format=ranges"
    ).get_json()
    assert body["format"] == "ranges"
    assert body["slots"] == []
    assert [(r["start"], r["end"]) for r in body["ranges"]] == [
        ("2030-01-08T09:00:00Z", "2030-01-08T09:50:00Z"),
        ("2030-01-08T11:00:00Z", "2030-01-08T11:50:00Z"),  # 10:00 is booked
        ("2030-01-08T13:00:00Z", "2030-01-08T16:50:00Z"),  # 13:00 ... 16:00, hourly
    ]
    assert body["days"][0]["ranges"] == body["ranges"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("timezone=Mars/Olympus", "timezone"),
        ("timezone=../etc", "timezone"),
        ("format=list", "format"),
    ],
)
def test_bad_zone_or_format_is_a_422_naming_the_field(web: Web, query: str, field: str) -> None:
    body = assert_problem(
        web.client.get(f"/api/practitioners/1/availability?{query}"), 422, "validation_error"
    )
    assert field in body["errors"]


def test_services_show_their_scheduling_rules(web: Web) -> None:
    service = web.client.get("/api/practitioners/1").get_json()["services"][0]
    assert service["alignment"] == "grid"
    assert service["booking_window"] == {
        "kind": "rolling",
        "days": None,
        "first_day": None,
        "last_day": None,
    }
    assert service["limits"] == {
        "max_bookings_per_day": None,
        "max_bookings_per_week": None,
        "max_minutes_per_day": None,
        "max_minutes_per_week": None,
    }
    assert service["requires_confirmation"] is False


def test_a_service_that_requires_confirmation_answers_without_a_checkout(web: Web) -> None:
    change_service(web, 1, requires_confirmation=True)
    answer = web.booked()
    assert answer["checkout_url"] is None
    assert answer["booking"]["status"] == "awaiting_approval"
    assert web.payments.sessions == {}
    slots = web.slots("?from=2030-01-08&to=2030-01-08")
    assert SLOT not in slots
    assert_problem(web.book(), 409, "slot_unavailable")


def test_a_full_day_is_a_409_limit_reached(web: Web) -> None:
    change_service(web, 1, limits=BookingLimits(bookings_per_day=1))
    web.booked()
    assert_problem(web.book(start=SLOT_2), 409, "limit_reached")
    assert web.slots("?from=2030-01-08&to=2030-01-08") == []


def test_any_practitioner_over_http(web: Web) -> None:
    change_service(web, 1, key="intake")
    change_service(web, 3, key="intake")
    body = web.client.get(
        "/api/services/intake/availability?from=2030-01-08&to=2030-01-08&timezone=Europe/London"
    ).get_json()
    assert body["key"] == "intake"
    by_start = {s["start"]: [o["practitioner_id"] for o in s["offered_by"]] for s in body["slots"]}
    # London 15:00 is New York 10:00: both offer it.
    assert by_start["2030-01-08T15:00:00Z"] == [1, 2]
    assert by_start[SLOT] == [1]
    first = web.booked(practitioner_id="any", start="2030-01-08T15:00:00Z")
    second = web.booked(practitioner_id="any", start="2030-01-08T15:00:00Z")
    assert {first["booking"]["practitioner_id"], second["booking"]["practitioner_id"]} == {1, 2}
    assert second["booking"]["service_id"] in {1, 3}
    assert_problem(
        web.book(practitioner_id="any", start="2030-01-08T15:00:00Z"), 409, "slot_unavailable"
    )


def test_an_unknown_service_key_is_a_404(web: Web) -> None:
    assert_problem(web.client.get("/api/services/nobody/availability"), 404, "not_found")
    assert_problem(web.book(practitioner_id="any"), 404, "not_found")
    body = assert_problem(web.book(practitioner_id="anyone"), 422, "validation_error")
    assert "practitioner_id" in body["errors"]
