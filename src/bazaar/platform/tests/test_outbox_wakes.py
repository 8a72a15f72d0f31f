"""The outbox wakes its own relay: `Database.after_commit` calls back after a commit (not
after a rollback, nor for a read), and the relay wakes only after a commit that added
events, then publishes them without waiting for its next poll."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.platform.bus import Bus
from bazaar.platform.db import Database
from bazaar.platform.events import Envelope, new_event
from bazaar.platform.messaging_tables import metadata
from bazaar.platform.outbox import OutboxRelay, add_to_outbox


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}")
    async with db.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        await connection.execute(text("CREATE TABLE notes (body TEXT)"))
    yield db
    await db.dispose()


async def write_note(session: AsyncSession) -> None:
    await session.execute(text("INSERT INTO notes VALUES ('a state change')"))


class CountingRelay(OutboxRelay):
    """A relay that counts its wake-ups, and says when a pass over the outbox is done."""

    wakes = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.passed = asyncio.Event()

    def wake(self) -> None:
        self.wakes += 1
        super().wake()

    async def publish_pending(self) -> int:
        published = await super().publish_pending()
        self.passed.set()
        return published


async def test_after_commit_sees_each_commit_and_nothing_else(db: Database) -> None:
    committed: list[dict[str, object]] = []
    db.after_commit(lambda session: committed.append(dict(session.info)))

    async with db.transaction() as session:
        session.info["marker"] = "first"
        await write_note(session)
    with contextlib.suppress(RuntimeError):
        async with db.transaction() as session:
            session.info["marker"] = "rolled back"
            raise RuntimeError("the state change failed")
    async with db.reading():
        pass

    assert committed == [{"marker": "first"}]


async def test_the_relay_wakes_only_after_a_commit_that_added_events(db: Database) -> None:
    relay = CountingRelay(db, Bus("memory://outbox-wakes", "order"), "order")

    with contextlib.suppress(RuntimeError):
        async with db.transaction() as session:
            await add_to_outbox(session, new_event("order.created", "order", {}))
            raise RuntimeError("the state change failed")
    assert relay.wakes == 0
    async with db.transaction() as session:
        await write_note(session)  # a commit without events
    assert relay.wakes == 0
    async with db.transaction() as session:
        await add_to_outbox(session)  # none after all
    assert relay.wakes == 0

    async with db.transaction() as session:
        await write_note(session)
        await add_to_outbox(session, new_event("order.created", "order", {}))
    assert relay.wakes == 1


async def test_a_woken_relay_publishes_before_its_next_poll(db: Database) -> None:
    bus = Bus("memory://outbox-wakes", "order")
    received: list[Envelope] = []

    async def collect(event: Envelope) -> None:
        received.append(event)

    bus.on_event("order.created", "cart", collect)
    # It polls once an hour: once its first pass found nothing, only the wake-up can
    # publish within the test.
    relay = CountingRelay(db, bus, "order", poll_seconds=3600)
    event = new_event("order.created", "order", {"order_id": "o1"})
    await bus.start()
    relay.start()
    try:
        await asyncio.wait_for(relay.passed.wait(), 10)
        async with db.transaction() as session:
            await add_to_outbox(session, event)
        deadline = asyncio.get_running_loop().time() + 10
        while not received:
            assert asyncio.get_running_loop().time() < deadline, "not published"
            await asyncio.sleep(0.01)
    finally:
        await relay.stop()
        await bus.stop()
    assert [e.id for e in received] == [event.id]
