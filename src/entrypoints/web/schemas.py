"""Request and response shapes of the HTTP API, declared once (pydantic, at the web edge only).

The request models validate input (``parse``: every refused field at once, as a 422
``validation_error`` whose ``errors`` map names each field); the response models render domain
objects; both generate the OpenAPI document (``entrypoints.web.openapi``). Domain classes never
learn about JSON: the ``*_json`` functions below map them onto these models.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from booking_core import usecases as uc
from booking_core.availability import free_ranges
from booking_core.errors import ValidationFailed
from booking_core.jobs import Job, JobStatus
from booking_core.model import (
    Booking,
    BookingLimits,
    BookingStatus,
    Client,
    Interval,
    Money,
    Practitioner,
    Refund,
    RefundStatus,
    Service,
    SlotAlignment,
    WindowKind,
)
from entrypoints.web.ids import MAX_ID, MIN_ID, parse_id

# -- the rules for single values -----------------------------------------------------------------

# RFC 3339 date-time with a mandatory offset. ASCII digits only (``\d`` would take any Unicode
# digit); the offset's hours 00-23 and minutes 00-59 (``+00:60`` is not another way to say +01:00).
RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_RFC3339 = re.compile(RFC3339_PATTERN)
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_DATE = re.compile(DATE_PATTERN)
PHONE_PATTERN = r"^\+?[0-9 ()./-]{5,32}$"
_PHONE = re.compile(PHONE_PATTERN)

# The same rules, for the OpenAPI document (ECMA-262 patterns): no control characters (C0, DEL,
# C1) and no bidi controls; names also need a character that is not a space.
_NO_CONTROLS = r"\u0000-\u001f\u007f-\u009f"
_NO_BIDI = r"\u202a-\u202e\u2066-\u2069"
LINE_PATTERN = f"^[^{_NO_CONTROLS}{_NO_BIDI}]*$"
PARAMETER_PATTERN = f"^[^{_NO_CONTROLS}]*$"  # what any query parameter or path segment may hold
NAME_PATTERN = (
    f"^[^{_NO_CONTROLS}{_NO_BIDI}]*[^\\s{_NO_CONTROLS}{_NO_BIDI}][^{_NO_CONTROLS}{_NO_BIDI}]*$"
)
NOTES_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f" + _NO_BIDI + "]*$"
_EMAIL_PART = f"[^@\\s{_NO_CONTROLS}]+"
EMAIL_PATTERN = f"^{_EMAIL_PART}@{_EMAIL_PART}\\.{_EMAIL_PART}$"

# Bidirectional embeddings, overrides and isolates reorder what a reader sees (a name that
# reads differently in an admin list or an email): refused in every text field.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# General categories that show nothing by themselves: separators, controls, format characters,
# unassigned and private-use code points, combining marks on their own.
_INVISIBLE = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cn", "Co", "Cs", "Mn", "Me"})

# How far from today a date may be: enough for any booking, and no overflow games.
DAYS_BACK, DAYS_AHEAD = 366, 2 * 366


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid", message)


def check_text(value: str, *, multiline: bool = False) -> str:
    """Text without control characters (C0, DEL, C1) or bidi controls; tabs and newlines only
    where ``multiline``."""
    for char in value:
        if char in _BIDI_CONTROLS:
            raise _fail("must not contain bidirectional control characters")
        if unicodedata.category(char) == "Cc" and not (multiline and char in "\n\t\r"):
            raise _fail("must not contain control characters")
        if 0xD800 <= ord(char) <= 0xDFFF:
            raise _fail("must not contain lone surrogates")
    return value


def _name(value: str) -> str:
    value = check_text(value.strip())
    if not any(unicodedata.category(c) not in _INVISIBLE for c in value):
        raise _fail("must contain a visible character")
    return value


def _line(value: str) -> str:
    return check_text(value.strip())


def _notes(value: str) -> str:
    return check_text(value.strip(), multiline=True)


def _email(value: str) -> str:
    value = check_text(value.strip())
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise _fail("must be an email address") from exc
    return checked.normalized.lower()


def _phone(value: str) -> str:
    value = check_text(value.strip())
    if not _PHONE.fullmatch(value):
        raise _fail("must be a phone number")
    return value


def parse_datetime(value: object) -> datetime | None:
    """An aware UTC datetime from RFC 3339 text, or None (naive, malformed, out of range)."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _datetime(value: object) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        raise _fail("must be an RFC 3339 date-time with an offset, e.g. 2030-01-07T09:00:00Z")
    return parsed


def _date(value: object) -> date:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise _fail("must be a date like 2030-01-07")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise _fail("is not a real date") from exc


def _today(info: ValidationInfo) -> date | None:
    now = (info.context or {}).get("now")
    return now.date() if isinstance(now, datetime) else None


def _near_date(value: date, info: ValidationInfo) -> date:
    today = _today(info)
    if today is not None:
        low, high = today - timedelta(days=DAYS_BACK), today + timedelta(days=DAYS_AHEAD)
        if not low <= value <= high:
            raise _fail(f"must be between {low.isoformat()} and {high.isoformat()}")
    return value


def _future_start(value: datetime, info: ValidationInfo) -> datetime:
    """A start after now and within the dates any booking can have (no overflow games)."""
    now = (info.context or {}).get("now")
    if isinstance(now, datetime):
        if value <= now:
            raise _fail("must be in the future")
        _near_date(value.date(), info)
    return value


def _query_id(value: object) -> object:
    if isinstance(value, str):
        parsed = parse_id(value)
        if parsed is None:
            raise _fail("must be a positive id in ASCII digits, without leading zeros")
        return parsed
    return value


def _query_count(value: object) -> object:
    if isinstance(value, str):
        if not re.fullmatch("0|[1-9][0-9]{0,8}", value):
            raise _fail("must be a whole number in ASCII digits, without leading zeros")
        return int(value)
    return value


_ID_SCHEMA = {"type": "integer", "minimum": MIN_ID, "maximum": MAX_ID}
ID_SCHEMA = _ID_SCHEMA  # for query models declared next to their pages
_DATETIME_SCHEMA = {"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN}

# An id in a JSON body: an integer, never a string, float or boolean.
Id = Annotated[int, Field(strict=True, ge=MIN_ID, le=MAX_ID)]
# An id in a query string: the text rule of ``entrypoints.web.ids``.
QueryId = Annotated[
    int,
    BeforeValidator(_query_id),
    Field(strict=True, ge=MIN_ID, le=MAX_ID),
    WithJsonSchema({**_ID_SCHEMA}),
]
Name = Annotated[
    str,
    Field(strict=True, min_length=1, max_length=120),
    AfterValidator(_name),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 120, "pattern": NAME_PATTERN}),
]
Email = Annotated[
    str,
    Field(strict=True, min_length=3, max_length=254),
    AfterValidator(_email),
    WithJsonSchema(
        {
            "type": "string",
            "format": "email",
            "minLength": 3,
            "maxLength": 254,
            "pattern": EMAIL_PATTERN,
        }
    ),
]
Phone = Annotated[
    str,
    Field(strict=True, max_length=32),
    AfterValidator(_phone),
    WithJsonSchema({"type": "string", "pattern": PHONE_PATTERN, "maxLength": 32}),
]
TIMEZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$"


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _timezone(value: str) -> str:
    if not re.fullmatch(TIMEZONE_PATTERN, value) or value not in _known_zones():
        raise _fail("must be an IANA time zone such as Europe/London")
    return value


TimeZoneName = Annotated[
    str,
    Field(strict=True, min_length=1, max_length=64),
    AfterValidator(_timezone),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "pattern": TIMEZONE_PATTERN,
            "description": "IANA time zone, e.g. Europe/London",
        }
    ),
]
Notes = Annotated[
    str,
    Field(strict=True, max_length=2000),
    AfterValidator(_notes),
    WithJsonSchema({"type": "string", "maxLength": 2000, "pattern": NOTES_PATTERN}),
]
Reason = Annotated[
    str,
    Field(strict=True, max_length=500),
    AfterValidator(_notes),
    WithJsonSchema({"type": "string", "maxLength": 500, "pattern": NOTES_PATTERN}),
]
Line = Annotated[
    str,
    Field(strict=True, max_length=254),
    AfterValidator(_line),
    WithJsonSchema({"type": "string", "maxLength": 254, "pattern": LINE_PATTERN}),
]
DateTimeIn = Annotated[datetime, PlainValidator(_datetime), WithJsonSchema(_DATETIME_SCHEMA)]
StartIn = Annotated[DateTimeIn, AfterValidator(_future_start)]
DateIn = Annotated[
    date,
    PlainValidator(_date),
    AfterValidator(_near_date),
    WithJsonSchema({"type": "string", "format": "date", "pattern": DATE_PATTERN}),
]
ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$"


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _zone_name(value: str) -> str:
    if value not in _zones():
        raise _fail("must be an IANA time zone like Europe/Paris")
    return value


ZoneIn = Annotated[
    str,
    Field(strict=True, min_length=1, max_length=64, pattern=ZONE_PATTERN),
    AfterValidator(_zone_name),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 64, "pattern": ZONE_PATTERN}),
]


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


UtcDateTime = Annotated[
    datetime,
    PlainSerializer(iso, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
# A local time with its offset (RFC 3339), e.g. 2030-01-07T09:00:00+01:00.
LocalDateTime = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
DateOut = Annotated[
    date,
    PlainSerializer(date.isoformat, return_type=str),
    WithJsonSchema({"type": "string", "format": "date"}),
]


# -- requests ------------------------------------------------------------------------------------


class Request(BaseModel):
    """Strict input: unknown fields are refused, nothing is coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ClientIn(Request):
    name: Name
    email: Email
    phone: Phone | None = None
    timezone: Annotated[
        TimeZoneName | None,
        Field(description="the client's IANA time zone: their mails tell times in it"),
    ] = None

    def to_domain(self) -> Client:
        return Client(name=self.name, email=self.email, phone=self.phone, timezone=self.timezone)


class RecoverRequest(Request):
    email: Email


class BookingRequest(Request):
    practitioner_id: Annotated[
        Id | Literal["any"],
        Field(
            description='a practitioner id, or "any": the free practitioner least booked that '
            "week among those offering a service of service_id's key"
        ),
    ]
    service_id: Id
    start: Annotated[
        StartIn, Field(description="RFC 3339 with an offset; one of the offered slot starts")
    ]
    client: ClientIn
    notes: Notes | None = None


class CancelRequest(Request):
    """A client's cancellation; the body may be empty."""

    reason: Reason | None = None


class AdminCancelRequest(Request):
    """``refund`` true/false overrides the cancellation policy; null or absent follows it."""

    reason: Reason | None = None
    refund: bool | None = None
    refund_amount: Annotated[
        int | None,
        Field(
            strict=True,
            ge=1,
            le=10**10,
            description="refund this many minor units (at most what was paid)",
        ),
    ] = None


class RescheduleRequest(Request):
    start: StartIn
    reason: Reason | None = None


class AvailabilityQuery(Request):
    service_id: QueryId | None = None
    from_: Annotated[
        DateIn | None, Field(alias="from", description="first local date (default today)")
    ] = None
    to: Annotated[
        DateIn | None,
        Field(description="last local date, inclusive (default from + 6 days; at most 62 days)"),
    ] = None
    timezone: Annotated[
        ZoneIn | None,
        Field(
            description="the client's IANA zone: from/to, days and local_start are in it "
            "(default: the practitioner's zone)"
        ),
    ] = None
    format: Annotated[
        Literal["slots", "ranges"],
        Field(description="slots (default), or ranges: runs of consecutive slots"),
    ] = "slots"


class ServiceAvailabilityQuery(Request):
    from_: Annotated[
        DateIn | None, Field(alias="from", description="first local date (default today)")
    ] = None
    to: Annotated[
        DateIn | None,
        Field(description="last local date, inclusive (default from + 6 days; at most 62 days)"),
    ] = None
    timezone: Annotated[
        ZoneIn | None,
        Field(
            description="the client's IANA zone: from/to and local_start are in it (default UTC)"
        ),
    ] = None


class TrpcAvailabilityInput(Request):
    """The seed's tRPC input: ``{"practitionerId": 1, "serviceId"?, "from"?, "to"?}``."""

    practitionerId: Id
    serviceId: Id | None = None
    from_: Annotated[DateIn | None, Field(alias="from")] = None
    to: DateIn | None = None


class TrpcQuery(Request):
    input: Annotated[
        str,
        Field(
            min_length=2,
            max_length=2048,
            description='JSON text: {"practitionerId": 1, "serviceId"?, "from"?, "to"?}',
            json_schema_extra={"examples": ['{"practitionerId":1}']},
        ),
    ]


class JobsQuery(Request):
    status: Annotated[
        JobStatus | None,
        Field(strict=False, description="parked lists the jobs that need a person"),
    ] = None


class PageQuery(Request):
    """Where Checkout sends the client: the session's id (other parameters are ignored)."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    session_id: Annotated[
        str | None,
        Field(strict=True),
        WithJsonSchema({"type": "string", "pattern": PARAMETER_PATTERN}),
    ] = None


ParameterText = Annotated[
    str, Field(strict=True), WithJsonSchema({"type": "string", "pattern": PARAMETER_PATTERN})
]


class LoginQuery(Request):
    next: Annotated[
        ParameterText | None, Field(description="a path on this site to return to (default /)")
    ] = None


class CallbackQuery(Request):
    """What the OpenID provider sends back (it may add parameters of its own)."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    code: ParameterText | None = None
    state: ParameterText | None = None
    error: ParameterText | None = None


M = TypeVar("M", bound=BaseModel)

_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "unknown field",
    "int_type": "must be an integer",
    "string_type": "must be a string",
    "bool_type": "must be true, false or null",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "enum": None,  # pydantic's own message lists the values
    "greater_than_equal": None,
    "less_than_equal": None,
    "string_too_long": None,
    "string_too_short": "must not be empty",
}


def parse(
    model: type[M],
    data: Mapping[str, Any],
    *,
    now: datetime | None = None,
    detail: str = "the request has invalid fields",
    names: Mapping[str, str] | None = None,
) -> M:
    """``data`` validated by ``model``, or ValidationFailed listing every refused field.

    ``now`` lets fields check dates against the clock; ``names`` renames fields in the errors.
    """
    try:
        return model.model_validate(data, context={"now": now})
    except ValidationError as exc:
        errors: dict[str, list[str]] = {}
        for error in exc.errors(include_url=False, include_input=False):
            loc = [str(part) for part in error["loc"] if not isinstance(part, int)]
            # a union's branch name (e.g. "function-after[...]") is not a field
            loc = [part for part in loc if "[" not in part and part not in ("none", "int")]
            field = ".".join(loc) or "body"
            if names:
                field = names.get(field, field)
            message = _MESSAGES.get(error["type"]) or error["msg"]
            messages = errors.setdefault(field, [])
            if message not in messages:
                messages.append(message)
        raise ValidationFailed(detail, errors=errors) from None


# -- responses -----------------------------------------------------------------------------------


class Response(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class MoneyOut(Response):
    amount: Annotated[int, Field(description="minor units, e.g. cents")]
    currency: Annotated[str, Field(pattern="^[a-z]{3}$")]


class BookingWindowOut(Response):
    kind: Annotated[
        WindowKind,
        Field(
            description="rolling: max_advance_days x 24 h; calendar_days / business_days: to the "
            "end of the N-th local date (weekday) after today; date_range: first_day..last_day"
        ),
    ]
    days: int | None
    first_day: DateOut | None
    last_day: DateOut | None


class LimitsOut(Response):
    """Per local date and local ISO week; null is no limit."""

    max_bookings_per_day: int | None
    max_bookings_per_week: int | None
    max_minutes_per_day: int | None
    max_minutes_per_week: int | None


class ServiceOut(Response):
    id: int
    name: str
    duration_minutes: int
    price: MoneyOut
    buffer_before_minutes: int
    buffer_after_minutes: int
    min_notice_minutes: int
    max_advance_days: int
    slot_interval_minutes: int
    alignment: Annotated[
        SlotAlignment,
        Field(description="grid: starts step from the hours; fill: restart after busy blocks"),
    ]
    booking_window: BookingWindowOut
    limits: Annotated[LimitsOut, Field(description="counting this service's bookings")]
    requires_confirmation: Annotated[
        bool, Field(description="held awaiting_approval, unpaid, until the practitioner approves")
    ]
    key: Annotated[
        str | None,
        Field(description="shared by equivalent services: /api/services/{key}/availability"),
    ]


class PractitionerOut(Response):
    id: int
    name: str
    title: str
    bio: str
    timezone: Annotated[str, Field(description="IANA time zone")]
    services: list[ServiceOut]


class PractitionerList(Response):
    items: list[PractitionerOut]


class SlotOut(Response):
    start: UtcDateTime
    end: UtcDateTime
    local_start: Annotated[
        LocalDateTime,
        Field(description="the start in the answer's zone (client_timezone, else timezone)"),
    ]


class DayOut(Response):
    date: DateOut
    slots: Annotated[list[SlotOut], Field(description="empty with format=ranges")]
    ranges: Annotated[list[SlotOut], Field(description="empty with format=slots")]


class AvailabilityOut(Response):
    practitioner_id: int
    service_id: int
    timezone: Annotated[str, Field(description="the practitioner's IANA zone")]
    client_timezone: Annotated[
        str | None, Field(description="the zone from/to and days are in; null: timezone")
    ]
    source: Literal["calcom", "schedule"]
    format: Literal["slots", "ranges"]
    from_: Annotated[DateOut, Field(alias="from")]
    to: DateOut
    slots: Annotated[list[SlotOut], Field(description="empty with format=ranges")]
    ranges: Annotated[
        list[SlotOut],
        Field(
            description="free ranges: runs of consecutive offered starts, each from its first "
            "start to its last slot's end; empty with format=slots"
        ),
    ]
    days: Annotated[
        list[DayOut], Field(description="every date from..to, with its slots or ranges")
    ]


class OfferOut(Response):
    practitioner_id: int
    service_id: int
    end: Annotated[UtcDateTime, Field(description="equivalent services may differ in length")]


class SharedSlotOut(Response):
    start: UtcDateTime
    local_start: LocalDateTime
    offered_by: Annotated[list[OfferOut], Field(description="who offers it, by practitioner id")]


class ServiceAvailabilityOut(Response):
    key: str
    timezone: Annotated[str, Field(description="the zone of from/to and local_start")]
    from_: Annotated[DateOut, Field(alias="from")]
    to: DateOut
    slots: list[SharedSlotOut]


def service_availability_out(result: uc.ServiceAvailability) -> ServiceAvailabilityOut:
    zone = ZoneInfo(result.timezone)
    return ServiceAvailabilityOut.model_validate(
        {
            "key": result.key,
            "timezone": result.timezone,
            "from": result.first_day,
            "to": result.last_day,
            "slots": [
                SharedSlotOut(
                    start=s.start,
                    local_start=s.start.astimezone(zone),
                    offered_by=[
                        OfferOut(practitioner_id=p, service_id=v, end=end) for p, v, end in s.offers
                    ],
                )
                for s in result.slots
            ],
        }
    )


class TrpcData(Response):
    data: AvailabilityOut


class TrpcAvailabilityOut(Response):
    result: TrpcData


class ClientOut(Response):
    name: str
    email: str
    phone: str | None
    timezone: str | None


class RefundOut(Response):
    amount: int
    currency: str
    status: RefundStatus


class BookingOut(Response):
    id: int
    status: BookingStatus
    practitioner_id: int
    service_id: int
    start: UtcDateTime
    end: UtcDateTime
    client: ClientOut
    price: MoneyOut
    hold_expires_at: UtcDateTime | None
    refund: RefundOut | None
    created_at: UtcDateTime | None
    updated_at: UtcDateTime | None
    notes: str


class BookingCreated(Response):
    booking: BookingOut
    checkout_url: Annotated[
        str | None,
        Field(
            description="null while the booking is awaiting_approval (a service that requires "
            "confirmation): the link is mailed once the practitioner approves"
        ),
    ]
    manage_token: Annotated[
        str | None,
        Field(description="shown once; null on a retry whose record was sealed under another key"),
    ]


class CancelResult(Response):
    booking: BookingOut
    refund: RefundOut | None


class RescheduleResult(Response):
    booking: BookingOut


class JobOut(Response):
    id: int | None
    kind: str
    payload: dict[str, Any]
    status: JobStatus
    attempts: int
    last_error: str | None
    run_at: UtcDateTime | None
    created_at: UtcDateTime | None


class JobList(Response):
    items: list[JobOut]


class MeOut(Response):
    id: int
    open_id: str
    name: str | None
    email: str | None
    role: Literal["user", "practitioner", "admin"]
    practitioner_id: int | None
    last_signed_in: UtcDateTime | None
    csrf_token: Annotated[str, Field(description="send as X-CSRF-Token on state changes")]


class Health(Response):
    status: Literal["ok", "ready"]


class Received(Response):
    received: Literal[True]


class Accepted(Response):
    accepted: Literal[True]


class Problem(BaseModel):
    """RFC 9457 problem details with our stable ``code``."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: Annotated[int, Field(ge=400, le=599)]
    detail: str
    code: Annotated[str, Field(description="stable machine-readable code")]
    errors: Annotated[
        dict[str, list[str]] | None, Field(description="field -> messages (validation_error)")
    ] = None
    request_id: str | None = None


# -- rendering -----------------------------------------------------------------------------------


def money(value: Money) -> MoneyOut:
    return MoneyOut(amount=value.amount, currency=value.currency)


def service_out(service: Service) -> ServiceOut:
    return ServiceOut(
        id=service.id or 0,
        name=service.name,
        duration_minutes=service.duration_minutes,
        price=money(service.price),
        buffer_before_minutes=service.buffer_before_minutes,
        buffer_after_minutes=service.buffer_after_minutes,
        min_notice_minutes=service.min_notice_minutes,
        max_advance_days=service.max_advance_days,
        slot_interval_minutes=int(service.interval.total_seconds()) // 60,
        alignment=service.alignment,
        booking_window=BookingWindowOut(
            kind=service.window.kind,
            days=service.window.days,
            first_day=service.window.first_day,
            last_day=service.window.last_day,
        ),
        limits=limits_out(service.limits),
        requires_confirmation=service.requires_confirmation,
        key=service.key,
    )


def limits_out(limits: BookingLimits) -> LimitsOut:
    return LimitsOut(
        max_bookings_per_day=limits.bookings_per_day,
        max_bookings_per_week=limits.bookings_per_week,
        max_minutes_per_day=limits.minutes_per_day,
        max_minutes_per_week=limits.minutes_per_week,
    )


def practitioner_out(practitioner: Practitioner) -> PractitionerOut:
    return PractitionerOut(
        id=practitioner.id or 0,
        name=practitioner.name,
        title=practitioner.title,
        bio=practitioner.bio,
        timezone=practitioner.timezone,
        services=[service_out(s) for s in practitioner.services if s.active],
    )


def practitioner_json(practitioner: Practitioner) -> dict[str, Any]:
    return practitioner_out(practitioner).body()


def refund_out(refund: Refund | None) -> RefundOut | None:
    if refund is None:
        return None
    return RefundOut(
        amount=refund.amount.amount, currency=refund.amount.currency, status=refund.status
    )


def booking_out(booking: Booking) -> BookingOut:
    return BookingOut(
        id=booking.id or 0,
        status=booking.status,
        practitioner_id=booking.practitioner_id,
        service_id=booking.service_id,
        start=booking.start,
        end=booking.end,
        client=ClientOut(
            name=booking.client.name,
            email=booking.client.email,
            phone=booking.client.phone,
            timezone=booking.client.timezone,
        ),
        price=money(booking.price),
        hold_expires_at=booking.hold_expires_at,
        refund=refund_out(booking.refund),
        created_at=booking.created_at,
        updated_at=booking.updated_at,
        notes=booking.notes,
    )


def booking_json(booking: Booking) -> dict[str, Any]:
    return booking_out(booking).body()


def slot_out(slot: Interval, zone: ZoneInfo) -> SlotOut:
    return SlotOut(start=slot.start, end=slot.end, local_start=slot.start.astimezone(zone))


def availability_out(result: uc.Availability, fmt: str = "slots") -> AvailabilityOut:
    zone = result.answer_zone
    ranges = fmt == "ranges"

    step = timedelta(minutes=result.interval_minutes)

    def shown(slots: list[Interval]) -> tuple[list[SlotOut], list[SlotOut]]:
        if ranges:
            return [], [slot_out(r, zone) for r in free_ranges(slots, step)]
        return [slot_out(s, zone) for s in slots], []

    slots, free = shown(result.slots)
    days = []
    for day, day_slots in result.by_day():
        day_shown, day_free = shown(day_slots)
        days.append(DayOut(date=day, slots=day_shown, ranges=day_free))
    return AvailabilityOut.model_validate(
        {
            "practitioner_id": result.practitioner_id,
            "service_id": result.service_id,
            "timezone": result.timezone,
            "client_timezone": result.client_timezone,
            "source": result.source,
            "format": "ranges" if ranges else "slots",
            "from": result.first_day,
            "to": result.last_day,
            "slots": slots,
            "ranges": free,
            "days": days,
        }
    )


def job_out(job: Job) -> JobOut:
    return JobOut(
        id=job.id,
        kind=str(job.kind),
        payload=dict(job.payload),
        status=job.status,
        attempts=job.attempts,
        last_error=job.last_error,
        run_at=job.run_at,
        created_at=job.created_at,
    )
