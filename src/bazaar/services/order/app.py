"""HTTP entrypoints: checkout, the user's orders, and an order's event stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.sse import EventSourceResponse
from pydantic import BaseModel

from bazaar.platform.db import Database
from bazaar.platform.problems import NotFound, Problem, Unprocessable
from bazaar.platform.tokens import CurrentUser
from bazaar.services.order import domain, handlers
from bazaar.services.order.domain import CancelReason, Order, OrderStatus
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


async def get_db(request: Request) -> Database:  # async: no thread-pool hop per request
    return request.app.state.db


DatabaseDep = Annotated[Database, Depends(get_db)]
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)
]


async def owned_order(order_id: str, user: CurrentUser, db: DatabaseDep) -> Order:
    order = await handlers.find(db, user.user_id, order_id)
    if order is None:
        raise NotFound(f"no order {order_id[:100]}")
    return order


OwnedOrder = Annotated[Order, Depends(owned_order)]


@router.post("/checkout", status_code=201, response_model=CheckoutAccepted)
async def checkout(
    request: Request, user: CurrentUser, db: DatabaseDep, key: IdempotencyKey = None
) -> CheckoutAccepted:
    state = request.app.state
    command = handlers.Checkout(user.user_id, user.email, key)
    try:
        order = await handlers.checkout(
            db, state.carts, state.pricing, command, state.saga_runner.starting
        )
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
    state.relay.wake()  # order.created goes out now (the saga has started by itself)
    return CheckoutAccepted(order_id=order.id, status=order.status)


@router.get("/orders", response_model=OrderList)
async def list_orders(user: CurrentUser, db: DatabaseDep) -> OrderList:
    return OrderList(items=[OrderPublic.of(o) for o in await handlers.newest(db, user.user_id)])


@router.get("/orders/{order_id}", response_model=OrderPublic)
async def get_order(order: OwnedOrder) -> OrderPublic:
    return OrderPublic.of(order)


@router.get("/orders/{order_id}/events", response_class=EventSourceResponse)
async def order_events(
    order: OwnedOrder, request: Request, db: DatabaseDep
) -> AsyncIterator[OrderPublic]:
    """`data: <Order>` now and at every status change; the stream ends once final."""
    settings = request.app.state.settings
    async for current in handlers.watch(
        db,
        order,
        poll_seconds=settings.order_events_poll_seconds,
        max_seconds=settings.order_events_max_seconds,
    ):
        yield OrderPublic.of(current)
