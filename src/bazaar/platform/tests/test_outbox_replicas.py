"""Outbox relays of several replicas on one PostgreSQL database, against a real NATS
server: which guarantee holds.

- Relays running together publish every row exactly once: each locks its batch
  (`FOR UPDATE SKIP LOCKED`), so no row is ever published by two of them.
- A relay that dies after the broker stored its batch but before its commit leaves the
  rows unpublished; another relay publishes them again, and JetStream stores no second
  copy (the event id is the `Nats-Msg-Id`, inside the stream's duplicate window).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import nats as nats_py
import pytest

from bazaar.platform.bus import Bus
from bazaar.platform.db import Database
from bazaar.platform.events import EVENTS_STREAM, Envelope, new_event
from bazaar.platform.messaging_tables import metadata
from bazaar.platform.outbox import OutboxRelay, add_to_outbox
from bazaar.testing import NatsServer, fresh_database

EVENTS = 600


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with fresh_database("postgresql", metadata, tmp_path, "relays") as database:
        yield database


@pytest.fixture
async def buses(nats: NatsServer) -> AsyncIterator[list[Bus]]:
    replicas = [Bus(nats.url, "order"), Bus(nats.url, "order")]
    for bus in replicas:
        await bus.start()
    yield replicas
    for bus in replicas:
        await bus.stop()


def spy(bus: Bus) -> Counter[str]:
    """Counts every event id `bus` publishes."""
    published: Counter[str] = Counter()
    real = bus.publish_events

    async def publish_events(events: Sequence[Envelope], *args: object, **kwargs: object) -> None:
        await real(events, *args, **kwargs)  # type: ignore[arg-type]
        published.update(event.id for event in events)

    bus.publish_events = publish_events  # type: ignore[method-assign]
    return published


async def fill(db: Database, count: int) -> list[Envelope]:
    events = [new_event("order.created", "order", {"n": n}) for n in range(count)]
    for start in range(0, count, 100):
        async with db.transaction() as session:
            await add_to_outbox(session, *events[start : start + 100])
    return events


async def stored(url: str) -> int:
    connection = await nats_py.connect(url)
    try:
        info = await connection.jetstream().stream_info(EVENTS_STREAM)
    finally:
        await connection.close()
    return int(info.state.messages)


async def drain(relays: list[OutboxRelay]) -> None:
    """Run every relay at once until none finds a row left."""
    while True:
        counts = await asyncio.gather(*(relay.publish_pending() for relay in relays))
        if not any(counts):
            return


async def test_relays_on_two_replicas_publish_each_row_once(
    db: Database, buses: list[Bus], nats: NatsServer
) -> None:
    events = await fill(db, EVENTS)
    published = [spy(bus) for bus in buses]
    relays = [OutboxRelay(db, bus, "order", batch_size=50) for bus in buses]
    await drain(relays)
    together = published[0] + published[1]
    assert set(together) == {e.id for e in events}
    assert max(together.values()) == 1, "a row was published by two relays"
    assert all(published), "both relays took part"
    assert await relays[0].pending() == 0
    assert await stored(nats.url) == EVENTS


async def test_a_batch_published_again_after_a_crash_is_stored_once(
    db: Database, buses: list[Bus], nats: NatsServer
) -> None:
    events = await fill(db, 100)
    # Replica 1 published the batch and died before its commit marked the rows.
    await buses[0].publish_events(events)
    relay = OutboxRelay(db, buses[1], "order", batch_size=50)
    republished = spy(buses[1])
    await drain([relay])
    assert set(republished) == {e.id for e in events}  # at least once from the outbox...
    assert await stored(nats.url) == 100  # ...exactly once in the stream
