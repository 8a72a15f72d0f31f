"""The local mailbox: the Maildir the embedded SMTP sink delivers to, read for /mail.

Reading files blocks, so the storefront calls these functions in a worker thread.
"""

from __future__ import annotations

import email.policy
import mailbox
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from bazaar.services.gateway.domain import may_read_mail, recipients

# Maildir keys are "<seconds>.<unique>.<host>"; anything else is not a key of ours.
KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._,=-]{0,199}$")
LIST_LIMIT = 200


@dataclass(frozen=True)
class MailSummary:
    key: str
    sender: str
    to: str
    subject: str
    date: datetime


@dataclass(frozen=True)
class Mail:
    summary: MailSummary
    body: str


def _parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)  # what policy.default makes
    return message


def _date(message: EmailMessage, key: str) -> datetime:
    try:
        header = message["Date"]
        when = header.datetime if header is not None else None
    except (TypeError, ValueError, AttributeError):
        when = None
    if when is None:  # a mail without a usable Date: the delivery time in its key
        seconds = key.split(".", 1)[0]
        when = datetime.fromtimestamp(int(seconds) if seconds.isdigit() else 0, UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _header(message: EmailMessage, name: str) -> str:
    try:
        return str(message.get(name, "") or "")
    except (TypeError, ValueError, IndexError):  # a header too broken to decode
        return ""


def _summary(key: str, message: EmailMessage) -> MailSummary:
    return MailSummary(
        key=key,
        sender=_header(message, "From"),
        to=_header(message, "To") or _header(message, "X-RcptTo"),
        subject=_header(message, "Subject") or "(no subject)",
        date=_date(message, key),
    )


def _readable_by(message: EmailMessage, email_address: str, is_admin: bool) -> bool:
    addressed_to = recipients(
        _header(message, "To"), _header(message, "Cc"), _header(message, "X-RcptTo")
    )
    return may_read_mail(addressed_to, email_address, is_admin)


def _open(folder: Path) -> mailbox.Maildir | None:
    if not (folder / "new").is_dir() and not (folder / "cur").is_dir():
        return None
    return mailbox.Maildir(folder, factory=None, create=False)


def list_mails(folder: Path, email_address: str, is_admin: bool) -> list[MailSummary]:
    """The mails this reader may see, newest first."""
    box = _open(folder)
    if box is None:
        return []
    found = []
    for key in box.iterkeys():
        try:
            message = _parse(box.get_bytes(key))
        except (KeyError, OSError):  # delivered or moved away while we looked
            continue
        if _readable_by(message, email_address, is_admin):
            found.append(_summary(key, message))
    found.sort(key=lambda mail: mail.date, reverse=True)
    return found[:LIST_LIMIT]


def read_mail(folder: Path, key: str, email_address: str, is_admin: bool) -> Mail | None:
    """One mail with its plain-text body; None when it is not there or not this reader's."""
    box = _open(folder)
    if box is None or not KEY_PATTERN.match(key):
        return None
    try:
        message = _parse(box.get_bytes(key))
    except (KeyError, OSError):
        return None
    if not _readable_by(message, email_address, is_admin):
        return None
    return Mail(summary=_summary(key, message), body=_plain_body(message))


def _plain_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        return "(this mail has no plain-text part)"
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset or a broken encoding
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""
