"""The price quote as the running code speaks it: what catalog's quote responder answers,
and what the pricing clients of order and cart ask, validate against
contracts/quotes/quote.request.json and quote.reply.json (the events' counterpart is
test_event_schemas.py). Everything runs on in-memory brokers (memory://): the catalog app
answers on its bus, and each client's requests are caught by a responder on a broker of
the client's own, which hands them on to the catalog."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from bazaar.contracts.quotes import QUOTE_SUBJECT
from bazaar.platform.bus import Bus
from bazaar.services.catalog import handlers
from bazaar.services.catalog.bootstrap import MIGRATIONS
from bazaar.services.catalog.bootstrap import build_app as build_catalog
from bazaar.services.catalog.domain import Category
from bazaar.services.catalog.settings import CatalogSettings
from bazaar.testing import TokenMinter, migrated_database

from .tools import CONTRACTS

QUOTES = CONTRACTS / "quotes"


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((QUOTES / f"{name}.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def assert_fits(name: str, document: Any) -> None:
    errors = [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in validator(name).iter_errors(document)
    ]
    assert not errors, f"quotes/{name} is broken by what the code sends: {errors}\n{document}"


@pytest.fixture
async def catalog(tmp_path: Path) -> AsyncIterator[Bus]:
    """The catalog app (its quote responder) on an in-memory bus, with two products; the
    bus, to ask it."""
    db = migrated_database(MIGRATIONS, tmp_path, "catalog")
    bus = Bus("memory://catalog", "catalog")  # each test (its own loop) starts empty
    app = build_catalog(
        CatalogSettings(home=tmp_path, environment="test"),
        db=db,
        bus=bus,
        verifier=TokenMinter().verifier(),
    )
    drafts = [
        handlers.ProductDraft("Green tea", "Loose leaf, 100 g", "kitchen", 450, "", "p-tea"),
        handlers.ProductDraft("Blue mug", "Stoneware", "kitchen", 1200, "", "p-mug"),
    ]
    async with app.router.lifespan_context(app):
        await handlers.CatalogService(db).seed(
            [Category("kitchen", "Kitchen")], [handlers.SeedItem(d, 5) for d in drafts]
        )
        yield bus


class Caught:
    """A responder on a client's bus: keeps each request as it arrived, and answers with
    the catalog's own reply."""

    def __init__(self, catalog: Bus) -> None:
        self.catalog = catalog
        self.requests: list[Any] = []

    async def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(request)
        reply: dict[str, Any] = await self.catalog.request(QUOTE_SUBJECT, request)
        return reply


def client_bus(service: str, catalog: Bus) -> tuple[Bus, Caught]:
    # A broker of the client's own: on the catalog's, the catalog could answer directly.
    bus = Bus(f"memory://{service}", service)
    caught = Caught(catalog)
    bus.on_request(QUOTE_SUBJECT, caught)
    return bus, caught


async def test_the_catalog_answers_quotes_that_fit_the_reply_schema(catalog: Bus) -> None:
    asked = [
        {"product_ids": ["p-tea", "p-mug"]},
        {"product_ids": ["p-tea", "p-gone", "p-tea"]},
        {"product_ids": ["p-gone"]},
        {"product_ids": ["p-mug", *(f"p-{n}" for n in range(99))]},
    ]
    for request in asked:
        assert_fits("quote.request", request)
        reply = await catalog.request(QUOTE_SUBJECT, request)
        assert_fits("quote.reply", reply)
    reply = await catalog.request(QUOTE_SUBJECT, {"product_ids": ["p-tea", "p-gone"]})
    assert reply == {
        "quotes": [{"product_id": "p-tea", "name": "Green tea", "price_cents": 450}],
        "missing": ["p-gone"],
    }


async def test_orders_pricing_asks_quotes_that_fit_the_request_schema(catalog: Bus) -> None:
    from bazaar.services.order.adapters import BusPricing

    bus, caught = client_bus("order", catalog)
    await bus.start()
    try:
        pricing = BusPricing(bus, timeout=10)
        quotes = await pricing.quote(["p-tea", "p-mug", "p-gone"])
        assert sorted(quotes.by_product) == ["p-mug", "p-tea"] and quotes.missing == ["p-gone"]
        await pricing.quote(["p-mug"])
    finally:
        await bus.stop()
    assert len(caught.requests) == 2
    for request in caught.requests:
        assert_fits("quote.request", request)


async def test_carts_pricing_asks_quotes_that_fit_the_request_schema(catalog: Bus) -> None:
    from bazaar.services.cart.pricing import BusPricing

    bus, caught = client_bus("cart", catalog)
    await bus.start()
    try:
        pricing = BusPricing(bus, timeout=10)
        assert set(await pricing.quote(["p-tea", "p-gone"])) == {"p-tea"}
        # More than one request may carry: the cart asks in batches the schema allows.
        many = ["p-mug", *(f"p-{n:03}" for n in range(149))]
        assert set(await pricing.quote(many)) == {"p-mug"}
    finally:
        await bus.stop()
    assert len(caught.requests) == 3
    for request in caught.requests:
        assert_fits("quote.request", request)


def test_a_quote_that_breaks_its_schema_fails_naming_the_field() -> None:
    renamed = {"quotes": [{"product_id": "p-tea", "name": "Tea", "price": 450}], "missing": []}
    with pytest.raises(AssertionError) as failure:
        assert_fits("quote.reply", renamed)
    assert "quotes/0: 'price_cents' is a required property" in str(failure.value)
    with pytest.raises(AssertionError, match="product_ids: 'p-tea' is not of type 'array'"):
        assert_fits("quote.request", {"product_ids": "p-tea"})
