"""The bus entrypoints on the in-memory broker (`memory://`): price quotes by
request/reply and the `stock.changed` consumer."""

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bazaar.contracts.quotes import QUOTE_SUBJECT
from bazaar.platform.brokers import Outgoing
from bazaar.platform.bus import Bus, RemoteError
from bazaar.platform.db import Database
from bazaar.platform.messaging_tables import inbox
from bazaar.services.catalog.tests.samples import (
    DeadLetters,
    event_with_id,
    stock_changed,
)


async def stock_of(client: httpx.AsyncClient, product_id: str) -> int:
    answer = await client.get(f"/api/products/{product_id}")
    assert answer.status_code == 200
    return int(answer.json()["stock"])


async def test_a_quote_prices_known_products_and_names_the_missing(
    client: httpx.AsyncClient, bus: Bus
) -> None:
    reply = await bus.request(QUOTE_SUBJECT, {"product_ids": ["p-mug-a", "nope", "p-anvil"]})
    assert reply == {
        "quotes": [
            {"product_id": "p-mug-a", "name": "Mug", "price_cents": 890},
            {"product_id": "p-anvil", "name": "Anvil", "price_cents": 9900},
        ],
        "missing": ["nope"],
    }


async def test_a_quote_has_todays_price(
    client: httpx.AsyncClient, bus: Bus, admin: dict[str, str]
) -> None:
    await client.patch("/api/products/p-anvil", json={"price_cents": 9500}, headers=admin)
    reply = await bus.request(QUOTE_SUBJECT, {"product_ids": ["p-anvil", "p-anvil"]})
    assert reply["quotes"] == [{"product_id": "p-anvil", "name": "Anvil", "price_cents": 9500}]


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"product_ids": []},
        {"product_ids": "p-anvil"},
        {"product_ids": [""]},
        {"product_ids": [1, 2]},
        {"product_ids": ["p-anvil", None]},
        {"product_ids": [f"p-{n}" for n in range(101)]},
        ["p-anvil"],
    ],
)
async def test_a_bad_quote_request_gets_bad_request(
    client: httpx.AsyncClient, bus: Bus, payload: Any
) -> None:
    with pytest.raises(RemoteError) as raised:
        await bus.request(QUOTE_SUBJECT, payload)
    assert raised.value.code == "bad_request"
    assert raised.value.detail


async def test_a_hundred_ids_are_fine(client: httpx.AsyncClient, bus: Bus) -> None:
    asked = ["p-anvil", *(f"p-{n}" for n in range(99))]
    reply = await bus.request(QUOTE_SUBJECT, {"product_ids": asked})
    assert [q["product_id"] for q in reply["quotes"]] == ["p-anvil"]
    assert len(reply["missing"]) == 99


async def test_a_stock_event_sets_the_stock_shown(client: httpx.AsyncClient, bus: Bus) -> None:
    assert await stock_of(client, "p-kettle") == 0  # seeded at version 0
    await bus.publish_event(stock_changed("p-kettle", available=14, version=1))
    assert await stock_of(client, "p-kettle") == 14
    await bus.publish_event(stock_changed("p-kettle", available=13, version=2))
    assert await stock_of(client, "p-kettle") == 13
    listed = (await client.get("/api/products", params={"q": "kettle"})).json()["items"]
    assert listed[0]["stock"] == 13


async def test_an_older_version_is_ignored(client: httpx.AsyncClient, bus: Bus) -> None:
    await bus.publish_event(stock_changed("p-hammer", available=4, version=7))
    await bus.publish_event(stock_changed("p-hammer", available=99, version=6))
    await bus.publish_event(stock_changed("p-hammer", available=98, version=7))
    assert await stock_of(client, "p-hammer") == 4


async def test_a_redelivered_event_is_applied_once(
    client: httpx.AsyncClient, bus: Bus, db: Database
) -> None:
    await bus.publish_event(event_with_id("evt-1", "p-teapot", available=5, version=3))
    await bus.publish_event(event_with_id("evt-1", "p-teapot", available=5, version=3))
    # Even a copy that claims a newer version is not applied again: the id was seen.
    await bus.publish_event(event_with_id("evt-1", "p-teapot", available=1, version=9))
    assert await stock_of(client, "p-teapot") == 5
    async with db.transaction() as session:
        seen = await session.scalar(select(func.count()).select_from(inbox))
    assert seen == 1
    await bus.publish_event(event_with_id("evt-2", "p-teapot", available=2, version=4))
    assert await stock_of(client, "p-teapot") == 2


async def test_stock_of_a_product_not_yet_in_the_catalog_is_kept(
    client: httpx.AsyncClient, bus: Bus, db: Database
) -> None:
    await bus.publish_event(stock_changed("p-future", available=8, version=2))
    assert (await client.get("/api/products/p-future")).status_code == 404
    from bazaar.services.catalog.store import CatalogRepository

    async with db.transaction() as session:
        level = await CatalogRepository(session).stock("p-future")
    assert level is not None
    assert (level.available, level.version) == (8, 2)


@pytest.mark.parametrize(
    "overrides",
    [
        {"version": 0},
        {"version": "3"},
        {"available": -1},
        {"available": 2.5},
        {"product_id": ""},
        {"product_id": "p" * 201},  # the contract's bound
        {"product_id": "p\r\nx"},
        {"product_id": None},
        {"version": 2**63},  # past a database integer: refused, not retried
        {"available": 2**31},
    ],
)
async def test_an_event_with_bad_data_is_dead_lettered_and_changes_nothing(
    client: httpx.AsyncClient, bus: Bus, dead_letters: DeadLetters, overrides: dict[str, Any]
) -> None:
    await bus.publish_event(stock_changed("p-anvil", available=1, version=5, override=overrides))
    assert await stock_of(client, "p-anvil") == 3
    assert len(dead_letters.bodies) == 1
    assert "ContractBroken" in dead_letters.errors[0]  # at once: no retry can fix it
    # The consumer goes on.
    await bus.publish_event(stock_changed("p-anvil", available=2, version=6))
    assert await stock_of(client, "p-anvil") == 2


async def test_a_missing_field_or_unparseable_message_is_dead_lettered(
    client: httpx.AsyncClient, bus: Bus, dead_letters: DeadLetters
) -> None:
    incomplete = stock_changed("p-anvil", available=1, version=5)
    del incomplete.data["version"]
    await bus.publish_event(incomplete)
    for raw in (b"{not json", b'{"id": "x"}'):
        await bus.transport.publish(Outgoing("bazaar.events.stock.changed", raw), 5.0)
    assert len(dead_letters.bodies) == 3
    assert dead_letters.bodies[1] == b"{not json"
    assert "unparseable" in dead_letters.errors[1]
    assert await stock_of(client, "p-anvil") == 3
    await bus.publish_event(stock_changed("p-anvil", available=2, version=6))
    assert await stock_of(client, "p-anvil") == 2


async def test_unknown_fields_are_ignored(client: httpx.AsyncClient, bus: Bus) -> None:
    await bus.publish_event(stock_changed("p-anvil", 9, 2, override={"warehouse": "north"}))
    assert await stock_of(client, "p-anvil") == 9
