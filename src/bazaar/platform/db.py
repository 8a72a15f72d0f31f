"""Database engine, sessions and a unit of work, one database per service.

SQLite (aiosqlite) in the embedded default, PostgreSQL (asyncpg) by URL; the code above
this module does not know which.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import DateTime, event, text
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.url import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeDecorator

from bazaar.platform import sqlite_inline
from bazaar.platform.telemetry import instrument_engine

# SQLite takes one writer at a time. Writers of this process queue here, in the event
# loop, one lock per database file and loop: in sqlite3 (run in the loop's thread, see
# sqlite_inline) a second writer would block the thread the first needs to finish.
_writer_locks: WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    WeakKeyDictionary()
)
WRITER_WAIT_SECONDS = 10.0  # as long as SQLite's busy timeout below


def _writer_lock(database: str) -> asyncio.Lock:
    by_file = _writer_locks.setdefault(asyncio.get_running_loop(), {})
    lock = by_file.get(database)
    if lock is None:  # made once per file, not on every transaction
        lock = by_file[database] = asyncio.Lock()
    return lock


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC, on SQLite (which keeps no zone) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def tune_sqlite_connection(dbapi_connection: Any, _: Any) -> None:
    # WAL lets readers run beside the single writer; busy_timeout makes writers queue
    # instead of failing with "database is locked" when several tasks write at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    # The driver's own transaction handling starts a transaction only at the first write,
    # so the reads before it see other commits: a unit of work would not be isolated.
    # We begin every transaction ourselves instead (see begin_sqlite_transaction).
    dbapi_connection.isolation_level = None


READ_ONLY = "bazaar_read_only"


def begin_sqlite_transaction(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front: units of work run one after the other,
    # read-then-write races (two checkouts reserving the last unit) cannot happen, and
    # no transaction fails late on a lock upgrade. Read-only sessions take a snapshot
    # instead and run beside the writer (WAL).
    read_only = connection.get_execution_options().get(READ_ONLY, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if parsed.get_driver_name() == "aiosqlite":
            # The same driver, called in the loop's thread (see sqlite_inline).
            kwargs.setdefault("module", sqlite_inline.dbapi())
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", tune_sqlite_connection)
        event.listen(engine.sync_engine, "begin", begin_sqlite_transaction)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


@asynccontextmanager
async def _queued(lock: asyncio.Lock) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(WRITER_WAIT_SECONDS):
            await lock.acquire()
    except TimeoutError:
        raise TimeoutError(
            f"database is locked: another transaction of this process held it for "
            f"{WRITER_WAIT_SECONDS:g} s"
        ) from None
    try:
        yield
    finally:
        lock.release()


class Database:
    """One service's database: the engine, a session factory and a unit of work."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = create_engine(url, **engine_kwargs)
        instrument_engine(self.engine.sync_engine)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )
        # The SQLite file whose writers queue on one lock (see _writer_lock): resolved
        # once, so that every spelling of its path (relative, absolute, a link) shares it.
        database = self.engine.url.database
        self._after_commit: list[Callable[[AsyncSession], None]] = []
        self._sqlite_file = (
            os.path.realpath(database)
            if self.is_sqlite and database and database != ":memory:"
            else None
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: commits on success, rolls back on any exception. After a commit,
        the `after_commit` callbacks see the session (its `info` says what was written)."""
        async with self._one_writer(), self.sessions() as session:
            async with session.begin():
                yield session
            for callback in self._after_commit:
                callback(session)

    def after_commit(self, callback: Callable[[AsyncSession], None]) -> None:
        """Call `callback(session)` after every transaction of this database commits
        (the outbox relay wakes up when one added events)."""
        self._after_commit.append(callback)

    def _one_writer(self) -> AbstractAsyncContextManager[Any]:
        if self._sqlite_file is None:
            return nullcontext()
        return _queued(_writer_lock(self._sqlite_file))

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A consistent read that never waits for, nor blocks, the writers."""
        async with self._read_sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        # A read, not a plain connection: on SQLite that would BEGIN IMMEDIATE outside the
        # writer lock and, meeting a unit of work of this process, wait for it in the
        # loop's thread, which that unit of work needs to finish (the whole process stood
        # still for the busy timeout, and the ping failed).
        async with self.reading() as session:
            await session.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
