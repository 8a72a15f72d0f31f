"""What the order service's tests share: a running service over fakes (`Shop`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from bazaar.platform.bus import Bus
from bazaar.platform.db import Database
from bazaar.platform.messaging_tables import outbox
from bazaar.services.order.bootstrap import build_app
from bazaar.services.order.domain import Order
from bazaar.services.order.settings import OrderSettings
from bazaar.services.order.store import OrderRepository
from bazaar.services.order.tests.fakes import FakeCarts, FakeInventory, FakePayments, FakePricing
from bazaar.testing import TokenMinter

# Short clocks, so that retries, deadlines and streams take milliseconds.
FAST: dict[str, Any] = {
    "environment": "test",
    "payment_deadline_seconds": 2.0,
    "payment_refund_grace_seconds": 0.05,
    "saga_retry_initial_seconds": 0.01,
    "saga_retry_max_seconds": 0.05,
    "saga_poll_seconds": 0.02,
    "saga_lease_seconds": 5.0,
    "order_events_poll_seconds": 0.02,
    "order_events_max_seconds": 5.0,
}


@dataclass
class Neighbours:
    inventory: FakeInventory = field(default_factory=FakeInventory)
    payments: FakePayments = field(default_factory=FakePayments)
    carts: FakeCarts = field(default_factory=FakeCarts)
    pricing: FakePricing = field(default_factory=FakePricing)


@dataclass
class Shop:
    """A running order service over fakes, and what a test does with it."""

    app: FastAPI
    client: httpx.AsyncClient
    minter: TokenMinter
    neighbours: Neighbours
    db: Database
    bus: Bus

    def auth(self, user_id: str) -> dict[str, str]:
        return self.minter.headers(user_id, email=f"{user_id}@example.com")

    async def checkout(self, user_id: str, key: str | None = None) -> httpx.Response:
        headers = self.auth(user_id)
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.client.post("/api/checkout", headers=headers)

    async def place(self, user_id: str, *lines: tuple[str, int]) -> str:
        """Fill the user's cart and check out; the order id."""
        self.neighbours.carts.put(user_id, *lines)
        answer = await self.checkout(user_id)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["order_id"])

    async def order(self, order_id: str) -> Order:
        async with self.db.transaction() as session:
            order = await OrderRepository(session).get(order_id)
        assert order is not None
        return order

    async def until(self, order_id: str, done: Callable[[Order], bool]) -> Order:
        """Wait (up to 5 s) until `done(order)` holds; the database is polled."""
        for _ in range(500):
            order = await self.order(order_id)
            if done(order):
                return order
            await asyncio.sleep(0.01)
        raise AssertionError(f"order {order_id} never got there: {order}")

    async def final(self, order_id: str) -> Order:
        return await self.until(order_id, lambda o: o.is_final)

    async def events(self, order_id: str) -> list[str]:
        async with self.db.transaction() as session:
            rows = await session.execute(select(outbox.c.envelope).order_by(outbox.c.seq))
        return [e["type"] for (e,) in rows if e["subject"] == order_id]

    async def event_data(self, order_id: str, event_type: str) -> dict[str, Any]:
        async with self.db.transaction() as session:
            rows = await session.execute(
                select(outbox.c.envelope).where(outbox.c.event_type == event_type)
            )
        [data] = [e["data"] for (e,) in rows if e["subject"] == order_id]
        return dict(data)


@asynccontextmanager
async def running_shop(
    tmp_path: Path,
    database_url: str,
    minter: TokenMinter,
    neighbours: Neighbours,
    **overrides: Any,
) -> AsyncIterator[Shop]:
    settings = OrderSettings(home=tmp_path, **{**FAST, **overrides})
    db = Database(database_url)
    bus = Bus("memory://order", "order")  # each test (a loop of its own) starts it empty
    app = build_app(
        settings,
        db=db,
        bus=bus,
        token_verifier=minter.verifier(),
        inventory=neighbours.inventory,
        payments=neighbours.payments,
        carts=neighbours.carts,
        pricing=neighbours.pricing,
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://order") as client,
    ):
        yield Shop(app, client, minter, neighbours, db, bus)
