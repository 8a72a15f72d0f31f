from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bazaar.platform.bus import Bus
from bazaar.platform.db import Database
from bazaar.services.catalog.bootstrap import MIGRATIONS, build_app
from bazaar.services.catalog.settings import CatalogSettings
from bazaar.services.catalog.tests.samples import DeadLetters, seed_products
from bazaar.testing import DATABASE_BACKENDS, TokenMinter, fresh_database

BROKER = "catalog"  # memory://: each test (a loop of its own) gets an empty one


@pytest.fixture
def minter() -> TokenMinter:
    return TokenMinter()


@pytest.fixture
def admin(minter: TokenMinter) -> dict[str, str]:
    return minter.headers(roles=["customer", "admin"])


@pytest.fixture
def customer(minter: TokenMinter) -> dict[str, str]:
    return minter.headers(roles=["customer"])


@pytest.fixture(params=DATABASE_BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """Every database test runs on SQLite and on PostgreSQL."""
    async with fresh_database(request.param, MIGRATIONS, tmp_path, "catalog") as database:
        yield database


@pytest.fixture
def bus() -> Bus:
    # One delivery: a failing event is dead-lettered at once, with no retry to wait for.
    return Bus(f"memory://{BROKER}", "catalog", max_deliveries=1)


@pytest.fixture
def dead_letters() -> DeadLetters:
    return DeadLetters(BROKER)


@pytest.fixture
async def client(
    tmp_path: Path, db: Database, bus: Bus, minter: TokenMinter, dead_letters: DeadLetters
) -> AsyncIterator[httpx.AsyncClient]:
    """The catalog with the sample products, on an in-memory broker."""
    await seed_products(db)
    settings = CatalogSettings(home=tmp_path, environment="test")
    app = build_app(settings, db=db, bus=bus, verifier=minter.verifier())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://catalog") as c,
    ):
        yield c
