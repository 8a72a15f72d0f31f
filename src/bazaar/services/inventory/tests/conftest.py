from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from bazaar.contracts.generated import inventory_pb2_grpc
from bazaar.platform.bus import Bus
from bazaar.platform.db import Database
from bazaar.platform.events import Envelope
from bazaar.services.inventory.bootstrap import MIGRATIONS, InventoryProcess, build_inventory
from bazaar.services.inventory.domain import SeedStock
from bazaar.services.inventory.settings import InventorySettings
from bazaar.services.inventory.tests.support import Published
from bazaar.testing import DATABASE_BACKENDS, fresh_database


@pytest.fixture
def settings(tmp_path: Path) -> InventorySettings:
    return InventorySettings(
        home=tmp_path, host="127.0.0.1", port=0, environment="test", shutdown_grace_seconds=0.5
    )


@pytest.fixture(params=DATABASE_BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """Every database test runs on SQLite and on PostgreSQL."""
    async with fresh_database(request.param, MIGRATIONS, tmp_path, "inventory") as database:
        yield database


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
async def inventory(
    settings: InventorySettings, db: Database, published: Published
) -> AsyncIterator[InventoryProcess]:
    # memory://: each test (a loop of its own) gets an empty broker; a second bus on it
    # stands for the consumers of stock.changed.
    bus = Bus("memory://inventory", "inventory")
    consumers = Bus("memory://inventory", "consumers")

    async def collect(event: Envelope) -> None:
        published.add(event.model_dump(mode="json"))

    consumers.on_event("stock.changed", "consumers", collect)
    process = build_inventory(settings, db=db, bus=bus)
    await consumers.start()
    await process.start()
    try:
        yield process
    finally:
        await process.stop()
        await consumers.stop()


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
