"""Inbound Cal.com webhooks: verify ``X-Cal-Signature-256`` over the raw body, then parse.

Cal.com signs the exact body it sends: lowercase hex HMAC-SHA256 with the webhook secret, no
timestamp and no ``sha256=`` prefix (Cal.com's sendPayload.ts). There is no replay protection
and no event id, so ``dedup_id`` is derived from what identifies a delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from attrs import field, frozen

from booking_core.errors import InvalidPayload, InvalidSignature

SIGNATURE_HEADER = "X-Cal-Signature-256"


@frozen
class CalcomWebhookEvent:
    """A verified Cal.com webhook, reduced to what the booking service acts on.

    ``uid`` is the Cal.com booking uid (the *new* one for BOOKING_RESCHEDULED, whose old uid is
    ``reschedule_uid``); ``booking_id`` is ours, from the metadata we set at creation, if present;
    ``dedup_id`` is stable across redeliveries of the same event ("calcom:" + hex).
    """

    trigger_event: str
    dedup_id: str
    uid: str | None = None
    booking_id: int | None = None
    reschedule_uid: str | None = None
    status: str | None = None
    cancellation_reason: str | None = None
    created_at: datetime | None = None
    start: datetime | None = None  # payload.startTime: the (new) start, an aware instant
    payload: Mapping[str, Any] = field(factory=dict, repr=False)


def sign(raw_body: bytes, secret: str) -> str:
    """The signature Cal.com sends for ``raw_body`` (for tests and the fake server)."""
    return hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()


def verify_and_parse(
    raw_body: bytes, signature_header: str | None, secret: str
) -> CalcomWebhookEvent:
    """Check the signature (constant time) before reading the body, then parse it.

    Raises InvalidSignature when the secret is not configured or the header is missing or wrong
    (Cal.com sends the literal ``no-secret-provided`` when its side has no secret), and
    InvalidPayload when the verified body is not a Cal.com webhook object.
    """
    if not secret:
        raise InvalidSignature("no Cal.com webhook secret is configured")
    if not signature_header:
        raise InvalidSignature(f"missing {SIGNATURE_HEADER} header")
    expected = sign(raw_body, secret).encode()
    given = signature_header.strip().lower().encode("utf-8", "replace")
    if not hmac.compare_digest(expected, given):
        raise InvalidSignature("Cal.com webhook signature does not match")
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidPayload("Cal.com webhook body is not JSON") from exc
    if not isinstance(body, dict):
        raise InvalidPayload("Cal.com webhook body is not a JSON object")
    trigger = body.get("triggerEvent")
    payload = body.get("payload")
    if not isinstance(trigger, str) or not trigger:
        raise InvalidPayload("Cal.com webhook has no triggerEvent")
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise InvalidPayload("Cal.com webhook payload is not an object")
    created_text = body.get("createdAt")
    return CalcomWebhookEvent(
        trigger_event=trigger,
        dedup_id=_dedup_id(body, trigger, payload, raw_body),
        uid=_text(payload.get("uid")),
        booking_id=_our_booking_id(payload.get("metadata")),
        reschedule_uid=_text(payload.get("rescheduleUid")),
        status=_text(payload.get("status")),
        cancellation_reason=_text(payload.get("cancellationReason")),
        created_at=_instant(created_text),
        start=_instant(_iso_z(payload.get("startTime"))),
        payload=payload,
    )


def _text(value: object) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def _iso_z(value: object) -> object:
    # Cal.com writes UTC as "...Z"; fromisoformat reads it from 3.11 on, this keeps it explicit.
    if isinstance(value, str) and value.endswith("Z"):
        return value[:-1] + "+00:00"
    return value


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _our_booking_id(metadata: object) -> int | None:
    if not isinstance(metadata, dict):
        return None
    value = metadata.get("booking_id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _dedup_id(
    body: Mapping[str, Any], trigger: str, payload: Mapping[str, Any], raw_body: bytes
) -> str:
    """The delivery's own id when it has one, else a hash of what identifies the event."""
    for candidate in (body.get("id"), body.get("webhookEventId"), payload.get("webhookEventId")):
        if isinstance(candidate, str | int) and not isinstance(candidate, bool) and str(candidate):
            return f"calcom:{candidate}"
    uid = _text(payload.get("uid"))
    created = _text(body.get("createdAt"))
    # Cal.com sends no delivery id: dedupe on (triggerEvent, payload.uid, createdAt), else on
    # the body itself.
    basis = f"{trigger}\n{uid}\n{created}".encode() if uid and created else raw_body
    return "calcom:" + hashlib.sha256(basis).hexdigest()[:40]
