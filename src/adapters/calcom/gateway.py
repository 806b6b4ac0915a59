"""Cal.com API v2 as the CalendarGateway: slots, bookings, cancel and reschedule over ``requests``.

A slow or dead Cal.com must never slow availability down much: every call has connect and read
timeouts and an overall budget, idempotent calls are retried with full-jitter backoff inside that
budget, a circuit breaker skips Cal.com for a cool-down after repeated failures, and slots are
cached (in Redis when several processes run). Every failure surfaces as CalendarUnavailable, so the
core falls back to the local schedule; the API key never appears in a message or a log line.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn
from urllib.parse import quote, urlsplit

import requests
from attrs import frozen
from urllib3.exceptions import NewConnectionError

from adapters.resilience import CircuitBreaker, CircuitOpen
from booking_core.errors import CalendarSlotTaken, CalendarUnavailable
from booking_core.model import CalendarLink, Interval, Practitioner, Service
from booking_core.ports import CalendarBookingRequest, SlotCache

log = logging.getLogger(__name__)

# cal-api-version is per endpoint; without it Cal.com silently routes to the 2024-04-15
# controllers (404 for /v2/slots, an older contract for /v2/bookings). Reference §2.1.
SLOTS_API_VERSION = "2024-09-04"
BOOKINGS_API_VERSION = "2024-08-13"

DEFAULT_API_URL = "https://api.cal.com/v2"
MAX_RESPONSE_BYTES = 2 * 1024 * 1024  # OWASP API10: cap what we read from a third party
_MIN_ATTEMPT_SECONDS = 0.2  # not worth starting another attempt with less budget than this
_MAX_RATE_LIMIT_PAUSE = 300.0  # never stay away longer than this because a header said so

# "User either already has booking at this time or is not available" (individual event types),
# "One of the hosts either already has booking ..." (team), and the internal code that issue
# #29532 shows leaking as a 500. Matched narrowly so a 503 "not available" is not "slot taken".
_SLOT_TAKEN = re.compile(
    r"already has booking at this time|no_available_users_found_error|"
    r"hosts_unavailable_for_booking",
    re.IGNORECASE,
)
# Cal.com answers 400 "Can't cancel booking with uid=... because it has been cancelled already"
# since PR #22128; "cancelled and rescheduled already" is a different story (handled apart).
_ALREADY_CANCELLED = re.compile(r"cancell?ed already|already (?:been )?cancell?ed", re.IGNORECASE)
_RESCHEDULED = re.compile(r"rescheduled", re.IGNORECASE)
_V1_PATH = re.compile(r"/v1(?:/|$)")


@frozen
class _Answer:
    """An HTTP answer that reached us: status, decoded JSON body (None if empty), headers."""

    status: int
    body: Any
    headers: Mapping[str, str]

    @property
    def message(self) -> str:
        """Cal.com's error message from the v2 envelope, or "" (reference §2.7)."""
        body = self.body
        if isinstance(body, dict):
            error = body.get("error")
            if isinstance(error, dict):
                return str(error.get("message") or error.get("code") or "")[:500]
            if isinstance(error, str):
                return error[:500]
            if isinstance(body.get("message"), str):
                return str(body["message"])[:500]
        return ""

    @property
    def data(self) -> Any:
        return self.body.get("data") if isinstance(self.body, dict) else None


class _Failure(Exception):
    """One failed attempt: why, whether it may be retried, and what the server asked us to wait."""

    def __init__(
        self,
        reason: str,
        *,
        before_sending: bool = False,
        retryable: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.before_sending = before_sending  # the request never reached Cal.com
        self.retryable = retryable
        self.retry_after = retry_after


def _utc_text(moment: datetime) -> str:
    """``2030-01-08T09:00:00Z``: Cal.com wants UTC ISO 8601 for ``start`` (reference §2.3)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_api_url(api_url: str) -> str:
    url = api_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError(f"Cal.com api_url must be an http(s) URL like {DEFAULT_API_URL}")
    if _V1_PATH.search(parts.path):
        raise ValueError(
            "Cal.com api_url points at API v1, which Cal.com shut down on 2026-04-08; "
            f"use API v2 ({DEFAULT_API_URL})"
        )
    return url


class CalComCalendarGateway:
    """CalendarGateway over Cal.com API v2 (see the module docstring for the resilience rules).

    ``links`` maps practitioner ids to Cal.com links from the environment (CALCOM_EVENT_TYPE_<n>);
    a link stored on the practitioner wins. ``cache`` is a SlotCache (``adapters.slot_cache``:
    in-process, or Redis/PostgreSQL to share slots and invalidations between processes); without
    one nothing is cached. ``call_budget`` bounds the
    wall time of one gateway call, retries and backoff included. ``sleep``, ``clock`` (monotonic
    seconds, used by the breaker and the budget) and ``rng`` are injectable.
    """

    def __init__(
        self,
        *,
        api_key: str,
        api_url: str = DEFAULT_API_URL,
        links: Mapping[int, CalendarLink] | None = None,
        cache_seconds: float = 300,
        cache: SlotCache | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 3.0,
        call_budget: float = 4.0,
        max_retries: int = 2,
        backoff_base: float = 0.25,
        backoff_cap: float = 2.0,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 30.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        slots_api_version: str = SLOTS_API_VERSION,
        bookings_api_version: str = BOOKINGS_API_VERSION,
    ) -> None:
        if not api_key:
            raise ValueError("Cal.com api_key must not be empty")
        if min(connect_timeout, read_timeout, call_budget) <= 0:
            raise ValueError("Cal.com timeouts and call budget must be positive")
        if max_retries < 0 or cache_seconds < 0:
            raise ValueError("max_retries and cache_seconds must not be negative")
        self.api_url = _check_api_url(api_url)
        self._api_key = api_key
        self._links = dict(links or {})
        self._cache_seconds = float(cache_seconds)
        self._cache = cache
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._call_budget = call_budget
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self.breaker = CircuitBreaker(
            threshold=breaker_threshold, cooldown=breaker_cooldown, clock=clock
        )
        self._session = session or requests.Session()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._slots_version = slots_api_version
        self._bookings_version = bookings_api_version
        self._lock = threading.Lock()
        self._last_warning: float | None = None
        # free_slots gets a link, not a practitioner; cache entries are owned by practitioners so
        # that invalidate(practitioner_id) works in any process. link_for (which the core always
        # calls first) teaches us which practitioners a link belongs to.
        self._owners: dict[CalendarLink, set[int]] = {}
        for practitioner_id, link in self._links.items():
            self._owners.setdefault(link, set()).add(practitioner_id)

    def __repr__(self) -> str:
        return f"CalComCalendarGateway(api_url={self.api_url!r})"

    def close(self) -> None:
        self._session.close()

    # -- CalendarGateway ---------------------------------------------------------------------

    def link_for(self, practitioner: Practitioner) -> CalendarLink | None:
        """The link stored on the practitioner, else the environment's, else None."""
        link = practitioner.calendar_link
        if link is None and practitioner.id is not None:
            link = self._links.get(practitioner.id)
        if link is not None and practitioner.id is not None:
            with self._lock:
                self._owners.setdefault(link, set()).add(practitioner.id)
        return link

    def free_slots(
        self, link: CalendarLink, service: Service, window: Interval, timezone: str
    ) -> list[Interval]:
        """Starts Cal.com offers in ``window``, each one service long, in UTC, sorted.

        Served from the cache when fresh. Raises CalendarUnavailable.
        """
        with self._lock:
            owners = tuple(sorted(self._owners.get(link, ())))
        key = "|".join(
            (
                link.event_type,
                link.username or "",
                str(service.duration_minutes),
                _utc_text(window.start),
                _utc_text(window.end),
                timezone,
            )
        )
        cache = self._cache if self._cache_seconds > 0 and owners else None
        stamp: tuple[int, ...] = ()
        if cache is not None:
            found = cache.get(key, owners)
            if found.slots is not None:
                return found.slots
            stamp = found.stamp
        params = {
            **{k: str(v) for k, v in self._event_type_fields(link).items()},
            "start": _utc_text(window.start),
            "end": _utc_text(window.end),
            "timeZone": timezone,
        }
        answer = self._call(
            "slots query",
            "GET",
            "/slots",
            version=self._slots_version,
            params=params,
            idempotent=True,
        )
        if answer.status != 200:
            self._warn(f"Cal.com refused the slots query ({answer.status}: {answer.message})")
            raise CalendarUnavailable(
                f"Cal.com refused the slots query ({answer.status}: {answer.message})"
            )
        slots = self._parse_slots(answer, service, window)
        if cache is not None:
            cache.put(key, owners, stamp, slots, self._cache_seconds)
        return slots

    def create_booking(self, request: CalendarBookingRequest) -> str:
        """POST /bookings; returns the new booking's uid.

        Not retried after the request may have reached Cal.com (only on a refused connection or
        a 429). If Cal.com says the time is taken, we first look for a booking of ours there
        (metadata.booking_id), which an earlier attempt whose answer was lost may have made.
        Raises CalendarSlotTaken, CalendarUnavailable.
        """
        attendee: dict[str, str] = {
            "name": request.client.name,
            "email": request.client.email,
            "timeZone": request.timezone,
        }
        if request.client.phone:
            attendee["phoneNumber"] = request.client.phone
        body = {
            "start": _utc_text(request.start),
            **self._event_type_fields(request.link),
            "attendee": attendee,
            # metadata values must be strings (reference §2.3)
            "metadata": {"booking_id": str(request.booking_id)},
        }
        answer = self._call(
            "booking creation",
            "POST",
            "/bookings",
            version=self._bookings_version,
            json_body=body,
            idempotent=False,
        )
        if 200 <= answer.status < 300:
            return self._uid(answer, "booking creation")
        if self._slot_taken(answer):
            existing = self._find_own_booking(request)
            if existing is not None:
                log.info(
                    "Cal.com already has booking %s for our booking %s; reusing it",
                    existing,
                    request.booking_id,
                )
                return existing
            raise CalendarSlotTaken(f"Cal.com: {answer.message or 'the time is taken'}")
        raise CalendarUnavailable(
            f"Cal.com refused the booking ({answer.status}: {answer.message})"
        )

    def cancel_booking(self, uid: str, reason: str) -> None:
        """POST /bookings/{uid}/cancel; a booking cancelled already is fine. Retried (idempotent).

        Raises CalendarUnavailable.
        """
        answer = self._call(
            "booking cancellation",
            "POST",
            f"/bookings/{quote(uid, safe='')}/cancel",
            version=self._bookings_version,
            json_body={"cancellationReason": reason},
            idempotent=True,
        )
        if 200 <= answer.status < 300:
            return
        message = answer.message
        if (
            answer.status == 400
            and _ALREADY_CANCELLED.search(message)
            and not _RESCHEDULED.search(message)
        ):
            log.info("Cal.com booking %s was cancelled already", uid)
            return
        raise CalendarUnavailable(
            f"Cal.com refused to cancel booking {uid} ({answer.status}: {message})"
        )

    def reschedule_booking(self, uid: str, new_start: datetime, reason: str) -> str:
        """POST /bookings/{uid}/reschedule; returns the new uid (Cal.com makes a new booking).

        Not retried blindly; if Cal.com says the booking was rescheduled already, the booking it
        was moved to is returned when it starts at ``new_start`` (an earlier attempt's answer was
        lost). Raises CalendarSlotTaken, CalendarUnavailable.
        """
        answer = self._call(
            "booking reschedule",
            "POST",
            f"/bookings/{quote(uid, safe='')}/reschedule",
            version=self._bookings_version,
            json_body={"start": _utc_text(new_start), "reschedulingReason": reason},
            idempotent=False,
        )
        if 200 <= answer.status < 300:
            return self._uid(answer, "booking reschedule")
        if self._slot_taken(answer):
            raise CalendarSlotTaken(f"Cal.com: {answer.message or 'the time is taken'}")
        if answer.status == 400 and _RESCHEDULED.search(answer.message):
            moved = self._rescheduled_to(uid, new_start)
            if moved is not None:
                return moved
        raise CalendarUnavailable(
            f"Cal.com refused to reschedule booking {uid} ({answer.status}: {answer.message})"
        )

    def invalidate(self, practitioner_id: int) -> None:
        """Drop the practitioner's cached slots, in every process sharing the cache."""
        if self._cache is not None:
            self._cache.invalidate(practitioner_id)

    # -- helpers -----------------------------------------------------------------------------

    def _event_type_fields(self, link: CalendarLink) -> dict[str, int | str]:
        if link.event_type_id is not None:
            return {"eventTypeId": link.event_type_id}
        if not link.username:
            raise CalendarUnavailable(
                f"Cal.com link with event type slug {link.event_type!r} needs a username"
            )
        return {"eventTypeSlug": link.event_type, "username": link.username}

    @staticmethod
    def _slot_taken(answer: _Answer) -> bool:
        if answer.status == 409:  # another reservation holds the slot (reference §2.2)
            return True
        return answer.status in (400, 500) and bool(_SLOT_TAKEN.search(answer.message))

    def _parse_slots(self, answer: _Answer, service: Service, window: Interval) -> list[Interval]:
        """``{"status":"success","data":{"YYYY-MM-DD":[{"start": ...}, ...]}}``, ``end`` ignored."""
        body = answer.body
        data = answer.data
        if (
            not isinstance(body, dict)
            or body.get("status") != "success"
            or not isinstance(data, dict)
        ):
            self._bad_payload("slots query", "not a success envelope with a data object")
        starts: set[datetime] = set()
        for entries in data.values():
            if not isinstance(entries, list):
                self._bad_payload("slots query", "a day's slots are not a list")
            for entry in entries:
                text = entry.get("start") if isinstance(entry, dict) else None
                if not isinstance(text, str):
                    self._bad_payload("slots query", "a slot has no start")
                if entry.get("seatsRemaining") == 0:
                    continue  # a full seated slot
                try:
                    start = datetime.fromisoformat(text)
                except ValueError:
                    self._bad_payload("slots query", f"unreadable slot start {text[:40]!r}")
                if start.tzinfo is None:
                    self._bad_payload("slots query", "a slot start has no UTC offset")
                starts.add(start.astimezone(UTC))
        slots = [Interval(s, s + service.duration) for s in sorted(starts)]
        # Cal.com has returned days outside the requested range (issue #24260).
        return [s for s in slots if window.contains(s)]

    def _uid(self, answer: _Answer, what: str) -> str:
        data = answer.data
        if isinstance(data, list) and data:  # a recurring event type answers with a list
            data = data[0]
        uid = data.get("uid") if isinstance(data, dict) else None
        if not isinstance(uid, str) or not uid:
            self._bad_payload(what, "no booking uid in the answer")
        return uid

    def _find_own_booking(self, request: CalendarBookingRequest) -> str | None:
        """Our booking (metadata.booking_id) at that start in Cal.com, or None; best effort."""
        params: dict[str, str] = {
            "attendeeEmail": request.client.email,
            "afterStart": _utc_text(request.start),
            "beforeEnd": _utc_text(request.end),
        }
        if request.link.event_type_id is not None:
            params["eventTypeId"] = str(request.link.event_type_id)
        try:
            answer = self._call(
                "booking lookup",
                "GET",
                "/bookings",
                version=self._bookings_version,
                params=params,
                idempotent=True,
            )
        except CalendarUnavailable:
            return None
        items = answer.data if answer.status == 200 else None
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            metadata = item.get("metadata")
            ours = isinstance(metadata, dict) and metadata.get("booking_id") == str(
                request.booking_id
            )
            live = str(item.get("status", "")).lower() in ("accepted", "pending")
            if ours and live and _same_instant(item.get("start"), request.start):
                uid = item.get("uid")
                if isinstance(uid, str) and uid:
                    return uid
        return None

    def _rescheduled_to(self, uid: str, new_start: datetime) -> str | None:
        try:
            answer = self._call(
                "booking lookup",
                "GET",
                f"/bookings/{quote(uid, safe='')}",
                version=self._bookings_version,
                idempotent=True,
            )
        except CalendarUnavailable:
            return None
        data = answer.data if answer.status == 200 else None
        moved = data.get("rescheduledToUid") if isinstance(data, dict) else None
        if not isinstance(moved, str) or not moved:
            return None
        try:
            target = self._call(
                "booking lookup",
                "GET",
                f"/bookings/{quote(moved, safe='')}",
                version=self._bookings_version,
                idempotent=True,
            )
        except CalendarUnavailable:
            return None
        data = target.data if target.status == 200 else None
        if isinstance(data, dict) and _same_instant(data.get("start"), new_start):
            return moved
        return None

    # -- transport ---------------------------------------------------------------------------

    def _call(
        self,
        what: str,
        method: str,
        path: str,
        *,
        version: str,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
        idempotent: bool,
    ) -> _Answer:
        """One gateway call: breaker, attempts within the budget, backoff; or CalendarUnavailable.

        Returns any answer that shows Cal.com is up (2xx, and 4xx other than 401/403/429) for the
        caller to interpret; everything else is a failure counted by the breaker.
        """
        try:
            self.breaker.allow()
        except CircuitOpen as exc:
            self._warn(
                f"Cal.com {what} skipped: circuit open after repeated failures, "
                f"next try in {exc.retry_in:.0f} s"
            )
            raise CalendarUnavailable(
                f"Cal.com {what} skipped (circuit open, next try in {exc.retry_in:.0f} s)"
            ) from exc
        deadline = self._clock() + self._call_budget
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "cal-api-version": version,
            "Accept": "application/json",
        }
        url = self.api_url + path
        attempt = 0
        while True:
            try:
                answer = self._attempt(method, url, headers, params, json_body, deadline)
            except _Failure as failure:
                wait = self._retry_wait(failure, attempt, idempotent, deadline)
                if wait is not None:
                    log.debug(
                        "Cal.com %s attempt %d failed (%s); retrying in %.2f s",
                        what,
                        attempt + 1,
                        self._redact(failure.reason),
                        wait,
                    )
                    self._sleep(wait)
                    attempt += 1
                    continue
                self._failed(what, failure)
            if self.breaker.success():
                log.info("Cal.com answers again; circuit closed")
                with self._lock:
                    self._last_warning = None
            return answer

    def _attempt(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None,
        json_body: Mapping[str, Any] | None,
        deadline: float,
    ) -> _Answer:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise _Failure("call budget spent", retryable=False)
        timeout = (min(self._connect_timeout, remaining), min(self._read_timeout, remaining))
        try:
            with self._session.request(
                method,
                url,
                headers=dict(headers),
                params=dict(params) if params is not None else None,
                json=json_body,
                timeout=timeout,
                allow_redirects=False,  # OWASP API10: do not follow a third party's redirects
                stream=True,
            ) as response:
                raw = self._read_body(response, deadline)
                status = response.status_code
                response_headers = dict(response.headers)
        except requests.exceptions.ConnectTimeout as exc:
            raise _Failure(f"connect timeout: {exc}", before_sending=True) from exc
        except requests.exceptions.ConnectionError as exc:
            refused = _is_connect_failure(exc)
            kind = "connection refused or unreachable" if refused else "connection error"
            raise _Failure(f"{kind}: {exc}", before_sending=refused) from exc
        except requests.exceptions.Timeout as exc:
            raise _Failure(f"read timeout: {exc}") from exc
        except requests.exceptions.RequestException as exc:
            raise _Failure(f"{type(exc).__name__}: {exc}") from exc
        return self._classify(status, raw, response_headers)

    def _read_body(self, response: requests.Response, deadline: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise _Failure(f"answer larger than {MAX_RESPONSE_BYTES} bytes", retryable=False)
            if self._clock() > deadline:
                raise _Failure("call budget spent while reading the answer", retryable=False)
            chunks.append(chunk)
        return b"".join(chunks)

    def _classify(self, status: int, raw: bytes, headers: Mapping[str, str]) -> _Answer:
        body: Any = None
        bad_json = False
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        answer = _Answer(status=status, body=body, headers=headers)
        if status == 429:
            raise _Failure(
                f"rate limited (429: {answer.message})",
                before_sending=True,  # the throttler refuses before the handler runs
                retry_after=_rate_limit_wait(headers),
            )
        if status >= 500:
            if _SLOT_TAKEN.search(answer.message):
                return answer  # issue #29532: "slot taken" sometimes comes as a 500
            raise _Failure(f"server error ({status}: {answer.message or 'no details'})")
        if 300 <= status < 400:
            raise _Failure(f"unexpected redirect ({status})", retryable=False)
        if status in (401, 403):
            raise _Failure(
                f"not authorised ({status}: {answer.message}); check CALCOM_API_KEY",
                retryable=False,
            )
        if 200 <= status < 300 and (bad_json or not isinstance(body, dict)):
            raise _Failure(f"answer is not a JSON object ({status})")
        return answer

    def _retry_wait(
        self, failure: _Failure, attempt: int, idempotent: bool, deadline: float
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        if not failure.retryable or attempt >= self._max_retries:
            return None
        if not (idempotent or failure.before_sending):
            return None  # it may have reached Cal.com: retrying could book twice
        ceiling = min(self._backoff_cap, self._backoff_base * 2**attempt)
        wait = self._rng.uniform(0, ceiling)  # "full jitter"
        if failure.retry_after is not None:
            wait = max(wait, failure.retry_after)
        if self._clock() + wait + _MIN_ATTEMPT_SECONDS > deadline:
            return None
        return wait

    def _failed(self, what: str, failure: _Failure) -> NoReturn:
        reason = self._redact(failure.reason)
        if failure.retry_after is not None and failure.retry_after > 0:
            # Rate limited: stay away until the limit resets instead of spending more of the 120
            # requests a minute (accounts that keep exceeding it get locked, issue #24981).
            pause = min(failure.retry_after, _MAX_RATE_LIMIT_PAUSE)
            self.breaker.open_for(pause)
            self._warn(f"Cal.com {what} failed ({reason}); Cal.com skipped for {pause:.0f} s")
        elif self.breaker.failure():
            self._warn(
                f"Cal.com {what} failed ({reason}); circuit open, Cal.com skipped for "
                f"{self.breaker.cooldown:.0f} s (availability from the local schedule)"
            )
        else:
            self._warn(f"Cal.com {what} failed ({reason})")
        raise CalendarUnavailable(f"Cal.com {what} failed ({reason})") from failure

    def _bad_payload(self, what: str, reason: str) -> NoReturn:
        self._failed(what, _Failure(f"unexpected answer: {reason}"))

    def _warn(self, message: str) -> None:
        """A warning at most once per breaker cool-down; the rest go to debug."""
        now = self._clock()
        with self._lock:
            due = self._last_warning is None or now - self._last_warning >= self.breaker.cooldown
            if due:
                self._last_warning = now
        log.log(logging.WARNING if due else logging.DEBUG, "%s", self._redact(message))

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]")


def _is_connect_failure(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the connection was never made (refused, DNS): the request was not sent."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, NewConnectionError):
            return True
        reason = getattr(current, "reason", None)
        if isinstance(reason, NewConnectionError):
            return True
        nested = current.args[0] if current.args else None
        current = nested if isinstance(nested, BaseException) else current.__cause__
    return False


def _rate_limit_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``Retry-After`` or ``X-RateLimit-Reset-*`` (reference §2.7)."""
    waits: list[float] = []
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == "retry-after":
            waits.extend(_seconds_from(value, http_date=True))
        elif lowered.startswith("x-ratelimit-reset"):
            waits.extend(_seconds_from(value, http_date=False))
    return max(waits) if waits else None


def _seconds_from(value: str, *, http_date: bool) -> list[float]:
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        if not http_date:
            return []
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return []
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return [max(0.0, (when - datetime.now(UTC)).total_seconds())]
    if number > 1e12:  # epoch milliseconds
        number = number / 1000 - time.time()
    elif number > 1e9:  # epoch seconds (a doc mirror says the reset is a timestamp)
        number -= time.time()
    return [max(0.0, number)]


def _same_instant(text: object, moment: datetime) -> bool:
    if not isinstance(text, str):
        return False
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return False
    return parsed.tzinfo is not None and parsed == moment


__all__ = ["BOOKINGS_API_VERSION", "SLOTS_API_VERSION", "CalComCalendarGateway"]
