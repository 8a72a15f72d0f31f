from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from bazaar.platform.migrations import migrate
from bazaar.platform.testing import TokenMinter
from bazaar.services.order.bootstrap import MIGRATIONS
from bazaar.services.order.tests.support import Neighbours, Shop, running_shop

# Set to a PostgreSQL server's URL (postgresql+asyncpg://user@host:port/postgres) to run
# every database test on a fresh PostgreSQL database instead of SQLite.
POSTGRES_URL = os.environ.get("BAZAAR_TEST_POSTGRES_URL", "")


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    if not POSTGRES_URL:
        url = f"sqlite+aiosqlite:///{tmp_path / 'order.db'}"
        migrate(MIGRATIONS, url)
        yield url
        return
    admin = make_url(POSTGRES_URL)
    name = f"order_test_{uuid.uuid4().hex[:12]}"
    server = await asyncpg.connect(admin.set(drivername="postgresql").render_as_string(False))
    try:
        await server.execute(f'CREATE DATABASE "{name}"')
        url = admin.set(database=name).render_as_string(hide_password=False)
        await asyncio.to_thread(migrate, MIGRATIONS, url)
        yield url
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()


@pytest.fixture
def minter() -> TokenMinter:
    return TokenMinter()


@pytest.fixture
def neighbours() -> Neighbours:
    return Neighbours()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Tests override this fixture (or parametrize it) to change the service's settings."""
    return {}


@pytest.fixture
async def shop(
    tmp_path: Path,
    database_url: str,
    minter: TokenMinter,
    neighbours: Neighbours,
    settings_overrides: dict[str, Any],
) -> AsyncIterator[Shop]:
    async with running_shop(
        tmp_path, database_url, minter, neighbours, **settings_overrides
    ) as running:
        yield running
