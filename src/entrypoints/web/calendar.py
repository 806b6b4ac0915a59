"""Inbound Cal.com webhook: a practitioner who cancels in Cal.com cancels (and refunds) ours."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request

from booking_core import usecases as uc
from entrypoints.web.common import deps

bp = Blueprint("calendar", __name__)
log = logging.getLogger(__name__)

_CANCELLED = "BOOKING_CANCELLED"


@bp.post("/api/webhooks/calcom")
def calcom_webhook() -> Response:
    """Verify ``X-Cal-Signature-256`` over the raw body, act once per delivery, answer 200.

    Without CALCOM_WEBHOOK_SECRET every delivery is refused (400 invalid_signature).
    """
    d = deps()
    event = d.verify_calendar_webhook(request.get_data(cache=False), request.headers.get)
    if event.trigger_event == _CANCELLED and event.uid:
        outcome = uc.handle_calendar_cancellation(
            event.dedup_id, event.uid, uow=d.uow(), calendar=d.calendar, clock=d.clock
        )
    else:
        outcome = uc.PaymentOutcome.IGNORED
    log.info("Cal.com webhook %s -> %s", event.trigger_event, outcome,
             extra={"trigger": event.trigger_event, "outcome": outcome})
    return jsonify(received=True)
