from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bazaar.platform.db import Database
from bazaar.services.payment.bootstrap import MIGRATIONS, build_app
from bazaar.services.payment.domain import ProcessorMode
from bazaar.services.payment.settings import PaymentSettings
from bazaar.services.payment.tests.fakes import HeldProcessor
from bazaar.testing import DATABASE_BACKENDS, fresh_database


@pytest.fixture(params=DATABASE_BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """Every database test runs on SQLite and on PostgreSQL."""
    async with fresh_database(request.param, MIGRATIONS, tmp_path, "payment") as database:
        yield database


@pytest.fixture
async def client(tmp_path: Path, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    settings = PaymentSettings(home=tmp_path, environment="test")
    app = build_app(settings, db=db)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://payment") as c,
    ):
        yield c


@pytest.fixture
def held_processor() -> HeldProcessor:
    return HeldProcessor(ProcessorMode.OK, slow_seconds=0)


@pytest.fixture
async def slow_client(
    tmp_path: Path, db: Database, held_processor: HeldProcessor
) -> AsyncIterator[httpx.AsyncClient]:
    """The service with a processor that, in `slow` mode, answers when the test says so."""
    settings = PaymentSettings(home=tmp_path, environment="test")
    app = build_app(settings, db=db, processor=held_processor)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://payment") as c,
    ):
        yield c
