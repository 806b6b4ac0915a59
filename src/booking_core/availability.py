"""Open slots as a pure function of hours, bookings, time off, limits and the clock (DST-correct).

Working hours are local wall-clock times in the practitioner's zone; a range may run past
midnight. Starts step from the start of each working range by the service's slot interval (and,
for ``fill`` services, restart after each busy block). On a DST change a local start that does not
exist (spring forward) is skipped, and an ambiguous one (fall back) is taken once, at its first
occurrence, so no slot is offered twice. Everything returned is in UTC.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from math import gcd
from zoneinfo import ZoneInfo

from attrs import frozen

from booking_core.model import (
    DAY_MINUTES,
    BookingLimits,
    Interval,
    Practitioner,
    Service,
    SlotAlignment,
    TimeRange,
    WindowKind,
    merge_overrides,
)

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

    def blocking_end(self, start: datetime, end: datetime) -> datetime | None:
        """The end of the span [start, end) overlaps first, or None."""
        i = bisect_right(self._ends, start)
        if i < len(self._starts) and self._starts[i] < end:
            return self._ends[i]
        return None


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


_ZERO = timedelta(0)


def _range_bounds(
    day: date, start_minute: int, end_minute: int, zone: ZoneInfo
) -> tuple[datetime, datetime, datetime, datetime, bool]:
    """Local and UTC bounds of a range of ``day`` (its end may pass midnight), and whether the
    range starts at a real instant with no offset change inside it."""
    midnight = datetime.combine(day, _MIDNIGHT)
    local_start = midnight + timedelta(minutes=start_minute)
    local_end = midnight + timedelta(minutes=end_minute)
    start_utc = _local_to_utc(local_start, zone)
    range_start = start_utc if start_utc is not None else _gap_end(local_start, zone)
    range_end = _range_bound(local_end, zone)
    steady = (
        start_utc is not None
        and range_start.astimezone(zone).utcoffset() == range_end.astimezone(zone).utcoffset()
    )
    return local_start, local_end, range_start, range_end, steady


def _grid_starts(
    day: date,
    start_minute: int,
    end_minute: int,
    zone: ZoneInfo,
    step: timedelta,
    length: timedelta,
) -> Iterator[datetime]:
    local_start, local_end, range_start, range_end, steady = _range_bounds(
        day, start_minute, end_minute, zone
    )
    if steady:
        # No offset change inside the range (the usual case): step in real time.
        start = range_start
        while start + length <= range_end:
            yield start
            start += step
        return
    # A DST change falls inside the range (or the range starts in a gap): step on the wall
    # clock from the range's start and resolve each start.
    local = local_start
    while local < local_end:
        utc = _local_to_utc(local, zone)
        if utc is not None and utc >= range_start and utc + length <= range_end:
            yield utc
        local += step


def fill_step(interval_minutes: int) -> int:
    """The granularity (minutes) a ``fill`` start is rounded up to: the interval's step within an
    hour, gcd(interval, 60), so a 45-minute service restarts on any quarter hour, a 30-minute
    one on the half hour, and an hour-long one on the hour (as Cal.com rounds)."""
    return gcd(interval_minutes, 60)


def _round_up(instant: datetime, zone: ZoneInfo, granularity: int) -> datetime:
    """``instant`` rounded up to a multiple of ``granularity`` minutes of the local hour."""
    local = instant.astimezone(zone)
    into = timedelta(
        minutes=local.minute % granularity, seconds=local.second, microseconds=local.microsecond
    )
    if not into:
        return instant
    return instant - into + timedelta(minutes=granularity)


def _fill_starts(
    day: date,
    start_minute: int,
    end_minute: int,
    zone: ZoneInfo,
    step: timedelta,
    length: timedelta,
    gate: _Gate,
    granularity: int,
) -> Iterator[datetime]:
    """Starts of one range, gap-filling: from the range's start by the interval, and after a
    busy block (or the notice edge) from the first free instant rounded up (fill_step).

    Steps in real time, so across a DST change inside the range the later starts keep the
    range's earlier wall-clock minutes shifted by the change.
    """
    _, _, range_start, range_end, _ = _range_bounds(day, start_minute, end_minute, zone)
    start = range_start
    while start + length <= range_end and start < gate.latest:
        free = gate.next_free(start)
        if free == start:
            yield start
            start += step
        else:
            start = _round_up(free, zone, granularity)


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def working_ranges(
    practitioner: Practitioner, first_day: date, last_day: date
) -> Iterator[tuple[date, int, int]]:
    """The working ranges ``(day, start_minute, end_minute)`` that can hold starts on the local
    dates ``first_day``..``last_day``: the dates' own, and the day before's (its hours may run
    past midnight into ``first_day``).

    Overrides of one date are merged (model.merge_overrides). A day whose last range ends at
    24:00 is joined to the next day's range that starts at 00:00, so a session can cross
    midnight; the joined range is then not repeated on its own day.
    """
    overrides = merge_overrides(practitioner.overrides)
    hours = practitioner.weekly_hours

    def of(day: date) -> tuple[TimeRange, ...]:
        found = overrides.get(day)
        return found if found is not None else hours.for_weekday(day.weekday())

    day = first_day - timedelta(days=1)
    todays = of(day)
    skip_first = False
    while day <= last_day:
        tomorrow = day + timedelta(days=1)
        following = of(tomorrow)
        ranges = todays[1:] if skip_first else todays
        skip_first = False
        for i, r in enumerate(ranges):
            end = r.end_minute
            if (
                i == len(ranges) - 1
                and end == DAY_MINUTES
                and following
                and following[0].start_minute == 0
            ):
                end += following[0].end_minute
                skip_first = True
            yield day, r.start_minute, end
        day, todays = tomorrow, following


class _Gate:
    """What a start must pass: the booking window, time off and occupied spans, both with the
    service's buffers, and the booking limits."""

    __slots__ = ("after", "before", "busy", "earliest", "latest", "length", "limits", "off")

    def __init__(
        self,
        practitioner: Practitioner,
        service: Service,
        now: datetime,
        occupied: Iterable[Interval],
        limits: LimitCheck | None,
    ) -> None:
        self.earliest, self.latest = bookable_span(service, practitioner.zone, now)
        self.busy = _Blocks((o.start, o.end) for o in occupied)
        self.off = _Blocks((t.period.start, t.period.end) for t in practitioner.time_off)
        self.length = service.duration
        self.before, self.after = service.buffer_before, service.buffer_after
        self.limits = limits

    def allows(self, start: datetime) -> bool:
        if start < self.earliest or start >= self.latest:
            return False
        low, high = start - self.before, start + self.length + self.after
        if self.off.overlaps(low, high) or self.busy.overlaps(low, high):
            return False
        return self.limits is None or self.limits.allows(start)

    def next_free(self, start: datetime) -> datetime:
        """The first instant at or after ``start`` whose buffered span is clear of the notice
        edge, time off and occupied spans (limits and the window's far end aside)."""
        start = max(start, self.earliest)
        while True:
            low, high = start - self.before, start + self.length + self.after
            blocked = self.busy.blocking_end(low, high) or self.off.blocking_end(low, high)
            if blocked is None:
                return start
            start = blocked + self.before


def free_slots(
    practitioner: Practitioner,
    service: Service,
    *,
    first_day: date,
    last_day: date,
    now: datetime,
    occupied: Iterable[Interval],
    limits: LimitCheck | None = None,
) -> list[Interval]:
    """Slots one service long starting on the local dates ``first_day``..``last_day`` (inclusive).

    A slot is offered when it lies inside the day's working hours (date overrides, merged,
    replace the weekday's hours; hours may cross midnight), starts within the service's booking
    window (bookable_span: minimum notice to the window's end), its buffered span touches
    neither the practitioner's time off nor ``occupied`` (the buffered spans of bookings that
    occupy the calendar), and ``limits`` (if given) let one more booking in on its day and week.
    Starts follow the service's alignment: ``grid`` steps from each range's start by the
    interval; ``fill`` also restarts after each busy block at the first free instant, rounded up
    (fill_step).
    """
    gate = _Gate(practitioner, service, now, occupied, limits)
    window = local_day_window(practitioner.zone, first_day, last_day)
    clipped = (
        s
        for s in _candidates(practitioner, service, first_day, last_day, gate)
        if window.start <= s < window.end
    )
    return _keep(clipped, gate, service.duration)


def offers_start(
    practitioner: Practitioner,
    service: Service,
    start: datetime,
    *,
    now: datetime,
    occupied: Iterable[Interval],
    limits: LimitCheck | None = None,
) -> bool:
    """Whether ``start`` is one of free_slots' starts for its local date: the same rules, but
    it stops at the start (a booking request checks one start, not a day's list)."""
    gate = _Gate(practitioner, service, now, occupied, limits)
    if not gate.allows(start):
        return False
    day = start.astimezone(practitioner.zone).date()
    if service.alignment is SlotAlignment.GRID:
        step, length, zone = service.interval, service.duration, practitioner.zone
        return any(
            _on_grid(start, range_day, lo, hi, zone, step, length)
            for range_day, lo, hi in working_ranges(practitioner, day, day)
        )
    return any(s == start for s in _candidates(practitioner, service, day, day, gate))


def _on_grid(
    start: datetime,
    day: date,
    start_minute: int,
    end_minute: int,
    zone: ZoneInfo,
    step: timedelta,
    length: timedelta,
) -> bool:
    """Whether _grid_starts of this range yields ``start``: arithmetic when the range has no
    offset change inside it (its starts are then every ``step`` of real time), else the walk."""
    _, _, range_start, range_end, steady = _range_bounds(day, start_minute, end_minute, zone)
    if not steady:
        return any(
            s == start for s in _grid_starts(day, start_minute, end_minute, zone, step, length)
        )
    offset = start - range_start
    return offset >= _ZERO and start + length <= range_end and offset % step == _ZERO


def _candidates(
    practitioner: Practitioner, service: Service, first_day: date, last_day: date, gate: _Gate
) -> Iterator[datetime]:
    """The starts the working ranges of ``first_day``..``last_day`` produce (before the gate,
    except that ``fill`` starts restart after what the gate blocks), in range order."""
    zone = practitioner.zone
    step, length = service.interval, service.duration
    ranges = working_ranges(practitioner, first_day, last_day)
    if service.alignment is SlotAlignment.FILL:
        granularity = fill_step(int(step.total_seconds()) // 60)
        for day, lo, hi in ranges:
            yield from _fill_starts(day, lo, hi, zone, step, length, gate, granularity)
    else:
        for day, lo, hi in ranges:
            yield from _grid_starts(day, lo, hi, zone, step, length)


def filter_slots(
    starts: Iterable[datetime],
    practitioner: Practitioner,
    service: Service,
    *,
    now: datetime,
    occupied: Iterable[Interval],
    limits: LimitCheck | None = None,
) -> list[Interval]:
    """Keep the starts that the window, time off, occupied spans and limits allow (see
    free_slots).

    Used for the local schedule and for starts an external calendar offered, so a slot we hold is
    never offered whatever the external calendar says.
    """
    gate = _Gate(practitioner, service, now, occupied, limits)
    return _keep(starts, gate, service.duration)


def _keep(starts: Iterable[datetime], gate: _Gate, length: timedelta) -> list[Interval]:
    slots: list[Interval] = []
    seen: set[datetime] = set()
    for start in starts:
        if start in seen or not gate.allows(start):
            continue
        seen.add(start)
        utc = start.astimezone(UTC)
        slots.append(Interval(utc, utc + length))
    slots.sort(key=_slot_start)
    return slots


def bookable_span(service: Service, zone: ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    """The instants a start of ``service`` may take, ``[earliest, end)``: from ``now`` plus the
    minimum notice to the end of its booking window (model.WindowKind): ``rolling`` ends
    ``max_advance_days`` x 24 h after now (that instant included), ``calendar_days`` at the end
    of the N-th local date after today, ``business_days`` at the end of the N-th local weekday
    (Monday to Friday) after today, ``date_range`` at the end of its last local date (and it
    starts no earlier than its first)."""
    earliest = now + timedelta(minutes=service.min_notice_minutes)
    window = service.window
    today = now.astimezone(zone).date()
    if window.kind is WindowKind.CALENDAR_DAYS:
        last = today + timedelta(days=window.days or 0)
    elif window.kind is WindowKind.BUSINESS_DAYS:
        last, left = today, window.days or 0
        while left:
            last += timedelta(days=1)
            if last.weekday() < 5:
                left -= 1
    elif window.kind is WindowKind.DATE_RANGE and window.first_day and window.last_day:
        span = local_day_window(zone, window.first_day, window.last_day)
        return max(earliest, span.start), span.end
    else:
        # Starts are whole microseconds: "at most now + N days" is "before that plus 1 µs".
        return earliest, now + timedelta(days=service.max_advance_days, microseconds=1)
    return earliest, local_day_window(zone, last, last).end


@frozen
class LimitCheck:
    """Booking limits and the occupying bookings they count, ``(start, minutes)`` each.

    ``allows(start)`` says whether one more booking ``minutes`` long at ``start`` keeps every
    limit on its local date and its local ISO week (Monday to Sunday).
    """

    zone: ZoneInfo
    minutes: int  # of the booking to add
    rules: tuple[tuple[BookingLimits, tuple[tuple[datetime, int], ...]], ...]

    def allows(self, start: datetime) -> bool:
        return all(
            within_limits(limits, self.zone, start, self.minutes, booked)
            for limits, booked in self.rules
        )


def within_limits(
    limits: BookingLimits,
    zone: ZoneInfo,
    start: datetime,
    minutes: int,
    booked: Iterable[tuple[datetime, int]],
) -> bool:
    """Whether a booking ``minutes`` long at ``start`` fits ``limits`` beside ``booked`` (the
    ``(start, minutes)`` of the bookings the limits count), by local date and ISO week."""
    if not limits.any:
        return True
    day = start.astimezone(zone).date()
    week = day.isocalendar()[:2]
    day_count = week_count = day_minutes = week_minutes = 0
    for other_start, other_minutes in booked:
        other_day = other_start.astimezone(zone).date()
        if other_day.isocalendar()[:2] != week:
            continue
        week_count += 1
        week_minutes += other_minutes
        if other_day == day:
            day_count += 1
            day_minutes += other_minutes
    return (
        _fits(limits.bookings_per_day, day_count + 1)
        and _fits(limits.bookings_per_week, week_count + 1)
        and _fits(limits.minutes_per_day, day_minutes + minutes)
        and _fits(limits.minutes_per_week, week_minutes + minutes)
    )


def _fits(limit: int | None, value: int) -> bool:
    return limit is None or value <= limit


def limit_weeks(zone: ZoneInfo, first_day: date, last_day: date) -> Interval:
    """The UTC span of the local ISO weeks that hold ``first_day``..``last_day``: the bookings a
    limit counts for slots on those dates start inside it."""
    monday = first_day - timedelta(days=first_day.weekday())
    sunday = last_day + timedelta(days=6 - last_day.weekday())
    return local_day_window(zone, monday, sunday)


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


def free_ranges(slots: Iterable[Interval], step: timedelta) -> list[Interval]:
    """The free ranges of an answer: runs of consecutive offered starts (each at most ``step``,
    the service's interval, after the one before, or overlapping it), each from its first start
    to its last slot's end. Every offered slot lies in one range; the time between two ranges
    holds no offered start."""
    merged: list[Interval] = []
    last_start: datetime | None = None
    for slot in sorted(slots, key=_slot_start):
        if (
            merged
            and last_start is not None
            and (slot.start <= merged[-1].end or slot.start - last_start <= step)
        ):
            merged[-1] = Interval(merged[-1].start, max(merged[-1].end, slot.end))
        else:
            merged.append(slot)
        last_start = slot.start
    return merged


def bucket_by_day(
    slots: Iterable[Interval], zone: ZoneInfo, first_day: date, last_day: date
) -> list[tuple[date, list[Interval]]]:
    """``slots`` grouped by the local date (in ``zone``) they start on, one entry for every
    date ``first_day``..``last_day`` (an empty list for a date with none), in order."""
    days: dict[date, list[Interval]] = {d: [] for d in _days(first_day, last_day)}
    for slot in slots:
        bucket = days.get(slot.start.astimezone(zone).date())
        if bucket is not None:
            bucket.append(slot)
    return list(days.items())
