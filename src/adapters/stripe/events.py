"""Stripe webhook events (decoded JSON) reduced to the core's PaymentEvent; no SDK needed."""

from __future__ import annotations

from datetime import UTC, datetime

from booking_core.model import Money
from booking_core.ports import PaymentEvent


def parse_stripe_event(body: dict[str, object]) -> PaymentEvent:
    """Reduce a Stripe event (as a JSON dict) to the core's PaymentEvent.

    Used by StripePaymentGateway on the SDK's verified event and by the fakes that stand in
    for Stripe, so both read an event the same way.
    Raises KeyError/TypeError/ValueError on a malformed body.
    """
    data = body["data"]
    if not isinstance(data, dict):
        raise TypeError("data must be an object")
    obj = data["object"]
    if not isinstance(obj, dict):
        raise TypeError("data.object must be an object")
    kind = str(body["type"])
    try:
        created = datetime.fromtimestamp(int(str(body["created"])), UTC)
    except (OverflowError, OSError) as exc:  # a timestamp no calendar has
        raise ValueError("created is out of range") from exc
    event_id = str(body["id"])
    livemode = bool(body.get("livemode", False))
    if obj.get("object") == "checkout.session":
        metadata = obj.get("metadata") or {}
        booking_ref = (
            metadata.get("booking_id") if isinstance(metadata, dict) else None
        ) or obj.get("client_reference_id")
        amount = obj.get("amount_total")
        currency = obj.get("currency")
        intent = obj.get("payment_intent")
        if isinstance(intent, dict):
            intent = intent.get("id")
        return PaymentEvent(
            id=event_id,
            type=kind,
            created=created,
            session_id=str(obj["id"]),
            # Not ours (another integration on the same Stripe account): no booking, not an error.
            booking_id=int(str(booking_ref)) if str(booking_ref or "").isdigit() else None,
            payment_status=str(obj.get("payment_status") or "") or None,
            amount=Money(int(amount), str(currency)) if amount is not None and currency else None,
            payment_intent_id=str(intent) if intent else None,
            livemode=livemode,
        )
    if obj.get("object") in ("refund", "charge"):
        intent = obj.get("payment_intent")
        refund_id = obj.get("id") if obj.get("object") == "refund" else None
        return PaymentEvent(
            id=event_id,
            type=kind,
            created=created,
            payment_intent_id=str(intent) if intent else None,
            refund_id=str(refund_id) if refund_id else None,
            refund_status=str(obj.get("status") or "") or None,
            livemode=livemode,
        )
    return PaymentEvent(id=event_id, type=kind, created=created, livemode=livemode)
