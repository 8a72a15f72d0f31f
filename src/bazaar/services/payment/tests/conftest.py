from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bazaar.platform.testing import migrated_database
from bazaar.services.payment.bootstrap import MIGRATIONS, build_app
from bazaar.services.payment.settings import PaymentSettings


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
async def slow_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The service with a processor that takes 0.5 s in `slow` mode."""
    settings = PaymentSettings(home=tmp_path, environment="test", payment_slow_seconds=0.5)
    app = build_app(settings, db=migrated_database(MIGRATIONS, tmp_path))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://payment") as c,
    ):
        yield c
