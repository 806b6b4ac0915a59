"""The client pages on the memory adapters: zones, the week of slots, the manage page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from booking_core import usecases as uc
from booking_core.model import BookingStatus
from booking_core.notifications import manage_link_token

from .http_support import SLOT, Web


@pytest.fixture
def web() -> Web:
    return Web()


def _text(web: Web, path: str, status: int = 200) -> str:
    response = web.client.get(path)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def _starts(page: str) -> list[str]:
    return re.findall(r'name="start" id="slot-\d+" value="([^"]+)"', page)


def test_the_index_lists_active_practitioners_with_links(web: Web) -> None:
    page = _text(web, "/")
    assert '<a href="/p/1">Dr. Maya Okafor</a>' in page
    assert '<a href="/p/2">Jordan Lee</a>' in page
    assert page.count("<h1>") == 1


def test_the_week_is_shown_in_the_zone_asked_for_and_remembered(web: Web) -> None:
    response = web.client.get("/p/1?service=1&tz=America/New_York")
    page = response.get_data(as_text=True)
    assert 'data-zone="America/New_York" data-zone-chosen="yes"' in page
    assert "works in <strong>Europe/London</strong>" in page
    # Tuesday 8 January 09:00 London is 04:00 in New York.
    first = re.search(
        r'value="2030-01-08T09:00:00\+00:00" required>\s*<label for="[^"]+">(\d\d:\d\d)', page
    )
    assert first is not None
    assert first.group(1) == "04:00"
    assert "booking_tz=America/New_York" in response.headers["Set-Cookie"]
    # The cookie alone brings the same zone on the next visit.
    assert 'data-zone="America/New_York" data-zone-chosen="yes"' in _text(web, "/p/1")


def test_without_a_chosen_zone_the_practitioners_zone_is_used(web: Web) -> None:
    page = _text(web, "/p/2")
    assert 'data-zone="America/New_York" data-zone-chosen="no"' in page
    web.client.set_cookie("booking_tz", "Not/AZone")
    assert 'data-zone-chosen="no"' in _text(web, "/p/2")


def test_the_page_offers_the_same_starts_as_the_api(web: Web) -> None:
    page = _starts(_text(web, "/p/1?service=2&week=2030-01-08"))
    api = web.client.get(
        "/api/practitioners/1/availability?service_id=2&from=2030-01-07&to=2030-01-15"
    ).get_json()["slots"]
    shown = {s.replace("+00:00", "Z") for s in page}
    wanted = {s["start"] for s in api if "2030-01-08" <= s["start"][:10] <= "2030-01-14"}
    assert shown == wanted


def test_a_held_slot_is_no_longer_offered(web: Web) -> None:
    before = _starts(_text(web, "/p/1?service=1"))
    assert "2030-01-08T09:00:00+00:00" in before
    web.booked(start=SLOT)
    after = _starts(_text(web, "/p/1?service=1"))
    assert "2030-01-08T09:00:00+00:00" not in after
    assert len(after) == len(before) - 1


def test_weeks_page_forward_and_not_into_the_past(web: Web) -> None:
    page = _text(web, "/p/1")
    assert "Previous week" not in page
    assert 'href="/p/1?service=1&amp;week=2030-01-14" rel="next"' in page
    later = _text(web, "/p/1?service=1&week=2030-01-14")
    assert 'href="/p/1?service=1&amp;week=2030-01-07" rel="prev"' in later


def test_unknown_practitioner_or_service_is_an_html_404(web: Web) -> None:
    assert "Practitioner not found" in _text(web, "/p/999", 404)
    assert "Service not found" in _text(web, "/p/1?service=3", 404)


def test_a_malformed_page_query_is_a_problem_naming_the_field(web: Web) -> None:
    response = web.client.get("/p/1?week=soon")
    assert response.status_code == 422
    assert "week" in response.get_json()["errors"]


def test_the_manage_page_needs_the_right_token(web: Web) -> None:
    booking_id = web.booked()["booking"]["id"]
    assert "not valid" in _text(web, f"/manage/{booking_id}?token=wrong", 404)
    assert "not valid" in _text(web, f"/manage/{booking_id}", 404)


def test_the_manage_page_quotes_the_policys_refund_before_cancelling(web: Web) -> None:
    answer = web.confirmed()
    booking_id, token = answer["booking"]["id"], answer["manage_token"]
    assert "refunds <strong>90.00 GBP</strong> in full" in _text(
        web, f"/manage/{booking_id}?token={token}"
    )
    web.clock.advance(timedelta(hours=10))  # 15 h before the start: inside the 24 h window
    page = _text(web, f"/manage/{booking_id}?token={token}")
    assert "refunds <strong>0.00 GBP</strong>" in page
    response = web.client.post(f"/manage/{booking_id}/cancel", data={"token": token})
    assert response.status_code == 303
    done = _text(web, response.headers["Location"])
    assert "No refund is due." in done
    assert web.stored(booking_id).status is BookingStatus.CANCELLED


def test_cancelling_in_time_refunds_in_full_and_says_so(web: Web) -> None:
    answer = web.confirmed()
    booking_id, token = answer["booking"]["id"], answer["manage_token"]
    response = web.client.post(f"/manage/{booking_id}/cancel", data={"token": token})
    page = _text(web, response.headers["Location"])
    assert 'A refund of <strong id="refund">90.00 GBP</strong>' in page
    again = web.client.post(f"/manage/{booking_id}/cancel", data={"token": token})
    assert again.status_code == 409
    assert "cannot go from cancelled" in again.get_data(as_text=True)


def test_a_pending_hold_says_nothing_was_paid(web: Web) -> None:
    answer = web.booked()
    page = _text(web, f"/manage/{answer['booking']['id']}?token={answer['manage_token']}")
    assert "Nothing has been paid yet" in page


def test_a_wrong_token_cancels_nothing(web: Web) -> None:
    booking_id = web.confirmed()["booking"]["id"]
    response = web.client.post(f"/manage/{booking_id}/cancel", data={"token": "wrong"})
    assert response.status_code == 404
    assert web.stored(booking_id).status is BookingStatus.CONFIRMED


def test_rescheduling_moves_to_an_offered_start_only(web: Web) -> None:
    answer = web.confirmed()
    booking_id, token = answer["booking"]["id"], answer["manage_token"]
    page = _text(web, f"/manage/{booking_id}?token={token}")
    assert '<option value="2030-01-08T10:00:00+00:00">' in page
    assert '<option value="2030-01-08T09:00:00+00:00">' not in page  # its own start
    refused = web.client.post(
        f"/manage/{booking_id}/reschedule", data={"token": token, "start": "2030-01-08T09:30:00Z"}
    )
    assert refused.status_code == 422
    assert 'role="alert"' in refused.get_data(as_text=True)
    moved = web.client.post(
        f"/manage/{booking_id}/reschedule", data={"token": token, "start": "2030-01-08T10:00:00Z"}
    )
    assert moved.status_code == 303
    assert web.stored(booking_id).start.hour == 10
    assert "moved to the new time" in _text(web, moved.headers["Location"])


def test_the_calendar_file_is_rfc_5545(web: Web) -> None:
    answer = web.confirmed()
    booking_id, token = answer["booking"]["id"], answer["manage_token"]
    response = web.client.get(f"/manage/{booking_id}/booking.ics?token={token}")
    assert response.status_code == 200
    assert response.mimetype == "text/calendar"
    body = response.get_data(as_text=True)
    assert body.startswith("BEGIN:VCALENDAR\r\n")
    assert body.endswith("END:VCALENDAR\r\n")
    assert "DTSTART:20300108T090000Z\r\n" in body
    assert "DTEND:20300108T095000Z\r\n" in body
    assert f"UID:booking-{booking_id}@localhost\r\n" in body
    assert "SUMMARY:Initial consultation with Dr. Maya Okafor\r\n" in body
    assert web.client.get(f"/manage/{booking_id}/booking.ics?token=nope").status_code == 404


def test_the_success_page_names_the_practitioner_service_and_both_times(web: Web) -> None:
    answer = web.confirmed()
    session = web.session_of(answer["booking"]["id"])
    web.client.set_cookie("booking_tz", "Asia/Tokyo")
    page = _text(web, f"/booking/success?session_id={session}")
    assert "Dr. Maya Okafor" in page
    assert "Initial consultation" in page
    assert "Tuesday 08 January 2030, 18:00 (Asia/Tokyo)" in page
    assert "Tuesday 08 January 2030, 18:50 (Asia/Tokyo)" in page
    assert f'data-booking="{answer["booking"]["id"]}"' in page


def test_the_cancellation_quote_follows_the_window(web: Web) -> None:
    answer = web.confirmed()
    booking = web.stored(answer["booking"]["id"])
    quote = uc.quote_cancellation(booking, clock=web.clock, rules=web.deps.rules)
    assert quote.cancellable
    assert quote.refund == booking.price
    web.clock.advance(timedelta(hours=20))
    late = uc.quote_cancellation(booking, clock=web.clock, rules=web.deps.rules)
    assert late.refund is not None
    assert late.refund.amount == 0
    booking.cancel("test", at=web.clock.now())
    assert not uc.quote_cancellation(booking, clock=web.clock, rules=web.deps.rules).cancellable


def test_the_link_in_the_mails_opens_the_manage_page(web: Web) -> None:
    booking_id = web.confirmed()["booking"]["id"]
    link_token = manage_link_token(web.deps.rules.link_secret, web.stored(booking_id))
    page = _text(web, f"/manage/{booking_id}?token={link_token}")
    assert "refunds <strong>90.00 GBP</strong> in full" in page
    response = web.client.post(f"/manage/{booking_id}/cancel", data={"token": link_token})
    assert response.status_code == 303
    assert web.stored(booking_id).status is BookingStatus.CANCELLED
