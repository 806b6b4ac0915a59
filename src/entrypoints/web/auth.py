"""Sign-in with any OpenID Connect provider (Authlib): /auth/login, /auth/callback, logout, me.

Authorization code flow with PKCE (S256), state and nonce, the provider found through
``{OAUTH_ISSUER}/.well-known/openid-configuration`` and the ID token verified against its JWKS
(signature, issuer, audience = our client id, expiry, nonce).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client.errors import MismatchingStateError, OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Blueprint, Flask, Response, current_app, jsonify, redirect, request, session
from joserfc.errors import JoseError
from werkzeug.wrappers import Response as WerkzeugResponse

from booking_core.errors import BadRequest, ExternalServiceError, SignInFailed, Unauthorized
from booking_core.signin import SignIn, sign_in
from entrypoints.web import schemas as sc
from entrypoints.web.common import deps
from entrypoints.web.openapi import operation, problem
from entrypoints.web.session import (
    configure_session,
    cookie_user,
    csrf_token,
    end_session,
    session_user,
    start_session,
)

if TYPE_CHECKING:
    from entrypoints.bootstrap import Deps

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

_CLIENT = "booking.oidc"
_NEXT = "signin_next"
# Seconds of clock difference with the provider tolerated on the ID token's exp and iat.
_LEEWAY = 60
_TIMEOUT = (3.05, 10.0)
# A path of our own: one slash then a non-slash, no backslash, no control character or space
# (browsers drop tabs and newlines, so "/\t/evil.example" would become "//evil.example").
_LOCAL_PATH = re.compile(r"^/(?![/\\])[^\\\x00-\x20\x7f]*$")


class SignInNotConfigured(ExternalServiceError):
    code = "signin_not_configured"
    title = "Sign-in is not configured"
    public_detail = True  # names the missing settings, never their values


class SignInUnavailable(ExternalServiceError):
    code = "signin_unavailable"
    title = "The sign-in provider did not answer"
    public_detail = True  # raised with fixed sentences only


class InvalidNext(BadRequest):
    code = "invalid_next"
    title = "next must be a path on this site"


def init_auth(app: Flask, deps: Deps) -> None:
    """Session cookie settings, the OpenID client (when configured) and the routes."""
    configure_session(app, deps)
    settings = deps.settings
    if settings.signin_configured:
        oauth = OAuth(app)
        issuer = (settings.oauth_issuer or "").rstrip("/")
        app.extensions[_CLIENT] = oauth.register(
            "oidc",
            client_id=settings.oauth_client_id,
            client_secret=settings.oauth_client_secret,
            server_metadata_url=f"{issuer}/.well-known/openid-configuration",
            client_kwargs={
                "scope": "openid email profile",
                "code_challenge_method": "S256",
                "default_timeout": _TIMEOUT,
            },
        )
    app.register_blueprint(bp)
    # Pages put it in <meta name="csrf-token" content="{{ csrf_token() or '' }}">.
    app.context_processor(lambda: {"csrf_token": csrf_token})


def safe_next(raw: str | None) -> str:
    """``next`` when it is a path on this site; raises InvalidNext for anything else."""
    if raw is None or raw == "":
        return "/"
    parts = urlsplit(raw)
    if len(raw) > 2000 or parts.scheme or parts.netloc or not _LOCAL_PATH.match(raw):
        raise InvalidNext("next must be a path on this site, such as /admin")
    return raw


def _client() -> Any:
    client = current_app.extensions.get(_CLIENT)
    if client is None:
        raise SignInNotConfigured(
            "set OAUTH_ISSUER, OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET to sign in; the admin "
            "API still accepts Authorization: Bearer <ADMIN_API_TOKEN>"
        )
    return client


def _metadata(client: Any) -> dict[str, Any]:
    """The provider's discovery document, checked to be the configured issuer's."""
    try:
        metadata: dict[str, Any] = client.load_server_metadata()
    except (requests.RequestException, ValueError) as exc:
        log.warning("OpenID discovery failed: %s", type(exc).__name__)
        raise SignInUnavailable("the sign-in provider's discovery document is unavailable") from exc
    expected = (deps().settings.oauth_issuer or "").rstrip("/")
    if str(metadata.get("issuer", "")).rstrip("/") != expected:
        # OpenID Connect Discovery 1.0 section 4.3: the issuer must be the one asked.
        client.server_metadata.pop("_loaded_at", None)
        raise SignInUnavailable("the sign-in provider's discovery document names another issuer")
    return metadata


_SIGNIN_DOWN = problem("signin_not_configured / signin_unavailable")


@bp.get("/auth/login")
@operation(
    "Sign in: 302 to the OpenID provider (code + PKCE S256, state, nonce)",
    query=sc.LoginQuery,
    responses={
        302: ("to the provider", None),
        400: problem("invalid_next"),
        503: _SIGNIN_DOWN,
    },
)
def login() -> Response:
    """302 to the provider; ``next`` (a path on this site) is where the callback returns."""
    target = safe_next(request.args.get("next"))
    client = _client()
    _metadata(client)
    session[_NEXT] = target
    try:
        return client.authorize_redirect(redirect_uri=_redirect_uri())  # type: ignore[no-any-return]
    except requests.RequestException as exc:
        raise SignInUnavailable("the sign-in provider did not answer") from exc


def _redirect_uri() -> str:
    return f"{deps().settings.base_url}/auth/callback"


@bp.get("/auth/callback")
@operation(
    "The provider's answer: checked, the user upserted, the session cookie set",
    query=sc.CallbackQuery,
    responses={
        302: ("to next, signed in", None),
        400: problem("signin_failed (state, nonce or ID token refused)"),
        503: _SIGNIN_DOWN,
    },
)
def callback() -> WerkzeugResponse:
    """Check state and nonce, verify the ID token, upsert the user, start the session."""
    client = _client()
    metadata = _metadata(client)
    target = session.pop(_NEXT, "/")
    end_session()  # whoever was signed in, nobody is until this answer is verified
    try:
        token = client.authorize_access_token(
            claims_options={
                "iss": {"essential": True, "values": [metadata["issuer"]]},
                "aud": {"essential": True, "values": [deps().settings.oauth_client_id]},
                "exp": {"essential": True},
            },
            leeway=_LEEWAY,
        )
    except MismatchingStateError as exc:
        raise SignInFailed("the sign-in does not match this browser's (state); try again") from exc
    except OAuthError as exc:
        log.info("sign-in refused by the provider: %s", exc.error)
        raise SignInFailed("the provider refused the sign-in") from exc
    except requests.RequestException as exc:
        log.warning("token endpoint failed: %s", type(exc).__name__)
        raise SignInUnavailable("the sign-in provider did not answer") from exc
    except (AuthlibBaseError, JoseError, ValueError, KeyError) as exc:
        log.warning("ID token refused: %s", type(exc).__name__)
        raise SignInFailed(
            "the ID token was refused (signature, issuer, audience, expiry or nonce)"
        ) from exc
    claims = token.get("userinfo")
    if not claims or not claims.get("sub"):
        raise SignInFailed("the provider sent no ID token")
    d = deps()
    user = sign_in(
        SignIn(open_id=str(claims["sub"]), name=_name(claims), email=_email(claims)),
        uow=d.uow(),
        clock=d.clock,
        owner_open_id=d.settings.owner_open_id,
    )
    start_session(user)
    return redirect(safe_next(target), 302)


def _name(claims: dict[str, Any]) -> str | None:
    for key in ("name", "preferred_username", "nickname"):
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:200]
    return None


def _email(claims: dict[str, Any]) -> str | None:
    """The email claim, unless the provider says it is unverified (it names an admin to promote)."""
    value = claims.get("email")
    if not isinstance(value, str) or not value.strip() or claims.get("email_verified") is False:
        return None
    return value.strip()[:320]


@bp.post("/auth/logout")
@operation(
    "Sign out (send X-CSRF-Token while signed in)",
    description="Needs no session: without one it answers 204 too.",
    responses={204: ("signed out", None), 403: problem("csrf_failed")},
)
def logout() -> Response:
    """End the session (the CSRF token is required while signed in); 204 either way."""
    cookie_user()
    end_session()
    session.clear()
    return Response(status=204)


@bp.get("/api/me")
@operation(
    "The signed-in user, with the CSRF token for state-changing requests",
    session=True,
    responses={200: ("the user", sc.MeOut), 401: problem("unauthorized: not signed in")},
)
def me() -> Response:
    user = session_user()
    if user is None:
        raise Unauthorized("not signed in; GET /auth/login")
    body = sc.MeOut(
        id=user.id or 0,
        open_id=user.open_id,
        name=user.name,
        email=user.email,
        role=user.role.value,
        practitioner_id=user.practitioner_id,
        last_signed_in=user.last_signed_in,
        csrf_token=csrf_token() or "",  # signed in (just checked), so always a token
    )
    response = jsonify(body.body())
    response.headers["Cache-Control"] = "no-store"
    return response
