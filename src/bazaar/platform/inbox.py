"""The inbox: a consumer applies an event at most once, whatever the broker redelivers.

The event id is inserted in the same transaction as the event's effect; a second delivery
finds it there and does nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.platform.db import Database
from bazaar.platform.events import Envelope
from bazaar.platform.messaging_tables import inbox

Apply = Callable[[AsyncSession, Envelope], Awaitable[None]]


class Inbox:
    def __init__(self, db: Database, consumer: str) -> None:
        self._db = db
        self._consumer = consumer

    async def handle_once(self, event: Envelope, apply: Apply) -> bool:
        """Apply `event` unless this consumer already did; True if it was applied now."""
        async with self._db.transaction() as session:
            seen = await session.scalar(
                select(inbox.c.event_id).where(
                    inbox.c.consumer == self._consumer, inbox.c.event_id == event.id
                )
            )
            if seen is not None:
                return False
            # Inserted first: a concurrent duplicate then fails on the primary key and its
            # transaction rolls back, effect included.
            await session.execute(
                insert(inbox).values(
                    consumer=self._consumer, event_id=event.id, processed_at=datetime.now(UTC)
                )
            )
            await apply(session, event)
        return True
