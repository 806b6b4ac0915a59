"""Domain model: money, intervals, practitioners and their services, bookings and their states."""

from __future__ import annotations

import enum
import itertools
import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
from attrs import define, field, frozen

from booking_core.errors import InvalidTransition, ValidationFailed

_CURRENCY = re.compile(r"^[a-z]{3}$")
SERVICE_KEY_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
_SERVICE_KEY = re.compile(SERVICE_KEY_PATTERN)


def _require_aware(_inst: object, attribute: attrs.Attribute[datetime], value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{attribute.name} must be timezone-aware, got {value!r}")


def _optional_aware(
    inst: object, attribute: attrs.Attribute[datetime | None], value: datetime | None
) -> None:
    if value is not None:
        _require_aware(inst, attribute, value)  # type: ignore[arg-type]


def _lower(text: str) -> str:
    return text.lower()


# -- values --------------------------------------------------------------------------------------


# Currencies whose minor unit is not a hundredth, as Stripe counts amounts (Stripe's table differs
# from ISO 4217 for a few: UGX counts whole units).
_ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()  # noqa: SIM905
)
_THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])


@frozen
class Money:
    """An amount in integer minor units (cents) of an ISO 4217 currency, as Stripe counts it."""

    amount: int = field(validator=attrs.validators.instance_of(int))
    currency: str = field(converter=_lower)

    @amount.validator
    def _non_negative(self, _attribute: object, value: int) -> None:
        if value < 0:
            raise ValueError("amount must not be negative")

    @currency.validator
    def _iso(self, _attribute: object, value: str) -> None:
        if not _CURRENCY.match(value):
            raise ValueError(f"currency must be a three-letter ISO code, got {value!r}")

    def zero(self) -> Money:
        return Money(0, self.currency)

    @property
    def minor_digits(self) -> int:
        """Decimal places of the minor unit as Stripe counts it: 0 for JPY, 3 for KWD, else 2."""
        return 0 if self.currency in _ZERO_DECIMAL else 3 if self.currency in _THREE_DECIMAL else 2


@frozen
class Interval:
    """A half-open span of time [start, end) between two aware datetimes."""

    start: datetime = field(validator=_require_aware)
    end: datetime = field(validator=_require_aware)

    def __attrs_post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"interval must end after it starts: {self.start} .. {self.end}")

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end

    def contains(self, other: Interval) -> bool:
        return self.start <= other.start and other.end <= self.end

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


DAY_MINUTES = 24 * 60
# A range may run past midnight into the next day (an overnight shift): its end is counted from
# the midnight that starts its day, up to 48:00, and it is at most one day long.
MAX_END_MINUTE = 2 * DAY_MINUTES


@frozen
class TimeRange:
    """Local wall-clock hours from one day's midnight, as minutes: [start, end).

    ``start`` lies within the day (< 1440); ``end`` may pass midnight (up to 2880, 48:00) for hours
    that cross into the next day, and the range is at most 24 hours long.
    """

    start_minute: int
    end_minute: int

    def __attrs_post_init__(self) -> None:
        if not (
            0 <= self.start_minute < DAY_MINUTES
            and self.start_minute < self.end_minute <= MAX_END_MINUTE
            and self.end_minute - self.start_minute <= DAY_MINUTES
        ):
            raise ValueError(
                f"time range must satisfy 0 <= start < 1440, start < end <= 2880 and "
                f"end - start <= 1440, got {self.start_minute}..{self.end_minute}"
            )

    @property
    def crosses_midnight(self) -> bool:
        return self.end_minute > DAY_MINUTES

    @classmethod
    def parse(cls, text: str) -> TimeRange:
        """Parse ``"09:00-17:30"`` (``24:00`` allowed as an end); an end before the start, as in
        ``"22:00-02:00"``, or past 24:00, as in ``"22:00-26:00"``, is on the next day."""
        try:
            start_text, end_text = text.split("-")
            start, end = _minutes(start_text), _minutes(end_text, limit=MAX_END_MINUTE)
            if end < start:
                end += DAY_MINUTES
            return cls(start, end)
        except ValueError as exc:
            raise ValueError(f"not a time range like 09:00-17:00: {text!r}") from exc

    def __str__(self) -> str:
        return f"{_hhmm(self.start_minute)}-{_hhmm(self.end_minute)}"


def _minutes(text: str, *, limit: int = DAY_MINUTES) -> int:
    hours, minutes = text.strip().split(":")
    value = int(hours) * 60 + int(minutes)
    if not (0 <= int(minutes) < 60 and 0 <= value <= limit):
        raise ValueError(text)
    return value


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@frozen
class WeeklyHours:
    """Working hours per ISO weekday (0 = Monday … 6 = Sunday), several ranges a day allowed."""

    days: tuple[tuple[TimeRange, ...], ...] = field(default=((),) * 7)

    @days.validator
    def _seven_sorted_disjoint(
        self, _attribute: object, value: tuple[tuple[TimeRange, ...], ...]
    ) -> None:
        if len(value) != 7:
            raise ValueError("weekly hours need exactly seven days")
        for weekday, ranges in enumerate(value):
            _check_disjoint(ranges)
            following = value[(weekday + 1) % 7]
            if (
                ranges
                and following
                and ranges[-1].end_minute > DAY_MINUTES + (following[0].start_minute)
            ):
                raise ValueError(
                    f"hours running past midnight overlap the next day's: {ranges[-1]}, "
                    f"{following[0]}"
                )

    @classmethod
    def from_mapping(cls, mapping: dict[int, list[str]]) -> WeeklyHours:
        """Build from ``{0: ["09:00-12:00", "13:00-17:00"], ...}``."""
        days: list[tuple[TimeRange, ...]] = [() for _ in range(7)]
        for weekday, texts in mapping.items():
            days[weekday] = tuple(sorted((TimeRange.parse(t) for t in texts), key=_range_key))
        return cls(tuple(days))

    def for_weekday(self, weekday: int) -> tuple[TimeRange, ...]:
        return self.days[weekday]


def _range_key(r: TimeRange) -> int:
    return r.start_minute


def _check_disjoint(ranges: tuple[TimeRange, ...]) -> None:
    for before, after in itertools.pairwise(ranges):
        if after.start_minute < before.end_minute:
            raise ValueError(f"working-hour ranges must be sorted and disjoint: {before}, {after}")


@frozen
class DateOverride:
    """Hours for one local date that replace the weekly hours; no ranges means a day off."""

    day: date
    ranges: tuple[TimeRange, ...] = ()

    def __attrs_post_init__(self) -> None:
        _check_disjoint(self.ranges)


def merge_overrides(overrides: list[DateOverride]) -> dict[date, tuple[TimeRange, ...]]:
    """The hours of each overridden date, several overrides of one date merged (never dropped).

    Ranges of one date are united (overlapping or touching ranges join into one); a day-off
    override adds no hours, so a date's hours are those of its overrides that have any.
    """
    by_day: dict[date, list[TimeRange]] = {}
    for override in overrides:
        by_day.setdefault(override.day, []).extend(override.ranges)
    return {day: union_ranges(ranges) for day, ranges in by_day.items()}


def union_ranges(ranges: list[TimeRange]) -> tuple[TimeRange, ...]:
    """Sorted, disjoint ranges covering exactly the minutes some range of ``ranges`` covers."""
    merged: list[list[int]] = []
    for r in sorted(ranges, key=_range_key):
        if merged and r.start_minute <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], r.end_minute)
        else:
            merged.append([r.start_minute, r.end_minute])
    out: list[TimeRange] = []
    for start, end in merged:
        # A united range longer than a day (two overnight ranges) is cut at a day's length: the
        # next day's own hours carry on from there.
        out.append(TimeRange(start, min(end, start + DAY_MINUTES)))
    return tuple(out)


@frozen
class TimeOff:
    """An absolute span (holiday, sick leave) during which nothing can be booked."""

    period: Interval
    reason: str = ""
    # Assigned when stored (the admin API removes a time off by it); not part of the value.
    id: int | None = field(default=None, eq=False)


@frozen
class CalendarLink:
    """Where a practitioner's availability lives in Cal.com.

    ``event_type`` is the numeric event type id as text, or a slug (then ``username`` is needed).
    """

    event_type: str
    user: str | None = None
    username: str | None = None

    @property
    def event_type_id(self) -> int | None:
        return int(self.event_type) if self.event_type.isdigit() else None


def _zone(_inst: object, _attribute: object, value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}") from exc


def _optional_zone(inst: object, attribute: object, value: str | None) -> None:
    if value is not None:
        _zone(inst, attribute, value)


@frozen
class Client:
    """The person who books: name and email are required, phone is optional; ``timezone`` (an
    IANA name) is the zone the client booked from, used to tell them the time in their mails."""

    name: str
    email: str
    phone: str | None = None
    timezone: str | None = field(default=None, validator=_optional_zone)


class SlotAlignment(enum.StrEnum):
    """How a service's starts are placed: on the working hours' grid, or filling gaps."""

    GRID = "grid"  # starts step from each working range's start (the default)
    FILL = "fill"  # after a busy block or the notice edge, restart at the first free instant


class WindowKind(enum.StrEnum):
    """How far ahead a service can be booked."""

    ROLLING = "rolling"  # now + max_advance_days x 24 h
    CALENDAR_DAYS = "calendar_days"  # until the end of the N-th local date after today
    BUSINESS_DAYS = "business_days"  # until the end of the N-th local weekday (Mon-Fri) after today
    DATE_RANGE = "date_range"  # local dates first_day..last_day (inclusive), not before now


@frozen
class BookingWindow:
    """The dates a service can be booked on (beside its minimum notice)."""

    kind: WindowKind = WindowKind.ROLLING
    days: int | None = None  # for calendar_days and business_days
    first_day: date | None = None  # for date_range
    last_day: date | None = None

    def __attrs_post_init__(self) -> None:
        problems: dict[str, list[str]] = {}
        if self.kind in (WindowKind.CALENDAR_DAYS, WindowKind.BUSINESS_DAYS):
            if self.days is None or not 1 <= self.days <= 730:
                problems["window_days"] = ["must be between 1 and 730"]
        elif self.days is not None:
            problems["window_days"] = ["only for calendar_days or business_days"]
        if self.kind is WindowKind.DATE_RANGE:
            if self.first_day is None or self.last_day is None:
                problems["window_first_day"] = ["a date range needs a first and a last day"]
            elif self.last_day < self.first_day:
                problems["window_last_day"] = ["must not be before window_first_day"]
            elif (self.last_day - self.first_day).days > 730 or self.last_day.year > 9000:
                problems["window_last_day"] = ["at most 730 days after window_first_day"]
        elif self.first_day is not None or self.last_day is not None:
            problems["window_first_day"] = ["only for date_range"]
        if problems:
            raise ValidationFailed("invalid booking window", errors=problems)


@frozen
class BookingLimits:
    """At most so many bookings, or so many minutes booked, per local day and per local ISO week
    (Monday to Sunday); None is no limit."""

    bookings_per_day: int | None = None
    bookings_per_week: int | None = None
    minutes_per_day: int | None = None
    minutes_per_week: int | None = None

    def __attrs_post_init__(self) -> None:
        problems = {
            f"max_{name}": ["must be at least 1"]
            for name in (
                "bookings_per_day",
                "bookings_per_week",
                "minutes_per_day",
                "minutes_per_week",
            )
            if (value := getattr(self, name)) is not None and not 1 <= value <= 100_000
        }
        if problems:
            raise ValidationFailed("invalid booking limits", errors=problems)

    @property
    def any(self) -> bool:
        return any(
            v is not None
            for v in (
                self.bookings_per_day,
                self.bookings_per_week,
                self.minutes_per_day,
                self.minutes_per_week,
            )
        )


NO_LIMITS = BookingLimits()


# -- entities ------------------------------------------------------------------------------------


@define(eq=False, kw_only=True)
class Service:
    """Something a practitioner offers: how long it takes, what it costs, when it may be booked."""

    id: int | None = None
    name: str
    duration_minutes: int
    price: Money
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    min_notice_minutes: int = 0
    max_advance_days: int = 60
    slot_interval_minutes: int | None = None
    alignment: SlotAlignment = SlotAlignment.GRID
    window: BookingWindow = field(factory=BookingWindow)
    limits: BookingLimits = NO_LIMITS  # counting this service's bookings only
    # Held as awaiting_approval, unpaid, until the practitioner approves (then paid as usual).
    requires_confirmation: bool = False
    # Services of several practitioners with one key are the same service: a client may book
    # it with any available practitioner.
    key: str | None = None
    active: bool = True

    def __attrs_post_init__(self) -> None:
        problems: dict[str, list[str]] = {}
        if self.key is not None and not _SERVICE_KEY.match(self.key):
            problems["key"] = ["must be 1 to 64 lowercase letters, digits or inner dashes"]
        if not 5 <= self.duration_minutes <= 24 * 60:
            problems["duration_minutes"] = ["must be between 5 and 1440"]
        for name in ("buffer_before_minutes", "buffer_after_minutes", "min_notice_minutes"):
            if getattr(self, name) < 0:
                problems[name] = ["must not be negative"]
        if not 1 <= self.max_advance_days <= 730:
            problems["max_advance_days"] = ["must be between 1 and 730"]
        if self.slot_interval_minutes is not None and not 5 <= self.slot_interval_minutes <= 1440:
            problems["slot_interval_minutes"] = ["must be between 5 and 1440"]
        if problems:
            raise ValidationFailed("invalid service", errors=problems)

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.duration_minutes)

    @property
    def interval(self) -> timedelta:
        """Step between offered starts; defaults to the duration, like Cal.com does."""
        return timedelta(minutes=self.slot_interval_minutes or self.duration_minutes)

    @property
    def buffer_before(self) -> timedelta:
        return timedelta(minutes=self.buffer_before_minutes)

    @property
    def buffer_after(self) -> timedelta:
        return timedelta(minutes=self.buffer_after_minutes)

    def buffered_span(self, start: datetime) -> Interval:
        """The span a booking of this service starting at ``start`` blocks, buffers included."""
        return buffered_span(
            start, start + self.duration, self.buffer_before_minutes, self.buffer_after_minutes
        )


def buffered_span(start: datetime, end: datetime, before: int, after: int) -> Interval:
    """The one definition of a booking's footprint: ``before`` minutes ahead of ``start`` to
    ``after`` minutes past ``end``."""
    return Interval(start - timedelta(minutes=before), end + timedelta(minutes=after))


@define(eq=False, kw_only=True)
class Practitioner:
    """A therapist, coach or clinician: whom clients book, in which time zone, and when."""

    id: int | None = None
    name: str
    title: str = ""
    bio: str = ""
    email: str = ""
    timezone: str = field(default="UTC", validator=_zone)
    active: bool = True
    services: list[Service] = field(factory=list)
    weekly_hours: WeeklyHours = field(factory=WeeklyHours)
    overrides: list[DateOverride] = field(factory=list)
    time_off: list[TimeOff] = field(factory=list)
    calendar_link: CalendarLink | None = None
    limits: BookingLimits = NO_LIMITS  # counting all of the practitioner's bookings

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def service(self, service_id: int) -> Service | None:
        return next((s for s in self.services if s.id == service_id), None)

    def remove_time_off(self, time_off_id: int) -> TimeOff | None:
        """Take the time off with this id off the calendar; returns it (None if not there)."""
        gone = next((t for t in self.time_off if t.id == time_off_id), None)
        if gone is not None:
            self.time_off.remove(gone)
        return gone

    def copy(self) -> Practitioner:
        """A detached copy: its lists and services can change without touching this one.

        Much cheaper than copy.deepcopy (the hours, overrides and time off are frozen values).
        """
        return attrs.evolve(
            self,
            services=[attrs.evolve(s) for s in self.services],
            overrides=list(self.overrides),
            time_off=list(self.time_off),
        )


class Role(enum.StrEnum):
    """What a signed-in user may do: nothing admin (user), one practitioner's things, everything."""

    USER = "user"
    PRACTITIONER = "practitioner"
    ADMIN = "admin"


@define(eq=False, kw_only=True)
class User:
    """Someone who signed in through the OAuth/OIDC provider; upserted on every login."""

    id: int | None = None
    open_id: str
    name: str | None = None
    email: str | None = None
    role: Role = Role.USER
    practitioner_id: int | None = None  # the practitioner a ``practitioner`` user manages
    last_signed_in: datetime | None = field(default=None, validator=_optional_aware)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


class BookingStatus(enum.StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"  # held unpaid until the practitioner approves
    PENDING = "pending"
    CONFIRMED = "confirmed"
    COMPLETED = "completed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"  # confirmed, and the client did not come

    @property
    def occupies_calendar(self) -> bool:
        return self in OCCUPYING


# A booking awaiting approval holds its slot like a pending one: the practitioner approves a
# time nobody else can have taken meanwhile.
OCCUPYING = frozenset(
    {BookingStatus.AWAITING_APPROVAL, BookingStatus.PENDING, BookingStatus.CONFIRMED}
)

ALLOWED_TRANSITIONS: dict[BookingStatus, frozenset[BookingStatus]] = {
    BookingStatus.AWAITING_APPROVAL: frozenset(
        {BookingStatus.PENDING, BookingStatus.EXPIRED, BookingStatus.CANCELLED}
    ),
    BookingStatus.PENDING: frozenset(
        {BookingStatus.CONFIRMED, BookingStatus.EXPIRED, BookingStatus.CANCELLED}
    ),
    BookingStatus.CONFIRMED: frozenset(
        {BookingStatus.COMPLETED, BookingStatus.CANCELLED, BookingStatus.NO_SHOW}
    ),
    BookingStatus.COMPLETED: frozenset(),
    BookingStatus.NO_SHOW: frozenset(),
    BookingStatus.EXPIRED: frozenset(),
    BookingStatus.CANCELLED: frozenset(),
}


class RefundStatus(enum.StrEnum):
    NONE = "none"
    PENDING = "pending"  # asked for (or about to be); the worker retries until Stripe answers
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # Stripe reported the refund failed; needs an admin


@frozen
class Refund:
    """What was (or is to be) refunded on a booking."""

    amount: Money
    status: RefundStatus
    provider_id: str | None = None
    attempts: int = 0
    reason: str = ""


@frozen
class Payment:
    """One payment applied to a booking, in the payments ledger: what it captured, and how much
    of it refund decisions have given back (pending or paid out). ``refunded <= captured``."""

    payment_intent_id: str  # the provider's payment intent, or "checkout:<session id>"
    booking_id: int
    captured: Money
    refunded: int = 0  # minor units of ``captured.currency``

    @property
    def refundable(self) -> int:
        return self.captured.amount - self.refunded


@define(eq=False, kw_only=True)
class Booking:
    """A client's appointment with a practitioner for one service, and its payment state.

    The buffer minutes are copied from the service at booking time, so later edits to the service
    never move an existing booking's footprint on the calendar.
    """

    id: int | None = None
    practitioner_id: int
    service_id: int
    client: Client
    start: datetime = field(validator=_require_aware)
    end: datetime = field(validator=_require_aware)
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    price: Money
    status: BookingStatus = BookingStatus.PENDING
    hold_expires_at: datetime | None = field(default=None, validator=_optional_aware)
    checkout_session_id: str | None = None
    payment_intent_id: str | None = None
    refund: Refund | None = None
    calendar_uid: str | None = None
    notes: str = ""
    manage_token_hash: str = ""
    cancel_reason: str = ""
    # RFC 5545 SEQUENCE of the booking's invitation: 0 when made, one more on each move.
    sequence: int = 0
    # When the practitioner approved it (a service that requires confirmation); the hold and
    # its checkout count from then.
    approved_at: datetime | None = field(default=None, validator=_optional_aware)
    created_at: datetime = field(validator=_require_aware)
    updated_at: datetime = field(validator=_require_aware)
    version: int = 1

    def __attrs_post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError("booking must end after it starts")

    @property
    def period(self) -> Interval:
        return Interval(self.start, self.end)

    @property
    def occupied(self) -> Interval:
        """The span the booking blocks on the practitioner's calendar, buffers included."""
        return buffered_span(
            self.start, self.end, self.buffer_before_minutes, self.buffer_after_minutes
        )

    @property
    def occupies_calendar(self) -> bool:
        return self.status.occupies_calendar

    def transition_to(self, new_status: BookingStatus, *, at: datetime) -> None:
        """Move to ``new_status``; raises InvalidTransition for what the state machine forbids."""
        if new_status not in ALLOWED_TRANSITIONS[self.status]:
            raise InvalidTransition(
                f"booking {self.id} cannot go from {self.status.value} to {new_status.value}"
            )
        self.status = new_status
        if new_status not in (BookingStatus.PENDING, BookingStatus.AWAITING_APPROVAL):
            self.hold_expires_at = None
        self.touch(at)

    def confirm_late_payment(self, *, at: datetime) -> None:
        """The one way out of EXPIRED: a payment that arrived after the hold ran out.

        The caller saves the booking, and the no-overlap rule decides: if the slot was taken in the
        meantime the save raises SlotUnavailable and the payment is refunded instead.
        """
        if self.status is not BookingStatus.EXPIRED:
            raise InvalidTransition(f"booking {self.id} is {self.status.value}, not expired")
        self.status = BookingStatus.CONFIRMED
        self.hold_expires_at = None
        self.touch(at)

    # -- state changes: each checks the transition and records the change (updated_at) ---------

    @classmethod
    def hold(
        cls,
        *,
        practitioner_id: int,
        service: Service,
        client: Client,
        start: datetime,
        at: datetime,
        hold_until: datetime,
        manage_token_hash: str,
        notes: str = "",
        awaiting_approval: bool = False,
    ) -> Booking:
        """A new pending booking holding ``start`` for one ``service`` until ``hold_until``; the
        service's price and buffers are copied, so later edits never move it. With
        ``awaiting_approval`` it is held unpaid until the practitioner acts, ``hold_until``
        being the approval deadline."""
        return cls(
            practitioner_id=practitioner_id,
            service_id=service.id or 0,
            client=client,
            start=start,
            end=start + service.duration,
            buffer_before_minutes=service.buffer_before_minutes,
            buffer_after_minutes=service.buffer_after_minutes,
            price=service.price,
            status=BookingStatus.AWAITING_APPROVAL if awaiting_approval else BookingStatus.PENDING,
            hold_expires_at=hold_until,
            notes=notes,
            manage_token_hash=manage_token_hash,
            created_at=at,
            updated_at=at,
        )

    def attach_checkout(self, session_id: str, *, at: datetime) -> None:
        """Note the checkout session that pays for this booking (once; the same one again is
        not a change)."""
        if self.checkout_session_id == session_id:
            return
        if self.checkout_session_id is not None:
            raise InvalidTransition(f"booking {self.id} is paid through another checkout")
        self.checkout_session_id = session_id
        self.touch(at)

    def record_payment(self, payment_intent_id: str | None, session_id: str | None) -> None:
        """Note the provider's references of the payment applied to this booking."""
        self.payment_intent_id = payment_intent_id or self.payment_intent_id
        self.checkout_session_id = self.checkout_session_id or session_id

    def approve(self, *, at: datetime, hold_until: datetime) -> None:
        """The practitioner approved: awaiting_approval -> pending, held until ``hold_until``
        for the client to pay."""
        if self.status is not BookingStatus.AWAITING_APPROVAL:
            raise InvalidTransition(
                f"booking {self.id} is {self.status.value}, not awaiting approval"
            )
        self.transition_to(BookingStatus.PENDING, at=at)
        self.hold_expires_at = hold_until
        self.approved_at = at

    def decline(self, reason: str, *, at: datetime) -> None:
        """The practitioner declined: awaiting_approval -> cancelled (nothing was paid)."""
        if self.status is not BookingStatus.AWAITING_APPROVAL:
            raise InvalidTransition(
                f"booking {self.id} is {self.status.value}, not awaiting approval"
            )
        self.transition_to(BookingStatus.CANCELLED, at=at)
        self.cancel_reason = reason

    def confirm(self, *, at: datetime) -> None:
        """The hold was paid: pending -> confirmed."""
        self.transition_to(BookingStatus.CONFIRMED, at=at)

    def expire(self, reason: str, *, at: datetime) -> None:
        """The hold ends unpaid (ran out, checkout expired or failed): pending -> expired; or
        nobody approved in time: awaiting_approval -> expired."""
        self.transition_to(BookingStatus.EXPIRED, at=at)
        self.cancel_reason = reason

    def cancel(self, reason: str, *, at: datetime) -> None:
        """Cancelled by the client, an admin or the practitioner: awaiting_approval|pending|
        confirmed -> cancelled (a refund is decided with decide_refund)."""
        self.transition_to(BookingStatus.CANCELLED, at=at)
        self.cancel_reason = reason
        self.sequence += 1  # the invitation's CANCEL supersedes the last REQUEST

    def decide_refund(self, amount: Money, reason: str, *, at: datetime) -> None:
        """The booking's one refund decision (PENDING until the provider answers)."""
        if self.refund is not None:
            raise InvalidTransition(f"booking {self.id} already has a refund decision")
        self.refund = Refund(amount=amount, status=RefundStatus.PENDING, reason=reason)
        self.touch(at)

    def update_refund(
        self,
        *,
        at: datetime,
        status: RefundStatus | None = None,
        provider_id: str | None = None,
        attempt: bool = False,
    ) -> None:
        """What the provider says of the refund; a settled refund never goes back to PENDING."""
        if self.refund is None:
            raise InvalidTransition(f"booking {self.id} has no refund to update")
        if status is None or status is RefundStatus.PENDING:
            status = self.refund.status
        self.refund = attrs.evolve(
            self.refund,
            status=status,
            provider_id=provider_id or self.refund.provider_id,
            attempts=self.refund.attempts + (1 if attempt else 0),
        )
        self.touch(at)

    def reschedule(self, new_start: datetime, *, at: datetime) -> None:
        """Move a pending or confirmed booking that has not started; same length and buffers."""
        if not self.occupies_calendar:
            raise InvalidTransition(f"a {self.status.value} booking cannot be rescheduled")
        if self.start <= at:
            raise InvalidTransition("a booking that has started cannot be rescheduled")
        self.start, self.end = new_start, new_start + (self.end - self.start)
        self.sequence += 1
        self.touch(at)

    def complete(self, *, at: datetime) -> None:
        """The appointment took place: confirmed -> completed."""
        self.transition_to(BookingStatus.COMPLETED, at=at)

    def mark_no_show(self, *, at: datetime) -> None:
        """The client did not come: confirmed -> no_show, once the start has passed."""
        if self.start > at:
            raise InvalidTransition(f"booking {self.id} has not started yet")
        self.transition_to(BookingStatus.NO_SHOW, at=at)

    def sync_calendar(self, uid: str, *, at: datetime) -> None:
        """Note the external calendar's booking uid."""
        self.calendar_uid = uid
        self.touch(at)

    def touch(self, at: datetime) -> None:
        """Record a change: PostgreSQL has no ON UPDATE, so the application sets updated_at."""
        self.updated_at = at

    def copy(self) -> Booking:
        """A detached copy (the memory adapter hands these out, like a fresh load from a DB)."""
        return attrs.evolve(self)
