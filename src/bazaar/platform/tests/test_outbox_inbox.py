"""The outbox relay and the inbox, on a real SQLite file and a real nats-server."""

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bazaar.platform.bus import PUBLISH_TIMEOUT, Bus
from bazaar.platform.db import Database
from bazaar.platform.events import Envelope, new_event
from bazaar.platform.inbox import Inbox
from bazaar.platform.messaging_tables import inbox, metadata, outbox
from bazaar.platform.outbox import OutboxRelay, add_to_outbox
from bazaar.testing import NatsServer, jetstream


async def a_database(tmp_path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'messaging.db'}")
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return db


async def unpublished(db: Database) -> int:
    async with db.transaction() as session:
        count = await session.scalar(
            select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        )
    return int(count or 0)


async def test_a_rolled_back_transaction_leaves_no_event(tmp_path: Path) -> None:
    db = await a_database(tmp_path)
    try:
        async with db.transaction() as session:
            await add_to_outbox(session, new_event("order.paid", "test", {}))
            raise RuntimeError("the state change failed")
    except RuntimeError:
        pass
    assert await unpublished(db) == 0
    await db.dispose()


def publication_tried(bus: Bus) -> asyncio.Event:
    """Set once the bus's `publish_events` is called, from now on."""
    tried, publish = asyncio.Event(), bus.publish_events

    async def spied(
        events: Sequence[Envelope],
        timeout: float = PUBLISH_TIMEOUT,  # noqa: ASYNC109
        **options: Any,  # headers
    ) -> None:
        tried.set()
        await publish(events, timeout, **options)

    bus.publish_events = spied  # type: ignore[method-assign]
    return tried


async def test_relay_publishes_in_order_and_waits_out_a_broker_outage(
    tmp_path: Path, nats: NatsServer
) -> None:
    db = await a_database(tmp_path)
    events = [new_event("order.created", "test", {"n": n}) for n in range(5)]
    async with db.transaction() as session:
        await add_to_outbox(session, *events)

    received: list[Envelope] = []
    consumer = Bus(nats.url, "consumer")

    async def collect(event: Envelope) -> None:
        received.append(event)

    consumer.on_event("order.created", "consumer", collect)
    producer = Bus(nats.url, "producer")
    await producer.start()
    await consumer.start()
    relay = OutboxRelay(db, producer, "test", poll_seconds=0.05)
    tried = publication_tried(producer)

    nats.stop()  # the broker is down: rows must stay, unpublished
    relay.start()
    await asyncio.wait_for(tried.wait(), 10)  # the relay is at it, and no broker can ack
    assert await unpublished(db) == 5

    nats.start()
    deadline = asyncio.get_running_loop().time() + 20
    while len(received) < 5:
        assert asyncio.get_running_loop().time() < deadline, f"got {len(received)} of 5"
        await asyncio.sleep(0.1)
    assert sorted(e.data["n"] for e in received) == [0, 1, 2, 3, 4]
    # Marked once the broker's acknowledgements are in, which may come after delivery.
    while await unpublished(db):
        assert asyncio.get_running_loop().time() < deadline, "rows not marked published"
        await asyncio.sleep(0.05)
    # Published in outbox order: the stream holds them in that order.
    js = jetstream(producer)
    stored = [
        Envelope.model_validate_json((await js.get_msg("BAZAAR_EVENTS", seq)).data or b"")
        for seq in range(1, 6)
    ]
    assert [e.data["n"] for e in stored] == [0, 1, 2, 3, 4]
    await relay.stop()
    await consumer.stop()
    await producer.stop()
    await db.dispose()


async def test_inbox_applies_an_event_once(tmp_path: Path) -> None:
    db = await a_database(tmp_path)
    event = new_event("order.created", "test", {})
    applied: list[str] = []

    async def apply(_session: object, e: Envelope) -> None:
        applied.append(e.id)

    box = Inbox(db, "cart")
    results = [await box.handle_once(event, apply) for _ in range(3)]
    assert results == [True, False, False]
    assert applied == [event.id]
    # Another consumer has its own record of what it handled.
    assert await Inbox(db, "notification").handle_once(event, apply)
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(inbox)) == 2
    await db.dispose()


async def test_a_failed_effect_leaves_the_event_unhandled(tmp_path: Path) -> None:
    db = await a_database(tmp_path)
    event = new_event("order.created", "test", {})

    async def explode(_session: object, _e: Envelope) -> None:
        raise ValueError("effect failed")

    box = Inbox(db, "cart")
    for _ in range(2):
        with contextlib.suppress(ValueError):
            await box.handle_once(event, explode)

    async def succeed(_session: object, _e: Envelope) -> None:
        return None

    assert await box.handle_once(event, succeed)
    await db.dispose()
