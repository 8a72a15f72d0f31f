"""The payment processor goes down while orders wait for their charge.

Shorter than the payment deadline: the order service's circuit breaker opens, the orders
wait `pending` (none is cancelled blindly), and once the processor is back every one of
them is paid. Longer than the deadline: every order waiting for its charge is cancelled
`payment_unavailable`, its stock released, and no charge is left behind. Slower than the
deadline: the same, and the charges that land after the orders gave up take nothing."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

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
    Batch,
    Level,
    Shopper,
    admin,
    client,
    order_statuses,
    products,
    run_batch,
    set_available,
    set_carts,
    stock_levels,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(120)]

DEADLINE = 20.0
SHORT_OUTAGE = 5.0  # at least; and until the breaker opened and every order waits
LONGEST_SHORT_OUTAGE = DEADLINE / 2  # leaves time to recover before the first deadline
CHARGE_TIMEOUT = 1.0  # one call to payment (three tries) gives up within about 3.5 s
# Its first answers come well after the orders gave up (deadline, last call, grace).
SLOW_PROCESSOR = DEADLINE + 10.0
SHOPPERS = 20
PLATFORM_ENV = {
    "BAZAAR_PAYMENT_DEADLINE_SECONDS": str(DEADLINE),
    # Give up on time: a cancelled order's refund check follows its deadline closely.
    "BAZAAR_PAYMENT_REFUND_GRACE_SECONDS": "1",
    # A charge retried at most every second once the breaker lets it through again.
    "BAZAAR_SAGA_RETRY_MAX_SECONDS": "1",
    "BAZAAR_PAYMENT_TIMEOUT_SECONDS": str(CHARGE_TIMEOUT),
    "BAZAAR_PAYMENT_SLOW_SECONDS": str(SLOW_PROCESSOR),
}
BREAKER_OPEN = re.compile(
    r'^bazaar_circuit_breaker_state\{[^}]*target="payment"[^}]*\} 2(\.0)?$', re.MULTILINE
)


async def set_mode(payment: httpx.AsyncClient, mode: str) -> None:
    response = await payment.put("/internal/mode", json={"mode": mode})
    assert response.status_code == 200 and response.json()["mode"] == mode, response.text


@pytest.fixture
async def order_service(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with client(platform.url("order")) as order:
        yield order


async def breaker_is_open(order: httpx.AsyncClient) -> bool:
    metrics = await order.get("/metrics")
    return bool(BREAKER_OPEN.search(metrics.text))


async def start_batch(
    platform: Platform, api: httpx.AsyncClient, shoppers: list[Shopper], product_index: int
) -> tuple[asyncio.Task[Batch], dict[str, str], dict[str, Level], Batch]:
    """Every shopper checks out one unit of a product of their own test (so that one
    test's leftovers never block the next), in the background."""
    admin_headers = await admin(api)
    product = (await products(api))[product_index]["id"]
    await set_available(api, admin_headers, product, 10 * len(shoppers))
    await set_carts(api, shoppers, {product: 1})
    before = await stock_levels(api, admin_headers, [product])
    batch = Batch()
    task = asyncio.create_task(
        run_batch(api, platform.home.root, shoppers, {product: 1}, batch=batch, patience=90)
    )
    return task, admin_headers, before, batch


async def test_an_outage_shorter_than_the_deadline_delays_but_pays_every_order(
    platform: Platform,
    shoppers: list[Shopper],
    api: httpx.AsyncClient,
    payment: httpx.AsyncClient,
    order_service: httpx.AsyncClient,
) -> None:
    await set_mode(payment, "outage")
    outage_at = time.monotonic()
    try:
        running, admin_headers, before, batch = await start_batch(platform, api, shoppers, 3)
        opened = False
        while time.monotonic() - outage_at < LONGEST_SHORT_OUTAGE:
            opened = opened or await breaker_is_open(order_service)
            waiting = batch.returned == len(shoppers)
            if opened and waiting and time.monotonic() - outage_at >= SHORT_OUTAGE:
                break
            await asyncio.sleep(0.2)
        statuses = order_statuses(platform.home.root, set(batch.owners))
    finally:
        await set_mode(payment, "ok")
    back_at = time.monotonic()

    assert opened, "the order service's breaker on payment never opened"
    assert list(statuses.values()) == ["pending"] * len(shoppers), statuses
    batch = await running
    print(
        "\n"
        + summary(
            f"payment outage {back_at - outage_at:.0f} s < deadline {DEADLINE:.0f} s",
            batch,
            fault_at=back_at,
            in_flight=len(statuses),
        )
    )
    assert batch.statuses() == {"paid": len(shoppers)}
    await stock_accounts_for(api, admin_headers, before, batch)
    await charged_once_or_not_at_all(payment, batch)
    await one_mail_per_order(platform.home.mail, batch)
    await created_reached_the_cart(platform.home.root, batch)
    await carts_emptied(api, shoppers)
    assert checker_findings(platform.home.root) == []


async def test_an_outage_past_the_deadline_cancels_releases_and_charges_nothing(
    platform: Platform,
    shoppers: list[Shopper],
    api: httpx.AsyncClient,
    payment: httpx.AsyncClient,
) -> None:
    await set_mode(payment, "outage")
    outage_at = time.monotonic()
    try:
        running, admin_headers, before, batch = await start_batch(platform, api, shoppers, 4)
        batch = await running  # every order final while the processor is still down
    finally:
        await set_mode(payment, "ok")
    outage = time.monotonic() - outage_at

    print(
        "\n"
        + summary(
            f"payment outage {outage:.0f} s > deadline {DEADLINE:.0f} s",
            batch,
            fault_at=outage_at,
            in_flight=len(shoppers),
        )
    )
    assert batch.statuses() == {"cancelled/payment_unavailable": len(shoppers)}
    assert all(at - outage_at >= DEADLINE for at in batch.final_at.values()), (
        "an order gave up on payment before its deadline"
    )
    after = await stock_accounts_for(api, admin_headers, before, batch)
    assert after == before  # every unit released
    await charged_once_or_not_at_all(payment, batch)
    await one_mail_per_order(platform.home.mail, batch)
    await created_reached_the_cart(platform.home.root, batch)
    await carts_emptied(api, shoppers)
    assert checker_findings(platform.home.root) == []


async def test_charges_that_land_after_the_deadline_take_nothing(
    platform: Platform,
    shoppers: list[Shopper],
    api: httpx.AsyncClient,
    payment: httpx.AsyncClient,
) -> None:
    await set_mode(payment, "slow")
    slow_at = time.monotonic()
    try:
        running, admin_headers, before, batch = await start_batch(platform, api, shoppers, 5)
        batch = await running
        # The first charge requests, sent before the deadline, are answered only now.
        await asyncio.sleep(max(0.0, slow_at + SLOW_PROCESSOR + 2.0 - time.monotonic()))
    finally:
        await set_mode(payment, "ok")

    print(
        "\n"
        + summary(
            f"payment {SLOW_PROCESSOR:.0f} s slow > deadline {DEADLINE:.0f} s",
            batch,
            fault_at=slow_at,
            in_flight=len(shoppers),
        )
    )
    # An order still calling when its first charge landed is paid, rightly; under load
    # that may happen to a few. The rest gave up first: their charges took nothing.
    cancelled = [o for o, order in batch.final.items() if order["status"] == "cancelled"]
    assert len(cancelled) > len(shoppers) // 2, batch.statuses()
    assert batch.statuses()["cancelled/payment_unavailable"] == len(cancelled)
    for order_id in cancelled:
        answer = await payment.get(f"/internal/payments/{order_id}")
        assert answer.json()["status"] == "voided", answer.text
    await stock_accounts_for(api, admin_headers, before, batch)
    await charged_once_or_not_at_all(payment, batch)
    await one_mail_per_order(platform.home.mail, batch)
    assert checker_findings(platform.home.root) == []
