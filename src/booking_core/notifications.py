"""What happened to a booking, and who must be told: the core's notification values.

The core says *what* happened (a Notification: kind, booking, recipients); the email adapter says
it (templates, money and times formatted for the reader, the calendar invitation). Each recipient
gets a job of its own in the outbox, so a mail server failing for one never resends to another.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
from datetime import datetime, timedelta

from attrs import field, frozen

from booking_core.model import Booking, BookingStatus, Money, Practitioner
from booking_core.ports import UnitOfWork


class NotificationKind(enum.StrEnum):
    """What a mail is about; the outbox payload's ``template``."""

    CONFIRMED = "confirmed"
    RESCHEDULED = "rescheduled"
    CANCELLED = "cancelled"
    REMINDER = "reminder"
    MANAGE_LINK = "manage_link"  # a client asked for their links again (recovery)

    @property
    def invitation_method(self) -> str | None:
        """The RFC 5546 METHOD of the calendar invitation this kind carries, if any."""
        return {
            NotificationKind.CONFIRMED: "REQUEST",
            NotificationKind.RESCHEDULED: "REQUEST",
            NotificationKind.CANCELLED: "CANCEL",
        }.get(self)


class RecipientRole(enum.StrEnum):
    CLIENT = "client"
    PRACTITIONER = "practitioner"


# Which side hears of what: a practitioner has no use for a link recovery mail.
AUDIENCE: dict[NotificationKind, tuple[RecipientRole, ...]] = {
    NotificationKind.CONFIRMED: (RecipientRole.CLIENT, RecipientRole.PRACTITIONER),
    NotificationKind.RESCHEDULED: (RecipientRole.CLIENT, RecipientRole.PRACTITIONER),
    NotificationKind.CANCELLED: (RecipientRole.CLIENT, RecipientRole.PRACTITIONER),
    NotificationKind.REMINDER: (RecipientRole.CLIENT, RecipientRole.PRACTITIONER),
    NotificationKind.MANAGE_LINK: (RecipientRole.CLIENT,),
}


@frozen
class Recipient:
    """Someone to tell, and the IANA zone they read times in."""

    role: RecipientRole
    name: str
    email: str
    timezone: str


@frozen
class Notification:
    """One thing that happened to one booking, for ``recipients``.

    ``manage_token`` opens the booking for the client (see manage_link_token); it is set only
    when a client is among the recipients. ``refund`` is the amount going back on a cancellation
    (None when nothing is refunded).
    """

    kind: NotificationKind
    booking: Booking
    practitioner: Practitioner
    service_name: str
    recipients: tuple[Recipient, ...]
    manage_token: str | None = field(default=None, repr=False)
    refund: Money | None = None

    @property
    def sequence(self) -> int:
        """The invitation's SEQUENCE: the booking's, which each move and the cancel raise."""
        return self.booking.sequence


def recipient(role: RecipientRole, booking: Booking, practitioner: Practitioner) -> Recipient:
    """The client (in the zone they booked from, else the practitioner's) or the practitioner."""
    if role is RecipientRole.CLIENT:
        zone = booking.client.timezone or practitioner.timezone
        return Recipient(role, booking.client.name, booking.client.email, zone)
    return Recipient(role, practitioner.name, practitioner.email, practitioner.timezone)


def notification_for(
    kind: NotificationKind,
    booking: Booking,
    practitioner: Practitioner,
    roles: tuple[RecipientRole, ...],
    *,
    link_secret: bytes,
) -> Notification:
    """The notification of ``kind`` about ``booking`` for the recipients in ``roles``."""
    service = practitioner.service(booking.service_id)
    refund = None
    if kind is NotificationKind.CANCELLED and booking.refund is not None:
        refund = booking.refund.amount if booking.refund.amount.amount > 0 else None
    token = None
    if RecipientRole.CLIENT in roles:
        token = manage_link_token(link_secret, booking)
    return Notification(
        kind=kind,
        booking=booking,
        practitioner=practitioner,
        service_name=service.name if service is not None else "Appointment",
        recipients=tuple(recipient(role, booking, practitioner) for role in roles),
        manage_token=token,
        refund=refund,
    )


def still_relevant(kind: NotificationKind, booking: Booking, payload_start: str | None) -> bool:
    """False for a mail that would be stale when its job runs: a confirmation or reminder of a
    booking cancelled meanwhile, a reminder of a booking moved since (the move queued another),
    a link for a booking that no longer occupies the calendar."""
    confirmed_only = (NotificationKind.CONFIRMED, NotificationKind.REMINDER)
    if kind in confirmed_only and booking.status is not BookingStatus.CONFIRMED:
        return False
    if kind is NotificationKind.REMINDER and payload_start is not None:
        return datetime.fromisoformat(payload_start) == booking.start
    if kind is NotificationKind.MANAGE_LINK:
        return booking.occupies_calendar
    return True


# -- the manage link ----------------------------------------------------------------------------
#
# A signed link rather than a token minted per mail: the manage token is stored hashed, so the
# mail cannot repeat it; minting a new one per mail would either void the token the API answer
# gave (and every earlier mail's link) or need a table of tokens. The link token is an HMAC, under
# the service's secret, of the booking id and the stored token hash: the same for every mail of a
# booking (a retried mail job sends the same link), valid as long as the booking's manage token
# is, and useless without the secret even to someone who reads the database.


def manage_link_token(secret: bytes, booking: Booking) -> str:
    """The token the manage link carries for ``booking``; empty when it has no manage token."""
    if not secret or not booking.manage_token_hash:
        return ""
    message = f"manage:{booking.id}:{booking.manage_token_hash}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return "m1." + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def link_token_matches(secret: bytes, booking: Booking, token: str) -> bool:
    """Constant-time check of a manage link token."""
    expected = manage_link_token(secret, booking)
    return bool(expected) and hmac.compare_digest(expected.encode(), token.encode())


# -- enqueueing ---------------------------------------------------------------------------------


def enqueue_notification(
    uow: UnitOfWork,
    kind: NotificationKind,
    booking: Booking,
    run_at: datetime,
    *,
    unique_suffix: str | None = None,
) -> None:
    """Queue one mail job per recipient of ``kind`` (in this unit of work).

    With ``unique_suffix`` each job has a unique key built from it, so however often (and by
    however many processes) this is called, each recipient gets one job for it.
    """
    # Imported here: jobs imports this module for the handler.
    from booking_core.jobs import JobKind

    for role in AUDIENCE[kind]:
        payload: dict[str, object] = {
            "booking_id": booking.id,
            "template": kind.value,
            "to": role.value,
        }
        if kind is NotificationKind.REMINDER:
            payload["start"] = booking.start.isoformat()
        key = None
        if unique_suffix is not None:
            key = f"{kind.value}:{booking.id}:{role.value}:{unique_suffix}"
        uow.outbox.add(JobKind.EMAIL, payload, run_at, unique_key=key)


def enqueue_reminder(uow: UnitOfWork, booking: Booking, now: datetime, hours_before: int) -> None:
    """Queue the reminders of ``booking`` at its current start (once per start: the unique key
    names it, so a move queues new ones and the old ones find the booking moved)."""
    remind_at = booking.start - timedelta(hours=hours_before)
    if remind_at > now:
        enqueue_notification(
            uow,
            NotificationKind.REMINDER,
            booking,
            remind_at,
            unique_suffix=booking.start.isoformat(),
        )
