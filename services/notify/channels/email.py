"""Email over SMTP with the standard library, in a worker thread so the event loop never blocks.

Each message carries ``Message-ID: <notification id@gridwork>`` (the same on every retry, so a
mailbox or a filter can drop repeats) and a ``Gridwork-Notification`` header.
"""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from email.utils import format_datetime

from shared.events import now

from ..settings import NotifySettings
from .base import Address, DeliveryError, Message


def build_email(message: Message, sender: str, to: str) -> EmailMessage:
    """The MIME message: plain UTF-8 text, the title as subject."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = message.title
    mail["Date"] = format_datetime(now())
    mail["Message-ID"] = f"<{message.notification_id}@gridwork>"
    mail["Gridwork-Notification"] = message.notification_id
    if message.urgent:
        mail["X-Priority"] = "1"
    mail.set_content(message.text)
    return mail


class EmailSender:
    name = "email"

    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings

    def _send_blocking(self, mail: EmailMessage) -> None:
        s = self.settings
        with smtplib.SMTP(s.notify_smtp_host, s.notify_smtp_port, timeout=s.notify_send_timeout_seconds) as smtp:
            if s.notify_smtp_starttls:
                smtp.starttls()
            if s.notify_smtp_user:
                smtp.login(s.notify_smtp_user, s.notify_smtp_password or "")
            smtp.send_message(mail)

    async def send(self, message: Message, address: Address) -> None:
        if not address.email:
            raise DeliveryError("email: recipient has no address", permanent=True, tried=False)
        mail = build_email(message, self.settings.notify_smtp_from, address.email)
        try:
            await asyncio.to_thread(self._send_blocking, mail)
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryError("email: recipient address refused", permanent=True) from None
        except smtplib.SMTPResponseException as err:
            # 5xx: the server will never take it; 4xx: try again later.
            raise DeliveryError(f"email: SMTP {err.smtp_code}", permanent=500 <= err.smtp_code < 600) from None
        except (TimeoutError, smtplib.SMTPException, OSError) as err:
            raise DeliveryError(f"email: {type(err).__name__}") from None
