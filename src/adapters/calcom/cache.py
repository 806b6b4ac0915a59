"""Caches of Cal.com slots: in-process, or in Redis so that every worker process shares them.

Entries are owned by practitioner ids. Invalidation bumps a per-practitioner generation counter
instead of hunting for keys: an entry is served only while the generations it was stored with are
still current. A fetch that started before an invalidation and is stored after it therefore
carries the old generation and is never served (no stale slot outlives a booking we just made).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from booking_core.model import Interval

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

Stamp = tuple[int, ...]


class Lookup(NamedTuple):
    """What a cache lookup found: the slots (None on a miss) and the owners' current stamp."""

    slots: list[Interval] | None
    stamp: Stamp


class SlotCache(Protocol):
    """Slots per key, each entry owned by practitioner ids, with a time to live.

    Never raises: a cache that cannot answer is a miss, a cache that cannot store forgets.
    """

    def get(self, key: str, owners: Sequence[int]) -> Lookup:
        """The slots stored under ``key`` if still fresh and no owner was invalidated since.

        The returned stamp is passed back to ``put`` for a value fetched after this lookup.
        """

    def put(
        self, key: str, owners: Sequence[int], stamp: Stamp, slots: Sequence[Interval], ttl: float
    ) -> None:
        """Store ``slots`` for ``ttl`` seconds, while the owners' generations equal ``stamp``."""

    def invalidate(self, owner: int) -> None:
        """Make every entry owned by practitioner ``owner`` a miss, in every process sharing it."""


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


class InMemorySlotCache:
    """A SlotCache for one process: a bounded dict with expiry times (thread-safe)."""

    def __init__(
        self, *, max_entries: int = 2048, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, Stamp, tuple[Interval, ...]]] = OrderedDict()
        self._generations: dict[int, int] = {}

    def _stamp(self, owners: Sequence[int]) -> Stamp:
        return tuple(self._generations.get(owner, 0) for owner in owners)

    def get(self, key: str, owners: Sequence[int]) -> Lookup:
        with self._lock:
            stamp = self._stamp(owners)
            entry = self._entries.get(key)
            if entry is None:
                return Lookup(None, stamp)
            expires, stored, slots = entry
            if self._clock() >= expires or stored != stamp:
                del self._entries[key]
                return Lookup(None, stamp)
            return Lookup(list(slots), stamp)

    def put(
        self, key: str, owners: Sequence[int], stamp: Stamp, slots: Sequence[Interval], ttl: float
    ) -> None:
        if ttl <= 0:
            return
        with self._lock:
            if stamp != self._stamp(owners):
                return  # invalidated while we were fetching: do not store what may be stale
            self._entries[key] = (self._clock() + ttl, stamp, tuple(slots))
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def invalidate(self, owner: int) -> None:
        with self._lock:
            self._generations[owner] = self._generations.get(owner, 0) + 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class RedisSlotCache:
    """A SlotCache in Redis, shared by every process that uses the same URL and prefix.

    Keys: ``{prefix}slots:{key}`` (JSON with the stamp, expiring after the TTL) and
    ``{prefix}gen:{practitioner_id}`` (an INCR counter). A lookup is one round trip (MGET).
    Redis being down makes lookups misses and is logged (once a minute), never raised: the
    calendar still answers, only uncached. After an error Redis is left alone for
    ``pause_seconds`` so that a hanging Redis costs one short timeout, not one per call. (A lost
    invalidation is harmless for correctness: the core subtracts our own bookings from whatever
    slots it gets, and the database has the last word on overlaps.)
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "booking:calcom:",
        socket_timeout: float = 0.25,
        pause_seconds: float = 5.0,
        client: redis.Redis | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import redis as redis_lib
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.prefix = prefix
        self._errors: tuple[type[Exception], ...] = (redis_lib.RedisError, ValueError, KeyError)
        # redis-py's default is 10 retries with backoff: far too slow for a request path.
        self._client: redis.Redis = client or redis_lib.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 1),
            health_check_interval=30,
        )
        self._keys = CacheKeys(prefix)
        self._gate = OutageGate("Redis slot cache", pause_seconds=pause_seconds, clock=clock)

    def get(self, key: str, owners: Sequence[int]) -> Lookup:
        if not self._gate.open():
            return Lookup(None, ())
        try:
            values: list[Any] = self._client.mget(
                [self._keys.entry(key), *(self._keys.generation(o) for o in owners)]
            )
            stamp = tuple(int(v) if v is not None else 0 for v in values[1:])
        except self._errors as exc:
            self._gate.failed("lookup", exc)
            return Lookup(None, ())
        raw = values[0]
        if raw is None:
            return Lookup(None, stamp)
        try:
            stored, slots = decode_entry(raw)
        except (ValueError, KeyError, TypeError):
            return Lookup(None, stamp)  # an entry we cannot read is a miss; put overwrites it
        return Lookup(slots if stored == stamp else None, stamp)

    def put(
        self, key: str, owners: Sequence[int], stamp: Stamp, slots: Sequence[Interval], ttl: float
    ) -> None:
        if ttl <= 0 or len(stamp) != len(owners) or not self._gate.open():
            return  # no stamp: the lookup failed, so we cannot tell whether this is fresh
        try:
            self._client.set(self._keys.entry(key), encode_entry(stamp, slots), px=int(ttl * 1000))
        except self._errors as exc:
            self._gate.failed("store", exc)

    def invalidate(self, owner: int) -> None:
        if not self._gate.open():
            log.debug("Redis slot cache paused; invalidation of practitioner %s skipped", owner)
            return
        try:
            self._client.incr(self._keys.generation(owner))
        except self._errors as exc:
            self._gate.failed("invalidate", exc)

    def clear(self) -> None:
        """Delete every key under the prefix (tests and admin tools)."""
        keys = list(self._client.scan_iter(match=f"{self.prefix}*", count=500))
        if keys:
            self._client.delete(*keys)

    def close(self) -> None:
        self._client.close()
