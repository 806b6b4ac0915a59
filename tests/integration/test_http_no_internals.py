"""No internals in answers, with the real vendors: PostgreSQL's constraint names, Stripe's refusals.

And Stripe webhook signatures dated in the future are refused like stale ones.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from adapters.memory import FixedClock, InMemoryStore, RecordingNotifier
from adapters.postgres.database import Database
from adapters.postgres.errors import translated
from adapters.schedule import ScheduleCalendarGateway
from booking_core.errors import Conflict, InvalidSignature, ValidationFailed
from entrypoints.bootstrap import bootstrap
from entrypoints.dev.sample_data import seed
from entrypoints.flask_app import create_app
from entrypoints.settings import Settings

try:
    import stripe_fixtures
    from fake_stripe import FakeStripe
except ModuleNotFoundError:  # tests/integration imported as a package
    from tests.integration import stripe_fixtures
    from tests.integration.fake_stripe import FakeStripe

fake_stripe = stripe_fixtures.fake_stripe
make_stripe_gateway = stripe_fixtures.make_stripe_gateway
GatewayFactory = stripe_fixtures.GatewayFactory

CONSTRAINT = "uq_bookings_checkout_session_id"


# -- PostgreSQL ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ddl", "dml", "error"),
    [
        pytest.param(
            f"CREATE TEMP TABLE leak_probe (x text CONSTRAINT {CONSTRAINT} UNIQUE)",
            "INSERT INTO leak_probe VALUES ('cs_1'), ('cs_1')",
            Conflict,
            id="unique",
        ),
        pytest.param(
            f"CREATE TEMP TABLE leak_probe (x int CONSTRAINT {CONSTRAINT} CHECK (x > 0))",
            "INSERT INTO leak_probe VALUES (-1)",
            ValidationFailed,
            id="check",
        ),
    ],
)
def test_a_refused_statement_names_no_constraint(
    database: Database,
    ddl: str,
    dml: str,
    error: type[Exception],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="adapters.postgres.errors")
    with database.engine.connect() as connection:
        connection.execute(text(ddl))
        with pytest.raises(error) as caught, translated("db-host.internal:5432/booking"):
            connection.execute(text(dml))
        connection.rollback()
    assert CONSTRAINT not in str(caught.value)
    assert "db-host.internal" not in str(caught.value)
    assert CONSTRAINT in caplog.text  # ours to read, in the log


# -- Stripe --------------------------------------------------------------------------------------


def test_a_rejected_stripe_key_is_a_503_without_stripes_words(
    make_stripe_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = make_stripe_gateway(api_key="sk_test_not_the_accounts_key")
    deps = bootstrap(
        Settings(
            env="development",
            ratelimit_bookings_per_ip="0",
            ratelimit_bookings_per_email="0",
            base_url="http://booking.test",
        ),
        uow_factory=InMemoryStore().unit_of_work,
        clock=FixedClock(datetime(2030, 1, 7, 8, 0, tzinfo=UTC)),
        payments=gateway,
        calendar=ScheduleCalendarGateway(),
        notifier=RecordingNotifier(),
    )
    seed(deps.uow())
    client = create_app(deps).test_client()
    response = client.post(
        "/api/bookings",
        json={
            "practitioner_id": 1,
            "service_id": 1,
            "start": "2030-01-08T09:00:00Z",
            "client": {"name": "Ada", "email": "ada@example.com"},
        },
    )
    assert response.status_code == 503
    body = response.get_json()
    assert body["code"] == "payment_unavailable"
    assert body["request_id"] == response.headers["X-Request-ID"]
    for word in ("Stripe", "API key", "401", "sk_test"):
        assert word not in json.dumps(body), word
    assert "Stripe rejected the API key" in caplog.text  # the log says what happened


@pytest.mark.parametrize("ahead", [301, 3600, 86400])
def test_a_webhook_signature_dated_in_the_future_is_refused(
    fake_stripe: FakeStripe, make_stripe_gateway: GatewayFactory, ahead: int
) -> None:
    gateway = make_stripe_gateway()
    body = fake_stripe.event(
        "checkout.session.expired", {"id": "cs_1", "object": "checkout.session"}
    )
    forged = fake_stripe.sign(
        body, stripe_fixtures.WEBHOOK_SECRET, timestamp=int(time.time()) + ahead
    )
    with pytest.raises(InvalidSignature, match="outside the tolerance"):
        gateway.parse_event(body, forged)


def test_a_webhook_signature_a_little_ahead_is_accepted(
    fake_stripe: FakeStripe, make_stripe_gateway: GatewayFactory
) -> None:
    gateway = make_stripe_gateway()
    body = fake_stripe.event(
        "checkout.session.expired", {"id": "cs_1", "object": "checkout.session"}
    )
    # Clocks drift: a few minutes ahead is inside the tolerance, as a few minutes behind is.
    signed = fake_stripe.sign(
        body, stripe_fixtures.WEBHOOK_SECRET, timestamp=int(time.time()) + 240
    )
    assert gateway.parse_event(body, signed).type == "checkout.session.expired"


def test_a_connection_lost_inside_a_transaction_is_an_outage_not_a_bug(
    database_url: str,
) -> None:
    """A server restart kills the connection mid-transaction; SQLAlchemy then refuses the unit's
    commit with PendingRollbackError ("Can't reconnect until invalid transaction is rolled
    back"). That is the database being away (503 database_unavailable), never a 500."""
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from adapters.postgres.errors import DatabaseError, DatabaseUnavailable

    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    killer = sa.create_engine(
        database_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )
    try:
        with Session(engine) as session:
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with killer.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            with pytest.raises(DatabaseUnavailable), translated("the database"):
                session.execute(text("SELECT 1"))
            with pytest.raises(DatabaseUnavailable) as lost, translated("the database"):
                session.commit()
            assert not isinstance(lost.value, DatabaseError)
            assert isinstance(lost.value.__cause__, sa.exc.PendingRollbackError)
    finally:
        engine.dispose()
        killer.dispose()
