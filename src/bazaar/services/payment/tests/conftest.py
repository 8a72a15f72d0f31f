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
