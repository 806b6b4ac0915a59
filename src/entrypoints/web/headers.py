"""Security headers on every answer: CSP on HTML, Referrer-Policy, nosniff, HSTS, no-store."""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.serving import WSGIRequestHandler

from entrypoints.settings import Settings

# Pages load nothing from elsewhere and run no inline script or style (style sheets and
# scripts are their own files), and no other site may frame them (clickjacking on Pay).
CONTENT_SECURITY_POLICY = "default-src 'self'; frame-ancestors 'none'"

# Two years, as the HSTS preload list asks; only sent in production (https is required there).
STRICT_TRANSPORT_SECURITY = "max-age=63072000; includeSubDomains"

# Answers that carry nothing personal, so shared caches may keep them. Anything else -- a
# booking, its manage token, the admin API, the success and cancel pages (their URL holds the
# checkout session), the checkout, idempotent replays, problems, routes added later -- is
# ``no-store``: a default that fails closed.
PUBLIC_ENDPOINTS = frozenset(
    {
        "api.healthz",
        "api.readyz",
        "api.list_practitioners",
        "api.get_practitioner",
        "api.availability",
        "api.trpc_availability",
        "docs.openapi_json",
        "docs.docs_page",
        "static",
    }
)

SERVER_NAME = "booking"


def _is_public(response: Response) -> bool:
    if request.endpoint not in PUBLIC_ENDPOINTS or response.status_code >= 400:
        return False
    # A credential makes the answer someone's, whatever the route.
    return "Authorization" not in request.headers and "Cookie" not in request.headers


def install_security_headers(app: Flask, settings: Settings) -> None:
    """Add the headers to every answer the app gives, errors and static files included."""
    production = settings.is_production

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        headers["X-Content-Type-Options"] = "nosniff"
        # URLs carry checkout session ids and tokens: never hand them to another site.
        headers["Referrer-Policy"] = "no-referrer"
        if response.mimetype == "text/html":
            headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
            headers["X-Frame-Options"] = "DENY"  # frame-ancestors for browsers without CSP 2
        if production:
            headers["Strict-Transport-Security"] = STRICT_TRANSPORT_SECURITY
        if not _is_public(response):
            headers["Cache-Control"] = "no-store"
            headers.pop("Expires", None)
            headers.pop("Last-Modified", None)
            headers.pop("ETag", None)
        return response


class QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's development server without its versions in ``Server``.

    http.server sends ``Server: Werkzeug/3.1.9 Python/3.11.2`` from ``version_string()`` on
    every answer, whatever headers the app set; gunicorn (>= 20) sends a bare ``gunicorn``.
    """

    def version_string(self) -> str:
        return SERVER_NAME
