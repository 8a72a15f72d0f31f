"""Two inventory replicas on one PostgreSQL database, as the cluster runs them: two
processes (each its own gRPC server on its own port, its own connection pool, its own
outbox relay) sharing the stock rows. Concurrent Reserve calls spread over both never
sell a unit twice: the row locks (SELECT ... FOR UPDATE) are taken in the database, not in
a process, and the check constraint would refuse an oversell anyway.

PostgreSQL only: SQLite is one file for one process. Without BAZAAR_TEST_POSTGRES_URL the
tests skip (fail in CI), as every PostgreSQL test does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import grpc
import pytest
from sqlalchemy import select

from bazaar.contracts.generated import inventory_pb2 as pb
from bazaar.contracts.generated.inventory_pb2_grpc import InventoryStub
from bazaar.platform.bus import Bus
from bazaar.platform.db import Database
from bazaar.services.inventory.bootstrap import MIGRATIONS, build_inventory
from bazaar.services.inventory.domain import SeedStock
from bazaar.services.inventory.settings import InventorySettings
from bazaar.services.inventory.store import reservations_table, stock_table
from bazaar.services.inventory.tests.test_grpc import OUT_OF_STOCK, RESERVED, levels, reserve
from bazaar.testing import provisioned_database

UNITS = 10
ORDERS = 60


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    async with provisioned_database("postgresql", MIGRATIONS, tmp_path, "inventory") as url:
        yield url


@pytest.fixture
async def replicas(
    settings: InventorySettings, database_url: str
) -> AsyncIterator[list[InventoryStub]]:
    """Two inventory processes on the one database, p1 stocked with UNITS and p2 with 100
    (through the first; both read the same rows); a stub of each, on its own channel."""
    async with AsyncExitStack() as stack:
        processes, stubs = [], []
        for _ in range(2):
            process = build_inventory(
                settings, db=Database(database_url), bus=Bus("memory://inventory", "inventory")
            )
            await process.start()
            stack.push_async_callback(process.stop)
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{process.port}")
            stack.push_async_callback(channel.close)
            processes.append(process)
            stubs.append(InventoryStub(channel))
        assert processes[0].port != processes[1].port
        await processes[0].service.seed(SeedStock((("p1", UNITS), ("p2", 100))))
        yield stubs


async def stock_rows(database_url: str) -> dict[str, tuple[int, int]]:
    """product id -> (on_hand, reserved), read from the table itself."""
    database = Database(database_url)
    try:
        async with database.transaction() as session:
            rows = await session.execute(
                select(stock_table.c.product_id, stock_table.c.on_hand, stock_table.c.reserved)
            )
            return {product_id: (on_hand, held) for product_id, on_hand, held in rows}
    finally:
        await database.dispose()


async def reserved_orders(database_url: str) -> set[str]:
    database = Database(database_url)
    try:
        async with database.transaction() as session:
            rows = await session.execute(
                select(reservations_table.c.order_id).where(
                    reservations_table.c.state == "reserved"
                )
            )
            return {order_id for (order_id,) in rows}
    finally:
        await database.dispose()


async def test_sixty_orders_for_ten_units_across_two_replicas_reserve_exactly_ten(
    replicas: list[InventoryStub], database_url: str
) -> None:
    # Lines in both orders of product ids: locking must not depend on the request's order.
    requests = [
        reserve(f"o-{i}", p1=1, p2=1) if i % 2 else reserve(f"o-{i}", p2=1, p1=1)
        for i in range(ORDERS)
    ]
    # Every other call to the other replica, all at once.
    answers = await asyncio.gather(*(replicas[i % 2].Reserve(r) for i, r in enumerate(requests)))
    outcomes = [a.outcome for a in answers]
    assert outcomes.count(RESERVED) == UNITS
    assert outcomes.count(OUT_OF_STOCK) == ORDERS - UNITS
    print(f"\nreserved per replica: {[outcomes[n::2].count(RESERVED) for n in (0, 1)]}")

    assert await stock_rows(database_url) == {"p1": (UNITS, UNITS), "p2": (100, UNITS)}
    # Both replicas tell the same levels: p1 all held (none available), p2 ten held.
    seen = [await levels(stub, "p1", "p2") for stub in replicas]
    assert seen[0] == seen[1]
    assert {p: level[:2] for p, level in seen[0].items()} == {
        "p1": (UNITS, UNITS),
        "p2": (100, UNITS),
    }
    winners = [r.order_id for r, a in zip(requests, answers, strict=True) if a.outcome == RESERVED]
    assert await reserved_orders(database_url) == set(winners)

    # Committed on either replica: exactly the ten leave the shelf.
    await asyncio.gather(
        *(replicas[i % 2].Commit(pb.OrderRef(order_id=o)) for i, o in enumerate(winners))
    )
    assert await stock_rows(database_url) == {"p1": (0, 0), "p2": (100 - UNITS, 0)}


async def test_one_order_reserved_on_both_replicas_at_once_is_held_once(
    replicas: list[InventoryStub], database_url: str
) -> None:
    # A saga retried on the other replica while its first Reserve still runs: each of 20
    # orders asks both replicas at the same moment, for 10 units.
    orders = [f"twin-{i}" for i in range(20)]
    answers = await asyncio.gather(
        *(stub.Reserve(reserve(o, p1=1)) for o in orders for stub in replicas)
    )
    by_order = {
        o: {answers[2 * n].outcome, answers[2 * n + 1].outcome} for n, o in enumerate(orders)
    }
    # Both replicas give an order the same answer; ten orders got a unit, each one unit.
    assert all(len(outcomes) == 1 for outcomes in by_order.values()), by_order
    winners = {o for o, outcomes in by_order.items() if outcomes == {RESERVED}}
    assert len(winners) == UNITS
    assert await reserved_orders(database_url) == winners
    assert (await stock_rows(database_url))["p1"] == (UNITS, UNITS)
