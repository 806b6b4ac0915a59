"""Mail text from templates: one text and one HTML template per recipient role, money formatted
for its currency and the mail's locale (Babel), times in the recipient's own zone."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from attrs import frozen
from babel.dates import format_datetime
from babel.numbers import format_currency
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from adapters.email.invitation import invitation
from booking_core.model import Money
from booking_core.notifications import (
    Notification,
    NotificationKind,
    Recipient,
    RecipientRole,
)

SUBJECTS: dict[RecipientRole, dict[NotificationKind, str]] = {
    RecipientRole.CLIENT: {
        NotificationKind.CONFIRMED: "Your appointment is confirmed",
        NotificationKind.RESCHEDULED: "Your appointment has moved",
        NotificationKind.CANCELLED: "Your appointment is cancelled",
        NotificationKind.REMINDER: "Reminder: your appointment is coming up",
        NotificationKind.MANAGE_LINK: "Your booking link",
        NotificationKind.AWAITING_APPROVAL: "Your request awaits the practitioner's approval",
        NotificationKind.APPROVED: "Your appointment was approved: please pay to confirm it",
        NotificationKind.DECLINED: "Your appointment request was declined",
        NotificationKind.APPROVAL_EXPIRED: "Your appointment request was not approved in time",
    },
    RecipientRole.PRACTITIONER: {
        NotificationKind.CONFIRMED: "New booking: {client} on {when}",
        NotificationKind.RESCHEDULED: "Booking moved: {client}, now {when}",
        NotificationKind.CANCELLED: "Booking cancelled: {client} on {when}",
        NotificationKind.REMINDER: "Coming up: {client} on {when}",
        NotificationKind.MANAGE_LINK: "Booking link sent to {client}",
        NotificationKind.AWAITING_APPROVAL: "Approval needed: {client} on {when}",
    },
}


def format_money(money: Money, locale: str) -> str:
    """``£90.00``, ``¥12,000`` (no decimals: JPY has none), ``KWD1.500``, in ``locale``."""
    value = Decimal(money.amount).scaleb(-money.minor_digits)
    return str(format_currency(value, money.currency.upper(), locale=locale))


def format_when(instant: datetime, zone: str, locale: str) -> str:
    """``Thursday 10 January 2030 at 10:00 GMT``: the instant in the reader's zone."""
    return str(
        format_datetime(instant, "EEEE d MMMM y, HH:mm", tzinfo=ZoneInfo(zone), locale=locale)
    )


def manage_url(base_url: str, booking_id: int, token: str) -> str:
    """The client's manage page: ``{BASE_URL}/manage/{booking_id}?token=...``."""
    return f"{base_url.rstrip('/')}/manage/{booking_id}?token={quote(token, safe='')}"


@frozen
class RenderedMail:
    """One recipient's mail, ready for SMTP (or the log)."""

    to: str
    subject: str
    text: str
    html: str
    calendar: bytes | None  # the invitation, for kinds that carry one
    method: str | None

    def to_message(self, mail_from: str) -> EmailMessage:
        """multipart/mixed: the text and HTML as alternatives (with the invitation as a third
        alternative, where calendar clients look for it) and the invitation as invite.ics."""
        message = EmailMessage()
        message["From"] = mail_from
        message["To"] = self.to
        message["Subject"] = self.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=mail_from.rpartition("@")[2] or None)
        message.set_content(self.text)
        message.add_alternative(self.html, subtype="html")
        if self.calendar is not None:
            message.add_alternative(
                self.calendar.decode(), subtype="calendar", params={"method": self.method or ""}
            )
            message.add_attachment(
                self.calendar,
                maintype="application",
                subtype="ics",
                filename="invite.ics",
            )
        return message


class MailRenderer:
    """Turns a Notification into one RenderedMail per recipient."""

    def __init__(self, *, base_url: str, locale: str = "en_GB") -> None:
        self.base_url = base_url.rstrip("/")
        self.locale = locale
        self.domain = urlsplit(self.base_url).hostname or "localhost"
        self._env = Environment(
            loader=PackageLoader("adapters.email", "templates"),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def render(self, notification: Notification, *, stamp: datetime) -> list[RenderedMail]:
        calendar = invitation(notification, domain=self.domain, stamp=stamp)
        return [
            self._one(notification, recipient, calendar) for recipient in notification.recipients
        ]

    def _one(
        self, notification: Notification, recipient: Recipient, calendar: bytes | None
    ) -> RenderedMail:
        booking = notification.booking
        when = format_when(booking.start, recipient.timezone, self.locale)
        link = None
        if recipient.role is RecipientRole.CLIENT and notification.manage_token:
            link = manage_url(self.base_url, booking.id or 0, notification.manage_token)
        context = {
            "kind": notification.kind.value,
            "recipient": recipient,
            "client": booking.client,
            "practitioner": notification.practitioner,
            "service": notification.service_name,
            "booking_id": booking.id,
            "when": when,
            "ends": format_when(booking.end, recipient.timezone, self.locale),
            "zone": recipient.timezone,
            "price": format_money(booking.price, self.locale),
            "refund": (
                format_money(notification.refund, self.locale) if notification.refund else None
            ),
            "manage_url": link,
            "checkout_url": notification.checkout_url,
            "notes": booking.notes,
        }
        subject = SUBJECTS[recipient.role][notification.kind].format(
            client=booking.client.name, when=when
        )
        role = recipient.role.value
        return RenderedMail(
            to=recipient.email,
            subject=subject,
            text=self._env.get_template(f"{role}.txt").render(context),
            html=self._env.get_template(f"{role}.html").render(subject=subject, **context),
            calendar=calendar,
            method=notification.kind.invitation_method,
        )
