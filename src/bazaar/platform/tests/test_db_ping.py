"""Readiness pings the database without queueing behind, or stalling, its writers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from bazaar.platform.db import Database


async def test_a_ping_during_a_unit_of_work_answers_at_once(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'ping.db'}")
    try:
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER)"))
        inside, pinged = asyncio.Event(), asyncio.Event()

        async def unit_of_work() -> None:
            async with db.transaction() as session:
                await session.execute(text("INSERT INTO t VALUES (1)"))
                inside.set()
                await pinged.wait()  # an await while it holds SQLite's write lock

        work = asyncio.create_task(unit_of_work())
        await inside.wait()
        # Before the fix the ping took the write lock too: the loop's thread waited on it
        # for the busy timeout (10 s), and the ping failed with "database is locked".
        async with asyncio.timeout(5):
            await db.ping()
        pinged.set()
        await work
    finally:
        await db.dispose()
