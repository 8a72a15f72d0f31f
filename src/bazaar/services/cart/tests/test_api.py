from typing import Any

import httpx
import pytest

from bazaar.services.cart.tests.fakes import FakeCatalog
from bazaar.testing import TokenMinter

ALICE = "alice"
BOB = "bob"


@pytest.fixture
def alice(minter: TokenMinter) -> dict[str, str]:
    return minter.headers(ALICE)


async def add(
    client: httpx.AsyncClient, headers: dict[str, str], product_id: str, qty: Any = 1
) -> httpx.Response:
    return await client.post(
        "/api/cart/items", json={"product_id": product_id, "qty": qty}, headers=headers
    )


async def lines(client: httpx.AsyncClient, user_id: str) -> dict[str, int]:
    answer = await client.get(f"/internal/carts/{user_id}")
    assert answer.status_code == 200
    return {line["product_id"]: line["qty"] for line in answer.json()["items"]}


def assert_problem(answer: httpx.Response, status: int) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == status
    assert answer.json()["detail"]


async def test_a_new_user_has_an_empty_cart(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    answer = await client.get("/api/cart", headers=alice)
    assert answer.status_code == 200
    assert answer.json() == {"user_id": ALICE, "items": [], "total_cents": 0, "item_count": 0}


async def test_adding_prices_the_cart_from_the_catalog(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    await add(client, alice, "teapot", 1)
    await add(client, alice, "mug", 2)
    answer = await add(client, alice, "mug", 1)
    assert answer.status_code == 200
    assert answer.json() == {
        "user_id": ALICE,
        "items": [
            {
                "product_id": "teapot",
                "name": "Teapot",
                "unit_price_cents": 2500,
                "qty": 1,
                "line_total_cents": 2500,
            },
            {
                "product_id": "mug",
                "name": "Mug",
                "unit_price_cents": 450,
                "qty": 3,
                "line_total_cents": 1350,
            },
        ],
        "total_cents": 3850,
        "item_count": 4,
    }
    assert (await client.get("/api/cart", headers=alice)).json() == answer.json()


async def test_the_cart_shows_todays_price(
    client: httpx.AsyncClient, alice: dict[str, str], catalog: FakeCatalog
) -> None:
    await add(client, alice, "mug", 2)
    catalog.products["mug"] = ("Mug", 500)
    assert (await client.get("/api/cart", headers=alice)).json()["total_cents"] == 1000


async def test_patch_sets_and_delete_removes(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    await add(client, alice, "mug", 2)
    await add(client, alice, "teapot", 1)
    patched = await client.patch("/api/cart/items/mug", json={"qty": 7}, headers=alice)
    assert patched.status_code == 200
    assert patched.json()["items"][0]["qty"] == 7
    assert patched.json()["total_cents"] == 7 * 450 + 2500
    deleted = await client.delete("/api/cart/items/teapot", headers=alice)
    assert deleted.status_code == 200
    assert [i["product_id"] for i in deleted.json()["items"]] == ["mug"]
    assert await lines(client, ALICE) == {"mug": 7}


async def test_patch_or_delete_of_a_product_not_in_the_cart_is_404(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    await add(client, alice, "mug", 2)
    assert_problem(await client.delete("/api/cart/items/teapot", headers=alice), 404)
    assert_problem(
        await client.patch("/api/cart/items/teapot", json={"qty": 1}, headers=alice), 404
    )
    assert await lines(client, ALICE) == {"mug": 2}


async def test_an_unknown_product_is_404_and_changes_nothing(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    await add(client, alice, "mug", 2)
    answer = await add(client, alice, "no-such-thing", 1)
    assert_problem(answer, 404)
    assert "no-such-thing" in answer.json()["detail"]
    assert await lines(client, ALICE) == {"mug": 2}


async def test_an_integral_qty_counts_however_json_writes_it(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    answer = await client.post(
        "/api/cart/items", json={"product_id": "mug", "qty": 2.0}, headers=alice
    )
    assert answer.status_code == 200, answer.text
    assert await lines(client, ALICE) == {"mug": 2}


@pytest.mark.parametrize(
    "body",
    [
        {"product_id": "mug", "qty": 0},
        {"product_id": "mug", "qty": -1},
        {"product_id": "mug", "qty": 100},
        {"product_id": "mug", "qty": "x"},
        {"product_id": "mug", "qty": "2"},
        {"product_id": "mug", "qty": 1.5},
        {"product_id": "mug", "qty": True},
        {"product_id": "mug"},
        {"qty": 1},
        {"product_id": "", "qty": 1},
        {"product_id": "a/b", "qty": 1},
        {"product_id": "x" * 65, "qty": 1},
        {"product_id": "mug", "qty": 1, "price_cents": 1},
        [],
        "mug",
    ],
)
async def test_bad_add_is_422_and_changes_nothing(
    client: httpx.AsyncClient, alice: dict[str, str], body: Any
) -> None:
    await add(client, alice, "mug", 2)
    assert_problem(await client.post("/api/cart/items", json=body, headers=alice), 422)
    assert await lines(client, ALICE) == {"mug": 2}


@pytest.mark.parametrize(
    "content", [b"{nope", b"", b"null", b'{"qty": 0}', b'{"qty": 100}', b'{"qty": 1, "x": 1}']
)
async def test_bad_patch_is_422_and_changes_nothing(
    client: httpx.AsyncClient, alice: dict[str, str], content: bytes
) -> None:
    await add(client, alice, "mug", 2)
    answer = await client.patch(
        "/api/cart/items/mug",
        content=content,
        headers={**alice, "content-type": "application/json"},
    )
    assert_problem(answer, 422)
    assert await lines(client, ALICE) == {"mug": 2}


async def test_non_json_add_is_422(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    answer = await client.post(
        "/api/cart/items",
        content=b"product_id=mug",
        headers={**alice, "content-type": "text/plain"},
    )
    assert_problem(answer, 422)
    assert await lines(client, ALICE) == {}


async def test_a_line_never_goes_past_99(client: httpx.AsyncClient, alice: dict[str, str]) -> None:
    await add(client, alice, "mug", 60)
    answer = await add(client, alice, "mug", 40)
    assert_problem(answer, 422)
    assert "at most 99" in answer.json()["detail"]
    assert await lines(client, ALICE) == {"mug": 60}
    assert (await add(client, alice, "mug", 39)).json()["items"][0]["qty"] == 99


async def test_a_cart_holds_at_most_50_products(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    for n in range(50):
        assert (await add(client, alice, f"p{n:02}")).status_code == 200
    answer = await add(client, alice, "p50")
    assert_problem(answer, 422)
    assert "at most 50" in answer.json()["detail"]
    assert len(await lines(client, ALICE)) == 50


async def test_catalog_down_is_503_with_retry_after_and_changes_nothing(
    client: httpx.AsyncClient, alice: dict[str, str], catalog: FakeCatalog
) -> None:
    await add(client, alice, "mug", 1)
    catalog.down = True
    answer = await add(client, alice, "teapot", 1)
    assert_problem(answer, 503)
    assert answer.headers["retry-after"] == "1"
    assert_problem(await client.get("/api/cart", headers=alice), 503)
    assert await lines(client, ALICE) == {"mug": 1}


async def test_an_empty_cart_needs_no_catalog(
    client: httpx.AsyncClient, alice: dict[str, str], catalog: FakeCatalog
) -> None:
    catalog.down = True
    assert (await client.get("/api/cart", headers=alice)).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic YTpi"},
        {"Authorization": "Bearer not.a.token"},
    ],
)
async def test_no_valid_token_is_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for answer in [
        await client.get("/api/cart", headers=headers),
        await client.post("/api/cart/items", json={"product_id": "mug", "qty": 1}, headers=headers),
        await client.patch("/api/cart/items/mug", json={"qty": 1}, headers=headers),
        await client.delete("/api/cart/items/mug", headers=headers),
    ]:
        assert_problem(answer, 401)


async def test_expired_or_foreign_tokens_are_401(
    client: httpx.AsyncClient, minter: TokenMinter
) -> None:
    expired = minter.headers(ALICE, ttl=-60)
    assert_problem(await client.get("/api/cart", headers=expired), 401)
    stranger = TokenMinter().headers(ALICE)  # signed by a key the cart does not trust
    assert_problem(await client.get("/api/cart", headers=stranger), 401)


async def test_users_only_ever_see_and_change_their_own_cart(
    client: httpx.AsyncClient, minter: TokenMinter, alice: dict[str, str]
) -> None:
    bob = minter.headers(BOB)
    await add(client, alice, "teapot", 2)
    bobs = await client.get("/api/cart", headers=bob)
    assert bobs.json() == {"user_id": BOB, "items": [], "total_cents": 0, "item_count": 0}
    assert_problem(await client.delete("/api/cart/items/teapot", headers=bob), 404)
    assert_problem(await client.patch("/api/cart/items/teapot", json={"qty": 9}, headers=bob), 404)
    await add(client, bob, "mug", 1)
    assert await lines(client, ALICE) == {"teapot": 2}
    assert await lines(client, BOB) == {"mug": 1}


async def test_the_internal_cart_lists_lines_in_the_order_added(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    await add(client, alice, "teapot", 1)
    await add(client, alice, "mug", 3)
    await add(client, alice, "teapot", 1)
    answer = await client.get(f"/internal/carts/{ALICE}")
    assert answer.json() == {
        "user_id": ALICE,
        "items": [{"product_id": "teapot", "qty": 2}, {"product_id": "mug", "qty": 3}],
    }
    assert (await client.get("/internal/carts/nobody")).json() == {
        "user_id": "nobody",
        "items": [],
    }


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
