"""Who may call which admin route: every route of /api/admin, table-driven, for anonymous
callers, a client's manage token, a signed-in user, the practitioner of another practitioner,
the practitioner of this one, and admins (token and cookie). A refused request changes nothing;
an accepted change writes one audit entry naming its actor."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from werkzeug.test import TestResponse

from booking_core.model import Role

from .admin_support import CSRF, add_user, parked_job, sign_in, sign_out, state
from .http_support import ADMIN, SLOT, Web, assert_problem, bearer

# All objects belong to practitioner 1 (Dr. Maya Okafor); ``{...}`` are filled in by ``World``.
HOURS = {"mon": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}]}
SERVICE = {
    "name": "Long session",
    "duration_minutes": 90,
    "price": {"amount": 12000, "currency": "gbp"},
}
TIME_OFF = {"start": "2030-02-01T00:00:00Z", "end": "2030-02-08T00:00:00Z", "reason": "holiday"}

OBJECT, ADMIN_ONLY, LISTING = "object", "admin-only", "listing"
ROUTES: list[tuple[str, str, Any, str, int]] = [
    ("GET", "/api/admin/practitioners", None, LISTING, 200),
    (
        "POST",
        "/api/admin/practitioners",
        {"name": "Sam Doe", "email": "sam@example.com", "timezone": "Europe/Paris"},
        ADMIN_ONLY,
        201,
    ),
    ("GET", "/api/admin/practitioners/1", None, OBJECT, 200),
    ("PATCH", "/api/admin/practitioners/1", {"title": "Psychotherapist"}, OBJECT, 200),
    ("PUT", "/api/admin/practitioners/1/working-hours", HOURS, OBJECT, 200),
    ("POST", "/api/admin/practitioners/1/time-off", TIME_OFF, OBJECT, 201),
    ("DELETE", "/api/admin/time-off/{time_off}", None, OBJECT, 204),
    ("PUT", "/api/admin/practitioners/1/calcom", {"user_id": 41, "event_type_id": 42}, OBJECT, 200),
    ("DELETE", "/api/admin/practitioners/1/calcom", None, OBJECT, 204),
    ("POST", "/api/admin/practitioners/1/services", SERVICE, OBJECT, 201),
    ("PATCH", "/api/admin/services/1", {"duration_minutes": 45}, OBJECT, 200),
    ("GET", "/api/admin/bookings", None, LISTING, 200),
    ("GET", "/api/admin/bookings/{booking}", None, OBJECT, 200),
    (
        "POST",
        "/api/admin/bookings/{booking}/cancel",
        {"reason": "ill", "refund": True},
        OBJECT,
        200,
    ),
    ("POST", "/api/admin/bookings/{booking}/no-show", None, OBJECT, 200),
    ("GET", "/api/admin/jobs", None, ADMIN_ONLY, 200),
    ("POST", "/api/admin/jobs/{job}/retry", None, ADMIN_ONLY, 200),
    ("GET", "/api/admin/users", None, ADMIN_ONLY, 200),
    (
        "PATCH",
        "/api/admin/users/{user}",
        {"role": "practitioner", "practitioner_id": 2},
        ADMIN_ONLY,
        200,
    ),
    ("GET", "/api/admin/audit", None, ADMIN_ONLY, 200),
    ("GET", "/api/admin/tokens", None, ADMIN_ONLY, 200),
    ("POST", "/api/admin/tokens", {"name": "reporting"}, ADMIN_ONLY, 201),
    ("DELETE", "/api/admin/tokens/{token}", None, ADMIN_ONLY, 200),
]
ROLES = [
    "anonymous",
    "client",
    "user",
    "other-practitioner",
    "own-practitioner",
    "admin-token",
    "admin-cookie",
    "api-token",
]


class World:
    """A practice with a confirmed booking that has started, a time off, a parked job, an API
    token, and users of every role."""

    def __init__(self) -> None:
        self.web = Web()
        web = self.web
        answer = web.confirmed(start=SLOT)
        self.booking = answer["booking"]["id"]
        self.manage_token = answer["manage_token"]
        created = web.client.post(
            "/api/admin/practitioners/1/time-off", json=TIME_OFF, headers=ADMIN
        )
        assert created.status_code == 201, created.get_data(as_text=True)
        self.time_off = created.get_json()["id"]
        issued = web.client.post("/api/admin/tokens", json={"name": "ci"}, headers=ADMIN)
        assert issued.status_code == 201
        self.token_id = issued.get_json()["api_token"]["id"]
        self.api_token = issued.get_json()["token"]
        self.job = parked_job(web)
        self.users = {
            "user": add_user(web, "plain", Role.USER),
            "other-practitioner": add_user(web, "jordan", Role.PRACTITIONER, 2),
            "own-practitioner": add_user(web, "maya", Role.PRACTITIONER, 1),
            "admin-cookie": add_user(web, "owner", Role.ADMIN),
        }
        self.target_user = add_user(web, "newcomer", Role.USER).id
        # The booking's start has passed (no-show needs it); the sessions start now.
        web.clock.set(datetime(2030, 1, 8, 9, 30, tzinfo=UTC))

    def path(self, template: str) -> str:
        return template.format(
            time_off=self.time_off,
            booking=self.booking,
            job=self.job,
            user=self.target_user,
            token=self.token_id,
        )

    def call(self, role: str, method: str, path: str, body: Any) -> TestResponse:
        headers: dict[str, str] = {}
        sign_out(self.web)
        if role == "client":
            headers = bearer(self.manage_token)
        elif role == "admin-token":
            headers = ADMIN
        elif role == "api-token":
            headers = bearer(self.api_token)
        elif role in self.users:
            sign_in(self.web, self.users[role])
            headers = {"X-CSRF-Token": CSRF}
        return self.web.client.open(path, method=method, json=body, headers=headers)


def _expected(role: str, kind: str, success: int) -> int:
    if role in ("anonymous", "client"):
        return 401
    if role == "user":
        return 403
    if role in ("admin-token", "admin-cookie", "api-token"):
        return success
    if kind == ADMIN_ONLY:
        return 403
    if kind == LISTING:
        return 200
    return 404 if role == "other-practitioner" else success


def _shape(path: str) -> str:
    """``/api/admin/bookings/<id:booking_id>/cancel``, ``.../{booking}/cancel`` and
    ``.../7/cancel`` all as ``/api/admin/bookings/{}/cancel``."""
    return re.sub(r"<[^>]+>|\{[a-z_]+\}|(?<=/)[0-9]+(?=/|$)", "{}", path)


def test_the_table_covers_every_admin_route() -> None:
    app = Web().app
    routes = {
        (method, _shape(rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/admin")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert routes == {(method, _shape(path)) for method, path, *_ in ROUTES}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "template", "body", "kind", "success"),
    ROUTES,
    ids=[f"{m} {p}" for m, p, *_ in ROUTES],
)
def test_who_may_call_each_admin_route(
    role: str, method: str, template: str, body: Any, kind: str, success: int
) -> None:
    world = World()
    before = state(world.web)
    response = world.call(role, method, world.path(template), body)
    expected = _expected(role, kind, success)
    if expected >= 400:
        problem = assert_problem(response, expected)
        assert problem["code"] in ("unauthorized", "forbidden", "not_found")
        assert state(world.web) == before, "a refused request changed something"
        return
    assert response.status_code == expected, response.get_data(as_text=True)
    if method == "GET":
        assert state(world.web) == before
        if kind == LISTING and role == "other-practitioner":
            items = response.get_json()["items"]
            assert all(item.get("practitioner_id", item.get("id")) == 2 for item in items), items
        return
    audit = world.web.store.audit
    added = [e for e in audit if e not in before[5]]
    assert len(added) == 1, added
    entry = added[0]
    if role.startswith("admin") or role == "api-token":
        assert entry.actor_type in ("token", "user")
    else:
        assert (entry.actor_type, entry.actor_id) == ("user", str(world.users[role].id))
    secrets = (world.api_token, world.manage_token, "adm_")
    assert not any(s in repr(entry) for s in secrets)


def test_csrf_is_refused_without_the_token_for_cookie_sessions() -> None:
    world = World()
    sign_in(world.web, world.users["admin-cookie"])
    before = state(world.web)
    for method, template, body, _kind, _ in ROUTES:
        if method == "GET":
            continue
        path = world.path(template)
        assert_problem(world.web.client.open(path, method=method, json=body), 403, "csrf_failed")
        wrong = {"X-CSRF-Token": "not-the-token"}
        assert_problem(
            world.web.client.open(path, method=method, json=body, headers=wrong), 403, "csrf_failed"
        )
    assert state(world.web) == before
    # GETs need no token; bearer requests need none either.
    assert world.web.client.get("/api/admin/practitioners").status_code == 200
    sign_out(world.web)
    assert (
        world.web.client.patch(
            "/api/admin/practitioners/1", json={"bio": "x"}, headers=ADMIN
        ).status_code
        == 200
    )


def test_a_revoked_api_token_is_refused_at_once() -> None:
    world = World()
    headers = bearer(world.api_token)
    assert world.web.client.get("/api/admin/users", headers=headers).status_code == 200
    revoked = world.web.client.delete(f"/api/admin/tokens/{world.token_id}", headers=ADMIN)
    assert revoked.status_code == 200
    assert revoked.get_json()["active"] is False
    assert_problem(world.web.client.get("/api/admin/users", headers=headers), 401, "unauthorized")
    listed = world.web.client.get("/api/admin/tokens", headers=ADMIN).get_json()["items"]
    assert [t["active"] for t in listed] == [False]
    assert world.api_token not in str(listed)
    stored = next(iter(world.web.store.api_tokens.values()))
    assert stored.token_hash != world.api_token
    assert world.api_token not in repr(stored)
