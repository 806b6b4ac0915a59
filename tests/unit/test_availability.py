"""availability.free_slots: hand-computed examples, DST days, and properties under hypothesis."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booking_core.availability import filter_slots, free_slots, local_day_window, offers_start
from booking_core.model import (
    DateOverride,
    Interval,
    Money,
    Practitioner,
    Service,
    SlotAlignment,
    TimeOff,
    TimeRange,
    WeeklyHours,
)

MONDAY = date(2030, 1, 7)  # London is on GMT in January: local time = UTC
EARLY = datetime(2030, 1, 1, tzinfo=UTC)


def utc(day: date, hhmm: str) -> datetime:
    h, m = hhmm.split(":")
    return datetime(day.year, day.month, day.day, int(h), int(m), tzinfo=UTC)


def practitioner(
    hours: dict[int, list[str]], *, zone: str = "Europe/London", **kwargs: object
) -> Practitioner:
    return Practitioner(
        id=1,
        name="P",
        timezone=zone,
        weekly_hours=WeeklyHours.from_mapping(hours),
        **kwargs,  # type: ignore[arg-type]
    )


def service(duration: int = 50, **kwargs: object) -> Service:
    return Service(
        id=1,
        name="S",
        duration_minutes=duration,
        price=Money(9000, "gbp"),
        **kwargs,  # type: ignore[arg-type]
    )


def starts(
    p: Practitioner,
    s: Service,
    first: date,
    last: date | None = None,
    *,
    now: datetime = EARLY,
    occupied: Iterable[Interval] = (),
) -> list[str]:
    """Offered starts as UTC "HH:MM" (prefixed by the date when the window spans days)."""
    slots = free_slots(p, s, first_day=first, last_day=last or first, now=now, occupied=occupied)
    for slot in slots:
        assert slot.end - slot.start == s.duration
        assert slot.start.tzinfo is UTC
    fmt = "%H:%M" if last is None else "%d %H:%M"
    return [slot.start.strftime(fmt) for slot in slots]


WEEKDAYS = {d: ["09:00-12:00", "13:00-17:00"] for d in range(5)}


# -- hand-computed examples --------------------------------------------------------------------


def test_working_hours_stepped_by_the_interval() -> None:
    p, s = practitioner(WEEKDAYS), service(50, slot_interval_minutes=60)
    assert starts(p, s, MONDAY) == ["09:00", "10:00", "11:00", "13:00", "14:00", "15:00", "16:00"]


def test_interval_defaults_to_the_duration_and_a_slot_must_fit_in_the_range() -> None:
    p = practitioner({0: ["09:00-11:00"]})
    assert starts(p, service(45), MONDAY) == ["09:00", "09:45"]  # 10:30 would end at 11:15
    assert starts(p, service(50, slot_interval_minutes=15), MONDAY) == [
        "09:00",
        "09:15",
        "09:30",
        "09:45",
        "10:00",
    ]  # 10:15 would end at 11:05


def test_no_hours_no_slots() -> None:
    p = practitioner(WEEKDAYS)
    assert starts(p, service(), date(2030, 1, 12)) == []  # a Saturday


def test_occupied_span_and_the_service_buffers_are_subtracted() -> None:
    p = practitioner({0: ["09:00-13:00"]})
    booked = [Interval(utc(MONDAY, "10:00"), utc(MONDAY, "11:00"))]  # 10:00-10:50 + 10 after
    plain = service(50, slot_interval_minutes=30)
    # Touching is not overlapping: 09:00 (ends 09:50) and 11:00 stay; 09:30 and 10:xx go.
    assert starts(p, plain, MONDAY, occupied=booked) == ["09:00", "11:00", "11:30", "12:00"]
    buffered = service(
        50, slot_interval_minutes=30, buffer_before_minutes=15, buffer_after_minutes=10
    )
    # 09:00 needs 08:45-10:00: fine. 11:00 needs 10:45-12:00: clashes. 11:30 needs 11:15-12:30.
    assert starts(p, buffered, MONDAY, occupied=booked) == ["09:00", "11:30", "12:00"]


def test_minimum_notice_and_maximum_advance() -> None:
    p = practitioner(WEEKDAYS)
    s = service(50, slot_interval_minutes=60, min_notice_minutes=90, max_advance_days=1)
    now = utc(MONDAY, "08:45")
    assert starts(p, s, MONDAY, now=now) == ["11:00", "13:00", "14:00", "15:00", "16:00"]
    # Tomorrow: up to now + 1 day = Tuesday 08:45, so nothing from 09:00 on.
    assert starts(p, s, MONDAY + timedelta(days=1), now=now) == []
    s_exact = service(50, slot_interval_minutes=60, max_advance_days=1)
    assert starts(p, s_exact, MONDAY + timedelta(days=1), now=utc(MONDAY, "09:00")) == ["09:00"]


def test_a_date_override_replaces_the_weekday_and_an_empty_one_is_a_day_off() -> None:
    tuesday = MONDAY + timedelta(days=1)
    p = practitioner(
        WEEKDAYS,
        overrides=[
            DateOverride(MONDAY, (TimeRange.parse("18:00-20:00"),)),
            DateOverride(tuesday, ()),
        ],
    )
    s = service(60)
    assert starts(p, s, MONDAY) == ["18:00", "19:00"]
    assert starts(p, s, tuesday) == []
    assert starts(p, s, tuesday + timedelta(days=1))[:2] == ["09:00", "10:00"]


def test_time_off_removes_every_slot_it_touches() -> None:
    off = TimeOff(Interval(utc(MONDAY, "10:30"), utc(MONDAY, "14:00")), "dentist")
    p = practitioner(WEEKDAYS, time_off=[off])
    assert starts(p, service(60), MONDAY) == ["09:00", "14:00", "15:00", "16:00"]


def test_other_time_zone_and_several_days() -> None:
    # New York is UTC-5 in January: 09:00-11:00 local is 14:00-16:00 UTC.
    p = practitioner({0: ["09:00-11:00"], 1: ["09:00-10:00"]}, zone="America/New_York")
    assert starts(p, service(60), MONDAY, MONDAY + timedelta(days=1)) == [
        "07 14:00",
        "07 15:00",
        "08 14:00",
    ]


def test_working_until_midnight() -> None:
    p = practitioner({0: ["22:00-24:00"]})
    assert starts(p, service(60), MONDAY) == ["22:00", "23:00"]


def test_filter_slots_subtracts_our_bookings_from_external_starts() -> None:
    p, s = practitioner(WEEKDAYS), service(50, buffer_after_minutes=10)
    offered = [utc(MONDAY, h) for h in ("09:00", "10:00", "10:00", "11:00", "07:00")]
    busy = [Interval(utc(MONDAY, "11:00"), utc(MONDAY, "12:00"))]
    slots = filter_slots(offered, p, s, now=utc(MONDAY, "08:00"), occupied=busy)
    # External starts are not clipped to our hours, but the hold, notice and duplicates are.
    assert [x.start for x in slots] == [utc(MONDAY, "09:00"), utc(MONDAY, "10:00")]


# -- DST days ----------------------------------------------------------------------------------

LONDON_SPRING, LONDON_FALL = date(2030, 3, 31), date(2030, 10, 27)
NY_SPRING, NY_FALL = date(2030, 3, 10), date(2030, 11, 3)
SMALL_HOURS = ["00:00-04:00"]


def eve(day: date) -> datetime:
    """A "now" well before ``day`` and within any service's maximum advance."""
    return datetime.combine(day - timedelta(days=2), time(0), tzinfo=UTC)


def local_walls(p: Practitioner, s: Service, day: date) -> list[str]:
    slots = free_slots(p, s, first_day=day, last_day=day, now=eve(day), occupied=[])
    return [x.start.astimezone(p.zone).strftime("%H:%M%z") for x in slots]


@pytest.mark.parametrize(
    ("zone", "day", "expected_utc", "expected_local"),
    [
        # 01:00-02:00 does not exist in London on 31 March 2030.
        (
            "Europe/London",
            LONDON_SPRING,
            ["00:00", "01:00", "02:00"],
            ["00:00+0000", "02:00+0100", "03:00+0100"],
        ),
        # 02:00-03:00 does not exist in New York on 10 March 2030.
        (
            "America/New_York",
            NY_SPRING,
            ["05:00", "06:00", "07:00"],
            ["00:00-0500", "01:00-0500", "03:00-0400"],
        ),
        # 01:00-02:00 happens twice in London on 27 October 2030: offered once, the first time.
        (
            "Europe/London",
            LONDON_FALL,
            ["23:00", "00:00", "02:00", "03:00"],
            ["00:00+0100", "01:00+0100", "02:00+0000", "03:00+0000"],
        ),
        (
            "America/New_York",
            NY_FALL,
            ["04:00", "05:00", "07:00", "08:00"],
            ["00:00-0400", "01:00-0400", "02:00-0500", "03:00-0500"],
        ),
    ],
)
def test_dst_days_have_no_slot_that_does_not_exist_and_none_twice(
    zone: str, day: date, expected_utc: list[str], expected_local: list[str]
) -> None:
    p = practitioner({day.weekday(): SMALL_HOURS}, zone=zone)
    s = service(60)
    slots = free_slots(p, s, first_day=day, last_day=day, now=eve(day), occupied=[])
    assert [x.start.strftime("%H:%M") for x in slots] == expected_utc
    assert local_walls(p, s, day) == expected_local


def test_spring_forward_with_a_half_hour_grid_is_continuous_in_real_time() -> None:
    p = practitioner({NY_SPRING.weekday(): SMALL_HOURS}, zone="America/New_York")
    assert local_walls(p, service(30), NY_SPRING) == [
        "00:00-0500",
        "00:30-0500",
        "01:00-0500",
        "01:30-0500",
        "03:00-0400",
        "03:30-0400",
    ]


def test_normal_hours_on_dst_days_keep_their_local_times() -> None:
    for zone, day in [("Europe/London", LONDON_SPRING), ("America/New_York", NY_FALL)]:
        p = practitioner({day.weekday(): ["09:00-11:00"]}, zone=zone)
        assert [w[:5] for w in local_walls(p, service(60), day)] == ["09:00", "10:00"]


def test_hours_ending_where_the_clock_springs_forward() -> None:
    """New York has no 02:00 on 10 March 2030: "00:00-02:00" still ends at 01:59:59 EST."""
    p = practitioner({NY_SPRING.weekday(): ["00:00-02:00"]}, zone="America/New_York")
    assert local_walls(p, service(60), NY_SPRING) == ["00:00-0500", "01:00-0500"]


@pytest.mark.parametrize(
    ("zone", "eve"),
    [("Africa/Cairo", date(2030, 4, 25)), ("America/Santiago", date(2030, 9, 7))],
)
def test_hours_until_midnight_when_the_clock_springs_forward_at_midnight(
    zone: str, eve: date
) -> None:
    """Cairo and Santiago skip 00:00-01:00: "until 24:00" ends at the jump, not an hour early."""
    p = practitioner({eve.weekday(): ["20:00-24:00"]}, zone=zone)
    assert [w[:5] for w in local_walls(p, service(60), eve)] == [
        "20:00",
        "21:00",
        "22:00",
        "23:00",
    ]


def test_local_day_window_is_23_and_25_hours_on_dst_days() -> None:
    london = ZoneInfo("Europe/London")
    assert local_day_window(london, LONDON_SPRING, LONDON_SPRING).duration == timedelta(hours=23)
    assert local_day_window(london, LONDON_FALL, LONDON_FALL).duration == timedelta(hours=25)
    cairo = local_day_window(ZoneInfo("Africa/Cairo"), date(2030, 4, 26), date(2030, 4, 26))
    assert cairo.duration == timedelta(hours=23)
    assert cairo.start == datetime(2030, 4, 25, 22, 0, tzinfo=UTC)  # the jump, 01:00 EEST


# -- properties --------------------------------------------------------------------------------

# Each zone with the local dates its clocks change in 2030 (the day before a change at midnight
# is listed too: that is where "until 24:00" meets the gap).
CHANGES = {
    "UTC": [date(2030, 6, 30)],
    "Europe/London": [LONDON_SPRING, LONDON_FALL],
    "America/New_York": [NY_SPRING, NY_FALL],
    "Africa/Cairo": [date(2030, 4, 25), date(2030, 4, 26), date(2030, 10, 31)],  # at midnight
    "America/Santiago": [date(2030, 4, 6), date(2030, 9, 7), date(2030, 9, 8)],  # at midnight
    "Australia/Lord_Howe": [date(2030, 4, 7), date(2030, 10, 6)],  # by 30 minutes
}


@st.composite
def day_ranges(draw: st.DrawFn) -> list[TimeRange]:
    # Quarter hours, favouring midnight and the small hours where the clocks change.
    mark = st.integers(0, 96) | st.sampled_from([0, 4, 6, 8, 10, 12, 96])
    marks = sorted(draw(st.lists(mark, unique=True, max_size=4)))
    if len(marks) % 2:
        marks = marks[:-1]
    return [TimeRange(a * 15, b * 15) for a, b in zip(marks[::2], marks[1::2], strict=True)]


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    zone = draw(st.sampled_from(sorted(CHANGES)))
    any_day = st.dates(date(2030, 1, 1), date(2030, 12, 31))
    anchor = draw(st.sampled_from(CHANGES[zone]) | any_day)
    first = anchor - timedelta(days=draw(st.integers(0, 2)))
    last = first + timedelta(days=draw(st.integers(0, 4)))
    week = tuple(tuple(draw(day_ranges())) for _ in range(7))
    overrides = []
    if draw(st.booleans()):
        overrides.append(
            DateOverride(first + timedelta(days=draw(st.integers(0, 4))), tuple(draw(day_ranges())))
        )
    base = datetime.combine(first, time(0), tzinfo=UTC)

    def span(max_len: int) -> st.SearchStrategy[Interval]:
        return st.builds(
            lambda off, length: Interval(
                base + timedelta(minutes=off), base + timedelta(minutes=off + length)
            ),
            st.integers(-24 * 60, 6 * 24 * 60).map(lambda m: m - m % 5),
            st.integers(5, max_len).map(lambda m: m - m % 5 or 5),
        )

    time_off = [TimeOff(i) for i in draw(st.lists(span(600), max_size=2))]
    p = Practitioner(
        id=1,
        name="P",
        timezone=zone,
        weekly_hours=WeeklyHours(week),
        overrides=overrides,
        time_off=time_off,
    )
    s = Service(
        id=1,
        name="S",
        price=Money(100, "usd"),
        duration_minutes=draw(st.sampled_from([15, 30, 45, 50, 60, 90, 120])),
        slot_interval_minutes=draw(st.sampled_from([None, 10, 15, 20, 30, 45, 60])),
        buffer_before_minutes=draw(st.sampled_from([0, 5, 10, 15, 30])),
        buffer_after_minutes=draw(st.sampled_from([0, 5, 10, 15, 30])),
        min_notice_minutes=draw(st.sampled_from([0, 30, 60, 240, 1440])),
        max_advance_days=draw(st.sampled_from([1, 2, 3, 7, 30])),
    )
    now = base + timedelta(minutes=draw(st.integers(-3 * 24 * 60, 4 * 24 * 60)))
    occupied = draw(st.lists(span(240), max_size=12))
    return {"p": p, "s": s, "first": first, "last": last, "now": now, "occupied": occupied}


def _hours_for(p: Practitioner, day: date) -> tuple[TimeRange, ...]:
    """The date's hours: the union of its overrides' ranges (minute by minute), else the week's."""
    found = [o for o in p.overrides if o.day == day]
    if not found:
        return p.weekly_hours.for_weekday(day.weekday())
    minutes = sorted(
        {m for o in found for r in o.ranges for m in range(r.start_minute, r.end_minute)}
    )
    ranges: list[TimeRange] = []
    for m in minutes:
        if ranges and ranges[-1].end_minute == m:
            ranges[-1] = TimeRange(ranges[-1].start_minute, m + 1)
        else:
            ranges.append(TimeRange(m, m + 1))
    return tuple(ranges)


def _spans(p: Practitioner, first: date, last: date) -> list[tuple[date, int, int]]:
    """Working spans of the days first-1..last: a day's last range ending at 24:00 runs on into
    the next day's range from 00:00 (which is then not a span of its own)."""
    out: list[tuple[date, int, int]] = []
    joined = False
    day = first - timedelta(days=1)
    while day <= last:
        ranges = list(_hours_for(p, day))[1 if joined else 0 :]
        following = _hours_for(p, day + timedelta(days=1))
        joined = False
        for i, r in enumerate(ranges):
            end = r.end_minute
            if (
                i == len(ranges) - 1
                and end == 1440
                and following
                and following[0].start_minute == 0
            ):
                end, joined = 1440 + following[0].end_minute, True
            out.append((day, r.start_minute, end))
        day += timedelta(days=1)
    return out


def _wall_minutes(instant: datetime, zone: ZoneInfo, day: date) -> int:
    local = instant.astimezone(zone)
    assert local.date() == day
    return local.hour * 60 + local.minute


PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(scenarios())
def test_slot_properties(sc: dict[str, object]) -> None:
    p, s = sc["p"], sc["s"]
    assert isinstance(p, Practitioner)
    assert isinstance(s, Service)
    first, last, now = sc["first"], sc["last"], sc["now"]
    occupied: list[Interval] = sc["occupied"]  # type: ignore[assignment]
    slots = free_slots(p, s, first_day=first, last_day=last, now=now, occupied=occupied)  # type: ignore[arg-type]
    zone = p.zone
    starts_ = [x.start for x in slots]
    assert starts_ == sorted(starts_)
    assert len(set(starts_)) == len(starts_)
    walls = [x.start.astimezone(zone).replace(tzinfo=None) for x in slots]
    assert len(set(walls)) == len(walls), "a local time is offered twice (fall-back)"
    for slot in slots:
        assert slot.start.utcoffset() == timedelta(0)
        # exactly one service long
        assert slot.end - slot.start == s.duration
        # notice and advance
        assert slot.start >= now + timedelta(minutes=s.min_notice_minutes)  # type: ignore[operator]
        assert slot.start <= now + timedelta(days=s.max_advance_days)  # type: ignore[operator]
        # never overlaps an occupying booking's span, with this service's buffers
        buffered = Interval(slot.start - s.buffer_before, slot.end + s.buffer_after)
        assert not any(buffered.overlaps(o) for o in occupied)
        # time off is kept clear of the buffers too
        assert not any(buffered.overlaps(t.period) for t in p.time_off)
        # inside one of the working spans (which may start the day before), on a day of the window
        local = slot.start.astimezone(zone)
        day = local.date()
        assert first <= day <= last  # type: ignore[operator]
        # (its end by the instant: "until 02:00" on a day without 02:00 ends at the jump)
        assert any(
            _boundary(datetime.combine(d, time(0)) + timedelta(minutes=lo), zone) <= slot.start
            and slot.end <= _boundary(datetime.combine(d, time(0)) + timedelta(minutes=hi), zone)
            for d, lo, hi in _spans(p, first, last)  # type: ignore[arg-type]
        )
        # a time that exists: the local wall time maps back to the same instant
        assert local.replace(tzinfo=None).replace(tzinfo=zone).astimezone(UTC) == slot.start


def _resolve(naive: datetime, zone: ZoneInfo) -> datetime | None:
    instant = naive.replace(tzinfo=zone).astimezone(UTC)
    return instant if instant.astimezone(zone).replace(tzinfo=None) == naive else None


def _boundary(naive: datetime, zone: ZoneInfo) -> datetime:
    """A range boundary; inside a gap it is the first real minute after the gap."""
    probe = naive
    while (instant := _resolve(probe, zone)) is None:
        probe += timedelta(minutes=1)
    return instant


def reference_slots(
    p: Practitioner,
    s: Service,
    first: date,
    last: date,
    now: datetime,
    occupied: list[Interval],
) -> list[datetime]:
    """The documented rule, by brute force: step each range on the wall clock; skip local times
    that do not exist; take an ambiguous one at its first occurrence; keep what fits and is free."""
    zone = p.zone
    found: set[datetime] = set()
    for day, r_start, r_end in _spans(p, first, last):
        midnight = datetime.combine(day, time(0))
        lo = _boundary(midnight + timedelta(minutes=r_start), zone)
        hi = _boundary(midnight + timedelta(minutes=r_end), zone)
        wall = midnight + timedelta(minutes=r_start)
        while wall < midnight + timedelta(minutes=r_end):
            start = _resolve(wall, zone)
            wall += s.interval
            if start is None or start < lo or start + s.duration > hi:
                continue
            if not first <= start.astimezone(zone).date() <= last:
                continue
            end = start + s.duration
            if start < now + timedelta(minutes=s.min_notice_minutes):
                continue
            if start > now + timedelta(days=s.max_advance_days):
                continue
            buffered = Interval(start - s.buffer_before, end + s.buffer_after)
            if any(buffered.overlaps(o) for o in occupied):
                continue
            if any(buffered.overlaps(t.period) for t in p.time_off):
                continue
            found.add(start)
    return sorted(found)


@PROPERTY
@given(scenarios())
def test_free_slots_matches_the_brute_force_reference(sc: dict[str, object]) -> None:
    p, s = sc["p"], sc["s"]
    assert isinstance(p, Practitioner)
    assert isinstance(s, Service)
    args = (sc["first"], sc["last"], sc["now"], sc["occupied"])
    expected = reference_slots(p, s, *args)  # type: ignore[arg-type]
    got = free_slots(p, s, first_day=args[0], last_day=args[1], now=args[2], occupied=args[3])  # type: ignore[arg-type]
    assert [x.start for x in got] == expected


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["Europe/London", "America/New_York"]),
    st.sampled_from([LONDON_SPRING, LONDON_FALL, NY_SPRING, NY_FALL]),
    st.sampled_from([15, 30, 45, 60, 90]),
    st.sampled_from([None, 15, 30, 60]),
)
def test_small_hours_on_dst_days(zone: str, day: date, duration: int, step: int | None) -> None:
    """Working hours 00:00-04:00 on the change days: no slot at a time that does not exist, none
    twice, and each inside the four local hours."""
    p = practitioner({day.weekday(): SMALL_HOURS}, zone=zone)
    s = service(duration, slot_interval_minutes=step)
    slots = free_slots(p, s, first_day=day, last_day=day, now=eve(day), occupied=[])
    locals_ = [x.start.astimezone(p.zone) for x in slots]
    walls = [x.replace(tzinfo=None) for x in locals_]
    assert len(set(walls)) == len(walls)
    assert walls == sorted(walls)
    for slot, local in zip(slots, locals_, strict=True):
        assert local.date() == day
        assert local.replace(tzinfo=None).replace(tzinfo=p.zone).astimezone(UTC) == slot.start
        end_local = slot.end.astimezone(p.zone)
        assert end_local.date() == day
        assert end_local.hour * 60 + end_local.minute <= 4 * 60
        assert slot.end - slot.start == s.duration
    assert slots, "four working hours always hold at least one slot"


@PROPERTY
@given(scenarios(), st.sampled_from(list(SlotAlignment)), st.data())
def test_offers_start_says_what_the_day_list_says(
    sc: dict[str, object], alignment: SlotAlignment, data: st.DataObject
) -> None:
    """A booking request checks one start with offers_start: it must agree with free_slots for
    that start's date, for offered starts and for starts a little off them alike."""
    p, s = sc["p"], sc["s"]
    assert isinstance(p, Practitioner)
    assert isinstance(s, Service)
    s = attrs.evolve(s, alignment=alignment)
    now, occupied = sc["now"], sc["occupied"]
    day = sc["first"]
    assert isinstance(day, date)
    assert isinstance(now, datetime)
    offered = free_slots(p, s, first_day=day, last_day=day, now=now, occupied=occupied)  # type: ignore[arg-type]
    window = local_day_window(p.zone, day, day)
    tried = [x.start for x in offered] + [
        window.start + timedelta(minutes=data.draw(st.integers(0, 24 * 60 - 1)) // 5 * 5)
        for _ in range(8)
    ]
    for start in tried:
        expected = any(x.start == start for x in offered)
        assert offers_start(p, s, start, now=now, occupied=occupied) is expected, start  # type: ignore[arg-type]
