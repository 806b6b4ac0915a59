"""The dashboard in a real browser: sign-in through the OpenID provider, the owner finds and
cancels a booking, a practitioner sees only their own bookings."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from booking_core.model import Role, User

from .conftest import OWNER, LiveServer, assert_accessible, new_page, screenshot


def _book(page: Page, server: LiveServer, practitioner_id: int, email: str) -> dict[str, Any]:
    """A booking made through the API, at the first offered start of the practitioner."""
    service = page.request.get(server.url(f"/api/practitioners/{practitioner_id}")).json()[
        "services"
    ][0]["id"]
    day = (datetime.now(UTC) + timedelta(days=9)).date().isoformat()
    slots = page.request.get(
        server.url(f"/api/practitioners/{practitioner_id}/availability?from={day}")
    ).json()["slots"]
    answer = page.request.post(
        server.url("/api/bookings"),
        data={
            "practitioner_id": practitioner_id,
            "service_id": service,
            "start": slots[-1]["start"],
            "client": {"name": "Client " + email.split("@")[0], "email": email},
        },
    )
    assert answer.status == 201, answer.text()
    return answer.json()["booking"]  # type: ignore[no-any-return]


def _preview_after_today(page: Page) -> dict[str, list[str]]:
    """The preview's slots by weekday ("Mon"...), leaving out today, whose slots depend on the
    hour the test runs at."""
    days = page.locator("#preview .day").all()[1:]
    return {
        day.locator("h3").inner_text()[:3]: day.locator(".slot").all_inner_texts() for day in days
    }


def _sign_in(browser: Browser, server: LiveServer, oidc: Any, **identity: Any) -> Page:
    oidc.identity = identity
    page = new_page(browser, timezone="Europe/London")
    page.goto(server.url("/admin"))  # to the provider, which signs ``identity`` in, and back
    page.wait_for_url(re.compile(r"/admin$"))
    return page


def test_a_visitor_is_sent_to_sign_in(browser: Browser, server: LiveServer) -> None:
    page = new_page(browser, timezone="Europe/London")
    answer = page.request.get(server.url("/admin?status=pending"), max_redirects=0)
    assert answer.status == 302
    assert answer.headers["location"] == "/auth/login?next=%2Fadmin%3Fstatus%3Dpending"


def test_the_owner_finds_a_booking_and_cancels_it_without_refund(
    browser: Browser, server: LiveServer, oidc: Any, axe: Axe
) -> None:
    page = _sign_in(browser, server, oidc, sub=OWNER, name="Olive Owner")
    booking = _book(page, server, 1, "found.me@example.com")
    expect(page.locator("h1")).to_have_text("Bookings")
    assert_accessible(axe, page)
    page.get_by_label("Client email").fill("found.me@example.com")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Client found.me")
    screenshot(page, "08-admin-bookings")
    rows.first.get_by_role("link").click()
    expect(page.locator("h1")).to_have_text(f"Booking #{booking['id']}")
    assert_accessible(axe, page)
    page.get_by_label("No refund").check()
    page.get_by_role("button", name="Cancel booking").click()
    expect(page.locator("#done")).to_contain_text("Cancelled")
    expect(page.locator("#status")).to_have_text("cancelled")
    screenshot(page, "09-admin-booking-cancelled")


def test_a_practitioner_sees_only_their_own_bookings(
    browser: Browser, server: LiveServer, oidc: Any, axe: Axe
) -> None:
    with server.store.unit_of_work() as uow:
        uow.users.upsert(
            User(open_id="jordan-subject", name="Jordan", role=Role.PRACTITIONER, practitioner_id=2)
        )
        uow.commit()
    page = _sign_in(browser, server, oidc, sub="jordan-subject", name="Jordan Lee")
    theirs = _book(page, server, 2, "jordans.client@example.com")
    others = _book(page, server, 1, "mayas.client@example.com")
    page.reload()
    text = page.locator("main").inner_text()
    assert "jordans.client@example.com" in text
    assert "mayas.client@example.com" not in text
    assert page.get_by_label("Practitioner").count() == 0  # no choosing another's
    assert_accessible(axe, page)
    # Asking for another practitioner's bookings shows their own; another's booking is a 404.
    page.goto(server.url("/admin?practitioner_id=1"))
    assert "mayas.client@example.com" not in page.locator("main").inner_text()
    answer = page.goto(server.url(f"/admin/bookings/{others['id']}"))
    assert answer is not None
    assert answer.status == 404
    answer = page.goto(server.url(f"/admin/bookings/{theirs['id']}"))
    assert answer is not None
    assert answer.status == 200
    answer = page.goto(server.url("/admin/jobs"))
    assert answer is not None
    assert answer.status == 403


def test_a_signed_in_user_without_a_role_gets_no_dashboard(
    browser: Browser, server: LiveServer, oidc: Any, axe: Axe
) -> None:
    oidc.identity = {"sub": "plain-user", "name": "Plain User"}
    page = new_page(browser, timezone="Europe/London")
    page.goto(server.url("/admin"))
    expect(page.locator("h1")).to_have_text("No admin access")
    assert_accessible(axe, page)


def test_the_owner_sets_up_a_practitioner_and_sees_the_slots_change(
    browser: Browser, server: LiveServer, oidc: Any, axe: Axe
) -> None:
    page = _sign_in(browser, server, oidc, sub=OWNER, name="Olive Owner")
    page.get_by_role("link", name="Manage practitioners").click()
    assert_accessible(axe, page)
    page.get_by_label("Name").fill("Sam Rivera")
    page.get_by_label("Email").fill("sam.rivera@example.com")
    page.get_by_label("Time zone").select_option("Asia/Tokyo")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("h1")).to_have_text("Sam Rivera")
    expect(page.locator("#preview-heading")).to_be_visible()
    assert "No active service" in page.locator("main").inner_text()

    add = page.locator('form[action$="/services"]')
    add.get_by_label("Name").fill("Consultation")
    add.get_by_label("Duration (minutes)").fill("60")
    add.get_by_label("Price in minor units").fill("5000")
    add.get_by_label("Currency").fill("eur")
    add.get_by_role("button", name="Add service").click()
    expect(page.locator("#done")).to_be_visible()
    expect(page.locator("#preview .slot")).to_have_count(0)  # no working hours yet

    for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"):
        page.get_by_label(day, exact=True).fill("10:00-12:00")
    page.get_by_role("button", name="Save hours").click()
    expect(page.locator("#done")).to_be_visible()
    slots = page.locator("#preview .slot")
    expect(slots).not_to_have_count(0)
    after_today = _preview_after_today(page)
    assert len(after_today) == 6  # the next 7 days, today's slots perhaps already past
    assert after_today == {day: ["10:00", "11:00"] for day in after_today}
    assert_accessible(axe, page)
    screenshot(page, "10-admin-hours-and-preview")

    practitioner_id = page.url.split("/admin/practitioners/")[1].split("?")[0]
    page.get_by_label("Tuesday", exact=True).fill("")
    page.get_by_label("Monday", exact=True).fill("10:00-11:00")
    page.get_by_role("button", name="Save hours").click()
    expect(page.locator("#done")).to_be_visible()
    after_today = _preview_after_today(page)
    assert after_today == {
        day: {"Mon": ["10:00"], "Tue": []}.get(day, ["10:00", "11:00"]) for day in after_today
    }

    client = new_page(browser, timezone="Asia/Tokyo")
    client.goto(server.url(f"/p/{practitioner_id}"))
    expect(client.locator("#zone-shown")).to_have_text("Asia/Tokyo")
    labels = set(client.locator(".slots label").all_inner_texts())
    assert labels == {"10:00", "11:00"}
