"""Setting the scheduling rules through the admin API, and approving or declining a booking
that awaits approval (issue 16)."""

from __future__ import annotations

import pytest

from booking_core.model import BookingStatus, Role

from .admin_support import CSRF, add_user, sign_in
from .http_support import ADMIN, SLOT, Web, assert_problem


@pytest.fixture
def web() -> Web:
    return Web()


RULES = {
    "alignment": "fill",
    "booking_window": {"kind": "business_days", "days": 10},
    "limits": {"max_bookings_per_day": 3, "max_minutes_per_week": 600},
    "requires_confirmation": True,
    "key": "intake",
}


def test_a_new_service_takes_its_scheduling_rules(web: Web) -> None:
    response = web.client.post(
        "/api/admin/practitioners/1/services",
        json={
            "name": "Intake",
            "duration_minutes": 45,
            "price": {"amount": 5000, "currency": "gbp"},
        }
        | RULES,
        headers=ADMIN,
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["alignment"] == "fill"
    assert body["booking_window"] == {
        "kind": "business_days",
        "days": 10,
        "first_day": None,
        "last_day": None,
    }
    assert body["limits"]["max_bookings_per_day"] == 3
    assert body["limits"]["max_bookings_per_week"] is None
    assert (body["requires_confirmation"], body["key"]) == (True, "intake")
    public = web.client.get("/api/practitioners/1").get_json()["services"]
    assert [s["key"] for s in public if s["name"] == "Intake"] == ["intake"]


def test_patching_a_service_changes_its_rules_and_availability(web: Web) -> None:
    response = web.client.patch(
        "/api/admin/services/1",
        json={
            "booking_window": {
                "kind": "date_range",
                "first_day": "2030-01-09",
                "last_day": "2030-01-09",
            }
        },
        headers=ADMIN,
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["booking_window"]["kind"] == "date_range"
    starts = web.slots("?from=2030-01-08&to=2030-01-10")
    assert starts
    assert all(s.startswith("2030-01-09") for s in starts)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"booking_window": {"kind": "calendar_days"}}, "window_days"),
        ({"booking_window": {"kind": "weekly"}}, "booking_window"),
        ({"limits": {"max_bookings_per_day": 0}}, "limits"),
        ({"alignment": "snap"}, "alignment"),
        ({"key": "Not A Key"}, "key"),
    ],
)
def test_bad_rules_are_a_422_naming_the_field(
    web: Web, body: dict[str, object], field: str
) -> None:
    before = web.client.get("/api/admin/practitioners/1", headers=ADMIN).get_json()
    problem = assert_problem(
        web.client.patch("/api/admin/services/1", json=body, headers=ADMIN), 422, "validation_error"
    )
    assert any(name.startswith(field) for name in problem["errors"]), problem["errors"]
    assert web.client.get("/api/admin/practitioners/1", headers=ADMIN).get_json() == before


def test_practitioner_limits_through_patch(web: Web) -> None:
    response = web.client.patch(
        "/api/admin/practitioners/1", json={"limits": {"max_bookings_per_day": 1}}, headers=ADMIN
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["limits"]["max_bookings_per_day"] == 1
    web.booked()
    assert web.slots("?from=2030-01-08&to=2030-01-08") == []


def _awaiting(web: Web) -> int:
    web.client.patch("/api/admin/services/1", json={"requires_confirmation": True}, headers=ADMIN)
    answer = web.booked()
    assert answer["booking"]["status"] == "awaiting_approval"
    return int(answer["booking"]["id"])


def test_approve_opens_the_checkout(web: Web) -> None:
    booking_id = _awaiting(web)
    response = web.client.post(f"/api/admin/bookings/{booking_id}/approve", headers=ADMIN)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["booking"]["status"] == "pending"
    assert body["checkout_url"]
    assert web.pay(web.session_of(booking_id)).status_code == 200
    assert web.stored(booking_id).status is BookingStatus.CONFIRMED
    assert_problem(
        web.client.post(f"/api/admin/bookings/{booking_id}/approve", headers=ADMIN),
        409,
        "invalid_transition",
    )
    audit = web.client.get("/api/admin/audit", headers=ADMIN).get_json()["items"]
    assert "booking.approve" in [a["action"] for a in audit]


def test_decline_frees_the_slot(web: Web) -> None:
    booking_id = _awaiting(web)
    response = web.client.post(
        f"/api/admin/bookings/{booking_id}/decline", json={"reason": "away"}, headers=ADMIN
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["status"] == "cancelled"
    assert SLOT in web.slots("?from=2030-01-08&to=2030-01-08")


def test_only_the_bookings_practitioner_may_approve(web: Web) -> None:
    booking_id = _awaiting(web)
    other = add_user(web, "jordan", Role.PRACTITIONER, practitioner_id=2)
    sign_in(web, other)
    headers = {"X-CSRF-Token": CSRF}
    assert_problem(
        web.client.post(f"/api/admin/bookings/{booking_id}/approve", headers=headers),
        404,
        "not_found",
    )
    owner = add_user(web, "maya", Role.PRACTITIONER, practitioner_id=1)
    sign_in(web, owner)
    response = web.client.post(f"/api/admin/bookings/{booking_id}/decline", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
