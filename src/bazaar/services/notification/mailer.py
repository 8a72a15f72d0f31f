"""SMTP out: the standard library's `smtplib`, run in a worker thread so the event loop
(which also serves HTTP and the bus) never blocks on a slow mail server.

Two things keep a mail cheap, as every order sends one:
- composing: the `email` package parses every header it is given and again when it
  writes the message (a third of this service's CPU). A mail whose headers are plain
  ASCII that fit on one line, and whose body lines fit too (every mail of this shop, in
  practice), is written directly, byte for byte as the `email` package writes it (a test
  holds the two to that). Anything else still goes through the `email` package.
- sending: connections to the relay are kept open and reused (checked with a NOOP
  first), instead of a connect, EHLO and QUIT per mail.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses

from bazaar.services.notification.domain import Mail, message_id

# A header line the `email` package writes unchanged (RFC 5322 recommends 78 columns).
MAX_LINE = 78
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
# An address that needs neither quoting nor encoding.
_PLAIN_ADDRESS = re.compile(rf"{_DOT_ATOM}@{_DOT_ATOM}")
_CRLF = b"\r\n"


@dataclass(frozen=True)
class WireMail:
    """A mail as it goes to the relay: the envelope, and the message with CRLF line ends."""

    sender: str
    recipients: tuple[str, ...]
    data: bytes


Outgoing = WireMail | EmailMessage


class SmtpMailer:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        timeout: float = 10.0,
        idle_connections: int = 4,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout = timeout
        self._idle_limit = idle_connections
        self._idle: list[smtplib.SMTP] = []
        self._idle_lock = threading.Lock()  # the pool is used from worker threads
        # The From line and the envelope sender are the same for every mail: taken once
        # from the `email` package, so they are exactly what it would write.
        probe = _email_message(sender, "nobody@example.com", "-", "<-@example.com>", "")
        self._from_line = _header_lines(probe)[0]
        self._envelope_sender = getaddresses([probe["From"]])[0][1]

    def compose(self, mail: Mail, event_id: str) -> Outgoing:
        """The message for `mail`; raises (ValueError) for a header it cannot write."""
        msgid = message_id(event_id, self.sender)
        headers = {"To": mail.to, "Subject": mail.subject, "Message-ID": msgid}
        lines = mail.body.encode("utf-8").splitlines() or [b""]
        if (
            self._envelope_sender
            and _PLAIN_ADDRESS.fullmatch(mail.to)
            and all(_fits_one_line(name, value) for name, value in headers.items())
            and all(len(line) <= MAX_LINE for line in lines)
        ):
            return self._wire_mail(mail.to, headers, lines)
        return _email_message(self.sender, mail.to, mail.subject, msgid, mail.body)

    def _wire_mail(self, to: str, headers: dict[str, str], lines: list[bytes]) -> WireMail:
        body = b"".join(line + _CRLF for line in lines)
        encoding = "7bit" if body.isascii() else "8bit"
        head = [
            self._from_line,
            *(f"{name}: {value}\r\n".encode("ascii") for name, value in headers.items()),
            b'Content-Type: text/plain; charset="utf-8"\r\n',
            f"Content-Transfer-Encoding: {encoding}\r\n".encode("ascii"),
            b"MIME-Version: 1.0\r\n",
        ]
        return WireMail(self._envelope_sender, (to,), b"".join([*head, _CRLF, body]))

    async def send(self, message: Outgoing) -> None:
        """Deliver to the relay; raises (OSError, smtplib.SMTPException) if it refuses."""
        await asyncio.to_thread(self._send_blocking, message)

    def _send_blocking(self, message: Outgoing) -> None:
        smtp = self._reusable() or smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if isinstance(message, WireMail):
                smtp.sendmail(message.sender, list(message.recipients), message.data)
            else:
                smtp.send_message(message)
        except BaseException:
            _close(smtp)  # in an unknown state: never reused
            raise
        self._put_back(smtp)

    def _reusable(self) -> smtplib.SMTP | None:
        """An idle connection the relay still answers on, if there is one."""
        while True:
            with self._idle_lock:
                if not self._idle:
                    return None
                smtp = self._idle.pop()
            try:
                # The relay may have closed it (restart, idle timeout): find out before
                # anything of a mail is sent on it.
                if smtp.noop()[0] == 250:
                    return smtp
            except (OSError, smtplib.SMTPException):
                pass
            _close(smtp)

    def _put_back(self, smtp: smtplib.SMTP) -> None:
        with self._idle_lock:
            if len(self._idle) < self._idle_limit:
                self._idle.append(smtp)
                return
        _close(smtp)

    async def close(self) -> None:
        """Say goodbye on the idle connections (at shutdown)."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for smtp in idle:
            await asyncio.to_thread(_close, smtp)

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


def _email_message(sender: str, to: str, subject: str, msgid: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = msgid
    message.set_content(body)
    return message


def _header_lines(message: EmailMessage) -> list[bytes]:
    """The header lines as `smtplib` sends them (CRLF line ends)."""
    policy = message.policy.clone(linesep="\r\n")
    return [policy.fold_binary(name, value) for name, value in message.raw_items()]


def _fits_one_line(name: str, value: str) -> bool:
    return (
        bool(value)
        and value.isascii()
        and value.isprintable()
        and value == value.strip()
        and "  " not in value
        and len(name) + 2 + len(value) <= MAX_LINE
    )


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()
