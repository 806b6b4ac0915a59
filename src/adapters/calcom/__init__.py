"""Cal.com API v2 adapter: the CalendarGateway and the inbound webhook verifier.

``gateway`` holds the port methods, ``client`` the HTTP transport, ``owners`` the link registry,
``slots`` the cache policy and parsing, ``recovery`` the lookups after a lost answer, ``webhooks``
the signature check. Its slot caches live in ``adapters.slot_cache``; the composition root hands
one in.
"""

from adapters.calcom.client import CalcomClient
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
    "CalcomClient",
    "CalcomWebhookEvent",
    "CircuitBreaker",
    "verify_and_parse",
]
