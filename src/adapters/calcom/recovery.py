"""Recovery lookups: after a lost answer, find what an earlier attempt already did in Cal.com.

A booking creation or reschedule is never retried blindly (it could book twice); when Cal.com
then says "taken" or "rescheduled already", these lookups find our own booking there instead.
Best effort: a failed lookup is None, and the caller reports the original refusal.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from adapters.calcom.client import CalcomClient, utc_text
from booking_core.errors import CalendarUnavailable
from booking_core.ports import CalendarBookingRequest


def find_own_booking(
    client: CalcomClient, request: CalendarBookingRequest, *, version: str
) -> str | None:
    """Our booking (metadata.booking_id) at that start in Cal.com, or None; best effort."""
    params: dict[str, str] = {
        "attendeeEmail": request.client.email,
        "afterStart": utc_text(request.start),
        "beforeEnd": utc_text(request.end),
    }
    if request.link.event_type_id is not None:
        params["eventTypeId"] = str(request.link.event_type_id)
    try:
        answer = client.call(
            "booking lookup",
            "GET",
            "/bookings",
            version=version,
            params=params,
            idempotent=True,
        )
    except CalendarUnavailable:
        return None
    items = answer.data if answer.status == 200 else None
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        metadata = item.get("metadata")
        ours = isinstance(metadata, dict) and metadata.get("booking_id") == str(request.booking_id)
        live = str(item.get("status", "")).lower() in ("accepted", "pending")
        if ours and live and same_instant(item.get("start"), request.start):
            uid = item.get("uid")
            if isinstance(uid, str) and uid:
                return uid
    return None


def rescheduled_to(
    client: CalcomClient, uid: str, new_start: datetime, *, version: str
) -> str | None:
    """The booking ``uid`` was moved to, when it starts at ``new_start`` (an earlier
    reschedule whose answer was lost), or None; best effort."""
    try:
        answer = client.call(
            "booking lookup",
            "GET",
            f"/bookings/{quote(uid, safe='')}",
            version=version,
            idempotent=True,
        )
    except CalendarUnavailable:
        return None
    data = answer.data if answer.status == 200 else None
    moved = data.get("rescheduledToUid") if isinstance(data, dict) else None
    if not isinstance(moved, str) or not moved:
        return None
    try:
        target = client.call(
            "booking lookup",
            "GET",
            f"/bookings/{quote(moved, safe='')}",
            version=version,
            idempotent=True,
        )
    except CalendarUnavailable:
        return None
    data = target.data if target.status == 200 else None
    if isinstance(data, dict) and same_instant(data.get("start"), new_start):
        return moved
    return None


def same_instant(text: object, moment: datetime) -> bool:
    if not isinstance(text, str):
        return False
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return False
    return parsed.tzinfo is not None and parsed == moment
