"""Fixtures for the Cal.com adapter tests: the fake Cal.com server, a closed port, Redis, a world.

Import them explicitly in a test module (``from calcom_fixtures import fake_calcom, ...``); they
are not in conftest.py. Redis comes from conftest.redis_server_url (real when the machine has
one, never skipped); each test gets its own key prefix, deleted afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

import pytest

from adapters.calcom import CalComCalendarGateway
from adapters.memory import FakePaymentGateway, FixedClock, InMemoryStore, RecordingNotifier
from adapters.slot_cache import InMemorySlotCache, RedisSlotCache
from booking_core.jobs import JobContext
from booking_core.model import CalendarLink, Money
from booking_core.policy import BookingRules
from entrypoints.dev.sample_data import sample_practitioner, sample_service

try:
    from fake_calcom import FakeCalcom, free_port_url
except ModuleNotFoundError:  # tests/integration imported as a package
    from tests.integration.fake_calcom import FakeCalcom, free_port_url

EVENT_TYPE_ID = 1001
TUESDAY = date(2030, 1, 8)
# Europe/Berlin is UTC+1 in January: 09:30 and 13:30 local, off the schedule's hourly grid.
CALCOM_STARTS = [datetime(2030, 1, 8, 8, 30, tzinfo=UTC), datetime(2030, 1, 8, 12, 30, tzinfo=UTC)]


class ManualClock:
    """Monotonic seconds that move only when told (for the breaker, the budget and the cache)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingSleep:
    """Stands in for time.sleep: remembers the waits and moves a ManualClock if given one."""

    def __init__(self, clock: ManualClock | None = None) -> None:
        self.waits: list[float] = []
        self._clock = clock

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self._clock is not None:
            self._clock.advance(seconds)


@pytest.fixture
def fake_calcom() -> Iterator[FakeCalcom]:
    """A running fake Cal.com with event type 1001 (60 min) offering CALCOM_STARTS."""
    server = FakeCalcom().start()
    server.add_event_type(EVENT_TYPE_ID, slug="consultation", username="dr-ada", length=60)
    server.offer(EVENT_TYPE_ID, CALCOM_STARTS)
    try:
        yield server
    finally:
        server.close()
    assert server.errors == [], f"the fake Cal.com itself failed: {server.errors!r}"


@pytest.fixture
def closed_port_url() -> str:
    """An API URL on a local port where nothing listens: every connection is refused."""
    return free_port_url()


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """The session's Redis (see conftest.redis_server_url: real when there is one)."""
    return redis_server_url


@pytest.fixture
def redis_cache_factory(redis_url: str) -> Iterator[Callable[[], RedisSlotCache]]:
    """Build RedisSlotCaches sharing one unique key prefix (as several processes would)."""
    prefix = f"test:calcom:{uuid.uuid4().hex}:"
    caches: list[RedisSlotCache] = []

    def build() -> RedisSlotCache:
        cache = RedisSlotCache(redis_url, prefix=prefix)
        caches.append(cache)
        return cache

    yield build
    cleaner = RedisSlotCache(redis_url, prefix=prefix)
    cleaner.clear()
    cleaner.close()
    for cache in caches:
        cache.close()


def make_gateway(
    fake: FakeCalcom | None = None,
    *,
    api_url: str | None = None,
    links: dict[int, CalendarLink] | None = None,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
    **options: object,
) -> CalComCalendarGateway:
    """A gateway tuned for tests: no real sleeping, an in-process slot cache on the same clock
    unless ``cache`` is given, and a budget of 1.5 s per call. The timeouts are the budget: the
    local fake answers in milliseconds, but a loaded CI machine once kept it past 0.5 s; the
    tests of a hanging Cal.com set short ones."""
    clock = clock or ManualClock()
    settings: dict[str, object] = {
        "connect_timeout": 1.5,
        "read_timeout": 1.5,
        "call_budget": 1.5,
        "cache": InMemorySlotCache(clock=clock),
        **options,
    }
    return CalComCalendarGateway(
        api_key=fake.api_key if fake is not None else "cal_test_unused_key",
        api_url=api_url or (fake.url if fake is not None else "https://api.cal.com/v2"),
        links=links if links is not None else {},
        sleep=sleep or RecordingSleep(),
        clock=clock,
        **settings,  # type: ignore[arg-type]
    )


class World:
    """The booking service on memory adapters with a real Cal.com gateway: one practitioner."""

    def __init__(self, calendar: CalComCalendarGateway, *, stored_link: bool = True) -> None:
        self.store = InMemoryStore()
        self.clock = FixedClock()  # Monday 2030-01-07 08:00 UTC
        self.rules = BookingRules()
        self.calendar = calendar
        self.payments = FakePaymentGateway()
        self.notifier = RecordingNotifier()
        practitioner = sample_practitioner(
            name="Dr Ada",
            timezone="Europe/Berlin",
            services=[sample_service(duration_minutes=60, price=Money(8000, "eur"))],
            hours={d: ["09:00-17:00"] for d in range(5)},
            calendar_link=CalendarLink(str(EVENT_TYPE_ID)) if stored_link else None,
        )
        with self.store.unit_of_work() as uow:
            practitioner = uow.practitioners.add(practitioner)
            uow.commit()
        self.practitioner = practitioner
        self.practitioner_id = practitioner.id or 0
        self.service_id = practitioner.services[0].id or 0

    def uow(self):  # type: ignore[no-untyped-def]
        return self.store.unit_of_work()

    def job_context(self) -> JobContext:
        return JobContext(
            uow=self.uow(),
            payments=self.payments,
            calendar=self.calendar,
            notifier=self.notifier,
            clock=self.clock,
            rules=self.rules,
        )
