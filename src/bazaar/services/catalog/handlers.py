"""The service layer: `CatalogService`, one method per use case, each one unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.contracts.events import StockChanged
from bazaar.contracts.quotes import Quote, QuoteReply, QuoteRequest
from bazaar.platform.db import Database
from bazaar.platform.events import Envelope
from bazaar.platform.logs import get_logger
from bazaar.services.catalog import domain
from bazaar.services.catalog.domain import (
    Category,
    Listing,
    Page,
    ProductChanges,
    ProductQuery,
    StockLevel,
)
from bazaar.services.catalog.store import CatalogRepository

log = get_logger(__name__)


@dataclass(frozen=True)
class ProductDraft:
    name: str
    description: str
    category: str
    price_cents: int
    image_url: str
    product_id: str | None = None


@dataclass(frozen=True)
class SeedItem:
    product: ProductDraft
    stock: int


@dataclass(frozen=True)
class SeedSummary:
    categories_added: int
    products_added: int
    products_kept: int
    stock_levels_added: int


class CatalogService:
    """The catalog's use cases, over its database; routes, the quote responder and the
    stock consumer call these."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_products(self, query: ProductQuery) -> Page:
        async with self._db.reading() as session:
            return await CatalogRepository(session).search(query)

    async def find_product(self, product_id: str) -> Listing | None:
        async with self._db.reading() as session:
            return await CatalogRepository(session).listing(product_id)

    async def list_categories(self) -> list[Category]:
        async with self._db.reading() as session:
            return await CatalogRepository(session).categories()

    async def create_product(self, draft: ProductDraft) -> Listing:
        """A product in a category not seen before brings its category along."""
        product = domain.new_product(**draft.__dict__, now=datetime.now(UTC))
        async with self._db.transaction() as session:
            repository = CatalogRepository(session)
            await repository.add_missing_categories([domain.category_named_after(draft.category)])
            await repository.add(product)
            listing = await repository.listing(product.id)
        assert listing is not None
        return listing

    async def update_product(self, product_id: str, changes: ProductChanges) -> Listing | None:
        async with self._db.transaction() as session:
            repository = CatalogRepository(session)
            product = await repository.product(product_id)
            if product is None:
                return None
            if changes.category is not None:
                wanted = domain.category_named_after(changes.category)
                await repository.add_missing_categories([wanted])
            await repository.save(changes.applied_to(product))
            return await repository.listing(product_id)

    async def quote(self, request: QuoteRequest) -> QuoteReply:
        """Today's price of each requested product (the `bazaar.rpc.catalog.quote` reply)."""
        async with self._db.reading() as session:
            prices = await CatalogRepository(session).prices(set(request.product_ids))
        quotes = domain.quote(request.product_ids, prices)
        # Built unvalidated: every value comes from our own table, within the contract.
        return QuoteReply.model_construct(
            quotes=[
                Quote.model_construct(
                    product_id=q.product_id, name=q.name, price_cents=q.price_cents
                )
                for q in quotes.quotes
            ],
            missing=quotes.missing,
        )

    async def record_stock(
        self, session: AsyncSession, change: StockChanged, event: Envelope
    ) -> None:
        """Keep a product's available stock from one `stock.changed` (in the inbox's
        transaction: applied once); a stale version changes nothing."""
        level = StockLevel(change.product_id, change.available, change.version)
        await CatalogRepository(session).save_stock_if_newer(level)
        log.debug("stock event", event_id=event.id, version=level.version)

    async def seed(self, categories: Sequence[Category], items: Sequence[SeedItem]) -> SeedSummary:
        """Load demo data in one unit of work. Only what is absent is added: products by
        id, stock at version 0 (so any real `stock.changed`, version 1 and up, wins)."""
        now = datetime.now(UTC)
        async with self._db.transaction() as session:
            repository = CatalogRepository(session)
            categories_added = await repository.add_missing_categories(
                domain.categories_for(categories, (item.product.category for item in items))
            )
            present = await repository.existing_ids(
                item.product.product_id for item in items if item.product.product_id
            )
            added = 0
            stock_added = 0
            for item in items:
                product = domain.new_product(**item.product.__dict__, now=now)
                if product.id not in present:
                    await repository.add(product)
                    present.add(product.id)
                    added += 1
                stock = StockLevel(product.id, item.stock, version=0)
                stock_added += await repository.add_stock_if_absent(stock)
        return SeedSummary(categories_added, added, len(items) - added, stock_added)
