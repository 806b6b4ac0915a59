"""A slot cache for one process: a bounded dict with expiry times and generations."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from adapters.slot_cache.shared import Stamp
from booking_core.model import Interval
from booking_core.ports import SlotLookup


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

    def get(self, key: str, owners: Sequence[int]) -> SlotLookup:
        with self._lock:
            stamp = self._stamp(owners)
            entry = self._entries.get(key)
            if entry is None:
                return SlotLookup(None, stamp)
            expires, stored, slots = entry
            if self._clock() >= expires or stored != stamp:
                del self._entries[key]
                return SlotLookup(None, stamp)
            return SlotLookup(list(slots), stamp)

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
