"""`python -m bazaar.services.catalog seed FILE`: demo data from a JSON file (after `migrate`).

FILE holds either a list of products, or `{"categories": [{slug, name}], "products": [...]}`;
a product is `{id, name, description, category, price_cents, stock, image_url}`. A category
not listed is named after its slug. Loading twice adds nothing the second time.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from bazaar.platform.db import Database
from bazaar.services.catalog.app import Description, ImageUrl, Name, PriceCents, ProductId, Slug
from bazaar.services.catalog.domain import Category
from bazaar.services.catalog.handlers import CatalogService, ProductDraft, SeedItem
from bazaar.services.catalog.settings import CatalogSettings


class SeedCategory(BaseModel):
    model_config = ConfigDict(extra="ignore")

    slug: Slug
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class SeedProduct(BaseModel):
    # The demo file is shared with inventory: fields meant for others are ignored.
    model_config = ConfigDict(extra="ignore")

    id: ProductId
    name: Name
    description: Description = ""
    category: Slug
    price_cents: PriceCents
    stock: int = Field(default=0, strict=True, ge=0, le=1_000_000_000)
    image_url: ImageUrl = ""

    def to_item(self) -> SeedItem:
        draft = ProductDraft(
            name=self.name,
            description=self.description,
            category=self.category,
            price_cents=self.price_cents,
            image_url=self.image_url,
            product_id=self.id,
        )
        return SeedItem(draft, self.stock)


class SeedFile(BaseModel):
    categories: list[SeedCategory] = []
    products: list[SeedProduct]


def parse_seed(text: str) -> SeedFile:
    """Raises ValueError (a JSON or validation error) naming what is wrong."""
    raw = json.loads(text)
    return SeedFile.model_validate({"products": raw} if isinstance(raw, list) else raw)


async def seed_from_file(settings: CatalogSettings, path: Path) -> str:
    try:
        parsed = parse_seed(await asyncio.to_thread(path.read_text, encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"catalog seed: cannot load {path}: {exc}") from None
    db = Database(settings.database_url)
    try:
        summary = await CatalogService(db).seed(
            [Category(c.slug, c.name) for c in parsed.categories],
            [p.to_item() for p in parsed.products],
        )
    finally:
        await db.dispose()
    return (
        f"catalog: {summary.products_added} products added, {summary.products_kept} already "
        f"there; {summary.categories_added} categories and {summary.stock_levels_added} "
        "stock levels added"
    )
