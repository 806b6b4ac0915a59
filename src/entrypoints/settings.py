"""Settings from the environment and ``.env`` / ``.env.local`` files; read only by bootstrap."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from attrs import field, frozen
from dotenv import dotenv_values

from booking_core.model import CalendarLink

_TRUTHY = {"1", "true", "yes", "on"}
_HOUR = 3_600_000  # ms


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable, never its value."""


def _int(
    env: Mapping[str, str], name: str, default: int, *, low: int = 0, high: int = 10**9
) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a whole number") from exc
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}")
    return value


def _log_format(value: str | None) -> str:
    chosen = (value or "json").strip().lower()
    if chosen not in ("json", "text"):
        raise SettingsError(f"LOG_FORMAT must be json or text, not {chosen[:20]!r}")
    return chosen


def _calendar_links(env: Mapping[str, str]) -> dict[int, CalendarLink]:
    """The seed's CALCOM_USER_ID_<n> / CALCOM_EVENT_TYPE_<n> mapping for practitioner <n>."""
    links: dict[int, CalendarLink] = {}
    for key, value in env.items():
        match = re.fullmatch(r"CALCOM_EVENT_TYPE_(\d+)", key)
        if match and value.strip():
            n = int(match.group(1))
            user = env.get(f"CALCOM_USER_ID_{n}", "").strip() or None
            username = env.get(f"CALCOM_USERNAME_{n}", "").strip() or user
            links[n] = CalendarLink(event_type=value.strip(), user=user, username=username)
    return dict(sorted(links.items()))


@frozen(kw_only=True)
class Settings:
    """Every setting the service reads; ``.env.example`` documents each one.

    Each default is written here once; ``from_mapping`` falls back to these. ``env`` defaults to
    production: development (the offline checkout, generated local secrets) must be asked for
    with ``BOOKING_ENV=development`` or ``booking serve``.
    """

    database_url: str | None = None
    data_dir: str | None = None
    db_pool_size: int = 5
    db_pool_timeout: int = 5
    db_connect_timeout: int = 3
    db_statement_timeout_ms: int = 5000
    db_idle_tx_timeout_ms: int = 30000
    base_url: str = "http://localhost:3000"
    port: int = 3000
    env: str = "production"
    secret_key: str | None = field(default=None, repr=False)
    stripe_secret_key: str | None = field(default=None, repr=False)
    stripe_webhook_secret: str | None = field(default=None, repr=False)
    stripe_api_base: str | None = None
    stripe_max_concurrent_calls: int = 4
    calcom_api_key: str | None = field(default=None, repr=False)
    calcom_api_url: str = "https://api.cal.com/v2"
    calcom_webhook_secret: str | None = field(default=None, repr=False)
    calcom_cache_seconds: int = 300
    calcom_links: dict[int, CalendarLink] = field(factory=dict)
    oauth_issuer: str | None = None
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = field(default=None, repr=False)
    owner_open_id: str | None = None
    session_idle_minutes: int = 120
    session_max_hours: int = 12
    admin_api_token: str | None = field(default=None, repr=False)
    hold_minutes: int = 30
    cancellation_window_hours: int = 24
    smtp_url: str | None = field(default=None, repr=False)
    mail_from: str = "bookings@localhost"
    mail_locale: str = "en_GB"
    reminder_hours_before: int = 24
    ratelimit_storage_uri: str = "memory://"
    ratelimit_bookings_per_ip: str = "30 per minute"
    ratelimit_bookings_per_email: str = "5 per hour"
    ratelimit_recover_per_ip: str = "10 per hour"
    trusted_proxies: int = 0
    redis_url: str | None = None
    sentry_dsn: str | None = field(default=None, repr=False)
    log_level: str = "INFO"
    log_format: str = "json"  # "json" (one object a line) or "text" (for a terminal)
    metrics_token: str | None = field(default=None, repr=False)
    worker_job_lease_seconds: int = 30

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def signin_configured(self) -> bool:
        """OpenID Connect sign-in needs an issuer, a client id and a client secret."""
        return bool(self.oauth_issuer and self.oauth_client_id and self.oauth_client_secret)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        env_dir: str | Path | None = None,
        default_env: str | None = None,
    ) -> Settings:
        """Read the process environment, falling back to ``.env.local`` then ``.env``.

        Real environment variables win over the files. ``default_env`` applies when neither
        sets ``BOOKING_ENV`` (``booking serve`` passes "development"; otherwise production).
        Raises SettingsError on bad values.
        """
        env = dict(read_env_files(Path(env_dir) if env_dir else Path.cwd()))
        env.update(os.environ if environ is None else environ)
        return cls.from_mapping(env, default_env=default_env)

    @classmethod
    def from_mapping(cls, env: Mapping[str, str], *, default_env: str | None = None) -> Settings:
        d = _DEFAULTS

        def get(name: str, *aliases: str) -> str | None:
            for key in (name, *aliases):
                value = env.get(key, "").strip()
                if value:
                    return value
            return None

        booking_env = (get("BOOKING_ENV") or default_env or d["env"]).lower()
        if booking_env not in ("development", "production", "test"):
            raise SettingsError("BOOKING_ENV must be development, production or test")
        calcom_url = (get("CALCOM_API_URL") or d["calcom_api_url"]).rstrip("/")
        if re.search(r"/v1(/|$)", calcom_url):
            raise SettingsError(
                "CALCOM_API_URL points at Cal.com API v1, which was shut down in 2026; "
                "use https://api.cal.com/v2"
            )
        return cls(
            database_url=get("DATABASE_URL"),
            data_dir=get("BOOKING_DATA_DIR"),
            db_pool_size=_int(env, "DB_POOL_SIZE", d["db_pool_size"], low=1, high=100),
            db_pool_timeout=_int(env, "DB_POOL_TIMEOUT", d["db_pool_timeout"], low=1, high=300),
            db_connect_timeout=_int(
                env, "DB_CONNECT_TIMEOUT", d["db_connect_timeout"], low=2, high=300
            ),
            db_statement_timeout_ms=_int(
                env, "DB_STATEMENT_TIMEOUT_MS", d["db_statement_timeout_ms"], low=100, high=_HOUR
            ),
            db_idle_tx_timeout_ms=_int(
                env, "DB_IDLE_TX_TIMEOUT_MS", d["db_idle_tx_timeout_ms"], low=1000, high=_HOUR
            ),
            base_url=(get("BASE_URL") or d["base_url"]).rstrip("/"),
            port=_int(env, "PORT", d["port"], low=1, high=65535),
            env=booking_env,
            secret_key=get("SECRET_KEY"),
            stripe_secret_key=get("STRIPE_SECRET_KEY"),
            stripe_webhook_secret=get("STRIPE_WEBHOOK_SECRET"),
            stripe_api_base=get("STRIPE_API_BASE"),
            stripe_max_concurrent_calls=_int(
                env, "STRIPE_MAX_CONCURRENT_CALLS", d["stripe_max_concurrent_calls"], low=1
            ),
            calcom_api_key=get("CALCOM_API_KEY"),
            calcom_api_url=calcom_url,
            calcom_webhook_secret=get("CALCOM_WEBHOOK_SECRET"),
            calcom_cache_seconds=_int(
                env, "CALCOM_CACHE_SECONDS", d["calcom_cache_seconds"], low=0, high=86400
            ),
            calcom_links=_calendar_links(env),
            oauth_issuer=get("OAUTH_ISSUER", "MANUS_OAUTH_ISSUER"),
            oauth_client_id=get("OAUTH_CLIENT_ID", "MANUS_OAUTH_CLIENT_ID"),
            oauth_client_secret=get("OAUTH_CLIENT_SECRET", "MANUS_OAUTH_CLIENT_SECRET"),
            owner_open_id=get("OWNER_OPEN_ID"),
            session_idle_minutes=_int(
                env, "SESSION_IDLE_MINUTES", d["session_idle_minutes"], low=1, high=7 * 24 * 60
            ),
            session_max_hours=_int(
                env, "SESSION_MAX_HOURS", d["session_max_hours"], low=1, high=24 * 90
            ),
            admin_api_token=get("ADMIN_API_TOKEN"),
            # Stripe allows a Checkout Session to live 30 min to 24 h; the hold adds a
            # minute of grace (booking_core.policy.HOLD_GRACE), so stay under 24 h.
            hold_minutes=_int(env, "HOLD_MINUTES", d["hold_minutes"], low=30, high=24 * 60 - 2),
            cancellation_window_hours=_int(
                env, "CANCELLATION_WINDOW_HOURS", d["cancellation_window_hours"], high=24 * 365
            ),
            smtp_url=get("SMTP_URL"),
            mail_from=get("MAIL_FROM") or d["mail_from"],
            mail_locale=get("MAIL_LOCALE") or d["mail_locale"],
            reminder_hours_before=_int(
                env, "REMINDER_HOURS_BEFORE", d["reminder_hours_before"], low=1, high=24 * 14
            ),
            ratelimit_storage_uri=get("RATELIMIT_STORAGE_URI") or d["ratelimit_storage_uri"],
            ratelimit_bookings_per_ip=get("RATELIMIT_BOOKINGS_PER_IP")
            or d["ratelimit_bookings_per_ip"],
            ratelimit_bookings_per_email=get("RATELIMIT_BOOKINGS_PER_EMAIL")
            or d["ratelimit_bookings_per_email"],
            ratelimit_recover_per_ip=get("RATELIMIT_RECOVER_PER_IP")
            or d["ratelimit_recover_per_ip"],
            trusted_proxies=_int(env, "TRUSTED_PROXIES", d["trusted_proxies"], high=10),
            redis_url=get("REDIS_URL"),
            sentry_dsn=get("SENTRY_DSN"),
            log_level=(get("LOG_LEVEL") or d["log_level"]).upper(),
            log_format=_log_format(get("LOG_FORMAT")),
            metrics_token=get("METRICS_TOKEN"),
            worker_job_lease_seconds=_int(
                env, "WORKER_JOB_LEASE_SECONDS", d["worker_job_lease_seconds"], low=2, high=3600
            ),
        )

    def production_problems(self) -> list[str]:
        """What stops a production start: fake adapters or missing secrets (names only)."""
        problems = []
        if not self.secret_key:
            problems.append("SECRET_KEY is not set")
        if not self.stripe_secret_key:
            problems.append("STRIPE_SECRET_KEY is not set (the offline fake checkout is refused)")
        if not self.stripe_webhook_secret:
            problems.append("STRIPE_WEBHOOK_SECRET is not set")
        if self.stripe_api_base:
            problems.append("STRIPE_API_BASE is set (points Stripe at a fake server)")
        if not self.base_url.startswith("https://"):
            problems.append("BASE_URL must be https:// in production")
        return problems


# The class's defaults by field name (fields built by a factory have no single default).
_DEFAULTS: dict[str, Any] = {
    a.name: a.default for a in attrs.fields(Settings) if not hasattr(a.default, "factory")
}


def read_env_files(directory: Path) -> dict[str, str]:
    """Variables from ``.env`` overlaid by ``.env.local`` in ``directory`` (missing files: none)."""
    values: dict[str, str] = {}
    for name in (".env", ".env.local"):
        path = directory / name
        if path.is_file():
            values.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    return values
