"""The catalog's tables (categories, products, the stock read model) and its repository."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Row,
    Select,
    String,
    Table,
    Text,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from bazaar.platform.db import UtcDateTime
from bazaar.services.catalog.domain import (
    Category,
    Listing,
    Page,
    Product,
    ProductQuery,
    Quote,
    StockLevel,
)

metadata = MetaData()

categories = Table(
    "categories",
    metadata,
    Column("slug", String(64), primary_key=True),
    Column("name", String(100), nullable=False),
)

products = Table(
    "products",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("category", ForeignKey("categories.slug"), nullable=False, index=True),
    Column("price_cents", Integer, nullable=False),
    Column("image_url", String(2000), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # The listing's order (name, id) is read straight off this index.
    Index("ix_products_name_id", "name", "id"),
    CheckConstraint("price_cents >= 0", name="ck_products_price_cents_non_negative"),
)

# Inventory's `available` per product, as last heard. No foreign key: an event may arrive
# before the product is in the catalog.
stock_levels = Table(
    "stock_levels",
    metadata,
    Column("product_id", String(64), primary_key=True),
    Column("available", Integer, nullable=False),
    Column("version", Integer, nullable=False),
)


# A price quote, on every add to cart and checkout: built once, SQLAlchemy reuses its
# compiled SQL without building and keying a new statement per quote.
_PRICES = select(products.c.id, products.c.name, products.c.price_cents).where(
    products.c.id.in_(bindparam("ids", expanding=True))
)


@functools.cache
def _stock_upsert(dialect: str) -> Any:
    """Stock events arrive late, twice or out of order: only a newer version counts. The
    statement itself decides (no read before it), so two replicas applying two events
    for one product at once cannot let the older one win either. One per dialect, built
    once (two per order arrive)."""
    upsert = (postgresql if dialect == "postgresql" else sqlite).insert(stock_levels)
    return upsert.on_conflict_do_update(
        index_elements=[stock_levels.c.product_id],
        set_={"available": upsert.excluded.available, "version": upsert.excluded.version},
        where=stock_levels.c.version < upsert.excluded.version,
    )


def _listed() -> Select[Any]:
    """Product rows with the units available (0 when no stock was ever heard of)."""
    stock = func.coalesce(stock_levels.c.available, 0).label("stock")
    joined = products.outerjoin(stock_levels, stock_levels.c.product_id == products.c.id)
    return select(*products.c, stock).select_from(joined)


def _listing(row: Row[Any]) -> Listing:
    product = Product(
        id=row.id,
        name=row.name,
        description=row.description,
        category=row.category,
        price_cents=row.price_cents,
        image_url=row.image_url,
        created_at=row.created_at,
    )
    return Listing(product, row.stock)


def _insert(session: AsyncSession, table: Table) -> Any:
    """An INSERT that knows ON CONFLICT, in the dialect of the session's database."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _matching(query: ProductQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if query.text:
        conditions.append(
            or_(
                products.c.name.icontains(query.text, autoescape=True),
                products.c.description.icontains(query.text, autoescape=True),
            )
        )
    if query.category:
        conditions.append(products.c.category == query.category)
    return conditions


class CatalogRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def search(self, query: ProductQuery) -> Page:
        conditions = _matching(query)
        total = await self._session.scalar(
            select(func.count()).select_from(products).where(*conditions)
        )
        rows = await self._session.execute(
            _listed()
            .where(*conditions)
            .order_by(products.c.name, products.c.id)
            .offset(query.page.offset)
            .limit(query.page.page_size)
        )
        return Page(
            items=[_listing(row) for row in rows],
            total=total or 0,
            page=query.page.page,
            page_size=query.page.page_size,
        )

    async def listing(self, product_id: str) -> Listing | None:
        row = (await self._session.execute(_listed().where(products.c.id == product_id))).first()
        return _listing(row) if row else None

    async def product(self, product_id: str) -> Product | None:
        listing = await self.listing(product_id)
        return listing.product if listing else None

    async def existing_ids(self, product_ids: Iterable[str]) -> set[str]:
        ids = list(product_ids)
        if not ids:
            return set()
        found = await self._session.scalars(select(products.c.id).where(products.c.id.in_(ids)))
        return set(found)

    async def prices(self, product_ids: Iterable[str]) -> dict[str, Quote]:
        """One SELECT ... WHERE id IN: quotes are on the checkout's critical path."""
        rows = await self._session.execute(_PRICES, {"ids": list(product_ids)})
        return {pid: Quote(pid, name, price) for pid, name, price in rows}

    async def add(self, product: Product) -> None:
        await self._session.execute(insert(products).values(**product.__dict__))

    async def save(self, product: Product) -> None:
        values = {k: v for k, v in product.__dict__.items() if k != "id"}
        await self._session.execute(
            update(products).where(products.c.id == product.id).values(**values)
        )

    async def categories(self) -> list[Category]:
        rows = await self._session.execute(
            select(categories.c.slug, categories.c.name).order_by(
                categories.c.name, categories.c.slug
            )
        )
        return [Category(slug, name) for slug, name in rows]

    async def add_missing_categories(self, wanted_categories: Iterable[Category]) -> int:
        """Insert the categories not there yet (existing names are kept); returns how many."""
        wanted = {c.slug: c for c in wanted_categories}
        if not wanted:
            return 0
        present = set(
            await self._session.scalars(
                select(categories.c.slug).where(categories.c.slug.in_(list(wanted)))
            )
        )
        missing = [c for slug, c in wanted.items() if slug not in present]
        if missing:
            # ON CONFLICT: a concurrent writer adding the same slug is not an error.
            await self._session.execute(
                _insert(self._session, categories)
                .values([{"slug": c.slug, "name": c.name} for c in missing])
                .on_conflict_do_nothing(index_elements=[categories.c.slug])
            )
        return len(missing)

    async def stock(self, product_id: str) -> StockLevel | None:
        row = (
            await self._session.execute(
                select(stock_levels).where(stock_levels.c.product_id == product_id)
            )
        ).first()
        return StockLevel(row.product_id, row.available, row.version) if row else None

    async def save_stock_if_newer(self, level: StockLevel) -> None:
        """Save `level` unless the stored one is as new or newer (see `_stock_upsert`)."""
        dialect = self._session.get_bind().dialect.name
        await self._session.execute(_stock_upsert(dialect), level.__dict__)

    async def add_stock_if_absent(self, level: StockLevel) -> bool:
        if await self.stock(level.product_id) is not None:
            return False
        await self._session.execute(
            _insert(self._session, stock_levels)
            .values(**level.__dict__)
            .on_conflict_do_nothing(index_elements=[stock_levels.c.product_id])
        )
        return True
