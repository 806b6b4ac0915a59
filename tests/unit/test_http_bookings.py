"""HTTP: booking, managing a booking with its token, and the admin API."""

from __future__ import annotations

from datetime import timedelta

import pytest

from booking_core.model import BookingStatus

from .http_support import (
    ADMIN,
    ADMIN_TOKEN,
    CLIENT_EMAIL,
    NOW,
    SLOT,
    SLOT_2,
    SLOT_3,
    Web,
    assert_problem,
    bearer,
)


@pytest.fixture
def web() -> Web:
    return Web()


# -- POST /api/bookings ---------------------------------------------------------------------------


def test_booking_is_created_with_checkout_url_and_manage_token(web: Web) -> None:
    response = web.book(notes="first visit")
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"booking", "checkout_url", "manage_token"}
    booking = body["booking"]
    assert response.headers["Location"] == f"/api/bookings/{booking['id']}"
    assert response.headers["Cache-Control"] == "no-store"
    assert booking["status"] == "pending"
    assert (booking["start"], booking["end"]) == (SLOT, "2030-01-08T09:50:00Z")
    assert booking["practitioner_id"] == 1
    assert booking["service_id"] == 1
    assert booking["price"] == {"amount": 9000, "currency": "gbp"}
    assert booking["client"] == {
        "name": "Ada Lovelace",
        "email": CLIENT_EMAIL,
        "phone": "+44 20 7946 0000",
        "timezone": None,
    }
    assert booking["notes"] == "first visit"
    assert booking["hold_expires_at"] == "2030-01-07T08:31:00Z"
    assert booking["created_at"] == booking["updated_at"] == "2030-01-07T08:00:00Z"
    assert {
        "id",
        "status",
        "practitioner_id",
        "service_id",
        "start",
        "end",
        "client",
        "price",
        "hold_expires_at",
        "created_at",
        "updated_at",
        "notes",
    } <= set(booking)
    session = web.session_of(booking["id"])
    assert body["checkout_url"].endswith(f"/dev/checkout/{session}")
    assert len(body["manage_token"]) >= 32
    stored = web.stored(booking["id"])
    assert body["manage_token"] not in stored.manage_token_hash  # stored hashed


def test_start_with_an_offset_is_accepted_and_answered_in_utc(web: Web) -> None:
    booking = web.booked(start="2030-01-08T10:00:00+01:00")["booking"]
    assert booking["start"] == SLOT


def test_email_is_normalised_to_lower_case(web: Web) -> None:
    body = web.booked(client={"name": "Ada", "email": "Ada@Example.COM"})
    assert body["booking"]["client"]["email"] == "ada@example.com"
    assert body["booking"]["client"]["phone"] is None


def test_a_taken_slot_is_409_slot_unavailable(web: Web) -> None:
    web.booked()
    before = web.snapshot()
    assert_problem(
        web.book(client={"name": "Bob", "email": "bob@example.com"}), 409, "slot_unavailable"
    )
    assert web.snapshot() == before


def test_a_slot_overlapping_another_services_booking_is_409(web: Web) -> None:
    web.booked(start=SLOT)  # 09:00-09:50 plus a 10-minute buffer
    assert_problem(web.book(service_id=2, start="2030-01-08T09:30:00Z"), 409, "slot_unavailable")


@pytest.mark.parametrize(
    "start",
    [
        "2030-01-08T09:15:00Z",  # off the hourly grid
        "2030-01-08T12:00:00Z",  # lunch break
        "2030-01-08T20:00:00Z",  # after hours
        "2030-01-12T10:00:00Z",  # Saturday
        "2030-01-07T10:00:00Z",  # inside hours but within the 12-hour notice
        "2030-06-04T09:00:00Z",  # beyond the 60-day maximum advance
    ],
)
def test_a_start_that_is_not_offered_is_422_outside_availability(web: Web, start: str) -> None:
    before = web.snapshot()
    assert_problem(web.book(start=start), 422, "outside_availability")
    assert web.snapshot() == before


def test_payment_outage_is_503_and_the_slot_is_offered_again(web: Web) -> None:
    web.payments.fail_next()
    response = web.book()
    body = assert_problem(response, 503, "payment_unavailable")
    assert "Retry-After" not in body
    assert int(response.headers["Retry-After"]) > 0  # every 503 says when to come back
    assert SLOT in web.slots()
    assert all(b.status is BookingStatus.EXPIRED for b in web.bookings())
    # ...and booking it again works at once.
    assert web.book().status_code == 201


# -- manage token: GET, cancel, reschedule --------------------------------------------------------


def test_get_booking_with_its_manage_token(web: Web) -> None:
    created = web.booked()
    booking_id = created["booking"]["id"]
    headers = bearer(created["manage_token"])
    response = web.client.get(f"/api/bookings/{booking_id}", headers=headers)
    assert response.status_code == 200
    assert response.get_json() == created["booking"]
    assert "manage_token" not in response.get_json()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer  "},
        {"Authorization": "Basic YWRhOnB3"},
        {"Authorization": "Token abc"},
    ],
)
def test_no_bearer_token_is_401(web: Web, headers: dict[str, str]) -> None:
    booking_id = web.booked()["booking"]["id"]
    assert_problem(
        web.client.get(f"/api/bookings/{booking_id}", headers=headers), 401, "unauthorized"
    )
    assert_problem(
        web.client.post(f"/api/bookings/{booking_id}/cancel", headers=headers), 401, "unauthorized"
    )
    assert_problem(
        web.client.post(
            f"/api/bookings/{booking_id}/reschedule", json={"start": SLOT_2}, headers=headers
        ),
        401,
        "unauthorized",
    )


def test_wrong_token_or_another_bookings_token_is_404(web: Web) -> None:
    first = web.booked()
    second = web.booked(start=SLOT_2)
    first_id = first["booking"]["id"]
    for token in ("wrong", second["manage_token"], first["manage_token"] + "x", "é"):
        for response in (
            web.client.get(f"/api/bookings/{first_id}", headers=bearer(token)),
            web.client.post(f"/api/bookings/{first_id}/cancel", headers=bearer(token)),
            web.client.post(
                f"/api/bookings/{first_id}/reschedule",
                json={"start": SLOT_3},
                headers=bearer(token),
            ),
        ):
            assert_problem(response, 404, "not_found")
    assert web.stored(first_id).status is BookingStatus.PENDING
    assert web.stored(first_id).start == NOW.replace(day=8, hour=9)


def test_wrong_token_and_unknown_booking_answer_alike(web: Web) -> None:
    created = web.booked()
    wrong = web.client.get(f"/api/bookings/{created['booking']['id']}", headers=bearer("nope"))
    missing = web.client.get("/api/bookings/999", headers=bearer("nope"))
    a, b = wrong.get_json(), missing.get_json()
    assert (a["status"], a["code"], a["title"]) == (b["status"], b["code"], b["title"])


@pytest.mark.parametrize("booking_id", ["0", str(2**31), "99999999999999999999999"])
def test_huge_or_zero_booking_ids_are_404(web: Web, booking_id: str) -> None:
    assert_problem(web.client.get(f"/api/bookings/{booking_id}", headers=ADMIN), 404)
    assert_problem(web.client.get(f"/api/bookings/{booking_id}", headers=bearer("x")), 404)


def test_admin_token_works_for_any_booking(web: Web) -> None:
    booking_id = web.booked()["booking"]["id"]
    response = web.client.get(f"/api/bookings/{booking_id}", headers=ADMIN)
    assert response.status_code == 200
    assert response.get_json()["id"] == booking_id


def test_cancel_a_pending_booking_frees_the_slot(web: Web) -> None:
    created = web.booked()
    booking_id = created["booking"]["id"]
    response = web.client.post(
        f"/api/bookings/{booking_id}/cancel",
        json={"reason": "plans changed"},
        headers=bearer(created["manage_token"]),
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["booking"]["status"] == "cancelled"
    assert body["refund"] is None
    assert SLOT in web.slots()


def test_cancel_without_a_body_works(web: Web) -> None:
    created = web.booked()
    response = web.client.post(
        f"/api/bookings/{created['booking']['id']}/cancel", headers=bearer(created["manage_token"])
    )
    assert response.status_code == 200


def test_cancel_a_confirmed_booking_in_time_refunds_in_full(web: Web) -> None:
    created = web.confirmed()  # starts 25 hours from now; the window is 24 hours
    response = web.client.post(
        f"/api/bookings/{created['booking']['id']}/cancel", headers=bearer(created["manage_token"])
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["booking"]["status"] == "cancelled"
    assert body["refund"] == {"amount": 9000, "currency": "gbp", "status": "succeeded"}
    assert body["booking"]["refund"] == body["refund"]
    assert sum(web.payments.refunded.values()) == 9000


def test_cancel_a_confirmed_booking_late_refunds_nothing(web: Web) -> None:
    created = web.confirmed()
    web.clock.advance(timedelta(hours=2))  # now 23 hours before the start
    response = web.client.post(
        f"/api/bookings/{created['booking']['id']}/cancel", headers=bearer(created["manage_token"])
    )
    assert response.status_code == 200
    assert response.get_json()["refund"] is None
    assert web.payments.refunded == {}


def test_clients_cannot_override_the_refund(web: Web) -> None:
    created = web.confirmed()
    web.clock.advance(timedelta(hours=2))
    body = assert_problem(
        web.client.post(
            f"/api/bookings/{created['booking']['id']}/cancel",
            json={"refund": True},
            headers=bearer(created["manage_token"]),
        ),
        422,
        "validation_error",
    )
    assert "refund" in body["errors"]
    assert web.stored(created["booking"]["id"]).status is BookingStatus.CONFIRMED


def test_cancel_twice_is_409_invalid_transition(web: Web) -> None:
    created = web.booked()
    url = f"/api/bookings/{created['booking']['id']}/cancel"
    headers = bearer(created["manage_token"])
    assert web.client.post(url, headers=headers).status_code == 200
    assert_problem(web.client.post(url, headers=headers), 409, "invalid_transition")


def test_cancel_with_bad_body_is_4xx_and_changes_nothing(web: Web) -> None:
    created = web.booked()
    url = f"/api/bookings/{created['booking']['id']}/cancel"
    headers = bearer(created["manage_token"])
    before = web.snapshot()
    assert_problem(web.client.post(url, json={"reason": 5}, headers=headers), 422)
    assert_problem(web.client.post(url, json={"why": "x"}, headers=headers), 422)
    assert_problem(web.client.post(url, json=["x"], headers=headers), 400)
    assert_problem(
        web.client.post(url, data="{", content_type="application/json", headers=headers), 400
    )
    assert_problem(
        web.client.post(
            url, data="reason=x", headers=headers, content_type="application/x-www-form-urlencoded"
        ),
        415,
    )
    assert_problem(web.client.post(url, json={"reason": "x" * 501}, headers=headers), 422)
    assert web.snapshot() == before


def test_reschedule_to_a_free_slot(web: Web) -> None:
    created = web.booked()
    response = web.client.post(
        f"/api/bookings/{created['booking']['id']}/reschedule",
        json={"start": SLOT_3, "reason": "clash"},
        headers=bearer(created["manage_token"]),
    )
    assert response.status_code == 200
    booking = response.get_json()["booking"]
    assert (booking["start"], booking["end"]) == (SLOT_3, "2030-01-08T11:50:00Z")
    slots = web.slots()
    assert SLOT in slots
    assert SLOT_3 not in slots


def test_reschedule_a_confirmed_booking_keeps_it_confirmed(web: Web) -> None:
    created = web.confirmed()
    response = web.client.post(
        f"/api/bookings/{created['booking']['id']}/reschedule",
        json={"start": SLOT_2},
        headers=bearer(created["manage_token"]),
    )
    assert response.status_code == 200
    assert response.get_json()["booking"]["status"] == "confirmed"


def test_reschedule_to_a_taken_slot_is_409(web: Web) -> None:
    created = web.booked()
    web.booked(start=SLOT_2, client={"name": "Bob", "email": "bob@example.com"})
    before = web.snapshot()
    assert_problem(
        web.client.post(
            f"/api/bookings/{created['booking']['id']}/reschedule",
            json={"start": SLOT_2},
            headers=bearer(created["manage_token"]),
        ),
        409,
        "slot_unavailable",
    )
    assert web.snapshot() == before


@pytest.mark.parametrize(
    ("start", "status", "code"),
    [
        ("2030-01-08T10:30:00Z", 422, "outside_availability"),
        ("2030-01-12T10:00:00Z", 422, "outside_availability"),
        ("2030-01-08T10:00:00", 422, "validation_error"),
        ("tomorrow", 422, "validation_error"),
        ("2020-01-08T10:00:00Z", 422, "validation_error"),
        ("9999-12-31T23:00:00Z", 422, "validation_error"),
        (None, 422, "validation_error"),
        (1736326800, 422, "validation_error"),
    ],
)
def test_reschedule_to_a_bad_start_is_422(web: Web, start: object, status: int, code: str) -> None:
    created = web.booked()
    before = web.snapshot()
    assert_problem(
        web.client.post(
            f"/api/bookings/{created['booking']['id']}/reschedule",
            json={"start": start},
            headers=bearer(created["manage_token"]),
        ),
        status,
        code,
    )
    assert web.snapshot() == before


def test_reschedule_a_cancelled_booking_is_409(web: Web) -> None:
    created = web.booked()
    headers = bearer(created["manage_token"])
    web.client.post(f"/api/bookings/{created['booking']['id']}/cancel", headers=headers)
    assert_problem(
        web.client.post(
            f"/api/bookings/{created['booking']['id']}/reschedule",
            json={"start": SLOT_2},
            headers=headers,
        ),
        409,
        "invalid_transition",
    )


# -- admin ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/admin/bookings", "/api/admin/jobs", "/api/admin/bookings/1"]
)
def test_admin_needs_the_admin_token(web: Web, path: str) -> None:
    created = web.booked()
    assert_problem(web.client.get(path), 401, "unauthorized")
    assert_problem(web.client.get(path, headers=bearer("wrong")), 401, "unauthorized")
    assert_problem(web.client.get(path, headers=bearer(created["manage_token"])), 401)
    assert_problem(web.client.get(path, headers=bearer(ADMIN_TOKEN + "x")), 401)
    assert web.client.get(path, headers=ADMIN).status_code == 200


def test_admin_cancel_needs_the_admin_token(web: Web) -> None:
    created = web.booked()
    url = f"/api/admin/bookings/{created['booking']['id']}/cancel"
    assert_problem(web.client.post(url), 401, "unauthorized")
    assert_problem(web.client.post(url, headers=bearer(created["manage_token"])), 401)
    assert web.stored(created["booking"]["id"]).status is BookingStatus.PENDING


def test_admin_is_closed_when_no_admin_token_is_configured() -> None:
    web = Web(settings={"admin_api_token": None})
    assert_problem(web.client.get("/api/admin/bookings"), 401)
    assert_problem(web.client.get("/api/admin/bookings", headers=bearer("")), 401)
    assert_problem(web.client.get("/api/admin/bookings", headers=bearer("None")), 401)


def _three_bookings(web: Web) -> list[int]:
    a = web.confirmed(start=SLOT)["booking"]["id"]
    b = web.booked(start=SLOT_2, client={"name": "Bob", "email": "bob@example.com"})
    c = web.booked(practitioner_id=2, service_id=3, start="2030-01-08T13:00:00Z")
    return [a, b["booking"]["id"], c["booking"]["id"]]


def test_admin_list_with_filters(web: Web) -> None:
    a, b, c = _three_bookings(web)

    def ids(query: str = "") -> list[int]:
        response = web.client.get(f"/api/admin/bookings{query}", headers=ADMIN)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [item["id"] for item in response.get_json()["items"]]

    assert sorted(ids()) == [a, b, c]
    assert sorted(ids("?practitioner_id=1")) == [a, b]
    assert ids("?status=confirmed") == [a]
    assert sorted(ids("?status=pending")) == [b, c]
    assert ids("?email=BOB@example.com") == [b]
    assert ids("?from=2030-01-08T09:30:00Z&to=2030-01-08T12:00:00Z") == [b]
    assert ids("?from=2030-01-08T13:00:00%2B00:00") == [c]
    assert len(ids("?limit=1")) == 1
    assert ids("?practitioner_id=2&status=confirmed") == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?status=lost", "status"),
        ("?practitioner_id=abc", "practitioner_id"),
        ("?practitioner_id=0", "practitioner_id"),
        ("?practitioner_id=99999999999999999999999", "practitioner_id"),
        ("?from=2030-01-08", "from"),
        ("?to=2030-01-08T09:00:00", "to"),
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?limit=x", "limit"),
        ("?offset=1", "offset"),
        ("?cursor=", "cursor"),
        ("?cursor=bm9wZQ", "cursor"),
        ("?cursor=%21%21", "cursor"),
        ("?sort=start", "sort"),
    ],
)
def test_admin_list_bad_filter_is_422(web: Web, query: str, field: str) -> None:
    body = assert_problem(
        web.client.get(f"/api/admin/bookings{query}", headers=ADMIN), 422, "validation_error"
    )
    assert field in body["errors"]


def test_admin_get_one_booking(web: Web) -> None:
    booking_id = web.booked()["booking"]["id"]
    response = web.client.get(f"/api/admin/bookings/{booking_id}", headers=ADMIN)
    assert response.status_code == 200
    assert response.get_json()["id"] == booking_id


@pytest.mark.parametrize("booking_id", ["999", "0", str(2**31), "99999999999999999999999"])
def test_admin_unknown_booking_is_404(web: Web, booking_id: str) -> None:
    assert_problem(
        web.client.get(f"/api/admin/bookings/{booking_id}", headers=ADMIN), 404, "not_found"
    )
    assert_problem(
        web.client.post(f"/api/admin/bookings/{booking_id}/cancel", headers=ADMIN), 404, "not_found"
    )


def test_admin_cancel_follows_the_policy_by_default(web: Web) -> None:
    created = web.confirmed()
    web.clock.advance(timedelta(hours=2))  # late: the policy refunds nothing
    response = web.client.post(
        f"/api/admin/bookings/{created['booking']['id']}/cancel", headers=ADMIN
    )
    assert response.status_code == 200
    assert response.get_json()["refund"] is None


def test_admin_cancel_can_force_a_refund(web: Web) -> None:
    created = web.confirmed()
    web.clock.advance(timedelta(hours=2))
    response = web.client.post(
        f"/api/admin/bookings/{created['booking']['id']}/cancel",
        json={"refund": True, "reason": "practitioner ill"},
        headers=ADMIN,
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["booking"]["status"] == "cancelled"
    assert body["refund"] == {"amount": 9000, "currency": "gbp", "status": "succeeded"}


def test_admin_cancel_can_refuse_a_refund(web: Web) -> None:
    created = web.confirmed()  # in time: the policy would refund in full
    response = web.client.post(
        f"/api/admin/bookings/{created['booking']['id']}/cancel",
        json={"refund": False},
        headers=ADMIN,
    )
    assert response.status_code == 200
    assert response.get_json()["refund"] is None
    assert web.payments.refunded == {}


def test_admin_token_on_the_client_cancel_may_override_too(web: Web) -> None:
    created = web.confirmed()
    web.clock.advance(timedelta(hours=2))
    response = web.client.post(
        f"/api/bookings/{created['booking']['id']}/cancel", json={"refund": True}, headers=ADMIN
    )
    assert response.status_code == 200
    assert response.get_json()["refund"]["amount"] == 9000


@pytest.mark.parametrize("body", [{"refund": "yes"}, {"refund": 1}, {"force": True}, [1]])
def test_admin_cancel_bad_body_is_4xx(web: Web, body: object) -> None:
    created = web.confirmed()
    before = web.snapshot()
    response = web.client.post(
        f"/api/admin/bookings/{created['booking']['id']}/cancel", json=body, headers=ADMIN
    )
    assert 400 <= response.status_code < 500
    assert_problem(response, response.status_code)
    assert web.snapshot() == before


def test_admin_cancel_twice_is_409(web: Web) -> None:
    booking_id = web.booked()["booking"]["id"]
    url = f"/api/admin/bookings/{booking_id}/cancel"
    assert web.client.post(url, headers=ADMIN).status_code == 200
    assert_problem(web.client.post(url, headers=ADMIN), 409, "invalid_transition")


def test_admin_jobs_list(web: Web) -> None:
    assert web.client.get("/api/admin/jobs", headers=ADMIN).get_json() == {"items": []}
    web.confirmed()
    items = web.client.get("/api/admin/jobs", headers=ADMIN).get_json()["items"]
    kinds = sorted(job["kind"] for job in items)
    assert "calendar.create" in kinds
    assert "email" in kinds
    assert all(job["status"] == "pending" for job in items)
    assert {
        "id",
        "kind",
        "payload",
        "status",
        "attempts",
        "last_error",
        "run_at",
        "created_at",
    } <= set(items[0])
    pending = web.client.get("/api/admin/jobs?status=pending", headers=ADMIN).get_json()
    assert len(pending["items"]) == len(items)
    parked = web.client.get("/api/admin/jobs?status=parked", headers=ADMIN).get_json()
    assert parked["items"] == []
    assert_problem(
        web.client.get("/api/admin/jobs?status=lost", headers=ADMIN), 422, "validation_error"
    )
