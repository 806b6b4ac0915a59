"""The offline checkout's sessions: the same semantics on the PostgreSQL store and in memory,
made without a write and named by a signed id, and shared by every process on the database
(what several gunicorn workers need)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from adapters.memory import FixedClock
from adapters.postgres import Database
from booking_core.errors import CheckoutNotFound, RefundFailed
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
    assert first.expires_at == NOW + timedelta(minutes=31)
    other = gateway.create_checkout(_request(booking_id=2, key="checkout-2"))
    assert other.id != first.id
    # Another key for the same booking (a hold made again) is another session, as at Stripe.
    assert gateway.create_checkout(_request(key="checkout-1-again")).id != first.id


def test_making_a_session_stores_nothing_and_its_id_says_what_it_is(
    sessions: OfflineSessions,
) -> None:
    gateway = _gateway(sessions)
    made = gateway.create_checkout(_request(booking_id=41, amount=12345))
    assert sessions.find(made.id) is None
    session = gateway.session(made.id)
    assert session is not None
    assert (session.booking_id, session.amount, session.expires_at, session.state) == (
        41,
        Money(12345, "gbp"),
        NOW + timedelta(minutes=31),
        CheckoutState.OPEN,
    )
    info = gateway.retrieve_checkout(made.id)
    assert (info.booking_id, info.amount) == (41, Money(12345, "gbp"))
    assert info.payment_status == "unpaid"


def test_an_id_the_gateway_did_not_sign_is_no_session(sessions: OfflineSessions) -> None:
    gateway = _gateway(sessions)
    made = gateway.create_checkout(_request(booking_id=41, amount=12345)).id
    fields = made.split("_")  # cs, offline, booking, amount, currency, expiry, tag, signature
    assert fields[:5] == ["cs", "offline", "15", "9ix", "gbp"]  # 41 and 12345 in base 36

    def changed(index: int, value: str) -> str:
        return "_".join([*fields[:index], value, *fields[index + 1 :]])

    forged = [
        changed(3, "1"),  # a smaller amount
        changed(2, "1"),  # another booking
        changed(5, "0"),  # another expiry
        changed(7, fields[7][:-1] + ("0" if fields[7][-1] != "0" else "1")),  # the signature
        "cs_offline_" + "0" * 32,
        made + "_x",
        "cs_offline_",
        "x" * 101,
    ]
    for session_id in forged:
        assert gateway.session(session_id) is None, session_id
        with pytest.raises(CheckoutNotFound):
            gateway.retrieve_checkout(session_id)
        with pytest.raises(CheckoutNotFound):
            gateway.expire_checkout(session_id)
        assert gateway.pay(session_id) is False
    other = OfflineCheckoutGateway(
        sessions=sessions,
        checkout_base_url="http://localhost:3000",
        webhook_secret="whsec_" + "m" * 40,
        clock=FixedClock(NOW),
    )
    assert other.session(made) is None  # signed under another webhook secret


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
    intent = gateway.session(session).payment_intent_id  # type: ignore[union-attr]
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
    assert other.session(session) is not None
    assert other.pay(session) is True
    assert one.session(session).state is CheckoutState.COMPLETE  # type: ignore[union-attr]
    assert other.pay(session) is False
