"""Databases for tests: a migrated SQLite file in a temp folder, or a fresh database of
either backend (PostgreSQL from BAZAAR_TEST_POSTGRES_URL) for one test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from sqlalchemy import MetaData
from sqlalchemy.engine import make_url

from bazaar.platform.db import Database
from bazaar.platform.migrations import migrate
from bazaar.testing.servers import require_external

POSTGRES_URL_VARIABLE = "BAZAAR_TEST_POSTGRES_URL"
DATABASE_BACKENDS = ("sqlite", "postgresql")


def migrated_database(migrations_dir: Path, folder: Path, name: str = "test") -> Database:
    url = f"sqlite+aiosqlite:///{folder / f'{name}.db'}"
    migrate(migrations_dir, url)
    return Database(url)


@asynccontextmanager
async def provisioned_database(
    backend: str, schema: Path | MetaData, folder: Path, name: str
) -> AsyncIterator[str]:
    """A fresh database of `backend` for one test, migrated (`schema` is a migrations
    folder) or with the tables of a MetaData created; yields its URL. PostgreSQL gets a
    throwaway database on the server at BAZAAR_TEST_POSTGRES_URL."""

    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{folder / f'{name}.db'}"
        await _create_schema(schema, url)
        yield url
        return
    admin = make_url(require_external(POSTGRES_URL_VARIABLE, "PostgreSQL"))
    database = f"{name}_test_{uuid.uuid4().hex[:12]}"
    server = await asyncpg.connect(admin.set(drivername="postgresql").render_as_string(False))
    try:
        await server.execute(f'CREATE DATABASE "{database}"')
        url = admin.set(database=database).render_as_string(hide_password=False)
        await _create_schema(schema, url)
        yield url
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await server.close()


@asynccontextmanager
async def fresh_database(
    backend: str, schema: Path | MetaData, folder: Path, name: str
) -> AsyncIterator[Database]:
    """`provisioned_database`'s database as a `Database`, disposed before it is dropped."""
    async with provisioned_database(backend, schema, folder, name) as url:
        database = Database(url)
        try:
            yield database
        finally:
            await database.dispose()


async def _create_schema(schema: Path | MetaData, url: str) -> None:
    if isinstance(schema, Path):
        await asyncio.to_thread(migrate, schema, url)
        return
    database = Database(url)
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(schema.create_all)
    finally:
        await database.dispose()
