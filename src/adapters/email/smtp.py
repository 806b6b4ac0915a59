"""Senders: SMTP for real mail, a logging one for development (addresses masked)."""

from __future__ import annotations

import logging
import smtplib
import ssl
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from adapters.email.render import MailRenderer, RenderedMail
from booking_core.errors import ExternalServiceError
from booking_core.notifications import Notification

log = logging.getLogger(__name__)


def mask_email(address: str) -> str:
    """``jane.doe@example.com`` -> ``j***@example.com``: enough for support, not a leak."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


class LoggingNotifier:
    """Renders each mail (so a template error shows in development) and writes a line instead
    of sending it (no SMTP_URL configured)."""

    def __init__(self, renderer: MailRenderer | None = None) -> None:
        self.renderer = renderer or MailRenderer(base_url="http://localhost:3000")
        self.sent: list[RenderedMail] = []

    def notify(self, notification: Notification) -> None:
        for mail in self.renderer.render(notification, stamp=datetime.now(UTC)):
            self.sent.append(mail)
            log.info("email (not sent, no SMTP_URL) to %s: %s", mask_email(mail.to), mail.subject)


class SmtpNotifier:
    """Sends through an SMTP server given as ``smtp://user:pass@host:587`` or ``smtps://...:465``.

    ``smtp://`` upgrades with STARTTLS when the server offers it. Failures become
    ExternalServiceError so the outbox retries them.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        mail_from: str,
        renderer: MailRenderer,
        username: str | None = None,
        password: str | None = None,
        implicit_tls: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.mail_from = mail_from
        self.renderer = renderer
        self._username = username
        self._password = password
        self._implicit_tls = implicit_tls
        self._timeout = timeout

    @classmethod
    def from_url(cls, url: str, *, mail_from: str, renderer: MailRenderer) -> SmtpNotifier:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SMTP_URL must look like smtp://user:password@host:587")
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 587),
            mail_from=mail_from,
            renderer=renderer,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            implicit_tls=implicit,
        )

    def notify(self, notification: Notification) -> None:
        for mail in self.renderer.render(notification, stamp=datetime.now(UTC)):
            self._send(mail)

    def _send(self, mail: RenderedMail) -> None:
        message = mail.to_message(self.mail_from)
        try:
            if self._implicit_tls:
                context = ssl.create_default_context()
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self._timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self._timeout)
            with smtp:
                if not self._implicit_tls and smtp.has_extn("starttls"):
                    smtp.starttls(context=ssl.create_default_context())
                if self._username:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise ExternalServiceError(
                f"could not send mail through {self.host}:{self.port}: {type(exc).__name__}"
            ) from exc
        log.info("email sent to %s: %s", mask_email(mail.to), mail.subject)
