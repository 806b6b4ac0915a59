"""The shared bulkhead and circuit breaker (adapters.resilience)."""

from __future__ import annotations

import threading
import time

import pytest

from adapters.resilience import BreakerState, Bulkhead, BulkheadFull, CircuitBreaker, CircuitOpen


def test_bulkhead_refuses_at_once_beyond_its_limit_and_frees_permits() -> None:
    bulkhead = Bulkhead(2)
    inside = threading.Barrier(3)
    leave = threading.Event()

    def hold() -> None:
        with bulkhead.slot():
            inside.wait(timeout=5)
            leave.wait(timeout=5)

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for thread in threads:
        thread.start()
    inside.wait(timeout=5)
    assert bulkhead.in_use == 2
    started = time.monotonic()
    with pytest.raises(BulkheadFull), bulkhead.slot():
        pass
    assert time.monotonic() - started < 0.5
    leave.set()
    for thread in threads:
        thread.join(timeout=5)
    assert bulkhead.in_use == 0
    with bulkhead.slot():
        assert bulkhead.in_use == 1


def test_bulkhead_releases_its_permit_when_the_call_raises() -> None:
    bulkhead = Bulkhead(1)
    with pytest.raises(RuntimeError), bulkhead.slot():
        raise RuntimeError("boom")
    with bulkhead.slot():
        assert bulkhead.in_use == 1


def test_bulkhead_rejects_a_limit_below_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Bulkhead(0)


def test_breaker_opens_after_threshold_and_half_opens_after_cooldown() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown=10, clock=lambda: now[0])
    breaker.allow()
    assert breaker.failure() is False
    assert breaker.failure() is True
    with pytest.raises(CircuitOpen):
        breaker.allow()
    now[0] = 10.0
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.allow()  # the one trial
    with pytest.raises(CircuitOpen):
        breaker.allow()
    assert breaker.success() is True
    assert breaker.state is BreakerState.CLOSED
