import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import grpc
import pytest
from faststream.nats import JStream, TestNatsBroker
from sqlalchemy.engine import make_url

from bazaar.contracts.generated import inventory_pb2_grpc
from bazaar.platform.bus import Bus
from bazaar.platform.db import Database
from bazaar.platform.events import EVENTS_STREAM, event_subject
from bazaar.platform.migrations import migrate
from bazaar.platform.testing import migrated_database
from bazaar.services.inventory.bootstrap import MIGRATIONS, InventoryProcess, build_inventory
from bazaar.services.inventory.domain import SeedStock
from bazaar.services.inventory.settings import InventorySettings
from bazaar.services.inventory.tests.support import Published


@pytest.fixture
def settings(tmp_path: Path) -> InventorySettings:
    return InventorySettings(
        home=tmp_path, host="127.0.0.1", port=0, environment="test", shutdown_grace_seconds=0.5
    )


# Set to a PostgreSQL server's URL (postgresql+asyncpg://user@host:port/postgres) to run
# every database test on a fresh PostgreSQL database instead of SQLite.
POSTGRES_URL = os.environ.get("BAZAAR_TEST_POSTGRES_URL", "")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    if not POSTGRES_URL:
        yield migrated_database(MIGRATIONS, tmp_path, "inventory")
        return
    admin = make_url(POSTGRES_URL)
    name = f"inventory_test_{uuid.uuid4().hex[:12]}"
    server = await asyncpg.connect(admin.set(drivername="postgresql").render_as_string(False))
    try:
        await server.execute(f'CREATE DATABASE "{name}"')
        url = admin.set(database=name).render_as_string(hide_password=False)
        await asyncio.to_thread(migrate, MIGRATIONS, url)
        database = Database(url)
        yield database
        await database.dispose()
    finally:
        await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await server.close()


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
async def inventory(
    settings: InventorySettings, db: Database, published: Published
) -> AsyncIterator[InventoryProcess]:
    bus = Bus(settings.broker_url, "inventory")

    @bus.broker.subscriber(event_subject("stock.changed"), stream=JStream(EVENTS_STREAM))
    async def collect(body: str) -> None:
        published.add(json.loads(body))

    process = build_inventory(settings, db=db, bus=bus)
    async with TestNatsBroker(bus.broker):
        await process.start()
        try:
            yield process
        finally:
            await process.stop()


@pytest.fixture
async def channel(inventory: InventoryProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{inventory.port}") as channel:
        yield channel


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> inventory_pb2_grpc.InventoryStub:
    return inventory_pb2_grpc.InventoryStub(channel)


@pytest.fixture
def stock(inventory: InventoryProcess) -> Callable[..., Awaitable[None]]:
    """`await stock(p1=5, p2=0)`: give products their initial units."""

    async def seed(**units: int) -> None:
        await inventory.service.seed(SeedStock(tuple(units.items())))

    return seed
