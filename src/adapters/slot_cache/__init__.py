"""Slot caches for the Cal.com gateway, each implementing ``booking_core.ports.SlotCache``.

In-process (``memory``), in Redis (``redis``) or in PostgreSQL's ``calendar_cache`` table
(``postgres``), the two shared ones sharing their entry format, key names and outage gate
(``shared``). The composition root picks one; the gateway only knows the port.
"""

from adapters.slot_cache.memory import InMemorySlotCache
from adapters.slot_cache.postgres import PostgresSlotCache
from adapters.slot_cache.redis import RedisSlotCache

__all__ = ["InMemorySlotCache", "PostgresSlotCache", "RedisSlotCache"]
