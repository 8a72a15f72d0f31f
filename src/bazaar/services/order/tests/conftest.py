from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bazaar.services.order.bootstrap import MIGRATIONS
from bazaar.services.order.tests.support import Neighbours, Shop, running_shop
from bazaar.testing import DATABASE_BACKENDS, TokenMinter, provisioned_database


@pytest.fixture(params=DATABASE_BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Every database test runs on SQLite and on PostgreSQL."""
    async with provisioned_database(request.param, MIGRATIONS, tmp_path, "order") as url:
        yield url


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
