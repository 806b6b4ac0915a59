"""HTTP on PostgreSQL: hostile text never reaches the database as an error (no 5xx).

A NUL byte in a query string used to reach PostgreSQL ("invalid byte sequence") and answer 500;
a lone surrogate in a JSON string used to fail in the UTF-8 encode on the way to the driver.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient

from adapters.memory import FakePaymentGateway, FixedClock, RecordingNotifier
from adapters.postgres import Database
from adapters.schedule import ScheduleCalendarGateway
from entrypoints.bootstrap import bootstrap
from entrypoints.dev.sample_data import seed
from entrypoints.flask_app import create_app
from entrypoints.settings import Settings

ADMIN = {"Authorization": "Bearer admin-token-for-hostile-input"}
NOW = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)


@pytest.fixture
def client(clean_database: Database) -> FlaskClient:
    deps = bootstrap(
        Settings(
            env="test",
            secret_key="secret-key-for-hostile-input-tests",
            admin_api_token=ADMIN["Authorization"].split()[1],
            ratelimit_bookings_per_ip="0",
            ratelimit_bookings_per_email="0",
        ),
        uow_factory=clean_database.unit_of_work,
        clock=FixedClock(NOW),
        payments=FakePaymentGateway(webhook_secret="whsec_hostile"),
        calendar=ScheduleCalendarGateway(),
        notifier=RecordingNotifier(),
    )
    seed(deps.uow())
    return create_app(deps).test_client()


@pytest.mark.parametrize(
    "url",
    [
        "/booking/success?session_id=a%00b",
        "/booking/cancel?session_id=a%00b",
        "/api/admin/bookings?email=a%00b",
        "/api/admin/bookings?email=%00",
        "/dev/checkout/cs_%00",
    ],
)
def test_a_nul_byte_in_a_query_or_path_is_a_4xx_not_a_database_error(
    client: FlaskClient, url: str
) -> None:
    response = client.get(url, headers=ADMIN)
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert "database" not in response.get_data(as_text=True)


def test_a_lone_surrogate_in_a_booking_is_a_4xx_and_writes_nothing(
    client: FlaskClient, clean_database: Database
) -> None:
    start = (NOW + timedelta(days=1)).replace(hour=9).isoformat().replace("+00:00", "Z")
    for client_fields in (
        {"name": "Ada\ud800", "email": "ada@example.com"},
        {"name": "Ada", "email": "ada@example.com", "phone": "+44\udfff 20 7946 0000"},
    ):
        body = {
            "practitioner_id": 1,
            "service_id": 1,
            "start": start,
            "client": client_fields,
            "notes": "x\ud800",
        }
        response = client.post(
            "/api/bookings", data=json.dumps(body), content_type="application/json"
        )
        assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    listed = client.get("/api/admin/bookings", headers=ADMIN).get_json()
    assert listed["items"] == []
