"""Many shoppers race for the last units of one product: exactly as many orders as there
are units are paid, the rest are cancelled out_of_stock, and stock never goes below zero
while they race."""

from __future__ import annotations

import httpx
import pytest

from bazaar.runner.platform import Platform

from .promises import (
    carts_emptied,
    charged_once_or_not_at_all,
    checker_findings,
    created_reached_the_cart,
    one_mail_per_order,
    stock_accounts_for,
    summary,
)
from .shop import (
    Shopper,
    StockSampler,
    admin,
    products,
    run_batch,
    set_available,
    set_carts,
    stock_levels,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]

SHOPPERS = 60
UNITS = 10


async def test_sixty_shoppers_race_for_ten_units(
    platform: Platform,
    shoppers: list[Shopper],
    api: httpx.AsyncClient,
    payment: httpx.AsyncClient,
) -> None:
    admin_headers = await admin(api)
    product = (await products(api))[0]["id"]
    await set_available(api, admin_headers, product, UNITS)
    await set_carts(api, shoppers, {product: 1})
    before = await stock_levels(api, admin_headers, [product])

    async with StockSampler(api, admin_headers, [product]) as sampler:
        batch = await run_batch(api, platform.home.root, shoppers, {product: 1})

    print(
        "\n"
        + summary(
            "race",
            batch,
            fault_at=None,
            in_flight=SHOPPERS,
            stock_samples=sampler.samples,
            lowest_available=sampler.lowest_available[product],
        )
    )
    assert batch.statuses() == {"cancelled/out_of_stock": SHOPPERS - UNITS, "paid": UNITS}
    assert sampler.samples > 5 and not sampler.broken, sampler.broken
    assert sampler.lowest_available[product] >= 0
    after = await stock_accounts_for(api, admin_headers, before, batch)
    assert after[product].available == after[product].on_hand == 0
    await charged_once_or_not_at_all(payment, batch)
    await one_mail_per_order(platform.home.mail, batch)
    await created_reached_the_cart(platform.home.root, batch)
    await carts_emptied(api, shoppers)
    assert checker_findings(platform.home.root) == []
