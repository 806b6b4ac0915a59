"""Email notifiers: what the core says happened, told by mail (Jinja text and HTML, Babel money
and times, an icalendar invitation), sent by SMTP or, without SMTP_URL, logged (addresses
masked)."""

from adapters.email.invitation import invitation
from adapters.email.render import MailRenderer, RenderedMail, format_money, manage_url
from adapters.email.smtp import LoggingNotifier, SmtpNotifier, mask_email

__all__ = [
    "LoggingNotifier",
    "MailRenderer",
    "RenderedMail",
    "SmtpNotifier",
    "format_money",
    "invitation",
    "manage_url",
    "mask_email",
]
