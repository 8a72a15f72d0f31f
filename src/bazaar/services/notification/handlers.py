"""The service layer: send one mail per (order, kind), recorded with the event in one unit
of work through the platform inbox."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.platform.db import Database
from bazaar.platform.events import Envelope
from bazaar.platform.inbox import Inbox
from bazaar.platform.logs import get_logger
from bazaar.services.notification.domain import Mail
from bazaar.services.notification.mailer import SmtpMailer
from bazaar.services.notification.store import SentMailRepository

CONSUMER = "notification"

log = get_logger(__name__)


async def send_once(db: Database, mailer: SmtpMailer, event: Envelope, mail: Mail) -> bool:
    """Send `mail` unless this event, or another one about the same order and kind, already
    did. True if it was sent now. Raises if SMTP fails: nothing is recorded, the bus retries.

    Order of operations, for "no mail twice": in one transaction the inbox row and the
    mails_sent row are written and flushed first (a duplicate fails there, before sending),
    then the mail is sent, then the transaction commits at once. SMTP is therefore
    at-least-once in exactly one window: a crash, a failed commit, or a shutdown that
    cancels the handler while the send thread runs, after the relay accepted the mail and
    before the commit lands. The event is then redelivered and the mail sent again, with
    the same Message-ID, which lets mail clients fold the copies.
    Nothing runs between the send and the commit to keep that window as small as it gets.
    """
    message = mailer.compose(mail, event.id)  # before any I/O: a bad header sends nothing
    sent = False

    async def record_and_send(session: AsyncSession, _: Envelope) -> None:
        nonlocal sent
        mails = SentMailRepository(session)
        if await mails.was_sent(mail.order_id, mail.kind):
            log.info("mail already sent", order_id=mail.order_id, kind=mail.kind, event_id=event.id)
            return
        await mails.add(event.id, mail, datetime.now(UTC))
        await mailer.send(message)
        sent = True
        # Returning commits the inbox row and the mails_sent row (Inbox.handle_once).

    try:
        await Inbox(db, CONSUMER).handle_once(event, record_and_send)
    except IntegrityError:
        if sent:  # the send went out and the record did not: the window described above
            raise
        # A concurrent delivery of this event, or of another about the same mail, committed
        # first (the rows are flushed before sending, so this one sent nothing).
        log.info("mail recorded concurrently", order_id=mail.order_id, event_id=event.id)
        return False
    if sent:
        log.info("mail sent", order_id=mail.order_id, kind=mail.kind, event_id=event.id)
    return sent
