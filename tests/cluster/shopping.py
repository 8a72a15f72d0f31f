"""Shopping against a cluster, judged through the API and the services' PostgreSQL
databases (the fault tests' helpers read SQLite files)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from bazaar.runner.check import find_violations
from bazaar.runner.home import Home
from bazaar.runner.inspect_commands import cluster_databases
from bazaar.runner.platform import Platform
from tests.faults.shop import Batch, GaveUp, Shopper, checkout, persist, set_cart, set_carts

FINAL = {"paid", "cancelled"}
# A checkout is retried with its key for this long (hundreds at once queue for seconds).
CHECKOUT_PATIENCE = 180.0


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


# --- many shoppers, watched from the side ------------------------------------------------


def database_dsn(cluster: Platform, service: str) -> str:
    """The libpq URL (asyncpg, psycopg) of a service's database in the cluster."""
    server = cluster.cluster.postgres_url if cluster.cluster else None
    urls = cluster_databases(Home(cluster.home.root), server) or {}
    return make_url(urls[service]).set(drivername="postgresql").render_as_string(False)


class Watcher:
    """Watches a batch's orders in the cluster's PostgreSQL databases, read-only, the way
    tests/faults watches SQLite: one query a quarter of a second for every order not yet
    final (the order database) and every order.created not yet applied by the cart (the
    order's outbox, the cart's inbox). Hundreds of shoppers polling their orders through
    the gateway instead would take most of two cores from the replicas under test.

    `batch.final_at` gets the moment each order was first seen final, `batch.applied`
    each order whose order.created the cart applied; `final(order_id)` and
    `applied(order_id)` wait for those."""

    EVERY = 0.25

    def __init__(self, cluster: Platform, batch: Batch) -> None:
        self._order_dsn = database_dsn(cluster, "order")
        self._cart_dsn = database_dsn(cluster, "cart")
        self._batch = batch
        self._final: dict[str, asyncio.Event] = {}
        self._applied: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        self._task = asyncio.create_task(self._run(), name="order-watcher")
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def final(self, order_id: str, patience: float = 240.0) -> None:
        await self._wait(self._final, order_id, patience, "final")

    async def applied(self, order_id: str, patience: float = 120.0) -> None:
        await self._wait(self._applied, order_id, patience, "order.created applied by the cart")

    async def _wait(
        self, events: dict[str, asyncio.Event], order_id: str, patience: float, what: str
    ) -> None:
        seen = events.setdefault(order_id, asyncio.Event())
        try:
            async with asyncio.timeout(patience):
                await seen.wait()
        except TimeoutError:
            raise GaveUp(f"order {order_id} not seen {what} after {patience} s") from None

    async def _run(self) -> None:
        orders: asyncpg.Connection | None = None
        carts: asyncpg.Connection | None = None
        try:
            while True:
                try:
                    orders = orders or await asyncpg.connect(self._order_dsn, timeout=5)
                    carts = carts or await asyncpg.connect(self._cart_dsn, timeout=5)
                    await self._look(orders, carts)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    for connection in (orders, carts):
                        if connection is not None:
                            connection.terminate()
                    orders = carts = None
                await asyncio.sleep(self.EVERY)
        finally:
            for connection in (orders, carts):
                if connection is not None:
                    connection.terminate()

    async def _look(self, orders: asyncpg.Connection, carts: asyncpg.Connection) -> None:
        batch = self._batch
        pending = [o for o in batch.owners if o not in batch.final_at]
        unapplied = [o for o in batch.owners if o not in batch.applied]
        if pending:
            rows = await orders.fetch(
                "SELECT id, status FROM orders WHERE id = ANY($1::text[])", pending
            )
            now = time.monotonic()
            for order_id, status in rows:
                if status in FINAL:
                    batch.final_at[order_id] = now
                    self._final.setdefault(order_id, asyncio.Event()).set()
        if unapplied:
            created = await orders.fetch(
                "SELECT event_id, envelope->'data'->>'order_id' FROM outbox"
                " WHERE event_type = 'order.created'"
                " AND envelope->'data'->>'order_id' = ANY($1::text[])",
                unapplied,
            )
            event_order = {event_id: order_id for event_id, order_id in created}
            rows = await carts.fetch(
                "SELECT event_id FROM inbox WHERE consumer = 'cart' AND event_id = ANY($1::text[])",
                list(event_order),
            )
            for (event_id,) in rows:
                batch.applied.add(event_order[event_id])
                self._applied.setdefault(event_order[event_id], asyncio.Event()).set()


async def keep_checking_out(
    api: httpx.AsyncClient,
    watcher: Watcher,
    shoppers: list[Shopper],
    lines: dict[str, int],
    batch: Batch,
    *,
    rounds: int,
    go_on: Callable[[], bool] = lambda: True,
) -> None:
    """Every shopper checks out again and again, back to back, so that about one checkout
    per shopper stays in flight: up to `rounds` times each, and again only while `go_on()`
    holds when its checkout returns. The carts are filled before the first checkout
    (`batch.started` is then set); while an order is in flight its shopper waits until
    the cart applied its order.created (which takes the lines out), fills the cart again,
    and checks out again the moment the order is seen final. Each checkout is retried
    with its Idempotency-Key until it answers 201."""
    await set_carts(api, shoppers, lines)
    batch.started = time.monotonic()

    async def shop(shopper: Shopper) -> None:
        for round_ in range(rounds):
            order_id = await checkout(api, shopper, batch, patience=CHECKOUT_PATIENCE)
            again = round_ + 1 < rounds and go_on()
            if again:
                await watcher.applied(order_id)
                await set_cart(api, shopper, lines)
            await watcher.final(order_id)
            if not again:
                return

    await asyncio.gather(*(shop(s) for s in shoppers))
