"""`consume` and `answer` on the in-memory broker (`memory://`, which hands each message
over before `publish` returns): the handler runs once per event inside the inbox's apply-once
transaction, a payload that breaks its contract is dead-lettered at once naming the field,
and a request that breaks its contract gets `bad_request` naming the field."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Column, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.platform.brokers import Outgoing
from bazaar.platform.brokers.memory import broker_named
from bazaar.platform.bus import Bus, RemoteError
from bazaar.platform.consumers import answer, consume
from bazaar.platform.db import Database
from bazaar.platform.events import (
    DEADLETTER_ERROR_HEADER,
    Envelope,
    event_subject,
    new_event,
)
from bazaar.platform.messaging_tables import inbox
from bazaar.platform.messaging_tables import metadata as messaging

PAID = "order.paid"
QUOTE = "bazaar.rpc.test.quote"
BROKER = "consumers"  # memory://, one broker per test (each test has its own loop)

effects_metadata = MetaData()
effects = Table("effects", effects_metadata, Column("order_id", String(64), primary_key=True))


class Paid(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    order_id: str
    total_cents: int


class QuoteRequest(BaseModel):
    product_ids: list[str]


class Quote(BaseModel):
    prices: dict[str, int]


@dataclass
class Mailer:
    """Records, for each event handled, its payload and whether the inbox row of that
    event was already in the handler's transaction."""

    handled: list[tuple[Paid, bool]] = field(default_factory=list)
    fail_once: bool = False

    async def on_paid(self, session: AsyncSession, payload: Paid, event: Envelope) -> None:
        recorded = await session.scalar(
            select(func.count()).select_from(inbox).where(inbox.c.event_id == event.id)
        )
        await session.execute(insert(effects).values(order_id=payload.order_id))
        self.handled.append((payload, recorded == 1))
        if self.fail_once:
            self.fail_once = False
            raise RuntimeError("the mail relay is down")


@dataclass
class Shop:
    db: Database
    bus: Bus
    mailer: Mailer

    @property
    def dead_letters(self) -> list[str]:
        """The `x-error` of each dead letter on the in-memory broker."""
        letters = broker_named(BROKER).dead_letters.values()
        return [letter.message.headers.get(DEADLETTER_ERROR_HEADER, "") for letter in letters]


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[Shop]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'mailer.db'}")
    async with db.engine.begin() as connection:
        await connection.run_sync(messaging.create_all)
        await connection.run_sync(effects_metadata.create_all)
    bus, mailer = Bus(f"memory://{BROKER}", "mailer", max_deliveries=5), Mailer()
    consume(bus, db, PAID, consumer="mailer", contract=Paid, handler=mailer.on_paid)

    async def quote(request: QuoteRequest) -> Quote:
        return Quote(prices={product: 100 * len(product) for product in request.product_ids})

    answer(bus, QUOTE, contract=QuoteRequest, responder=quote)

    await bus.start()
    yield Shop(db, bus, mailer)
    await bus.stop()
    await db.dispose()


async def rows(db: Database, table: Table) -> int:
    async with db.reading() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_a_fitting_event_is_handled_once_inside_the_inbox_transaction(shop: Shop) -> None:
    event = new_event(PAID, "order", {"order_id": "o1", "total_cents": 1200, "extra": "ok"})

    await shop.bus.publish_event(event)
    await shop.bus.publish_event(event)  # redelivered: the inbox has it, no second effect

    assert shop.mailer.handled == [(Paid(order_id="o1", total_cents=1200), True)]
    assert await rows(shop.db, effects) == 1
    assert await rows(shop.db, inbox) == 1
    assert shop.dead_letters == []


async def test_a_failed_handler_leaves_no_effect_and_no_inbox_row(shop: Shop) -> None:
    shop.mailer.fail_once = True
    event = new_event(PAID, "order", {"order_id": "o1", "total_cents": 1200})

    await shop.bus.publish_event(event)  # fails: its write and the inbox row roll back
    assert (await rows(shop.db, effects), await rows(shop.db, inbox)) == (0, 0)

    await shop.bus.publish_event(event)  # the retry applies it
    assert len(shop.mailer.handled) == 2
    assert (await rows(shop.db, effects), await rows(shop.db, inbox)) == (1, 1)


async def test_a_payload_that_breaks_its_contract_is_dead_lettered_at_once(shop: Shop) -> None:
    misfit = new_event(PAID, "order", {"order_id": "o1", "total_cents": "12.00"})

    await shop.bus.publish_event(misfit)  # one delivery of five allowed: no retry

    assert len(shop.dead_letters) == 1
    assert "ContractBroken" in shop.dead_letters[0]
    assert "total_cents" in shop.dead_letters[0]
    assert shop.mailer.handled == []
    assert await rows(shop.db, inbox) == 0


async def test_an_event_of_another_type_is_refused(shop: Shop) -> None:
    stray = new_event("order.cancelled", "order", {"order_id": "o1", "total_cents": 0})
    # On the order.paid subject, where it does not belong.
    stray_message = Outgoing(event_subject(PAID), stray.model_dump_json().encode())
    await shop.bus.transport.publish(stray_message, 5.0)

    assert len(shop.dead_letters) == 1
    assert "is a order.cancelled, not a order.paid" in shop.dead_letters[0]
    assert shop.mailer.handled == []


async def test_answer_refuses_a_misfit_request_naming_the_field(shop: Shop) -> None:
    with pytest.raises(RemoteError) as refused:
        await shop.bus.request(QUOTE, {"product_ids": "mug"})
    assert refused.value.code == "bad_request"
    assert "product_ids" in refused.value.detail


async def test_answer_replies_with_the_model_as_json(shop: Shop) -> None:
    reply = await shop.bus.request(QUOTE, {"product_ids": ["mug", "tea"]})
    assert reply == {"prices": {"mug": 300, "tea": 300}}
