"""Shopping against a cluster, judged through the API and the services' PostgreSQL
databases (the fault tests' helpers read SQLite files)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from bazaar.runner.check import find_violations
from bazaar.runner.home import Home
from bazaar.runner.inspect_commands import cluster_databases
from bazaar.runner.platform import Platform
from tests.faults.shop import Batch, GaveUp, Shopper, persist, set_cart

FINAL = {"paid", "cancelled"}


async def cart_emptied(api: httpx.AsyncClient, shopper: Shopper, patience: float = 90.0) -> None:
    """Wait until the cart applied the last order.created (it empties the cart)."""
    give_up_at = time.monotonic() + patience
    while True:
        response = await persist(lambda: api.get("/api/cart", headers=shopper.headers))
        if not response.json()["items"]:
            return
        if time.monotonic() > give_up_at:
            raise GaveUp(f"the cart of {shopper.email} was never emptied")
        await asyncio.sleep(0.2)


async def final_order(
    api: httpx.AsyncClient, shopper: Shopper, order_id: str, patience: float = 120.0
) -> dict[str, Any]:
    give_up_at = time.monotonic() + patience
    while True:
        response = await persist(
            lambda: api.get(f"/api/orders/{order_id}", headers=shopper.headers)
        )
        order: dict[str, Any] = response.json()
        if order["status"] in FINAL:
            return order
        if time.monotonic() > give_up_at:
            raise GaveUp(f"order {order_id} still {order['status']} after {patience} s")
        await asyncio.sleep(0.25)


async def buy(
    api: httpx.AsyncClient, shopper: Shopper, lines: dict[str, int], batch: Batch
) -> dict[str, Any]:
    """Fill the cart, check out (one Idempotency-Key, retried), wait until final."""
    await cart_emptied(api, shopper)
    await set_cart(api, shopper, lines)
    key = uuid.uuid4().hex
    batch.submitted += 1
    response = await persist(
        lambda: api.post("/api/checkout", headers={**shopper.headers, "Idempotency-Key": key}),
        ok={201},
        patience=90.0,
        what="checkout",
    )
    order_id: str = response.json()["order_id"]
    batch.owners[order_id] = shopper
    batch.returned += 1
    order = await final_order(api, shopper, order_id)
    batch.final_at[order_id] = time.monotonic()
    batch.final[order_id] = order
    return order


async def shop_rounds(
    api: httpx.AsyncClient,
    shoppers: list[Shopper],
    lines: dict[str, int],
    batch: Batch,
    *,
    rounds: int,
    after_each: Callable[[Batch], Awaitable[None]] | None = None,
) -> None:
    async def shop(shopper: Shopper) -> None:
        for _ in range(rounds):
            await buy(api, shopper, lines, batch)
            if after_each:
                await after_each(batch)

    await asyncio.gather(*(shop(s) for s in shoppers))


def checker_findings(cluster: Platform) -> list[str]:
    """What `bazaar check` finds in the cluster's PostgreSQL databases and maildir."""
    # The password of CI's server is not in runner.json; the platform was given it.
    server = cluster.cluster.postgres_url if cluster.cluster else None
    urls = cluster_databases(Home(cluster.home.root), server)
    assert urls, "the cluster's runner.json names no databases"
    return [
        f"{v.kind} {v.subject}: {v.detail}" for v in find_violations(cluster.home.root, urls=urls)
    ]
