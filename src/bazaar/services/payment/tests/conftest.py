from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bazaar.services.payment.bootstrap import MIGRATIONS, build_app
from bazaar.services.payment.domain import ProcessorMode
from bazaar.services.payment.settings import PaymentSettings
from bazaar.services.payment.tests.fakes import HeldProcessor
from bazaar.testing import migrated_database


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = PaymentSettings(home=tmp_path, environment="test")
    app = build_app(settings, db=migrated_database(MIGRATIONS, tmp_path))
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
    tmp_path: Path, held_processor: HeldProcessor
) -> AsyncIterator[httpx.AsyncClient]:
    """The service with a processor that, in `slow` mode, answers when the test says so."""
    settings = PaymentSettings(home=tmp_path, environment="test")
    app = build_app(settings, db=migrated_database(MIGRATIONS, tmp_path), processor=held_processor)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://payment") as c,
    ):
        yield c
