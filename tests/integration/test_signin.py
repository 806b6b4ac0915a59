"""Sign-in through a local OpenID Connect provider over real HTTP: the flow, its refusals, the
session cookie's lifetimes, CSRF, and the users table on memory and on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from fake_oidc import CLIENT_ID, CLIENT_SECRET, FakeOidcProvider, callback_path
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from adapters.memory import (
    FakeCalendarGateway,
    FakePaymentGateway,
    FixedClock,
    InMemoryStore,
    RecordingNotifier,
)
from adapters.postgres import Database
from booking_core.model import Role
from booking_core.ports import UnitOfWork
from entrypoints.bootstrap import bootstrap
from entrypoints.flask_app import create_app
from entrypoints.settings import Settings

NOW = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)
ADMIN_TOKEN = "adm_signin_tests_0123456789abcdef"
OWNER = "owner-sub-1"
ME_KEYS = {
    "id",
    "open_id",
    "name",
    "email",
    "role",
    "practitioner_id",
    "last_signed_in",
    "csrf_token",
}


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeOidcProvider]:
    fake = FakeOidcProvider().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def oidc(provider: FakeOidcProvider) -> FakeOidcProvider:
    provider.reset()
    return provider


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


def _settings(issuer: str | None, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "base_url": "http://localhost",
        "secret_key": "signin-tests-secret-key",
        "admin_api_token": ADMIN_TOKEN,
        "owner_open_id": OWNER,
        "session_idle_minutes": 30,
        "session_max_hours": 8,
    }
    if issuer:
        values |= {
            "oauth_issuer": issuer,
            "oauth_client_id": CLIENT_ID,
            "oauth_client_secret": CLIENT_SECRET,
        }
    return Settings(**(values | changes))


def _app(settings: Settings, uow_factory: Callable[[], UnitOfWork], clock: FixedClock) -> Flask:
    deps = bootstrap(
        settings,
        uow_factory=uow_factory,
        payments=FakePaymentGateway(webhook_secret="whsec_signin"),
        calendar=FakeCalendarGateway(),
        notifier=RecordingNotifier(),
        clock=clock,
    )
    return create_app(deps)


@pytest.fixture
def client(oidc: FakeOidcProvider, store: InMemoryStore, clock: FixedClock) -> FlaskClient:
    return _app(_settings(oidc.issuer), store.unit_of_work, clock).test_client()


def begin(client: FlaskClient, next_path: str | None = None) -> TestResponse:
    response = client.get("/auth/login", query_string={"next": next_path} if next_path else {})
    assert response.status_code == 302, response.get_data(as_text=True)
    return response


def login(
    client: FlaskClient, provider: FakeOidcProvider, next_path: str | None = None, **identity: Any
) -> TestResponse:
    if identity:
        provider.identity = identity
    callback = provider.authorize(begin(client, next_path).headers["Location"])
    return client.get(callback_path(callback))


def me(client: FlaskClient) -> TestResponse:
    return client.get("/api/me")


def csrf(client: FlaskClient) -> str:
    token = me(client).get_json()["csrf_token"]
    assert isinstance(token, str)
    assert len(token) >= 32
    return token


def assert_problem(response: TestResponse, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["code"] == code
    return body


# -- the flow ------------------------------------------------------------------------------------


def test_login_redirects_to_the_provider_with_pkce_state_and_nonce(
    client: FlaskClient, oidc: FakeOidcProvider
) -> None:
    location = begin(client, "/admin").headers["Location"]
    assert location.startswith(f"{oidc.issuer}/authorize?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == "http://localhost/auth/callback"
    assert "openid" in query["scope"].split()
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43  # base64url of a SHA-256 digest
    assert len(query["state"]) >= 20
    assert len(query["nonce"]) >= 20
    # Two sign-ins get different state, nonce and challenge.
    again = urlsplit(begin(client).headers["Location"]).query
    other = {k: v[0] for k, v in parse_qs(again).items()}
    for key in ("state", "nonce", "code_challenge"):
        assert other[key] != query[key]


def test_sign_in_sets_a_signed_cookie_and_me_describes_the_user(
    client: FlaskClient, oidc: FakeOidcProvider, store: InMemoryStore
) -> None:
    assert_problem(me(client), 401, "unauthorized")
    answer = login(
        client,
        oidc,
        "/admin?tab=jobs",
        sub="user-42",
        name="Grace Hopper",
        email="grace@example.com",
        email_verified=True,
    )
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/admin?tab=jobs"
    cookie = next(c for c in answer.headers.getlist("Set-Cookie") if c.startswith("booking_"))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # development and tests run on http://
    assert "Expires=" in cookie  # the absolute lifetime
    body = me(client).get_json()
    assert set(body) == ME_KEYS
    assert body["open_id"] == "user-42"
    assert body["name"] == "Grace Hopper"
    assert body["email"] == "grace@example.com"
    assert body["role"] == "user"
    assert body["practitioner_id"] is None
    assert body["last_signed_in"] == "2030-01-07T08:00:00Z"
    assert me(client).headers["Cache-Control"] == "no-store"
    assert list(store.users) == ["user-42"]


def test_the_session_cookie_is_secure_in_production(oidc: FakeOidcProvider) -> None:
    from adapters.stripe import StripePaymentGateway

    settings = _settings(
        oidc.issuer,
        env="production",
        base_url="https://booking.example",
        stripe_secret_key="sk_test_x",
        stripe_webhook_secret="whsec_x",
    )
    # Production refuses the fake checkout; a Stripe gateway that is never called will do.
    stripe = StripePaymentGateway(
        api_key="sk_test_x", webhook_secret="whsec_x", base_url="https://booking.example"
    )
    deps = bootstrap(
        settings,
        uow_factory=InMemoryStore().unit_of_work,
        payments=stripe,
        calendar=FakeCalendarGateway(),
        notifier=RecordingNotifier(),
        clock=FixedClock(NOW),
    )
    client = create_app(deps).test_client()
    callback = oidc.authorize(begin(client).headers["Location"])
    cookies = client.get(callback_path(callback)).headers.getlist("Set-Cookie")
    session_cookie = next(c for c in cookies if c.startswith("booking_session="))
    assert "Secure" in session_cookie
    assert "HttpOnly" in session_cookie


def test_an_unverified_email_is_not_stored(client: FlaskClient, oidc: FakeOidcProvider) -> None:
    login(client, oidc, sub="u-9", email="someone@example.com", email_verified=False)
    assert me(client).get_json()["email"] is None


def test_the_owner_becomes_admin_and_reaches_the_admin_api(
    client: FlaskClient, oidc: FakeOidcProvider
) -> None:
    assert_problem(client.get("/api/admin/bookings"), 401, "unauthorized")
    login(client, oidc, sub="plain-user")
    assert me(client).get_json()["role"] == "user"
    assert_problem(client.get("/api/admin/bookings"), 403, "forbidden")
    login(client, oidc, sub=OWNER, name="Owner")
    assert me(client).get_json()["role"] == "admin"
    assert client.get("/api/admin/bookings").status_code == 200


def test_two_logins_leave_one_user_and_move_last_signed_in(
    client: FlaskClient, oidc: FakeOidcProvider, store: InMemoryStore, clock: FixedClock
) -> None:
    login(client, oidc, sub="repeat", name="First Name", email="a@example.com")
    first = me(client).get_json()
    clock.advance(timedelta(hours=3))
    client.post("/auth/logout", headers={"X-CSRF-Token": first["csrf_token"]})
    login(client, oidc, sub="repeat", name="Second Name", email="b@example.com")
    second = me(client).get_json()
    assert second["id"] == first["id"]
    assert (second["name"], second["email"]) == ("Second Name", "b@example.com")
    assert second["last_signed_in"] == "2030-01-07T11:00:00Z"
    assert list(store.users) == ["repeat"]
    assert second["csrf_token"] != first["csrf_token"]  # a new sign-in, a new token


def test_two_logins_leave_one_row_on_postgresql(
    oidc: FakeOidcProvider, clean_database: Database, clock: FixedClock
) -> None:
    client = _app(_settings(oidc.issuer), clean_database.unit_of_work, clock).test_client()
    login(client, oidc, sub=OWNER, name="Owner", email="owner@example.com")
    first = me(client).get_json()
    assert first["role"] == "admin"
    clock.advance(timedelta(minutes=90))
    login(client, oidc, sub=OWNER, name="Owner Renamed", email="owner@example.com")
    login(client, oidc, sub="someone-else", name="Other")
    with clean_database.engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT open_id, name, role::text, last_signed_in FROM users ORDER BY id")
        ).all()
    assert [tuple(r) for r in rows] == [
        (OWNER, "Owner Renamed", "admin", NOW + timedelta(minutes=90)),
        ("someone-else", "Other", "user", NOW + timedelta(minutes=90)),
    ]


# -- refusals ------------------------------------------------------------------------------------


def _nobody_signed_in(client: FlaskClient, store: InMemoryStore) -> None:
    assert_problem(me(client), 401, "unauthorized")
    assert store.users == {}


def test_a_wrong_state_is_refused(
    client: FlaskClient, oidc: FakeOidcProvider, store: InMemoryStore
) -> None:
    callback = oidc.authorize(begin(client).headers["Location"])
    redeemed = oidc.token_requests
    assert_problem(client.get(callback_path(callback, state="forged-state")), 400, "signin_failed")
    assert oidc.token_requests == redeemed  # the code is never sent to the provider
    _nobody_signed_in(client, store)
    # The browser's own answer still signs it in, once: a replay finds its state spent.
    assert client.get(callback_path(callback)).status_code == 302
    assert me(client).status_code == 200
    assert_problem(client.get(callback_path(callback)), 400, "signin_failed")
    assert_problem(me(client), 401, "unauthorized")


def test_a_callback_meant_for_another_browser_is_refused(
    client: FlaskClient, oidc: FakeOidcProvider, store: InMemoryStore
) -> None:
    victim_callback = oidc.authorize(begin(client).headers["Location"])
    attacker = client.application.test_client()
    begin(attacker)
    assert_problem(attacker.get(callback_path(victim_callback)), 400, "signin_failed")
    assert_problem(me(attacker), 401, "unauthorized")
    assert store.users == {}


def test_a_callback_without_state_or_with_a_provider_error_is_refused(
    client: FlaskClient, store: InMemoryStore
) -> None:
    begin(client)
    assert_problem(client.get("/auth/callback?code=abc"), 400, "signin_failed")
    begin(client)
    body = assert_problem(
        client.get("/auth/callback?error=access_denied&error_description=secret-detail"),
        400,
        "signin_failed",
    )
    assert "secret-detail" not in str(body)
    _nobody_signed_in(client, store)


@pytest.mark.parametrize(
    "fault",
    ["wrong nonce", "no nonce", "expired", "foreign key", "audience", "issuer", "future iat"],
)
def test_a_bad_id_token_is_refused(
    fault: str, client: FlaskClient, oidc: FakeOidcProvider, store: InMemoryStore
) -> None:
    now = int(time.time())
    if fault == "wrong nonce":
        oidc.tamper = {"nonce": "nonce-of-another-sign-in"}
    elif fault == "no nonce":
        oidc.tamper = {"nonce": None}
    elif fault == "expired":
        oidc.tamper = {"iat": now - 900, "exp": now - 600}
    elif fault == "foreign key":
        oidc.sign_with_foreign_key = True
    elif fault == "audience":
        oidc.tamper = {"aud": "another-client"}
    elif fault == "issuer":
        oidc.tamper = {"iss": "http://127.0.0.1:9/realms/evil"}
    else:
        oidc.tamper = {"iat": now + 3600, "exp": now + 7200}
    body = assert_problem(login(client, oidc, sub=OWNER), 400, "signin_failed")
    assert "127.0.0.1" not in str(body)
    _nobody_signed_in(client, store)


def test_a_failing_token_endpoint_is_a_503_and_signs_nobody_in(
    client: FlaskClient, oidc: FakeOidcProvider, store: InMemoryStore
) -> None:
    oidc.token_status = 502
    body = assert_problem(login(client, oidc, sub=OWNER), 503, "signin_unavailable")
    assert "10.0.0.7" not in str(body)
    _nobody_signed_in(client, store)


def test_a_refused_callback_signs_out_whoever_was_signed_in(
    client: FlaskClient, oidc: FakeOidcProvider
) -> None:
    login(client, oidc, sub="first")
    assert me(client).status_code == 200
    oidc.sign_with_foreign_key = True
    assert_problem(login(client, oidc, sub=OWNER), 400, "signin_failed")
    assert_problem(me(client), 401, "unauthorized")


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "///evil.example",
        "https://evil.example/admin",
        "http:evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "javascript:alert(1)",
        "evil.example/admin",
        " /admin",
    ],
)
def test_next_must_be_a_path_on_this_site(client: FlaskClient, target: str) -> None:
    body = assert_problem(
        client.get("/auth/login", query_string={"next": target}), 400, "invalid_next"
    )
    assert "Location" not in client.get("/auth/login", query_string={"next": target}).headers
    assert body["status"] == 400


def test_a_tampered_cookie_signs_nobody_in(client: FlaskClient, oidc: FakeOidcProvider) -> None:
    login(client, oidc, sub="u-1")
    cookie = client.get_cookie("booking_session")
    assert cookie is not None
    client.set_cookie("booking_session", cookie.value[:-4] + "AAAA")
    assert_problem(me(client), 401, "unauthorized")


# -- logout, CSRF --------------------------------------------------------------------------------


def test_logout_needs_the_csrf_token_then_ends_the_session(
    client: FlaskClient, oidc: FakeOidcProvider
) -> None:
    login(client, oidc, sub="u-1")
    token = csrf(client)
    assert_problem(client.post("/auth/logout"), 403, "csrf_failed")
    assert_problem(
        client.post(
            "/auth/logout", headers={"X-CSRF-Token": ("y" if token[0] == "x" else "x") + token[1:]}
        ),
        403,
        "csrf_failed",
    )
    assert me(client).status_code == 200  # refused: still signed in
    assert client.post("/auth/logout", headers={"X-CSRF-Token": token}).status_code == 204
    assert_problem(me(client), 401, "unauthorized")
    # Signed out, there is nothing to protect: logging out again is harmless.
    assert client.post("/auth/logout").status_code == 204


def test_the_csrf_token_may_come_as_a_form_field(
    client: FlaskClient, oidc: FakeOidcProvider
) -> None:
    login(client, oidc, sub="u-1")
    token = csrf(client)
    assert client.post("/auth/logout", data={"csrf_token": token}).status_code == 204
    assert_problem(me(client), 401, "unauthorized")


def test_admin_state_changes_by_cookie_need_the_token_bearer_requests_do_not(
    client: FlaskClient, oidc: FakeOidcProvider
) -> None:
    login(client, oidc, sub=OWNER)
    token = csrf(client)
    url = "/api/admin/bookings/1/cancel"
    assert_problem(client.post(url, json={}), 403, "csrf_failed")
    # Another session's token is no good either.
    other = client.application.test_client()
    login(other, oidc, sub=OWNER)
    assert_problem(
        client.post(url, json={}, headers={"X-CSRF-Token": csrf(other)}), 403, "csrf_failed"
    )
    # With the token the request passes authentication and reaches the use case.
    assert_problem(client.post(url, json={}, headers={"X-CSRF-Token": token}), 404, "not_found")
    # The admin token is judged alone: no CSRF token, even with the cookie present.
    assert_problem(
        client.post(url, json={}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}),
        404,
        "not_found",
    )
    assert_problem(
        client.post(url, json={}, headers={"Authorization": "Bearer wrong"}), 401, "unauthorized"
    )


# -- lifetimes -----------------------------------------------------------------------------------


def test_an_idle_session_ends(
    client: FlaskClient, oidc: FakeOidcProvider, clock: FixedClock
) -> None:
    login(client, oidc, sub="u-1")
    assert "Set-Cookie" not in me(client).headers  # nothing changed: no cookie re-sent
    for _ in range(3):  # activity keeps it alive past the idle limit (30 min here)
        clock.advance(timedelta(minutes=25))
        assert me(client).status_code == 200
    clock.advance(timedelta(minutes=31))
    assert_problem(me(client), 401, "unauthorized")
    clock.advance(timedelta(seconds=-60))  # and it stays ended
    assert_problem(me(client), 401, "unauthorized")


def test_a_session_ends_at_its_absolute_lifetime_whatever_the_activity(
    client: FlaskClient, oidc: FakeOidcProvider, clock: FixedClock
) -> None:
    login(client, oidc, sub="u-1")
    for _ in range(23):  # 23 x 20 min = 7 h 40 min, within the 8 h
        clock.advance(timedelta(minutes=20))
        assert me(client).status_code == 200
    clock.advance(timedelta(minutes=21))
    assert_problem(me(client), 401, "unauthorized")


def test_a_role_change_counts_at_once(
    client: FlaskClient, oidc: FakeOidcProvider, store: InMemoryStore
) -> None:
    login(client, oidc, sub="u-1")
    assert_problem(client.get("/api/admin/bookings"), 403, "forbidden")
    uow = store.unit_of_work()
    with uow:
        user = uow.users.get_by_open_id("u-1")
        assert user is not None
        assert user.id is not None
        uow.users.set_role(user.id, Role.ADMIN, None)
        uow.commit()
    assert client.get("/api/admin/bookings").status_code == 200


# -- configuration -------------------------------------------------------------------------------


def test_without_oauth_settings_login_is_a_clear_503_and_the_admin_token_works(
    store: InMemoryStore, clock: FixedClock
) -> None:
    client = _app(_settings(None), store.unit_of_work, clock).test_client()
    for path in ("/auth/login", "/auth/callback?code=x&state=y"):
        body = assert_problem(client.get(path), 503, "signin_not_configured")
        assert "OAUTH_ISSUER" in body["detail"]
    assert_problem(me(client), 401, "unauthorized")
    ok = client.get("/api/admin/bookings", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert ok.status_code == 200


def test_sign_in_not_configured_logs_one_warning_line_not_a_traceback(
    store: InMemoryStore, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    client = _app(_settings(None), store.unit_of_work, clock).test_client()
    with caplog.at_level("WARNING", logger="entrypoints.web.problems"):
        assert_problem(client.get("/auth/login"), 503, "signin_not_configured")
    (line,) = [r for r in caplog.records if r.name == "entrypoints.web.problems"]
    assert line.levelname == "WARNING"
    assert line.exc_info is None
    assert "signin_not_configured" in line.getMessage()


def test_an_unreachable_provider_is_a_503(store: InMemoryStore, clock: FixedClock) -> None:
    client = _app(_settings("http://127.0.0.1:9/realms/x"), store.unit_of_work, clock).test_client()
    body = assert_problem(client.get("/auth/login"), 503, "signin_unavailable")
    assert "127.0.0.1" not in str(body)


def test_a_discovery_document_for_another_issuer_is_refused(
    oidc: FakeOidcProvider, store: InMemoryStore, clock: FixedClock
) -> None:
    client = _app(_settings(oidc.issuer + "/"), store.unit_of_work, clock).test_client()
    assert begin(client).status_code == 302  # a trailing slash is the same issuer
    # /realms/alias answers with the document of /realms/test (OIDC Discovery 4.3 refuses it).
    alias = oidc.issuer.replace("/realms/test", "/realms/alias")
    client = _app(_settings(alias), store.unit_of_work, clock).test_client()
    body = assert_problem(client.get("/auth/login"), 503, "signin_unavailable")
    assert "another issuer" in body["detail"]
