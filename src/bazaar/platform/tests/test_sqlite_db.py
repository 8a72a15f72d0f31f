"""The SQLite path of `Database`: sqlite3 called in the loop's thread (sqlite_inline),
write transactions of one process queued in the loop rather than in SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bazaar.platform import db as db_module
from bazaar.platform import sqlite_inline
from bazaar.platform.db import Database


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}")
    async with database.transaction() as session:
        await session.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER)"))
        await session.execute(text("INSERT INTO counter VALUES (1, 0)"))
    yield database
    await database.dispose()


async def _count(database: Database) -> int:
    async with database.reading() as session:
        return int(await session.scalar(text("SELECT n FROM counter WHERE id = 1")) or 0)


async def test_the_engine_uses_the_inline_driver(database: Database) -> None:
    async with database.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        # not aiosqlite's Connection, which drives sqlite3 from a worker thread
        assert isinstance(raw.driver_connection, sqlite_inline.Connection)


async def test_concurrent_read_modify_writes_lose_no_update(database: Database) -> None:
    async def increment() -> None:
        async with database.transaction() as session:
            n = await session.scalar(text("SELECT n FROM counter WHERE id = 1"))
            await asyncio.sleep(0)  # another writer gets the chance to interleave
            await session.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})

    await asyncio.gather(*(increment() for _ in range(50)))
    assert await _count(database) == 50


async def test_two_databases_on_one_file_queue_on_the_same_lock(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    first, second = Database(f"sqlite+aiosqlite:///{path}"), Database(f"sqlite+aiosqlite:///{path}")
    async with first.transaction() as session:
        await session.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
    order: list[str] = []

    async def hold_then_write(database: Database, name: str, pause: float) -> None:
        async with database.transaction() as session:
            order.append(f"{name} began")
            await asyncio.sleep(pause)  # awaiting I/O inside a transaction
            await session.execute(text("INSERT INTO t DEFAULT VALUES"))
            order.append(f"{name} ends")

    # Without the shared lock the second BEGIN IMMEDIATE would block the loop's thread
    # while the first transaction still needs that thread to finish.
    await asyncio.wait_for(
        asyncio.gather(hold_then_write(first, "a", 0.05), hold_then_write(second, "b", 0)),
        timeout=5,
    )
    assert order == ["a began", "a ends", "b began", "b ends"]
    await first.dispose()
    await second.dispose()


async def test_a_writer_waiting_too_long_gets_a_clear_error(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "WRITER_WAIT_SECONDS", 0.05)
    holding, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with database.transaction():
            holding.set()
            await release.wait()

    task = asyncio.create_task(holder())
    await asyncio.wait_for(holding.wait(), 10)
    with pytest.raises(TimeoutError, match="database is locked"):
        async with database.transaction():
            pass
    release.set()
    await task


async def test_a_failed_statement_rolls_the_unit_of_work_back(database: Database) -> None:
    with pytest.raises(IntegrityError):
        async with database.transaction() as session:
            await session.execute(text("UPDATE counter SET n = 7 WHERE id = 1"))
            await session.execute(text("INSERT INTO counter VALUES (1, 0)"))
    assert await _count(database) == 0
    async with database.transaction() as session:  # the lock was given back
        await session.execute(text("UPDATE counter SET n = 1 WHERE id = 1"))
    assert await _count(database) == 1


async def test_a_reader_sees_a_snapshot_while_a_writer_holds_the_lock(database: Database) -> None:
    async with database.transaction() as session:
        await session.execute(text("UPDATE counter SET n = 5 WHERE id = 1"))
        assert await asyncio.wait_for(_count(database), timeout=2) == 0  # not blocked
    assert await _count(database) == 5
