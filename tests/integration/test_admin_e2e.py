"""End to end through the real ``booking serve`` process: the owner signs in with the local
OpenID provider, creates a practitioner with a service and working hours (cookie + CSRF), sees
its slots in the public availability, and a client books one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import pytest
import requests
from conftest import PgServer
from fake_oidc import CLIENT_ID, CLIENT_SECRET, FakeOidcProvider
from test_serve_e2e import Server, _environment, _free_port, _launch, _stop

OWNER = "owner-subject-e2e"


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeOidcProvider]:
    running = FakeOidcProvider().start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def server(
    pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory, provider: FakeOidcProvider
) -> Iterator[Server]:
    url = pg_server.new_database("booking_admin_e2e")
    port = _free_port()
    folder = tmp_path_factory.mktemp("serve-admin")
    env = _environment(url, port, folder / "data")
    env.update(
        OAUTH_ISSUER=provider.issuer,
        OAUTH_CLIENT_ID=CLIENT_ID,
        OAUTH_CLIENT_SECRET=CLIENT_SECRET,
        OWNER_OPEN_ID=OWNER,
    )
    running = None
    try:
        running = _launch(env, port, folder / "serve.log", tmp_path_factory.mktemp("cwd"))
        yield running
    finally:
        if running is not None:
            _stop(running.process)
        pg_server.drop_database(url)


def _sign_in(server: Server, provider: FakeOidcProvider) -> requests.Session:
    browser = requests.Session()
    provider.identity = {"sub": OWNER, "name": "The Owner", "email": "owner@example.com"}
    start = browser.get(
        server.url("/auth/login"), params={"next": "/admin"}, allow_redirects=False, timeout=10
    )
    assert start.status_code == 302, start.text
    callback = provider.authorize(start.headers["Location"])
    back = browser.get(callback, allow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text
    assert back.headers["Location"].endswith("/admin")
    return browser


def test_the_owner_sets_up_a_practitioner_whose_slots_a_client_books(
    server: Server, provider: FakeOidcProvider
) -> None:
    browser = _sign_in(server, provider)
    me = browser.get(server.url("/api/me"), timeout=10).json()
    assert me["role"] == "admin"
    headers = {"X-CSRF-Token": me["csrf_token"]}

    def admin(method: str, path: str, body: object, status: int) -> dict[str, object]:
        answer = browser.request(
            method, server.url(f"/api/admin{path}"), json=body, headers=headers, timeout=10
        )
        assert answer.status_code == status, answer.text
        return answer.json()  # type: ignore[no-any-return]

    # Without the CSRF token the cookie alone changes nothing.
    refused = browser.post(
        server.url("/api/admin/practitioners"),
        json={"name": "X", "email": "x@example.com", "timezone": "UTC"},
        timeout=10,
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"

    created = admin(
        "POST",
        "/practitioners",
        {"name": "Dr. Rosa Park", "email": "rosa@example.com", "timezone": "Asia/Tokyo"},
        201,
    )
    pid = created["id"]
    service = admin(
        "POST",
        f"/practitioners/{pid}/services",
        {"name": "Session", "duration_minutes": 45, "price": {"amount": 6000, "currency": "jpy"}},
        201,
    )
    week = {
        day: [{"start": "09:00", "end": "12:00"}] for day in ("mon", "tue", "wed", "thu", "fri")
    }
    hours = admin("PUT", f"/practitioners/{pid}/working-hours", week, 200)
    assert hours["working_hours"]["sat"] == []  # type: ignore[index]

    first = date.today() + timedelta(days=2)
    availability = requests.get(
        server.url(f"/api/practitioners/{pid}/availability"),
        params={
            "service_id": service["id"],
            "from": first.isoformat(),
            "to": (first + timedelta(days=7)).isoformat(),
        },
        timeout=10,
    )
    assert availability.status_code == 200, availability.text
    slots = availability.json()["slots"]
    assert slots, "the new practitioner's hours offer no slot"
    assert availability.json()["timezone"] == "Asia/Tokyo"

    booked = requests.post(
        server.url("/api/bookings"),
        json={
            "practitioner_id": pid,
            "service_id": service["id"],
            "start": slots[0]["start"],
            "client": {"name": "Ada Lovelace", "email": "ada@example.com"},
        },
        timeout=30,
    )
    assert booked.status_code == 201, booked.text
    booking = booked.json()["booking"]
    assert (booking["practitioner_id"], booking["status"]) == (pid, "pending")
    assert booking["price"] == {"amount": 6000, "currency": "jpy"}

    listed = admin("GET", f"/bookings?practitioner_id={pid}", None, 200)
    assert [b["id"] for b in listed["items"]] == [booking["id"]]  # type: ignore[union-attr]
    audit = admin("GET", "/audit", None, 200)
    actions = [e["action"] for e in audit["items"]]  # type: ignore[union-attr]
    assert actions == ["practitioner.working_hours", "service.create", "practitioner.create"]
    assert {e["actor"]["type"] for e in audit["items"]} == {"user"}  # type: ignore[union-attr]
