"""The Cal.com API v2 HTTP transport: one call with timeouts, retries, budget and a size cap.

Connect and read timeouts on every attempt and an overall budget per call; idempotent calls (and
ones that never reached Cal.com) are retried with full-jitter backoff inside that budget; a
circuit breaker skips Cal.com for a cool-down after repeated failures (or as long as a rate limit
says); answers are capped in size and never followed through a redirect. Each call sends the
``cal-api-version`` it is given. What shows Cal.com is up comes back as an ``Answer`` (with the
v2 error envelope's message) for the gateway to interpret; every failure is CalendarUnavailable,
and the API key never appears in a message or a log line.
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
from urllib.parse import urlsplit

import requests
from attrs import frozen
from urllib3.exceptions import NewConnectionError

from adapters.resilience import CircuitBreaker, CircuitOpen
from booking_core.errors import CalendarUnavailable

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.cal.com/v2"
MAX_RESPONSE_BYTES = 2 * 1024 * 1024  # OWASP API10: cap what we read from a third party
_MIN_ATTEMPT_SECONDS = 0.2  # not worth starting another attempt with less budget than this
_MAX_RATE_LIMIT_PAUSE = 300.0  # never stay away longer than this because a header said so

# "User either already has booking at this time or is not available" (individual event types),
# "One of the hosts either already has booking ..." (team), and the internal code that issue
# #29532 shows leaking as a 500. Matched narrowly so a 503 "not available" is not "slot taken".
SLOT_TAKEN = re.compile(
    r"already has booking at this time|no_available_users_found_error|"
    r"hosts_unavailable_for_booking",
    re.IGNORECASE,
)
_V1_PATH = re.compile(r"/v1(?:/|$)")


@frozen
class Answer:
    """An HTTP answer that reached us: status, decoded JSON body (None if empty), headers."""

    status: int
    body: Any
    headers: Mapping[str, str]

    @property
    def message(self) -> str:
        """Cal.com's message from the v2 error envelope (``{"status": "error", ...}``), or ""."""
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


def utc_text(moment: datetime) -> str:
    """``2030-01-08T09:00:00Z``: v2 /slots and /bookings want UTC ISO 8601."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_api_url(api_url: str) -> str:
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


class CalcomClient:
    """Calls Cal.com API v2 at ``api_url`` with ``api_key`` (see the module docstring).

    ``call_budget`` bounds the wall time of one call, retries and backoff included. ``sleep``,
    ``clock`` (monotonic seconds, used by the breaker and the budget) and ``rng`` are injectable.
    """

    def __init__(
        self,
        *,
        api_key: str,
        api_url: str = DEFAULT_API_URL,
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
    ) -> None:
        if not api_key:
            raise ValueError("Cal.com api_key must not be empty")
        if min(connect_timeout, read_timeout, call_budget) <= 0:
            raise ValueError("Cal.com timeouts and call budget must be positive")
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        self.api_url = check_api_url(api_url)
        self._api_key = api_key
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
        self._lock = threading.Lock()
        self._last_warning: float | None = None

    def __repr__(self) -> str:
        return f"CalcomClient(api_url={self.api_url!r})"

    def close(self) -> None:
        self._session.close()

    def call(
        self,
        what: str,
        method: str,
        path: str,
        *,
        version: str,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
        idempotent: bool,
    ) -> Answer:
        """One call: breaker, attempts within the budget, backoff; or CalendarUnavailable.

        Returns any answer that shows Cal.com is up (2xx, and 4xx other than 401/403/429) for the
        caller to interpret; everything else is a failure counted by the breaker.
        """
        try:
            self.breaker.allow()
        except CircuitOpen as exc:
            self.warn(
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
    ) -> Answer:
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

    def _classify(self, status: int, raw: bytes, headers: Mapping[str, str]) -> Answer:
        body: Any = None
        bad_json = False
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        answer = Answer(status=status, body=body, headers=headers)
        if status == 429:
            raise _Failure(
                f"rate limited (429: {answer.message})",
                before_sending=True,  # the throttler refuses before the handler runs
                retry_after=_rate_limit_wait(headers),
            )
        if status >= 500:
            if SLOT_TAKEN.search(answer.message):
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
            self.warn(f"Cal.com {what} failed ({reason}); Cal.com skipped for {pause:.0f} s")
        elif self.breaker.failure():
            self.warn(
                f"Cal.com {what} failed ({reason}); circuit open, Cal.com skipped for "
                f"{self.breaker.cooldown:.0f} s (availability from the local schedule)"
            )
        else:
            self.warn(f"Cal.com {what} failed ({reason})")
        raise CalendarUnavailable(f"Cal.com {what} failed ({reason})") from failure

    def bad_payload(self, what: str, reason: str) -> NoReturn:
        self._failed(what, _Failure(f"unexpected answer: {reason}"))

    def warn(self, message: str) -> None:
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
    """Seconds to wait from ``Retry-After`` or ``X-RateLimit-Reset-*`` (v2 rate-limit headers)."""
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
