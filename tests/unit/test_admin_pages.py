"""The dashboard pages on the memory adapters: sign-in redirect, roles, filters, cancel + CSRF."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from booking_core.model import BookingStatus, Role, User

from .http_support import SLOT, SLOT_2, Web

CSRF = "csrf-token-for-the-dashboard-tests-0123456789"


@pytest.fixture
def web() -> Web:
    return Web()


def _sign_in(web: Web, role: Role, practitioner_id: int | None = None) -> User:
    with web.store.unit_of_work() as uow:
        user = uow.users.upsert(
            User(
                open_id=f"sub-{role}", name=f"A {role}", role=role, practitioner_id=practitioner_id
            )
        )
        uow.commit()
    now = web.clock.now().timestamp()
    with web.client.session_transaction() as session:
        session.update(uid=user.id, csrf=CSRF, auth_at=now, seen_at=now)
    return user


def _html(web: Web, path: str, status: int = 200) -> str:
    response = web.client.get(path)
    assert response.status_code == status, response.get_data(as_text=True)[:400]
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def test_a_visitor_is_redirected_to_sign_in_with_next(web: Web) -> None:
    response = web.client.get("/admin?status=pending")
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login?next=%2Fadmin%3Fstatus%3Dpending"
    detail = web.client.get("/admin/bookings/1")
    assert detail.headers["Location"] == "/auth/login?next=%2Fadmin%2Fbookings%2F1"


def test_a_user_without_a_role_gets_a_403_page(web: Web) -> None:
    _sign_in(web, Role.USER)
    assert "No admin access" in _html(web, "/admin", 403)
    refused = web.client.post("/admin/bookings/1/cancel", data={"csrf_token": CSRF})
    assert refused.status_code == 403
    assert refused.get_json()["code"] == "forbidden"


def test_an_admin_sees_every_practitioners_bookings_by_day(web: Web) -> None:
    web.booked(start=SLOT)
    web.booked(practitioner_id=2, service_id=3, start="2030-01-09T15:00:00Z")
    _sign_in(web, Role.ADMIN)
    page = _html(web, "/admin")
    assert page.index("Tuesday 08 January 2030") < page.index("Wednesday 09 January 2030")
    assert "Dr. Maya Okafor" in page
    assert "Jordan Lee" in page
    assert '<meta name="csrf-token" content="' + CSRF + '">' in page
    only = _html(web, "/admin?practitioner_id=2&status=&to=&email=")
    assert "Dr. Maya Okafor</td>" not in only
    assert "Jordan Lee</td>" in only


def test_filters_are_checked_and_name_the_field(web: Web) -> None:
    _sign_in(web, Role.ADMIN)
    response = web.client.get("/admin?status=lost")
    assert response.status_code == 422
    assert "status" in response.get_json()["errors"]


def test_a_practitioner_sees_only_their_own(web: Web) -> None:
    mine = web.booked(practitioner_id=2, service_id=3, start="2030-01-09T15:00:00Z")["booking"]
    theirs = web.booked(start=SLOT)["booking"]
    _sign_in(web, Role.PRACTITIONER, practitioner_id=2)
    page = _html(web, "/admin?practitioner_id=1")
    assert "Jordan Lee</td>" in page
    assert "Dr. Maya Okafor</td>" not in page
    assert 'id="f-practitioner"' not in page
    assert "Booking not found" in _html(web, f"/admin/bookings/{theirs['id']}", 404)
    _html(web, f"/admin/bookings/{mine['id']}")
    refused = web.client.post(f"/admin/bookings/{theirs['id']}/cancel", data={"csrf_token": CSRF})
    assert refused.status_code == 404
    assert web.stored(theirs["id"]).status is BookingStatus.PENDING
    assert "No admin access" in _html(web, "/admin/jobs", 403)


def test_cancelling_needs_the_csrf_token(web: Web) -> None:
    booking = web.confirmed()["booking"]
    _sign_in(web, Role.ADMIN)
    response = web.client.post(f"/admin/bookings/{booking['id']}/cancel", data={"refund": "full"})
    assert response.status_code == 403
    assert response.get_json()["code"] == "csrf_failed"
    assert web.stored(booking["id"]).status is BookingStatus.CONFIRMED


@pytest.mark.parametrize(("choice", "refunded"), [("policy", 9000), ("full", 9000), ("none", 0)])
def test_the_admin_may_override_the_refund(web: Web, choice: str, refunded: int) -> None:
    booking = web.confirmed(start=SLOT_2)["booking"]
    _sign_in(web, Role.ADMIN)
    page = _html(web, f"/admin/bookings/{booking['id']}")
    assert "The policy refunds 90.00 GBP." in page
    response = web.client.post(
        f"/admin/bookings/{booking['id']}/cancel",
        data={"csrf_token": CSRF, "refund": choice, "reason": "client called"},
    )
    assert response.status_code == 303
    stored = web.stored(booking["id"])
    assert stored.status is BookingStatus.CANCELLED
    assert stored.cancel_reason == "client called"
    assert (stored.refund.amount.amount if stored.refund else 0) == refunded
    done = _html(web, response.headers["Location"])
    assert re.search(r'id="done">Cancelled\.', done)


def test_a_refused_cancel_says_why_on_the_page(web: Web) -> None:
    booking = web.confirmed()["booking"]
    _sign_in(web, Role.ADMIN)
    path = f"/admin/bookings/{booking['id']}/cancel"
    web.client.post(path, data={"csrf_token": CSRF})
    again = web.client.post(path, data={"csrf_token": CSRF})
    assert again.status_code == 409
    assert "cannot go from cancelled" in again.get_data(as_text=True)
    bad = web.client.post(path, data={"csrf_token": CSRF, "refund": "half"})
    assert bad.status_code == 422


def test_parked_jobs_are_listed_for_admins(web: Web) -> None:
    with web.store.unit_of_work() as uow:
        uow.outbox.add("email", {"booking_id": 1, "template": "confirmed"}, web.clock.now())
        uow.commit()
    with web.store.unit_of_work() as uow:
        (job,) = uow.outbox.claim_due(web.clock.now())
        assert job.id is not None
        uow.outbox.park(job.id, error="SMTP said no")
        uow.commit()
    _sign_in(web, Role.ADMIN)
    page = _html(web, "/admin/jobs")
    assert "SMTP said no" in page
    assert f"<td>#{job.id}</td><td>email</td>" in page


def test_without_a_session_a_form_post_is_a_401_and_bad_filters_a_422(web: Web) -> None:
    booking = web.confirmed()["booking"]
    response = web.client.post(f"/admin/bookings/{booking['id']}/cancel", data={"refund": "full"})
    assert response.status_code == 401
    assert response.get_json()["code"] == "unauthorized"
    assert web.stored(booking["id"]).status is BookingStatus.CONFIRMED
    assert web.client.get("/admin?to=null").status_code == 422


def _preview(page: str) -> list[str]:
    block = page[page.index('id="preview"') : page.index('id="hours-heading"')]
    return re.findall(r'<li class="slot">(\d\d:\d\d)</li>', block)


def test_editing_the_weekly_hours_changes_the_previewed_slots(web: Web) -> None:
    _sign_in(web, Role.ADMIN)
    page = _html(web, "/admin/practitioners/1?service=2")
    assert 'value="09:00-12:00, 13:00-17:00"' in page
    before = _preview(page)
    assert "09:00" in before
    hours = {d: "" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    hours["tue"] = "14:00-15:00"
    response = web.client.post("/admin/practitioners/1/hours", data={"csrf_token": CSRF, **hours})
    assert response.status_code == 303
    after = _preview(_html(web, response.headers["Location"] + "&service=2"))
    assert after == ["14:00", "14:30"]
    # The clients' page offers the same.
    starts = re.findall(r'value="(2030-01-\d\dT[\d:]+\+00:00)"', _html(web, "/p/1?service=2"))
    assert starts == ["2030-01-08T14:00:00+00:00", "2030-01-08T14:30:00+00:00"]


def test_malformed_hours_are_refused_naming_the_day_and_change_nothing(web: Web) -> None:
    _sign_in(web, Role.ADMIN)
    response = web.client.post(
        "/admin/practitioners/1/hours", data={"csrf_token": CSRF, "mon": "9 to 5"}
    )
    assert response.status_code == 422
    assert "mon write hours like" in response.get_data(as_text=True)
    assert 'value="09:00-12:00, 13:00-17:00"' in _html(web, "/admin/practitioners/1")


def test_time_off_in_local_time_blocks_slots_and_can_be_removed(web: Web) -> None:
    _sign_in(web, Role.ADMIN)
    response = web.client.post(
        "/admin/practitioners/1/time-off",
        data={
            "csrf_token": CSRF,
            "start": "2030-01-08T00:00",
            "end": "2030-01-09T00:00",
            "reason": "training",
        },
    )
    assert response.status_code == 303
    page = _html(web, "/admin/practitioners/1?service=2")
    assert "Tue 08 Jan 2030 00:00 to Wed 09 Jan 2030 00:00: training" in page
    tuesday = page[page.index("Tue 08 Jan</h3>") : page.index("Wed 09 Jan</h3>")]
    assert "None" in tuesday
    time_off = re.search(r"/time-off/(\d+)/delete", page)
    assert time_off is not None
    removed = web.client.post(
        f"/admin/practitioners/1/time-off/{time_off.group(1)}/delete", data={"csrf_token": CSRF}
    )
    assert removed.status_code == 303
    assert "No time off." in _html(web, "/admin/practitioners/1")


def test_services_are_added_and_changed_through_the_admin_rules(web: Web) -> None:
    _sign_in(web, Role.ADMIN)
    added = web.client.post(
        "/admin/practitioners/2/services",
        data={
            "csrf_token": CSRF,
            "name": "Group class",
            "duration_minutes": "90",
            "price_amount": "2500",
            "currency": "USD",
            "active": "on",
        },
    )
    assert added.status_code == 303
    page = _html(web, "/admin/practitioners/2")
    assert "Group class · 90 min · 25.00 USD" in page
    service_id = max(s.id or 0 for s in web.store.practitioners[2].services)
    changed = web.client.post(
        f"/admin/practitioners/2/services/{service_id}",
        data={"csrf_token": CSRF, "duration_minutes": "60"},
    )
    assert changed.status_code == 303
    assert "Group class · 60 min · 25.00 USD · inactive" in _html(web, "/admin/practitioners/2")
    refused = web.client.post(
        "/admin/practitioners/2/services",
        data={
            "csrf_token": CSRF,
            "name": "Bad",
            "duration_minutes": "2",
            "price_amount": "1",
            "currency": "usd",
        },
    )
    assert refused.status_code == 422
    assert "duration_minutes" in refused.get_data(as_text=True)


def test_a_practitioner_edits_their_own_hours_only(web: Web) -> None:
    _sign_in(web, Role.PRACTITIONER, practitioner_id=2)
    assert "Practitioner not found" in _html(web, "/admin/practitioners/1", 404)
    refused = web.client.post(
        "/admin/practitioners/1/hours", data={"csrf_token": CSRF, "mon": "10:00-11:00"}
    )
    assert refused.status_code == 404
    assert 'value="09:00-12:00, 13:00-17:00"' not in _html(web, "/admin/practitioners/2")
    own = web.client.post(
        "/admin/practitioners/2/hours", data={"csrf_token": CSRF, "mon": "10:00-11:00"}
    )
    assert own.status_code == 303
    assert "No admin access" in _html(web, "/admin/audit", 403)


def test_the_audit_log_shows_each_change_with_its_actor(web: Web) -> None:
    _sign_in(web, Role.ADMIN)
    web.client.post(
        "/admin/practitioners/1/profile",
        data={
            "csrf_token": CSRF,
            "name": "Dr. Maya Okafor-Reid",
            "email": "maya@example.com",
            "timezone": "Europe/London",
            "title": "",
            "bio": "",
            "active": "on",
        },
    )
    page = _html(web, "/admin/audit")
    assert "practitioner.update" in page
    assert "A admin" in page
    assert "Okafor-Reid" in page
    assert "Dr. Maya Okafor-Reid" in _html(web, "/")


def test_a_passed_confirmed_booking_can_be_marked_no_show(web: Web) -> None:
    booking = web.confirmed()["booking"]
    _sign_in(web, Role.ADMIN)
    assert "The client did not come" not in _html(web, f"/admin/bookings/{booking['id']}")
    web.clock.advance(timedelta(days=2))
    now = web.clock.now().timestamp()
    with web.client.session_transaction() as session:
        session.update(auth_at=now, seen_at=now)
    assert "The client did not come" in _html(web, f"/admin/bookings/{booking['id']}")
    response = web.client.post(
        f"/admin/bookings/{booking['id']}/no-show", data={"csrf_token": CSRF}
    )
    assert response.status_code == 303
    assert web.stored(booking["id"]).status.value == "no_show"
    assert "Marked as a no-show." in _html(web, response.headers["Location"])


def test_a_parked_job_is_retried_from_its_page(web: Web) -> None:
    with web.store.unit_of_work() as uow:
        uow.outbox.add("email", {"booking_id": 1, "template": "confirmed"}, web.clock.now())
        uow.commit()
    with web.store.unit_of_work() as uow:
        (job,) = uow.outbox.claim_due(web.clock.now())
        assert job.id is not None
        uow.outbox.park(job.id, error="SMTP said no")
        uow.commit()
    _sign_in(web, Role.ADMIN)
    response = web.client.post(f"/admin/jobs/{job.id}/retry", data={"csrf_token": CSRF})
    assert response.status_code == 303
    page = _html(web, response.headers["Location"])
    assert f"Job #{job.id} is queued again." in page
    assert "SMTP said no" not in page
