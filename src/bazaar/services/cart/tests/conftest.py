from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from bazaar.platform.bus import Bus
from bazaar.platform.db import Database
from bazaar.services.cart.bootstrap import MIGRATIONS, build_app
from bazaar.services.cart.pricing import Pricing
from bazaar.services.cart.settings import CartSettings
from bazaar.services.cart.tests.fakes import PRODUCTS, FakeCatalog
from bazaar.testing import DATABASE_BACKENDS, TokenMinter, fresh_database


@pytest.fixture
def minter() -> TokenMinter:
    return TokenMinter()


@pytest.fixture
def catalog() -> FakeCatalog:
    return FakeCatalog(PRODUCTS)


@pytest.fixture
def pricing(catalog: FakeCatalog) -> Pricing | None:
    """The app's Pricing; None makes build_app use the real one over the bus."""
    return catalog


@pytest.fixture
def bus() -> Bus:
    # The in-memory broker: each test (a loop of its own) starts it empty.
    return Bus("memory://cart", "cart")


@pytest.fixture(params=DATABASE_BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """Every database test runs on SQLite and on PostgreSQL."""
    async with fresh_database(request.param, MIGRATIONS, tmp_path, "cart") as database:
        yield database


@pytest.fixture
def settings(tmp_path: Path) -> CartSettings:
    return CartSettings(home=tmp_path, environment="test")


@pytest.fixture
def app(
    settings: CartSettings, db: Database, bus: Bus, minter: TokenMinter, pricing: Pricing | None
) -> FastAPI:
    return build_app(settings, db=db, bus=bus, verifier=minter.verifier(), pricing=pricing)


@pytest.fixture
async def client(app: FastAPI, bus: Bus) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cart") as c,
    ):
        yield c
