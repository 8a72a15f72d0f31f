"""Checkout and the order queries, over HTTP, with a real SQLite and fakes around."""

import asyncio
import uuid

from sqlalchemy import func, select

from bazaar.services.order.store import orders
from bazaar.services.order.tests.support import Shop


async def count_orders(shop: Shop) -> int:
    async with shop.db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(orders)) or 0)


async def test_checkout_places_the_order_and_the_saga_gets_it_paid(shop: Shop) -> None:
    shop.neighbours.carts.put("ann", ("p-tea", 2), ("p-mug", 1))
    answer = await shop.checkout("ann")
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "pending"
    order_id = answer.json()["order_id"]

    order = await shop.final(order_id)
    assert order.status == "paid"
    assert order.reason is None
    assert await shop.events(order_id) == ["order.created", "order.paid"]
    created = await shop.event_data(order_id, "order.created")
    assert created == {
        "order_id": order_id,
        "user_id": "ann",
        "email": "ann@example.com",
        "items": [
            {"product_id": "p-tea", "name": "Green tea", "qty": 2, "unit_price_cents": 450},
            {"product_id": "p-mug", "name": "Blue mug", "qty": 1, "unit_price_cents": 1200},
        ],
        "total_cents": 2100,
    }
    assert await shop.event_data(order_id, "order.paid") == created
    assert shop.neighbours.payments.amounts[order_id] == 2100
    assert shop.neighbours.inventory.state[order_id] == "committed"

    public = (await shop.client.get(f"/api/orders/{order_id}", headers=shop.auth("ann"))).json()
    assert public["status"] == "paid"
    assert public["total_cents"] == 2100
    assert public["reason"] is None
    assert public["items"][0] == {
        "product_id": "p-tea",
        "name": "Green tea",
        "qty": 2,
        "unit_price_cents": 450,
    }
    assert public["created_at"] <= public["updated_at"]


async def test_the_price_is_the_price_at_order_time(shop: Shop) -> None:
    order_id = await shop.place("ann", ("p-pot", 1))
    shop.neighbours.pricing.catalog["p-pot"] = shop.neighbours.pricing.catalog["p-pot"].__class__(
        "p-pot", "Teapot", 9999
    )
    order = await shop.final(order_id)
    assert order.total_cents == 3500
    assert order.items[0].unit_price_cents == 3500


async def test_duplicate_cart_lines_become_one_line(shop: Shop) -> None:
    order_id = await shop.place("ann", ("p-tea", 1), ("p-tea", 2))
    order = await shop.order(order_id)
    assert [(i.product_id, i.qty) for i in order.items] == [("p-tea", 3)]


async def test_an_empty_cart_is_422_and_creates_nothing(shop: Shop) -> None:
    answer = await shop.checkout("ann")
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert "empty" in answer.json()["detail"]
    assert await count_orders(shop) == 0


async def test_an_unknown_product_is_422_naming_it(shop: Shop) -> None:
    shop.neighbours.carts.put("ann", ("p-tea", 1), ("p-gone", 1))
    answer = await shop.checkout("ann")
    assert answer.status_code == 422
    assert "p-gone" in answer.json()["detail"]
    assert answer.json()["product_ids"] == ["p-gone"]
    assert await count_orders(shop) == 0


async def test_the_same_idempotency_key_gives_the_same_order(shop: Shop) -> None:
    shop.neighbours.carts.put("ann", ("p-tea", 1))
    first = await shop.checkout("ann", key="k-1")
    shop.neighbours.carts.put("ann")  # the cart service emptied the cart meanwhile
    second = await shop.checkout("ann", key="k-1")
    assert first.status_code == second.status_code == 201
    assert first.json()["order_id"] == second.json()["order_id"]
    assert await count_orders(shop) == 1
    # Keys are per user: another user's identical key is another order.
    shop.neighbours.carts.put("bob", ("p-tea", 1))
    other = await shop.checkout("bob", key="k-1")
    assert other.json()["order_id"] != first.json()["order_id"]


async def test_a_repeated_key_gives_the_same_order_whatever_the_cart_and_neighbours(
    shop: Shop,
) -> None:
    shop.neighbours.carts.put("ann", ("p-tea", 1))
    first = (await shop.checkout("ann", key="k-1")).json()["order_id"]
    # The cart not emptied yet, the cart or the catalog down, a product gone from the
    # catalog: none of them makes a repeat fail or order again.
    again = [await shop.checkout("ann", key="k-1")]
    shop.neighbours.carts.down = True
    again.append(await shop.checkout("ann", key="k-1"))
    shop.neighbours.carts.down, shop.neighbours.pricing.down = False, True
    again.append(await shop.checkout("ann", key="k-1"))
    shop.neighbours.pricing.down = False
    del shop.neighbours.pricing.catalog["p-tea"]
    again.append(await shop.checkout("ann", key="k-1"))
    assert [(a.status_code, a.json()["order_id"]) for a in again] == [(201, first)] * 4
    assert await count_orders(shop) == 1
    await shop.final(first)
    assert await shop.events(first) == ["order.created", "order.paid"]


async def test_concurrent_checkouts_with_one_key_make_one_order(shop: Shop) -> None:
    shop.neighbours.carts.put("ann", ("p-mug", 1))
    answers = await asyncio.gather(*(shop.checkout("ann", key="k-race") for _ in range(8)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["order_id"] for a in answers}) == 1
    assert await count_orders(shop) == 1
    order_id = answers[0].json()["order_id"]
    await shop.final(order_id)
    assert await shop.events(order_id) == ["order.created", "order.paid"]


async def test_checkouts_without_a_key_are_separate_orders(shop: Shop) -> None:
    shop.neighbours.carts.put("ann", ("p-mug", 1))
    first, second = await shop.checkout("ann"), await shop.checkout("ann")
    assert first.json()["order_id"] != second.json()["order_id"]


async def test_a_user_sees_only_their_own_orders_newest_first(shop: Shop) -> None:
    older = await shop.place("ann", ("p-tea", 1))
    newer = await shop.place("ann", ("p-mug", 1))
    bobs = await shop.place("bob", ("p-pot", 1))
    listed = (await shop.client.get("/api/orders", headers=shop.auth("ann"))).json()
    assert [o["id"] for o in listed["items"]] == [newer, older]
    for path in (f"/api/orders/{bobs}", f"/api/orders/{bobs}/events"):
        answer = await shop.client.get(path, headers=shop.auth("ann"))
        assert answer.status_code == 404, path
        assert answer.headers["content-type"] == "application/problem+json"
    assert (await shop.client.get("/api/orders", headers=shop.auth("cid"))).json() == {"items": []}


async def test_unknown_and_malformed_order_ids_are_404(shop: Shop) -> None:
    for order_id in (str(uuid.uuid4()), "nope", "1%20OR%201=1", "x" * 500):
        answer = await shop.client.get(f"/api/orders/{order_id}", headers=shop.auth("ann"))
        assert answer.status_code == 404, order_id
        assert answer.json()["status"] == 404


async def test_neighbours_down_is_503_with_retry_after(shop: Shop) -> None:
    shop.neighbours.carts.put("ann", ("p-tea", 1))
    shop.neighbours.pricing.down = True
    priced = await shop.checkout("ann")
    assert priced.status_code == 503
    assert priced.headers["retry-after"]
    assert "catalog" in priced.json()["detail"]
    shop.neighbours.pricing.down = False
    shop.neighbours.carts.down = True
    carted = await shop.checkout("ann")
    assert carted.status_code == 503
    assert await count_orders(shop) == 0


async def test_bad_requests_are_problems_and_change_nothing(shop: Shop) -> None:
    shop.neighbours.carts.put("ann", ("p-tea", 1))
    too_long = await shop.checkout("ann", key="k" * 201)
    assert too_long.status_code == 422
    empty_key = await shop.checkout("ann", key="")
    assert empty_key.status_code == 422
    anonymous = await shop.client.post("/api/checkout")
    assert anonymous.status_code == 401
    forged = await shop.client.post(
        "/api/checkout", headers={"Authorization": "Bearer not.a.token"}
    )
    assert forged.status_code == 401
    assert (await shop.client.get("/api/orders")).status_code == 401
    shop.neighbours.carts.put("ann", *[(f"p-{n}", 1) for n in range(101)])
    too_many = await shop.checkout("ann")
    assert too_many.status_code == 422
    assert "at most 100" in too_many.json()["detail"]
    assert await count_orders(shop) == 0


async def test_operations_endpoints(shop: Shop) -> None:
    assert (await shop.client.get("/healthz")).json() == {"status": "ok"}
    ready = await shop.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    await shop.final(await shop.place("ann", ("p-tea", 1)))
    schema = (await shop.client.get("/openapi.json")).json()
    assert {"/api/checkout", "/api/orders", "/api/orders/{order_id}/events"} <= set(schema["paths"])
    metrics = (await shop.client.get("/metrics")).text
    assert 'bazaar_saga_steps_total{outcome="done",step="charge"}' in metrics
