from typing import Any

import httpx
import pytest

from bazaar.services.catalog.tests.samples import ORDERED_IDS, PRODUCTS

PROBLEM = "application/problem+json"


async def ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    answer = await client.get("/api/products", params=params)
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["items"]]


async def total(client: httpx.AsyncClient) -> int:
    return int((await client.get("/api/products")).json()["total"])


async def test_the_list_is_ordered_by_name_then_id_with_stock(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/products")).json()
    assert (body["total"], body["page"], body["page_size"]) == (len(PRODUCTS), 1, 20)
    assert [item["id"] for item in body["items"]] == ORDERED_IDS
    anvil = body["items"][0]
    assert anvil == {
        "id": "p-anvil",
        "name": "Anvil",
        "description": "Heavy and reliable, for cartoon physics.",
        "category": "tools",
        "price_cents": 9900,
        "stock": 3,
        "image_url": "",
        "created_at": anvil["created_at"],
    }


async def test_search_is_case_insensitive_on_name_and_description(
    client: httpx.AsyncClient,
) -> None:
    # "Kettle" by name, "KETTLE" and "kettle" in descriptions.
    assert await ids(client, q="kettle") == ["p-kettle", "p-teapot"]
    assert await ids(client, q="  STONEWARE ") == ["p-mug-a", "p-mug-b"]
    assert await ids(client, q="nothing like this") == []


async def test_search_wildcards_are_taken_literally(client: httpx.AsyncClient) -> None:
    assert await ids(client, q="%") == ["p-socks"]
    assert await ids(client, q="_") == ["p-socks"]


async def test_filter_by_category_and_combine_with_search(client: httpx.AsyncClient) -> None:
    assert await ids(client, category="tools") == ["p-anvil", "p-hammer"]
    assert await ids(client, category="kitchen", q="red") == ["p-mug-a"]
    assert await ids(client, category="no-such-thing") == []


async def test_pages_cover_the_list_once_in_order(client: httpx.AsyncClient) -> None:
    pages = [await ids(client, page=n, page_size=3) for n in (1, 2, 3)]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [pid for page in pages for pid in page] == ORDERED_IDS
    beyond = (await client.get("/api/products", params={"page": 9, "page_size": 3})).json()
    assert (beyond["items"], beyond["total"], beyond["page"]) == ([], len(PRODUCTS), 9)
    assert await ids(client, page_size=100) == ORDERED_IDS


@pytest.mark.parametrize(
    "params",
    [
        {"page_size": 0},
        {"page_size": 101},
        {"page_size": "ten"},
        {"page": 0},
        {"page": -1},
        {"page": "first"},
        {"page": 10**30},
        {"q": "x" * 201},
    ],
)
async def test_bad_paging_or_search_is_a_422_problem(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    answer = await client.get("/api/products", params=params)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["status"] == 422
    assert next(iter(params)) in answer.json()["detail"]


async def test_one_product_or_404(client: httpx.AsyncClient) -> None:
    kettle = await client.get("/api/products/p-kettle")
    assert kettle.status_code == 200
    assert (kettle.json()["name"], kettle.json()["stock"]) == ("Kettle", 0)
    missing = await client.get("/api/products/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM
    assert "nope" in missing.json()["detail"]


async def test_categories_keep_given_names_and_name_the_rest(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/categories")).json()
    assert body == {
        "items": [
            {"slug": "apparel", "name": "Apparel"},
            {"slug": "kitchen", "name": "Kitchen & Dining"},
            {"slug": "tools", "name": "Tools"},
        ]
    }


NEW = {
    "name": "Garden Hose",
    "description": "25 m, kink-free.",
    "category": "home-garden",
    "price_cents": 3450,
    "image_url": "https://img.example/hose.png",
}


async def test_only_an_admin_creates_products(
    client: httpx.AsyncClient, admin: dict[str, str], customer: dict[str, str]
) -> None:
    anonymous = await client.post("/api/products", json=NEW)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == PROBLEM
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    forged = await client.post(
        "/api/products", json=NEW, headers={"Authorization": "Bearer not.a.jwt"}
    )
    assert forged.status_code == 401
    assert (await client.post("/api/products", json=NEW, headers=customer)).status_code == 403
    assert await total(client) == len(PRODUCTS)

    created = await client.post("/api/products", json=NEW, headers=admin)
    assert created.status_code == 201, created.text
    product = created.json()
    assert created.headers["location"] == f"/api/products/{product['id']}"
    assert {k: product[k] for k in NEW} == NEW
    assert product["stock"] == 0
    assert (await client.get(created.headers["location"])).json() == product
    assert await ids(client, category="home-garden") == [product["id"]]
    categories = (await client.get("/api/categories")).json()["items"]
    assert {"slug": "home-garden", "name": "Home Garden"} in categories


@pytest.mark.parametrize(
    "body",
    [
        {**NEW, "price_cents": -1},
        {**NEW, "price_cents": 12.5},
        {**NEW, "price_cents": "3450"},
        {**NEW, "price_cents": True},
        {**NEW, "name": "   "},
        {**NEW, "name": "x" * 201},
        {**NEW, "category": "Home Garden"},
        {**NEW, "image_url": "javascript:alert(1)"},
        {**NEW, "image_url": "/img.png\u0085"},  # a blank that only some regexes know
        {**NEW, "name": "Kettle\x00"},
        {**NEW, "name": "\u202eelttek"},
        {**NEW, "description": "bell\x07"},
        {**NEW, "stock": 5},
        {k: v for k, v in NEW.items() if k != "name"},
        {k: v for k, v in NEW.items() if k != "price_cents"},
        [NEW],
    ],
)
async def test_a_bad_product_is_422_and_creates_nothing(
    client: httpx.AsyncClient, admin: dict[str, str], body: Any
) -> None:
    answer = await client.post("/api/products", json=body, headers=admin)
    assert answer.status_code == 422, body
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["detail"]
    assert await total(client) == len(PRODUCTS)
    categories = (await client.get("/api/categories")).json()["items"]
    assert "home-garden" not in {c["slug"] for c in categories}


async def test_an_integral_price_is_accepted_however_json_writes_it(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    body = {**NEW, "price_cents": 3450.0, "description": "Line one.\nLine two.\n"}
    created = await client.post("/api/products", json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["price_cents"] == 3450
    assert created.json()["description"] == "Line one.\nLine two."


async def test_garbage_json_is_422(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    answer = await client.post(
        "/api/products", content=b"{nope", headers={**admin, "content-type": "application/json"}
    )
    assert answer.status_code == 422
    assert await total(client) == len(PRODUCTS)


async def test_an_admin_patches_only_the_fields_sent(
    client: httpx.AsyncClient, admin: dict[str, str], customer: dict[str, str]
) -> None:
    change = {"price_cents": 2490, "category": "tea-time"}
    assert (await client.patch("/api/products/p-kettle", json=change)).status_code == 401
    assert (
        await client.patch("/api/products/p-kettle", json=change, headers=customer)
    ).status_code == 403
    before = (await client.get("/api/products/p-kettle")).json()
    assert before["price_cents"] == 2590

    patched = await client.patch("/api/products/p-kettle", json=change, headers=admin)
    assert patched.status_code == 200, patched.text
    assert patched.json() == {**before, **change}
    assert (await client.get("/api/products/p-kettle")).json() == patched.json()
    categories = (await client.get("/api/categories")).json()["items"]
    assert {"slug": "tea-time", "name": "Tea Time"} in categories

    unknown = await client.patch("/api/products/nope", json=change, headers=admin)
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": None},
        {"price_cents": -5},
        {"price_cents": None, "name": "Pot"},
        {"category": "Not A Slug"},
        {"id": "p-other"},
        {"stock": 99},
    ],
)
async def test_a_bad_patch_is_422_and_changes_nothing(
    client: httpx.AsyncClient, admin: dict[str, str], body: dict[str, Any]
) -> None:
    before = (await client.get("/api/products/p-kettle")).json()
    answer = await client.patch("/api/products/p-kettle", json=body, headers=admin)
    assert answer.status_code == 422, body
    assert answer.headers["content-type"] == PROBLEM
    assert (await client.get("/api/products/p-kettle")).json() == before


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
