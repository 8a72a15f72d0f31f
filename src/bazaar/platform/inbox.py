"""The inbox: a consumer applies an event at most once, whatever the broker redelivers.

The event id is inserted in the same transaction as the event's effect; a second delivery
finds it there and does nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite
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
            # One statement both checks and records: the row is inserted unless this
            # consumer's row for the event exists (then nothing is, and rowcount is 0).
            # Inserted first: a concurrent duplicate then waits on the primary key and
            # finds it, or its transaction rolls back, effect included.
            row = {"consumer": self._consumer, "event_id": event.id}
            recorded = await session.execute(
                _insert_new(session).values(**row, processed_at=datetime.now(UTC))
            )
            if getattr(recorded, "rowcount", 0) != 1:
                return False
            await apply(session, event)
        return True


def _insert_new(session: AsyncSession) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING in the session's dialect (both SQLite and
    PostgreSQL have it; SQLAlchemy spells it per dialect)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(inbox).on_conflict_do_nothing()
    return sqlite.insert(inbox).on_conflict_do_nothing()
