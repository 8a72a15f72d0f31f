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
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session


class MaildirHandler:
    """aiosmtpd handler: each accepted message becomes one file in the Maildir's new/,
    with the envelope (sender, recipients) kept as X-MailFrom / X-RcptTo headers."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = mailbox.Maildir(maildir, create=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        try:
            message = BytesParser(policy=email.policy.default).parsebytes(raw)
            message["X-MailFrom"] = str(envelope.mail_from or "")
            message["X-RcptTo"] = ", ".join(envelope.rcpt_tos)
            self.maildir.add(message)
        except Exception as exc:  # a message we cannot store is refused, the sink goes on
            return f"451 cannot store the message: {type(exc).__name__}"
        return "250 Message accepted for delivery"


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
    for path in sorted((maildir / "new").glob("*")) + sorted((maildir / "cur").glob("*")):
        message = BytesParser(policy=email.policy.default).parsebytes(path.read_bytes())
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
