"""What tracing costs a checkout: two embedded platforms side by side, the bench's own with
tracing off (`OTEL_SDK_DISABLED=true`: no instrumentation at all, as every other section
measures it) and one more tracing every checkout (`OTEL_TRACES_SAMPLER=always_on`,
exported over OTLP/HTTP to `bazaar up`'s local trace store, as `make up` does). Rounds of
closed-loop checkouts alternate between them (off, on, off, on...), so that whatever else
the machine does falls on both; a side's throughput is the median of its rounds, its CPU
that of all its processes (the ops server receiving the spans included) per paid order.
The ratios are on over off."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from bench import checkout, procfs, shop
from bench.sizes import Sizes
from bench.stats import ratio
from bench.target import TRACING_ON, Target, extra_platform

Say = Callable[[str], None]


@dataclass
class Side:
    name: str
    shop: checkout.Shop
    pids: dict[str, int]
    paid_per_s: list[float] = field(default_factory=list)
    cpu_ms_per_order: list[float] = field(default_factory=list)


async def measure(off: Target, sizes: Sizes, say: Say) -> dict[str, Any]:
    shop_sizes = replace(sizes, shoppers=sizes.tracing_shoppers)
    say("  starting a second platform, tracing every checkout")
    with extra_platform(TRACING_ON, say) as on:
        sides = [
            Side("off", await checkout.open_shop(off.public_url, shop_sizes), off.pids),
            Side("on", await checkout.open_shop(on.public_url, shop_sizes), on.pids),
        ]
        try:
            for side in sides:  # first calls: keys fetched, pools filled, code paths warm
                await checkout.saturation(side.shop, replace(shop_sizes, saturation_orders=8))
            for number in range(sizes.tracing_rounds):
                for side in sides:
                    await _round(side, sizes)
                    say(
                        f"  round {number + 1}, tracing {side.name}: "
                        f"{side.paid_per_s[-1]:.1f} paid/s, {side.cpu_ms_per_order[-1]:.1f} ms CPU"
                    )
        finally:
            for side in sides:
                await side.shop.http.aclose()
    return _result(sides, sizes)


async def _one_unit_each(store: checkout.Shop) -> None:
    """Every cart back to one unit: an order that failed on the way (a timeout on a loaded
    machine) leaves its shopper's cart emptied or not, and the next round must not care."""

    async def one(shopper: shop.Shopper) -> None:
        with contextlib.suppress(shop.ShopError):  # no line to remove
            path = f"/api/cart/items/{shopper.product_id}"
            await shop.call(store.http, "DELETE", path, 200, store.counters, headers=shopper.auth)
        await shop.fill_cart(store.http, shopper, store.counters)

    await asyncio.gather(*(one(shopper) for shopper in store.shoppers))


async def _round(side: Side, sizes: Sizes) -> None:
    one_round = replace(
        sizes, saturation_orders=sizes.tracing_orders, shoppers=sizes.tracing_shoppers
    )
    await _one_unit_each(side.shop)
    before = procfs.cpu(side.pids)
    placed = await checkout.saturation(side.shop, one_round)
    after = procfs.cpu(side.pids)
    paid = sum(p.status == "paid" for p in placed)
    if not paid:
        raise RuntimeError(f"tracing {side.name}: no order paid ({checkout.summary(placed)})")
    side.paid_per_s.append(checkout.throughput(placed)["paid_per_s"])
    spent = sum(after[name] - before[name] for name in after if name in before)
    side.cpu_ms_per_order.append(1000 * spent / paid)


def _result(sides: list[Side], sizes: Sizes) -> dict[str, Any]:
    result: dict[str, Any] = {
        "rounds": sizes.tracing_rounds,
        "orders_per_round": sizes.tracing_orders,
        "shoppers": sizes.tracing_shoppers,
    }
    for side in sides:
        result[side.name] = {
            "paid_per_s": round(statistics.median(side.paid_per_s), 1),
            "cpu_ms_per_paid_order": round(statistics.median(side.cpu_ms_per_order), 2),
            "rounds_paid_per_s": side.paid_per_s,
        }
    on, off = result["on"], result["off"]
    result["throughput_on_over_off"] = round(ratio(on["paid_per_s"], off["paid_per_s"]), 3)
    result["cpu_on_over_off"] = round(
        ratio(on["cpu_ms_per_paid_order"], off["cpu_ms_per_paid_order"]), 3
    )
    return result
