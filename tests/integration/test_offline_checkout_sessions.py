"""The offline checkout's session store: the same semantics in PostgreSQL and in memory, and a
session shared by every process on the database (what several gunicorn workers need)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from adapters.memory import FixedClock
from adapters.postgres import Database
from booking_core.errors import DuplicateRequest, RefundFailed
from booking_core.model import Money
from booking_core.ports import CheckoutRequest, CheckoutState, RefundRequest
from entrypoints.dev.offline_checkout import (
    InMemoryOfflineSessions,
    OfflineCheckoutGateway,
    OfflineSessions,
    PostgresOfflineSessions,
)

NOW = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)


def _gateway(sessions: OfflineSessions) -> OfflineCheckoutGateway:
    return OfflineCheckoutGateway(
        sessions=sessions,
        checkout_base_url="http://localhost:3000",
        webhook_secret="whsec_" + "k" * 40,
        clock=FixedClock(NOW),
    )


@pytest.fixture(params=["memory", "postgres"])
def sessions(request: pytest.FixtureRequest) -> OfflineSessions:
    if request.param == "memory":
        return InMemoryOfflineSessions()
    database: Database = request.getfixturevalue("clean_database")
    return PostgresOfflineSessions(database.engine)


def _request(booking_id: int = 1, key: str = "checkout-1", amount: int = 9000) -> CheckoutRequest:
    return CheckoutRequest(
        booking_id=booking_id,
        amount=Money(amount, "gbp"),
        description="Initial consultation",
        customer_email="ada@example.com",
        expires_at=NOW + timedelta(minutes=31),
        idempotency_key=key,
    )


def _refund(intent: str, amount: int, key: str) -> RefundRequest:
    return RefundRequest(
        booking_id=1, payment_intent_id=intent, amount=Money(amount, "gbp"), idempotency_key=key
    )


def test_one_session_per_idempotency_key(sessions: OfflineSessions) -> None:
    gateway = _gateway(sessions)
    first = gateway.create_checkout(_request())
    assert gateway.create_checkout(_request()) == first
    other = gateway.create_checkout(_request(booking_id=2, key="checkout-2"))
    assert other.id != first.id
    with pytest.raises(DuplicateRequest):
        gateway.create_checkout(_request(amount=1, key="checkout-1"))


def test_paying_and_expiring_move_an_open_session_once(sessions: OfflineSessions) -> None:
    gateway = _gateway(sessions)
    paid = gateway.create_checkout(_request()).id
    assert gateway.pay(paid) is True
    assert gateway.pay(paid) is False
    assert gateway.cancel(paid) is False
    assert gateway.expire_checkout(paid) is CheckoutState.COMPLETE
    left = gateway.create_checkout(_request(booking_id=2, key="checkout-2")).id
    assert gateway.expire_checkout(left) is CheckoutState.EXPIRED
    assert gateway.pay(left) is False


def test_a_session_past_its_expiry_cannot_be_paid(sessions: OfflineSessions) -> None:
    gateway = _gateway(sessions)
    session = gateway.create_checkout(_request()).id
    gateway.clock.set(NOW + timedelta(minutes=31))  # type: ignore[attr-defined]
    assert gateway.pay(session) is False


def test_refunds_are_idempotent_and_bounded_by_the_payment(sessions: OfflineSessions) -> None:
    gateway = _gateway(sessions)
    session = gateway.create_checkout(_request()).id
    gateway.pay(session)
    intent = sessions.get(session).payment_intent_id  # type: ignore[union-attr]
    assert intent is not None
    first = gateway.refund(_refund(intent, 6000, "refund-1"))
    assert gateway.refund(_refund(intent, 6000, "refund-1")) == first
    with pytest.raises(RefundFailed, match="exceeds"):
        gateway.refund(_refund(intent, 3001, "refund-2"))
    assert gateway.refund(_refund(intent, 3000, "refund-3")).status == "succeeded"
    with pytest.raises(RefundFailed):
        gateway.refund(_refund("pi_unknown", 1, "refund-4"))


def test_concurrent_pays_pay_once(sessions: OfflineSessions) -> None:
    gateway = _gateway(sessions)
    session = gateway.create_checkout(_request()).id
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def pay() -> None:
        barrier.wait()
        results.append(gateway.pay(session))

    threads = [threading.Thread(target=pay) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]


def test_another_process_on_the_database_sees_the_session(clean_database: Database) -> None:
    """Two gateways on one database stand for two gunicorn workers."""
    one = _gateway(PostgresOfflineSessions(clean_database.engine))
    other = _gateway(PostgresOfflineSessions(clean_database.engine))
    session = one.create_checkout(_request()).id
    assert other.sessions.get(session) is not None
    assert other.pay(session) is True
    assert one.sessions.get(session).state is CheckoutState.COMPLETE  # type: ignore[union-attr]
