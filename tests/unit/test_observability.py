"""Observability: /metrics, the request id in every log line, Sentry's scrubber."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from adapters.resilience import CircuitBreaker
from adapters.slot_cache import InMemorySlotCache
from booking_core.model import Interval
from booking_core.ports import PaymentEventType
from entrypoints.bootstrap import bootstrap
from entrypoints.logs import configure_logging
from entrypoints.metrics import CountingSlotCache, set_breaker_open
from entrypoints.sentry import init_sentry, scrub_event
from entrypoints.settings import Settings, SettingsError

from .http_support import CLIENT_EMAIL, NOW, SLOT_2, WEBHOOK_SECRET, Web, assert_problem, bearer

ROOT = Path(__file__).resolve().parents[2]


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _scrape(web: Web, headers: dict[str, str] | None = None) -> dict[str, list[Any]]:
    response = web.client.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    families = text_string_to_metric_families(response.get_data(as_text=True))
    return {family.name: family.samples for family in families}


def _value(samples: list[Any], **labels: str) -> float:
    found = [s.value for s in samples if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (labels, samples)
    return float(found[0])


# -- /metrics -------------------------------------------------------------------------------------


def test_metrics_has_every_name_of_the_contract() -> None:
    web = Web()
    web.client.get("/healthz")
    names = set(_scrape(web))
    # prometheus' parser drops the _total suffix of counters from the family name.
    assert {
        "booking_http_requests",
        "booking_http_request_duration_seconds",
        "booking_bookings",
        "booking_outbox_jobs",
        "booking_outbox_oldest_due_seconds",
        "booking_webhook_events",
        "booking_calcom_breaker_open",
        "booking_calcom_cache_requests",
    } <= names


def test_requests_are_counted_by_route_template_not_by_path() -> None:
    web = Web()
    route = "/api/practitioners/<id:practitioner_id>"
    before_ok = _sample("booking_http_requests_total", route=route, method="GET", status="200")
    before_404 = _sample("booking_http_requests_total", route=route, method="GET", status="404")
    before_hist = _sample("booking_http_request_duration_seconds_count", route=route)
    web.client.get("/api/practitioners/1")
    web.client.get("/api/practitioners/2")
    web.client.get("/api/practitioners/99")
    ok = _sample("booking_http_requests_total", route=route, method="GET", status="200")
    missing = _sample("booking_http_requests_total", route=route, method="GET", status="404")
    assert ok - before_ok == 2
    assert missing - before_404 == 1
    assert _sample("booking_http_request_duration_seconds_count", route=route) - before_hist == 3
    assert _sample("booking_http_requests_total", route="/api/practitioners/1") == 0


def test_a_request_no_rule_matches_counts_as_unmatched() -> None:
    web = Web()
    labels = {"route": "unmatched", "method": "GET", "status": "404"}
    before = _sample("booking_http_requests_total", **labels)
    assert_problem(web.client.get("/no/such/page/123"), 404)
    assert _sample("booking_http_requests_total", **labels) - before == 1


def test_bookings_and_jobs_are_counted_by_status_from_the_store() -> None:
    web = Web()
    scraped = _scrape(web)
    assert _value(scraped["booking_bookings"], status="pending") == 0
    assert _value(scraped["booking_outbox_oldest_due_seconds"]) == 0
    web.booked()
    web.confirmed(start=SLOT_2)
    uow = web.store.unit_of_work()
    with uow:
        uow.outbox.add("email", {"x": 1}, NOW - timedelta(minutes=5))
        uow.commit()
    scraped = _scrape(web)
    assert _value(scraped["booking_bookings"], status="pending") == 1
    assert _value(scraped["booking_bookings"], status="confirmed") == 1
    assert _value(scraped["booking_bookings"], status="cancelled") == 0
    assert _value(scraped["booking_outbox_jobs"], status="pending") >= 1
    assert _value(scraped["booking_outbox_jobs"], status="parked") == 0
    # The oldest due job was due five minutes before the (fixed) clock's now.
    assert _value(scraped["booking_outbox_oldest_due_seconds"]) == 300
    assert _value(scraped["booking_metrics_database_up"]) == 1


def test_a_database_that_does_not_answer_still_gives_the_process_metrics() -> None:
    def broken() -> Any:
        raise OSError("connection refused")

    web = Web()
    web.deps.uow_factory = broken
    scraped = _scrape(web)
    assert _value(scraped["booking_metrics_database_up"]) == 0
    assert "booking_http_requests" in scraped
    assert "booking_bookings" not in scraped


def test_metrics_token_makes_the_endpoint_bearer_only() -> None:
    web = Web(settings={"metrics_token": "mt_0123456789abcdef"})
    assert_problem(web.client.get("/metrics"), 401, "unauthorized")
    assert_problem(web.client.get("/metrics", headers=bearer("wrong-token-0000")), 401)
    body = web.client.get("/metrics", headers=bearer("mt_0123456789abcdef"))
    assert body.status_code == 200
    assert "mt_0123456789abcdef" not in body.get_data(as_text=True)


def test_webhook_events_are_counted_by_type_and_outcome() -> None:
    web = Web()
    labels = {"type": "checkout.session.completed", "outcome": "confirmed"}
    duplicate = {"type": "checkout.session.completed", "outcome": "duplicate"}
    refused = {"type": "unverified", "outcome": "invalid_signature"}
    before = [_sample("booking_webhook_events_total", **x) for x in (labels, duplicate, refused)]
    answer = web.booked()
    session = web.session_of(answer["booking"]["id"])
    web.payments.complete(session)
    event = web.payments.event_for(session, PaymentEventType.CHECKOUT_COMPLETED)
    assert web.webhook(event).status_code == 200
    assert web.webhook(event).status_code == 200  # delivered twice
    assert_problem(web.webhook(event, signature="t=1,v1=00"), 400, "invalid_signature")
    after = [_sample("booking_webhook_events_total", **x) for x in (labels, duplicate, refused)]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]


def test_the_slot_cache_counts_hits_and_misses() -> None:
    cache = CountingSlotCache(InMemorySlotCache())
    hits, misses = _cache_sample("hit"), _cache_sample("miss")
    found = cache.get("k", [1])
    assert found.slots is None
    slot = Interval(NOW, NOW + timedelta(minutes=30))
    cache.put("k", [1], found.stamp, [slot], 60)
    assert cache.get("k", [1]).slots == [slot]
    cache.invalidate(1)
    assert cache.get("k", [1]).slots is None
    assert _cache_sample("hit") - hits == 1
    assert _cache_sample("miss") - misses == 2


def _cache_sample(result: str) -> float:
    return _sample("booking_calcom_cache_requests_total", result=result)


def test_the_calcom_breaker_gauge_follows_the_breaker_bootstrap_builds() -> None:
    from adapters.memory import InMemoryStore

    settings = Settings(env="test", secret_key="k" * 32, calcom_api_key="cal_0123456789abcdef")
    deps = bootstrap(settings, uow_factory=InMemoryStore().unit_of_work)
    breaker = deps.calendar.breaker  # type: ignore[attr-defined]
    assert isinstance(breaker, CircuitBreaker)
    assert _sample("booking_calcom_breaker_open") == 0
    for _ in range(breaker.threshold):
        breaker.failure()
    assert _sample("booking_calcom_breaker_open") == 1
    breaker.success()
    assert _sample("booking_calcom_breaker_open") == 0
    set_breaker_open(False)


def test_multiprocess_mode_sums_every_worker(tmp_path: Path) -> None:
    """Under gunicorn each worker writes its own file; any worker's /metrics reads them all."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = (
        "from entrypoints import metrics\n"
        "metrics.HTTP_REQUESTS.labels('/healthz', 'GET', '200').inc(3)\n"
    )
    for _ in range(2):  # two worker processes
        subprocess.run([sys.executable, "-c", count], env=env, check=True, timeout=60)
    read = (
        "from entrypoints import metrics\n"
        "def nothing():\n    raise OSError('no database here')\n"
        "print(metrics.exposition(nothing).decode())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", read], env=env, check=True, timeout=60, capture_output=True
    ).stdout.decode()
    families = {f.name: f.samples for f in text_string_to_metric_families(out)}
    total = _value(families["booking_http_requests"], route="/healthz", status="200")
    assert total == 6


# -- logs -----------------------------------------------------------------------------------------


def test_every_line_a_request_logs_carries_its_request_id() -> None:
    web = Web()
    answer = web.booked()
    session = web.session_of(answer["booking"]["id"])
    web.payments.complete(session)
    event = web.payments.event_for(session, PaymentEventType.CHECKOUT_COMPLETED)
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    try:
        response = web.client.post(
            "/api/webhooks/stripe",
            data=event,
            content_type="application/json",
            headers={
                "Stripe-Signature": _sign(event),
                "X-Request-ID": "req-webhook-0001",
            },
        )
        assert response.status_code == 200
    finally:
        configure_logging("WARNING", stream=io.StringIO())
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    loggers = {line["logger"] for line in lines}
    # The use case's own line (booking_core) and the access line (booking.http) at least.
    assert "booking.http" in loggers
    assert any(name.startswith("booking_core") for name in loggers), loggers
    assert {line.get("request_id") for line in lines} == {"req-webhook-0001"}
    assert CLIENT_EMAIL not in stream.getvalue()


def _sign(payload: bytes) -> str:
    from adapters.memory import sign_fake_event

    return sign_fake_event(payload, WEBHOOK_SECRET)


def test_lines_outside_a_request_carry_no_request_id() -> None:
    import logging

    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    try:
        logging.getLogger("booking.worker").info("a pass")
    finally:
        configure_logging("WARNING", stream=io.StringIO())
    assert "request_id" not in json.loads(stream.getvalue())


def test_text_logs_name_the_request_id_and_are_scrubbed() -> None:
    web = Web()
    stream = io.StringIO()
    configure_logging("INFO", stream=stream, fmt="text")
    try:
        web.client.get("/healthz", headers={"X-Request-ID": "req-text-00001"})
        import logging

        logging.getLogger("booking.test").info("key sk_live_abcdef123456")
    finally:
        configure_logging("WARNING", stream=io.StringIO())
    text = stream.getvalue()
    assert "[req-text-00001] GET /healthz 200" in text
    assert "sk_live_***" in text
    assert "abcdef123456" not in text
    assert not text.lstrip().startswith("{")


def test_log_format_is_json_or_text() -> None:
    assert Settings.from_mapping({}).log_format == "json"
    assert Settings.from_mapping({"LOG_FORMAT": "TEXT"}).log_format == "text"
    with pytest.raises(SettingsError, match="LOG_FORMAT"):
        Settings.from_mapping({"LOG_FORMAT": "xml"})
    assert Settings.from_mapping({"METRICS_TOKEN": "abc"}).metrics_token == "abc"
    assert "abc" not in repr(Settings.from_mapping({"METRICS_TOKEN": "abc"}))


# -- Sentry ---------------------------------------------------------------------------------------


class CapturingTransport(Transport):
    """Keeps the envelopes the SDK would send (nothing leaves the process)."""

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)


SECRETS = {
    "stripe key": "sk_live_51Habcdefghijklmnop",
    "webhook secret": "whsec_0123456789abcdefghij",
    "manage token": "mt-very-secret-manage-token-123",
    "email": "grace.hopper@example.org",
    "password in a URL": "hunter2pass",
}


def test_sentry_events_are_scrubbed_before_they_leave() -> None:
    transport = CapturingTransport()
    init_sentry("https://public@sentry.invalid/1", environment="test", transport=transport)
    try:
        manage_token = SECRETS["manage token"]
        client_email = SECRETS["email"]
        api_key = SECRETS["stripe key"]
        sentry_sdk.add_breadcrumb(message=f"charging with {api_key} for {client_email}")
        sentry_sdk.set_extra("authorization", f"Bearer {manage_token}")
        sentry_sdk.set_extra("database", "postgresql://booking:hunter2pass@db.internal/booking")
        try:
            raise RuntimeError(
                f"stripe refused {api_key}, secret {SECRETS['webhook secret']}, "
                f"client {client_email}"
            )
        except RuntimeError as exc:
            sentry_sdk.capture_exception(exc)
        sentry_sdk.flush()
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()  # back to a disabled client for the other tests
    assert transport.envelopes, "the SDK sent nothing: the test would prove nothing"
    sent = b"".join(item.payload.get_bytes() for e in transport.envelopes for item in e.items)
    text = sent.decode()
    assert "RuntimeError" in text  # the event itself went out ...
    assert "manage_token" in text  # ... with the frame's local variables (their values scrubbed)
    for what, secret in SECRETS.items():
        assert secret not in text, f"the {what} reached Sentry"


def test_the_scrubber_filters_secret_keys_and_header_pairs() -> None:
    event = {
        "request": {
            "headers": [["Authorization", "Bearer abc"], ["Accept", "application/json"]],
            "cookies": {"session": "xyz"},
        },
        "extra": {"nested": {"api_key": "cal_live_0123456789", "note": "ok"}},
    }
    cleaned = scrub_event(event)
    assert cleaned["request"]["headers"][0] == ["Authorization", "[Filtered]"]
    assert cleaned["request"]["headers"][1] == ["Accept", "application/json"]
    assert cleaned["request"]["cookies"] == "[Filtered]"
    assert cleaned["extra"]["nested"] == {"api_key": "[Filtered]", "note": "ok"}


def test_gunicorn_config_loads_and_marks_dead_workers(tmp_path: Path) -> None:
    code = (
        "import entrypoints.gunicorn_config as c\n"
        "class W: pid = 4242\n"
        "c.on_starting(None); c.child_exit(None, W())\n"
        "print(c.workers, c.timeout)\n"
    )
    (tmp_path / "counter_4242.db").write_bytes(b"")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "WEB_CONCURRENCY": "3"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, timeout=60, capture_output=True
    )
    assert out.stdout.split() == [b"3", b"30"]
    assert not list(tmp_path.glob("*.db"))  # emptied at start
