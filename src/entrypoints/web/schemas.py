"""JSON in and out of the HTTP API: strict parsing of requests, rendering of domain objects."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from booking_core.errors import ValidationFailed
from booking_core.model import Booking, Client, Interval, Money, Practitioner, Refund, Service
from booking_core.usecases import Availability

# RFC 3339 date-time with a mandatory offset (Z or ±hh:mm); fractional seconds allowed.
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$")
_MAX_ID = 2**31 - 1


class Fields:
    """Collects field errors so one response lists every problem, not only the first."""

    def __init__(self, data: Mapping[str, Any], *, prefix: str = "") -> None:
        self.data = data
        self.prefix = prefix
        self.errors: dict[str, list[str]] = {}

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(self.prefix + name, []).append(message)

    def reject_unknown(self, allowed: set[str]) -> None:
        for name in self.data:
            if name not in allowed:
                self.error(name, "unknown field")

    def integer(self, name: str, *, required: bool = True) -> int | None:
        value = self.data.get(name)
        if value is None:
            if required:
                self.error(name, "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(name, "must be an integer")
            return None
        if not 1 <= value <= _MAX_ID:
            self.error(name, "must be a positive id")
            return None
        return value

    def string(
        self, name: str, *, required: bool = True, max_length: int = 200, min_length: int = 1
    ) -> str | None:
        value = self.data.get(name)
        if value is None:
            if required:
                self.error(name, "is required")
            return None
        if not isinstance(value, str):
            self.error(name, "must be a string")
            return None
        value = value.strip()
        if len(value) < min_length:
            self.error(name, "must not be empty")
            return None
        if len(value) > max_length:
            self.error(name, f"must be at most {max_length} characters")
            return None
        if any(ord(c) < 32 and c not in "\n\t" for c in value):
            self.error(name, "must not contain control characters")
            return None
        return value

    def boolean(self, name: str) -> bool | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.error(name, "must be true, false or null")
            return None
        return value

    def datetime(self, name: str, *, required: bool = True) -> datetime | None:
        value = self.data.get(name)
        if value is None:
            if required:
                self.error(name, "is required")
            return None
        parsed = parse_datetime(value)
        if parsed is None:
            self.error(
                name, "must be an RFC 3339 date-time with an offset, e.g. 2030-01-07T09:00:00Z"
            )
        return parsed

    def raise_if_any(self, detail: str = "the request has invalid fields") -> None:
        if self.errors:
            raise ValidationFailed(detail, errors=self.errors)


def parse_datetime(value: object) -> datetime | None:
    """An aware datetime from RFC 3339 text, or None (naive or malformed input)."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None


def parse_date(name: str, value: str | None, fields: Fields) -> date | None:
    if value is None:
        return None
    if not _DATE.match(value):
        fields.error(name, "must be a date like 2030-01-07")
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fields.error(name, "is not a real date")
        return None


def check_date_range(
    fields: Fields, today: date, *names_and_values: tuple[str, date | None]
) -> None:
    """Dates a year back to two years ahead: enough for any booking, and no overflow games."""
    low, high = today - timedelta(days=366), today + timedelta(days=2 * 366)
    for name, value in names_and_values:
        if value is not None and not low <= value <= high:
            fields.error(name, f"must be between {low.isoformat()} and {high.isoformat()}")


def parse_client(value: object, fields: Fields) -> Client | None:
    if value is None:
        fields.error("client", "is required")
        return None
    if not isinstance(value, dict):
        fields.error("client", "must be an object with name, email and optional phone")
        return None
    sub = Fields(value, prefix="client.")
    sub.reject_unknown({"name", "email", "phone"})
    name = sub.string("name", max_length=120)
    email = sub.string("email", max_length=254)
    if email is not None and not _EMAIL.match(email):
        sub.error("email", "must be an email address")
        email = None
    phone = sub.string("phone", required=False, max_length=32)
    if phone is not None and not re.fullmatch(r"\+?[0-9 ()./-]{5,32}", phone):
        sub.error("phone", "must be a phone number")
        phone = None
    for key, messages in sub.errors.items():
        fields.errors.setdefault(key, []).extend(messages)
    if name is None or email is None or sub.errors:
        return None
    return Client(name=name, email=email.lower(), phone=phone)


# -- rendering -----------------------------------------------------------------------------------


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def money(value: Money) -> dict[str, Any]:
    return {"amount": value.amount, "currency": value.currency}


def service_json(service: Service) -> dict[str, Any]:
    return {
        "id": service.id,
        "name": service.name,
        "duration_minutes": service.duration_minutes,
        "price": money(service.price),
        "buffer_before_minutes": service.buffer_before_minutes,
        "buffer_after_minutes": service.buffer_after_minutes,
        "min_notice_minutes": service.min_notice_minutes,
        "max_advance_days": service.max_advance_days,
        "slot_interval_minutes": service.interval.seconds // 60 + service.interval.days * 1440,
    }


def practitioner_json(practitioner: Practitioner, *, with_services: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": practitioner.id,
        "name": practitioner.name,
        "title": practitioner.title,
        "bio": practitioner.bio,
        "timezone": practitioner.timezone,
    }
    if with_services:
        body["services"] = [service_json(s) for s in practitioner.services if s.active]
    return body


def refund_json(refund: Refund | None) -> dict[str, Any] | None:
    if refund is None:
        return None
    return {**money(refund.amount), "status": refund.status.value}


def booking_json(booking: Booking) -> dict[str, Any]:
    return {
        "id": booking.id,
        "status": booking.status.value,
        "practitioner_id": booking.practitioner_id,
        "service_id": booking.service_id,
        "start": iso(booking.start),
        "end": iso(booking.end),
        "client": {
            "name": booking.client.name,
            "email": booking.client.email,
            "phone": booking.client.phone,
        },
        "price": money(booking.price),
        "hold_expires_at": iso(booking.hold_expires_at),
        "refund": refund_json(booking.refund),
        "created_at": iso(booking.created_at),
        "updated_at": iso(booking.updated_at),
        "notes": booking.notes,
    }


def slot_json(slot: Interval) -> dict[str, Any]:
    return {"start": iso(slot.start), "end": iso(slot.end)}


def availability_json(result: Availability) -> dict[str, Any]:
    return {
        "practitioner_id": result.practitioner_id,
        "service_id": result.service_id,
        "timezone": result.timezone,
        "source": result.source,
        "from": result.first_day.isoformat(),
        "to": result.last_day.isoformat(),
        "slots": [slot_json(s) for s in result.slots],
    }
