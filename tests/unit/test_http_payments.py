"""HTTP: the Stripe webhook and the success / cancel pages (offline checkout: its own file)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest

from adapters.memory import sign_fake_event
from booking_core.model import BookingStatus
from booking_core.ports import PaymentEventType
from entrypoints import worker
from entrypoints.settings import SettingsError

from .http_support import ADMIN, SLOT, WEBHOOK_SECRET, Web, assert_problem, bearer


@pytest.fixture
def web() -> Web:
    return Web()


def _paid_event(web: Web) -> tuple[int, bytes]:
    booking_id = web.booked()["booking"]["id"]
    session = web.session_of(booking_id)
    web.payments.complete(session)
    return booking_id, web.payments.event_for(session, PaymentEventType.CHECKOUT_COMPLETED)


# -- webhook --------------------------------------------------------------------------------------


def test_a_signed_completed_event_confirms_the_booking(web: Web) -> None:
    booking_id, payload = _paid_event(web)
    response = web.webhook(payload)
    assert response.status_code == 200
    assert response.get_json() == {"received": True}
    stored = web.stored(booking_id)
    assert stored.status is BookingStatus.CONFIRMED
    assert stored.payment_intent_id is not None
    assert SLOT not in web.slots()


def test_a_replayed_event_changes_nothing(web: Web) -> None:
    booking_id, payload = _paid_event(web)
    assert web.webhook(payload).status_code == 200
    before = web.snapshot()
    version = web.stored(booking_id).version
    again = web.webhook(payload)
    assert again.status_code == 200
    assert again.get_json() == {"received": True}
    assert web.snapshot() == before
    assert web.stored(booking_id).version == version


def test_a_second_event_for_a_paid_booking_changes_nothing(web: Web) -> None:
    booking_id, payload = _paid_event(web)
    web.webhook(payload)
    session = web.session_of(booking_id)
    other = web.payments.event_for(session, PaymentEventType.CHECKOUT_COMPLETED)
    version = web.stored(booking_id).version
    assert web.webhook(other).status_code == 200
    assert web.stored(booking_id).version == version


def _bad_signatures(payload: bytes) -> list[str | None]:
    now = int(time.time())
    good = sign_fake_event(payload, WEBHOOK_SECRET, now)
    return [
        None,  # missing
        "",
        "garbage",
        "t=abc,v1=00",
        sign_fake_event(payload, "whsec_someone_else", now),  # wrong secret
        sign_fake_event(payload, WEBHOOK_SECRET, now - 301),  # stale
        sign_fake_event(payload, WEBHOOK_SECRET, now + 301),  # dated in the future
        sign_fake_event(payload, WEBHOOK_SECRET, now + 86400),  # a day ahead
        sign_fake_event(payload + b" ", WEBHOOK_SECRET, now),  # another body
        good.replace(f"t={now}", f"t={now + 1}"),  # timestamp changed after signing
        f"t={now}",  # no v1
    ]


@pytest.mark.parametrize("case", range(11))
def test_a_bad_signature_is_400_and_changes_nothing(web: Web, case: int) -> None:
    booking_id, payload = _paid_event(web)
    signature = _bad_signatures(payload)[case]
    before = web.snapshot()
    response = web.webhook(payload, signature=signature)
    assert_problem(response, 400, "invalid_signature")
    assert web.snapshot() == before
    assert web.stored(booking_id).status is BookingStatus.PENDING


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"",
        b"[]",
        b"null",
        b"{}",
        b'{"id":"evt_1"}',
        b'{"id":"evt_2","type":"checkout.session.completed","created":1,"data":[]}',
        b'{"id":"evt_3","type":"checkout.session.completed","created":"soon",'
        b'"data":{"object":{"object":"checkout.session","id":"cs_1"}}}',
        b"\xff\xfe garbage",
    ],
)
def test_a_signed_garbage_body_is_400_invalid_payload(web: Web, payload: bytes) -> None:
    before = web.snapshot()
    assert_problem(web.webhook(payload), 400, "invalid_payload")
    assert web.snapshot() == before


def test_an_unsigned_garbage_body_is_400_invalid_signature(web: Web) -> None:
    assert_problem(web.webhook(b"\x00\x01garbage", signature=None), 400, "invalid_signature")


def test_an_expired_checkout_releases_the_hold(web: Web) -> None:
    booking_id = web.booked()["booking"]["id"]
    session = web.session_of(booking_id)
    web.payments.expire_checkout(session)
    response = web.webhook(web.payments.event_for(session, PaymentEventType.CHECKOUT_EXPIRED))
    assert response.status_code == 200
    assert web.stored(booking_id).status is BookingStatus.EXPIRED
    assert SLOT in web.slots()


def test_unknown_event_types_are_acknowledged_and_ignored(web: Web) -> None:
    payload = json.dumps(
        {
            "id": "evt_unknown",
            "object": "event",
            "type": "customer.created",
            "created": int(time.time()),
            "data": {"object": {"object": "customer", "id": "cus_1"}},
        }
    ).encode()
    before = web.snapshot()[0]
    response = web.webhook(payload)
    assert response.status_code == 200
    assert response.get_json() == {"received": True}
    assert web.snapshot()[0] == before


def test_an_event_for_an_unknown_session_is_acknowledged(web: Web) -> None:
    payload = json.dumps(
        {
            "id": "evt_other",
            "type": "checkout.session.completed",
            "created": int(time.time()),
            "data": {
                "object": {
                    "object": "checkout.session",
                    "id": "cs_elsewhere",
                    "payment_status": "paid",
                    "amount_total": 100,
                    "currency": "usd",
                    "metadata": {"booking_id": "999"},
                }
            },
        }
    ).encode()
    assert web.webhook(payload).status_code == 200
    assert web.bookings() == []


def test_an_oversized_webhook_body_is_413(web: Web) -> None:
    payload = b'{"pad":"' + b"x" * (300 * 1024) + b'"}'
    assert_problem(web.webhook(payload), 413, "payload_too_large")


def test_production_refuses_the_fake_gateway_even_when_passed_in() -> None:
    with pytest.raises(SettingsError, match="fake payment gateway"):
        Web(
            settings={
                "env": "production",
                "stripe_secret_key": "sk_test_unit",
                "stripe_webhook_secret": "whsec_unit",
                "secret_key": "s" * 32,
                "base_url": "https://b.example",
            }
        )


# -- success and cancel pages ---------------------------------------------------------------------


def test_success_page_while_the_payment_is_pending_refreshes(web: Web) -> None:
    session = web.session_of(web.booked()["booking"]["id"])
    response = web.client.get(f"/booking/success?session_id={session}")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "Confirming your payment" in page
    assert 'http-equiv="refresh"' in page
    # The start as the client chose it: the practitioner's local time, zone named.
    assert "Tuesday 08 January 2030, 09:00 (Europe/London)" in page


@pytest.mark.parametrize(
    "query", ["", "?session_id=", "?session_id=cs_unknown", "?session_id=" + "x" * 300]
)
def test_success_page_without_a_known_session_is_404_html(web: Web, query: str) -> None:
    response = web.client.get(f"/booking/success{query}")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Booking not found" in response.get_data(as_text=True)


def test_cancel_page_without_a_session(web: Web) -> None:
    response = web.client.get("/booking/cancel")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "Checkout cancelled" in response.get_data(as_text=True)


def test_cancel_page_while_the_hold_is_still_on(web: Web) -> None:
    session = web.session_of(web.booked()["booking"]["id"])
    page = web.client.get(f"/booking/cancel?session_id={session}").get_data(as_text=True)
    assert "stays held" in page


# -- each payment applied once (issue 10, reproduction 1) ------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "late"),
    [
        ("/api/bookings/{id}/cancel", None, True),  # inside the window: the policy keeps it
        ("/api/admin/bookings/{id}/cancel", {"refund": False}, False),  # an admin keeps it
    ],
)
@pytest.mark.parametrize(
    "second", [PaymentEventType.ASYNC_PAYMENT_SUCCEEDED, PaymentEventType.CHECKOUT_COMPLETED]
)
def test_a_second_payment_event_after_a_kept_payment_refunds_nothing(
    web: Web, path: str, body: dict[str, Any] | None, late: bool, second: str
) -> None:
    created = web.confirmed()
    booking_id = created["booking"]["id"]
    if late:
        web.clock.advance(timedelta(hours=2))  # 23 hours before the start
    headers = ADMIN if "admin" in path else bearer(created["manage_token"])
    response = web.client.post(path.format(id=booking_id), json=body, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["refund"] is None
    # The same session's payment again, signed, under a new event id.
    session = web.session_of(booking_id)
    again = web.webhook(web.payments.event_for(session, second, event_id="evt_brand_new"))
    assert again.status_code == 200
    web.clock.advance(timedelta(minutes=5))
    worker.run_once(web.deps)
    stored = web.stored(booking_id)
    assert (stored.status, stored.refund) == (BookingStatus.CANCELLED, None)
    assert web.payments.refunded == {}
