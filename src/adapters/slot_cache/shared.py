"""What the shared slot caches (Redis, PostgreSQL) have in common: entry format, key names and
the outage gate.

Entries are owned by practitioner ids. Invalidation bumps a per-practitioner generation counter
instead of hunting for keys: an entry is served only while the generations it was stored with are
still current. A fetch that started before an invalidation and is stored after it therefore
carries the old generation and is never served (no stale slot outlives a booking we just made).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from booking_core.model import Interval

log = logging.getLogger(__name__)

Stamp = tuple[int, ...]


def encode_entry(stamp: Stamp, slots: Sequence[Interval]) -> str:
    """An entry as stored in a shared cache: the owners' stamp and the slots, as JSON."""
    return json.dumps(
        {"stamp": list(stamp), "slots": [[s.start.isoformat(), s.end.isoformat()] for s in slots]},
        separators=(",", ":"),
    )


def decode_entry(raw: str | bytes | dict[str, Any]) -> tuple[Stamp, list[Interval]]:
    """The stamp and slots of an entry (JSON text, or already decoded as a JSONB column is)."""
    body = json.loads(raw) if isinstance(raw, str | bytes) else raw
    stamp = tuple(int(g) for g in body["stamp"])
    slots = [
        Interval(datetime.fromisoformat(start), datetime.fromisoformat(end))
        for start, end in body["slots"]
    ]
    return stamp, slots


class OutageGate:
    """For a shared cache: after an error, leave the store alone for ``pause_seconds`` (so a
    hanging store costs one short timeout, not one per call) and warn at most once a minute."""

    def __init__(
        self, name: str, *, pause_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._name = name
        self._pause_seconds = pause_seconds
        self._clock = clock
        self._down_until = -1e18
        self._last_warning = -1e18

    def open(self) -> bool:
        return self._clock() >= self._down_until

    def failed(self, what: str, exc: Exception) -> None:
        now = self._clock()
        self._down_until = now + self._pause_seconds
        if now - self._last_warning >= 60:
            self._last_warning = now
            log.warning(
                "%s: %s failed (%s); continuing uncached", self._name, what, type(exc).__name__
            )


class CacheKeys:
    """Key names of a shared slot cache: entries and per-practitioner generations."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def entry(self, key: str) -> str:
        return f"{self.prefix}slots:{key}"

    def generation(self, owner: int) -> str:
        return f"{self.prefix}gen:{owner}"
