"""The service layer: checkout and the order queries, each one unit of work."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError

from bazaar.platform import telemetry
from bazaar.platform.db import Database
from bazaar.platform.events import new_event
from bazaar.platform.outbox import add_to_outbox
from bazaar.services.order import domain
from bazaar.services.order.domain import Order
from bazaar.services.order.ports import (
    Carts,
    NeighbourUnavailable,
    Pricing,
    PricingRefused,
    SagaStarter,
)
from bazaar.services.order.saga import ORDER_ATTRIBUTE
from bazaar.services.order.store import OrderRepository


@dataclass(frozen=True)
class Checkout:
    user_id: str
    email: str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class OrderService:
    """The order use cases: the orders' database, the neighbours checkout reads (the cart,
    the catalog's prices), and the saga runner that takes each new order on (it holds
    inventory and payment, which the saga's steps call)."""

    db: Database
    carts: Carts
    pricing: Pricing
    saga: SagaStarter
    # An order's event stream: how often it looks for a change, and how long it lasts.
    watch_poll_seconds: float = 0.2
    watch_max_seconds: float = 60.0

    async def checkout(self, command: Checkout) -> Order:
        """Turn the user's cart into a pending order and its `order.created` event; its saga
        starts at once.

        With an idempotency key, a repeated checkout answers the order the first one made.
        The key is looked up only when a new order cannot be made (a repeat finds the cart
        emptied by the first, which the cart service does on `order.created`) or when the
        unique key refuses it (the cart was not emptied yet): a first checkout, which is
        nearly every one, spends no read on it.
        Raises `domain.CheckoutRejected` for a cart that cannot be ordered, and the ports'
        `NeighbourUnavailable` / `PricingRefused` when the cart or the prices cannot be read.
        """
        try:
            order = await self._new_order(command)
        except (domain.CheckoutRejected, NeighbourUnavailable, PricingRefused):
            earlier = await self._by_key(command)
            if earlier is None:
                raise
            return earlier
        event_type, data = domain.created_event(order)
        # The request's trace is the order's: the ops view finds it by this attribute, and
        # a saga resumed elsewhere links back to the context stored with the order.
        telemetry.annotate({ORDER_ATTRIBUTE: order.id})
        try:
            with self.saga.starting(order) as lease_until:
                async with self.db.transaction() as session:
                    repository = OrderRepository(session)
                    await repository.add(
                        order,
                        command.idempotency_key,
                        lease_until=lease_until,
                        trace_context=telemetry.trace_context(),
                    )
                    await add_to_outbox(session, new_event(event_type, "order", data, order.id))
        except IntegrityError:
            # An earlier checkout with the same key committed first: the unique constraint
            # on (user_id, idempotency_key) refused this one, which changed nothing. Answer
            # the earlier order.
            earlier = await self._by_key(command)
            if earlier is None:
                raise
            return earlier
        return order

    async def _new_order(self, command: Checkout) -> Order:
        """The order the user's cart makes at today's prices (not stored yet)."""
        lines = domain.merge_lines(await self.carts.lines(command.user_id))
        domain.check_lines(lines)
        quotes = await self.pricing.quote([line.product_id for line in lines])
        return domain.place_order(
            str(uuid.uuid4()),
            command.user_id,
            command.email,
            lines,
            quotes.by_product,
            datetime.now(UTC),
        )

    async def _by_key(self, command: Checkout) -> Order | None:
        """The order an earlier checkout with the command's idempotency key made."""
        if not command.idempotency_key:
            return None
        async with self.db.reading() as session:
            repository = OrderRepository(session)
            return await repository.by_idempotency_key(command.user_id, command.idempotency_key)

    async def find(self, user_id: str, order_id: str) -> Order | None:
        """The user's order; another user's order does not exist for them."""
        if not domain.is_order_id(order_id):
            return None
        async with self.db.reading() as session:
            return await OrderRepository(session).of_user(user_id, order_id)

    async def newest(self, user_id: str) -> list[Order]:
        async with self.db.reading() as session:
            return await OrderRepository(session).newest_of_user(user_id)

    async def watch(self, order: Order) -> AsyncIterator[Order]:
        """The order now, then again at each status change, until it is final or the
        stream's time is up.

        Polling the database (rather than an in-process signal) sees changes made by any
        replica's saga runner."""
        yield order
        give_up_at = time.monotonic() + self.watch_max_seconds
        last = order
        while not last.is_final and time.monotonic() < give_up_at:
            await asyncio.sleep(self.watch_poll_seconds)
            current = await self.find(order.user_id, order.id)
            if current is None:
                return
            if current.status is not last.status:
                yield current
            last = current
