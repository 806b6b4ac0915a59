"""Business settings the use cases follow: hold length, cancellation refunds, window limits."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from attrs import field, frozen

from booking_core.model import Booking, Money

# Stripe wants a Checkout Session's expires_at at least 30 minutes after the session is created,
# which happens a moment after the hold starts; this grace keeps a 30-minute hold acceptable.
HOLD_GRACE = timedelta(minutes=1)


@frozen
class BookingRules:
    """Tunable rules; bootstrap builds them from HOLD_MINUTES and CANCELLATION_WINDOW_HOURS."""

    hold_minutes: int = 30
    cancellation_window_hours: int = 24
    default_window_days: int = 7
    max_window_days: int = 62
    reminder_hours_before: int = 24
    # How long a process may keep a practitioner's schedule for availability (seconds); a change
    # shows at once all the same (the repository checks the schedule version), and booking and
    # rescheduling always read it fresh.
    schedule_cache_seconds: float = 30.0
    # The key manage links in mails are signed with (see notifications.manage_link_token);
    # bootstrap derives it from SECRET_KEY. Empty: mails carry no link, only the API token works.
    link_secret: bytes = field(default=b"", repr=False)

    def hold_expiry(self, now: datetime) -> datetime:
        return now + timedelta(minutes=self.hold_minutes) + HOLD_GRACE

    def refund_for_cancellation(
        self, booking: Booking, now: datetime, *, override: bool | None = None
    ) -> Money:
        """Full refund at least the window before the start, none after.

        ``override`` (admins only) forces a full refund (True) or none (False).
        """
        if override is not None:
            return booking.price if override else booking.price.zero()
        in_time = booking.start - now >= timedelta(hours=self.cancellation_window_hours)
        return booking.price if in_time else booking.price.zero()


def new_manage_token() -> tuple[str, str]:
    """A fresh client token and the hash we store; the token itself is shown once, never stored."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    """Constant-time comparison, so a wrong token tells nothing about the right one."""
    return bool(stored_hash) and hmac.compare_digest(hash_token(token), stored_hash)
