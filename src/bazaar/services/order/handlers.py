"""The service layer: checkout and the order queries, each one unit of work."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from bazaar.platform.db import Database
from bazaar.platform.events import new_event
from bazaar.platform.outbox import add_to_outbox
from bazaar.services.order import domain
from bazaar.services.order.domain import Order
from bazaar.services.order.ports import Carts, NeighbourUnavailable, Pricing, PricingRefused
from bazaar.services.order.store import OrderRepository


@dataclass(frozen=True)
class Checkout:
    user_id: str
    email: str
    idempotency_key: str | None = None


# Leases a new order to a saga runner while it is inserted (see `SagaRunner.starting`):
# yields the lease to insert it with, or None to leave the order for a claim.
SagaStart = Callable[[Order], AbstractContextManager[datetime | None]]


def _no_saga_runner(order: Order) -> AbstractContextManager[datetime | None]:
    return nullcontext(None)


async def checkout(
    db: Database,
    carts: Carts,
    pricing: Pricing,
    command: Checkout,
    start_saga: SagaStart = _no_saga_runner,
) -> Order:
    """Turn the user's cart into a pending order and its `order.created` event; with
    `start_saga`, its saga starts at once.

    With an idempotency key, a repeated checkout answers the order the first one made.
    The key is looked up only when a new order cannot be made (a repeat finds the cart
    emptied by the first, which the cart service does on `order.created`) or when the
    unique key refuses it (the cart was not emptied yet): a first checkout, which is
    nearly every one, spends no read on it.
    Raises `domain.CheckoutRejected` for a cart that cannot be ordered, and the ports'
    `NeighbourUnavailable` / `PricingRefused` when the cart or the prices cannot be read.
    """
    try:
        order = await _new_order(carts, pricing, command)
    except (domain.CheckoutRejected, NeighbourUnavailable, PricingRefused):
        earlier = await _by_key(db, command)
        if earlier is None:
            raise
        return earlier
    event_type, data = domain.created_event(order)
    try:
        with start_saga(order) as lease_until:
            async with db.transaction() as session:
                repository = OrderRepository(session)
                await repository.add(order, command.idempotency_key, lease_until=lease_until)
                await add_to_outbox(session, new_event(event_type, "order", data, order.id))
    except IntegrityError:
        # An earlier checkout with the same key committed first: the unique constraint on
        # (user_id, idempotency_key) refused this one, which changed nothing. Answer the
        # earlier order.
        earlier = await _by_key(db, command)
        if earlier is None:
            raise
        return earlier
    return order


async def _new_order(carts: Carts, pricing: Pricing, command: Checkout) -> Order:
    """The order the user's cart makes at today's prices (not stored yet)."""
    lines = domain.merge_lines(await carts.lines(command.user_id))
    domain.check_lines(lines)
    quotes = await pricing.quote([line.product_id for line in lines])
    return domain.place_order(
        str(uuid.uuid4()),
        command.user_id,
        command.email,
        lines,
        quotes.by_product,
        datetime.now(UTC),
    )


async def _by_key(db: Database, command: Checkout) -> Order | None:
    """The order an earlier checkout with the command's idempotency key made."""
    if not command.idempotency_key:
        return None
    async with db.reading() as session:
        repository = OrderRepository(session)
        return await repository.by_idempotency_key(command.user_id, command.idempotency_key)


async def find(db: Database, user_id: str, order_id: str) -> Order | None:
    """The user's order; another user's order does not exist for them."""
    if not domain.is_order_id(order_id):
        return None
    async with db.reading() as session:
        return await OrderRepository(session).of_user(user_id, order_id)


async def newest(db: Database, user_id: str) -> list[Order]:
    async with db.reading() as session:
        return await OrderRepository(session).newest_of_user(user_id)


async def watch(
    db: Database, order: Order, *, poll_seconds: float, max_seconds: float
) -> AsyncIterator[Order]:
    """The order now, then again at each status change, until it is final or time is up.

    Polling the database (rather than an in-process signal) sees changes made by any
    replica's saga runner."""
    yield order
    give_up_at = time.monotonic() + max_seconds
    last = order
    while not last.is_final and time.monotonic() < give_up_at:
        await asyncio.sleep(poll_seconds)
        current = await find(db, order.user_id, order.id)
        if current is None:
            return
        if current.status is not last.status:
            yield current
        last = current
