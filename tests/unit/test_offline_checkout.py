"""The offline checkout (development without Stripe): its page, its guarded Pay / Cancel, its
sessions, its secrets, and that production never serves it."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from adapters.memory import FakePaymentGateway, sign_fake_event
from booking_core.errors import RefundFailed
from booking_core.model import BookingStatus, Money
from booking_core.ports import RefundRequest
from entrypoints.dev.local_secrets import local_secret
from entrypoints.dev.offline_checkout import OfflineCheckoutGateway, format_money
from entrypoints.settings import SettingsError

from .http_support import NOW, SLOT, SLOT_2, Web, assert_problem


@pytest.fixture
def web() -> Web:
    return Web(offline_checkout=True)


def _secret(web: Web, session: str) -> str:
    page = web.client.get(f"/dev/checkout/{session}").get_data(as_text=True)
    found = re.search(r'name="secret" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def _post(web: Web, session: str, action: str, secret: str | None = "own") -> Any:
    if secret == "own":
        secret = _secret(web, session)
    data = {} if secret is None else {"secret": secret}
    return web.client.post(f"/dev/checkout/{session}/{action}", data=data)


def test_development_without_stripe_builds_the_offline_checkout(web: Web) -> None:
    assert isinstance(web.payments, OfflineCheckoutGateway)
    assert web.deps.live["payments"].startswith("offline checkout")


def test_the_page_shows_what_is_paid_for_and_when(web: Web) -> None:
    created = web.booked()
    session = web.session_of(created["booking"]["id"])
    assert created["checkout_url"] == f"http://localhost:3000/dev/checkout/{session}"
    response = web.client.get(f"/dev/checkout/{session}")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert ">Pay</button>" in page
    assert ">Cancel</button>" in page
    assert f'action="/dev/checkout/{session}/pay"' in page
    assert f'action="/dev/checkout/{session}/cancel"' in page
    assert '<strong id="amount">90.00 GBP</strong>' in page
    assert '<strong id="service">Initial consultation</strong>' in page
    assert "Dr. Maya Okafor" in page
    assert "Tuesday 08 January 2030, 09:00 (Europe/London)" in page


def test_the_page_escapes_what_the_client_typed(web: Web) -> None:
    # Markup is no email address any more; ``&`` and ``'`` are, and must be escaped too.
    created = web.booked(client={"name": "Eve", "email": "eve&co'x@example.com"})
    text = web.client.get(f"/dev/checkout/{web.session_of(created['booking']['id'])}").get_data(
        as_text=True
    )
    assert "eve&co'x" not in text
    assert "eve&amp;co&#39;x@example.com" in text


@pytest.mark.parametrize(
    ("money", "shown"),
    [
        (Money(9000, "gbp"), "90.00 GBP"),
        (Money(5, "usd"), "0.05 USD"),
        (Money(1200, "jpy"), "1200 JPY"),
        (Money(1500, "kwd"), "1.500 KWD"),
        (Money(0, "eur"), "0.00 EUR"),
    ],
)
def test_amounts_follow_the_currencys_minor_units(money: Money, shown: str) -> None:
    assert format_money(money) == shown


def test_paying_confirms_and_redirects_to_the_success_page(web: Web) -> None:
    booking_id = web.booked()["booking"]["id"]
    session = web.session_of(booking_id)
    secret = _secret(web, session)
    response = _post(web, session, "pay", secret)
    assert response.status_code == 303
    assert response.headers["Location"] == (
        f"http://localhost:3000/booking/success?session_id={session}"
    )
    assert web.stored(booking_id).status is BookingStatus.CONFIRMED
    success = web.client.get(f"/booking/success?session_id={session}")
    assert "Booking confirmed" in success.get_data(as_text=True)
    page = web.client.get(f"/dev/checkout/{session}").get_data(as_text=True)
    assert ">Pay</button>" not in page
    version = web.stored(booking_id).version
    assert _post(web, session, "pay", secret).status_code == 303
    assert web.stored(booking_id).version == version


@pytest.mark.parametrize("secret", [None, "", "guess", "x" * 500])
def test_pay_and_cancel_need_the_sessions_own_secret(web: Web, secret: str | None) -> None:
    booking_id = web.booked()["booking"]["id"]
    session = web.session_of(booking_id)
    before = web.snapshot()
    for action in ("pay", "cancel"):
        assert _post(web, session, action, secret).status_code == 404
    assert web.snapshot() == before
    assert web.stored(booking_id).status is BookingStatus.PENDING


def test_another_sessions_secret_does_not_pay(web: Web) -> None:
    first = web.session_of(web.booked()["booking"]["id"])
    second_id = web.booked(start=SLOT_2)["booking"]["id"]
    second = web.session_of(second_id)
    assert _post(web, second, "pay", _secret(web, first)).status_code == 404
    assert web.stored(second_id).status is BookingStatus.PENDING


def test_session_ids_are_signed_not_guessable(web: Web) -> None:
    first_id = web.booked()["booking"]["id"]
    first = web.session_of(first_id)
    second = web.session_of(web.booked(start=SLOT_2)["booking"]["id"])
    for session in (first, second):
        # booking, amount, currency, expiry, the key's tag, then 128 bits of signature
        assert re.fullmatch(
            r"cs_offline_[0-9a-z]+_[0-9a-z]+_[a-z]{3}_[0-9a-z]+_[0-9a-f]{16}_[0-9a-f]{32}", session
        ), session
    assert first != second
    assert _secret(web, first) != _secret(web, second)
    # The next booking's id in a session id is no session: its signature is not the gateway's.
    guessed = first.replace(f"cs_offline_{first_id:x}_", f"cs_offline_{first_id + 2:x}_", 1)
    assert guessed != first
    assert web.client.get(f"/dev/checkout/{guessed}").status_code == 404
    assert _post(web, guessed, "pay", _secret(web, first)).status_code == 404


def test_cancelling_expires_the_booking_and_frees_the_slot(web: Web) -> None:
    booking_id = web.booked()["booking"]["id"]
    session = web.session_of(booking_id)
    secret = _secret(web, session)
    response = _post(web, session, "cancel", secret)
    assert response.status_code == 303
    assert response.headers["Location"] == (
        f"http://localhost:3000/booking/cancel?session_id={session}"
    )
    assert web.stored(booking_id).status is BookingStatus.EXPIRED
    assert SLOT in web.slots()
    assert "released" in web.client.get(f"/booking/cancel?session_id={session}").get_data(
        as_text=True
    )
    assert _post(web, session, "pay", secret).status_code == 303
    assert web.stored(booking_id).status is BookingStatus.EXPIRED


def test_paying_after_the_session_expired_expires_the_hold(web: Web) -> None:
    booking_id = web.booked()["booking"]["id"]
    session = web.session_of(booking_id)
    secret = _secret(web, session)
    web.clock.set(NOW.replace(hour=9))  # past the 30 min hold (and the session's expiry)
    response = _post(web, session, "pay", secret)
    assert response.status_code == 303
    assert "/booking/cancel" in response.headers["Location"]
    assert web.stored(booking_id).status is BookingStatus.EXPIRED


@pytest.mark.parametrize("method", ["get", "post"])
def test_an_unknown_session_is_404(web: Web, method: str) -> None:
    path = "/dev/checkout/cs_nope" + ("/pay" if method == "post" else "")
    assert getattr(web.client, method)(path, data={"secret": "x"}).status_code == 404


def test_cancelling_a_paid_booking_refunds_it_once(web: Web) -> None:
    answer = web.booked()
    booking_id = answer["booking"]["id"]
    session = web.session_of(booking_id)
    _post(web, session, "pay")
    cancelled = web.client.post(
        f"/api/bookings/{booking_id}/cancel",
        json={},
        headers={"Authorization": f"Bearer {answer['manage_token']}"},
    )
    assert cancelled.status_code == 200, cancelled.get_data(as_text=True)
    assert cancelled.get_json()["refund"]["status"] == "succeeded"
    intent = web.stored(booking_id).payment_intent_id
    assert intent is not None
    more = RefundRequest(
        booking_id=booking_id,
        payment_intent_id=intent,
        amount=Money(1, "gbp"),
        idempotency_key="more",
    )
    with pytest.raises(RefundFailed, match="exceeds"):
        web.payments.refund(more)


def test_the_webhook_takes_events_signed_with_the_gateways_own_secret(web: Web) -> None:
    session = web.session_of(web.booked()["booking"]["id"])
    payload, _ = web.payments.signed_event(session, "checkout.session.expired")
    for secret in ("whsec_offline_development", "whsec_fake"):
        assert_problem(
            web.webhook(payload, signature=sign_fake_event(payload, secret)),
            400,
            "invalid_signature",
        )
    good = sign_fake_event(payload, web.payments.webhook_secret)
    assert web.webhook(payload, signature=good).status_code == 200


def test_development_never_uses_a_well_known_webhook_secret() -> None:
    """The seed signed offline events with a constant anyone could read in the code."""
    web = Web(offline_checkout=True, settings={"stripe_webhook_secret": None})
    secret = web.payments.webhook_secret
    assert secret not in ("whsec_offline_development", "whsec_fake")
    assert len(secret) >= 32
    assert (
        Web(offline_checkout=True, settings={"stripe_webhook_secret": None}).payments.webhook_secret
        != secret
    )
    payload = json.dumps(
        {
            "id": "evt_forged",
            "object": "event",
            "type": "checkout.session.completed",
            "created": 1,
            "data": {"object": {"object": "checkout.session", "id": "cs_x"}},
        }
    ).encode()
    forged = sign_fake_event(payload, "whsec_offline_development")
    assert_problem(web.webhook(payload, signature=forged), 400, "invalid_signature")


# -- served only where it belongs -----------------------------------------------------------------


class _NotTheFake:
    """Any payment gateway other than the offline one (e.g. real Stripe)."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the offline checkout must not use the gateway ({name})")


@pytest.mark.parametrize("payments", [_NotTheFake, FakePaymentGateway], ids=["real", "fake"])
def test_no_offline_checkout_routes_with_another_gateway(payments: Any) -> None:
    web = Web(payments=payments())
    assert not [r for r in web.app.url_map.iter_rules() if r.rule.startswith("/dev/")]
    for method, path in [
        ("get", "/dev/checkout/cs_1"),
        ("post", "/dev/checkout/cs_1/pay"),
        ("post", "/dev/checkout/cs_1/cancel"),
    ]:
        assert getattr(web.client, method)(path).status_code == 404
    paths = web.client.get("/openapi.json").get_json()["paths"]
    assert not [p for p in paths if p.startswith("/dev/")]


def test_production_refuses_the_offline_checkout() -> None:
    with pytest.raises(SettingsError, match="STRIPE_SECRET_KEY"):
        Web(
            offline_checkout=True,
            settings={"env": "production", "secret_key": "s" * 32, "base_url": "https://b.example"},
        )


# -- secrets of the data folder -------------------------------------------------------------------


def test_a_local_secret_is_made_once_per_data_folder(tmp_path: Path) -> None:
    first = local_secret(tmp_path / "a", "offline-webhook-secret", prefix="whsec_")
    assert first.startswith("whsec_")
    assert len(first) > 40
    assert local_secret(tmp_path / "a", "offline-webhook-secret", prefix="whsec_") == first
    assert local_secret(tmp_path / "b", "offline-webhook-secret", prefix="whsec_") != first
    path = tmp_path / "a" / "secrets" / "offline-webhook-secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["offline-webhook-secret"]


def test_the_document_lists_the_offline_checkout_when_it_is_served(web: Web) -> None:
    paths = web.client.get("/openapi.json").get_json()["paths"]
    documented = {(p, m) for p, item in paths.items() if p.startswith("/dev/") for m in item}
    routed = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in web.app.url_map.iter_rules()
        if rule.rule.startswith("/dev/")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert documented == routed
    assert len(routed) == 3
    pay = paths["/dev/checkout/{session_id}/pay"]["post"]
    form = pay["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form["required"] == ["secret"]
