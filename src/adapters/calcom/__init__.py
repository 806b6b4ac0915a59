"""Cal.com API v2 adapter: the CalendarGateway, its slot caches and the inbound webhook verifier."""

from adapters.calcom.cache import InMemorySlotCache, Lookup, RedisSlotCache, SlotCache
from adapters.calcom.gateway import (
    BOOKINGS_API_VERSION,
    SLOTS_API_VERSION,
    CalComCalendarGateway,
)
from adapters.calcom.webhooks import CalcomWebhookEvent, verify_and_parse
from adapters.resilience import BreakerState, CircuitBreaker

__all__ = [
    "BOOKINGS_API_VERSION",
    "SLOTS_API_VERSION",
    "BreakerState",
    "CalComCalendarGateway",
    "CalcomWebhookEvent",
    "CircuitBreaker",
    "InMemorySlotCache",
    "Lookup",
    "RedisSlotCache",
    "SlotCache",
    "verify_and_parse",
]
