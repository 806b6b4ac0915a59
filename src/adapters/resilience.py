"""Resilience shared by the adapters that call other services (Cal.com, Stripe).

A thread-safe circuit breaker (skip a failing service for a cool-down, then try once) and a
bulkhead (at most N threads may wait on one service at a time; the rest are refused at once).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class BreakerState(enum.StrEnum):
    CLOSED = "closed"  # calls go through; consecutive failures are counted
    OPEN = "open"  # calls are refused without touching the network until the cool-down ends
    HALF_OPEN = "half_open"  # one trial call is in flight; its outcome closes or reopens


class CircuitOpen(Exception):
    """Raised by ``CircuitBreaker.allow`` when the call must not be made; says for how long."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(f"circuit open, next try in {retry_in:.1f} s")
        self.retry_in = retry_in


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures and stays open for ``cooldown`` seconds.

    After the cool-down the next caller gets the one trial call (half-open) while others are still
    refused; a success closes the breaker, a failure opens it for another cool-down. ``clock`` is
    monotonic seconds (injected in tests). The caller reports every permitted call's outcome with
    ``success()`` or ``failure()``. ``on_change`` (optional, set by the composition root) is
    called with True when the breaker opens and False when a success closes it: a metric.
    """

    on_change: Callable[[bool], None] | None = None

    def __init__(
        self,
        *,
        threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError("breaker threshold must be at least 1")
        if cooldown < 0:
            raise ValueError("breaker cooldown must not be negative")
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._state = BreakerState.CLOSED
        self._open_until = 0.0
        self._trial_started = 0.0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            if self._state is BreakerState.OPEN and self._clock() >= self._open_until:
                return BreakerState.HALF_OPEN  # the next allow() gets the trial
            return self._state

    def allow(self) -> None:
        """Permit one call or raise CircuitOpen.

        A trial that never reported back (its thread died) is given up after one cool-down, so
        the breaker cannot stay half-open forever.
        """
        with self._lock:
            now = self._clock()
            if self._state is BreakerState.CLOSED:
                return
            if self._state is BreakerState.OPEN:
                if now < self._open_until:
                    raise CircuitOpen(self._open_until - now)
                self._state = BreakerState.HALF_OPEN
                self._trial_started = now
                return
            if now - self._trial_started >= max(self.cooldown, 1.0):
                self._trial_started = now
                return
            raise CircuitOpen(max(self.cooldown - (now - self._trial_started), 0.0))

    def success(self) -> bool:
        """Record a good answer; returns True if this closed an open/half-open breaker."""
        with self._lock:
            was_tripped = self._state is not BreakerState.CLOSED
            self._state = BreakerState.CLOSED
            self._failures = 0
        if was_tripped and self.on_change is not None:
            self.on_change(False)
        return was_tripped

    def failure(self) -> bool:
        """Record a failed call; returns True if this opened the breaker."""
        with self._lock:
            self._failures += 1
            if self._state is BreakerState.HALF_OPEN or self._failures >= self.threshold:
                opened = self._state is not BreakerState.OPEN
                self._open(self.cooldown)
                return opened
            return False

    def open_for(self, seconds: float) -> None:
        """Open now for ``seconds``: the service told us to stay away (a rate limit)."""
        with self._lock:
            self._open(seconds)

    def _open(self, seconds: float) -> None:
        self._state = BreakerState.OPEN
        self._open_until = max(self._open_until, self._clock() + seconds)
        if self.on_change is not None:
            self.on_change(True)


class BulkheadFull(Exception):
    """Raised by ``Bulkhead.slot`` when every permit is taken: refuse now instead of queueing."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"all {limit} permits are in use")
        self.limit = limit


class Bulkhead:
    """At most ``limit`` concurrent calls; a caller beyond that waits ``wait`` seconds at most.

    It keeps a slow service from taking every web thread: with ``limit`` below the number of
    threads, health checks, pages and other routes keep a thread to answer on. Thread-safe; one
    per process and service.
    """

    def __init__(self, limit: int, *, wait: float = 0.0) -> None:
        if limit < 1:
            raise ValueError("bulkhead limit must be at least 1")
        if wait < 0:
            raise ValueError("bulkhead wait must not be negative")
        self.limit = limit
        self.wait = wait
        self._permits = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._in_use = 0

    @property
    def in_use(self) -> int:
        with self._lock:
            return self._in_use

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one permit for the block; raises BulkheadFull when none frees up in time."""
        acquired = (
            self._permits.acquire(timeout=self.wait)
            if self.wait > 0
            else self._permits.acquire(blocking=False)
        )
        if not acquired:
            raise BulkheadFull(self.limit)
        with self._lock:
            self._in_use += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_use -= 1
            self._permits.release()
