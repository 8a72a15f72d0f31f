"""The repository's saga bookkeeping on a real SQLite: claims, leases, fencing."""

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bazaar.platform.db import Database
from bazaar.services.order import domain
from bazaar.services.order.domain import CartLine, Order, Outcome, SagaPolicy
from bazaar.services.order.store import OrderRepository
from bazaar.services.order.tests.fakes import CATALOG

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
LEASE = NOW + timedelta(seconds=30)
POLICY = SagaPolicy(
    timedelta(seconds=30), timedelta(seconds=5), timedelta(seconds=1), timedelta(seconds=8)
)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


async def add_order(db: Database, order_id: str, at: datetime = NOW) -> Order:
    order = domain.place_order(
        order_id, "ann", "ann@example.com", [CartLine("p-tea", 1)], CATALOG, at
    )
    async with db.transaction() as session:
        await OrderRepository(session).add(order, None)
    return order


async def claim(
    db: Database, now: datetime = NOW, exclude: tuple[str, ...] = ()
) -> list[tuple[str, int]]:
    async with db.transaction() as session:
        return await OrderRepository(session).claim_due(
            now, now + timedelta(seconds=30), 10, exclude
        )


async def test_an_order_round_trips(db: Database) -> None:
    order = await add_order(db, "o1")
    async with db.transaction() as session:
        assert await OrderRepository(session).get("o1") == order
        assert await OrderRepository(session).of_user("bob", "o1") is None


async def test_a_due_order_is_claimed_by_one_runner_at_a_time(db: Database) -> None:
    await add_order(db, "o1")
    await add_order(db, "later", at=NOW + timedelta(minutes=5))
    assert await claim(db) == [("o1", 1)]
    assert await claim(db) == []  # leased
    assert await claim(db, NOW + timedelta(seconds=31)) == [("o1", 2)]  # the lease ran out
    assert await claim(db, NOW + timedelta(minutes=6), exclude=("o1",)) == [("later", 1)]


async def test_a_runner_whose_lease_was_taken_over_cannot_write(db: Database) -> None:
    await add_order(db, "o1")
    [(_, mine)] = await claim(db)
    [(_, theirs)] = await claim(db, NOW + timedelta(seconds=31))
    async with db.transaction() as session:
        order = await OrderRepository(session).get("o1")
    assert order is not None
    assert order.version == theirs != mine
    stale = domain.advance(order, Outcome.DONE, NOW, POLICY)
    async with db.transaction() as session:
        repository = OrderRepository(session)
        assert await repository.save(replace(stale, version=mine), lease_until=None) is None
        saved = await repository.save(stale, lease_until=None)
    assert saved is not None
    assert saved.version == theirs + 1
    async with db.transaction() as session:
        assert await OrderRepository(session).get("o1") == saved


async def test_leases_are_given_back(db: Database) -> None:
    await add_order(db, "o1")
    await add_order(db, "o2")
    claims = await claim(db)
    async with db.transaction() as session:
        await OrderRepository(session).release_leases(claims[:1])
    assert await claim(db) == [(claims[0][0], claims[0][1] + 1)]
    async with db.transaction() as session:
        assert await OrderRepository(session).release_all_leases() == 2
    assert len(await claim(db)) == 2


async def test_final_orders_are_never_claimed(db: Database) -> None:
    order = await add_order(db, "o1")
    cancelled = domain.advance(order, Outcome.REFUSED, NOW, POLICY)
    async with db.transaction() as session:
        assert await OrderRepository(session).save(cancelled, lease_until=None)
    assert await claim(db, NOW + timedelta(days=1)) == []
