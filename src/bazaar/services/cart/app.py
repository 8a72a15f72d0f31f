"""Entrypoints: HTTP routes and the `order.created` consumer, each a thin call of the
service layer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from bazaar.contracts.events import ORDER_CREATED, OrderCreated
from bazaar.platform.bus import Bus
from bazaar.platform.consumers import consume
from bazaar.platform.db import Database
from bazaar.platform.dependencies import uses
from bazaar.platform.jsontypes import JSON_INTEGER
from bazaar.platform.problems import Conflict, NotFound, Problem, Unprocessable
from bazaar.platform.tokens import CurrentUser
from bazaar.services.cart import domain
from bazaar.services.cart.domain import MAX_QTY, PricedCart
from bazaar.services.cart.handlers import CartService
from bazaar.services.cart.pricing import PricingFailed, PricingUnavailable
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


Carts = Annotated[CartService, uses(CartService)]


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
async def get_cart(user: CurrentUser, carts: Carts) -> CartPublic:
    with _as_problems():
        return CartPublic.of(await carts.view(user.user_id))


@public.post("/items", response_model=CartPublic)
async def add_item(body: ItemAdd, user: CurrentUser, carts: Carts) -> CartPublic:
    with _as_problems():
        cart = await carts.add_item(user.user_id, body.product_id, body.qty)
    return CartPublic.of(cart)


@public.patch("/items/{product_id}", response_model=CartPublic)
async def set_quantity(
    product_id: ProductIdPath,
    body: QuantitySet,
    user: CurrentUser,
    carts: Carts,
) -> CartPublic:
    with _as_problems():
        cart = await carts.set_quantity(user.user_id, product_id, body.qty)
    return CartPublic.of(cart)


@public.delete("/items/{product_id}", response_model=CartPublic)
async def remove_item(product_id: ProductIdPath, user: CurrentUser, carts: Carts) -> CartPublic:
    with _as_problems():
        cart = await carts.remove_item(user.user_id, product_id)
    return CartPublic.of(cart)


@internal.get("/{user_id}", response_model=InternalCart)
async def get_internal_cart(
    user_id: Annotated[str, Path(min_length=1, max_length=255)], carts: Carts
) -> InternalCart:
    """The lines the order service checks out (internal network only: no token)."""
    cart = await carts.contents(user_id)
    items = [InternalLine(product_id=p, qty=q) for p, q in cart.lines.items()]
    return InternalCart(user_id=cart.user_id, items=items)


def subscribe(bus: Bus, db: Database, carts: CartService) -> None:
    """Consume `order.created`: the ordered quantities leave the cart, once per event. An
    event that breaks the contract, even in fields the cart does not use, is dead-lettered
    at once, and the cart is not touched."""
    consume(
        bus,
        db,
        ORDER_CREATED,
        consumer=CONSUMER,
        contract=OrderCreated,
        handler=carts.remove_ordered,
    )
