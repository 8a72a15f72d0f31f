"""The service layer: one function per use case, each one unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.platform.db import Database
from bazaar.platform.events import Envelope
from bazaar.platform.inbox import Inbox
from bazaar.services.catalog import domain
from bazaar.services.catalog.domain import (
    Category,
    Listing,
    Page,
    ProductChanges,
    ProductQuery,
    Quotes,
    StockLevel,
)
from bazaar.services.catalog.store import CatalogRepository


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


async def list_products(db: Database, query: ProductQuery) -> Page:
    async with db.reading() as session:
        return await CatalogRepository(session).search(query)


async def find_product(db: Database, product_id: str) -> Listing | None:
    async with db.reading() as session:
        return await CatalogRepository(session).listing(product_id)


async def list_categories(db: Database) -> list[Category]:
    async with db.reading() as session:
        return await CatalogRepository(session).categories()


async def create_product(db: Database, draft: ProductDraft) -> Listing:
    """A product in a category not seen before brings its category along."""
    product = domain.new_product(**draft.__dict__, now=datetime.now(UTC))
    async with db.transaction() as session:
        repository = CatalogRepository(session)
        await repository.add_missing_categories([domain.category_named_after(draft.category)])
        await repository.add(product)
        listing = await repository.listing(product.id)
    assert listing is not None
    return listing


async def update_product(db: Database, product_id: str, changes: ProductChanges) -> Listing | None:
    async with db.transaction() as session:
        repository = CatalogRepository(session)
        product = await repository.product(product_id)
        if product is None:
            return None
        if changes.category is not None:
            await repository.add_missing_categories([domain.category_named_after(changes.category)])
        await repository.save(changes.applied_to(product))
        return await repository.listing(product_id)


async def quote(db: Database, product_ids: Sequence[str]) -> Quotes:
    async with db.reading() as session:
        prices = await CatalogRepository(session).prices(set(product_ids))
    return domain.quote(product_ids, prices)


async def record_stock(inbox: Inbox, event: Envelope, level: StockLevel) -> bool:
    """Apply one `stock.changed` at most once; a stale version changes nothing."""

    async def apply(session: AsyncSession, _: Envelope) -> None:
        await CatalogRepository(session).save_stock_if_newer(level)

    return await inbox.handle_once(event, apply)


async def seed(
    db: Database, categories: Sequence[Category], items: Sequence[SeedItem]
) -> SeedSummary:
    """Load demo data in one unit of work. Only what is absent is added: products by id,
    stock at version 0 (so any real `stock.changed`, version 1 and up, wins over it)."""
    now = datetime.now(UTC)
    async with db.transaction() as session:
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
