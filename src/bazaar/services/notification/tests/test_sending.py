"""The mail queue and its sender without the bus: mails queued as the consumers queue them,
`send_due` passes run by hand, a real SMTP server, and a clock the test moves. Every
test runs on SQLite and on PostgreSQL (where two replicas really claim at once)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bazaar.contracts.events import OrderPaid
from bazaar.platform.bus import retry_delay
from bazaar.platform.db import Database
from bazaar.services.notification.handlers import HOLD_TIMEOUTS, NotificationService
from bazaar.services.notification.mailer import SmtpMailer
from bazaar.services.notification.store import MailRepository, mails_sent
from bazaar.services.notification.tests.conftest import SmtpServer, free_port
from bazaar.services.notification.tests.factories import order_paid

SENDER = "orders@bazaar.local"
TIMEOUT = 2.0  # the mailer's: a sender holds what it claimed for HOLD_TIMEOUTS of these
HOLD = HOLD_TIMEOUTS * TIMEOUT


class Clock:
    """The service's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def replica(db: Database, port: int, clock: Clock) -> NotificationService:
    """One replica's service (its sender not started: the test runs its passes)."""
    return NotificationService(
        db, SmtpMailer("127.0.0.1", port, SENDER, timeout=TIMEOUT), clock=clock
    )


async def queue_paid(service: NotificationService, db: Database, order_id: str) -> None:
    """What the `order.paid` consumer does, in a transaction of its own."""
    event = order_paid(order_id)
    async with db.transaction() as session:
        await service.mail_paid_order(session, OrderPaid.model_validate(event.data), event)


async def unsent(db: Database) -> int:
    async with db.reading() as session:
        rows = await session.execute(
            select(mails_sent.c.event_id).where(mails_sent.c.sent_at.is_(None))
        )
        return len(rows.all())


async def test_two_replicas_sending_at_once_send_each_mail_once(
    db: Database, smtp: SmtpServer, clock: Clock
) -> None:
    one, two = replica(db, smtp.port, clock), replica(db, smtp.port, clock)
    orders = [f"order-{n:02d}" for n in range(12)]
    for order_id in orders:
        await queue_paid(one, db, order_id)
    while sum(await asyncio.gather(*(r.send_due() for r in (one, two, one, two)))):
        pass
    delivered = sorted(m.message["Subject"] for m in smtp.delivered)
    assert delivered == sorted(f"Your Bazaar order {o[:8]} is confirmed" for o in orders)
    assert await unsent(db) == 0


async def test_a_second_event_for_a_queued_or_sent_mail_queues_nothing(
    db: Database, smtp: SmtpServer, clock: Clock
) -> None:
    service = replica(db, smtp.port, clock)
    await queue_paid(service, db, "order-a")
    await queue_paid(service, db, "order-a")  # another event, the same order and kind
    assert await service.send_due() == 1
    await queue_paid(service, db, "order-a")
    assert await service.send_due() == 0
    assert len(smtp.delivered) == 1


async def test_a_mail_held_by_a_sender_that_died_is_sent_once_the_hold_runs_out(
    db: Database, smtp: SmtpServer, clock: Clock
) -> None:
    dead, alive = replica(db, smtp.port, clock), replica(db, smtp.port, clock)
    await queue_paid(dead, db, "order-a")
    async with db.transaction() as session:  # claimed, then the process died
        [claimed] = await MailRepository(session).claim_due(
            clock(), clock() + timedelta(seconds=HOLD), 4
        )
    assert await alive.send_due() == 0
    clock.advance(HOLD - 1)
    assert await alive.send_due() == 0
    clock.advance(2)
    assert await alive.send_due() == 1
    [mail] = smtp.delivered
    assert mail.message["Message-ID"] == f"<{claimed.event_id}@bazaar.local>"


async def test_at_start_up_on_sqlite_the_holds_of_a_process_that_died_are_released(
    db: Database, smtp: SmtpServer, clock: Clock
) -> None:
    service = replica(db, smtp.port, clock)
    await queue_paid(service, db, "order-a")
    async with db.transaction() as session:
        await MailRepository(session).claim_due(clock(), clock() + timedelta(seconds=HOLD), 4)
    restarted = replica(db, smtp.port, clock)
    await restarted.release_dead_holds()
    # SQLite runs one process per database: due at once. Replicas on PostgreSQL wait for
    # the hold to run out (another replica may be sending it right now).
    assert await restarted.send_due() == (1 if db.is_sqlite else 0)


async def test_a_refused_mail_waits_for_its_retry_and_goes_when_the_relay_is_back(
    db: Database, clock: Clock, smtp: SmtpServer
) -> None:
    down = replica(db, free_port(), clock)  # nothing listens there
    await queue_paid(down, db, "order-a")
    assert await down.send_due() == 1  # claimed, refused
    assert await down.send_due() == 0  # not due before its retry
    clock.advance(retry_delay(1))
    assert await down.send_due() == 1  # refused again
    assert await unsent(db) == 1

    back = replica(db, smtp.port, clock)  # the relay, reachable again
    clock.advance(retry_delay(2))
    assert await back.send_due() == 1
    assert len(smtp.delivered) == 1
    async with db.reading() as session:
        row = (await session.execute(select(mails_sent))).one()
    assert (row.attempts, row.sent_at, row.held_until) == (3, clock(), None)


async def test_a_mail_sent_is_recorded_even_when_the_database_is_busy_at_first(
    db: Database, smtp: SmtpServer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = replica(db, smtp.port, clock)
    await queue_paid(service, db, "order-a")
    mark_sent, tries = MailRepository.mark_sent, []

    async def busy_once(self: MailRepository, event_ids: Sequence[str], at: datetime) -> None:
        tries.append(at)
        if len(tries) == 1:
            raise TimeoutError("database is locked")
        await mark_sent(self, event_ids, at)

    monkeypatch.setattr(MailRepository, "mark_sent", busy_once)
    assert await service.send_due() == 1
    assert await unsent(db) == 0  # recorded at the second try: no second mail later
    clock.advance(HOLD + 1)
    assert await service.send_due() == 0
    assert len(smtp.delivered) == 1
