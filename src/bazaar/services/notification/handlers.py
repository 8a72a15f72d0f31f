"""The service layer: send one mail per (order, kind), recorded with the event in one unit
of work through the platform inbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from weakref import WeakValueDictionary

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


class Turns:
    """One holder per key at a time, in this process. A key's lock exists only while
    someone holds it or waits for it."""

    def __init__(self) -> None:
        self._locks: WeakValueDictionary[Hashable, asyncio.Lock] = WeakValueDictionary()

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        async with lock:
            yield


class Notifier:
    def __init__(self, db: Database, mailer: SmtpMailer) -> None:
        self._db = db
        self._mailer = mailer
        self._inbox = Inbox(db, CONSUMER)
        self._turns = Turns()

    async def send_once(self, event: Envelope, mail: Mail) -> bool:
        """Send `mail` unless this event, or another one about the same order and kind,
        already did. True if it was sent now. Raises if SMTP fails: nothing is recorded,
        and the bus retries.

        Check, send, record: no database lock is held while the relay takes its time.
        Deliveries of one mail (an event delivered twice, or two events about one order
        and kind) take turns in this process, so the later one finds the earlier one's
        record and sends nothing. The record (the inbox row and the mails_sent row, in
        one transaction) is written as soon as the relay accepted the mail. SMTP is
        therefore at-least-once in exactly one window: a crash, a failed commit, or a
        shutdown that cancels the handler, after the relay accepted the mail and before
        the record commits. The event is then redelivered and the mail sent again, with
        the same Message-ID, which lets mail clients fold the copies.

        Replicas share the database, not the turns: the unique (order, kind) keeps one
        record whatever happens, and a mail two replicas sent at the same moment (which
        takes two deliveries of one mail in flight at once) is logged.
        """
        message = self._mailer.compose(mail, event.id)  # before any I/O: a bad header sends nothing
        async with self._turns.hold((mail.order_id, mail.kind)):
            async with self._db.reading() as session:
                sent = await SentMailRepository(session).was_sent(mail.order_id, mail.kind)
            if sent:
                log.info(
                    "mail already sent", order_id=mail.order_id, kind=mail.kind, event_id=event.id
                )
                return False
            await self._mailer.send(message)
            await self._record(event, mail)
        log.info("mail sent", order_id=mail.order_id, kind=mail.kind, event_id=event.id)
        return True

    async def _record(self, event: Envelope, mail: Mail) -> None:
        async def add_sent_mail(session: AsyncSession, _: Envelope) -> None:
            await SentMailRepository(session).add(event.id, mail, datetime.now(UTC))

        try:
            recorded = await self._inbox.handle_once(event, add_sent_mail)
        except IntegrityError:
            recorded = False
        if not recorded:
            log.warning(
                "mail sent by two replicas at once",
                order_id=mail.order_id,
                kind=mail.kind,
                event_id=event.id,
            )
