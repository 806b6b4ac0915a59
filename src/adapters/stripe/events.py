"""Stripe webhook events without the SDK: reading one into the core's PaymentEvent, and the
signature scheme and event shape that stand-ins for Stripe (fakes, offline checkout) produce."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

from booking_core.errors import InvalidSignature
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
        refunded = None
        currency = obj.get("currency")
        if obj.get("object") == "charge" and obj.get("amount_refunded") is not None and currency:
            # charge.amount_refunded: everything refunded on the charge so far (partial or not).
            refunded = Money(int(str(obj["amount_refunded"])), str(currency))
        return PaymentEvent(
            id=event_id,
            type=kind,
            created=created,
            payment_intent_id=str(intent) if intent else None,
            refund_id=str(refund_id) if refund_id else None,
            refund_status=str(obj.get("status") or "") or None,
            refunded=refunded,
            livemode=livemode,
        )
    return PaymentEvent(id=event_id, type=kind, created=created, livemode=livemode)


# -- for stand-ins of Stripe (the test fake, the offline checkout) --------------------------------


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header (``t=...,v1=...``) computed as Stripe computes it."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def verify_signature(
    payload: bytes, header: str | None, secret: str, *, tolerance: int, now: float | None = None
) -> None:
    """Check a ``Stripe-Signature`` header against ``payload``, as Stripe's libraries do.

    Timestamps more than ``tolerance`` seconds away are refused on both sides: Stripe's own
    check bounds the past only, but a body signed for the future is as suspect as a replay.
    Raises InvalidSignature.
    """
    if not header:
        raise InvalidSignature("missing signature header")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError) as exc:
        raise InvalidSignature("malformed signature header") from exc
    expected = sign_payload(payload, secret, timestamp).split("v1=")[1]
    if not hmac.compare_digest(expected, parts.get("v1", "")):
        raise InvalidSignature("signature does not match")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise InvalidSignature("signature timestamp is outside the tolerance")


def checkout_session_event(
    *,
    event_id: str,
    event_type: str,
    session_id: str,
    booking_id: int,
    amount: Money,
    status: str,
    payment_intent_id: str | None,
    created: int | None = None,
) -> bytes:
    """The body Stripe POSTs to the webhook for a Checkout Session event (the fields we read).

    ``created`` is the event's time in Unix seconds (default now).
    """
    body = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": int(time.time()) if created is None else created,
        "livemode": False,
        "data": {
            "object": {
                "id": session_id,
                "object": "checkout.session",
                "amount_total": amount.amount,
                "currency": amount.currency,
                "client_reference_id": str(booking_id),
                "metadata": {"booking_id": str(booking_id)},
                "payment_intent": payment_intent_id,
                "payment_status": "paid" if status == "complete" else "unpaid",
                "status": status,
            }
        },
    }
    return json.dumps(body).encode()
