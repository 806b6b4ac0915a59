"""Open slots as a pure function of hours, bookings, time off and the clock (DST-correct).

Working hours are local wall-clock times in the practitioner's zone. Starts step from the start
of each working range by the service's slot interval. On a DST change a local start that does not
exist (spring forward) is skipped, and an ambiguous one (fall back) is taken once, at its first
occurrence, so no slot is offered twice. Everything returned is in UTC.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from booking_core.model import Interval, Practitioner, Service, TimeRange

_MIDNIGHT = time(0, 0)


class _Blocks:
    """Sorted, merged, disjoint spans with a fast "does [s, e) overlap any?" test."""

    __slots__ = ("_ends", "_starts")

    def __init__(self, spans: Iterable[tuple[datetime, datetime]]) -> None:
        starts: list[datetime] = []
        ends: list[datetime] = []
        for start, end in sorted(spans):
            if ends and start <= ends[-1]:
                if end > ends[-1]:
                    ends[-1] = end
            else:
                starts.append(start)
                ends.append(end)
        self._starts = starts
        self._ends = ends

    def overlaps(self, start: datetime, end: datetime) -> bool:
        i = bisect_right(self._ends, start)  # first span ending after `start`
        return i < len(self._starts) and self._starts[i] < end


def _local_to_utc(naive: datetime, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of a local wall time (first one if ambiguous); None if it never happens."""
    aware = naive.replace(tzinfo=zone, fold=0)
    utc = aware.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != naive:
        return None  # inside a spring-forward gap
    return utc


def _range_bound(naive: datetime, zone: ZoneInfo) -> datetime:
    """UTC instant of a range boundary; a boundary inside a gap moves to the end of the gap."""
    utc = _local_to_utc(naive, zone)
    return utc if utc is not None else _gap_end(naive, zone)


def _gap_end(naive: datetime, zone: ZoneInfo) -> datetime:
    """The instant the clocks jump over ``naive``, a wall time in a spring-forward gap.

    "Work until 24:00" on the eve of a midnight change (Africa/Cairo, America/Santiago) ends at
    the jump, and "work from 02:30" in New York's 02:00-03:00 gap starts at it.
    """
    # Read with the offset after the change the wall time lands before the jump (fold=1), read
    # with the offset before it lands after (fold=0); transitions fall on whole seconds.
    before = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    new_offset = after.astimezone(zone).utcoffset()
    second = timedelta(seconds=1)
    while after - before > second:
        middle = before + ((after - before) // second // 2) * second
        if middle.astimezone(zone).utcoffset() == new_offset:
            after = middle
        else:
            before = middle
    return after


def _candidate_starts(
    day: date, ranges: Sequence[TimeRange], zone: ZoneInfo, step: timedelta, length: timedelta
) -> Iterator[datetime]:
    midnight = datetime.combine(day, _MIDNIGHT)
    for r in ranges:
        local_start = midnight + timedelta(minutes=r.start_minute)
        local_end = midnight + timedelta(minutes=r.end_minute)
        start_utc = _local_to_utc(local_start, zone)
        range_start = start_utc if start_utc is not None else _gap_end(local_start, zone)
        range_end = _range_bound(local_end, zone)
        if (
            start_utc is not None
            and range_start.astimezone(zone).utcoffset() == range_end.astimezone(zone).utcoffset()
        ):
            # No offset change inside the range (the usual case): step in real time.
            start = range_start
            while start + length <= range_end:
                yield start
                start += step
            continue
        # A DST change falls inside the range (or the range starts in a gap): step on the wall
        # clock from the range's start and resolve each start.
        local = local_start
        while local < local_end:
            utc = _local_to_utc(local, zone)
            if utc is not None and utc >= range_start and utc + length <= range_end:
                yield utc
            local += step


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def free_slots(
    practitioner: Practitioner,
    service: Service,
    *,
    first_day: date,
    last_day: date,
    now: datetime,
    occupied: Iterable[Interval],
) -> list[Interval]:
    """Slots one service long on the local dates ``first_day``..``last_day`` (inclusive).

    A slot is offered when it lies inside the day's working hours (a date override replaces the
    weekday's hours), starts no earlier than ``now`` + minimum notice and no later than ``now`` +
    maximum advance, does not touch the practitioner's time off, and its buffered span does not
    overlap ``occupied`` (the buffered spans of bookings that occupy the calendar).
    """
    zone = practitioner.zone
    overrides = {o.day: o.ranges for o in practitioner.overrides}
    hours = practitioner.weekly_hours
    candidates = (
        start
        for day in _days(first_day, last_day)
        for start in _candidate_starts(
            day,
            overrides.get(day, hours.for_weekday(day.weekday())),
            zone,
            service.interval,
            service.duration,
        )
    )
    return filter_slots(candidates, practitioner, service, now=now, occupied=occupied)


def filter_slots(
    starts: Iterable[datetime],
    practitioner: Practitioner,
    service: Service,
    *,
    now: datetime,
    occupied: Iterable[Interval],
) -> list[Interval]:
    """Keep the starts that notice, advance, time off and occupied spans allow (see free_slots).

    Used for the local schedule and for starts an external calendar offered, so a slot we hold is
    never offered whatever the external calendar says.
    """
    earliest = now + timedelta(minutes=service.min_notice_minutes)
    latest = now + timedelta(days=service.max_advance_days)
    busy = _Blocks((o.start, o.end) for o in occupied)
    off = _Blocks((t.period.start, t.period.end) for t in practitioner.time_off)
    length, before, after = service.duration, service.buffer_before, service.buffer_after
    slots: list[Interval] = []
    seen: set[datetime] = set()
    for start in starts:
        if start < earliest or start > latest or start in seen:
            continue
        end = start + length
        if off.overlaps(start, end) or busy.overlaps(start - before, end + after):
            continue
        seen.add(start)
        slots.append(Interval(start.astimezone(UTC), end.astimezone(UTC)))
    slots.sort(key=_slot_start)
    return slots


def _slot_start(slot: Interval) -> datetime:
    return slot.start


def local_day_window(zone: ZoneInfo, first_day: date, last_day: date) -> Interval:
    """The UTC span from the start of ``first_day`` to the end of ``last_day``, local time."""
    start = _range_bound(datetime.combine(first_day, _MIDNIGHT), zone)
    end = _range_bound(datetime.combine(last_day + timedelta(days=1), _MIDNIGHT), zone)
    return Interval(start, end)


def occupied_window(window: Interval, service: Service) -> Interval:
    """The span whose occupying bookings can clash with slots in ``window``.

    Stored bookings' spans already include their own buffers; ours reach further by this
    service's buffers.
    """
    return Interval(window.start - service.buffer_before, window.end + service.buffer_after)
