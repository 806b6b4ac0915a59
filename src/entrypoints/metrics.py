"""Prometheus metrics: the names, the counting slot cache, and one exposition.

Counters and histograms live in prometheus-client's default registry, or, when
``PROMETHEUS_MULTIPROC_DIR`` is set before the process starts (gunicorn with several workers),
in that folder's memory-mapped files, which every worker's ``/metrics`` reads together. The
database-derived gauges (bookings and outbox jobs by status, the oldest due job) are read at
scrape time, once per scrape, by whichever worker serves it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from booking_core.model import Interval
from booking_core.ports import SlotCache, SlotLookup
from booking_core.usecases import OperationalCounts

__all__ = ["CONTENT_TYPE_LATEST", "CountingSlotCache", "exposition"]

# Route = the URL rule ("/api/bookings/<id:booking_id>"), never the path: one series per route,
# whatever ids clients send. Requests that match no rule count as "unmatched".
HTTP_REQUESTS = Counter(
    "booking_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "booking_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
WEBHOOK_EVENTS = Counter(
    "booking_webhook_events_total",
    "Stripe webhook deliveries, by event type and what handling them did.",
    ["type", "outcome"],
)
CALCOM_BREAKER_OPEN = Gauge(
    "booking_calcom_breaker_open",
    "1 while the Cal.com circuit breaker is open (availability from the local schedule).",
    # Under gunicorn: the highest value among live workers (one open breaker shows).
    multiprocess_mode="livemax",
)
CALCOM_CACHE = Counter(
    "booking_calcom_cache_requests_total",
    "Cal.com slot cache look-ups, by result.",
    ["result"],
)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def set_breaker_open(is_open: bool) -> None:
    CALCOM_BREAKER_OPEN.set(1 if is_open else 0)


class CountingSlotCache:
    """A SlotCache that counts hits and misses into ``booking_calcom_cache_requests_total``."""

    def __init__(self, inner: SlotCache) -> None:
        self._inner = inner
        self._hit = CALCOM_CACHE.labels(result="hit")
        self._miss = CALCOM_CACHE.labels(result="miss")

    def get(self, key: str, owners: Sequence[int]) -> SlotLookup:
        found = self._inner.get(key, owners)
        (self._miss if found.slots is None else self._hit).inc()
        return found

    def put(
        self,
        key: str,
        owners: Sequence[int],
        stamp: tuple[int, ...],
        slots: Sequence[Interval],
        ttl: float,
    ) -> None:
        self._inner.put(key, owners, stamp, slots, ttl)

    def invalidate(self, owner: int) -> None:
        self._inner.invalidate(owner)


class _Operational(Collector):
    """The gauges read from the database at scrape time (nothing when it does not answer:
    the scrape still shows the process's counters, and ``booking_metrics_database_up`` 0)."""

    def __init__(self, read: Callable[[], OperationalCounts]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "booking_metrics_database_up", "1 when the database answered this scrape's counts."
        )
        try:
            counts = self._read()
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        bookings = GaugeMetricFamily("booking_bookings", "Bookings by status.", labels=["status"])
        for status, n in counts.bookings.items():
            bookings.add_metric([status.value], n)
        yield bookings
        jobs = GaugeMetricFamily("booking_outbox_jobs", "Outbox jobs by status.", labels=["status"])
        for job_status, n in counts.jobs.items():
            jobs.add_metric([job_status.value], n)
        yield jobs
        yield GaugeMetricFamily(
            "booking_outbox_oldest_due_seconds",
            "How long the oldest due outbox job has waited past its run time (0: none due).",
            value=counts.oldest_due_seconds,
        )


class _ProcessMetrics(Collector):
    """This process's counters, or every worker's in multiprocess mode."""

    def collect(self) -> Iterator[Metric]:
        folder = multiprocess_dir()
        if folder:
            collector = MultiProcessCollector(None, path=folder)  # type: ignore[no-untyped-call]
            yield from collector.collect()  # type: ignore[no-untyped-call]
        else:
            yield from REGISTRY.collect()


def exposition(read_counts: Callable[[], OperationalCounts]) -> bytes:
    """The text exposition of every metric above plus the database gauges."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ProcessMetrics())
    registry.register(_Operational(read_counts))
    return generate_latest(registry)
