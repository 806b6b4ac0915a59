"""The admin API's behaviour: strict validation naming the field, defaults, refunds bounded by
the payment, no-show, parked jobs, roles, the audit log and cursor pagination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from booking_core.model import Booking, BookingStatus, Client, Role
from booking_core.policy import hash_token

from .admin_support import CSRF, add_user, parked_job, sign_in, state
from .http_support import ADMIN, NOW, SLOT, SLOT_2, SLOT_3, Web, assert_problem, bearer

PRACTITIONER = {"name": "Sam Doe", "email": "sam@example.com", "timezone": "Europe/Paris"}
SERVICE = {"name": "Long", "duration_minutes": 90, "price": {"amount": 12000, "currency": "eur"}}


@pytest.fixture
def web() -> Web:
    return Web()


def _ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


# -- validation: the field is named, nothing changes ----------------------------------------------


BAD: list[tuple[str, str, Any, str]] = [
    ("POST", "/api/admin/practitioners", {**PRACTITIONER, "nickname": "x"}, "nickname"),
    ("POST", "/api/admin/practitioners", {**PRACTITIONER, "timezone": "Mars/Olympus"}, "timezone"),
    ("POST", "/api/admin/practitioners", {**PRACTITIONER, "timezone": "localtime"}, "timezone"),
    ("POST", "/api/admin/practitioners", {**PRACTITIONER, "timezone": "../etc/passwd"}, "timezone"),
    ("POST", "/api/admin/practitioners", {**PRACTITIONER, "email": "not-an-email"}, "email"),
    ("POST", "/api/admin/practitioners", {**PRACTITIONER, "name": "  "}, "name"),
    ("POST", "/api/admin/practitioners", {"name": "Sam"}, "email"),
    ("PATCH", "/api/admin/practitioners/1", {"name": None}, "name"),
    ("PATCH", "/api/admin/practitioners/1", {"active": "yes"}, "active"),
    ("PATCH", "/api/admin/practitioners/1", {"services": []}, "services"),
    (
        "POST",
        "/api/admin/practitioners/1/services",
        {**SERVICE, "duration_minutes": 4},
        "duration_minutes",
    ),
    (
        "POST",
        "/api/admin/practitioners/1/services",
        {**SERVICE, "duration_minutes": 1441},
        "duration_minutes",
    ),
    (
        "POST",
        "/api/admin/practitioners/1/services",
        {**SERVICE, "price": {"amount": 10.5, "currency": "eur"}},
        "price.amount",
    ),
    (
        "POST",
        "/api/admin/practitioners/1/services",
        {**SERVICE, "price": {"amount": "100", "currency": "eur"}},
        "price.amount",
    ),
    (
        "POST",
        "/api/admin/practitioners/1/services",
        {**SERVICE, "price": {"amount": -1, "currency": "eur"}},
        "price.amount",
    ),
    (
        "POST",
        "/api/admin/practitioners/1/services",
        {**SERVICE, "price": {"amount": 100, "currency": "xyz"}},
        "price.currency",
    ),
    (
        "POST",
        "/api/admin/practitioners/1/services",
        {**SERVICE, "buffer_before_minutes": -5},
        "buffer_before_minutes",
    ),
    (
        "POST",
        "/api/admin/practitioners/1/services",
        {**SERVICE, "buffer_after_minutes": 1441},
        "buffer_after_minutes",
    ),
    (
        "POST",
        "/api/admin/practitioners/1/services",
        {**SERVICE, "max_advance_days": 0},
        "max_advance_days",
    ),
    (
        "POST",
        "/api/admin/practitioners/1/services",
        {**SERVICE, "slot_interval_minutes": 2},
        "slot_interval_minutes",
    ),
    ("POST", "/api/admin/practitioners/1/services", {**SERVICE, "colour": "red"}, "colour"),
    ("PATCH", "/api/admin/services/1", {"duration_minutes": None}, "duration_minutes"),
    ("PATCH", "/api/admin/services/1", {"price": {"amount": 1}}, "price.currency"),
    (
        "PUT",
        "/api/admin/practitioners/1/working-hours",
        {"mon": [{"start": "09:00", "end": "12:00"}, {"start": "11:00", "end": "13:00"}]},
        "mon",
    ),
    (
        "PUT",
        "/api/admin/practitioners/1/working-hours",
        {"tue": [{"start": "12:00", "end": "09:00"}]},
        "tue.end",
    ),
    (
        "PUT",
        "/api/admin/practitioners/1/working-hours",
        {"wed": [{"start": "25:00", "end": "26:00"}]},
        "wed.start",
    ),
    (
        "PUT",
        "/api/admin/practitioners/1/working-hours",
        {"thu": [{"start": "9:00", "end": "12:00"}]},
        "thu.start",
    ),
    ("PUT", "/api/admin/practitioners/1/working-hours", {"funday": []}, "funday"),
    (
        "POST",
        "/api/admin/practitioners/1/time-off",
        {"start": "2030-02-02T00:00:00Z", "end": "2030-02-01T00:00:00Z"},
        "end",
    ),
    (
        "POST",
        "/api/admin/practitioners/1/time-off",
        {"start": "2030-02-01T00:00:00Z", "end": "2030-02-01T00:00:00Z"},
        "end",
    ),
    (
        "POST",
        "/api/admin/practitioners/1/time-off",
        {"start": "2030-02-01T00:00:00", "end": "2030-02-02T00:00:00Z"},
        "start",
    ),
    ("PUT", "/api/admin/practitioners/1/calcom", {"user_id": "41", "event_type_id": 42}, "user_id"),
    ("PUT", "/api/admin/practitioners/1/calcom", {"user_id": 41}, "event_type_id"),
    ("POST", "/api/admin/bookings/{booking}/cancel", {"refund_amount": 0}, "refund_amount"),
    ("POST", "/api/admin/bookings/{booking}/cancel", {"refund_amount": "10"}, "refund_amount"),
    (
        "POST",
        "/api/admin/bookings/{booking}/cancel",
        {"refund": False, "refund_amount": 10},
        "refund_amount",
    ),
    ("PATCH", "/api/admin/users/{user}", {"role": "god"}, "role"),
    ("PATCH", "/api/admin/users/{user}", {"role": "practitioner"}, "practitioner_id"),
    (
        "PATCH",
        "/api/admin/users/{user}",
        {"role": "admin", "practitioner_id": 1},
        "practitioner_id",
    ),
    (
        "PATCH",
        "/api/admin/users/{user}",
        {"role": "practitioner", "practitioner_id": 99},
        "practitioner_id",
    ),
    ("POST", "/api/admin/tokens", {"name": ""}, "name"),
    ("GET", "/api/admin/audit?cursor=eyJ4IjoxfQ", None, "cursor"),
    ("GET", "/api/admin/audit?since=yesterday", None, "since"),
    ("GET", "/api/admin/bookings?cursor=eyJzIjoxLCJpIjoxfQ", None, "cursor"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"), BAD, ids=[f"{m} {p} {f}" for m, p, _, f in BAD]
)
def test_bad_input_is_a_422_naming_the_field_and_changes_nothing(
    web: Web, method: str, path: str, body: Any, field: str
) -> None:
    booking = web.confirmed()["booking"]["id"]
    user = add_user(web, "someone", Role.USER).id
    before = state(web)
    url = path.format(booking=booking, user=user)
    problem = assert_problem(
        web.client.open(url, method=method, json=body, headers=ADMIN), 422, "validation_error"
    )
    assert field in problem["errors"], problem
    assert state(web) == before


# -- defaults and the public side -----------------------------------------------------------------


def test_a_new_practitioner_and_service_are_active_unless_the_body_says_otherwise(web: Web) -> None:
    created = _ok(
        web.client.post("/api/admin/practitioners", json=PRACTITIONER, headers=ADMIN), 201
    )
    assert created["active"] is True
    assert created["services"] == []
    assert created["calcom"] is None
    assert created["working_hours"]["mon"] == []
    pid = created["id"]
    service = _ok(
        web.client.post(f"/api/admin/practitioners/{pid}/services", json=SERVICE, headers=ADMIN),
        201,
    )
    assert service["active"] is True
    assert service["price"] == {"amount": 12000, "currency": "eur"}
    public = _ok(web.client.get(f"/api/practitioners/{pid}"))
    assert [s["id"] for s in public["services"]] == [service["id"]]

    hidden = _ok(
        web.client.post(
            "/api/admin/practitioners", json={**PRACTITIONER, "active": False}, headers=ADMIN
        ),
        201,
    )
    assert hidden["active"] is False
    assert hidden["id"] not in [p["id"] for p in _ok(web.client.get("/api/practitioners"))["items"]]
    listed = _ok(web.client.get("/api/admin/practitioners", headers=ADMIN))["items"]
    assert hidden["id"] in [p["id"] for p in listed]  # the admin list shows inactive ones too
    off = _ok(
        web.client.post(
            f"/api/admin/practitioners/{pid}/services",
            json={**SERVICE, "active": False},
            headers=ADMIN,
        ),
        201,
    )
    assert off["id"] not in [
        s["id"] for s in _ok(web.client.get(f"/api/practitioners/{pid}"))["services"]
    ]


def test_hours_time_off_and_deactivation_show_in_public_availability_at_once(web: Web) -> None:
    assert "2030-01-08T09:00:00Z" in web.slots("?service_id=1&from=2030-01-08&to=2030-01-08")
    hours = {"tue": [{"start": "14:00", "end": "16:00"}]}
    changed = _ok(
        web.client.put("/api/admin/practitioners/1/working-hours", json=hours, headers=ADMIN)
    )
    assert changed["working_hours"]["tue"] == [{"start": "14:00", "end": "16:00"}]
    assert changed["working_hours"]["mon"] == []
    assert web.slots("?service_id=1&from=2030-01-08&to=2030-01-08") == [
        "2030-01-08T14:00:00Z",
        "2030-01-08T15:00:00Z",
    ]
    off = {"start": "2030-01-08T14:30:00Z", "end": "2030-01-08T15:00:00Z"}
    time_off = _ok(
        web.client.post("/api/admin/practitioners/1/time-off", json=off, headers=ADMIN), 201
    )
    assert web.slots("?service_id=1&from=2030-01-08&to=2030-01-08") == ["2030-01-08T15:00:00Z"]
    assert (
        web.client.delete(f"/api/admin/time-off/{time_off['id']}", headers=ADMIN).status_code == 204
    )
    assert len(web.slots("?service_id=1&from=2030-01-08&to=2030-01-08")) == 2
    assert_problem(
        web.client.delete(f"/api/admin/time-off/{time_off['id']}", headers=ADMIN), 404, "not_found"
    )
    _ok(web.client.patch("/api/admin/practitioners/1", json={"active": False}, headers=ADMIN))
    assert_problem(web.client.get("/api/practitioners/1/availability"), 404, "not_found")


def test_the_calcom_link_is_stored_and_removed(web: Web) -> None:
    linked = _ok(
        web.client.put(
            "/api/admin/practitioners/1/calcom",
            json={"user_id": 41, "event_type_id": 42},
            headers=ADMIN,
        )
    )
    assert linked["calcom"] == {"user_id": 41, "event_type_id": 42}
    assert web.client.delete("/api/admin/practitioners/1/calcom", headers=ADMIN).status_code == 204
    assert _ok(web.client.get("/api/admin/practitioners/1", headers=ADMIN))["calcom"] is None


def test_service_changes_keep_existing_bookings_as_they_were(web: Web) -> None:
    booking = web.confirmed()["booking"]
    changed = _ok(
        web.client.patch(
            "/api/admin/services/1",
            json={"price": {"amount": 1, "currency": "gbp"}, "duration_minutes": 30},
            headers=ADMIN,
        )
    )
    assert changed["price"] == {"amount": 1, "currency": "gbp"}
    assert changed["duration_minutes"] == 30
    again = _ok(web.client.get(f"/api/admin/bookings/{booking['id']}", headers=ADMIN))
    assert again["price"] == booking["price"]
    assert again["end"] == booking["end"]
    assert_problem(
        web.client.patch("/api/admin/services/999", json={"name": "x"}, headers=ADMIN),
        404,
        "not_found",
    )


# -- cancel with a refund amount, no-show ---------------------------------------------------------


def test_admin_cancel_refunds_an_amount_within_the_payment(web: Web) -> None:
    booking = web.confirmed()["booking"]["id"]
    web.clock.advance(timedelta(hours=2))
    body = _ok(
        web.client.post(
            f"/api/admin/bookings/{booking}/cancel", json={"refund_amount": 3000}, headers=ADMIN
        )
    )
    assert body["refund"] == {"amount": 3000, "currency": "gbp", "status": "succeeded"}
    assert web.store.payments[web.stored(booking).payment_intent_id or ""].refunded == 3000


def test_admin_cancel_refuses_a_refund_beyond_the_payment_and_changes_nothing(web: Web) -> None:
    booking = web.confirmed()["booking"]["id"]
    before = state(web)
    response = web.client.post(
        f"/api/admin/bookings/{booking}/cancel", json={"refund_amount": 9001}, headers=ADMIN
    )
    assert_problem(response, 409, "refund_exceeds_capture")
    assert state(web) == before
    assert web.stored(booking).status is BookingStatus.CONFIRMED


def test_a_refund_amount_on_an_unpaid_booking_is_refused(web: Web) -> None:
    booking = web.booked()["booking"]["id"]
    before = state(web)
    response = web.client.post(
        f"/api/admin/bookings/{booking}/cancel", json={"refund_amount": 10}, headers=ADMIN
    )
    assert_problem(response, 409, "refund_exceeds_capture")
    assert state(web) == before


def test_no_show_only_for_a_confirmed_booking_that_has_started(web: Web) -> None:
    confirmed = web.confirmed(start=SLOT)["booking"]["id"]
    pending = web.booked(start=SLOT_2)["booking"]["id"]
    url = "/api/admin/bookings/{}/no-show"
    assert_problem(web.client.post(url.format(confirmed), headers=ADMIN), 409, "invalid_transition")
    web.clock.set(datetime(2030, 1, 8, 9, 5, tzinfo=UTC))
    assert_problem(web.client.post(url.format(pending), headers=ADMIN), 409, "invalid_transition")
    marked = _ok(web.client.post(url.format(confirmed), headers=ADMIN))
    assert marked["status"] == "no_show"
    assert_problem(web.client.post(url.format(confirmed), headers=ADMIN), 409, "invalid_transition")
    listed = _ok(web.client.get("/api/admin/bookings?status=no_show", headers=ADMIN))
    assert [b["id"] for b in listed["items"]] == [confirmed]


# -- jobs, users ----------------------------------------------------------------------------------


def test_a_parked_job_is_queued_again(web: Web) -> None:
    job = parked_job(web)
    parked = _ok(web.client.get("/api/admin/jobs?status=parked", headers=ADMIN))["items"]
    assert [j["id"] for j in parked] == [job]
    retried = _ok(web.client.post(f"/api/admin/jobs/{job}/retry", headers=ADMIN))
    assert retried["status"] == "pending"
    assert retried["attempts"] == 0
    assert retried["last_error"] == "smtp said no"
    assert _ok(web.client.get("/api/admin/jobs?status=parked", headers=ADMIN))["items"] == []
    assert_problem(web.client.post(f"/api/admin/jobs/{job}/retry", headers=ADMIN), 404, "not_found")


def test_a_role_change_counts_at_once(web: Web) -> None:
    user = add_user(web, "maya", Role.USER)
    sign_in(web, user)
    assert_problem(web.client.get("/api/admin/practitioners/1"), 403, "forbidden")
    changed = _ok(
        web.client.patch(
            f"/api/admin/users/{user.id}",
            json={"role": "practitioner", "practitioner_id": 1},
            headers=ADMIN,
        )
    )
    assert (changed["role"], changed["practitioner_id"]) == ("practitioner", 1)
    assert _ok(web.client.get("/api/admin/practitioners/1"))["id"] == 1
    assert [p["id"] for p in _ok(web.client.get("/api/admin/practitioners"))["items"]] == [1]
    assert_problem(web.client.get("/api/admin/practitioners/2"), 404, "not_found")
    users = _ok(web.client.get("/api/admin/users", headers=ADMIN))["items"]
    assert [u["open_id"] for u in users] == ["maya"]
    assert_problem(
        web.client.patch("/api/admin/users/999", json={"role": "user"}, headers=ADMIN), 404
    )


def test_a_practitioner_edits_their_own_things_with_csrf(web: Web) -> None:
    user = add_user(web, "maya", Role.PRACTITIONER, 1)
    sign_in(web, user)
    headers = {"X-CSRF-Token": CSRF}
    _ok(web.client.patch("/api/admin/practitioners/1", json={"bio": "New bio"}, headers=headers))
    assert_problem(
        web.client.patch("/api/admin/practitioners/2", json={"bio": "x"}, headers=headers), 404
    )
    assert_problem(
        web.client.patch("/api/admin/services/3", json={"name": "x"}, headers=headers), 404
    )
    assert_problem(
        web.client.post("/api/admin/practitioners", json=PRACTITIONER, headers=headers), 403
    )
    entries = web.store.audit
    assert [(e.action, e.actor_type, e.actor_id) for e in entries] == [
        ("practitioner.update", "user", str(user.id))
    ]
    assert entries[0].before is not None
    assert entries[0].after is not None
    assert entries[0].after["bio"] == "New bio"
    assert entries[0].before["bio"] != "New bio"


# -- audit ----------------------------------------------------------------------------------------


def test_audit_lists_changes_newest_first_with_a_cursor(web: Web) -> None:
    for title in ("a", "b", "c"):
        _ok(
            web.client.patch(
                "/api/admin/practitioners/1",
                json={"title": title},
                headers={**ADMIN, "X-Request-ID": f"request-{title}"},
            )
        )
    _ok(web.client.patch("/api/admin/services/3", json={"name": "Coaching"}, headers=ADMIN))
    first = _ok(web.client.get("/api/admin/audit?limit=2", headers=ADMIN))
    assert [e["action"] for e in first["items"]] == ["service.update", "practitioner.update"]
    entry = first["items"][1]
    assert entry["actor"] == {"type": "token", "id": "admin-token", "name": "ADMIN_API_TOKEN"}
    assert (entry["object_type"], entry["object_id"]) == ("practitioner", "1")
    assert (entry["before"]["title"], entry["after"]["title"]) == ("b", "c")
    assert entry["request_id"] == "request-c"
    second = _ok(
        web.client.get(f"/api/admin/audit?limit=2&cursor={first['next_cursor']}", headers=ADMIN)
    )
    assert [e["after"]["title"] for e in second["items"]] == ["b", "a"]
    assert second["next_cursor"] is None
    only = _ok(web.client.get("/api/admin/audit?object_type=service", headers=ADMIN))["items"]
    assert [e["object_id"] for e in only] == ["3"]
    assert _ok(web.client.get("/api/admin/audit?actor=token:admin-token", headers=ADMIN))["items"]
    assert _ok(web.client.get("/api/admin/audit?actor=user:1", headers=ADMIN))["items"] == []
    later = _ok(web.client.get("/api/admin/audit?since=2030-01-08T00:00:00Z", headers=ADMIN))
    assert later["items"] == []


def test_no_token_or_secret_reaches_the_audit_log(web: Web) -> None:
    issued = _ok(web.client.post("/api/admin/tokens", json={"name": "ci"}, headers=ADMIN), 201)
    token = issued["token"]
    web.client.delete(f"/api/admin/tokens/{issued['api_token']['id']}", headers=ADMIN)
    text = str(_ok(web.client.get("/api/admin/audit", headers=ADMIN)))
    assert token not in text
    assert hash_token(token) not in text
    assert "adm_" not in text
    assert "ci" in text


def test_an_issued_token_acts_as_an_admin_and_is_named_in_the_audit(web: Web) -> None:
    issued = _ok(
        web.client.post("/api/admin/tokens", json={"name": "reporting"}, headers=ADMIN), 201
    )
    assert issued["token"].startswith("bkt_")
    headers = bearer(issued["token"])
    _ok(web.client.patch("/api/admin/practitioners/1", json={"title": "x"}, headers=headers))
    newest = _ok(web.client.get("/api/admin/audit?limit=1", headers=ADMIN))["items"][0]
    assert newest["actor"] == {
        "type": "token",
        "id": str(issued["api_token"]["id"]),
        "name": "reporting",
    }
    assert_problem(web.client.get("/api/admin/users", headers=bearer("bkt_" + "x" * 43)), 401)


# -- pagination -----------------------------------------------------------------------------------


def _insert(web: Web, start: str) -> int:
    """A hold written straight to the store (no availability check), like another request's."""
    uow = web.store.unit_of_work()
    with uow:
        practitioner = uow.practitioners.get(1)
        assert practitioner is not None
        service = practitioner.services[0]
        held = uow.bookings.add(
            Booking.hold(
                practitioner_id=1,
                service=service,
                client=Client("Eve", "eve@example.com"),
                start=datetime.fromisoformat(start),
                at=NOW,
                hold_until=NOW + timedelta(minutes=31),
                manage_token_hash="x",
            )
        )
        uow.commit()
    return held.id or 0


def test_booking_pages_list_each_booking_once_with_inserts_between_pages(web: Web) -> None:
    starts = [SLOT, SLOT_2, SLOT_3, "2030-01-08T13:00:00Z", "2030-01-08T14:00:00Z"]
    originals = [web.booked(start=s)["booking"]["id"] for s in starts]
    seen: list[int] = []
    url = "/api/admin/bookings?limit=2&practitioner_id=1"
    page = _ok(web.client.get(url, headers=ADMIN))
    seen += [b["id"] for b in page["items"]]
    earlier = _insert(web, "2030-01-08T07:00:00+00:00")  # before the cursor: not shown
    later = _insert(web, "2030-01-08T16:00:00+00:00")  # after it: shown on a later page
    pages = 1
    while page["next_cursor"]:
        page = _ok(web.client.get(f"{url}&cursor={page['next_cursor']}", headers=ADMIN))
        seen += [b["id"] for b in page["items"]]
        pages += 1
    assert pages == 3
    assert len(seen) == len(set(seen)), "a booking was listed twice"
    assert seen == [*originals, later]
    assert earlier not in seen
    fresh = _ok(web.client.get("/api/admin/bookings?limit=500&practitioner_id=1", headers=ADMIN))
    assert [b["id"] for b in fresh["items"]] == [earlier, *originals, later]
    assert fresh["next_cursor"] is None
