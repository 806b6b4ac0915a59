"""Request and response shapes of the admin API (/api/admin), declared once with pydantic.

As strict as the public API: unknown fields are refused, IANA zones only, durations and buffers
in range, integer minor-unit prices with an ISO 4217 currency, working hours as several ranges
a day without overlaps, time off that ends after it starts. Service fields live in one base
class, so a new scheduling rule is one field here and one in ``usecases.admin.SERVICE_FIELDS``.
"""

from __future__ import annotations

import functools
import itertools
import re
import zoneinfo
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from booking_core import usecases as uc
from booking_core.access import ApiToken, AuditEntry
from booking_core.model import (
    BookingStatus,
    CalendarLink,
    Interval,
    Money,
    Practitioner,
    Service,
    TimeOff,
    TimeRange,
    User,
    WeeklyHours,
)
from entrypoints.web.schemas import (
    BookingOut,
    DateTimeIn,
    Email,
    Id,
    Line,
    Name,
    Notes,
    QueryId,
    Reason,
    Request,
    Response,
    ServiceOut,
    UtcDateTime,
    _fail,
    _query_count,
    service_out,
)

# Active ISO 4217 codes (lower case, as Stripe writes them); funds and metals codes left out.
ISO_4217 = frozenset(
    """
    aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd btn bwp
    byn bzd cad cdf chf clp cny cop crc cup cve czk djf dkk dop dzd egp ern etb eur fjd fkp gbp
    gel ghs gip gmd gnf gtq gyd hkd hnl htg huf idr ils inr iqd irr isk jmd jod jpy kes kgs khr
    kmf kpw krw kwd kyd kzt lak lbp lkr lrd lsl lyd mad mdl mga mkd mmk mnt mop mru mur mvr mwk
    mxn myr mzn nad ngn nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar
    sbd scr sdg sek sgd shp sle sll sos srd ssp stn svc syp szl thb tjs tmt tnd top try ttd twd
    tzs uah ugx usd uyu uzs ves vnd vuv wst xaf xcd xof xpf yer zar zmw zwl
    """.split()  # noqa: SIM905 - a table, easier to read and check as text
)
ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$"
_ZONE = re.compile(ZONE_PATTERN)
HHMM_PATTERN = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
_HHMM = re.compile(HHMM_PATTERN)


# Files of the zone database that are not zones: the host's own setting and its fallbacks.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) - _NOT_ZONES


def _zone(value: str) -> str:
    if not _ZONE.fullmatch(value) or value not in _zones():
        raise _fail("must be an IANA time zone such as Europe/London")
    return value


def _currency(value: str) -> str:
    if value not in ISO_4217:
        raise _fail("must be an ISO 4217 currency code in lower case, such as usd")
    return value


def _hhmm(value: str) -> str:
    if not _HHMM.fullmatch(value):
        raise _fail("must be a local time like 09:00 (24:00 ends a day)")
    return value


Zone = Annotated[
    str,
    Field(strict=True, min_length=1, max_length=64),
    AfterValidator(_zone),
    # The document lists the zones this server knows (its zone database), as strict as it is.
    WithJsonSchema({"type": "string", "enum": sorted(_zones())}),
]
Currency = Annotated[
    str,
    Field(strict=True),
    AfterValidator(_currency),
    WithJsonSchema({"type": "string", "enum": sorted(ISO_4217)}),
]
HourMinute = Annotated[
    str,
    Field(strict=True),
    AfterValidator(_hhmm),
    WithJsonSchema({"type": "string", "pattern": HHMM_PATTERN}),
]
Minutes = Annotated[int, Field(strict=True, ge=0, le=24 * 60)]
Duration = Annotated[int, Field(strict=True, ge=5, le=24 * 60)]
Notice = Annotated[int, Field(strict=True, ge=0, le=60 * 24 * 365)]
AdvanceDays = Annotated[int, Field(strict=True, ge=1, le=730)]
Title = Annotated[Line, Field(max_length=120)]
Cursor = Annotated[
    str,
    Field(strict=True, min_length=1, max_length=512),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": 512, "pattern": "^[A-Za-z0-9_-]+$"}
    ),
]
Limit = Annotated[
    int,
    BeforeValidator(_query_count),
    Field(strict=True, ge=1, le=500),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 500}),
]


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


# -- requests ------------------------------------------------------------------------------------


class MoneyIn(Request):
    amount: Annotated[int, Field(strict=True, ge=0, le=10**10, description="minor units")]
    currency: Currency

    def to_domain(self) -> Money:
        return Money(self.amount, self.currency)


class PractitionerCreate(Request):
    name: Name
    email: Email
    timezone: Zone
    title: Title = ""
    bio: Notes = ""
    active: bool = True

    def to_command(self) -> uc.NewPractitioner:
        return uc.NewPractitioner(
            name=self.name,
            email=self.email,
            timezone=self.timezone,
            title=self.title,
            bio=self.bio,
            active=self.active,
        )


# A PATCH field's default: absent means unchanged, and is never validated (pydantic does not
# validate defaults), while an explicit null fails the field's type.
_ABSENT: Any = None


def _no_defaults(schema: dict[str, Any]) -> None:
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)


class _Patch(Request):
    """A PATCH body: the fields given are changed (null is refused: a field is set or absent)."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, json_schema_extra=_no_defaults
    )

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class PractitionerPatch(_Patch):
    name: Name = _ABSENT
    email: Email = _ABSENT
    timezone: Zone = _ABSENT
    title: Title = _ABSENT
    bio: Notes = _ABSENT
    active: bool = _ABSENT


class ServiceFields(Request):
    """What a service is made of; ServiceCreate and ServicePatch share these rules."""

    name: Name
    duration_minutes: Duration
    price: MoneyIn
    buffer_before_minutes: Minutes = 0
    buffer_after_minutes: Minutes = 0
    min_notice_minutes: Notice = 0
    max_advance_days: AdvanceDays = 60
    slot_interval_minutes: Duration | None = None
    active: bool = True


class ServiceCreate(ServiceFields):
    def to_domain(self) -> Service:
        values = self.model_dump()
        values["price"] = self.price.to_domain()
        return Service(**values)


class ServicePatch(_Patch):
    name: Name = _ABSENT
    duration_minutes: Duration = _ABSENT
    price: MoneyIn = _ABSENT
    buffer_before_minutes: Minutes = _ABSENT
    buffer_after_minutes: Minutes = _ABSENT
    min_notice_minutes: Notice = _ABSENT
    max_advance_days: AdvanceDays = _ABSENT
    slot_interval_minutes: Duration | None = _ABSENT
    active: bool = _ABSENT

    def changes(self) -> dict[str, Any]:
        values = super().changes()
        if "price" in values:
            values["price"] = self.price.to_domain()
        return values


class TimeRangeIn(Request):
    start: HourMinute
    end: HourMinute

    @field_validator("end")
    @classmethod
    def _after_start(cls, value: str, info: ValidationInfo) -> str:
        start = info.data.get("start")
        if isinstance(start, str) and _minutes(value) <= _minutes(start):
            raise _fail("must be after start")
        return value


DayHours = Annotated[list[TimeRangeIn], Field(max_length=24)]
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class WorkingHoursIn(Request):
    """The whole week in local time; a day left out (or empty) has no hours."""

    mon: DayHours = []
    tue: DayHours = []
    wed: DayHours = []
    thu: DayHours = []
    fri: DayHours = []
    sat: DayHours = []
    sun: DayHours = []

    @field_validator(*_DAYS)
    @classmethod
    def _disjoint(cls, value: list[TimeRangeIn]) -> list[TimeRangeIn]:
        ranges = sorted((_minutes(r.start), _minutes(r.end)) for r in value)
        if any(b[0] < a[1] for a, b in itertools.pairwise(ranges)):
            raise _fail("ranges must not overlap")
        return value

    def to_domain(self) -> WeeklyHours:
        return WeeklyHours(
            tuple(
                tuple(
                    sorted(
                        (TimeRange(_minutes(r.start), _minutes(r.end)) for r in getattr(self, d)),
                        key=lambda t: t.start_minute,
                    )
                )
                for d in _DAYS
            )
        )


class TimeOffIn(Request):
    start: DateTimeIn
    end: DateTimeIn
    reason: Reason | None = None

    @field_validator("end")
    @classmethod
    def _after_start(cls, value: Any, info: ValidationInfo) -> Any:
        start = info.data.get("start")
        if start is not None and value <= start:
            raise _fail("must be after start")
        return value

    def period(self) -> Interval:
        return Interval(self.start, self.end)


class CalcomLinkIn(Request):
    user_id: Id
    event_type_id: Id

    def to_domain(self) -> CalendarLink:
        return CalendarLink(event_type=str(self.event_type_id), user=str(self.user_id))


class AdminBookingsQuery(Request):
    practitioner_id: QueryId | None = None
    status: Annotated[BookingStatus | None, Field(strict=False)] = None
    from_: Annotated[DateTimeIn | None, Field(alias="from")] = None
    to: DateTimeIn | None = None
    email: Annotated[Line | None, Field(description="the client's email, exactly")] = None
    cursor: Annotated[Cursor | None, Field(description="next_cursor of the previous page")] = None
    limit: Limit = 50


class UserPatch(Request):
    role: Literal["user", "practitioner", "admin"]
    practitioner_id: Id | None = None


class AuditQuery(Request):
    actor: Annotated[Line | None, Field(description='"user:7", "token:admin-token" or an id')] = (
        None
    )
    object_type: Annotated[Line | None, Field(max_length=40)] = None
    object_id: Annotated[Line | None, Field(max_length=40)] = None
    since: DateTimeIn | None = None
    cursor: Annotated[Cursor | None, Field(description="next_cursor of the previous page")] = None
    limit: Limit = 50


class TokenCreate(Request):
    name: Name


# -- responses -----------------------------------------------------------------------------------


class AdminServiceOut(ServiceOut):
    active: bool


class RangeOut(Response):
    start: str
    end: str


class WorkingHoursOut(Response):
    mon: list[RangeOut]
    tue: list[RangeOut]
    wed: list[RangeOut]
    thu: list[RangeOut]
    fri: list[RangeOut]
    sat: list[RangeOut]
    sun: list[RangeOut]


class TimeOffOut(Response):
    id: int
    start: UtcDateTime
    end: UtcDateTime
    reason: str


class CalcomOut(Response):
    user_id: int | None
    event_type_id: int | None


class AdminPractitionerOut(Response):
    id: int
    name: str
    title: str
    bio: str
    email: str
    timezone: str
    active: bool
    services: list[AdminServiceOut]
    working_hours: WorkingHoursOut
    time_off: list[TimeOffOut]
    calcom: CalcomOut | None


class AdminPractitionerList(Response):
    items: list[AdminPractitionerOut]


class AdminBookingPage(Response):
    items: list[BookingOut]
    next_cursor: Annotated[str | None, Field(description="pass as cursor; null on the last page")]


class UserOut(Response):
    id: int
    open_id: str
    name: str | None
    email: str | None
    role: Literal["user", "practitioner", "admin"]
    practitioner_id: int | None
    last_signed_in: UtcDateTime | None


class UserList(Response):
    items: list[UserOut]


class ActorOut(Response):
    type: str
    id: str
    name: str


class AuditOut(Response):
    id: int
    at: UtcDateTime
    actor: ActorOut
    action: str
    object_type: str
    object_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None


class AuditPageOut(Response):
    items: list[AuditOut]
    next_cursor: str | None


class TokenOut(Response):
    id: int
    name: str
    created_at: UtcDateTime
    created_by: str
    revoked_at: UtcDateTime | None
    active: bool


class TokenCreated(Response):
    token: Annotated[str, Field(description="shown once: store it now")]
    api_token: TokenOut


class TokenList(Response):
    items: list[TokenOut]


# -- rendering -----------------------------------------------------------------------------------


def admin_service_out(service: Service) -> AdminServiceOut:
    return AdminServiceOut(**service_out(service).model_dump(), active=service.active)


def hours_out(hours: WeeklyHours) -> WorkingHoursOut:
    days = {
        day: [RangeOut(start=s["start"], end=s["end"]) for s in ranges]
        for day, ranges in uc.admin.hours_json(hours).items()
    }
    return WorkingHoursOut(**days)


def time_off_out(time_off: TimeOff) -> TimeOffOut:
    return TimeOffOut(
        id=time_off.id or 0,
        start=time_off.period.start,
        end=time_off.period.end,
        reason=time_off.reason,
    )


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def admin_practitioner_out(p: Practitioner) -> AdminPractitionerOut:
    link = p.calendar_link
    return AdminPractitionerOut(
        id=p.id or 0,
        name=p.name,
        title=p.title,
        bio=p.bio,
        email=p.email,
        timezone=p.timezone,
        active=p.active,
        services=[admin_service_out(s) for s in p.services],
        working_hours=hours_out(p.weekly_hours),
        time_off=[time_off_out(t) for t in p.time_off],
        calcom=(
            CalcomOut(user_id=_int(link.user), event_type_id=link.event_type_id) if link else None
        ),
    )


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id or 0,
        open_id=user.open_id,
        name=user.name,
        email=user.email,
        role=user.role.value,
        practitioner_id=user.practitioner_id,
        last_signed_in=user.last_signed_in,
    )


def audit_out(entry: AuditEntry) -> AuditOut:
    return AuditOut(
        id=entry.id or 0,
        at=entry.at,
        actor=ActorOut(type=entry.actor_type, id=entry.actor_id, name=entry.actor_name),
        action=entry.action,
        object_type=entry.object_type,
        object_id=entry.object_id,
        before=dict(entry.before) if entry.before is not None else None,
        after=dict(entry.after) if entry.after is not None else None,
        request_id=entry.request_id,
    )


def token_out(token: ApiToken) -> TokenOut:
    return TokenOut(
        id=token.id or 0,
        name=token.name,
        created_at=token.created_at,
        created_by=token.created_by,
        revoked_at=token.revoked_at,
        active=token.active,
    )
