"""The composition root: the only code that reads settings and builds engines, clients, adapters.

Web, CLI and worker all call ``bootstrap(settings)``; tests pass overrides (memory adapters, a
fixed clock). Nothing here runs at import time.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs
from attrs import define, field

from booking_core.policy import BookingRules
from booking_core.ports import (
    CalendarGateway,
    Clock,
    Notifier,
    PaymentGateway,
    SlotCache,
    UnitOfWork,
    UnitOfWorkFactory,
)
from entrypoints.settings import Settings, SettingsError

if TYPE_CHECKING:
    from adapters.calcom import CalcomWebhookEvent

# Verifies an inbound calendar webhook (raw body, a header lookup) and parses it; raises
# InvalidSignature / InvalidPayload. Views get it from Deps so that they never import an adapter.
CalendarWebhookVerifier = Callable[[bytes, Callable[[str], str | None]], "CalcomWebhookEvent"]

log = logging.getLogger(__name__)


class SystemClock:
    """The real clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def _nothing() -> None:
    return None


@define(kw_only=True)
class Deps:
    """Everything entrypoints need, built once per process."""

    settings: Settings
    uow_factory: UnitOfWorkFactory
    payments: PaymentGateway
    calendar: CalendarGateway
    notifier: Notifier
    clock: Clock
    rules: BookingRules
    verify_calendar_webhook: CalendarWebhookVerifier
    check_database: Callable[[], None] = _nothing  # raises when the database does not answer
    close: Callable[[], None] = _nothing
    live: dict[str, str] = field(factory=dict)  # adapter role -> what is live, for the start line
    extras: dict[str, Any] = field(factory=dict)

    def uow(self) -> UnitOfWork:
        return self.uow_factory()


def bootstrap(settings: Settings | None = None, **overrides: Any) -> Deps:
    """Build the process's dependencies; ``overrides`` replace any of Deps' fields.

    Raises SettingsError when production settings are incomplete (fake adapters are refused).
    """
    settings = settings or Settings.from_env()
    if settings.is_production:
        problems = settings.production_problems()
        if problems:
            raise SettingsError("refusing to start in production: " + "; ".join(problems))
    _check_extras(settings)
    _monitoring(settings)
    clock: Clock = overrides.pop("clock", None) or SystemClock()
    live: dict[str, str] = {"environment": settings.env}
    closers: list[Callable[[], None]] = []

    uow_factory = overrides.pop("uow_factory", None)
    check_database = overrides.pop("check_database", None)
    extras: dict[str, Any] = overrides.pop("extras", {})
    engine = None
    if uow_factory is None:
        opened = open_database(settings)
        closers.append(opened.close)
        uow_factory, check_database = opened.database.unit_of_work, opened.database.ping
        live["database"], extras["database_url"] = opened.where, opened.url
        engine = opened.database.engine
    else:
        live["database"] = "provided"

    if not settings.is_production and not settings.secret_key:
        # Development generates its secret once per data folder (every process on the folder
        # agrees on it); on memory adapters (tests) the process makes one up.
        settings = attrs.evolve(settings, secret_key=_development_secret(settings, engine))

    payments = overrides.pop("payments", None)
    if payments is None:
        payments, live["payments"] = _payments(settings, engine, clock)
        if live["payments"].startswith("offline"):
            extras["offline_checkout"] = payments
    else:
        live["payments"] = type(payments).__name__

    calendar = overrides.pop("calendar", None)
    if calendar is None:
        calendar, live["calendar"] = _calendar(settings, engine)
    else:
        live["calendar"] = type(calendar).__name__

    notifier = overrides.pop("notifier", None)
    if notifier is None:
        notifier, live["email"] = _notifier(settings)
    else:
        live["email"] = type(notifier).__name__

    if settings.is_production and _is_a_stand_in(payments):
        raise SettingsError("refusing to start in production with the fake payment gateway")
    rules = overrides.pop("rules", None) or BookingRules(
        hold_minutes=settings.hold_minutes,
        cancellation_window_hours=settings.cancellation_window_hours,
        reminder_hours_before=settings.reminder_hours_before,
        link_secret=_link_secret(settings),
    )

    verify_calendar_webhook = overrides.pop(
        "verify_calendar_webhook", None
    ) or _calendar_webhook_verifier(settings)

    def close() -> None:
        for closer in reversed(closers):
            closer()

    return Deps(
        settings=settings,
        uow_factory=uow_factory,
        payments=payments,
        calendar=calendar,
        notifier=notifier,
        clock=clock,
        rules=rules,
        verify_calendar_webhook=verify_calendar_webhook,
        check_database=check_database or _nothing,
        close=overrides.pop("close", close),
        live=live,
        extras=extras,
        **overrides,
    )


@define(kw_only=True)
class OpenDatabase:
    """The database the settings name (or the embedded one), opened for a command or a process.

    ``url`` is what migrations need; ``close()`` disposes of the pool and releases the embedded
    server (which stops when its last user is gone).
    """

    database: Any  # adapters.postgres.Database (imported lazily: importing has no side effects)
    url: str
    where: str
    close: Callable[[], None]


def open_database(
    settings: Settings | None = None, *, progress: Callable[[str], None] | None = None
) -> OpenDatabase:
    """Connect to ``DATABASE_URL``, or start (or join) the embedded server when it is unset.

    Raises SettingsError, adapters.postgres.DatabaseConfigError (a malformed URL) and
    EmbeddedServerError (the embedded server could not start); nothing connects yet.
    """
    from adapters.postgres import Database
    from entrypoints.dev.embedded_postgres import start_embedded

    settings = settings or Settings.from_env()
    url = settings.database_url
    server = None
    if url is None:
        server = start_embedded(settings.data_dir, progress=progress)
        url = server.url
    try:
        database = Database.connect(
            url,
            pool_size=settings.db_pool_size,
            pool_timeout=settings.db_pool_timeout,
            connect_timeout=settings.db_connect_timeout,
            statement_timeout_ms=settings.db_statement_timeout_ms,
            idle_in_transaction_timeout_ms=settings.db_idle_tx_timeout_ms,
        )
    except BaseException:
        if server is not None:
            server.stop()
        raise

    def close() -> None:
        database.dispose()
        if server is not None:
            server.stop()

    where = server.describe() if server is not None else database.describe()
    return OpenDatabase(database=database, url=url, where=where, close=close)


def _payments(settings: Settings, engine: Any, clock: Clock) -> tuple[PaymentGateway, str]:
    """Stripe when STRIPE_SECRET_KEY is set; otherwise (development only) the offline checkout,
    its sessions in the database, its webhook secret generated for the data folder."""
    if settings.stripe_secret_key:
        from adapters.resilience import Bulkhead, CircuitBreaker
        from adapters.stripe import StripePaymentGateway

        gateway = StripePaymentGateway(
            api_key=settings.stripe_secret_key,
            webhook_secret=settings.stripe_webhook_secret or "",
            base_url=settings.base_url,
            api_base=settings.stripe_api_base,
            # Three tries of at most 3 s + 5 s stay inside gunicorn's worker timeout (30 s),
            # so a booking against a hanging Stripe still releases its hold and answers 503.
            timeout=(3.05, 5.0),
            # Only this many threads may wait on Stripe at once: a hanging Stripe leaves the
            # others free for health checks, availability and pages.
            bulkhead=Bulkhead(settings.stripe_max_concurrent_calls),
            breaker=CircuitBreaker(threshold=5, cooldown=30.0),
        )
        where = "Stripe" + (f" at {settings.stripe_api_base}" if settings.stripe_api_base else "")
        return gateway, where
    if settings.is_production:  # production_problems() refused this already; never fall back
        raise SettingsError("refusing to start in production without STRIPE_SECRET_KEY")
    from entrypoints.dev import offline_checkout as offline

    sessions: offline.OfflineSessions
    if engine is not None:
        sessions, kept = offline.PostgresOfflineSessions(engine), "sessions in the database"
    else:
        sessions, kept = offline.InMemoryOfflineSessions(), "sessions in memory"
    webhook_secret = settings.stripe_webhook_secret or _development_secret(
        settings, engine, name="offline-webhook-secret", prefix="whsec_"
    )
    stand_in = offline.OfflineCheckoutGateway(
        sessions=sessions,
        checkout_base_url=settings.base_url,
        webhook_secret=webhook_secret,
        clock=clock,
    )
    return stand_in, f"offline checkout at {offline.CHECKOUT_PATH} ({kept})"


def _development_secret(
    settings: Settings, engine: Any, *, name: str = "secret-key", prefix: str = ""
) -> str:
    """A secret of the data folder when development opened the database, else a fresh one
    (memory adapters, or the ``test`` environment, which leaves the data folder alone)."""
    if engine is None or settings.env != "development":
        return prefix + secrets.token_urlsafe(32)
    from entrypoints.dev.local_secrets import data_folder, local_secret

    return local_secret(data_folder(settings.data_dir), name, prefix=prefix)


def _is_a_stand_in(payments: PaymentGateway) -> bool:
    from adapters.memory import FakePaymentGateway

    if isinstance(payments, FakePaymentGateway):
        return True
    from entrypoints.dev.offline_checkout import OfflineCheckoutGateway

    return isinstance(payments, OfflineCheckoutGateway)


def _calendar(settings: Settings, engine: Any) -> tuple[CalendarGateway, str]:
    """Cal.com when a key is set, with a slot cache every process shares: Redis when REDIS_URL
    is set, else the database's calendar_cache table (in memory only without a database)."""
    if settings.calcom_api_key:
        from adapters.calcom import CalComCalendarGateway
        from adapters.slot_cache import InMemorySlotCache, PostgresSlotCache, RedisSlotCache

        cache: SlotCache
        if settings.redis_url:
            cache, shared = RedisSlotCache(settings.redis_url), "Redis cache"
        elif engine is not None:
            cache, shared = PostgresSlotCache(engine), "database cache"
        else:
            cache, shared = InMemorySlotCache(), "in-process cache"
        from entrypoints.metrics import CountingSlotCache, set_breaker_open

        gateway = CalComCalendarGateway(
            api_key=settings.calcom_api_key,
            api_url=settings.calcom_api_url,
            links=settings.calcom_links,
            cache_seconds=settings.calcom_cache_seconds,
            cache=CountingSlotCache(cache),
        )
        gateway.breaker.on_change = set_breaker_open
        set_breaker_open(False)
        return gateway, f"Cal.com at {settings.calcom_api_url} ({shared})"
    from adapters.schedule import ScheduleCalendarGateway

    return ScheduleCalendarGateway(), "working hours (no CALCOM_API_KEY)"


def _calendar_webhook_verifier(settings: Settings) -> CalendarWebhookVerifier:
    """Cal.com's signature check with the configured secret (every delivery is refused without
    CALCOM_WEBHOOK_SECRET)."""
    from adapters.calcom.webhooks import SIGNATURE_HEADER, verify_and_parse

    secret = settings.calcom_webhook_secret or ""

    def verify(raw_body: bytes, header: Callable[[str], str | None]) -> CalcomWebhookEvent:
        return verify_and_parse(raw_body, header(SIGNATURE_HEADER), secret)

    return verify


def _notifier(settings: Settings) -> tuple[Notifier, str]:
    from adapters.email import LoggingNotifier, MailRenderer, SmtpNotifier

    renderer = MailRenderer(base_url=settings.base_url, locale=settings.mail_locale)
    if settings.smtp_url:
        notifier = SmtpNotifier.from_url(
            settings.smtp_url, mail_from=settings.mail_from, renderer=renderer
        )
        return notifier, f"SMTP at {notifier.host}"
    return LoggingNotifier(renderer), "log only (no SMTP_URL)"


def _link_secret(settings: Settings) -> bytes:
    """The key manage links are signed with: derived from SECRET_KEY (a key of its own, so a
    link token never doubles as a session signature)."""
    if not settings.secret_key:
        return b""
    return hashlib.sha256(b"booking manage links\0" + settings.secret_key.encode()).digest()


def _check_extras(settings: Settings) -> None:
    """A setting that needs an optional package names the extra that installs it."""
    import importlib.util

    needed = [
        (
            settings.redis_url or settings.ratelimit_storage_uri.startswith("redis"),
            "redis",
            "redis",
            "REDIS_URL or a redis RATELIMIT_STORAGE_URI",
        ),
        (settings.sentry_dsn, "sentry_sdk", "sentry", "SENTRY_DSN"),
    ]
    for wanted, module, extra, what in needed:
        if wanted and importlib.util.find_spec(module) is None:
            raise SettingsError(
                f"{what} is set but its client is not installed: "
                f'python -m pip install -e ".[{extra}]"'
            )


def _monitoring(settings: Settings) -> None:
    """Error tracking with Sentry when SENTRY_DSN is set (no personal data sent)."""
    if not settings.sentry_dsn:
        return
    from entrypoints.sentry import init_sentry

    init_sentry(settings.sentry_dsn, environment=settings.env)
