"""The inbox's one-statement check-and-record (INSERT ... ON CONFLICT DO NOTHING) on
every database backend: an event applied once, a failed effect leaving it unhandled,
concurrent duplicates applying it once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.platform.db import Database
from bazaar.platform.events import Envelope, new_event
from bazaar.platform.inbox import Inbox
from bazaar.platform.messaging_tables import inbox, metadata
from bazaar.testing import DATABASE_BACKENDS, fresh_database


@pytest.fixture(params=DATABASE_BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with fresh_database(request.param, metadata, tmp_path, "inbox") as database:
        yield database


async def _rows(db: Database) -> int:
    async with db.reading() as session:
        return int(await session.scalar(select(func.count()).select_from(inbox)) or 0)


async def test_an_event_is_applied_once_per_consumer(db: Database) -> None:
    event = new_event("order.created", "test", {})
    applied: list[str] = []

    async def apply(_session: AsyncSession, e: Envelope) -> None:
        applied.append(e.id)

    box = Inbox(db, "cart")
    assert [await box.handle_once(event, apply) for _ in range(3)] == [True, False, False]
    assert await Inbox(db, "notification").handle_once(event, apply)
    assert applied == [event.id, event.id]
    assert await _rows(db) == 2


async def test_a_failed_effect_records_nothing(db: Database) -> None:
    event = new_event("order.created", "test", {})

    async def explode(_session: AsyncSession, _e: Envelope) -> None:
        raise ValueError("effect failed")

    with contextlib.suppress(ValueError):
        await Inbox(db, "cart").handle_once(event, explode)
    assert await _rows(db) == 0


async def test_concurrent_duplicates_apply_once(db: Database) -> None:
    event = new_event("order.created", "test", {})
    applied: list[str] = []

    async def apply(_session: AsyncSession, e: Envelope) -> None:
        await asyncio.sleep(0.01)  # the duplicates overlap while this one is open
        applied.append(e.id)

    box = Inbox(db, "cart")
    results = await asyncio.gather(
        *(box.handle_once(event, apply) for _ in range(5)), return_exceptions=True
    )
    # A loser either saw the winner's row (False) or, on PostgreSQL, may have waited on
    # the key and then found it: never a second application.
    assert applied == [event.id]
    assert sum(result is True for result in results) == 1
    assert await _rows(db) == 1
