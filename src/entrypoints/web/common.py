"""What every view needs: the app's dependencies, a strict JSON body, the caller's credentials."""

from __future__ import annotations

import hmac
from typing import Any

from flask import current_app, request

from booking_core.errors import BadRequest, Forbidden, Unauthorized
from entrypoints.bootstrap import Deps
from entrypoints.web.session import cookie_user

# JSON bodies of the API are small; anything larger is refused before it is parsed.
MAX_JSON_BYTES = 16 * 1024


class UnsupportedMediaType(BadRequest):
    http_status = 415
    code = "unsupported_media_type"
    title = "Send the body as application/json"


class PayloadTooLarge(BadRequest):
    http_status = 413
    code = "payload_too_large"
    title = "Request body too large"


def deps() -> Deps:
    return current_app.extensions["booking"]  # type: ignore[no-any-return]


def json_body(*, optional: bool = False) -> dict[str, Any]:
    """The request's JSON object; raises BadRequest-family errors for anything else.

    ``optional``: an empty body counts as ``{}`` (for endpoints whose fields are all optional).
    """
    raw = request.get_data(cache=True)
    if len(raw) > MAX_JSON_BYTES:
        raise PayloadTooLarge(f"at most {MAX_JSON_BYTES} bytes of JSON")
    if optional and not raw.strip():
        return {}
    if not request.is_json:
        raise UnsupportedMediaType("the Content-Type must be application/json")
    data = silent_json()
    if data is None:
        raise BadRequest("the body is not valid JSON")
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def silent_json() -> Any:
    """The body as JSON, or None when it is not JSON (including nesting too deep to parse)."""
    try:
        return request.get_json(silent=True)
    except RecursionError:  # e.g. 5000 nested arrays: silent=True catches only ValueError
        return None


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def is_admin_token(token: str | None) -> bool:
    expected = deps().settings.admin_api_token
    return bool(token and expected) and hmac.compare_digest(
        token.encode(), (expected or "").encode()
    )


def require_admin() -> None:
    """Admins send ``Authorization: Bearer <ADMIN_API_TOKEN>`` or are signed in as an admin.

    A bearer token is judged alone (no cookie, no CSRF); a signed-in session must carry its CSRF
    token on state changes. Raises Unauthorized (no or a bad credential), Forbidden (signed in,
    not an admin), CsrfFailed.
    """
    token = bearer_token()
    if token is not None:
        if not is_admin_token(token):
            raise Unauthorized("the admin token is not valid")
        return
    user = cookie_user()
    if user is None:
        raise Unauthorized("send Authorization: Bearer <admin token>, or sign in at /auth/login")
    if not user.is_admin:
        raise Forbidden("this needs an admin")


def path_id(value: int) -> int:
    """Ids in paths come through Flask's int converter; guard the database's integer range."""
    if not 1 <= value <= 2**31 - 1:
        raise BadRequest("ids are positive integers below 2^31")
    return value
