"""Entrypoints: HTTP routes and the `order.created` consumer, each a thin call of the
service layer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from bazaar.platform.bus import Bus
from bazaar.platform.db import Database
from bazaar.platform.events import Envelope
from bazaar.platform.inbox import Inbox
from bazaar.platform.jsontypes import JSON_INTEGER
from bazaar.platform.problems import Conflict, NotFound, Problem, Unprocessable
from bazaar.platform.tokens import CurrentUser
from bazaar.services.cart import domain, handlers
from bazaar.services.cart.domain import MAX_QTY, PricedCart
from bazaar.services.cart.pricing import Pricing, PricingFailed, PricingUnavailable
from bazaar.services.cart.store import StaleCart

CONSUMER = "cart"
PRODUCT_ID = r"^[A-Za-z0-9._:-]+$"

public = APIRouter(prefix="/api/cart", tags=["cart"])
internal = APIRouter(prefix="/internal/carts", tags=["internal"])

ProductId = Annotated[str, Field(min_length=1, max_length=64, pattern=PRODUCT_ID)]
ProductIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=PRODUCT_ID)]
Quantity = Annotated[int, Field(ge=1, le=MAX_QTY, strict=True), JSON_INTEGER]


class ItemAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: ProductId
    qty: Quantity


class QuantitySet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    qty: Quantity


class CartLinePublic(BaseModel):
    product_id: str
    name: str
    unit_price_cents: int
    qty: int
    line_total_cents: int


class CartPublic(BaseModel):
    user_id: str
    items: list[CartLinePublic]
    total_cents: int
    item_count: int

    @classmethod
    def of(cls, cart: PricedCart) -> CartPublic:
        items = [
            CartLinePublic(
                product_id=line.product_id,
                name=line.name,
                unit_price_cents=line.unit_price_cents,
                qty=line.qty,
                line_total_cents=line.line_total_cents,
            )
            for line in cart.lines
        ]
        return cls(
            user_id=cart.user_id,
            items=items,
            total_cents=cart.total_cents,
            item_count=cart.item_count,
        )


class InternalLine(BaseModel):
    product_id: str
    qty: int


class InternalCart(BaseModel):
    user_id: str
    items: list[InternalLine]


# Dependencies are `async def`: FastAPI runs a plain `def` one in a worker thread.
async def get_db(request: Request) -> Database:
    return request.app.state.db


async def get_pricing(request: Request) -> Pricing:
    return request.app.state.pricing


DatabaseDep = Annotated[Database, Depends(get_db)]
PricingDep = Annotated[Pricing, Depends(get_pricing)]


@contextmanager
def _as_problems() -> Iterator[None]:
    """The service layer's refusals, as the HTTP answers the contract names."""
    try:
        yield
    except (domain.NotInCart, domain.UnknownProduct) as exc:
        raise NotFound(str(exc)) from exc
    except domain.CartError as exc:
        raise Unprocessable(str(exc)) from exc
    except PricingUnavailable as exc:
        raise Problem(503, str(exc), headers={"Retry-After": "1"}) from exc
    except PricingFailed as exc:
        raise Problem(502, str(exc)) from exc
    except StaleCart as exc:
        raise Conflict(str(exc)) from exc


@public.get("", response_model=CartPublic)
async def get_cart(user: CurrentUser, db: DatabaseDep, pricing: PricingDep) -> CartPublic:
    with _as_problems():
        return CartPublic.of(await handlers.view(db, pricing, user.user_id))


@public.post("/items", response_model=CartPublic)
async def add_item(
    body: ItemAdd, user: CurrentUser, db: DatabaseDep, pricing: PricingDep
) -> CartPublic:
    with _as_problems():
        cart = await handlers.add_item(db, pricing, user.user_id, body.product_id, body.qty)
    return CartPublic.of(cart)


@public.patch("/items/{product_id}", response_model=CartPublic)
async def set_quantity(
    product_id: ProductIdPath,
    body: QuantitySet,
    user: CurrentUser,
    db: DatabaseDep,
    pricing: PricingDep,
) -> CartPublic:
    with _as_problems():
        cart = await handlers.set_quantity(db, pricing, user.user_id, product_id, body.qty)
    return CartPublic.of(cart)


@public.delete("/items/{product_id}", response_model=CartPublic)
async def remove_item(
    product_id: ProductIdPath, user: CurrentUser, db: DatabaseDep, pricing: PricingDep
) -> CartPublic:
    with _as_problems():
        cart = await handlers.remove_item(db, pricing, user.user_id, product_id)
    return CartPublic.of(cart)


@internal.get("/{user_id}", response_model=InternalCart)
async def get_internal_cart(
    user_id: Annotated[str, Path(min_length=1, max_length=255)], db: DatabaseDep
) -> InternalCart:
    """The lines the order service checks out (internal network only: no token)."""
    cart = await handlers.contents(db, user_id)
    items = [InternalLine(product_id=p, qty=q) for p, q in cart.lines.items()]
    return InternalCart(user_id=cart.user_id, items=items)


# contracts/events/order.created.json, field for field: an event that breaks the contract
# is refused whole (the bus dead-letters it), even in fields the cart does not use.
EventId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")]
EventEmail = Annotated[
    str,
    Field(
        min_length=3,
        max_length=320,
        pattern=r"^[^@\x00-\x20\x7f-\xa0]+@[^@\x00-\x20\x7f-\xa0]+$",
    ),
]


class EventData(BaseModel):
    # Strict: a JSON "3" is no integer. Fields added to the contract later are ignored.
    model_config = ConfigDict(strict=True, extra="ignore")


class OrderedItem(EventData):
    product_id: EventId
    name: str = Field(max_length=500)
    qty: int = Field(ge=1, le=10_000)
    unit_price_cents: int = Field(ge=0, le=100_000_000)


class OrderCreated(EventData):
    """`order.created`; the cart uses the user and the ordered quantities."""

    order_id: EventId
    user_id: EventId
    email: EventEmail
    items: list[OrderedItem] = Field(min_length=1, max_length=1000)
    total_cents: int = Field(ge=0, le=10**15)

    def quantities(self) -> dict[str, int]:
        ordered: dict[str, int] = {}
        for item in self.items:
            ordered[item.product_id] = ordered.get(item.product_id, 0) + item.qty
        return ordered


def subscribe(bus: Bus, db: Database) -> None:
    """Consume `order.created`: the ordered quantities leave the cart, once per event."""
    inbox = Inbox(db, CONSUMER)

    async def on_order_created(event: Envelope) -> None:
        # A payload that breaks the contract raises here: the bus retries it, then
        # dead-letters it; the cart is not touched.
        order = OrderCreated.model_validate(event.data)

        async def apply(session: AsyncSession, _: Envelope) -> None:
            await handlers.remove_ordered(session, order.user_id, order.quantities())

        await inbox.handle_once(event, apply)

    bus.on_event("order.created", CONSUMER, on_order_created)
