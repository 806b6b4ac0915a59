"""The inbound Cal.com webhook verifier: HMAC over the raw body, then a reduced event."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from adapters.calcom import CalcomWebhookEvent, verify_and_parse
from booking_core.errors import InvalidPayload, InvalidSignature

SECRET = "whsec-calcom-test-secret"


def signed(body: dict[str, object] | bytes) -> tuple[bytes, str]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    # What Cal.com's sendPayload.ts does: createHmac("sha256", secret).update(body).digest("hex")
    return raw, hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()


CANCELLED = {
    "triggerEvent": "BOOKING_CANCELLED",
    "createdAt": "2030-01-07T10:00:00.000Z",
    "payload": {
        "uid": "fakecal001001uid",
        "bookingId": 1001,
        "startTime": "2030-01-08T08:30:00Z",
        "endTime": "2030-01-08T09:30:00Z",
        "cancellationReason": "I am no longer able to attend this session.",
        "status": "CANCELLED",
        "metadata": {"booking_id": "42", "videoCallUrl": "https://app.example.com/video/x"},
    },
}


def test_a_signed_cancellation_is_parsed() -> None:
    raw, signature = signed(CANCELLED)
    event = verify_and_parse(raw, signature, SECRET)
    assert isinstance(event, CalcomWebhookEvent)
    assert event.trigger_event == "BOOKING_CANCELLED"
    assert event.uid == "fakecal001001uid"
    assert event.booking_id == 42
    assert event.status == "CANCELLED"
    assert event.cancellation_reason == "I am no longer able to attend this session."
    assert event.created_at == datetime(2030, 1, 7, 10, 0, tzinfo=UTC)
    assert event.dedup_id.startswith("calcom:")


def test_dedup_id_is_stable_across_redeliveries_and_differs_per_event() -> None:
    raw, signature = signed(CANCELLED)
    # The same event re-serialised (key order, spacing) is the same delivery.
    again = json.dumps(CANCELLED, indent=2, sort_keys=True).encode()
    again_signature = signed(again)[1]
    first = verify_and_parse(raw, signature, SECRET)
    assert verify_and_parse(again, again_signature, SECRET).dedup_id == first.dedup_id
    other = {**CANCELLED, "triggerEvent": "BOOKING_CREATED"}
    assert verify_and_parse(*signed(other), SECRET).dedup_id != first.dedup_id


def test_an_explicit_event_id_is_used_for_dedup() -> None:
    event = verify_and_parse(*signed({**CANCELLED, "id": "evt_123"}), SECRET)
    assert event.dedup_id == "calcom:evt_123"


def test_without_uid_or_created_at_the_body_hash_is_the_dedup_id() -> None:
    body = {"triggerEvent": "MEETING_ENDED", "payload": {}}
    raw, signature = signed(body)
    event = verify_and_parse(raw, signature, SECRET)
    assert event.dedup_id == "calcom:" + hashlib.sha256(raw).hexdigest()[:40]
    assert event.uid is None
    assert event.booking_id is None


def test_rescheduled_event_carries_both_uids() -> None:
    body = {
        "triggerEvent": "BOOKING_RESCHEDULED",
        "createdAt": "2030-01-07T11:00:00Z",
        "payload": {
            "uid": "new-uid",
            "rescheduleUid": "previous-uid",
            "metadata": {"booking_id": 42},
            "status": "ACCEPTED",
        },
    }
    event = verify_and_parse(*signed(body), SECRET)
    assert (event.uid, event.reschedule_uid, event.booking_id) == ("new-uid", "previous-uid", 42)


@pytest.mark.parametrize(
    "header",
    [None, "", "no-secret-provided", "0" * 64, "sha256=abc", "é" * 64],
    ids=["missing", "empty", "no-secret", "zeros", "prefixed", "non-ascii"],
)
def test_bad_or_missing_signature_is_refused(header: str | None) -> None:
    raw, _ = signed(CANCELLED)
    with pytest.raises(InvalidSignature):
        verify_and_parse(raw, header, SECRET)


def test_a_body_changed_after_signing_is_refused() -> None:
    raw, signature = signed(CANCELLED)
    with pytest.raises(InvalidSignature):
        verify_and_parse(raw.replace(b"42", b"43"), signature, SECRET)


def test_without_a_configured_secret_nothing_is_accepted() -> None:
    raw = json.dumps(CANCELLED).encode()
    with pytest.raises(InvalidSignature):
        verify_and_parse(raw, hmac.new(b"", raw, hashlib.sha256).hexdigest(), "")


def test_signature_header_case_and_whitespace_are_tolerated() -> None:
    raw, signature = signed(CANCELLED)
    assert verify_and_parse(raw, f" {signature.upper()} ", SECRET).uid == "fakecal001001uid"


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'{"payload": {}}',
        b'{"triggerEvent": "BOOKING_CREATED", "payload": [1]}',
    ],
    ids=["not-json", "not-utf8", "array", "no-trigger", "payload-not-object"],
)
def test_a_signed_but_malformed_body_is_invalid_payload(raw: bytes) -> None:
    with pytest.raises(InvalidPayload):
        verify_and_parse(*signed(raw), SECRET)
