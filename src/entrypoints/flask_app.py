"""The Flask application factory: ``create_app(deps)``; production runs it under gunicorn.

    BOOKING_ENV=production gunicorn -w 4 -b 0.0.0.0:3000 "entrypoints.flask_app:create_app()"

With ``BOOKING_ENV`` unset the app is production: it refuses to start without real Stripe
settings, SECRET_KEY and an https BASE_URL, naming everything that is missing.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from entrypoints.bootstrap import Deps, bootstrap
from entrypoints.logs import REQUEST_ID, configure_logging
from entrypoints.settings import Settings, SettingsError
from entrypoints.web import admin, admin_pages, api, calendar, monitoring, openapi, pages, payments
from entrypoints.web.auth import init_auth
from entrypoints.web.common import refuse_unsafe_text
from entrypoints.web.headers import install_security_headers
from entrypoints.web.ids import IdConverter
from entrypoints.web.limits import init_limiter
from entrypoints.web.problems import register_error_handlers

log = logging.getLogger("booking.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

# Requests larger than this are refused with 413 before a view reads them. JSON bodies of the
# API are far smaller (see web.api); Stripe's webhook events stay well under it.
MAX_REQUEST_BYTES = 256 * 1024


def create_app(deps: Deps | None = None, *, settings: Settings | None = None) -> Flask:
    """Build the app around ``deps`` (bootstrapped from the environment when not given)."""
    if deps is None:
        settings = settings or Settings.from_env()
        configure_logging(settings.log_level, fmt=settings.log_format)
        deps = bootstrap(settings)
        log.info("%s", startup_line(deps))
    if not deps.settings.secret_key:
        # bootstrap refuses production without one and generates one for development.
        raise SettingsError("SECRET_KEY is not set")
    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        SECRET_KEY=deps.settings.secret_key,
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if deps.settings.trusted_proxies:
        # The client's address is the one the Nth proxy from us saw; X-Forwarded-For entries
        # further left are whatever the client wrote. Without proxies the header is ignored.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=deps.settings.trusted_proxies
        )
    app.extensions["booking"] = deps
    app.url_map.converters["id"] = IdConverter
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(payments.bp)
    app.register_blueprint(calendar.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(admin_pages.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(monitoring.bp)
    init_auth(app, deps)
    offline = deps.extras.get("offline_checkout")
    if offline is not None:  # only ever built in development (bootstrap)
        from entrypoints.dev.offline_checkout import register

        register(app, offline)
    init_limiter(app, deps.settings)
    register_error_handlers(app)
    install_security_headers(app, deps.settings)
    _request_logging(app)
    monitoring.count_requests(app)
    app.before_request(refuse_unsafe_text)
    return app


def startup_line(deps: Deps, where: str | None = None) -> str:
    """One line naming the environment and what is live (no secrets, no credentials)."""
    live = deps.live
    return (
        f"booking service ({live.get('environment', deps.settings.env)})"
        + (f" on {where}" if where else "")
        + f" · database: {live.get('database')} · payments: {live.get('payments')} · "
        f"availability: {live.get('calendar')} · email: {live.get('email')}"
    )


def _request_logging(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        g.request_id_token = REQUEST_ID.set(g.request_id)

    @app.teardown_request
    def _forget(_error: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            REQUEST_ID.reset(token)

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        duration = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        log.info(
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round(duration, 2),
                "request_id": g.get("request_id"),
            },
        )
        return response
