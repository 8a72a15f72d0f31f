"""Poison on the bus: messages no consumer can handle (not JSON, not an envelope, data
that breaks the event's schema) are published straight to the event subjects. Each is
moved to the dead-letter stream with its error, and every consumer goes on: a real
order placed after the poison is still paid, mailed, emptied from its cart and counted
in the catalog's stock."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import nats
import pytest

from bazaar.runner.deadletters import DeadLetter, DeadLetters
from bazaar.runner.platform import Platform

from .promises import (
    carts_emptied,
    charged_once_or_not_at_all,
    checker_findings,
    created_reached_the_cart,
    eventually,
    one_mail_per_order,
    stock_accounts_for,
    summary,
)
from .shop import Shopper, admin, products, run_batch, set_carts, stock_levels

pytestmark = [pytest.mark.system, pytest.mark.timeout(120)]

SHOPPERS = 1
EVENTS = "BAZAAR_EVENTS"


def envelope(event_type: str, data: Any) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "type": event_type,
            "source": "/bazaar/poisoner",
            "subject": "",
            "time": datetime.now(UTC).isoformat(),
            "datacontenttype": "application/json",
            "data": data,
        }
    ).encode()


def poison(product_id: str) -> list[tuple[str, str, bytes]]:
    """(event type, consumer that must dead-letter it, body)."""
    return [
        ("order.paid", "notification", b"\xff\xfe this is not JSON"),
        ("order.paid", "notification", b'["an", "array", "not", "an", "envelope"]'),
        ("order.paid", "notification", envelope("order.paid", {"order_id": 42})),
        ("order.created", "cart", b"{"),
        ("order.created", "cart", envelope("order.created", {"user_id": "", "items": []})),
        ("stock.changed", "catalog", b"\x00" * 64),
        (
            "stock.changed",
            "catalog",
            envelope(
                "stock.changed",
                # A negative stock with a version that would win over every real one.
                {
                    "product_id": product_id,
                    "on_hand": -5,
                    "reserved": 0,
                    "available": -5,
                    "version": 2**31 - 1,
                },
            ),
        ),
    ]


async def test_poison_is_dead_lettered_and_consumers_go_on(
    platform: Platform,
    shoppers: list[Shopper],
    api: httpx.AsyncClient,
    payment: httpx.AsyncClient,
) -> None:
    admin_headers = await admin(api)
    product = (await products(api))[5]["id"]
    await set_carts(api, shoppers, {product: 2})
    before = await stock_levels(api, admin_headers, [product])
    doses = poison(product)
    async with DeadLetters.connect(platform.broker_url) as dead:
        already = {letter.seq for letter in await dead.list_all()}
        broker = await nats.connect(platform.broker_url)
        try:
            js = broker.jetstream()
            poisoned_at = time.monotonic()
            for event_type, _, body in doses:
                ack = await js.publish(f"bazaar.events.{event_type}", body, stream=EVENTS)
                assert ack.stream == EVENTS
        finally:
            await broker.close()

        batch = await run_batch(api, platform.home.root, shoppers, {product: 2})

        expected = Counter((consumer, event_type) for event_type, consumer, _ in doses)

        async def new_letters() -> list[DeadLetter]:
            return [letter for letter in await dead.list_all() if letter.seq not in already]

        async def missing() -> list[str]:
            letters = await new_letters()
            got = Counter((letter.consumer, letter.event_type) for letter in letters)
            return [f"{k}: {got[k]} of {n}" for k, n in expected.items() if got[k] != n] + [
                f"{letter.subject} without its error" for letter in letters if not letter.error
            ]

        await eventually(missing, patience=30.0, what="poison dead-lettered")
        letters = await new_letters()
        assert sorted(letter.body for letter in letters) == sorted(body for *_, body in doses)

    print(
        "\n"
        + summary(
            f"poison x{len(doses)}",
            batch,
            fault_at=poisoned_at,
            in_flight=len(shoppers),
            dead_lettered=len(letters),
        )
    )
    assert batch.statuses() == {"paid": 1}
    await one_mail_per_order(platform.home.mail, batch)
    await created_reached_the_cart(platform.home.root, batch)
    await carts_emptied(api, shoppers)
    await stock_accounts_for(api, admin_headers, before, batch)
    await charged_once_or_not_at_all(payment, batch)
    assert checker_findings(platform.home.root) == []
