"""The real `BusPricing` against a catalog-like responder on the same in-memory broker."""

import asyncio
from typing import Any

import httpx
import pytest

from bazaar.contracts.quotes import QUOTE_SUBJECT
from bazaar.platform.bus import BadRequest, Bus
from bazaar.services.cart.bootstrap import MIGRATIONS, build_app
from bazaar.services.cart.pricing import Pricing
from bazaar.services.cart.settings import CartSettings
from bazaar.services.cart.tests.fakes import PRODUCTS
from bazaar.testing import TokenMinter, migrated_database


class CatalogResponder:
    """Answers quote requests as contracts/README.md says the catalog does."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.behaviour = "ok"

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(request)
        if self.behaviour == "slow":
            await asyncio.sleep(1)
        if self.behaviour == "crash":
            raise RuntimeError("database on fire")
        if self.behaviour == "garbage":
            return {"quotes": [{"product_id": "mug"}]}
        ids = request.get("product_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise BadRequest("product_ids must be a list of 1..100 ids")
        return {
            "quotes": [
                {"product_id": p, "name": PRODUCTS[p][0], "price_cents": PRODUCTS[p][1]}
                for p in ids
                if p in PRODUCTS
            ],
            "missing": [p for p in ids if p not in PRODUCTS],
        }


@pytest.fixture
def responder() -> CatalogResponder:
    return CatalogResponder()


@pytest.fixture
def pricing() -> Pricing | None:
    return None  # build_app wires BusPricing on the app's bus


@pytest.fixture
def bus(responder: CatalogResponder) -> Bus:
    bus = Bus("memory://cart", "cart")
    bus.on_request(QUOTE_SUBJECT, responder)
    return bus


@pytest.fixture
def settings(tmp_path: Any) -> CartSettings:
    return CartSettings(home=tmp_path, environment="test", cart_quote_timeout_seconds=0.05)


@pytest.fixture
def alice(minter: TokenMinter) -> dict[str, str]:
    return minter.headers("alice")


async def add(
    client: httpx.AsyncClient, headers: dict[str, str], product_id: str
) -> httpx.Response:
    return await client.post(
        "/api/cart/items", json={"product_id": product_id, "qty": 2}, headers=headers
    )


async def test_names_and_prices_come_from_the_catalog_over_the_bus(
    client: httpx.AsyncClient, alice: dict[str, str], responder: CatalogResponder
) -> None:
    await add(client, alice, "teapot")
    answer = await add(client, alice, "mug")
    assert answer.status_code == 200
    assert [(i["name"], i["line_total_cents"]) for i in answer.json()["items"]] == [
        ("Teapot", 5000),
        ("Mug", 900),
    ]
    assert answer.json()["total_cents"] == 5900
    # An added product is priced with the quote that checked it exists: asked once.
    assert responder.requests == [
        {"product_ids": ["teapot"]},
        {"product_ids": ["mug"]},
        {"product_ids": ["teapot"]},  # the rest of the cart
    ]
    assert (await client.get("/api/cart", headers=alice)).json()["total_cents"] == 5900
    assert responder.requests[-1] == {"product_ids": ["mug", "teapot"]}


async def test_a_product_the_catalog_reports_missing_is_404(
    client: httpx.AsyncClient, alice: dict[str, str]
) -> None:
    answer = await add(client, alice, "unicorn")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert (await client.get("/internal/carts/alice")).json()["items"] == []


@pytest.mark.parametrize(("behaviour", "status"), [("slow", 503), ("crash", 502), ("garbage", 502)])
async def test_a_catalog_that_fails_is_a_problem_and_changes_nothing(
    client: httpx.AsyncClient,
    alice: dict[str, str],
    responder: CatalogResponder,
    behaviour: str,
    status: int,
) -> None:
    responder.behaviour = behaviour
    answer = await add(client, alice, "mug")
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    if status == 503:
        assert answer.headers["retry-after"] == "1"
    assert (await client.get("/internal/carts/alice")).json()["items"] == []


async def test_no_catalog_on_the_bus_is_503(
    tmp_path: Any, minter: TokenMinter, alice: dict[str, str]
) -> None:
    lonely = Bus("memory://lonely", "cart")  # nobody answers quotes
    app = build_app(
        CartSettings(home=tmp_path, environment="test"),
        db=migrated_database(MIGRATIONS, tmp_path),
        bus=lonely,
        verifier=minter.verifier(),
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://cart") as client,
    ):
        answer = await add(client, alice, "mug")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
