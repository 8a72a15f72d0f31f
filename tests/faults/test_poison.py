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
from nats.js.errors import NotFoundError

from bazaar.runner.platform import Platform

from .support import (
    Shopper,
    admin,
    carts_emptied,
    checker_findings,
    eventually,
    fill_carts,
    no_charge_left_unpaid,
    one_mail_per_final_order,
    products,
    run_batch,
    stock_accounts_for,
    stock_levels,
    summary,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(120)]

SHOPPERS = 1
EVENTS = "BAZAAR_EVENTS"
DEADLETTERS = "BAZAAR_DEADLETTER"


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


async def dead_letters(js: Any) -> list[Any]:
    try:
        info = await js.stream_info(DEADLETTERS)
    except NotFoundError:
        return []
    letters = []
    if not info.state.messages:
        return letters
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            letters.append(await js.get_msg(DEADLETTERS, seq))
        except NotFoundError:
            continue
    return letters


async def test_poison_is_dead_lettered_and_consumers_go_on(
    platform: Platform,
    shoppers: list[Shopper],
    api: httpx.AsyncClient,
    payment: httpx.AsyncClient,
) -> None:
    admin_headers = await admin(api)
    product = (await products(api))[5]["id"]
    await fill_carts(api, shoppers, {product: 2})
    before = await stock_levels(api, admin_headers, [product])
    broker = await nats.connect(platform.broker_url)
    try:
        js = broker.jetstream()
        already = len(await dead_letters(js))
        doses = poison(product)
        poisoned_at = time.monotonic()
        for event_type, _, body in doses:
            ack = await js.publish(f"bazaar.events.{event_type}", body, stream=EVENTS)
            assert ack.stream == EVENTS

        batch = await run_batch(api, platform.home.root, shoppers, {product: 2})

        expected = Counter(f"bazaar.deadletter.{c}.{t}" for t, c, _ in doses)

        async def missing() -> list[str]:
            letters = (await dead_letters(js))[already:]
            got = Counter(letter.subject for letter in letters)
            without_error = [m.subject for m in letters if not (m.headers or {}).get("x-error")]
            return [f"{s}: {got[s]} of {n}" for s, n in expected.items() if got[s] != n] + [
                f"{s} without x-error" for s in without_error
            ]

        await eventually(missing, patience=30.0, what="poison dead-lettered")
        letters = (await dead_letters(js))[already:]
        assert sorted(m.data for m in letters) == sorted(body for _, _, body in doses)
    finally:
        await broker.close()

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
    await one_mail_per_final_order(platform.home.mail, batch)
    await carts_emptied(api, shoppers)
    await stock_accounts_for(api, admin_headers, before, batch)
    await no_charge_left_unpaid(payment, batch)
    assert checker_findings(platform.home.root) == []
