"""Sending e-mail over SMTP (stdlib smtplib, in a thread), and building the messages.

Every notification e-mail has a ``Message-ID`` derived from its outbox event id: should a
crash between the SMTP server's acceptance and the outbox update send one twice (delivery is
at-least-once), the two copies carry the same id, which mail systems use to drop duplicates.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol

from carnet.notify.messages import Text
from carnet.settings import Settings


class DeliveryError(Exception):
    """A delivery failed. ``permanent``: retrying will not help (the address is refused)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...

    async def close(self) -> None: ...


def message_id(event_id: str, sender: str) -> str:
    domain = sender.rpartition("@")[2] or "localhost"
    return f"<notification.{event_id}@{domain}>"


def build_message(text: Text, *, event_id: str, sender: str, to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = text.subject
    msg["Message-ID"] = message_id(event_id, sender)
    msg["Date"] = formatdate(usegmt=True)
    msg["Content-Language"] = "fr, en"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text.body, charset="utf-8")
    return msg


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "recipient refused: " + "; ".join(
            f"{code} {err.decode(errors='replace') if isinstance(err, bytes) else err}"
            for code, err in exc.recipients.values()
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        err = exc.smtp_error
        text = err.decode(errors="replace") if isinstance(err, bytes) else str(err)
        return f"{type(exc).__name__}: {exc.smtp_code} {text}"
    return f"{type(exc).__name__}: {exc}"


def _is_permanent(exc: BaseException) -> bool:
    """Refusals of this message or address (5xx), not of the server or of our credentials."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPDataError):
        return exc.smtp_code >= 500
    return False


class SmtpMailer:
    """One SMTP connection kept open across messages, reopened after any error."""

    def __init__(self, settings: Settings, *, timeout: float = 30.0) -> None:
        if not settings.smtp_host:
            raise ValueError("no SMTP server configured (CARNET_SMTP_HOST)")
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.starttls = settings.smtp_starttls
        self.user = settings.smtp_user
        self.password = settings.smtp_password
        self.timeout = timeout
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self.user:
                smtp.login(self.user, self.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    def _send(self, message: EmailMessage) -> None:
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            else:
                try:
                    self._smtp.rset()  # still there? (servers drop idle connections)
                except (smtplib.SMTPException, OSError):
                    self._drop()
                    self._smtp = self._connect()
            self._smtp.send_message(message)
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            self._drop()
            raise DeliveryError(_describe(exc), permanent=_is_permanent(exc)) from exc

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._send, message)

    async def close(self) -> None:
        await asyncio.to_thread(self._drop)
