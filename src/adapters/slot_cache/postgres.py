"""A slot cache in PostgreSQL's ``calendar_cache`` table, shared by every process.

It has the semantics of ``RedisSlotCache`` (see ``adapters.slot_cache.shared``): entries
carry the generations of their owners (practitioners) and are served only while those are
current; invalidation bumps a generation row. Used when several processes run and no Redis is
configured. Time comes from the database (``now()``), so the processes' clocks do not matter.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from adapters.slot_cache.shared import CacheKeys, OutageGate, Stamp, decode_entry, encode_entry
from booking_core.model import Interval
from booking_core.ports import SlotLookup

log = logging.getLogger(__name__)

_GET = sa.text(
    "SELECT key, value FROM calendar_cache "
    "WHERE key = ANY(CAST(:keys AS text[])) AND expires_at > now()"
)
_PUT = sa.text(
    "INSERT INTO calendar_cache (key, value, expires_at) "
    "VALUES (:key, CAST(:value AS jsonb), now() + make_interval(secs => :ttl)) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
)
_BUMP = sa.text(
    "INSERT INTO calendar_cache (key, value, expires_at) "
    "VALUES (:key, '{\"gen\": 1}'::jsonb, 'infinity') "
    "ON CONFLICT (key) DO UPDATE SET value = jsonb_build_object("
    "'gen', COALESCE((calendar_cache.value->>'gen')::bigint, 0) + 1)"
)
_PURGE = sa.text("DELETE FROM calendar_cache WHERE expires_at < now()")

# Expired entries are deleted every this many stores (a generation row never expires).
_PURGE_EVERY = 200


class PostgresSlotCache:
    """SlotCache on ``calendar_cache``. Never raises: a database error is a miss, logged at most
    once a minute, and the database is left alone for ``pause_seconds`` after it."""

    def __init__(
        self, engine: Engine, *, prefix: str = "calcom:", pause_seconds: float = 5.0
    ) -> None:
        self._engine = engine
        self.prefix = prefix
        self._keys = CacheKeys(prefix)
        self._gate = OutageGate("PostgreSQL slot cache", pause_seconds=pause_seconds)
        self._stores = 0
        self._lock = threading.Lock()

    def get(self, key: str, owners: Sequence[int]) -> SlotLookup:
        if not self._gate.open():
            return SlotLookup(None, ())
        entry_key = self._keys.entry(key)
        keys = [entry_key, *(self._keys.generation(o) for o in owners)]
        try:
            with self._engine.connect() as connection:
                rows: dict[str, Any] = {
                    name: value for name, value in connection.execute(_GET, {"keys": keys})
                }
        except sa.exc.SQLAlchemyError as exc:
            self._gate.failed("lookup", exc)
            return SlotLookup(None, ())
        stamp = tuple(int((rows.get(self._keys.generation(o)) or {}).get("gen", 0)) for o in owners)
        value = rows.get(entry_key)
        if value is None:
            return SlotLookup(None, stamp)
        try:
            stored, slots = decode_entry(value)
        except (ValueError, KeyError, TypeError):
            return SlotLookup(None, stamp)  # unreadable: a miss, and put overwrites it
        return SlotLookup(slots if stored == stamp else None, stamp)

    def put(
        self, key: str, owners: Sequence[int], stamp: Stamp, slots: Sequence[Interval], ttl: float
    ) -> None:
        if ttl <= 0 or len(stamp) != len(owners) or not self._gate.open():
            return  # no stamp: the lookup failed, so we cannot tell whether this is fresh
        with self._lock:
            self._stores += 1
            purge = self._stores % _PURGE_EVERY == 0
        params = {"key": self._keys.entry(key), "value": encode_entry(stamp, slots), "ttl": ttl}
        try:
            with self._engine.begin() as connection:
                connection.execute(_PUT, params)
                if purge:
                    connection.execute(_PURGE)
        except sa.exc.SQLAlchemyError as exc:
            self._gate.failed("store", exc)

    def invalidate(self, owner: int) -> None:
        try:
            with self._engine.begin() as connection:
                connection.execute(_BUMP, {"key": self._keys.generation(owner)})
        except sa.exc.SQLAlchemyError as exc:
            self._gate.failed("invalidate", exc)

    def clear(self) -> None:
        """Delete every entry and generation under the prefix (tests and admin tools)."""
        with self._engine.begin() as connection:
            connection.execute(
                sa.text("DELETE FROM calendar_cache WHERE starts_with(key, :prefix)"),
                {"prefix": self.prefix},
            )
