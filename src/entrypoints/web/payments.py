"""Payment views: the Stripe webhook (the offline checkout's pages live in entrypoints.dev)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request

from booking_core import usecases as uc
from booking_core.errors import BookingError
from entrypoints.metrics import WEBHOOK_EVENTS
from entrypoints.web.common import check_webhook_body, deps
from entrypoints.web.openapi import WEBHOOK_RESPONSES, Header, operation

bp = Blueprint("payments", __name__)
log = logging.getLogger(__name__)


@bp.post("/api/webhooks/stripe")
@operation(
    "Stripe events (signed with Stripe-Signature)",
    raw_body=True,
    headers=(
        Header(
            name="Stripe-Signature",
            description="t=<unix time>,v1=<HMAC-SHA256>",
            required=True,
            schema={"type": "string", "minLength": 1},
        ),
    ),
    responses=WEBHOOK_RESPONSES,
)
def stripe_webhook() -> Response:
    """Verify the raw body's signature, apply the event once, answer 200 quickly.

    The body is read as bytes and never re-serialised (the signature covers the exact bytes).
    Nothing outbound happens here: refunds and calendar sync go to the outbox.
    """
    d = deps()
    payload = request.get_data(cache=False)
    signature = request.headers.get("Stripe-Signature")
    try:
        check_webhook_body(payload, signature)
        event = d.payments.parse_event(payload, signature)
    except BookingError as refused:  # a bad signature or payload: counted, then a problem
        WEBHOOK_EVENTS.labels(type="unverified", outcome=refused.code).inc()
        raise
    outcome = uc.handle_payment_event(
        event, uow=d.uow(), calendar=d.calendar, clock=d.clock, rules=d.rules
    )
    WEBHOOK_EVENTS.labels(type=event.type, outcome=outcome).inc()
    return jsonify(received=True)
