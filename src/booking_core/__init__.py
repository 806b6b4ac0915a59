"""booking_core: the pure domain of the practitioner booking service.

Model, rules, ports (typing.Protocol), use cases and errors. Imports nothing outside the standard
library and attrs, so other services can run it on their own adapters.
"""

from booking_core import errors
from booking_core.model import (
    Booking,
    BookingStatus,
    CalendarLink,
    Client,
    DateOverride,
    Interval,
    Money,
    Practitioner,
    Refund,
    RefundStatus,
    Role,
    Service,
    TimeOff,
    TimeRange,
    User,
    WeeklyHours,
)
from booking_core.policy import BookingRules

__all__ = [
    "Booking",
    "BookingRules",
    "BookingStatus",
    "CalendarLink",
    "Client",
    "DateOverride",
    "Interval",
    "Money",
    "Practitioner",
    "Refund",
    "RefundStatus",
    "Role",
    "Service",
    "TimeOff",
    "TimeRange",
    "User",
    "WeeklyHours",
    "errors",
]
