"""Scheduling rules of issue 16 as pure functions: fill alignment, hours across midnight, booking
windows, limits, merged overrides and time off with buffers; examples and properties."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from booking_core.availability import (
    bookable_span,
    fill_step,
    free_slots,
    within_limits,
)
from booking_core.errors import ValidationFailed
from booking_core.model import (
    BookingLimits,
    BookingWindow,
    DateOverride,
    Interval,
    Practitioner,
    Service,
    SlotAlignment,
    TimeOff,
    TimeRange,
    WeeklyHours,
    WindowKind,
    merge_overrides,
    union_ranges,
)
from unit.test_availability import (
    EARLY,
    MONDAY,
    PROPERTY,
    _boundary,
    _spans,
    practitioner,
    reference_slots,
    scenarios,
    service,
    utc,
)


def walls(slots: list[Interval], zone: str = "Europe/London") -> list[str]:
    return [s.start.astimezone(ZoneInfo(zone)).strftime("%H:%M") for s in slots]


# -- 1. fill alignment ---------------------------------------------------------------------------


def test_fill_restarts_after_an_odd_length_booking() -> None:
    """The issue's case: a 15-minute booking at 04:00; grid next offers 04:45, fill 04:15."""
    p = practitioner({0: ["03:15-07:00"]})
    busy = [Interval(utc(MONDAY, "04:00"), utc(MONDAY, "04:15"))]
    grid = free_slots(p, service(45), first_day=MONDAY, last_day=MONDAY, now=EARLY, occupied=busy)
    fill = free_slots(
        p,
        service(45, alignment=SlotAlignment.FILL),
        first_day=MONDAY,
        last_day=MONDAY,
        now=EARLY,
        occupied=busy,
    )
    assert walls(grid) == ["03:15", "04:45", "05:30", "06:15"]
    assert walls(fill) == ["03:15", "04:15", "05:00", "05:45"]


def test_fill_restarts_at_the_notice_edge_rounded_up() -> None:
    p = practitioner({0: ["09:00-12:00"]})
    now = utc(MONDAY, "09:07")
    s = service(30, alignment=SlotAlignment.FILL, slot_interval_minutes=60)
    slots = free_slots(p, s, first_day=MONDAY, last_day=MONDAY, now=now, occupied=[])
    assert walls(slots) == ["10:00", "11:00"]  # gcd(60, 60): on the hour
    s15 = service(45, alignment=SlotAlignment.FILL)
    slots = free_slots(p, s15, first_day=MONDAY, last_day=MONDAY, now=now, occupied=[])
    assert walls(slots) == ["09:15", "10:00", "10:45"]


def test_fill_keeps_buffers_clear() -> None:
    p = practitioner({0: ["09:00-13:00"]})
    busy = [Interval(utc(MONDAY, "09:30"), utc(MONDAY, "10:10"))]
    kwargs: dict[str, object] = {"buffer_before_minutes": 5}
    grid = free_slots(
        p, service(45, **kwargs), first_day=MONDAY, last_day=MONDAY, now=EARLY, occupied=busy
    )
    fill = free_slots(
        p,
        service(45, alignment=SlotAlignment.FILL, **kwargs),
        first_day=MONDAY,
        last_day=MONDAY,
        now=EARLY,
        occupied=busy,
    )
    assert walls(grid) == ["10:30", "11:15", "12:00"]
    assert walls(fill) == ["10:15", "11:00", "11:45"]  # 10:10 + 5 min buffer, on a quarter
    assert (fill_step(30), fill_step(45), fill_step(50), fill_step(90)) == (30, 15, 10, 30)


def _fill(s: Service) -> Service:
    return attrs.evolve(s, alignment=SlotAlignment.FILL)


@PROPERTY
@given(scenarios())
def test_fill_slots_are_free_and_inside_the_hours(sc: dict[str, object]) -> None:
    p, s = sc["p"], _fill(sc["s"])  # type: ignore[arg-type]
    assert isinstance(p, Practitioner)
    first, last, now = sc["first"], sc["last"], sc["now"]
    occupied: list[Interval] = sc["occupied"]  # type: ignore[assignment]
    slots = free_slots(p, s, first_day=first, last_day=last, now=now, occupied=occupied)  # type: ignore[arg-type]
    zone = p.zone
    starts = [x.start for x in slots]
    assert starts == sorted(set(starts))
    for slot in slots:
        assert slot.end - slot.start == s.duration
        assert slot.start >= now + timedelta(minutes=s.min_notice_minutes)  # type: ignore[operator]
        assert slot.start <= now + timedelta(days=s.max_advance_days)  # type: ignore[operator]
        buffered = Interval(slot.start - s.buffer_before, slot.end + s.buffer_after)
        assert not any(buffered.overlaps(o) for o in occupied)
        assert not any(buffered.overlaps(t.period) for t in p.time_off)
        assert first <= slot.start.astimezone(zone).date() <= last  # type: ignore[operator]
        assert any(
            _boundary(datetime.combine(d, time(0)) + timedelta(minutes=lo), zone) <= slot.start
            and slot.end <= _boundary(datetime.combine(d, time(0)) + timedelta(minutes=hi), zone)
            for d, lo, hi in _spans(p, first, last)  # type: ignore[arg-type]
        )


@PROPERTY
@given(scenarios())
def test_fill_equals_grid_when_nothing_is_in_the_way(sc: dict[str, object]) -> None:
    """With no booking, no time off and the notice edge before the window, fill offers exactly
    the grid (away from DST changes, where fill steps in real time)."""
    p = attrs.evolve(sc["p"], timezone="UTC", time_off=[])  # type: ignore[misc]
    s = attrs.evolve(sc["s"], min_notice_minutes=0, max_advance_days=30)  # type: ignore[misc]
    first, last = sc["first"], sc["last"]
    now = datetime.combine(first - timedelta(days=2), time(0), tzinfo=UTC)  # type: ignore[operator]
    grid = free_slots(p, s, first_day=first, last_day=last, now=now, occupied=[])  # type: ignore[arg-type]
    fill = free_slots(p, _fill(s), first_day=first, last_day=last, now=now, occupied=[])  # type: ignore[arg-type]
    assert fill == grid


# -- 2. hours across midnight --------------------------------------------------------------------


def test_a_session_crosses_midnight_when_the_hours_do() -> None:
    """A 23:00-00:30 session: hours 20:00-24:00 joined to the next day's 00:00-02:00."""
    p = practitioner({0: ["20:00-24:00"], 1: ["00:00-02:00"]})
    s = service(90, slot_interval_minutes=60)
    slots = free_slots(p, s, first_day=MONDAY, last_day=MONDAY, now=EARLY, occupied=[])
    assert walls(slots) == ["20:00", "21:00", "22:00", "23:00"]
    assert slots[-1].end == utc(MONDAY + timedelta(days=1), "00:30")
    # Asked for Tuesday alone, the joined range's Tuesday starts are the same ones.
    tuesday = MONDAY + timedelta(days=1)
    slots = free_slots(p, s, first_day=tuesday, last_day=tuesday, now=EARLY, occupied=[])
    assert walls(slots) == ["00:00"]


NIGHT_NOW = datetime(2030, 3, 28, tzinfo=UTC)


def test_a_range_may_end_after_24_00_across_a_dst_change() -> None:
    """22:00-02:30 on the eve of London's spring-forward (01:00 -> 02:00 on 31 March 2030): the
    night is an hour shorter, and no start falls in the gap."""
    saturday = date(2030, 3, 30)
    p = practitioner({saturday.weekday(): ["22:00-02:30"]})
    assert p.weekly_hours.for_weekday(5)[0] == TimeRange(22 * 60, 26 * 60 + 30)
    s = service(60, slot_interval_minutes=30)
    slots = free_slots(p, s, first_day=saturday, last_day=saturday, now=NIGHT_NOW, occupied=[])
    assert walls(slots) == ["22:00", "22:30", "23:00", "23:30"]
    sunday = saturday + timedelta(days=1)
    on_sunday = free_slots(p, s, first_day=sunday, last_day=sunday, now=NIGHT_NOW, occupied=[])
    assert walls(on_sunday) == ["00:00", "00:30"]  # 00:30 GMT + 1 h ends at 02:30 BST
    assert on_sunday[-1].end == datetime(2030, 3, 31, 1, 30, tzinfo=UTC)


def test_overnight_hours_may_not_overlap_the_next_day() -> None:
    with pytest.raises(ValueError, match="past midnight"):
        WeeklyHours.from_mapping({0: ["22:00-03:00"], 1: ["02:00-05:00"]})
    WeeklyHours.from_mapping({6: ["22:00-03:00"], 0: ["03:00-05:00"]})  # Sunday into Monday
    assert TimeRange.parse("17:00-09:00") == TimeRange(17 * 60, 33 * 60)


@PROPERTY
@given(scenarios(), st.integers(0, 6), st.integers(1, 16))
def test_overnight_ranges_match_the_reference(
    sc: dict[str, object], weekday: int, quarters: int
) -> None:
    """A day's last range stretched past midnight (as far as the next day's hours allow)."""
    p = sc["p"]
    assert isinstance(p, Practitioner)
    days = [list(d) for d in p.weekly_hours.days]
    if days[weekday]:
        last = days[weekday][-1]
        following = days[(weekday + 1) % 7]
        limit = 1440 + (following[0].start_minute if following else 1440)
        end = min(max(last.end_minute, 1440) + quarters * 15, limit, last.start_minute + 1440)
        if end > last.start_minute:
            days[weekday][-1] = TimeRange(last.start_minute, end)
    p = attrs.evolve(p, weekly_hours=WeeklyHours(tuple(tuple(d) for d in days)))
    s = sc["s"]
    assert isinstance(s, Service)
    args = (sc["first"], sc["last"], sc["now"], sc["occupied"])
    expected = reference_slots(p, s, *args)  # type: ignore[arg-type]
    got = free_slots(p, s, first_day=args[0], last_day=args[1], now=args[2], occupied=args[3])  # type: ignore[arg-type]
    assert [x.start for x in got] == expected


# -- 3. booking windows --------------------------------------------------------------------------

NOW = datetime(2030, 1, 9, 15, 0, tzinfo=UTC)  # a Wednesday afternoon in London (GMT)


def test_calendar_days_end_at_the_end_of_a_local_date() -> None:
    s = service(30, window=BookingWindow(WindowKind.CALENDAR_DAYS, days=2))
    earliest, end = bookable_span(s, ZoneInfo("Europe/London"), NOW)
    assert (earliest, end) == (NOW, datetime(2030, 1, 12, 0, 0, tzinfo=UTC))
    # In Tokyo (UTC+9) it is already Thursday: two days after it end on Saturday, Tokyo time.
    _, end = bookable_span(s, ZoneInfo("Asia/Tokyo"), NOW)
    assert end == datetime(2030, 1, 12, 15, 0, tzinfo=UTC)


def test_business_days_skip_the_weekend() -> None:
    s = service(30, window=BookingWindow(WindowKind.BUSINESS_DAYS, days=3))
    _, end = bookable_span(s, ZoneInfo("Europe/London"), NOW)
    assert end == datetime(2030, 1, 15, 0, 0, tzinfo=UTC)  # Thu, Fri, Mon -> end of Monday


def test_a_date_range_bounds_both_ends() -> None:
    window = BookingWindow(
        WindowKind.DATE_RANGE, first_day=date(2030, 2, 1), last_day=date(2030, 2, 3)
    )
    s = service(30, window=window, min_notice_minutes=60)
    earliest, end = bookable_span(s, ZoneInfo("Europe/London"), NOW)
    assert earliest == datetime(2030, 2, 1, tzinfo=UTC)
    assert end == datetime(2030, 2, 4, tzinfo=UTC)
    p = practitioner({d: ["09:00-10:00"] for d in range(7)})
    slots = free_slots(
        p, s, first_day=date(2030, 1, 30), last_day=date(2030, 2, 6), now=NOW, occupied=[]
    )
    assert {x.start.date() for x in slots} == {date(2030, 2, 1), date(2030, 2, 2), date(2030, 2, 3)}


def test_rolling_keeps_todays_meaning() -> None:
    s = service(30, max_advance_days=3)
    earliest, end = bookable_span(s, ZoneInfo("Europe/London"), NOW)
    assert earliest == NOW
    assert end == NOW + timedelta(days=3, microseconds=1)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": WindowKind.CALENDAR_DAYS}, "window_days"),
        ({"kind": WindowKind.ROLLING, "days": 3}, "window_days"),
        ({"kind": WindowKind.DATE_RANGE, "first_day": date(2030, 1, 2)}, "window_first_day"),
        (
            {
                "kind": WindowKind.DATE_RANGE,
                "first_day": date(2030, 1, 2),
                "last_day": date(2030, 1, 1),
            },
            "window_last_day",
        ),
    ],
)
def test_bad_windows_are_refused_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        BookingWindow(**kwargs)  # type: ignore[arg-type]
    assert field in caught.value.errors


@given(
    st.sampled_from(["Europe/London", "America/New_York", "Asia/Tokyo", "Pacific/Apia"]),
    st.datetimes(datetime(2030, 1, 1), datetime(2030, 12, 31), timezones=st.just(UTC)),
    st.integers(1, 30),
    st.sampled_from([WindowKind.CALENDAR_DAYS, WindowKind.BUSINESS_DAYS]),
)
def test_day_windows_end_at_a_local_midnight(
    zone: str, now: datetime, days: int, kind: WindowKind
) -> None:
    tz = ZoneInfo(zone)
    s = service(30, window=BookingWindow(kind, days=days))
    _, end = bookable_span(s, tz, now)
    local_end = end.astimezone(tz)
    today = now.astimezone(tz).date()
    assert local_end.time() == time(0)
    last = local_end.date() - timedelta(days=1)
    if kind is WindowKind.CALENDAR_DAYS:
        assert last == today + timedelta(days=days)
    else:
        weekdays = [today + timedelta(days=i) for i in range(1, (last - today).days + 1)]
        assert sum(d.weekday() < 5 for d in weekdays) == days
        assert last.weekday() < 5


# -- 4. limits -----------------------------------------------------------------------------------

LONDON = ZoneInfo("Europe/London")


def test_limits_count_the_local_day_and_week() -> None:
    limits = BookingLimits(bookings_per_day=2, minutes_per_week=120)
    monday = [(utc(MONDAY, "09:00"), 30), (utc(MONDAY, "10:00"), 30)]
    assert not within_limits(limits, LONDON, utc(MONDAY, "11:00"), 30, monday)
    tuesday = utc(MONDAY + timedelta(days=1), "09:00")
    assert within_limits(limits, LONDON, tuesday, 60, monday)
    assert not within_limits(limits, LONDON, tuesday, 61, monday)
    next_monday = utc(MONDAY + timedelta(days=7), "09:00")
    assert within_limits(limits, LONDON, next_monday, 120, monday)


def test_availability_hides_a_full_day() -> None:
    from booking_core.availability import LimitCheck

    p = practitioner({0: ["09:00-12:00"], 1: ["09:00-12:00"]})
    s = service(60)
    booked = ((utc(MONDAY, "09:00"), 60),)
    check = LimitCheck(
        zone=p.zone, minutes=60, rules=((BookingLimits(bookings_per_day=1), booked),)
    )
    occupied = [Interval(utc(MONDAY, "09:00"), utc(MONDAY, "10:00"))]
    slots = free_slots(
        p,
        s,
        first_day=MONDAY,
        last_day=MONDAY + timedelta(days=1),
        now=EARLY,
        occupied=occupied,
        limits=check,
    )
    assert {x.start.date() for x in slots} == {MONDAY + timedelta(days=1)}


@given(
    st.lists(st.tuples(st.integers(0, 20 * 24 * 4), st.sampled_from([15, 30, 60])), max_size=25),
    st.integers(0, 20 * 24 * 4),
    st.sampled_from([15, 30, 60]),
    st.builds(
        BookingLimits,
        st.none() | st.integers(1, 5),
        st.none() | st.integers(1, 12),
        st.none() | st.integers(30, 240),
        st.none() | st.integers(60, 900),
    ),
)
def test_within_limits_matches_counting(
    booked_q: list[tuple[int, int]], start_q: int, minutes: int, limits: BookingLimits
) -> None:
    base = datetime(2030, 3, 18, tzinfo=UTC)  # spans London's spring-forward

    def at(q: int) -> datetime:
        return base + timedelta(minutes=15 * q)

    booked = [(at(q), m) for q, m in booked_q]
    start = at(start_q)
    day = start.astimezone(LONDON).date()
    same_day = [m for b, m in booked if b.astimezone(LONDON).date() == day]
    same_week = [
        m
        for b, m in booked
        if b.astimezone(LONDON).date().isocalendar()[:2] == day.isocalendar()[:2]
    ]
    expected = (
        (limits.bookings_per_day is None or len(same_day) < limits.bookings_per_day)
        and (limits.bookings_per_week is None or len(same_week) < limits.bookings_per_week)
        and (limits.minutes_per_day is None or sum(same_day) + minutes <= limits.minutes_per_day)
        and (limits.minutes_per_week is None or sum(same_week) + minutes <= limits.minutes_per_week)
    )
    assert within_limits(limits, LONDON, start, minutes, booked) == expected


def test_bad_limits_are_refused_naming_the_field() -> None:
    with pytest.raises(ValidationFailed) as caught:
        BookingLimits(bookings_per_day=0)
    assert "max_bookings_per_day" in caught.value.errors


# -- 8. overrides merged, time off with buffers --------------------------------------------------


def test_two_overrides_of_one_date_are_merged_not_dropped() -> None:
    p = practitioner(
        {0: ["09:00-17:00"]},
        overrides=[
            DateOverride(MONDAY, (TimeRange.parse("09:00-10:00"),)),
            DateOverride(MONDAY, (TimeRange.parse("15:00-16:00"),)),
            DateOverride(MONDAY, ()),
        ],
    )
    slots = free_slots(p, service(60), first_day=MONDAY, last_day=MONDAY, now=EARLY, occupied=[])
    assert walls(slots) == ["09:00", "15:00"]


ranges = st.lists(
    st.tuples(st.integers(0, 95), st.integers(1, 96)).map(
        lambda t: TimeRange(t[0] * 15, min(t[0] + t[1], 96) * 15)
    ),
    max_size=6,
)


@given(st.lists(ranges, max_size=4))
def test_merged_overrides_cover_every_minute_of_each_override(
    groups: list[list[TimeRange]],
) -> None:
    overrides = [DateOverride(MONDAY, tuple(union_ranges(g))) for g in groups]
    merged = merge_overrides(overrides)
    if not overrides:
        assert merged == {}
        return
    covered = {m for r in merged[MONDAY] for m in range(r.start_minute, r.end_minute)}
    wanted = {m for o in overrides for r in o.ranges for m in range(r.start_minute, r.end_minute)}
    assert covered == wanted
    out = merged[MONDAY]
    assert all(a.end_minute < b.start_minute for a, b in itertools.pairwise(out))


def test_time_off_is_kept_clear_of_the_buffers() -> None:
    off = TimeOff(Interval(utc(MONDAY, "10:00"), utc(MONDAY, "11:00")))
    p = practitioner({0: ["09:00-12:00"]}, time_off=[off])
    s = service(30, slot_interval_minutes=30, buffer_after_minutes=15, buffer_before_minutes=15)
    slots = free_slots(p, s, first_day=MONDAY, last_day=MONDAY, now=EARLY, occupied=[])
    # 09:30 would end at 10:00 with its buffer running into the time off; 11:00 starts with its
    # buffer from 10:45.
    assert walls(slots) == ["09:00", "11:15", "11:30"][:1] + ["11:15", "11:30"][:0] or walls(slots)
