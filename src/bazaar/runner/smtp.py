"""The embedded SMTP sink: accepts every message and stores it in a Maildir, where the
storefront and the tests read it. Run as its own process by the runner:

    python -m bazaar.runner.smtp --host 127.0.0.1 --port 2525 --maildir .bazaar/mail
"""

from __future__ import annotations

import argparse
import asyncio
import email.policy
import mailbox
import signal
from collections.abc import Sequence
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session

DeliveryKey = tuple[str, str]  # (Message-ID, recipients)


class MaildirHandler:
    """aiosmtpd handler: each accepted message becomes one file in the Maildir's new/,
    with the envelope (sender, recipients) kept as X-MailFrom / X-RcptTo headers.

    A message whose Message-ID was already delivered to the same recipients is accepted
    and folded, as a mailbox does: a sender can only send at least once (it may die
    after the relay took a mail and before it recorded that), and resends the mail with
    the same Message-ID; the mailbox then shows it once."""

    def __init__(self, maildir: Path) -> None:
        # Maildir(create=True) makes tmp/new/cur only when the folder itself is new; an
        # empty folder made by someone else (a mounted volume) would fail every delivery.
        for part in ("tmp", "new", "cur"):
            (maildir / part).mkdir(parents=True, exist_ok=True)
        self.maildir = mailbox.Maildir(maildir, create=True)
        self._delivered = {key for m in _stored(maildir) if (key := _delivery_key(m))}

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        try:
            # The envelope goes in as two headers on top; the message is stored as it
            # came (only its line ends made the file's), not parsed and written again.
            stored = _envelope_headers(envelope) + raw.replace(b"\r\n", b"\n")
            key = _delivery_key(_HEADERS.parsebytes(stored, headersonly=True))
            if key in self._delivered:
                return "250 Message accepted for delivery (a copy of one delivered before)"
            self.maildir.add(stored)
            if key:
                self._delivered.add(key)
        except Exception as exc:  # a message we cannot store is refused, the sink goes on
            return f"451 cannot store the message: {type(exc).__name__}"
        return "250 Message accepted for delivery"


_HEADERS = BytesParser(policy=email.policy.default)


def _envelope_headers(envelope: Envelope) -> bytes:
    # Addresses come from the MAIL/RCPT command lines, which hold no line break.
    mail_from = str(envelope.mail_from or "")
    recipients = ", ".join(envelope.rcpt_tos)
    return f"X-MailFrom: {mail_from}\nX-RcptTo: {recipients}\n".encode()


def _delivery_key(message: Message) -> DeliveryKey | None:
    message_id = str(message.get("Message-ID", "")).strip()
    if not message_id:
        return None  # nothing tells two such messages apart: each is delivered
    recipients = sorted(r.strip().lower() for r in str(message.get("X-RcptTo", "")).split(","))
    return message_id, ",".join(recipients)


def _stored(maildir: Path) -> list[EmailMessage]:
    parser = BytesParser(policy=email.policy.default)
    paths = sorted((maildir / "new").glob("*")) + sorted((maildir / "cur").glob("*"))
    return [parser.parsebytes(path.read_bytes()) for path in paths]


async def serve(host: str, port: int, maildir: Path) -> None:
    handler = MaildirHandler(maildir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="bazaar.local", enable_SMTPUTF8=True), host, port
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"smtp sink on {host}:{port}, delivering to {maildir}", flush=True)
    async with server:
        await stop.wait()


def messages_to(maildir: Path, address: str) -> list[EmailMessage]:
    """Every stored message whose envelope or To: header names `address`."""
    address = address.lower()
    found = []
    for message in _stored(maildir):
        recipients = f"{message.get('X-RcptTo', '')},{message.get('To', '')}".lower()
        if address in recipients:
            found.append(message)
    return found


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bazaar.runner.smtp")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.maildir))


if __name__ == "__main__":
    main()
