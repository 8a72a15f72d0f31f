"""The catalog's tables (categories, products, the stock read model) and its repository."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
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


class Base(DeclarativeBase):
    pass


class CategoryRow(Base):
    __tablename__ = "categories"

    slug: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


class ProductRow(Base):
    __tablename__ = "products"
    __table_args__ = (
        # The listing's order (name, id) is read straight off this index.
        Index("ix_products_name_id", "name", "id"),
        CheckConstraint("price_cents >= 0", name="ck_products_price_cents_non_negative"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(ForeignKey("categories.slug"), index=True)
    price_cents: Mapped[int] = mapped_column(Integer)
    image_url: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    def to_domain(self) -> Product:
        return Product(
            id=self.id,
            name=self.name,
            description=self.description,
            category=self.category,
            price_cents=self.price_cents,
            image_url=self.image_url,
            created_at=self.created_at,
        )


class StockRow(Base):
    """Inventory's `available` per product, as last heard. No foreign key: an event may
    arrive before the product is in the catalog."""

    __tablename__ = "stock_levels"

    product_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    available: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)


metadata = Base.metadata


def _insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT that knows ON CONFLICT, in the dialect of the session's database."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _matching(query: ProductQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if query.text:
        conditions.append(
            or_(
                ProductRow.name.icontains(query.text, autoescape=True),
                ProductRow.description.icontains(query.text, autoescape=True),
            )
        )
    if query.category:
        conditions.append(ProductRow.category == query.category)
    return conditions


class CatalogRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def search(self, query: ProductQuery) -> Page:
        conditions = _matching(query)
        total = await self._session.scalar(
            select(func.count()).select_from(ProductRow).where(*conditions)
        )
        rows = await self._session.execute(
            select(ProductRow, func.coalesce(StockRow.available, 0))
            .outerjoin(StockRow, StockRow.product_id == ProductRow.id)
            .where(*conditions)
            .order_by(ProductRow.name, ProductRow.id)
            .offset(query.page.offset)
            .limit(query.page.page_size)
        )
        return Page(
            items=[Listing(row.to_domain(), stock) for row, stock in rows],
            total=total or 0,
            page=query.page.page,
            page_size=query.page.page_size,
        )

    async def listing(self, product_id: str) -> Listing | None:
        found = (
            await self._session.execute(
                select(ProductRow, func.coalesce(StockRow.available, 0))
                .outerjoin(StockRow, StockRow.product_id == ProductRow.id)
                .where(ProductRow.id == product_id)
            )
        ).first()
        return Listing(found[0].to_domain(), found[1]) if found else None

    async def product(self, product_id: str) -> Product | None:
        row = await self._session.get(ProductRow, product_id)
        return row.to_domain() if row else None

    async def existing_ids(self, product_ids: Iterable[str]) -> set[str]:
        ids = list(product_ids)
        if not ids:
            return set()
        found = await self._session.scalars(select(ProductRow.id).where(ProductRow.id.in_(ids)))
        return set(found)

    async def prices(self, product_ids: Iterable[str]) -> dict[str, Quote]:
        """One SELECT ... WHERE id IN: quotes are on the checkout's critical path."""
        rows = await self._session.execute(
            select(ProductRow.id, ProductRow.name, ProductRow.price_cents).where(
                ProductRow.id.in_(list(product_ids))
            )
        )
        return {pid: Quote(pid, name, price) for pid, name, price in rows}

    async def add(self, product: Product) -> None:
        self._session.add(ProductRow(**product.__dict__))
        await self._session.flush()

    async def save(self, product: Product) -> None:
        row = await self._session.get(ProductRow, product.id)
        assert row is not None, "save() updates a product that was loaded"
        for name, value in product.__dict__.items():
            setattr(row, name, value)
        await self._session.flush()

    async def categories(self) -> list[Category]:
        rows = await self._session.scalars(
            select(CategoryRow).order_by(CategoryRow.name, CategoryRow.slug)
        )
        return [Category(row.slug, row.name) for row in rows]

    async def add_missing_categories(self, categories: Iterable[Category]) -> int:
        """Insert the categories not there yet (existing names are kept); returns how many."""
        wanted = {c.slug: c for c in categories}
        if not wanted:
            return 0
        present = set(
            await self._session.scalars(
                select(CategoryRow.slug).where(CategoryRow.slug.in_(list(wanted)))
            )
        )
        missing = [c for slug, c in wanted.items() if slug not in present]
        if missing:
            # ON CONFLICT: a concurrent writer adding the same slug is not an error.
            await self._session.execute(
                _insert(self._session, CategoryRow)
                .values([{"slug": c.slug, "name": c.name} for c in missing])
                .on_conflict_do_nothing(index_elements=[CategoryRow.slug])
            )
        return len(missing)

    async def stock(self, product_id: str) -> StockLevel | None:
        row = await self._session.get(StockRow, product_id)
        return StockLevel(row.product_id, row.available, row.version) if row else None

    async def save_stock_if_newer(self, level: StockLevel) -> None:
        # The version check lives in the statement too, so two replicas applying two
        # events for one product at once cannot let the older one win.
        insert = _insert(self._session, StockRow).values(**level.__dict__)
        await self._session.execute(
            insert.on_conflict_do_update(
                index_elements=[StockRow.product_id],
                set_={"available": insert.excluded.available, "version": insert.excluded.version},
                where=StockRow.version < insert.excluded.version,
            )
        )

    async def add_stock_if_absent(self, level: StockLevel) -> bool:
        if await self._session.get(StockRow, level.product_id) is not None:
            return False
        await self._session.execute(
            _insert(self._session, StockRow)
            .values(**level.__dict__)
            .on_conflict_do_nothing(index_elements=[StockRow.product_id])
        )
        return True
