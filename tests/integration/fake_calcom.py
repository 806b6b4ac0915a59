"""A local fake of Cal.com API v2 (slots and bookings) over real HTTP, with switches to misbehave.

It speaks Cal.com API v2's shapes: the ``cal-api-version`` routing (a missing or
wrong version is a 404 here), the Bearer key (401), the v2 error envelope, whitelisted query
parameters (400 on an unknown one), 201 on booking, the 400 "User either already has booking at
this time or is not available", cancel and reschedule, and the ``X-RateLimit-*-Default`` headers
with a 429 ThrottlerException. Switches make it answer 500, hang, lose the answer after acting,
send garbage, rate-limit, or refuse connections. Every request is recorded, headers included.

Simplifications: the API key is required on every route (real GET /v2/slots is public), and the
bookings routes also answer 404 for a wrong version (real Cal.com falls back to an older contract).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SLOTS_VERSION = "2024-09-04"
BOOKINGS_VERSIONS = ("2024-08-13", "2026-02-25")
SLOT_TAKEN = "User either already has booking at this time or is not available"
RATE_LIMIT = 120

_SLOT_PARAMS = {
    "eventTypeId", "eventTypeSlug", "username", "teamSlug", "organizationSlug", "usernames",
    "start", "end", "timeZone", "duration", "format", "bookingUidToReschedule",
}  # fmt: skip
_BOOKING_LIST_PARAMS = {
    "status", "attendeeEmail", "attendeeName", "eventTypeId", "eventTypeIds", "afterStart",
    "beforeEnd", "afterCreatedAt", "beforeCreatedAt", "sortStart", "sortEnd", "sortCreated",
    "take", "skip",
}  # fmt: skip
_CREATE_FIELDS = {
    "start", "eventTypeId", "eventTypeSlug", "username", "teamSlug", "organizationSlug",
    "attendee", "metadata", "lengthInMinutes", "guests", "location", "bookingFieldsResponses",
    "instant", "recurrenceCount", "routing", "emailVerificationCode", "meetingUrl",
}  # fmt: skip
_CANCEL_FIELDS = {"cancellationReason", "cancelSubsequentBookings", "seatUid"}
_RESCHEDULE_FIELDS = {"start", "reschedulingReason", "rescheduledBy", "seatUid"}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: Any
    raw_body: bytes


@dataclass
class EventType:
    id: int
    slug: str
    username: str
    length: int = 60
    length_options: tuple[int, ...] = ()  # lengthInMinutesOptions: other lengths a booker may pick


@dataclass
class _Fault:
    kind: str  # "status" | "hang" | "lose_answer" | "garbage" | "rate_limit"
    remaining: int
    status: int = 500
    seconds: float = 0.0
    retry_after: str | None = None
    method: str | None = None
    path: str | None = None

    def applies(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or path.startswith(self.path)
        )


class _CalError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or {
            400: "BadRequestException",
            401: "UnauthorizedException",
            404: "NotFoundException",
            409: "ConflictException",
            429: "ThrottlerException",
            500: "InternalServerErrorException",
            503: "ServiceUnavailableException",
        }.get(status, "HttpException")


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_instant(text: str, *, end_of_day: bool = False) -> datetime:
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time(23, 59, 59) if end_of_day else time(0), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise _CalError(400, f"{text!r} is not a valid ISO 8601 date") from exc
    if moment.tzinfo is None:
        raise _CalError(400, f"{text!r} must be in UTC timezone as ISO 8601 datestring")
    return moment.astimezone(UTC)


class FakeCalcom:
    """The fake server. ``start()`` it (or use it as a context manager); ``url`` ends in /v2."""

    def __init__(self, *, api_key: str = "cal_test_fake_key_0123456789") -> None:
        self.api_key = api_key
        self.event_types: dict[int, EventType] = {}
        self.offered: dict[int, list[datetime]] = {}
        self.bookings: dict[str, dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        self.errors: list[Exception] = []  # exceptions inside the fake itself (should stay empty)
        self.range_format = False  # answer slots in the format=range shape even when not asked
        self.failing_status: int | None = None  # every request answers this status while set
        self.hang_seconds = 0.0  # every request waits this long before answering
        self.remaining = RATE_LIMIT
        self._faults: list[_Fault] = []
        self._ids = itertools.count(1001)
        self._lock = threading.RLock()
        self._release = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeCalcom:
        self._serve(self.port)
        return self

    def _serve(self, port: int) -> None:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        server = _Server(("127.0.0.1", port), Handler)
        self._server = server
        self.port = server.server_address[1]
        self._release.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-calcom",
            daemon=True,
        )  # fmt: skip
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2"

    def refuse(self) -> None:
        """Stop listening: connections to the port are refused until ``resume()``."""
        if self._server is not None:
            self._release.set()
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
            self._server = None

    def resume(self) -> None:
        """Listen again on the same port."""
        if self._server is None:
            self._serve(self.port)

    def close(self) -> None:
        self.refuse()

    def __enter__(self) -> FakeCalcom:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- setup -------------------------------------------------------------------------------

    def add_event_type(
        self, event_type_id: int, *, slug: str = "consultation", username: str = "dr-ada",
        length: int = 60, length_options: tuple[int, ...] = (),
    ) -> EventType:  # fmt: skip
        with self._lock:
            event_type = EventType(event_type_id, slug, username, length, length_options)
            self.event_types[event_type_id] = event_type
            self.offered.setdefault(event_type_id, [])
            return event_type

    def offer(self, event_type_id: int, starts: Iterable[datetime]) -> None:
        """Add bookable starts (aware datetimes) to an event type's availability."""
        with self._lock:
            self.offered.setdefault(event_type_id, []).extend(s.astimezone(UTC) for s in starts)
            self.offered[event_type_id].sort()

    def book_directly(
        self, event_type_id: int, start: datetime, *, email: str = "someone@example.com"
    ) -> str:
        """Someone books in Cal.com itself (not through us); returns the uid."""
        with self._lock:
            return self._create(
                self.event_types[event_type_id],
                start.astimezone(UTC),
                {"name": "Someone Else", "email": email, "timeZone": "UTC"},
                {},
            )["uid"]

    # -- switches ----------------------------------------------------------------------------

    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def fail_next(
        self, times: int = 1, *, status: int = 500, method: str | None = None,
        path: str | None = None,
    ) -> None:  # fmt: skip
        """The next ``times`` matching requests answer ``status`` with the error envelope."""
        self._add_fault(_Fault("status", times, status=status, method=method, path=path))

    def hang_next(self, times: int = 1, *, seconds: float = 30.0) -> None:
        """The next requests wait ``seconds`` before being handled (a slow Cal.com)."""
        self._add_fault(_Fault("hang", times, seconds=seconds))

    def lose_answer_next(
        self, times: int = 1, *, seconds: float = 30.0, method: str | None = None,
        path: str | None = None,
    ) -> None:  # fmt: skip
        """Handle the request (e.g. create the booking), then hang instead of answering."""
        self._add_fault(_Fault("lose_answer", times, seconds=seconds, method=method, path=path))

    def garbage_next(self, times: int = 1) -> None:
        """Answer 200 with a body that is not JSON (a proxy's error page)."""
        self._add_fault(_Fault("garbage", times))

    def rate_limit_next(
        self, times: int = 1, *, reset_seconds: int = 60, retry_after: str | None = None
    ) -> None:
        """Answer 429 ThrottlerException with ``X-RateLimit-Reset-Default: reset_seconds``."""
        self._add_fault(_Fault("rate_limit", times, seconds=reset_seconds, retry_after=retry_after))

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.applies(method, path):
                    fault.remaining -= 1
                    return fault
            return None

    def wait_released(self, seconds: float) -> None:
        self._release.wait(seconds)

    # -- inspection --------------------------------------------------------------------------

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [
                r for r in self.requests
                if r.path == path and (method is None or r.method == method)
            ]  # fmt: skip

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def live_bookings(self) -> list[dict[str, Any]]:
        with self._lock:
            return [b for b in self.bookings.values() if b["status"] in ("accepted", "pending")]

    # -- the API -----------------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> tuple[int, dict[str, str], bytes]:
        """Answer one request: (status, extra headers, body). Runs in the handler thread."""
        with self._lock:
            self.requests.append(request)
        fault = self._take_fault(request.method, request.path)
        if self.hang_seconds:
            self._release.wait(self.hang_seconds)
        if fault is not None and fault.kind == "hang":
            self._release.wait(fault.seconds)
        if fault is not None and fault.kind == "garbage":
            return 200, {"Content-Type": "text/html"}, b"<html>Bad gateway</html>"
        if fault is not None and fault.kind == "rate_limit":
            headers = self._rate_headers(remaining=0, reset=int(fault.seconds))
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            error = _CalError(429, "Too many requests. Please try again later.")
            return 429, headers, self._envelope(error, request)
        if fault is not None and fault.kind == "status":
            error = _CalError(fault.status, "There was an error, please try again later.")
            return fault.status, self._rate_headers(), self._envelope(error, request)
        if self.failing_status is not None:
            error = _CalError(self.failing_status, "There was an error, please try again later.")
            return self.failing_status, self._rate_headers(), self._envelope(error, request)
        try:
            status, data = self._route(request)
            body = json.dumps({"status": "success", "data": data}).encode()
        except _CalError as error:
            status, body = error.status, self._envelope(error, request)
        if fault is not None and fault.kind == "lose_answer":
            self._release.wait(fault.seconds)
        return status, self._rate_headers(), body

    def _rate_headers(self, *, remaining: int | None = None, reset: int = 60) -> dict[str, str]:
        with self._lock:
            if remaining is None:
                self.remaining = max(0, self.remaining - 1)
                remaining = self.remaining
        return {
            "X-RateLimit-Limit-Default": str(RATE_LIMIT),
            "X-RateLimit-Remaining-Default": str(remaining),
            "X-RateLimit-Reset-Default": str(reset),
        }

    @staticmethod
    def _envelope(error: _CalError, request: RecordedRequest) -> bytes:
        path = request.path
        if request.query:
            path += "?" + "&".join(f"{k}={v}" for k, v in request.query.items())
        try:
            reason = HTTPStatus(error.status).phrase
        except ValueError:
            reason = "Error"
        return json.dumps(
            {
                "status": "error",
                "timestamp": _utc_text(datetime.now(UTC)),
                "path": path,
                "error": {
                    "code": error.code,
                    "message": error.message,
                    "details": {
                        "message": error.message,
                        "error": reason,
                        "statusCode": error.status,
                    },
                },
            }
        ).encode()

    def _route(self, request: RecordedRequest) -> tuple[int, Any]:
        method, path = request.method, request.path
        version = request.headers.get("cal-api-version")
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] == ["v2", "slots"] and len(parts) == 2 and method == "GET":
            if version != SLOTS_VERSION:  # routed to the 2024-04-15 controllers, which lack it
                raise _CalError(404, f"Cannot GET {path}")
            self._authorise(request)
            return 200, self._slots(request.query)
        if parts[:2] != ["v2", "bookings"]:
            raise _CalError(404, f"Cannot {method} {path}")
        if version not in BOOKINGS_VERSIONS:
            raise _CalError(404, f"Cannot {method} {path}")
        self._authorise(request)
        if len(parts) == 2 and method == "POST":
            return 201, self._create_from(request.body)
        if len(parts) == 2 and method == "GET":
            return 200, self._list(request.query)
        if len(parts) == 3 and method == "GET":
            return 200, self._get(parts[2])
        if len(parts) == 4 and parts[3] == "cancel" and method == "POST":
            return 200, self._cancel(parts[2], request.body)
        if len(parts) == 4 and parts[3] == "reschedule" and method == "POST":
            return 201, self._reschedule(parts[2], request.body)
        raise _CalError(404, f"Cannot {method} {path}")

    def _authorise(self, request: RecordedRequest) -> None:
        header = request.headers.get("authorization")
        if not header:
            raise _CalError(
                401,
                "ApiAuthStrategy - No authentication method provided. Either pass an API key as "
                "'Bearer' header or OAuth client credentials as 'x-cal-secret-key' and "
                "'x-cal-client-id' headers",
            )
        if header != f"Bearer {self.api_key}":
            raise _CalError(401, "ApiAuthStrategy - api key - Your api key is not valid")

    @staticmethod
    def _whitelist(given: Iterable[str], allowed: set[str]) -> None:
        extra = [k for k in given if k not in allowed]
        if extra:
            raise _CalError(
                400,
                " , ".join(f"{k} property is wrong,property {k} should not exist" for k in extra)
                + " ",
            )

    def _event_type(self, fields: dict[str, Any]) -> EventType:
        with self._lock:
            if "eventTypeId" in fields:
                if "eventTypeSlug" in fields or "username" in fields:
                    raise _CalError(
                        400,
                        "username property is wrong,property username should not exist , "
                        "eventTypeSlug property is wrong,property eventTypeSlug should not exist ",
                    )
                try:
                    event_type_id = int(fields["eventTypeId"])
                except (TypeError, ValueError) as exc:
                    raise _CalError(400, "eventTypeId must be an integer number") from exc
                if event_type_id not in self.event_types:
                    raise _CalError(404, f"Event type with id {event_type_id} not found.")
                return self.event_types[event_type_id]
            slug, username = fields.get("eventTypeSlug"), fields.get("username")
            if not slug or not username:
                raise _CalError(
                    400,
                    "Either eventTypeId or eventTypeSlug + username or eventTypeSlug + teamSlug "
                    "must be provided",
                )
            for event_type in self.event_types.values():
                if event_type.slug == slug and event_type.username == username:
                    return event_type
            raise _CalError(404, f"Event type with slug {slug} not found.")

    def _free_starts(
        self, event_type: EventType, ignore_uid: str | None = None, *, length: int | None = None
    ) -> list[datetime]:  # fmt: skip
        length = timedelta(minutes=event_type.length if length is None else length)
        busy = [
            (b["_start"], b["_end"])
            for b in self.bookings.values()
            if b["eventTypeId"] == event_type.id
            and b["status"] in ("accepted", "pending")
            and b["uid"] != ignore_uid
        ]
        return [
            s for s in self.offered.get(event_type.id, [])
            if not any(s < end and start < s + length for start, end in busy)
        ]  # fmt: skip

    def _slots(self, query: dict[str, str]) -> dict[str, list[dict[str, str]]]:
        self._whitelist(query, _SLOT_PARAMS)
        if "start" not in query or "end" not in query:
            raise _CalError(400, "start must be a valid ISO 8601 date, end must be a valid date")
        start = _parse_instant(query["start"])
        end = _parse_instant(query["end"], end_of_day=True)
        try:
            zone = ZoneInfo(query.get("timeZone") or "UTC")
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise _CalError(400, "timeZone must be a valid IANA time zone") from exc
        with self._lock:
            event_type = self._event_type(query)
            free = [s for s in self._free_starts(event_type) if start <= s <= end]
        ranged = self.range_format or query.get("format") == "range"
        days: dict[str, list[dict[str, str]]] = {}
        length = timedelta(minutes=event_type.length)
        for slot in free:
            local = slot.astimezone(zone)
            entry = {"start": local.isoformat(timespec="milliseconds")}
            if ranged:
                entry["end"] = (slot + length).astimezone(zone).isoformat(timespec="milliseconds")
            days.setdefault(local.date().isoformat(), []).append(entry)
        return days

    def _create_from(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _CalError(400, "the body must be a JSON object")
        self._whitelist(body, _CREATE_FIELDS)
        start_text = body.get("start")
        if not isinstance(start_text, str) or not start_text.endswith("Z"):
            raise _CalError(400, "start must be in UTC timezone as ISO 8601 datestring")
        start = _parse_instant(start_text)
        attendee = body.get("attendee")
        if not isinstance(attendee, dict) or not attendee.get("name"):
            raise _CalError(400, "attendee.name should not be empty")
        if not attendee.get("email") and not attendee.get("phoneNumber"):
            raise _CalError(400, "attendee.email or attendee.phoneNumber must be provided")
        try:
            ZoneInfo(str(attendee.get("timeZone")))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise _CalError(400, "attendee.timeZone must be a valid IANA time zone") from exc
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict) or len(metadata) > 50:
            raise _CalError(400, "metadata must be an object with at most 50 keys")
        for key, value in metadata.items():
            if len(key) > 40 or not isinstance(value, str) or len(value) > 500:
                raise _CalError(400, "metadata keys up to 40 characters, string values up to 500")
        with self._lock:
            event_type = self._event_type(body)
            length = body.get("lengthInMinutes", event_type.length)
            if (
                not isinstance(length, int)
                or isinstance(length, bool)
                or length not in (event_type.length, *event_type.length_options)
            ):
                # Cal.com: the length must be the type's own or one of lengthInMinutesOptions.
                raise _CalError(
                    400,
                    "Invalid lengthInMinutes: it is not one of the event type's possible lengths",
                )
            if start not in self._free_starts(event_type, length=length):
                raise _CalError(400, SLOT_TAKEN)
            return self._public(self._create(event_type, start, attendee, metadata, length=length))

    def _create(
        self, event_type: EventType, start: datetime, attendee: dict[str, Any],
        metadata: dict[str, Any], *, length: int | None = None, **extra: Any,
    ) -> dict[str, Any]:  # fmt: skip
        number = next(self._ids)
        length = event_type.length if length is None else length
        end = start + timedelta(minutes=length)
        now = _utc_text(datetime.now(UTC))
        booking = {
            "id": number,
            "uid": f"fakecal{number:06d}uid",
            "title": f"{event_type.slug} between {event_type.username} and {attendee['name']}",
            "description": "",
            "hosts": [{"id": 1, "name": event_type.username, "username": event_type.username}],
            "status": "accepted",
            "start": _utc_text(start),
            "end": _utc_text(end),
            "duration": length,
            "eventTypeId": event_type.id,
            "eventType": {"id": event_type.id, "slug": event_type.slug},
            "attendees": [
                {
                    "name": attendee["name"],
                    "email": attendee.get("email"),
                    "timeZone": attendee.get("timeZone"),
                    "phoneNumber": attendee.get("phoneNumber"),
                    "language": "en",
                    "absent": False,
                }
            ],
            "metadata": dict(metadata),
            "createdAt": now,
            "updatedAt": now,
            "_start": start,
            "_end": end,
            **extra,
        }
        self.bookings[booking["uid"]] = booking
        return booking

    @staticmethod
    def _public(booking: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in booking.items() if not k.startswith("_")}

    def _list(self, query: dict[str, str]) -> list[dict[str, Any]]:
        self._whitelist(query, _BOOKING_LIST_PARAMS)
        after = _parse_instant(query["afterStart"]) if "afterStart" in query else None
        before = _parse_instant(query["beforeEnd"]) if "beforeEnd" in query else None
        with self._lock:
            found = []
            for booking in self.bookings.values():
                if "eventTypeId" in query and str(booking["eventTypeId"]) != query["eventTypeId"]:
                    continue
                emails = {a.get("email") for a in booking["attendees"]}
                if "attendeeEmail" in query and query["attendeeEmail"] not in emails:
                    continue
                if after is not None and booking["_start"] < after:
                    continue
                if before is not None and booking["_end"] > before:
                    continue
                found.append(self._public(booking))
        return found

    def _get(self, uid: str) -> dict[str, Any]:
        with self._lock:
            booking = self.bookings.get(uid)
            if booking is None:
                raise _CalError(404, f"Booking with uid={uid} was not found in the database")
            return self._public(booking)

    def _cancel(self, uid: str, body: Any) -> dict[str, Any]:
        body = body if body is not None else {}
        if not isinstance(body, dict):
            raise _CalError(400, "the body must be a JSON object")
        self._whitelist(body, _CANCEL_FIELDS)
        with self._lock:
            booking = self.bookings.get(uid)
            if booking is None:
                raise _CalError(404, f"Booking with uid={uid} was not found in the database")
            if booking["status"] == "cancelled":
                if booking.get("rescheduledToUid"):
                    raise _CalError(
                        400,
                        f"Can't cancel booking with uid={uid} because it has been cancelled and "
                        "rescheduled already. Please provide uid of a booking that is not "
                        "cancelled.",
                    )
                raise _CalError(
                    400,
                    f"Can't cancel booking with uid={uid} because it has been cancelled already. "
                    "Please provide uid of a booking that is not cancelled.",
                )
            booking["status"] = "cancelled"
            booking["cancellationReason"] = body.get("cancellationReason")
            return self._public(booking)

    def _reschedule(self, uid: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _CalError(400, "the body must be a JSON object")
        self._whitelist(body, _RESCHEDULE_FIELDS)
        start_text = body.get("start")
        if not isinstance(start_text, str) or not start_text.endswith("Z"):
            raise _CalError(400, "start must be in UTC timezone as ISO 8601 datestring")
        start = _parse_instant(start_text)
        with self._lock:
            old = self.bookings.get(uid)
            if old is None:
                raise _CalError(404, f"Booking with uid={uid} was not found in the database")
            if old["status"] == "cancelled":
                what = "cancelled and rescheduled" if old.get("rescheduledToUid") else "cancelled"
                raise _CalError(
                    400, f"Can't reschedule booking with uid={uid} because it has been {what}."
                )
            event_type = self.event_types[old["eventTypeId"]]
            # A move keeps the booking's own length (lengthInMinutes at creation).
            length = int(old["duration"])
            if start not in self._free_starts(event_type, ignore_uid=uid, length=length):
                raise _CalError(400, SLOT_TAKEN)
            new = self._create(
                event_type, start, old["attendees"][0], old["metadata"], length=length,
                rescheduledFromUid=uid, reschedulingReason=body.get("reschedulingReason"),
            )  # fmt: skip
            old["status"] = "cancelled"
            old["rescheduled"] = True
            old["rescheduledToUid"] = new["uid"]
            return self._public(new)


class _Server(ThreadingHTTPServer):
    """Keeps its open connections so that ``refuse()`` can cut keep-alive clients off too."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that timed out and went away is expected here."""

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeCalcom
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the client's delayed ACK adds
    # 40 ms to every answer on a kept-alive connection.
    disable_nagle_algorithm = True

    def _handle(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = RecordedRequest(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw_body=raw,
        )
        try:
            status, headers, payload = self.server_fake.handle(request)
        except Exception as exc:  # a bug in the fake: record it for the tests, answer 500
            self.server_fake.errors.append(exc)
            status, headers, payload = 500, {}, b'{"status":"error"}'
        try:
            self.send_response(status)
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up (timeout) before we answered

    do_GET = _handle
    do_POST = _handle
    do_PATCH = _handle
    do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``FakeCalcom.requests`` instead."""


def free_port_url() -> str:
    """A Cal.com URL on a local port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v2"
