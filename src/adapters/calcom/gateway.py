"""Cal.com API v2 as the CalendarGateway: slots, bookings, cancel and reschedule.

The port methods live here and read Cal.com's answers; the HTTP transport (timeouts, retries,
budget, breaker, size cap) is ``client``, the link owners ``owners``, the slot cache policy and
parsing ``slots``, the lookups after a lost answer ``recovery``. A slow or dead Cal.com never
slows availability down much, and every failure surfaces as CalendarUnavailable, so the core
falls back to the local schedule.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from urllib.parse import quote

import requests

from adapters.calcom.client import (
    DEFAULT_API_URL,
    SLOT_TAKEN,
    Answer,
    CalcomClient,
    utc_text,
)
from adapters.calcom.owners import OwnerRegistry
from adapters.calcom.recovery import find_own_booking, rescheduled_to
from adapters.calcom.slots import SlotCachePolicy, parse_slots, slot_key
from adapters.resilience import CircuitBreaker
from booking_core.errors import CalendarSlotTaken, CalendarUnavailable
from booking_core.model import CalendarLink, Interval, Practitioner, Service
from booking_core.ports import CalendarBookingRequest, SlotCache

log = logging.getLogger(__name__)

# cal-api-version is per endpoint; without it Cal.com silently routes to the 2024-04-15
# controllers (404 for /v2/slots, an older contract for /v2/bookings).
SLOTS_API_VERSION = "2024-09-04"
BOOKINGS_API_VERSION = "2024-08-13"

# Cal.com answers 400 "Can't cancel booking with uid=... because it has been cancelled already"
# since PR #22128; "cancelled and rescheduled already" is a different story (handled apart).
_ALREADY_CANCELLED = re.compile(r"cancell?ed already|already (?:been )?cancell?ed", re.IGNORECASE)
_RESCHEDULED = re.compile(r"rescheduled", re.IGNORECASE)


class CalComCalendarGateway:
    """CalendarGateway over Cal.com API v2 (see the module docstring).

    ``links`` maps practitioner ids to Cal.com links from the environment (CALCOM_EVENT_TYPE_<n>);
    a link stored on the practitioner wins. ``cache`` is a SlotCache (``adapters.slot_cache``:
    in-process, or Redis/PostgreSQL to share slots and invalidations between processes); without
    one nothing is cached. The transport options (timeouts, ``call_budget``, retries, backoff,
    breaker, ``session``, ``sleep``, ``clock``, ``rng``) go to ``CalcomClient``.
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
        if cache_seconds < 0:
            raise ValueError("cache_seconds must not be negative")
        self._client = CalcomClient(
            api_key=api_key,
            api_url=api_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            call_budget=call_budget,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            breaker_threshold=breaker_threshold,
            breaker_cooldown=breaker_cooldown,
            session=session,
            sleep=sleep,
            clock=clock,
            rng=rng,
        )
        self._owners = OwnerRegistry(links)
        self._slots = SlotCachePolicy(cache, cache_seconds)
        self._slots_version = slots_api_version
        self._bookings_version = bookings_api_version

    @property
    def api_url(self) -> str:
        return self._client.api_url

    @property
    def breaker(self) -> CircuitBreaker:
        return self._client.breaker

    def __repr__(self) -> str:
        return f"CalComCalendarGateway(api_url={self.api_url!r})"

    def close(self) -> None:
        self._client.close()

    # -- CalendarGateway ---------------------------------------------------------------------

    def link_for(self, practitioner: Practitioner) -> CalendarLink | None:
        """The link stored on the practitioner, else the environment's, else None."""
        return self._owners.link_for(practitioner)

    def free_slots(
        self, link: CalendarLink, service: Service, window: Interval, timezone: str
    ) -> list[Interval]:
        """Starts Cal.com offers in ``window``, each one service long, in UTC, sorted.

        Served from the cache when fresh. Raises CalendarUnavailable.
        """
        return self._slots.fetch(
            slot_key(link, service, window, timezone),
            self._owners.owners_of(link),
            lambda: self._query_slots(link, service, window, timezone),
        )

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
            "start": utc_text(request.start),
            **self._event_type_fields(request.link),
            "attendee": attendee,
            # Our service's length, not the event type's default: Cal.com computes the end
            # from it (it must be the type's length or one of its lengthInMinutesOptions).
            "lengthInMinutes": int((request.end - request.start).total_seconds() // 60),
            # Cal.com refuses metadata values that are not strings
            "metadata": {"booking_id": str(request.booking_id)},
        }
        answer = self._client.call(
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
            existing = find_own_booking(self._client, request, version=self._bookings_version)
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
        answer = self._client.call(
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
        answer = self._client.call(
            "booking reschedule",
            "POST",
            f"/bookings/{quote(uid, safe='')}/reschedule",
            version=self._bookings_version,
            json_body={"start": utc_text(new_start), "reschedulingReason": reason},
            idempotent=False,
        )
        if 200 <= answer.status < 300:
            return self._uid(answer, "booking reschedule")
        if self._slot_taken(answer):
            raise CalendarSlotTaken(f"Cal.com: {answer.message or 'the time is taken'}")
        if answer.status == 400 and _RESCHEDULED.search(answer.message):
            moved = rescheduled_to(self._client, uid, new_start, version=self._bookings_version)
            if moved is not None:
                return moved
        raise CalendarUnavailable(
            f"Cal.com refused to reschedule booking {uid} ({answer.status}: {answer.message})"
        )

    def invalidate(self, practitioner_id: int) -> None:
        """Drop the practitioner's cached slots, in every process sharing the cache."""
        self._slots.invalidate(practitioner_id)

    # -- helpers -----------------------------------------------------------------------------

    def _query_slots(
        self, link: CalendarLink, service: Service, window: Interval, timezone: str
    ) -> list[Interval]:
        params = {
            **{k: str(v) for k, v in self._event_type_fields(link).items()},
            "start": utc_text(window.start),
            "end": utc_text(window.end),
            "timeZone": timezone,
        }
        answer = self._client.call(
            "slots query",
            "GET",
            "/slots",
            version=self._slots_version,
            params=params,
            idempotent=True,
        )
        if answer.status != 200:
            self._client.warn(
                f"Cal.com refused the slots query ({answer.status}: {answer.message})"
            )
            raise CalendarUnavailable(
                f"Cal.com refused the slots query ({answer.status}: {answer.message})"
            )
        return parse_slots(self._client, answer, service, window)

    def _event_type_fields(self, link: CalendarLink) -> dict[str, int | str]:
        if link.event_type_id is not None:
            return {"eventTypeId": link.event_type_id}
        if not link.username:
            raise CalendarUnavailable(
                f"Cal.com link with event type slug {link.event_type!r} needs a username"
            )
        return {"eventTypeSlug": link.event_type, "username": link.username}

    @staticmethod
    def _slot_taken(answer: Answer) -> bool:
        if answer.status == 409:  # another reservation holds the slot
            return True
        return answer.status in (400, 500) and bool(SLOT_TAKEN.search(answer.message))

    def _uid(self, answer: Answer, what: str) -> str:
        data = answer.data
        if isinstance(data, list) and data:  # a recurring event type answers with a list
            data = data[0]
        uid = data.get("uid") if isinstance(data, dict) else None
        if not isinstance(uid, str) or not uid:
            self._client.bad_payload(what, "no booking uid in the answer")
        return uid


__all__ = ["BOOKINGS_API_VERSION", "SLOTS_API_VERSION", "CalComCalendarGateway"]
