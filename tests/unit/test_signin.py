"""Signing in in the core (on the memory adapters), the ``next`` rule and the sign-in settings."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.memory import FixedClock, InMemoryStore
from booking_core.errors import UserNotFound, ValidationFailed
from booking_core.model import Role, User
from booking_core.signin import SignIn, current_user, promote_user, sign_in
from entrypoints.settings import Settings, SettingsError
from entrypoints.web.auth import InvalidNext, safe_next

from .support import NOW


def _sign_in(store: InMemoryStore, clock: FixedClock, open_id: str, **kw: str) -> User:
    return sign_in(
        SignIn(open_id=open_id, **kw),
        uow=store.unit_of_work(),
        clock=clock,
        owner_open_id="the-owner",
    )


def test_a_first_sign_in_creates_a_user_and_the_owner_is_admin(
    store: InMemoryStore, clock: FixedClock
) -> None:
    user = _sign_in(store, clock, "someone", name="Some One", email="s@example.com")
    owner = _sign_in(store, clock, "the-owner")
    assert (user.role, user.name, user.email, user.last_signed_in) == (
        Role.USER,
        "Some One",
        "s@example.com",
        NOW,
    )
    assert owner.role is Role.ADMIN
    assert user.id != owner.id
    assert current_user(owner.id or 0, uow=store.unit_of_work()) is not None
    assert current_user(10**6, uow=store.unit_of_work()) is None


def test_signing_in_again_updates_the_profile_and_keeps_the_user(
    store: InMemoryStore, clock: FixedClock
) -> None:
    first = _sign_in(store, clock, "someone", name="Old", email="old@example.com")
    clock.advance(timedelta(days=2))
    again = _sign_in(store, clock, "someone", name="New")
    assert again.id == first.id
    assert (again.name, again.email, again.last_signed_in) == ("New", None, NOW + timedelta(days=2))
    assert len(store.users) == 1


def test_a_promoted_admin_stays_admin_after_signing_in_again(
    store: InMemoryStore, clock: FixedClock
) -> None:
    _sign_in(store, clock, "someone", email="Grace@Example.com")
    promoted = promote_user("grace@example.com", uow=store.unit_of_work())
    assert promoted.role is Role.ADMIN
    assert _sign_in(store, clock, "someone", email="grace@example.com").role is Role.ADMIN


def test_promote_names_what_is_wrong(store: InMemoryStore, clock: FixedClock) -> None:
    with pytest.raises(UserNotFound, match=r"nobody@example\.com"):
        promote_user("nobody@example.com", uow=store.unit_of_work())
    with pytest.raises(UserNotFound):
        promote_user("  ", uow=store.unit_of_work())
    _sign_in(store, clock, "a", email="shared@example.com")
    _sign_in(store, clock, "b", email="SHARED@example.com")
    with pytest.raises(ValidationFailed) as refused:
        promote_user("shared@example.com", uow=store.unit_of_work())
    assert refused.value.errors == {"email": ["is shared by several users"]}
    assert {u.role for u in store.users.values()} == {Role.USER}


def test_an_identity_without_a_subject_is_refused(store: InMemoryStore, clock: FixedClock) -> None:
    with pytest.raises(ValidationFailed):
        _sign_in(store, clock, "  ")
    assert store.users == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, "/"), ("", "/"), ("/admin", "/admin"), ("/p/1?week=2#slots", "/p/1?week=2#slots")],
)
def test_next_accepts_paths_of_this_site(raw: str | None, expected: str) -> None:
    assert safe_next(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "//evil.example",
        "/\\evil.example",
        "\\/evil.example",
        "https://evil.example",
        "HTTPS://evil.example",
        "http:/evil.example",
        "mailto:a@evil.example",
        "admin",
        "/\r\n/evil.example",
        "/\x00",
        "/" + "a" * 2001,
    ],
)
def test_next_refuses_anything_else(raw: str) -> None:
    with pytest.raises(InvalidNext):
        safe_next(raw)


def test_the_seed_names_of_the_oauth_settings_work() -> None:
    settings = Settings.from_mapping(
        {
            "MANUS_OAUTH_CLIENT_ID": "seed-client",
            "MANUS_OAUTH_CLIENT_SECRET": "seed-secret",
            "OAUTH_ISSUER": "https://id.example/realms/x",
        }
    )
    assert (settings.oauth_client_id, settings.oauth_client_secret) == (
        "seed-client",
        "seed-secret",
    )
    assert settings.signin_configured
    assert "seed-secret" not in repr(settings)
    assert not Settings.from_mapping({"OAUTH_ISSUER": "https://id.example"}).signin_configured


def test_session_lifetimes_are_settings() -> None:
    settings = Settings.from_mapping({"SESSION_IDLE_MINUTES": "15", "SESSION_MAX_HOURS": "4"})
    assert (settings.session_idle_minutes, settings.session_max_hours) == (15, 4)
    default = Settings.from_mapping({})
    assert (default.session_idle_minutes, default.session_max_hours) == (120, 12)
    with pytest.raises(SettingsError, match="SESSION_IDLE_MINUTES"):
        Settings.from_mapping({"SESSION_IDLE_MINUTES": "0"})
    with pytest.raises(SettingsError, match="SESSION_MAX_HOURS"):
        Settings.from_mapping({"SESSION_MAX_HOURS": "soon"})
