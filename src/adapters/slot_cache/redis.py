"""A slot cache in Redis, shared by every process that uses the same URL and key prefix."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from adapters.slot_cache.shared import CacheKeys, OutageGate, Stamp, decode_entry, encode_entry
from booking_core.model import Interval
from booking_core.ports import SlotLookup

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)


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

    def get(self, key: str, owners: Sequence[int]) -> SlotLookup:
        if not self._gate.open():
            return SlotLookup(None, ())
        try:
            values: list[Any] = self._client.mget(
                [self._keys.entry(key), *(self._keys.generation(o) for o in owners)]
            )
            stamp = tuple(int(v) if v is not None else 0 for v in values[1:])
        except self._errors as exc:
            self._gate.failed("lookup", exc)
            return SlotLookup(None, ())
        raw = values[0]
        if raw is None:
            return SlotLookup(None, stamp)
        try:
            stored, slots = decode_entry(raw)
        except (ValueError, KeyError, TypeError):
            return SlotLookup(None, stamp)  # an entry we cannot read is a miss; put overwrites it
        return SlotLookup(slots if stored == stamp else None, stamp)

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
