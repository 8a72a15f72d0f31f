"""The `order.created` consumer, through the in-memory broker and the real inbox."""

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bazaar.platform.bus import Bus
from bazaar.platform.db import Database
from bazaar.platform.events import Envelope, new_event
from bazaar.platform.messaging_tables import inbox
from bazaar.testing import TokenMinter

ALICE = "alice"


@pytest.fixture
def alice(minter: TokenMinter) -> dict[str, str]:
    return minter.headers(ALICE)


def order_created(items: dict[str, int], user_id: str = ALICE, **extra: Any) -> Envelope:
    data = {
        "order_id": "order-1",
        "user_id": user_id,
        "email": f"{user_id}@example.com",
        "items": [
            {"product_id": p, "qty": q, "unit_price_cents": 100, "name": p}
            for p, q in items.items()
        ],
        "total_cents": 100 * sum(items.values()),
        **extra,
    }
    return new_event("order.created", "order", data, subject="order-1")


async def fill(client: httpx.AsyncClient, headers: dict[str, str], **lines: int) -> None:
    for product_id, qty in lines.items():
        answer = await client.post(
            "/api/cart/items", json={"product_id": product_id, "qty": qty}, headers=headers
        )
        assert answer.status_code == 200


async def lines(client: httpx.AsyncClient, user_id: str = ALICE) -> dict[str, int]:
    answer = await client.get(f"/internal/carts/{user_id}")
    return {line["product_id"]: line["qty"] for line in answer.json()["items"]}


async def inbox_rows(db: Database) -> int:
    async with db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(inbox)) or 0


async def test_an_order_removes_its_lines_once_even_if_delivered_twice(
    client: httpx.AsyncClient, alice: dict[str, str], bus: Bus, db: Database
) -> None:
    await fill(client, alice, mug=3, teapot=1, p01=2)
    event = order_created({"mug": 2, "teapot": 1})
    await bus.publish_event(event)
    assert await lines(client) == {"mug": 1, "p01": 2}
    await bus.publish_event(event)
    assert await lines(client) == {"mug": 1, "p01": 2}
    assert await inbox_rows(db) == 1


async def test_items_added_after_checkout_stay(
    client: httpx.AsyncClient, alice: dict[str, str], bus: Bus
) -> None:
    await fill(client, alice, mug=2)
    checked_out = order_created({"mug": 2})
    await fill(client, alice, mug=1, teapot=1)  # while the event is on its way
    await bus.publish_event(checked_out)
    assert await lines(client) == {"mug": 1, "teapot": 1}


async def test_each_order_counts_and_other_users_are_untouched(
    client: httpx.AsyncClient, alice: dict[str, str], minter: TokenMinter, bus: Bus
) -> None:
    await fill(client, alice, mug=5)
    await fill(client, minter.headers("bob"), mug=5)
    await bus.publish_event(order_created({"mug": 1}))
    await bus.publish_event(order_created({"mug": 1}))  # a second order: a new event id
    assert await lines(client) == {"mug": 3}
    assert await lines(client, "bob") == {"mug": 5}


async def test_unknown_fields_are_ignored_and_a_user_without_a_cart_is_fine(
    client: httpx.AsyncClient, bus: Bus, db: Database
) -> None:
    await bus.publish_event(order_created({"mug": 1}, user_id="carol", coupon="FREE"))
    assert await lines(client, "carol") == {}
    assert await inbox_rows(db) == 1


@pytest.mark.parametrize(
    "data",
    [
        {"order_id": "o", "items": [{"product_id": "mug", "qty": 1}]},  # no user_id
        {"order_id": "o", "user_id": ALICE, "items": []},
        {"order_id": "o", "user_id": ALICE, "items": [{"product_id": "mug", "qty": -5}]},
        {"order_id": "o", "user_id": ALICE, "items": "mug"},
        # Contract-breaking in fields the cart does not even use: refused whole.
        order_created({"mug": 1}, email="not an address").data,
        order_created({"mug": 1}, total_cents=-1).data,
        order_created({"mug": 1}, order_id="o\r\nx").data,
        {**order_created({"mug": 1}).data, "items": [{"product_id": "mug", "qty": 1}]},
        order_created({"mug": 1}, user_id="x" * 201).data,
        order_created({"mug": 10_001}).data,
    ],
)
async def test_a_broken_event_changes_nothing(
    client: httpx.AsyncClient, alice: dict[str, str], bus: Bus, db: Database, data: Any
) -> None:
    await fill(client, alice, mug=2)
    await bus.publish_event(new_event("order.created", "order", data))
    assert await lines(client) == {"mug": 2}
    assert await inbox_rows(db) == 0
    assert (await client.get("/healthz")).status_code == 200
