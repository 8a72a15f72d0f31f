"""Entrypoints: HTTP routes, the price-quote responder and the stock event consumer. Each
turns its input into a call of the service layer, and the answer back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from bazaar.contracts.events import STOCK_CHANGED, StockChanged
from bazaar.contracts.quotes import QUOTE_SUBJECT, QuoteRequest
from bazaar.platform.bus import Bus
from bazaar.platform.consumers import answer, consume
from bazaar.platform.db import Database
from bazaar.platform.dependencies import uses
from bazaar.platform.jsontypes import JSON_INTEGER
from bazaar.platform.logs import get_logger
from bazaar.platform.problems import NotFound
from bazaar.platform.tokens import AdminUser
from bazaar.services.catalog import domain
from bazaar.services.catalog.domain import (
    IMAGE_URL_PATTERN,
    MAX_PAGE_SIZE,
    SLUG_PATTERN,
    Listing,
    PageRequest,
    ProductChanges,
    ProductQuery,
)
from bazaar.services.catalog.handlers import CatalogService, ProductDraft

CONSUMER = "catalog"
MAX_PAGE = 1_000_000  # far past any catalog, short of overflowing an OFFSET

log = get_logger(__name__)
router = APIRouter(prefix="/api", tags=["catalog"])

ProductId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Slug = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=SLUG_PATTERN)]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(domain.product_name)]
Description = Annotated[str, Field(max_length=5000), AfterValidator(domain.description)]
PriceCents = Annotated[int, Field(strict=True, ge=0, le=100_000_000), JSON_INTEGER]
ImageUrl = Annotated[str, StringConstraints(max_length=2000, pattern=IMAGE_URL_PATTERN)]


class ProductCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = ""
    category: Slug
    price_cents: PriceCents
    image_url: ImageUrl = ""


class ProductUpdate(BaseModel):
    """Only the fields sent change; none may be null, and at least one must be sent."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description | None = None
    category: Slug | None = None
    price_cents: PriceCents | None = None
    image_url: ImageUrl | None = None

    @model_validator(mode="after")
    def _some_field_and_no_nulls(self) -> ProductUpdate:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        nulls = sorted(f for f in self.model_fields_set if getattr(self, f) is None)
        if nulls:
            raise ValueError(f"these fields cannot be null: {', '.join(nulls)}")
        return self


class ProductPublic(BaseModel):
    id: str
    name: str
    description: str
    category: str
    price_cents: int
    stock: int = Field(description="Units available now, from inventory's stock events.")
    image_url: str
    created_at: datetime

    @classmethod
    def of(cls, listing: Listing) -> ProductPublic:
        return cls(**listing.product.__dict__, stock=listing.stock)


class ProductPage(BaseModel):
    items: list[ProductPublic]
    total: int
    page: int
    page_size: int


class CategoryPublic(BaseModel):
    slug: str
    name: str


class CategoryList(BaseModel):
    items: list[CategoryPublic]


Catalog = Annotated[CatalogService, uses(CatalogService)]


@router.get("/products", response_model=ProductPage)
async def list_products(
    catalog: Catalog,
    q: Annotated[str, Query(max_length=200, description="Words in name or description")] = "",
    category: Annotated[str, Query(max_length=64, description="A category slug")] = "",
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
) -> ProductPage:
    query = ProductQuery(q.strip(), category.strip(), PageRequest(page, page_size))
    found = await catalog.list_products(query)
    return ProductPage(
        items=[ProductPublic.of(listing) for listing in found.items],
        total=found.total,
        page=found.page,
        page_size=found.page_size,
    )


@router.get("/products/{product_id}", response_model=ProductPublic)
async def get_product(product_id: str, catalog: Catalog) -> ProductPublic:
    listing = await catalog.find_product(product_id)
    if listing is None:
        raise NotFound(f"no product {product_id}")
    return ProductPublic.of(listing)


@router.get("/categories", response_model=CategoryList)
async def list_categories(catalog: Catalog) -> CategoryList:
    categories = await catalog.list_categories()
    return CategoryList(items=[CategoryPublic(slug=c.slug, name=c.name) for c in categories])


@router.post("/products", status_code=201, response_model=ProductPublic)
async def create_product(
    body: ProductCreate, admin: AdminUser, catalog: Catalog, response: Response
) -> ProductPublic:
    listing = await catalog.create_product(ProductDraft(**body.model_dump()))
    log.info("product created", product_id=listing.product.id, admin=admin.user_id)
    response.headers["Location"] = f"/api/products/{listing.product.id}"
    return ProductPublic.of(listing)


@router.patch("/products/{product_id}", response_model=ProductPublic)
async def update_product(
    product_id: str, body: ProductUpdate, admin: AdminUser, catalog: Catalog
) -> ProductPublic:
    changes = ProductChanges(**body.model_dump(exclude_unset=True))
    listing = await catalog.update_product(product_id, changes)
    if listing is None:
        raise NotFound(f"no product {product_id}")
    log.info("product updated", product_id=product_id, admin=admin.user_id)
    return ProductPublic.of(listing)


# --- the bus ---------------------------------------------------------------------------


def subscribe(bus: Bus, db: Database, catalog: CatalogService) -> None:
    """Price quotes by request/reply, and the stock read model from inventory's events. An
    event that breaks its contract is dead-lettered at once (no retry can fix it), and
    consumption goes on. Called before the bus starts."""
    answer(bus, QUOTE_SUBJECT, contract=QuoteRequest, responder=catalog.quote)
    consume(
        bus,
        db,
        STOCK_CHANGED,
        consumer=CONSUMER,
        contract=StockChanged,
        handler=catalog.record_stock,
    )
