"""SMTP out: the standard library's `smtplib`, run in a worker thread so the event loop
(which also serves HTTP and the bus) never blocks on a slow mail server."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

from bazaar.services.notification.domain import Mail, message_id


class SmtpMailer:
    def __init__(self, host: str, port: int, sender: str, *, timeout: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout = timeout

    def compose(self, mail: Mail, event_id: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message["Message-ID"] = message_id(event_id, self.sender)
        message.set_content(mail.body)
        return message

    async def send(self, message: EmailMessage) -> None:
        """Deliver to the relay; raises (OSError, smtplib.SMTPException) if it refuses."""
        await asyncio.to_thread(self._send_blocking, message)

    def _send_blocking(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.send_message(message)

    async def ping(self) -> None:
        """Readiness: the relay answers on TCP with an SMTP greeting."""
        async with asyncio.timeout(min(self.timeout, 2.0)):
            reader, writer = await asyncio.open_connection(self.host, self.port)
            try:
                greeting = await reader.readline()
                if not greeting.startswith(b"220"):
                    raise ConnectionError(f"not an SMTP greeting: {greeting[:80]!r}")
                writer.write(b"QUIT\r\n")
                await writer.drain()
            finally:
                writer.close()
                await writer.wait_closed()
