"""What every view needs: the app's dependencies, a strict JSON body, the caller's credentials."""

from __future__ import annotations

import hmac
import json
import math
from typing import Any

from flask import current_app, g, request

from booking_core import usecases as uc
from booking_core.access import Actor
from booking_core.errors import (
    BadRequest,
    InvalidPayload,
    InvalidSignature,
    Unauthorized,
    ValidationFailed,
)
from entrypoints.bootstrap import Deps
from entrypoints.web.session import cookie_user

# JSON bodies of the API are small; anything larger is refused before it is parsed.
MAX_JSON_BYTES = 16 * 1024
# No request of ours nests deeper than this (a Stripe event is about 6 levels deep).
MAX_JSON_DEPTH = 32


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


class UnsafeJson(ValueError):
    """The text is not JSON we accept: malformed, too deep, a lone surrogate, a huge number."""


def load_json(raw: bytes | str, *, finite_only: bool = False) -> Any:
    """JSON text as Python values, refusing what would crash code further on.

    Refused (``UnsafeJson``): malformed JSON or UTF-8, nesting deeper than ``MAX_JSON_DEPTH``,
    strings or keys with a lone surrogate (they fail when encoded as UTF-8 later), integers with
    more digits than Python converts, and with ``finite_only`` also NaN, Infinity, floats
    that overflow (``1e400``) and integers beyond 64 bits. Without ``finite_only`` those reach
    the schema as numbers, which refuses them field by field.
    """

    def finite(text: str) -> float:
        value = float(text)
        if finite_only and not math.isfinite(value):
            raise UnsafeJson("the number is out of range")
        return value

    def integer(text: str) -> int:
        value = int(text)
        if finite_only and not -(2**63) <= value < 2**63:
            raise UnsafeJson("the number is out of range")
        return value

    def constant(text: str) -> float:
        if finite_only:
            raise UnsafeJson(f"{text} is not a JSON number")
        return float(text)

    try:
        data = json.loads(raw, parse_float=finite, parse_int=integer, parse_constant=constant)
    except UnsafeJson:
        raise
    except RecursionError as exc:  # thousands of nested arrays: deeper than the parser goes
        raise UnsafeJson(f"nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:
        raise UnsafeJson("not valid JSON") from exc
    _check_tree(data)
    return data


def _check_tree(data: Any) -> None:
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise UnsafeJson(f"nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_text(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)


def _check_text(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnsafeJson("a string holds a lone surrogate") from exc


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
    try:
        data = load_json(raw)
    except UnsafeJson as exc:
        raise BadRequest(f"the body is not acceptable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def silent_json() -> Any:
    """The body as JSON, or None when it is not JSON we accept (see ``load_json``)."""
    if not request.is_json:
        return None
    try:
        return load_json(request.get_data(cache=True))
    except UnsafeJson:
        return None


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def is_admin_token(token: str | None) -> bool:
    expected = deps().settings.admin_api_token
    if not token or not expected:
        return False
    return hmac.compare_digest(token.encode(), expected.encode())


def require_admin() -> None:
    """Admins send ``Authorization: Bearer <ADMIN_API_TOKEN or an API token>`` or are signed in
    as an admin. Raises Unauthorized, Forbidden (not an admin), CsrfFailed (see current_actor).
    """
    current_actor().require_admin()


def current_actor() -> Actor:
    """Who is asking: a bearer token (ADMIN_API_TOKEN or an issued API token; judged alone, no
    cookie, no CSRF) or the signed-in user (CSRF checked on state changes).

    Raises Unauthorized (no credential, or a bearer token that is neither), CsrfFailed. What
    the actor may do is for the use cases to decide.
    """
    cached = g.get("_actor")
    if isinstance(cached, Actor):
        return cached
    token = bearer_token()
    if token is not None:
        actor = uc.actor_for_bearer(
            token, admin_token=deps().settings.admin_api_token, uow=deps().uow()
        )
        if actor is None:
            raise Unauthorized("the token is not valid here")
    else:
        user = cookie_user()
        if user is None:
            raise Unauthorized(
                "send Authorization: Bearer <admin token>, or sign in at /auth/login"
            )
        actor = Actor.for_user(user)
    g._actor = actor
    return actor


def request_id() -> str | None:
    value = g.get("request_id")
    return value if isinstance(value, str) else None


def query_args() -> dict[str, str]:
    """The query string as one value per name; a name given twice is a 422 naming it."""
    params: dict[str, str] = {}
    for key in request.args:
        values = request.args.getlist(key)
        if len(values) > 1:
            raise ValidationFailed(f"{key} given twice", errors={key: ["must be given once"]})
        params[key] = values[0]
    return params


def refuse_unsafe_text() -> None:
    """Before every view: no query parameter or path segment with a control character.

    A NUL byte reaches PostgreSQL as an error, other controls end up in logs and pages; no
    parameter of ours needs any of them. Werkzeug decodes invalid UTF-8 as U+FFFD, so no lone
    surrogate comes from a URL, but the check covers them too.
    """
    if request.blueprint == "auth":
        # Sign-in judges its own parameters (``next`` is a 400 invalid_next, the callback's go
        # to the provider's library) and never hands them to the database.
        return
    errors: dict[str, list[str]] = {}
    items = [(k, v) for k, values in request.args.lists() for v in values]
    items += [(k, v) for k, v in (request.view_args or {}).items() if isinstance(v, str)]
    for key, value in items:
        if _unsafe(key) or _unsafe(value):
            errors.setdefault(_printable(key), []).append("must not contain control characters")
    if errors:
        raise ValidationFailed("the request's parameters hold control characters", errors=errors)


def _unsafe(text: str) -> bool:
    return any(ord(c) < 32 or 127 <= ord(c) < 160 or 0xD800 <= ord(c) <= 0xDFFF for c in text)


def _printable(text: str) -> str:
    return "".join(c if not _unsafe(c) else "?" for c in text)


def check_webhook_body(payload: bytes, signature: str | None) -> None:
    """Refuse, before a gateway parses it, what no gateway should parse.

    An unsigned delivery is 400 invalid_signature (as the gateways answer it); a body that is
    not a JSON object, is nested too deep, or holds a non-finite or overflowing number or a
    lone surrogate is 400 invalid_payload.
    """
    if not signature:
        raise InvalidSignature("the signature header is missing")
    try:
        data = load_json(payload, finite_only=True)
    except UnsafeJson as exc:
        raise InvalidPayload(f"the webhook body is not acceptable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidPayload("the webhook body is not a JSON object")
