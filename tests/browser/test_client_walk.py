"""The client's walk in a real browser: book in another time zone, pay offline, see the local
time, the slot gone for the next visitor, cancel from the manage link and see the refund."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect

from entrypoints.dev.sample_data import sample_practitioner

from .conftest import LiveServer, assert_accessible, new_page, screenshot

CLIENT_ZONE = "America/New_York"  # practitioner 1 works in Europe/London
OTHER_ZONE = "Asia/Tokyo"


def _slot_inside(page: Page, zone: ZoneInfo) -> str:
    """A slot start shown on the page away from the week's edges (every zone shows its day)."""
    values = page.locator('input[name="start"]').evaluate_all("els => els.map(e => e.value)")
    days = sorted({datetime.fromisoformat(v).astimezone(zone).date() for v in values})
    assert len(days) >= 3, f"too few open days to choose from: {days}"
    for value in values:
        if days[0] < datetime.fromisoformat(value).astimezone(zone).date() < days[-1]:
            return str(value)
    raise AssertionError("no slot inside the week")


def _open_week(page: Page, server: LiveServer, week: str) -> None:
    page.goto(server.url(f"/p/1?service=1&week={week}"))
    # pages.js stores the browser's zone and asks again once: times come in the visitor's zone.
    expect(page.locator("#zone-shown")).to_have_text(
        page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    )


def test_a_client_books_pays_sees_local_times_and_cancels_with_a_refund(
    browser: Browser, server: LiveServer, axe: Axe
) -> None:
    week = (datetime.now(UTC).date() + timedelta(days=8)).isoformat()  # refundable in full
    client = new_page(browser, timezone=CLIENT_ZONE)
    other = new_page(browser, timezone=OTHER_ZONE)

    client.goto(server.url("/"))
    expect(client.locator("h1")).to_have_text("Book an appointment")
    assert_accessible(axe, client)
    screenshot(client, "01-practitioners")
    client.get_by_role("link", name="Dr. Maya Okafor").click()
    expect(client.locator("#zone-shown")).to_have_text(CLIENT_ZONE)
    assert "Europe/London" in client.locator("#zone-note").inner_text()

    _open_week(client, server, week)
    zone = ZoneInfo(CLIENT_ZONE)
    start = _slot_inside(client, zone)
    _open_week(other, server, week)
    expect(other.locator(f'input[name="start"][value="{start}"]')).to_have_count(1)

    slot = client.locator(f'input[name="start"][value="{start}"]')
    local = datetime.fromisoformat(start).astimezone(zone)
    expect(client.locator(f'label[for="{slot.get_attribute("id")}"]')).to_have_text(
        f"{local:%H:%M}"
    )
    slot.check()
    # The API's problem body becomes inline errors next to the fields it names.
    client.get_by_label("Email").fill("not-an-email")
    client.get_by_role("button", name="Book and pay").click()
    expect(client.locator("#error-client-email")).to_be_visible()
    expect(client.locator("#error-client-name")).to_be_visible()
    expect(client.locator("#client-email")).to_have_attribute("aria-invalid", "true")
    assert_accessible(axe, client)
    screenshot(client, "02-practitioner-week-with-errors")

    client.get_by_label("Name").fill("Grace Hopper")
    client.get_by_label("Email").fill("grace.hopper@example.com")
    client.get_by_role("button", name="Book and pay").click()
    client.wait_for_url(re.compile(r"/dev/checkout/"))
    assert_accessible(axe, client)
    screenshot(client, "03-offline-checkout")
    client.get_by_role("button", name="Pay").click()

    client.wait_for_url(re.compile(r"/booking/success\?session_id="))
    expect(client.locator("h1")).to_have_text("Booking confirmed")
    expect(client.locator("#starts")).to_have_text(f"{local:%A %d %B %Y, %H:%M} ({CLIENT_ZONE})")
    end = local + timedelta(minutes=50)
    expect(client.locator("#ends")).to_have_text(f"{end:%A %d %B %Y, %H:%M} ({CLIENT_ZONE})")
    expect(client.locator("#practitioner")).to_have_text("Dr. Maya Okafor")
    expect(client.locator("#service")).to_have_text("Initial consultation")
    expect(client.locator("#ics-link")).to_be_visible()
    assert_accessible(axe, client)
    screenshot(client, "04-success")

    calendar = client.request.get(
        server.url(client.locator("#ics-link").get_attribute("href") or "")
    )
    assert calendar.status == 200
    assert f"DTSTART:{datetime.fromisoformat(start):%Y%m%dT%H%M%SZ}" in calendar.text()

    # The next visitor no longer sees the time.
    _open_week(other, server, week)
    expect(other.locator(f'input[name="start"][value="{start}"]')).to_have_count(0)

    client.locator("#manage-link").click()
    expect(client.locator("h1")).to_have_text("Your booking")
    expect(client.locator("#refund-quote")).to_contain_text("refunds 90.00 GBP in full")
    assert_accessible(axe, client)
    screenshot(client, "05-manage")
    client.get_by_role("button", name="Cancel this booking").click()
    expect(client.locator("#done")).to_contain_text("A refund of 90.00 GBP")
    expect(client.locator("#status")).to_have_text("cancelled")
    screenshot(client, "06-cancelled-with-refund")

    # The time is offered again.
    _open_week(other, server, week)
    expect(other.locator(f'input[name="start"][value="{start}"]')).to_have_count(1)


def test_leaving_the_checkout_leads_back_to_the_slots(
    browser: Browser, server: LiveServer, axe: Axe
) -> None:
    page = new_page(browser, timezone="Europe/London")
    page.goto(server.url("/p/2"))
    page.locator('input[name="start"]').first.check()
    page.get_by_label("Name").fill("Alan Turing")
    page.get_by_label("Email").fill("alan.turing@example.com")
    page.get_by_role("button", name="Book and pay").click()
    page.wait_for_url(re.compile(r"/dev/checkout/"))
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_url(re.compile(r"/booking/cancel"))
    expect(page.locator("h1")).to_have_text("Checkout cancelled")
    assert_accessible(axe, page)
    page.get_by_role("link", name="Back to the open times").click()
    expect(page.locator("h1")).to_have_text("Jordan Lee")


def test_pages_fit_360_px_with_a_long_name_and_show_keyboard_focus(
    browser: Browser, server: LiveServer, axe: Axe
) -> None:
    long_name = "Dr. " + "Wolfeschlegelsteinhausenbergerdorff" * 3
    with server.store.unit_of_work() as uow:
        added = uow.practitioners.add(sample_practitioner(name=long_name, timezone="UTC"))
        uow.commit()
    page = new_page(browser, timezone="Europe/Paris", width=360)
    service = added.services[0].id
    day = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    slots = page.request.get(
        server.url(f"/api/practitioners/{added.id}/availability?service_id={service}&from={day}")
    ).json()["slots"]
    answer = page.request.post(
        server.url("/api/bookings"),
        data={
            "practitioner_id": added.id,
            "service_id": service,
            "start": slots[0]["start"],
            "client": {"name": "N" * 120, "email": "long.name@example.com"},
        },
    ).json()
    manage = f"/manage/{answer['booking']['id']}?token={answer['manage_token']}"
    for path in ("/", f"/p/{added.id}", "/p/1?service=2", manage):
        page.goto(server.url(path))
        page.wait_for_load_state("load")
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= 360, f"{path} is {overflow} px wide at 360 px"
        assert_accessible(axe, page)
    screenshot(page, "07-practitioner-360px")

    page.goto(server.url("/p/1"))
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "() => [document.activeElement.textContent, getComputedStyle(document.activeElement)"
        ".outlineStyle]"
    )
    assert focused == ["Skip to the content", "solid"]
    for _ in range(12):  # through the nav, the services and the zone form to the first slot
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.name") == "start":
            break
    assert page.evaluate("document.activeElement.name") == "start"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
