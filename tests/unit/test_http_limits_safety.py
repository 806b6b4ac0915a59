"""HTTP: the booking limits protect clients: only holds count per email, no raw email logged.

Also: Retry-After only on a 429, and the client's address from trusted proxies only.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from entrypoints.settings import Settings, SettingsError

from .http_support import CLIENT_EMAIL, SLOT, SLOT_2, SLOT_3, Web, assert_problem, booking_body

_RATE_HEADERS = ("Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


@pytest.fixture
def log_text(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    caplog.set_level(logging.DEBUG)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def test_refused_requests_with_an_address_do_not_lock_its_owner_out() -> None:
    web = Web(settings={"ratelimit_bookings_per_email": "2 per hour"})
    client = {"name": "Ada", "email": CLIENT_EMAIL}
    for _ in range(5):  # someone else, with her address and bad input
        assert_problem(web.book(start="not a time", client=client), 422, "validation_error")
    web.payments.fail_next()
    assert_problem(web.book(start=SLOT, client=client), 503, "payment_unavailable")
    assert web.book(start=SLOT, client=client).status_code == 201
    assert web.book(start=SLOT_2, client=client).status_code == 201
    # Two holds were created: now the limit applies.
    response = web.book(start=SLOT_3, client=client)
    assert_problem(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 3000  # the window is an hour
    assert [b.status.value for b in web.bookings()].count("pending") == 2


def test_an_idempotent_replay_is_not_a_new_hold() -> None:
    web = Web(settings={"ratelimit_bookings_per_email": "2 per hour"})
    headers = {"Idempotency-Key": "replay-me"}
    first = web.book(start=SLOT, headers=headers)
    assert first.status_code == 201
    replay = web.book(start=SLOT, headers=headers)
    assert replay.status_code == 201
    assert replay.get_json() == first.get_json()
    assert web.book(start=SLOT_2).status_code == 201  # the second hold, not the third
    assert_problem(web.book(start=SLOT_3), 429, "rate_limited")


def test_failed_validation_counts_toward_the_per_ip_limit() -> None:
    web = Web(settings={"ratelimit_bookings_per_ip": "3 per minute"})
    assert_problem(web.book(start="nope"), 422, "validation_error")
    assert_problem(web.book(client={"name": "", "email": "x"}), 422, "validation_error")
    assert web.book(start=SLOT).status_code == 201
    assert_problem(web.book(start=SLOT_2), 429, "rate_limited")


def test_retry_after_is_sent_on_a_429_only() -> None:
    web = Web(
        settings={
            "ratelimit_bookings_per_ip": "1 per minute",
            "ratelimit_bookings_per_email": "5 per hour",
        }
    )
    created = web.book(start=SLOT)
    assert created.status_code == 201
    for header in _RATE_HEADERS:
        assert header not in created.headers, header
    refused = web.book(start=SLOT_2)
    assert_problem(refused, 429, "rate_limited")
    assert 0 < int(refused.headers["Retry-After"]) <= 61  # a minute, rounded up


def test_no_log_line_carries_the_email_address(log_text: io.StringIO) -> None:
    web = Web(settings={"ratelimit_bookings_per_email": "1 per hour"})
    assert web.book(start=SLOT).status_code == 201
    shouting = {"name": "Ada", "email": "  " + CLIENT_EMAIL.upper() + " "}
    assert_problem(web.book(start=SLOT_2, client=shouting), 429, "rate_limited")
    text = log_text.getvalue()
    assert "exceeded" in text  # Flask-Limiter logged the breach...
    assert CLIENT_EMAIL not in text.lower()  # ...without the address
    assert CLIENT_EMAIL.split("@")[0] not in text.lower()


def test_the_email_key_is_a_keyed_hash_of_the_normalised_address() -> None:
    from entrypoints.web.limits import email_key

    key = email_key(CLIENT_EMAIL, "one secret")
    assert key == email_key("  " + CLIENT_EMAIL.upper(), "one secret")
    assert key != email_key(CLIENT_EMAIL, "another secret")
    assert key != email_key("bob@example.com", "one secret")
    assert CLIENT_EMAIL.split("@")[0] not in key
    # JSON may carry a lone surrogate; the key function must not be what fails on it.
    assert email_key("ada\ud800@example.com", "one secret").startswith("email:")


def _from(address: str, forwarded: str | None = None) -> dict[str, object]:
    options: dict[str, object] = {"environ_base": {"REMOTE_ADDR": address}}
    if forwarded is not None:
        options["headers"] = {"X-Forwarded-For": forwarded}
    return options


def test_without_trusted_proxies_x_forwarded_for_is_ignored() -> None:
    web = Web(settings={"ratelimit_bookings_per_ip": "1 per minute"})
    post = web.client.post
    assert (
        post("/api/bookings", json=booking_body(start=SLOT), **_from("198.51.100.1")).status_code
        == 201
    )
    dodge = post(
        "/api/bookings", json=booking_body(start=SLOT_2), **_from("198.51.100.1", "203.0.113.77")
    )
    assert_problem(dodge, 429, "rate_limited")


def test_behind_one_trusted_proxy_the_client_is_the_address_it_saw() -> None:
    web = Web(settings={"ratelimit_bookings_per_ip": "1 per minute", "trusted_proxies": 1})
    post = web.client.post
    proxy = "10.0.0.2"
    assert (
        post(
            "/api/bookings", json=booking_body(start=SLOT), **_from(proxy, "203.0.113.5")
        ).status_code
        == 201
    )
    # The same client, with a made-up address in front of the one the proxy appended.
    spoofed = post(
        "/api/bookings", json=booking_body(start=SLOT_2), **_from(proxy, "192.0.2.99, 203.0.113.5")
    )
    assert_problem(spoofed, 429, "rate_limited")
    # Another client behind the same proxy has its own budget.
    assert (
        post(
            "/api/bookings", json=booking_body(start=SLOT_2), **_from(proxy, "203.0.113.6")
        ).status_code
        == 201
    )


def test_trusted_proxies_setting() -> None:
    assert Settings.from_mapping({}).trusted_proxies == 0
    assert Settings.from_mapping({"TRUSTED_PROXIES": "2"}).trusted_proxies == 2
    for bad in ("x", "-1", "99"):
        with pytest.raises(SettingsError, match="TRUSTED_PROXIES"):
            Settings.from_mapping({"TRUSTED_PROXIES": bad})
