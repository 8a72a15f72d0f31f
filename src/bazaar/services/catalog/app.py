"""Entrypoints: HTTP routes, the price-quote responder and the stock event consumer. Each
turns its input into a call of the service layer, and the answer back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from bazaar.platform.bus import EventHandler, PermanentError, RequestHandler
from bazaar.platform.db import Database
from bazaar.platform.events import Envelope
from bazaar.platform.inbox import Inbox
from bazaar.platform.jsontypes import JSON_INTEGER
from bazaar.platform.logs import get_logger
from bazaar.platform.problems import NotFound
from bazaar.platform.tokens import AdminUser
from bazaar.services.catalog import domain, handlers
from bazaar.services.catalog.domain import (
    IMAGE_URL_PATTERN,
    MAX_PAGE_SIZE,
    MAX_QUOTED_PRODUCTS,
    SLUG_PATTERN,
    Listing,
    PageRequest,
    ProductChanges,
    ProductQuery,
    StockLevel,
)
from bazaar.services.catalog.handlers import ProductDraft

QUOTE_SUBJECT = "bazaar.rpc.catalog.quote"
STOCK_CHANGED = "stock.changed"
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


# Dependencies are `async def`: FastAPI runs a plain `def` one in a worker thread.
async def get_db(request: Request) -> Database:
    return request.app.state.db


DatabaseDep = Annotated[Database, Depends(get_db)]


@router.get("/products", response_model=ProductPage)
async def list_products(
    db: DatabaseDep,
    q: Annotated[str, Query(max_length=200, description="Words in name or description")] = "",
    category: Annotated[str, Query(max_length=64, description="A category slug")] = "",
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
) -> ProductPage:
    query = ProductQuery(q.strip(), category.strip(), PageRequest(page, page_size))
    found = await handlers.list_products(db, query)
    return ProductPage(
        items=[ProductPublic.of(listing) for listing in found.items],
        total=found.total,
        page=found.page,
        page_size=found.page_size,
    )


@router.get("/products/{product_id}", response_model=ProductPublic)
async def get_product(product_id: str, db: DatabaseDep) -> ProductPublic:
    listing = await handlers.find_product(db, product_id)
    if listing is None:
        raise NotFound(f"no product {product_id}")
    return ProductPublic.of(listing)


@router.get("/categories", response_model=CategoryList)
async def list_categories(db: DatabaseDep) -> CategoryList:
    categories = await handlers.list_categories(db)
    return CategoryList(items=[CategoryPublic(slug=c.slug, name=c.name) for c in categories])


@router.post("/products", status_code=201, response_model=ProductPublic)
async def create_product(
    body: ProductCreate, admin: AdminUser, db: DatabaseDep, response: Response
) -> ProductPublic:
    listing = await handlers.create_product(db, ProductDraft(**body.model_dump()))
    log.info("product created", product_id=listing.product.id, admin=admin.user_id)
    response.headers["Location"] = f"/api/products/{listing.product.id}"
    return ProductPublic.of(listing)


@router.patch("/products/{product_id}", response_model=ProductPublic)
async def update_product(
    product_id: str, body: ProductUpdate, admin: AdminUser, db: DatabaseDep
) -> ProductPublic:
    changes = ProductChanges(**body.model_dump(exclude_unset=True))
    listing = await handlers.update_product(db, product_id, changes)
    if listing is None:
        raise NotFound(f"no product {product_id}")
    log.info("product updated", product_id=product_id, admin=admin.user_id)
    return ProductPublic.of(listing)


# --- the bus ---------------------------------------------------------------------------


class QuoteRequest(BaseModel):
    model_config = ConfigDict(strict=True)

    product_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=MAX_QUOTED_PRODUCTS
    )


StockUnits = Annotated[int, Field(ge=0, le=2**31 - 1)]


class StockChanged(BaseModel):
    """`contracts/events/stock.changed.json`, field for field (an event that breaks it is
    dead-lettered); fields added later are ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")

    product_id: Annotated[
        str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")
    ]
    on_hand: StockUnits
    reserved: StockUnits
    available: StockUnits
    version: int = Field(ge=1, le=2**63 - 1)


def quote_responder(db: Database) -> RequestHandler:
    async def answer_quote(payload: dict[str, Any]) -> dict[str, Any]:
        # A ValidationError here reaches the caller as a `bad_request` reply.
        request = QuoteRequest.model_validate(payload)
        quotes = await handlers.quote(db, request.product_ids)
        return {
            "quotes": [
                {"product_id": q.product_id, "name": q.name, "price_cents": q.price_cents}
                for q in quotes.quotes
            ],
            "missing": quotes.missing,
        }

    return answer_quote


def stock_consumer(inbox: Inbox) -> EventHandler:
    async def on_stock_changed(event: Envelope) -> None:
        # An event that does not fit the schema raises: the platform retries it, then
        # dead-letters it, and consumption goes on.
        if event.type != STOCK_CHANGED:  # no retry can change what it is
            raise PermanentError(f"expected a {STOCK_CHANGED} event, got {event.type}")
        change = StockChanged.model_validate(event.data)
        level = StockLevel(change.product_id, change.available, change.version)
        applied = await handlers.record_stock(inbox, event, level)
        log.debug("stock event", event_id=event.id, applied=applied, version=level.version)

    return on_stock_changed
