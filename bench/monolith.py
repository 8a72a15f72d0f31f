"""The monolith baseline: what a checkout is without the distribution.

The same work as Bazaar's checkout saga — read the cart, price the lines, take the stock,
charge, confirm the order, write the outbox rows, empty the cart — written plainly, in
one process and one database transaction per order, with the same libraries (SQLAlchemy
async, SQLite through `bazaar.platform.db.Database` with its pragmas and driver, the
platform's outbox, the services' event loop). It has its own small schema and imports no
service code: it is a yardstick.

SQLite has one writer: concurrent orders queue for it, so the monolith goes as fast placing
one order at a time (`--concurrency 1`, the default); more is there to see that effect.

    python -m bench.monolith --orders 2000     # prints one JSON line
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.platform import serving
from bazaar.platform.config import ServiceSettings
from bazaar.platform.db import Database, UtcDateTime
from bazaar.platform.events import new_event
from bazaar.platform.messaging_tables import outbox
from bazaar.platform.outbox import add_to_outbox

PRODUCTS = 40
LINES_PER_ORDER = 1
STOCK = 10_000_000

metadata = MetaData()
products = Table(
    "products",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("price_cents", Integer, nullable=False),
    Column("on_hand", Integer, nullable=False),
    Column("version", Integer, nullable=False),
)
carts = Table(
    "cart_lines",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("product_id", String(64), primary_key=True),
    Column("qty", Integer, nullable=False),
)
orders = Table(
    "orders",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(64), nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("total_cents", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)
order_items = Table(
    "order_items",
    metadata,
    Column("order_id", String(64), ForeignKey("orders.id"), primary_key=True),
    Column("product_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("qty", Integer, nullable=False),
    Column("unit_price_cents", Integer, nullable=False),
)
payments = Table(
    "payments",
    metadata,
    Column("order_id", String(64), ForeignKey("orders.id"), primary_key=True),
    Column("amount_cents", Integer, nullable=False),
    Column("status", String(20), nullable=False),
)


class OutOfStock(Exception):
    pass


@dataclass(frozen=True)
class Line:
    product_id: str
    name: str
    qty: int
    unit_price_cents: int


async def checkout(db: Database, user_id: str) -> str:
    """One order, start to paid, in one transaction. Returns the order id."""
    order_id = str(uuid.uuid4())
    async with db.transaction() as session:
        lines = await _priced_cart(session, user_id)
        total = sum(line.qty * line.unit_price_cents for line in lines)
        now = datetime.now(UTC)
        await session.execute(
            insert(orders).values(
                id=order_id, user_id=user_id, status="paid", total_cents=total, created_at=now
            )
        )
        await session.execute(
            insert(order_items), [{"order_id": order_id, **line.__dict__} for line in lines]
        )
        events = [new_event("order.created", "monolith", _order_data(order_id, lines), order_id)]
        for line in lines:
            events.append(await _take_stock(session, line))
        await session.execute(
            insert(payments).values(order_id=order_id, amount_cents=total, status="captured")
        )
        await session.execute(delete(carts).where(carts.c.user_id == user_id))
        events.append(new_event("order.paid", "monolith", _order_data(order_id, lines), order_id))
        await add_to_outbox(session, *events)
    return order_id


async def _priced_cart(session: AsyncSession, user_id: str) -> list[Line]:
    query = (
        select(products.c.id, products.c.name, products.c.price_cents, carts.c.qty)
        .join(carts, carts.c.product_id == products.c.id)
        .where(carts.c.user_id == user_id)
        .order_by(products.c.id)
    )
    rows = (await session.execute(query)).all()
    if not rows:
        raise ValueError(f"the cart of {user_id} is empty")
    return [Line(row.id, row.name, row.qty, row.price_cents) for row in rows]


async def _take_stock(session: AsyncSession, line: Line) -> Any:
    taken = (
        await session.execute(
            update(products)
            .where(products.c.id == line.product_id, products.c.on_hand >= line.qty)
            .values(on_hand=products.c.on_hand - line.qty, version=products.c.version + 1)
            .returning(products.c.on_hand, products.c.version)
        )
    ).one_or_none()
    if taken is None:
        raise OutOfStock(line.product_id)
    data = {
        "product_id": line.product_id,
        "on_hand": taken.on_hand,
        "reserved": 0,
        "available": taken.on_hand,
        "version": taken.version,
    }
    return new_event("stock.changed", "monolith", data, line.product_id)


def _order_data(order_id: str, lines: list[Line]) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "items": [{"product_id": line.product_id, "qty": line.qty} for line in lines],
        "total_cents": sum(line.qty * line.unit_price_cents for line in lines),
    }


async def prepare(db: Database, users: int) -> list[str]:
    """The schema, the products and one filled cart per user (not timed)."""
    async with db.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        await connection.run_sync(outbox.metadata.create_all)
    product_ids = [f"p{n:03d}" for n in range(PRODUCTS)]
    user_ids = [f"u{n:06d}" for n in range(users)]
    async with db.transaction() as session:
        await session.execute(
            insert(products),
            [
                {
                    "id": p,
                    "name": f"Product {p}",
                    "price_cents": 1000 + n,
                    "on_hand": STOCK,
                    "version": 1,
                }
                for n, p in enumerate(product_ids)
            ],
        )
        await session.execute(
            insert(carts),
            [
                {"user_id": u, "product_id": product_ids[(n + k) % PRODUCTS], "qty": 1}
                for n, u in enumerate(user_ids)
                for k in range(LINES_PER_ORDER)
            ],
        )
    return user_ids


async def run(folder: Path, orders_wanted: int, concurrency: int) -> dict[str, Any]:
    db = Database(f"sqlite+aiosqlite:///{folder / 'monolith.db'}")
    try:
        users = iter(await prepare(db, orders_wanted))
        latencies: list[float] = []

        async def worker() -> None:
            for user_id in users:  # one shared iterator: each user checks out once
                started = time.perf_counter()
                await checkout(db, user_id)
                latencies.append(time.perf_counter() - started)

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await db.dispose()
    latencies.sort()
    return {
        "orders": len(latencies),
        "concurrency": concurrency,
        "seconds": round(seconds, 3),
        "orders_per_s": round(len(latencies) / seconds, 1),
        "cpu_ms_per_order": round(1000 * cpu / max(1, len(latencies)), 2),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    settings = ServiceSettings()  # the services' defaults: their event loop
    with tempfile.TemporaryDirectory(prefix="bazaar-monolith-") as folder:
        result = serving.run(run(Path(folder), args.orders, args.concurrency), settings)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
