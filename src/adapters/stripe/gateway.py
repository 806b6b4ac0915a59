"""StripePaymentGateway: Checkout Sessions, refunds and webhook parsing through stripe.StripeClient.

Every stripe exception is translated into a booking_core error here, at the boundary; nothing
from the SDK crosses the port. Written against stripe-python 16 (StripeClient, ``v1`` services).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal, NoReturn, TypeVar

import stripe
from stripe.params import RefundCreateParams
from stripe.params.checkout import SessionCreateParams

from adapters.resilience import Bulkhead, BulkheadFull, CircuitBreaker, CircuitOpen
from adapters.stripe.events import parse_stripe_event
from booking_core.errors import (
    CheckoutNotFound,
    InvalidPayload,
    InvalidSignature,
    PaymentFailed,
    PaymentUnavailable,
    RefundFailed,
)
from booking_core.model import Money
from booking_core.ports import (
    CheckoutInfo,
    CheckoutRequest,
    CheckoutSession,
    CheckoutState,
    PaymentEvent,
    PaymentEventType,
    RefundRequest,
    RefundResult,
)

log = logging.getLogger(__name__)

# Stripe's own default, stated explicitly: older signatures are refused (replay protection).
WEBHOOK_TOLERANCE_SECONDS = 300

_RefundReason = Literal["duplicate", "fraudulent", "requested_by_customer"]
_REFUND_REASONS: dict[str, _RefundReason] = {
    "duplicate": "duplicate",
    "fraudulent": "fraudulent",
    "requested_by_customer": "requested_by_customer",
}
_STATES = {state.value: state for state in CheckoutState}

T = TypeVar("T")

# Answers that say Stripe itself is in trouble (count towards the breaker); any other answer,
# a 4xx refusal included, proves it is up.
_OUTAGES = (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError)


class StripePaymentGateway:
    """The PaymentGateway port on Stripe Checkout (mode ``payment``) and the Refunds API.

    ``base_url`` is the service's public address (success and cancel pages); ``api_base`` points
    the SDK at another Stripe-compatible server (STRIPE_API_BASE, used by the tests). ``timeout``
    is (connect, read) seconds per attempt; with ``max_network_retries`` the SDK retries connection
    errors, timeouts, 409 and 5xx answers with the same idempotency key (StripeClient's own
    default is no retry at all).

    ``bulkhead`` caps how many threads may wait on Stripe at once (beyond it a call fails at once
    with PaymentUnavailable, so a hanging Stripe cannot take every web thread); ``breaker`` stops
    calling for a cool-down after consecutive outages (connection errors, timeouts, 5xx, 429).
    """

    def __init__(
        self,
        *,
        api_key: str,
        webhook_secret: str,
        base_url: str,
        api_base: str | None = None,
        timeout: float | tuple[float, float] = (3.05, 10.0),
        max_network_retries: int = 2,
        bulkhead: Bulkhead | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("StripePaymentGateway needs an API key")
        if not webhook_secret:
            log.warning("no Stripe webhook secret configured: every webhook will be refused")
        # A module-level switch of the SDK (no per-client option exists). Set here, not at import,
        # so importing this module changes nothing; with it on, the SDK sends request timings to
        # Stripe and writes ~/.config/stripe/telemetry_id.
        stripe.enable_telemetry = False
        self._webhook_secret = webhook_secret
        # Live keys (sk_live_, rk_live_) see live events only; a test-mode event signed with
        # this endpoint's secret is refused, and the reverse (Stripe keeps the modes apart).
        self.livemode = api_key.startswith(("sk_live_", "rk_live_"))
        self._base_url = base_url.rstrip("/")
        self.bulkhead = bulkhead or Bulkhead(16)
        self.breaker = breaker or CircuitBreaker(threshold=5, cooldown=30.0)
        self._http = stripe.RequestsClient(timeout=timeout)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=max_network_retries,
            http_client=self._http,
        )

    def __repr__(self) -> str:
        return f"StripePaymentGateway(base_url={self._base_url!r})"

    def _guarded(self, action: str, call: Callable[[], T]) -> T:
        """Run one SDK call inside the bulkhead and the breaker.

        Raises PaymentUnavailable at once when the bulkhead is full or the breaker open; an SDK
        error is recorded on the breaker and re-raised for the caller to translate.
        """
        try:
            with self.bulkhead.slot():
                try:
                    self.breaker.allow()
                except CircuitOpen as exc:
                    raise PaymentUnavailable(
                        f"could not {action}: Stripe keeps failing, calls paused for "
                        f"{exc.retry_in:.0f} s"
                    ) from exc
                try:
                    result = call()
                except _OUTAGES:
                    if self.breaker.failure():
                        log.warning("stripe: breaker opened after repeated failures")
                    raise
                except stripe.StripeError:
                    self._recovered()
                    raise
                self._recovered()
                return result
        except BulkheadFull as exc:
            log.warning("stripe: %d calls already waiting; refusing to %s", exc.limit, action)
            raise PaymentUnavailable(
                f"could not {action}: too many calls to Stripe are waiting already"
            ) from exc

    def _recovered(self) -> None:
        if self.breaker.success():
            log.info("stripe: breaker closed, Stripe answers again")

    def close(self) -> None:
        """Close the HTTP connections kept open by the calling thread."""
        self._http.close()  # type: ignore[no-untyped-call]  # unannotated in stripe 16.1

    # -- checkout --------------------------------------------------------------------------------

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        """A hosted Checkout Session for one booking; the same idempotency key returns the same one.

        Raises PaymentUnavailable when Stripe fails, times out or refuses the request.
        """
        booking_ref = str(request.booking_id)
        params: SessionCreateParams = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": request.amount.currency,
                        "unit_amount": request.amount.amount,
                        "product_data": {"name": request.description},
                    },
                }
            ],
            "customer_email": request.customer_email,
            "client_reference_id": booking_ref,
            "metadata": {"booking_id": booking_ref},
            "payment_intent_data": {"metadata": {"booking_id": booking_ref}},
            # {CHECKOUT_SESSION_ID} is a literal placeholder Stripe fills in on redirect.
            "success_url": f"{self._base_url}/booking/success?session_id={{CHECKOUT_SESSION_ID}}",
            "cancel_url": f"{self._base_url}/booking/cancel",
            "expires_at": int(request.expires_at.timestamp()),
        }
        try:
            session = self._guarded(
                "create a checkout session",
                lambda: self._client.v1.checkout.sessions.create(
                    params, {"idempotency_key": request.idempotency_key}
                ),
            )
        except stripe.StripeError as exc:
            _raise_unavailable("create a checkout session", exc)
        if not session.url:
            raise PaymentUnavailable(f"Stripe returned checkout session {session.id} without a URL")
        return CheckoutSession(
            id=session.id,
            url=session.url,
            expires_at=datetime.fromtimestamp(session.expires_at, UTC),
        )

    def expire_checkout(self, session_id: str) -> CheckoutState:
        """End an open session; a session already complete or expired reports that state.

        Raises CheckoutNotFound for a session Stripe does not know (404), PaymentUnavailable on
        provider failure.
        """
        try:
            session = self._guarded(
                f"expire checkout session {session_id}",
                lambda: self._client.v1.checkout.sessions.expire(session_id),
            )
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                _log_stripe_error(f"expire checkout session {session_id}", exc)
                raise CheckoutNotFound(
                    f"Stripe does not know checkout session {session_id}"
                ) from exc
            # Stripe refuses (400) to expire a session that is no longer open; what it became
            # (complete: the customer paid; expired) is the answer the caller needs.
            state = self._state_of(session_id)
            if state is CheckoutState.OPEN:
                _raise_unavailable(f"expire checkout session {session_id}", exc)
            return state
        except stripe.StripeError as exc:
            _raise_unavailable(f"expire checkout session {session_id}", exc)
        return _checkout_state(session.status, session_id)

    def _state_of(self, session_id: str) -> CheckoutState:
        return self.retrieve_checkout(session_id).state

    def retrieve_checkout(self, session_id: str) -> CheckoutInfo:
        """The session as Stripe has it now; CheckoutNotFound for a 404, else PaymentUnavailable."""
        try:
            session = self._guarded(
                f"retrieve checkout session {session_id}",
                lambda: self._client.v1.checkout.sessions.retrieve(session_id),
            )
        except stripe.InvalidRequestError as exc:
            _log_stripe_error(f"retrieve checkout session {session_id}", exc)
            if exc.http_status == 404:
                raise CheckoutNotFound(
                    f"Stripe does not know checkout session {session_id}"
                ) from exc
            _raise_unavailable(f"retrieve checkout session {session_id}", exc)
        except stripe.StripeError as exc:
            _raise_unavailable(f"retrieve checkout session {session_id}", exc)
        raw = session.to_dict()
        try:
            booking_id = int(str((raw.get("metadata") or {}).get("booking_id")))
        except ValueError:
            booking_id = None
        amount, currency = raw.get("amount_total"), raw.get("currency")
        intent = raw.get("payment_intent")
        if isinstance(intent, dict):  # expanded
            intent = intent.get("id")
        return CheckoutInfo(
            id=session.id,
            state=_checkout_state(session.status, session_id),
            booking_id=booking_id,
            payment_status=raw.get("payment_status"),
            amount=Money(int(amount), str(currency)) if amount is not None and currency else None,
            payment_intent_id=str(intent) if intent else None,
        )

    # -- events ------------------------------------------------------------------------------------

    def recent_events(self, created_after: datetime, *, limit: int = 1000) -> list[PaymentEvent]:
        """``GET /v1/events`` created after ``created_after``, every page (newest first there),
        up to ``limit``; returned oldest first. Events we cannot read are skipped and logged."""
        found: list[PaymentEvent] = []
        starting_after: str | None = None
        while len(found) < limit:
            params: dict[str, object] = {
                "created": {"gt": int(created_after.timestamp())},
                "limit": 100,
                # Only what the core acts on: the account's other events are not ours to log.
                "types": [str(kind) for kind in PaymentEventType],
            }
            if starting_after is not None:
                params["starting_after"] = starting_after
            try:
                page = self._guarded(
                    "list recent events",
                    lambda: self._client.v1.events.list(params),  # type: ignore[arg-type]  # noqa: B023
                )
            except stripe.StripeError as exc:
                _raise_unavailable("list recent events", exc)
            for event in page.data:
                try:
                    found.append(parse_stripe_event(event.to_dict()))
                except (ValueError, TypeError, KeyError, AttributeError):
                    log.warning("stripe: skipping unreadable event %s", event.id)
            if not page.has_more or not page.data:
                break
            starting_after = page.data[-1].id
        return sorted(found[:limit], key=lambda e: e.created)

    # -- refunds ---------------------------------------------------------------------------------

    def refund(self, request: RefundRequest) -> RefundResult:
        """Refund ``request.amount`` of the payment; idempotent per key.

        Raises RefundFailed when Stripe refuses (more than is left, already refunded, unknown
        payment), PaymentUnavailable when it cannot be reached or fails.
        """
        params: RefundCreateParams = {
            "payment_intent": request.payment_intent_id,
            "amount": request.amount.amount,
            "metadata": {"booking_id": str(request.booking_id)},
        }
        reason = _REFUND_REASONS.get(request.reason)
        if reason is not None:
            params["reason"] = reason
        try:
            refund = self._guarded(
                f"refund booking {request.booking_id}",
                lambda: self._client.v1.refunds.create(
                    params, {"idempotency_key": request.idempotency_key}
                ),
            )
        except (stripe.InvalidRequestError, stripe.CardError, stripe.IdempotencyError) as exc:
            _log_stripe_error(f"refund booking {request.booking_id}", exc)
            raise RefundFailed(
                f"Stripe refused the refund for booking {request.booking_id}: {_refusal(exc)}"
            ) from exc
        except stripe.StripeError as exc:
            _raise_unavailable(f"refund booking {request.booking_id}", exc)
        return RefundResult(
            id=refund.id,
            amount=Money(refund.amount, refund.currency),
            status=str(refund.status or "pending"),
        )

    # -- webhooks --------------------------------------------------------------------------------

    def parse_event(self, payload: bytes, signature: str | None) -> PaymentEvent:
        """Verify ``Stripe-Signature`` over the raw body (300 s tolerance), then reduce the event.

        Raises InvalidSignature (missing, malformed, wrong or stale signature) or InvalidPayload
        (a correctly signed body that is not a Stripe event).
        """
        if not signature:
            raise InvalidSignature("the Stripe-Signature header is missing")
        # stripe-python only refuses timestamps older than the tolerance; one from the future
        # would let a captured signature be replayed for as long as its date is ahead of us.
        signed_at = _signed_at(signature)
        now = datetime.now(UTC).timestamp()
        if signed_at is not None and signed_at > now + WEBHOOK_TOLERANCE_SECONDS:
            raise InvalidSignature("the signature's timestamp is outside the tolerance")
        try:
            event = stripe.Webhook.construct_event(
                payload, signature, self._webhook_secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as exc:
            raise InvalidSignature(_signature_refusal(exc)) from exc
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # The signature was checked first: this is a signed body that is not an event
            # (JSONDecodeError is a ValueError; a JSON array fails to build as an event).
            raise InvalidPayload("the webhook body is not a Stripe event") from exc
        try:
            # StripeObject stopped being a dict in stripe 15; to_dict() gives plain JSON values.
            parsed = parse_stripe_event(event.to_dict())
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidPayload(f"the Stripe event is malformed: {type(exc).__name__}") from exc
        if parsed.livemode is not self.livemode:
            mode = "live" if parsed.livemode else "test"
            key_mode = "live" if self.livemode else "test"
            log.warning(
                "refused Stripe event %s (%s): a %s-mode event for a %s-mode key",
                parsed.id,
                parsed.type,
                mode,
                key_mode,
            )
            raise InvalidPayload(f"a {mode}-mode event does not belong to this {key_mode}-mode key")
        return parsed


def _signed_at(header: str) -> int | None:
    """The ``t=`` of a Stripe-Signature header; None when absent or not a number (the SDK
    then refuses the header as malformed)."""
    for part in header.split(","):
        key, _, value = part.partition("=")
        if key.strip() == "t":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _signature_refusal(exc: stripe.SignatureVerificationError) -> str:
    """A fixed description of why the SDK refused a signature (its own text stays out)."""
    text = str(exc.user_message or exc)
    if "tolerance" in text:
        return "the signature's timestamp is outside the tolerance"
    if "Unable to extract" in text or "expected scheme" in text:
        return "the Stripe-Signature header is malformed"
    return "the signature does not match the body"


def _checkout_state(status: str | None, session_id: str) -> CheckoutState:
    state = _STATES.get(status or "")
    if state is None:
        raise PaymentUnavailable(f"Stripe reports checkout session {session_id} as {status!r}")
    return state


# Short, fixed descriptions: Stripe's own messages can quote (masked) keys, so they stay out.
_KINDS: tuple[tuple[type[stripe.StripeError], str], ...] = (
    (stripe.APIConnectionError, "Stripe could not be reached or did not answer in time"),
    (stripe.AuthenticationError, "Stripe rejected the API key"),
    (stripe.PermissionError, "the API key may not do this"),
    (stripe.RateLimitError, "Stripe is rate limiting us"),
    (stripe.IdempotencyError, "the idempotency key was already used for other parameters"),
    (stripe.InvalidRequestError, "Stripe refused the request"),
    (stripe.APIError, "Stripe answered with a server error"),
)


def _describe(exc: stripe.StripeError) -> str:
    for kind, text in _KINDS:
        if isinstance(exc, kind):
            return text if exc.http_status is None else f"{text} (HTTP {exc.http_status})"
    return f"Stripe failed ({type(exc).__name__})"


def _log_stripe_error(action: str, exc: stripe.StripeError) -> None:
    log.warning(
        "stripe: could not %s: %s, status %s, code %s, request %s",
        action,
        type(exc).__name__,
        exc.http_status,
        exc.code,
        exc.request_id,
    )


def _raise_unavailable(action: str, exc: stripe.StripeError) -> NoReturn:
    _log_stripe_error(action, exc)
    if isinstance(exc, stripe.InvalidRequestError | stripe.IdempotencyError):
        # Not an outage: our request is wrong (a bug or a configuration problem). The caller
        # still gets PaymentUnavailable (nothing was charged), and the log says it loudly.
        log.error("stripe refused to %s: code %s, param %s", action, exc.code, _param(exc))
    error: PaymentFailed = PaymentUnavailable(f"could not {action}: {_describe(exc)}")
    raise error from exc


def _param(exc: stripe.StripeError) -> str | None:
    return exc.param if isinstance(exc, stripe.InvalidRequestError | stripe.CardError) else None


def _refusal(exc: stripe.StripeError) -> str:
    if isinstance(exc, stripe.IdempotencyError):
        return _describe(exc)
    # Refusals of a refund name amounts and object ids, never credentials.
    message = (exc.user_message or "").strip()[:300]
    code = exc.code or "refused"
    return f"{code}: {message}" if message else code
