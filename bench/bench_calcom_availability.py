"""Benchmark: get_availability latency through the Cal.com adapter, healthy, failing, breaker open.

Run ``python bench/bench_calcom_availability.py`` (``--repeat N``, ``--no-hang`` to skip the slow
hanging case, ``--redis URL`` to also measure the shared Redis cache). Cal.com is the local fake
server from tests/integration (real HTTP on 127.0.0.1), the store is in memory, and the gateway
runs with its default settings (2 s connect, 3 s read, 4 s budget, 2 retries, breaker 5 / 30 s)
unless a line says otherwise. Prints the median, p95 and worst wall time of one call.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))

from calcom_fixtures import CALCOM_STARTS, EVENT_TYPE_ID, TUESDAY, World
from fake_calcom import FakeCalcom, free_port_url

from adapters.calcom import CalComCalendarGateway
from adapters.slot_cache import InMemorySlotCache, RedisSlotCache
from booking_core.usecases import Availability, AvailabilityQuery, get_availability


def availability(world: World) -> Availability:
    return get_availability(
        AvailabilityQuery(world.practitioner_id, world.service_id, TUESDAY, TUESDAY),
        uow=world.uow(),
        calendar=world.calendar,
        clock=world.clock,
        rules=world.rules,
    )


def measure(
    label: str,
    world: World,
    repeat: int,
    *,
    before: Callable[[], None] | None = None,
    expect: str,
) -> None:
    timings = []
    for _ in range(repeat):
        if before is not None:
            before()
        began = time.perf_counter()
        result = availability(world)
        timings.append(time.perf_counter() - began)
        if result.source != expect:
            raise SystemExit(f"{label}: expected source {expect!r}, got {result.source!r}")
    timings.sort()
    p95 = timings[min(len(timings) - 1, int(len(timings) * 0.95))]
    print(
        f"{label:<58} source={expect:<8} n={repeat:<4} median {_ms(statistics.median(timings))}"
        f"  p95 {_ms(p95)}  worst {_ms(timings[-1])}"
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:9.2f} ms"


def gateway(fake: FakeCalcom, **options: object) -> CalComCalendarGateway:
    options.setdefault("cache", InMemorySlotCache())
    return CalComCalendarGateway(api_key=fake.api_key, api_url=fake.url, **options)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--no-hang", action="store_true", help="skip the ~4 s per call case")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="'' to skip")
    args = parser.parse_args()
    n = args.repeat
    logging.basicConfig(level=logging.ERROR)  # the adapter's one warning per outage is expected

    with FakeCalcom() as fake:
        fake.add_event_type(EVENT_TYPE_ID)
        fake.offer(EVENT_TYPE_ID, CALCOM_STARTS)

        healthy = World(gateway(fake))
        calendar = healthy.calendar
        measure(
            "Cal.com healthy, cache cold (invalidated before each call)",
            healthy, n, before=lambda: calendar.invalidate(healthy.practitioner_id),
            expect="calcom",
        )  # fmt: skip
        measure("Cal.com healthy, cache warm", healthy, n, expect="calcom")

        if args.redis:
            cache = RedisSlotCache(args.redis, prefix=f"bench:{uuid.uuid4().hex}:")
            shared = World(gateway(fake, cache=cache))
            measure(
                "Cal.com healthy, Redis cache cold", shared, n,
                before=lambda: shared.calendar.invalidate(shared.practitioner_id),
                expect="calcom",
            )  # fmt: skip
            measure("Cal.com healthy, Redis cache warm", shared, n, expect="calcom")
            cache.clear()
            cache.close()

        fake.failing_status = 500
        failing = World(gateway(fake, cache_seconds=0, breaker_threshold=10**9))
        measure(
            "Cal.com answers 500 (3 attempts, real backoff, no breaker)",
            failing, max(5, n // 5), expect="schedule",
        )  # fmt: skip
        fake.failing_status = None

        refused = World(
            CalComCalendarGateway(
                api_key="k", api_url=free_port_url(), cache_seconds=0, breaker_threshold=10**9
            )
        )
        measure("Cal.com refuses connections (no breaker)", refused, n, expect="schedule")

        if not args.no_hang:
            fake.hang_seconds = 60
            hanging = World(gateway(fake, cache_seconds=0, breaker_threshold=10**9))
            measure("Cal.com hangs (default timeouts, no breaker)", hanging, 3, expect="schedule")
            fake.hang_seconds = 0

        fake.failing_status = 500
        tripped = World(gateway(fake, cache_seconds=0))
        for _ in range(5):
            availability(tripped)  # five failed calls open the breaker
        measure("breaker open (Cal.com skipped)", tripped, n, expect="schedule")
        fake.failing_status = None

        print(f"requests the fake Cal.com received: {len(fake.requests)}")


if __name__ == "__main__":
    main()
