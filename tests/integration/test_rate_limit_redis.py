"""Rate limits shared through Redis: two app processes count one client's bookings together."""

from __future__ import annotations

import random

from flask.testing import FlaskClient

from adapters.memory import FakePaymentGateway, FixedClock, InMemoryStore, RecordingNotifier
from adapters.schedule import ScheduleCalendarGateway
from entrypoints.bootstrap import bootstrap
from entrypoints.flask_app import create_app
from entrypoints.settings import Settings


def _app(storage: str) -> FlaskClient:
    deps = bootstrap(
        Settings(
            env="test",
            ratelimit_storage_uri=storage,
            ratelimit_bookings_per_ip="3 per minute",
            ratelimit_bookings_per_email="0",
        ),
        uow_factory=InMemoryStore().unit_of_work,
        clock=FixedClock(),
        payments=FakePaymentGateway(),
        calendar=ScheduleCalendarGateway(),
        notifier=RecordingNotifier(),
    )
    return create_app(deps).test_client()


def test_two_processes_share_the_per_ip_limit(redis_server_url: str) -> None:
    first, second = _app(redis_server_url), _app(redis_server_url)
    # A client address of its own, so runs against a long-lived Redis do not meet.
    address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    environ = {"REMOTE_ADDR": address}
    statuses = [
        client.post("/api/bookings", json={}, environ_base=environ).status_code
        for client in (first, second, first)
    ]
    assert statuses == [422, 422, 422]  # counted, though refused for their content
    limited = second.post("/api/bookings", json={}, environ_base=environ)
    assert limited.status_code == 429
    assert limited.mimetype == "application/problem+json"
    assert limited.get_json()["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0
    # Another client (a random address too: a fixed one meets other runs on a shared Redis).
    another = f"192.0.{random.randrange(256)}.{random.randrange(1, 255)}"
    other = first.post("/api/bookings", json={}, environ_base={"REMOTE_ADDR": another})
    assert other.status_code == 422  # another client is not limited
