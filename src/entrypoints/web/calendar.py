"""Inbound Cal.com webhook: a practitioner who cancels in Cal.com cancels (and refunds) ours."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request

from adapters.calcom.webhooks import SIGNATURE_HEADER, verify_and_parse
from booking_core import usecases as uc
from entrypoints.web.common import check_webhook_body, deps
from entrypoints.web.openapi import WEBHOOK_RESPONSES, Header, operation

bp = Blueprint("calendar", __name__)
log = logging.getLogger(__name__)

_CANCELLED = "BOOKING_CANCELLED"


@bp.post("/api/webhooks/calcom")
@operation(
    "Cal.com webhook (X-Cal-Signature-256); BOOKING_CANCELLED cancels ours",
    raw_body=True,
    headers=(Header(name=SIGNATURE_HEADER, description="hex HMAC-SHA256 of the raw body",
                    required=True, schema={"type": "string", "minLength": 1}),),
    responses=WEBHOOK_RESPONSES,
)
def calcom_webhook() -> Response:
    """Verify ``X-Cal-Signature-256`` over the raw body, act once per delivery, answer 200.

    Without CALCOM_WEBHOOK_SECRET every delivery is refused (400 invalid_signature).
    """
    d = deps()
    payload = request.get_data(cache=False)
    signature = request.headers.get(SIGNATURE_HEADER)
    check_webhook_body(payload, signature)
    event = verify_and_parse(
        payload,
        signature,
        d.settings.calcom_webhook_secret or "",
    )
    if event.trigger_event == _CANCELLED and event.uid:
        outcome = uc.handle_calendar_cancellation(
            event.dedup_id, event.uid, uow=d.uow(), calendar=d.calendar, clock=d.clock
        )
    else:
        outcome = uc.PaymentOutcome.IGNORED
    log.info("Cal.com webhook %s -> %s", event.trigger_event, outcome,
             extra={"trigger": event.trigger_event, "outcome": outcome})
    return jsonify(received=True)
