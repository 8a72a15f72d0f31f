"""HTTP entrypoints: checkout, the user's orders, and an order's event stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from fastapi.sse import EventSourceResponse
from pydantic import BaseModel

from bazaar.platform.dependencies import uses
from bazaar.platform.problems import NotFound, Problem, Unprocessable
from bazaar.platform.tokens import CurrentUser
from bazaar.services.order import domain
from bazaar.services.order.domain import CancelReason, Order, OrderStatus
from bazaar.services.order.handlers import Checkout, OrderService
from bazaar.services.order.ports import NeighbourUnavailable, PricingRefused

router = APIRouter(prefix="/api", tags=["orders"])


class CheckoutAccepted(BaseModel):
    order_id: str
    status: OrderStatus


class OrderItemPublic(BaseModel):
    product_id: str
    name: str
    qty: int
    unit_price_cents: int


class OrderPublic(BaseModel):
    id: str
    status: OrderStatus
    reason: CancelReason | None
    items: list[OrderItemPublic]
    total_cents: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, order: Order) -> OrderPublic:
        return cls(
            id=order.id,
            status=order.status,
            reason=order.reason,
            items=[OrderItemPublic(**item.__dict__) for item in order.items],
            total_cents=order.total_cents,
            created_at=order.created_at,
            updated_at=order.updated_at,
        )


class OrderList(BaseModel):
    items: list[OrderPublic]


Orders = Annotated[OrderService, uses(OrderService)]
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
]


async def owned_order(order_id: str, user: CurrentUser, orders: Orders) -> Order:
    order = await orders.find(user.user_id, order_id)
    if order is None:
        raise NotFound(f"no order {order_id[:100]}")
    return order


OwnedOrder = Annotated[Order, Depends(owned_order)]


@router.post("/checkout", status_code=201, response_model=CheckoutAccepted)
async def checkout(
    user: CurrentUser, orders: Orders, key: IdempotencyKey = None
) -> CheckoutAccepted:
    try:
        order = await orders.checkout(Checkout(user.user_id, user.email, key))
    except domain.UnknownProducts as exc:
        raise Problem(422, str(exc), product_ids=exc.product_ids) from exc
    except domain.CheckoutRejected as exc:
        raise Unprocessable(str(exc)) from exc
    except PricingRefused as exc:
        raise Unprocessable(f"the catalog refused to price the cart: {exc}") from exc
    except NeighbourUnavailable as exc:
        raise Problem(
            503, f"checkout is unavailable right now: {exc}", headers={"Retry-After": "2"}
        ) from exc
    return CheckoutAccepted(order_id=order.id, status=order.status)


@router.get("/orders", response_model=OrderList)
async def list_orders(user: CurrentUser, orders: Orders) -> OrderList:
    return OrderList(items=[OrderPublic.of(o) for o in await orders.newest(user.user_id)])


@router.get("/orders/{order_id}", response_model=OrderPublic)
async def get_order(order: OwnedOrder) -> OrderPublic:
    return OrderPublic.of(order)


@router.get("/orders/{order_id}/events", response_class=EventSourceResponse)
async def order_events(order: OwnedOrder, orders: Orders) -> AsyncIterator[OrderPublic]:
    """`data: <Order>` now and at every status change; the stream ends once final."""
    async for current in orders.watch(order):
        yield OrderPublic.of(current)
