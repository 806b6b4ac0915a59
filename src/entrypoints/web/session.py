"""The signed session cookie: who is signed in, its idle and absolute lifetime, and CSRF.

Flask's session is a cookie signed with SECRET_KEY (HttpOnly, SameSite=Lax, Secure in
production). A signed-in session holds the user id, the time of the sign-in, the time of the
last request and a random CSRF token bound to that sign-in. The user is read from the database on
every request, so a changed role counts at once.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, cast

from flask import Flask, Request, current_app, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from booking_core.errors import Forbidden
from booking_core.model import User
from booking_core.signin import current_user

if TYPE_CHECKING:
    from entrypoints.bootstrap import Deps

SESSION_COOKIE = "booking_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORMS = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_KEYS = ("uid", "csrf", "auth_at", "seen_at")
# The last-request time is rewritten at most this often, so not every answer sets a cookie.
_TOUCH_SECONDS = 60
# A sign-in time this far in the future (clock moved back, forged cookie) ends the session.
_CLOCK_SKEW_SECONDS = 300
_UNSET = object()


class CsrfFailed(Forbidden):
    code = "csrf_failed"
    title = "CSRF token missing or wrong"


class _CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, minus the work for a request that sends no cookie.

    Flask builds a signing serializer on every request before it looks for the cookie; most
    requests (the JSON API, a client's pages) carry none, so they get their empty session first.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


def configure_session(app: Flask, deps: Deps) -> None:
    """Cookie attributes and the absolute lifetime (the cookie's Max-Age)."""
    settings = deps.settings
    app.session_interface = _CookieSessions()
    app.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_max_hours),
        # Flask would re-send a permanent session's cookie on every answer; ours changes only
        # when the session does (sign-in, sign-out, the last-request time once a minute).
        SESSION_REFRESH_EACH_REQUEST=False,
    )


def _deps() -> Deps:
    return current_app.extensions["booking"]  # type: ignore[no-any-return]


def _now() -> float:
    return _deps().clock.now().timestamp()


def start_session(user: User) -> None:
    """Sign ``user`` in: a fresh session (nothing kept from before) with a new CSRF token."""
    now = _now()
    session.clear()
    session.permanent = True
    session.update(uid=user.id, csrf=secrets.token_urlsafe(32), auth_at=now, seen_at=now)
    g._session_user = user


def end_session() -> None:
    """Sign out (what else the session holds, such as a sign-in in progress, stays)."""
    for key in _KEYS:
        session.pop(key, None)
    g._session_user = None


def session_user() -> User | None:
    """The signed-in user, or None (not signed in, idle too long, too old, user gone)."""
    cached = g.get("_session_user", _UNSET)
    if cached is not _UNSET:
        return cast("User | None", cached)
    user = _load()
    g._session_user = user
    return user


def _load() -> User | None:
    uid, auth_at, seen_at = (session.get(k) for k in ("uid", "auth_at", "seen_at"))
    if (
        not isinstance(uid, int)
        or not isinstance(auth_at, int | float)
        or not isinstance(seen_at, int | float)
    ):
        if any(k in session for k in _KEYS):
            end_session()
        return None
    settings = _deps().settings
    now = _now()
    if (
        now - auth_at > settings.session_max_hours * 3600
        or now - seen_at > settings.session_idle_minutes * 60
        or auth_at - now > _CLOCK_SKEW_SECONDS
    ):
        end_session()
        return None
    user = current_user(uid, uow=_deps().uow())
    if user is None:
        end_session()
        return None
    if now - seen_at >= _TOUCH_SECONDS:
        session["seen_at"] = now
    return user


def csrf_token() -> str | None:
    """The signed-in session's CSRF token (None when nobody is signed in)."""
    if session_user() is None:
        return None
    token = session.get("csrf")
    return token if isinstance(token, str) else None


def cookie_user() -> User | None:
    """The user the cookie authenticates for this request; checks CSRF on state changes.

    Raises CsrfFailed when a signed-in request other than GET/HEAD/OPTIONS lacks the session's
    token in the ``X-CSRF-Token`` header or the ``csrf_token`` form field.
    """
    user = session_user()
    if user is not None and request.method not in SAFE_METHODS:
        check_csrf()
    return user


def check_csrf() -> None:
    expected = session.get("csrf")
    sent = request.headers.get(CSRF_HEADER)
    if not sent and request.mimetype in _FORMS:
        sent = request.form.get(CSRF_FIELD)
    if not (isinstance(expected, str) and expected and sent):
        raise CsrfFailed(f"send the token of GET /api/me in the {CSRF_HEADER} header")
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        raise CsrfFailed(f"the {CSRF_HEADER} token does not belong to this session")
