"""Checkout through the public API, two ways.

Saturation (closed loop): every shopper checks out, follows the order to its final status,
refills the cart (one add-to-cart: an order empties it) and checks out again, until
`saturation_orders` orders were placed (or `saturation_max_seconds` passed). Throughput
is orders paid per second, from the first checkout to the last payment.

Fixed arrival rate (open loop): checkouts are scheduled `1/rate` apart whether or not the
earlier ones were answered, each by a shopper whose cart is ready; the latency of an order
runs from its scheduled start (not from when it was sent, so a late start counts against
the platform) to the moment it was marked paid.

Every order is one line of one unit, on products with stock enough for the whole run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from bench import shop
from bench.shop import Counters, Placed, Shopper
from bench.sizes import Sizes
from bench.stats import ms, percentile, ratio

Hook = Callable[[], None]


@dataclass
class Shop:
    http: httpx.AsyncClient
    shoppers: list[Shopper]
    counters: Counters
    follower: shop.Follower
    setup_seconds: float


async def open_shop(base_url: str, sizes: Sizes) -> Shop:
    """Shoppers with filled carts, and stock for everything they will buy (not timed)."""
    started = time.monotonic()
    http = shop.client(base_url, connections=4 * sizes.shoppers + 16)
    counters = Counters()
    admin = await shop.admin_token(http, counters)
    product_ids = (await shop.products(http, counters))[: max(1, sizes.shoppers)]
    await shop.stock_up(http, admin, product_ids, counters)
    shoppers = await shop.sign_up(http, sizes.shoppers, product_ids, counters)
    return Shop(http, shoppers, counters, shop.Follower(), time.monotonic() - started)


async def _order_and_refill(store: Shop, placed: Placed, drain_seconds: float) -> None:
    """Check out, follow to the end, refill the cart. A failure is recorded on the order
    (status `failed`), never raised: one bad order does not end the run."""
    try:
        await shop.checkout(store.http, placed, store.counters)
        deadline = time.time() + drain_seconds
        await shop.follow(store.http, placed, store.follower, deadline, store.counters)
        if placed.status in shop.FINAL:
            await shop.fill_cart(store.http, placed.shopper, store.counters)
    except (shop.ShopError, httpx.HTTPError) as exc:
        placed.status, placed.reason = "failed", f"{type(exc).__name__}: {exc}"[:300]


async def saturation(store: Shop, sizes: Sizes) -> list[Placed]:
    placed: list[Placed] = []
    stop_at = time.monotonic() + sizes.saturation_max_seconds

    async def shopper_loop(shopper: Shopper) -> None:
        while len(placed) < sizes.saturation_orders and time.monotonic() < stop_at:
            order = Placed(shopper, start=time.time())
            placed.append(order)
            await _order_and_refill(store, order, sizes.drain_seconds)
            if order.status not in shop.FINAL:
                return  # its cart is in an unknown state: this shopper stops
            # a final order's cart was refilled: the shopper goes again at once

    await asyncio.gather(*(shopper_loop(s) for s in store.shoppers))
    return placed


async def fixed_rate(store: Shop, sizes: Sizes) -> tuple[list[Placed], int]:
    """Returns the orders and how many started late for want of a ready shopper."""
    ready: asyncio.Queue[Shopper] = asyncio.Queue()
    for shopper in store.shoppers:
        ready.put_nowait(shopper)
    count = max(1, round(sizes.fixed_rate * sizes.fixed_rate_seconds))
    interval = 1.0 / sizes.fixed_rate
    placed: list[Placed] = []
    tasks: list[asyncio.Task[None]] = []
    late = 0

    async def one(order: Placed) -> None:
        try:
            await _order_and_refill(store, order, sizes.drain_seconds)
        finally:
            if order.status in shop.FINAL:
                ready.put_nowait(order.shopper)

    first = time.time() + 0.05
    # Shoppers come back only once their order is final: on a platform far slower than the
    # rate, arrivals wait for them. Stop scheduling when that has gone on too long.
    give_up = first + 3 * sizes.fixed_rate_seconds + 10
    for number in range(count):
        scheduled = first + number * interval
        if time.time() > give_up:
            break
        await asyncio.sleep(max(0.0, scheduled - time.time()))
        if ready.empty():
            late += 1
        try:
            async with asyncio.timeout(max(0.0, give_up - time.time())):
                shopper = await ready.get()
        except TimeoutError:  # every shopper is still busy, or gone with a failed order
            break
        order = Placed(shopper, start=scheduled)
        placed.append(order)
        tasks.append(asyncio.create_task(one(order)))
    await asyncio.gather(*tasks, return_exceptions=True)
    return placed, late


def summary(placed: list[Placed]) -> dict[str, Any]:
    paid = [p for p in placed if p.status == "paid"]
    latencies = [p.latency for p in paid]
    result: dict[str, Any] = {
        "orders": len(placed),
        "paid": len(paid),
        "cancelled": sum(p.status == "cancelled" for p in placed),
        "failed": sum(p.status == "failed" for p in placed),
        "unfinished": sum(p.status == "unfinished" for p in placed),
        "not_one_unit": sum(p.units != 1 for p in paid),
        "paid_p50_ms": ms(percentile(latencies, 50)),
        "paid_p95_ms": ms(percentile(latencies, 95)),
        "paid_p99_ms": ms(percentile(latencies, 99)),
        "accepted_p50_ms": ms(percentile([p.accepted_after for p in placed if p.order_id], 50)),
    }
    reasons = sorted({str(p.reason) for p in placed if p.status in ("cancelled", "failed")})
    if reasons:
        result["cancel_reasons"] = reasons
    return result


def throughput(placed: list[Placed]) -> dict[str, Any]:
    paid = [p for p in placed if p.status == "paid"]
    if not paid:
        return {"paid_per_s": 0.0, "seconds": 0.0}
    began = min(p.start for p in placed)
    ended = max(p.final_at for p in paid)
    return {
        "paid_per_s": round(ratio(len(paid), ended - began), 1),
        "seconds": round(ended - began, 2),
    }


def timeline(placed: list[Placed]) -> dict[str, list[float]]:
    """What the plot needs: paid times relative to the first start, and latencies."""
    if not placed:
        return {"paid_at": [], "latency": []}
    began = min(p.start for p in placed)
    paid = sorted((p for p in placed if p.status == "paid"), key=lambda p: p.final_at)
    return {
        "paid_at": [round(p.final_at - began, 4) for p in paid],
        "latency": [round(p.latency, 4) for p in paid],
    }
