"""RFC 5545 invitations built with icalendar: a stable UID per booking, SEQUENCE from the
booking, DTSTART/DTEND in the practitioner's zone with its VTIMEZONE."""

from __future__ import annotations

from datetime import datetime, timedelta

from booking_core.notifications import Notification, RecipientRole

PRODID = "-//Practitioner booking service//Bookings//EN"


def booking_uid(booking_id: int, domain: str) -> str:
    """The invitation's UID: the same for every mail about one booking, so calendars update
    (a move) or remove (a cancel) the event they already have."""
    return f"booking-{booking_id}@{domain}"


def invitation(notification: Notification, *, domain: str, stamp: datetime) -> bytes | None:
    """The ``text/calendar`` body for ``notification``, or None for a kind without one."""
    method = notification.kind.invitation_method
    if method is None:
        return None
    # Imported here: icalendar takes a tenth of a second to import, and only the worker sends
    # mails; web processes (bootstrap builds the notifier there too) should not boot slower.
    from icalendar import Calendar, Event, vCalAddress, vText

    booking, practitioner = notification.booking, notification.practitioner
    zone = practitioner.zone
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", method)
    event = Event()
    event.add("uid", booking_uid(booking.id or 0, domain))
    event.add("sequence", notification.sequence)
    event.add("dtstamp", stamp)
    event.add("dtstart", booking.start.astimezone(zone))
    event.add("dtend", booking.end.astimezone(zone))
    event.add("summary", f"{notification.service_name} with {practitioner.name}")
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    organizer = vCalAddress(f"mailto:{practitioner.email}")
    organizer.params["cn"] = vText(practitioner.name)
    event.add("organizer", organizer)
    attendee = vCalAddress(f"mailto:{booking.client.email}")
    attendee.params["cn"] = vText(booking.client.name)
    attendee.params["role"] = vText("REQ-PARTICIPANT")
    attendee.params["partstat"] = vText("ACCEPTED")
    event.add("attendee", attendee)
    if any(r.role is RecipientRole.CLIENT for r in notification.recipients):
        event.add("description", "Manage or cancel this booking from the link in the mail.")
    calendar.add_component(event)
    # The zone's rules around the booking only: a VTIMEZONE from 1970 would be most of the file.
    first = (booking.start - timedelta(days=400)).date()
    calendar.add_missing_timezones(
        first_date=first, last_date=(booking.end + timedelta(days=400)).date()
    )
    return bytes(calendar.to_ical())
