"""SQLite for SQLAlchemy's asyncio engine without a thread hop per call.

SQLAlchemy's `sqlite+aiosqlite` driver hands every DBAPI call (cursor, execute, fetch,
close, commit) to aiosqlite's worker thread and waits for the answer: each hand-off wakes
a thread and then the event loop, several per statement. On a local file a statement
takes microseconds, and the hand-offs cost ten times more CPU than the SQL (about 1 ms
per small transaction against 0.1 ms). This module is an aiosqlite look-alike whose
coroutines call `sqlite3` at once, in the event loop's thread; SQLAlchemy's own aiosqlite
adapter drives it unchanged (`create_async_engine(url, module=dbapi())`).

Running SQL in the loop's thread is safe only if no call waits on a lock for long: WAL
readers never wait, and `bazaar.platform.db.Database` queues its write transactions on
an asyncio lock per database file, so a second writer of this process waits in the loop,
not in `sqlite3` (where it would block the first writer from ever finishing). A writer in
another process (a migration, `bazaar seed`) can still make a statement wait up to the
busy timeout; those are short and rare.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Generator, Iterable
from types import SimpleNamespace
from typing import Any

from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi

# What SQLAlchemy's adapter copies from the driver module.
DatabaseError = sqlite3.DatabaseError
Error = sqlite3.Error
IntegrityError = sqlite3.IntegrityError
NotSupportedError = sqlite3.NotSupportedError
OperationalError = sqlite3.OperationalError
ProgrammingError = sqlite3.ProgrammingError
sqlite_version = sqlite3.sqlite_version
sqlite_version_info = sqlite3.sqlite_version_info
__version__ = "inline"


class Cursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Any = None) -> Cursor:
        if parameters is None:
            self._cursor.execute(sql)
        else:
            self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> Cursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def setinputsizes(self, *_: object) -> None:
        return None

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class _RunNow:
    """Stands in for aiosqlite's request queue, which SQLAlchemy's adapter uses directly
    to change the isolation level: the function runs at once, its future gets the result."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:
            future.set_exception(exc)


class Connection:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self._connection: sqlite3.Connection | None = connection  # truthy while open
        self._tx = _RunNow(connection)

    def cursor(self) -> Cursor:
        return Cursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Any = None) -> Cursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    def stop(self) -> None:
        """Terminate: there is no thread to stop, only the connection to close."""
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level


class _Opening:
    """What `connect()` returns: awaited, the open connection. SQLAlchemy's adapter marks
    aiosqlite's worker thread as a daemon before awaiting; there is none here."""

    _thread = SimpleNamespace(daemon=True)

    def __init__(self, database: str, kwargs: dict[str, Any]) -> None:
        self._database = database
        self._kwargs = kwargs

    def __await__(self) -> Generator[Any, None, Connection]:
        return self._open().__await__()

    async def _open(self) -> Connection:
        # The connection is used from whichever thread runs the event loop that owns it;
        # check_same_thread would refuse an engine disposed from another thread at exit.
        self._kwargs.setdefault("check_same_thread", False)
        return Connection(sqlite3.connect(self._database, **self._kwargs))


def connect(database: str, **kwargs: Any) -> _Opening:
    return _Opening(database, kwargs)


def dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The driver module to pass as `create_async_engine(..., module=dbapi())`."""
    import sys

    return AsyncAdapt_aiosqlite_dbapi(sys.modules[__name__], sqlite3)
