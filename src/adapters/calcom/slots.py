"""Cal.com slots: the gateway's cache policy, the cache key of a query, and the answer's parsing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from adapters.calcom.client import Answer, CalcomClient, utc_text
from booking_core.model import CalendarLink, Interval, Service
from booking_core.ports import SlotCache


class SlotCachePolicy:
    """Slots are cached for ``seconds`` (0: never) in ``cache`` (None: never), and only for a
    link with known owners, since entries are owned (and invalidated) by practitioner ids."""

    def __init__(self, cache: SlotCache | None, seconds: float) -> None:
        self._cache = cache if seconds > 0 else None
        self._seconds = float(seconds)

    def fetch(
        self, key: str, owners: Sequence[int], load: Callable[[], list[Interval]]
    ) -> list[Interval]:
        """The slots cached under ``key`` when fresh, else ``load()``'s, stored with the owners'
        stamp read *before* loading (so a fetch overtaken by an invalidation is never served)."""
        cache = self._cache if owners else None
        if cache is None:
            return load()
        found = cache.get(key, owners)
        if found.slots is not None:
            return found.slots
        slots = load()
        cache.put(key, owners, found.stamp, slots, self._seconds)
        return slots

    def invalidate(self, practitioner_id: int) -> None:
        if self._cache is not None:
            self._cache.invalidate(practitioner_id)


def slot_key(link: CalendarLink, service: Service, window: Interval, timezone: str) -> str:
    """The cache key of one slots query: what Cal.com's answer depends on."""
    return "|".join(
        (
            link.event_type,
            link.username or "",
            str(service.duration_minutes),
            utc_text(window.start),
            utc_text(window.end),
            timezone,
        )
    )


def parse_slots(
    client: CalcomClient, answer: Answer, service: Service, window: Interval
) -> list[Interval]:
    """``{"status":"success","data":{"YYYY-MM-DD":[{"start": ...}, ...]}}``, ``end`` ignored."""
    body = answer.body
    data = answer.data
    if not isinstance(body, dict) or body.get("status") != "success" or not isinstance(data, dict):
        client.bad_payload("slots query", "not a success envelope with a data object")
    starts: set[datetime] = set()
    for entries in data.values():
        if not isinstance(entries, list):
            client.bad_payload("slots query", "a day's slots are not a list")
        for entry in entries:
            text = entry.get("start") if isinstance(entry, dict) else None
            if not isinstance(text, str):
                client.bad_payload("slots query", "a slot has no start")
            if entry.get("seatsRemaining") == 0:
                continue  # a full seated slot
            try:
                start = datetime.fromisoformat(text)
            except ValueError:
                client.bad_payload("slots query", f"unreadable slot start {text[:40]!r}")
            if start.tzinfo is None:
                client.bad_payload("slots query", "a slot start has no UTC offset")
            starts.add(start.astimezone(UTC))
    slots = [Interval(s, s + service.duration) for s in sorted(starts)]
    # Cal.com has returned days outside the requested range (issue #24260).
    return [s for s in slots if window.contains(s)]
