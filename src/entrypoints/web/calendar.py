"""Inbound Cal.com webhook: a practitioner who cancels in Cal.com cancels (and refunds) ours;
a move there moves ours."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request

from booking_core import usecases as uc
from entrypoints.web.common import check_webhook_body, deps
from entrypoints.web.openapi import WEBHOOK_RESPONSES, Header, operation

bp = Blueprint("calendar", __name__)
log = logging.getLogger(__name__)

_CANCELLED = "BOOKING_CANCELLED"
_RESCHEDULED = "BOOKING_RESCHEDULED"
SIGNATURE_HEADER = "X-Cal-Signature-256"  # Cal.com's name for the body's HMAC-SHA256


@bp.post("/api/webhooks/calcom")
@operation(
    "Cal.com webhook (X-Cal-Signature-256); BOOKING_CANCELLED cancels ours, "
    "BOOKING_RESCHEDULED moves it (or parks the move for an admin when the time is taken)",
    raw_body=True,
    headers=(
        Header(
            name=SIGNATURE_HEADER,
            description="hex HMAC-SHA256 of the raw body",
            required=True,
            schema={"type": "string", "minLength": 1},
        ),
    ),
    responses=WEBHOOK_RESPONSES,
)
def calcom_webhook() -> Response:
    """Verify ``X-Cal-Signature-256`` over the raw body, act once per delivery, answer 200.

    Without CALCOM_WEBHOOK_SECRET every delivery is refused (400 invalid_signature).
    """
    d = deps()
    payload = request.get_data(cache=False)
    check_webhook_body(payload, request.headers.get(SIGNATURE_HEADER))
    event = d.verify_calendar_webhook(payload, request.headers.get)
    if event.trigger_event == _CANCELLED and event.uid:
        outcome = uc.handle_calendar_cancellation(
            event.dedup_id, event.uid, uow=d.uow(), calendar=d.calendar, clock=d.clock
        )
    elif (
        event.trigger_event == _RESCHEDULED
        and event.uid
        and event.reschedule_uid
        and event.start is not None
    ):
        outcome = uc.handle_calendar_reschedule(
            event.dedup_id,
            event.reschedule_uid,
            event.uid,
            event.start,
            uow=d.uow(),
            calendar=d.calendar,
            clock=d.clock,
            rules=d.rules,
        )
    else:
        outcome = uc.PaymentOutcome.IGNORED
    log.info(
        "Cal.com webhook %s -> %s",
        event.trigger_event,
        outcome,
        extra={"trigger": event.trigger_event, "outcome": outcome},
    )
    return jsonify(received=True)
