"""Errors the core raises: one base class with a stable machine-readable code, a few categories.

Entry points map a category to a status (NotFound → 404, Conflict → 409, ...), never a leaf, so a
new leaf needs no change in any view. Adapters translate vendor exceptions into these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class BookingError(Exception):
    """Base of every error the core and the adapters raise on purpose.

    ``code`` is stable (clients switch on it); ``title`` is a short human summary; the message
    (``str(error)``) is the detail and never carries secrets.
    """

    code = "booking_error"
    title = "Booking error"
    # A 5xx answers a fixed sentence instead of the detail (which may carry a host or a vendor's
    # words); an error whose detail is always a fixed sentence of ours may say it instead.
    public_detail = False

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.title)

    @property
    def detail(self) -> str:
        return str(self)


# -- categories --------------------------------------------------------------------------------


class BadRequest(BookingError):
    code = "bad_request"
    title = "Bad request"


class NotFound(BookingError):
    code = "not_found"
    title = "Not found"


class Conflict(BookingError):
    code = "conflict"
    title = "Conflict"


class RuleViolation(BookingError):
    code = "rule_violation"
    title = "The request breaks a booking rule"


class Unauthorized(BookingError):
    code = "unauthorized"
    title = "Authentication required"


class Forbidden(BookingError):
    code = "forbidden"
    title = "Not allowed"


class PaymentFailed(BookingError):
    code = "payment_failed"
    title = "Payment provider error"


class ExternalServiceError(BookingError):
    """An outside service (Cal.com, SMTP) failed; callers fall back or retry later."""

    code = "external_service_error"
    title = "External service error"


# -- leaves ------------------------------------------------------------------------------------


class ValidationFailed(RuleViolation):
    """Input that is well-formed but wrong; ``errors`` maps a field to its messages."""

    code = "validation_error"
    title = "Validation failed"

    def __init__(
        self, detail: str | None = None, *, errors: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        super().__init__(detail)
        self.errors: dict[str, list[str]] = {k: list(v) for k, v in (errors or {}).items()}


class PractitionerNotFound(NotFound):
    title = "Practitioner not found"


class ServiceNotFound(NotFound):
    title = "Service not found"


class BookingNotFound(NotFound):
    title = "Booking not found"


class UserNotFound(NotFound):
    code = "user_not_found"
    title = "User not found"


class SignInFailed(BadRequest):
    """The provider's answer was refused (state, nonce, ID token); nobody is signed in."""

    code = "signin_failed"
    title = "Sign-in failed"


class SlotUnavailable(Conflict):
    """The slot overlaps a booking that occupies the calendar (pending or confirmed)."""

    code = "slot_unavailable"
    title = "That time is no longer available"


class LimitReached(Conflict):
    """One more booking would pass a daily or weekly booking limit of the practitioner or the
    service."""

    code = "limit_reached"
    title = "No more bookings can be taken for that day or week"


class InvalidTransition(Conflict):
    """A booking state change the state machine does not allow."""

    code = "invalid_transition"
    title = "That change is not possible in the booking's current state"


class ConcurrentUpdate(Conflict):
    """Someone else changed the record between our read and our write; retry from a fresh read."""

    code = "concurrent_update"
    title = "The booking was changed by someone else"


class DuplicateRequest(RuleViolation):
    """An idempotency key was reused with a different request body (422, as the IETF draft says)."""

    code = "idempotency_key_reused"
    title = "Idempotency key already used for a different request"


class RequestInProgress(Conflict):
    """A request with the same idempotency key is still being processed; retry shortly."""

    code = "request_in_progress"
    title = "A request with this Idempotency-Key is in progress"


class OutsideAvailability(RuleViolation):
    """The requested start is not one of the offered slots (hours, notice, advance, grid)."""

    code = "outside_availability"
    title = "That time is not offered"


class PaymentUnavailable(PaymentFailed):
    """The payment provider could not be reached or answered with an error; nothing was charged."""

    code = "payment_unavailable"
    title = "Payments are unavailable right now"


class CheckoutNotFound(PaymentFailed):
    """The payment provider does not know this checkout session (HTTP 404: e.g. a key change)."""

    code = "checkout_not_found"
    title = "Checkout not found"


class RefundExceedsCapture(Conflict):
    """A refund decision would make a payment's refunds exceed what it captured."""

    code = "refund_exceeds_capture"
    title = "Refund exceeds the payment"


class RefundFailed(PaymentFailed):
    code = "refund_failed"
    title = "The refund could not be issued"


class InvalidSignature(BadRequest):
    code = "invalid_signature"
    title = "Webhook signature verification failed"


class InvalidPayload(BadRequest):
    code = "invalid_payload"
    title = "Webhook payload could not be parsed"


class CalendarUnavailable(ExternalServiceError):
    """The external calendar failed or is switched off (breaker open); use the local schedule."""

    code = "calendar_unavailable"
    title = "External calendar unavailable"


class CalendarSlotTaken(ExternalServiceError):
    """The external calendar refused a booking because the time is taken there."""

    code = "calendar_slot_taken"
    title = "The external calendar already has a booking at that time"
