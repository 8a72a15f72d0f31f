"""The service layer: `NotificationService` queues one mail per (order, kind) with the
event that asks for it, and sends what is queued.

Queueing runs in the inbox's transaction of the event (`platform.consumers`): the event
is recorded as handled exactly when its mail is recorded as owed, and no SMTP relay is
waited for while the database is held. Sending (`send_due`, run by `sender.MailSender`)
claims due mails, sends them with no database lock held, then marks them sent.

SMTP is at-least-once in exactly one window: a crash (or a failed commit) after the relay
accepted a mail and before it is marked sent. The mail's hold then runs out and it is
sent again, with the same Message-ID, which lets mail clients fold the copies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.contracts.events import OrderCancelled, OrderPaid
from bazaar.platform import telemetry
from bazaar.platform.bus import retry_delay
from bazaar.platform.db import Database
from bazaar.platform.events import Envelope
from bazaar.platform.logs import get_logger
from bazaar.services.notification import domain
from bazaar.services.notification.domain import (
    CancelledOrder,
    Mail,
    OrderLine,
    PaidOrder,
    QueuedMail,
)
from bazaar.services.notification.mailer import SmtpMailer
from bazaar.services.notification.sender import MailSender
from bazaar.services.notification.store import MailRepository

CONSUMER = "notification"
# Mails sent side by side in one pass, as many as the mailer keeps connections open.
SEND_AT_ONCE = 4
# A sender holds the mails it claimed for this many of the mailer's timeouts (a send is a
# handful of SMTP commands, each within the timeout); a mail still held past that is one
# whose sender died, and another sender takes it.
HOLD_TIMEOUTS = 6
# Tries at recording a pass's outcome, with backoff: well within a hold.
RECORD_ATTEMPTS = 5

# In `session.info` of a transaction that queued a mail: its commit wakes the sender.
_MAIL_QUEUED = "bazaar.notification.mail_queued"

Clock = Callable[[], datetime]

log = get_logger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def paid_order(order: OrderPaid) -> PaidOrder:
    lines = tuple(OrderLine(i.product_id, i.name, i.qty, i.unit_price_cents) for i in order.items)
    return PaidOrder(order.order_id, order.email, lines, order.total_cents)


def cancelled_order(order: OrderCancelled) -> CancelledOrder:
    return CancelledOrder(order.order_id, order.email, order.reason)


class NotificationService:
    """The mails of an order's events: the consumers queue them, its `sender` (started
    with the app) sends them. `clock` tells the time of holds and retries (tests pass a
    fake one)."""

    def __init__(self, db: Database, mailer: SmtpMailer, *, clock: Clock = _utc_now) -> None:
        self._db = db
        self._mailer = mailer
        self._clock = clock
        self._hold = timedelta(seconds=HOLD_TIMEOUTS * mailer.timeout)
        self.sender = MailSender(self.send_due, at_once=SEND_AT_ONCE, first=self.release_dead_holds)
        db.after_commit(self._wake_sender_if_queued)

    async def mail_paid_order(
        self, session: AsyncSession, order: OrderPaid, event: Envelope
    ) -> None:
        await self._queue(session, domain.confirmation_mail(paid_order(order)), event)

    async def mail_cancelled_order(
        self, session: AsyncSession, order: OrderCancelled, event: Envelope
    ) -> None:
        await self._queue(session, domain.cancellation_mail(cancelled_order(order)), event)

    async def _queue(self, session: AsyncSession, mail: Mail, event: Envelope) -> None:
        # A mail no relay would take (a header it cannot write) is refused now, not queued.
        self._mailer.compose(mail, event.id)
        about = {"order_id": mail.order_id, "kind": mail.kind, "event_id": event.id}
        # The consumer's span is current: the mail's send continues its trace.
        queued = MailRepository(session).queue(
            event.id, mail, self._clock(), trace_context=telemetry.trace_context()
        )
        if not await queued:
            log.info("mail already queued or sent", **about)
            return
        session.info[_MAIL_QUEUED] = True
        log.info("mail queued", **about)

    def _wake_sender_if_queued(self, session: AsyncSession) -> None:
        if session.info.get(_MAIL_QUEUED):
            self.sender.wake()

    async def send_due(self) -> int:
        """Send up to SEND_AT_ONCE mails that are due: each claimed (held for this sender,
        so no other sends it meanwhile), sent, then marked sent; one the relay refused
        waits for its retry. Returns how many were claimed."""
        now = self._clock()
        async with self._db.transaction() as session:
            claimed = await MailRepository(session).claim_due(now, now + self._hold, SEND_AT_ONCE)
        if not claimed:
            return 0
        refused = await asyncio.gather(*(self._send(mail) for mail in claimed))
        done = self._clock()
        sent = [q.event_id for q, failed in zip(claimed, refused, strict=True) if not failed]
        retries = [
            (q.event_id, done + timedelta(seconds=retry_delay(q.attempts)))
            for q, failed in zip(claimed, refused, strict=True)
            if failed
        ]
        await self._record(sent, retries, done)
        return len(claimed)

    async def _record(
        self, sent: list[str], retries: list[tuple[str, datetime]], at: datetime
    ) -> None:
        """Mark the mails sent, and when the refused ones are due again. A mail the relay
        took but not marked sent goes again once its hold runs out: a busy database (the
        SQLite lock under load, a failover) is tried again meanwhile."""
        for attempt in range(1, RECORD_ATTEMPTS + 1):
            try:
                async with self._db.transaction() as session:
                    mails = MailRepository(session)
                    await mails.mark_sent(sent, at)
                    await mails.retry_at(retries)
                return
            except (TimeoutError, DBAPIError) as exc:
                if attempt == RECORD_ATTEMPTS:
                    raise
                error = f"{type(exc).__name__}: {exc}"
                log.warning("mails sent not recorded yet", attempt=attempt, error=error, sent=sent)
                await asyncio.sleep(retry_delay(attempt))

    async def _send(self, queued: QueuedMail) -> bool:
        """Send one mail; True if the relay refused it (or was away)."""
        mail = queued.mail
        about = {"order_id": mail.order_id, "kind": mail.kind, "event_id": queued.event_id}
        with telemetry.span(
            "smtp send",
            kind="client",
            parent=queued.trace_context or None,
            attributes={
                "bazaar.order_id": mail.order_id,
                "bazaar.mail.kind": str(mail.kind),
                "bazaar.mail.attempt": queued.attempts,
            },
        ) as span:
            try:
                await self._mailer.send(self._mailer.compose(mail, queued.event_id))
            except Exception as exc:  # the relay is down or refused it: it waits, and retries
                telemetry.mark_error(span, f"{type(exc).__name__}: {exc}")
                log.warning(
                    "mail not sent",
                    attempt=queued.attempts,
                    error=f"{type(exc).__name__}: {exc}",
                    **about,
                )
                return True
            log.info("mail sent", **about)
        return False

    async def release_dead_holds(self) -> None:
        """At start-up. On SQLite the service runs as one process per database, so a hold
        found now is one of a process that died: its mails are due at once. Replicas on
        PostgreSQL leave each other's holds to run out."""
        if self._db.is_sqlite:
            async with self._db.transaction() as session:
                await MailRepository(session).release_holds()
