"""HTTP: security headers -- CSP on HTML, Referrer-Policy, nosniff, HSTS in production only,
``Cache-Control: no-store`` on every answer with personal data, no version in ``Server``."""

from __future__ import annotations

import re
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from adapters.memory import FakePaymentGateway
from entrypoints.web.headers import QuietRequestHandler

from .http_support import ADMIN, SLOT_2, WEBHOOK_SECRET, Web, bearer

CSP = "default-src 'self'; frame-ancestors 'none'"


@pytest.fixture
def web() -> Web:
    return Web(offline_checkout=True)  # development's own checkout page is one of the pages


def _booked(web: Web) -> tuple[int, str, str]:
    answer = web.booked()
    booking_id = answer["booking"]["id"]
    return booking_id, answer["manage_token"], web.session_of(booking_id)


def _assert_common(response: TestResponse) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "Strict-Transport-Security" not in response.headers  # not in development


def _html_pages(web: Web) -> dict[str, TestResponse]:
    booking_id, token, session = _booked(web)
    pages = {
        "index": web.client.get("/"),
        "practitioner": web.client.get("/p/1"),
        "manage": web.client.get(f"/manage/{booking_id}?token={token}"),
        "success": web.client.get(f"/booking/success?session_id={session}"),
        "success-unknown": web.client.get("/booking/success?session_id=cs_nobody"),
        "cancel": web.client.get(f"/booking/cancel?session_id={session}"),
        "docs": web.client.get("/docs"),
    }
    # The offline checkout's page exists only where the development checkout is built.
    offline = Web(offline_checkout=True)
    _, _, offline_session = _booked(offline)
    pages["checkout"] = offline.client.get(f"/dev/checkout/{offline_session}")
    return pages


def test_every_html_answer_has_the_csp(web: Web) -> None:
    for name, response in _html_pages(web).items():
        assert response.mimetype == "text/html", name
        assert response.headers["Content-Security-Policy"] == CSP, name
        assert response.headers["X-Frame-Options"] == "DENY", name
        _assert_common(response)


@pytest.mark.parametrize(
    "name", ["index", "practitioner", "manage", "success", "success-unknown", "cancel", "checkout"]
)
def test_the_booking_pages_need_no_inline_style_or_script(web: Web, name: str) -> None:
    page = _html_pages(web)[name].get_data(as_text=True)
    assert "<style" not in page
    # Scripts only from our static files, none written into the page.
    assert re.findall(r"<script[^>]*>", page) in ([], ['<script src="/static/pages.js" defer>'])
    assert not re.search(r"<script[^>]*>[^<]", page)
    assert not re.search(r"\sstyle=|\son[a-z]+=", page)
    sheets = re.findall(r'<link rel="stylesheet" href="([^"]+)"', page)
    assert sheets == ["/static/pages.css"]
    with web.client.get(sheets[0]) as sheet:
        assert sheet.status_code == 200
        assert sheet.mimetype == "text/css"
        assert "font-family" in sheet.get_data(as_text=True)


def test_json_answers_carry_no_csp_but_the_common_headers(web: Web) -> None:
    for response in (
        web.client.get("/api/practitioners"),
        web.client.get("/healthz"),
        web.client.get("/api/bookings/1"),
        web.client.get("/nowhere"),
    ):
        assert "Content-Security-Policy" not in response.headers
        _assert_common(response)


def test_answers_with_personal_data_are_no_store(web: Web) -> None:
    booking_id, token, session = _booked(web)
    replay_key = {"Idempotency-Key": "headers-replay"}
    web.book(start=SLOT_2, headers=replay_key)
    personal = {
        "booking": web.client.get(f"/api/bookings/{booking_id}", headers=bearer(token)),
        "wrong-token": web.client.get(f"/api/bookings/{booking_id}", headers=bearer("nope")),
        "reschedule": web.client.post(
            f"/api/bookings/{booking_id}/reschedule", json={"start": "x"}, headers=bearer(token)
        ),
        "admin-list": web.client.get("/api/admin/bookings", headers=ADMIN),
        "admin-one": web.client.get(f"/api/admin/bookings/{booking_id}", headers=ADMIN),
        "admin-jobs": web.client.get("/api/admin/jobs", headers=ADMIN),
        "success": web.client.get(f"/booking/success?session_id={session}"),
        "cancel-page": web.client.get(f"/booking/cancel?session_id={session}"),
        "checkout": web.client.get(f"/dev/checkout/{session}"),
        "replay": web.book(start=SLOT_2, headers=replay_key),
        "cancel": web.client.post(
            f"/api/bookings/{booking_id}/cancel", json={}, headers=bearer(token)
        ),
    }
    assert personal["replay"].status_code == 201
    assert personal["booking"].status_code == 200
    for name, response in personal.items():
        assert response.headers.get("Cache-Control") == "no-store", name
        assert "ETag" not in response.headers, name


def test_public_catalogue_answers_stay_cacheable(web: Web) -> None:
    for path in (
        "/api/practitioners",
        "/api/practitioners/1",
        "/openapi.json",
        "/static/pages.css",
    ):
        with web.client.get(path) as response:
            assert response.status_code == 200, path
            assert "no-store" not in response.headers.get("Cache-Control", ""), path
    # The same route asked with a credential is someone's answer.
    assert web.client.get("/api/practitioners", headers=ADMIN).headers["Cache-Control"] == (
        "no-store"
    )


class _RealGatewayStandIn:
    """Production refuses the fake gateway itself; this one only forwards to it."""

    def __init__(self, real: object) -> None:
        self._real = real

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)


def test_hsts_in_production_only() -> None:
    production = Web(
        settings={
            "env": "production",
            "base_url": "https://booking.example",
            "stripe_secret_key": "sk_test_headers",
        },
        payments=_RealGatewayStandIn(FakePaymentGateway(webhook_secret=WEBHOOK_SECRET)),
    )
    for path in ("/healthz", "/booking/cancel", "/api/practitioners"):
        value = production.client.get(path).headers["Strict-Transport-Security"]
        assert value.startswith("max-age=")
        assert int(value.split("=")[1].split(";")[0]) >= 31536000
    assert "Strict-Transport-Security" not in Web().client.get("/healthz").headers


@pytest.fixture
def dev_server() -> Iterator[str]:
    """The development server as ``booking serve`` runs it, on a free loopback port."""
    server = make_server(
        "127.0.0.1", 0, Web().app, threaded=True, request_handler=QuietRequestHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def test_the_development_server_names_no_version(dev_server: str) -> None:
    with urllib.request.urlopen(dev_server + "/healthz", timeout=5) as answer:
        servers = answer.headers.get_all("Server")
    assert servers == ["booking"]
