"""The fake Cal.com keeps Cal.com API v2's contract (checked with raw HTTP)."""

from __future__ import annotations

from typing import Any

import requests

try:
    from calcom_fixtures import EVENT_TYPE_ID, fake_calcom
    from fake_calcom import SLOT_TAKEN, FakeCalcom
except ModuleNotFoundError:  # tests/integration imported as a package
    from tests.integration.calcom_fixtures import EVENT_TYPE_ID, fake_calcom
    from tests.integration.fake_calcom import SLOT_TAKEN, FakeCalcom

__all__ = ["fake_calcom"]  # fixture

SLOTS = {"cal-api-version": "2024-09-04"}
BOOKINGS = {"cal-api-version": "2024-08-13"}
WINDOW = {"eventTypeId": str(EVENT_TYPE_ID), "start": "2030-01-08", "end": "2030-01-08"}


def call(
    fake: FakeCalcom,
    method: str,
    path: str,
    *,
    headers: dict[str, str],
    auth: bool = True,
    **kwargs: Any,
) -> requests.Response:
    if auth:
        headers = {**headers, "Authorization": f"Bearer {fake.api_key}"}
    return requests.request(method, fake.url + path, headers=headers, timeout=5, **kwargs)


def assert_envelope(response: requests.Response, status: int, code: str) -> str:
    assert response.status_code == status
    body = response.json()
    assert body["status"] == "error"
    assert body["error"]["code"] == code
    assert body["error"]["details"]["statusCode"] == status
    assert body["path"].startswith("/v2/")
    return str(body["error"]["message"])


def test_slots_answer_the_2024_09_04_shape(fake_calcom: FakeCalcom) -> None:
    response = call(
        fake_calcom, "GET", "/slots", headers=SLOTS, params={**WINDOW, "timeZone": "Europe/Berlin"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "status": "success",
        "data": {
            "2030-01-08": [
                {"start": "2030-01-08T09:30:00.000+01:00"},
                {"start": "2030-01-08T13:30:00.000+01:00"},
            ]
        },
    }
    assert response.headers["X-RateLimit-Limit-Default"] == "120"
    ranged = call(fake_calcom, "GET", "/slots", headers=SLOTS, params={**WINDOW, "format": "range"})
    first = ranged.json()["data"]["2030-01-08"][0]
    assert first == {
        "start": "2030-01-08T08:30:00.000+00:00",
        "end": "2030-01-08T09:30:00.000+00:00",
    }


def test_slots_need_the_version_header_and_the_key(fake_calcom: FakeCalcom) -> None:
    assert_envelope(
        call(fake_calcom, "GET", "/slots", headers={}, params=WINDOW), 404, "NotFoundException"
    )
    message = assert_envelope(
        call(fake_calcom, "GET", "/slots", headers=SLOTS, auth=False, params=WINDOW),
        401,
        "UnauthorizedException",
    )
    assert "No authentication method provided" in message


def test_unknown_or_mixed_slot_params_are_400(fake_calcom: FakeCalcom) -> None:
    message = assert_envelope(
        call(fake_calcom, "GET", "/slots", headers=SLOTS, params={**WINDOW, "slotFormat": "range"}),
        400,
        "BadRequestException",
    )
    assert "property slotFormat should not exist" in message
    mixed = {**WINDOW, "username": "dr-ada", "eventTypeSlug": "consultation"}
    assert_envelope(
        call(fake_calcom, "GET", "/slots", headers=SLOTS, params=mixed), 400, "BadRequestException"
    )


def test_booking_is_201_then_the_slot_is_taken(fake_calcom: FakeCalcom) -> None:
    body = {
        "start": "2030-01-08T08:30:00Z",
        "eventTypeId": EVENT_TYPE_ID,
        "attendee": {"name": "Cleo", "email": "cleo@example.com", "timeZone": "Europe/Berlin"},
        "metadata": {"booking_id": "1"},
    }
    created = call(fake_calcom, "POST", "/bookings", headers=BOOKINGS, json=body)
    assert created.status_code == 201
    data = created.json()["data"]
    assert data["status"] == "accepted"
    assert data["start"] == "2030-01-08T08:30:00.000Z"
    again = call(fake_calcom, "POST", "/bookings", headers=BOOKINGS, json=body)
    assert assert_envelope(again, 400, "BadRequestException") == SLOT_TAKEN
    slots = call(fake_calcom, "GET", "/slots", headers=SLOTS, params=WINDOW).json()["data"]
    assert [s["start"] for s in slots["2030-01-08"]] == ["2030-01-08T12:30:00.000+00:00"]

    cancelled = call(
        fake_calcom, "POST", f"/bookings/{data['uid']}/cancel", headers=BOOKINGS, json={}
    )
    assert cancelled.json()["data"]["status"] == "cancelled"
    twice = call(fake_calcom, "POST", f"/bookings/{data['uid']}/cancel", headers=BOOKINGS, json={})
    assert "cancelled already" in assert_envelope(twice, 400, "BadRequestException")


def test_rate_limit_and_failure_switches(fake_calcom: FakeCalcom) -> None:
    fake_calcom.rate_limit_next(1, reset_seconds=42)
    limited = call(fake_calcom, "GET", "/slots", headers=SLOTS, params=WINDOW)
    assert_envelope(limited, 429, "ThrottlerException")
    assert limited.headers["X-RateLimit-Remaining-Default"] == "0"
    assert limited.headers["X-RateLimit-Reset-Default"] == "42"
    fake_calcom.fail_next(1, status=503)
    assert call(fake_calcom, "GET", "/slots", headers=SLOTS, params=WINDOW).status_code == 503
    assert call(fake_calcom, "GET", "/slots", headers=SLOTS, params=WINDOW).status_code == 200
    assert [r.headers["cal-api-version"] for r in fake_calcom.requests] == ["2024-09-04"] * 3
