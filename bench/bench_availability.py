"""Benchmark: availability.free_slots for 60 days, one practitioner, 500 occupying bookings,
for each slot alignment (grid and fill).

Run ``python bench/bench_availability.py`` (optionally ``--repeat N``). Prints the median and p95
wall time of one call per alignment; the target is a median under 5 ms for each.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, date, datetime, timedelta

import attrs

from booking_core.availability import free_slots
from booking_core.model import (
    Interval,
    Money,
    Practitioner,
    Service,
    SlotAlignment,
    TimeOff,
    WeeklyHours,
)

FIRST_DAY = date(2030, 3, 1)  # the window crosses Europe/London's spring-forward (31 March)
DAYS = 60
BOOKINGS = 500


def build() -> tuple[Practitioner, Service, list[Interval], datetime]:
    """A practitioner with two ranges a weekday and a Saturday morning, a 30-minute grid."""
    practitioner = Practitioner(
        id=1,
        name="Bench",
        timezone="Europe/London",
        weekly_hours=WeeklyHours.from_mapping(
            {d: ["08:00-12:30", "13:30-19:00"] for d in range(5)} | {5: ["09:00-13:00"]}
        ),
        time_off=[
            TimeOff(
                period=Interval(
                    datetime(2030, 4, 15, tzinfo=UTC), datetime(2030, 4, 19, tzinfo=UTC)
                ),
                reason="holiday",
            )
        ],
    )
    service = Service(
        id=1,
        name="Session",
        duration_minutes=50,
        price=Money(9000, "gbp"),
        buffer_before_minutes=5,
        buffer_after_minutes=10,
        slot_interval_minutes=30,
        max_advance_days=90,
    )
    now = datetime(2030, 2, 28, 12, 0, tzinfo=UTC)
    # 500 non-overlapping bookings of 30 or 60 minutes (other services of the same practitioner)
    # on the 30-minute grid inside working hours, as real ones are.
    rng = random.Random(1)
    zone = practitioner.zone
    grid: list[datetime] = []
    for offset in range(DAYS):
        day = FIRST_DAY + timedelta(days=offset)
        for r in practitioner.weekly_hours.for_weekday(day.weekday()):
            for minute in range(r.start_minute, r.end_minute - 30 + 1, 30):
                local = datetime.combine(day, datetime.min.time()) + timedelta(minutes=minute)
                grid.append(local.replace(tzinfo=zone).astimezone(UTC))
    occupied: list[Interval] = []
    for start in rng.sample(grid, len(grid)):
        span = Interval(start, start + timedelta(minutes=rng.choice((30, 60))))
        if not any(span.overlaps(o) for o in occupied):
            occupied.append(span)
        if len(occupied) == BOOKINGS:
            break
    if len(occupied) != BOOKINGS:
        raise SystemExit(f"could only place {len(occupied)} bookings")
    return practitioner, service, occupied, now


def measure(
    practitioner: Practitioner,
    service: Service,
    occupied: list[Interval],
    now: datetime,
    repeat: int,
) -> tuple[int, float, float]:
    """(slots offered, median ms, p95 ms) of ``repeat`` calls after a warm-up."""
    last_day = FIRST_DAY + timedelta(days=DAYS - 1)

    def run() -> int:
        slots = free_slots(
            practitioner,
            service,
            first_day=FIRST_DAY,
            last_day=last_day,
            now=now,
            occupied=occupied,
        )
        return len(slots)

    count = run()
    for _ in range(10):
        run()
    timings: list[float] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        timings.append((time.perf_counter() - t0) * 1000)
    timings.sort()
    return count, statistics.median(timings), timings[int(0.95 * (len(timings) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=300, help="timed calls per scenario")
    args = parser.parse_args()
    practitioner, grid, occupied, now = build()
    for alignment in SlotAlignment:
        service = attrs.evolve(grid, alignment=alignment)
        count, median, p95 = measure(practitioner, service, occupied, now, args.repeat)
        print(
            f"free_slots ({alignment.value}), {DAYS} days, {len(occupied)} occupying bookings "
            f"({count} slots offered), {args.repeat} runs:"
        )
        print(f"  median {median:.2f} ms   p95 {p95:.2f} ms   (target: median < 5 ms)")
        # For reference: the same window with an empty calendar, every candidate offered.
        count, median, p95 = measure(practitioner, service, [], now, args.repeat)
        print(f"reference ({alignment.value}), no bookings ({count} slots offered):")
        print(f"  median {median:.2f} ms   p95 {p95:.2f} ms")


if __name__ == "__main__":
    main()
