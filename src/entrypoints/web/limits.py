"""Rate limits on booking creation, per client IP and per email (Flask-Limiter)."""

from __future__ import annotations

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from entrypoints.settings import Settings
from entrypoints.web.common import silent_json

# The views these limits guard; both count only booking creation, not reads.
LIMITED_ENDPOINT = "api.create_booking"


def _email_key() -> str:
    body = silent_json()
    client = body.get("client") if isinstance(body, dict) else None
    email = client.get("email") if isinstance(client, dict) else None
    if isinstance(email, str) and email.strip():
        return "email:" + email.strip().lower()
    return "ip:" + get_remote_address()


def _off(value: str) -> bool:
    return value.strip() in ("", "0")


def init_limiter(app: Flask, settings: Settings) -> Limiter | None:
    """One limiter per app (its own storage), from RATELIMIT_* settings; "0" turns a limit off.

    Storage is memory by default; with several processes set RATELIMIT_STORAGE_URI to Redis
    (redis://host:6379) so they count together. Breaches answer 429 with Retry-After.
    """
    per_ip, per_email = settings.ratelimit_bookings_per_ip, settings.ratelimit_bookings_per_email
    if _off(per_ip) and _off(per_email):
        return None
    limiter = Limiter(
        key_func=get_remote_address,
        app=app,
        storage_uri=settings.ratelimit_storage_uri,
        headers_enabled=True,
        strategy="moving-window",
    )
    view = app.view_functions.get(LIMITED_ENDPOINT)
    if view is None:
        raise RuntimeError(f"rate-limited view {LIMITED_ENDPOINT} is not registered yet")
    if not _off(per_ip):
        view = limiter.limit(per_ip, scope="bookings-per-ip")(view)
    if not _off(per_email):
        view = limiter.limit(per_email, key_func=_email_key, scope="bookings-per-email")(view)
    app.view_functions[LIMITED_ENDPOINT] = view
    app.extensions["booking_limiter"] = limiter
    return limiter
