"""Value objects and entities refuse what they cannot represent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from booking_core.errors import ValidationFailed
from booking_core.model import (
    Booking,
    DateOverride,
    Interval,
    Money,
    Practitioner,
    Service,
    TimeRange,
    WeeklyHours,
)

from .support import CLIENT

T0 = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


class TestMoney:
    def test_currency_is_normalised_to_lower_case(self) -> None:
        assert Money(8000, "USD") == Money(8000, "usd")
        assert Money(8000, "USD").currency == "usd"

    @pytest.mark.parametrize("currency", ["us", "usdd", "u$d", "", "12a"])
    def test_currency_must_be_three_letters(self, currency: str) -> None:
        with pytest.raises(ValueError, match="currency"):
            Money(100, currency)

    def test_amount_is_whole_minor_units_and_not_negative(self) -> None:
        with pytest.raises(ValueError, match="negative"):
            Money(-1, "gbp")
        with pytest.raises(TypeError):
            Money(12.5, "gbp")  # type: ignore[arg-type]

    def test_zero_keeps_the_currency(self) -> None:
        assert Money(9000, "gbp").zero() == Money(0, "gbp")


class TestInterval:
    def test_must_end_after_it_starts(self) -> None:
        with pytest.raises(ValueError, match="end after"):
            Interval(T0, T0)
        with pytest.raises(ValueError, match="end after"):
            Interval(T0, T0 - timedelta(minutes=1))

    def test_refuses_naive_datetimes(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            Interval(datetime(2030, 1, 7, 9), T0 + timedelta(hours=1))

    def test_half_open_overlap_and_containment(self) -> None:
        a = Interval(T0, T0 + timedelta(hours=1))
        touching = Interval(T0 + timedelta(hours=1), T0 + timedelta(hours=2))
        inside = Interval(T0 + timedelta(minutes=10), T0 + timedelta(minutes=20))
        straddling = Interval(T0 + timedelta(minutes=59), T0 + timedelta(hours=2))
        assert not a.overlaps(touching)
        assert not touching.overlaps(a)
        assert a.overlaps(inside)
        assert a.contains(inside)
        assert not inside.contains(a)
        assert a.overlaps(straddling)
        assert not a.contains(straddling)
        assert a.duration == timedelta(hours=1)


class TestTimeRangeAndWeeklyHours:
    def test_parse_and_render(self) -> None:
        r = TimeRange.parse("09:00-17:30")
        assert (r.start_minute, r.end_minute) == (540, 1050)
        assert str(r) == "09:00-17:30"
        assert TimeRange.parse("22:00-24:00").end_minute == 1440

    @pytest.mark.parametrize(
        "text", ["09:00-09:00", "09:60-10:00", "09:00-33:30", "24:00-26:00", "9-17", "nonsense"]
    )
    def test_parse_refuses_bad_ranges(self, text: str) -> None:
        with pytest.raises(ValueError, match="time range"):
            TimeRange.parse(text)

    def test_weekly_hours_need_seven_days(self) -> None:
        with pytest.raises(ValueError, match="seven"):
            WeeklyHours(((),) * 6)

    def test_ranges_of_a_day_are_sorted_and_must_not_overlap(self) -> None:
        hours = WeeklyHours.from_mapping({0: ["13:00-17:00", "09:00-12:00"]})
        assert [str(r) for r in hours.for_weekday(0)] == ["09:00-12:00", "13:00-17:00"]
        assert hours.for_weekday(6) == ()
        with pytest.raises(ValueError, match="disjoint"):
            WeeklyHours.from_mapping({2: ["09:00-12:00", "11:00-14:00"]})
        with pytest.raises(ValueError, match="disjoint"):
            DateOverride(date(2030, 1, 8), (TimeRange(600, 700), TimeRange(650, 800)))


class TestService:
    def make(self, **changes: object) -> Service:
        fields: dict[str, object] = {
            "name": "Session",
            "duration_minutes": 50,
            "price": Money(9000, "gbp"),
        }
        return Service(**(fields | changes))  # type: ignore[arg-type]

    def test_interval_defaults_to_the_duration(self) -> None:
        assert self.make().interval == timedelta(minutes=50)
        assert self.make(slot_interval_minutes=15).interval == timedelta(minutes=15)

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("duration_minutes", 4),
            ("duration_minutes", 1441),
            ("buffer_before_minutes", -1),
            ("buffer_after_minutes", -5),
            ("min_notice_minutes", -1),
            ("max_advance_days", 0),
            ("max_advance_days", 731),
            ("slot_interval_minutes", 0),
        ],
    )
    def test_invalid_fields_are_named(self, field: str, value: int) -> None:
        with pytest.raises(ValidationFailed) as info:
            self.make(**{field: value})
        assert field in info.value.errors
        assert info.value.code == "validation_error"


class TestPractitionerAndBooking:
    def test_unknown_time_zone_is_refused(self) -> None:
        with pytest.raises(ValueError, match="IANA"):
            Practitioner(name="X", timezone="Mars/Olympus_Mons")

    def test_booking_needs_aware_times_and_a_positive_length(self) -> None:
        base = {
            "practitioner_id": 1,
            "service_id": 1,
            "client": CLIENT,
            "price": Money(1, "gbp"),
            "created_at": T0,
            "updated_at": T0,
        }
        with pytest.raises(ValueError, match="timezone-aware"):
            Booking(start=datetime(2030, 1, 7, 9), end=T0, **base)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="end after"):
            Booking(start=T0, end=T0, **base)  # type: ignore[arg-type]

    def test_occupied_span_includes_the_booking_buffers(self) -> None:
        booking = Booking(
            practitioner_id=1,
            service_id=1,
            client=CLIENT,
            price=Money(1, "gbp"),
            start=T0,
            end=T0 + timedelta(minutes=50),
            buffer_before_minutes=5,
            buffer_after_minutes=10,
            created_at=T0,
            updated_at=T0,
        )
        assert booking.occupied == Interval(T0 - timedelta(minutes=5), T0 + timedelta(hours=1))
        assert booking.period == Interval(T0, T0 + timedelta(minutes=50))


@pytest.mark.parametrize(("currency", "digits"), [("usd", 2), ("GBP", 2), ("jpy", 0), ("kwd", 3)])
def test_money_knows_its_minor_unit_as_stripe_counts_it(currency: str, digits: int) -> None:
    assert Money(1500, currency).minor_digits == digits
