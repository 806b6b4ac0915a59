"""Rate limits on booking creation, per client IP and per email (Flask-Limiter)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from functools import partial, wraps
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter, RequestLimit
from flask_limiter.util import get_remote_address

from entrypoints.settings import Settings
from entrypoints.web.common import silent_json

# The views these limits guard; both count only booking creation, not reads.
LIMITED_ENDPOINT = "api.create_booking"
# Link recovery mails a client: limited per IP (the core adds one mailing per address an hour).
RECOVER_ENDPOINT = "api.recover_links"

T = TypeVar("T")

# Set on ``flask.g`` (by mark_replayed) when an answer is a stored Idempotency-Key replay.
_REPLAYED = "booking_idempotent_replay"


def mark_replayed() -> None:
    """Tell the limits this request's answer is a stored replay: it creates no hold."""
    setattr(g, _REPLAYED, True)


def email_key(email: str, secret: str) -> str:
    """The per-email limit's key: a keyed hash of the normalised address, never the address.

    Flask-Limiter logs the key of every breach and stores it (in Redis, say); a keyed hash
    lets both count per address without either learning it.
    """
    normalised = email.strip().lower().encode("utf-8", "surrogatepass")
    digest = hmac.new(secret.encode(), b"ratelimit-email:" + normalised, hashlib.sha256)
    return "email:" + digest.hexdigest()[:32]


def _email_key() -> str:
    body = silent_json()
    client = body.get("client") if isinstance(body, dict) else None
    email = client.get("email") if isinstance(client, dict) else None
    if isinstance(email, str) and email.strip():
        return email_key(email, str(current_app.config["SECRET_KEY"]))
    return "ip:" + get_remote_address()


def _created_a_hold(response: Response) -> bool:
    """Only a new hold counts against an address: refusals and replays do not."""
    return response.status_code == 201 and not g.get(_REPLAYED, False)


def _retry_after(limit: RequestLimit) -> Response:
    """The 429's Retry-After (seconds until the window lets one more request through).

    Flask-Limiter's own headers are off (they put Retry-After on every answer, 201s included);
    this response only lends its header to the problem the error handler renders.
    """
    seconds = max(1, int(limit.reset_at - time.time()))
    return Response(status=429, headers={"Retry-After": str(seconds)})


def _off(value: str) -> bool:
    return value.strip() in ("", "0")


def init_limiter(app: Flask, settings: Settings) -> Limiter | None:
    """One limiter per app (its own storage), from RATELIMIT_* settings; "0" turns a limit off.

    The per-IP limit counts every booking request, refused ones included (they cost us work);
    the per-email limit counts created holds only, so nobody can lock a client out by sending
    bad requests with their address. Storage is memory by default; with several processes set
    RATELIMIT_STORAGE_URI to Redis (redis://host:6379) so they count together. Breaches answer
    429 with Retry-After; no other answer carries rate-limit headers.
    """
    per_ip, per_email = settings.ratelimit_bookings_per_ip, settings.ratelimit_bookings_per_email
    per_ip_recover = settings.ratelimit_recover_per_ip
    if _off(per_ip) and _off(per_email) and _off(per_ip_recover):
        return None
    limiter = Limiter(
        key_func=get_remote_address,
        app=app,
        storage_uri=settings.ratelimit_storage_uri,
        headers_enabled=False,
        strategy="moving-window",
        on_breach=_retry_after,
    )
    view: Any = app.view_functions.get(LIMITED_ENDPOINT)
    if view is None:
        raise RuntimeError(f"rate-limited view {LIMITED_ENDPOINT} is not registered yet")
    limited: set[str] = set()  # the views a limit wraps
    if not _off(per_ip):
        view = limiter.limit(per_ip, scope="bookings-per-ip")(view)
        limited.add(LIMITED_ENDPOINT)
    if not _off(per_email):
        view = limiter.limit(
            per_email,
            key_func=_email_key,
            scope="bookings-per-email",
            deduct_when=_created_a_hold,
        )(view)
        limited.add(LIMITED_ENDPOINT)
    app.view_functions[LIMITED_ENDPOINT] = view
    recover: Any = app.view_functions.get(RECOVER_ENDPOINT)
    if recover is not None and not _off(per_ip_recover):
        app.view_functions[RECOVER_ENDPOINT] = limiter.limit(
            per_ip_recover, scope="recover-per-ip"
        )(recover)
        limited.add(RECOVER_ENDPOINT)
    # Flask-Limiter also checks every request in a before_request hook, for application-wide
    # and default limits. There are none here (the wrappers above check their own views), so
    # that hook would only cost every other request its time.
    app.before_request_funcs[None].remove(limiter._check_request_limit)
    _only_for_limited_views(app, limiter, limited)
    app.extensions["booking_limiter"] = limiter
    return limiter


def _only_for_limited_views(app: Flask, limiter: Limiter, limited: set[str]) -> None:
    """Flask-Limiter's after-request hook (deductions, headers) and its teardown (its request
    context) run for every request; only the ``limited`` views (those a limit wraps) have
    anything for them to do."""

    def mine(hook: Any) -> bool:
        owner = hook.args[0] if isinstance(hook, partial) and hook.args else None
        return limiter in (owner, getattr(hook, "__self__", None))

    def guarded(hook: Callable[[T], T]) -> Callable[[T], T]:
        @wraps(hook)
        def run(arg: T) -> T:
            return hook(arg) if request.endpoint in limited else arg

        return run

    for hooks in (app.after_request_funcs[None], app.teardown_request_funcs[None]):
        hooks[:] = [guarded(hook) if mine(hook) else hook for hook in hooks]
