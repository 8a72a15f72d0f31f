"""Whole platforms compared side by side in one run: rounds of closed-loop checkouts
alternate between them (A, B, A, B...) so that whatever else the machine does falls on
each alike; a side's number is the median of its rounds. Used by the tracing, fsync and
cluster sections and by `--baseline`."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from bench import checkout, procfs, shop
from bench.sizes import Sizes
from bench.stats import ratio
from bench.target import Target

Say = Callable[[str], None]


@dataclass(frozen=True)
class Rounds:
    """How many rounds each side runs, of how many orders, by how many shoppers."""

    count: int
    orders: int
    shoppers: int


@dataclass
class Side:
    name: str
    shop: checkout.Shop
    pids: dict[str, int]
    paid_per_s: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    cpu_ms_per_order: list[float] = field(default_factory=list)
    fixed_rate: dict[str, Any] = field(default_factory=dict)


@asynccontextmanager
async def opened(
    targets: list[tuple[str, Target]], sizes: Sizes, rounds: Rounds
) -> AsyncIterator[list[Side]]:
    """A side per target, its shoppers signed up; their clients closed when done."""
    shop_sizes = replace(sizes, shoppers=rounds.shoppers)
    opened: list[Side] = []
    try:
        for name, target in targets:
            store = await checkout.open_shop(target.public_url, shop_sizes)
            opened.append(Side(name, store, target.pids))
        yield opened
    finally:
        for side in opened:
            await side.shop.http.aclose()


async def alternate(sides: list[Side], sizes: Sizes, rounds: Rounds, say: Say) -> None:
    for side in sides:  # first calls: keys fetched, pools filled, code paths warm
        await checkout.saturation(side.shop, replace(sizes, saturation_orders=8))
    for number in range(rounds.count):
        for side in sides:
            await _round(side, sizes, rounds)
            say(
                f"  round {number + 1}, {side.name}: {side.paid_per_s[-1]:.1f} paid/s, "
                f"p50 {side.p50_ms[-1]:.0f} ms, {side.cpu_ms_per_order[-1]:.1f} ms CPU"
            )


async def one_unit_each(store: checkout.Shop) -> None:
    """Every cart back to one unit: an order that failed on the way (a timeout on a loaded
    machine) leaves its shopper's cart emptied or not, and the next round must not care."""

    async def one(shopper: shop.Shopper) -> None:
        with contextlib.suppress(shop.ShopError):  # no line to remove
            path = f"/api/cart/items/{shopper.product_id}"
            await shop.call(store.http, "DELETE", path, 200, store.counters, headers=shopper.auth)
        await shop.fill_cart(store.http, shopper, store.counters)

    await asyncio.gather(*(one(shopper) for shopper in store.shoppers))


async def _round(side: Side, sizes: Sizes, rounds: Rounds) -> None:
    one_round = replace(sizes, saturation_orders=rounds.orders, shoppers=rounds.shoppers)
    await one_unit_each(side.shop)
    before = procfs.cpu(side.pids)
    placed = await checkout.saturation(side.shop, one_round)
    after = procfs.cpu(side.pids)
    paid = sum(p.status == "paid" for p in placed)
    if not paid:
        raise RuntimeError(f"{side.name}: no order paid ({checkout.summary(placed)})")
    side.paid_per_s.append(checkout.throughput(placed)["paid_per_s"])
    side.p50_ms.append(checkout.summary(placed)["paid_p50_ms"])
    spent = sum(after[name] - before[name] for name in after if name in before)
    side.cpu_ms_per_order.append(round(1000 * spent / paid, 2))


async def fixed_rate(side: Side, sizes: Sizes, rate: float, seconds: float) -> dict[str, Any]:
    """`rate` orders/s for `seconds` on one side (open loop)."""
    await one_unit_each(side.shop)
    scheduled = replace(sizes, fixed_rate=rate, fixed_rate_seconds=seconds)
    placed, late = await checkout.fixed_rate(side.shop, scheduled)
    return {
        "rate": rate,
        "late_starts": late,
        **checkout.throughput(placed),
        **checkout.summary(placed),
    }


def compare(sides: list[Side], rounds: Rounds, over: str, under: str) -> dict[str, Any]:
    """Each side's medians, and the ratios `over`/`under` (throughput, p50, CPU per order,
    and the fixed rate's p50 and p99 where both sides ran one)."""
    result: dict[str, Any] = {
        "rounds": rounds.count,
        "orders_per_round": rounds.orders,
        "shoppers": rounds.shoppers,
    }
    for side in sides:
        result[side.name] = {
            "paid_per_s": round(statistics.median(side.paid_per_s), 1),
            "paid_p50_ms": round(statistics.median(side.p50_ms), 1),
            "cpu_ms_per_paid_order": round(statistics.median(side.cpu_ms_per_order), 2),
            "rounds_paid_per_s": side.paid_per_s,
            "rounds_cpu_ms_per_paid_order": side.cpu_ms_per_order,
        }
        if side.fixed_rate:
            result[side.name]["fixed_rate"] = side.fixed_rate
    a, b = result[over], result[under]
    key = f"{over}_over_{under}"
    result[f"throughput_{key}"] = round(ratio(a["paid_per_s"], b["paid_per_s"]), 3)
    result[f"p50_{key}"] = round(ratio(a["paid_p50_ms"], b["paid_p50_ms"]), 3)
    result[f"cpu_{key}"] = round(ratio(a["cpu_ms_per_paid_order"], b["cpu_ms_per_paid_order"]), 3)
    if "fixed_rate" in a and "fixed_rate" in b:
        for percentile in ("p50", "p99"):
            name = f"paid_{percentile}_ms"
            result[f"fixed_rate_{percentile}_{key}"] = round(
                ratio(a["fixed_rate"][name], b["fixed_rate"][name]), 3
            )
    return result
